"""uTP sequence numbers at the half-range boundary and across the wrap (issue 12, item 5).

BEP 29's seq_nr and ack_nr are 16 bits and compared modulo 2**16: a packet up to
0x7FFF ahead of the next expected one is ahead (it waits for the packets before it);
one 0x8000 or more "ahead" is really behind (a retransmission of something already
delivered or given up on). An ack_nr acknowledges every packet up to it, so the first
packet it leaves unacknowledged, ack_nr + 1, is compared with the next expected one
by the same rule. The expectations here are written from that rule, at exactly
0x7FFF, 0x8000 and 0x8001, from several starting points, wrap included.
"""
from __future__ import annotations

import pytest

from inspector.utp import LOST, ST_DATA, ST_FIN, UtpDirection

MOD = 1 << 16
STARTS = [0x0000, 0x1234, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]
AHEAD, BEHIND = "ahead", "behind"
# delta from next_seq -> what a packet there is, by BEP 29's comparison modulo 2**16
RULE = {1: AHEAD, 0x7FFE: AHEAD, 0x7FFF: AHEAD, 0x8000: BEHIND, 0x8001: BEHIND, 0xFFFF: BEHIND}


def direction(next_seq: int) -> UtpDirection:
    d = UtpDirection()
    d.syn((next_seq - 1) % MOD)  # the SYN consumes one: its next packet is next_seq
    assert d.next_seq == next_seq
    return d


def chunks(out) -> list:
    return [bytes(chunk) if not isinstance(chunk, int) else chunk for chunk, _frame, _ts in out]


@pytest.mark.parametrize("start", STARTS, ids=hex)
@pytest.mark.parametrize("delta", sorted(RULE), ids=hex)
def test_segment_ahead_or_behind(start, delta):
    d = direction(start)
    seq = (start + delta) % MOD
    assert chunks(d.segment(ST_DATA, seq, b"x", frame=5)) == []  # not the next packet: nothing yet
    if RULE[delta] == AHEAD:
        assert (d.out_of_order, d.retransmissions, len(d.pending)) == (1, 0, 1)
        # At the end, the delta packets before it are lost, and it is delivered after them.
        assert chunks(d.flush(frame=9)) == [LOST, b"x"]
        assert d.lost_packets == delta and d.next_seq == (seq + 1) % MOD
    else:
        assert (d.out_of_order, d.retransmissions, len(d.pending)) == (0, 1, 0)
        assert chunks(d.flush(frame=9)) == [] and d.next_seq == start
    # Either way, the next expected packet is still taken as it comes (or comes after the flush).
    nxt = d.next_seq
    assert chunks(d.segment(ST_DATA, nxt, b"n")) == [b"n"]


@pytest.mark.parametrize("start", STARTS, ids=hex)
@pytest.mark.parametrize("delta", sorted(RULE), ids=hex)
def test_fin_ahead_or_behind(start, delta):
    """A FIN ends the stream only where it is ahead; one behind is an old copy."""
    d = direction(start)
    d.segment(ST_FIN, (start + delta) % MOD, frame=5)
    assert (d.fin_index is not None) == (RULE[delta] == AHEAD)
    if RULE[delta] == AHEAD:
        assert d.fin_index == delta


@pytest.mark.parametrize("start", STARTS, ids=hex)
@pytest.mark.parametrize("delta", [0x7FFF, 0x8000, 0x8001], ids=hex)
def test_ack_ahead_or_behind(start, delta):
    """ack_nr = next_seq + delta - 1: it leaves next_seq + delta first unacknowledged.

    A packet waits 0x7FFE ahead (so even a 0x8000 ack is within what was seen plus the
    buffer bound, and only the modular comparison can tell it from an ahead one)."""
    d = direction(start)
    waiting = (start + 0x7FFE) % MOD
    d.segment(ST_DATA, waiting, b"w", frame=5)
    assert len(d.pending) == 1
    out = chunks(d.ack((start + delta - 1) % MOD, frame=7))
    if RULE[delta] == AHEAD:
        # Everything before the waiting packet was received by the peer: lost by the capture.
        assert out == [LOST, b"w"] and d.lost_packets == 0x7FFE
        assert d.next_seq == (waiting + 1) % MOD
    else:
        assert out == [] and d.acked == 0 and len(d.pending) == 1 and d.lost_packets == 0


@pytest.mark.parametrize("start", STARTS, ids=hex)
def test_acks_just_past_next_seq(start):
    """Deltas 0, 1, 2 (no wrap trouble at the small end either)."""
    d = direction(start)
    d.segment(ST_DATA, (start + 2) % MOD, b"w")
    assert chunks(d.ack((start - 1) % MOD)) == []  # acknowledges nothing new
    assert chunks(d.ack(start)) == [LOST] and d.lost_packets == 1  # start received, not captured
    assert chunks(d.ack((start + 1) % MOD)) == [LOST, b"w"] and d.lost_packets == 2


def test_wrap_from_ffff_to_zero():
    d = direction(0xFFFE)
    assert chunks(d.segment(ST_DATA, 0xFFFE, b"a")) == [b"a"]
    assert chunks(d.segment(ST_DATA, 0xFFFF, b"b")) == [b"b"]
    assert d.next_seq == 0
    assert chunks(d.segment(ST_DATA, 0, b"c")) == [b"c"]
    assert chunks(d.segment(ST_DATA, 0xFFFF, b"B")) == [] and d.retransmissions == 1  # 0x8000+ behind: old
    assert chunks(d.segment(ST_DATA, 0x8000, b"e")) == [] and d.out_of_order == 1  # 0x7FFF ahead of 1
    assert chunks(d.segment(ST_DATA, 0x8001, b"f")) == [] and d.retransmissions == 2  # 0x8000 from 1: behind
    assert chunks(d.segment(ST_DATA, 1, b"d")) == [b"d"]
    assert chunks(d.ack(0x7FFF)) == [LOST, b"e"]  # leaves 0x8000 first unacknowledged: 0x7FFE ahead of 2
    assert d.next_seq == 0x8001 and d.index == 4 + 0x7FFE + 1
