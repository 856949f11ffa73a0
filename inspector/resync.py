"""Finding the next message boundary once the framing is lost.

After a hole whose framing cannot be known (the lost bytes may hold the end of one
message and the start of the next), and at the start of a connection whose
beginning was not captured, the next captured byte can be anywhere: inside a piece
payload, inside a length prefix, inside a bencoded body. Taking it as a message
start turns payload bytes into a length of gigabytes and loses the direction for
good. A ``Hunt`` instead holds the bytes that follow and looks for a position where
they read as a plausible message (an id and length that fit the type, fields within
what the session knows of the torrent) *and* the message after it does too. Only
then is the parser put back on the rails there; every message it reports was
confirmed by the bytes after it, or is a piece block the other side had asked for.

Positions are stream offsets counted from where the framing was lost. Known holes
inside the held bytes keep their size, so chains of messages can be followed across
them; a hole of unknown size (lost uTP packets) is a barrier no chain crosses.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from .extensions import BodyError, decode_body
from .wire import BLOCK, HANDSHAKE_PREFIX, PIECE_HEAD, U32

MAX_BLOCK = 1 << 17  # the largest block any client requests (libtorrent's limit is 128 KiB)
MAX_FOUND_LEN = MAX_BLOCK + 64  # no message found by a hunt is longer (bitfields, extended bodies too)
MAX_INDEX = 1 << 22  # piece index bound while the piece count is unknown
MAX_BEGIN = 1 << 25  # block offset bound while the piece length is unknown (32 MiB pieces)
HOLD = 1 << 20  # bytes held while hunting, per direction
MAX_RUNS = 4096  # captured runs held (each a stretch between holes), per direction
CHAIN = 4  # messages followed from a candidate before deciding
BARRIER = 1 << 40  # the size a hole of unknown size counts for: nothing reaches across it
EXPECTED_MAX = 4096  # outstanding requests remembered per direction

# A message start found by a hunt has a length prefix below MAX_FOUND_LEN, so its first
# byte is 0 and its second at most 2: the only positions worth a closer look.
# A handshake (after an MSE exchange that selected plaintext, or in a stream joined
# late) is the other thing worth stopping at.
_CANDIDATE = re.compile(rb"\x00(?=[\x00-\x02])|\x13(?=BitTorrent protocol)")

WAIT, ACCEPT, REJECT = range(3)
_OK, _BAD, _MORE, _UNSEEN = range(4)

_ONE_BYTE = frozenset((0, 1, 2, 3, 14, 15))  # choke .. not_interested, have_all, have_none
_INDEX_ONLY = frozenset((4, 13, 17))  # have, suggest, allowed_fast
_BLOCKS = frozenset((6, 8, 16))  # request, cancel, reject


@dataclass(slots=True)
class Torrent:
    """What a session has learnt about its torrent, shared by both directions' parsers:
    the bounds that make a message plausible."""

    piece_count: int | None = None  # an upper bound: 8 x the bitfield's bytes
    bitfield_bytes: int | None = None
    block: int = 1 << 14  # the block length requests use

    @property
    def max_index(self) -> int:
        return self.piece_count if self.piece_count is not None else MAX_INDEX


class Hunt:
    """The bytes of one direction since its framing was lost, and the search through them."""

    __slots__ = ("why", "starts", "runs", "items", "end", "scan", "unknown", "held", "after_head", "skipped")

    def __init__(self, why: str) -> None:
        self.why = why
        self.starts: list[int] = []  # captured runs: start positions
        self.runs: list[bytearray] = []  # and their bytes
        self.items: list[tuple[int, int, bool, Any]] = []  # start, end, is_gap, tag: what was fed
        self.end = 0
        self.scan = 0  # positions before this are rejected
        self.unknown = False  # a hole of unknown size lies behind us
        self.held = 0  # bytes in ``runs``
        # Where a requested block's payload would end had the hole ended with its piece
        # header (``_block_ends``): looked at before any other position. None: not yet asked.
        self.after_head: list[tuple[int, tuple[int, int, int]]] | None = None
        self.skipped: tuple[int, int, int] | None = None  # the block whose payload the framing was found past

    # -- input -----------------------------------------------------------------

    def add(self, data: bytes | memoryview, tag: Any) -> None:
        if not data:
            return
        end = self.end
        if self.runs and self.starts[-1] + len(self.runs[-1]) == end:
            self.runs[-1] += data
        else:
            self.starts.append(end)
            self.runs.append(bytearray(data))
        self.held += len(data)
        self.end = end + len(data)
        self.items.append((end, self.end, False, tag))

    def add_gap(self, missing: int, tag: Any) -> None:
        if missing < 0:
            self.unknown = True
            missing = BARRIER
        if missing:
            items = self.items
            if items and items[-1][2]:  # holes in a row are one hole (the latest tag stands)
                items[-1] = (items[-1][0], self.end + missing, True, tag)
            else:
                items.append((self.end, self.end + missing, True, tag))
            self.end += missing

    # -- search ----------------------------------------------------------------

    def search(self, parser: Any, ended: bool) -> int | None:
        """The first position where the framing holds again, or None (yet).

        A handshake found this way starts at the returned position too; ``is_handshake``
        tells the two apart.

        A hole that ended with a piece header leaves the block's payload looking like
        the stream: payload bytes may read as a run of plausible messages. So when the
        hole's size is known and the other side has blocks outstanding, the position
        where such a block's payload would end is tried first, and the search waits
        for it to be decided.
        """
        if self.after_head is None:
            self.after_head = self._block_ends(parser)
        while self.after_head:
            q, block = self.after_head[0]
            verdict = ACCEPT if ended and q == self.end else self._chain(q, parser, ended)
            if verdict == ACCEPT:
                self.skipped = block
                self.after_head = []
                return q
            if verdict == WAIT:
                return None
            del self.after_head[0]
        while True:
            p = self._candidate(self.scan)
            if p is None:
                # Every position so far is rejected, but a handshake prefix may be
                # arriving in pieces: only its possible start is looked at again.
                self.scan = max(self.scan, self.end - len(HANDSHAKE_PREFIX) + 1)
                self._trim()
                return None
            verdict = self._chain(p, parser, ended)
            if verdict == ACCEPT:
                return p
            if verdict == WAIT:
                self.scan = p
                self._trim()
                return None
            self.scan = p + 1

    def _block_ends(self, parser: Any) -> list[tuple[int, tuple[int, int, int]]]:
        """Positions where an outstanding block's payload ends, if the hole that lost the
        framing (of known size, first in ``items``) ended with that block's piece header."""
        items = self.items
        if not items or not items[0][2] or items[0][0] or self.unknown:
            return []
        hole = items[0][1]
        if hole < 4 + 9 or not parser.expected:
            return []
        ends: dict[int, tuple[int, int, int]] = {}
        for block in parser.expected:
            if block[2] <= MAX_BLOCK:
                ends.setdefault(hole + block[2], block)
            if len(ends) >= 8:
                break
        return sorted(ends.items())

    def is_handshake(self, p: int) -> bool:
        return self._get(p, p + len(HANDSHAKE_PREFIX)) == HANDSHAKE_PREFIX

    def replay(self, start: int) -> list[tuple[bool, Any, Any]]:
        """What was fed from ``start`` on, as it was fed: (is_gap, bytes or size, tag)."""
        out = []
        for lo, hi, is_gap, tag in self.items:
            if hi <= start:
                continue
            lo = max(lo, start)
            if is_gap:
                out.append((True, -1 if hi - lo >= BARRIER else hi - lo, tag))
            else:
                data = self._get(lo, hi)
                out.append((False, data, tag))
        return out

    def _candidate(self, pos: int) -> int | None:
        starts, runs = self.starts, self.runs
        i = max(0, bisect_right(starts, pos) - 1)
        while i < len(runs):
            start, run = starts[i], runs[i]
            off = max(0, pos - start)
            if off < len(run):
                found = _CANDIDATE.search(run, off)
                if found is not None:
                    return start + found.start()
                if run[-1] == 0 and start + len(run) == self.end:
                    return start + len(run) - 1  # its next byte decides; not here yet
            i += 1
        return None

    def _get(self, lo: int, hi: int) -> bytes | int:
        """Bytes [lo, hi) if all were captured; ``_MORE`` if not all here yet; ``_UNSEEN``."""
        if hi > self.end:
            return _MORE
        i = bisect_right(self.starts, lo) - 1
        if i < 0:
            return _UNSEEN
        start, run = self.starts[i], self.runs[i]
        if hi > start + len(run):
            return _UNSEEN
        return bytes(run[lo - start : hi - start])

    def _chain(self, p: int, parser: Any, ended: bool) -> int:
        """Follow messages from ``p``: ACCEPT, REJECT, or WAIT for more bytes."""
        if self._get(p, p + len(HANDSHAKE_PREFIX)) == HANDSHAKE_PREFIX:
            # Twenty bytes that say what they are; the handshake's fixed size places the
            # next message, and that is all a chain would add.
            return ACCEPT
        total = count = first = 0
        q = p
        for _ in range(CHAIN):
            status, score, nxt = self._message_at(q, parser)
            if status == _BAD:
                return REJECT
            if status == _MORE and not ended:
                return WAIT
            if status != _OK:  # the rest was not captured (or never will be): decide now
                return REJECT
            if q == p:
                if score < 1:
                    return REJECT
                first = score
            total += score
            count += score > 0
            if first >= 3 or (count >= 2 and total >= 3):
                return ACCEPT
            q = nxt
            if q >= self.end:
                if not ended:
                    return WAIT
                # The stream ends exactly at a message boundary: evidence too.
                return ACCEPT if q == self.end and total >= 2 else REJECT
        return REJECT

    def _message_at(self, q: int, parser: Any) -> tuple[int, int, int]:
        """(status, evidence score, next position) for a message starting at ``q``."""
        head = self._get(q, q + 5)
        if head.__class__ is int:
            if head == _MORE:
                four = self._get(q, q + 4)
                if four.__class__ is bytes and four == b"\0\0\0\0":
                    return _OK, 0, q + 4
            return head, 0, 0
        length = U32.unpack_from(head)[0]
        if length == 0:
            return _OK, 0, q + 4
        if length > MAX_FOUND_LEN:
            return _BAD, 0, 0
        nxt = q + 4 + length
        mid = head[4]
        torrent: Torrent = parser.torrent
        if mid in _ONE_BYTE:
            return (_OK, 1, nxt) if length == 1 else (_BAD, 0, 0)
        if mid in _INDEX_ONLY:
            if length != 5:
                return _BAD, 0, 0
            body = self._get(q + 5, q + 9)
            if body.__class__ is int:
                return body, 0, 0
            if U32.unpack_from(body)[0] >= torrent.max_index:
                return _BAD, 0, 0
            return _OK, 2 if torrent.piece_count else 1, nxt
        if mid in _BLOCKS:
            if length != 13:
                return _BAD, 0, 0
            body = self._get(q + 5, q + 17)
            if body.__class__ is int:
                return body, 0, 0
            index, begin, size = BLOCK.unpack_from(body)
            if not 0 < size <= MAX_BLOCK or index >= torrent.max_index or begin >= MAX_BEGIN:
                return _BAD, 0, 0
            return _OK, 2, nxt
        if mid == 7:
            size = length - 9
            if not 0 < size <= MAX_BLOCK:
                return _BAD, 0, 0
            body = self._get(q + 5, q + 13)
            if body.__class__ is int:
                return body, 0, 0
            index, begin = PIECE_HEAD.unpack_from(body)
            if index >= torrent.max_index or begin >= MAX_BEGIN:
                return _BAD, 0, 0
            if (index, begin, size) in parser.expected:
                return _OK, 3, nxt  # the other side asked for exactly this block
            return _OK, 2, nxt
        if mid == 5:
            size = length - 1
            if torrent.bitfield_bytes is not None:
                return (_OK, 2, nxt) if size == torrent.bitfield_bytes else (_BAD, 0, 0)
            return (_OK, 1, nxt) if 0 < size <= 1 << 16 else (_BAD, 0, 0)
        if mid == 9:
            return (_OK, 1, nxt) if length == 3 else (_BAD, 0, 0)
        if mid == 20:
            if length < 2:
                return _BAD, 0, 0
            body = self._get(q + 5, nxt)
            if body.__class__ is int:
                return body, 0, 0
            ext_id = body[0]
            names = parser.ext_names
            if ext_id and names and ext_id not in names:
                return _BAD, 0, 0
            try:
                decode_body("handshake" if ext_id == 0 else names.get(ext_id), body[1:])
            except BodyError:
                return _BAD, 0, 0
            return _OK, 2, nxt
        if mid in (21, 23):
            return (_OK, 1, nxt) if length == 49 else (_BAD, 0, 0)
        if mid == 22:
            return (_OK, 1, nxt) if length >= 49 and not (length - 49) % 32 else (_BAD, 0, 0)
        return _BAD, 0, 0

    def _trim(self) -> None:
        """Let go of bytes before the scan position, and of the oldest beyond ``HOLD``
        bytes or ``MAX_RUNS`` runs (their positions count as rejected)."""
        if self.held > HOLD:
            self.scan = max(self.scan, self.end - HOLD // 2)
        if len(self.runs) > MAX_RUNS:
            self.scan = max(self.scan, self.starts[-MAX_RUNS // 2])
        scan = self.scan
        i = bisect_right(self.starts, scan) - 1  # the run at or before the scan position
        drop = i + 1 if i >= 0 and self.starts[i] + len(self.runs[i]) <= scan else max(i, 0)
        if drop:  # runs wholly before the scan position
            self.held -= sum(len(run) for run in self.runs[:drop])
            del self.starts[:drop], self.runs[:drop]
        if self.runs and scan - self.starts[0] >= 1 << 16:  # a long run's rejected head
            cut = scan - self.starts[0]
            del self.runs[0][:cut]
            self.starts[0] = scan
            self.held -= cut
        items = self.items
        k = 0
        while k < len(items) and items[k][1] <= scan:
            k += 1
        if k:
            del items[:k]
