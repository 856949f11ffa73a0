"""The peer-wire parser's steps, one reading at a time: what each reports of what it read.

Mutation testing found these unchecked: a mid-stream handshake whose protocol name is
wrong (its 20 bytes are handed to the hunt, with the parser's reason, and a message inside
them is found), a hole right after a bitfield's or an extended message's id (read on past
it once the id, and for an extended message the extension id, were captured), the budget
of unfinished messages taken and given back around such a hole, a cut message after one
that was read whole, requested blocks forgotten once they arrive, kept payloads of a piece
with a hole, the text of the too-short findings, of the unnamed-extension note and of the
ut_pex leftovers, and the extension handshake kept while later messages come. Finding texts
reach users (text output, JSON ``detail``), so they are asserted whole.

Layouts (BEP 3): a handshake is 1 + 19 + 8 (reserved) + 20 (info hash) + 20 (peer id)
bytes; a message is a 4-byte length prefix counting the id byte and the payload; a piece
is id 7, index and begin (4 bytes each), then the block. BEP 10: an extended message is
id 20, the extension id, then the body; BEP 11: ut_pex peers are 6 bytes each (IPv4, port).
"""
from __future__ import annotations

import struct

import pytest

import wirebuild as wb
from inspector import events as ev
from inspector.limits import Budget
from inspector.parser import PeerWireParser

INFO_HASH = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f001234567")
PEER = b"-TR3000-q1w2e3r4t5y6"
HS = wb.handshake(INFO_HASH, PEER)
START = "the connection's start was not captured"  # a mid-stream parser's default reason
LOST = "not captured; framing lost, looking for the next message"


def after_handshake(**kwargs: object) -> PeerWireParser:
    parser = PeerWireParser(**kwargs)  # type: ignore[arg-type]
    assert parser.feed(HS) == [ev.Handshake(bytes(8), INFO_HASH, PEER)]
    return parser


def kept(n: int, what: str) -> ev.Finding:
    return ev.Finding("hole", f"{n} bytes not captured inside {what}; framing kept")


# ---------------------------------------------------------------- a handshake joined mid-stream


def test_a_wrong_protocol_name_mid_stream_is_hunted_through_with_the_parsers_reason() -> None:
    """A direction whose start was not captured may still begin with a handshake; 19 and
    then a name that is not "BitTorrent protocol" is just where the capture came in. The
    20 bytes go to the hunt: here a requested block's piece header starts 3 bytes in."""
    parser = PeerWireParser(midstream=True)
    parser.expect(5, 0, 100)
    block = b"\xaa" * 100
    message = wb.piece(5, 0, block)  # 4 + 9 + 100 bytes
    wire = b"\x13\xff\xff" + message + wb.have(6)  # the name step reads wire[1:20]: 2 + 17 bytes
    assert parser.feed(wire) == [
        ev.Finding("resync", f"next message found after 3 bytes ({START})"),
        ev.Piece(5, 0, 100),
        ev.Have(6),
    ]
    assert parser.resyncs == 1


def test_a_handshake_read_mid_stream_ends_the_mid_stream_state() -> None:
    parser = PeerWireParser(midstream=True)
    assert parser.feed(HS) == [ev.Handshake(bytes(8), INFO_HASH, PEER)]
    # ``midstream`` is the parser's public record that no handshake is owed (typed bool).
    assert parser.midstream is False
    # Seen from outside: a hole inside the next message now keeps the framing.
    bits = wb.bitfield(b"\x0f" * 20)  # length prefix 21
    out = parser.feed(bits[:9]) + parser.gap(6) + parser.feed(bits[15:])
    assert out == [kept(6, "a bitfield message of length 21"),
                   ev.Bitfield(b"\x0f" * 4 + bytes(6) + b"\x0f" * 10, missing=6, filled=6)]


# ---------------------------------------------------------------- a hole right after a message's id


def test_a_hole_right_after_a_bitfields_id_is_read_past() -> None:
    bits = bytes(range(1, 31))  # 30 bytes: length prefix 31
    message = wb.bitfield(bits)
    parser = after_handshake()
    out = parser.feed(message[:5])  # the prefix and the id, nothing of the bits
    out += parser.gap(10)  # bits[0:10]
    out += parser.feed(message[15:] + wb.have(3))
    assert out == [kept(10, "a bitfield message of length 31"),
                   ev.Bitfield(bytes(10) + bits[10:], missing=10, filled=10), ev.Have(3)]


def test_a_hole_right_after_an_extended_id_takes_the_message() -> None:
    """Without its extension id an extended message cannot be named: it is counted past,
    and not listed."""
    message = wb.extended(3, wb.bencode({b"msg_type": 0, b"piece": 0}))  # length prefix 27
    parser = after_handshake()
    out = parser.feed(message[:5])  # the prefix and id 20
    out += parser.gap(10)
    out += parser.feed(message[15:] + wb.have(3))
    assert out == [kept(10, "an extended message of length 27"), ev.Have(3)]


def test_a_hole_after_an_extension_id_counts_only_its_own_bytes() -> None:
    message = wb.extended(3, wb.bencode({b"msg_type": 0, b"piece": 0}))  # length prefix 27
    parser = after_handshake()
    parser.ext_names = {3: "ut_metadata"}
    out = parser.feed(message[:6])  # the prefix, id 20 and extension id 3
    out += parser.gap(10)  # 10 of the 25 body bytes; the other 15 were captured
    assert out == [kept(10, "an extended message of length 27")]
    assert parser.feed(message[16:]) == [ev.Extended(3, "ut_metadata", None, 0, 27, missing=10)]
    assert parser.feed(wb.have(3)) == [ev.Have(3)]


# ---------------------------------------------------------------- the budget around such a hole


BITS = b"\x5a" * 300
BITFIELD = wb.bitfield(BITS)  # length prefix 301; 4 + 301 bytes


def test_a_bitfield_read_past_a_hole_holds_its_bytes_until_its_end() -> None:
    budget = Budget(1000)
    parser = after_handshake(partial=budget)
    assert parser.feed(BITFIELD[:7]) == []  # prefix, id, 2 bytes of bits: its head not yet read
    assert budget.used == 0
    assert parser.gap(10) == [kept(10, "a bitfield message of length 301")]
    assert budget.used == 301 - 3  # all of it but the id and 2 bytes captured
    assert parser.feed(BITFIELD[17:]) == [ev.Bitfield(BITS[:2] + bytes(10) + BITS[12:], missing=10, filled=10)]
    assert budget.used == 0
    # All of the budget is free again for the next one.
    big = wb.bitfield(bytes(900))  # length prefix 901: 892 bytes to hold after a head of 9
    assert parser.feed(big[:13]) == []
    assert budget.used == 892
    assert parser.feed(big[13:]) == [ev.Bitfield(bytes(900))]
    assert budget.used == 0


def test_a_bitfield_cut_by_a_hole_past_the_budget_is_counted_past() -> None:
    budget = Budget(1000)
    budget.used = 800  # other parsers hold this much: 298 more would pass the limit
    parser = after_handshake(partial=budget)
    assert parser.feed(BITFIELD[:7]) == []
    # Listed at once, with what was captured of it; the rest is counted past, and the
    # limit that made it so is named.
    assert parser.gap(10) == [
        kept(10, "a bitfield message of length 301"),
        ev.Finding("limit", "a bitfield message of length 301: holding it would pass the bytes of unfinished "
                            "messages held over all flows (--max-partial-total 1000); skipped"),
        ev.Bitfield(BITS[:2], missing=298)]
    assert budget.used == 800
    assert parser.feed(BITFIELD[17:]) == []
    assert parser.feed(wb.have(4)) == [ev.Have(4)]
    assert budget.used == 800


# ---------------------------------------------------------------- a cut message after a whole one


def test_a_bitfield_cut_after_a_long_message_still_lists_its_bytes() -> None:
    parser = after_handshake()
    first = wb.extended(0, wb.bencode({b"m": {b"ut_pex": 1}}))  # longer than any head: read as a body
    (extended,) = parser.feed(first)
    assert extended.ext_name == "handshake"
    bits = b"\xc3" * 20
    out = parser.feed(wb.bitfield(bits)[:8])  # prefix, id, bits[0:3]
    out += parser.gap(17 + 30)  # the other 17 bytes of it and 30 beyond
    assert out == [ev.Bitfield(bits[:3], missing=17), ev.Finding("hole", f"30 bytes {LOST}")]


# ---------------------------------------------------------------- requested blocks


def test_a_block_that_arrived_is_no_longer_awaited_after_a_hole() -> None:
    """Had the block stayed requested, the hunt after the hole would first wait for where
    its payload would end (the hole might have held its piece header)."""
    parser = PeerWireParser(handshake=False)
    parser.expect(1, 0, 100)
    assert parser.feed(wb.piece(1, 0, b"\x01" * 100)) == [ev.Piece(1, 0, 100)]
    assert parser.expected == {}
    assert parser.gap(20) == [ev.Finding("hole", f"20 bytes {LOST}")]
    # Three haves (9 bytes each) right after the hole: enough to put the framing back there.
    assert parser.feed(wb.have(7) + wb.have(8) + wb.have(9)) == [
        ev.Finding("resync", "next message found after 20 bytes (after a hole)"),
        ev.Have(7), ev.Have(8), ev.Have(9),
    ]


def test_a_block_that_was_not_requested_leaves_the_requests_alone() -> None:
    parser = PeerWireParser(handshake=False)
    parser.expect(1, 0, 100)
    assert parser.feed(wb.piece(2, 0, b"\x02" * 50)) == [ev.Piece(2, 0, 50)]
    assert parser.expected == {(1, 0, 100): None}


def test_a_kept_payload_with_a_hole_is_not_kept() -> None:
    """The block's bytes are handed over only when every one of them was captured."""
    wire = wb.piece(3, 0, bytes(range(100)))  # the payload is wire[13:113]
    parser = PeerWireParser(handshake=False, keep_payload=True)
    out = parser.feed(wire[:43]) + parser.gap(30) + parser.feed(wire[73:])
    assert out == [ev.Finding("hole", "30 bytes of piece 3:0 (100 bytes) not captured"),
                   ev.Piece(3, 0, 100, missing=30)]
    assert out[1].data is None  # ``data`` is left out of Piece's equality
    (whole,) = parser.feed(wire)
    assert (whole.missing, whole.data) == (0, bytes(range(100)))


# ---------------------------------------------------------------- message texts


@pytest.mark.parametrize("body, detail", [
    pytest.param(b"\x07" + bytes(4), "piece with length 5, at least 9 expected", id="piece"),
    pytest.param(b"\x14", "extended with length 1, at least 2 expected", id="extended"),
    pytest.param(b"\x16" + bytes(47), "hashes with length 48, at least 49 expected", id="hashes"),
])
def test_too_short_messages_say_what_they_are_and_how_long(body: bytes, detail: str) -> None:
    parser = PeerWireParser(handshake=False)
    assert parser.feed(wb.raw(body) + wb.have(2)) == [ev.Finding("malformed", detail), ev.Have(2)]


def test_an_unnamed_extension_without_the_receivers_handshake_is_named_so() -> None:
    parser = PeerWireParser(handshake=False)
    assert parser.feed(wb.extended(3, b"\x01")) == [
        ev.Finding("unnamed_extension", "extended message 3 (unnamed): not bencoded, and the receiver's "
                                        "extension handshake naming it was not captured"),
        ev.Extended(3, None, None, 1, 3),
    ]


def test_ut_pex_lists_with_bytes_left_over_are_malformed_each() -> None:
    added = bytes([192, 0, 2, 1]) + struct.pack(">H", 6881) + b"\x07"  # one peer and a byte
    dropped = (bytes([198, 51, 100, 2]) + struct.pack(">H", 6882)
               + bytes([203, 0, 113, 3]) + struct.pack(">H", 80) + b"\x09")  # two peers and a byte
    body = wb.bencode({b"added": added, b"dropped": dropped})
    parser = PeerWireParser(handshake=False)
    parser.ext_names = {1: "ut_pex"}
    data = {"added": ["192.0.2.1:6881"], "dropped": ["198.51.100.2:6882", "203.0.113.3:80"]}
    assert parser.feed(wb.extended(1, body)) == [
        ev.Finding("malformed", "extended message 1 (ut_pex): ut_pex added of 7 bytes: "
                                "1 left over after 1 whole 6-byte entry"),
        ev.Finding("malformed", "extended message 1 (ut_pex): ut_pex dropped of 13 bytes: "
                                "1 left over after 2 whole 6-byte entries"),
        ev.Extended(1, "ut_pex", data, 0, 2 + len(body)),
    ]


def test_the_extension_handshake_stays_while_other_extended_messages_come() -> None:
    parser = PeerWireParser(handshake=False)
    handshake = {"m": {"ut_metadata": 2}, "v": "TR 3.00"}
    sent = b"d1:md11:ut_metadatai2ee1:v7:TR 3.00e"  # 36 bytes
    assert parser.feed(wb.extended(0, sent)) == [ev.Extended(0, "handshake", handshake, 0, 2 + 36)]
    parser.ext_names = {3: "ut_metadata"}
    request = wb.bencode({b"msg_type": 0, b"piece": 0})
    assert parser.feed(wb.extended(3, request)) == [
        ev.Extended(3, "ut_metadata", {"msg_type": 0, "piece": 0}, 0, 2 + len(request))]
    # ``ext_handshake`` is the parser's public record of this side's BEP 10 handshake.
    assert parser.ext_handshake == handshake
