"""Throughput of one session: payload bytes per second in each direction over its time."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from inspector.session import Session

from ..messages import LoadProgress
from ..widgets.sessionpane import SessionPane
from ..widgets.throughput import Throughput


class ThroughputScreen(Screen):
    BINDINGS = [Binding("escape,t", "app.pop_screen", "Back")]

    def __init__(self, session: int | None = None) -> None:
        super().__init__()
        self.wanted = session

    def compose(self) -> ComposeResult:
        yield SessionPane(self.wanted, "Throughput", self._plot)
        yield Footer()

    def _plot(self, session: Session) -> Throughput:
        return Throughput(self.app.index, session, id="throughput")

    def on_load_progress(self, message: LoadProgress) -> None:
        for pane in self.query(SessionPane):  # none yet while mounting: the pane's on_mount reads the index
            pane.loaded()
