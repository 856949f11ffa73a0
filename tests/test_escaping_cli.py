"""Peer-controlled text through the command line: each class of unsafe character, in
each place a peer can put it (issue 12, item 6).

``test_escaping.py`` holds ``safe_text`` to its rule directly; ``test_cli.py`` sends ESC,
C1 and BEL through ``read``. What neither did: DEL (0x7f) anywhere on the command line's
way, a backslash in a peer id or in a client name (where a peer could type ``\\x1b`` to
pass for an escape), format and separator characters in the extension handshake's ``v``
through the text output, and a finding whose detail quotes peer bytes, in the message
lines and in ``--sessions``. Expected forms are written out by hand here.
"""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

import hostile
import wirebuild as wb
from conftest import btshark_ok
from inspector.output import printable_id, safe_json, safe_text

# C0 (ESC, BEL, NUL), DEL, C1 (CSI 0x9b, NEL 0x85) and a backslash, in a's peer id. Its first
# eight bytes are BitBuddy's code with the version characters \x1b (BitBuddy copies them as
# they are), so the *client name* holds a peer-typed backslash too.
PEER_A = b"-BB\\x1b-" + b"\x1b\x07\x00\x7f\x9b\x85\\" + b"abcde"
PEER_A_SHOWN = "-BB\\\\x1b-" + "\\x1b\\x07\\x00\\x7f\\x9b\\x85\\\\" + "abcde"
CLIENT_A_SHOWN = "BitBuddy \\\\.x1b"  # "BitBuddy \.x1b", its backslash doubled
# U+202E's UTF-8 bytes in b's peer id: read as Latin-1 they hold a C1 byte (0x80).
PEER_B = b"-ZZ0001-\xe2\x80\xae" + b"rtl-peer\x7f"
PEER_B_SHOWN = "-ZZ0001-\xe2\\x80\xae" + "rtl-peer\\x7f"
# Every class in the extension handshake's v: C0, DEL, C1, bidi override and isolate,
# zero-width space, BOM, line separator, and a backslash.
V = "a\x1bb\x7fc\x9bd\u202ee\u2066f\u200bg\ufeffh\u2028i\\j"
V_JSON = 'a\\u001bb\\u007fc\\u009bd\\u202ee\\u2066f\\u200bg\\ufeffh\\u2028i\\\\j'
# A repeated dictionary key with DEL and U+202E in it: a bencode_lenient note quoting it.
LENIENT = b"d1:md6:ut_pexi1ee5:a\x7f\xe2\x80\xaei1e5:a\x7f\xe2\x80\xaei2ee"

_UNESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def unescape(text: str) -> str:
    """The reading ``inspector.output`` promises: ``\\\\``, ``\\xNN``, ``\\uNNNN``, ``\\UNNNNNNNN``."""
    return _UNESCAPE.sub(lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)), text)


def unsafe(text: str) -> list[str]:
    """What must never reach a terminal: C0 but newline, DEL, C1, and format/separator characters."""
    return [ch for ch in text
            if ch != "\n" and (not ch.isprintable() or unicodedata.category(ch) in ("Cf", "Zl", "Zp"))]


def test_the_direct_forms():
    assert printable_id(PEER_A) == PEER_A_SHOWN and unescape(PEER_A_SHOWN) == PEER_A.decode("latin-1")
    assert printable_id(PEER_B) == PEER_B_SHOWN
    assert safe_text("\x7f") == "\\x7f" and safe_text("a\\b") == "a\\\\b" and safe_text("\x85") == "\\x85"
    assert safe_json({"v": V}) == '{"v":"' + V_JSON + '"}'
    assert json.loads(safe_json({"v": V})) == {"v": V}


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    conn = hostile.Conn().open()
    conn.send(0, wb.handshake(hostile.HASH, PEER_A, bytes.fromhex("0000000000100000")))
    conn.send(1, wb.handshake(hostile.HASH, PEER_B, bytes.fromhex("0000000000100000")))
    conn.send(1, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 1}, b"v": V.encode()})))
    conn.send(0, wb.extended(0, LENIENT))
    return hostile.write_pcap(tmp_path_factory.mktemp("esc") / "escapes.pcap", conn.close().frames)


def test_message_lines(capture):
    run = btshark_ok("read", capture)
    assert run.raw_stdout.count(b"\n") == 5  # two handshakes, a note, two extension handshakes
    assert not unsafe(run.stdout), unsafe(run.stdout)
    lines = run.stdout.splitlines()
    assert f"peer_id={PEER_A_SHOWN} ({CLIENT_A_SHOWN})" in lines[0]
    assert f"peer_id={PEER_B_SHOWN} (unknown client)" in lines[1]
    body = lines[2].split(" extended handshake ", 1)[1]
    assert '"v":"' + V_JSON + '"' in body and json.loads(body)["v"] == V
    assert lines[4].endswith(' extended handshake {"m":{"ut_pex":1},"a\\u007f\\u202e":2}')  # a key, too


def test_finding_details_quoting_peer_bytes(capture):
    detail = json.loads(btshark_ok("read", capture, "--sessions", "-T", "json").stdout)[0]["findings"][0]["detail"]
    assert "duplicate key" in detail
    for args in ((), ("--sessions",)):
        run = btshark_ok("read", capture, *args)
        assert not unsafe(run.stdout)
        (line,) = [line for line in run.stdout.splitlines() if "!! " in line and "bencode_lenient [note]" in line]
        shown = line.split("bencode_lenient [note]: ", 1)[1]
        assert unescape(shown) == detail, "escaped once, reversibly"


def test_sessions_lines(capture):
    run = btshark_ok("read", capture, "--sessions")
    assert not unsafe(run.stdout)
    assert f"a: 10.0.0.1:40000 {CLIENT_A_SHOWN}  " in run.stdout
