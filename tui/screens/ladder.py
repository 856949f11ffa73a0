"""The flow ladder of one session: its two peers as columns, its messages as arrows between them."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from inspector.session import Session

from ..messages import JumpTo, LoadProgress
from ..widgets.ladder import Ladder
from ..widgets.sessionpane import SessionPane


class LadderScreen(Screen):
    BINDINGS = [Binding("escape,l", "app.pop_screen", "Back")]

    def __init__(self, session: int | None = None) -> None:
        super().__init__()
        self.wanted = session

    def compose(self) -> ComposeResult:
        yield SessionPane(self.wanted, "Flow ladder", self._ladder)
        yield Footer()

    def _ladder(self, session: Session) -> Ladder:
        return Ladder(self.app.index, session, id="ladder")

    def on_load_progress(self, message: LoadProgress) -> None:
        for pane in self.query(SessionPane):  # none yet while mounting: the pane's on_mount reads the index
            pane.loaded()

    def on_ladder_chosen(self, message: Ladder.Chosen) -> None:
        self.app.pop_screen()
        self.app.screen.post_message(JumpTo(message.row))
