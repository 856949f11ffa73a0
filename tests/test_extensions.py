"""Extension-body helpers: JSON-safe bencode, prefix decoding, compact peers, m ids."""
from __future__ import annotations

import json

import pytest

import wirebuild as wb
from inspector.extensions import (
    MAX_DEPTH, BencodeError, bdecode, bdecode_prefix, compact_peers, decode_body, extension_names, json_safe,
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


def test_json_safe_non_utf8_keys_become_hex():
    assert json_safe({b"\xfe\xff": 1}) == {"feff": 1}


def test_json_safe_depth_bound():
    assert json_safe(nested(MAX_DEPTH)) == nested(MAX_DEPTH)
    with pytest.raises(BencodeError):
        json_safe(nested(MAX_DEPTH + 1))
    deep_dict: object = 1
    for _ in range(MAX_DEPTH + 1):
        deep_dict = {b"k": deep_dict}
    with pytest.raises(BencodeError):
        json_safe(deep_dict)


def test_bencode_error_is_value_error():
    assert issubclass(BencodeError, ValueError)


def test_hostile_nesting_through_decode_body():
    with pytest.raises(BencodeError):
        decode_body(None, b"l" * 10_000 + b"e" * 10_000)
    with pytest.raises(BencodeError):
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
