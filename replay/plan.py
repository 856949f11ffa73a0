"""What one side of a captured session did, made into a plan a live replay can follow.

A replay needs three things from the capture: who the side said it was (its
handshake, reserved bytes and extension handshake, so the live peer negotiates the
same features), the messages it sent with their captured times (the script), and
the block bytes the session carried (to serve them, or to check what a live peer
serves). The bytes go to a spill file as the capture is read, indexed by block, so
a 256 MiB session costs a file on disk and a small index in memory, never the data.
"""
from __future__ import annotations

import bisect
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from inspector import events as ev
from inspector.capfile import CaptureError
from inspector.clients import identify
from inspector.extract import Torrent, piece_checker, wire_sizes
from inspector.pipeline import CaptureDecode
from inspector.wire import reserved_names

Block = tuple[int, int, int]  # index, begin, length


class PlanError(Exception):
    """The capture or the session cannot be replayed (one line, for the user)."""


class BlockStore:
    """Block bytes in a spill file; any byte range of a piece read back from it."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="btshark-replay-")
        self._size = 0
        self._pieces: dict[int, list[tuple[int, int, int]]] = {}  # index -> sorted (begin, end, file offset)

    def add(self, index: int, begin: int, data: bytes) -> bool:
        """Keep a block; False when it overlaps bytes already kept (the first copy wins)."""
        end = begin + len(data)
        spans = self._pieces.setdefault(index, [])
        at = bisect.bisect_left(spans, (begin,))
        if (at < len(spans) and spans[at][0] < end) or (at and spans[at - 1][1] > begin):
            return False
        os.pwrite(self._file.fileno(), data, self._size)
        spans.insert(at, (begin, end, self._size))
        self._size += len(data)
        return True

    def has(self, index: int, begin: int, length: int) -> bool:
        """Whether every byte of the range is held (no reading)."""
        at, end = begin, begin + length
        spans = self._pieces.get(index, ())
        i = max(0, bisect.bisect_right(spans, (begin, float("inf"))) - 1)
        while at < end and i < len(spans):
            b, e, _ = spans[i]
            if b > at:
                return False
            at = max(at, e)
            i += 1
        return at >= end

    def covered(self, index: int) -> int:
        """Bytes from the piece's start held without a gap."""
        end = 0
        for begin, stop, _ in self._pieces.get(index, ()):
            if begin > end:
                break
            end = stop
        return end

    def read(self, index: int, begin: int, length: int) -> bytes | None:
        """The bytes ``[begin, begin + length)`` of piece ``index``, or None unless all are held."""
        out = []
        at, want, end = begin, length, begin + length
        spans = self._pieces.get(index, ())
        i = max(0, bisect.bisect_right(spans, (begin, float("inf"))) - 1)
        while want and i < len(spans):
            b, e, off = spans[i]
            if b > at:
                return None
            if e > at:
                n = min(e, end) - at
                out.append(os.pread(self._file.fileno(), n, off + at - b))
                at += n
                want -= n
            i += 1
        return b"".join(out) if not want else None

    @property
    def pieces(self) -> list[int]:
        return sorted(self._pieces)

    @property
    def nbytes(self) -> int:
        return self._size

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class Step:
    """One message the captured side sent, ``offset`` seconds after both handshakes."""

    offset: float
    event: ev.Event


@dataclass(slots=True)
class Identity:
    """What a side said about itself in its handshakes."""

    peer_id: bytes | None = None
    reserved: bytes | None = None
    info_hash: bytes | None = None
    extension: dict = field(default_factory=dict)  # its BEP 10 handshake, as decoded

    @property
    def client(self) -> str | None:
        return identify(self.peer_id) if self.peer_id else None

    @property
    def extensions(self) -> list[str]:
        return reserved_names(self.reserved) if self.reserved else []

    @property
    def ext_names(self) -> list[str]:
        m = self.extension.get("m")
        return sorted(k for k, v in m.items() if isinstance(v, int) and v) if isinstance(m, dict) else []


@dataclass
class Plan:
    capture: str
    session: int
    side: str  # "a" or "b": the side replayed
    me: Identity
    them: Identity
    steps: list[Step]  # the replayed side's messages after its handshakes
    theirs: list[Step]  # the other side's, for the comparison
    requested: list[Block]  # blocks the replayed side asked for, first request first
    served: list[Block]  # blocks the replayed side sent
    store: BlockStore
    torrent: Torrent | None = None
    pipeline: int = 1  # the most requests the side had outstanding at once
    conflicts: list[Block] = field(default_factory=list)  # blocks captured twice with other bytes
    piece_length: int = 0
    piece_count: int = 0
    have: list[int] = field(default_factory=list)  # pieces complete in the capture: what a seeder announces
    check: Callable[[int, bytes], bool] | None = None  # a whole piece against the torrent (v1 and/or v2)
    sizes: list[int] = field(default_factory=list)  # per piece, the bytes sent of it (from the torrent)

    @property
    def info_hash(self) -> bytes:
        return self.me.info_hash  # type: ignore[return-value]

    @property
    def info_hashes(self) -> frozenset[bytes]:
        """Every name of the torrent: the .torrent's, or both captured handshakes'."""
        if self.torrent is not None:
            return self.torrent.info_hashes
        return frozenset(h for h in (self.me.info_hash, self.them.info_hash) if h is not None)

    @property
    def serves(self) -> bool:
        return bool(self.served)

    def piece_size(self, index: int) -> int:
        """The bytes of piece ``index`` a peer sends."""
        if self.sizes:
            return self.sizes[index]
        return self.piece_length

    def ext_handshake(self) -> dict:
        """The replayed side's BEP 10 handshake: its ``m`` and ``v``, as fastbencode takes them."""
        out: dict = {b"m": {k.encode(): v for k, v in (self.me.extension.get("m") or {}).items()
                            if isinstance(v, int) and 0 <= v < 256}}
        if isinstance(self.me.extension.get("v"), str):
            out[b"v"] = self.me.extension["v"].encode()
        if isinstance(self.me.extension.get("reqq"), int):
            out[b"reqq"] = self.me.extension["reqq"]
        return out

    def close(self) -> None:
        self.store.close()


def build(capture: str, session: int, side: str, torrent: Torrent | None = None) -> Plan:
    """Read ``capture`` once and plan the replay of ``side`` ("a" or "b") of ``session``."""
    mine = "ab".index(side)
    store = BlockStore()
    ids = (Identity(), Identity())
    steps: tuple[list, list] = ([], [])
    conflicts: list[Block] = []
    handshakes: list[float | None] = [None, None]
    found = None
    try:
        decode = CaptureDecode(capture, keep_payload=True)
        for record in decode:
            if record.session.id != session:
                continue
            found = record.session
            event = record.event
            kind = event.type
            if kind == "finding":
                continue
            who = ids[record.side]
            if kind == "handshake":
                who.peer_id, who.reserved, who.info_hash = event.peer_id, event.reserved, event.info_hash
                handshakes[record.side] = record.ts
                continue
            if kind == "extended" and event.ext_id == 0 and isinstance(event.data, dict) and not who.extension:
                who.extension = event.data
                continue
            if kind == "piece" and event.data is not None:
                if not event.missing and not store.add(event.index, event.begin, event.data):
                    held = store.read(event.index, event.begin, event.length)
                    if held is not None and held != event.data:
                        conflicts.append((event.index, event.begin, event.length))
                event = ev.Piece(event.index, event.begin, event.length, event.missing)  # the bytes stay on disk
            steps[record.side].append((record.ts, event))
    except CaptureError as exc:
        store.close()
        raise PlanError(str(exc)) from None
    sessions = decode.sessions
    try:
        if found is None:
            found = next((s for s in sessions if s.id == session), None)
        if found is None:
            listed = ", ".join(str(s.id) for s in sessions[:20]) or "none"
            raise PlanError(f"no session {session} in {capture} (its sessions: {listed})")
        me, them = ids[mine], ids[1 - mine]
        # MSE that selected plaintext shows its handshakes and messages: that is replayable (in
        # plaintext); with RC4 nothing was read.
        if found.encrypted and me.info_hash is None and them.info_hash is None:
            raise PlanError(f"session {session} is encrypted (MSE/PE): its messages cannot be read, so not replayed")
        if me.info_hash is None:
            raise PlanError(f"side {side} of session {session} has no captured handshake: "
                            "its peer id, info hash and reserved bytes are unknown")
        if torrent is not None and me.info_hash not in torrent.info_hashes:
            raise PlanError(f"the torrent's info hash {torrent.info_hash.hex()} is not the session's "
                            f"{me.info_hash.hex()}")
    except PlanError:
        store.close()
        raise
    start = max(t for t in handshakes if t is not None)  # both handshakes done, or ours when theirs is lost
    plan = Plan(capture, session, side, me, them,
                [Step(max(0.0, ts - start), e) for ts, e in steps[mine]],
                [Step(max(0.0, ts - start), e) for ts, e in steps[1 - mine]],
                _blocks(steps[mine], "request"), _blocks(steps[mine], "piece"), store, torrent,
                conflicts=conflicts)
    plan.pipeline = _pipeline(steps[mine], steps[1 - mine])
    _pieces(plan, steps)
    return plan


def _blocks(steps: list, kind: str) -> list[Block]:
    seen: dict[Block, None] = {}
    for _, e in steps:
        if e.type == kind:
            seen.setdefault((e.index, e.begin, e.length), None)
    return list(seen)


def _pipeline(mine: list, theirs: list) -> int:
    """The most requests outstanding at once on the captured side (answers come from ``theirs``)."""
    timeline = sorted([(ts, 0, e) for ts, e in mine if e.type in ("request", "cancel")]
                      + [(ts, 1, e) for ts, e in theirs if e.type in ("piece", "reject")], key=lambda t: t[:2])
    out: set[Block] = set()
    most = 1
    for _, _, e in timeline:
        key = (e.index, e.begin, e.length)
        if e.type == "request":
            out.add(key)
            most = max(most, len(out))
        else:
            out.discard(key)
    return most


def _pieces(plan: Plan, steps: tuple[list, list]) -> None:
    """Piece length, count and the pieces the capture holds whole (from the torrent when given)."""
    store, torrent = plan.store, plan.torrent
    if torrent is not None:
        plan.piece_length, plan.piece_count = torrent.piece_length, torrent.pieces
        check = plan.check = piece_checker(torrent)
        plan.sizes = wire_sizes(torrent)
        plan.have = [i for i in store.pieces if i < plan.piece_count
                     and (data := store.read(i, 0, plan.sizes[i])) is not None and check(i, data)]
        return
    # Without a torrent: the length is the longest gap-free run a piece starts with, the
    # count comes from a bitfield; the last piece may be shorter, and counts when every
    # byte asked of it in the capture is held.
    extent: dict[int, int] = {}
    count = 0
    for ts_events in steps:
        for _, e in ts_events:
            if e.type in ("request", "piece"):
                extent[e.index] = max(extent.get(e.index, 0), e.begin + e.length)
            elif e.type == "bitfield" and not e.missing:
                count = max(count, 8 * len(e.bits))
            elif e.type == "have":
                count = max(count, e.index + 1)
    length = max((store.covered(i) for i in store.pieces), default=0)
    count = max([count, *[i + 1 for i in extent]])
    last = max(extent, default=-1)
    plan.piece_length, plan.piece_count = length, count
    plan.have = [i for i in store.pieces if (c := store.covered(i)) and c >= extent.get(i, 0)
                 and (c == length or i == last)]
