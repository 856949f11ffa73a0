"""Live BitTorrent clients on loopback, started and watched by a test.

The replayer's acceptance tests play one side of a captured session against real
clients, so they need those clients up, listening and in a known state before the
replay starts, and a view of what the clients did that does not depend on the
replayer's own account of it. This module gives them that, synchronously, for
plain pytest tests:

* ``LtPeer``: a libtorrent session in this process, as a full seed, a seed of
  exactly the pieces asked for (the rest of its file is garbage and libtorrent's
  own check finds which pieces it has), or an empty downloader;
* ``Aria2Seeder``: aria2c seeding from already-complete data;
* ``LoopbackWatch``: tcpdump on ``lo``, turned into the TCP connections made to
  the watched ports and how many were open at once, by packet order (the kernel
  orders packets on ``lo``, so the answer does not depend on thread timing).

Every wait is on a real event (a libtorrent alert, a child's output, a marker
packet showing up in the capture) and has a timeout; nothing sleeps.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any

import fastbencode
import pytest

from inspector import frames
from inspector.capfile import CaptureFile
from inspector.clients import identify

LOCALHOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0  # seconds for a client to listen, check its files, or say it is seeding
STOP_TIMEOUT = 10.0  # seconds for a child to exit on its signal before it is killed

# Skip marks for tests that need the clients (under CI a skip fails: see conftest).
needs_libtorrent = pytest.mark.skipif(
    find_spec("libtorrent") is None,
    reason="the libtorrent Python bindings are not installed (pip install -e '.[test]')")
needs_aria2 = pytest.mark.skipif(shutil.which("aria2c") is None, reason="aria2c is not installed (.ci/install)")
needs_tcpdump = pytest.mark.skipif(
    shutil.which("tcpdump") is None or os.geteuid() != 0, reason="needs tcpdump, run as root")


class LiveError(Exception):
    """A live client failed, or did not get where it was asked to in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def make_torrent(directory: Path, size: int, piece_length: int, name: str = "payload.bin") -> tuple[Path, Path]:
    """Random data in ``directory/seed/name`` and its v1 single-file torrent (no announce)
    in ``directory/<name's stem>.torrent``; returns (torrent, payload)."""
    seed = directory / "seed"
    seed.mkdir(parents=True, exist_ok=True)
    payload = seed / name
    pieces = []
    with open(payload, "wb") as fh:
        for offset in range(0, size, piece_length):
            piece = os.urandom(min(piece_length, size - offset))
            fh.write(piece)
            pieces.append(hashlib.sha1(piece).digest())
    info = {b"length": size, b"name": name.encode(), b"piece length": piece_length, b"pieces": b"".join(pieces)}
    torrent = directory / f"{Path(name).stem}.torrent"
    torrent.write_bytes(fastbencode.bencode({b"info": info}))
    return torrent, payload


class _Pipe:
    """A child's output pipe, drained by a thread so it never fills, and waited on by content."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.data = bytearray()
        self.ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        while chunk := os.read(pipe.fileno(), 1 << 16):
            with self._changed:
                self.data += chunk
                self._changed.notify_all()
        pipe.close()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait(self, found: Callable[[bytearray], bool], timeout: float) -> bool:
        """Whether ``found`` came true of the output before it ended or the time ran out."""
        with self._changed:
            self._changed.wait_for(lambda: self.ended or found(self.data), timeout)
            return found(self.data)

    def join(self, timeout: float) -> None:
        """Wait for the rest of the output (the child has exited)."""
        self._thread.join(timeout)

    def tail(self, n: int = 500) -> str:
        """The last output, for error messages."""
        with self._changed:
            return bytes(self.data[-n:]).decode("utf-8", "replace")


def _stop(proc: subprocess.Popen, sig: int) -> int:
    """Signal a child we started and reap it; kill it if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


# --------------------------------------------------------------------------- libtorrent


@dataclass(frozen=True)
class Peer:
    """A peer a live client had a handshaken connection with."""

    address: tuple[str, int]
    peer_id: bytes
    client: str | None  # btshark's name for the client behind the peer id (inspector.clients)


class LtPeer:
    """One libtorrent session in this process on 127.0.0.1:port: TCP only, plaintext, Fast extension on,
    no DHT, local peer discovery, UPnP, NAT-PMP or tracker.

    ``seed=True, have=None``: a full seed serving ``save_path`` (which holds the payload), in seed mode
    (no re-hash). ``seed=True, have={...}``: a seed of exactly those pieces. The torrent must come from
    ``make_torrent``: its payload (in ``seed/`` beside the torrent) is copied into ``save_path`` with every
    other piece overwritten by garbage, libtorrent checks the file, and the check must find exactly
    ``have``. It is an ordinary peer with those pieces, not in upload mode (which would change what it
    says on the wire, and make libtorrent peers hang up once they have its pieces): it would fetch the
    rest from a peer that offers them, which a downloader, live or replayed, does not. ``seed=False``: a
    downloader with an empty ``save_path``. The constructor returns once the peer listens and its check
    is done.
    """

    def __init__(self, torrent: Path, save_path: Path, *, port: int | None = None, seed: bool,
                 have: set[int] | None = None) -> None:
        import libtorrent as lt

        if port and _tcp_listening(port):  # libtorrent sets SO_REUSEPORT: it would share the port, not fail
            raise LiveError(f"port {port} is taken")
        self._lt = lt
        self._peers: dict[tuple[tuple[str, int], bytes], Peer] = {}
        info = lt.torrent_info(str(torrent))
        if have is not None:
            if not seed:
                raise ValueError("have= is for seeds; a downloader starts with no pieces")
            _partial_copy(torrent, info, save_path, have)
        elif not seed:
            save_path.mkdir(parents=True, exist_ok=True)
        self._ses = lt.session({
            "listen_interfaces": f"{LOCALHOST}:{port or 0}",
            "listen_system_port_fallback": False,
            "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
            "enable_ip_notifier": False, "dht_bootstrap_nodes": "",
            "enable_outgoing_utp": False, "enable_incoming_utp": False,
            # pe_enabled would try an encrypted handshake first; plaintext means plaintext.
            "out_enc_policy": int(lt.enc_policy.pe_disabled), "in_enc_policy": int(lt.enc_policy.pe_disabled),
            # Every peer on loopback shares one address; a replay may open several connections from it.
            "allow_multiple_connections_per_ip": True,
            "min_reconnect_time": 1,
            "alert_mask": int(lt.alert_category.error | lt.alert_category.status | lt.alert_category.connect),
        })
        atp = lt.add_torrent_params()
        atp.ti = info
        atp.save_path = str(save_path)
        # Not auto-managed: the session's queue never pauses it.
        atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        if seed and have is None:
            atp.flags |= lt.torrent_flags.seed_mode
        self.handle = self._ses.add_torrent(atp)
        self.port = 0
        self._checked = False
        try:
            self._pump(lambda: self.port != 0 and self._checked, STARTUP_TIMEOUT, "listen and check its files")
            if have is not None and self.pieces() != have:
                raise LiveError(f"libtorrent's check found pieces {sorted(self.pieces())}, not {sorted(have)}")
        except BaseException:
            self.close()
            raise

    def _pump(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Handle alerts until ``done()``; an error alert or the clock running out raises."""
        lt = self._lt
        deadline = time.monotonic() + timeout
        while True:
            for alert in self._ses.pop_alerts():
                if isinstance(alert, lt.listen_succeeded_alert) and alert.socket_type == lt.socket_type_t.tcp:
                    self.port = alert.port
                elif isinstance(alert, lt.torrent_checked_alert):
                    self._checked = True
                elif isinstance(alert, lt.peer_disconnected_alert):
                    self._saw_peer((str(alert.ip[0]), int(alert.ip[1])), alert.pid.to_bytes())
                elif isinstance(alert, (lt.listen_failed_alert, lt.torrent_error_alert, lt.file_error_alert)):
                    raise LiveError(f"libtorrent: {alert.message()}")
            if done():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise LiveError(f"libtorrent did not {what} within {timeout:g} s: {self._describe()}")
            self._ses.wait_for_alert(int(min(left, 0.1) * 1000) + 1)

    def _saw_peer(self, address: tuple[str, int], peer_id: bytes) -> None:
        if any(peer_id):  # all zeros: the connection ended before the handshake
            self._peers.setdefault((address, peer_id), Peer(address, peer_id, identify(peer_id)))

    def _describe(self) -> str:
        s = self.handle.status()
        return (f"state {s.state}, pieces {sorted(i for i, b in enumerate(s.pieces) if b)} of {len(s.pieces)}, "
                f"{s.num_peers} peer(s), error {s.errc.message() if s.errc.value() else 'none'}")

    def connect(self, host: str, port: int) -> None:
        """Tell libtorrent to connect to a peer now."""
        self.handle.connect_peer((host, port))

    def wait_until(self, condition: Callable[[Any], bool], timeout: float, what: str) -> None:
        """Until ``condition(handle.status())``; raises LiveError with the status on timeout."""
        self._pump(lambda: condition(self.handle.status()), timeout, what)

    def wait_complete(self, timeout: float) -> None:
        """Until every piece is in and passed libtorrent's hash check (it seeds)."""
        self.wait_until(lambda s: s.is_seeding, timeout, "complete the download")

    def status(self) -> Any:
        """libtorrent's torrent_status."""
        return self.handle.status()

    def pieces(self) -> set[int]:
        """The pieces this peer has (hash-checked)."""
        return {i for i, b in enumerate(self.handle.status().pieces) if b}

    def peers_seen(self) -> list[Peer]:
        """Every peer this one completed a handshake with, connected now or gone (from libtorrent's
        disconnect alerts), once per address and peer id. To count connections use LoopbackWatch."""
        self._pump(lambda: True, 0, "look at its peers")
        for p in self.handle.get_peer_info():
            self._saw_peer((str(p.ip[0]), int(p.ip[1])), p.pid.to_bytes())
        return list(self._peers.values())

    def close(self) -> None:
        """End the session: connections close, disk jobs finish, the port is free again."""
        if self._ses is not None:
            self._ses.remove_torrent(self.handle)
            self.handle = None
            self._ses = None  # the session's destructor waits for its threads

    def __enter__(self) -> LtPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _partial_copy(torrent: Path, info: Any, save_path: Path, have: set[int]) -> None:
    """The torrent's payload into save_path, every piece not in ``have`` overwritten with random bytes."""
    if info.num_files() != 1:
        raise ValueError("have= needs a single-file torrent, as make_torrent makes")
    pieces = range(info.num_pieces())
    if not have <= set(pieces):
        raise ValueError(f"have={sorted(have)} is not within the torrent's {len(pieces)} pieces")
    name = info.name()
    source = torrent.parent / "seed" / name
    target = save_path / name
    if not source.is_file():
        raise ValueError(f"have= copies make_torrent's payload, and {source} is not there")
    if target.resolve() == source.resolve():
        raise ValueError(f"save_path {save_path} holds the original payload; give the partial seed its own folder")
    save_path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    with open(target, "r+b") as fh:
        for i in pieces:
            if i not in have:
                fh.seek(i * info.piece_length())
                fh.write(os.urandom(info.piece_size(i)))


# --------------------------------------------------------------------------- aria2


class Aria2Seeder:
    """aria2c seeding ``torrent`` from the complete data in ``seed_dir``, on 127.0.0.1:port only
    (no DHT, local peer discovery, peer exchange, encryption or RPC). The constructor returns once
    aria2 says it is seeding and its port is listening."""

    def __init__(self, torrent: Path, seed_dir: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self._proc = subprocess.Popen(
            ["aria2c", "--no-conf=true", f"--dir={seed_dir}", "--seed-ratio=0.0",
             "--bt-seed-unverified=true", "--check-integrity=false", f"--listen-port={self.port}",
             "--interface=127.0.0.1", "--disable-ipv6=true", "--enable-dht=false", "--enable-dht6=false",
             "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--bt-require-crypto=false",
             "--enable-rpc=false", "--bt-save-metadata=false", "--file-allocation=none",
             "--auto-save-interval=0", "--summary-interval=1", "--console-log-level=notice",
             "--show-console-readout=true", "--bt-stop-timeout=0", str(torrent)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=seed_dir)
        self._out = _Pipe(self._proc.stdout)
        # The readout says SEED( every second once the download is set up; the port is checked too.
        if not self._out.wait(lambda out: b"SEED(" in out and _tcp_listening(self.port), STARTUP_TIMEOUT):
            self.close()
            raise LiveError(f"aria2c is not seeding on port {self.port}: {self._out.tail()!r}")

    def close(self) -> None:
        _stop(self._proc, signal.SIGTERM)
        self._out.join(STOP_TIMEOUT)

    def __enter__(self) -> Aria2Seeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tcp_listening(port: int) -> bool:
    """Whether a TCP socket listens on 127.0.0.1:port (the kernel's table: no packet is sent)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        return any(f[1] == want and f[3] == "0A" for f in (line.split() for line in table))


# --------------------------------------------------------------------------- tcpdump


@dataclass(frozen=True)
class Conn:
    """One TCP connection in a LoopbackWatch capture; indexes are 0-based packet positions in the file."""

    server_port: int  # the SYN's destination
    client_port: int  # the SYN's source
    syn_index: int
    end_index: int | None  # its first FIN or RST, either direction; None if it never closed


class LoopbackWatch:
    """tcpdump on ``lo`` capturing TCP to and from ``ports`` into ``pcap``.

    ``stop`` makes the capture complete up to the moment it is called: it sends a
    marker datagram to itself on ``lo`` and waits until tcpdump has written it
    (packets on ``lo`` reach the capture in the order they were sent, so everything
    sent before the marker is in the file too), then stops tcpdump with SIGINT and
    waits for it to exit. A capture the kernel dropped packets from raises.
    """

    def __init__(self, ports: Iterable[int], pcap: Path) -> None:
        watched = " or ".join(f"port {p}" for p in sorted(set(ports)))
        if not watched:
            raise ValueError("LoopbackWatch needs at least one port")
        self.pcap = pcap
        self._marker = os.urandom(16)
        self._mark_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._mark_sock.bind((LOCALHOST, 0))
        mark_port = self._mark_sock.getsockname()[1]
        # Whole packets, each handed over as it comes (--immediate-mode, -U), into a 64 MiB ring (-B, KiB).
        self._proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-s", "0", "-B", "65536", "--immediate-mode", "-U", "-w", "-",
             f"(tcp and ({watched})) or (udp and dst port {mark_port})"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._pcap_out = _Pipe(self._proc.stdout)
        self._messages = _Pipe(self._proc.stderr)
        self._stopped = False
        if not self._messages.wait(lambda err: b"listening on lo" in err, STARTUP_TIMEOUT):
            self._end()
            raise LiveError(f"tcpdump did not start: {self._messages.tail()!r}")

    def stop(self) -> None:
        """End the capture with everything sent before this call in ``pcap``; raises if that failed."""
        if self._stopped:
            return
        self._mark_sock.sendto(self._marker, self._mark_sock.getsockname())
        flushed = self._pcap_out.wait(lambda out: self._marker in out, STOP_TIMEOUT)
        code = self._end()
        dropped = re.search(rb"(\d+) packets? dropped by kernel", self._messages.data)
        if not flushed:
            raise LiveError(f"tcpdump never wrote the marker packet (exit status {code}): {self._messages.tail()!r}")
        if dropped is None or int(dropped.group(1)):
            raise LiveError(f"tcpdump's capture is incomplete: {self._messages.tail()!r}")

    def _end(self) -> int:
        """SIGINT (tcpdump flushes and prints its counters), wait for it and its output; save the file."""
        self._stopped = True
        code = _stop(self._proc, signal.SIGINT)
        self._pcap_out.join(STOP_TIMEOUT)
        self._messages.join(STOP_TIMEOUT)
        self._mark_sock.close()
        self.pcap.write_bytes(self._pcap_out.data)
        return code

    def connections(self) -> list[Conn]:
        """Each TCP connection with a watched port at one end, in SYN order (stop first)."""
        if not self._stopped:
            raise RuntimeError("stop the watch before reading its connections")
        conns: list[Conn] = []
        open_at: dict[tuple, int] = {}  # (client, server) endpoints -> its place in conns
        with CaptureFile(self.pcap) as capture:
            for index, (_ts, linktype, frame) in enumerate(capture):
                seg = frames.decode(linktype, frame)
                if seg is None or seg[frames.PROTO] != frames.TCP:
                    continue
                here = (seg[frames.SRC], seg[frames.SPORT])
                there = (seg[frames.DST], seg[frames.DPORT])
                flags = seg[frames.FLAGS]
                if flags & frames.SYN and not flags & frames.ACK:
                    if (here, there) not in open_at:  # else a retransmitted SYN
                        open_at[here, there] = len(conns)
                        conns.append(Conn(there[1], here[1], index, None))
                elif flags & (frames.FIN | frames.RST):
                    at = open_at.pop((here, there), None)
                    if at is None:
                        at = open_at.pop((there, here), None)
                    if at is not None:
                        c = conns[at]
                        conns[at] = Conn(c.server_port, c.client_port, c.syn_index, index)
        return conns

    def max_concurrent(self) -> int:
        """The most connections open at once, each from its SYN to its first FIN or RST."""
        conns = self.connections()
        steps = sorted([(c.syn_index, 1) for c in conns]
                       + [(c.end_index, -1) for c in conns if c.end_index is not None])
        most = now = 0
        for _, step in steps:
            now += step
            most = max(most, now)
        return most

    def __enter__(self) -> LoopbackWatch:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.stop()
        elif not self._stopped:
            self._end()  # the test already failed: keep its error, not a complaint about the capture


# --------------------------------------------------------------------------- v2 (BEP 52) and hybrid torrents

PIECE = 32 << 10
FILES = {"a.bin": 40000, "c.bin": 5000, "sub/b.bin": 70000}  # none a whole number of pieces
BLOCK = 16 << 10


@dataclass(frozen=True)
class Made:
    """A libtorrent-made torrent of FILES, and the wire facts its layout gives."""

    torrent: Path
    seed: Path  # the folder holding the torrent's folder
    pieces: int
    v1_hash: bytes | None  # the SHA-1 info hash (hybrid only)
    v2_hash: bytes  # the SHA-256 info hash, truncated to 20 bytes as handshakes carry it
    blocks: tuple[tuple[int, int, bytes], ...]  # (index, begin, bytes) of every 16 KiB block of file data
    piece_files: tuple[str, ...]  # per piece, the path of the file whose bytes it holds


def v2_torrents(root: Path) -> dict[str, Made]:
    """The same random FILES as a v2-only torrent and as a hybrid one (libtorrent 2's default), made
    by libtorrent under ``root``."""
    import libtorrent as lt

    seed = root / "seed"
    for path, size in FILES.items():
        (seed / "multi" / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / "multi" / path).write_bytes(os.urandom(size))
    out = {}
    for kind, flags in (("v2", lt.create_torrent.v2_only), ("hybrid", 0)):
        creator = lt.create_torrent(lt.list_files(str(seed / "multi")), PIECE, flags)
        lt.set_piece_hashes(creator, str(seed))
        torrent = root / f"{kind}.torrent"
        torrent.write_bytes(lt.bencode(creator.generate()))
        info = lt.torrent_info(str(torrent))
        hashes, layout = info.info_hashes(), info.layout()
        blocks = []
        for i in range(layout.num_files()):
            if layout.file_flags(i) & lt.file_storage.flag_pad_file:
                continue
            data, start = (seed / layout.file_path(i)).read_bytes(), layout.file_offset(i)
            blocks += [((start + at) // PIECE, (start + at) % PIECE, data[at : at + BLOCK])
                       for at in range(0, len(data), BLOCK)]
        owners = tuple(layout.file_path(layout.file_index_at_piece(p)) for p in range(info.num_pieces()))
        out[kind] = Made(torrent, seed, info.num_pieces(), hashes.v1.to_bytes() if hashes.has_v1() else None,
                         hashes.v2.to_bytes()[:20], tuple(blocks), owners)
    return out


def capture_transfer(torrent: Path, seed: Path, pcap: Path, down: Path, timeout: float = 20) -> Path:
    """A whole transfer, libtorrent seeder to libtorrent downloader, captured on lo into ``pcap``."""
    with LtPeer(torrent, seed, seed=True) as seeder, LoopbackWatch([seeder.port], pcap):
        with LtPeer(torrent, down, seed=False) as downloader:
            downloader.connect(LOCALHOST, seeder.port)
            downloader.wait_complete(timeout)
    return pcap
