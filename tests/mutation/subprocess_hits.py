"""Carries mutmut's per-test coverage across the tests' ``btshark`` subprocesses.

mutmut 3 chooses, for each mutated function, the tests that called it during one
"stats" run; it learns that from a trampoline that records calls in the memory of the
process it runs in. The CLI tests (``tests/test_cli.py`` and friends) reach most of
``inspector`` only through a ``btshark`` subprocess, so without this their calls are
lost and they would never be chosen to judge a mutant -- although, once chosen, they
do see it (``MUTANT_UNDER_TEST`` is inherited by the subprocess).

``run.py`` copies this file to ``mutants/sitecustomize.py`` and puts ``mutants/`` on
``PYTHONPATH``, so every Python started under the tests imports it at start-up:

* in a subprocess of the stats run (``MUTANT_UNDER_TEST=stats``) it writes, at exit,
  the functions that process called into ``$BTSHARK_MUTMUT_HITS``;
* in the pytest process (loaded as a plugin through ``PYTEST_PLUGINS``) it adds those
  names to the test that is being torn down, before mutmut's own teardown hook files
  the test's calls;
* when a mutant is under test it runs the chosen tests fastest first (by the stats
  run's durations): mutmut stops at the first failure, and a unit test that kills in
  milliseconds then saves the CLI tests' seconds;
* in mutmut's own process (whose forks run pytest) it makes ``gzip.compress`` write a
  zero timestamp: a test id made of gzip bytes (``test_capfile.py::test_not_a_capture``)
  otherwise changes with the second the module was imported, and mutmut, which names
  tests by id across several processes, stops on a test that is not found.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
import uuid
from pathlib import Path

from pluggy import HookimplMarker  # pytest's own marker, without importing pytest in every CLI run

HITS_ENV = "BTSHARK_MUTMUT_HITS"
hookimpl = HookimplMarker("pytest")


def _dump() -> None:
    from mutmut.state import state

    names = state()._stats
    if names:
        folder = Path(os.environ[HITS_ENV])
        part = folder / f".{uuid.uuid4().hex}.part"
        part.write_text("\n".join(sorted(names)))
        part.rename(folder / f"{os.getpid()}-{uuid.uuid4().hex}.hits")


def _load_config_from_mutants() -> None:
    """mutmut reads its configuration from the working directory on first use; a CLI
    test may start btshark elsewhere, so read it now from ``mutants/`` (this file's folder)."""
    from mutmut.configuration import config

    here = os.getcwd()
    os.chdir(Path(__file__).resolve().parent)
    try:
        config()
    finally:
        os.chdir(here)


def _gzip_without_timestamp() -> None:
    import functools
    import gzip

    gzip.compress = functools.partial(gzip.compress, mtime=0)


if os.environ.get(HITS_ENV) and os.environ.get("MUTANT_UNDER_TEST") == "stats":
    _load_config_from_mutants()
    atexit.register(_dump)
if os.environ.get(HITS_ENV) and Path(sys.argv[0]).name == "mutmut":
    _gzip_without_timestamp()


@hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: object) -> None:
    folder = os.environ.get(HITS_ENV)
    if not folder:
        return
    from mutmut.state import state

    for path in Path(folder).glob("*.hits"):
        state()._stats.update(path.read_text().split())
        path.unlink()


@hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list) -> None:
    if os.environ.get("MUTANT_UNDER_TEST", "") in ("", "stats", "fail", "list_all_tests"):
        return
    stats = Path(__file__).resolve().parent / "mutmut-stats.json"
    if not stats.exists():
        return
    duration = json.loads(stats.read_text())["duration_by_test"]
    items.sort(key=lambda item: duration.get(item.nodeid, float("inf")))
