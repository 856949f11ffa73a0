"""IP fragment reassembly, IPv4 and IPv6, in bounded memory.

uTP datagrams and TCP segments crossing tunnels and VPNs with small MTUs arrive
as IP fragments; without putting them back together their BitTorrent messages
would be lost. Captures are hostile input, so memory is bounded by construction:
a datagram may not grow past 65,535 bytes after its IP header, at most
``max_datagrams`` are in progress and ``max_bytes`` held overall (the oldest
datagram goes first, in O(1)), and a datagram still incomplete ``timeout``
capture seconds after its first fragment is given up, as Linux's
``ipfrag_time`` does.

Overlaps and duplicates: the first copy wins. Bytes already held are never
replaced, and the first last fragment (More Fragments clear) fixes the
datagram's length; bytes past it are ignored. This is the TCP reassembler's
policy too.

A datagram given up (evicted, expired, or left at the end of the capture) is
not lost if its start was captured: the bytes contiguous from offset 0 are
handed out with the count of bytes missing after them, so the TCP or UDP header
and what follows still decode. Without its start it is counted in ``dropped``.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

from .frames import reassembled

MAX_PAYLOAD = 65535  # bytes after the IP header (IPv6: after the Fragment header)
MAX_DATAGRAMS = 1024
MAX_BYTES = 4 << 20
TIMEOUT = 30.0  # capture seconds, Linux's default ipfrag_time


class _Datagram:
    """One datagram in progress: disjoint pieces ``[start, stop, bytes | None]`` sorted by start.

    A piece without bytes is a snap-length cut: the headers say the bytes were
    sent, the capture lacks them. It counts towards completion, not towards
    memory, and ends the bytes a datagram can hand out.
    """

    __slots__ = ("proto", "pieces", "starts", "length", "covered", "held", "first_ts", "last_ts")

    def __init__(self, ts: float) -> None:
        self.proto: int | None = None  # IPv6: from the fragment at offset 0
        self.pieces: list[list] = []
        self.starts: list[int] = []
        self.length: int | None = None  # known once the last fragment is seen
        self.covered = 0  # bytes of [0, length) accounted for, captured or cut
        self.held = 0  # captured bytes kept
        self.first_ts = self.last_ts = ts

    def add(self, start: int, data: bytes, missing: int, more: bool) -> int:
        """Keep what no earlier fragment covered; returns the captured bytes newly held."""
        cut = start + len(data)  # captured bytes end here, cut ones (``missing``) after
        stop = cut + missing
        if not more and self.length is None:
            self.length = stop
            self._trim(stop)
        if self.length is not None and stop > self.length:
            stop = self.length
            cut = min(cut, stop)
        before = self.held
        for lo, hi in self._gaps(start, stop):
            if lo < cut:
                self._insert(lo, min(hi, cut), data[lo - start : min(hi, cut) - start])
            if hi > cut:
                self._insert(max(lo, cut), hi, None)
        return self.held - before

    def _gaps(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The parts of ``[start, stop)`` no piece covers."""
        pieces, starts = self.pieces, self.starts
        i = bisect_right(starts, start)
        if i and pieces[i - 1][1] > start:
            start = pieces[i - 1][1]
        gaps = []
        while start < stop:
            if i < len(starts) and starts[i] < stop:
                if starts[i] > start:
                    gaps.append((start, starts[i]))
                start = max(start, pieces[i][1])
                i += 1
            else:
                gaps.append((start, stop))
                break
        return gaps

    def _insert(self, start: int, stop: int, chunk: bytes | None) -> None:
        i = bisect_right(self.starts, start)
        self.pieces.insert(i, [start, stop, chunk])
        self.starts.insert(i, start)
        self.covered += stop - start
        if chunk is not None:
            self.held += len(chunk)

    def _trim(self, length: int) -> None:
        """The length is now known: forget what lies past it."""
        pieces = self.pieces
        while pieces and pieces[-1][1] > length:
            start, stop, chunk = pieces.pop()
            self.starts.pop()
            self.covered -= stop - start
            if chunk is not None:
                self.held -= len(chunk)
            if start < length:
                self._insert(start, length, chunk[: length - start] if chunk is not None else None)

    def complete(self) -> bool:
        return self.length is not None and self.covered == self.length

    def head(self) -> bytes:
        """The captured bytes contiguous from offset 0."""
        run = []
        at = 0
        for start, stop, chunk in self.pieces:
            if start != at or chunk is None:
                break
            run.append(chunk)
            at = stop
        return b"".join(run)


class Reassembler:
    """Takes ``frames.decode``'s fragment tuples in capture order, gives back decoded datagrams."""

    def __init__(self, timeout: float = TIMEOUT, max_datagrams: int = MAX_DATAGRAMS,
                 max_bytes: int = MAX_BYTES) -> None:
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.pending: OrderedDict[tuple, _Datagram] = OrderedDict()  # oldest first
        self.held = 0
        self.dropped = 0  # datagrams given up with nothing decodable
        self.partial = 0  # datagrams given up but handed out from their start

    def add(self, fragment: tuple, ts: float) -> list[tuple]:
        """One fragment; returns ``decode``-style tuples for every datagram it completed or pushed out."""
        _, src, dst, proto, ident, offset, more, data, missing = fragment
        key = (src, dst, proto, ident) if len(src) == 4 else (src, dst, ident)
        out: list[tuple] = []
        pending = self.pending
        while pending and ts - next(iter(pending.values())).first_ts > self.timeout:
            self._give_up(*pending.popitem(last=False), out)
        datagram = pending.get(key)
        if offset + len(data) + missing > MAX_PAYLOAD:
            if datagram is not None:  # as Linux does: a datagram that claims to be too long is discarded
                del pending[key]
                self.held -= datagram.held
            self.dropped += 1
            return out
        if datagram is None:
            if len(pending) >= self.max_datagrams:
                self._give_up(*pending.popitem(last=False), out)
            datagram = pending[key] = _Datagram(ts)
        datagram.last_ts = ts
        if offset == 0 and datagram.proto is None:
            datagram.proto = proto
        self.held += datagram.add(offset, data, missing, more)
        if datagram.complete():
            del pending[key]
            self.held -= datagram.held
            got = self._decode(key, datagram)
            if got is not None:
                out.append(got)
        while self.held > self.max_bytes:
            self._give_up(*pending.popitem(last=False), out)
        return out

    def flush(self) -> list[tuple[float, tuple]]:
        """End of capture: what can be handed out of every datagram left, at its last fragment's time."""
        out: list[tuple[float, tuple]] = []
        while self.pending:
            key, datagram = self.pending.popitem(last=False)
            got: list[tuple] = []
            self._give_up(key, datagram, got)
            out.extend((datagram.last_ts, pkt) for pkt in got)
        return out

    def _give_up(self, key: tuple, datagram: _Datagram, out: list[tuple]) -> None:
        self.held -= datagram.held
        got = self._decode(key, datagram)
        if got is None:
            self.dropped += 1
        else:
            self.partial += 1
            out.append(got)

    @staticmethod
    def _decode(key: tuple, datagram: _Datagram) -> tuple | None:
        data = datagram.head()
        if datagram.proto is None or not data:
            return None
        known = datagram.length is not None
        length = datagram.length if known else datagram.pieces[-1][1]
        return reassembled(datagram.proto, key[0], key[1], data, length, known)
