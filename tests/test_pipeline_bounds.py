"""The decoder's bounds at work in small captures, in process: the out-of-order limits
(per direction, over all flows, TCP and uTP) and frames larger than a slice.
``test_hostile.py`` runs the same bounds at size through the CLI
under memory limits; these say exactly what is reported, and where.
"""
from __future__ import annotations

import hostile as h
from conftest import bt_handshake, write_packets
from inspector.limits import Limits
from inspector.pipeline import SLICE, CaptureDecode
from test_pipeline import HASH, PEER_A, ST_DATA, ST_STATE, ST_SYN, udp_packets, utp


def decoded(path, limits: Limits = Limits()):
    decode = CaptureDecode(str(path), limits=limits)
    records = list(decode)
    return records, decode.sessions


def findings(sessions, kind: str) -> list[tuple[str, int, str]]:
    return [(f.side, f.frame, f.detail) for s in sessions for f in s.findings if f.kind == kind]


def hole_then_segments(conn: h.Conn, count: int, size: int = 1000) -> list[int]:
    """A missing first segment, then ``count`` segments of ``size`` bytes; their frame numbers."""
    base = conn.seq[0]
    numbers = []
    for i in range(1, count + 1):
        conn.emit(0, h.PSH, bytes(size), seq=base + i * size)
        numbers.append(len(conn.frames))
    return numbers


def test_out_of_order_bytes_over_the_direction_bound_are_given_up_on_at_the_frame_that_passed_it(tmp_path):
    conn = h.Conn().open().handshakes()
    numbers = hole_then_segments(conn, 6)  # 4096 bytes is passed by the fifth segment (5000 bytes)
    path = h.write_pcap(tmp_path / "ooo.pcap", conn.frames)
    _records, sessions = decoded(path, Limits(ooo=4096))
    assert findings(sessions, "limit") == [
        ("a", numbers[4], "out-of-order bytes buffered for this direction reached (--max-ooo 4096); "
                        "the bytes missing before them are declared lost")]
    assert findings(sessions, "hole") == [
        ("a", numbers[4], "1000 bytes not captured; framing lost, looking for the next message")]


def test_out_of_order_bytes_over_all_flows_are_bounded_together(tmp_path):
    frames: list = []
    numbers: list[list[int]] = []
    for flow in range(2):
        conn = h.Conn(aport=32000 + flow).open().handshakes()
        numbers.append([len(frames) + n for n in hole_then_segments(conn, 3)])
        frames += conn.frames
    _records, (first, second) = decoded(h.write_pcap(tmp_path / "ooo.pcap", frames), Limits(ooo_total=5000))
    # 3000 bytes wait in the first flow; the second flow's second segment brings the total
    # to 5000, at the bound, and its third passes it
    assert findings([first], "limit") == []
    assert findings([second], "limit") == [
        ("a", numbers[1][2], "out-of-order bytes buffered over all flows reached (--max-ooo-total 5000); "
                             "the bytes missing before them are declared lost")]


def test_a_tcp_payload_larger_than_a_slice_is_decoded_slice_by_slice(tmp_path):
    size = 2 * SLICE + 1000  # three slices, the last one short
    path = h.write_pcap(tmp_path / "big.pcap", h.offloaded_zeros(size))
    records, sessions = decoded(path)
    alive = [r for r in records if r.event.type == "keepalive"]
    assert len(alive) == size // 4
    assert {r.frame for r in alive} == {alive[0].frame}  # all from the one frame
    (session,) = sessions
    assert session.sides[0].stream_bytes == 68 + size and not findings(sessions, "hole")


def test_utp_out_of_order_bound_is_a_limit_finding(tmp_path):
    x, s, r = 0x1234, 100, 500
    y = x + 1
    grams = [(0, utp(ST_SYN, x, s, 0)), (1, utp(ST_STATE, x, r, s)),
             (0, utp(ST_DATA, y, s + 1, r - 1, bt_handshake(HASH, PEER_A)))]
    # s + 2 is never captured; the packets after it wait, 600 bytes each
    grams += [(0, utp(ST_DATA, y, s + 3 + i, r - 1, bytes(600))) for i in range(5)]
    path = write_packets(tmp_path / "utp.pcap", udp_packets(grams))
    _records, sessions = decoded(path, Limits(ooo=2048))
    first_frame = 4  # frames are numbered from 1: SYN, STATE, handshake, then the waiting ones
    assert findings(sessions, "limit") == [
        ("a", first_frame + 3, "out-of-order bytes buffered for this direction reached (--max-ooo 2048); "
                             "the bytes missing before them are declared lost")]
    assert [(side, frame) for side, frame, _ in findings(sessions, "hole")] == [("a", first_frame + 3)]
