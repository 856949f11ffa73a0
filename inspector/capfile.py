"""Capture files in: pcap and pcapng, plain or gzip-compressed, in constant memory.

The reader is the first stage of every decode and runs once per frame, so it is
written for speed: the file is read in chunks, records are cut out of the chunk
with precompiled structs, and only a record's tail is carried into the next chunk.
A damaged or cut-short file is a normal case (captures get killed, copied half
way, truncated by hand): iteration stops with a one-line warning and everything
before the damage is kept. Only a file that is not a capture at all raises.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from .words import plural, were

__all__ = ["CaptureError", "CaptureFile", "MAX_BLOCK"]

CHUNK = 1 << 16  # measured: larger reads cost more in allocation than they save in calls
# No real packet or block comes near this; a larger length field means the bytes
# under it are not a record header, so reading on would only produce garbage.
MAX_BLOCK = 1 << 28
MAX_RECORD = 1 << 20  # the default largest record read (inspector.limits: --max-record)
_LISTED = 20  # skipped records named in the warning

# pcap: magic -> (byte order, ticks per second)
_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAP_HEAD = {o: struct.Struct(o + "4xHHiIII") for o in "<>"}  # version, zone, sigfigs, snaplen, linktype
_PCAP_REC = {o: struct.Struct(o + "IIII") for o in "<>"}  # sec, frac, captured, original
_PCAP_HEAD_LEN = 24

_SHB = 0x0A0D0D0A  # a palindrome, so readable before the byte order is known
_SHB_MAGIC = b"\n\r\r\n"
_IDB, _OPB, _SPB, _EPB = 1, 2, 3, 6
_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14


class _Section:
    """The pcapng structs for one byte order, compiled once."""

    __slots__ = ("head", "block", "idb", "opt", "u16", "u32", "i64")

    def __init__(self, order: str) -> None:
        # Every packet block starts: type, length, interface, ts high, ts low,
        # captured, original (EPB exactly; the obsolete PB splits "interface" into
        # id and drops); one unpack serves the whole fast path.
        self.head = struct.Struct(order + "IIIIIII").unpack_from
        self.block = struct.Struct(order + "II").unpack_from
        self.idb = struct.Struct(order + "HxxI").unpack_from  # link type, snap length
        self.opt = struct.Struct(order + "HH").unpack_from
        self.u16 = struct.Struct(order + "H").unpack_from
        self.u32 = struct.Struct(order + "I").unpack_from
        self.i64 = struct.Struct(order + "q").unpack_from


_SECTIONS = {o: _Section(o) for o in "<>"}
_HEAD_LEN = 28  # bytes unpacked at the start of every pcapng block
_MIN_BLOCK = 12
_PAD = bytes(_HEAD_LEN)


class _Rewound:
    """A stream whose first bytes were read already: they come again, then the rest."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0 or size >= len(self.head):
                data, self.head = self.head, b""
                if size < 0:
                    return data + self.stream.read()  # all of it
                return data + (self.stream.read(size - len(data)) if size > len(data) else b"")
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.stream.read(size)

    def tell(self) -> int:
        return self.stream.tell() - len(self.head)

    def close(self) -> None:
        self.stream.close()


class CaptureError(Exception):
    """The file cannot be read as a capture at all (message is one line, for the user)."""


class CaptureFile:
    """Frames of a pcap or pcapng file (optionally gzip-compressed), in file order.

    Iterating yields ``(timestamp, linktype, frame)``: epoch seconds as a float
    (the integer tick count divided once, so correctly rounded), the LINKTYPE
    number of the frame's interface, and the captured bytes. The object is a
    single-pass iterator like a file: iterate once, then open again to re-read.
    Frame numbers are 1-based in file order across all packet blocks, as in
    Wireshark; ``frame_count`` is the number of the last frame yielded.
    Damage and truncation end iteration early with a line in ``warnings``.
    Simple packet blocks carry no timestamp; they repeat the previous frame's.
    ``format`` is "pcap" or "pcapng".

    ``path`` may also be an open binary stream (a pipe from a live capture): its
    ``read(n)`` may return fewer bytes than asked for and blocks until some arrive,
    so a block only partly written yet is waited for, not reported as a cut. Only
    ``b""`` ends the capture. The stream is closed with the reader.
    """

    __slots__ = ("path", "warnings", "frame_count", "format", "max_record", "skipped", "_file", "_read", "_frames",
                 "_base")

    def __init__(self, path: str | os.PathLike | BinaryIO, max_record: int = MAX_RECORD) -> None:
        stream = path if hasattr(path, "read") else None
        if stream is None:
            self.path = os.fspath(path)
        else:  # open(fd) and Popen's pipes are named by their descriptor, an int
            named = getattr(stream, "name", None)
            self.path = named if isinstance(named, (str, bytes)) else "<stream>"
        self.warnings: list[str] = []
        self.frame_count = 0
        # Records longer than this are skipped (read past, never held) and yielded empty,
        # so frame numbers stay tshark's; ``skipped`` lists the first of them.
        self.max_record = max_record
        self.skipped: list[int] = []
        self._base = 0  # file offset of the current buffer's first byte
        self._file = None
        name = os.fsdecode(self.path)
        kind = ""
        try:
            self._file = stream or open(self.path, "rb", buffering=0)
            self._read: Callable[[int], bytes] = self._file.read
            first = self._head()
            if first[:2] == b"\x1f\x8b":
                # Decompressed from the bytes already read on: a pipe cannot be reopened.
                self._file = gzip.GzipFile(fileobj=_Rewound(first, self._file), mode="rb")
                self._read = self._file.read1
                kind = " (gzip-compressed)"
                first = self._head()
        except (OSError, EOFError, zlib.error) as exc:
            self.close()
            if kind:
                raise CaptureError(f"{name}: corrupt gzip data ({exc})") from None
            raise CaptureError(f"{name}: {getattr(exc, 'strerror', None) or exc}") from None
        magic = first[:4]
        if magic in _PCAP_MAGIC:
            self.format = "pcap"
            self._frames = self._pcap(first, name)
        elif magic == _SHB_MAGIC and first[8:12] in _BOM:
            self.format = "pcapng"
            self._frames = self._pcapng(first)
        else:
            self.close()
            what = "empty file" if not first else "not a pcap or pcapng capture"
            raise CaptureError(f"{name}: {what}{kind}")

    def __iter__(self) -> Iterator[tuple[float, int, bytes]]:
        for ts, linktype, buf, start, end in self._frames:
            yield ts, linktype, buf[start:end]

    def views(self) -> Iterator[tuple[float, int, bytes, int, int]]:
        """Frames as ``(timestamp, linktype, buffer, start, end)``, not sliced out.

        The hot path reads headers in place and only slices what it must; the
        buffer is valid until the next frame is requested, and ``offset`` places
        it in the file.
        """
        return self._frames

    def position(self) -> int:
        """Bytes of the file read so far (compressed bytes for gzip): progress against its size."""
        f = self._file
        if f is None:
            return 0
        raw = getattr(f, "fileobj", None) or f
        try:
            return raw.tell()
        except (OSError, ValueError):
            return 0

    def offset(self, start: int) -> int:
        """Where ``buffer[start]`` of the frame just yielded by ``views`` lies in the file
        (in the decompressed stream, for a gzip-compressed capture)."""
        return self._base + start

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop iteration (recording its summary warnings) and close the file."""
        frames = getattr(self, "_frames", None)
        if frames is not None:
            frames.close()
        if self._file is not None:
            inner = getattr(self._file, "fileobj", None)  # a GzipFile leaves the file it was given open
            self._file.close()
            if inner is not None:
                inner.close()
            self._file = None

    def _head(self) -> bytes:
        """The first chunk, at least long enough for any file header unless the file is shorter."""
        first = self._read(CHUNK)
        while first and len(first) < _PCAP_HEAD_LEN:
            more = self._read(CHUNK)
            if not more:
                break
            first += more
        return first

    def _more(self, size: int) -> bytes:
        """The next bytes of the (decompressed) file; b"" at its end or on a read error."""
        try:
            return self._read(size)
        except (OSError, EOFError, zlib.error) as exc:
            self.warnings.append(f"reading stopped: {exc}")
            return b""

    def _cut_short(self, what: str, offset: int, needed: int, left: int) -> None:
        self.warnings.append(
            f"capture cut short: {what} at byte offset {offset} is truncated "
            f"(needed {needed} bytes, {left} left); decoded the {plural(self.frame_count, 'frame')} before it"
        )

    def _damaged(self, what: str, offset: int) -> None:
        self.warnings.append(
            f"capture damaged: {what} at byte offset {offset}; stopped there, "
            f"decoded the {plural(self.frame_count, 'frame')} before it"
        )

    def _skip(self, frame: int) -> None:
        if len(self.skipped) < _LISTED:
            self.skipped.append(frame)

    def _discard(self, count: int) -> int:
        """Read past ``count`` bytes without holding them; how many there were."""
        done = 0
        while done < count:
            got = self._more(min(count - done, 1 << 20))
            if not got:
                break
            done += len(got)
        return done

    def _record_summary(self, skipped: int, inflated: int) -> None:
        if skipped:
            listed = ", ".join(map(str, self.skipped)) + (", ..." if skipped > len(self.skipped) else "")
            frames = "frame" if skipped == 1 else "frames"
            self.warnings.append(f"{plural(skipped, 'record')} longer than the largest record read (--max-record "
                                 f"{self.max_record}) {were(skipped)} skipped: {frames} {listed}")
        if inflated:
            self.warnings.append(f"{plural(inflated, 'record')} {'claims' if inflated == 1 else 'claim'} more "
                                 "captured bytes than the packet had (captured length above original length)")

    def _snap_summary(self, cut: int, snaplens: set[int]) -> None:
        if cut:
            limits = ", ".join(str(s) for s in sorted(snaplens) if s)
            self.warnings.append(
                f"{plural(cut, 'frame')} {were(cut)} cut by the snap length" + (f" ({limits})" if limits else "")
            )

    def _pcap(self, buf: bytes, name: str) -> Iterator[tuple[float, int, bytes, int, int]]:
        """Records of a classic pcap file; ``buf`` holds the file's first bytes."""
        if len(buf) < _PCAP_HEAD_LEN:
            self.close()
            raise CaptureError(f"{name}: pcap header is truncated ({len(buf)} of 24 bytes)")
        order, div = _PCAP_MAGIC[buf[:4]]
        _major, _minor, _zone, _sigfigs, snaplen, linktype = _PCAP_HEAD[order].unpack_from(buf)
        # The top bits of the link type field carry FCS information, not the type.
        return self._pcap_records(buf, order, div, snaplen, linktype & 0xFFFF)

    def _pcap_records(
        self, buf: bytes, order: str, div: int, snaplen: int, linktype: int
    ) -> Iterator[tuple[float, int, bytes, int, int]]:
        rec = _PCAP_REC[order].unpack_from
        more = self._more
        max_record = self.max_record
        pos, n, base = _PCAP_HEAD_LEN, len(buf), 0  # base: file offset of buf[0]
        count = cut = skipped = inflated = over = 0
        snap = snaplen or MAX_BLOCK  # 0: not given
        try:
            while True:
                start = pos + 16
                if start <= n:
                    sec, frac, incl, orig = rec(buf, pos)
                    end = start + incl
                    if end <= n and incl <= max_record:
                        count += 1
                        self.frame_count = count
                        if incl < orig:
                            cut += 1
                        elif incl > orig:
                            inflated += 1
                        if incl > snap:
                            over += 1
                        yield (sec * div + frac) / div, linktype, buf, start, end
                        pos = end
                        continue
                    if incl > MAX_BLOCK:
                        self._damaged(f"record {count + 1} claims {incl} bytes", base + pos)
                        return
                    if incl > max_record:
                        count += 1
                        self.frame_count = count
                        skipped += 1
                        self._skip(count)
                        yield (sec * div + frac) / div, linktype, b"", 0, 0
                        if end <= n:
                            pos = end
                            continue
                        left = end - n
                        if self._discard(left) < left:
                            self._cut_short(f"record {count}", base + pos, 16 + incl, n - pos)
                            return
                        base += end
                        self._base = base
                        buf, pos, n = b"", 0, 0
                        continue
                    needed = 16 + incl
                else:
                    needed = 16
                chunk = more(max(needed - (n - pos), CHUNK))
                if not chunk:
                    if pos < n:
                        self._cut_short(f"record {count + 1}", base + pos, needed, n - pos)
                    return
                base += pos
                self._base = base
                buf = buf[pos:] + chunk
                pos, n = 0, len(buf)
        finally:
            self._record_summary(skipped, inflated)
            if over:
                self.warnings.append(f"{plural(over, 'record')} {'is' if over == 1 else 'are'} longer than the "
                                     f"file's snap length ({snaplen})")
            self._snap_summary(cut, {snaplen})

    def _pcapng(self, buf: bytes) -> Iterator[tuple[float, int, bytes, int, int]]:
        """Packets of a pcapng file, section by section; ``buf`` holds its first bytes."""
        more = self._more
        largest = self.max_record + 32  # a packet block's length beyond its data
        pos, n, base = 0, len(buf), 0  # base: file offset of buf[0]
        eof = False
        count = cut = skipped = 0
        ts = 0.0
        # Per interface of the current section: link type, ticks per second,
        # if_tsoffset in ticks (so the one division stays exact), snap length.
        ifaces: list[tuple[int, int, int, int]] = []
        snaplens: set[int] = set()
        section = _SECTIONS["<"]
        head, block, u32 = section.head, section.block, section.u32
        try:
            while True:
                avail = n - pos
                if avail >= _HEAD_LEN or (eof and avail >= _MIN_BLOCK):
                    # Near the end of the file the unpack reads into _PAD, past n;
                    # a packet block that short fails the length check below.
                    btype, blen, ifid, hi, lo, incl, orig = head(buf, pos)
                    if btype == _SHB:
                        order = _BOM.get(buf[pos + 8 : pos + 12])
                        if order is None:
                            self._damaged("section header with a bad byte-order magic", base + pos)
                            return
                        section = _SECTIONS[order]
                        head, block, u32 = section.head, section.block, section.u32
                        btype, blen = block(buf, pos)
                    if blen & 3 or blen < _MIN_BLOCK or blen > MAX_BLOCK:
                        self._damaged(f"block of type {btype:#x} with length {blen}", base + pos)
                        return
                    end = pos + blen
                    if blen > largest and btype != _SHB:
                        if btype == _EPB or btype == _OPB or btype == _SPB:
                            count += 1
                            self.frame_count = count
                            skipped += 1
                            self._skip(count)
                            yield ts, 1, b"", 0, 0
                        if end <= n:
                            pos = end
                            continue
                        left = end - n
                        if eof or self._discard(left) < left:
                            self._cut_short("block", base + pos, blen, n - pos)
                            return
                        base += end
                        self._base = base
                        buf, pos, n = b"", 0, 0
                        continue
                    if end <= n:
                        if u32(buf, end - 4)[0] != blen:
                            self._damaged(
                                f"block of type {btype:#x} whose trailing length does not match",
                                base + pos,
                            )
                            return
                        if btype == _EPB or btype == _OPB:
                            if btype == _OPB:
                                ifid = section.u16(buf, pos + 8)[0]
                            if incl > blen - 32:
                                self._damaged(
                                    f"packet block (frame {count + 1}) with captured length {incl}",
                                    base + pos,
                                )
                                return
                            if ifid >= len(ifaces):
                                self._damaged(
                                    f"packet block (frame {count + 1}) for undeclared interface {ifid}",
                                    base + pos,
                                )
                                return
                            linktype, div, offset, _snap = ifaces[ifid]
                            ts = ((hi << 32 | lo) + offset) / div
                            start = pos + 28
                        elif btype == _SPB:
                            if not ifaces:
                                self._damaged(
                                    f"simple packet block (frame {count + 1}) before any interface",
                                    base + pos,
                                )
                                return
                            linktype, _div, _offset, snap = ifaces[0]
                            orig = ifid  # an SPB holds only the original length
                            incl = min(orig, blen - 16, snap or orig)
                            start = pos + 12
                        else:
                            if btype == _IDB:
                                if blen < 20:
                                    self._damaged(f"interface block with length {blen}", base + pos)
                                    return
                                iface = self._interface(section, buf, pos, end)
                                ifaces.append(iface)
                                snaplens.add(iface[3])
                            elif btype == _SHB:
                                ifaces = []
                            pos = end
                            continue
                        count += 1
                        self.frame_count = count
                        if incl < orig:
                            cut += 1
                        yield ts, linktype, buf, start, start + incl
                        pos = end
                        continue
                    needed = blen
                elif eof:
                    if avail:
                        self._cut_short("block", base + pos, _MIN_BLOCK, avail)
                    return
                else:
                    needed = _HEAD_LEN
                if eof:
                    what = f"packet block (frame {count + 1})" if btype in (_EPB, _OPB, _SPB) else "block"
                    self._cut_short(what, base + pos, needed, avail)
                    return
                chunk = more(max(needed - avail, CHUNK))
                base += pos
                self._base = base
                buf = buf[pos:n] + chunk
                pos, n = 0, len(buf)
                if not chunk:
                    eof = True
                    buf += _PAD
        finally:
            self._record_summary(skipped, 0)
            self._snap_summary(cut, snaplens)

    @staticmethod
    def _interface(section: _Section, buf: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
        """An interface description block: (link type, ticks per second, offset ticks, snap length)."""
        linktype, snaplen = section.idb(buf, pos + 8)
        div, offset = 1_000_000, 0
        p, stop = pos + 16, end - 4
        while p + 4 <= stop:
            code, length = section.opt(buf, p)
            if code == 0 or p + 4 + length > stop:
                break
            if code == _OPT_TSRESOL and length >= 1:
                res = buf[p + 4]
                div = 2 ** (res & 0x7F) if res & 0x80 else 10**res
            elif code == _OPT_TSOFFSET and length == 8:
                offset = section.i64(buf, p + 4)[0]
            p += 4 + (length + 3 & ~3)
        return linktype, div, offset * div, snaplen
