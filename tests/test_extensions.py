"""Extension-body helpers: JSON-safe bencode, lenient bencode, prefix decoding, binary
extension bodies, compact peers, m ids."""
from __future__ import annotations

import json
import socket
import struct
import time

import fastbencode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wirebuild as wb
from conftest import wild
from inspector import events as ev
from inspector import extensions
from inspector.extensions import (
    MAX_DEPTH, MAX_DICT_PREFIX, MAX_KEY_SHOWN, BencodeError, BodyError, LimitError, bdecode, bdecode_prefix,
    compact_peers, decode, decode_body,
    describe, extension_names, json_safe, set_limits,
)



def nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


# ---------------------------------------------------------------- json_safe


def test_json_safe_text_and_hex():
    value = {b"name": b"ubuntu.iso", b"pieces": b"\xff\x00\x10", b"n": 5, b"l": [b"a", b"\xc3\xa9", b"\x80"]}
    out = json_safe(value)
    assert out == {"name": "ubuntu.iso", "pieces": "ff0010", "n": 5, "l": ["a", "é", "80"]}
    json.dumps(out)  # really JSON-safe


def test_json_safe_non_utf8_keys_become_prefixed_hex():
    assert json_safe({b"\xfe\xff": 1}) == {"hex:feff": 1}


def test_keys_that_look_alike_stay_apart():
    """b"ab" and b"\\xab" once both became "ab"; a UTF-8 key spelt like the hex form is hex too."""
    keys = [b"ab", b"\xab", b"hex:ab", b"hex:", b"\xc3\xa9"]
    out = json_safe({k: i for i, k in enumerate(keys)})
    assert out == {"ab": 0, "hex:ab": 1, "hex:6865783a6162": 2, "hex:6865783a": 3, "é": 4}


def _from_key(text: str) -> bytes:
    """The documented reading back of a key: ``hex:`` then hex, else UTF-8."""
    return bytes.fromhex(text[4:]) if text.startswith("hex:") else text.encode()


@pytest.mark.parametrize("key", [b"", b"m", b"hex", b"hex:", b"hex:zz", b"HEX:ab", b"\xff", b"\x80abc", "ü".encode()])
def test_keys_read_back_to_their_bytes(key):
    (text,) = json_safe({key: 0})
    assert _from_key(text) == key


def test_bencode_error_is_value_error():
    assert issubclass(BencodeError, ValueError)


def test_hostile_nesting_through_decode_body():
    with pytest.raises(LimitError, match=f"depth limit of {MAX_DEPTH}"):
        decode_body(None, b"l" * 10_000 + b"e" * 10_000)
    with pytest.raises(LimitError, match=f"depth limit of {MAX_DEPTH}"):
        decode_body("ut_metadata", b"d1:a" + b"l" * 100 + b"e" * 100 + b"e" + b"raw")


def test_bdecode_invalid_raises_bencode_error():
    for bad in (b"", b"d3:foo", b"i12", b"d1:ai1eextra", b"x"):
        with pytest.raises(BencodeError):
            bdecode(bad)


# ---------------------------------------------------------------- bdecode_prefix


def test_bdecode_prefix_exact_end_with_e_in_trailing_data():
    head = wb.bencode({b"msg_type": 1, b"piece": 0, b"total_size": 5})
    trailing = b"eeeee" + b"d1:ei1ee" + b"le" + bytes(range(256))
    value, used, deviations = bdecode_prefix(head + trailing)
    assert value == {b"msg_type": 1, b"piece": 0, b"total_size": 5}
    assert used == len(head) and deviations == ()


def test_bdecode_prefix_e_inside_the_dict():
    head = wb.bencode({b"e": b"eee", b"ee": [b"e", 1], b"x": {b"e": 0}})
    value, used, deviations = bdecode_prefix(head + b"e" * 3)
    assert used == len(head) and deviations == ()
    assert value == {b"e": b"eee", b"ee": [b"e", 1], b"x": {b"e": 0}}


def test_bdecode_prefix_whole_body():
    head = wb.bencode({b"a": 1})
    assert bdecode_prefix(head) == ({b"a": 1}, len(head), ())


def test_extension_names_skip_an_id_that_is_no_integer_and_read_on():
    m = {"ut_pex": "1", "lt_donthave": True, "ut_metadata": 3}
    assert extension_names({"m": m}) == {3: "ut_metadata"}


def test_bdecode_prefix_keeps_a_well_formed_dict_on_the_strict_decoder(monkeypatch):
    """The docstring's promise: each candidate end is tried with fastbencode, so the
    lenient decoder (a Python loop) never sees a well-formed body, even when the first
    'e' is not the dictionary's end and the trailing data is full of 'e's."""
    def lenient(*_args, **_kwargs):
        raise AssertionError("the lenient decoder was reached")

    monkeypatch.setattr(extensions, "_lenient", lenient)
    head = wb.bencode({b"a": 1, b"msg_type": 1, b"piece": 7})
    assert bdecode_prefix(head + b"piece data e e e") == ({b"a": 1, b"msg_type": 1, b"piece": 7}, len(head), ())


def test_bdecode_prefix_reads_at_most_max_dict_prefix_bytes():
    def body(size: int) -> bytes:  # a dictionary of exactly ``size`` bytes, then piece data
        filler = size - len(b"d1:a1000:e")  # of 'e's: every one a candidate end that fails
        return b"d1:a" + str(filler).encode() + b":" + b"e" * filler + b"e" + b"piece data"

    assert len(body(MAX_DICT_PREFIX)) - len(b"piece data") == MAX_DICT_PREFIX
    value, used, _ = bdecode_prefix(body(MAX_DICT_PREFIX))
    assert used == MAX_DICT_PREFIX and len(value[b"a"]) == MAX_DICT_PREFIX - 10
    with pytest.raises(BencodeError, match="^no complete bencoded dictionary at the start of the body"):
        bdecode_prefix(body(MAX_DICT_PREFIX + 1))


def test_bdecode_prefix_looks_for_its_end_within_max_dict_prefix_only():
    """A dictionary whose only 'e' lies one byte past MAX_DICT_PREFIX: no candidate end
    within the bound, so it is not decoded, though the strict decoder could read it."""
    filler = MAX_DICT_PREFIX - len(b"d3:abc1000:")  # no 'e' in the key, the length or the value
    body = b"d3:abc" + str(filler).encode() + b":" + b"x" * filler + b"e"
    assert body.index(b"e") == MAX_DICT_PREFIX
    with pytest.raises(BencodeError, match="^no complete bencoded dictionary at the start of the body"):
        bdecode_prefix(body + b"piece data")


@pytest.mark.parametrize("trailing", [b"", b"piece data"], ids=["alone", "before_piece_data"])
def test_bdecode_prefix_leaves_a_dict_past_the_depth_limit_to_the_bounded_decoder(trailing):
    body = b"d1:a" + b"l" * (MAX_DEPTH + 5) + b"e" * (MAX_DEPTH + 5) + b"e"
    with pytest.raises(LimitError, match="nested deeper than the bencode depth limit"):
        bdecode_prefix(body + trailing)


def test_bdecode_prefix_names_a_body_that_is_no_dictionary():
    with pytest.raises(BencodeError, match="^the body does not start with a bencoded dictionary$"):
        bdecode_prefix(b"li1ee")


@pytest.mark.parametrize("body", [b"", b"d", b"d1:ai1e", b"junk e here", b"eeee", b"d3:abc" + b"x" * 2000 + b"e"])
def test_bdecode_prefix_raises_without_a_dict(body):
    with pytest.raises(BencodeError):
        bdecode_prefix(body)


# ---------------------------------------------------------------- compact peers


def test_compact_peers_v4():
    blob = wb.compact_v4("1.2.3.4", 6881) + wb.compact_v4("255.255.255.255", 65535) + wb.compact_v4("0.0.0.0", 0)
    assert compact_peers(blob, 6) == ["1.2.3.4:6881", "255.255.255.255:65535", "0.0.0.0:0"]


def test_compact_peers_v6():
    blob = wb.compact_v6("2001:db8::1", 51413) + wb.compact_v6("::ffff:1.2.3.4", 1)
    assert compact_peers(blob, 18) == ["[2001:db8::1]:51413", "[::ffff:1.2.3.4]:1"]


def test_compact_peers_ignores_partial_entry():
    assert compact_peers(wb.compact_v4("9.8.7.6", 258) + b"\x01\x02\x03", 6) == ["9.8.7.6:258"]
    assert compact_peers(b"\x00" * 17, 18) == []
    assert compact_peers(b"", 6) == []


def test_pex_body_decoded():
    body = wb.bencode({b"added": wb.compact_v4("10.0.0.1", 80), b"added6": wb.compact_v6("::2", 81),
                       b"dropped": b"", b"added.f": b"\x02"})
    data, trailing, deviations = decode_body("ut_pex", body)
    assert trailing == 0 and deviations == ()
    assert data == {"added": ["10.0.0.1:80"], "added6": ["[::2]:81"], "dropped": [], "added.f": "\x02"}


# ---------------------------------------------------------------- extension_names


def test_extension_names():
    hs = {"m": {"ut_metadata": 2, "ut_pex": 1, "lt_donthave": 0, "weird": "3", "flag": True, "big": 256,
                "neg": -1, "nested": {"x": 1}}, "v": "x"}
    assert extension_names(hs) == {2: "ut_metadata", 1: "ut_pex"}


@pytest.mark.parametrize("hs", [None, [], "m", {}, {"m": []}, {"m": "x"}, {"v": "client"}])
def test_extension_names_without_m(hs):
    assert extension_names(hs) == {}


# ---------------------------------------------------------------- lenient bencode

UNSORTED = b"d1:md11:upload_onlyi3e11:lt_donthavei7e6:ut_pexi1ee1:pi6881ee"


def test_unsorted_keys_decoded_as_sorted_ones_would_be():
    value, deviations = bdecode(UNSORTED)
    assert deviations == ("dict keys out of order",)
    assert value == {b"m": {b"upload_only": 3, b"lt_donthave": 7, b"ut_pex": 1}, b"p": 6881}
    assert list(value[b"m"]) == [b"upload_only", b"lt_donthave", b"ut_pex"]  # wire order kept
    sorted_body = wb.bencode(value)
    assert bdecode(sorted_body) == (value, ())


def test_duplicate_key_last_value_wins():
    value, deviations = bdecode(b"d1:ai1e1:bi2e1:ai3ee")
    assert value == {b"a": 3, b"b": 2}
    assert deviations == ("duplicate key 'a'",)


def test_duplicate_adjacent_key_is_a_duplicate_not_disorder():
    assert bdecode(b"d1:ai1e1:ai2ee") == ({b"a": 2}, ("duplicate key 'a'",))


def test_deviations_listed_once_each_in_order_seen():
    body = b"d1:bi1e1:ai2e1:bi3e1:ci04e1:bi5ee"
    value, deviations = bdecode(body)
    assert value == {b"b": 5, b"a": 2, b"c": 4}
    assert deviations == ("dict keys out of order", "duplicate key 'b'", "leading zero in integer")


@pytest.mark.parametrize(
    "body, value, deviation",
    [(b"i007e", 7, "leading zero in integer"), (b"i-07e", -7, "leading zero in integer"),
     (b"i-0e", 0, "negative zero"), (b"03:abc", b"abc", "leading zero in string length"),
     (b"l00:e", [b""], "leading zero in string length")],
)
def test_leading_zeros_tolerated_as_libtorrent_does(body, value, deviation):
    assert bdecode(body) == (value, (deviation,))


@pytest.mark.parametrize(
    "digits, expected",
    [(20, None), (21, "bad integer '999999999999999999999' at byte 10"),
     (22, "integer at byte 10 unterminated or longer than 20 digits")],
)
def test_lenient_integer_bound_of_twenty_digits(digits, expected):
    """Keys out of order send the body to the lenient decoder; it looks for an integer's
    'e' only as far as twenty digits (and a sign) can reach, naming which bound broke."""
    body = b"d1:bi1e1:ai" + b"9" * digits + b"ee"
    if expected is None:
        assert bdecode(body) == ({b"b": 1, b"a": int("9" * digits)}, ("dict keys out of order",))
    else:
        with pytest.raises(BencodeError) as caught:
            bdecode(body)
        assert str(caught.value) == expected


@pytest.mark.parametrize(
    "body, message",
    [(b"d1:bi1e1:a", "data ends inside a value (at byte 10)"),
     (b"e", "unexpected 'e' at byte 0"),
     (b"d1:bi1e1:ae", "dictionary key 'a' without a value (at byte 10)"),
     (b"d1:bi1e100:" + b"k" * 100 + b"e",
      f"dictionary key {'k' * MAX_KEY_SHOWN!r} without a value (at byte 111)"),
     (b"d1:bi1ei1ei2ee", "dictionary key is not a string (byte 7)"),
     (b"d1:bi1e1:ax1:ye", "unexpected byte b'x' at byte 10"),
     (b"d1:bi1e1:ai1eejunk", "4 bytes of junk after the value"),
     (b"d1:bi1e1:aiee", "bad integer '' at byte 10"),
     (b"d1:bi1e1:a12345", "string length at byte 10 without ':'"),
     (b"d1:bi1e1:a5:abce", "string at byte 10 runs 1 bytes past the end"),
     # a length of 20 digits is read (and runs far past the end); of 21, its ':' is not looked for
     (b"d1:bi1e1:a" + b"9" * 20 + b":xe", "string at byte 10 runs 99999999999999999997 bytes past the end"),
     (b"d1:bi1e1:a" + b"0" * 20 + b"1:xe", "string length at byte 10 without ':'"),
     (b"d1:bi1e1:a" + b"9" * 30 + b":xe", "string length at byte 10 without ':'")],
    ids=["ends_inside", "stray_e", "key_without_value", "long_key_without_value", "int_key", "bad_byte",
         "junk_after", "empty_integer", "length_without_colon", "string_past_end", "20_digit_length", "21_digit_length",
         "30_digit_length"],
)
def test_lenient_decoder_says_what_is_wrong_and_where(body, message):
    """The message becomes a finding's detail: each names the fault and its byte, counted by
    hand here from the body's layout."""
    with pytest.raises(BencodeError) as caught:
        bdecode(body)
    assert str(caught.value) == message


def test_leading_zero_in_a_key_length_is_a_deviation_too():
    assert bdecode(b"d1:bi1e01:ai1ee") == ({b"b": 1, b"a": 1},
                                          ("leading zero in string length", "dict keys out of order"))
    assert bdecode(b"d1:bi1e1:a" + b"0" * 19 + b"1:xe") == ({b"b": 1, b"a": b"x"},
                                                          ("dict keys out of order", "leading zero in string length"))


@pytest.mark.parametrize(
    "body",
    [b"d1:bi1e1:a", b"d1:bi1e1:ai2e", b"d1:bi1e1:a5:abce", b"d1:bi1ei1ei2ee", b"d1:bi1e1:aie",
     b"d1:bi1e1:ai-e", b"d1:bi1e1:ai1-2ee", b"d1:bi1e1:ai+1ee", b"d1:bi1e1:ai 1ee", b"d1:bi1e1:a-1:xe",
     b"d1:bi1e1:ai" + b"9" * 21 + b"ee", b"d1:bi1e1:ai1e1:ce", b"d1:bi1e1:ai1eejunk", b"d1:bi1e1:ax1:ye",
     b"d1:bi1e1:a" + b"9" * 30 + b":xe", b"d1:bi1e1:ai1eee"],
    ids=["unterminated", "unterminated_value", "string_past_end", "int_key", "empty_int", "bare_minus",
         "minus_inside", "plus_sign", "space", "negative_length", "21_digits", "key_without_value",
         "junk_after", "bad_type_byte", "huge_length", "extra_e"],
)
def test_truly_malformed_still_refused_when_keys_are_unsorted(body):
    """Each body has unsorted keys, so the lenient decoder is what refuses it."""
    with pytest.raises(BencodeError):
        bdecode(body)


def test_depth_bomb_refused_at_the_depth_limit():
    """A megabyte of open lists is refused at level MAX_DEPTH + 1, not after reading it all."""
    bomb = b"d1:bi1e1:a" + b"l" * 1_000_000
    start = time.perf_counter()
    with pytest.raises(LimitError, match=f"deeper than the bencode depth limit of {MAX_DEPTH}"):
        bdecode(bomb)
    assert time.perf_counter() - start < 1.0
    at_limit = b"d1:bi1e1:a" + b"l" * (MAX_DEPTH - 1) + b"e" * (MAX_DEPTH - 1) + b"e"
    value, deviations = bdecode(at_limit)
    assert json_safe(value) == {"b": 1, "a": nested(MAX_DEPTH - 2, [])} and deviations


def test_wide_unsorted_body_decodes_in_linear_time():
    """50,000 keys in descending order, each compared once with its predecessor
    (a decoder comparing each key with all before it would take billions of steps)."""
    keys = [b"%06d" % i for i in range(50_000, 0, -1)]
    body = b"d" + b"".join(b"6:" + k + b"i1e" for k in keys) + b"e"
    start = time.perf_counter()
    value, deviations = bdecode(body)
    assert time.perf_counter() - start < 5.0
    assert len(value) == 50_000 and deviations == ("dict keys out of order",)


def test_describe_names_three_and_counts_the_rest():
    assert describe(("a", "b")) == "a; b"
    assert describe(("a", "b", "c", "d", "e")) == "a; b; c (and 2 more)"
    assert describe(("a", "b", "c")) == "a; b; c"
    assert describe(("a", "b", "c", "d")) == "a; b; c (and 1 more)"


def test_long_duplicate_key_shortened_in_the_deviation():
    key = b"k" * 5000
    body = b"d" + b"%d:" % len(key) + key + b"i1e" + b"%d:" % len(key) + key + b"i2ee"
    value, (deviation,) = bdecode(body)
    assert value == {key: 2} and len(deviation) < 100


def test_bdecode_prefix_lenient_keeps_the_raw_data_after_it():
    head = b"d5:piecei0e8:msg_typei1e10:total_sizei5ee"
    raw = b"eeeee" + bytes(range(256))
    value, used, deviations = bdecode_prefix(head + raw)
    assert value == {b"msg_type": 1, b"piece": 0, b"total_size": 5}
    assert used == len(head) and deviations == ("dict keys out of order",)
    body = decode_body("ut_metadata", head + raw)
    assert body == ({"msg_type": 1, "piece": 0, "total_size": 5}, len(raw), ("dict keys out of order",))


@pytest.mark.parametrize("body", [b"d5:piecei0e8:msg_typei1e", b"d5:piecei0e8:msg_typeie" + b"x" * 50])
def test_bdecode_prefix_lenient_still_refuses_broken_dicts(body):
    with pytest.raises(BencodeError):
        bdecode_prefix(body)


def _utorrent_handshake_body() -> bytes:
    """The first extension handshake body in the nDPI capture: a µTorrent 3.4.5 peer's,
    reassembled here from the capture's TCP segments with scapy."""
    capture = wild("ndpi-bittorrent-midstream.pcap")
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap

    segments = {}
    for pkt in rdpcap(str(capture)):
        if IP in pkt and TCP in pkt and pkt[IP].src == "82.57.97.83" and pkt[TCP].dport == 52887:
            segments.setdefault(pkt[TCP].seq, bytes(pkt[TCP].payload))
    stream = b"".join(segments[seq] for seq in sorted(segments))
    at = stream.index(b"\x14\x00d") - 4
    (length,) = struct.unpack_from(">I", stream, at)
    return stream[at + 6 : at + 4 + length]


def test_utorrent_handshake_from_the_wild():
    body = _utorrent_handshake_body()
    assert body.startswith(b"d1:ei0e4:ipv4")
    with pytest.raises(ValueError):
        fastbencode.bdecode(body)  # the strict decoder refuses it: the reason for all this
    data, trailing, deviations = decode_body("handshake", body)
    assert deviations == ("dict keys out of order",) and trailing == 0
    assert data["v"] == "\u03bcTorrent 3.4.5"  # sent as UTF-8 Greek mu
    assert data["ipv4"] == "82.57.97.83" and data["p"] == 53137
    assert extension_names(data) == {3: "upload_only", 7: "lt_donthave", 4: "ut_holepunch",
                                     2: "ut_metadata", 1: "ut_pex", 6: "ut_comment"}


# ---------------------------------------------------------------- binary extension bodies


@pytest.mark.parametrize("name", ["upload_only", "share_mode"])
@pytest.mark.parametrize("byte", [0, 1])
def test_one_byte_flags(name, byte):
    assert decode_body(name, bytes([byte])) == ({name: byte}, 0, ())


@pytest.mark.parametrize("name, payload", [("upload_only", b""), ("upload_only", b"\x00\x01"),
                                           ("share_mode", b"i1e"), ("lt_donthave", b"\x00\x00\x01"),
                                           ("lt_donthave", bytes(5))])
def test_binary_body_of_the_wrong_size_is_malformed_not_bad_bencode(name, payload):
    with pytest.raises(BodyError) as caught:
        decode_body(name, payload)
    assert caught.value.kind == "malformed" and not isinstance(caught.value, BencodeError)
    assert name in str(caught.value)


def test_lt_donthave():
    assert decode_body("lt_donthave", struct.pack(">I", 0xDEADBEEF)) == ({"index": 0xDEADBEEF}, 0, ())


def _holepunch(msg_type: int, host: str, port: int, err_code: int | None) -> bytes:
    """BEP 55's layout, written out here: msg_type, addr_type, addr, port, err_code."""
    v6 = ":" in host
    addr = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, host)
    out = bytes([msg_type, 1 if v6 else 0]) + addr + struct.pack(">H", port)
    return out if err_code is None else out + struct.pack(">I", err_code)


@pytest.mark.parametrize(
    "payload, expected",
    [(_holepunch(0, "203.0.113.5", 6881, 0), {"msg_type": 0, "addr": "203.0.113.5:6881", "err_code": 0}),
     (_holepunch(1, "2001:db8::7", 51413, 0), {"msg_type": 1, "addr": "[2001:db8::7]:51413", "err_code": 0}),
     (_holepunch(1, "198.51.100.1", 1, None), {"msg_type": 1, "addr": "198.51.100.1:1"}),
     (_holepunch(2, "198.51.100.1", 65535, 3), {"msg_type": 2, "addr": "198.51.100.1:65535", "err_code": 3}),
     (_holepunch(2, "::1", 80, 4), {"msg_type": 2, "addr": "[::1]:80", "err_code": 4})],
    ids=["rendezvous_v4_bep55", "connect_v6_bep55", "connect_v4_libtorrent_no_err_code", "error_v4", "error_v6"],
)
def test_ut_holepunch(payload, expected):
    assert decode_body("ut_holepunch", payload) == (expected, 0, ())


@pytest.mark.parametrize(
    "payload, message",
    [(b"", "ut_holepunch body of 0 bytes, shorter than its header"),
     (b"\x00", "ut_holepunch body of 1 bytes, shorter than its header"),
     (b"\x00\x00", "ut_holepunch msg_type 0 body of 2 bytes, expected 8 or 12"),
     (_holepunch(2, "198.51.100.1", 9, None), "ut_holepunch msg_type 2 body of 8 bytes, expected 12"),
     (_holepunch(0, "1.2.3.4", 9, 0) + b"\x00", "ut_holepunch msg_type 0 body of 13 bytes, expected 8 or 12"),
     (bytes([0, 2]) + bytes(10), "ut_holepunch addr_type 2, expected 0 (IPv4) or 1 (IPv6)"),
     (_holepunch(0, "::1", 9, 0)[:-5], "ut_holepunch msg_type 0 body of 19 bytes, expected 20 or 24")],
    ids=["empty", "one_byte", "header_only", "error_without_code", "one_byte_too_many", "addr_type_2",
         "v6_cut_short"],
)
def test_ut_holepunch_malformed(payload, message):
    with pytest.raises(BodyError) as caught:
        decode_body("ut_holepunch", payload)
    assert caught.value.kind == "malformed" and str(caught.value) == message


def test_binary_names_only_by_name():
    """The same byte under an unnamed id is bencode, and not valid bencode."""
    with pytest.raises(BencodeError):
        decode_body(None, b"\x01")


# ---------------------------------------------------------------- finding severity


@pytest.mark.parametrize(
    "kind, severity",
    [("bad_protocol", "error"), ("oversize", "error"), ("malformed", "error"), ("bad_bencode", "error"),
     ("info_hash_mismatch", "error"), ("self_connection", "error"), ("hole", "warning"),
     ("truncated", "warning"), ("midstream", "warning"), ("resync", "warning"), ("bencode_lenient", "note"),
     ("some_new_kind", "error")],
)
def test_finding_severity_follows_kind(kind, severity):
    finding = ev.Finding(kind, "detail")
    assert finding.severity == severity
    assert finding == ev.Finding(kind, "detail", severity)


def test_finding_severity_can_be_given_but_must_be_known():
    assert ev.Finding("hole", "x", "error").severity == "error"
    with pytest.raises(ValueError):
        ev.Finding("hole", "x", "fatal")


# ---------------------------------------------------------------- limits, before anything is built


@pytest.fixture
def limits(monkeypatch):
    """The module's limits, put back after the test whatever ``set_limits`` did."""
    for name in ("MAX_BENCODE_SIZE", "MAX_DEPTH", "MAX_TOKENS"):
        monkeypatch.setattr(extensions, name, getattr(extensions, name))


@pytest.fixture
def strict_calls(monkeypatch) -> list[int]:
    """The length of every body handed to fastbencode (which builds before anything is checked)."""
    calls: list[int] = []
    real = fastbencode.bdecode

    def spy(body: bytes) -> object:
        calls.append(len(body))
        return real(body)

    monkeypatch.setattr(extensions.fastbencode, "bdecode", spy)
    return calls


def _flat_lists(size: int) -> bytes:
    """``lelele…``: as many empty lists as fit in ``size`` bytes, in one list."""
    return b"l" + b"le" * ((size - 2) // 2) + b"e"


@pytest.mark.parametrize("name", [None, "handshake", "ut_pex"])
def test_body_above_the_size_limit_is_not_read(limits, strict_calls, monkeypatch, name):
    set_limits(size=1000)
    monkeypatch.setattr(extensions, "_lenient", None)  # calling it at all would fail
    with pytest.raises(LimitError) as caught:
        decode(name, _flat_lists(1002))
    assert caught.value.kind == "limit" and not isinstance(caught.value, BencodeError)
    assert str(caught.value) == ("extended body of 1002 bytes above the bencode size limit "
                                 "(--max-bencode-size 1000); not decoded")
    assert strict_calls == []


def test_body_at_the_size_limit_is_decoded(limits):
    body = wb.bencode({b"v": b"x" * 990})
    set_limits(size=len(body))
    assert decode("handshake", body).data == {"v": "x" * 990}


def test_size_limit_spares_bodies_that_are_not_bencode_throughout(limits):
    """ut_metadata reads only its dictionary prefix; binary bodies have fixed sizes."""
    set_limits(size=10)
    head = wb.bencode({b"msg_type": 1, b"piece": 0, b"total_size": 100})
    assert decode("ut_metadata", head + bytes(100)) == ({"msg_type": 1, "piece": 0, "total_size": 100}, 100, (), ())
    with pytest.raises(BodyError) as caught:
        decode("lt_donthave", bytes(20))
    assert caught.value.kind == "malformed"


def test_fastbencode_never_gets_a_body_that_could_nest_too_deep(strict_calls):
    deep = b"l" * (MAX_DEPTH + 1) + b"e" * (MAX_DEPTH + 1)
    with pytest.raises(LimitError, match=f"depth limit of {MAX_DEPTH} levels"):
        decode(None, deep)
    assert strict_calls == []
    at_limit = b"l" * MAX_DEPTH + b"e" * MAX_DEPTH
    assert decode(None, at_limit).data == nested(MAX_DEPTH - 1, [])
    assert strict_calls == [len(at_limit)]


def test_many_lists_go_the_lenient_way_and_decode_the_same(strict_calls):
    """Flat lists are not deep, but only a scan can tell: the lenient decoder's answer is
    fastbencode's, without a deviation."""
    body = _flat_lists(20_000)
    out = decode(None, body)
    assert strict_calls == []
    assert out == (fastbencode.bdecode(body), 0, (), ())


def test_depth_and_token_limits_can_be_set(limits, strict_calls):
    set_limits(depth=2, tokens=10)
    assert extensions.MAX_DEPTH == 2 and extensions.MAX_TOKENS == 10
    assert bdecode(b"lli1eee") == ([[1]], ())  # two l bytes, seven bytes: fastbencode's
    with pytest.raises(LimitError, match="depth limit of 2 levels"):
        bdecode(b"llli1eeee")
    assert strict_calls == [7]
    many = b"l" + b"i1e" * 9 + b"e"  # 11 values, counting the list's end
    with pytest.raises(LimitError, match="limit of 10 values"):
        bdecode(many)
    assert bdecode(many[:1] + many[4:]) == ([1] * 8, ())
    assert strict_calls == [7]


@pytest.mark.parametrize("kw", [{"depth": 0}, {"depth": extensions.DEPTH_CEILING + 1}, {"size": 0},
                                {"tokens": -1}, {"size": 5, "depth": 0}])
def test_set_limits_refuses_nonsense_and_changes_nothing(limits, kw):
    before = (extensions.MAX_BENCODE_SIZE, extensions.MAX_DEPTH, extensions.MAX_TOKENS)
    with pytest.raises(ValueError):
        set_limits(**kw)
    assert (extensions.MAX_BENCODE_SIZE, extensions.MAX_DEPTH, extensions.MAX_TOKENS) == before


_leaves = st.one_of(st.integers(min_value=-(10**19), max_value=10**19), st.binary(max_size=12))
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.binary(max_size=6), inner, max_size=5),
    max_leaves=40,
)


@given(_values)
@settings(max_examples=300, deadline=None)
def test_lenient_decoder_agrees_with_fastbencode_on_strict_bencode(value):
    """Bodies with many ``l``/``d`` bytes skip fastbencode, so the two must agree on what both read."""
    body = fastbencode.bencode(value)
    assert extensions._lenient(body, whole=True) == (fastbencode.bdecode(body), len(body), ())


# ---------------------------------------------------------------- ut_pex lists that are not whole entries


def test_pex_leftover_bytes_are_a_problem_and_whole_entries_are_kept():
    body = wb.bencode({
        b"added": wb.compact_v4("10.0.0.1", 80) + wb.compact_v4("10.0.0.2", 81) + b"\x0a",
        b"added.f": b"\x00\x02",
        b"added6": wb.compact_v6("::2", 82) + bytes(17),
        b"dropped": wb.compact_v4("10.0.0.3", 83),
    })
    out = decode("ut_pex", body)
    assert out.data == {"added": ["10.0.0.1:80", "10.0.0.2:81"], "added.f": "\x00\x02", "added6": ["[::2]:82"],
                        "dropped": ["10.0.0.3:83"]}
    assert out.problems == ("ut_pex added of 13 bytes: 1 left over after 2 whole 6-byte entries",
                            "ut_pex added6 of 35 bytes: 17 left over after 1 whole 18-byte entry")
    assert out.deviations == () and out.trailing == 0
    assert decode_body("ut_pex", body) == (out.data, 0, ())


@pytest.mark.parametrize("name", ["ut_pex", "handshake", None])
def test_whole_entries_or_other_extensions_have_no_problems(name):
    body = wb.bencode({b"added": wb.compact_v4("10.0.0.1", 80), b"dropped6": b"", b"x": b"\x01" * 7})
    assert decode(name, body).problems == ()
