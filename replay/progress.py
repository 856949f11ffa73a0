"""Progress of a replay on stderr: a bar on a terminal, a plain line a second otherwise.

rich draws the bar (it comes with Textual already); plain lines keep logs and CI
output readable and are what the tests see.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


class Progress:
    """``update(tally)`` as blocks move; ``close()`` once at the end."""

    def __init__(self, total: int, what: str, stream: TextIO = sys.stderr, every: float = 1.0) -> None:
        self.total = total  # blocks to receive, or 0 when serving (open-ended)
        self.what = what
        self.stream = stream
        self.every = every
        self.t0 = time.monotonic()
        self._last = 0.0
        self._bar = None
        if stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("blocks {task.fields[info]}"), TimeElapsedColumn(),
                            console=Console(file=stream), transient=False)
            self._task = self._bar.add_task(what, total=total or None, info="")
            self._bar.start()

    def _rate(self, nbytes: int) -> str:
        return f"{_size(nbytes)}, {_size(nbytes / max(time.monotonic() - self.t0, 1e-6))}/s"

    def _line(self, blocks: int, nbytes: int) -> str:
        done = f"{blocks}/{self.total}" if self.total else str(blocks)
        return f"btshark: replay: {self.what} {done} blocks, {self._rate(nbytes)}"

    def update(self, tally) -> None:
        blocks, nbytes = (tally.received, tally.bytes_in) if self.total else (tally.served, tally.bytes_out)
        if self._bar is not None:
            self._bar.update(self._task, completed=blocks, info=self._rate(nbytes))
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            print(self._line(blocks, nbytes), file=self.stream, flush=True)

    def close(self, tally) -> None:
        if self._bar is not None:
            self._bar.stop()
            return
        blocks, nbytes = (tally.received, tally.bytes_in) if self.total else (tally.served, tally.bytes_out)
        print(self._line(blocks, nbytes), file=self.stream, flush=True)
