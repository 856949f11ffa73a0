"""Issue 10's hostile captures at their full size, each decoded by the real command
with its time and peak memory, and by tshark for comparison.

The goal: each under 30 s and 300 MB, with the default limits. The captures are
built by ``tests/hostile.py`` (raw frames, no scapy) into ``bench/out/hostile/``;
tshark is given ``-d tcp.port==6881,bittorrent`` and a 120 s budget.

    python bench/hostile.py [--scale 1.0] [--no-tshark] [NAME ...]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES = ["syn_flood", "land_flood", "reverse_segments", "offloaded_zeros", "huge_record", "bencode_nested",
         "bencode_flat", "partial_messages", "big_bitfields", "bt_ports_flood"]
GOAL_S, GOAL_MB = 30.0, 300.0


def measure(command: list[str], timeout: float) -> tuple[float, float, int]:
    """Seconds, peak RSS in MB and exit code of ``command`` (its output thrown away);
    ``os.wait4`` gives this child's own peak, not the largest of all children so far."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timer = threading.Timer(timeout, child.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if elapsed >= timeout:
        return float("inf"), usage.ru_maxrss / 1024, -1
    return elapsed, usage.ru_maxrss / 1024, child.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("names", nargs="*", default=CASES)
    args = parser.parse_args()
    out = HERE / "out" / "hostile"
    out.mkdir(parents=True, exist_ok=True)
    tshark = None if args.no_tshark else shutil.which("tshark")
    btshark = [sys.executable, "-m", "inspector", "read"]
    print(f"{'capture':18} {'MB':>7} {'btshark s':>10} {'MB RSS':>7} {'jsonl s':>8} {'tshark s':>9} {'MB RSS':>7}  goal")
    failed = False
    for name in args.names:
        # Built by a child: a parent grown by building would hand its peak to every child it forks.
        built = subprocess.run([sys.executable, str(REPO / "tests" / "hostile.py"), str(out), "--scale", str(args.scale),
                                name], check=True, capture_output=True, text=True)
        path = Path(built.stdout.strip())
        size = path.stat().st_size / 1e6
        runs = {}
        runs["sessions"] = measure([*btshark, "--sessions", str(path)], 600)
        runs["jsonl"] = measure([*btshark, "-T", "jsonl", str(path)], 600)
        ts = measure([tshark, "-n", "-r", str(path), "-d", "tcp.port==6881,bittorrent"], 120) if tshark else None
        worst_s = max(runs["sessions"][0], runs["jsonl"][0])
        worst_mb = max(m for _, m, _ in runs.values())
        ok = worst_s < GOAL_S and worst_mb < GOAL_MB and all(code == 0 for *_, code in runs.values())
        failed |= not ok
        t_s, t_mb = (f"{ts[0]:9.2f}", f"{ts[1]:7.0f}") if ts else ("        -", "      -")
        print(f"{name:18} {size:7.1f} {runs['sessions'][0]:10.2f} {worst_mb:7.0f} {runs['jsonl'][0]:8.2f} {t_s} {t_mb}  "
              f"{'ok' if ok else 'MISSED'}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
