"""The README's promise: its test command is exactly what CI runs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = "bash .ci/install && python3 -m pytest -q"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert f"\n{TEST_COMMAND}\n" in readme
    assert TEST_COMMAND in ci


def test_ci_treats_no_tests_as_failure():
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"$rc" -eq 5' in ci and "exit 1" in ci
