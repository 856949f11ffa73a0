"""``-T fields -e FIELD [-E KEY=VALUE]``: tshark's columns, checked against ``-T jsonl``.

Each column is worked out here from the JSON records of the same capture (the JSON
contract is the oracle: no code shared with ``inspector.filters``), line by line, over
the committed captures and swarms; then every ``-E`` option, each kind of value (bytes,
booleans, times, several values, an extended body's lists and dictionaries, text a
peer controls) and each misuse, which gets one error line and exit code 2.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from conftest import (REPO, TcpConversation, bt_extended, bt_handshake, btshark_ok, capture_params, read_jsonl,
                      run_btshark, write_packets)

SWARMS = sorted((REPO / "captures" / "swarm").glob("*.pcap"))
COLUMNS = ("frame", "session", "transport", "ip.src", "ip.dst", "port", "bt.type", "bt.id", "bt.size", "bt.index",
           "bt.begin", "bt.length", "bt.info_hash", "bt.peer_id", "bt.client", "bt.extensions", "bt.ext_name",
           "bt.finding", "bt.finding.severity", "ts")


def fields(capture: Path | str, *args: str) -> list[list[str]]:
    run = btshark_ok("read", capture, "-T", "fields", *args)
    return [line.split("\t") for line in run.stdout.splitlines()]


def host_port(endpoint: str) -> tuple[str, str]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), port


def expected(r: dict) -> list[str]:
    """The COLUMNS of one JSON record, as tshark would write them."""
    def text(key: str) -> str:
        value = r.get(key)
        return "" if value is None else str(value)

    src, dst = host_port(r["src"]), host_port(r["dst"])
    finding = r["type"] == "finding"
    return [str(r["frame"]), str(r["session"]), r["transport"], src[0], dst[0], f"{src[1]},{dst[1]}", r["type"],
            text("id"), text("size"), text("index"), text("begin"), text("length"), text("info_hash"),
            text("peer_id"), text("client"), ",".join(r.get("extensions", [])), text("ext_name"),
            r["kind"] if finding else "", r["severity"] if finding else "", f"{r['ts']:.6f}"]


@pytest.mark.parametrize("capture", capture_params(shared=False) + [pytest.param(p, id=f"swarm/{p.stem}")
                                                                     for p in SWARMS])
def test_every_column_is_what_the_json_record_says(capture: Path):
    records = read_jsonl(capture)
    args = [a for name in COLUMNS for a in ("-e", name)]
    got = fields(capture, *args)
    assert len(got) == len(records)  # none for the MSE capture: nothing of it is decoded
    for line, record in zip(got, records):
        assert line == expected(record), record


def test_a_display_filter_and_a_count_narrow_the_lines_as_they_narrow_json():
    capture = SWARMS[0]
    for extra in (["-Y", "have && bt.index < 20"], ["-Y", "bt.finding"], ["-c", "7"], ["-Y", "piece", "-c", "3"]):
        records = read_jsonl(capture, *extra)
        got = fields(capture, "-e", "frame", "-e", "bt.type", "-e", "bt.index", *extra)
        assert got == [[str(r["frame"]), r["type"], str(r.get("index", ""))] for r in records] and records, extra


def test_the_style_options():
    capture = SWARMS[0]
    first = read_jsonl(capture, "-c", "1")[0]  # the first handshake: extensions has several values
    names = ("-e", "frame", "-e", "bt.extensions", "-e", "ip.addr", "-e", "bt.index")
    src, dst = host_port(first["src"])[0], host_port(first["dst"])[0]
    exts = first["extensions"]
    assert len(exts) > 1

    def out(*style: str) -> str:
        return btshark_ok("read", capture, "-T", "fields", *names, *style, "-c", "1").stdout

    assert out() == f"{first['frame']}\t{','.join(exts)}\t{src},{dst}\t\n"
    assert out("-E", "header=y") == f"frame\tbt.extensions\tip.addr\tbt.index\n{out()}"
    assert out("-E", "header=n") == out()
    assert out("-E", "separator=,", "-E", "aggregator=/s") == f"{first['frame']},{' '.join(exts)},{src} {dst},\n"
    assert out("-E", "separator=/s", "-E", "aggregator=;") == f"{first['frame']} {';'.join(exts)} {src};{dst} \n"
    assert out("-E", "separator=/t") == out()
    assert out("-E", "quote=d") == f'"{first["frame"]}"\t"{",".join(exts)}"\t"{src},{dst}"\t""\n'
    assert out("-E", "quote=s", "-E", "separator=|") == f"'{first['frame']}'|'{','.join(exts)}'|'{src},{dst}'|''\n"
    assert out("-E", "occurrence=f") == f"{first['frame']}\t{exts[0]}\t{src}\t\n"
    assert out("-E", "occurrence=l") == f"{first['frame']}\t{exts[-1]}\t{dst}\t\n"
    assert out("-E", "occurrence=a", "-E", "quote=n") == out()


def test_values_of_every_kind(tmp_path: Path):
    """A boolean as 1 or 0, bytes in hex, time since the first frame to the microsecond, an
    extended body's list joined and dictionary as JSON, text a peer sent escaped (ESC, a tab:
    it must not split the line), and nothing where the message has no such field."""
    conv = TcpConversation(a=("10.0.0.1", 40000), b=("10.0.0.2", 6881), t0=1_700_000_000.0, dt=0.25).open()
    conv.send(0, bt_handshake(info_hash=bytes(range(20)), peer_id=b"-TR3000-abcdefghijkl"))
    conv.send(1, bt_handshake(info_hash=bytes(range(20))))
    conv.send(0, bt_extended(0, {b"m": {b"ut_pex": 1}, b"v": b"evil\x1b[31m\tclient", b"nums": [1, 2, 300]}))
    path = write_packets(tmp_path / "kinds.pcap", conv.close().packets)
    out = btshark_ok("read", path, "-T", "fields", "-e", "encrypted", "-e", "bt.info_hash", "-e", "time", "-e",
                     "bt.ext.nums", "-e", "bt.ext.m", "-e", "bt.ext.v", "-e", "bt.ext.m.ut_pex").stdout
    lines = [line.split("\t") for line in out.splitlines()]
    assert lines == [  # the SYN is the first frame; the handshakes are frames 4 and 5, 250 ms apart
        ["0", bytes(range(20)).hex(), "0.750000", "", "", "", ""],
        ["0", bytes(range(20)).hex(), "1.000000", "", "", "", ""],
        ["0", "", "1.250000", "1,2,300", '{"ut_pex":1}', "evil\\x1b[31m\\x09client", "1"],
    ]


@pytest.mark.parametrize("args, says", [
    (["-T", "fields"], "-T fields needs at least one -e FIELD"),
    (["-e", "frame"], "-e and -E are for -T fields"),
    (["-T", "jsonl", "-E", "header=y"], "-e and -E are for -T fields"),
    (["-T", "fields", "-e", "frame", "--sessions"], "-T fields prints messages, not --sessions"),
    (["-T", "fields", "-e", "frame", "--stats"], "-T fields prints messages, not --stats"),
    (["-T", "fields", "-e", "bt.indx"], "unknown field or message type 'bt.indx'; did you mean bt.index?"),
    (["-T", "fields", "-e", "piece"], "piece is a message type, not a field"),
    (["-T", "fields", "-e", "bt.ext..v"], "'bt.ext..v' has an empty key"),
    (["-T", "fields", "-e", "frame", "-E", "header=yes"], "-E header=yes: expected header=y|n"),
    (["-T", "fields", "-e", "frame", "-E", "separator=ab"], "-E separator=ab: expected"),
    (["-T", "fields", "-e", "frame", "-E", "separator="], "-E separator=: expected"),
    (["-T", "fields", "-e", "frame", "-E", "quote=x"], "-E quote=x: expected"),
    (["-T", "fields", "-e", "frame", "-E", "occurrence=2"], "-E occurrence=2: expected"),
    (["-T", "fields", "-e", "frame", "-E", "bogus"], "-E bogus: expected"),
])
def test_misuse_is_one_error_line(args, says):
    run = run_btshark("read", *args)
    err = run.stderr.decode()
    assert run.returncode == 2 and run.stdout == b"", err
    assert len(err.splitlines()) == 1 and err.startswith(f"btshark: error: {says}"), err


def test_fields_are_listed_where_the_filters_are():
    """``btshark filters`` lists the names -e takes; each of them prints (an absent one, empty)."""
    table = btshark_ok("filters").stdout.split("\n\n")[0]
    listed = [line.split()[0] for line in table.splitlines() if not line.startswith("bt.ext.<")]
    assert {"bt.index", "ip.src", "time", "bt.finding.detail"} <= set(listed) and len(listed) > 30
    args = [a for name in listed for a in ("-e", name)]
    lines = btshark_ok("read", capture_params(shared=False)[0].values[0], "-T", "fields", *args, "-c", "3").stdout
    assert [len(line.split("\t")) for line in lines.splitlines()] == [len(listed)] * 3



def test_the_readme_example_prints_what_the_readme_shows():
    text = (REPO / "README.md").read_text()
    block = text[text.index("`-T fields -e FIELD` (repeatable)"):]
    block = block[block.index("```\n") + 4:]
    command, *shown = block[:block.index("```")].splitlines()
    assert command.startswith("$ btshark read ") and shown
    args = shlex.split(command)[2:]
    assert btshark_ok(*args).stdout.splitlines() == shown


def test_sniff_takes_the_same_options_and_checks_them_before_capturing():
    run = run_btshark("sniff", "-i", "lo", "-T", "fields", "-e", "bt.nope")
    err = run.stderr.decode()
    assert run.returncode == 2 and err.startswith("btshark: error: unknown field or message type 'bt.nope'"), err
    assert "Capturing on" not in err
