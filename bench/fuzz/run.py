"""Run every fuzz harness in turn for a share of ``--minutes`` and write RESULTS.md.

One core, niced: libFuzzer runs in-process (no ``-jobs``/``-fork``, which would
add a supervising process), one harness at a time, under ``nice -n 10``. A
crash ends a libFuzzer run, so the harness is started again on its grown corpus
for the rest of its share; a harness that hits the same crash ``SAME_CRASH``
times gives its remaining time to the harnesses after it. Corpora (seeded by
``seeds``), crash artifacts and logs stay under bench/fuzz/, gitignored; the
record is RESULTS.md.

Run with the interpreter atheris is installed in:
``.venv-fuzz/bin/python bench/fuzz/run.py --minutes 60``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import seeds

HERE = Path(__file__).resolve().parent
HARNESSES = ("capture", "stream", "peerwire", "bodies", "filters")
MAX_LEN = {"capture": 65536, "stream": 32768, "peerwire": 32768, "bodies": 4096, "filters": 512}
FLAGS = ("-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1")
SAME_CRASH = 3
MIN_RUN = 5.0  # seconds: less than this left is not worth a restart

_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+.*?exec/s: (\d+)")
_KIND = re.compile(r"ERROR: libFuzzer: (deadly signal|timeout|out-of-memory|fuzz target exited|[\w -]+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_STAT = re.compile(r"^stat::(peak_rss_mb|slowest_unit_time_sec):\s+(\d+)", re.M)
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


@dataclass
class Crash:
    kind: str
    first: str  # the exception line (or libFuzzer's one line for a timeout or OOM)
    where: str  # innermost frame in the project, file:line (function)
    artifact: str
    count: int = 1

    @property
    def signature(self) -> tuple[str, str, str]:
        return self.kind, self.where, self.first.split(":", 1)[0]


@dataclass
class Tally:
    runs: int = 0
    seconds: float = 0.0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    restarts: int = 0
    peak_rss_mb: int = 0
    slowest_unit_time_sec: int = 0  # whole seconds, as libFuzzer counts them
    crashes: list[Crash] = field(default_factory=list)


def _crash(log: str) -> Crash | None:
    artifact = _ARTIFACT.search(log)
    kind = _KIND.search(log)
    if artifact is None and kind is None:
        return None
    first, where, what = "", "", kind[1] if kind else "crash"
    if "=== Uncaught Python exception: ===" in log:
        what = "uncaught exception"
        block = log.split("=== Uncaught Python exception: ===", 1)[1].strip().splitlines()
        first = block[0]
        frames = [m for m in map(_FRAME.search, block) if m and "/bench/fuzz/" not in m[1]]
        if frames:
            m = frames[-1]
            where = f"{os.path.relpath(m[1], HERE.parents[1])}:{m[2]} ({m[3]})"
    else:
        lines = [ln for ln in log.splitlines() if "ERROR: libFuzzer" in ln or ln.startswith("==") and "out-of-memory" in ln]
        first = lines[0].split("ERROR: ", 1)[-1] if lines else "(no message)"
    return Crash(what, first, where, artifact[1] if artifact else "")


def fuzz(harness: str, seconds: float, log_dir: Path) -> Tally:
    corpus, artifacts = HERE / "corpus" / harness, HERE / "artifacts" / harness
    seeds.write(harness, corpus)
    artifacts.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) >= MIN_RUN:
        log_path = log_dir / f"{harness}.{tally.restarts}.log"
        cmd = [sys.executable, str(HERE / f"{harness}.py"), str(corpus), f"-max_total_time={int(left)}",
               f"-max_len={MAX_LEN[harness]}", f"-artifact_prefix={artifacts}/", *FLAGS]
        start = time.monotonic()
        with open(log_path, "w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=HERE)
        tally.seconds += time.monotonic() - start
        text = log_path.read_text(errors="replace")
        status = [m for m in map(_STATUS.match, text.splitlines()) if m]
        if status:
            runs, tally.cov, tally.ft, tally.corpus = (int(g) for g in status[-1].groups()[:4])
            tally.runs += runs
        for name, value in _STAT.findall(text):
            setattr(tally, name, max(getattr(tally, name), int(value)))
        crash = _crash(text) if proc.returncode else None
        if crash is None:
            if proc.returncode:
                print(f"{harness}: exit {proc.returncode} without a crash report, see {log_path}", file=sys.stderr)
            break
        known = next((c for c in tally.crashes if c.signature == crash.signature), None)
        if known:
            known.count += 1
            if known.count >= SAME_CRASH:
                break
        else:
            tally.crashes.append(crash)
        tally.restarts += 1
        print(f"{harness}: {crash.kind}: {crash.first} at {crash.where or '?'}; restarting", file=sys.stderr)
    return tally


def report(tallies: dict[str, Tally], started: datetime.datetime, minutes: float) -> str:
    total = sum(t.seconds for t in tallies.values())
    lines = [
        "# Fuzzing record (issue 10)",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, {total / 60:.1f} min of fuzzing in all (asked: {minutes:g} min)",
        f"- atheris {metadata.version('atheris')}, Python {platform.python_version()}, {platform.machine()}",
        f"- one core, `nice -n 10`, libFuzzer in-process; flags: {' '.join(FLAGS)}",
        "- re-run: `.venv-fuzz/bin/python bench/fuzz/run.py --minutes 60` (corpora kept in bench/fuzz/corpus/)",
        "",
        "| harness | minutes | runs | exec/s | cov | ft | corpus | peak RSS MB | slowest unit s | crashes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in tallies.items():
        rate = t.runs / t.seconds if t.seconds else 0
        lines.append(f"| {name} | {t.seconds / 60:.1f} | {t.runs} | {rate:.0f} | {t.cov} | {t.ft} | {t.corpus} "
                     f"| {t.peak_rss_mb} | {t.slowest_unit_time_sec} | {sum(c.count for c in t.crashes)} |")
    lines += ["", "cov/ft: libFuzzer's edge and feature counts at the end of the harness's last run.", "",
              "## Crashes", ""]
    found = [(name, c) for name, t in tallies.items() for c in t.crashes]
    if not found:
        lines.append("None.")
    for name, c in found:
        lines += [f"### {name}: {c.kind} at {c.where or '(no Python frame)'}", "",
                  f"- first line: `{c.first}`", f"- hits: {c.count}",
                  f"- reproducer: `{os.path.relpath(c.artifact, HERE.parents[1]) if c.artifact else '-'}` "
                  f"(`.venv-fuzz/bin/python bench/fuzz/{name}.py ARTIFACT`)", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="in all, shared by the harnesses")
    parser.add_argument("--only", nargs="+", choices=HARNESSES, default=list(HARNESSES))
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    os.nice(10)
    started = datetime.datetime.now(datetime.timezone.utc)
    log_dir = HERE / "logs"
    log_dir.mkdir(exist_ok=True)
    tallies: dict[str, Tally] = {}
    end = time.monotonic() + args.minutes * 60
    for i, harness in enumerate(args.only):
        share = (end - time.monotonic()) / (len(args.only) - i)
        print(f"{harness}: {share / 60:.1f} min", file=sys.stderr, flush=True)
        tallies[harness] = fuzz(harness, share, log_dir)
        args.results.write_text(report(tallies, started, args.minutes))
    print(args.results.read_text())


if __name__ == "__main__":
    main()
