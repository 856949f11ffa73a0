"""TcpDirection.segment at its edges: a segment or FIN exactly half the sequence space
away, segments overlapping delivered bytes (what is counted, which frame the new bytes
keep, the part cut by the snap length), the ACK bound before and after buffered bytes,
and the out-of-order bounds (shared budget and per direction) with the frame and time
their holes are declared at.

Why: a mutation run left these unpinned in ``TcpDirection.segment`` (``>=`` for ``>`` at
2**31, ``overlaps = 1`` for ``+= 1``, the cut or the frame dropped on the overlap path,
the budget's accounting and its ``>``, the time of a given-up hole replaced by None).
Expected values come from the stream offsets worked out by hand in each test: the
first byte after ``syn(isn)`` is at sequence ``isn + 1`` and stream offset 0, and
sequence numbers compare modulo 2**32 (RFC 793 section 3.3), so a distance of 2**31 or
more is read as behind.
"""
from __future__ import annotations

from typing import Any

from inspector.limits import Budget
from inspector.tcp import TcpDirection

WRAP = 1 << 32
HALF = 1 << 31


def opened(isn: int = 0, **kw: Any) -> TcpDirection:
    d = TcpDirection(**kw)
    d.syn(isn)
    return d


def triples(deliveries) -> list[tuple[bytes | int, int, float]]:
    """(chunk, frame, ts) with byte chunks as bytes and empty ones left out (they carry nothing)."""
    return [(c if isinstance(c, int) else bytes(c), f, t) for c, f, t in deliveries if isinstance(c, int) or len(c)]


# ---------------------------------------------------------------- half the sequence space


def test_a_segment_exactly_half_the_sequence_space_away_is_read_as_behind() -> None:
    """Offsets 0..3 delivered, next byte at sequence 4. A segment at 4 + 2**31 is as far
    behind as ahead; like an ACK there, it is read as behind: an old copy, dropped and
    counted, not 2 GiB of stream to wait for."""
    d = opened(0)
    d.segment(1, b"abc", frame=1, ts=1.0)
    assert d.segment((4 + HALF) & 0xFFFFFFFF, b"xyz", frame=2, ts=2.0) == ()
    assert (d.retransmissions, d.pending_bytes, d.offset) == (1, 0, 3)
    assert d.flush(frame=3, ts=3.0) == []  # nothing waits: no hole of 2**31 bytes


def test_a_segment_just_under_half_the_sequence_space_away_waits_ahead() -> None:
    d = opened(0)
    d.segment(1, b"abc", frame=1, ts=1.0)
    assert d.segment(4 + HALF - 1, b"xyz", frame=2, ts=2.0) == ()
    assert (d.retransmissions, d.pending_bytes) == (0, 3)
    assert triples(d.flush(frame=3, ts=3.0)) == [(HALF - 1, 3, 3.0), (b"xyz", 2, 2.0)]


def test_a_fin_exactly_half_the_sequence_space_away_is_behind_so_no_bytes_are_owed_before_it() -> None:
    """A bare FIN at 4 + 2**31 is read as behind, like any segment there: the stream
    already reached past it, so it cannot end it (it is let go) and flush declares
    nothing missing."""
    d = opened(0)
    d.segment(1, b"abc")
    assert d.segment((4 + HALF) & 0xFFFFFFFF, b"", fin=True) == ()
    assert d.fin_offset is None and not d.finished
    assert d.flush(frame=5, ts=5.0) == [] and d.holes == 0


def test_a_fin_just_under_half_the_sequence_space_ahead_owes_the_bytes_before_it() -> None:
    d = opened(0)
    d.segment(1, b"abc")
    assert d.segment(4 + HALF - 1, b"", fin=True) == ()
    assert not d.finished
    assert d.flush(frame=5, ts=5.0) == [(HALF - 1, 5, 5.0)]  # offsets 3 .. 3 + 2**31 - 1
    assert d.finished


# ---------------------------------------------------------------- overlaps with delivered bytes


def test_each_segment_overlapping_delivered_bytes_counts_as_an_overlap() -> None:
    d = opened(0)
    d.segment(1, b"abcd")  # offsets 0..4
    assert triples(d.segment(3, b"cdef")) == [(b"ef", 0, 0.0)]  # 2..6: 'cd' again
    assert triples(d.segment(5, b"efgh")) == [(b"gh", 0, 0.0)]  # 4..8: 'ef' again
    assert (d.overlaps, d.retransmissions, d.offset) == (2, 0, 8)


def test_the_new_bytes_of_a_segment_overlapping_delivered_ones_keep_its_frame_and_time() -> None:
    d = opened(0)
    assert triples(d.segment(1, b"abc", frame=1, ts=0.5)) == [(b"abc", 1, 0.5)]
    assert triples(d.segment(2, b"bcde", frame=2, ts=1.25)) == [(b"de", 2, 1.25)]  # offsets 1..5


def test_an_overlapping_segment_whose_captured_bytes_are_all_old_leaves_its_cut_as_a_hole() -> None:
    """Offsets 0..5 delivered; a segment at offset 1 of 1 captured byte and 4 cut by the
    snap length covers 1..6: its captured byte and 3 cut ones are old, the 2 cut ones
    at 4..6 are new and were not captured."""
    d = opened(0)
    d.segment(1, b"abcd", frame=1, ts=1.0)
    assert triples(d.segment(2, b"b", cut=4, frame=2, ts=2.0)) == [(2, 2, 2.0)]
    assert (d.holes, d.hole_bytes, d.offset, d.next_seq, d.overlaps) == (1, 2, 6, 7, 1)


def test_an_overlapping_segment_with_new_captured_bytes_keeps_its_cut_as_a_hole() -> None:
    """Offsets 0..4 delivered; a segment at offset 2 of 4 captured bytes and 2 cut covers
    2..8: 'ef' (4..6) are new, then the 2 cut bytes (6..8) are a hole."""
    d = opened(0)
    d.segment(1, b"abcd", frame=1, ts=1.0)
    assert triples(d.segment(3, b"cdef", cut=2, frame=2, ts=2.0)) == [(b"ef", 2, 2.0), (2, 2, 2.0)]
    assert (d.holes, d.hole_bytes, d.offset, d.next_seq) == (1, 2, 8, 9)


# ---------------------------------------------------------------- the ACK bound


def test_an_ack_past_the_bound_before_any_byte_was_seen_is_not_remembered() -> None:
    """Nothing seen yet (offset 0): an ACK for offset 11 is past 0 + the bound of 10, so
    it is absurd and forgotten; a segment at offset 5 then waits for offsets 0..4."""
    d = opened(0, max_pending=10)
    assert d.ack(1 + 11, frame=1, ts=1.0) == []
    assert d.segment(1 + 5, b"xxxxx", frame=2, ts=2.0) == ()
    assert (d.holes, d.pending_bytes) == (0, 5)


def test_an_ack_is_believed_up_to_the_bound_past_the_end_of_a_buffered_segment() -> None:
    """A buffered segment at offsets 5..10 is the furthest byte seen: an ACK for offset 20
    (10 + the bound of 10) is believed, one for 21 is not."""
    d = opened(0, max_pending=10)
    d.segment(1 + 5, b"xxxxx", frame=1, ts=1.0)
    assert triples(d.ack(1 + 20, frame=2, ts=2.0)) == [(5, 2, 2.0), (b"xxxxx", 1, 1.0)]
    d = opened(0, max_pending=10)
    d.segment(1 + 5, b"xxxxx", frame=1, ts=1.0)
    assert d.ack(1 + 21, frame=2, ts=2.0) == [] and d.pending_bytes == 5


def test_a_segment_beyond_acknowledged_unseen_bytes_declares_them_at_its_frame_and_time() -> None:
    """The receiver acknowledged offsets 0..4 with nothing captured; a segment at offset 8
    makes them a hole at once, at its frame and time; 5..7 are not acknowledged: it waits."""
    d = opened(0)
    assert d.ack(1 + 5, frame=1, ts=1.0) == []
    assert triples(d.segment(1 + 8, b"zz", frame=2, ts=2.5)) == [(5, 2, 2.5)]
    assert (d.offset, d.pending_bytes) == (5, 2)


# ---------------------------------------------------------------- out-of-order bounds


def test_two_directions_sharing_a_budget_are_bounded_together() -> None:
    """A budget of 10 bytes shared by two directions: 6 wait in one, 4 in the other (10:
    at the bound, still waiting); one more byte passes it, and the direction that brought
    it gives up on the bytes missing before its own, at that frame and time."""
    budget = Budget(10)
    a, b = TcpDirection(budget=budget), TcpDirection(budget=budget)
    a.syn(0)  # first byte at 1
    b.syn(1000)  # first byte at 1001
    assert a.segment(1 + 4, b"aaaaaa", frame=1, ts=1.0) == ()  # offsets 4..10
    assert budget.used == 6
    assert b.segment(1001 + 2, b"bbbb", frame=2, ts=2.0) == ()  # offsets 2..6
    assert budget.used == 10 and not b.limit_hit
    out = b.segment(1001 + 7, b"c", frame=3, ts=3.5)  # offset 7: 11 bytes held
    assert b.limit_hit == "ooo_total"  # the pipeline's key for --max-ooo-total
    assert triples(out) == [(2, 3, 3.5), (b"bbbb", 2, 2.0), (1, 3, 3.5), (b"c", 3, 3.5)]
    assert budget.used == 6 and b.pending_bytes == 0 and b.offset == 8
    assert a.pending_bytes == 6 and not a.limit_hit  # the other direction keeps its bytes


def test_a_budget_counts_every_segment_a_direction_buffers() -> None:
    budget = Budget(12)
    d = opened(0, budget=budget)
    d.segment(1 + 2, b"xxxxx")  # offsets 2..7
    d.segment(1 + 9, b"yyyyy")  # offsets 9..14, a run of its own
    assert (budget.used, d.pending_bytes) == (10, 10) and not d.limit_hit
    assert triples(d.segment(1, b"ab")) == [(b"ab", 0, 0.0), (b"xxxxx", 0, 0.0)]
    assert (budget.used, d.pending_bytes) == (5, 5)


def test_a_direction_over_its_own_bound_declares_its_holes_at_that_frame_and_time() -> None:
    d = opened(0, max_pending=5)
    assert d.segment(1 + 2, b"abc", frame=1, ts=1.0) == ()  # offsets 2..5
    out = d.segment(1 + 6, b"ddd", frame=2, ts=2.5)  # offsets 6..9: 6 bytes held > 5
    assert d.limit_hit == "ooo"
    assert triples(out) == [(2, 2, 2.5), (b"abc", 1, 1.0), (1, 2, 2.5), (b"ddd", 2, 2.5)]
