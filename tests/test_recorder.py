"""End to end: a user's rerun of ``captures/record.py`` yields captures btshark decodes correctly.

Each case records, into pytest's temporary directory, a small transfer between
real clients (libtorrent -> libtorrent over TCP, aria2 -> libtorrent over TCP,
libtorrent -> libtorrent over uTP) with the project's own recorder, run as a
user would run it (``python captures/record.py ...`` as a subprocess), and then
checks what ``btshark`` makes of the capture against facts it cannot influence:
the ``.torrent`` the recorder wrote beside it (read with fastbencode), the
installed clients' own version numbers, and, for TCP, Wireshark's decode.

The payload is 250 000 bytes in 32 KiB pieces: not a multiple of the piece or
the block size, so the last piece is short and so is its last block.

transmission is left out: it unchokes only at its 10 s rechoke, which alone
would exceed this module's time budget.

Needs root, working ``ip netns``, tcpdump, ethtool, ss, aria2c and the
libtorrent bindings (all installed by ``.ci/install``); otherwise the module
skips, saying what is missing. Each recording happens once per test session.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, btshark, read_jsonl, read_sessions, torrent_info

RECORDER = REPO / "captures" / "record.py"
SEED_PORT = 51413  # the recorder's fixed seeder port
SIZE = 250_000
PIECE_SIZE = 32 << 10
BLOCK = 16384
DOWNLOAD_TIMEOUT = 30  # the recorder's --timeout (seconds for the transfer itself)
RECORDER_TIMEOUT = 120  # the whole recorder subprocess


@dataclass(frozen=True)
class Case:
    name: str
    seeder: str  # "libtorrent" or "aria2"
    transport: str  # "tcp" or "utp"
    twin: str | None = None  # record.py --twin
    size: int = SIZE

    def args(self) -> list[str]:
        return ["--seeder", self.seeder, "--transport", self.transport, *(["--twin", self.twin] if self.twin else [])]


CASES = [
    Case("libtorrent-to-libtorrent", "libtorrent", "tcp"),
    Case("aria2-to-libtorrent", "aria2", "tcp"),
    Case("libtorrent-utp", "libtorrent", "utp"),
]
TCP_CASES = [c for c in CASES if c.transport == "tcp"]
# A lossy twin needs a burst bigger than its ring: 1 MiB, as for the committed twin set.
TWIN_CASES = [
    Case("aria2-lossy-twin", "aria2", "tcp", twin="lossy", size=1 << 20),
    Case("libtorrent-snap128-twin", "libtorrent", "tcp", twin="snap128"),
]


def _params(cases: list[Case]) -> list:
    return [pytest.param(c, id=c.name) for c in cases]


# ---------------------------------------------------------------- environment


def _missing_requirement() -> str | None:
    """Why the recorder cannot run here, or None."""
    if sys.platform != "linux":
        return "the recorder needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the recorder must run as root (network namespaces and tcpdump)"
    for tool in ("ip", "ss", "ethtool", "tcpdump", "aria2c"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/install installs it)"
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        return "the libtorrent Python bindings are not installed (pip install -e '.[test]')"
    # Exactly what the recorder does first: create a namespace (and delete it again).
    probe = f"btshark-test-probe-{os.getpid()}"
    added = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if added.returncode != 0:
        return f"ip netns is unavailable here: {added.stderr.strip() or 'exit status ' + str(added.returncode)}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


@pytest.fixture(scope="module")
def environment() -> None:
    reason = _missing_requirement()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def libtorrent_client(environment) -> str:
    """How btshark should name the installed libtorrent from its peer id (-LT2110- is 2.1.1)."""
    import libtorrent as lt

    major, minor, patch = lt.__version__.split(".")[:3]
    return f"libtorrent (rasterbar) {major}.{minor}.{patch}"


@pytest.fixture(scope="module")
def aria2_client(environment) -> str:
    """How btshark should name the installed aria2 ("aria2 version 1.36.0" -> "aria2 1.36.0")."""
    out = subprocess.run(["aria2c", "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.match(r"aria2 version (\d+\.\d+\.\d+)", out)
    assert m, f"unexpected aria2c --version output: {out[:200]!r}"
    return f"aria2 {m.group(1)}"


@pytest.fixture(scope="module")
def clients(libtorrent_client, aria2_client) -> dict[str, str]:
    return {"libtorrent": libtorrent_client, "aria2": aria2_client}


# ---------------------------------------------------------------- recording


@dataclass(frozen=True)
class Recording:
    case: Case
    pcap: Path
    torrent: Path
    returncode: int
    stdout: str
    stderr: str


def _run_recorder(case: Case, out: Path) -> Recording:
    """``python captures/record.py ... --out OUT``; on timeout, SIGTERM first so it removes its namespace."""
    cmd = [sys.executable, str(RECORDER), *case.args(), "--size", str(case.size), "--piece-size", str(PIECE_SIZE),
           "--timeout", str(DOWNLOAD_TIMEOUT), "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=RECORDER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the recorder's clean-up path (namespace, work files)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"record.py {' '.join(case.args())} did not finish within {RECORDER_TIMEOUT} s: {stderr[-2000:]}")
    return Recording(case, out, out.with_suffix(".torrent"), proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def record(environment, tmp_path_factory):
    """``record(case)``: the recording for ``case``, made at most once per session, checked to have succeeded."""
    folder = tmp_path_factory.mktemp("recordings")
    done: dict[str, Recording] = {}

    def get(case: Case) -> Recording:
        if case.name not in done:
            done[case.name] = _run_recorder(case, folder / f"{case.name}.pcap")
        rec = done[case.name]
        assert rec.returncode == 0, (f"record.py {' '.join(case.args())} exited {rec.returncode}:\n"
                                     f"{rec.stderr[-2000:]}")
        return rec

    return get


def _session(rec: Recording) -> dict:
    sessions = read_sessions(rec.pcap)
    assert len(sessions) == 1, f"expected one session, got {len(sessions)}: {sessions}"
    return sessions[0]


def _sides(session: dict) -> tuple[str, str]:
    """(seeder side, downloader side) of a session: the seeder is the one on port 51413."""
    seeder = [side for side in ("a", "b") if session[side].endswith(f":{SEED_PORT}")]
    assert len(seeder) == 1, f"expected exactly one side on port {SEED_PORT}: {session['a']} / {session['b']}"
    return seeder[0], "ab"[seeder[0] == "a"]


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("case", _params(CASES))
def test_recorder_writes_capture_and_torrent(case, record):
    rec = record(case)
    assert "Traceback" not in rec.stderr
    # -q: the one summary line only, naming the capture and tcpdump's counters.
    lines = rec.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{rec.pcap} ("), rec.stdout
    assert " 0 dropped by kernel" in lines[0]
    assert rec.pcap.is_file() and rec.torrent.is_file()
    assert not rec.pcap.with_name(rec.pcap.name + ".part").exists()
    assert rec.pcap.stat().st_size > SIZE  # the whole payload went over the wire once
    info = torrent_info(rec.torrent)
    assert (info.length, info.piece_length, len(info.pieces)) == (SIZE, PIECE_SIZE, -(-SIZE // PIECE_SIZE))


@pytest.mark.parametrize("case", _params(CASES))
def test_one_plaintext_session_on_the_expected_transport(case, record):
    rec = record(case)
    session = _session(rec)
    seed, down = _sides(session)
    assert session["transport"] == case.transport
    assert session["encrypted"] is False
    assert session["info_hash"] == torrent_info(rec.torrent).info_hash
    assert session["findings"] == []  # no holes, truncation or malformed messages in a clean capture
    assert session["payload_bytes"] == {seed: SIZE, down: 0}


@pytest.mark.parametrize("case", _params(CASES))
def test_both_handshakes_carry_the_torrents_info_hash(case, record):
    rec = record(case)
    session = _session(rec)
    handshakes = [r for r in read_jsonl(rec.pcap) if r["type"] == "handshake"]
    assert sorted((h["src"], h["dst"]) for h in handshakes) == sorted(
        [(session["a"], session["b"]), (session["b"], session["a"])])
    expected = torrent_info(rec.torrent).info_hash
    assert [h["info_hash"] for h in handshakes] == [expected, expected]
    assert all(h["session"] == session["id"] and h["transport"] == case.transport for h in handshakes)


@pytest.mark.parametrize("case", _params(CASES))
def test_clients_are_identified(case, record, clients):
    rec = record(case)
    session = _session(rec)
    seed, down = _sides(session)
    assert session["clients"] == {seed: clients[case.seeder], down: clients["libtorrent"]}
    by_src = {h["src"]: h["client"] for h in read_jsonl(rec.pcap) if h["type"] == "handshake"}
    assert by_src == {session[seed]: clients[case.seeder], session[down]: clients["libtorrent"]}


@pytest.mark.parametrize("case", _params(CASES))
def test_seeder_sends_every_block_exactly_once(case, record):
    rec = record(case)
    session = _session(rec)
    seed, down = _sides(session)
    pieces = [r for r in read_jsonl(rec.pcap) if r["type"] == "piece"]
    assert [p for p in pieces if p["src"] != session[seed]] == []  # the downloader had nothing to give
    sent = Counter((p["index"], p["begin"], p["length"]) for p in pieces)
    assert {block: n for block, n in sent.items() if n > 1} == {}
    blocks = torrent_info(rec.torrent).blocks(BLOCK)
    assert set(sent) == blocks
    assert sum(length for _, _, length in blocks) == SIZE  # the torrent's blocks really are the whole payload
    assert session["messages"][seed]["piece"] == len(blocks)


@pytest.mark.parametrize("case", _params(TCP_CASES))
def test_verify_agrees_with_wireshark(case, record, tshark):
    rec = record(case)
    run = btshark("verify", rec.pcap)
    assert run.returncode == 0, f"btshark verify exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    lines = run.stdout.splitlines()
    # Both directions compared (not "no plaintext messages"), and both agree.
    assert lines[-1] == "2 directions, 2 agree, 0 differ", run.stdout
    assert sum(line.startswith("agree ") for line in lines) == 2


# ---------------------------------------------------------------- twins (record.py --twin)


@pytest.mark.parametrize("case", _params(TWIN_CASES))
def test_twin_is_the_same_connection_minus_what_its_tcpdump_lost(case, record):
    """OUT.pcap is whole; OUT-<twin>.pcap holds the same segments, fewer (lossy) or cut at 128 bytes (snap128)."""
    from test_twins import SNAPLEN, read_segments, stream_isns

    rec = record(case)
    twin = rec.pcap.with_name(f"{rec.pcap.stem}-{case.twin}.pcap")
    lines = rec.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == [str(rec.pcap), str(twin)], rec.stdout
    assert " 0 dropped by kernel" in lines[0]
    dropped = int(re.search(r"(\d+) dropped by kernel", lines[1]).group(1))
    assert (dropped > 0) if case.twin == "lossy" else (dropped == 0), lines[1]
    assert not any(p.name.endswith(".part") for p in rec.pcap.parent.iterdir())

    whole, other = read_segments(rec.pcap), read_segments(twin)
    assert stream_isns(other) == stream_isns(whole)  # the SYNs are in both: one connection
    assert all(len(s.data) == s.wire_len for s in whole)
    on_wire = {(s.direction, s.seq, s.wire_len) for s in whole}
    assert {(s.direction, s.seq, s.wire_len) for s in other} <= on_wire
    if case.twin == "lossy":
        assert len(other) < len(whole)
        assert all(len(s.data) == s.wire_len for s in other)
    else:
        assert len(other) == len(whole)
        assert all(len(s.data) == s.wire_len or len(s.data) < SNAPLEN for s in other)
        assert any(len(s.data) < s.wire_len for s in other)
