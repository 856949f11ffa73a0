"""A quick first pass over a module's mutants that mutmut has not run yet: each one
against a few test files only, forked from one process that collected them.

Why: mutmut runs every test that reaches a mutated function, fastest first, and a
survivor costs all of them. On the decode path (parser, pipeline) that is minutes per
mutant on two cores: mutmut took the last 2,700 at about three a minute. Most mutants
die to their module's own tests in under a second; the ones that outlive those are the
likely gaps, found in an hour, to write tests for before mutmut gives its verdict.

Its kills count: a mutant that fails a test of the suite is killed by the suite, so a
kill goes into mutmut's result file for the module (exit code 1, as mutmut writes it),
where mutmut's own bookkeeping keeps it until the function changes. Survivors and
timeouts are left to mutmut, which runs every test that reaches the function; so do not
screen a module mutmut is running. The log file below says which kills are its.

It runs in ``mutants/`` (made by a mutmut run), with the repository's current tests
copied in. Those are first run once unmutated, and any that fail there (a test of
behaviour newer than the source mutmut copied) are left out. Tests run fastest first, as
in mutmut, and one that killed a mutant moves to the front for the next ones: a
function's mutants tend to die alike.

Usage, from the repository root::

    python3 tests/mutation/prescreen.py pipeline [--jobs 2] [--timeout 60] [--again] [--last TEXT] [--only TEXT] -- tests/test_pipeline*.py [-k EXPR]

(what follows ``--`` goes to pytest: test files, and ``-k`` to leave out slow tests)

writes ``mutants/prescreen-pipeline.txt``, a line per mutant: name, verdict (killed,
survived, timeout, error), seconds; a second run goes on where the first stopped, and
``--again`` (after new tests) screens once more those it did not kill, and mutmut's
survivors not judged equivalent.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import run


def pending(module: str, again: bool, last: dict[str, str]) -> list[str]:
    """Mutants without a verdict it has not screened, or killed before yet without a
    verdict now (mutmut made them again: the function changed, its mutants' names are
    reused); or (``again``, after new tests) those it screened without killing them, and
    mutmut's survivors, not judged equivalent either."""
    if not again:
        return [name for name, code in run.meta(module).items()
                if code is None and last.get(name, "killed") == "killed"]
    judged = run.load_equivalent()
    return [name for name, code in run.meta(module).items() if name not in judged
            and ((code is None and last.get(name, "killed") != "killed") or code in run.SURVIVOR_CODES)]


def record_kill(module: str, mutant: str) -> None:
    """Into mutmut's result file, over no verdict or a survivor's (a new test killed it)."""
    path = run.MUTANTS / "inspector" / f"{module}.py.meta"
    data = json.loads(path.read_text())
    if mutant in data["exit_code_by_key"] and data["exit_code_by_key"][mutant] in (None, *run.SURVIVOR_CODES):
        data["exit_code_by_key"][mutant] = 1
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=4))
        tmp.replace(path)


class Screen:
    """A pytest plugin: collect once, then run the mutants in forked children."""

    def __init__(self, module: str, names: list[str], out: Path, jobs: int, timeout: float) -> None:
        self.module, self.names, self.out, self.jobs, self.timeout = module, names, out, jobs, timeout

    def pytest_runtestloop(self, session) -> bool:
        from _pytest.runner import runtestprotocol

        items = session.items

        def child(mutant: str, order: list[int], report: Path) -> None:
            os.setpgid(0, 0)  # killed as a group on timeout, with the btshark it may run
            os.environ["MUTANT_UNDER_TEST"] = mutant
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            failed, took = [], []
            for pos, i in enumerate(order):
                following = items[order[pos + 1]] if pos + 1 < len(order) else None
                began = time.perf_counter()
                if any(r.failed for r in runtestprotocol(items[i], nextitem=following, log=False)):
                    failed.append(i)
                    if mutant:  # the unmutated run goes on, listing every failure
                        break
                took.append(f"{i}:{time.perf_counter() - began:.4f}")
            report.write_text(" ".join(map(str, failed)) + "\n" + " ".join(took))
            os._exit(0)

        def start(mutant: str, order: list[int]) -> tuple[int, Path]:
            report = Path(f"/tmp/prescreen-{os.getpid()}-{time.monotonic_ns()}")
            pid = os.fork()
            if pid == 0:
                try:
                    child(mutant, order, report)
                finally:
                    os._exit(3)
            return pid, report

        order = list(range(len(items)))
        pid, report = start("", order)
        os.waitpid(pid, 0)
        if not report.exists():
            print("the unmutated run failed outside any test: nothing screened", file=sys.stderr)
            return True
        failures, timings = report.read_text().split("\n")
        report.unlink()
        broken = {int(i) for i in failures.split()}
        for i in sorted(broken):
            print(f"left out, fails unmutated: {items[i].nodeid}", file=sys.stderr)
        # Fastest first, as mutmut orders them; a test that kills moves to the front.
        seconds = {int(i): float(t) for i, _, t in (pair.partition(":") for pair in timings.split())}
        order = sorted((i for i in order if i not in broken), key=lambda i: seconds.get(i, 0.0))

        queue, running, done = list(self.names), {}, 0
        with self.out.open("a") as out:
            while queue or running:
                while queue and len(running) < self.jobs:
                    mutant = queue.pop(0)
                    running[start(mutant, order)] = (mutant, time.monotonic())
                time.sleep(0.02)
                for (pid, report), (mutant, began) in list(running.items()):
                    finished, _ = os.waitpid(pid, os.WNOHANG)
                    took = time.monotonic() - began
                    if finished and not report.exists():
                        verdict = "error"  # the child raised outside any test
                    elif finished:
                        failed = report.read_text().split("\n")[0].split()
                        verdict = "killed" if failed else "survived"
                        if failed:
                            record_kill(self.module, mutant)
                            order.remove(int(failed[0]))
                            order.insert(0, int(failed[0]))
                    elif took > self.timeout:
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        os.waitpid(pid, 0)
                        verdict = "timeout"
                    else:
                        continue
                    report.unlink(missing_ok=True)
                    del running[(pid, report)]
                    done += 1
                    out.write(f"{mutant} {verdict} {took:.1f}\n")
                    out.flush()
                    print(f"\r{done}/{len(self.names)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module")
    parser.add_argument("tests", nargs="+")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--again", action="store_true",
                        help="after new tests: screen again what it did not kill, and mutmut's survivors")
    parser.add_argument("--last", action="append", default=[], metavar="TEXT",
                        help="screen the mutants whose name holds TEXT after the others (repeatable): "
                             "e.g. a table of help texts, whose survivors each run every test")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="screen only the mutants whose name holds TEXT (repeatable): a function "
                             "whose own tests are slow ones, run with just those")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = run.MUTANTS / f"prescreen-{args.module}.txt"
    if args.inside:
        import pytest

        last = run.prescreen_verdicts(args.module)
        names = pending(args.module, args.again, last)
        if args.only:
            names = [name for name in names if any(text in name for text in args.only)]
        names.sort(key=lambda name: any(text in name for text in args.last))  # stable: file order otherwise
        plugin = Screen(args.module, names, out, args.jobs, args.timeout)
        return pytest.main(["-q", "-p", "no:cacheprovider", *args.tests], plugins=[plugin])
    if not (run.MUTANTS / "inspector" / f"{args.module}.py.meta").exists():
        parser.error(f"no mutants of {args.module}: run mutmut on it first")
    env = run.prepare()
    shutil.copytree(run.ROOT / "tests", run.MUTANTS / "tests", dirs_exist_ok=True)
    inner = [sys.executable, str(Path(__file__).resolve()), "--inside", *sys.argv[1:]]
    code = subprocess.run(["nice", "-n", "10", *inner], cwd=run.MUTANTS, env=env).returncode
    if out.exists():
        last = run.prescreen_verdicts(args.module)
        survivors = [name for name, verdict in last.items() if verdict == "survived"]
        print(f"{len(last)} screened, {len(survivors)} survived (in {out.relative_to(run.ROOT)})")
    return code


if __name__ == "__main__":
    sys.exit(main())
