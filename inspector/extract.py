"""``btshark extract``: a torrent's files rebuilt from the piece messages a capture holds.

A bug report's capture often carries the data that went wrong; getting it back out,
piece by piece and checked against the ``.torrent``, says which pieces the capture
really holds and whether what it holds is right.

* Hashes: a v1 piece against its SHA-1, a v2 (BEP 52) piece against its file's merkle
  tree (:mod:`.merkle`); a hybrid torrent's pieces against both, and a piece the two
  disagree about fails. The .torrent is read with fastbencode: no maintained Python
  .torrent reader handles v2 (torf is v1 only; libtorrent's bindings do, but they are
  a test-only dependency here).
* Layout: pieces are numbered over the files end to end. In v2 every file starts on a
  piece boundary (a hybrid torrent's v1 pad files, ``attr: p``, make the same layout).
  Pad bytes need not be captured (clients do not send blocks that are all padding):
  they count as the zeros they are. Pad files are never written.
* Sessions: every session whose handshakes name the torrent: by the v1 SHA-1 info hash
  or the v2 SHA-256 one truncated to 20 bytes (peers of a hybrid torrent use either,
  even the two sides of one connection).
* Memory: blocks go straight to their place in a sparse work file the size of the
  torrent. What stays in memory is per piece (how far from its start bytes were
  captured without a gap, the first and last frame that gave it bytes), plus the ranges
  captured past a gap while a piece has one.
* A block seen again with different bytes, from any session, is a conflict and is
  reported. The first bytes stay in the work file, the later ones go to a spill file;
  a piece with conflicts is verified only if one of its versions hashes right (the
  first bytes, each later block alone over them, or all later blocks in order), and
  that version is the one written.

A piece counts only when every byte of it was captured and its hashes match; a file
is written only when all its pieces do. Nothing is zero-filled into a file.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import fastbencode

from . import merkle
from .pipeline import CaptureDecode
from .session import Session

MAX_LISTED = 1000  # conflicts listed one by one; past this they are only counted
MAX_VERSIONS = 8  # later versions of a piece's blocks kept for its hash check to choose from


class ExtractError(Exception):
    """The torrent or the output folder cannot be used (one line, for the user)."""


@dataclass(frozen=True, slots=True)
class File:
    """A file of the torrent, placed in the pieces' byte space."""

    parts: tuple[str, ...]  # its path under the output folder
    offset: int
    length: int
    pad: bool = False  # a v1 pad file (BEP 47): zeros, never written
    root: bytes | None = None  # v2 pieces root (files that are not empty)
    layer: tuple[bytes, ...] = ()  # v2 piece layer (files longer than a piece)


@dataclass(frozen=True)
class Torrent:
    info_hash: bytes  # the one a v1 handshake carries; a v2-only torrent's truncated SHA-256 one
    info_hashes: frozenset[bytes]  # every info hash a session of this torrent may carry
    name: str
    piece_length: int
    length: int  # the pieces' byte space: files end to end, padded to whole pieces in v2
    hashes: tuple[bytes, ...]  # v1 SHA-1 per piece; empty for a v2-only torrent
    files: tuple[File, ...]

    @property
    def pieces(self) -> int:
        return -(-self.length // self.piece_length)

    def piece_size(self, index: int) -> int:
        return min(self.piece_length, self.length - index * self.piece_length)


def _part(raw: object) -> str:
    """One path component, refused when it could leave the output folder."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise ExtractError(f"the torrent names an unsafe path component {text!r}")
    return text


def _length(raw: object) -> int:
    if not isinstance(raw, int) or raw < 0:
        raise ValueError("a file length is not a count of bytes")
    return raw


def read_torrent(path: str | os.PathLike) -> Torrent:
    try:
        meta = fastbencode.bdecode(Path(path).read_bytes())
        info = meta[b"info"]
        name = _part(info[b"name"])
        piece_length = info[b"piece length"]
        if not isinstance(piece_length, int) or piece_length <= 0:
            raise ValueError("no piece length")
        encoded = fastbencode.bencode(info)
        v1 = _v1_files(info, name, piece_length) if b"pieces" in info else None
        v2 = (_v2_files(info, piece_length, meta.get(b"piece layers", {}))
              if info.get(b"meta version") == 2 and b"file tree" in info else None)
    except OSError as exc:
        raise ExtractError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        raise ExtractError(f"{path} is not a .torrent file (v1, v2 or hybrid)") from None
    if v1 is None and v2 is None:
        raise ExtractError(f"{path} has neither v1 piece hashes nor a v2 file tree")
    v1_hash, v2_hash = hashlib.sha1(encoded).digest(), hashlib.sha256(encoded).digest()[:20]
    if v1 is not None:
        files, hashes, single = v1
        if v2 is not None:
            files = _hybrid(files, v2, piece_length)
        length = sum(f.length for f in files)
    else:
        files, hashes, single = v2, (), len(v2) == 1 and len(v2[0].parts) == 1
        length = -(-max((f.offset + f.length for f in files), default=0) // piece_length) * piece_length
    if not single:
        files = tuple(replace(f, parts=(name, *f.parts)) for f in files)
    named = frozenset(h for h, there in ((v1_hash, v1), (v2_hash, v2)) if there is not None)
    return Torrent(v1_hash if v1 is not None else v2_hash, named, name, piece_length, length, hashes, files)


def _v1_files(info: dict, name: str, piece_length: int) -> tuple[tuple[File, ...], tuple[bytes, ...], bool]:
    """The v1 files in piece space (paths under the torrent's folder), the SHA-1 of each piece,
    and whether it is a single-file torrent (its one path: the torrent's name)."""
    files: list[File] = []
    if b"files" in info:
        offset = 0
        for entry in info[b"files"]:
            if not entry[b"path"]:
                raise ValueError("a file without a path")
            length = _length(entry[b"length"])
            pad = b"p" in entry.get(b"attr", b"")
            files.append(File(tuple(_part(p) for p in entry[b"path"]), offset, length, pad))
            offset += length
    else:
        files.append(File((name,), 0, _length(info[b"length"])))
    pieces = info[b"pieces"]
    length = sum(f.length for f in files)
    if not isinstance(pieces, bytes) or len(pieces) != 20 * -(-length // piece_length):
        raise ExtractError("the torrent's piece hashes do not match its length")
    return tuple(files), tuple(pieces[i : i + 20] for i in range(0, len(pieces), 20)), b"files" not in info


def _v2_files(info: dict, piece_length: int, layers: dict) -> tuple[File, ...]:
    """The v2 file tree in piece space (each file from a piece boundary; paths as in the tree),
    with each file's hashes."""
    if piece_length < merkle.BLOCK or piece_length & (piece_length - 1):
        raise ExtractError(f"a v2 torrent's piece length must be a power of two of 16 KiB or more, not {piece_length}")
    files: list[File] = []
    offset = 0
    stack: list[tuple[tuple[str, ...], dict]] = [((), info[b"file tree"])]
    while stack:  # depth first, keys in order: the order BEP 52 numbers the pieces in
        parts, node = stack.pop()
        if not isinstance(node, dict) or not node:
            raise ValueError("a file tree node is not a dictionary")
        if b"" not in node or not parts:
            stack.extend(((*parts, _part(key)), node[key]) for key in sorted(node, reverse=True))
            continue
        if len(node) != 1:
            raise ValueError("a file tree node is a file and a directory")
        length = _length(node[b""][b"length"])
        if not length:
            files.append(File(parts, offset, 0))
            continue
        root = node[b""][b"pieces root"]
        if not isinstance(root, bytes) or len(root) != 32:
            raise ValueError("a pieces root is not a SHA-256")
        count = -(-length // piece_length)
        layer: tuple[bytes, ...] = ()
        if count > 1:
            raw = layers.get(root)
            if not isinstance(raw, bytes) or len(raw) != 32 * count:
                raise ExtractError(f"the torrent lacks the piece layer of {'/'.join(parts)}")
            layer = tuple(raw[i : i + 32] for i in range(0, len(raw), 32))
            if merkle.layer_root(layer, piece_length) != root:
                raise ExtractError(f"the torrent's piece layer of {'/'.join(parts)} does not hash to its pieces root")
        files.append(File(parts, offset, length, root=root, layer=layer))
        offset += count * piece_length
    return tuple(files)


def _hybrid(v1: tuple[File, ...], v2: tuple[File, ...], piece_length: int) -> tuple[File, ...]:
    """The v1 layout (its pad files too) with each file's v2 hashes; both must describe the same files."""
    data = [f for f in v1 if not f.pad]
    if [(f.parts, f.length) for f in data] != [(f.parts, f.length) for f in v2]:
        raise ExtractError("the torrent's v1 file list and v2 file tree differ")
    if any(f.length and f.offset % piece_length for f in data):
        raise ExtractError("the torrent's v1 files do not each start on a piece boundary, as v2 needs")
    hashes = iter(v2)
    return tuple(f if f.pad else replace(f, root=(h := next(hashes)).root, layer=h.layer) for f in v1)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A block whose bytes differ from bytes captured before for the same place."""

    piece: int
    begin: int
    length: int
    frame: int  # the frame that completed the later block
    earlier: tuple[int, int]  # first and last frame that gave the piece bytes before it


@dataclass
class Result:
    verified: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # not every byte captured
    bad: list[int] = field(default_factory=list)  # captured, but no version of it hashes right
    split: list[int] = field(default_factory=list)  # captured, and v1 and v2 hashes disagree (hybrid)
    conflicts: list[Conflict] = field(default_factory=list)  # the first MAX_LISTED
    unlisted: int = 0  # conflicts past those
    written: list[Path] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # files not written


def extract(capture: str, torrent: Torrent, outdir: Path) -> Result:
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=outdir) as work, tempfile.TemporaryFile(dir=outdir) as spill:
        work.truncate(torrent.length)
        store = _Store(torrent, work, spill)
        for record in CaptureDecode(capture, keep_payload=True):
            event = record.event
            if event.type == "piece" and event.data is not None and _ours(record.session, torrent):
                store.add(event.index, event.begin, event.data, record.frame)
        result = Result(conflicts=store.conflicts, unlisted=store.unlisted)
        sorts = {_VERIFIED: result.verified, _MISSING: result.missing, _BAD: result.bad, _SPLIT: result.split}
        for index, spans in enumerate(_spans(torrent)):
            sorts[store.check(index, spans)].append(index)
        _write_files(work, torrent, outdir, set(result.verified), result)
    return result


def _ours(session: Session, torrent: Torrent) -> bool:
    """Whether the session's handshakes name the torrent (and nothing else)."""
    named = {side.info_hash for side in session.sides if side.info_hash is not None}
    return bool(named) and named <= torrent.info_hashes


def _spans(torrent: Torrent) -> Iterator[list[tuple[File, int, int]]]:
    """For each piece in order, the file bytes in it: (file, start, end) within the piece; no pad files."""
    size = torrent.piece_length
    index, here = 0, []
    for f in torrent.files:
        if f.pad or not f.length:
            continue
        for i in range(f.offset // size, (f.offset + f.length - 1) // size + 1):
            while index < i:
                yield here
                index, here = index + 1, []
            here.append((f, max(f.offset - i * size, 0), min(f.offset + f.length - i * size, size)))
    while index < torrent.pieces:
        yield here
        index, here = index + 1, []


_VERIFIED, _MISSING, _BAD, _SPLIT = range(4)


class _Store:
    """The work file, and which of its bytes the capture gave (each piece's reach from its start,
    ranges past a gap while it has one, and later versions of bytes that differ)."""

    def __init__(self, torrent: Torrent, work: BinaryIO, spill: BinaryIO) -> None:
        self.torrent, self.work, self.spill = torrent, work, spill
        self.reach = array("Q", bytes(8 * torrent.pieces))
        self.islands: dict[int, list[tuple[int, int]]] = {}
        self.frames = array("Q", bytes(16 * torrent.pieces))  # first and last frame per piece; 0: none yet
        self.versions: dict[int, list[tuple[int, int, int]]] = {}  # piece -> (begin, spill offset, length)
        self.conflicts: list[Conflict] = []
        self.unlisted = 0

    def _read(self, offset: int, size: int) -> bytes:
        self.work.seek(offset)
        return self.work.read(size)

    def _captured(self, index: int, begin: int, end: int) -> list[tuple[int, int]]:
        """The parts of [begin, end) of a piece captured before, in order."""
        ranges = [(0, self.reach[index]), *self.islands.get(index, ())]
        return [(max(s, begin), min(e, end)) for s, e in ranges if s < end and e > begin]

    def add(self, index: int, begin: int, data: bytes, frame: int) -> None:
        t = self.torrent
        end = begin + len(data)
        if index >= t.pieces or not data or end > t.piece_size(index):
            return
        base = index * t.piece_length
        before = self._captured(index, begin, end)
        if any(self._read(base + s, e - s) != data[s - begin : e - begin] for s, e in before):
            self._conflict(index, begin, data, frame)
        at = begin
        for s, e in [*before, (end, end)]:  # write only what is new: the first bytes stay
            if s > at:
                self.work.seek(base + at)
                self.work.write(data[at - begin : s - begin])
            at = max(at, e)
        self._mark(index, begin, end)
        if not self.frames[2 * index]:
            self.frames[2 * index] = frame
        self.frames[2 * index + 1] = frame

    def _mark(self, index: int, begin: int, end: int) -> None:
        reach = self.reach[index]
        rest: list[tuple[int, int]] = []
        for s, e in sorted([*self.islands.pop(index, ()), (begin, end)]):
            if s <= reach:
                reach = max(reach, e)
            elif rest and s <= rest[-1][1]:
                rest[-1] = (rest[-1][0], max(rest[-1][1], e))
            else:
                rest.append((s, e))
        self.reach[index] = reach
        if rest:
            self.islands[index] = rest

    def _conflict(self, index: int, begin: int, data: bytes, frame: int) -> None:
        if len(self.conflicts) < MAX_LISTED:
            earlier = (self.frames[2 * index], self.frames[2 * index + 1])
            self.conflicts.append(Conflict(index, begin, len(data), frame, earlier))
        else:
            self.unlisted += 1
        kept = self.versions.setdefault(index, [])
        if len(kept) < MAX_VERSIONS:
            offset = self.spill.seek(0, os.SEEK_END)
            self.spill.write(data)
            kept.append((begin, offset, len(data)))

    def _covered(self, index: int, start: int, end: int) -> bool:
        return end <= self.reach[index] or any(s <= start and end <= e for s, e in self.islands.get(index, ()))

    def _versions(self, index: int, piece: bytes) -> Iterator[bytes]:
        """The piece as first captured, with each later block alone, then with all of them in order."""
        yield piece
        kept = self.versions.get(index, [])
        blocks = []
        for begin, offset, length in kept:
            self.spill.seek(offset)
            blocks.append((begin, self.spill.read(length)))
        choices = [[block] for block in blocks]
        if len(blocks) > 1:
            choices.append(blocks)
        for some in choices:
            version = bytearray(piece)
            for begin, data in some:
                version[begin : begin + len(data)] = data
            yield bytes(version)

    def check(self, index: int, spans: list[tuple[File, int, int]]) -> int:
        t = self.torrent
        if not all(self._covered(index, s, e) for _, s, e in spans):
            return _MISSING
        piece = self._read(index * t.piece_length, t.piece_size(index))
        split = False
        for version in self._versions(index, piece):
            verdicts = _verdicts(t, index, version, spans)
            if all(verdicts):
                if version is not piece:
                    self.work.seek(index * t.piece_length)
                    self.work.write(version)
                return _VERIFIED
            split |= any(verdicts)
        return _SPLIT if split else _BAD


def _verdicts(t: Torrent, index: int, piece: bytes, spans: list[tuple[File, int, int]]) -> list[bool]:
    """The piece against each hash the torrent has for it: v1, v2, or both."""
    out = []
    if t.hashes:
        out.append(hashlib.sha1(piece).digest() == t.hashes[index])
    if spans and (f := spans[0][0]).root is not None:  # in v2 a piece holds bytes of one file only
        data = piece[: spans[0][2]]
        if f.layer:
            nth = (index * t.piece_length - f.offset) // t.piece_length
            out.append(merkle.piece_hash(data, t.piece_length) == f.layer[nth])
        else:
            out.append(merkle.small_file_root(data) == f.root)
    return out


def piece_checker(torrent: Torrent):
    """``check(index, piece) -> bool``: a piece's file bytes against every hash the torrent has for it
    (the padding after a file's last byte, never sent, counts as the zeros it is)."""
    spans = list(_spans(torrent))

    def check(index: int, piece: bytes) -> bool:
        piece += bytes(torrent.piece_size(index) - len(piece))
        verdicts = _verdicts(torrent, index, piece, spans[index]) if index < len(spans) else []
        return bool(verdicts) and all(verdicts)

    return check


def wire_sizes(torrent: Torrent) -> list[int]:
    """Per piece, the bytes peers send of it: up to its last file byte (v2 and pad files end short)."""
    return [max((end for _, _, end in here), default=0) for here in _spans(torrent)]


def _write_files(work: BinaryIO, torrent: Torrent, outdir: Path, good: set[int], result: Result) -> None:
    size = torrent.piece_length
    for f in torrent.files:
        if f.pad:
            continue
        target = outdir.joinpath(*f.parts)
        pieces = range(f.offset // size, -(-(f.offset + f.length) // size)) if f.length else ()
        if all(i in good for i in pieces):
            target.parent.mkdir(parents=True, exist_ok=True)
            work.seek(f.offset)
            with target.open("wb") as out:
                left = f.length
                while left:
                    chunk = work.read(min(left, 1 << 20))
                    out.write(chunk)
                    left -= len(chunk)
            result.written.append(target)
        else:
            result.incomplete.append("/".join(f.parts))
