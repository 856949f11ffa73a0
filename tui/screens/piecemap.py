"""The piece map of one session: per side, what was announced, requested, received and served."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from inspector.session import Session

from ..messages import LoadProgress
from ..widgets.piecemap import PieceMap
from ..widgets.sessionpane import SessionPane


class PieceMapScreen(Screen):
    BINDINGS = [Binding("escape,p", "app.pop_screen", "Back")]

    def __init__(self, session: int | None = None) -> None:
        super().__init__()
        self.wanted = session

    def compose(self) -> ComposeResult:
        yield SessionPane(self.wanted, "Piece map", self._map)
        yield Footer()

    def _map(self, session: Session) -> PieceMap:
        return PieceMap(self.app.index, session, id="piece-map")

    def on_load_progress(self, message: LoadProgress) -> None:
        for pane in self.query(SessionPane):  # none yet while mounting: the pane's on_mount reads the index
            pane.loaded()
