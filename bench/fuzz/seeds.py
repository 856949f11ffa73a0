"""Seed corpora, written fresh where a harness's corpus directory is still empty.

Built from ``tests/hostile.py`` (clean and damaged exchanges, capture-format
damage) and from the shared real captures cut to under 64 KiB at record
boundaries (their start, with the handshakes, and a stretch from the middle,
mid-stream). Seeds are generated, never committed: the corpora are gitignored.
"""
from __future__ import annotations

import gzip
import hashlib
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import hostile  # noqa: E402
import wirebuild as wb  # noqa: E402

from segments import encode  # noqa: E402

CAPTURES = Path("/work/shared/captures")
CUT = 64 << 10
_PCAP_RECORD = struct.Struct("<IIII")


def _cuts(data: bytes) -> Iterator[bytes]:
    """A classic pcap's head and a middle stretch, each under ``CUT`` bytes, whole records only."""
    header, pos, starts = data[:24], 24, []
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    while pos + 16 <= len(data):
        starts.append(pos)
        pos += 16 + struct.unpack_from(order + "I", data, pos + 8)[0]
    starts.append(min(pos, len(data)))
    for first in (0, len(starts) // 2):
        last = first
        while last + 1 < len(starts) and starts[last + 1] - starts[first] + 24 < CUT:
            last += 1
        yield header + data[starts[first] : starts[last]]


def _stream(frames: list[hostile.Frame], side: int) -> bytes:
    """One side's TCP payload, in order (the builders send in order)."""
    src = frames[0][1][26:30] if side == 0 else frames[1][1][26:30]
    return b"".join(f[54:] for _, f in frames if f[26:30] == src)


def _exchanges() -> dict[str, list[hostile.Frame]]:
    return {
        "clean_transfer": hostile.clean_transfer(),
        "hole_at_boundary": hostile.hole_at_boundary(),
        "weird_peer": hostile.weird_peer(),
    }


def capture() -> dict[str, bytes]:
    seeds = {name: hostile.pcap_bytes(frames) for name, frames in _exchanges().items()}
    seeds["data_offset_evasion"] = hostile.pcap_bytes(hostile.data_offset_evasion())
    seeds["clean_transfer.gz"] = gzip.compress(seeds["clean_transfer"])
    seeds["timestamp_jump"] = hostile.pcap_bytes(hostile.timestamp_jump(flows=2, before=5, after=5, sweep_every=8))
    seeds["bencode_nested"] = hostile.pcap_bytes(hostile.bencode_bomb(4000, nested=True))
    seeds["reverse_segments"] = hostile.pcap_bytes(hostile.reverse_segments(50))
    seeds.update(hostile.format_cases())
    for path in sorted(CAPTURES.glob("*.pcap*")):
        for i, cut in enumerate(_cuts(path.read_bytes())):
            seeds[f"{path.stem}.{i}"] = cut
    return seeds


def stream() -> dict[str, bytes]:
    return {name: encode(frames) for name, frames in _exchanges().items()}


def peerwire() -> dict[str, bytes]:
    """Mode byte, then the stream in 200-byte steps (a chunk size the format reads as itself)."""
    seeds = {}
    for name, frames in _exchanges().items():
        for side in (0, 1):
            data = _stream(frames, side)
            steps = b"".join(bytes([len(c)]) + c for c in (data[i : i + 200] for i in range(0, len(data), 200)))
            seeds[f"{name}.{side}"] = b"\0" + steps
            seeds[f"{name}.{side}.mid"] = b"\x03" + steps[40:]
    return seeds


def bodies() -> dict[str, bytes]:
    return {
        "handshake": b"\1" + wb.bencode({b"m": {b"ut_pex": 1, b"ut_metadata": 2}, b"v": b"x", b"yourip": b"\1\2\3\4"}),
        "pex": b"\2" + wb.bencode({b"added": b"\x0a\0\0\1\x1a\xe1", b"added.f": b"\0", b"added6": bytes(18)}),
        "metadata": b"\3" + wb.bencode({b"msg_type": 1, b"piece": 0, b"total_size": 5}) + b"abcde",
        "upload_only": b"\4\1",
        "donthave": b"\6\0\0\0\7",
        "holepunch": b"\7\0\0\1\2\3\4\x1a\xe1",
        "list": b"\0" + wb.bencode([1, b"a", [b"b", {b"c": 2}]]),
    }


def filters() -> dict[str, bytes]:
    texts = ["piece", "type == request", "session == 2", "type in {have bitfield}",
             "!(piece || have) && session != 1", "not finding and (type == extended or session in {1 2 3})"]
    return {f"f{i}": t.encode() for i, t in enumerate(texts)}


SEEDS = {"capture": capture, "stream": stream, "peerwire": peerwire, "bodies": bodies, "filters": filters}


def write(harness: str, directory: Path) -> int:
    """Seed ``directory`` unless it holds inputs already; how many seeds were written."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return 0
    seeds = SEEDS[harness]()
    for content in seeds.values():
        (directory / hashlib.sha1(content).hexdigest()).write_bytes(content)
    return len(seeds)
