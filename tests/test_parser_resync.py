"""What the resync finding says, and which feed each event found by a hunt belongs to.

Why: a mutation run found these unpinned after the finding's wording changed: the offset
when the framing is found at once, or after a hole of unknown size (uTP), the clause for a
requested block whose piece header the hole took; and the tags that let the pipeline give
each replayed event the frame that carried its bytes.
"""
from __future__ import annotations

import wirebuild as wb
from inspector import events as ev
from inspector.parser import PeerWireParser
from test_parser_gap import between_messages

START = "(the connection's start was not captured)"


def test_found_at_once() -> None:
    parser = PeerWireParser(handshake=False, midstream=True)
    out = parser.feed(wb.have(1) + wb.have(2) + wb.have(3))
    assert out == [ev.Finding("resync", f"next message found at the first byte after it {START}"),
                   ev.Have(1), ev.Have(2), ev.Have(3)]


def test_found_after_a_hole_of_unknown_size() -> None:
    parser = between_messages()
    parser.gap(-1)
    out = parser.feed(wb.request(1, 0, 16384) + wb.request(1, 16384, 16384))
    assert out[0] == ev.Finding("resync", "next message found after bytes of unknown count (after a hole)")


def test_found_past_a_requested_block_whose_header_the_hole_took() -> None:
    parser = between_messages()
    parser.expect(1, 0, 100)
    block = wb.piece(1, 0, b"q" * 100)
    assert [e.kind for e in parser.gap(13)] == ["hole"]  # exactly the piece's header
    out = parser.feed(block[13:] + wb.have(5) + wb.have(6) + wb.have(7) + wb.request(1, 0, 16384))
    assert out == [
        ev.Finding("resync", "next message found after 113 bytes, the payload of a requested block "
                             "(1:0, 100 bytes) whose piece header the hole held (after a hole)"),
        ev.Have(5), ev.Have(6), ev.Have(7), ev.Request(1, 0, 16384)]


def test_events_found_by_a_hunt_carry_the_tag_of_the_feed_that_brought_their_bytes() -> None:
    parser = PeerWireParser(handshake=False, midstream=True)
    assert parser.feed(b"\xff\xff", tag="first") == []
    assert parser.feed(wb.have(1), tag="second") == []  # one message is no proof yet
    out = parser.feed(wb.have(2) + wb.have(3), tag="third")
    assert out == [ev.Finding("resync", f"next message found after 2 bytes {START}"),
                   (ev.Have(1), "second"), ev.Have(2), ev.Have(3)]


def test_after_a_hole_too() -> None:
    parser = between_messages()
    parser.gap(4, tag="hole")
    assert parser.feed(wb.have(1), tag="second") == []
    out = parser.feed(wb.have(2) + wb.have(3), tag="third")
    assert out == [ev.Finding("resync", "next message found after 4 bytes (after a hole)"),
                   (ev.Have(1), "second"), ev.Have(2), ev.Have(3)]
