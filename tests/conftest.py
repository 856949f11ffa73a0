"""Shared fixtures and helpers for the CLI, pipeline and tshark acceptance tests.

* where things are: the repository root, its ``captures/``, and the reference
  captures in ``../shared/captures`` beside the clone (absent outside CI: the
  tests that need them skip, saying so);
* running the real ``btshark`` command and parsing what it prints (cached per
  argument list, so several tests can look at one decode without re-running it);
* reading a capture's ``.torrent`` (info hash, piece length, piece hashes);
* building peer-wire messages and whole TCP conversations with scapy, with
  correct sequence and acknowledgement numbers, written with ``wrpcap``.

Test modules import the plain helpers with ``from conftest import ...``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import fastbencode
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI every tool and capture is installed on purpose: a skip there means an
    install step went missing, so it fails instead of passing quietly."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing should be missing: {report.longrepr}"


CAPTURES = REPO / "captures"
SHARED_CAPTURES = REPO.parent / "shared" / "captures"
SHARED_MISSING = (
    f"reference captures not found at {SHARED_CAPTURES} "
    "(CI puts a copy of shared/ beside the clone; outside CI there may be none)"
)
SAMPLE = CAPTURES / "aria2-to-libtorrent.pcap"
WILD = REPO.parent / "shared" / "wild"
WILD_MISSING = f"captures from the wild not found at {WILD} (CI puts shared/ beside the clone)"


def wild(name: str) -> Path:
    """A capture from ``../shared/wild``; the test skips (fails under CI) when it is absent."""
    path = WILD / name
    if not path.is_file():
        pytest.skip(WILD_MISSING)
    return path

HANDSHAKE_PREFIX = b"\x13BitTorrent protocol"


# ---------------------------------------------------------------- captures on disk


def capture_params(*, shared: bool = True, name: str | None = None) -> list:
    """pytest params for every ``*.pcap`` in captures/ (and ../shared/captures).

    ``name`` keeps only files with that file name. When the shared folder is
    absent its place is a single param that skips with the reason.
    """
    params = []
    folders = [("captures", CAPTURES)]
    if shared:
        folders.append(("shared", SHARED_CAPTURES))
    for label, folder in folders:
        if not folder.is_dir():
            params.append(pytest.param(None, id=f"{label}-absent", marks=pytest.mark.skip(reason=SHARED_MISSING)))
            continue
        files = sorted(p for p in folder.glob("*.pcap") if name is None or p.name == name)
        params.extend(pytest.param(p, id=f"{label}/{p.stem}") for p in files)
    return params


def module_scope(fixture_name: str, config: object) -> str:
    """For a fixture that runs inspector code: once per module, except in mutmut's stats run
    (tests/mutation/), where each test must make its own calls to be credited with them."""
    return "function" if os.environ.get("MUTANT_UNDER_TEST") == "stats" else "module"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_captures() -> Path:
    if not SHARED_CAPTURES.is_dir():
        pytest.skip(SHARED_MISSING)
    return SHARED_CAPTURES


# ---------------------------------------------------------------- running btshark


@functools.cache
def btshark_command() -> list[str]:
    """This checkout's ``btshark``, never a PATH lookup (another install first on PATH would
    test other code): the entry point beside the Python running the tests when that entry
    point imports this checkout's ``inspector`` (a venv installed from it; asked of a child
    started as the entry point starts: no current directory on its path), else ``python -m
    inspector`` with this checkout first on the import path."""
    beside = Path(sys.executable).parent / "btshark"
    if beside.exists():
        probe = subprocess.run([sys.executable, "-c", "import inspector; print(inspector.__file__)"],
                               capture_output=True, text=True, cwd="/", timeout=60)
        if probe.returncode == 0 and Path(probe.stdout.strip()).resolve().parent.parent == REPO:
            return [str(beside)]
    return ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "inspector"]


def run_btshark(*args, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``btshark ARGS`` and return the completed process, stdout/stderr as text."""
    return subprocess.run(
        [*btshark_command(), *map(str, args)],
        input=input, capture_output=True, cwd=cwd or REPO, timeout=120,
    )


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    raw_stdout: bytes


@functools.lru_cache(maxsize=None)
def _cached_run(args: tuple[str, ...]) -> Run:
    proc = run_btshark(*args)
    return Run(proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"), proc.stdout)


def btshark(*args) -> Run:
    """``btshark ARGS``, run once per distinct argument list in the whole test session.

    Not cached in mutmut's stats run (tests/mutation/): there each test must start its own
    process, or only the first test of a shared command is seen to call the code it runs."""
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        return _cached_run.__wrapped__(tuple(map(str, args)))
    return _cached_run(tuple(map(str, args)))


def btshark_ok(*args) -> Run:
    run = btshark(*args)
    assert run.returncode == 0, f"btshark {' '.join(map(str, args))} exited {run.returncode}: {run.stderr}"
    assert "Traceback" not in run.stderr
    return run


def read_jsonl(capture: Path | str, *extra) -> list[dict]:
    """``btshark read CAPTURE -T jsonl [EXTRA]``, parsed: one dict per line."""
    run = btshark_ok("read", capture, "-T", "jsonl", *extra)
    return [json.loads(line) for line in run.stdout.splitlines()]


def read_sessions(capture: Path | str) -> list[dict]:
    """``btshark read CAPTURE --sessions -T json``, parsed."""
    run = btshark_ok("read", capture, "--sessions", "-T", "json")
    return json.loads(run.stdout)


# ---------------------------------------------------------------- torrents


@dataclass(frozen=True)
class TorrentInfo:
    info_hash: str  # hex
    piece_length: int
    length: int
    pieces: tuple[bytes, ...]  # SHA-1 of each piece

    def blocks(self, block: int = 16384) -> set[tuple[int, int, int]]:
        """Every (index, begin, length) a downloader requests, in 16 KiB blocks."""
        out = set()
        for index in range(len(self.pieces)):
            size = min(self.piece_length, self.length - index * self.piece_length)
            for begin in range(0, size, block):
                out.add((index, begin, min(block, size - begin)))
        return out


@functools.lru_cache(maxsize=None)
def torrent_info(path: Path) -> TorrentInfo:
    """The v1 facts of a .torrent, read with fastbencode (independent of btshark)."""
    meta = fastbencode.bdecode(Path(path).read_bytes())
    info = meta[b"info"]
    pieces = info[b"pieces"]
    return TorrentInfo(
        info_hash=hashlib.sha1(fastbencode.bencode(info)).hexdigest(),
        piece_length=info[b"piece length"],
        length=info[b"length"],
        pieces=tuple(pieces[i:i + 20] for i in range(0, len(pieces), 20)),
    )


def torrent_for(capture: Path) -> Path:
    return Path(capture).with_suffix(".torrent")


# ---------------------------------------------------------------- peer-wire bytes


def bt_handshake(info_hash: bytes = b"\x11" * 20, peer_id: bytes = b"-XX0001-abcdefghijkl",
                 reserved: bytes = b"\x00\x00\x00\x00\x00\x10\x00\x05") -> bytes:
    assert len(info_hash) == 20 and len(peer_id) == 20 and len(reserved) == 8
    return HANDSHAKE_PREFIX + reserved + info_hash + peer_id


def bt_msg(msg_id: int | None, payload: bytes = b"") -> bytes:
    """A length-prefixed message; ``msg_id`` None is a keep-alive."""
    if msg_id is None:
        return b"\0\0\0\0"
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def bt_have(index: int) -> bytes:
    return bt_msg(4, struct.pack(">I", index))


def bt_request(index: int, begin: int, length: int) -> bytes:
    return bt_msg(6, struct.pack(">III", index, begin, length))


def bt_piece(index: int, begin: int, block: bytes) -> bytes:
    return bt_msg(7, struct.pack(">II", index, begin) + block)


def bt_extended(ext_id: int, body: dict) -> bytes:
    return bt_msg(20, bytes([ext_id]) + fastbencode.bencode(body))


# ---------------------------------------------------------------- TCP conversations with scapy


@dataclass
class TcpConversation:
    """A TCP connection between ``a`` (the opener) and ``b``, packet by packet.

    Every packet gets the right seq/ack for what each side has sent so far and
    a capture time ``dt`` after the previous one. ``packets`` is a plain list:
    tests reorder, drop or duplicate entries before ``write``.
    """

    a: tuple[str, int] = ("10.0.0.1", 40000)
    b: tuple[str, int] = ("10.0.0.2", 6881)
    isn: tuple[int, int] = (1000, 900000)
    t0: float = 1_700_000_000.0
    dt: float = 0.001
    mss: int = 1400
    packets: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.next_seq = [self.isn[0], self.isn[1]]
        self.t = self.t0

    def _ip(self, side: int):
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether

        src, dst = (self.a, self.b) if side == 0 else (self.b, self.a)
        layer = IPv6(src=src[0], dst=dst[0]) if ":" in src[0] else IP(src=src[0], dst=dst[0])
        return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / layer, src[1], dst[1]

    def packet(self, side: int, flags: str, payload: bytes = b"", *, seq: int | None = None,
               advance: bool = True):
        """One segment from ``side`` (0 = a, 1 = b); returns it (already appended)."""
        from scapy.layers.inet import TCP
        from scapy.packet import Raw

        base, sport, dport = self._ip(side)
        seq = self.next_seq[side] if seq is None else seq
        ack = self.next_seq[1 - side] if "A" in flags else 0
        pkt = base / TCP(sport=sport, dport=dport, flags=flags, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                         window=65535)
        if payload:
            pkt = pkt / Raw(payload)
        self.t += self.dt
        pkt.time = self.t
        if advance:
            self.next_seq[side] = seq + len(payload) + ("S" in flags) + ("F" in flags)
        self.packets.append(pkt)
        return pkt

    def open(self) -> TcpConversation:
        """The three-way handshake."""
        self.packet(0, "S")
        self.packet(1, "SA")
        self.packet(0, "A")
        return self

    def send(self, side: int, data: bytes, mss: int | None = None) -> list:
        """``data`` from ``side`` in segments of at most ``mss`` bytes; returns them."""
        mss = mss or self.mss
        return [self.packet(side, "PA", data[i:i + mss]) for i in range(0, len(data), mss)]

    def fin(self, side: int):
        return self.packet(side, "FA")

    def close(self) -> TcpConversation:
        self.fin(0)
        self.fin(1)
        self.packet(0, "A")
        return self

    def rst(self, side: int):
        return self.packet(side, "R")

    def write(self, path: Path, packets: list | None = None) -> Path:
        write_packets(path, self.packets if packets is None else packets)
        return path


def write_packets(path: Path, packets: list) -> Path:
    from scapy.utils import wrpcap

    wrpcap(str(path), packets)
    return path


def decode_capture(path: Path):
    """(messages, findings, sessions) of a capture, through ``CaptureDecode``."""
    from inspector.pipeline import CaptureDecode

    decode = CaptureDecode(str(path))
    records = list(decode)
    messages = [r for r in records if r.event.type != "finding"]
    findings = [r for r in records if r.event.type == "finding"]
    return messages, findings, decode.sessions


@pytest.fixture
def conversation():
    """A factory for ``TcpConversation``s (keyword arguments as the dataclass)."""
    return TcpConversation


@pytest.fixture(scope="session")
def tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed")
    return exe


# C0 controls other than newline, DEL and C1 controls: must never reach a terminal.
UNSAFE_CHARS = frozenset(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]) - {"\n"}


@pytest.fixture(scope="session")
def made(tmp_path_factory):
    """A v2-only and a hybrid torrent of the same files, made by libtorrent (``live.v2_torrents``)."""
    pytest.importorskip("libtorrent")
    from live import v2_torrents

    return v2_torrents(tmp_path_factory.mktemp("v2"))
