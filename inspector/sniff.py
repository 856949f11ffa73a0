"""Live capture sources: frames from an interface, fed to the decoder ``btshark read`` uses.

At full speed on loopback a BitTorrent transfer makes some 40,000 frames a second,
and anything that dissects per packet on the capture path (scapy's sniffer with a
callback saw under 3% of them) loses most of it. So the capture itself is left to
the kernel and to code that only copies bytes: dumpcap writing pcapng into a pipe
that btshark's own pcapng reader decodes as it arrives, or a raw AF_PACKET socket
with a large buffer and the BPF filter in the kernel, drained in batches. Either
way a live capture is only a ``FrameSource``; everything after it is
``CaptureDecode`` unchanged.
"""
from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from .capfile import CHUNK, CaptureError, CaptureFile
from .limits import DEFAULT, Limits
from .pipeline import CaptureDecode

__all__ = ["BACKENDS", "DEFAULT_FILTER", "LiveDecode", "SniffError", "default_backend", "open_live"]

BACKENDS = ("dumpcap", "scapy")
DEFAULT_FILTER = "tcp or udp"  # BitTorrent runs on any port; uTP on UDP
BUFFER_MIB = 64  # kernel capture buffer: absorbs the decoder's pauses at full speed
DUMPCAP_BUFFER_MIB = 256  # dumpcap's ring holds frames while its pipe to us is full (the decoder's pauses)
PIPE_BYTES = 1 << 20  # dumpcap's pipe to us (Linux's default limit for an unprivileged process)

# Linux packet sockets (linux/if_packet.h, linux/if_ether.h, linux/if_arp.h)
_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_PACKET_OUTGOING = 4
_SOL_PACKET = 263
_PACKET_IGNORE_OUTGOING = 23
_SO_TIMESTAMPNS = 35  # also SCM_TIMESTAMPNS
_SO_RCVBUFFORCE = 33
_ARPHRD_ETHER, _ARPHRD_LOOPBACK = 1, 772
_SNAP = 262144  # as libpcap: no frame is cut
_TIMESPEC = struct.Struct("qq")
_PACKET_STATS = struct.Struct("II")  # tp_packets, tp_drops

# pcapng as the socket backend writes it: little-endian, nanosecond timestamps
_SHB = struct.Struct("<IIIHHqI").pack(0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
_IDB = struct.Struct("<IIHHIHHB3xHHI")  # + if_tsresol option (9 = nanoseconds) and end of options
_EPB = struct.Struct("<IIIIIII")
_NS = 1_000_000_000

_DUMPCAP_COUNTS = re.compile(r"Packets received/dropped on interface .*?: (\d+)/(\d+) \(pcap:(\d+)/")
_DUMPCAP_CAPTURED = re.compile(r"Packets captured: (\d+)")


class SniffError(Exception):
    """A capture that cannot start (one line, for the user)."""


def default_backend() -> str:
    """dumpcap when it is installed (no root needed), else the raw socket."""
    return "dumpcap" if shutil.which("dumpcap") else "scapy"


class _DumpcapPipe:
    """dumpcap's stdout as a stream for ``CaptureFile``, each byte also teed into ``-w``."""

    name = "<dumpcap>"

    def __init__(self, fd: int, tee: BinaryIO | None) -> None:
        self.fd = fd
        self.tee = tee

    def read(self, size: int) -> bytes:
        data = os.read(self.fd, size)  # blocks until some bytes come; b"" once dumpcap has exited
        if self.tee is not None and data:
            self.tee.write(data)
            self.tee.flush()  # the file holds what was decoded (a live save copies it whole)
        return data

    def close(self) -> None:
        """Take what dumpcap still writes (it stops on ``stop``), so ``-w`` ends on a whole block."""
        while self.read(CHUNK):
            pass
        os.close(self.fd)
        if self.tee is not None:
            self.tee.close()


class DumpcapSource:
    """Frames from ``dumpcap -w -`` (pcapng on a pipe), decoded by btshark's reader."""

    def __init__(self, iface: str, bpf: str, write: str | None) -> None:
        exe = shutil.which("dumpcap")
        if exe is None:
            raise SniffError("dumpcap not found (install Wireshark's dumpcap: apt-get install wireshark-common; "
                             "or --backend scapy, as root)")
        tee = _create(write)
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: dumpcap never blocks on it
        self._proc = subprocess.Popen(
            [exe, "-i", iface, "-f", bpf, "-w", "-", "-q", "-n", "-B", str(DUMPCAP_BUFFER_MIB)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            process_group=0,  # the terminal's Ctrl-C reaches btshark, which stops dumpcap in order
        )
        assert self._proc.stdout is not None
        fd = os.dup(self._proc.stdout.fileno())
        self._proc.stdout.close()
        try:  # a bigger pipe: fewer wake-ups for both, and dumpcap blocks less when we fall behind
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass
        try:
            self.capture = CaptureFile(_DumpcapPipe(fd, tee))
        except CaptureError:  # dumpcap exited before writing a header: it says why
            self._proc.wait()
            raise SniffError(self._error() or f"dumpcap exited with status {self._proc.returncode}") from None
        self.warnings = self.capture.warnings
        self.captured = self.dropped = 0

    def views(self) -> Iterator[tuple[float, int, bytes, int, int]]:
        return self.capture.views()

    def stop(self) -> None:
        """Ask dumpcap to stop; it writes what it holds, then the stream ends. Safe in a signal handler."""
        if self._proc.returncode is None:
            try:
                self._proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def __enter__(self) -> DumpcapSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._log.closed:
            return
        self.stop()
        self.capture.close()
        self._proc.wait()
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        self._log.close()
        counts = _DUMPCAP_COUNTS.search(text)
        captured = _DUMPCAP_CAPTURED.search(text)
        self.captured = int(captured.group(1)) if captured else self.capture.frame_count
        self.dropped = int(counts.group(3)) if counts else 0

    def _error(self) -> str:
        """dumpcap's error message (``dumpcap: ...`` and its reason in brackets), on one line."""
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if line.startswith("dumpcap: "):
                reason = lines[i + 1].strip() if i + 1 < len(lines) else ""
                return f"{line} {reason}" if reason.startswith("(") else line
        return ""


class SocketSource:
    """Frames from a raw AF_PACKET socket: the BPF filter runs in the kernel, the
    buffer is large, and each wake-up drains every frame queued, copying bytes only."""

    def __init__(self, iface: str, bpf: str, write: str | None) -> None:
        try:
            from scapy.arch.linux import attach_filter
        except ImportError:
            raise SniffError("scapy is not installed (pip install scapy), and the scapy backend needs it") from None
        try:
            socket.if_nametoindex(iface)
        except OSError:
            raise SniffError(f"there is no interface named {iface!r}") from None
        try:
            # Protocol 0 receives nothing until the filter is on and bind() names the interface.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise SniffError(f"not permitted to capture on {iface}: the scapy backend needs root "
                             "(CAP_NET_RAW)") from None
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, BUFFER_MIB << 20)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER_MIB << 20)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            try:
                attach_filter(sock, bpf, iface)
            except Exception as exc:  # scapy raises its own kinds for a bad filter or no libpcap
                raise SniffError(f"capture filter {bpf!r}: {str(exc).strip() or type(exc).__name__}") from None
            try:
                sock.bind((iface, _ETH_P_ALL))
            except OSError as exc:
                raise SniffError(f"cannot capture on {iface}: {exc.strerror or exc}") from None
            hatype = sock.getsockname()[3]
            if hatype not in (_ARPHRD_ETHER, _ARPHRD_LOOPBACK):
                raise SniffError(f"{iface}: link type {hatype} is not Ethernet; use --backend dumpcap")
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._loopback = hatype == _ARPHRD_LOOPBACK
        if self._loopback:
            try:  # lo's outgoing copies never reach the socket (half the system calls and buffer saved)
                sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass  # kernels before 4.20: they are skipped one by one in views()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._tee = _create(write)
        if self._tee is not None:
            self._tee.write(_SHB + _IDB.pack(1, 32, 1, 0, _SNAP, 9, 1, 9, 0, 0, 32))
        self.warnings: list[str] = []
        self.captured = self.dropped = 0

    def views(self) -> Iterator[tuple[float, int, bytes, int, int]]:
        sock, tee, loopback = self._sock, self._tee, self._loopback
        buf = bytearray(_SNAP)
        view = memoryview(buf)
        recv = sock.recvmsg_into
        unpack_ts, epb = _TIMESPEC.unpack_from, _EPB.pack
        anc = socket.CMSG_SPACE(_TIMESPEC.size)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        stopping = False
        while not stopping:
            stopping = any(fd == self._wake_r for fd, _ in poller.poll())
            while True:  # everything queued now, then wait again
                try:
                    size, ancdata, _flags, addr = recv((view,), anc, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    if tee is not None:
                        tee.flush()  # once per wake-up: the file holds what was decoded
                    break
                if loopback and addr[2] == _PACKET_OUTGOING:  # lo shows each packet twice, as libpcap knows
                    continue
                ticks = 0
                for level, kind, data in ancdata:
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                        sec, nsec = unpack_ts(data)
                        ticks = sec * _NS + nsec
                frame = bytes(view[:size])
                self.captured += 1
                if tee is not None:
                    pad = -size & 3
                    tee.write(epb(6, 32 + size + pad, 0, ticks >> 32, ticks & 0xFFFFFFFF, size, size))
                    tee.write(frame + bytes(pad) + (32 + size + pad).to_bytes(4, "little"))
                # The same division the pcapng reader makes, so ``read -w FILE`` gives the same times.
                yield ticks / _NS, 1, frame, 0, size

    def stop(self) -> None:
        """End ``views`` once the frames already queued are handed out. Safe in a signal handler."""
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def __enter__(self) -> SocketSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll_dropped(self) -> int:
        """Frames the kernel dropped so far (the socket's counter resets on each read: summed here)."""
        if self._sock.fileno() >= 0:
            raw = self._sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _PACKET_STATS.size)
            self.dropped += _PACKET_STATS.unpack(raw)[1]
        return self.dropped

    def close(self) -> None:
        if self._sock.fileno() < 0:
            return
        self.poll_dropped()
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._tee is not None:
            self._tee.close()


class LiveDecode(CaptureDecode):
    """``CaptureDecode`` over a live source: iterate for records as they are captured;
    ``stop`` (from a signal handler or another thread) ends the iteration after the
    frames already captured; ``captured`` and ``dropped`` are final once it has ended."""

    def __init__(self, source: DumpcapSource | SocketSource, limits: Limits = DEFAULT) -> None:
        super().__init__(source, limits=limits)
        self.source = source

    def stop(self) -> None:
        self.source.stop()

    def close(self) -> None:
        self.source.close()

    @property
    def captured(self) -> int:
        return self.source.captured

    @property
    def dropped(self) -> int:
        return self.source.dropped

    def dropped_so_far(self) -> int | None:
        """The kernel's drops while still capturing: the socket's counter; dumpcap tells only at its end."""
        poll = getattr(self.source, "poll_dropped", None)
        return poll() if poll is not None else None


def open_live(iface: str, bpf: str = DEFAULT_FILTER, backend: str | None = None,
              write: str | None = None, limits: Limits = DEFAULT) -> LiveDecode:
    """Start capturing on ``iface``; ``write``: also save what was captured as pcapng."""
    kind = backend or default_backend()
    if kind == "dumpcap":
        return LiveDecode(DumpcapSource(iface, bpf, write), limits)
    if kind == "scapy":
        return LiveDecode(SocketSource(iface, bpf, write), limits)
    raise SniffError(f"unknown backend {kind!r} (one of: {', '.join(BACKENDS)})")


def _create(path: str | None) -> BinaryIO | None:
    if path is None:
        return None
    try:
        return open(path, "wb")
    except OSError as exc:
        raise SniffError(f"cannot write {path}: {exc.strerror or exc}") from None
