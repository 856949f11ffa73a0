"""TcpDirection: reassembly order, retransmissions, overlaps, wrap, holes, FIN, and a
property test over random segmentations, permutations and duplicates."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.tcp import TcpDirection

WRAP = 1 << 32


def bare(deliveries) -> list:
    """The chunks of (chunk, frame, ts) deliveries."""
    return [chunk for chunk, _frame, _ts in deliveries]


def joined(deliveries) -> bytes:
    chunks = bare(deliveries)
    assert not any(isinstance(c, int) for c in chunks), chunks
    return b"".join(bytes(c) for c in chunks)


def nonempty(deliveries) -> list:
    """Chunks as a list, without empty byte strings (they carry nothing)."""
    return [c if isinstance(c, int) else bytes(c) for c in bare(deliveries) if isinstance(c, int) or len(c)]


def opened(isn: int = 1000, **kw) -> TcpDirection:
    d = TcpDirection(**kw)
    d.syn(isn)
    return d


# ---------------------------------------------------------------- order


def test_in_order():
    d = opened(1000)
    assert nonempty(d.segment(1001, b"abc")) == [b"abc"]
    assert nonempty(d.segment(1004, b"defg")) == [b"defg"]
    assert d.offset == 7 and d.next_seq == 1008
    assert (d.retransmissions, d.overlaps, d.holes, d.pending_bytes) == (0, 0, 0, 0)


def test_out_of_order_later_segment_first():
    d = opened(0)
    assert nonempty(d.segment(4, b"def")) == []
    assert d.pending_bytes == 3
    assert nonempty(d.segment(1, b"abc")) == [b"abc", b"def"]
    assert d.pending_bytes == 0 and not d.pending and d.offset == 6
    assert nonempty(d.segment(7, b"g")) == [b"g"]


def test_out_of_order_reverse_of_many():
    d = opened(0)
    parts = [b"aa", b"bbb", b"c", b"dddd", b"ee"]
    offsets = [1, 3, 6, 7, 11]
    out = []
    for seq, part in reversed(list(zip(offsets, parts))):
        out += nonempty(d.segment(seq, part))
    assert b"".join(out) == b"".join(parts)
    assert out[0] == b"aa"
    assert d.holes == 0 and d.retransmissions == 0


def test_ack_without_payload_delivers_nothing():
    d = opened(0)
    assert nonempty(d.segment(1, b"")) == []
    assert d.offset == 0 and d.next_seq == 1


# ---------------------------------------------------------------- duplicates and overlaps


def test_retransmission_dropped_and_counted():
    d = opened(0)
    d.segment(1, b"hello")
    assert nonempty(d.segment(1, b"hello")) == []
    assert d.retransmissions == 1
    assert nonempty(d.segment(3, b"ll")) == []  # wholly inside delivered bytes
    assert d.retransmissions == 2
    assert d.offset == 5
    assert nonempty(d.segment(6, b"!")) == [b"!"]


def test_duplicate_of_buffered_segment_delivered_once():
    d = opened(0)
    d.segment(4, b"def")
    d.segment(4, b"def")
    assert nonempty(d.segment(1, b"abc")) == [b"abc", b"def"]
    assert d.retransmissions == 1 and d.offset == 6 and d.pending_bytes == 0


def test_copies_and_overlaps_of_buffered_bytes_are_counted_as_they_arrive():
    """Counted when each copy arrives, before anything is released; runs stay disjoint
    and never adjacent (a segment joining two runs leaves one)."""
    d = opened(0)

    def counts():
        return d.retransmissions, d.overlaps, d.pending_segments, d.pending_bytes, len(d.pending)

    d.segment(4, b"def")  # offsets 3..6
    d.segment(4, b"def")  # the same again
    assert counts() == (1, 0, 1, 3, 1)
    d.segment(5, b"ef")  # inside it, ending where it ends
    d.segment(4, b"de")  # inside it, starting where it starts
    assert counts() == (3, 0, 1, 3, 1)
    d.segment(3, b"cdefg")  # 2..7: one new byte at each end
    assert counts() == (3, 1, 3, 5, 1)
    d.segment(9, b"ij")  # 8..10: a run of its own
    assert counts() == (3, 1, 4, 7, 2)
    d.segment(8, b"hi")  # 7..9: continues 2..7 and overlaps 8..10, joining them
    assert counts() == (3, 2, 5, 8, 1)
    assert joined(d.segment(1, b"ab")) == b"abcdefghij"
    assert counts() == (3, 2, 0, 0, 0)


def test_buffered_copies_of_bytes_delivered_meanwhile_are_retransmissions_each():
    d = opened(0)
    d.segment(4, b"def")  # offsets 3..6
    d.segment(7, b"gh")  # 6..8, continuing the same run
    assert joined(d.segment(1, b"abcdefgh")) == b"abcdefgh"  # delivers 0..8 itself
    assert (d.retransmissions, d.overlaps, d.pending_segments, d.offset) == (2, 0, 0, 8)


def test_flush_stamps_its_holes_with_the_frame_and_time_given():
    d = opened(0)
    d.segment(4, b"def", frame=2, ts=0.2)
    assert d.flush(frame=9, ts=0.9) == [(3, 9, 0.9), (b"def", 2, 0.2)]
    d = opened(0)
    d.segment(4, b"def")
    assert d.flush() == [(3, 0, 0.0), (b"def", 0, 0.0)]  # without them: frame 0 at time 0


def test_an_ack_without_a_frame_and_time_stamps_its_holes_frame_zero_at_time_zero():
    d = opened(0)
    d.segment(4, b"def")
    assert d.ack(4) == [(3, 0, 0.0), (b"def", 0, 0.0)]


def test_delivered_bytes_reaching_into_a_buffered_segments_cut_leave_only_the_rest_as_a_hole():
    """A buffered segment of 3 captured bytes and 4 cut by the snap length (offsets 3..10);
    8 bytes then arrive in order: of the cut, 8..10 is still a hole."""
    d = opened(0)
    d.segment(4, b"def", cut=4, frame=2)
    assert bare(d.segment(1, b"abcdefgh", frame=3)) == [b"abcdefgh", 2]
    assert (d.holes, d.hole_bytes, d.overlaps, d.offset) == (1, 2, 1, 10)
    d = opened(0)
    d.segment(4, b"def", cut=4, frame=2)
    assert bare(d.segment(1, b"abcdef", frame=3)) == [b"abcdef", 4]  # exactly its captured bytes: no empty chunk
    assert (d.holes, d.hole_bytes, d.offset) == (1, 4, 10)


def test_each_buffered_piece_overlapping_delivered_bytes_counts_once():
    d = opened(0)
    d.segment(4, b"defg")  # offsets 3..7
    d.segment(8, b"hij")  # 7..10, the same run
    assert joined(d.segment(1, b"abcde")) == b"abcdefghij"  # 0..5: overlaps the first piece only
    assert d.overlaps == 1
    d = opened(0)
    d.segment(4, b"def")  # 3..6
    d.segment(3, b"cd")  # 2..4: overlaps it while buffered
    assert d.overlaps == 1
    assert joined(d.segment(1, b"abcd")) == b"abcdef"  # 0..4: 'c' again, and into 'def'
    assert (d.overlaps, d.retransmissions) == (2, 1)


def test_a_fin_resent_with_bytes_already_delivered_ends_the_stream_where_it_ends():
    d = opened(0)
    assert joined(d.segment(1, b"abcdef")) == b"abcdef"
    assert d.segment(4, b"def", fin=True) == ()  # behind: a retransmission carrying the FIN
    assert d.fin_offset == 6 and d.finished and d.flush() == []


def test_a_fin_inside_bytes_already_delivered_does_not_end_the_stream():
    """A FIN on a segment wholly behind what was delivered (a crafted capture: the stream
    went on past where it says it ended) ended the direction at once; it is let go, and
    the real FIN still ends it."""
    d = opened(0)
    assert joined(d.segment(1, b"abcdef")) == b"abcdef"
    assert d.segment(2, b"bc", fin=True) == ()  # ends at offset 3, before the 6 delivered
    assert d.fin_offset is None and not d.finished
    assert joined(d.segment(7, b"gh", fin=True)) == b"gh"
    assert d.fin_offset == 8 and d.finished


def test_an_ack_half_the_sequence_space_away_is_behind_even_with_a_huge_bound():
    d = opened(0, max_pending=1 << 33)
    d.segment(1, b"abc")
    assert d.ack((4 + (1 << 31)) & 0xFFFFFFFF) == [] and d.acked == 0


def test_overlap_with_delivered_bytes_first_copy_wins():
    d = opened(0)
    assert nonempty(d.segment(1, b"0123456789")) == [b"0123456789"]
    # offsets 5..16: the first five overlap with DIFFERENT bytes
    assert nonempty(d.segment(6, b"XXXXXabcdef")) == [b"abcdef"]
    assert d.overlaps == 1 and d.offset == 16


def test_overlap_with_buffered_bytes_first_copy_wins():
    """Both copies wait for a gap; the one that arrived first supplies the overlap."""
    d = opened(0)
    d.segment(11, b"AAAAAAAAAA")  # offsets 10..20, arrives first
    d.segment(6, b"BBBBBBBBBB")  # offsets 5..15, arrives second, overlaps 10..15
    out = joined(d.segment(1, b"01234"))
    assert out == b"01234" + b"BBBBB" + b"AAAAAAAAAA"


def test_buffered_segment_overlapping_the_filler():
    d = opened(0)
    d.segment(4, b"DEFGH")  # offsets 3..8
    out = joined(d.segment(1, b"abcdef"))  # offsets 0..6, delivered first: it wins
    assert out == b"abcdefGH"
    assert d.overlaps == 1


# ---------------------------------------------------------------- sequence space


def test_wrap_past_2_32():
    isn = WRAP - 3
    d = opened(isn)
    assert d.next_seq == WRAP - 2
    assert nonempty(d.segment(WRAP - 2, b"abcd")) == [b"abcd"]
    assert d.next_seq == 2
    assert nonempty(d.segment(2, b"efg")) == [b"efg"]
    assert nonempty(d.segment(WRAP - 1, b"bcd")) == []  # retransmission from before the wrap
    assert d.retransmissions == 1 and d.offset == 7


def test_out_of_order_across_wrap():
    d = opened(WRAP - 5)  # first byte at WRAP - 4
    assert nonempty(d.segment(2, b"EFG")) == []  # stream offset 6
    assert nonempty(d.segment(0, b"CD")) == []  # stream offset 4
    assert nonempty(d.segment(WRAP - 4, b"abAB")) == [b"abAB", b"CD", b"EFG"]
    assert d.holes == 0 and d.offset == 9 and d.next_seq == 5


def test_syn_then_data_at_isn_plus_one():
    d = TcpDirection()
    d.syn(0xFFFFFFFF)
    assert d.next_seq == 0
    assert nonempty(d.segment(0, b"first")) == [b"first"]
    d.syn(0xFFFFFFFF)  # a retransmitted SYN changes nothing
    assert nonempty(d.segment(5, b"second")) == [b"second"]


def test_missing_start_begins_at_first_segment():
    d = TcpDirection()
    assert nonempty(d.segment(5000, b"")) == []  # a bare ACK does not fix the start
    assert d.next_seq is None
    assert nonempty(d.segment(7000, b"xyz")) == [b"xyz"]
    assert d.next_seq == 7003 and d.offset == 3
    assert nonempty(d.segment(7003, b"uvw")) == [b"uvw"]
    assert nonempty(d.segment(6990, b"0123456789")) == []  # from before the capture
    assert d.offset == 6 and d.holes == 0


# ---------------------------------------------------------------- holes


def test_far_ahead_segment_waits_until_flush():
    d = opened(0)
    d.segment(1, b"ab")
    assert nonempty(d.segment(1 + 100_000, b"zz")) == []
    assert d.pending_bytes == 2
    assert nonempty(d.flush()) == [100_000 - 2, b"zz"]
    assert (d.holes, d.hole_bytes) == (1, 100_000 - 2)
    assert d.offset == 100_002 and not d.pending
    assert nonempty(d.segment(1 + 100_002, b"next")) == [b"next"]
    assert nonempty(d.segment(3, b"late")) == []  # the hole's bytes come too late
    assert d.offset == 100_006


def test_hole_across_wrap():
    d = opened(WRAP - 11)  # first byte at WRAP - 10
    d.segment(WRAP - 10, b"abc")
    assert nonempty(d.segment(5, b"xyz")) == []  # stream offset 15
    assert nonempty(d.flush()) == [12, b"xyz"]
    assert d.next_seq == 8
    assert nonempty(d.segment(8, b"more")) == [b"more"]


def test_flush_with_nothing_pending_is_empty():
    d = opened(0)
    d.segment(1, b"abc")
    assert nonempty(d.flush()) == []
    assert d.holes == 0


def test_max_pending_exceeded_reports_hole_and_resumes():
    d = opened(0, max_pending=10)
    assert nonempty(d.segment(1, b"hello")) == [b"hello"]  # offsets 0..5
    assert nonempty(d.segment(11, b"BBBBBB")) == []  # offsets 10..16, 6 bytes held
    out = nonempty(d.segment(21, b"CCCCCC"))  # offsets 20..26, 12 bytes held > 10
    assert out == [5, b"BBBBBB", 4, b"CCCCCC"]
    assert (d.holes, d.hole_bytes) == (2, 9)
    assert d.pending_bytes == 0 and d.offset == 26
    assert nonempty(d.segment(27, b"D")) == [b"D"]


def test_under_max_pending_keeps_waiting():
    d = opened(0, max_pending=10)
    d.segment(1, b"x")
    assert nonempty(d.segment(11, b"0123456789")) == []  # exactly the bound: still waiting
    assert d.holes == 0
    assert nonempty(d.segment(2, b"yyyyyyyyy")) == [b"yyyyyyyyy", b"0123456789"]


def test_snap_length_cut_in_order():
    d = opened(0)
    assert nonempty(d.segment(1, b"abc", cut=5)) == [b"abc", 5]
    assert (d.holes, d.hole_bytes, d.offset) == (1, 5, 8)
    assert nonempty(d.segment(9, b"next")) == [b"next"]


def test_snap_length_cut_buffered():
    d = opened(0)
    assert nonempty(d.segment(4, b"de", cut=3)) == []
    assert nonempty(d.segment(1, b"abc")) == [b"abc", b"de", 3]
    assert d.offset == 8
    assert nonempty(d.segment(9, b"f")) == [b"f"]


def test_cut_with_no_captured_payload():
    d = opened(0)
    assert nonempty(d.segment(1, b"", cut=10)) == [10]
    assert nonempty(d.segment(11, b"z")) == [b"z"]


# ---------------------------------------------------------------- FIN


def test_fin_in_order():
    d = opened(0)
    d.segment(1, b"hello")
    assert not d.finished
    assert nonempty(d.segment(6, b"", fin=True)) == []
    assert d.finished


def test_fin_with_data():
    d = opened(0)
    assert nonempty(d.segment(1, b"bye", fin=True)) == [b"bye"]
    assert d.finished


def test_fin_only_after_all_bytes_up_to_it():
    d = opened(0)
    assert nonempty(d.segment(6, b"world", fin=True)) == []
    assert not d.finished
    d.segment(1, b"he")
    assert not d.finished
    assert nonempty(d.segment(3, b"llo")) == [b"llo", b"world"]
    assert d.finished


def test_fin_ahead_of_lost_bytes_flush_reports_them():
    """A bare FIN after bytes that were never captured: at the end those bytes are a
    hole, not silently dropped, and the direction counts as finished."""
    d = opened(0)
    d.segment(1, b"abc")
    assert nonempty(d.segment(11, b"", fin=True)) == []  # offsets 3..10 lost
    assert not d.finished
    assert nonempty(d.flush()) == [7]
    assert d.hole_bytes == 7 and d.finished


def test_retransmitted_fin_keeps_first_offset():
    d = opened(0)
    d.segment(1, b"abc", fin=True)
    d.segment(1, b"abc", fin=True)
    assert d.finished and d.fin_offset == 3


# ---------------------------------------------------------------- property


@st.composite
def segmented(draw):
    data = draw(st.binary(min_size=1, max_size=400))
    isn = draw(st.integers(0, WRAP - 1))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=15)) if len(data) > 1 else []))
    bounds = [0, *cuts, len(data)]
    segments = list(zip(bounds, bounds[1:]))
    # duplicates: whole copies and arbitrary sub-ranges of the same bytes
    extra = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 60)), max_size=6))
    segments += [(a, min(len(data), a + n)) for a, n in extra]
    segments += draw(st.lists(st.sampled_from(segments), max_size=4))
    order = draw(st.permutations(segments))
    return data, isn, order


@settings(max_examples=300, deadline=None)
@given(segmented())
def test_any_segmentation_and_order_reassembles(case):
    data, isn, order = case
    d = opened(isn)
    out = []
    for a, b in order:
        out += d.segment((isn + 1 + a) & (WRAP - 1), data[a:b])
    out += d.flush()
    assert joined(out) == data
    assert d.offset == len(data) and d.holes == 0 and not d.pending


# ---------------------------------------------------------------- frames


def test_each_chunk_keeps_the_frame_that_carried_it():
    d = opened(0)
    assert d.segment(1, b"ab", frame=1, ts=0.1) == ((b"ab", 1, 0.1),)
    d.segment(7, b"gh", frame=2, ts=0.2)
    d.segment(5, b"ef", frame=3, ts=0.3)
    out = [(bytes(c), f, t) for c, f, t in d.segment(3, b"cd", frame=4, ts=0.4)]
    assert out == [(b"cd", 4, 0.4), (b"ef", 3, 0.3), (b"gh", 2, 0.2)]


def test_hole_given_up_at_flush_is_stamped_with_the_flush_frame():
    d = opened(0)
    d.segment(1, b"ab", frame=1)
    d.segment(11, b"kl", frame=2)
    assert [(c if isinstance(c, int) else bytes(c), f) for c, f, _ in d.flush(frame=9)] == [(8, 9), (b"kl", 2)]


# ---------------------------------------------------------------- ACK-decided holes


def test_ack_beyond_a_gap_declares_the_hole_at_once():
    """The receiver acknowledged bytes the capture never saw: they were lost by the
    capture, not in flight, so nothing waits for a retransmission."""
    d = opened(0)
    d.segment(1, b"ab", frame=1)
    d.segment(5, b"ef", frame=3)  # offsets 2..4 missing
    assert d.ack(3, frame=4) == []  # acknowledges offsets up to 2 only: nothing missing below it
    out = [(c if isinstance(c, int) else bytes(c), f) for c, f, _ in d.ack(7, frame=5, ts=0.5)]
    assert out == [(2, 5), (b"ef", 3)]
    assert (d.holes, d.hole_bytes, d.offset, d.acked) == (1, 2, 6, 6) and not d.pending
    assert d.segment(3, b"cd", frame=6) == ()  # the retransmission, too late


def test_ack_short_of_the_buffered_bytes_declares_only_what_it_covers():
    d = opened(0)
    d.segment(11, b"kl", frame=2)  # offsets 0..9 missing
    assert nonempty(d.ack(5, frame=3)) == [4]  # offsets 0..3 acknowledged, unseen
    assert d.offset == 4 and d.pending_bytes == 2
    assert nonempty(d.segment(5, b"efghij", frame=4)) == [b"efghij", b"kl"]


def test_ack_with_nothing_buffered_invents_no_hole():
    d = opened(0)
    d.segment(1, b"abc")
    assert d.ack(2000) == [] and d.acked == 1999 and d.holes == 0 and d.offset == 3
    assert d.flush() == []


def test_segment_beyond_an_acked_gap_declares_the_hole_at_once():
    d = opened(0)
    d.segment(1, b"abc", frame=1)
    d.ack(11, frame=2)  # offsets 3..9 acknowledged, never captured, nothing buffered yet
    out = [(c if isinstance(c, int) else bytes(c), f) for c, f, _ in d.segment(11, b"klm", frame=3)]
    assert out == [(7, 3), (b"klm", 3)]
    assert d.offset == 13 and not d.pending


def test_absurd_and_stale_acks_are_ignored():
    d = TcpDirection(max_pending=100)
    assert d.ack(5, frame=1) == [] and d.acked == 0  # before the stream's start is known
    d.syn(0)
    d.segment(1, b"abc")
    d.segment(11, b"klm")
    assert d.ack(0) == [] and d.ack(1 + 2**31 + 5) == []  # behind; more than 2**31 ahead
    assert d.ack(1 + 13 + 101) == []  # beyond what was sent plus the bound
    assert (d.acked, d.holes, d.offset) == (0, 0, 3)
    assert nonempty(d.ack(1 + 13 + 100)) == [7, b"klm"]  # at the edge: believed


def test_ack_after_bytes_taken_by_the_hot_path_is_believed():
    d = TcpDirection(max_pending=100)
    d.syn(0)
    d.consume(10_000)  # the caller took these itself: no segment() saw them
    d.segment(1 + 10_050, b"x")
    assert nonempty(d.ack(1 + 10_051)) == [50, b"x"]


def test_ack_across_the_sequence_wrap():
    d = opened(WRAP - 3)  # first byte at WRAP - 2
    d.segment(WRAP - 2, b"ab")
    d.segment(3, b"fg")  # offsets 5..6; 2..4 missing
    assert nonempty(d.ack(5)) == [3, b"fg"]
    assert d.next_seq == 5


def test_max_segments_bounds_the_buffer_by_count():
    d = opened(0, max_segments=3)
    for seq in (3, 5, 7):
        assert d.segment(seq, b"x") == ()
    assert nonempty(d.segment(9, b"y")) == [2, b"x", 1, b"x", 1, b"x", 1, b"y"]
    assert d.pending_segments == 0 and not d.pending


# ---------------------------------------------------------------- cost under loss


def test_reverse_order_after_a_hole_keeps_one_run():
    """12,000 one-byte segments, last first, after a one-byte hole: each joins the
    front of the single buffered run (before: every insert rescanned all of them)."""
    d = opened(0)
    count = 12_000
    for k in range(count, 0, -1):
        assert d.segment(1 + k, bytes([k & 0xFF])) == ()
        assert len(d.pending) == 1
    assert d.pending_segments == count
    out = d.segment(1, b"\0")
    assert len(out) == count + 1 and joined(out) == bytes(k & 0xFF for k in range(count + 1))


def test_one_missing_segment_in_8_mb_keeps_one_run_until_the_ack():
    d = opened(0)
    mss, total = 1448, 8 << 20
    lost = 10 * mss
    delivered = 0
    for number, start in enumerate(range(0, total, mss), 1):
        if start == lost:
            continue
        delivered += sum(len(c) for c, _, _ in d.segment(1 + start, b"z" * min(mss, total - start), frame=number))
        assert len(d.pending) <= 1
        if number % 2 == 0 and start > lost:  # the receiver got the lost segment: its ACK says so
            out = d.ack(1 + start, frame=number)
            if out:
                assert out[0] == (mss, number, 0.0)
                delivered += sum(len(c) for c, _, _ in out[1:])
    assert (d.holes, d.hole_bytes, d.offset, delivered) == (1, mss, total, total - mss)
    assert not d.pending


# ---------------------------------------------------------------- property: loss, acks, anything


@st.composite
def lossy(draw):
    """Segments of a stream, some dropped, some duplicated or cut, in any order, with
    ACKs (some absurd) interleaved."""
    data = draw(st.binary(min_size=1, max_size=300))
    isn = draw(st.integers(0, WRAP - 1))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=20)) if len(data) > 1 else []))
    bounds = [0, *cuts, len(data)]
    segments = [(a, b) for a, b in zip(bounds, bounds[1:]) if draw(st.integers(0, 4))]  # about 1 in 5 lost
    extra = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 60)), max_size=6))
    segments += [(a, min(len(data), a + n)) for a, n in extra]
    events = [("seg", a, b, draw(st.integers(0, 3))) for a, b in segments]  # last: bytes cut by snap length
    events += [("ack", draw(st.integers(0, WRAP - 1)) if draw(st.booleans()) else draw(st.integers(0, len(data) + 1)), 0, 0)
               for _ in range(draw(st.integers(0, 8)))]
    return data, isn, draw(st.permutations(events)), draw(st.sampled_from([8, 64, 1 << 20]))


@settings(max_examples=200, deadline=None)
@given(lossy())
def test_loss_reordering_and_acks_never_misplace_a_byte(case):
    data, isn, events, bound = case
    d = TcpDirection(max_pending=bound, max_segments=4)
    d.syn(isn)
    out = []
    for kind, a, b, cut in events:
        if kind == "seg":
            cut = min(cut, b - a)
            out += d.segment((isn + 1 + a) & (WRAP - 1), data[a : b - cut], cut)
        else:
            out += d.ack((isn + 1 + a) & (WRAP - 1))
    out += d.flush()
    offset = 0
    for chunk, _, _ in out:
        if isinstance(chunk, int):
            assert chunk > 0
            offset += chunk
        else:
            assert bytes(chunk) == data[offset : offset + len(chunk)], offset
            offset += len(chunk)
    assert offset == d.offset <= len(data) and not d.pending
    assert d.pending_bytes == 0 and d.pending_segments == 0
