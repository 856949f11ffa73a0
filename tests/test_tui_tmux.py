"""``btshark tui`` in a real terminal: tmux at 160x45, keys sent, the screen read back.

Pilot drives the app in-process with a fake driver; this runs the command a user
types, through the terminal driver, and reads what a terminal would show
(``tmux capture-pane``). The tmux server is a private one (its socket in the
test's temporary folder), so the test neither sees nor disturbs anyone's sessions. Every wait polls the screen, or the
exit-status file, against a deadline.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE, read_jsonl, read_sessions

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI installs it)")

DEADLINE = 20.0  # seconds for any one thing to appear on screen
# The server (and so the app) inherits this environment; COLUMNS or LINES (set under pytest
# here) would override the window's real size in the app's terminal-size lookup.
TERMINAL_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


class Terminal:
    """One tmux window running a command, on a private tmux server."""

    def __init__(self, socket: Path, name: str) -> None:
        self.socket, self.name = socket, name

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, check=True,
                              timeout=10, env=TERMINAL_ENV).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, *expected: str | re.Pattern) -> str:
        """The screen once it shows every one of ``expected`` (text, or a pattern searched for);
        fails after DEADLINE with what is missing and the last screen (a terminal redraws in pieces)."""
        end = time.monotonic() + DEADLINE
        while True:
            text = self.screen()
            missing = [e for e in expected if not (e.search(text) if isinstance(e, re.Pattern) else e in text)]
            if not missing:
                return text
            if time.monotonic() > end:
                raise AssertionError(f"not on screen after {DEADLINE:.0f} s: {missing}\n{text}")
            time.sleep(0.05)  # a poll interval, not a wait for an event


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[Terminal, Path]]:
    """``btshark tui SAMPLE`` (this checkout's) in a 160x45 tmux window; its exit status goes to a file."""
    status = tmp_path / "status"
    command = (f"PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m inspector tui "
               f"{shlex.quote(str(SAMPLE.relative_to(REPO)))}; echo EXIT=$? > {shlex.quote(str(status))}")
    term = Terminal(tmp_path / "tmux", "tui")
    term.tmux("new-session", "-d", "-s", term.name, "-x", "160", "-y", "45", "-c", str(REPO), "sh", "-c", command)
    try:
        yield term, status
    finally:
        subprocess.run(["tmux", "-S", str(term.socket), "kill-server"], capture_output=True, timeout=10,
                       env=TERMINAL_ENV)


def wait_for_file(path: Path) -> str:
    end = time.monotonic() + DEADLINE
    while not path.exists() or not path.read_text().endswith("\n"):
        assert time.monotonic() < end, f"{path.name} not written within {DEADLINE:.0f} s"
        time.sleep(0.05)
    return path.read_text().strip()


def line(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.M)


def message_row(record: dict) -> re.Pattern:
    """A messages-table row: frame, time, session, arrow, type."""
    return line(rf"^\s*{record['frame']}\s+\d+\.\d{{6}}\s+{record['session']}\s+[→←]\s+{record['type']}\s")


def test_tui_in_a_real_terminal(terminal: tuple[Terminal, Path]) -> None:
    term, status = terminal
    session = read_sessions(SAMPLE)[0]
    records = read_jsonl(SAMPLE)
    a, b = session["clients"]["a"], session["clients"]["b"]
    term.wait_for(
        line(rf"^\s*{session['id']}\s+{re.escape(session['a'])}\s+{re.escape(session['b'])}\s+{re.escape(a)}\s+"
             rf"{re.escape(b)}\s+{session['info_hash'][:12]}\s+tcp\s"),  # the sessions table's row
        f"info hash: {session['info_hash']}",  # the first message, a handshake, in the details
        *map(message_row, records[:10]),
    )

    third = records[2]
    term.keys("Down", "Down")
    term.wait_for(f"Frame {third['frame']}, session #{third['session']} (tcp)", f"BitTorrent {third['type']}")

    term.keys("i")
    term.wait_for(line(r"^\s*Format\s+pcap\s*$"), line(r"^\s*Sessions\s+1\s*$"),
                  line(rf"^\s*Messages\s+{len(records)} "))  # the sample has no findings
    term.keys("Escape")
    term.wait_for(f"BitTorrent {third['type']}", line(rf"^\s*{session['id']}\s+{re.escape(session['a'])}\s"))

    term.keys("q")
    assert wait_for_file(status) == "EXIT=0"
