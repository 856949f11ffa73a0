"""btshark and tshark side by side on captures that are not clean: messages, pieces,
sessions and findings on the captures from the wild (``../shared/wild``) and on the
project's twin recordings (a lossless capture and its lossy or snap-length-cut twin).

Counts, not times: this is about being right. tshark runs with its defaults and with
out-of-order reassembly on, its BitTorrent dissector told every port btshark found
BitTorrent on, and its uTP heuristic enabled.

    python bench/wild.py [CAPTURE ...]
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WILD = ROOT.parent / "shared" / "wild"
TWINS = ROOT / "captures" / "twins"


def btshark(capture: Path, *args: str) -> str:
    return subprocess.run(["btshark", "read", str(capture), *args], capture_output=True, text=True,
                          check=True).stdout


def ours(capture: Path) -> tuple[int, int, int, int]:
    """Messages, piece messages, sessions, findings."""
    records = [json.loads(line) for line in btshark(capture, "-T", "jsonl").splitlines()]
    sessions = json.loads(btshark(capture, "--sessions", "-T", "json"))
    findings = sum(len(s["findings"]) for s in sessions)
    return len(records), sum(r["type"] == "piece" for r in records), len(sessions), findings


def ports(capture: Path) -> set[int]:
    sessions = json.loads(btshark(capture, "--sessions", "-T", "json"))
    return {int(s[side].rsplit(":", 1)[1]) for s in sessions for side in "ab" if s["transport"] == "tcp"}


def theirs(capture: Path, decode_as: set[int], *prefs: str) -> tuple[int, int]:
    """tshark's messages (handshakes, keep-alives and messages) and piece messages."""
    args = ["tshark", "-r", str(capture), "--enable-heuristic", "bt_utp_udp", "-Y", "bittorrent",
            "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
            "-e", "bittorrent.msg.length", "-e", "bittorrent.protocol.name", "-e", "bittorrent.msg.type"]
    for port in sorted(decode_as):
        args += ["-d", f"tcp.port=={port},bittorrent"]
    for pref in prefs:
        args += ["-o", pref]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    messages = pieces = 0
    for line in out.splitlines():
        lengths, names, kinds = (line.split("\t") + ["", "", ""])[:3]
        messages += len(lengths.split(",")) if lengths else 0
        messages += len(names.split(",")) if names else 0
        pieces += kinds.split(",").count("7") if kinds else 0
    return messages, pieces


def main(argv: list[str]) -> int:
    captures = [Path(a) for a in argv] or [*sorted(WILD.glob("*.pcap*")), *sorted(TWINS.glob("*.pcap"))]
    head = f"{'capture':48} {'btshark msgs':>12} {'pieces':>6} {'sessions':>8} {'findings':>8} " \
           f"{'tshark msgs':>11} {'pieces':>6} {'tshark ooo':>10} {'pieces':>6}"
    print(head)
    print("-" * len(head))
    for capture in captures:
        found = ours(capture)
        seen = ports(capture)
        plain = theirs(capture, seen)
        ooo = theirs(capture, seen, "tcp.reassemble_out_of_order:TRUE")
        print(f"{capture.name:48} {found[0]:>12} {found[1]:>6} {found[2]:>8} {found[3]:>8} "
              f"{plain[0]:>11} {plain[1]:>6} {ooo[0]:>10} {ooo[1]:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
