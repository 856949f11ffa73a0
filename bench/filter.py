"""What ``-Y`` and ``--stats`` cost ``btshark read``, beside tshark doing the same.

Runs ``btshark read -T jsonl`` on the benchmark capture unfiltered and with display
filters (on type, on session, and one over several fields), prints each one's median
wall time and its ratio to the unfiltered read (the target: within 20% for type and
session), the same filters with ``-T fields -e frame``, ``--stats``, then tshark with
the equivalent display filter and ``-T fields -e frame.number``.

    python bench/filter.py [--size 256MiB] [--runs 3] [--baseline REV]

``--baseline REV`` also times ``btshark read -T jsonl`` of git revision REV (checked
out in a temporary worktree), to show what the new code costs the unfiltered path.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import OUT, ROOT, btshark, record, run

FILTERS = [
    ("-Y piece", "piece", "bittorrent.msg.type == 7"),
    ("-Y 'session == 1'", "session == 1", "tcp.stream == 0"),
    ("-Y 'bt.index >= 100 && ip.src == 127.0.0.0/8'", "bt.index >= 100 && ip.src == 127.0.0.0/8",
     "bittorrent.piece.index >= 100 && ip.src == 127.0.0.0/8"),
]


def median(cmd: list[str], runs: int) -> tuple[float, int]:
    results = [run(cmd) for _ in range(runs)]
    return statistics.median(w for w, _ in results), max(r for _, r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="256MiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", metavar="REV", help="also time the unfiltered read of this git revision")
    args = ap.parse_args()
    big = OUT / f"big-{args.size}.pcap"
    record(args.size, big)
    bt = btshark()
    base, rss = median([bt, "read", str(big), "-T", "jsonl"], args.runs)
    lines = ["| command | wall (median) | peak RSS | vs unfiltered |", "|---|---:|---:|---:|",
             f"| btshark read -T jsonl | {base:.2f} s | {rss / 2**20:.0f} MiB | 1.00× |"]
    verdicts = []
    for label, expression, _ in FILTERS:
        wall, rss = median([bt, "read", str(big), "-T", "jsonl", "-Y", expression], args.runs)
        lines.append(f"| btshark read -T jsonl {label} | {wall:.2f} s | {rss / 2**20:.0f} MiB | {wall / base:.2f}× |")
        if expression in ("piece", "session == 1"):
            verdicts.append(f"{label}: {wall / base - 1:+.1%} ({'met' if wall <= 1.2 * base else 'NOT met'})")
    for label, expression, _ in FILTERS:  # what tshark is timed doing below: the frame numbers, a line each
        wall, rss = median([bt, "read", str(big), "-T", "fields", "-e", "frame", "-Y", expression], args.runs)
        lines.append(f"| btshark read -T fields -e frame {label} | {wall:.2f} s | {rss / 2**20:.0f} MiB | "
                     f"{wall / base:.2f}× |")
    wall, rss = median([bt, "read", str(big), "--stats", "-T", "json"], args.runs)
    lines.append(f"| btshark read --stats -T json | {wall:.2f} s | {rss / 2**20:.0f} MiB | {wall / base:.2f}× |")
    for label, _, tshark_filter in FILTERS:
        wall, rss = median(["tshark", "-r", str(big), "-d", "tcp.port==51413,bittorrent", "-Y", tshark_filter,
                            "-T", "fields", "-e", "frame.number"], 1)
        lines.append(f"| tshark -Y '{tshark_filter}' (1 run) | {wall:.2f} s | {rss / 2**20:.0f} MiB | "
                     f"{wall / base:.2f}× |")
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "base"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline],
                           check=True, capture_output=True)
            try:
                cmd = [sys.executable, "-c", "import sys; sys.argv[0] = 'btshark'; from inspector.cli import main; "
                       "main()", "read", str(big), "-T", "jsonl"]
                wall, rss = median(["env", f"PYTHONPATH={tree}", *cmd], args.runs)
                lines.append(f"| {args.baseline}: btshark read -T jsonl | {wall:.2f} s | {rss / 2**20:.0f} MiB | "
                             f"{wall / base:.2f}× |")
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    print(f"{big.name}, {args.runs} runs each (median)\n")
    print("\n".join(lines))
    print("\ntarget: a filter on type or session within 20% of the unfiltered read: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
