"""What is known of a torrent's pieces, for the conformance checks: how many there are,
and whether the captured blocks of one hash right.

The count comes from a .torrent (``--torrent``) or from the info dictionary a
ut_metadata exchange in the capture carries (BEP 9), checked against the info hash
before it is believed. Hash checks put pieces together from blocks of any session of
the torrent, within a memory budget: a lossy capture leaves some pieces unfinished for
good, and those must not hold memory for ever.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import fastbencode

if TYPE_CHECKING:
    from .extract import Torrent

MAX_ASSEMBLING = 64 << 20  # bytes of unfinished pieces held for the hash check, all sessions of a torrent


def torrent_facts(torrent: Torrent) -> dict[bytes, PieceFacts]:
    """A .torrent (``inspector.extract.read_torrent``) as the facts its sessions are checked against."""
    from .extract import piece_checker, wire_sizes

    sizes = wire_sizes(torrent)
    facts = PieceFacts(torrent.pieces, piece_checker(torrent), sizes.__getitem__)
    return {info_hash: facts for info_hash in torrent.info_hashes}


METADATA_PIECE = 16 * 1024  # BEP 9
MAX_METADATA = 16 << 20  # an info dictionary larger than this is not put together


class Metadata:
    """A torrent's info dictionary as ut_metadata pieces bring it (BEP 9), checked against
    the info hash: what a peer that knows it would count the pieces by."""

    def __init__(self) -> None:
        self.pieces: dict[int, bytes] = {}
        self.done = False

    def add(self, piece: object, total: object, data: bytes, info_hash: bytes | None) -> int | None:
        """A data message's piece; the torrent's piece count once the whole dictionary is in and hashes right."""
        if self.done or info_hash is None or not isinstance(piece, int) or not isinstance(total, int):
            return None
        if not 0 < total <= MAX_METADATA or piece < 0 or piece * METADATA_PIECE >= total:
            return None
        self.pieces[piece] = data
        if sum(len(d) for d in self.pieces.values()) < total:
            return None
        info = b"".join(self.pieces[i] for i in sorted(self.pieces))[:total]
        self.done = True
        import hashlib  # here, not at the top: OpenSSL costs every read 4 MB it rarely needs

        if hashlib.sha1(info).digest() != info_hash and hashlib.sha256(info).digest()[:20] != info_hash:
            return None
        return count_from_info(info)


def count_from_info(info: bytes) -> int | None:
    """The piece count an info dictionary gives: its v1 hashes, else its v2 file tree."""
    try:
        meta = fastbencode.bdecode(info)
        pieces, piece_length = meta.get(b"pieces"), meta[b"piece length"]
        if isinstance(pieces, bytes) and pieces and len(pieces) % 20 == 0:
            return len(pieces) // 20
        count, stack = 0, [meta[b"file tree"]]
        while stack:
            node = stack.pop()
            if b"" in node:
                count += -(-node[b""][b"length"] // piece_length)
            else:
                stack.extend(node.values())
        return count or None
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError):
        return None


class _Assembly:
    """One piece being put together: its bytes, and the byte ranges captured so far."""

    __slots__ = ("buf", "spans", "senders")

    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)
        self.spans: list[list[int]] = []  # sorted, disjoint [start, end) ranges
        self.senders: set[str] = set()  # who sent its blocks: a bad hash may be any one's doing

    def add(self, begin: int, data: bytes) -> bool:
        """Put a block in; whether the piece is now whole."""
        end = begin + len(data)
        self.buf[begin:end] = data
        merged, spans = [begin, end], []
        for span in self.spans:
            if span[1] < merged[0] or span[0] > merged[1]:
                spans.append(span)
            else:
                merged = [min(span[0], merged[0]), max(span[1], merged[1])]
        spans.append(merged)
        spans.sort()
        self.spans = spans
        return spans == [[0, len(self.buf)]]


@dataclass(slots=True)
class PieceFacts:
    """What is known of a torrent's pieces: their count, and, when its .torrent is given,
    ``check`` (a piece's bytes against its hashes) and ``size`` (a piece's bytes on the wire)."""

    count: int
    check: Callable[[int, bytearray], bool] | None = None  # extract.piece_checker takes any bytes-like
    size: Callable[[int], int] = lambda index: 0
    assembling: dict[int, _Assembly] = field(default_factory=dict)
    checked: int = 0  # pieces put together and hash-checked
    held: int = 0  # bytes of the pieces in ``assembling`` (a lossy capture leaves some unfinished for good)

    def add_block(self, index: int, begin: int, data: bytes, sender: str) -> tuple[bool, set[str]] | None:
        """A captured block from ``sender``; once all the piece's bytes are in, its verdict
        and who sent them, else None."""
        if self.check is None or not 0 <= index < self.count:
            return None
        size = self.size(index)
        if begin < 0 or begin + len(data) > size or not data:
            return None  # not of this piece: a bad_index or a piece that is no piece, not a hash to check
        piece = self.assembling.get(index)
        if piece is None:
            if size > MAX_ASSEMBLING:
                return None  # a piece larger than the whole budget goes unchecked
            while self.held + size > MAX_ASSEMBLING:  # the oldest unfinished pieces go unchecked
                self.held -= len(self.assembling.pop(next(iter(self.assembling))).buf)
            piece = self.assembling[index] = _Assembly(size)
            self.held += size
        piece.senders.add(sender)
        if not piece.add(begin, data):
            return None
        del self.assembling[index]
        self.held -= size
        self.checked += 1
        return self.check(index, piece.buf), piece.senders  # the buffer itself: it is let go of here
