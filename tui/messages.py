"""Messages that cross widgets and threads (posted from the loader thread too)."""
from __future__ import annotations

from textual.message import Message

from .model.load import Progress


class LoadProgress(Message):
    """A batch read: rows and sessions so far (``progress.done`` on the last)."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress


class JumpTo(Message):
    """Show index row ``row`` in the messages table (from the findings view and the ladder)."""

    def __init__(self, row: int) -> None:
        super().__init__()
        self.row = row
