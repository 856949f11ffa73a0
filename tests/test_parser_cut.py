"""Messages cut by bytes the capture lacks (a hole, a snap length): what the parser still
reports of them, counted by hand from BEP 3/10/52 layouts.

They exist because mutation testing found these reports unchecked: the lost and
zero-filled byte counts of a bitfield read on past two holes (the JSON ``missing`` and
``size``), the name of an extended message whose body was lost (``ext_name``: "handshake"
for BEP 10 extension id 0, else the name the receiver's ``m`` dictionary gave the id), the
message and peer id kept when a hole runs past the end of the message or handshake being
read, a hole just after a length prefix, and the text of the malformed-hashes finding.

Layouts (BEP 3): a handshake is 1 + 19 + 8 (reserved) + 20 (info hash) + 20 (peer id)
bytes; a message is a 4-byte length prefix counting the id byte and the payload.
"""
from __future__ import annotations

import pytest

import wirebuild as wb
from inspector import events as ev
from inspector.parser import PeerWireParser

INFO_HASH = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f9001122334")
PEER = b"-qB4650-A1b2C3d4E5f6"
HS = wb.handshake(INFO_HASH, PEER)
NAMES = {3: "ut_metadata"}  # the receiver's extension handshake said m = {"ut_metadata": 3}
BENCODED = wb.bencode({b"msg_type": 0, b"piece": 0})  # 25 bytes of some extended body


def after_handshake(ext_names: dict[int, str] | None = None) -> PeerWireParser:
    parser = PeerWireParser()
    if ext_names:
        parser.ext_names = dict(ext_names)
    assert parser.feed(HS) == [ev.Handshake(bytes(8), INFO_HASH, PEER)]
    return parser


def hole(n: int, what: str) -> ev.Finding:
    return ev.Finding("hole", f"{n} bytes not captured inside {what}; framing kept")


# ---------------------------------------------------------------- holes inside a bitfield


BITS = bytes(range(1, 21))  # a bitfield of 20 bytes: length prefix 21
BITFIELD = wb.bitfield(BITS)  # 4 + 1 + 20 bytes; BITS[i] is BITFIELD[5 + i]


def test_two_holes_inside_a_bitfield_are_both_counted():
    parser = after_handshake()
    out = parser.feed(BITFIELD[:7])  # prefix, id, BITS[0:2]
    out += parser.gap(3)  # BITS[2:5]
    out += parser.feed(BITFIELD[10:12])  # BITS[5:7]
    out += parser.gap(4)  # BITS[7:11]
    out += parser.feed(BITFIELD[16:])  # BITS[11:20]
    bits = BITS[0:2] + bytes(3) + BITS[5:7] + bytes(4) + BITS[11:20]
    what = "a bitfield message of length 21"
    assert out == [hole(3, what), hole(4, what), ev.Bitfield(bits, missing=7, filled=7)]
    (bitfield,) = out[2:]
    # What the JSON record shows: the length prefix as size, and the lost bytes.
    assert bitfield.size == 21 and bitfield.missing == 7
    assert parser.feed(wb.have(9)) == [ev.Have(9)]


def test_a_bitfield_cut_after_another_one_counts_no_zeros_of_it():
    parser = after_handshake()
    first = parser.feed(BITFIELD[:7]) + parser.gap(3) + parser.feed(BITFIELD[10:])
    assert first[1:] == [ev.Bitfield(BITS[0:2] + bytes(3) + BITS[5:], missing=3, filled=3)]
    second = wb.bitfield(b"\xaa" * 10)  # length prefix 11
    out = parser.feed(second[:9])  # prefix, id, 4 bytes of bits
    out += parser.gap(6)  # the other 6 bytes: the hole reaches its end, nothing after it
    assert out == [hole(6, "a bitfield message of length 11"), ev.Bitfield(b"\xaa" * 4, missing=6, filled=0)]
    assert out[1].size == 11
    assert parser.feed(wb.have(9)) == [ev.Have(9)]


# ---------------------------------------------------------------- an extended body lost whole


@pytest.mark.parametrize("ext_id, names, name", [
    pytest.param(0, None, "handshake", id="handshake"),
    pytest.param(3, NAMES, "ut_metadata", id="named"),
    pytest.param(7, NAMES, None, id="unnamed"),
])
def test_an_extended_message_whose_body_after_its_id_was_lost(ext_id: int, names: dict | None, name: str | None):
    message = wb.extended(ext_id, BENCODED)  # length prefix 1 + 1 + 25 = 27
    parser = after_handshake(names)
    out = parser.feed(message[:6])  # prefix, id 20, extension id
    out += parser.gap(25)  # the whole bencoded body, to the message's last byte
    assert out == [hole(25, "an extended message of length 27"),
                   ev.Extended(ext_id, name, None, 0, 27, missing=25)]
    assert parser.feed(wb.have(9)) == [ev.Have(9)]


# ---------------------------------------------------------------- holes running past the end


def test_a_hole_past_the_end_of_a_bitfield_still_lists_it():
    parser = after_handshake()
    out = parser.feed(BITFIELD[:7])  # prefix, id, BITS[0:2]: its head not yet read
    out += parser.gap(18 + 40)  # the other 18 bytes of it and 40 beyond
    assert out[0] == ev.Bitfield(BITS[0:2], missing=18)
    assert out[0].size == 21
    assert out[1:] == [ev.Finding("hole", "40 bytes not captured; framing lost, looking for the next message")]


@pytest.mark.parametrize("ext_id, names, name", [
    pytest.param(0, None, "handshake", id="handshake"),
    pytest.param(0, NAMES, "handshake", id="handshake_named"),
    pytest.param(3, NAMES, "ut_metadata", id="named"),
    pytest.param(7, NAMES, None, id="unnamed"),
])
def test_a_hole_past_the_end_of_an_extended_message_still_lists_it(ext_id: int, names: dict | None,
                                                                    name: str | None):
    message = wb.extended(ext_id, BENCODED)  # length prefix 27
    parser = after_handshake(names)
    out = parser.feed(message[:6])  # prefix, id 20, extension id
    out += parser.gap(25 + 40)
    assert out == [ev.Extended(ext_id, name, None, 0, 27, missing=25),
                   ev.Finding("hole", "40 bytes not captured; framing lost, looking for the next message")]


def test_a_handshake_cut_in_its_peer_id_keeps_the_part_captured():
    parser = PeerWireParser()
    out = parser.feed(HS[:48 + 7])  # everything up to the info hash, then 7 bytes of the peer id
    out += parser.gap(13)  # the other 13 bytes of the peer id
    assert out == [hole(13, "the handshake"), ev.Handshake(bytes(8), INFO_HASH, PEER[:7])]
    # The parser's public record of the handshake (the replayer reads it the same way) agrees
    # with the event, and a handshake seen means the stream's start was captured.
    assert parser.peer_id == PEER[:7]
    assert parser.midstream is False
    assert parser.feed(wb.have(9)) == [ev.Have(9)]


def test_a_hole_right_after_a_length_prefix_costs_that_message_only():
    parser = after_handshake()
    out = parser.feed(wb.have(7)[:4])  # length prefix 5, nothing of the message itself
    out += parser.gap(5)
    assert out == [hole(5, "a message of length 5")]
    assert parser.feed(wb.have(8)) == [ev.Have(8)]


# ---------------------------------------------------------------- BEP 52 hashes


ROOT = bytes(range(100, 132))
HASH = bytes(range(200, 232))


@pytest.mark.parametrize("extra", [0, 5, 31])
def test_hashes_that_are_not_a_whole_number_of_hashes(extra: int):
    # BEP 52: id 22, pieces root (32), base layer, index, length, proof layers (4 each), hashes.
    message = wb.msg(22, ROOT + bytes([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]) + HASH + bytes(extra))
    parser = after_handshake()
    out = parser.feed(message)
    hashes = ev.Hashes(ROOT, 1, 2, 3, 4, (HASH,))
    if extra:
        size = 1 + 48 + 32 + extra
        assert out == [ev.Finding("malformed", f"hashes with length {size}: not a whole number of hashes"), hashes]
    else:
        assert out == [hashes]


# ---------------------------------------------------------------- the stream ends inside a message


# 1: a byte of the length prefix; 4: the prefix, no id; 5: prefix and id; 6: and a byte
# of the bits; 24: one byte short of the end. Every byte captured counts.
@pytest.mark.parametrize("cut", [1, 4, 5, 6, 24])
def test_a_stream_that_ends_inside_a_bitfield_says_how_much_of_it_came(cut):
    parser = after_handshake()
    assert parser.feed(BITFIELD[:cut]) == []
    assert parser.end() == [ev.Finding("truncated", f"stream ended inside a message ({cut} of its bytes seen)")]


@pytest.mark.parametrize("cut", [1, 19, 28, 48, 67])
def test_a_stream_that_ends_inside_the_handshake_says_how_much_of_it_came(cut):
    parser = PeerWireParser()
    parser.feed(HS[:cut])
    assert parser.end()[-1] == ev.Finding("truncated", f"stream ended inside a message ({cut} of its bytes seen)")
