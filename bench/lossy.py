"""What capture loss costs btshark: a synthetic 64 MB transfer, lossless and with 1% of
its data segments missing from the capture (any of them: piece headers too, so the
parser has to find the next message again), decoded by the real command.

Loss used to make reassembly quadratic (every buffered segment rescanned per insert)
and hold everything until 4 MiB waited; the target is "lossy within 1.5x of
lossless". The receiver's ACKs still acknowledge the dropped segments, as they do
when a capture (not the network) loses them, so holes are decided at those ACKs.

Frames are written with ``struct`` rather than scapy (scapy takes minutes for
70,000 packets); TCP/IP checksums are left zero, which btshark does not check.

    python bench/lossy.py [--runs 3] [--size-mb 64] [--loss 0.01]
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

MSS = 1448
BLOCK = 16384
PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
ETH = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
IP = struct.Struct(">BBHHHBBH4s4s")
TCP = struct.Struct(">HHIIBBHHH")
A, B = (bytes([10, 0, 0, 1]), 40000), (bytes([10, 0, 0, 2]), 6881)
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def frame(src: tuple[bytes, int], dst: tuple[bytes, int], seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    ip = IP.pack(0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src[0], dst[0])
    tcp = TCP.pack(src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    return ETH + ip + tcp + payload


def handshake(peer_id: bytes) -> bytes:
    return b"\x13BitTorrent protocol" + bytes(8) + bytes(range(20)) + peer_id


def build(path: Path, size: int, loss: float, seed: int = 1) -> tuple[int, int]:
    """Write the transfer; returns (frames written, data segments dropped)."""
    rng = random.Random(seed)
    seq = {0: 1000, 1: 900000}  # next sequence number of a (0) and b (1)
    ends = (A, B)
    frames: list[bytes] = []

    def send(side: int, flags: int, payload: bytes = b"", keep: bool = True) -> None:
        src, dst = ends[side], ends[1 - side]
        if keep:
            frames.append(frame(src, dst, seq[side], seq[1 - side], flags | (ACK if flags != SYN else 0), payload))
        seq[side] += len(payload) + (1 if flags & (SYN | FIN) else 0)

    send(0, SYN)
    send(1, SYN)
    send(0, ACK)
    send(0, PSH, handshake(b"-LT2110-aaaaaaaaaaaa") + struct.pack(">IB", 1, 2))  # + interested
    send(1, PSH, handshake(b"-LT2110-bbbbbbbbbbbb") + struct.pack(">IB", 1, 1))  # + unchoke
    blocks = [rng.randbytes(BLOCK) for _ in range(16)]  # random payload, as real data looks
    stream = b"".join(struct.pack(">IBII", 9 + BLOCK, 7, i // 16, (i % 16) * BLOCK) + blocks[i % 16]
                      for i in range(size // BLOCK))
    dropped = 0
    for n, i in enumerate(range(0, len(stream), MSS)):
        keep = rng.random() >= loss
        dropped += not keep
        send(1, PSH, stream[i:i + MSS], keep)
        if n % 2:
            send(0, ACK)
    send(0, ACK)
    send(1, FIN)
    send(0, FIN)
    send(1, ACK)
    with path.open("wb") as f:
        f.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, data in enumerate(frames):
            t = 1_700_000_000_000_000 + 10 * n  # microseconds
            f.write(RECORD.pack(t // 1_000_000, t % 1_000_000, len(data), len(data)))
            f.write(data)
    return len(frames), dropped


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def records(exe: str, path: Path) -> int:
    """Lines of ``-T jsonl``: both captures should decode to as many."""
    out = subprocess.run([exe, "read", str(path), "-T", "jsonl"], capture_output=True, check=True).stdout
    return out.count(b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--loss", type=float, default=0.01)
    args = parser.parse_args()
    exe = shutil.which("btshark")
    if exe is None:
        print("lossy.py: the btshark command is not installed (pip install -e .)", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    size = args.size_mb << 20
    captures = {}
    for name, loss in (("lossless", 0.0), (f"lossy-{args.loss:.0%}", args.loss)):
        path = OUT / f"synthetic-{args.size_mb}MB-{name}.pcap"
        count, dropped = build(path, size, loss)
        captures[name] = path
        print(f"{path.name}: {count:,} frames, {dropped:,} data segments dropped, "
              f"{path.stat().st_size / 1e6:.0f} MB, {records(exe, path):,} records")
    modes = {"-T jsonl": ["-T", "jsonl"], "--sessions": ["--sessions"]}
    medians: dict[tuple[str, str], float] = {}
    print(f"\nbtshark read, median of {args.runs} runs (seconds)")
    print(f"{'mode':<12}" + "".join(f"{name:>14}" for name in captures) + f"{'ratio':>8}")
    for mode, extra in modes.items():
        for name, path in captures.items():
            medians[mode, name] = statistics.median(wall([exe, "read", str(path), *extra]) for _ in range(args.runs))
        lossless, lossy = (medians[mode, name] for name in captures)
        print(f"{mode:<12}" + "".join(f"{medians[mode, name]:>14.2f}" for name in captures) + f"{lossy / lossless:>8.2f}")
    worst = max(medians[mode, list(captures)[1]] / medians[mode, "lossless"] for mode in modes)
    print(f"\ntarget 'lossy within 1.5x of lossless': {'met' if worst <= 1.5 else 'NOT met'} (worst ratio {worst:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
