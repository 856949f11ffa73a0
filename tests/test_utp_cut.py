"""A uTP packet cut by the snap length, delivered in order: its captured bytes, then the
bytes the capture did not keep as a hole of that size, at its frame and time.

Why: a mutation run found only the buffered (out-of-order) case pinned; the in-order
packet's hole went unchecked.
"""
from __future__ import annotations

from inspector.utp import ST_DATA, UtpDirection


def test_an_in_order_packet_cut_by_the_snap_length_delivers_its_hole() -> None:
    d = UtpDirection()
    d.syn(0)
    assert d.segment(ST_DATA, 1, b"abc", frame=7, ts=1.5, cut=1397) == [(b"abc", 7, 1.5), (1397, 7, 1.5)]
    assert d.segment(ST_DATA, 2, b"next", frame=8, ts=1.6) == ((b"next", 8, 1.6),)
    assert d.offset == 7


def test_an_in_order_packet_cut_to_nothing_is_all_hole() -> None:
    d = UtpDirection()
    d.syn(10)
    assert d.segment(ST_DATA, 11, b"", frame=3, ts=2.0, cut=500) == [(500, 3, 2.0)]
