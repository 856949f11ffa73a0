"""Peer-controlled text on its way to a terminal: escaped once, reversibly, and nothing
that moves the cursor, recolours or reorders the line gets through (issue 10, item 11).

The command-line side (a whole capture through ``btshark read``) is in test_cli.py.
"""
from __future__ import annotations

import json
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector import events as ev
from inspector.output import printable_id, safe_json, safe_text
from tui.model.format import summary

_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def unescape(text: str) -> str:
    """The reading the module docstring promises: ``\\\\``, ``\\xNN``, ``\\uNNNN``, ``\\UNNNNNNNN``."""
    return _ESCAPE.sub(lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)), text)


@pytest.mark.parametrize(
    "raw, shown",
    [("\x1b[31m", "\\x1b[31m"), ("\x9b", "\\x9b"), ("\x7f", "\\x7f"), ("a\tb", "a\\x09b"),
     ("evil\u202ecod.exe", "evil\\u202ecod.exe"), ("\u2066x\u2069", "\\u2066x\\u2069"),
     ("zero\u200bwidth\u200d", "zero\\u200bwidth\\u200d"), ("\ufeffbom", "\\ufeffbom"), ("\u00ad", "\\xad"),
     ("line\u2028sep", "line\\u2028sep"), ("tag\U000e0041", "tag\\U000e0041"), ("\xa0", "\\xa0"),
     ("\\x1b", "\\\\x1b"), ("\\", "\\\\")],
    ids=["esc", "c1_csi", "del", "tab", "rlo", "isolates", "zero_width", "bom", "soft_hyphen", "line_sep",
         "tag", "nbsp", "literal_backslash_x1b", "backslash"],
)
def test_safe_text_escapes(raw, shown):
    assert safe_text(raw) == shown
    assert unescape(shown) == raw


@pytest.mark.parametrize("text", ["µTorrent 3.4.5", "qBittorrent/4.6.2", "a → b", "迅雷", "🙂", "x y"])
def test_printable_text_is_left_alone(text):
    assert safe_text(text) is text


def test_an_escaped_esc_and_the_four_characters_a_peer_typed_differ():
    assert safe_text("\x1b") != safe_text("\\x1b")
    assert printable_id(b"-ZZ0001-\x1b" + bytes(11)) != printable_id(b"-ZZ0001-\\x1b" + bytes(8))


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_safe_text_is_printable_and_reads_back(text):
    shown = safe_text(text)
    assert shown.isprintable()
    assert unescape(shown) == text


def test_every_format_character_is_escaped():
    """Unicode category Cf (bidi controls, zero-width ones, the BOM, tags...), all of it."""
    cf = "".join(chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf")
    assert len(cf) > 150
    shown = safe_text(cf)
    assert not [ch for ch in shown if unicodedata.category(ch) == "Cf"]
    assert unescape(shown) == cf


@given(st.recursive(st.text(alphabet=st.characters(codec="utf-8")) | st.integers(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                 max_size=4),
                    max_leaves=20))
def test_safe_json_is_printable_json_of_the_same_value(value):
    shown = safe_json(value)
    assert shown.isprintable()
    assert json.loads(shown) == value


def test_safe_json_keeps_readable_text_readable():
    assert safe_json({"v": "µTorrent 3.4.5", "k": "a\\b"}) == '{"v":"µTorrent 3.4.5","k":"a\\\\b"}'
    assert safe_json({"v": "evil\u202e\x1b"}) == '{"v":"evil\\u202e\\u001b"}'
    assert safe_json("\U000e0041") == '"\\udb40\\udc41"'  # outside the BMP: a JSON surrogate pair


# ---------------------------------------------------------------- the TUI's summaries, escaped once


def test_tui_extended_handshake_summary():
    data = {"m": {"ut_pex": 1, "x\x1b": 2}, "v": "evil\u202ecod.exe \\x1b"}
    text = summary(ev.Extended(0, "handshake", data, 0, 40))
    assert text == "extended handshake evil\\u202ecod.exe \\\\x1b [ut_pex, x\\x1b]"


def test_tui_other_extended_summary_is_printable_json():
    data = {"hex:ab": "\u2066", "ab": "\\"}
    text = summary(ev.Extended(5, "lt_weird\u202e", data, 0, 40))
    assert text == 'extended lt_weird\\u202e {"hex:ab":"\\u2066","ab":"\\\\"}'


def test_tui_ut_metadata_summary_with_hostile_values():
    text = summary(ev.Extended(2, "ut_metadata", {"msg_type": "\x1b[2J", "piece": "\u202e"}, 0, 40))
    assert text == "extended ut_metadata type \\x1b[2J piece \\u202e"


def test_tui_finding_summary():
    text = summary(ev.Finding("bencode_lenient", "duplicate key 'a\u202e' \\ here"))
    assert text == "!! bencode_lenient [note]: duplicate key 'a\\u202e' \\\\ here"
