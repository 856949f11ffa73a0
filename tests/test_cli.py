"""The ``btshark`` command's contracts (DESIGN.md), through the real installed command.

Output formats and their keys, session listings agreeing with the messages,
client identification, ``-Y`` and ``-c``, the no-argument sample, terminal
safety of peer-controlled text, and how bad input is reported (exit 2, one
``btshark: error:`` line, never a traceback).
"""
from __future__ import annotations

import json
import re
import struct
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import hostile
import wirebuild as wb
from conftest import (
    SAMPLE,
    UNSAFE_CHARS,
    TcpConversation,
    bt_extended,
    bt_handshake,
    bt_have,
    bt_msg,
    bt_piece,
    bt_request,
    btshark,
    btshark_command,
    btshark_ok,
    capture_params,
    read_jsonl,
    read_sessions,
    run_btshark,
    torrent_for,
    torrent_info,
    write_packets,
)

ALL_CAPTURES = capture_params()

BASE = {"session", "transport", "src", "dst", "ts", "frame", "type", "id", "size"}
BLOCK = BASE | {"index", "begin", "length"}
EXACT_KEYS = {
    "handshake": BASE | {"info_hash", "peer_id", "client", "reserved", "extensions"},
    "keepalive": BASE,
    "choke": BASE, "unchoke": BASE, "interested": BASE, "not_interested": BASE,
    "have_all": BASE, "have_none": BASE,
    "have": BASE | {"index"}, "suggest": BASE | {"index"}, "allowed_fast": BASE | {"index"},
    "request": BLOCK, "cancel": BLOCK, "reject": BLOCK, "piece": BLOCK,
    "extended": BASE | {"ext_id", "ext_name", "data"},
}
# DESIGN.md names no per-type keys for these; the base keys must still be there.
OTHER_TYPES = {"bitfield", "port", "hash_request", "hashes", "hash_reject", "unknown"}
IDS = {
    "handshake": None, "keepalive": None, "choke": 0, "unchoke": 1, "interested": 2, "not_interested": 3,
    "have": 4, "bitfield": 5, "request": 6, "piece": 7, "cancel": 8, "port": 9, "suggest": 13,
    "have_all": 14, "have_none": 15, "reject": 16, "allowed_fast": 17, "extended": 20,
    "hash_request": 21, "hashes": 22, "hash_reject": 23,
}
FIXED_SIZES = {
    "handshake": 68, "keepalive": 0, "choke": 1, "unchoke": 1, "interested": 1, "not_interested": 1,
    "have": 5, "request": 13, "cancel": 13, "reject": 13, "port": 3, "suggest": 5, "have_all": 1,
    "have_none": 1, "allowed_fast": 5,
}
SESSION_KEYS = {"id", "transport", "a", "b", "info_hash", "peer_ids", "clients", "encrypted", "start", "end",
                "state", "messages", "payload_bytes", "findings"}
ADDR = re.compile(r"(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}")
LIBTORRENT = "libtorrent (rasterbar) 2.1.1"
SEEDERS = {"aria2": "aria2 1.36.0", "transmission": "Transmission 3.00", "libtorrent": LIBTORRENT}


# ---------------------------------------------------------------- -T jsonl


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_jsonl_keys_ids_and_sizes(capture):
    records = read_jsonl(capture)
    assert btshark("read", capture, "-T", "jsonl").stderr == "", "the samples are whole: no warnings"
    for r in records:
        kind = r["type"]
        if kind in EXACT_KEYS:
            assert set(r) == EXACT_KEYS[kind], r
        else:
            assert kind in OTHER_TYPES and BASE <= set(r), r
        assert r["id"] == IDS[kind]
        assert r["transport"] in ("tcp", "utp")
        assert ADDR.fullmatch(r["src"]) and ADDR.fullmatch(r["dst"]) and r["src"] != r["dst"]
        assert isinstance(r["ts"], float) and isinstance(r["frame"], int) and r["frame"] >= 1
        if kind in FIXED_SIZES:
            assert r["size"] == FIXED_SIZES[kind], r
        if kind == "piece":
            assert r["size"] == r["length"] + 9
        if kind in ("request", "cancel", "reject", "piece"):
            assert all(isinstance(r[k], int) and r[k] >= 0 for k in ("index", "begin", "length"))
        if kind == "extended":
            assert isinstance(r["ext_id"], int) and isinstance(r["data"], (dict, list, str, int))
            if r["ext_id"] == 0:
                assert r["ext_name"] == "handshake" and "m" in r["data"]


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_jsonl_in_capture_order(capture):
    records = read_jsonl(capture)
    frames = [r["frame"] for r in records]
    assert frames == sorted(frames)
    times = [r["ts"] for r in records]
    assert times == sorted(times)


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_handshakes_match_the_torrent(capture):
    records = read_jsonl(capture)
    torrent = torrent_info(torrent_for(capture))
    handshakes = [r for r in records if r["type"] == "handshake"]
    for r in handshakes:
        assert r["info_hash"] == torrent.info_hash
        assert re.fullmatch(r"[0-9a-f]{40}", r["peer_id"]) and re.fullmatch(r"[0-9a-f]{16}", r["reserved"])
        reserved = bytes.fromhex(r["reserved"])
        assert ("extension_protocol" in r["extensions"]) == bool(reserved[5] & 0x10)
        assert ("fast" in r["extensions"]) == bool(reserved[7] & 0x04)
        assert ("dht" in r["extensions"]) == bool(reserved[7] & 0x01)
    # Every session's first message from each side that speaks is its handshake.
    first = {}
    for r in records:
        first.setdefault((r["session"], r["src"]), r["type"])
    assert set(first.values()) <= {"handshake"}


# ---------------------------------------------------------------- --sessions -T json


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_sessions_json_agrees_with_the_messages(capture):
    records, sessions = read_jsonl(capture), read_sessions(capture)
    assert [s["id"] for s in sessions] == list(range(1, len(sessions) + 1))
    assert {r["session"] for r in records} <= {s["id"] for s in sessions}
    for s in sessions:
        assert SESSION_KEYS <= set(s), SESSION_KEYS - set(s)
        assert s["transport"] in ("tcp", "utp") and ADDR.fullmatch(s["a"]) and ADDR.fullmatch(s["b"])
        assert s["start"] <= s["end"]
        assert set(s["messages"]) == set(s["payload_bytes"]) == set(s["peer_ids"]) == set(s["clients"]) == {"a", "b"}
        mine = [r for r in records if r["session"] == s["id"]]
        for side, addr in (("a", s["a"]), ("b", s["b"])):
            sent = [r for r in mine if r["src"] == addr]
            assert s["messages"][side] == dict(Counter(r["type"] for r in sent)), (s["id"], side)
            assert s["payload_bytes"][side] == sum(r["length"] for r in sent if r["type"] == "piece")
            hs = [r for r in sent if r["type"] == "handshake"]
            assert s["peer_ids"][side] == (hs[0]["peer_id"] if hs else None)
            assert s["clients"][side] == (hs[0]["client"] if hs else None)
        assert all(r["dst"] == (s["b"] if r["src"] == s["a"] else s["a"]) for r in mine)
        assert all(s["start"] <= r["ts"] <= s["end"] for r in mine)
        for f in s["findings"]:
            assert {"kind", "side", "frame", "detail"} <= set(f)


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_clients_identified(capture):
    """The downloader is always libtorrent 2.1.1; the seeder is named by the file (README)."""
    sessions = read_sessions(capture)
    main = sessions[0]
    assert main["state"] == "closed"
    if main["encrypted"]:
        assert main["clients"] == {"a": None, "b": None}
        return
    seeder = SEEDERS[Path(capture).stem.split("-")[0]]
    assert main["clients"] == {"a": LIBTORRENT, "b": seeder}
    assert main["b"].endswith(":51413"), "b is the side that was connected to: the seeder"
    assert main["payload_bytes"] == {"a": 0, "b": 1 << 20}
    for s in sessions[1:]:
        assert set(s["clients"].values()) <= {LIBTORRENT, None}


# ---------------------------------------------------------------- -Y, -c, -T json, text


def _filter_cases():
    return [
        ("piece", lambda r: r["type"] == "piece"),
        ("type == request && session == 1", lambda r: r["type"] == "request" and r["session"] == 1),
        ("type in {have bitfield}", lambda r: r["type"] in ("have", "bitfield")),
        ("!piece and not type == request", lambda r: r["type"] not in ("piece", "request")),
        ("(have_all || handshake) && session != 2", lambda r: r["type"] in ("have_all", "handshake")
         and r["session"] != 2),
        ("session == 2", lambda r: r["session"] == 2),
        ("session in {1 3} && type == extended", lambda r: r["session"] in (1, 3) and r["type"] == "extended"),
        ("session != 2 && !(type in {have piece request})",
         lambda r: r["session"] != 2 and r["type"] not in ("have", "piece", "request")),
    ]


@pytest.fixture(scope="module")
def three_sessions(tmp_path_factory) -> Path:
    """Three interleaved connections with a bit of everything, for the filters."""
    convs = [TcpConversation(a=("10.0.0.1", 40000 + i), t0=1_700_000_000.0 + i / 1000) for i in range(3)]
    for i, conv in enumerate(convs):
        conv.open()
        conv.send(0, bt_handshake(peer_id=b"-LT2110-%012d" % i))
        conv.send(1, bt_handshake(peer_id=b"-TR3000-%012d" % i) + bt_msg(5, b"\xff\xf0")
                  + bt_extended(0, {b"m": {b"ut_pex": 1}}))
        conv.send(0, bt_msg(2) + bt_have(i) + bt_request(0, 0, 100))
        conv.send(1, bt_msg(1) + bt_piece(0, 0, b"z" * 100) + bt_have(5))
        conv.close()
    packets = sorted((p for conv in convs for p in conv.packets), key=lambda p: p.time)
    return write_packets(tmp_path_factory.mktemp("three") / "three.pcap", packets)


FILTER_CAPTURES = [pytest.param("three", id="synthetic-three-sessions"),
                   *capture_params(name="transmission-to-libtorrent.pcap")]


@pytest.mark.parametrize("expr,keep", _filter_cases(), ids=[c[0] for c in _filter_cases()])
@pytest.mark.parametrize("capture", FILTER_CAPTURES)
def test_display_filter(request, capture, expr, keep):
    if capture == "three":
        capture = request.getfixturevalue("three_sessions")
    everything = read_jsonl(capture)
    filtered = read_jsonl(capture, "-Y", expr)
    assert filtered == [r for r in everything if keep(r)]
    if len({r["session"] for r in everything}) > 2:
        assert filtered and filtered != everything, "each case should select some, not all"


def test_count_limits_messages():
    everything = read_jsonl(SAMPLE)
    assert read_jsonl(SAMPLE, "-c", "5") == everything[:5]
    assert read_jsonl(SAMPLE, "-c", "3", "-Y", "piece") == [r for r in everything if r["type"] == "piece"][:3]
    text = btshark_ok("read", SAMPLE, "-c", "5").stdout.splitlines()
    assert len(text) == 5
    assert len(json.loads(btshark_ok("read", SAMPLE, "-c", "5", "-T", "json").stdout)) == 5


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_json_is_the_jsonl_records_as_a_list(capture):
    assert json.loads(btshark_ok("read", capture, "-T", "json").stdout) == read_jsonl(capture)


@pytest.mark.parametrize("capture", capture_params(name="aria2-to-libtorrent.pcap"))
def test_text_is_one_line_per_message(capture):
    records = read_jsonl(capture)
    sessions = read_sessions(capture)
    assert not any(s["findings"] for s in sessions), "this sample has no findings lines"
    lines = btshark_ok("read", capture).stdout.splitlines()
    assert len(lines) == len(records)
    t0 = None
    for line, r in zip(lines, records):
        m = re.match(r"\s*(\d+)\s+(\d+\.\d{6}) #(\d+)\s+(\S+) → (\S+)\s+(\w+)", line)
        assert m, line
        assert (int(m[1]), int(m[3]), m[4], m[5], m[6]) == (r["frame"], r["session"], r["src"], r["dst"], r["type"])
        relative = float(m[2])
        if t0 is None:
            t0 = r["ts"] - relative
        assert relative == pytest.approx(r["ts"] - t0, abs=2e-6)
        assert not set(line) & UNSAFE_CHARS


def test_no_argument_reads_the_bundled_sample(tmp_path):
    expected = btshark_ok("read", SAMPLE).stdout
    assert expected.count("\n") == len(read_jsonl(SAMPLE)) > 100
    bare = run_btshark(cwd=tmp_path)  # from elsewhere: the sample is found beside the code
    assert bare.returncode == 0 and bare.stderr == b""
    assert bare.stdout.decode() == expected
    assert btshark_ok("read").stdout == expected


@pytest.mark.parametrize("form", ["gzip", "pcapng", "pcapng.gz"])
def test_pcapng_and_gzip_decode_the_same(tmp_path, form):
    """``read`` takes pcap, pcapng and gzipped captures; the messages do not depend on the form."""
    import gzip
    import shutil

    path = SAMPLE
    if form.startswith("pcapng"):
        editcap = shutil.which("editcap") or pytest.skip("editcap (from tshark's package) not installed")
        path = tmp_path / "sample.pcapng"
        subprocess.run([editcap, "-F", "pcapng", str(SAMPLE), str(path)], check=True, capture_output=True)
        assert path.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    if form.endswith("gz") or form == "gzip":
        packed = tmp_path / (path.name + ".gz")
        packed.write_bytes(gzip.compress(path.read_bytes()))
        path = packed
    assert read_jsonl(path) == read_jsonl(SAMPLE)
    assert btshark("read", path, "-T", "jsonl").stderr == ""


# ---------------------------------------------------------------- peer-controlled text on a terminal

EVIL_PEER_ID = b"-ZZ0001-\x1b[31m\x9b\x07XYZ12"
EVIL_VERSION = "evil\x1b[31m\x9b\x07 client\x1b]0;pwned\x07"


@pytest.fixture(scope="module")
def evil_capture(tmp_path_factory) -> Path:
    assert len(EVIL_PEER_ID) == 20
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(peer_id=b"-qB4620-abcdefghijkl"))
    conv.send(1, bt_handshake(peer_id=EVIL_PEER_ID))
    conv.send(1, bt_extended(0, {b"m": {b"ut_pex": 1}, b"v": EVIL_VERSION.encode(),
                                 b"\x1b[2Jkey\x9b": b"\x9b\x1b[0m raw", b"yourip": b"\x7f\x00\x00\x01"}))
    conv.send(0, bt_msg(2))
    conv.close()
    return conv.write(tmp_path_factory.mktemp("evil") / "evil.pcap")


@pytest.mark.parametrize("args", [(), ("--sessions",)], ids=["messages", "sessions"])
def test_text_output_escapes_control_characters(evil_capture, args):
    run = btshark_ok("read", evil_capture, *args)
    raw = run.raw_stdout
    assert raw, "nothing printed"
    assert not [b for b in raw if b < 0x20 and b != 0x0A], raw
    assert b"\x1b" not in raw and b"\x9b" not in raw and b"\x7f" not in raw
    assert not set(run.stdout) & UNSAFE_CHARS
    if not args:
        assert "\\x1b[31m" in run.stdout, "the escape should be shown, escaped, not dropped"
        assert len(run.stdout.splitlines()) == 4  # two handshakes, extended, interested


def test_jsonl_keeps_peer_controlled_text_exact_but_escaped(evil_capture):
    run = btshark_ok("read", evil_capture, "-T", "jsonl")
    assert not [b for b in run.raw_stdout if b < 0x20 and b != 0x0A]
    assert b"\x9b" not in run.raw_stdout
    records = [json.loads(line) for line in run.stdout.splitlines()]
    hs = [r for r in records if r["type"] == "handshake"]
    assert hs[1]["peer_id"] == EVIL_PEER_ID.hex()
    (ext,) = [r for r in records if r["type"] == "extended"]
    assert ext["data"]["v"] == EVIL_VERSION


@pytest.fixture(scope="module")
def weird_capture(tmp_path_factory) -> Path:
    """tests/hostile.py's weird peer: a bidi override in ``v``, keys ``ab`` and ``\\xab``, an odd
    ut_pex ``added``, an ESC and a literal backslash-x-1-b."""
    return hostile.write_pcap(tmp_path_factory.mktemp("weird") / "weird.pcap", hostile.weird_peer())


def test_text_escapes_format_characters_and_backslashes_reversibly(weird_capture):
    run = btshark_ok("read", weird_capture)
    assert not [ch for ch in run.stdout if not ch.isprintable() and ch != "\n"]
    assert "\u202e" not in run.stdout and "\x1b" not in run.stdout
    lines = [line for line in run.stdout.splitlines() if " extended handshake " in line]
    bodies = [json.loads(line.split(" extended handshake ", 1)[1]) for line in lines]
    assert bodies[0] == {"ab": 1, "hex:ab": 2, "m": {"ut_pex": 1}, "p": 6881, "v": "evil\u202ecod.exe"}
    assert bodies[1]["v"] == "esc\x1b[31m and \\x1b"  # an ESC and four characters, told apart
    assert '"v":"evil\\u202ecod.exe"' in lines[0]


def test_jsonl_is_ascii_and_carries_the_true_strings(weird_capture):
    run = btshark_ok("read", weird_capture, "-T", "jsonl")
    assert run.raw_stdout.isascii()
    hs = [r["data"] for r in map(json.loads, run.stdout.splitlines()) if r.get("ext_name") == "handshake"]
    assert hs[0]["v"] == "evil\u202ecod.exe" and hs[0]["ab"] == 1 and hs[0]["hex:ab"] == 2
    assert hs[1]["v"] == "esc\x1b[31m and \\x1b"


def test_odd_pex_list_is_a_malformed_finding_and_its_whole_entries_stay(weird_capture):
    records = read_jsonl(weird_capture)
    (pex,) = [r for r in records if r.get("ext_name") == "ut_pex"]
    assert pex["data"]["added"] == ["10.0.0.1:6881"]
    run = btshark_ok("read", weird_capture)
    assert "!! malformed [error]: extended message 1 (ut_pex): ut_pex added of 7 bytes: 1 left over after " \
           "1 whole 6-byte entry" in run.stdout


@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
def test_bencode_bomb_above_the_size_limit_is_a_limit_finding(tmp_path, nested):
    """The receiver named ut_pex, so the body is ut_pex's: refused for its size (the unit tests
    show it is never built), the message still listed."""
    from inspector.extensions import MAX_BENCODE_SIZE

    size = MAX_BENCODE_SIZE + 2
    body = (b"l" * (size // 2) + b"e" * (size // 2)) if nested else b"l" + b"le" * (size // 2 - 1) + b"e"
    c = hostile.Conn().open().handshakes()
    c.send(1, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 1}})))
    c.send(0, wb.extended(1, body), mss=65000)
    path = hostile.write_pcap(tmp_path / "bomb.pcap", c.close().frames)
    run = btshark_ok("read", path)
    assert (f"!! limit [warning]: extended message 1 (ut_pex): extended body of {size} bytes above the bencode "
            f"size limit (--max-bencode-size {MAX_BENCODE_SIZE}); not decoded") in run.stdout
    (ext,) = [r for r in read_jsonl(path) if r.get("ext_id") == 1]
    assert ext["data"] is None and ext["trailing"] == size


# ---------------------------------------------------------------- bad input


def _record_starts(data: bytes) -> list[int]:
    """Byte offsets of each record of a classic pcap file."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    starts, pos = [], 24
    while pos + 16 <= len(data):
        starts.append(pos)
        pos += 16 + struct.unpack_from(order + "I", data, pos + 8)[0]
    return starts


def test_truncated_capture_keeps_what_came_before(tmp_path):
    data = SAMPLE.read_bytes()
    starts = _record_starts(data)
    cut = int(len(data) * 0.6)
    while cut in starts or cut - 16 < max(s for s in starts if s <= cut):  # inside a record's data
        cut += 7
    record = max(i for i, s in enumerate(starts) if s < cut)  # 0-based index of the cut record
    truncated = tmp_path / "cut.pcap"
    truncated.write_bytes(data[:cut])

    full = read_jsonl(SAMPLE)
    run = run_btshark("read", truncated, "-T", "jsonl")
    assert run.returncode == 0
    got = [json.loads(line) for line in run.stdout.decode().splitlines()]
    before = [r for r in full if r["frame"] <= record]
    # The cut leaves a piece unfinished: one "truncated" finding is the only record the full capture lacks.
    assert [r for r in got if r["type"] != "finding"] == before and len(before) > 50
    assert [(r["kind"], r["frame"]) for r in got if r["type"] == "finding"] == [("truncated", record)]
    err = run.stderr.decode().splitlines()
    assert len(err) == 1 and err[0].startswith("btshark: warning:"), err
    assert f"record {record + 1}" in err[0] or str(starts[record]) in err[0], "the warning should say where"
    for args in ((), ("--sessions",), ("--sessions", "-T", "json")):
        again = run_btshark("read", truncated, *args)
        assert again.returncode == 0 and b"Traceback" not in again.stderr
        assert again.stderr.decode().splitlines() == err


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    text = tmp / "notes.txt"
    text.write_text("this is not a capture\nat all\n")
    rand = tmp / "random.pcap"
    rand.write_bytes(bytes(range(256)) * 7 + b"\x01\x02")
    empty = tmp / "empty.pcap"
    empty.write_bytes(b"")
    short = tmp / "short-header.pcap"
    short.write_bytes(SAMPLE.read_bytes()[:10])
    folder = tmp / "a-directory.pcap"
    folder.mkdir()
    return {"text": text, "random": rand, "empty": empty, "short-header": short, "directory": folder,
            "missing": tmp / "does-not-exist.pcap"}


BAD = ["text", "random", "empty", "short-header", "directory", "missing"]


@pytest.mark.parametrize("command", [("read",), ("read", "--sessions"), ("read", "-T", "json"), ("verify",)])
@pytest.mark.parametrize("which", BAD)
def test_bad_input_is_one_error_line(tmp_path, which, command):
    path = _bad_inputs(tmp_path)[which]
    run = run_btshark(*command, path)
    out, err = run.stdout.decode(), run.stderr.decode()
    assert run.returncode == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("btshark: error:"), err
    assert path.name in lines[0]
    assert out == ""


@pytest.mark.parametrize("expr", ["foo ==", "type ==", "(piece", "session == x", "piece &&", "type == nosuch",
                                  "piece )", "type in {have", "frame == three", "type ~ piece", "$", "bt.index =< 3"])
def test_bad_filter_is_one_error_line(expr):
    run = run_btshark("read", SAMPLE, "-Y", expr)
    err = run.stderr.decode()
    assert run.returncode == 2
    assert run.stdout == b""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("btshark: error:"), err


def test_a_bad_filter_is_quoted_as_typed_and_control_characters_escaped():
    """A backslash typed shows as one (it showed as four: repr, then the CLI's escaping);
    ESC or a newline in the filter never reaches the terminal raw."""
    run = run_btshark("read", SAMPLE, "-Y", 'bt.ext.v matches "\\d+" or \x1b\n')
    err = run.stderr.decode()
    assert run.returncode == 2 and len(err.splitlines()) == 1, err
    assert 'of \'bt.ext.v matches "\\d+" or \\x1b\\n\':' in err and "\x1b" not in err, err


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory) -> Path:
    """6000 have messages: far more output than a pipe holds, so ``head`` really closes it."""
    conv = TcpConversation().open()
    conv.send(0, bt_handshake())
    conv.send(1, bt_handshake(peer_id=b"-TR3000-abcdefghijkl"))
    conv.send(0, b"".join(bt_have(i) for i in range(6000)))
    conv.send(1, bt_request(0, 0, 16384) + bt_piece(0, 0, b"x" * 100))
    conv.close()
    return conv.write(tmp_path_factory.mktemp("big") / "big.pcap")


@pytest.mark.parametrize("fmt", ["text", "jsonl", "json"])
def test_piping_into_head_is_quiet(big_capture, fmt):
    cmd = " ".join(btshark_command()) + f' read "$1" -T {fmt} | head -1; exit "${{PIPESTATUS[0]}}"'
    run = subprocess.run(["bash", "-c", cmd, "_", str(big_capture)], capture_output=True, timeout=60)
    assert run.stdout.count(b"\n") == 1
    assert run.stderr == b"", run.stderr.decode()
    # A reader that stopped early is not an error: exit 0, as tshark does.
    assert run.returncode == 0


def test_big_capture_is_fully_decoded(big_capture):
    records = [r for r in read_jsonl(big_capture) if r["type"] != "finding"]  # messages only
    assert [r["index"] for r in records if r["type"] == "have"] == list(range(6000))
    assert [r["type"] for r in records][-2:] == ["request", "piece"]


def test_a_terminal_that_cannot_encode_the_arrow_gets_an_escape_not_a_traceback():
    """PYTHONIOENCODING=ascii (a non-UTF-8 terminal) once raised UnicodeEncodeError on "→" (issue 10, item 11)."""
    run = subprocess.run([*btshark_command(), "read", str(SAMPLE), "-c", "2"], capture_output=True,
                         env={**os.environ, "PYTHONIOENCODING": "ascii"}, timeout=60)
    assert run.returncode == 0 and b"Traceback" not in run.stderr, run.stderr
    lines = run.stdout.decode("ascii").splitlines()
    assert len(lines) == 2 and all("\\u2192" in line for line in lines)


def test_read_loads_only_what_it_uses():
    """``btshark read`` starts without Textual, pyshark or the replayer (DESIGN.md), and
    without the .torrent reader and OpenSSL unless --torrent is given (4 MB of memory)."""
    probe = ("import sys, io, contextlib; from inspector.cli import main; sys.argv = ['btshark', 'read', sys.argv[1]]"
             + "{extra}\ntry:\n    with contextlib.redirect_stdout(io.StringIO()): main()\nexcept SystemExit: pass\n"
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('textual', 'pyshark', 'replay', 'tui', 'hashlib', 'inspector'))))")
    plain = subprocess.run([sys.executable, "-c", probe.format(extra=""), str(SAMPLE)], capture_output=True,
                           text=True, check=True).stdout.split()
    assert not {"textual", "pyshark", "replay", "tui", "hashlib", "inspector.extract", "inspector.stats"} & set(plain)
    assert "inspector.conformance" in plain  # the probe saw the decode's modules
    torrent = str(SAMPLE.with_suffix(".torrent"))
    given = subprocess.run([sys.executable, "-c", probe.format(extra=f" + ['--torrent', {torrent!r}]"), str(SAMPLE)],
                           capture_output=True, text=True, check=True).stdout.split()
    assert {"hashlib", "inspector.extract"} <= set(given)
