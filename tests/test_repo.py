"""The README's promises about its two commands, and that CI runs exactly those.

CI proves the commands themselves (.ci/fresh-clone runs the run command in a fresh clone; .ci/run
runs the test command, whose tests these are): here, that what CI runs is what the README says."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import btshark_command

ROOT = Path(__file__).resolve().parent.parent
RUN_COMMAND = "./btshark.sh"
TEST_COMMAND = "bash .ci/install && . .venv/bin/activate && python -m pytest -q"


def two_commands_blocks() -> list[str]:
    """The fenced code blocks of the README's "Two commands" section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"^```\n(.*?)^```$", section, re.M | re.S)]


def test_readme_gives_the_run_command_then_the_test_command():
    assert two_commands_blocks() == [RUN_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND in ci


def test_ci_runs_the_readme_run_command_in_a_fresh_clone():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "bash .ci/fresh-clone" in ci
    # .ci/fresh-clone takes the command from the README: its extraction must find the same one.
    awk = re.search(r"\$\(awk '(.*?)' README\.md\)", (ROOT / ".ci" / "fresh-clone").read_text(), re.S)
    assert awk is not None
    found = subprocess.run(["awk", awk.group(1), "README.md"], cwd=ROOT, capture_output=True,
                           text=True, check=True, timeout=30).stdout
    assert found.strip() == RUN_COMMAND


def test_the_run_script_is_executable_in_a_clone():
    mode = subprocess.run(["git", "ls-files", "-s", "--", RUN_COMMAND.removeprefix("./")], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=30).stdout.split()
    assert mode and mode[0] == "100755"


def test_the_tests_run_the_venvs_btshark():
    """Under the README's test command the btshark the tests run is .venv's: with the venv's python
    but not its bin/ on PATH, a btshark left elsewhere (pyenv's, another clone's) would be tested."""
    venv = ROOT / ".venv"
    if Path(sys.prefix) != venv:
        pytest.skip(f"not run from {venv} (the README's test command runs there)")
    assert Path(btshark_command()[0]) == venv / "bin" / "btshark"


def test_ci_treats_no_tests_as_failure():
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"$rc" -eq 5' in ci and "exit 1" in ci
