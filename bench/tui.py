"""``btshark tui`` on the 256 MiB capture in a real terminal: how soon a user sees it, and its memory.

Issue 8 sets the goals against termshark (4.1 s to its first rows, 12.5 s to
loaded, 380 MB on this capture): first session row on screen under 1 s, load
complete under 2.5 s, peak RSS under 200 MB. So the app runs as a user runs it,
in tmux at 160x45 (a private tmux server, its socket in bench/out/tui), and the
screen is read back with ``tmux capture-pane`` every 25 ms from the moment the
command starts:

* first paint: the filter bar's placeholder is on screen (Python, imports, app start);
* first session row: a row of the sessions table (id, then an address) is on screen;
* load complete: a session row is on screen and the "Reading the capture" line
  above it is gone (the app hides it when the last batch is in); then the info
  view (``i``) must show the capture's frame count, or the run fails;
* peak RSS: VmHWM of the app's process (/proc), read once loading is complete;
* CPU by thread at load complete (/proc/PID/task): the UI (main) thread against
  the others (the loader; the input thread is idle), to show where the time goes.

termshark runs beside it when installed (it is not on this machine; its table row
then says so). The capture is the one bench/run.py records (recorded the same
way when absent).

    python bench/tui.py [--size 256MiB] [--runs 3] [--capture FILE]
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]
from run import OUT, record  # noqa: E402  (bench/ is scripts, not a package)

from inspector.capfile import CaptureFile  # noqa: E402

POLL = 0.025  # seconds between screen reads (each spawns a tmux client: faster polling slows the app)
TIMEOUT = 120.0  # seconds for any one step
GOALS = {"first": 1.0, "complete": 2.5, "rss": 200e6}
PAINTED = "Filter (-Y)"
SESSION_ROW = re.compile(r"^ \d+\s+\S+:\d+\s", re.M)
LOADING = "Reading the capture"
FRAMES = re.compile(r"^\s*Frames\s+([\d,]+)\s*$", re.M)
# The tmux server, and so the app, inherits this environment: COLUMNS or LINES would
# override the window's real size in the app's terminal-size lookup.
ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    paint: float  # seconds from the command's start to the app's first screen
    first: float  # seconds from the command's start to the first session row on screen
    complete: float  # ... to load complete
    rss: int  # peak resident bytes
    ui_cpu: float  # CPU seconds of the main (UI) thread at load complete
    other_cpu: float  # CPU seconds of every other thread


class Tmux:
    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, check=True,
                              env=ENV, timeout=10).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "app")


def until(what: str, check, start: float) -> float:
    """Seconds since ``start`` when ``check()`` first held (polled every POLL)."""
    while not check():
        if time.perf_counter() - start > TIMEOUT:
            sys.exit(f"bench: no {what} after {TIMEOUT:.0f} s")
        time.sleep(POLL)
    return time.perf_counter() - start


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the main thread and of all the others."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024


def run_btshark(capture: Path, frames: int, workdir: Path) -> Run:
    """One run. The window's shell waits on a tmux channel, so the clock starts at the
    app's command, not at the tmux server's start."""
    pidfile = workdir / "pid"
    pidfile.unlink(missing_ok=True)
    tmux = Tmux(workdir / "tmux")
    command = (f"echo $$ > {shlex.quote(str(pidfile))}; tmux -S {shlex.quote(str(tmux.socket))} wait-for go; "
               f"PYTHONPATH={shlex.quote(str(ROOT))} exec {shlex.quote(sys.executable)} -m inspector tui "
               f"{shlex.quote(str(capture))}")
    tmux("new-session", "-d", "-s", "app", "-x", "160", "-y", "45", "sh", "-c", command)
    until("window", pidfile.exists, time.perf_counter())
    start = time.perf_counter()
    tmux("wait-for", "-S", "go")
    try:
        paint = until("first paint", lambda: PAINTED in tmux.screen(), start)
        first = until("session row", lambda: SESSION_ROW.search(tmux.screen()) is not None, start)

        def loaded() -> bool:
            screen = tmux.screen()
            return SESSION_ROW.search(screen) is not None and LOADING not in screen

        complete = until("load complete", loaded, start)
        pid = int(pidfile.read_text())
        ui_cpu, other_cpu = thread_cpu(pid)
        rss = peak_rss(pid)
        tmux("send-keys", "-t", "app", "i")
        shown: list[int] = []

        def info() -> bool:
            match = FRAMES.search(tmux.screen())
            if match:
                shown.append(int(match.group(1).replace(",", "")))
            return match is not None

        until("capture info", info, start)
        if shown[-1] != frames:
            sys.exit(f"bench: the info view shows {shown[-1]} frames, the capture has {frames}")
        tmux("send-keys", "-t", "app", "q")  # the app quits from any view
        until("exit", lambda: not Path(f"/proc/{pid}").exists(), start)
    finally:
        subprocess.run(["tmux", "-S", str(tmux.socket), "kill-server"], capture_output=True, env=ENV, timeout=10)
    return Run(paint, first, complete, rss, ui_cpu, other_cpu)


def frames_in(path: Path) -> int:
    with CaptureFile(str(path)) as capture:
        return sum(1 for _ in capture)


def table(title: str, rows: list[tuple[str, list[Run] | str]]) -> str:
    lines = [title, "",
             "| app | first paint | first session row | load complete | peak RSS "
             "| CPU at load complete: UI thread / other threads |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, runs in rows:
        if isinstance(runs, str):
            lines.append(f"| {name} | {runs} | | | | |")
            continue
        lines.append(f"| {name} | {statistics.median(r.paint for r in runs):.2f} s "
                     f"| {statistics.median(r.first for r in runs):.2f} s "
                     f"| {statistics.median(r.complete for r in runs):.2f} s "
                     f"| {max(r.rss for r in runs) / 2**20:.0f} MiB "
                     f"| {statistics.median(r.ui_cpu for r in runs):.2f} s "
                     f"/ {statistics.median(r.other_cpu for r in runs):.2f} s |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="256MiB", help="data transferred in the recorded capture")
    ap.add_argument("--runs", type=int, default=3, help="runs (median taken)")
    ap.add_argument("--capture", type=Path, help="another capture instead of the recorded one")
    args = ap.parse_args()
    if not shutil.which("tmux"):
        sys.exit("bench: tmux not found (Debian package tmux)")
    capture = args.capture
    if capture is None:
        capture = OUT / f"big-{args.size}.pcap"
        record(args.size, capture)
    frames = frames_in(capture)
    workdir = OUT / "tui"
    workdir.mkdir(parents=True, exist_ok=True)
    runs = [run_btshark(capture, frames, workdir) for _ in range(args.runs)]
    termshark = ("installed, but not measured: this script knows no load-complete marker for it"
                 if shutil.which("termshark") else "not installed")
    print(table(f"{capture.name}: {capture.stat().st_size / 1e6:.0f} MB, {frames:,} frames, tmux 160x45, "
                f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {args.runs} runs (medians; RSS: the "
                f"highest), load average {os.getloadavg()[0]:.1f}", [("btshark tui", runs), ("termshark", termshark)]))
    first = statistics.median(r.first for r in runs)
    complete = statistics.median(r.complete for r in runs)
    rss = max(r.rss for r in runs)
    print()
    for label, shown, met in (
            (f"first session row under {GOALS['first']:g} s", f"{first:.2f} s", first < GOALS["first"]),
            (f"load complete under {GOALS['complete']:g} s", f"{complete:.2f} s", complete < GOALS["complete"]),
            (f"peak RSS under {GOALS['rss'] / 1e6:.0f} MB", f"{rss / 1e6:.0f} MB", rss < GOALS["rss"])):
        print(f"goal: {label}: {shown}, {'met' if met else 'NOT met'}")

if __name__ == "__main__":
    main()
