"""Speed and memory of btshark against tshark, dpkt, scapy and pyshark, side by side.

Records the large captures with the project's own recorder (or reuses them), runs
every tool several times on the same file in this same run, and prints wall time
(median), frames/s, MB/s, peak RSS and the ratio to btshark. scapy's TCPSession
and pyshark are too slow for a whole file: they run on the first frames and are
extrapolated by frame count, and marked so. A second table repeats btshark on a
capture four times larger to show its memory staying flat.

    python bench/run.py [--size 256MiB] [--runs 3] [--no-4x]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"

DPKT = """
import sys, dpkt
n = 0
with open(sys.argv[1], 'rb') as f:
    for ts, buf in dpkt.pcap.Reader(f):
        ip = dpkt.ethernet.Ethernet(buf).data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP):
            n += len(ip.data.data)
print(n)
"""

SCAPY = """
import sys
from scapy.all import sniff
from scapy.sessions import TCPSession
count = [0]
sniff(offline=sys.argv[1], session=TCPSession, store=False, prn=lambda p: count.__setitem__(0, count[0] + 1))
print(count[0])
"""

PYSHARK = """
import sys, pyshark
cap = pyshark.FileCapture(sys.argv[1], decode_as={'tcp.port==51413': 'bittorrent'},
                          override_prefs={'tcp.reassemble_out_of_order': 'TRUE'}, keep_packets=False)
n = 0
for pkt in cap:
    for layer in pkt.get_multiple_layers('bittorrent'):
        n += 1
cap.close()
print(n)
"""


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one run, output discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"bench: {' '.join(cmd)} exited with {proc.returncode}")
    return wall, usage.ru_maxrss * 1024


def frames_in(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True, check=True).stdout
    return int(next(line for line in out.splitlines() if "Number of packets" in line).split(":")[1])


def record(size: str, path: Path) -> None:
    if path.exists():
        print(f"reusing {path.relative_to(ROOT)}", file=sys.stderr)
        return
    OUT.mkdir(exist_ok=True)
    print(f"recording {size} with captures/record.py ...", file=sys.stderr)
    subprocess.run([sys.executable, str(ROOT / "captures" / "record.py"), "--seeder", "libtorrent",
                    "--size", size, "--out", str(path), "-q"], check=True)


def head(path: Path, frames: int) -> Path:
    """The first ``frames`` frames of a capture, for the tools too slow for all of it."""
    sliced = OUT / f"{path.stem}-first{frames}.pcap"
    if not sliced.exists():
        subprocess.run(["editcap", "-r", str(path), str(sliced), f"1-{frames}"], check=True)
    return sliced


def btshark() -> str:
    """The console script itself: a shell shim (pyenv) in front of it would be timed too."""
    beside = Path(sys.executable).parent / "btshark"
    return str(beside) if beside.exists() else shutil.which("btshark") or "btshark"


def measure(name: str, cmd: list[str], runs: int, frames: int, total_frames: int, size: int) -> dict:
    results = [run(cmd) for _ in range(runs)]
    wall = statistics.median(w for w, _ in results) * total_frames / frames
    return {"tool": name + (" *" if frames < total_frames else ""), "wall": wall,
            "fps": total_frames / wall, "mbs": size / wall / 1e6, "rss": max(r for _, r in results)}


def table(title: str, rows: list[dict], base: float) -> str:
    lines = [title, "",
             "| tool | wall (median) | frames/s | MB/s | peak RSS | time vs btshark |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['wall']:.2f} s | {r['fps']:,.0f} | {r['mbs']:.0f} | "
                     f"{r['rss'] / 2**20:.0f} MiB | {r['wall'] / base:.1f}× |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="256MiB", help="data transferred in the large capture")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool (median taken)")
    ap.add_argument("--no-4x", action="store_true", help="skip the 4x capture's memory table")
    ap.add_argument("--slice", type=int, default=20000, help="frames given to scapy (pyshark gets a tenth)")
    args = ap.parse_args()
    for tool in ("tshark", "editcap", "capinfos"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (Debian package tshark / wireshark-common)")

    big = OUT / f"big-{args.size}.pcap"
    record(args.size, big)
    size, total = big.stat().st_size, frames_in(big)
    bt = btshark()
    tshark = ["tshark", "-r", str(big), "-o", "tcp.reassemble_out_of_order:TRUE",
              "-d", "tcp.port==51413,bittorrent", "-T", "fields", "-e", "bittorrent.msg.type"]
    rows = [
        measure("btshark read -T jsonl", [bt, "read", str(big), "-T", "jsonl"], args.runs, total, total, size),
        measure("btshark read --sessions", [bt, "read", str(big), "--sessions"], args.runs, total, total, size),
        measure("tshark, out-of-order reassembly on", tshark, args.runs, total, total, size),
        measure("tshark, defaults", [a for a in tshark if a not in ("-o", "tcp.reassemble_out_of_order:TRUE")],
                args.runs, total, total, size),
        measure("dpkt (Ethernet/IP/TCP parse only)", [sys.executable, "-c", DPKT, str(big)], args.runs, total, total, size),
        measure("scapy TCPSession", [sys.executable, "-c", SCAPY, str(head(big, args.slice))], 1, args.slice, total, size),
        measure("pyshark", [sys.executable, "-c", PYSHARK, str(head(big, args.slice // 10))], 1, args.slice // 10, total, size),
    ]
    base = rows[0]["wall"]
    print(table(f"{big.name}: {size / 1e6:.0f} MB, {total:,} frames, {os.cpu_count()} cores, "
                f"Python {sys.version.split()[0]}, {args.runs} runs each", rows, base))
    print("\n* run on the first frames only and extrapolated by frame count")
    tshark_ooo = rows[2]["wall"]
    sessions = tshark_ooo / rows[1]["wall"]
    print(f"\ntarget 1: btshark read -T jsonl is {tshark_ooo / base:.1f}× faster than tshark with out-of-order "
          f"reassembly (needs ≥ 5): {'met' if tshark_ooo / base >= 5 else 'NOT met'}; "
          f"--sessions {sessions:.1f}× (needs ≥ 5): {'met' if sessions >= 5 else 'NOT met'}")
    if args.no_4x:
        return
    n = int(args.size.rstrip("MiBGiB")) if args.size.endswith("MiB") else None
    bigger = OUT / (f"big-{4 * n}MiB.pcap" if n else f"big-4x-{args.size}.pcap")
    record(f"{4 * n}MiB" if n else args.size, bigger)
    size4, total4 = bigger.stat().st_size, frames_in(bigger)
    rows4 = [
        rows[0],
        measure("btshark read -T jsonl, 4× capture", [bt, "read", str(bigger), "-T", "jsonl"], args.runs, total4, total4, size4),
        measure("btshark read --sessions, 4× capture", [bt, "read", str(bigger), "--sessions"], args.runs, total4, total4, size4),
    ]
    print()
    print(table(f"memory on a capture four times larger: {bigger.name}, {size4 / 1e6:.0f} MB, {total4:,} frames", rows4, base))
    growth = max(r["rss"] for r in rows4[1:]) / max(rows[0]["rss"], rows[1]["rss"]) - 1
    peak = max(r["rss"] for r in rows4) / 2**20
    print(f"\ntarget 2: peak RSS {peak:.0f} MiB (needs < 150 MB): {'met' if peak * 2**20 < 150e6 else 'NOT met'}; "
          f"4× capture peaks {growth:+.1%} vs 1× (needs within 10%): {'met' if abs(growth) <= 0.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
