#!/usr/bin/env python3
"""Record real BitTorrent transfers between real clients into pcap files.

btshark's decoders are only as good as the traffic they are tested on, so the
bundled sample captures are recorded from real clients, and anyone can rerun
this script to reproduce them (or to make big captures for benchmarks).

Each recording runs in a fresh network namespace so that nothing but the two
clients talks on the captured interface and no real network is touched:

* ``ip netns add btshark-rec-<pid>``, ``lo`` up with MTU 1500 and the
  segmentation/receive offloads off, so segments on the wire are Ethernet-sized
  like a real link rather than 64 KiB loopback super-segments;
* ``tcpdump -i lo -B 524288 -s 0`` inside the namespace;
* the seeder (aria2, transmission-cli or libtorrent) on port 51413 and a
  libtorrent downloader on port 6881, which is told the seeder's address
  directly (no tracker, DHT, local peer discovery, UPnP or NAT-PMP);
* the download is checked against the source data (size and SHA-256), the clients
  are stopped, tcpdump is stopped with SIGINT so it flushes the file, and the
  namespace and all work files are removed on every exit path.

A swarm (``--swarm CLIENTS``) puts one seed and several downloaders in the same
namespace, each on its own 127.0.0.x address, with a tiny HTTP tracker there so
that clients which cannot be handed a peer (aria2, transmission) find each other;
they trade pieces among themselves and exchange peers (PEX), as in a real swarm.
Two peers alone never show what several do: choke rotation, a peer asking the
same block twice, aria2's fresh bitfield in place of many haves.

Examples (as root)::

    python captures/record.py --all
    python captures/record.py --seeder aria2 --out /tmp/a.pcap
    python captures/record.py --seeder libtorrent --transport utp --out /tmp/u.pcap
    python captures/record.py --seeder libtorrent --size 256MiB --out bench/out/big.pcap
    python captures/record.py --swarm libtorrent,aria2,transmission --out /tmp/swarm.pcap

The script also runs itself inside the namespace as the libtorrent peer
(``record.py _peer ...``) and as the swarm's tracker (``record.py _tracker ...``);
those entry points are internal.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Callable, NoReturn, Sequence

SEED_PORT = 51413
DOWNLOAD_PORT = 6881
LOCALHOST = "127.0.0.1"
PAYLOAD_NAME = "payload.bin"
TCPDUMP_BUFFER_KIB = 524288  # tcpdump -B is in KiB: 512 MiB, so big transfers are not dropped
DEFAULT_SIZE = 1 << 20
DEFAULT_PIECE_SIZE = 64 << 10
SAMPLE_MAX_BYTES = 2_000_000
CAPTURES_DIR = Path(__file__).resolve().parent
SCRIPT = Path(__file__).resolve()
PROG = "record.py"

SEEDERS = ("aria2", "transmission", "libtorrent")
SWARM_CLIENTS = ("libtorrent", "aria2", "transmission")
TRANSPORTS = ("tcp", "utp")

# A swarm: the tracker, the seed and downloader i each on an address of their own, so
# that every connection names its two clients and the tracker can leave a client out
# of the peers it is given by the address it announces from.
TRACKER_ADDR = ("127.0.0.1", 6969)
TRACKER_URL = f"http://{TRACKER_ADDR[0]}:{TRACKER_ADDR[1]}/announce"
SWARM_SEED_ADDR = "127.0.0.10"
SWARM_MAX_DOWNLOADERS = 8  # downloader i listens on 127.0.0.(11+i):(6881+i)
SWARM_SAMPLE_MAX_BYTES = 3_200_000
# On loopback an unthrottled seed hands every downloader the whole torrent in a few
# milliseconds and nobody trades. Throttled, the downloaders get pieces from each other
# and the chokers turn: the seed uploads at most SWARM_SEED_RATE with one unchoke slot;
# every libtorrent peer re-ranks its one unchoke slot every second, and a libtorrent
# downloader reads at most SWARM_READ_RATE over TCP, so that a request may wait unread in
# its socket across a choke and an unchoke (aria2, which forgets its requests when
# choked, then asks for the block again and is sent it twice).
SWARM_SEED_RATE = 128 << 10  # bytes/s
SWARM_READ_RATE = 64 << 10  # bytes/s, libtorrent downloaders
SWARM_UNCHOKE_SLOTS = 1
SWARM_UNCHOKE_INTERVAL = 1  # seconds, libtorrent (its default is 15)
# Over uTP nothing is lost on loopback, so receivers never ack selectively (BEP 29). A
# libtorrent downloader's UDP receive buffer of 8 KiB (the kernel doubles it) overflows
# under the seed's bursts: datagrams are dropped after tcpdump saw them, as on a real
# link, and the receivers send selective acks and get the data again.
SWARM_UTP_RECV_BUFFER = 8192
SWARM_STAGGER = 0.5  # seconds between downloaders joining
SWARM_SETTLE = 2.0  # seconds after the last download, for the last haves and hang-ups
LIBTORRENT_FINISHED = r"finished: \d+ bytes"  # what the libtorrent peer prints once its download is complete


@dataclasses.dataclass(frozen=True)
class Twin:
    """A second tcpdump beside the lossless one, on the same interface at the same time.

    The lossless capture is the truth a decoder's output on the twin is measured
    against: the same packets, minus what the twin's settings cost.
    """

    name: str  # also the suffix of the twin's file: X.pcap and X-<name>.pcap
    buffer_kib: int  # tcpdump -B
    snaplen: int  # tcpdump -s (0: whole packets)
    must_drop: bool  # a lossy twin that lost nothing proves nothing


# A 1 MiB transfer arrives as one burst faster than tcpdump drains its ring, so the loss
# depends on the ring against the burst (and on how busy the machine is). Measured on the
# 2-core VM (aria2 seeder, 1 MiB): -B 256 lost 22-38% of packets in 3 of 3 runs, 512 lost
# 18-43% when idle but nothing in 2 of 3 runs under load, 768 and above mostly nothing.
# 256 is picked so a recording nearly always has holes, while the 512 MiB twin drops nothing.
LOSSY_BUFFER_KIB = 256
TWINS = {
    "lossy": Twin("lossy", LOSSY_BUFFER_KIB, 0, must_drop=True),
    "snap128": Twin("snap128", TCPDUMP_BUFFER_KIB, 128, must_drop=False),
}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One bundled sample capture that ``--all`` re-records."""

    stem: str  # path under --out-dir, without .pcap
    seeder: str
    transport: str
    encryption: bool
    twin: str | None = None
    swarm: tuple[str, ...] = ()  # the downloaders of a swarm; () for one libtorrent downloader
    size: int = DEFAULT_SIZE
    piece_size: int = DEFAULT_PIECE_SIZE

    @property
    def max_bytes(self) -> int:
        """Bundled captures stay small; a swarm carries the torrent once per downloader."""
        return SWARM_SAMPLE_MAX_BYTES if self.swarm else SAMPLE_MAX_BYTES


# Twin sets live in twins/ so that the sample-wide tests (which expect whole captures)
# do not take a lossy capture for a broken one.
SAMPLES: tuple[Sample, ...] = (
    Sample("aria2-to-libtorrent", "aria2", "tcp", False),
    Sample("transmission-to-libtorrent", "transmission", "tcp", False),
    Sample("libtorrent-to-libtorrent", "libtorrent", "tcp", False),
    Sample("libtorrent-utp", "libtorrent", "utp", False),
    Sample("libtorrent-mse", "libtorrent", "tcp", True),
    Sample("twins/aria2-to-libtorrent", "aria2", "tcp", False, "lossy"),
    Sample("twins/libtorrent-to-libtorrent", "libtorrent", "tcp", False, "snap128"),
    # Swarms live in swarm/: the sample-wide tests expect one connection per capture.
    # 768 KiB, as three downloaders carry the torrent three times (and a few pieces twice).
    Sample("swarm/swarm-tcp", "libtorrent", "tcp", False, swarm=("libtorrent", "aria2", "transmission"),
           size=768 << 10, piece_size=16 << 10),
    Sample("swarm/swarm-utp", "libtorrent", "utp", False, swarm=("libtorrent", "libtorrent"),
           size=1 << 20, piece_size=16 << 10),
)


class RecordError(Exception):
    """An expected failure: reported as one line, without a traceback."""


@dataclasses.dataclass(frozen=True)
class Recording:
    """Everything one recording needs to know."""

    seeder: str
    transport: str
    encryption: bool
    size: int
    piece_size: int
    out: Path
    timeout: float
    allow_drops: bool = False
    quiet: bool = False
    twin: Twin | None = None
    swarm: tuple[str, ...] = ()  # downloaders of a swarm (each on its own address); () for a pair

    def twin_out(self) -> Path | None:
        """Where the twin capture goes: X.pcap -> X-<twin>.pcap."""
        return self.out.with_name(f"{self.out.stem}-{self.twin.name}{self.out.suffix}") if self.twin else None


@dataclasses.dataclass
class Payload:
    """The generated data file and the facts about it we check against later."""

    path: Path
    sha256: str
    piece_hashes: list[bytes]


@dataclasses.dataclass(frozen=True)
class Peer:
    """One client of a recording: which one, where it listens, and whether it starts with the data."""

    client: str
    addr: str
    port: int
    seed: bool
    name: str  # for messages and work files: "libtorrent seeder", "seed (libtorrent)", "downloader 2 (aria2)"

    @property
    def slug(self) -> str:
        """The name as a file name."""
        return re.sub(r"[^a-z0-9]+", "-", self.name).strip("-")


@dataclasses.dataclass(frozen=True)
class CaptureStats:
    """tcpdump's closing counters, so lost packets are never silent."""

    captured: int | None
    received: int | None
    dropped: int | None


# --------------------------------------------------------------------------- helpers


def log(msg: str, *, quiet: bool = False) -> None:
    """Progress goes to stderr so stdout stays clean for the summary."""
    if not quiet:
        print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 1000,
    "m": 1 << 20, "mib": 1 << 20, "mb": 1000**2,
    "g": 1 << 30, "gib": 1 << 30, "gb": 1000**3,
    "t": 1 << 40, "tib": 1 << 40, "tb": 1000**4,
}


def parse_size(text: str) -> int:
    """Parse '1048576', '1MiB', '256MiB', '1GiB', '1.5G' (K/M/G alone are binary)."""
    m = _SIZE_RE.match(text)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (use e.g. 1048576, 64KiB, 256MiB, 1GiB)")
    value = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def parse_swarm(text: str) -> tuple[str, ...]:
    """'libtorrent,aria2,transmission': the downloaders of a swarm, in the order they join."""
    clients = tuple(part.strip() for part in text.split(","))
    unknown = [c for c in clients if c not in SWARM_CLIENTS]
    if unknown or not 1 <= len(clients) <= SWARM_MAX_DOWNLOADERS:
        raise argparse.ArgumentTypeError(f"invalid swarm {text!r}: 1 to {SWARM_MAX_DOWNLOADERS} of "
                                         f"{', '.join(SWARM_CLIENTS)}, comma-separated")
    return clients


def parse_piece_size(text: str) -> int:
    """Piece sizes must be a power of two of at least 16 KiB (one block), as clients expect."""
    value = parse_size(text)
    if value < 16 << 10 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"piece size must be a power of two >= 16KiB, got {text!r}")
    return value


def human(n: float) -> str:
    """Binary-unit size for messages."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def default_timeout(size: int, seeder: str, transport: str, swarm: bool = False) -> float:
    """Generous limit that scales with size.

    Measured on a 2-core VM: libtorrent and aria2 move 50-90 MiB/s over loopback TCP,
    transmission-cli 3.00 about 4 MiB/s after its first 10 s rechoke; the rates here
    leave a wide margin for slower machines. A swarm's seed is throttled to
    SWARM_SEED_RATE; a 768 KiB swarm of three downloaders took 13-40 s.
    """
    if swarm:
        return 60.0 + 4 * size / SWARM_SEED_RATE
    if seeder == "transmission":
        rate = 1 << 20
    elif transport == "utp":
        rate = 4 << 20
    else:
        rate = 8 << 20
    return 60.0 + size / rate


def run(cmd: Sequence[str], *, what: str) -> str:
    """Run a short setup command; a failure becomes a one-line RecordError."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise RecordError(f"{what}: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise RecordError(f"{what}: {' '.join(cmd)} timed out") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RecordError(f"{what} failed: {detail[-1] if detail else 'exit status ' + str(proc.returncode)}")
    return proc.stdout


def check_environment(clients: Sequence[str]) -> None:
    """Fail early, in one line, on what would otherwise fail halfway through (``clients``: every one used)."""
    if sys.platform != "linux":
        raise RecordError("needs Linux (network namespaces)")
    if os.geteuid() != 0:
        raise RecordError("must run as root (network namespaces and tcpdump need it): "
                          "sudo python captures/record.py ...")
    needed = {"ip": "iproute2", "ss": "iproute2", "ethtool": "ethtool", "tcpdump": "tcpdump"}
    if "aria2" in clients:
        needed["aria2c"] = "aria2"
    if "transmission" in clients:
        needed["transmission-cli"] = "transmission-cli"
        needed["stdbuf"] = "coreutils"
    for tool, package in needed.items():
        if shutil.which(tool) is None:
            raise RecordError(f"{tool} not found (install the Debian package {package!r})")
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        raise RecordError("the libtorrent Python bindings are missing (pip install libtorrent==2.1.1)") from None


def client_versions(clients: Sequence[str]) -> dict[str, str]:
    """Versions as the clients report them, for the summary and the README."""
    import libtorrent as lt

    versions = {"libtorrent": f"libtorrent {lt.__version__} (Python bindings)"}
    if "aria2" in clients:
        out = subprocess.run(["aria2c", "--version"], capture_output=True, text=True).stdout
        versions["aria2"] = out.splitlines()[0].strip() if out else "aria2 (unknown version)"
    if "transmission" in clients:
        proc = subprocess.run(["transmission-cli", "--version"], capture_output=True, text=True)
        out = (proc.stdout + proc.stderr).strip()
        versions["transmission"] = out.splitlines()[0].strip() if out else "transmission-cli (unknown version)"
    return versions


# --------------------------------------------------------------------------- data and torrent


def make_payload(directory: Path, size: int, piece_size: int) -> Payload:
    """Stream random data to disk in chunks, hashing pieces as we go (one pass, bounded memory)."""
    path = directory / PAYLOAD_NAME
    chunk = piece_size * max(1, (4 << 20) // piece_size)
    whole = hashlib.sha256()
    pieces: list[bytes] = []
    with open(path, "wb") as fh:
        left = size
        while left:
            data = os.urandom(min(chunk, left))
            left -= len(data)
            fh.write(data)
            whole.update(data)
            view = memoryview(data)
            for off in range(0, len(data), piece_size):
                pieces.append(hashlib.sha1(view[off:off + piece_size]).digest())
    return Payload(path, whole.hexdigest(), pieces)


def make_torrent(payload: Payload, size: int, piece_size: int, tracker: str | None = None) -> bytes:
    """A v1 .torrent (aria2 and transmission 3.00 know no v2) from the precomputed piece hashes.

    A swarm's torrent names the tracker in the namespace; a pair's names none (its
    downloader is told the seeder's address).
    """
    import libtorrent as lt

    entry = lt.create_file_entry(PAYLOAD_NAME, size)
    ct = lt.create_torrent([entry], piece_size, lt.create_torrent.v1_only)
    if ct.num_pieces() != len(payload.piece_hashes):
        raise RecordError(f"internal: {ct.num_pieces()} pieces expected, {len(payload.piece_hashes)} hashed")
    for index, digest in enumerate(payload.piece_hashes):
        ct.set_hash(index, digest)
    if tracker:
        ct.add_tracker(tracker)
    return lt.bencode(ct.generate())


def file_sha256(path: Path) -> str:
    """Hash a possibly huge file in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- child processes


class Child:
    """A process we started, its output kept in a log file and scanned for a ready marker.

    Output is read in raw chunks, not lines, because transmission-cli redraws its
    status line with carriage returns.
    """

    def __init__(self, name: str, cmd: Sequence[str], log_path: Path, *,
                 ready: str | None = None, echo: Callable[[str], None] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self.ready = threading.Event()
        self._ready_re = re.compile(ready) if ready else None
        self._echo = echo
        self._tail = ""
        self._lock = threading.Lock()
        self._log = open(log_path, "w", encoding="utf-8", errors="replace")
        try:
            self.proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=env)
        except FileNotFoundError:
            self._log.close()
            raise RecordError(f"{name}: {cmd[0]} not found") from None
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        pending = ""
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            text = chunk.decode("utf-8", errors="replace")
            self._log.write(text)
            self._log.flush()
            with self._lock:
                self._tail = (self._tail + text)[-65536:]
                if self._ready_re and not self.ready.is_set() and self._ready_re.search(self._tail):
                    self.ready.set()
            if self._echo:
                pending += text
                *lines, pending = re.split(r"[\r\n]", pending)
                for line in lines:
                    if line.strip():
                        self._echo(line)
        self._log.close()

    def output(self) -> str:
        """Everything the process printed so far (last 64 KiB)."""
        with self._lock:
            return self._tail

    def last_line(self) -> str:
        """The last non-empty line, for one-line error messages."""
        lines = [ln.strip() for ln in re.split(r"[\r\n]", self.output()) if ln.strip()]
        return lines[-1] if lines else "(no output)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        """Block until the ready marker shows up; the process dying or the clock running out is an error."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if not self.alive():
                self._reader.join(2)
                if self.ready.is_set():
                    return
                raise RecordError(f"{self.name} exited with status {self.proc.returncode} before it was ready: "
                                  f"{self.last_line()}")
            if time.monotonic() > deadline:
                raise RecordError(f"{self.name} was not ready after {timeout:.0f} s: {self.last_line()}")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        """Ask the process to exit, wait, then kill it; only this process, by its pid."""
        if self.alive():
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        return self.proc.returncode


class Namespace:
    """A private network namespace with only a loopback interface, deleted on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.created = False

    def __enter__(self) -> "Namespace":
        existing = run(["ip", "netns", "list"], what="listing network namespaces")
        if any(line.split()[0] == self.name for line in existing.splitlines() if line.strip()):
            raise RecordError(f"network namespace {self.name} already exists (left by a crashed run? "
                              f"remove it with: ip netns del {self.name})")
        run(["ip", "netns", "add", self.name], what=f"creating network namespace {self.name}")
        self.created = True
        run(self.cmd("ip", "link", "set", "lo", "mtu", "1500", "up"), what="setting lo up with MTU 1500")
        run(self.cmd("ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"),
            what="turning loopback offloads off")
        return self

    def cmd(self, *argv: str) -> list[str]:
        """Prefix a command so it runs inside the namespace (ip netns exec execs it in place)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def listening(self, port: int, udp: bool = False) -> bool:
        """Whether something listens on the port inside the namespace (ss uses netlink: no packets)."""
        flag = "-Hulp" if udp else "-Htlp"
        proc = subprocess.run(self.cmd("ss", flag, "-n", f"sport = :{port}"), capture_output=True, text=True)
        return bool(proc.stdout.strip())

    def __exit__(self, *exc: object) -> None:
        if not self.created:
            return
        # Anything still running in the namespace was started by this run; end it by pid.
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        proc = subprocess.run(["ip", "netns", "del", self.name], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{PROG}: warning: could not delete network namespace {self.name}: {proc.stderr.strip()}",
                  file=sys.stderr)
        self.created = False


def start_tcpdump(ns: Namespace, pcap: Path, logs: Path, *, buffer_kib: int = TCPDUMP_BUFFER_KIB,
                  snaplen: int = 0, name: str = "tcpdump") -> Child:
    """tcpdump on the namespace's lo; returns once it is actually capturing."""
    cmd = ns.cmd("tcpdump", "-i", "lo", "-B", str(buffer_kib), "-s", str(snaplen), "-n",
                 "-Z", "root",  # do not drop to the tcpdump user: it may not be able to write OUT
                 "-w", str(pcap))
    child = Child(name, cmd, logs / f"{name.replace(' ', '-')}.log", ready=r"listening on lo")
    child.wait_ready(30)
    return child


def stop_tcpdump(child: Child) -> CaptureStats:
    """SIGINT makes tcpdump flush the file and print its counters; wait for both."""
    code = child.stop(signal.SIGINT, grace=60)
    text = child.output()
    if code not in (0, None):
        raise RecordError(f"tcpdump exited with status {code}: {child.last_line()}")

    def count(label: str) -> int | None:
        m = re.search(rf"(\d+) packets? {label}", text)
        return int(m.group(1)) if m else None

    return CaptureStats(count("captured"), count("received by filter"), count("dropped by kernel"))


def aria2_client(ns: Namespace, work: Path, torrent: Path, directory: Path, peer: Peer, swarm: bool) -> Child:
    """aria2c, seeding forever (--seed-ratio=0.0) once it has the data.

    A pair's seeder uses nothing but its port; in a swarm aria2 is bound to its own
    address (listening, dialling and announcing) and exchanges peers (PEX).
    """
    cmd = [
        "aria2c", "--no-conf=true", f"--dir={directory}",
        "--seed-ratio=0.0", "--bt-seed-unverified=true", "--check-integrity=false",
        f"--listen-port={peer.port}", "--disable-ipv6=true",
        "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
        f"--enable-peer-exchange={str(swarm).lower()}",
        "--bt-require-crypto=false", "--enable-rpc=false", "--bt-save-metadata=false",
        "--file-allocation=none", "--auto-save-interval=0", "--summary-interval=1",
        "--console-log-level=notice", "--show-console-readout=true", "--bt-stop-timeout=0",
    ]
    if swarm:
        cmd.append(f"--interface={peer.addr}")
        if peer.seed:
            cmd.append(f"--max-overall-upload-limit={SWARM_SEED_RATE}")
    # "SEED(" in its readout: seeding, the data verified or (a downloader) complete.
    return Child(peer.name, ns.cmd(*cmd, str(torrent)), work / f"{peer.slug}.log", ready=r"SEED\(")


def transmission_client(ns: Namespace, work: Path, torrent: Path, directory: Path, peer: Peer, swarm: bool) -> Child:
    """transmission-cli 3.00 with a private config dir; encryption tolerated, so plaintext is used.

    In a swarm it is bound to its own address and exchanges peers; as the seed it is
    throttled like the others (SWARM_SEED_RATE, one upload slot).
    """
    config = work / f"transmission-{peer.slug}"
    config.mkdir()
    settings = {
        "peer-port": peer.port, "peer-port-random-on-start": False, "port-forwarding-enabled": False,
        "dht-enabled": False, "lpd-enabled": False, "pex-enabled": swarm, "utp-enabled": False,
        "encryption": 0,  # 0 = tolerated (prefer plaintext), 1 = preferred, 2 = required
        "rpc-enabled": False, "blocklist-enabled": False, "watch-dir-enabled": False,
        "download-dir": str(directory), "incomplete-dir-enabled": False,
        "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
        "speed-limit-up-enabled": False, "speed-limit-down-enabled": False, "alt-speed-enabled": False,
        "start-added-torrents": True, "message-level": 2,
    }
    if swarm:
        settings["bind-address-ipv4"] = peer.addr
        if peer.seed:  # transmission's speeds are in kB/s of 1000 bytes
            settings.update({"speed-limit-up-enabled": True, "speed-limit-up": SWARM_SEED_RATE // 1000,
                             "upload-slots-per-torrent": SWARM_UNCHOKE_SLOTS})
    (config / "settings.json").write_text(json.dumps(settings, indent=2))
    # stdbuf: its status line goes to a pipe, where stdio would hold "Seeding" back for ~10 s.
    cmd = ns.cmd("stdbuf", "-o0", "transmission-cli", "-g", str(config), "-p", str(peer.port), "-et", "-M",
                 "-w", str(directory), str(torrent))
    # "Seeding" appears once transmission has verified the local data, or completed the download.
    return Child(peer.name, cmd, work / f"{peer.slug}.log", ready=r"Seeding")


def peer_command(ns: Namespace, peer: Peer, torrent: Path, directory: Path, rec: Recording) -> list[str]:
    """The libtorrent peer runs as this very script in a subprocess inside the namespace."""
    cmd = [sys.executable, "-u", str(SCRIPT), "_peer", "--role", "seed" if peer.seed else "download",
           "--torrent", str(torrent), "--dir", str(directory), "--transport", rec.transport]
    if rec.encryption:
        cmd.append("--encryption")
    if rec.swarm:
        cmd += ["--swarm", "--addr", peer.addr, "--port", str(peer.port),
                "--unchoke-slots", str(SWARM_UNCHOKE_SLOTS), "--unchoke-interval", str(SWARM_UNCHOKE_INTERVAL)]
        if peer.seed:
            cmd += ["--upload-limit", str(SWARM_SEED_RATE)]
        elif rec.transport == "utp":
            cmd += ["--recv-buffer", str(SWARM_UTP_RECV_BUFFER)]
        else:
            cmd += ["--download-limit", str(SWARM_READ_RATE)]
    return ns.cmd(*cmd)


def start_client(ns: Namespace, work: Path, torrent: Path, directory: Path, peer: Peer, rec: Recording) -> Child:
    """One client as ``peer`` says. Its ready marker: seeding, for the seed; done, for a swarm's downloader."""
    swarm = bool(rec.swarm)
    if peer.client == "aria2":
        return aria2_client(ns, work, torrent, directory, peer, swarm)
    if peer.client == "transmission":
        return transmission_client(ns, work, torrent, directory, peer, swarm)
    ready = r"^READY|\nREADY" if peer.seed else LIBTORRENT_FINISHED
    return Child(peer.name, peer_command(ns, peer, torrent, directory, rec), work / f"{peer.slug}.log", ready=ready)


def stop_signal(client: str) -> int:
    """aria2 and transmission flush and announce their exit on SIGINT; the libtorrent peer takes SIGTERM."""
    return signal.SIGTERM if client == "libtorrent" else signal.SIGINT


def wait_listening(ns: Namespace, peer: Peer, child: Child, rec: Recording) -> None:
    """Until ``ss`` shows the peer's port open (its ready marker may come first)."""
    deadline = time.monotonic() + 30
    while not ns.listening(peer.port, udp=rec.transport == "utp"):
        if time.monotonic() > deadline or not child.alive():
            raise RecordError(f"{child.name} is not listening on port {peer.port}: {child.last_line()}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- one recording


def check_drops(rec: Recording, out: Path, stats: CaptureStats, *, must_drop: bool = False) -> None:
    """Lossless captures must drop nothing (unless --allow-drops); a lossy twin must drop something."""
    if must_drop:
        if not stats.dropped:
            raise RecordError(f"the lossy twin {out.name} lost no packets (tcpdump: {stats.dropped} dropped by "
                              f"kernel), so it would test nothing; rerun")
        return
    if stats.dropped:
        msg = f"tcpdump reported {stats.dropped} packets dropped by kernel for {out.name}: the capture is incomplete"
        if not rec.allow_drops:
            raise RecordError(msg + " (rerun, or pass --allow-drops to keep it)")
        log("warning: " + msg)


def verify_download(got: Path, payload: Payload, rec: Recording, who: str) -> None:
    """A download counts only if it is the source data, byte for byte."""
    if not got.is_file() or got.stat().st_size != rec.size or file_sha256(got) != payload.sha256:
        raise RecordError(f"{who}: downloaded file differs from the source data")


def run_pair(ns: Namespace, work: Path, torrent: Path, seed_dir: Path, payload: Payload, rec: Recording,
             children: list[Child]) -> None:
    """The seeder, then one libtorrent downloader told its address; returns once the download is verified
    and the seeder stopped."""
    names = {"aria2": "aria2c", "transmission": "transmission-cli", "libtorrent": "libtorrent seeder"}
    seed = Peer(rec.seeder, LOCALHOST, SEED_PORT, True, names[rec.seeder])
    seeder = start_client(ns, work, torrent, seed_dir, seed, rec)
    children.append(seeder)
    seeder.wait_ready(120 + rec.size / (50 << 20))  # transmission re-hashes the data first
    wait_listening(ns, seed, seeder, rec)
    log(f"{seeder.name} seeding on {LOCALHOST}:{SEED_PORT}; starting libtorrent downloader "
        f"({rec.transport}{', MSE/PE RC4' if rec.encryption else ''})", quiet=rec.quiet)

    t1 = time.monotonic()
    dl_dir = work / "download"
    dl_dir.mkdir()
    peer = Peer("libtorrent", LOCALHOST, DOWNLOAD_PORT, False, "libtorrent downloader")
    echo = None if rec.quiet else (lambda line: print(f"  downloader: {line}", file=sys.stderr, flush=True))
    downloader = Child(peer.name, peer_command(ns, peer, torrent, dl_dir, rec), work / f"{peer.slug}.log", echo=echo)
    children.append(downloader)
    while downloader.alive():
        if time.monotonic() - t1 > rec.timeout:
            raise RecordError(f"download did not complete within {rec.timeout:g} s "
                              f"(seeder {seeder.name}; use --timeout to allow longer)")
        if not seeder.alive():
            raise RecordError(f"{seeder.name} exited with status {seeder.proc.returncode} during the "
                              f"transfer: {seeder.last_line()}")
        time.sleep(0.1)
    downloader.stop()
    if downloader.proc.returncode != 0:
        raise RecordError(f"libtorrent downloader failed (status {downloader.proc.returncode}): "
                          f"{downloader.last_line()}")
    elapsed = time.monotonic() - t1
    verify_download(dl_dir / PAYLOAD_NAME, payload, rec, peer.name)
    log(f"download verified: {human(rec.size)} in {elapsed:.1f} s "
        f"({human(rec.size / max(elapsed, 1e-3))}/s)", quiet=rec.quiet)
    seeder.stop(stop_signal(rec.seeder), grace=20)


def swarm_peers(rec: Recording) -> list[Peer]:
    """The seed on SWARM_SEED_ADDR:51413, then downloader i on 127.0.0.(11+i):(6881+i)."""
    seed = Peer(rec.seeder, SWARM_SEED_ADDR, SEED_PORT, True, f"seed ({rec.seeder})")
    return [seed] + [Peer(client, f"127.0.0.{11 + i}", DOWNLOAD_PORT + i, False, f"downloader {i + 1} ({client})")
                     for i, client in enumerate(rec.swarm)]


def wait_swarm(downloads: list[tuple[Peer, Child, Path]], seeder: Child, rec: Recording, t1: float) -> None:
    """Until every downloader says its download is complete; any client dying, or the clock, is an error."""
    while not all(child.ready.is_set() for _, child, _ in downloads):
        for _, child, _ in downloads:
            if not child.alive() and not child.ready.is_set():
                raise RecordError(f"{child.name} exited with status {child.proc.returncode} before its download "
                                  f"completed: {child.last_line()}")
        if not seeder.alive():
            raise RecordError(f"{seeder.name} exited with status {seeder.proc.returncode} during the "
                              f"transfer: {seeder.last_line()}")
        if time.monotonic() - t1 > rec.timeout:
            late = ", ".join(child.name for _, child, _ in downloads if not child.ready.is_set())
            raise RecordError(f"not complete within {rec.timeout:g} s: {late} (use --timeout to allow longer)")
        time.sleep(0.1)


def run_swarm(ns: Namespace, work: Path, torrent: Path, seed_dir: Path, payload: Payload, rec: Recording,
              children: list[Child]) -> None:
    """The tracker, the seed, then the downloaders SWARM_STAGGER s apart; once all are complete and have
    traded their last messages, everyone is stopped and every download verified."""
    peers = swarm_peers(rec)
    tracker = Child("tracker", ns.cmd(sys.executable, "-u", str(SCRIPT), "_tracker",
                                      *(f"{p.addr}:{p.port}" for p in peers)),
                    work / "tracker.log", ready=r"TRACKER READY")
    children.append(tracker)
    tracker.wait_ready(30)
    seeder = start_client(ns, work, torrent, seed_dir, peers[0], rec)
    children.append(seeder)
    seeder.wait_ready(120 + rec.size / (50 << 20))  # transmission re-hashes the data first
    wait_listening(ns, peers[0], seeder, rec)
    log(f"{seeder.name} seeding on {peers[0].addr}:{peers[0].port}, tracker on {TRACKER_ADDR[0]}:"
        f"{TRACKER_ADDR[1]}; starting {len(peers) - 1} downloaders ({rec.transport})", quiet=rec.quiet)

    t1 = time.monotonic()
    downloads: list[tuple[Peer, Child, Path]] = []
    for peer in peers[1:]:
        directory = work / peer.slug
        directory.mkdir()
        child = start_client(ns, work, torrent, directory, peer, rec)
        children.append(child)
        downloads.append((peer, child, directory))
        time.sleep(SWARM_STAGGER)
    wait_swarm(downloads, seeder, rec, t1)
    log(f"all {len(downloads)} downloads complete in {time.monotonic() - t1:.1f} s", quiet=rec.quiet)
    time.sleep(SWARM_SETTLE)
    for peer, child, _ in reversed(downloads):
        child.stop(stop_signal(peer.client), grace=20)
    seeder.stop(stop_signal(rec.seeder), grace=20)
    tracker.stop(signal.SIGTERM, grace=5)
    for peer, _, directory in downloads:  # once stopped: every client has written its data out
        verify_download(directory / PAYLOAD_NAME, payload, rec, peer.name)
    log(f"downloads verified: {', '.join(peer.name for peer, _, _ in downloads)}", quiet=rec.quiet)


def record(rec: Recording) -> list[tuple[Path, CaptureStats]]:
    """Make the data, run the clients under tcpdump in a private namespace, verify, keep the pcap.

    With a twin, a second tcpdump captures the same interface at the same time into
    its own file; both files are kept only if both meet their drop rule.
    """
    out = rec.out
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    twin_out = rec.twin_out()
    twin_part = twin_out.with_name(twin_out.name + ".part") if twin_out else None
    torrent_out = out.with_suffix(".torrent")
    work = Path(tempfile.mkdtemp(prefix="btshark-rec-"))
    children: list[Child] = []
    try:
        seed_dir = work / "seed"
        seed_dir.mkdir()
        t0 = time.monotonic()
        log(f"generating {human(rec.size)} of random data in {human(rec.piece_size)} pieces", quiet=rec.quiet)
        payload = make_payload(seed_dir, rec.size, rec.piece_size)
        torrent = work / "payload.torrent"
        torrent.write_bytes(make_torrent(payload, rec.size, rec.piece_size, TRACKER_URL if rec.swarm else None))
        log(f"data and torrent ready in {time.monotonic() - t0:.1f} s", quiet=rec.quiet)

        with Namespace(f"btshark-rec-{os.getpid()}") as ns:
            tcpdump = start_tcpdump(ns, part, work)
            children.append(tcpdump)
            twin_dump = None
            if rec.twin and twin_part:
                twin_dump = start_tcpdump(ns, twin_part, work, buffer_kib=rec.twin.buffer_kib,
                                          snaplen=rec.twin.snaplen, name=f"tcpdump {rec.twin.name}")
                children.append(twin_dump)

            transfer = run_swarm if rec.swarm else run_pair
            transfer(ns, work, torrent, seed_dir, payload, rec, children)
            # Let the last FIN/ACKs reach tcpdump, and let a partly filled capture block
            # (libpcap's TPACKET_V3 block timeout is 1 s) reach user space before we stop it.
            time.sleep(1.5)
            stats = stop_tcpdump(tcpdump)
            twin_stats = stop_tcpdump(twin_dump) if twin_dump else None

        check_drops(rec, out, stats)
        written = [(part, out, stats)]
        if rec.twin and twin_part and twin_out and twin_stats:
            check_drops(rec, twin_out, twin_stats, must_drop=rec.twin.must_drop)
            written.append((twin_part, twin_out, twin_stats))
        for tmp, _, _ in written:
            if not tmp.is_file() or tmp.stat().st_size <= 24:
                raise RecordError(f"tcpdump wrote no packets to {tmp.name}")
        for tmp, final, _ in written:
            os.replace(tmp, final)
        shutil.copyfile(torrent, torrent_out)
        return [(final, st) for _, final, st in written]
    finally:
        for child in reversed(children):
            child.stop(signal.SIGKILL if child.alive() else signal.SIGTERM, grace=5)
        part.unlink(missing_ok=True)
        if twin_part:
            twin_part.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def describe(pcap: Path, stats: CaptureStats, torrent: Path) -> str:
    """One summary line per capture file."""
    def show(n: int | None) -> str:
        return "?" if n is None else str(n)

    return (f"{pcap} ({pcap.stat().st_size} bytes; tcpdump: {show(stats.captured)} captured, "
            f"{show(stats.received)} received by filter, {show(stats.dropped)} dropped by kernel) "
            f"+ {torrent.name}")


# --------------------------------------------------------------------------- the libtorrent peer (internal)


def swarm_settings(args: argparse.Namespace) -> dict:
    """The libtorrent settings of a swarm peer: its own address for dialling too, and the chokers' tuning."""
    settings: dict = {"outgoing_interfaces": args.addr} if args.swarm else {}
    if args.unchoke_slots:
        settings["unchoke_slots_limit"] = args.unchoke_slots
    if args.unchoke_interval:
        settings["unchoke_interval"] = args.unchoke_interval
    if args.recv_buffer:
        settings["recv_socket_buffer_size"] = args.recv_buffer
    return settings


def peer_main(argv: Sequence[str]) -> int:
    """Run one libtorrent side inside the namespace: a seeder until signalled, or a downloader until done
    (in a swarm, until signalled: once done it seeds to the others)."""
    import libtorrent as lt

    ap = argparse.ArgumentParser(prog=f"{PROG} _peer", description="internal: one libtorrent peer")
    ap.add_argument("--role", choices=("seed", "download"), required=True)
    ap.add_argument("--torrent", type=Path, required=True)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--transport", choices=TRANSPORTS, default="tcp")
    ap.add_argument("--encryption", action="store_true")
    ap.add_argument("--swarm", action="store_true",
                    help="peers come from the torrent's tracker, and a finished download seeds until signalled")
    ap.add_argument("--addr", default=LOCALHOST, help="address to listen on and dial from")
    ap.add_argument("--port", type=int, help="default: 51413 to seed, 6881 to download")
    ap.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0: none")
    ap.add_argument("--download-limit", type=int, default=0, help="bytes/s, 0: none")
    ap.add_argument("--unchoke-slots", type=int, default=0, help="0: libtorrent's default")
    ap.add_argument("--unchoke-interval", type=int, default=0, help="seconds, 0: libtorrent's default")
    ap.add_argument("--recv-buffer", type=int, default=0, help="socket receive buffer in bytes, 0: the OS's")
    args = ap.parse_args(argv)

    seeding = args.role == "seed"
    port = args.port or (SEED_PORT if seeding else DOWNLOAD_PORT)
    tcp = args.transport == "tcp"
    if args.encryption:
        enc = {"out_enc_policy": int(lt.enc_policy.pe_forced), "in_enc_policy": int(lt.enc_policy.pe_forced),
               "allowed_enc_level": int(lt.enc_level.pe_rc4), "prefer_rc4": True}
    else:
        # pe_enabled would make libtorrent try an encrypted handshake first; plaintext means plaintext.
        enc = {"out_enc_policy": int(lt.enc_policy.pe_disabled), "in_enc_policy": int(lt.enc_policy.pe_disabled)}
    settings = {
        "listen_interfaces": f"{args.addr}:{port}",
        "listen_system_port_fallback": False,
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_ip_notifier": False, "dht_bootstrap_nodes": "",
        "enable_outgoing_tcp": tcp, "enable_incoming_tcp": tcp,
        "enable_outgoing_utp": not tcp, "enable_incoming_utp": not tcp,
        "min_reconnect_time": 1,
        "alert_mask": int(lt.alert_category.error | lt.alert_category.status),
        **enc,
        **swarm_settings(args),
    }
    ses = lt.session(settings)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(str(args.torrent))
    atp.save_path = str(args.dir)
    if seeding:
        atp.flags |= lt.torrent_flags.seed_mode  # we made the data: skip re-hashing it
    elif not args.swarm:
        atp.peers = [(LOCALHOST, SEED_PORT)]
    handle = ses.add_torrent(atp)
    if args.upload_limit:
        handle.set_upload_limit(args.upload_limit)  # the torrent's own limit: loopback peers escape the global one
    if args.download_limit:
        handle.set_download_limit(args.download_limit)

    listening = False
    last_report = time.monotonic()
    total = atp.ti.total_size()
    finished = False
    finished_at = 0.0
    while not stop.is_set():
        ses.wait_for_alert(100)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.listen_succeeded_alert):
                listening = True
            elif isinstance(alert, (lt.listen_failed_alert, lt.torrent_error_alert, lt.file_error_alert)):
                print(f"error: {alert.message()}", flush=True)
                return 1
        status = handle.status()
        if seeding:
            if listening and status.is_seeding:
                print("READY", flush=True)
                listening = False  # say it once
            continue
        now = time.monotonic()
        if not finished and status.is_seeding:
            finished, finished_at = True, now
            print(f"finished: {total} bytes", flush=True)
        if finished and not args.swarm:
            # Once both sides are seeds they hang up; give that a moment so the capture ends cleanly.
            if status.num_peers == 0 or now - finished_at > 5:
                break
        elif now - last_report >= 5 and total >= 64 << 20:
            last_report = now
            print(f"{status.total_done * 100 // max(total, 1)}% ({status.download_rate / 1048576:.0f} MiB/s, "
                  f"{status.num_peers} peer(s))", flush=True)
    if not seeding and not finished:
        return 2
    ses.pause()
    del ses  # closes connections and flushes the disk threads before the parent compares files
    return 0


# --------------------------------------------------------------------------- the swarm's tracker (internal)


def tracker_main(argv: Sequence[str]) -> int:
    """A static HTTP tracker (BEP 3, compact peer lists of BEP 23) on TRACKER_ADDR, run inside the namespace.

    It knows the swarm from its arguments (``addr:port`` of every peer) and answers
    every announce with all of them but the announcing client, recognised by the
    address it announces from (each client is bound to its own).
    """
    peers = [(addr, int(port)) for addr, port in (arg.rsplit(":", 1) for arg in argv)]

    class Announce(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            asker = self.client_address[0]
            compact = b"".join(socket.inet_aton(addr) + struct.pack(">H", port)
                               for addr, port in peers if addr != asker)
            body = b"d8:intervali30e12:min intervali30e5:peers%d:%se" % (len(compact), compact)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            print(f"{asker} {self.path}", flush=True)

        def log_message(self, *args: object) -> None:
            pass  # do_GET logs one line per announce

    server = HTTPServer(TRACKER_ADDR, Announce)
    print("TRACKER READY", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.timeout = 0.2
    while not stop.is_set():
        server.handle_request()
    server.server_close()
    return 0


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The public options."""
    ap = argparse.ArgumentParser(
        prog="record.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Record a real BitTorrent transfer (seeder -> libtorrent downloader, or a swarm of one seed "
                    "and several downloaders) on loopback inside a private network namespace, with tcpdump. "
                    "Must run as root.",
        epilog="examples:\n"
               "  sudo python captures/record.py --all\n"
               "  sudo python captures/record.py --seeder aria2 --out /tmp/aria2.pcap\n"
               "  sudo python captures/record.py --transport utp --encryption --out /tmp/utp-mse.pcap\n"
               "  sudo python captures/record.py --seeder libtorrent --size 256MiB --out bench/out/big.pcap\n"
               "  sudo python captures/record.py --swarm libtorrent,aria2,transmission --out /tmp/swarm.pcap",
    )
    ap.add_argument("--all", action="store_true",
                    help="re-record every bundled sample (1 MiB, 64 KiB pieces; the swarms in swarm/) into --out-dir")
    ap.add_argument("--out-dir", type=Path, default=CAPTURES_DIR,
                    help="where --all writes the samples (default: the captures/ folder this script is in)")
    ap.add_argument("--seeder", choices=SEEDERS, default="libtorrent", help="seeding client (default: libtorrent)")
    ap.add_argument("--transport", choices=TRANSPORTS, default="tcp",
                    help="tcp, or utp (TCP disabled on every side; libtorrent clients only)")
    ap.add_argument("--encryption", action="store_true",
                    help="force MSE/PE with RC4 on every side (libtorrent clients only)")
    ap.add_argument("--swarm", type=parse_swarm, metavar="CLIENTS",
                    help="record a swarm: the --seeder seeds, these clients download (comma-separated, "
                         f"1 to {SWARM_MAX_DOWNLOADERS} of {', '.join(SWARM_CLIENTS)}), each on its own "
                         "127.0.0.x address, finding each other through a tracker in the namespace")
    ap.add_argument("--size", type=parse_size, default=DEFAULT_SIZE,
                    help="bytes of random data, suffixes KiB/MiB/GiB allowed (default: 1MiB)")
    ap.add_argument("--piece-size", type=parse_piece_size, default=DEFAULT_PIECE_SIZE,
                    help="torrent piece size, a power of two >= 16KiB (default: 64KiB)")
    ap.add_argument("--out", type=Path,
                    help="pcap to write; the .torrent goes beside it with the same stem "
                         "(default: ./<seeder>-to-libtorrent[-utp][-mse].pcap, ./swarm-tcp|utp[-mse].pcap)")
    ap.add_argument("--timeout", type=float,
                    help="seconds allowed for the download (default: 60 + the size at 8 MiB/s; "
                         "4 MiB/s for uTP, 1 MiB/s for transmission, 32 KiB/s for a swarm)")
    ap.add_argument("--allow-drops", action="store_true",
                    help="keep the capture even if tcpdump reports packets dropped by kernel")
    ap.add_argument("--twin", choices=tuple(TWINS),
                    help="also capture the same transfer with a second tcpdump into OUT-<twin>.pcap: "
                         f"lossy (-B {LOSSY_BUFFER_KIB} KiB, must drop packets) or snap128 (-s 128); "
                         "OUT.pcap stays the lossless truth")
    ap.add_argument("-q", "--quiet", action="store_true", help="only print the summary")
    return ap


def fail(msg: str, code: int = 1) -> NoReturn:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_peer"]:
        return peer_main(argv[1:])
    if argv[:1] == ["_tracker"]:
        return tracker_main(argv[1:])

    ap = build_parser()
    args = ap.parse_args(argv)
    if args.all:
        for opt, default in (("seeder", "libtorrent"), ("transport", "tcp"), ("encryption", False),
                             ("size", DEFAULT_SIZE), ("piece_size", DEFAULT_PIECE_SIZE), ("out", None),
                             ("twin", None), ("swarm", None)):
            if getattr(args, opt) != default:
                flag = "--" + opt.replace("_", "-")
                ap.error(f"--all records the fixed sample set; it cannot be combined with {flag}")
    elif args.seeder != "libtorrent" and (args.transport != "tcp" or args.encryption):
        ap.error("--transport utp and --encryption need --seeder libtorrent (the downloader's settings "
                 "only control both sides when both are libtorrent)")
    elif args.swarm and set(args.swarm) != {"libtorrent"} and (args.transport != "tcp" or args.encryption):
        ap.error("--transport utp and --encryption need a swarm of libtorrent clients only (aria2 and "
                 "transmission would fall back to TCP, or to plaintext)")

    def with_pcap_suffix(path: Path) -> Path:
        return path if path.suffix else path.with_suffix(".pcap")

    if args.timeout is not None and args.timeout <= 0:
        ap.error("--timeout must be positive")

    def make(seeder: str, transport: str, encryption: bool, size: int, piece_size: int, out: Path,
             twin: str | None, swarm: tuple[str, ...]) -> Recording:
        timeout = args.timeout or default_timeout(size, seeder, transport, bool(swarm))
        return Recording(seeder, transport, encryption, size, piece_size, out, timeout, args.allow_drops, args.quiet,
                         TWINS[twin] if twin else None, swarm)

    limits: list[int | None]  # the size a bundled sample must stay under
    if args.all:
        recs = [make(s.seeder, s.transport, s.encryption, s.size, s.piece_size,
                     args.out_dir / f"{s.stem}.pcap", s.twin, s.swarm) for s in SAMPLES]
        limits = [s.max_bytes for s in SAMPLES]
    else:
        stem = (f"{args.seeder}-to-libtorrent" if not args.swarm else "swarm-" + args.transport)
        stem += ("-utp" if args.transport == "utp" and not args.swarm else "") + ("-mse" if args.encryption else "")
        out = args.out if args.out else Path.cwd() / f"{stem}.pcap"
        if not out.suffix:
            out = out.with_suffix(".pcap")
        if out.suffix == ".torrent":
            ap.error("--out must not end in .torrent (the .torrent is written beside the pcap)")
        if out.is_dir():
            ap.error(f"--out {out} is a directory; give the pcap file name")
        recs = [make(args.seeder, args.transport, args.encryption, args.size, args.piece_size, out.absolute(),
                     args.twin, args.swarm or ())]
        limits = [None]

    # Turn SIGTERM into the same clean-up path as Ctrl-C.
    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        clients = sorted({client for r in recs for client in (r.seeder, *r.swarm)})
        check_environment(clients)
        versions = client_versions(clients)
        for rec, limit in zip(recs, limits):
            twin = f" and its {rec.twin.name} twin" if rec.twin else ""
            downloaders = ", ".join(versions[client] for client in rec.swarm or ("libtorrent",))
            log(f"recording {rec.out.name}{twin}: {versions[rec.seeder]} -> {downloaders}", quiet=rec.quiet)
            written = record(rec)
            for pcap, stats in written:
                if limit is not None and pcap.stat().st_size > limit:
                    raise RecordError(f"{pcap} is {pcap.stat().st_size} bytes, over the "
                                      f"{limit}-byte limit for bundled samples")
            for pcap, stats in written:
                print(describe(pcap, stats, rec.out.with_suffix(".torrent")), flush=True)
    except RecordError as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. an unwritable --out directory, a full disk
        fail(f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
    except KeyboardInterrupt:
        fail("interrupted; namespace and work files removed", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
