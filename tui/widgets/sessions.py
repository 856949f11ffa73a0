"""The sessions table: one row per connection, sortable by any column (click its header)."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from inspector.output import safe_text
from inspector.session import Session

ALL = "all"
COLUMNS = ("id", "a", "b", "client a", "client b", "info hash", "transport", "enc", "state",
           "msgs a", "msgs b", "bytes a", "bytes b", "duration", "findings")


def _cells(s: Session) -> tuple:
    a, b = s.sides
    return (s.id, Text(a.addr), Text(b.addr), Text(safe_text(a.client or "-")), Text(safe_text(b.client or "-")),
            s.info_hash.hex()[:12] if s.info_hash else "-", s.transport, "MSE" if s.encrypted else "",
            s.state, sum(a.messages.values()), sum(b.messages.values()), a.stream_bytes, b.stream_bytes,
            round(s.end - s.start, 3), len(s.findings))


class SessionsTable(DataTable):
    """``all`` first, then the sessions; the row key is the session id (or ``all``)."""

    DEFAULT_CSS = "SessionsTable { height: auto; max-height: 12; }"

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._sorted: tuple[str, bool] | None = None
        self._shown: dict[int, tuple] = {}

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.add_column(name, key=name)
        self.add_row(ALL, "all sessions", *[""] * (len(COLUMNS) - 2), key=ALL)

    def update_sessions(self, sessions: list[Session]) -> None:
        """Add new sessions and refresh changed ones (called per loading batch)."""
        for s in sessions:
            cells = _cells(s)
            old = self._shown.get(s.id)
            if old == cells:
                continue
            if old is None:
                self.add_row(*cells, key=str(s.id))
            else:
                for name, new, was in zip(COLUMNS, cells, old):
                    if new != was:
                        self.update_cell(str(s.id), name, new)
            self._shown[s.id] = cells
        if self._sorted is not None:
            self._sort(*self._sorted)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        reverse = self._sorted == (key, False)
        self._sorted = (key, reverse)
        self._sort(key, reverse)

    def _sort(self, key: str, reverse: bool) -> None:
        def order(values: tuple) -> tuple:
            sid, value = values
            if sid == ALL:  # the "all sessions" row stays on top whichever way
                return (2 if reverse else 0, 0, "")
            number = isinstance(value, (int, float))
            return (1, 0 if number else 1, value if number else str(value))

        self.sort("id", key, key=order, reverse=reverse)
