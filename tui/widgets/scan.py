"""Folding one session's index rows into a view's data, in a thread, as the capture loads.

The views (ladder, piece map, throughput) read every message of a session, and a
session can hold a million: that is work for a thread, not for the UI's event loop.
The loader keeps appending rows while a view is open, so a scan only ever folds the
rows it has not seen yet, and one scan runs at a time: a batch that arrives while a
scan runs asks for one more pass when it ends. The fold is written by that one thread
only and read by the UI between passes, the same contract as the index itself.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from textual.message import Message
from textual.widget import Widget
from textual.worker import get_current_worker

from ..model.index import MessageIndex

CHUNK = 1 << 16  # rows folded between looks at the cancel flag


class Fold(Protocol):
    def feed(self, index: MessageIndex, rows: Sequence[int]) -> None: ...


class Folded(Message):
    """A scan pass ended and its view has laid out what it folded (bubbles up from the view)."""


class SessionScan:
    """Feeds the rows of session ``sid`` not fed yet to ``fold``, one thread at a time.

    ``poke()`` from the UI thread (on mount, on each loading batch); ``fed`` is called
    on the UI thread after each pass, then ``owner`` posts Folded. ``running`` is False
    once everything poked for has been folded.
    """

    def __init__(self, owner: Widget, index: MessageIndex, sid: int, fold: Fold, fed: Callable[[], None]) -> None:
        self.owner = owner
        self.index = index
        self.sid = sid
        self.fold = fold
        self.rows_fed = 0
        self.running = False
        self._again = False
        self._fed = fed

    def poke(self) -> None:
        if self.running:
            self._again = True
            return
        self.running = True
        self.owner.run_worker(self._run, thread=True, group="session-scan", description=f"scan session {self.sid}")

    def _run(self) -> None:
        worker = get_current_worker()
        rows = self.index.by_session.get(self.sid, ())  # none yet: the session has no rows so far
        while self.rows_fed < len(rows) and not worker.is_cancelled:
            stop = min(len(rows), self.rows_fed + CHUNK)
            self.fold.feed(self.index, rows[self.rows_fed:stop])
            self.rows_fed = stop
        if not worker.is_cancelled:  # cancelled: the view was closed, nobody to tell
            self.owner.app.call_from_thread(self._done)

    def _done(self) -> None:
        self.running = False
        self._fed()
        self.owner.post_message(Folded())
        if self._again:
            self._again = False
            self.poke()
