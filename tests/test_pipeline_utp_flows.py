"""uTP (BEP 29) flows in the decoder's table, in small captures built with scapy: which
connection id a packet goes by (a reset may carry either of the connection's ids, modulo
2**16), which packets open a flow, a SYN reusing a closed connection's ids, the time a
flow starts at, the frame that stamps what a replaced or evicted flow reports, and the
out-of-order bounds on the responder's direction.

Why: a mutation run of ``Decoder._datagram``, ``_make_room`` and ``_directions`` showed
that no test pinned these down: existing tests reset only connections opened by a SYN,
bound only side a's out-of-order bytes, and never looked at a uTP session's start or
at the frame numbers of what an evicted flow reports.

Frames are numbered from 1 in capture order; times are whole seconds, so exact.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TcpConversation, bt_handshake, bt_have, bt_msg, bt_piece, write_packets
from inspector.limits import Limits
from inspector.pipeline import CaptureDecode
from inspector.session import Session
from test_pipeline import HASH, PEER_A, PEER_B, ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN, udp_packets, utp

T0 = 1_700_000_000.0
A, B = ("10.0.0.1", 6881), ("10.0.0.2", 51413)
BLOCK = bytes(range(256)) * 12  # 3072 bytes
PIECE_CUT = bt_piece(1, 0, BLOCK)[:13 + 100]  # the 13-byte piece header and 100 bytes of the block


def timed(packets: list, t0: float = T0) -> list:
    """The packets, one whole second apart from ``t0``."""
    for i, pkt in enumerate(packets):
        pkt.time = t0 + i
    return packets


def decoded(path: Path, limits: Limits = Limits()) -> tuple[list, list, list[Session]]:
    """(messages, findings, sessions) of a capture read with ``limits``."""
    decode = CaptureDecode(str(path), limits=limits)
    records = list(decode)
    messages = [r for r in records if r.event.type != "finding"]
    findings = [r for r in records if r.event.type == "finding"]
    return messages, findings, decode.sessions


def found(session: Session, kind: str) -> list[tuple[str | None, int, str]]:
    return [(f.side, f.frame, f.detail) for f in session.findings if f.kind == kind]


def midstream(x: int) -> list[tuple[int, bytes]]:
    """A uTP connection captured after its SYN: the opener (a) sends with X + 1, the
    responder (b) with X; both handshakes, then an interested and an unchoke. No FIN."""
    y, s, r = (x + 1) & 0xFFFF, 40, 700
    return [
        (0, utp(ST_DATA, y, s, r - 1, bt_handshake(HASH, PEER_A))),
        (1, utp(ST_DATA, x, r, s, bt_handshake(HASH, PEER_B))),
        (0, utp(ST_DATA, y, s + 1, r, bt_msg(2))),
        (1, utp(ST_DATA, x, r + 1, s + 1, bt_msg(1))),
        (0, utp(ST_STATE, y, s + 1, r + 1)),
    ]


def opened(x: int, s: int = 10, r: int = 500) -> list[tuple[int, bytes]]:
    """A uTP connection from its SYN (X) to both handshakes: SYN, the STATE answering it,
    a's handshake (X + 1), b's handshake (X)."""
    y = (x + 1) & 0xFFFF
    return [
        (0, utp(ST_SYN, x, s, 0)),
        (1, utp(ST_STATE, x, r, s)),
        (0, utp(ST_DATA, y, s + 1, r - 1, bt_handshake(HASH, PEER_A))),
        (1, utp(ST_DATA, x, r, s + 1, bt_handshake(HASH, PEER_B))),
    ]


# ---------------------------------------------------------------- which id keys a reset


@pytest.mark.parametrize("x", [1000, 0xFFFF], ids=["plain", "wrap"])
@pytest.mark.parametrize("side,extra", [(0, 0), (0, 1), (1, 0), (1, 1)],
                         ids=["opener-x", "opener-x1", "responder-x", "responder-x1"])
def test_a_reset_with_either_id_ends_a_connection_captured_without_its_syn(tmp_path: Path, x: int, side: int,
                                                                           extra: int) -> None:
    """Which side opened is unknown, so the flow goes by the first sender's id C for its
    packets and by C - 1 or C + 1 for the other side's. Here the opener spoke first
    (C = X + 1). A reset may carry either id: the responder's carrying X + 1 = C is found
    by trying its id - 1, the opener's carrying X by trying its id + 1 = C, which at
    X = 0xFFFF is 0x10000, i.e. 0 modulo 2**16."""
    grams = midstream(x)
    grams.append((side, utp(ST_RESET, (x + extra) & 0xFFFF, 77, 0)))
    path = write_packets(tmp_path / "reset.pcap", timed(udp_packets(grams, a=A, b=B)))
    messages, findings, sessions = decoded(path)
    assert [(r.side, r.event.type) for r in messages] == [(0, "handshake"), (1, "handshake"),
                                                           (0, "interested"), (1, "unchoke")]
    (s,) = sessions
    assert not s.opener_known
    assert s.state == "reset"
    assert s.end == T0 + 5  # the reset, frame 6


def test_a_reset_with_an_unrelated_id_is_not_the_connection_s(tmp_path: Path) -> None:
    grams = midstream(1000)
    grams.append((0, utp(ST_RESET, 1003, 77, 0)))  # neither 1000, 1001 nor 1002
    path = write_packets(tmp_path / "reset.pcap", timed(udp_packets(grams, a=A, b=B)))
    _, _, (s,) = decoded(path)
    assert s.state == "open" and s.end == T0 + 4


# ---------------------------------------------------------------- which packets open a flow


@pytest.mark.parametrize("first", ["empty-data", "state"])
def test_only_a_syn_or_a_data_packet_with_data_opens_a_flow(tmp_path: Path, first: str) -> None:
    """A payload-free ST_DATA or a bare ST_STATE from b, before the capture's first data
    packet (a's handshake), opens nothing: the session starts at that handshake, with a
    as its side a, and has no packet before it."""
    x, r = 1000, 700
    lead = utp(ST_DATA, x, r - 1, 39, b"") if first == "empty-data" else utp(ST_STATE, x, r, 39)
    grams = [(1, lead), *midstream(x)]
    path = write_packets(tmp_path / "lead.pcap", timed(udp_packets(grams, a=A, b=B)))
    messages, _, sessions = decoded(path)
    assert [(r.side, r.frame, r.event.type) for r in messages] == [
        (0, 2, "handshake"), (1, 3, "handshake"), (0, 4, "interested"), (1, 5, "unchoke")]
    (s,) = sessions
    assert (s.sides[0].addr, s.sides[1].addr) == ("10.0.0.1:6881", "10.0.0.2:51413")
    assert not s.opener_known
    assert (s.start, s.end) == (T0 + 1, T0 + 5)


def test_a_connection_seen_from_its_syn_starts_at_the_syn(tmp_path: Path) -> None:
    grams = [*opened(300), (0, utp(ST_FIN, 301, 12, 500)), (1, utp(ST_FIN, 300, 501, 12))]
    path = write_packets(tmp_path / "syn.pcap", timed(udp_packets(grams, a=A, b=B)))
    _, _, (s,) = decoded(path)
    assert s.opener_known and s.state == "closed"
    assert (s.start, s.end) == (T0, T0 + 5)


def test_a_connection_without_its_syn_starts_at_its_first_data_packet(tmp_path: Path) -> None:
    path = write_packets(tmp_path / "mid.pcap", timed(udp_packets(midstream(1000), a=A, b=B), t0=T0 + 7))
    _, _, (s,) = decoded(path)
    assert not s.opener_known
    assert (s.start, s.end) == (T0 + 7, T0 + 11)


def test_a_syn_reusing_a_closed_connection_s_ids_starts_a_new_session(tmp_path: Path) -> None:
    """Same addresses, ports and X twice: the second SYN comes after the first connection
    closed (FIN both ways), so it opens a second session, from its SYN."""
    x = 300
    one = [*opened(x), (0, utp(ST_FIN, x + 1, 12, 500)), (1, utp(ST_FIN, x, 501, 12))]
    two = [*opened(x, s=2000, r=9000), (0, utp(ST_DATA, x + 1, 2002, 9000, bt_msg(2))),
           (0, utp(ST_FIN, x + 1, 2003, 9000)), (1, utp(ST_FIN, x, 9001, 2003))]
    path = write_packets(tmp_path / "again.pcap", timed(udp_packets(one + two, a=A, b=B)))
    messages, findings, sessions = decoded(path)
    assert [(r.session.id, r.frame, r.event.type) for r in messages] == [
        (1, 3, "handshake"), (1, 4, "handshake"),
        (2, 9, "handshake"), (2, 10, "handshake"), (2, 11, "interested")]
    assert findings == []
    assert [(s.opener_known, s.state, s.start, s.end) for s in sessions] == [
        (True, "closed", T0, T0 + 5), (True, "closed", T0 + 6, T0 + 12)]


# ---------------------------------------------------------------- replaced and evicted flows


@pytest.mark.parametrize("how", ["syn", "data"])
def test_an_evicted_utp_flow_reports_at_the_frame_of_the_flow_that_took_its_place(tmp_path: Path, how: str) -> None:
    """One flow at most: a second connection, opened by its SYN or (captured without it)
    by a data packet, evicts the first, which was inside a piece. The piece cut short is
    reported at the frame that evicted it; the session ends at its own last packet."""
    first = [*opened(300), (1, utp(ST_DATA, 300, 501, 11, PIECE_CUT))]
    other = (utp(ST_SYN, 4000, 70, 0) if how == "syn"
             else utp(ST_DATA, 4001, 71, 0, bt_handshake(HASH, PEER_A)))
    packets = timed(udp_packets(first, a=A, b=B) + udp_packets([(0, other)], a=("10.0.0.3", 6881), b=B))
    path = write_packets(tmp_path / "evict.pcap", packets)
    _, findings, sessions = decoded(path, Limits(flows=1))
    assert [(r.session.id, r.side, r.frame, r.event.kind) for r in findings] == [(1, 1, 6, "truncated")]
    s = sessions[0]
    assert (s.state, s.start, s.end) == ("evicted", T0, T0 + 4)
    assert found(s, "truncated") == [("b", 6, "stream ended 2972 bytes short of the end of piece 1:0 (3072 bytes)")]


def test_a_replaced_tcp_connection_reports_at_the_frame_of_the_syn_that_replaced_it(tmp_path: Path) -> None:
    """A SYN with a new initial sequence number on a 4-tuple whose connection is still
    open (and inside a piece) replaces it: the piece cut short is reported at the SYN."""
    conv = TcpConversation(a=A, b=B, t0=T0 - 1, dt=1.0).open()  # frames 1-3 at T0 .. T0 + 2
    conv.send(0, bt_handshake(HASH, PEER_A))  # 4
    conv.send(1, bt_handshake(HASH, PEER_B))  # 5
    conv.send(1, PIECE_CUT)  # 6
    conv.packet(0, "S", seq=777_777)  # 7
    _, findings, sessions = decoded(conv.write(tmp_path / "replace.pcap"))
    assert [(r.session.id, r.side, r.frame, r.event.kind) for r in findings] == [(1, 1, 7, "truncated")]
    (s,) = sessions
    assert (s.state, s.start, s.end) == ("replaced", T0, T0 + 5)
    assert found(s, "truncated") == [("b", 7, "stream ended 2972 bytes short of the end of piece 1:0 (3072 bytes)")]


# ---------------------------------------------------------------- out-of-order bounds, side b


def waiting_haves(side: int) -> list[tuple[int, bytes]]:
    """``opened(300)``, then ``side`` skips one packet and sends two haves (9 bytes each),
    which wait for it: 18 bytes out of order by frame 6."""
    x, y, s, r = 300, 301, 10, 500
    if side == 0:
        more = [(0, utp(ST_DATA, y, s + 3, r, bt_have(1))), (0, utp(ST_DATA, y, s + 4, r, bt_have(2)))]
    else:
        more = [(1, utp(ST_DATA, x, r + 2, s + 1, bt_have(1))), (1, utp(ST_DATA, x, r + 3, s + 1, bt_have(2)))]
    return [*opened(300), *more]


@pytest.mark.parametrize("side", [0, 1], ids=["a", "b"])
@pytest.mark.parametrize("bound,text", [
    ("ooo", "out-of-order bytes buffered for this direction reached (--max-ooo 10)"),
    ("ooo_total", "out-of-order bytes buffered over all flows reached (--max-ooo-total 10)"),
], ids=["direction", "total"])
def test_out_of_order_bounds_hold_for_both_directions_of_a_utp_flow(tmp_path: Path, side: int, bound: str,
                                                                    text: str) -> None:
    path = write_packets(tmp_path / "ooo.pcap", timed(udp_packets(waiting_haves(side), a=A, b=B)))
    _, _, (s,) = decoded(path, Limits(**{bound: 10}))
    assert found(s, "limit") == [
        ("ab"[side], 6, f"{text}; the bytes missing before them are declared lost")]


@pytest.mark.parametrize("side", [0, 1], ids=["a", "b"])
def test_out_of_order_bytes_under_the_bounds_wait_without_a_limit(tmp_path: Path, side: int) -> None:
    """The same 18 bytes with both bounds at 18: nothing passes them."""
    path = write_packets(tmp_path / "ooo.pcap", timed(udp_packets(waiting_haves(side), a=A, b=B)))
    _, _, (s,) = decoded(path, Limits(ooo=18, ooo_total=18))
    assert found(s, "limit") == []
