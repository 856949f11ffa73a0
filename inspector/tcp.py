"""TCP reassembly for one direction of a connection.

scapy's TCPSession zero-fills and compares sequence numbers as plain integers;
this one compares them modulo 2**32 and reports holes instead of inventing bytes.

Policy, stated once: the first copy of a byte to arrive in stream order wins.
A retransmission of bytes already delivered is dropped; a segment that overlaps
delivered bytes contributes only the bytes beyond them; segments ahead of the
next expected byte wait in a bounded buffer. When that buffer is over its bound,
or the stream ends, the bytes still missing become a hole (an ``int`` chunk) and
delivery resumes after it.
"""
from __future__ import annotations

import heapq

SEQ_MASK = 0xFFFFFFFF
HALF = 1 << 31

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

DEFAULT_MAX_PENDING = 4 << 20  # out-of-order bytes held per direction

# A chunk is bytes to feed on, or an int: that many bytes were not captured.
Chunk = bytes | memoryview | int


class TcpDirection:
    """Sequence space of one sender: turns segments in capture order into stream order."""

    __slots__ = (
        "next_seq", "offset", "fin_offset", "midstream", "pending", "pending_bytes",
        "max_pending", "retransmissions", "overlaps", "holes", "hole_bytes", "_order",
    )

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.next_seq: int | None = None
        self.offset = 0  # stream bytes delivered or declared missing
        self.fin_offset: int | None = None
        self.midstream = False  # the connection's start was not captured
        self.pending: list[tuple[int, int, bytes | memoryview, int]] = []  # heap: offset, order, bytes, cut
        self.pending_bytes = 0
        self.max_pending = max_pending
        self.retransmissions = 0
        self.overlaps = 0
        self.holes = 0
        self.hole_bytes = 0
        self._order = 0

    @property
    def finished(self) -> bool:
        return self.fin_offset is not None and self.offset >= self.fin_offset and not self.pending

    def consume(self, size: int) -> None:
        """The caller took the segment at ``next_seq`` itself (nothing was pending)."""
        self.next_seq = (self.next_seq + size) & SEQ_MASK  # type: ignore[operator]
        self.offset += size

    def syn(self, seq: int) -> None:
        if self.next_seq is None:
            self.next_seq = (seq + 1) & SEQ_MASK

    def segment(self, seq: int, payload: bytes | memoryview, cut: int = 0, fin: bool = False) -> tuple[Chunk, ...] | list[Chunk]:
        """One captured segment; returns the chunks it makes deliverable, in order.

        ``cut`` counts payload bytes the capture did not keep (snap length).
        """
        size = len(payload) + cut
        nxt = self.next_seq
        if nxt is None:
            if not size and not fin:
                return ()
            self.next_seq = nxt = seq
            self.midstream = True
        delta = (seq - nxt) & SEQ_MASK
        if fin and self.fin_offset is None:
            self.fin_offset = self.offset + (delta if delta < HALF else delta - (1 << 32)) + size
        if seq == nxt:
            if not size:
                return ()
            self.next_seq = (nxt + size) & SEQ_MASK
            self.offset += size
            if not cut and not self.pending:
                return (payload,)
            out: list[Chunk] = [payload, cut] if cut else [payload]
            if cut:
                self._hole(cut)
            self._drain(out)
            return out
        if delta >= HALF:  # starts before the next expected byte
            behind = (1 << 32) - delta
            if behind >= size:
                if size:
                    self.retransmissions += 1
                return ()
            self.overlaps += 1
            if behind >= len(payload):
                payload, cut = b"", size - behind
            else:
                payload = payload[behind:]
            return self.segment(nxt, payload, cut)
        if size:
            self._hold(self.offset + delta, payload, cut)
            if self.pending_bytes > self.max_pending:
                return self._give_up()
        return ()

    def flush(self) -> list[Chunk]:
        """The stream ends: the bytes missing before the buffered segments, and before
        a FIN already seen, become holes."""
        out = self._give_up()
        if self.fin_offset is not None and self.fin_offset > self.offset:
            missing = self.fin_offset - self.offset
            out.append(missing)
            self._hole(missing)
            self._advance(missing)
        return out

    def _give_up(self) -> list[Chunk]:
        """Give up on the bytes missing before the buffered segments (bound hit, or end)."""
        out: list[Chunk] = []
        while self.pending:
            start = self.pending[0][0]
            if start > self.offset:
                missing = start - self.offset
                out.append(missing)
                self._hole(missing)
                self._advance(missing)
            self._drain(out)
        return out

    def _hold(self, start: int, payload: bytes | memoryview, cut: int) -> None:
        """Buffer a segment ahead of the stream; bytes already buffered arrived first and win."""
        size = len(payload) + cut
        parts = [(start, start + size)]
        for other, _, other_payload, other_cut in self.pending:
            other_end = other + len(other_payload) + other_cut
            parts = [(a, b) for lo, hi in parts for a, b in ((lo, min(hi, other)), (max(lo, other_end), hi)) if a < b]
            if not parts:
                self.retransmissions += 1
                return
        if parts != [(start, start + size)]:
            self.overlaps += 1
        for lo, hi in parts:
            a, b = lo - start, hi - start
            piece, piece_cut = payload[a : min(b, len(payload))], max(0, b - max(a, len(payload)))
            heapq.heappush(self.pending, (lo, self._order, piece, piece_cut))
            self._order += 1
            self.pending_bytes += hi - lo

    def _drain(self, out: list[Chunk]) -> None:
        pending = self.pending
        while pending and pending[0][0] <= self.offset:
            start, _, payload, cut = heapq.heappop(pending)
            self.pending_bytes -= len(payload) + cut
            skip = self.offset - start
            if skip >= len(payload) + cut:
                self.retransmissions += 1
                continue
            if skip:
                self.overlaps += 1
            if skip < len(payload):
                out.append(payload[skip:] if skip else payload)
                self._advance(len(payload) - skip)
                skip = 0
            else:
                skip -= len(payload)
            if cut - skip:
                out.append(cut - skip)
                self._hole(cut - skip)
                self._advance(cut - skip)

    def _advance(self, count: int) -> None:
        self.offset += count
        self.next_seq = ((self.next_seq or 0) + count) & SEQ_MASK

    def _hole(self, count: int) -> None:
        self.holes += 1
        self.hole_bytes += count
