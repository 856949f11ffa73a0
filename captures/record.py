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

Examples (as root)::

    python captures/record.py --all
    python captures/record.py --seeder aria2 --out /tmp/a.pcap
    python captures/record.py --seeder libtorrent --transport utp --out /tmp/u.pcap
    python captures/record.py --seeder libtorrent --size 256MiB --out bench/out/big.pcap

The script also runs itself inside the namespace as the libtorrent peer
(``record.py _peer ...``); that entry point is internal.
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
import subprocess
import sys
import tempfile
import threading
import time
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
TRANSPORTS = ("tcp", "utp")


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


def default_timeout(size: int, seeder: str, transport: str) -> float:
    """Generous limit that scales with size.

    Measured on a 2-core VM: libtorrent and aria2 move 50-90 MiB/s over loopback TCP,
    transmission-cli 3.00 about 4 MiB/s after its first 10 s rechoke; the rates here
    leave a wide margin for slower machines.
    """
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


def check_environment(seeders: Sequence[str]) -> None:
    """Fail early, in one line, on what would otherwise fail halfway through."""
    if sys.platform != "linux":
        raise RecordError("needs Linux (network namespaces)")
    if os.geteuid() != 0:
        raise RecordError("must run as root (network namespaces and tcpdump need it): "
                          "sudo python captures/record.py ...")
    needed = {"ip": "iproute2", "ss": "iproute2", "ethtool": "ethtool", "tcpdump": "tcpdump"}
    if "aria2" in seeders:
        needed["aria2c"] = "aria2"
    if "transmission" in seeders:
        needed["transmission-cli"] = "transmission-cli"
        needed["stdbuf"] = "coreutils"
    for tool, package in needed.items():
        if shutil.which(tool) is None:
            raise RecordError(f"{tool} not found (install the Debian package {package!r})")
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        raise RecordError("the libtorrent Python bindings are missing (pip install libtorrent==2.1.1)") from None


def client_versions(seeders: Sequence[str]) -> dict[str, str]:
    """Versions as the clients report them, for the summary and the README."""
    import libtorrent as lt

    versions = {"libtorrent": f"libtorrent {lt.__version__} (Python bindings)"}
    if "aria2" in seeders:
        out = subprocess.run(["aria2c", "--version"], capture_output=True, text=True).stdout
        versions["aria2"] = out.splitlines()[0].strip() if out else "aria2 (unknown version)"
    if "transmission" in seeders:
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


def make_torrent(payload: Payload, size: int, piece_size: int) -> bytes:
    """A v1 .torrent (aria2 and transmission 3.00 know no v2) from the precomputed piece hashes."""
    import libtorrent as lt

    entry = lt.create_file_entry(PAYLOAD_NAME, size)
    ct = lt.create_torrent([entry], piece_size, lt.create_torrent.v1_only)
    if ct.num_pieces() != len(payload.piece_hashes):
        raise RecordError(f"internal: {ct.num_pieces()} pieces expected, {len(payload.piece_hashes)} hashed")
    for index, digest in enumerate(payload.piece_hashes):
        ct.set_hash(index, digest)
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


def aria2_seeder(ns: Namespace, work: Path, torrent: Path, seed_dir: Path) -> Child:
    """aria2c seeding forever (--seed-ratio=0.0) from already-complete data, nothing but port 51413."""
    cmd = ns.cmd(
        "aria2c", "--no-conf=true", f"--dir={seed_dir}",
        "--seed-ratio=0.0", "--bt-seed-unverified=true", "--check-integrity=false",
        f"--listen-port={SEED_PORT}", "--disable-ipv6=true",
        "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
        "--bt-require-crypto=false", "--enable-rpc=false", "--bt-save-metadata=false",
        "--file-allocation=none", "--auto-save-interval=0", "--summary-interval=1",
        "--console-log-level=notice", "--show-console-readout=true", "--bt-stop-timeout=0",
        str(torrent),
    )
    return Child("aria2c", cmd, work / "aria2c.log", ready=r"SEED\(")


def transmission_seeder(ns: Namespace, work: Path, torrent: Path, seed_dir: Path) -> Child:
    """transmission-cli 3.00 with a private config dir; encryption tolerated, so plaintext is used."""
    config = work / "transmission"
    config.mkdir()
    settings = {
        "peer-port": SEED_PORT, "peer-port-random-on-start": False, "port-forwarding-enabled": False,
        "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
        "encryption": 0,  # 0 = tolerated (prefer plaintext), 1 = preferred, 2 = required
        "rpc-enabled": False, "blocklist-enabled": False, "watch-dir-enabled": False,
        "download-dir": str(seed_dir), "incomplete-dir-enabled": False,
        "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
        "speed-limit-up-enabled": False, "speed-limit-down-enabled": False, "alt-speed-enabled": False,
        "start-added-torrents": True, "message-level": 2,
    }
    (config / "settings.json").write_text(json.dumps(settings, indent=2))
    # stdbuf: its status line goes to a pipe, where stdio would hold "Seeding" back for ~10 s.
    cmd = ns.cmd("stdbuf", "-o0", "transmission-cli", "-g", str(config), "-p", str(SEED_PORT), "-et", "-M",
                 "-w", str(seed_dir), str(torrent))
    # "Seeding" appears once transmission has verified the local data.
    return Child("transmission-cli", cmd, work / "transmission.log", ready=r"Seeding")


def peer_command(ns: Namespace, role: str, torrent: Path, directory: Path, rec: Recording) -> list[str]:
    """The libtorrent peer runs as this very script in a subprocess inside the namespace."""
    cmd = [sys.executable, "-u", str(SCRIPT), "_peer", "--role", role, "--torrent", str(torrent),
           "--dir", str(directory), "--transport", rec.transport]
    if rec.encryption:
        cmd.append("--encryption")
    return ns.cmd(*cmd)


def libtorrent_seeder(ns: Namespace, work: Path, torrent: Path, seed_dir: Path, rec: Recording) -> Child:
    """libtorrent seeding in seed mode (no re-hash of the data it has)."""
    return Child("libtorrent seeder", peer_command(ns, "seed", torrent, seed_dir, rec),
                 work / "libtorrent-seed.log", ready=r"^READY|\nREADY")


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


def record(rec: Recording) -> list[tuple[Path, CaptureStats]]:
    """Make the data, run both clients under tcpdump in a private namespace, verify, keep the pcap.

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
        seed_dir, dl_dir = work / "seed", work / "download"
        seed_dir.mkdir()
        dl_dir.mkdir()
        t0 = time.monotonic()
        log(f"generating {human(rec.size)} of random data in {human(rec.piece_size)} pieces", quiet=rec.quiet)
        payload = make_payload(seed_dir, rec.size, rec.piece_size)
        torrent = work / "payload.torrent"
        torrent.write_bytes(make_torrent(payload, rec.size, rec.piece_size))
        log(f"data and torrent ready in {time.monotonic() - t0:.1f} s", quiet=rec.quiet)

        with Namespace(f"btshark-rec-{os.getpid()}") as ns:
            tcpdump = start_tcpdump(ns, part, work)
            children.append(tcpdump)
            twin_dump = None
            if rec.twin and twin_part:
                twin_dump = start_tcpdump(ns, twin_part, work, buffer_kib=rec.twin.buffer_kib,
                                          snaplen=rec.twin.snaplen, name=f"tcpdump {rec.twin.name}")
                children.append(twin_dump)

            if rec.seeder == "aria2":
                seeder = aria2_seeder(ns, work, torrent, seed_dir)
            elif rec.seeder == "transmission":
                seeder = transmission_seeder(ns, work, torrent, seed_dir)
            else:
                seeder = libtorrent_seeder(ns, work, torrent, seed_dir, rec)
            children.append(seeder)
            seeder.wait_ready(120 + rec.size / (50 << 20))  # transmission re-hashes the data first
            deadline = time.monotonic() + 30
            while not ns.listening(SEED_PORT, udp=rec.transport == "utp"):
                if time.monotonic() > deadline or not seeder.alive():
                    raise RecordError(f"{seeder.name} is not listening on port {SEED_PORT}: {seeder.last_line()}")
                time.sleep(0.1)
            log(f"{seeder.name} seeding on {LOCALHOST}:{SEED_PORT}; starting libtorrent downloader "
                f"({rec.transport}{', MSE/PE RC4' if rec.encryption else ''})", quiet=rec.quiet)

            t1 = time.monotonic()
            echo = None if rec.quiet else (lambda line: print(f"  downloader: {line}", file=sys.stderr, flush=True))
            downloader = Child("libtorrent downloader", peer_command(ns, "download", torrent, dl_dir, rec),
                               work / "libtorrent-download.log", echo=echo)
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
            got = dl_dir / PAYLOAD_NAME
            if not got.is_file() or got.stat().st_size != rec.size or file_sha256(got) != payload.sha256:
                raise RecordError("downloaded file differs from the source data")
            log(f"download verified: {human(rec.size)} in {elapsed:.1f} s "
                f"({human(rec.size / max(elapsed, 1e-3))}/s)", quiet=rec.quiet)

            seeder.stop(signal.SIGINT if rec.seeder != "libtorrent" else signal.SIGTERM, grace=20)
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


def peer_main(argv: Sequence[str]) -> int:
    """Run one libtorrent side inside the namespace: a seeder until signalled, or a downloader until done."""
    import libtorrent as lt

    ap = argparse.ArgumentParser(prog=f"{PROG} _peer", description="internal: one libtorrent peer")
    ap.add_argument("--role", choices=("seed", "download"), required=True)
    ap.add_argument("--torrent", type=Path, required=True)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--transport", choices=TRANSPORTS, default="tcp")
    ap.add_argument("--encryption", action="store_true")
    args = ap.parse_args(argv)

    seeding = args.role == "seed"
    port = SEED_PORT if seeding else DOWNLOAD_PORT
    tcp = args.transport == "tcp"
    if args.encryption:
        enc = {"out_enc_policy": int(lt.enc_policy.pe_forced), "in_enc_policy": int(lt.enc_policy.pe_forced),
               "allowed_enc_level": int(lt.enc_level.pe_rc4), "prefer_rc4": True}
    else:
        # pe_enabled would make libtorrent try an encrypted handshake first; plaintext means plaintext.
        enc = {"out_enc_policy": int(lt.enc_policy.pe_disabled), "in_enc_policy": int(lt.enc_policy.pe_disabled)}
    settings = {
        "listen_interfaces": f"{LOCALHOST}:{port}",
        "listen_system_port_fallback": False,
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_ip_notifier": False, "dht_bootstrap_nodes": "",
        "enable_outgoing_tcp": tcp, "enable_incoming_tcp": tcp,
        "enable_outgoing_utp": not tcp, "enable_incoming_utp": not tcp,
        "min_reconnect_time": 1,
        "alert_mask": int(lt.alert_category.error | lt.alert_category.status),
        **enc,
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
    else:
        atp.peers = [(LOCALHOST, SEED_PORT)]
    handle = ses.add_torrent(atp)

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
        if finished:
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


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The public options."""
    ap = argparse.ArgumentParser(
        prog="record.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Record a real BitTorrent transfer (seeder -> libtorrent downloader) on loopback inside a "
                    "private network namespace, with tcpdump. Must run as root.",
        epilog="examples:\n"
               "  sudo python captures/record.py --all\n"
               "  sudo python captures/record.py --seeder aria2 --out /tmp/aria2.pcap\n"
               "  sudo python captures/record.py --transport utp --encryption --out /tmp/utp-mse.pcap\n"
               "  sudo python captures/record.py --seeder libtorrent --size 256MiB --out bench/out/big.pcap",
    )
    ap.add_argument("--all", action="store_true",
                    help="re-record every bundled sample (1 MiB, 64 KiB pieces) into --out-dir")
    ap.add_argument("--out-dir", type=Path, default=CAPTURES_DIR,
                    help="where --all writes the samples (default: the captures/ folder this script is in)")
    ap.add_argument("--seeder", choices=SEEDERS, default="libtorrent", help="seeding client (default: libtorrent)")
    ap.add_argument("--transport", choices=TRANSPORTS, default="tcp",
                    help="tcp, or utp (TCP disabled on both sides; libtorrent seeder only)")
    ap.add_argument("--encryption", action="store_true",
                    help="force MSE/PE with RC4 on both sides (libtorrent seeder only)")
    ap.add_argument("--size", type=parse_size, default=DEFAULT_SIZE,
                    help="bytes of random data, suffixes KiB/MiB/GiB allowed (default: 1MiB)")
    ap.add_argument("--piece-size", type=parse_piece_size, default=DEFAULT_PIECE_SIZE,
                    help="torrent piece size, a power of two >= 16KiB (default: 64KiB)")
    ap.add_argument("--out", type=Path,
                    help="pcap to write; the .torrent goes beside it with the same stem "
                         "(default: ./<seeder>-to-libtorrent[-utp][-mse].pcap)")
    ap.add_argument("--timeout", type=float,
                    help="seconds allowed for the download (default: 60 + the size at 8 MiB/s; "
                         "4 MiB/s for uTP, 1 MiB/s for transmission)")
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

    ap = build_parser()
    args = ap.parse_args(argv)
    if args.all:
        for opt, default in (("seeder", "libtorrent"), ("transport", "tcp"), ("encryption", False),
                             ("size", DEFAULT_SIZE), ("piece_size", DEFAULT_PIECE_SIZE), ("out", None),
                             ("twin", None)):
            if getattr(args, opt) != default:
                flag = "--" + opt.replace("_", "-")
                ap.error(f"--all records the fixed sample set; it cannot be combined with {flag}")
    elif args.seeder != "libtorrent" and (args.transport != "tcp" or args.encryption):
        ap.error("--transport utp and --encryption need --seeder libtorrent (the downloader's settings "
                 "only control both sides when both are libtorrent)")

    def with_pcap_suffix(path: Path) -> Path:
        return path if path.suffix else path.with_suffix(".pcap")

    if args.timeout is not None and args.timeout <= 0:
        ap.error("--timeout must be positive")

    def make(seeder: str, transport: str, encryption: bool, size: int, piece_size: int, out: Path,
             twin: str | None) -> Recording:
        timeout = args.timeout or default_timeout(size, seeder, transport)
        return Recording(seeder, transport, encryption, size, piece_size, out, timeout, args.allow_drops, args.quiet,
                         TWINS[twin] if twin else None)

    if args.all:
        recs = [make(s.seeder, s.transport, s.encryption, DEFAULT_SIZE, DEFAULT_PIECE_SIZE,
                     args.out_dir / f"{s.stem}.pcap", s.twin) for s in SAMPLES]
    else:
        stem = (f"{args.seeder}-to-libtorrent" + ("-utp" if args.transport == "utp" else "")
                + ("-mse" if args.encryption else ""))
        out = args.out if args.out else Path.cwd() / f"{stem}.pcap"
        if not out.suffix:
            out = out.with_suffix(".pcap")
        if out.suffix == ".torrent":
            ap.error("--out must not end in .torrent (the .torrent is written beside the pcap)")
        if out.is_dir():
            ap.error(f"--out {out} is a directory; give the pcap file name")
        recs = [make(args.seeder, args.transport, args.encryption, args.size, args.piece_size, out.absolute(),
                     args.twin)]

    # Turn SIGTERM into the same clean-up path as Ctrl-C.
    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        check_environment([r.seeder for r in recs])
        versions = client_versions([r.seeder for r in recs])
        for rec in recs:
            twin = f" and its {rec.twin.name} twin" if rec.twin else ""
            log(f"recording {rec.out.name}{twin}: {versions[rec.seeder]} -> {versions['libtorrent']}",
                quiet=rec.quiet)
            written = record(rec)
            for pcap, stats in written:
                if args.all and pcap.stat().st_size > SAMPLE_MAX_BYTES:
                    raise RecordError(f"{pcap} is {pcap.stat().st_size} bytes, over the "
                                      f"{SAMPLE_MAX_BYTES}-byte limit for bundled samples")
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
