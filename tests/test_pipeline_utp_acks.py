"""uTP flows in the decoder: what an acknowledgement releases and when, how resets and
FINs close a flow and at which frame, the time a session ends at, the responder's first
sequence number, an encrypted (MSE) uTP connection, a flow rejected after its first
packets, a SYN reusing a closed connection's ids, and a TCP "land" flow closed by its FIN.

Why: a mutation run of ``Decoder._datagram``, ``_open_utp`` and ``_open`` left these
edits unnoticed: acknowledgements only ever released side b's data, no reset came
inside a message, no FIN came from b first, nothing looked at a session's end after
its close, nor at an encrypted uTP connection.

Frames are numbered from 1 in capture order; times are whole seconds, so exact.
"""
from __future__ import annotations

import random
from pathlib import Path

from conftest import TcpConversation, bt_handshake, bt_have, bt_msg, write_packets
from inspector.limits import Limits
from test_pipeline import HASH, PEER_A, PEER_B, ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN, udp_packets, utp
from test_pipeline_utp_flows import A, B, BLOCK, PIECE_CUT, T0, decoded, found, midstream, opened, timed


def capture(tmp_path: Path, grams: list[tuple[int, bytes]], name: str = "utp.pcap") -> Path:
    return write_packets(tmp_path / name, timed(udp_packets(grams, a=A, b=B)))


# ---------------------------------------------------------------- acknowledgements


def test_b_acknowledging_a_lost_packet_of_a_declares_a_s_hole_at_the_ack(tmp_path: Path) -> None:
    """a's have(0) (s + 2) is not captured; its have(1) (s + 3) waits. b's STATE acking
    s + 3 (frame 6, T0 + 5) says s + 2 was received: the hole is a's, at that frame and
    time, and have(1) follows it."""
    x, y, s, r = 300, 301, 10, 500
    grams = [*opened(x, s, r),                                    # frames 1-4
             (0, utp(ST_DATA, y, s + 3, r, bt_have(1))),          # 5: s + 2 was lost by the capture
             (1, utp(ST_STATE, x, r + 1, s + 3)),                 # 6
             (0, utp(ST_FIN, y, s + 4, r)), (1, utp(ST_FIN, x, r + 1, s + 4))]
    messages, findings, (session,) = decoded(capture(tmp_path, grams))
    assert [(r.side, r.frame, r.event.type) for r in messages][:2] == [(0, 3, "handshake"), (1, 4, "handshake")]
    assert [(f.side, f.frame, f.ts, f.event.kind) for f in findings][:1] == [(0, 6, T0 + 5, "hole")]
    assert found(session, "hole")[0][:2] == ("a", 6)
    assert session.state == "closed"


def test_a_retransmitted_syn_acknowledges_nothing(tmp_path: Path) -> None:
    """A SYN's ack_nr (0) means nothing. b starts at r = 65530, so were the repeated
    SYN's ack_nr read as b's, it would say b's packets up to 0 arrived, and b's have(2)
    (r + 2), captured before its have(1) (r + 1), would be let out at once with r + 1
    declared lost, instead of waiting for it."""
    x, y, s, r = 300, 301, 10, 65530
    grams = [(0, utp(ST_SYN, x, s, 0)), (1, utp(ST_STATE, x, r, s)),
             (0, utp(ST_SYN, x, s, 0)),  # 3: the SYN again
             (0, utp(ST_DATA, y, s + 1, r - 1, bt_handshake(HASH, PEER_A))),
             (1, utp(ST_DATA, x, r, s + 1, bt_handshake(HASH, PEER_B))),
             (1, utp(ST_DATA, x, r + 2, s + 1, bt_have(2))),  # 6
             (1, utp(ST_DATA, x, r + 1, s + 1, bt_have(1))),  # 7
             (0, utp(ST_FIN, y, s + 2, r + 2)), (1, utp(ST_FIN, x, r + 3, s + 2))]
    messages, findings, (session,) = decoded(capture(tmp_path, grams))
    assert [(r.side, r.frame, r.event.type) for r in messages] == [
        (0, 4, "handshake"), (1, 5, "handshake"), (1, 7, "have"), (1, 6, "have")]  # each at its own frame
    assert [r.event.index for r in messages[2:]] == [1, 2]
    assert findings == []
    assert session.state == "closed"


# ---------------------------------------------------------------- the responder's start


def test_a_responder_s_ack_ahead_of_its_data_does_not_set_where_its_stream_starts(tmp_path: Path) -> None:
    """Captured without the SYN, so which side opened is unknown: b's STATE (seq r + 1)
    arrives before b's handshake (seq r). Only data says where b's stream starts: the
    handshake is b's first bytes, not a retransmission."""
    x = 1000
    y, s, r = x + 1, 40, 700
    grams = [(0, utp(ST_DATA, y, s, r - 1, bt_handshake(HASH, PEER_A))),
             (1, utp(ST_STATE, x, r + 1, s)),
             (1, utp(ST_DATA, x, r, s, bt_handshake(HASH, PEER_B))),
             (0, utp(ST_DATA, y, s + 1, r, bt_msg(2))),
             (1, utp(ST_DATA, x, r + 1, s + 1, bt_msg(1)))]
    messages, findings, (session,) = decoded(capture(tmp_path, grams))
    assert [(r.side, r.frame, r.event.type) for r in messages] == [
        (0, 1, "handshake"), (1, 3, "handshake"), (0, 4, "interested"), (1, 5, "unchoke")]
    assert findings == []
    assert not session.opener_known


# ---------------------------------------------------------------- closing


def test_a_reset_inside_a_piece_reports_it_at_the_reset_s_frame(tmp_path: Path) -> None:
    grams = [*opened(300), (1, utp(ST_DATA, 300, 501, 11, PIECE_CUT)), (0, utp(ST_RESET, 300, 77, 0))]
    _, findings, (session,) = decoded(capture(tmp_path, grams))
    assert [(f.side, f.frame, f.event.kind) for f in findings] == [(1, 6, "truncated")]
    assert session.state == "reset" and session.end == T0 + 5
    assert found(session, "truncated") == [
        ("b", 6, "stream ended 2972 bytes short of the end of piece 1:0 (3072 bytes)")]


def test_a_fin_from_b_alone_leaves_a_s_direction_open(tmp_path: Path) -> None:
    """b finishes first; a still sends an interested, then its FIN closes the flow."""
    x, y = 300, 301
    grams = [*opened(x), (1, utp(ST_FIN, x, 501, 11)),            # 5
             (0, utp(ST_DATA, y, 12, 501, bt_msg(2))),            # 6
             (0, utp(ST_FIN, y, 13, 501))]                        # 7
    messages, findings, (session,) = decoded(capture(tmp_path, grams))
    assert [(r.side, r.frame, r.event.type) for r in messages] == [
        (0, 3, "handshake"), (1, 4, "handshake"), (0, 6, "interested")]
    assert findings == []
    assert session.state == "closed" and session.end == T0 + 6


def test_a_session_ends_at_its_last_packet_even_after_its_close(tmp_path: Path) -> None:
    """Both FINs close the flow at frame 6; a's STATE acknowledging b's FIN (frame 7)
    is still the connection's, and its last packet."""
    x, y = 300, 301
    grams = [*opened(x), (0, utp(ST_FIN, y, 12, 500)), (1, utp(ST_FIN, x, 501, 12)),
             (0, utp(ST_STATE, y, 13, 501))]
    _, _, (session,) = decoded(capture(tmp_path, grams))
    assert session.state == "closed"
    assert (session.start, session.end) == (T0, T0 + 6)


# ---------------------------------------------------------------- encrypted and rejected


def test_an_encrypted_utp_connection_is_an_encrypted_session(tmp_path: Path) -> None:
    """Opened by a SYN, then MSE's shape: a's key flight (200 random bytes), b's (180),
    then a's 3000 bytes of step 3, in 1000-byte packets."""
    rng = random.Random(1)
    x, y, s, r = 300, 301, 10, 500
    one, two, three = rng.randbytes(200), rng.randbytes(180), rng.randbytes(3000)
    grams = [(0, utp(ST_SYN, x, s, 0)), (1, utp(ST_STATE, x, r, s)),
             (0, utp(ST_DATA, y, s + 1, r - 1, one)), (1, utp(ST_DATA, x, r, s + 1, two)),
             *[(0, utp(ST_DATA, y, s + 2 + i, r, three[i * 1000:(i + 1) * 1000])) for i in range(3)],
             (0, utp(ST_FIN, y, s + 5, r)), (1, utp(ST_FIN, x, r + 1, s + 5))]
    messages, _, sessions = decoded(capture(tmp_path, grams))
    assert messages == []
    (session,) = sessions
    assert session.transport == "utp" and session.encrypted and session.state == "closed"
    assert (session.sides[0].stream_bytes, session.sides[1].stream_bytes) == (3200, 180)


def test_a_non_bittorrent_utp_flow_charges_nothing_to_the_shared_budget(tmp_path: Path) -> None:
    """A uTP connection carrying HTTP is no peer connection: nothing of it is decoded,
    and the packet it sends later out of order (9 bytes at s + 4, after s + 3) is
    not buffered against --max-ooo-total 10, which the BitTorrent connection beside
    it then has all to itself for its own 9 bytes waiting."""
    x, y, s, r = 300, 301, 10, 500
    http = [(0, utp(ST_SYN, x, s, 0)), (1, utp(ST_STATE, x, r, s)),
            (0, utp(ST_DATA, y, s + 1, r - 1, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
            (1, utp(ST_DATA, x, r, s + 1, b"HTTP/1.1 200 OK\r\n\r\n")),
            (0, utp(ST_DATA, y, s + 2, r, b"GET /2 HTTP/1.1\r\n\r\n")),
            (0, utp(ST_DATA, y, s + 4, r, bytes(9)))]
    peer = [*opened(900), (0, utp(ST_DATA, 901, 13, 500, bt_have(1)))]  # s + 2 (12) missing: 9 bytes wait
    packets = (udp_packets(http, a=("10.0.0.3", 7000), b=B) + udp_packets(peer, a=A, b=B))
    path = write_packets(tmp_path / "two.pcap", timed(packets))
    messages, findings, sessions = decoded(path, Limits(ooo_total=10))
    (session,) = [s for s in sessions if s.sides[0].addr == "10.0.0.1:6881"]
    assert found(session, "limit") == []
    assert [r.session.sides[0].addr for r in messages] == ["10.0.0.1:6881"] * len(messages)


# ---------------------------------------------------------------- a SYN reusing closed ids


def test_a_syn_reusing_closed_ids_takes_the_closed_flow_s_place_in_the_table(tmp_path: Path) -> None:
    """Room for two flows. The second SYN with the first connection's ids replaces the
    closed flow, so a third connection (from 10.0.0.3) still fits beside it: nothing is
    evicted, and both open connections end the capture open."""
    x = 300
    one = [*opened(x), (0, utp(ST_FIN, x + 1, 12, 500)), (1, utp(ST_FIN, x, 501, 12))]
    two = opened(x, s=2000, r=9000)
    three = opened(7000)
    packets = (udp_packets(one + two, a=A, b=B) + udp_packets(three, a=("10.0.0.3", 6881), b=B))
    path = write_packets(tmp_path / "reuse.pcap", timed(packets))
    _, findings, sessions = decoded(path, Limits(flows=2))
    assert [(s.sides[0].addr, s.state) for s in sessions] == [
        ("10.0.0.1:6881", "closed"), ("10.0.0.1:6881", "open"), ("10.0.0.3:6881", "open")]
    # Nothing evicted, nothing lost. The third connection's handshakes (frames 13, 14) reuse the
    # peer ids of the second, still open: a's id from another host, and the same two ids again.
    assert [(r.session, r.side, r.frame, r.event.kind) for r in findings] == [
        (sessions[2], 0, 13, "duplicate_peer_id"), (sessions[2], 1, 14, "duplicate_peer_id")]


# ---------------------------------------------------------------- TCP: a land flow


def test_a_land_flow_is_closed_by_its_fin(tmp_path: Path) -> None:
    """Source = destination: every segment is side b's, side a is finished from the
    start, so b's FIN alone closes the flow, at frame 3."""
    me = ("10.0.0.1", 40000)
    conv = TcpConversation(a=me, b=me, t0=T0 - 1, dt=1.0)  # frame n at T0 + n - 1
    conv.packet(0, "S")                                      # 1
    conv.send(0, bt_handshake(HASH, PEER_A) + bt_msg(2))     # 2
    conv.packet(0, "FA")                                     # 3
    messages, findings, (session,) = decoded(conv.write(tmp_path / "land.pcap"))
    assert [(r.side, r.frame, r.event.type) for r in messages] == [(1, 2, "handshake"), (1, 2, "interested")]
    assert [(f.kind, f.frame) for f in session.findings] == [("land", 2)]
    assert session.state == "closed" and session.end == T0 + 2
