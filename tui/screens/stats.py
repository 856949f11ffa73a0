"""Statistics, as Wireshark's Statistics menu shows them: ``read --stats`` in a table.

The figures are ``inspector.stats``'s, over the messages the main screen's display
filter keeps (as ``-Y`` narrows ``--stats``), a row per session and side. They are
gathered in a worker, a batch at a time: opening a million-message capture does not
freeze the screen, and a capture still loading (or live) adds each batch as it comes.
Enter jumps to the session's first message.
"""
from __future__ import annotations

import threading

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from inspector.stats import Stats
from inspector.words import human_bytes, milliseconds, plural

from ..messages import JumpTo

COLUMNS = ("session", "side", "address", "messages", "payload", "rate", "requests", "answered",
           "wait median", "wait p95", "unchokes", "chokes", "unchoked s")


class StatsScreen(Screen):
    BINDINGS = [Binding("escape,c", "app.pop_screen", "Back")]

    def __init__(self, session: int | None = None) -> None:
        super().__init__()
        self.tally = Stats()
        self.counted = 0  # index rows gathered so far
        self.keep = None  # the main screen's filter, compiled, once mounted
        self._ready = False  # mounted: batches before that are gathered by on_mount
        self._lock = threading.Lock()  # one batch at a time into the tally

    def compose(self) -> ComposeResult:
        yield Static(id="stats-scope")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="stats")
        yield Static(id="stats-totals")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        main = self.app.screen_stack[1] if len(self.app.screen_stack) > 1 else None
        expression = getattr(main, "expression", "")
        self.keep = main.display_filter() if expression else None
        scope = f"Messages the filter {expression} keeps" if expression else "All messages"
        self.query_one("#stats-scope", Static).update(Text(f"{scope}, as btshark read --stats counts them "
                                                           "(Enter: the session's first message)"))
        self._ready = True
        self._gather()

    def on_load_progress(self, message: object) -> None:
        if self._ready:
            self._gather()

    @work(thread=True, group="stats")
    def _gather(self) -> None:
        with self._lock:
            ix, keep, tally, progress = self.app.index, self.keep, self.tally, self.app.progress
            end = progress.rows if progress is not None else 0  # rows the loader finished (len may be mid-append)
            for row in range(self.counted, end):
                record = ix.record(row)
                if keep is None or keep(record):
                    tally.add(record)
            self.counted = end
            figures = tally.as_dict()
        self.app.call_from_thread(self._show, figures)

    def _show(self, figures: dict) -> None:
        if self not in self.app.screen_stack:
            return  # closed while the worker counted
        table = self.query_one(DataTable)
        at = table.cursor_row
        table.clear()
        for s in figures["sessions"]:
            for label in "ab":
                side = s["sides"][label]
                latency, choke = side["latency"], side["choke"]
                rate = side["payload_rate"]
                table.add_row(s["id"], label, Text(side["addr"]), side["message_total"],
                              human_bytes(side["payload_bytes"]), f"{human_bytes(rate)}/s" if rate else "",
                              latency["requests"], latency["answered"],
                              milliseconds(latency["median"]) if latency["answered"] else "",
                              milliseconds(latency["p95"]) if latency["answered"] else "",
                              choke["unchokes"], choke["chokes"], f"{choke['unchoked_seconds']:.3f}",
                              key=f"{s['id']}{label}")
        if table.row_count:
            table.move_cursor(row=min(at, table.row_count - 1))
        talkers = "; ".join(f"{t['addr']} {human_bytes(t['payload_bytes'])} in {plural(t['sessions'], 'session')}"
                            for t in figures["top_talkers"])
        findings = ", ".join(f"{n} {kind}" for kind, n in figures["findings"].items()) or "none"
        self.query_one("#stats-totals", Static).update(Text(f"Top talkers (payload sent): {talkers or '-'}\n"
                                                            f"Findings: {findings}"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        session = int(str(event.row_key.value)[:-1])
        rows = self.app.index.by_session.get(session)
        if rows:
            self.app.pop_screen()
            self.app.screen.post_message(JumpTo(rows[0]))
