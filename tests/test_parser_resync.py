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


def test_a_hunt_inside_a_hunt_s_replay_keeps_each_event_s_feed() -> None:
    """The other side asked for a 1000-byte block and a 13-byte hole took a piece header:
    the hunt waits to see whether the stream goes on where that block would end (byte 1013
    after the hole's start). A handshake, a have and a second hole come meanwhile, then two
    feeds of haves. Byte 1013 is not a message, so the framing is found at the handshake,
    and replaying from there meets the second hole: a hunt inside the replay, which finds
    the haves after it. Each event keeps the feed its bytes came in: the pipeline stamps
    its frame from it."""
    parser = between_messages()
    parser.expect(1, 0, 1000)
    out = parser.gap(13, tag="hole-1")
    out += parser.feed(wb.handshake() + wb.have(1), tag="A")  # stream bytes 13..90
    out += parser.gap(5, tag="hole-2")  # 90..95
    out += parser.feed(wb.have(2), tag="B1")  # 95..104
    out += parser.feed(wb.have(3) + wb.have(4), tag="B2")  # 104..122
    # 99 haves fill 122..1013, where four 0xff bytes start no message
    out += parser.feed(b"".join(wb.have(i) for i in range(5, 104)) + b"\xff" * 8, tag="C")
    assert [e if isinstance(e, tuple) else (e, None) for e in out[:10]] == [
        (ev.Finding("hole", "13 bytes not captured; framing lost, looking for the next message"), None),
        (ev.Finding("resync", "the handshake found after 13 bytes (after a hole)"), None),
        (ev.Handshake(bytes(8), bytes(range(20)), b"-LT2090-abcdefghijkl"), "A"),
        (ev.Have(1), "A"),
        (ev.Finding("hole", "5 bytes not captured; framing lost, looking for the next message"), "hole-2"),
        (ev.Finding("resync", "next message found after 5 bytes (after a hole)"), "B2"),
        (ev.Have(2), "B1"),
        (ev.Have(3), "B2"),
        (ev.Have(4), "B2"),
        (ev.Have(5), None),  # the feed being read: no tag
    ]


def test_a_hole_held_by_a_hunt_inside_a_replay_keeps_its_own_feed() -> None:
    """As above, and the hunt inside the replay waits for the requested block's end too
    (its hole is 13 bytes: a piece header's worth), so a third hole reaches it before it
    decides; its finding comes out with the third hole's tag when that hunt's own replay
    reads it."""
    parser = between_messages()
    parser.expect(1, 0, 1000)
    out = parser.gap(13, tag="hole-1")
    out += parser.feed(wb.handshake() + wb.have(1), tag="A")  # 13..90
    out += parser.gap(13, tag="hole-2")  # 90..103
    out += parser.feed(wb.have(2) + wb.have(3) + wb.have(4), tag="B")  # 103..130
    out += parser.gap(6, tag="hole-3")  # 130..136
    # 97 haves and a keep-alive fill 136..1013, where the first hunt's block would end;
    # six haves and seven keep-alives then fill up to 1103, where the second's would
    c = (b"".join(wb.have(i) for i in range(5, 102)) + wb.keepalive() + b"\xff" * 8
         + b"".join(wb.have(i) for i in range(200, 206)) + wb.keepalive() * 7 + b"\xff" * 8)
    out += parser.feed(c, tag="C")
    lost = "not captured; framing lost, looking for the next message"
    assert [e if isinstance(e, tuple) else (e, None) for e in out[4:12]] == [
        (ev.Finding("hole", f"13 bytes {lost}"), "hole-2"),
        (ev.Finding("resync", "next message found after 13 bytes (after a hole)"), None),
        (ev.Have(2), "B"), (ev.Have(3), "B"), (ev.Have(4), "B"),
        (ev.Finding("hole", f"6 bytes {lost}"), "hole-3"),
        (ev.Finding("resync", "next message found after 6 bytes (after a hole)"), None),
        (ev.Have(5), None),
    ]
