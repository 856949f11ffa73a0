"""``btshark sniff``: a real transfer decoded live, against the file it saved and against tcpdump.

aria2 seeds to libtorrent inside a fresh network namespace (lo at MTU 1500,
offloads off, as ``captures/record.py`` records), while both backends and tcpdump
capture its loopback at once. The live output must be what ``btshark read`` says
of the file sniff saved (live adds a source, not a decoder), and its messages
those of tcpdump's capture of the same packets. Everything waits on real events:
sniff's "Capturing on" line, the downloader finishing, and a marker connection
made after the transfer showing up in every capture (packets on lo are seen in
order, so once the marker is in, the transfer is too).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from inspector.capfile import CaptureFile

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("dumpcap", "scapy")
MARKER = b"M" * 20  # the info hash of the marker connection
MARKER_HEX = MARKER.hex()
TIMEOUT = 40.0
_SPEC = importlib.util.spec_from_file_location("record", REPO / "captures" / "record.py")
record = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = record  # its dataclasses look their module up there
_SPEC.loader.exec_module(record)
# The pair record.py records: aria2 seeding on the loopback port, one libtorrent downloader.
SEED = record.Peer("aria2", record.LOCALHOST, record.SEED_PORT, True, "aria2c")
DOWNLOADER = record.Peer("libtorrent", record.LOCALHOST, record.DOWNLOAD_PORT, False, "libtorrent downloader")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def btshark(*args: str) -> list[str]:
    return [sys.executable, "-m", "inspector", *args]


class Sniff:
    """``btshark sniff`` in the namespace; its stdout lines collected, the marker awaited."""

    def __init__(self, ns, backend: str, out: Path) -> None:
        self.lines: list[str] = []
        self.marked = threading.Event()
        self.proc = subprocess.Popen(
            ns.cmd(*btshark("sniff", "-i", "lo", "--backend", backend, "-T", "jsonl", "-w", str(out))),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        first = self.proc.stderr.readline()  # "Capturing on 'lo'" once the capture runs
        assert first.startswith("Capturing on 'lo'"), first + self.proc.stderr.read()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if MARKER_HEX in line:
                self.marked.set()

    def stop(self) -> str:
        """SIGINT, as Ctrl-C: the exit status must be 0; returns what it said on stderr."""
        self.proc.send_signal(signal.SIGINT)
        rest = self.proc.stderr.read()
        assert self.proc.wait(TIMEOUT) == 0, rest
        self._reader.join(TIMEOUT)
        return rest


def marker(ns) -> None:
    """A plaintext handshake each way on a fresh connection inside the namespace."""
    script = (
        "import socket\n"
        "s = socket.create_server(('127.0.0.1', 0)); c = socket.create_connection(s.getsockname())\n"
        "a, _ = s.accept()\n"
        f"hs = b'\\x13BitTorrent protocol' + bytes(8) + {MARKER!r}\n"
        "c.sendall(hs + b'-MK0001-' + b'a' * 12); a.sendall(hs + b'-MK0001-' + b'b' * 12)\n"
        "a.recv(68); c.recv(68); c.close(); a.close()\n"
    )
    subprocess.run(ns.cmd(sys.executable, "-c", script), check=True, timeout=TIMEOUT)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def messages(records: list[dict]) -> Counter:
    """Each direction's messages, as type/index/begin/length (frame numbers and times aside)."""
    return Counter((r["src"], r["dst"], r["type"], r.get("index"), r.get("begin"), r.get("length"))
                   for r in records)


def transfer(tmp_path: Path):
    """A 1 MiB torrent of random data in 64 KiB pieces, seeded from ``seed/``, and record.py's
    recording of an aria2 transfer of it: (seed dir, download dir, size, payload, torrent, recording)."""
    seed_dir, dl_dir = tmp_path / "seed", tmp_path / "download"
    seed_dir.mkdir()
    dl_dir.mkdir()
    size, piece = 1 << 20, 64 << 10
    payload = record.make_payload(seed_dir, size, piece)
    torrent = tmp_path / "payload.torrent"
    torrent.write_bytes(record.make_torrent(payload, size, piece))
    rec = record.Recording("aria2", "tcp", False, size, piece, tmp_path / "unused.pcap", TIMEOUT)
    return seed_dir, dl_dir, size, payload, torrent, rec


def read_jsonl(capture: Path) -> list[str]:
    run = subprocess.run(btshark("read", str(capture), "-T", "jsonl"), capture_output=True, text=True,
                         env=env(), timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines(keepends=True)


@needs_root
@pytest.mark.skipif(not all(shutil.which(t) for t in ("dumpcap", "tcpdump", "aria2c", "ethtool", "ip")),
                    reason="needs dumpcap, tcpdump, aria2c, ethtool and ip")
def test_live_decode_equals_the_saved_file_and_tcpdump(tmp_path: Path) -> None:
    pytest.importorskip("libtorrent")
    seed_dir, dl_dir, size, payload, torrent, rec = transfer(tmp_path)
    children = []
    sniffs: dict[str, Sniff] = {}
    with record.Namespace(f"btshark-sniff-{os.getpid()}") as ns:
        try:
            # -U: tcpdump writes each packet as it comes, so its file shows the marker.
            dump = tmp_path / "tcpdump.pcap"
            tcpdump = record.Child("tcpdump", ns.cmd("tcpdump", "-i", "lo", "-B", "65536", "-s", "0", "-n", "-U",
                                                     "-Z", "root", "-w", str(dump)),
                                   tmp_path / "tcpdump.log", ready=r"listening on lo")
            children.append(tcpdump)
            tcpdump.wait_ready(TIMEOUT)
            for backend in BACKENDS:
                sniffs[backend] = Sniff(ns, backend, tmp_path / f"{backend}.pcapng")
            seeder = record.aria2_client(ns, tmp_path, torrent, seed_dir, SEED, swarm=False)
            children.append(seeder)
            seeder.wait_ready(TIMEOUT)
            wait_for(lambda: ns.listening(record.SEED_PORT), "aria2 to listen")
            downloader = record.Child("libtorrent downloader", record.peer_command(ns, DOWNLOADER, torrent, dl_dir, rec),
                                      tmp_path / "download.log")
            children.append(downloader)
            assert downloader.proc.wait(TIMEOUT) == 0, downloader.output()
            assert record.file_sha256(dl_dir / record.PAYLOAD_NAME) == payload.sha256
            marker(ns)
            for backend, sniff in sniffs.items():
                assert sniff.marked.wait(TIMEOUT), f"{backend}: the marker connection never showed"
            wait_for(lambda: MARKER in dump.read_bytes(), "tcpdump to write the marker")
            stops = {backend: sniff.stop() for backend, sniff in sniffs.items()}
            record.stop_tcpdump(tcpdump)
        finally:
            for child in children:
                child.stop(signal.SIGKILL)
            for sniff in sniffs.values():
                if sniff.proc.poll() is None:
                    sniff.proc.kill()
                    sniff.proc.wait()

    reference = messages([json.loads(line) for line in read_jsonl(dump)])
    pieces = sum(n for key, n in reference.items() if key[2] == "piece")
    assert pieces == size // (16 << 10)  # every block of the payload, once
    for backend, sniff in sniffs.items():
        saved = tmp_path / f"{backend}.pcapng"
        assert sniff.lines == read_jsonl(saved), backend
        assert messages([json.loads(line) for line in sniff.lines]) == reference, backend
        captured, dropped = stops[backend].strip().splitlines()[-1].split(" frames captured, ")
        assert dropped == "0 dropped by the kernel", stops[backend]
        with CaptureFile(saved) as frames:  # the count is of the frames the file holds
            assert sum(1 for _ in frames) == int(captured), backend


def run_sniff(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    environment = env()
    if path is not None:
        environment["PATH"] = path
    return subprocess.run(btshark("sniff", *args), capture_output=True, text=True, env=environment,
                          timeout=TIMEOUT)


def one_line_error(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("btshark: error: "), run.stderr
    return lines[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_such_interface(backend: str) -> None:
    if backend == "dumpcap" and not shutil.which("dumpcap"):
        pytest.skip("dumpcap is not installed")
    assert "nosuch0" in one_line_error(run_sniff("-i", "nosuch0", "--backend", backend))


def test_missing_dumpcap(tmp_path: Path) -> None:
    line = one_line_error(run_sniff("-i", "lo", "--backend", "dumpcap", path=str(tmp_path)))
    assert "dumpcap not found" in line


@needs_root
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
@pytest.mark.parametrize("backend", BACKENDS)
def test_not_permitted(backend: str) -> None:
    """Root without CAP_NET_RAW: the capture is refused, in one line."""
    if backend == "dumpcap" and not shutil.which("dumpcap"):
        pytest.skip("dumpcap is not installed")
    drop = ["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin"]
    run = subprocess.run([*drop, *btshark("sniff", "-i", "lo", "--backend", backend, "-a", "duration:5")],
                         capture_output=True, text=True, env=env(), timeout=TIMEOUT)
    one_line_error(run)
