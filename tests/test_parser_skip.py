"""Bytes the parser counts past rather than reads: piece payloads offered by the
pipeline's fast path (``skip_payload``), and messages over ``max_len``.

The fast path's contract: when ``skip_payload(n)`` says no, the same n bytes go through
``feed``; either way the parser must end up in the same place. Holes inside a skipped
message are reported against it and keep the framing.
"""
from __future__ import annotations

import struct

from inspector import events as ev
from inspector.parser import PeerWireParser


def have(index: int) -> bytes:
    return struct.pack(">IBI", 5, 4, index)


def piece(index: int, begin: int, block: bytes) -> bytes:
    return struct.pack(">IBII", 9 + len(block), 7, index, begin) + block


def offer(parser: PeerWireParser, data: bytes) -> list:
    """What the pipeline does with a segment: skip it if the parser agrees, else feed it."""
    return [] if parser.skip_payload(len(data)) else parser.feed(data)


def test_skip_payload_leaves_the_last_byte_to_feed() -> None:
    """Only bytes strictly inside the payload are skipped: the one that ends it goes
    through ``feed``, which finishes the piece."""
    wire = piece(4, 0, b"y" * 40)
    parser = PeerWireParser(handshake=False)
    assert parser.feed(wire[:13]) == []  # length, id, index, begin
    assert parser.skip_payload(40) is False
    assert parser.skip_payload(39) is True
    (block,) = parser.feed(wire[-1:])
    assert (block.index, block.length, block.missing) == (4, 40, 0)
    assert parser.feed(have(5)) == [ev.Have(5)]


def test_skip_payload_counts_what_it_skips() -> None:
    wire = piece(1, 0, b"z" * 100) + have(2)
    parser = PeerWireParser(handshake=False)
    parser.feed(wire[:13])
    assert parser.skip_payload(30) is True
    assert parser.skip_payload(30) is True
    assert parser.skip_payload(40) is False  # 40 left: the last one must be fed
    assert parser.skip_payload(39) is True
    events = parser.feed(wire[-10:])
    assert events == [ev.Piece(1, 0, 100), ev.Have(2)]


def test_skip_payload_refused_between_messages() -> None:
    parser = PeerWireParser(handshake=False)
    (block,) = parser.feed(piece(0, 0, b"abc"))
    assert block.length == 3
    assert parser.skip_payload(1) is False
    assert parser.skip_payload(0) is False
    assert parser.feed(have(9)) == [ev.Have(9)]


def test_offer_or_feed_give_the_same_events() -> None:
    wire = piece(6, 32768, bytes(range(200))) + have(3) + piece(6, 33000, b"q" * 60) + have(4)
    fed = PeerWireParser(handshake=False)
    whole = fed.feed(wire)
    offered = PeerWireParser(handshake=False)
    events: list = []
    for at in range(0, len(wire), 7):
        events += offer(offered, wire[at:at + 7])
    assert events == whole == [ev.Piece(6, 32768, 200), ev.Have(3), ev.Piece(6, 33000, 60), ev.Have(4)]


def oversized(max_len: int, length: int) -> tuple[PeerWireParser, list]:
    parser = PeerWireParser(handshake=False, max_len=max_len)
    return parser, parser.feed(struct.pack(">IB", length, 20) + b"\x01" * 9)


def test_hole_inside_an_oversize_message_keeps_the_framing() -> None:
    parser, events = oversized(100, 1000)
    assert [e.kind for e in events] == ["oversize"]
    (hole,) = parser.gap(50)
    assert (hole.kind, hole.detail) == ("hole", "50 bytes not captured inside a skipped message")
    # 1000 - 10 read - 50 lost = 940 bytes left of it, then the framing holds
    assert parser.feed(b"\x00" * 940 + have(8)) == [ev.Have(8)]


def test_hole_past_the_end_of_an_oversize_message_loses_the_framing() -> None:
    parser, _ = oversized(100, 200)
    first, second = parser.gap(500)
    assert (first.kind, first.detail) == ("hole", "190 bytes not captured inside a skipped message")
    assert (second.kind, second.detail) == ("hole", "310 bytes not captured; framing lost, looking for the next message")
    assert parser.hunting


def test_hole_of_unknown_size_inside_an_oversize_message() -> None:
    parser, _ = oversized(100, 200)
    first, second = parser.gap(-1)
    assert (first.kind, first.detail) == ("hole", "190 bytes not captured inside a skipped message")
    assert second.detail == "some bytes (count unknown) not captured; framing lost, looking for the next message"
