"""Mutation score of inspector/, per module, with the fast test suite as the oracle.

Why: a passing suite says the code does what the tests check, not that the tests check
what the code does. Mutation testing changes the code one small edit at a time (a
``<`` for a ``<=``, a constant plus one, a call dropped) and counts the edits that no
test notices: each survivor is either equivalent (the edit changes nothing observable)
or a behaviour no test pins down.

The tool is mutmut 3.8.1 (``pip install -e .[mutation]``), configured in
pyproject.toml's ``[tool.mutmut]`` (modules, oracle test files). This script:

* runs ``mutmut run`` module by module (``--modules filters,frames``; all by default),
  at ``nice -n 10``, with ``--max-children`` workers (1 by default: the machine is shared),
  skipping modules whose every mutant already has a result unless ``--rerun``;
* stops starting modules after ``--budget`` minutes (the running one finishes);
* makes the CLI tests count: ``subprocess_hits.py`` becomes ``mutants/sitecustomize.py``
  so calls made inside ``btshark`` subprocesses reach mutmut's test selection;
* prints a table per module and writes ``tests/mutation/RESULTS.md``: date, tool
  version, oracle, figures, and every survivor (file:line, the edit), marked
  equivalent when ``equivalent.toml`` says why (an entry whose edit no longer matches
  the mutant is reported stale, and the survivor counts as a gap again).

Usage: ``python3 tests/mutation/run.py [--modules a,b] [--max-children N] [--survivors] [--report-only]``
from the repository root (results accumulate in ``mutants/``, git-ignored).
"""
from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MUTANTS = ROOT / "mutants"
RESULTS = HERE / "RESULTS.md"
EQUIVALENT = HERE / "equivalent.toml"
# Smaller and faster first: a run cut short by --budget still covers the most modules.
ORDER = ["filters", "stats", "conformance", "pieces", "frames", "output", "session", "extensions", "clients",
         "capfile", "tcp", "utp", "parser", "pipeline"]
HUNK = re.compile(r"^@@ -(\d+)")
# mutmut's exit codes for 'survived' and 'no tests', and 255: its runner raised (a test id
# that pytest could not select, say), which mutmut files under 'timeout' but nothing caught.
SURVIVOR_CODES = (0, 5, 33, 255)
RUNNER_ERROR = 255


@dataclass
class Survivor:
    name: str
    status: str
    line: int
    removed: list[str]
    added: list[str]
    why: str | None = None
    stale: bool = False

    @property
    def edit(self) -> str:
        return "\n".join([*(f"-{x}" for x in self.removed), *(f"+{x}" for x in self.added)])


@dataclass
class ModuleResult:
    module: str
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[Survivor] = field(default_factory=list)
    prescreened: int = 0  # of the kills, those recorded by prescreen.py

    def n(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def tested(self) -> int:
        """Mutants with a verdict that bears on the tests (not 'not checked' or 'skipped')."""
        return self.total - self.n("not checked") - self.n("skipped")

    @property
    def stopped(self) -> int:
        """Looped until mutmut's CPU limit: SIGXCPU ('timeout') or, ignored, SIGKILL ('segfault')."""
        return self.n("timeout") + self.n("segfault")

    @property
    def caught(self) -> int:
        return self.n("killed") + self.stopped + self.n("caught by type check")

    @property
    def equivalent(self) -> int:
        return sum(1 for s in self.survivors if s.why and not s.stale)

    def score(self, *, without_equivalent: bool) -> float | None:
        denominator = self.tested - (self.equivalent if without_equivalent else 0)
        return 100.0 * self.caught / denominator if denominator else None


def mutmut_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


def configured_modules() -> list[str]:
    names = [Path(p).stem for p in mutmut_config()["only_mutate"]]
    return sorted(names, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))


def prepare() -> dict[str, str]:
    """mutants/ with the subprocess-hits shim as sitecustomize; the environment for mutmut."""
    # The tests find ../shared beside their repository, which for the copy in mutants/ is
    # this checkout: a link there lets the tests of the shared captures join the oracle.
    link = ROOT / "shared"
    if (ROOT.parent / "shared").is_dir() and not link.exists():
        link.symlink_to(Path("..") / "shared")
    hits = MUTANTS / ".hits"
    hits.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "subprocess_hits.py", MUTANTS / "sitecustomize.py")
    # Byte code written: each btshark subprocess otherwise compiles every mutated module
    # (thousands of functions) again, 3 s of a 0.5 s CLI run.
    env = {k: v for k, v in os.environ.items() if k not in ("MUTANT_UNDER_TEST", "CI", "PYTHONDONTWRITEBYTECODE")}
    # The mutated package first for every Python the tests start (the btshark entry point
    # included, which imports whatever comes first on its path).
    env["PYTHONPATH"] = str(MUTANTS)
    env["PYTEST_PLUGINS"] = "sitecustomize"
    env["BTSHARK_MUTMUT_HITS"] = str(hits)
    return env


def meta(module: str) -> dict[str, int | None]:
    path = MUTANTS / "inspector" / f"{module}.py.meta"
    if not path.exists():
        return {}
    return json.loads(path.read_text())["exit_code_by_key"]


def complete(module: str) -> bool:
    codes = meta(module)
    return bool(codes) and all(code is not None for code in codes.values())


def run_module(module: str, env: dict[str, str], max_children: int, rerun: bool,
               only: list[str] | None = None) -> int:
    """mutmut on one module: ``only`` these mutants, else its mutants without a result
    by name (a run cut short resumes), or all of them (``rerun``, or before mutmut has
    listed them)."""
    pending = [name for name, code in meta(module).items() if code is None]
    names = only or (pending if pending and not rerun else [f"inspector.{module}.*"])
    command = ["nice", "-n", "10", "mutmut", "run", "--max-children", str(max_children), *names]
    count = len(only) if only else len(pending) if pending and not rerun else "all"
    print(f"== {module}: {count} mutants", flush=True)
    log = MUTANTS / f"run-{module}.log"
    with log.open("w") as out:
        proc = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    tail = log.read_text(errors="replace").replace("\r", "\n").strip().splitlines()[-3:]
    print("\n".join(f"   {line}" for line in tail), flush=True)
    return proc.returncode


def def_lines(source: str) -> dict[str, int]:
    """'func' and 'Class.method' -> the line of their ``def``."""
    out: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out[f"{node.name}.{item.name}"] = item.lineno
    return out


def function_key(mutant: str) -> str:
    """'inspector.m.xǁCǁf__mutmut_3' -> 'C.f'; 'inspector.m.x_f__mutmut_3' -> 'f'."""
    mangled = mutant.rpartition(".")[2].rpartition("__mutmut_")[0]
    if mangled.startswith("x_"):
        return mangled[2:]
    _, cls, func = mangled.split("ǁ")
    return f"{cls}.{func}"


def survivor(name: str, status: str, path: str, defs: dict[str, int]) -> Survivor:
    import libcst as cst
    from mutmut.mutation.diff_apply import get_diff_for_mutant, read_functions_from_index

    diff = get_diff_for_mutant(name, path=path).splitlines()[2:]
    removed = [line[1:] for line in diff if line.startswith("-")]
    added = [line[1:] for line in diff if line.startswith("+")]
    # The diff is of the function alone, from its first line (decorators or comments above
    # the def included): the first changed line, counted in it, anchored at the def.
    at = 0
    for line in diff:
        if m := HUNK.match(line):
            at = int(m.group(1))
        elif line.startswith(("-", "+")):
            break
        else:
            at += 1
    functions = read_functions_from_index(name, path)
    orig = cst.Module([functions[0]]).code.strip().splitlines() if functions else []
    def_index = next((i for i, line in enumerate(orig) if line.lstrip().startswith(("def ", "async def "))), 0)
    return Survivor(name, status, defs.get(function_key(name), 0) + (at - 1) - def_index, removed, added)


def load_equivalent() -> dict[str, dict]:
    if not EQUIVALENT.exists():
        return {}
    return {entry["mutant"]: entry for entry in tomllib.loads(EQUIVALENT.read_text()).get("equivalent", [])}


def prescreen_verdicts(module: str) -> dict[str, str]:
    """prescreen.py's last verdict per mutant (its log: name, verdict, seconds per line)."""
    log = MUTANTS / f"prescreen-{module}.txt"
    if not log.exists():
        return {}
    return {name: verdict for name, verdict, _ in (line.split() for line in log.read_text().splitlines())}


def collect(module: str, equivalent: dict[str, dict]) -> ModuleResult:
    from mutmut.stats import status_by_exit_code

    result = ModuleResult(module)
    path = f"inspector/{module}.py"
    defs = def_lines((ROOT / path).read_text())
    screened = prescreen_verdicts(module)
    for name, code in sorted(meta(module).items(), key=lambda kv: kv[0]):
        status = "error" if code == RUNNER_ERROR else status_by_exit_code[code]
        if status == "killed" and screened.get(name) == "killed":
            result.prescreened += 1
        elif status == "not checked" and screened.get(name) == "survived":
            # Survived its module's tests, not yet run by mutmut against the whole suite:
            # counted as a survivor (other tests may yet kill it), so the score errs low.
            status = "survived (pre-screen)"
        result.counts[status] = result.counts.get(status, 0) + 1
        if status in ("survived", "survived (pre-screen)", "no tests", "error"):
            s = survivor(name, status, path, defs)
            entry = equivalent.get(name)
            if entry:
                s.why = entry["why"]
                s.stale = entry["edit"].strip() != s.edit.strip()
            result.survivors.append(s)
    result.survivors.sort(key=lambda s: s.line)
    return result


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


COLUMNS = ["module", "mutants", "killed", "of which pre-screen", "timeout", "survived", "of which pre-screen",
           "no tests", "equivalent", "not run", "score %", "score % (equivalents out)"]


def rows(results: list[ModuleResult]) -> list[list[str]]:
    out = []
    for r in results:
        out.append([r.module, str(r.total), str(r.n("killed")), str(r.prescreened), str(r.stopped),
                     str(r.n("survived") + r.n("survived (pre-screen)")), str(r.n("survived (pre-screen)")),
                     str(r.n("no tests")), str(r.equivalent),
                     str(r.n("not checked") + r.n("skipped")),
                     percent(r.score(without_equivalent=False)), percent(r.score(without_equivalent=True))])
    return out


def table(results: list[ModuleResult]) -> str:
    body = [COLUMNS, *rows(results)]
    widths = [max(len(row[i]) for row in body) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                     for row in body)


def markdown(results: list[ModuleResult], notes: list[str]) -> str:
    cfg = mutmut_config()
    left_out = ", ".join(Path(a.split("=", 1)[1]).stem for a in cfg["pytest_add_cli_args"] if a.startswith("--ignore="))
    lines = [
        "# Mutation score of inspector/",
        "",
        "Written by `python3 tests/mutation/run.py` (see its docstring); the judgements of",
        "equivalent mutants are in `tests/mutation/equivalent.toml`.",
        "",
        f"* date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"* tool: mutmut {version('mutmut')}, Python {sys.version.split()[0]}",
        "* oracle: every test file in tests/ (the CLI tests count through `subprocess_hits.py`; the",
        "  tests of ../shared/captures run: a `shared` link in the checkout puts it beside mutants/)",
        f"* left out of the oracle (pyproject.toml's --ignore): {left_out}",
        "* killed: by mutmut, or by `prescreen.py` (the module's own test files, forked from one",
        "  process; a test of the suite failed, so the suite kills it); survived: mutmut's survivors,",
        "  and the pre-screen's that mutmut has not run yet (counted as survivors, so the score errs",
        "  low: tests outside the module's own may kill them); not run: neither tool has a verdict",
        "* score = (killed + timeout) / mutants run; timeout: the tests looped until mutmut's CPU",
        "  limit stopped them; 'no tests' (no oracle test calls the function) and 'error' (mutmut's",
        "  runner raised, which mutmut itself files as a timeout) count as survivors;",
        "  the last column leaves the survivors judged equivalent out of the mutants run",
        *[f"* {note}" for note in notes],
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *("| " + " | ".join(row) + " |" for row in rows(results)),
        "",
    ]
    for r in results:
        if not r.survivors:
            continue
        lines += [f"## {r.module}: {len(r.survivors)} survivors ({r.equivalent} equivalent)", ""]
        for s in r.survivors:
            verdict = ("equivalent: " + s.why) if s.why and not s.stale else (
                "STALE equivalence entry (the edit changed): gap" if s.stale else "gap")
            tag = "" if s.status == "survived" else " (pre-screen)" if s.status.endswith("(pre-screen)") else f" ({s.status})"
            lines += [f"* `inspector/{r.module}.py:{s.line}` `{s.name.rpartition('.')[2]}`{tag}: {verdict}",
                      "  ```diff", *(f"  {x}" for x in s.edit.splitlines()), "  ```"]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", help="comma-separated modules of inspector/ (default: all configured)")
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("--budget", type=float, default=None, help="minutes after which no new module starts")
    parser.add_argument("--rerun", action="store_true", help="run modules that already have every result")
    parser.add_argument("--survivors", action="store_true",
                        help="run again only the survivors not judged equivalent (after new tests)")
    parser.add_argument("--report-only", action="store_true", help="no mutmut run: table and RESULTS.md only")
    args = parser.parse_args()

    modules = configured_modules()
    if args.modules:
        wanted = args.modules.split(",")
        unknown = sorted(set(wanted) - set(modules))
        if unknown:
            parser.error(f"not configured in [tool.mutmut] only_mutate: {', '.join(unknown)}")
        modules = [m for m in modules if m in wanted]

    os.chdir(ROOT)
    notes: list[str] = []
    if not args.report_only:
        env = prepare()
        started = time.monotonic()
        for module in modules:
            if args.budget is not None and time.monotonic() - started > args.budget * 60:
                notes.append(f"not run this time (--budget {args.budget:g} min): {module}")
                continue
            if args.survivors:
                judged = load_equivalent()
                gaps = [name for name, code in meta(module).items()
                        if code in SURVIVOR_CODES and name not in judged]
                if gaps:
                    code = run_module(module, env, args.max_children, False, gaps)
                    if code:
                        notes.append(f"mutmut exited {code} on {module} (mutants/run-{module}.log)")
                continue
            if complete(module) and not args.rerun:
                print(f"== {module}: every mutant has a result (--rerun to run again)")
                continue
            code = run_module(module, env, args.max_children, args.rerun)
            if code:
                notes.append(f"mutmut exited {code} on {module} (mutants/run-{module}.log)")

    equivalent = load_equivalent()
    results = [collect(m, equivalent) for m in configured_modules() if meta(m)]
    print(table(results))
    RESULTS.write_text(markdown(results, notes))
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
