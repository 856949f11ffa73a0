"""How far into a message the parser is (``progress``, which ``inspector.locate`` places
messages by), and the state a message cut by a hole leaves for the next one.

Why: a mutation run found these unpinned: progress through the handshake's fields and
while hunting or counting past a message; and that a message counted past after a hole
leaves nothing of itself behind (its head, its lost and filled counts, the bytes still to
count past) for the next message, or for the hunt that follows a hole past its end.
"""
from __future__ import annotations

import struct

import wirebuild as wb
from inspector import events as ev
from inspector.parser import PeerWireParser

ROOT = bytes(range(32))


def test_progress_counts_every_byte_of_the_handshake() -> None:
    hs = wb.handshake()
    parser = PeerWireParser()
    seen = [parser.progress()]
    for i in range(len(hs) - 1):
        assert parser.feed(hs[i:i + 1]) == []
        seen.append(parser.progress())
    assert seen == list(range(len(hs)))  # 0 before the first byte, 67 before the last
    (handshake,) = parser.feed(hs[-1:])
    assert isinstance(handshake, ev.Handshake) and parser.progress() == 0


def test_progress_is_unknown_while_hunting_and_once_stopped() -> None:
    parser = PeerWireParser(handshake=False, midstream=True)
    parser.feed(b"\xff\xff\xff")
    assert parser.hunting and parser.progress() is None
    parser.end()
    assert parser.stopped and parser.progress() is None


def test_progress_is_unknown_while_counting_past_an_oversize_message() -> None:
    parser = PeerWireParser(handshake=False, max_len=100)
    (finding,) = parser.feed(struct.pack(">IB", 1000, 20) + b"x" * 10)
    assert finding.kind == "oversize"
    assert parser.progress() is None


def test_progress_inside_a_piece_payload() -> None:
    parser = PeerWireParser(handshake=False)
    parser.feed(wb.piece(1, 0, b"z" * 100)[:13 + 40])
    assert parser.progress() == 13 + 40


def test_a_hole_past_a_cut_bitfield_then_the_hunt_finds_the_requests_after_it() -> None:
    """The bitfield is listed, the framing lost; nothing of the bitfield is counted past
    after it, so the hunt's replay reads the requests from their first byte."""
    parser = PeerWireParser(handshake=False)
    assert parser.feed(wb.have(1)) == [ev.Have(1)]
    bits = b"\xf0" * 20
    out = parser.feed(wb.bitfield(bits)[:7])  # prefix, id, two bytes of bits
    out += parser.gap(18 + 30)  # its other 18 bytes and 30 beyond
    assert out[0] == ev.Bitfield(bits[:2], missing=18)
    assert parser.hunting
    found = parser.feed(wb.request(2, 0, 16384) + wb.request(2, 16384, 16384))
    assert [e for e in found if not isinstance(e, ev.Finding)] == [ev.Request(2, 0, 16384), ev.Request(2, 16384, 16384)]
    assert parser.skip_payload(10) is False  # between messages: nothing to count past
    assert parser.feed(wb.piece(2, 0, b"p" * 64)) == [ev.Piece(2, 0, 64)]


def long_message() -> bytes:
    """A hash request (BEP 52, id 21): longer than any message head, so its body is read
    apart from its head; not one the parser reads on past a hole."""
    return wb.hash_request(ROOT, 0, 0, 4, 1)


def test_a_message_counted_past_after_a_hole_leaves_nothing_for_the_next() -> None:
    parser = PeerWireParser(handshake=False)
    first = long_message()
    out = parser.feed(first[:20])  # prefix, head, part of the body
    out += parser.gap(5)  # inside it: framing kept, the rest counted past
    assert [e.kind for e in out] == ["hole"]
    out = parser.feed(first[25:])
    bits = b"\x0f" * 10
    second = wb.bitfield(bits)
    out += parser.feed(second[:8])  # prefix, id, three bytes of bits
    out += parser.gap(len(second) - 8 + 20)  # the rest of it and 20 beyond
    listed = [e for e in out if isinstance(e, ev.Bitfield)]
    assert listed == [ev.Bitfield(bits[:3], missing=7)]
    assert listed[0].filled == 0


def test_a_bitfield_after_a_message_counted_past_reads_on_past_its_own_hole() -> None:
    parser = PeerWireParser(handshake=False)
    first = long_message()
    parser.feed(first[:20])
    parser.gap(5)
    parser.feed(first[25:])
    bits = bytes(range(1, 21))
    second = wb.bitfield(bits)
    out = parser.feed(second[:10]) + parser.gap(4) + parser.feed(second[14:])
    (hole, bitfield) = out
    assert hole.kind == "hole"
    # the hole's four bytes as zeros, in place: the rest of the bits where they belong
    assert bitfield == ev.Bitfield(bits[:5] + bytes(4) + bits[9:], missing=4, filled=4)


def test_an_extension_message_cut_twice_counts_both_holes() -> None:
    parser = PeerWireParser(handshake=False)
    body = wb.bencode({b"added": b"\x01" * 60})
    wire = wb.extended(1, body)  # prefix, id 20, extension id 1, then the body
    parser.ext_names[1] = "ut_pex"
    out = parser.feed(wire[:20]) + parser.gap(10) + parser.feed(wire[30:40]) + parser.gap(len(wire) - 40 + 8)
    (cut,) = [e for e in out if isinstance(e, ev.Extended)]
    assert (cut.ext_id, cut.ext_name, cut.missing) == (1, "ut_pex", 10 + len(wire) - 40)
