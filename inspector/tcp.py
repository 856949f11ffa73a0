"""TCP reassembly for one direction of a connection.

scapy's TCPSession zero-fills and compares sequence numbers as plain integers;
this one compares them modulo 2**32 and reports holes instead of inventing bytes.

Policy, stated once: the first copy of a byte to arrive in stream order wins.
A retransmission of bytes already delivered is dropped; a segment that overlaps
delivered or buffered bytes contributes only the bytes beyond them; segments
ahead of the next expected byte wait in a buffer bounded by bytes and by
segment count. Missing bytes become a hole (an ``int`` chunk) and delivery
resumes after it as soon as the receiver's ACK covers them (it received them,
so the capture missed them: Wireshark's "ACKed unseen segment"), or when the
buffer is over its bound, or the stream ends.

Every chunk comes with the number and time of the frame that carried its bytes
(for a hole, the frame at which it was declared), so a message keeps the frame
that completed it however long it waited.

The buffer is a sorted list of the starts of *runs* (contiguous buffered bytes),
each holding its segments in order. A segment is trimmed against the runs it
touches only and joins them at either end, so arrival in order, in reverse or at
random after a hole costs about n log n, not n**2.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import deque

from .limits import Budget

SEQ_MASK = 0xFFFFFFFF
HALF = 1 << 31

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

DEFAULT_MAX_PENDING = 4 << 20  # out-of-order bytes held per direction
DEFAULT_MAX_SEGMENTS = 65536  # and segments
_END = 1 << 62  # "everything buffered": beyond any stream offset

# A chunk is bytes to feed on, or an int: that many bytes were not captured.
Chunk = bytes | memoryview | int
# What the reassembler returns: a chunk and the number and time of its frame.
Delivery = tuple[Chunk, int, float]
# A buffered segment (or the part of one that was new): payload, cut, frame, time.
Piece = tuple[bytes | memoryview, int, int, float]


class _Run:
    """Contiguous buffered bytes ``[start, end)``, as the segments that brought them."""

    __slots__ = ("start", "end", "pieces")

    def __init__(self, start: int, end: int, piece: Piece) -> None:
        self.start = start
        self.end = end
        self.pieces: deque[Piece] = deque((piece,))


class TcpDirection:
    """Sequence space of one sender: turns segments in capture order into stream order."""

    __slots__ = (
        "next_seq", "offset", "fin_offset", "pending", "pending_bytes", "pending_segments",
        "max_pending", "max_segments", "retransmissions", "overlaps", "holes", "hole_bytes", "acked",
        "seen_end", "_starts", "budget", "limit_hit",
    )

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING, max_segments: int = DEFAULT_MAX_SEGMENTS,
                 budget: Budget | None = None) -> None:
        self.next_seq: int | None = None
        self.offset = 0  # stream bytes delivered or declared missing
        self.fin_offset: int | None = None
        self.pending: dict[int, _Run] = {}  # run start -> run, all ahead of offset
        self._starts: list[int] = []  # the runs' starts, sorted
        self.pending_bytes = 0
        self.pending_segments = 0
        self.max_pending = max_pending
        self.max_segments = max_segments
        self.retransmissions = 0
        self.overlaps = 0
        self.holes = 0
        self.hole_bytes = 0
        self.acked = 0  # highest stream offset the receiver acknowledged
        self.seen_end = 0  # highest stream offset a captured segment reached
        self.budget = budget  # out-of-order bytes over all flows, shared
        self.limit_hit: str | None = None  # the bound that last forced buffered bytes out: "ooo", "ooo_total"

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

    def segment(self, seq: int, payload: bytes | memoryview, cut: int = 0, fin: bool = False,
                frame: int = 0, ts: float = 0.0) -> tuple[Delivery, ...] | list[Delivery]:
        """One captured segment; returns the chunks it makes deliverable, in order.

        ``cut`` counts payload bytes the capture did not keep (snap length).
        """
        size = len(payload) + cut
        nxt = self.next_seq
        if nxt is None:
            if not size and not fin:
                return ()
            self.next_seq = nxt = seq
        delta = (seq - nxt) & SEQ_MASK
        if fin and self.fin_offset is None:
            end = self.offset + (delta if delta < HALF else delta - (1 << 32)) + size
            if end >= self.offset:  # a FIN inside bytes already delivered is forged: later bytes came
                self.fin_offset = end
        if seq == nxt:
            if not size:
                return ()
            self.next_seq = (nxt + size) & SEQ_MASK
            self.offset += size
            if self.offset > self.seen_end:
                self.seen_end = self.offset
            if not cut and not self.pending:
                return ((payload, frame, ts),)
            out: list[Delivery] = [(payload, frame, ts)]
            if cut:
                out.append((cut, frame, ts))
                self._hole(cut)
            self._release(out, self.acked, frame, ts)
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
            return self.segment(nxt, payload, cut, frame=frame, ts=ts)
        if not size:
            return ()
        start = self.offset + delta
        if start + size > self.seen_end:
            self.seen_end = start + size
        held = self.pending_bytes
        self._hold(start, payload, cut, frame, ts)
        budget = self.budget
        if budget is not None:
            budget.used += self.pending_bytes - held
            if budget.used > budget.limit:
                self.limit_hit = "ooo_total"
                return self._give_up(frame, ts)
        if self.pending_bytes > self.max_pending or self.pending_segments > self.max_segments:
            self.limit_hit = "ooo"
            return self._give_up(frame, ts)
        if self.acked > self.offset:  # bytes before it were acknowledged, so never captured
            out = []
            self._release(out, self.acked, frame, ts)
            return out
        return ()

    def ack(self, ack: int, frame: int = 0, ts: float = 0.0) -> list[Delivery]:
        """The other direction acknowledged this one's bytes up to ``ack`` (raw 32 bits).

        Missing bytes below it with later bytes waiting are holes now; without
        waiting bytes the offset is only remembered (a FIN's sequence number and
        losses at the tail make the ACK alone a poor witness).
        """
        nxt = self.next_seq
        if nxt is None:
            return []
        delta = (ack - nxt) & SEQ_MASK
        if delta >= HALF:  # behind what was delivered
            return []
        acked = self.offset + delta
        # ``consume`` (the hot path) moves ``offset`` without ``seen_end``.
        if acked <= self.acked or acked > max(self.seen_end, self.offset) + self.max_pending:
            return []
        self.acked = acked
        out: list[Delivery] = []
        if self.pending:
            self._release(out, acked, frame, ts)
        return out

    def flush(self, frame: int = 0, ts: float = 0.0) -> list[Delivery]:
        """The stream ends: the bytes missing before the buffered segments, and before
        a FIN already seen, become holes."""
        out = self._give_up(frame, ts)
        if self.fin_offset is not None and self.fin_offset > self.offset:
            missing = self.fin_offset - self.offset
            out.append((missing, frame, ts))
            self._hole(missing)
            self._advance(missing)
        return out

    def _give_up(self, frame: int, ts: float) -> list[Delivery]:
        """Give up on the bytes missing before the buffered segments (bound hit, or end)."""
        out: list[Delivery] = []
        self._release(out, _END, frame, ts)
        return out

    def _hold(self, start: int, payload: bytes | memoryview, cut: int, frame: int, ts: float) -> None:
        """Buffer a segment ahead of the stream; bytes already buffered arrived first and win.

        Only the runs the segment touches are looked at: the one starting at or
        before it, and those starting inside it.
        """
        end = start + len(payload) + cut
        starts, runs = self._starts, self.pending
        if starts and start >= runs[starts[-1]].end:  # the usual case after a loss: beyond all
            self.pending_bytes += end - start
            self.pending_segments += 1
            last = runs[starts[-1]]
            if start == last.end:
                last.pieces.append((payload, cut, frame, ts))
                last.end = end
            else:
                starts.append(start)
                runs[start] = _Run(start, end, (payload, cut, frame, ts))
            return
        i = bisect_right(starts, start) - 1
        if i < 0 or runs[starts[i]].end < start:
            i += 1
        # Runs are never adjacent: those from index i that start by ``end`` all touch
        # the segment. Walk them, noting the segment's bytes between them (new ones).
        parts: list[_Run | tuple[int, int]] = []
        lo, j = start, i
        while j < len(starts) and starts[j] <= end:
            run = runs[starts[j]]
            if run.start > lo:
                parts.append((lo, run.start))
            parts.append(run)
            lo = max(lo, run.end)
            j += 1
        if lo < end:
            parts.append((lo, end))
        gaps = [p for p in parts if p.__class__ is tuple]
        if not gaps:
            self.retransmissions += 1
            return
        if gaps != [(start, end)]:
            self.overlaps += 1
        n = len(payload)
        for k, part in enumerate(parts):
            if part.__class__ is tuple:
                a, b = part[0] - start, part[1] - start
                parts[k] = (payload[a : min(b, n)], max(0, b - max(a, n)), frame, ts)
                self.pending_bytes += b - a
                self.pending_segments += 1
        if i == j:  # touches no run: a run of its own
            starts.insert(i, start)
            runs[start] = _Run(start, end, parts[0])
            return
        # With its new bytes the segment joins runs i..j-1 into one: the longest
        # run takes in the others (smaller into larger keeps merging n log n).
        merged = [p for p in parts if p.__class__ is _Run]
        keep = max(merged, key=lambda r: len(r.pieces))
        at = parts.index(keep)
        for part in reversed(parts[:at]):
            if part.__class__ is _Run:
                keep.pieces.extendleft(reversed(part.pieces))
            else:
                keep.pieces.appendleft(part)
        for part in parts[at + 1 :]:
            if part.__class__ is _Run:
                keep.pieces.extend(part.pieces)
            else:
                keep.pieces.append(part)
        for s in starts[i:j]:
            del runs[s]
        keep.start, keep.end = min(start, merged[0].start), max(end, merged[-1].end)
        starts[i:j] = [keep.start]
        runs[keep.start] = keep

    def _release(self, out: list[Delivery], upto: int, frame: int, ts: float) -> None:
        """Deliver the buffered runs that are now in order; the missing bytes before
        them up to ``upto`` are holes, declared at this frame."""
        starts, runs = self._starts, self.pending
        held = self.pending_bytes
        done = 0
        for start in starts:
            if start > self.offset:
                limit = min(start, upto)
                if limit > self.offset:
                    missing = limit - self.offset
                    out.append((missing, frame, ts))
                    self._hole(missing)
                    self._advance(missing)
                if start > self.offset:
                    break
            run = runs.pop(start)
            done += 1
            skip = self.offset - start
            for piece in run.pieces:
                payload, cut, piece_frame, piece_ts = piece
                size = len(payload) + cut
                self.pending_bytes -= size
                self.pending_segments -= 1
                if skip >= size:
                    skip -= size
                    self.retransmissions += 1
                    continue
                if skip:
                    self.overlaps += 1
                if skip < len(payload):
                    out.append((payload[skip:] if skip else payload, piece_frame, piece_ts))
                    self._advance(len(payload) - skip)
                    skip = 0
                else:
                    skip -= len(payload)
                if cut - skip:
                    out.append((cut - skip, piece_frame, piece_ts))
                    self._hole(cut - skip)
                    self._advance(cut - skip)
                skip = 0
        del starts[:done]
        if self.budget is not None:
            self.budget.used -= held - self.pending_bytes

    def drop(self) -> None:
        """The flow is forgotten: what it buffered no longer counts against the budget."""
        if self.budget is not None:
            self.budget.used -= self.pending_bytes
        self.pending.clear()
        self._starts.clear()
        self.pending_bytes = self.pending_segments = 0

    def _advance(self, count: int) -> None:
        self.offset += count
        self.next_seq = ((self.next_seq or 0) + count) & SEQ_MASK

    def _hole(self, count: int) -> None:
        self.holes += 1
        self.hole_bytes += count
