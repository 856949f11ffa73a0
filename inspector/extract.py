"""``btshark extract``: a torrent's files rebuilt from the piece messages a capture holds.

A bug report's capture often carries the data that went wrong; getting it back out,
piece by piece and checked against the ``.torrent``'s SHA-1s, says which pieces the
capture really holds. Blocks are written straight to their place in one work file
the size of the torrent (memory stays flat however large it is); a piece counts
only when every byte of it was captured and its hash matches; a file is written
only when all its pieces do. Nothing is zero-filled into a file.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import fastbencode

from .pipeline import CaptureDecode


class ExtractError(Exception):
    """The torrent or the output folder cannot be used (one line, for the user)."""


@dataclass(frozen=True)
class Torrent:
    info_hash: bytes
    name: str
    piece_length: int
    hashes: tuple[bytes, ...]
    files: tuple[tuple[tuple[str, ...], int], ...]  # path parts under the name, length

    @property
    def length(self) -> int:
        return sum(size for _, size in self.files)

    def piece_size(self, index: int) -> int:
        return min(self.piece_length, self.length - index * self.piece_length)


def _part(raw: object) -> str:
    """One path component, refused when it could leave the output folder."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise ExtractError(f"the torrent names an unsafe path component {text!r}")
    return text


def read_torrent(path: str | os.PathLike) -> Torrent:
    try:
        meta = fastbencode.bdecode(Path(path).read_bytes())
        info = meta[b"info"]
        pieces = info[b"pieces"]
        piece_length = info[b"piece length"]
        name = _part(info[b"name"])
        if b"files" in info:
            files = tuple((tuple(_part(p) for p in f[b"path"]), f[b"length"]) for f in info[b"files"])
        else:
            files = (((), info[b"length"]),)
        info_hash = hashlib.sha1(fastbencode.bencode(info)).digest()
    except OSError as exc:
        raise ExtractError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ExtractError(f"{path} is not a v1 .torrent file") from None
    if len(pieces) % 20 or piece_length <= 0:
        raise ExtractError(f"{path} is not a v1 .torrent file")
    return Torrent(info_hash, name, piece_length, tuple(pieces[i : i + 20] for i in range(0, len(pieces), 20)), files)


@dataclass
class Result:
    verified: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # not every byte captured
    bad: list[int] = field(default_factory=list)  # captured, but the hash differs
    written: list[Path] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # files not written


def extract(capture: str, torrent: Torrent, outdir: Path) -> Result:
    outdir.mkdir(parents=True, exist_ok=True)
    work = outdir / f".{torrent.name}.btshark-part"
    covered: dict[int, dict[int, int]] = {}  # piece -> begin -> length of blocks received
    with work.open("w+b") as f:
        f.truncate(torrent.length)
        decode = CaptureDecode(capture, keep_payload=True)
        for record in decode:
            event = record.event
            if event.type != "piece" or event.data is None or record.session.info_hash != torrent.info_hash:
                continue
            index, begin = event.index, event.begin
            if index >= len(torrent.hashes) or begin + event.length > torrent.piece_size(index):
                continue
            f.seek(index * torrent.piece_length + begin)
            f.write(event.data)
            covered.setdefault(index, {})[begin] = max(event.length, covered.get(index, {}).get(begin, 0))
        result = Result()
        for index, digest in enumerate(torrent.hashes):
            size = torrent.piece_size(index)
            if _covered(covered.get(index, {})) < size:
                result.missing.append(index)
                continue
            f.seek(index * torrent.piece_length)
            (result.verified if hashlib.sha1(f.read(size)).digest() == digest else result.bad).append(index)
        _write_files(f, torrent, outdir, set(result.verified), result)
    work.unlink()
    return result


def _covered(blocks: dict[int, int]) -> int:
    """Bytes from the piece's start that blocks cover without a gap."""
    end = 0
    for begin in sorted(blocks):
        if begin > end:
            break
        end = max(end, begin + blocks[begin])
    return end


def _write_files(work, torrent: Torrent, outdir: Path, good: set[int], result: Result) -> None:
    offset = 0
    single = len(torrent.files) == 1 and not torrent.files[0][0]
    for parts, size in torrent.files:
        first, last = offset // torrent.piece_length, max(offset, offset + size - 1) // torrent.piece_length
        target = outdir / torrent.name if single else outdir.joinpath(torrent.name, *parts)
        if all(i in good for i in range(first, last + 1)):
            target.parent.mkdir(parents=True, exist_ok=True)
            work.seek(offset)
            with target.open("wb") as out:
                left = size
                while left:
                    chunk = work.read(min(left, 1 << 20))
                    out.write(chunk)
                    left -= len(chunk)
            result.written.append(target)
        else:
            result.incomplete.append(str(target.relative_to(outdir)))
        offset += size
