"""PeerWireParser: every case fed three ways (whole, byte by byte, with the start of the
next message trailing), findings, gaps, end of stream, and property tests."""
from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wirebuild as wb
from inspector import events as ev
from inspector.extensions import extension_names
from inspector.parser import AFTER_MSE, PeerWireParser

INFO_HASH = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f9001122334")
PEER_A = b"-qB4650-" + b"A1b2C3d4E5f6"
PEER_B = b"-TR4050-" + b"zyxwvutsrqpo"
ROOT = bytes(range(100, 132))

# The message that follows every case in the "trailing bytes" run: only its first
# bytes are fed with the case, the rest afterwards must complete it.
NEXT_INDEX = 0x01020304
NEXT = wb.have(NEXT_INDEX)
TRAIL = 6  # length prefix, id and one byte of the index

EVENT_CLASSES = tuple(
    obj for obj in vars(ev).values()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == ev.__name__
)


def messages(events: list) -> list:
    """The messages among events (findings left out; late events unwrapped)."""
    plain = [e[0] if isinstance(e, tuple) else e for e in events]
    return [e for e in plain if e.type != "finding"]


def GAP(n: int) -> tuple:
    return ("gap", n)


END = ("end",)


def _apply(parser: PeerWireParser, op, bytewise: bool) -> list:
    if isinstance(op, (bytes, bytearray)):
        if bytewise:
            out = []
            for i in range(len(op)):
                out += parser.feed(op[i : i + 1])
            return out
        return parser.feed(op)
    if op[0] == "gap":
        return parser.gap(op[1])
    assert op == END
    return parser.end()


def _state(parser: PeerWireParser) -> tuple:
    return (bool(parser.stopped), parser.reserved, parser.info_hash, parser.peer_id, parser.ext_handshake)


def run3(*ops, trailer: bool = True, ext_names: dict | None = None, **parser_kw):
    """Run ``ops`` (bytes, GAP(n), END) three ways and check they agree.

    (a) each bytes op fed at once, (b) byte by byte, (c) as (a) with the first
    bytes of the next message appended to the input: those must add nothing, and
    feeding the rest of that message must complete it (unless decoding stopped).
    Returns the events of run (a) and its parser.
    """
    runs = []
    modes = ("whole", "bytewise", "trailer") if trailer else ("whole", "bytewise")
    for mode in modes:
        parser = PeerWireParser(**parser_kw)
        if ext_names is not None:
            parser.ext_names = dict(ext_names)
        seq = list(ops)
        if mode == "trailer":
            assert END not in seq, "nothing can trail the end of the stream"
            if seq and isinstance(seq[-1], (bytes, bytearray)):
                seq[-1] = seq[-1] + NEXT[:TRAIL]
            else:
                seq.append(NEXT[:TRAIL])
        events = []
        for op in seq:
            events += _apply(parser, op, mode == "bytewise")
        if mode == "trailer":
            rest = parser.feed(NEXT[TRAIL:])
            assert rest == ([] if parser.stopped else [ev.Have(NEXT_INDEX)]), (
                f"the message trailing the case did not decode as expected (stopped={parser.stopped!r}): {rest}")
        runs.append((mode, events, parser))
    (_, expected, first), *others = runs
    for mode, events, parser in others:
        assert events == expected, f"{mode} feed differs from whole feed"
        assert _state(parser) == _state(first), f"{mode} feed leaves a different parser state"
    for event in expected:
        assert isinstance(event, EVENT_CLASSES)
    return expected, first


def kinds(events) -> list[str]:
    plain = [e[0] if isinstance(e, tuple) else e for e in events]
    return [e.kind if isinstance(e, ev.Finding) else e.type for e in plain]


# ---------------------------------------------------------------- handshake


def test_event_classes_match_the_message_types():
    assert {cls.type for cls in EVENT_CLASSES} == set(ev.MESSAGE_TYPES) | {"finding"}


@pytest.mark.parametrize(
    "reserved, peer_id",
    [
        # initiator: extension protocol, fast, DHT
        (bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05]), PEER_A),
        # responder: no bits, another peer id
        (bytes(8), PEER_B),
        # all bits set
        (b"\xff" * 8, PEER_A),
    ],
)
def test_handshake(reserved, peer_id):
    data = wb.handshake(INFO_HASH, peer_id, reserved)
    events, parser = run3(data)
    assert events == [ev.Handshake(reserved, INFO_HASH, peer_id)]
    assert (parser.reserved, parser.info_hash, parser.peer_id) == (reserved, INFO_HASH, peer_id)
    assert not parser.stopped
    assert events[0].size == 68 and events[0].id is None and events[0].type == "handshake"


def test_handshake_both_directions_then_messages():
    a = PeerWireParser()
    b = PeerWireParser()
    out_a = a.feed(wb.handshake(INFO_HASH, PEER_A, bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04])) + wb.interested())
    out_b = b.feed(wb.handshake(INFO_HASH, PEER_B) + wb.unchoke())
    assert out_a == [ev.Handshake(bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04]), INFO_HASH, PEER_A), ev.Interested()]
    assert out_b == [ev.Handshake(bytes(8), INFO_HASH, PEER_B), ev.Unchoke()]


def test_peer_id_in_a_later_feed_than_info_hash():
    data = wb.handshake(INFO_HASH, PEER_A, b"\x80" + bytes(7))
    parser = PeerWireParser()
    assert parser.feed(data[:48]) == []  # 1 + 19 + 8 + 20: up to the end of the info hash
    assert parser.reserved == b"\x80" + bytes(7)
    assert parser.info_hash == INFO_HASH
    assert parser.peer_id is None
    assert parser.feed(data[48:60]) == []
    assert parser.peer_id is None
    assert parser.feed(data[60:]) == [ev.Handshake(b"\x80" + bytes(7), INFO_HASH, PEER_A)]
    assert parser.peer_id == PEER_A


def test_without_handshake_starts_at_a_length_prefix():
    events, _ = run3(wb.have(7), handshake=False)
    assert events == [ev.Have(7)]


@pytest.mark.parametrize("pstrlen", [18, 20, 0, 255])
def test_wrong_pstrlen_stops(pstrlen):
    data = wb.handshake(INFO_HASH, PEER_A, pstrlen=pstrlen) + wb.have(1)
    events, parser = run3(data)
    assert kinds(events) == ["bad_protocol"]
    assert parser.stopped
    assert parser.feed(wb.handshake(INFO_HASH, PEER_A) + wb.have(2)) == []
    assert parser.gap(5) == [] and parser.end() == []


@pytest.mark.parametrize("pstr", [b"BitTorrent protocoX", b"bittorrent protocol", b"\x00" * 19])
def test_wrong_protocol_name_stops(pstr):
    data = wb.handshake(INFO_HASH, PEER_A, pstr=pstr) + wb.have(1)
    events, parser = run3(data)
    assert kinds(events) == ["bad_protocol"]
    assert parser.stopped
    assert parser.info_hash is None and parser.peer_id is None
    assert parser.feed(wb.have(2)) == []


def test_http_request_is_bad_protocol():
    events, parser = run3(b"GET /announce?info_hash=x HTTP/1.1\r\n\r\n")
    assert kinds(events) == ["bad_protocol"] and parser.stopped


# ---------------------------------------------------------------- messages


MESSAGE_CASES = [
    ("keepalive", wb.keepalive(), ev.KeepAlive(), None, 0),
    ("choke", wb.choke(), ev.Choke(), 0, 1),
    ("unchoke", wb.unchoke(), ev.Unchoke(), 1, 1),
    ("interested", wb.interested(), ev.Interested(), 2, 1),
    ("not_interested", wb.not_interested(), ev.NotInterested(), 3, 1),
    ("have", wb.have(0xFFFFFFFE), ev.Have(0xFFFFFFFE), 4, 5),
    ("bitfield", wb.bitfield(b"\xff\x0f\x80"), ev.Bitfield(b"\xff\x0f\x80"), 5, 4),
    ("bitfield_empty", wb.bitfield(b""), ev.Bitfield(b""), 5, 1),
    ("request", wb.request(1, 16384, 16384), ev.Request(1, 16384, 16384), 6, 13),
    ("piece", wb.piece(2, 32768, b"x" * 100), ev.Piece(2, 32768, 100), 7, 109),
    ("piece_empty", wb.piece(2, 0, b""), ev.Piece(2, 0, 0), 7, 9),
    ("cancel", wb.cancel(3, 0, 16384), ev.Cancel(3, 0, 16384), 8, 13),
    ("port", wb.port(6881), ev.Port(6881), 9, 3),
    ("suggest", wb.suggest(9), ev.Suggest(9), 13, 5),
    ("have_all", wb.have_all(), ev.HaveAll(), 14, 1),
    ("have_none", wb.have_none(), ev.HaveNone(), 15, 1),
    ("reject", wb.reject(4, 16384, 8192), ev.Reject(4, 16384, 8192), 16, 13),
    ("allowed_fast", wb.allowed_fast(11), ev.AllowedFast(11), 17, 5),
    ("hash_request", wb.hash_request(ROOT, 0, 64, 32, 3), ev.HashRequest(ROOT, 0, 64, 32, 3), 21, 49),
    ("hashes_3", wb.hashes(ROOT, 0, 64, 3, 2, [bytes([i]) * 32 for i in (1, 2, 3)]),
     ev.Hashes(ROOT, 0, 64, 3, 2, tuple(bytes([i]) * 32 for i in (1, 2, 3))), 22, 49 + 96),
    ("hashes_0", wb.hashes(ROOT, 1, 0, 0, 0, []), ev.Hashes(ROOT, 1, 0, 0, 0, ()), 22, 49),
    ("hash_reject", wb.hash_reject(ROOT, 2, 128, 16, 1), ev.HashReject(ROOT, 2, 128, 16, 1), 23, 49),
]


@pytest.mark.parametrize("data, expected, msg_id, size", [c[1:] for c in MESSAGE_CASES],
                         ids=[c[0] for c in MESSAGE_CASES])
def test_message(data, expected, msg_id, size):
    events, parser = run3(data, handshake=False)
    assert events == [expected]
    assert events[0].id == msg_id
    assert events[0].size == size == int.from_bytes(data[:4], "big")
    # and the same after a handshake
    events, _ = run3(wb.handshake(INFO_HASH, PEER_A) + data)
    assert events == [ev.Handshake(bytes(8), INFO_HASH, PEER_A), expected]


def test_all_messages_in_one_stream():
    data = wb.handshake(INFO_HASH, PEER_A) + b"".join(c[1] for c in MESSAGE_CASES)
    events, parser = run3(data)
    assert events == [ev.Handshake(bytes(8), INFO_HASH, PEER_A)] + [c[2] for c in MESSAGE_CASES]
    assert not parser.stopped


def test_bitfield_count():
    (event,), _ = run3(wb.bitfield(b"\xff\x0f\x80"), handshake=False)
    assert event.count == 13


@pytest.mark.parametrize("msg_id", [10, 11, 12, 18, 19, 24, 99, 255])
@pytest.mark.parametrize("body_len", [0, 3, 40])
def test_unknown_ids_kept(msg_id, body_len):
    data = wb.msg(msg_id, bytes(range(body_len)))
    events, _ = run3(data, handshake=False)
    assert events == [ev.Unknown(msg_id, 1 + body_len)]
    assert events[0].type == "unknown"


# Wrong lengths of the fixed-size messages (and too short variable ones); each is
# followed by a have, which must still decode.
WRONG_LENGTHS = [
    (0, 2), (1, 5), (2, 2), (3, 13), (4, 6), (4, 4), (4, 1), (6, 12), (6, 14), (8, 12), (8, 1),
    (9, 2), (9, 4), (13, 6), (14, 2), (15, 5), (16, 12), (16, 17), (17, 4), (21, 48), (21, 50),
    (23, 81), (7, 5), (7, 8), (20, 1), (22, 48), (22, 1),
]


@pytest.mark.parametrize("msg_id, length", WRONG_LENGTHS)
def test_wrong_length_is_malformed_and_decoding_continues(msg_id, length):
    body = bytes([msg_id]) + bytes(range(1, length))
    events, parser = run3(wb.raw(body) + wb.have(5), handshake=False)
    assert kinds(events) == ["malformed", "have"]
    assert events[1] == ev.Have(5)
    assert not parser.stopped


def test_have_with_length_6():
    events, _ = run3(wb.raw(b"\x04\x00\x00\x00\x07\x00") + wb.have(8) + wb.unchoke(), handshake=False)
    assert kinds(events) == ["malformed", "have", "unchoke"]
    assert events[1:] == [ev.Have(8), ev.Unchoke()]
    assert "have" in events[0].detail and "6" in events[0].detail


def test_hashes_not_whole_number_of_hashes():
    data = wb.raw(wb.hashes(ROOT, 0, 0, 2, 0, [b"\x01" * 32, b"\x02" * 32])[4:] + b"\x03" * 10)
    events, _ = run3(data + wb.have(1), handshake=False)
    assert kinds(events) == ["malformed", "hashes", "have"]
    assert events[1].hashes == (b"\x01" * 32, b"\x02" * 32)


# ---------------------------------------------------------------- oversize


def test_oversize_body_skipped_next_message_decodes():
    # the skipped body is full of things that look like messages
    body = (wb.have(1) + wb.choke()) * 30  # 270 bytes
    data = wb.raw(body[:200]) + wb.have(99)
    events, parser = run3(data, handshake=False, max_len=100)
    assert kinds(events) == ["oversize", "have"]
    assert events[1] == ev.Have(99)
    assert not parser.stopped


def test_oversize_piece_emits_no_piece():
    data = wb.piece(1, 0, b"p" * 300) + wb.interested()
    events, _ = run3(data, handshake=False, max_len=100)
    assert kinds(events) == ["oversize", "interested"]


def test_length_equal_to_max_len_accepted():
    data = wb.bitfield(b"\xaa" * 99) + wb.bitfield(b"\xaa" * 100)
    events, _ = run3(data + wb.have(3), handshake=False, max_len=100)
    assert events[0] == ev.Bitfield(b"\xaa" * 99)
    assert kinds(events) == ["bitfield", "oversize", "have"]


def test_default_max_len_huge_prefix():
    events, parser = run3(b"\xff\xff\xff\xff" + b"junk", handshake=False, trailer=False)
    assert kinds(events) == ["oversize"]
    assert not parser.stopped and len(parser._buf) == 0


# ---------------------------------------------------------------- extended (BEP 10, 9, 11)

HS_B = {
    b"m": {b"ut_metadata": 3, b"ut_pex": 1, b"lt_donthave": 0},
    b"v": b"Transmission 4.0.5",
    b"p": 51413,
    b"reqq": 500,
    b"metadata_size": 31234,
    b"yourip": bytes([192, 0, 2, 7]),
}
HS_B_JSON = {
    "m": {"ut_metadata": 3, "ut_pex": 1, "lt_donthave": 0},
    "v": "Transmission 4.0.5",
    "p": 51413,
    "reqq": 500,
    "metadata_size": 31234,
    "yourip": "192.0.2.7",
}
# A's parser reads what A sends; A sends with the ids B's handshake assigned.
NAMES_FROM_B = {3: "ut_metadata", 1: "ut_pex"}


def test_extension_handshake_decoded():
    body = wb.bencode(HS_B)
    events, parser = run3(wb.extended(0, body), handshake=False)
    assert events == [ev.Extended(0, "handshake", HS_B_JSON, 0, 2 + len(body))]
    assert parser.ext_handshake == HS_B_JSON
    assert events[0].size == 2 + len(body) and events[0].id == 20
    assert extension_names(events[0].data) == NAMES_FROM_B


def test_extension_handshake_ipv6_addresses():
    v6 = bytes.fromhex("20010db8000000000000000000000042")
    body = wb.bencode({b"m": {}, b"yourip": v6, b"ipv6": v6, b"ipv4": bytes([10, 0, 0, 1])})
    (event,), _ = run3(wb.extended(0, body), handshake=False)
    assert event.data == {"m": {}, "yourip": "2001:db8::42", "ipv6": "2001:db8::42", "ipv4": "10.0.0.1"}


def test_ext_names_from_receivers_handshake_end_to_end():
    """B's handshake names ids; A's parser, told them, names A's messages."""
    b = PeerWireParser()
    b.feed(wb.handshake(INFO_HASH, PEER_B, bytes([0, 0, 0, 0, 0, 0x10, 0, 0])) + wb.extended(0, wb.bencode(HS_B)))
    assert b.ext_handshake == HS_B_JSON
    a = PeerWireParser(handshake=False)
    a.ext_names = extension_names(b.ext_handshake)
    (event,) = a.feed(wb.extended(3, wb.bencode({b"msg_type": 0, b"piece": 2})))
    assert (event.ext_id, event.ext_name, event.data) == (3, "ut_metadata", {"msg_type": 0, "piece": 2})


METADATA = b"d4:infod6:lengthi1048576e4:name3:abce" + bytes(range(256)) * 4 + b"eeee"


@pytest.mark.parametrize(
    "head, trailing, expected",
    [
        ({b"msg_type": 0, b"piece": 0}, b"", {"msg_type": 0, "piece": 0}),
        ({b"msg_type": 1, b"piece": 1, b"total_size": 31234}, METADATA,
         {"msg_type": 1, "piece": 1, "total_size": 31234}),
        ({b"msg_type": 2, b"piece": 5}, b"", {"msg_type": 2, "piece": 5}),
    ],
    ids=["request", "data", "reject"],
)
def test_ut_metadata(head, trailing, expected):
    body = wb.bencode(head) + trailing
    events, _ = run3(wb.extended(3, body), handshake=False, ext_names=NAMES_FROM_B)
    assert events == [ev.Extended(3, "ut_metadata", expected, len(trailing), 2 + len(body))]


def test_ut_metadata_data_without_trailer_name_would_be_bad_bencode():
    """Unnamed (the receiver's handshake named other ids), the same data message is not
    one bencoded value: it is reported, not guessed."""
    body = wb.bencode({b"msg_type": 1, b"piece": 0, b"total_size": 3}) + b"xyz"
    events, _ = run3(wb.extended(3, body) + wb.have(1), handshake=False, ext_names={1: "ut_pex"})
    assert kinds(events) == ["bad_bencode", "extended", "have"]
    assert events[1].data is None and events[1].ext_name is None


def test_ut_pex():
    added = wb.compact_v4("198.51.100.1", 6881) + wb.compact_v4("203.0.113.9", 51413)
    dropped = wb.compact_v4("10.1.2.3", 1)
    added6 = wb.compact_v6("2001:db8::1", 6881) + wb.compact_v6("fe80::abcd:1", 65535)
    dropped6 = wb.compact_v6("::1", 80)
    body = wb.bencode({b"added": added, b"dropped": dropped, b"added6": added6, b"dropped6": dropped6})
    (event,), _ = run3(wb.extended(1, body), handshake=False, ext_names=NAMES_FROM_B)
    assert event.ext_id == 1 and event.ext_name == "ut_pex" and event.trailing == 0
    assert event.data == {
        "added": ["198.51.100.1:6881", "203.0.113.9:51413"],
        "dropped": ["10.1.2.3:1"],
        "added6": ["[2001:db8::1]:6881", "[fe80::abcd:1]:65535"],
        "dropped6": ["[::1]:80"],
    }


def test_unnamed_extended_decoded_as_plain_bencode():
    body = wb.bencode({b"x": b"\xff\xfe", b"n": [1, b"two"]})
    (event,), _ = run3(wb.extended(42, body), handshake=False, ext_names=NAMES_FROM_B)
    assert event == ev.Extended(42, None, {"x": "fffe", "n": [1, "two"]}, 0, 2 + len(body))


@pytest.mark.parametrize(
    "ext_id, body, kind",
    [(0, b"d3:foo", "bad_bencode"), (0, b"d1:ai1ee" + b"junk", "bad_bencode"), (1, b"not bencode", "bad_bencode"),
     (3, b"zzzz", "bad_bencode"), (0, b"l" * 40 + b"e" * 40, "limit"), (0, b"", "bad_bencode")],
    ids=["unterminated", "junk_after", "pex_garbage", "metadata_garbage", "too_deep", "empty"],
)
def test_bad_bencode(ext_id, body, kind):
    """Too deep is valid bencode (libtorrent allows 100 levels) but above our limit: not decoded either."""
    events, parser = run3(wb.extended(ext_id, body) + wb.have(6), handshake=False, ext_names=NAMES_FROM_B)
    assert kinds(events) == [kind, "extended", "have"]
    extended = events[1]
    assert extended.ext_id == ext_id and extended.data is None and extended.size == 2 + len(body)
    assert extended.trailing == len(body)  # none of it decoded: all of it is raw
    assert events[2] == ev.Have(6)
    assert parser.ext_handshake is None
    assert not parser.stopped


# ---------------------------------------------------------------- piece payloads


def test_piece_streamed_past_in_small_chunks():
    block = os.urandom(16384)
    data = wb.piece(3, 16384, block) + wb.have(1)
    parser = PeerWireParser(handshake=False)
    seen = []
    for start in range(0, len(data), 7):
        out = parser.feed(data[start : start + 7])
        assert len(parser._buf) < 16
        if out:
            seen.append((start, out))
    piece_end = 13 + 16384
    events = [e for _, out in seen for e in out]
    assert events == [ev.Piece(3, 16384, 16384), ev.Have(1)]
    # the piece comes out with the chunk that completes its payload, not before
    assert seen[0][0] <= piece_end - 1 < seen[0][0] + 7


def test_piece_three_ways():
    events, parser = run3(wb.piece(0, 0, b"\x07" * 16384) + wb.piece(1, 16384, b"e" * 5), handshake=False)
    assert events == [ev.Piece(0, 0, 16384), ev.Piece(1, 16384, 5)]
    assert events[0].size == 9 + 16384


# ---------------------------------------------------------------- gap()


def test_gap_inside_piece_payload():
    data = wb.piece(5, 0, bytes(1000))
    events, parser = run3(data[:13 + 100], GAP(300), data[13 + 400 :] + wb.have(2), handshake=False)
    assert kinds(events) == ["hole", "piece", "have"]
    events = [e for e in events if e.type != "finding"]
    assert events[0] == ev.Piece(5, 0, 1000, missing=300)
    assert events[1] == ev.Have(2)
    assert not parser.stopped and not parser.hunting


def test_gap_then_next_piece_has_its_own_missing_count():
    first = wb.piece(5, 0, bytes(100))
    events, _ = run3(first[:20], GAP(50), first[70:] + wb.piece(6, 0, bytes(100)), handshake=False)
    assert [e for e in events if e.type == "piece"] == [ev.Piece(5, 0, 100, missing=50), ev.Piece(6, 0, 100)]


def test_gap_to_the_end_of_piece_payload_keeps_the_framing():
    data = wb.piece(5, 0, bytes(1000))
    events, parser = run3(data[:13 + 100], GAP(900), wb.have(2), handshake=False)
    assert events[1] == ev.Piece(5, 0, 1000, missing=900)
    assert kinds(events) == ["hole", "piece", "have"]
    assert not parser.stopped and not parser.hunting


# What follows a hole in the tests below: a run of messages a resync can confirm.
AFTER = wb.unchoke() + wb.request(1, 0, 16384) + wb.interested()
AFTER_EVENTS = [ev.Unchoke(), ev.Request(1, 0, 16384), ev.Interested()]


def test_gap_across_the_end_of_piece_payload_loses_the_framing():
    """Past the piece's end the hole may hold the start of a message whose rest follows
    it: the parser cannot know, so it looks for the next message instead of guessing."""
    data = wb.piece(5, 0, bytes(1000))
    events, parser = run3(data[:13 + 100], GAP(900 + len(wb.choke())), AFTER, handshake=False, trailer=False)
    assert kinds(events) == ["hole", "piece", "hole", "resync", *kinds(AFTER_EVENTS)]
    assert messages(events) == [ev.Piece(5, 0, 1000, missing=900), *AFTER_EVENTS]


def test_gap_at_message_boundary_hunts():
    events, parser = run3(wb.have(1), GAP(50), AFTER, handshake=False, trailer=False)
    assert messages(events) == [ev.Have(1), *AFTER_EVENTS]
    assert kinds(events)[1:3] == ["hole", "resync"]


def test_gap_then_the_tail_of_a_message_is_not_read_as_a_message():
    """The classic mistake: the hole ends inside a piece, and the payload bytes after it
    would read as a length prefix. Nothing is reported until a real message is found."""
    payload = bytes([0x00, 0x00, 0x00, 0x05, 0x04]) + os.urandom(3000)  # looks like a have
    data = wb.have(1) + wb.piece(2, 0, payload) + AFTER
    cut = len(wb.have(1)) + 13 + 500  # the piece's header and start are lost
    events, parser = run3(data[:len(wb.have(1))], GAP(13 + 500), data[cut:], handshake=False, trailer=False)
    assert messages(events) == [ev.Have(1), *AFTER_EVENTS]


def test_requested_piece_is_found_on_its_own():
    """A piece block the other side asked for is certain by itself, even when the
    message after it was not captured (a snap-length cut)."""
    block = os.urandom(16384)
    data = wb.piece(7, 16384, block)
    parser = PeerWireParser(handshake=False)
    parser.expect(7, 16384, 16384)
    events = parser.feed(wb.have(1)) + parser.gap(40) + parser.feed(os.urandom(30) + data[:200])
    events += parser.gap(len(data) - 200)
    assert ev.Piece(7, 16384, 16384, missing=16384 - 187) in events
    assert not parser.hunting


def test_unrequested_piece_alone_is_not_enough():
    parser = PeerWireParser(handshake=False)
    events = parser.feed(wb.have(1)) + parser.gap(40) + parser.feed(wb.piece(7, 0, bytes(100))[:60])
    events += parser.gap(1000)
    assert messages(events) == [ev.Have(1)] and parser.hunting


def test_gap_inside_a_known_message_keeps_the_framing():
    body = wb.bencode({b"m": {b"ut_pex": 1}, b"v": b"x" * 200})
    data = wb.extended(0, body)
    events, parser = run3(data[:40], GAP(100), data[140:] + wb.have(2), handshake=False)
    # missing counts the hole's bytes only: the body's bytes after it were captured.
    assert messages(events) == [ev.Extended(0, "handshake", None, 0, len(body) + 2, missing=100), ev.Have(2)]
    assert not parser.hunting


def test_a_bitfield_with_a_hole_inside_keeps_each_captured_byte_at_its_place():
    """Byte i of a bitfield is pieces 8i..8i+7: the bytes after the hole keep their pieces."""
    data = wb.bitfield(b"\xff" * 4 + b"\x0f" * 4 + b"\x01" * 4)
    events, _ = run3(data[:9], GAP(4), data[13:] + wb.have(2), handshake=False)
    assert messages(events) == [ev.Bitfield(b"\xff" * 4 + bytes(4) + b"\x01" * 4, missing=4, filled=4), ev.Have(2)]
    bitfield = messages(events)[0]
    assert (bitfield.size, bitfield.count) == (13, 32 + 4)
    have = [i for i in range(96) if bitfield.bits[i // 8] & (0x80 >> (i % 8))]
    assert have == [*range(32), 71, 79, 87, 95]


def test_a_bitfield_with_a_hole_inside_and_one_past_its_end_counts_both():
    """The first hole is zeros in place; the second runs past the message's end, so the
    bitfield's tail is absent, and the next message is hunted for."""
    data = wb.bitfield(b"\xff" * 4 + b"\x0f" * 4 + b"\x01" * 4)
    events, _ = run3(data[:9], GAP(4), data[13:15], GAP(4), wb.have(2)[2:] + AFTER, handshake=False, trailer=False)
    bitfield = messages(events)[0]
    assert bitfield == ev.Bitfield(b"\xff" * 4 + bytes(4) + b"\x01" * 2, missing=6, filled=4)
    assert bitfield.size == 13


def test_gap_mid_bitfield_reports_what_was_captured():
    data = wb.bitfield(b"\xff" * 10)
    events, parser = run3(data[:8], GAP(len(data) - 8), wb.have(2), handshake=False)
    assert messages(events)[0] == ev.Bitfield(b"\xff" * 3, missing=7)
    assert messages(events)[0].size == 11 and messages(events)[1] == ev.Have(2)


@pytest.mark.parametrize("cut", [1, 3])
def test_gap_inside_a_length_prefix_hunts(cut):
    events, parser = run3(wb.have(1)[:cut], GAP(3), wb.have(1)[cut + 3 :] + AFTER, handshake=False, trailer=False)
    assert messages(events) == AFTER_EVENTS


def test_gap_mid_handshake_keeps_the_framing():
    events, parser = run3(wb.handshake(INFO_HASH, PEER_A)[:30], GAP(10), wb.handshake(INFO_HASH, PEER_A)[40:]
                          + wb.have(1))
    assert messages(events) == [ev.Have(1)]
    assert kinds(events) == ["hole", "have"]


def test_gap_at_the_start_of_a_handshake_stream_hunts():
    events, parser = run3(GAP(68), AFTER, trailer=False)
    assert messages(events) == AFTER_EVENTS
    assert "bad_protocol" not in kinds(events)


def test_unknown_gap_is_a_barrier():
    """After lost uTP packets nothing can be counted across the hole: a message is found
    only from bytes after it."""
    events, parser = run3(wb.have(1), GAP(-1), wb.piece(1, 0, bytes(100))[50:] + AFTER, handshake=False, trailer=False)
    assert messages(events) == [ev.Have(1), *AFTER_EVENTS]


@pytest.mark.parametrize(
    "before",
    [b"", wb.have(1), wb.piece(1, 0, bytes(100))[:50], wb.have(1)[:3]],
    ids=["start", "boundary", "in_piece", "mid_message"],
)
def test_gap_unknown_count_resumes_at_the_next_message(before):
    ops = (before, GAP(-1), AFTER) if before else (GAP(-1), AFTER)
    events, parser = run3(*ops, handshake=False, trailer=False)
    assert messages(events)[-3:] == AFTER_EVENTS
    assert not parser.stopped and not parser.hunting


def test_framing_never_found_is_said_at_the_end():
    events, parser = run3(wb.have(1), GAP(10), os.urandom(500), END, handshake=False, trailer=False)
    assert messages(events) == [ev.Have(1)]
    assert kinds(events)[-1] == "resync" and parser.stopped


def test_stream_ending_on_a_boundary_confirms_the_last_messages():
    events, parser = run3(wb.have(1), GAP(10), wb.request(1, 0, 16384), END, handshake=False, trailer=False)
    assert messages(events) == [ev.Have(1), ev.Request(1, 0, 16384)]


def test_late_events_carry_the_tag_of_the_bytes_that_completed_them():
    parser = PeerWireParser(handshake=False)
    out = parser.feed(wb.have(1), "f1") + parser.gap(10, "f2")
    out += parser.feed(wb.request(1, 0, 16384)[:10], "f3")
    out += parser.feed(wb.request(1, 0, 16384)[10:] + wb.unchoke()[:2], "f4")
    out += parser.feed(wb.unchoke()[2:] + wb.interested(), "f5")
    tagged = [(e[0], e[1]) if isinstance(e, tuple) else (e, "now") for e in out]
    # completed by earlier bytes: their tag; completed by the bytes fed now: plain
    assert (ev.Request(1, 0, 16384), "f4") in tagged and (ev.Unchoke(), "now") in tagged


def test_midstream_parser_hunts_from_the_start_and_still_takes_a_handshake():
    data = wb.piece(3, 0, os.urandom(5000)) + AFTER
    parser = PeerWireParser(midstream=True)
    events = parser.feed(data[1000:]) + parser.end()
    assert messages(events) == AFTER_EVENTS
    parser = PeerWireParser(midstream=True)
    events = parser.feed(wb.handshake(INFO_HASH, PEER_A) + wb.have(3)) + parser.end()
    assert messages(events) == [ev.Handshake(bytes(8), INFO_HASH, PEER_A), ev.Have(3)]


# ---------------------------------------------------------------- end()


@pytest.mark.parametrize("cut", [1, 4, 5, 8])
def test_end_mid_message_truncated(cut):
    events, parser = run3(wb.have(1) + wb.request(1, 2, 3)[:cut], END, handshake=False, trailer=False)
    assert kinds(events) == ["have", "truncated"]
    assert parser.stopped


def test_end_mid_handshake_truncated():
    events, parser = run3(wb.handshake(INFO_HASH, PEER_A)[:1], END, trailer=False)
    assert kinds(events) == ["truncated"]
    events, parser = run3(wb.handshake(INFO_HASH, PEER_A)[:50], END, trailer=False)
    assert kinds(events) == ["truncated"]


def test_end_mid_piece_names_the_piece():
    data = wb.piece(3, 16384, bytes(1000))
    events, parser = run3(data[:13 + 400], END, handshake=False, trailer=False)
    assert kinds(events) == ["truncated"]
    assert "3:16384" in events[0].detail and "600" in events[0].detail
    assert parser.stopped


def test_end_mid_oversize_body_does_not_name_a_piece():
    events, parser = run3(wb.raw(bytes(300))[:100], END, handshake=False, max_len=100, trailer=False)
    assert kinds(events) == ["oversize", "truncated"]
    assert "piece" not in events[1].detail


@pytest.mark.parametrize(
    "data, handshake",
    [(b"", True), (b"", False), (wb.handshake(INFO_HASH, PEER_A), True), (wb.have(1) + wb.keepalive(), False),
     (wb.piece(1, 0, bytes(10)), False)],
    ids=["nothing_hs", "nothing", "after_handshake", "after_message", "after_piece"],
)
def test_end_at_boundary_is_clean(data, handshake):
    parser = PeerWireParser(handshake=handshake)
    parser.feed(data)
    assert parser.end() == []
    assert not parser.stopped


# ---------------------------------------------------------------- properties

KNOWN_IDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20, 21, 22, 23, 11, 200]


@st.composite
def messy_stream(draw):
    """Byte soup near the wire format: length prefixes and ids, right or wrong."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            parts.append(draw(st.binary(max_size=40)))
        elif choice == 1:
            body = bytes([draw(st.sampled_from(KNOWN_IDS))]) + draw(st.binary(max_size=60))
            parts.append(wb.raw(body))
        elif choice == 2:
            body = bytes([draw(st.sampled_from(KNOWN_IDS))]) + draw(st.binary(max_size=60))
            parts.append(wb.raw(body, draw(st.integers(0, 80))))
        else:
            ext_id = draw(st.sampled_from([0, 1, 3, 9]))
            inner = draw(st.recursive(
                st.integers(-5, 5) | st.binary(max_size=8),
                lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.binary(max_size=6), kids, max_size=3),
                max_leaves=8,
            ))
            body = wb.bencode(inner) + draw(st.binary(max_size=5))
            parts.append(wb.extended(ext_id, body))
    return b"".join(parts)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(st.binary(max_size=300), messy_stream(),
                   messy_stream().map(lambda s: wb.handshake(INFO_HASH, PEER_A) + s)),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    handshake=st.booleans(),
    max_len=st.sampled_from([40, 1 << 24]),
    gaps=st.lists(st.integers(-1, 30), max_size=2),
)
def test_any_input_yields_only_events(data, cuts, handshake, max_len, gaps):
    parser = PeerWireParser(handshake=handshake, max_len=max_len)
    parser.ext_names = {1: "ut_pex", 3: "ut_metadata"}
    events = []
    chunks = split(data, cuts)
    for i, chunk in enumerate(chunks):
        events += parser.feed(chunk)
        if i < len(gaps):
            events += parser.gap(gaps[i])
    events += parser.end()
    assert all(isinstance(e, EVENT_CLASSES) for e in events)
    if parser.stopped:
        assert parser.feed(b"\x00\x00\x00\x01\x02") == []


@st.composite
def valid_message(draw):
    u32 = st.integers(0, 2**32 - 1)
    kind = draw(st.integers(0, 12))
    if kind == 0:
        return wb.keepalive(), ev.KeepAlive()
    if kind == 1:
        i = draw(st.sampled_from([0, 1, 2, 3, 14, 15]))
        cls = {0: ev.Choke, 1: ev.Unchoke, 2: ev.Interested, 3: ev.NotInterested, 14: ev.HaveAll, 15: ev.HaveNone}[i]
        return wb.msg(i), cls()
    if kind == 2:
        n = draw(u32)
        which = draw(st.sampled_from([(wb.have, ev.Have), (wb.suggest, ev.Suggest), (wb.allowed_fast, ev.AllowedFast)]))
        return which[0](n), which[1](n)
    if kind == 3:
        bits = draw(st.binary(max_size=50))
        return wb.bitfield(bits), ev.Bitfield(bits)
    if kind == 4:
        a, b, c = draw(u32), draw(u32), draw(u32)
        which = draw(st.sampled_from([(wb.request, ev.Request), (wb.cancel, ev.Cancel), (wb.reject, ev.Reject)]))
        return which[0](a, b, c), which[1](a, b, c)
    if kind in (5, 6):
        block = draw(st.binary(max_size=300))
        a, b = draw(u32), draw(u32)
        return wb.piece(a, b, block), ev.Piece(a, b, len(block))
    if kind == 7:
        p = draw(st.integers(0, 65535))
        return wb.port(p), ev.Port(p)
    if kind == 8:
        d = draw(st.dictionaries(st.sampled_from([b"a", b"b", b"c"]), st.integers(-9, 9), max_size=3))
        body = wb.bencode(d)
        return wb.extended(7, body), ev.Extended(7, None, {k.decode(): v for k, v in d.items()}, 0, 2 + len(body))
    if kind == 9:
        head = {b"msg_type": 1, b"piece": draw(st.integers(0, 9))}
        tail = draw(st.binary(max_size=40))
        body = wb.bencode(head) + tail
        return wb.extended(3, body), ev.Extended(3, "ut_metadata", {"msg_type": 1, "piece": head[b"piece"]},
                                                  len(tail), 2 + len(body))
    if kind == 10:
        root = draw(st.binary(min_size=32, max_size=32))
        nums = [draw(u32) for _ in range(4)]
        hs = tuple(draw(st.lists(st.binary(min_size=32, max_size=32), max_size=3)))
        return wb.hashes(root, *nums, hs), ev.Hashes(root, *nums, hs)
    if kind == 11:
        root = draw(st.binary(min_size=32, max_size=32))
        nums = [draw(u32) for _ in range(4)]
        which = draw(st.sampled_from([(wb.hash_request, ev.HashRequest), (wb.hash_reject, ev.HashReject)]))
        return which[0](root, *nums), which[1](root, *nums)
    else:
        i = draw(st.sampled_from([10, 11, 12, 18, 19, 30, 255]))
        body = draw(st.binary(max_size=20))
        return wb.msg(i, body), ev.Unknown(i, 1 + len(body))
    reserved = draw(st.binary(min_size=8, max_size=8))
    return None, reserved  # a handshake marker, used only first


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(valid_message(), max_size=15),
    reserved=st.binary(min_size=8, max_size=8),
    peer_id=st.binary(min_size=20, max_size=20),
    cuts=st.lists(st.integers(0, 100_000), max_size=20),
)
def test_valid_stream_split_anywhere_gives_same_events(messages, reserved, peer_id, cuts):
    data = wb.handshake(INFO_HASH, peer_id, reserved) + b"".join(m for m, _ in messages)
    expected = [ev.Handshake(reserved, INFO_HASH, peer_id)] + [e for _, e in messages]
    parser = PeerWireParser()
    parser.ext_names = {3: "ut_metadata"}
    whole = parser.feed(data) + parser.end()
    assert whole == expected
    parser = PeerWireParser()
    parser.ext_names = {3: "ut_metadata"}
    pieces = []
    for chunk in split(data, cuts):
        pieces += parser.feed(chunk)
    assert pieces + parser.end() == expected


# ---------------------------------------------------------------- lenient bencode, binary extension bodies

UNSORTED_HS = b"d1:md11:upload_onlyi3e11:lt_donthavei7e12:ut_holepunchi4ee1:pi6881e1:v7:\xce\xbcT 3.4e"


def test_unsorted_extension_handshake_decoded_with_a_note():
    events, parser = run3(wb.extended(0, UNSORTED_HS) + wb.have(2), handshake=False)
    assert kinds(events) == ["bencode_lenient", "extended", "have"]
    note = events[0]
    assert note.severity == "note" and note.detail == "extended message 0 (handshake): dict keys out of order"
    data = {"m": {"upload_only": 3, "lt_donthave": 7, "ut_holepunch": 4}, "p": 6881, "v": "\u03bcT 3.4"}
    assert events[1] == ev.Extended(0, "handshake", data, 0, 2 + len(UNSORTED_HS))
    assert parser.ext_handshake == data
    assert extension_names(parser.ext_handshake) == {3: "upload_only", 7: "lt_donthave", 4: "ut_holepunch"}


def test_duplicate_keys_in_a_named_message_noted():
    body = b"d1:xi1e1:xi2ee"
    events, _ = run3(wb.extended(9, body), handshake=False, ext_names={9: "lt_tex"})
    assert events == [ev.Finding("bencode_lenient", "extended message 9 (lt_tex): duplicate key 'x'"),
                      ev.Extended(9, "lt_tex", {"x": 2}, 0, 2 + len(body))]


BINARY_NAMES = {3: "upload_only", 7: "lt_donthave", 4: "ut_holepunch", 8: "share_mode"}


@pytest.mark.parametrize(
    "ext_id, payload, data",
    [(3, b"\x01", {"upload_only": 1}), (3, b"\x00", {"upload_only": 0}), (8, b"\x01", {"share_mode": 1}),
     (7, b"\x00\x00\x01\x02", {"index": 258}),
     (4, bytes([2, 0, 192, 0, 2, 7]) + b"\x1a\xe1" + b"\x00\x00\x00\x02",
      {"msg_type": 2, "addr": "192.0.2.7:6881", "err_code": 2})],
    ids=["upload_only_on", "upload_only_off", "share_mode", "lt_donthave", "ut_holepunch_error"],
)
def test_binary_extension_bodies_by_name(ext_id, payload, data):
    events, _ = run3(wb.extended(ext_id, payload), handshake=False, ext_names=BINARY_NAMES)
    assert events == [ev.Extended(ext_id, BINARY_NAMES[ext_id], data, 0, 2 + len(payload))]


@pytest.mark.parametrize("ext_id, payload", [(3, b""), (3, b"\x01\x00"), (7, b"\x00\x01"), (4, bytes([0, 5]) + bytes(10))],
                         ids=["upload_only_empty", "upload_only_long", "lt_donthave_short", "holepunch_addr_type"])
def test_binary_body_of_the_wrong_size_is_malformed(ext_id, payload):
    events, parser = run3(wb.extended(ext_id, payload) + wb.have(6), handshake=False, ext_names=BINARY_NAMES)
    assert kinds(events) == ["malformed", "extended", "have"]
    assert events[0].severity == "error" and BINARY_NAMES[ext_id] in events[0].detail
    assert events[1] == ev.Extended(ext_id, BINARY_NAMES[ext_id], None, len(payload), 2 + len(payload))
    assert not parser.stopped


def test_midstream_utorrent_capture_decodes_its_extension_messages():
    """nDPI's µTorrent capture: every extension handshake decodes (with a note, not
    bad_bencode), and the messages sent after the receiver's handshake are named."""
    from conftest import decode_capture, wild

    messages, findings, _ = decode_capture(wild("ndpi-bittorrent-midstream.pcap"))
    assert not [f for f in findings if "disordered" in f.event.detail]
    assert not [f for f in findings if f.event.kind == "bad_bencode" and "(handshake)" in f.event.detail]
    notes = [f.event for f in findings if f.event.kind == "bencode_lenient"]
    assert notes and {(n.severity, n.detail.split(": ", 1)[1]) for n in notes} == {("note", "dict keys out of order")}
    handshakes: dict[tuple[int, int], dict] = {}
    named = []
    for record in messages:
        event = record.event
        if event.type != "extended":
            continue
        if event.missing:  # a hole in its body: reported with what was captured, not decoded
            assert event.data is None
            continue
        if event.ext_id == 0:
            assert isinstance(event.data, dict) and "m" in event.data
            handshakes[(record.session.id, record.side)] = event.data
            continue
        receiver = handshakes.get((record.session.id, 1 - record.side))
        if receiver is not None and event.ext_id in extension_names(receiver):
            assert event.ext_name == extension_names(receiver)[event.ext_id]
            assert event.data is not None, (record.frame, event)
            named.append(event.ext_name)
    assert len(handshakes) >= 10
    assert {"upload_only", "ut_comment"} <= set(named)


def test_unnamed_binary_extension_without_the_receivers_handshake_is_a_note():
    """µTorrent's upload_only (one byte) on an id whose name was in a handshake the
    capture lost: not a peer's error."""
    parser = PeerWireParser(handshake=False)
    events = parser.feed(wb.extended(3, b"\x01"))
    assert [(e.kind, e.severity) for e in events if e.type == "finding"] == [("unnamed_extension", "note")]
    parser = PeerWireParser(handshake=False)
    parser.ext_names = {1: "ut_pex"}
    events = parser.feed(wb.extended(3, b"\x01"))
    assert [e.kind for e in events if e.type == "finding"] == ["bad_bencode"]


def test_handshake_cut_in_its_peer_id_is_still_reported():
    """tcpdump -s 128 keeps 62 bytes of a 68-byte handshake segment: the info hash is there."""
    data = wb.handshake(INFO_HASH, PEER_A)
    events, parser = run3(data[:62], GAP(6), wb.have(1))
    assert messages(events) == [ev.Handshake(bytes(8), INFO_HASH, PEER_A[:14]), ev.Have(1)]
    assert not parser.hunting


def test_handshake_found_by_a_hunt():
    """After an MSE exchange that selects plaintext, the handshake follows key material:
    a note that says so, not a resync (nothing was lost). Found any other way (a hunt for
    another reason), or a message instead of the handshake, it is a resync."""
    junk = os.urandom(600).replace(b"\x13", b"\x14").replace(b"\x00", b"\x01")
    parser = PeerWireParser(midstream=True, why=AFTER_MSE)
    events = parser.feed(junk + wb.handshake(INFO_HASH, PEER_A) + wb.have(3)) + parser.end()
    assert messages(events) == [ev.Handshake(bytes(8), INFO_HASH, PEER_A), ev.Have(3)]
    assert [(e.kind, e.detail, e.severity) for e in events if e.type == "finding"] == [
        ("mse_plaintext", "an MSE key exchange of 600 bytes, then the handshake in plaintext "
                          "(crypto_select chose plaintext)", "note")]
    parser = PeerWireParser(midstream=True)
    events = parser.feed(junk + wb.handshake(INFO_HASH, PEER_A) + wb.have(3)) + parser.end()
    assert [(e.kind, e.detail) for e in events if e.type == "finding"] == [
        ("resync", "the handshake found after 600 bytes (the connection's start was not captured)")]
    parser = PeerWireParser(midstream=True, handshake=False, why=AFTER_MSE)
    events = parser.feed(junk + wb.have(3) + wb.have(4) + wb.have(5)) + parser.end()
    assert [e.kind for e in events if e.type == "finding"] == ["resync"]


# ---------------------------------------------------------------- losses, as a property


def _message_stream(rng) -> tuple[bytes, list, list[int]]:
    """A plausible conversation's one direction: what a seeder sends, with random payload
    that now and then holds something shaped like a message (a have of a piece the
    torrent has but the sender never announces), and where each message starts."""
    parts, expected = [], []
    pieces = rng.randrange(8, 200)
    bits = bytes(rng.getrandbits(8) for _ in range((pieces + 7) // 8))
    parts.append(wb.bitfield(bits))
    expected.append(ev.Bitfield(bits))
    for _ in range(rng.randrange(5, 40)):
        kind = rng.random()
        if kind < 0.5:
            index, begin = rng.randrange(pieces), rng.randrange(4) * 16384
            block = rng.randbytes(rng.choice([16384, 16384, 3000, 700]))
            if rng.random() < 0.4 and 8 * len(bits) > pieces:
                at = rng.randrange(len(block) - 9)
                block = block[:at] + wb.have(rng.randrange(pieces, 8 * len(bits))) + block[at + 9 :]
            parts.append(wb.piece(index, begin, block))
            expected.append(ev.Piece(index, begin, len(block)))
        elif kind < 0.7:
            index = rng.randrange(pieces)
            parts.append(wb.have(index))
            expected.append(ev.Have(index))
        elif kind < 0.8:
            args = (rng.randrange(pieces), rng.randrange(4) * 16384, 16384)
            parts.append(wb.request(*args))
            expected.append(ev.Request(*args))
        elif kind < 0.9:
            parts.append(wb.keepalive())
            expected.append(ev.KeepAlive())
        else:
            parts.append(wb.unchoke())
            expected.append(ev.Unchoke())
    starts = [0]
    for part in parts:
        starts.append(starts[-1] + len(part))
    return b"".join(parts), expected, starts


def _same_message(got, want) -> bool:
    if isinstance(got, ev.Piece) and isinstance(want, ev.Piece):
        return (got.index, got.begin, got.length) == (want.index, want.begin, want.length)
    if isinstance(got, ev.Bitfield) and isinstance(want, ev.Bitfield):
        # each captured byte at its place; a hole is zeros
        return got.size == want.size and len(got.bits) <= len(want.bits) and \
            all(g in (w, 0) for g, w in zip(got.bits, want.bits))
    return got == want


def assert_sent_in_order(got: list, expected: list) -> None:
    """Every message in ``got`` is one of ``expected``, in the order they were sent."""
    i = 0
    for message in got:
        while i < len(expected) and not _same_message(message, expected[i]):
            i += 1
        assert i < len(expected), f"{message} is not (in order) among what was sent"
        i += 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), start=st.integers(0, 3000),
       cuts=st.lists(st.tuples(st.integers(1, 200_000), st.integers(-1, 20_000), st.booleans()), max_size=6))
def test_losses_never_yield_a_message_the_stream_does_not_hold(seed, start, cuts):
    """Any cut start, any holes (known or unknown size), fed in any chunking: every
    message decoded is one the sender sent, in the order it was sent, and nothing raises."""
    import random

    rng = random.Random(seed)
    data, expected, starts = _message_stream(rng)
    parser = PeerWireParser(handshake=False, midstream=start > 0)
    events = []
    pos = min(start, len(data))
    # Half the holes start on a message boundary, where a naive parser would read on.
    cuts = sorted((starts[at % len(starts)] if on_boundary else at, hole) for at, hole, on_boundary in cuts)
    for at, hole in cuts:
        if at <= pos or at >= len(data):
            continue
        events += parser.feed(data[pos:at])
        size = hole if hole >= 0 else rng.randrange(1, 5000)
        events += parser.gap(hole if hole >= 0 else -1) if size else []
        pos = min(len(data), at + size)
    events += parser.feed(data[pos:]) + parser.end()
    got = messages(events)
    assert_sent_in_order(got, expected)
    # And the framing is found again: after the last loss, once a few real messages
    # have gone by, the stream's last message is decoded.
    after = [m for m, at in zip(expected, starts) if at >= pos]
    if sum(m.type != "keepalive" for m in after[:-1]) >= 3 and after[-1].type != "keepalive":
        assert got and _same_message(got[-1], after[-1]), f"framing never found again: {got[-3:]}"


# ---------------------------------------------------------------- found in review


def test_a_hunt_resolved_by_the_end_tags_every_event_with_its_bytes():
    """The end of the stream can confirm what a hunt held: those events came with
    earlier bytes, so they carry those bytes' tags (never the end's)."""
    parser = PeerWireParser(handshake=False, midstream=True)
    out = parser.feed(b"\xff" * 3 + wb.have(3), "A") + parser.feed(wb.unchoke(), "B") + parser.end()
    late = [e for e in out if isinstance(e, tuple)]
    assert late == [(ev.Have(3), "A"), (ev.Unchoke(), "B")]


def test_a_handshake_begun_mid_stream_keeps_no_framing_across_a_hole():
    """On a stream joined late a first 0x13 byte proves nothing: a hole after it is a
    reason to hunt, not to skip to where a handshake would end."""
    parser = PeerWireParser(midstream=True)
    events = parser.feed(b"\x13") + parser.gap(5) + parser.feed(b"x" * 62 + wb.choke() + wb.have(7))
    assert messages(events) == [] and parser.hunting


def test_hunting_through_junk_does_not_rescan_or_hoard():
    from inspector.resync import HOLD, MAX_RUNS

    parser = PeerWireParser(handshake=False, midstream=True)
    for _ in range(1000):
        parser.feed(b"\xff" * 1400)
    hunt = parser._hunt
    assert hunt.end - hunt.scan < 20 and hunt.held <= HOLD  # rejected positions are not looked at again
    for _ in range(3 * MAX_RUNS):
        parser.feed(b"\xff")
        parser.gap(1)
    assert len(hunt.runs) <= MAX_RUNS and len(hunt.items) <= 2 * MAX_RUNS + 2
    for _ in range(10_000):
        parser.gap(3)
    assert len(hunt.items) <= 2 * MAX_RUNS + 2  # holes in a row are one hole
