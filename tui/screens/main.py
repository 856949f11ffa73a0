"""The main screen, as in Wireshark: filter, sessions, messages, details, bytes.

On a live capture a status line takes the progress bar's place: frames captured
and dropped, whether the messages table follows the newest message, and
whether the view is paused. A filter is applied to each live batch's new rows
only, so following a filtered capture costs what the batch holds.
"""
from __future__ import annotations

from array import array

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static, Tree

from inspector.filters import compile_filter

from ..messages import JumpTo, LoadProgress
from ..model.index import FINDING, LIGHT_FIELDS
from ..widgets.details import DetailsTree
from ..widgets.filterbar import FilterBar
from ..widgets.hexpane import HexPane
from ..widgets.messages import HEADER, MessagesView
from ..widgets.sessions import ALL, SessionsTable


class MainScreen(Screen):
    AUTO_FOCUS = "#messages"  # not the filter bar: q, e, i, ? must reach their bindings at start
    BINDINGS = [
        Binding("slash,f", "focus_filter", "Filter"),
        Binding("s", "focus('sessions')", "Sessions", show=False),
        Binding("m", "focus('messages')", "Messages", show=False),
        Binding("d", "focus('details')", "Details", show=False),
        Binding("escape", "cancel_load", "Stop loading", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.session: int | None = None  # None: all sessions
        self.expression = ""
        self._compiled_filter: tuple | None = None  # (expression, its compiled filter)
        self.filtered: array | None = None  # rows kept by the filter, or None when none applies
        self._rows = 0  # rows the loader has handed over (all of them complete)
        self._filtered_upto = 0  # rows below this have been through the filter
        self._counts: tuple[int, int | None, bool] = (0, None, False)  # live: captured, dropped, paused
        self._ready = False  # on_mount has begun: the widgets are there; before, the app's batches wait

    def compose(self) -> ComposeResult:
        app = self.app
        yield FilterBar(id="filter")
        yield Label("", id="filter-error", markup=False)  # the filter and its error are text
        with Vertical(id="loading"):
            yield Label("Reading the capture… (Esc stops)", id="loading-label")
            yield ProgressBar(total=100, show_eta=False, id="loading-bar")
        yield Label("", id="live-status", markup=False)
        yield SessionsTable(id="sessions")
        yield Static(HEADER, id="messages-header")
        yield MessagesView(app.index, live=app.live is not None, id="messages")
        with Horizontal(id="lower"):
            yield DetailsTree(id="details")
            yield HexPane(id="hex")
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        view = self.query_one(MessagesView)
        view.focus()  # as in Wireshark: keys go to the list; / reaches the filter
        live = self.app.live is not None
        self.query_one("#loading").display = not live
        self.query_one("#live-status").display = live
        if live:
            self.watch(view, "following", lambda _: self._show_live_status(), init=False)
            self._show_live_status()
        if self.app.progress is not None:  # a batch that came while this screen was mounting
            self.on_load_progress(LoadProgress(self.app.progress))

    # -- live --------------------------------------------------------------------------

    def on_live_counts(self, captured: int, dropped: int | None, paused: bool) -> None:
        """Counts from the app's batch timer, which may fire before this screen is mounted."""
        if (captured, dropped, paused) != self._counts:
            self._counts = (captured, dropped, paused)
            if self._ready:  # otherwise on_mount shows them
                self._show_live_status()

    def _show_live_status(self) -> None:
        captured, dropped, paused = self._counts
        done = not self.app.loading
        parts = [f"{'Stopped' if done else 'Capturing'} on {self.app.info.path}",
                 f"{captured:,} frames captured",
                 f"{dropped:,} dropped" if dropped is not None else "dropped: dumpcap counts them when stopped (ctrl+e)"]
        if paused:
            parts.append("PAUSED (space resumes; capture continues)")
        if not done:
            parts.append("following" if self.query_one(MessagesView).following else "not following (End follows)")
        self.query_one("#live-status", Label).update(" · ".join(parts))

    # -- loading ----------------------------------------------------------------------

    def on_load_progress(self, message: LoadProgress) -> None:
        if not self._ready:
            return  # on_mount takes the latest batch from the app
        p = message.progress
        self._rows = p.rows
        bar = self.query_one("#loading-bar", ProgressBar)
        bar.update(total=max(p.size, 1), progress=p.read)
        self.query_one(SessionsTable).update_sessions(p.sessions)
        view = self.query_one(MessagesView)
        if view.first_ts != self.app.first_ts:  # a live capture's first frame came after the first show
            view.first_ts = self.app.first_ts
            view.refresh_rows()
        if self.expression and self.app.live is not None:
            self._filter_new(p.rows)
        elif self.expression:
            pass  # the filter is applied again when loading ends
        elif self.session is None:
            view.rows = range(p.rows)
            view.grew()
        elif view.rows is self.app.index.by_session.get(self.session):
            view.grew()
        if p.done:
            self.query_one("#loading").display = False
            if self.app.live is not None:
                self._show_live_status()
            if p.cancelled:
                self.notify(f"Stopped reading: {p.rows} messages so far", severity="warning", markup=False)
            for warning in p.warnings:
                self.notify(warning, severity="warning", timeout=10, markup=False)
            if self.expression:
                self._apply()

    def _filter_new(self, rows: int) -> None:
        """Extend a live filter's result with the rows that came since it was last applied."""
        if self.filtered is None:
            return  # the worker filtering everything so far has not finished: it takes these too
        keep_fn = self._compiled(self.expression)
        ix = self.app.index
        session = ix.session
        record = ix.light_record if keep_fn.fields <= LIGHT_FIELDS else ix.record
        fresh = (r for r in range(self._filtered_upto, rows)
                 if (self.session is None or session[r] == self.session) and keep_fn(record(r)))
        self.filtered.extend(fresh)
        self._filtered_upto = rows
        self.query_one(MessagesView).grew()

    def action_cancel_load(self) -> None:
        if self.app.loading:
            self.app.cancel_load()

    # -- selection ----------------------------------------------------------------------

    def _base(self) -> array | range:
        index = self.app.index
        if self.session is None:
            return range(self._rows)
        return index.by_session.get(self.session, array("I"))

    @on(DataTable.RowHighlighted, "#sessions")
    def session_chosen(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        self.session = None if key == ALL else int(key)
        self._apply()

    def _apply(self, keep_row: int | None = None) -> None:
        view = self.query_one(MessagesView)
        keep = view.selected_row if keep_row is None else keep_row
        if not self.expression:
            self.filtered = None
            view.show(self._base(), self.app.first_ts, keep_row=keep if keep >= 0 else None)
            return
        self.filtered = None  # until the worker has it; live batches meanwhile wait for it
        self._filter(self.expression, self._base(), keep, self._rows)

    @work(thread=True, exclusive=True, group="filter")
    def _filter(self, expression: str, base: array | range, keep: int, upto: int) -> None:
        keep_fn = self._compiled(expression)
        ix = self.app.index
        record = ix.light_record if keep_fn.fields <= LIGHT_FIELDS else ix.record
        rows = array("I", (r for r in base if r < upto and keep_fn(record(r))))
        self.app.call_from_thread(self._filtered, rows, keep, upto)

    def display_filter(self):  # -> inspector.filters.Predicate | None
        """The filter applied now, compiled (None: none), for views that count what it keeps."""
        return self._compiled(self.expression) if self.expression else None

    def _compiled(self, expression: str):  # -> inspector.filters.Predicate
        """The filter, compiled once per expression (live batches reuse it)."""
        cached = self._compiled_filter
        if cached is None or cached[0] != expression:
            cached = self._compiled_filter = (expression, compile_filter(expression, lambda: self.app.first_ts))
        return cached[1]

    def _filtered(self, rows: array, keep: int, upto: int) -> None:
        self.filtered = rows
        self._filtered_upto = upto
        self.query_one(MessagesView).show(rows, self.app.first_ts, keep_row=keep if keep >= 0 else None)

    @on(FilterBar.Applied)
    def filter_applied(self, event: FilterBar.Applied) -> None:
        self.expression = event.expression
        self._apply()
        self.query_one(MessagesView).focus()  # else q, e, i... typed next would land in the filter

    @on(FilterBar.Changed)
    def filter_changed(self, event: FilterBar.Changed) -> None:
        error = self.query_one(FilterBar).error or ""
        label = self.query_one("#filter-error", Label)
        label.update(error)
        label.display = bool(error)  # CSS :empty means "no child widgets", always true of a Label

    @on(MessagesView.Selected)
    def message_selected(self, event: MessagesView.Selected) -> None:
        tree = self.query_one(DetailsTree)
        hexpane = self.query_one(HexPane)
        if event.row < 0:
            tree.show_row(None)
            hexpane.show_bytes(None, "no message selected")
            return
        row = self.app.index.get(event.row)
        tree.show_row(row, self._findings_of(event.row), self.app.message_frames(row.span))
        if row.event.type == "finding":
            hexpane.show_bytes(None, "a finding has no bytes of its own")
        else:
            self._read_bytes(row.span)

    def _findings_of(self, row: int) -> list:
        """The findings recorded right after this message, in its session and direction."""
        ix = self.app.index
        out = []
        r = row + 1
        while r < self._rows and ix.kind[r] == FINDING and ix.frame[r] == ix.frame[row]:
            if ix.session[r] == ix.session[row] and ix.side[r] == ix.side[row]:
                out.append(ix.event(r))
            r += 1
        return out

    @work(thread=True, exclusive=True, group="hex")
    def _read_bytes(self, span: object) -> None:
        data, note = self.app.message_bytes(span)
        self.app.call_from_thread(self.query_one(HexPane).show_bytes, data, note)

    def on_bytes_located(self) -> None:
        """The second read is done: show the bytes of the message already selected."""
        row = self.query_one(MessagesView).selected_row
        if row >= 0 and self.app.index.kind[row] != FINDING:
            self._read_bytes(self.app.index.spans.get(row))

    @on(Tree.NodeHighlighted, "#details")
    def field_chosen(self, event: Tree.NodeHighlighted) -> None:
        self.query_one(HexPane).highlight(event.node.data)

    def on_jump_to(self, message: JumpTo) -> None:
        """Show a row (from a view): all sessions, no filter, cursor on it."""
        self.session = None
        self.expression = ""
        self.query_one(FilterBar).value = ""
        self.query_one(MessagesView).show(range(self._rows), self.app.first_ts, keep_row=message.row)
        self.query_one(MessagesView).focus()

    # -- focus -----------------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one(FilterBar).focus()

    def action_focus(self, target: str) -> None:
        self.query_one(f"#{target}").focus()
