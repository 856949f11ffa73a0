"""Every finding of the capture, by severity and frame; Enter jumps to its message."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from inspector.output import safe_text

from ..messages import JumpTo
from ..model.index import FINDING


class FindingsScreen(Screen):
    BINDINGS = [Binding("escape,e", "app.pop_screen", "Back")]

    def __init__(self, session: int | None = None) -> None:
        super().__init__()
        self._rows = 0  # index rows listed so far
        self._ready = False  # on_mount has begun: batches before it are taken then

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True, id="findings")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in ("frame", "session", "side", "severity", "kind", "detail"):
            table.add_column(name, key=name)
        self._ready = True
        self.on_load_progress(None)

    def on_load_progress(self, message) -> None:
        if not self._ready:
            return
        table = self.query_one(DataTable)
        ix, progress = self.app.index, self.app.progress
        end = progress.rows if progress is not None else 0  # rows the loader finished (len may be mid-append)
        for row in range(self._rows, end):
            if ix.kind[row] == FINDING:
                e = ix.event(row)
                table.add_row(ix.frame[row], ix.session[row], "ab"[ix.side[row]], e.severity, e.kind,
                              Text(safe_text(e.detail)), key=str(row))
        self._rows = end

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        row = int(event.row_key.value)
        self.app.pop_screen()
        self.app.screen.post_message(JumpTo(row))
