"""What the parser is left with after it loses the framing, and after it stops.

Mutation testing found these unchecked: where a hole inside the handshake still ends
inside it (the bytes already read of its protocol name or reserved field count), what a
message read after a resync makes of a hole (nothing of the lost message may leak into it),
the bytes of unfinished messages a parser gives back to the budget shared by every parser
(once only), and a stopped parser, which neither hunts nor claims payload bytes any more.
Finding texts reach users (text output, JSON ``detail``), so they are asserted whole.

Layouts (BEP 3): the handshake is 68 bytes (the length 19, "BitTorrent protocol", 8
reserved bytes, the info hash, the peer id); a message is a 4-byte length prefix counting
its id byte and payload; have is id 4 (length 5), bitfield id 5, piece id 7 (index and
begin, then the block).
"""
from __future__ import annotations

import pytest

import wirebuild as wb
from inspector import events as ev
from inspector.limits import Budget
from inspector.parser import PeerWireParser

LOST = "not captured; framing lost, looking for the next message"
HS = wb.handshake(bytes(range(20)), b"-qB4650-A1b2C3d4E5f6")


@pytest.mark.parametrize("read, hole", [(4, 64), (22, 46)], ids=["name", "reserved"])
def test_a_hole_that_ends_with_the_handshake_keeps_the_framing(read: int, hole: int) -> None:
    # name: the length byte and "Bit" read, 68 - 1 - 3 = 64 to go;
    # reserved: the length byte, the 19-byte name and 2 reserved bytes read, 68 - 20 - 2 = 46 to go.
    parser = PeerWireParser()
    assert parser.feed(HS[:read]) == []
    assert parser.gap(hole) == [ev.Finding("hole", f"{hole} bytes not captured inside the handshake; framing kept")]
    assert not parser.hunting
    assert parser.feed(wb.have(3)) == [ev.Have(3)]


@pytest.mark.parametrize("read, hole", [(4, 65), (22, 47)], ids=["name", "reserved"])
def test_a_hole_one_byte_past_the_handshake_loses_the_framing(read: int, hole: int) -> None:
    parser = PeerWireParser()
    parser.feed(HS[:read])
    assert parser.gap(hole) == [ev.Finding("hole", f"1 bytes {LOST}")]
    assert parser.hunting


def test_a_bitfield_cut_after_a_resync_lists_only_its_own_bytes() -> None:
    parser = PeerWireParser(handshake=False)
    assert parser.feed(wb.have(1)) == [ev.Have(1)]
    assert parser.gap(10) == [ev.Finding("hole", f"10 bytes {LOST}")]
    # Three haves (BEP 3, no piece count known) put the framing back; then a bitfield's length
    # prefix (20: its id and 19 bytes) and its first 3 bytes: id 5, 0xaa, 0xbb.
    bits = wb.bitfield(b"\xaa\xbb" + bytes(17))
    out = parser.feed(wb.have(2) + wb.have(3) + wb.have(4) + bits[:7])
    assert out == [ev.Finding("resync", "next message found after 10 bytes (after a hole)"),
                   ev.Have(2), ev.Have(3), ev.Have(4)]
    # A hole of 30 bytes: the bitfield's 17 missing bytes and 13 past its end.
    assert parser.gap(30) == [ev.Bitfield(b"\xaa\xbb", missing=17, filled=0),
                              ev.Finding("hole", f"13 bytes {LOST}")]
    assert parser.hunting


def test_a_message_finished_gives_its_bytes_back_to_the_budget_once() -> None:
    budget = Budget(292)
    first = PeerWireParser(partial=budget)
    assert [e.type for e in first.feed(HS)] == ["handshake"]
    bits = wb.bitfield(bytes(300))  # length prefix 301: 4 + 9 bytes read, 292 held
    assert first.feed(bits[:13]) == []
    assert budget.used == 292
    assert first.feed(bits[13:]) == [ev.Bitfield(bytes(300))]
    first.forget()  # the flow is dropped: it holds nothing now
    assert budget.used == 0
    # Another parser's message that needs 293 bytes passes the limit of 292.
    second = PeerWireParser(partial=budget)
    second.feed(HS)
    assert second.feed(wb.bitfield(bytes(301))[:13]) == [
        ev.Finding("limit", "a bitfield message of length 302: holding it would pass the bytes of unfinished "
                            "messages held over all flows (--max-partial-total 292); skipped")]
    assert budget.used == 0


def test_a_stopped_parser_claims_no_payload_bytes() -> None:
    parser = PeerWireParser(handshake=False)
    assert parser.feed(wb.piece(2, 0, bytes(100))[:33]) == []  # its header and 20 bytes of the block
    assert parser.end() == [ev.Finding("truncated", "stream ended 80 bytes short of the end of piece 2:0 (100 bytes)")]
    # What the pipeline's fast path asks (tests/test_parser_skip.py): nothing is counted past now.
    assert parser.skip_payload(79) is False
    assert parser.skip_payload(0) is False
    assert parser.feed(bytes(80)) == []


def test_a_parser_that_stopped_hunting_is_not_hunting() -> None:
    parser = PeerWireParser(handshake=False, midstream=True)
    assert parser.hunting
    assert parser.feed(b"\xff" * 7) == []
    # The text of this finding: tests/test_parser_gap.py.
    assert [(f.kind, f.detail.startswith("framing not found again")) for f in parser.end()] == [("resync", True)]
    assert not parser.hunting
