"""uTP (BEP 29): header checks, reassembly, and a real libtorrent-to-libtorrent capture."""
from __future__ import annotations

import hashlib
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED_CAPTURES, module_scope
from inspector import utp
from inspector.limits import Budget
from inspector.utp import (
    LOST, ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN, UtpDirection, connection_key, is_syn, parse,
)

CAPTURE = SHARED_CAPTURES / "libtorrent-utp.pcap"
TORRENT = CAPTURE.with_suffix(".torrent")
HANDSHAKE_START = b"\x13BitTorrent protocol"

# ---------------------------------------------------------------- builders


def pkt(kind: int = ST_DATA, cid: int = 0x1234, seq: int = 1, ack: int = 0, data: bytes = b"",
        exts: list[tuple[int, bytes]] | tuple = (), version: int = 1, type_ver: int | None = None) -> bytes:
    """A uTP packet; ``exts`` are (type, body) in chain order."""
    first = exts[0][0] if exts else 0
    tv = (kind << 4 | version) if type_ver is None else type_ver
    head = struct.pack(">BBHIIIHH", tv, first, cid, 123456, 789, 1 << 20, seq, ack)
    chain = b""
    for i, (_, body) in enumerate(exts):
        nxt = exts[i + 1][0] if i + 1 < len(exts) else 0
        chain += bytes((nxt, len(body))) + body
    return head + chain + data


def stream(chunks) -> list:
    """Chunks with adjacent byte chunks joined, for comparing streams."""
    out: list = []
    for c in chunks:
        if isinstance(c, int):
            out.append(c)
        elif out and isinstance(out[-1], bytes):
            out[-1] += bytes(c)
        else:
            out.append(bytes(c))
    return out


def bare(deliveries) -> list:
    """The chunks of (chunk, frame, ts) deliveries."""
    return [chunk for chunk, _frame, _ts in deliveries]


def feed(d: UtpDirection, packets) -> list:
    out: list = []
    for kind, seq, data in packets:
        out.extend(bare(d.segment(kind, seq, data)))
    return out

# ---------------------------------------------------------------- parse: valid headers


@pytest.mark.parametrize("kind", [ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN])
def test_parse_each_type(kind):
    data = b"hello" if kind in (ST_DATA, ST_FIN) else b""
    raw = pkt(kind, cid=0xBEEF, seq=0xFFFE, ack=0x8001, data=data)
    assert parse(raw) == (kind, 0xBEEF, 0xFFFE, 0x8001, data)


def test_parse_fields_are_big_endian_and_timestamps_skipped():
    raw = bytes.fromhex("01 00 12 34 ffffffff eeeeeeee dddddddd 56 78 9a bc") + b"xy"
    assert parse(raw) == (ST_DATA, 0x1234, 0x5678, 0x9ABC, b"xy")


def test_parse_memoryview_in_gives_memoryview_out_without_copy():
    raw = bytearray(pkt(ST_DATA, data=b"payload"))
    got = parse(memoryview(raw))
    assert got is not None and isinstance(got[4], memoryview)
    raw[-1] = ord("D")
    assert bytes(got[4]) == b"payloaD"


def test_parse_empty_data_packet():
    assert parse(pkt(ST_DATA, seq=7)) == (ST_DATA, 0x1234, 7, 0, b"")

# ---------------------------------------------------------------- parse: rejected headers


@pytest.mark.parametrize("version", [0, 2, 15])
def test_parse_wrong_version(version):
    assert parse(pkt(ST_DATA, data=b"x", version=version)) is None


@pytest.mark.parametrize("kind", [5, 6, 7, 12, 15])
def test_parse_bad_type(kind):
    assert parse(pkt(kind, data=b"x")) is None


@pytest.mark.parametrize("size", [0, 1, 19])
def test_parse_too_short(size):
    assert parse(pkt(ST_STATE)[:size]) is None


@pytest.mark.parametrize("kind", [ST_STATE, ST_RESET, ST_SYN])
def test_parse_payload_after_payload_free_type_rejected(kind):
    assert parse(pkt(kind)) is not None
    assert parse(pkt(kind, data=b"\x00")) is None

# ---------------------------------------------------------------- parse: extension chains


@pytest.mark.parametrize("exts", [
    [(1, b"\x00\x00\x00\x01")],  # selective ack, 32 bits
    [(1, bytes(8))],
    [(1, bytes(32))],
    [(1, bytes(23))],  # libtorrent 2.1.1 sends what its window needs, not whole words (a real capture)
    [(1, bytes(1))],
    [(2, bytes(8))],  # deprecated extension bits
    [(3, b"\x00\x00\x00\x06")],  # libtorrent close reason
    [(1, bytes(4)), (3, bytes(4))],
    [(2, bytes(8)), (1, bytes(4)), (3, bytes(4))],
])
def test_parse_extension_chain_valid(exts):
    for kind, data in ((ST_DATA, b"abc"), (ST_STATE, b"")):
        assert parse(pkt(kind, seq=9, data=data, exts=exts)) == (kind, 0x1234, 9, 0, data)


def test_parse_chain_of_max_extensions_accepted_and_one_more_rejected():
    ok = [(1, bytes(4))] * utp.MAX_EXTENSIONS
    assert parse(pkt(ST_DATA, data=b"z", exts=ok)) == (ST_DATA, 0x1234, 1, 0, b"z")
    assert parse(pkt(ST_DATA, data=b"z", exts=ok + [(1, bytes(4))])) is None


@pytest.mark.parametrize("exts", [
    [(1, b"")],  # a selective ack holds at least a byte
    [(2, bytes(4))],  # extension bits are 8 bytes
    [(3, bytes(2))],  # close reason is 4 bytes
    [(4, bytes(4))],  # unknown extension type
    [(0x64, bytes(4))],
    [(1, bytes(4)), (9, bytes(4))],  # unknown further down the chain
])
def test_parse_extension_bad_shape_rejected(exts):
    assert parse(pkt(ST_DATA, data=b"abc", exts=exts)) is None


def test_parse_extension_overrunning_packet_rejected():
    good = pkt(ST_STATE, exts=[(1, bytes(8))])
    assert parse(good) is not None
    assert parse(good[:-1]) is None  # body runs past the end
    assert parse(good[:21]) is None  # not even the 2-byte extension header
    assert parse(good[:20]) is None  # extension announced, none present
    # next-extension says "more follow" but the datagram ends
    chained = bytearray(pkt(ST_STATE, exts=[(1, bytes(4))]))
    chained[20] = 3
    assert parse(bytes(chained)) is None

# ---------------------------------------------------------------- parse: other UDP traffic


DHT_PING = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
DHT_RESPONSE = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"
DNS_QUERY = bytes.fromhex(
    "abcd 0100 0001 0000 0000 0000"  # id, recursion desired, 1 question
    "07 6578616d706c65 03 636f6d 00 0001 0001"  # example.com A IN
)
DNS_RESPONSE = bytes.fromhex(
    "1f2e 8180 0001 0001 0000 0000"
    "07 6578616d706c65 03 636f6d 00 0001 0001"
    "c00c 0001 0001 00000e10 0004 5db8d822"
)
QUIC_INITIAL = bytes.fromhex("c3 00000001 08 0123456789abcdef 00 0041") + bytes(1200)


@pytest.mark.parametrize("datagram", [DHT_PING, DHT_RESPONSE, DNS_QUERY, DNS_RESPONSE, QUIC_INITIAL])
def test_parse_rejects_other_udp_protocols(datagram):
    assert parse(datagram) is None
    assert not is_syn(datagram)


def test_parse_random_datagrams_rarely_accepted():
    rng = random.Random(29)
    trials = 200_000
    accepted = sum(parse(rng.randbytes(rng.randrange(20, 120))) is not None for _ in range(trials))
    assert accepted < trials / 5000  # measured: about one in thirty thousand


@given(st.binary(max_size=200))
def test_parse_any_bytes_gives_none_or_a_suffix(raw):
    got = parse(raw)
    if got is not None:
        kind, cid, seq, ack, data = got
        assert 0 <= kind <= 4 and raw[0] == kind << 4 | 1
        assert raw.endswith(data) and len(data) <= len(raw) - 20
        assert (cid, seq, ack) == struct.unpack_from(">H", raw, 2) + struct.unpack_from(">HH", raw, 16)


@given(
    st.sampled_from([ST_DATA, ST_FIN]),
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
    st.binary(max_size=64),
    st.lists(st.one_of(
        st.builds(lambda n: (1, bytes(4 * n)), st.integers(1, 8)),
        st.just((2, bytes(8))),
        st.just((3, bytes(4))),
    ), max_size=utp.MAX_EXTENSIONS),
)
def test_parse_roundtrip(kind, cid, seq, ack, data, exts):
    assert parse(pkt(kind, cid, seq, ack, data, exts)) == (kind, cid, seq, ack, data)

# ---------------------------------------------------------------- helpers


def test_is_syn():
    assert is_syn(pkt(ST_SYN, seq=5))
    assert is_syn(memoryview(pkt(ST_SYN, seq=5, exts=[(2, bytes(8))])))
    assert not is_syn(pkt(ST_STATE))
    assert not is_syn(pkt(ST_DATA, data=b"x"))
    assert not is_syn(pkt(ST_SYN, data=b"x"))
    assert not is_syn(pkt(ST_SYN)[:19])


def test_connection_key():
    x = 2231
    assert connection_key(ST_SYN, x, True) == x  # SYN carries the initiator's receive id
    assert connection_key(ST_DATA, x + 1, True) == x  # then the initiator sends with X + 1
    assert connection_key(ST_STATE, x + 1, True) == x
    assert connection_key(ST_FIN, x + 1, True) == x
    assert connection_key(ST_STATE, x, False) == x  # the responder sends with X
    assert connection_key(ST_DATA, x, False) == x
    assert connection_key(ST_DATA, 0, True) == 0xFFFF  # wraps
    assert connection_key(ST_SYN, 0xFFFF, True) == 0xFFFF

# ---------------------------------------------------------------- reassembly


def test_in_order():
    d = UtpDirection()
    assert bare(d.segment(ST_SYN, 100, b"")) == []
    assert d.next_seq == 101
    assert bare(d.segment(ST_DATA, 101, b"ab")) == [b"ab"]
    assert bare(d.segment(ST_STATE, 101, b"")) == []  # acks consume nothing
    assert bare(d.segment(ST_DATA, 102, b"cd")) == [b"cd"]
    assert bare(d.segment(ST_DATA, 103, b"")) == []  # empty data packet still consumes its seq_nr
    assert bare(d.segment(ST_DATA, 104, b"e")) == [b"e"]
    assert (d.offset, d.packets, d.next_seq) == (5, 4, 105)
    assert (d.retransmissions, d.holes, d.out_of_order, d.lost_packets) == (0, 0, 0, 0)
    assert not d.finished
    assert d.flush() == []


def test_syn_method_and_late_syn_ignored():
    d = UtpDirection()
    d.syn(7)
    d.syn(500)  # a retransmitted or stray SYN does not move the start
    assert bare(d.segment(ST_DATA, 8, b"x")) == [b"x"]


def test_accept_anchors_responder_at_state_seq():
    d = UtpDirection()
    d.accept(57077)  # responder's ST_STATE answering the SYN
    assert bare(d.segment(ST_DATA, 57078, b"second")) == []  # captured out of order
    assert stream(bare(d.segment(ST_DATA, 57077, b"first"))) == [b"firstsecond"]
    assert d.out_of_order == 1
    d.accept(1)  # no effect once started
    assert d.next_seq == 57079


def test_out_of_order():
    d = UtpDirection()
    d.syn(0)
    assert bare(d.segment(ST_DATA, 3, b"C")) == []
    assert bare(d.segment(ST_DATA, 2, b"B")) == []
    assert d.pending_bytes == 2 and len(d.pending) == 2
    assert bare(d.segment(ST_DATA, 1, b"A")) == [b"A", b"B", b"C"]
    assert bare(d.segment(ST_DATA, 5, b"E")) == []
    assert bare(d.segment(ST_DATA, 4, b"D")) == [b"D", b"E"]
    assert (d.offset, d.out_of_order, d.pending_bytes, d.pending) == (5, 3, 0, {})
    assert d.holes == 0 and d.flush() == []


def test_duplicates_dropped_and_counted():
    d = UtpDirection()
    d.syn(10)
    out = feed(d, [
        (ST_DATA, 11, b"a"),
        (ST_DATA, 11, b"a"),  # retransmission of a delivered packet
        (ST_DATA, 13, b"c"),
        (ST_DATA, 13, b"X"),  # retransmission of a buffered packet: first copy wins
        (ST_DATA, 12, b"b"),
        (ST_DATA, 12, b"b"),
        (ST_DATA, 11, b"a"),
    ])
    assert stream(out) == [b"abc"]
    assert d.retransmissions == 4 and d.holes == 0 and d.packets == 3


def test_wraparound_past_65535():
    d = UtpDirection()
    d.syn(65533)
    assert d.next_seq == 65534
    out = feed(d, [
        (ST_DATA, 65534, b"0"),
        (ST_DATA, 1, b"3"),  # ahead, across the wrap
        (ST_DATA, 65535, b"1"),
        (ST_DATA, 0, b"2"),
        (ST_DATA, 65535, b"1"),  # old: behind the wrap, a retransmission
        (ST_DATA, 2, b"4"),
    ])
    assert stream(out) == [b"01234"]
    assert (d.next_seq, d.index, d.retransmissions, d.out_of_order) == (3, 5, 1, 1)


def test_syn_at_65535_wraps_to_zero():
    d = UtpDirection()
    d.segment(ST_SYN, 0xFFFF)
    assert bare(d.segment(ST_DATA, 0, b"x")) == [b"x"]


def test_midstream_start():
    d = UtpDirection()
    assert bare(d.segment(ST_STATE, 990, b"")) == []  # a STATE alone starts nothing
    assert d.next_seq is None
    assert bare(d.segment(ST_DATA, 1000, b"mid")) == [b"mid"]
    assert d.next_seq == 1001
    assert bare(d.segment(ST_DATA, 999, b"old")) == []  # before the capture's start: dropped
    assert d.retransmissions == 1
    assert bare(d.segment(ST_DATA, 1001, b"dle")) == [b"dle"]
    assert d.offset == 6


def test_lost_packets_become_one_minus_one_chunk_on_flush():
    d = UtpDirection()
    d.syn(0)
    out = feed(d, [(ST_DATA, 1, b"a"), (ST_DATA, 4, b"d"), (ST_DATA, 5, b"e"), (ST_DATA, 8, b"h")])
    assert out == [b"a"]
    out = bare(d.flush())
    assert stream(out) == [LOST, b"de", LOST, b"h"]
    assert (d.holes, d.lost_packets, d.packets, d.offset) == (2, 4, 4, 4)
    assert d.next_seq == 9 and d.pending == {} and d.pending_bytes == 0
    # a late copy of a packet given up on is a retransmission, never re-inserted
    assert bare(d.segment(ST_DATA, 2, b"b")) == []
    assert d.retransmissions == 1
    assert bare(d.segment(ST_DATA, 9, b"i")) == [b"i"]


def test_byte_bound_exceeded_gives_minus_one_and_resumes():
    d = UtpDirection(max_pending=10)
    d.syn(0)
    assert bare(d.segment(ST_DATA, 1, b"a")) == [b"a"]
    assert bare(d.segment(ST_DATA, 3, b"cccc")) == []
    assert bare(d.segment(ST_DATA, 4, b"dddd")) == []
    out = bare(d.segment(ST_DATA, 5, b"eee"))  # 11 bytes waiting > 10
    assert stream(out) == [LOST, b"ccccddddeee"]
    assert (d.holes, d.lost_packets, d.pending_bytes) == (1, 1, 0)
    assert bare(d.segment(ST_DATA, 6, b"f")) == [b"f"]  # delivery resumed
    assert bare(d.segment(ST_DATA, 2, b"b")) == []  # the lost one, too late
    assert d.retransmissions == 1 and d.offset == 13


def test_packet_count_bound_exceeded_gives_minus_one_and_resumes():
    d = UtpDirection(max_pending_packets=3)
    d.syn(100)
    assert feed(d, [(ST_DATA, 103, b"c"), (ST_DATA, 104, b""), (ST_DATA, 105, b"e")]) == []
    out = bare(d.segment(ST_DATA, 107, b"g"))
    assert stream(out) == [LOST, b"ce", LOST, b"g"]
    assert (d.holes, d.lost_packets, d.next_seq) == (2, 3, 108)
    assert bare(d.segment(ST_DATA, 108, b"h")) == [b"h"]


# A loss is declared at the packet (or ack, or end of capture) that revealed it: its
# frame and time are the ones a user is pointed to; buffered packets keep their own.


def test_losses_carry_the_frame_that_revealed_them_and_buffered_packets_their_own():
    d = UtpDirection()
    d.syn(0)
    assert d.ack(2) == []  # nothing waits: remembered
    assert d.segment(ST_DATA, 5, b"e", frame=4, ts=0.4) == [(LOST, 4, 0.4)]  # 1 and 2 acked, never seen
    assert d.segment(ST_DATA, 7, b"g", frame=6, ts=0.6) == ()
    assert d.flush(frame=9, ts=0.9) == [(LOST, 9, 0.9), (b"e", 4, 0.4), (LOST, 9, 0.9), (b"g", 6, 0.6)]
    assert (d.holes, d.lost_packets, d.index, d.next_seq) == (3, 5, 7, 8)  # 1, 2; 3, 4; 6


def test_without_a_frame_and_time_deliveries_carry_frame_zero_at_time_zero():
    d = UtpDirection()
    d.syn(0)
    assert d.segment(ST_DATA, 1, b"a") == ((b"a", 0, 0.0),)
    d.segment(ST_DATA, 3, b"c")
    assert d.flush() == [(LOST, 0, 0.0), (b"c", 0, 0.0)]
    fin = UtpDirection()
    fin.syn(0)
    assert fin.segment(ST_FIN, 1) == () and fin.offset == 0 and fin.finished  # no data given: none delivered


def test_a_buffered_packet_cut_by_the_snap_length_keeps_its_hole_when_released():
    d = UtpDirection()
    d.syn(0)
    assert d.segment(ST_DATA, 2, b"bb", frame=2, cut=5) == ()
    assert d.segment(ST_DATA, 1, b"a", frame=1) == [(b"a", 1, 0.0), (b"bb", 2, 0.0), (5, 2, 0.0)]
    assert d.offset == 3  # the cut bytes are a hole, not delivered data
    assert d.flush() == [] and d.holes == 0


def test_flush_declares_only_the_gaps_before_buffered_packets():
    d = UtpDirection()
    d.syn(0)
    d.segment(ST_DATA, 3, b"c")
    assert bare(d.flush()) == [LOST, b"c"]
    assert (d.lost_packets, d.holes, d.index, d.next_seq) == (2, 1, 3, 4)
    assert d.flush() == []


def test_an_empty_packet_delivers_no_empty_chunk():
    d = UtpDirection()
    d.syn(0)
    d.segment(ST_DATA, 3, b"c", frame=3)
    d.segment(ST_DATA, 1, b"a", frame=1)
    assert d.segment(ST_DATA, 2, b"", frame=2) == [(b"c", 3, 0.0)]
    assert d.index == 3 and d.packets == 3


@pytest.mark.parametrize("extra, flushed", [(b"", False), (b"x", True)])
def test_byte_bound_is_exceeded_only_past_it(extra, flushed):
    d = UtpDirection(max_pending=5)
    d.syn(0)
    d.segment(ST_DATA, 3, b"ccc")
    out = d.segment(ST_DATA, 5, b"ee" + extra, frame=8, ts=0.8)  # 5 bytes waiting: at the bound
    if flushed:
        assert out == [(LOST, 8, 0.8), (b"ccc", 0, 0.0), (LOST, 8, 0.8), (b"eex", 8, 0.8)]
        assert d.limit_hit == "ooo" and d.pending_bytes == 0
    else:
        assert out == () and d.limit_hit is None and d.pending_bytes == 5


@pytest.mark.parametrize("extra, flushed", [(b"", False), (b"x", True)])
def test_shared_budget_is_exceeded_only_past_it(extra, flushed):
    budget = Budget(5)
    d = UtpDirection(budget=budget)
    d.syn(0)
    d.segment(ST_DATA, 3, b"ccc")
    out = d.segment(ST_DATA, 5, b"ee" + extra, frame=8, ts=0.8)
    if flushed:
        assert out == [(LOST, 8, 0.8), (b"ccc", 0, 0.0), (LOST, 8, 0.8), (b"eex", 8, 0.8)]
        assert d.limit_hit == "ooo_total" and budget.used == 0
    else:
        assert out == () and d.limit_hit is None and budget.used == 5


def test_seen_is_just_past_the_highest_packet_captured():
    d = UtpDirection()
    d.syn(0)
    assert d.seen == 0
    d.segment(ST_DATA, 3, b"c")  # index 2
    assert d.seen == 3
    d.segment(ST_DATA, 4, b"d")  # index 3, right after the highest
    assert d.seen == 4
    d.segment(ST_DATA, 2, b"b")  # below it
    assert d.seen == 4


@pytest.mark.parametrize("ack_nr, believed", [(4, True), (5, False)])
def test_before_any_packet_an_ack_is_believed_up_to_the_buffer_bound(ack_nr, believed):
    d = UtpDirection(max_pending_packets=4)
    d.syn(0)
    assert d.ack(ack_nr) == []
    assert d.acked == (ack_nr if believed else 0)


def test_fin_in_order():
    d = UtpDirection()
    d.syn(5)
    feed(d, [(ST_DATA, 6, b"a"), (ST_DATA, 7, b"b")])
    assert not d.finished
    assert bare(d.segment(ST_FIN, 8, b"")) == []
    assert d.finished and d.fin_index == 2 and d.packets == 3


def test_fin_before_missing_data_finishes_only_when_filled():
    d = UtpDirection()
    d.syn(65534)
    assert feed(d, [(ST_DATA, 65535, b"a"), (ST_FIN, 1, b""), (ST_STATE, 1, b"")]) == [b"a"]
    assert not d.finished
    assert bare(d.segment(ST_DATA, 0, b"b")) == [b"b"]
    assert d.finished
    assert bare(d.segment(ST_FIN, 1, b"")) == []  # retransmitted FIN
    assert d.finished and d.retransmissions == 1


def test_fin_with_data_and_after_a_hole():
    d = UtpDirection()
    d.syn(0)
    feed(d, [(ST_DATA, 1, b"a"), (ST_FIN, 3, b"end")])
    assert not d.finished
    assert stream(bare(d.flush())) == [LOST, b"end"]
    assert d.finished and d.offset == 4


def test_fin_behind_delivered_data_is_a_retransmission_not_an_end():
    d = UtpDirection()
    feed(d, [(ST_DATA, 1000, b"a"), (ST_DATA, 1001, b"b")])
    assert bare(d.segment(ST_FIN, 1000, b"")) == []
    assert not d.finished and d.fin_index is None and d.retransmissions == 1


def test_reset_ignored():
    d = UtpDirection()
    d.syn(0)
    assert bare(d.segment(ST_RESET, 1, b"")) == []
    assert bare(d.segment(ST_DATA, 1, b"x")) == [b"x"]


@settings(max_examples=200)
@given(
    st.integers(0, 0xFFFF),
    st.lists(st.binary(max_size=20), min_size=1, max_size=60),
    st.randoms(use_true_random=False),
    st.integers(0, 60),
)
def test_any_arrival_order_with_duplicates_reassembles(start, payloads, rnd, dup_count):
    arrivals = [(i, p) for i, p in enumerate(payloads)]
    arrivals += [rnd.choice(arrivals) for _ in range(dup_count)]
    rnd.shuffle(arrivals)
    d = UtpDirection()
    d.syn(start)
    out = []
    for i, p in arrivals:
        out.extend(bare(d.segment(ST_DATA, (start + 1 + i) & 0xFFFF, p)))
    assert d.flush() == []
    assert b"".join(out) == b"".join(payloads)
    assert d.holes == 0 and d.packets == len(payloads)
    assert d.retransmissions == dup_count


@settings(max_examples=200)
@given(
    st.integers(0, 0xFFFF),
    st.lists(st.tuples(st.binary(min_size=1, max_size=8), st.booleans()), min_size=1, max_size=60),
    st.randoms(use_true_random=False),
)
def test_any_losses_become_minus_one_per_run(start, packets, rnd):
    """Kept packets arrive in any order; after flush the stream is the original with each
    run of lost packets replaced by one -1."""
    kept = [(i, p) for i, (p, keep) in enumerate(packets) if keep]
    rnd.shuffle(kept)
    d = UtpDirection()
    d.syn(start)
    out = []
    for i, p in kept:
        out.extend(bare(d.segment(ST_DATA, (start + 1 + i) & 0xFFFF, p)))
    out.extend(bare(d.flush()))
    expected, lost_runs = [], 0
    last_kept = max((i for i, (_, keep) in enumerate(packets) if keep), default=-1)
    for i, (p, keep) in enumerate(packets[:last_kept + 1]):
        if keep:
            expected.append(p)
        elif not expected or expected[-1] != LOST:
            expected.append(LOST)
            lost_runs += 1
    assert stream(out) == stream(expected)
    assert d.holes == lost_runs
    assert d.lost_packets == sum(1 for p, keep in packets[:last_kept + 1] if not keep)

def test_each_packet_keeps_its_frame():
    d = UtpDirection()
    d.syn(0)
    assert d.segment(ST_DATA, 2, b"B", frame=2, ts=0.2) == ()
    assert d.segment(ST_DATA, 1, b"A", frame=3, ts=0.3) == [(b"A", 3, 0.3), (b"B", 2, 0.2)]


def test_ack_nr_beyond_missing_packets_loses_them_at_once():
    d = UtpDirection()
    d.syn(10)
    d.segment(ST_DATA, 11, b"a", frame=1)
    d.segment(ST_DATA, 14, b"d", frame=2)  # 12 and 13 missing
    assert d.ack(11, frame=3) == []  # acknowledges what was delivered
    assert d.ack(14, frame=4, ts=0.4) == [(LOST, 4, 0.4), (b"d", 2, 0.0)]
    assert (d.holes, d.lost_packets, d.next_seq, d.acked) == (1, 2, 15, 4) and not d.pending
    assert bare(d.segment(ST_DATA, 12, b"b")) == []  # too late: a retransmission
    assert d.retransmissions == 1


def test_ack_nr_short_of_the_buffered_packets_loses_only_what_it_covers():
    d = UtpDirection()
    d.syn(0)
    d.segment(ST_DATA, 5, b"e")  # 1..4 missing
    assert bare(d.ack(2)) == [LOST]  # 1 and 2 received by the peer, never captured
    assert d.lost_packets == 2 and d.next_seq == 3
    assert stream(feed(d, [(ST_DATA, 4, b"d"), (ST_DATA, 3, b"c")])) == [b"cde"]


def test_ack_nr_with_nothing_buffered_is_remembered_then_used():
    d = UtpDirection()
    d.syn(0)
    d.segment(ST_DATA, 1, b"a")
    assert d.ack(3) == [] and d.holes == 0  # 2 and 3 may be in flight; nothing waits after them
    assert bare(d.segment(ST_DATA, 4, b"d", frame=7)) == [LOST, b"d"]
    assert d.lost_packets == 2


def test_stale_and_absurd_ack_nrs_are_ignored():
    d = UtpDirection(max_pending_packets=10)
    assert d.ack(5) == []  # start unknown
    d.syn(0)
    d.segment(ST_DATA, 1, b"a")
    d.segment(ST_DATA, 3, b"c")
    assert d.ack(0) == [] and d.ack(0x8000) == []  # behind; half the space ahead
    assert d.ack(3 + 11) == [] and d.acked == 0  # beyond what was seen plus the bound
    assert bare(d.ack(3)) == [LOST, b"c"]


@pytest.mark.parametrize("ack_nr, believed", [(7, True), (8, False)])
def test_ack_nr_is_believed_up_to_the_packets_seen_plus_the_buffer_bound(ack_nr, believed):
    """seen is 3 (packet 3 captured) and the bound 4 packets: an ack of 7 could be true
    of packets the capture missed, an ack of 8 could not."""
    d = UtpDirection(max_pending_packets=4)
    d.syn(0)
    d.segment(ST_DATA, 3, b"c")
    if believed:
        # without a frame and time, deliveries carry frame 0 at time 0
        assert d.ack(ack_nr) == [(LOST, 0, 0.0), (b"c", 0, 0.0)] and d.acked == ack_nr
    else:
        assert d.ack(ack_nr) == [] and d.acked == 0 and d.pending


def test_ack_nr_across_the_wrap():
    d = UtpDirection()
    d.syn(0xFFFD)
    d.segment(ST_DATA, 0xFFFE, b"a")
    d.segment(ST_DATA, 1, b"c")  # 0xFFFF and 0 missing
    assert bare(d.ack(0)) == [LOST, b"c"]
    assert d.lost_packets == 2 and d.next_seq == 2


@settings(max_examples=200)
@given(
    st.integers(0, 0xFFFF),
    st.lists(st.tuples(st.binary(min_size=1, max_size=8), st.booleans()), min_size=1, max_size=60),
    st.lists(st.integers(0, 0xFFFF), max_size=10),
    st.randoms(use_true_random=False),
)
def test_acks_and_losses_never_misplace_a_packet(start, packets, acks, rnd):
    """Kept packets in any order, acks anywhere (some absurd): packets come out in
    order, each exactly once, and one is skipped only where a LOST chunk says so."""
    payloads = [bytes([i]) + p for i, (p, _) in enumerate(packets)]  # first byte: its index
    events = [("data", i) for i, (_, keep) in enumerate(packets) if keep] + [("ack", a) for a in acks]
    rnd.shuffle(events)
    d = UtpDirection(max_pending_packets=8)
    d.syn(start)
    out = []
    for kind, n in events:
        out += d.segment(ST_DATA, (start + 1 + n) & 0xFFFF, payloads[n]) if kind == "data" else d.ack(n)
    out += d.flush()
    position, after_loss = 0, False
    for chunk, _, _ in out:
        if chunk == LOST:
            after_loss = True
            continue
        index = chunk[0]
        assert bytes(chunk) == payloads[index] and packets[index][1]
        assert index > position if after_loss else index == position
        position, after_loss = index + 1, False
    assert not d.pending and d.pending_bytes == 0

# ---------------------------------------------------------------- the real capture


def udp_payloads(path: Path):
    """(src, sport, dst, dport, payload) for each IPv4/UDP frame of an Ethernet pcap."""
    from scapy.utils import RawPcapReader

    with RawPcapReader(str(path)) as reader:
        assert reader.linktype == 1
        for data, _meta in reader:
            assert struct.unpack_from(">H", data, 12)[0] == 0x0800
            ihl = (data[14] & 0x0F) * 4
            assert data[14 + 9] == 17  # UDP
            src, dst = data[26:30], data[30:34]
            sport, dport, length = struct.unpack_from(">HHH", data, 14 + ihl)
            start = 14 + ihl + 8
            yield src, sport, dst, dport, data[start:start + length - 8]


def reassemble_capture():
    """Per connection key X: {sender port: (direction, chunks)}, plus frame count."""
    conns: dict = {}
    initiators: dict = {}  # (initiator port, X) known from SYNs
    frames = 0
    for src, sport, dst, dport, payload in udp_payloads(CAPTURE):
        frames += 1
        got = parse(payload)
        assert got is not None, f"frame {frames} not accepted as uTP"
        kind, cid, seq, ack, data = got
        if kind == ST_SYN:
            initiators[(sport, cid)] = True
        sender_is_initiator = kind == ST_SYN or (sport, (cid - 1) & 0xFFFF) in initiators
        x = connection_key(kind, cid, sender_is_initiator)
        conn = conns.setdefault(x, {})
        side = conn.setdefault(sport, (UtpDirection(), []))
        d, chunks = side
        if not sender_is_initiator and kind == ST_STATE and d.next_seq is None:
            d.accept(seq)
        chunks.extend(bare(d.segment(kind, seq, data)))
    for conn in conns.values():
        for d, chunks in conn.values():
            chunks.extend(bare(d.flush()))
    return conns, frames


def tshark_stream_bytes() -> dict[int, int]:
    """Payload bytes per sender port, as Wireshark's own uTP dissector counts them."""
    result = subprocess.run(
        ["tshark", "-r", str(CAPTURE), "--enable-heuristic", "bt_utp_udp", "-T", "fields",
         "-e", "udp.srcport", "-e", "bt-utp.type", "-e", "bt-utp.seq_nr", "-e", "bt-utp.len"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    seen: dict[tuple[int, int], int] = {}
    for line in result.stdout.splitlines():
        port, kind, seq, length = line.split("\t")
        if kind in ("0", "1"):  # data and fin; a retransmitted seq_nr counts once
            seen.setdefault((int(port), int(seq)), int(length or 0))
    totals: dict[int, int] = {}
    for (port, _), length in seen.items():
        totals[port] = totals.get(port, 0) + length
    return totals


def peer_wire_messages(data: bytes):
    """Walk a stream: the 68-byte handshake, then length-prefixed messages to the very end."""
    assert data[:20] == HANDSHAKE_START
    pos = 68
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        assert pos + 4 + length <= len(data), "message runs past the reassembled stream"
        yield data[pos + 4:pos + 4 + length]
        pos += 4 + length
    assert pos == len(data)


@pytest.fixture(scope=module_scope)
def capture():
    if not CAPTURE.exists():
        pytest.skip("sample capture not available")
    return reassemble_capture()


def test_capture_every_frame_is_utp_and_one_connection(capture):
    conns, frames = capture
    assert frames == 1188
    assert list(conns) == [2231]
    assert sorted(conns[2231]) == [6881, 51413]


def test_capture_streams_start_with_handshake_and_finish_clean(capture):
    conns, _ = capture
    for port, (d, chunks) in conns[2231].items():
        assert all(not isinstance(c, int) for c in chunks), port
        data = b"".join(bytes(c) for c in chunks)
        assert data.startswith(HANDSHAKE_START), port
        assert d.finished, port  # both sides sent ST_FIN (6881's with a close-reason extension)
        assert d.holes == 0 and d.lost_packets == 0


def test_capture_byte_totals(capture):
    conns, _ = capture
    ours = {port: d.offset for port, (d, _) in conns[2231].items()}
    for port, (d, chunks) in conns[2231].items():
        assert sum(len(c) for c in chunks) == d.offset
    # as counted by Wireshark 4.0's bt-utp dissector (distinct seq_nr, sum of bt-utp.len)
    assert ours == {6881: 1504, 51413: 1049738}
    if shutil.which("tshark"):
        assert ours == tshark_stream_bytes()


def test_capture_seeder_stream_carries_every_piece(capture):
    """The seeder's reassembled bytes frame into whole peer-wire messages and its
    piece blocks hash to the .torrent's piece hashes: no byte lost, duplicated or moved."""
    fastbencode = pytest.importorskip("fastbencode")
    conns, _ = capture
    d, chunks = conns[2231][51413]
    data = b"".join(bytes(c) for c in chunks)
    info = fastbencode.bdecode(TORRENT.read_bytes())[b"info"]
    piece_len, hashes = info[b"piece length"], info[b"pieces"]
    count = len(hashes) // 20
    pieces = [bytearray(piece_len) for _ in range(count)]
    filled = [0] * count
    for body in peer_wire_messages(data):
        if body[:1] == b"\x07":
            index, begin = struct.unpack_from(">II", body, 1)
            block = body[9:]
            pieces[index][begin:begin + len(block)] = block
            filled[index] += len(block)
    assert filled == [piece_len] * count
    for i, piece in enumerate(pieces):
        assert hashlib.sha1(piece).digest() == hashes[20 * i:20 * i + 20], i
    # the downloader's side frames cleanly too
    down = b"".join(bytes(c) for c in conns[2231][6881][1])
    assert sum(1 for _ in peer_wire_messages(down)) > 0
