"""Holes in the stream and the stream ending, as the parser reports them.

Mutation testing found these reports unchecked: the text of the hole finding inside a
piece payload (its index and offset come from the piece header, in that order), the
piece's ``missing`` count summed over several holes, the resync finding that follows a
hole between messages (its "after a hole" reason and the hole counted in the offset), and
the finding that stops a direction whose framing was never found again before the end
(with and without a count of the bytes since it was lost). Finding texts reach users as
the text output and the JSON ``detail``, so they are asserted whole.

Layouts (BEP 3): a message is a 4-byte length prefix counting the id byte and the
payload; a piece is id 7, index and begin (4 bytes each), then the block.
"""
from __future__ import annotations

import pytest

import wirebuild as wb
from inspector import events as ev
from inspector.parser import PeerWireParser

LOST = "not captured; framing lost, looking for the next message"


def between_messages() -> PeerWireParser:
    """A parser past its first message, between two messages (no handshake owed)."""
    parser = PeerWireParser(handshake=False)
    assert parser.feed(wb.have(1)) == [ev.Have(1)]
    return parser


def test_holes_in_a_piece_payload_are_one_finding_and_all_counted() -> None:
    block = bytes(range(100))
    wire = wb.piece(3, 16384, block)  # 4 + 9 + 100 bytes: the payload is wire[13:113]
    parser = between_messages()
    assert parser.feed(wire[:33]) == []  # the header and block[0:20]
    # The first hole is reported against the piece: index 3, begin 16384, a 100-byte block.
    assert parser.gap(30) == [ev.Finding("hole", "30 bytes of piece 3:16384 (100 bytes) not captured")]
    assert parser.feed(wire[63:83]) == []  # block[50:70]
    assert parser.gap(5) == []  # a second hole in the same piece: no second finding
    # block[75:100] ends it: the piece counts both holes, 30 + 5 bytes.
    assert parser.feed(wire[88:]) == [ev.Piece(3, 16384, 100, missing=35)]
    assert parser.feed(wb.have(9)) == [ev.Have(9)]  # the framing held


def test_a_hole_between_messages_is_counted_in_the_resync() -> None:
    parser = between_messages()
    assert parser.gap(10) == [ev.Finding("hole", f"10 bytes {LOST}")]
    assert parser.hunting
    # Two requests (BEP 3: id 6, 13 bytes long) right after the hole: the chain of two
    # plausible messages puts the framing back at the first, 10 bytes past where it was lost.
    out = parser.feed(wb.request(1, 0, 16384) + wb.request(1, 16384, 16384))
    assert out == [ev.Finding("resync", "next message found after 10 bytes (after a hole)"),
                   ev.Request(1, 0, 16384), ev.Request(1, 16384, 16384)]
    assert not parser.hunting


@pytest.mark.parametrize("hole, offset", [(1, "1 byte"), (2, "2 bytes")], ids=["one", "two"])
def test_the_resync_offset_is_spelled_by_its_count(hole: int, offset: str) -> None:
    parser = between_messages()
    parser.gap(hole)
    out = parser.feed(wb.request(1, 0, 16384) + wb.request(1, 16384, 16384))
    assert out[0] == ev.Finding("resync", f"next message found after {offset} (after a hole)")


@pytest.mark.parametrize("missing, lost, span", [
    pytest.param(10, "10 bytes", " in the 17 bytes since it was lost", id="known"),
    pytest.param(-1, "some bytes (count unknown)", "", id="unknown"),
])
def test_a_stream_that_ends_before_the_framing_is_found_again(missing: int, lost: str, span: str) -> None:
    parser = between_messages()
    assert parser.gap(missing) == [ev.Finding("hole", f"{lost} {LOST}")]
    # 7 bytes that no message can start in (a length prefix below 128 KiB starts with 0).
    assert parser.feed(b"\xff" * 7) == []
    # A hole of known size counts in the span (10 + 7 bytes); one of unknown size leaves none.
    detail = f"framing not found again{span} (after a hole); the rest of this direction is not decoded"
    assert parser.end() == [ev.Finding("resync", detail)]
    assert parser.stopped == detail
    assert parser.feed(wb.have(2)) == []
    assert parser.end() == []
