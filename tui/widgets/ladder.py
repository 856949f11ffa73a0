"""The flow ladder: a session's messages as arrows between its two peers, one line each.

Wireshark's flow graph for peer-wire traffic. A session can hold a million
messages, so this is a Line-API view: a line is drawn from the index's columns only
when it scrolls into view, and the whole ladder costs an array of row ids plus the
silences found between them. A silence long enough to matter gets a dotted line of
its own (``… 0.421 s …``); what counts as long depends on the session's length, so
every silence of GAP_MIN or more is kept and the threshold is applied at layout.
"""
from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from inspector.output import safe_text
from inspector.session import Session
from inspector.words import plural

from ..model.format import summary
from ..model.index import FINDING, MessageIndex
from .scan import SessionScan

GAP_MIN = 0.1  # seconds: a shorter silence is never marked (so a session of 20 s has 200 at most
               # to weigh again as its threshold moves; past 20 s the threshold stays at 1 s)
HEADER = 2  # sticky lines: addresses, clients
TIME_W = 13  # "    0.421337 "
FRAME_W = 9  # " frame" column right of b's lifeline
MIN_WIDTH = 72
GAP = -1  # what line_at() returns for a silence line


def gap_threshold(duration: float) -> float:
    """The silence worth a line: a twentieth of the session, but at least GAP_MIN and at most a second."""
    return min(1.0, max(GAP_MIN, duration / 20))


class LadderFold:
    """A session's rows (messages and findings) in order, and the silences of GAP_MIN or more before them."""

    def __init__(self) -> None:
        self.rows = array("I")
        self.gap_at = array("I")  # position in rows that a silence comes before
        self.gap_len = array("d")
        self.findings = 0
        self._last_ts: float | None = None

    def feed(self, index: MessageIndex, rows: Sequence[int]) -> None:
        ts, kind, out = index.ts, index.kind, self.rows
        last = self._last_ts
        base = len(out)
        for i, row in enumerate(rows):
            t = ts[row]
            self.findings += kind[row] == FINDING
            if last is not None and t - last >= GAP_MIN:
                self.gap_at.append(base + i)
                self.gap_len.append(t - last)
            last = t
        out.extend(rows)
        self._last_ts = last

    def marks(self, threshold: float, first: int = 0, before: int = 0) -> tuple[array, array]:
        """The lines that are silences of ``threshold`` or more, and their lengths: for the silences
        from number ``first`` on, with ``before`` silence lines laid out ahead of them (each shifts the
        lines after it)."""
        lines, lengths = array("I"), array("d")
        for k in range(first, len(self.gap_at)):
            if self.gap_len[k] >= threshold:
                lines.append(self.gap_at[k] + before + len(lines))
                lengths.append(self.gap_len[k])
        return lines, lengths


class Ladder(ScrollView, can_focus=True):
    """One session's ladder; Enter posts ``Chosen`` with the index row under the cursor."""

    COMPONENT_CLASSES = {"ladder--header", "ladder--time", "ladder--life", "ladder--a", "ladder--b",
                         "ladder--gap", "ladder--finding", "ladder--cursor"}
    DEFAULT_CSS = """
    Ladder { height: 1fr; scrollbar-gutter: stable; }
    Ladder > .ladder--header { color: $text; text-style: bold; }
    Ladder > .ladder--time { color: $text-muted; }
    Ladder > .ladder--life { color: $text-muted; }
    Ladder > .ladder--a { color: $text; }
    Ladder > .ladder--b { color: $secondary; }
    Ladder > .ladder--gap { color: $text-muted; text-style: italic; }
    Ladder > .ladder--finding { color: $warning; }
    Ladder > .ladder--cursor { background: $accent 40%; }
    Ladder:focus > .ladder--cursor { background: $accent; }
    """
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
        Binding("enter", "choose", "Show in messages"),
    ]

    class Chosen(Message):
        """Enter on a line: index row ``row``."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    def __init__(self, index: MessageIndex, session: Session, **kw) -> None:
        super().__init__(**kw)
        self.index = index
        self.session = session
        self.fold = LadderFold()
        self.scan = SessionScan(self, index, session.id, self.fold, self._fed)
        self.rows_shown = 0  # rows of the fold laid out (the fold may be ahead while a scan runs)
        self.marks = array("I")
        self.mark_len = array("d")
        self.threshold = 0.0
        self.silences_seen = 0  # of the fold's silences, those weighed against the threshold
        self.cursor = 0  # a line, never a silence
        self._cache: LRUCache[tuple, Strip] = LRUCache(1024)

    def on_mount(self) -> None:
        self.scan.poke()

    def poke(self) -> None:
        self.scan.poke()

    def facts(self) -> str:
        messages = self.rows_shown - self.fold.findings
        parts = [plural(messages, "message"), plural(self.fold.findings, "finding"),
                 f"{plural(len(self.marks), 'silence')} of {self.threshold:.3f} s or more",
                 f"{self.session.end - self.session.start:.3f} s, times from the session's start"]
        return ", ".join(parts)

    # -- layout ------------------------------------------------------------------------------

    @property
    def line_count(self) -> int:
        return self.rows_shown + len(self.marks)

    def _fed(self) -> None:
        """A scan pass ended (UI thread): lay out what it folded."""
        fold, session = self.fold, self.session
        threshold = gap_threshold(session.end - session.start)
        old_count = self.line_count
        relaid = False
        if threshold != self.threshold:  # the session grew: silences are weighed again (few: see GAP_MIN)
            marks, lengths = fold.marks(threshold)
            relaid = marks != self.marks
            at = self.cursor - bisect_right(self.marks, self.cursor)  # the cursor's row, as a position in rows
            self.marks, self.mark_len, self.threshold = marks, lengths, threshold
            self.cursor = self.line_of(at)
        else:  # the lines laid out stay as they are; the new ones follow
            marks, lengths = fold.marks(threshold, self.silences_seen, len(self.marks))
            self.marks.extend(marks)
            self.mark_len.extend(lengths)
        self.silences_seen = len(fold.gap_at)
        self.rows_shown = len(fold.rows)
        if relaid:
            self._cache.clear()
            self.refresh()
        elif self.line_count != old_count:
            self.refresh_lines(old_count + HEADER, self.line_count - old_count)
        self._resize()

    def _resize(self) -> None:
        self.virtual_size = Size(self._width, self.line_count + HEADER)

    @property
    def _width(self) -> int:
        return max(MIN_WIDTH, self.scrollable_content_region.width)

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        self._resize()

    def line_at(self, line: int) -> tuple[int, int]:
        """(index row, GAP) for a message or finding line, (GAP, silence number) for a silence."""
        j = bisect_right(self.marks, line)
        if j and self.marks[j - 1] == line:
            return GAP, j - 1
        return self.fold.rows[line - j], GAP

    def line_of(self, position: int) -> int:
        """The line of ``fold.rows[position]``: after the silences before it."""
        marks = self.marks
        return position + bisect_right(range(len(marks)), position, key=lambda j: marks[j] - j)

    @property
    def selected_row(self) -> int:
        return self.line_at(self.cursor)[0] if self.line_count else GAP

    # -- cursor ------------------------------------------------------------------------------

    def set_cursor(self, line: int, step: int = 1) -> None:
        if not self.line_count:
            return
        line = max(0, min(line, self.line_count - 1))
        if self.line_at(line)[0] == GAP:  # a silence (never first or last): step over it
            line += 1 if step > 0 else -1
        old, self.cursor = self.cursor, line
        self.refresh_line(old + HEADER)
        self.refresh_line(line + HEADER)
        top, height = self.scroll_offset.y, max(1, self.scrollable_content_region.height - HEADER)
        if line < top:
            self.scroll_to(y=line, animate=False)
        elif line >= top + height:
            self.scroll_to(y=line - height + 1, animate=False)

    def action_move(self, delta: int) -> None:
        self.set_cursor(self.cursor + delta, delta)

    def action_page(self, delta: int) -> None:
        page = max(1, self.scrollable_content_region.height - HEADER - 1)
        self.set_cursor(self.cursor + delta * page, delta)

    def action_jump(self, where: int) -> None:
        self.set_cursor(where if where >= 0 else self.line_count - 1, 1 if where >= 0 else -1)

    def action_choose(self) -> None:
        row = self.selected_row
        if row != GAP:
            self.post_message(self.Chosen(row))

    def on_click(self, event: events.Click) -> None:
        if event.y >= HEADER:
            self.set_cursor(event.y - HEADER + self.scroll_offset.y)

    # -- drawing -------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y < HEADER:
            strip = self._header(y)  # not cached: the clients are learnt from the handshakes
        else:
            line = y - HEADER + scroll_y
            if line >= self.line_count:
                return Strip.blank(width)
            row, gap = self.line_at(line)
            if row == GAP:
                strip = self._cached(("gap", gap), lambda: self._gap(self.mark_len[gap]))
            else:
                cursor = line == self.cursor
                strip = self._cached((row, cursor), lambda: self._message(row, cursor))
        return strip.crop_extend(scroll_x, scroll_x + width, None)

    def _cached(self, key: tuple, draw) -> Strip:
        strip = self._cache.get(key)
        if strip is None:
            strip = self._cache[key] = draw()
        return strip

    def _style(self, name: str, cursor: bool = False) -> Style:
        style = self.get_component_rich_style(f"ladder--{name}")
        return style + self.get_component_rich_style("ladder--cursor") if cursor else style

    def _span(self) -> int:
        """Cells between the two lifelines."""
        return self._width - TIME_W - FRAME_W - 2

    def _header(self, y: int) -> Strip:
        span, style = self._span(), self._style("header")
        a, b = self.session.sides
        if y == 0:
            left, right, time, frame = f"a {a.addr}", f"{b.addr} b", "time (s)", "frame"
        else:
            left, right, time, frame = safe_text(a.client or ""), safe_text(b.client or ""), "", ""
        room = span + 2  # from a's lifeline to b's, both included
        left = fit(left, room // 2)
        text = (fit(time, TIME_W - 1, ">") + " " + left + fit(right, room - cell_len(left), ">")
                + fit(frame, FRAME_W, ">"))
        return Strip([Segment(text, style)], self._width)

    def _message(self, row: int, cursor: bool) -> Strip:
        ix = self.index
        event = ix.event(row)
        time = f"{ix.ts[row] - self.session.start:{TIME_W - 1}.6f} "
        frame = f"{ix.frame[row]:>{FRAME_W}}"
        span = self._span()
        text = summary(event)  # escaped already
        if ix.kind[row] == FINDING:
            body, name = " ⚠ " + fit(text, span - 3), "finding"
        elif ix.side[row] == 0:
            body, name = "─ " + fit(text + " ", span - 3, fill="─") + "▶", "a"
        else:
            body, name = "◀─ " + fit(text + " ", span - 3, fill="─"), "b"
        life = self._style("life", cursor)
        segments = [Segment(time, self._style("time", cursor)), Segment("│", life),
                    Segment(body, self._style(name, cursor)), Segment("│", life),
                    Segment(frame, self._style("time", cursor))]
        return Strip(segments, self._width)

    def _gap(self, length: float) -> Strip:
        span = self._span()
        life, gap = self._style("life"), self._style("gap")
        text = f" … {length:.3f} s … ".center(span)
        return Strip([Segment(" " * TIME_W), Segment("┆", life), Segment(text, gap), Segment("┆", life),
                      Segment(" " * FRAME_W)], self._width)

    def notify_style_update(self) -> None:
        self._cache.clear()
        super().notify_style_update()


def fit(text: str, width: int, align: str = "<", fill: str = " ") -> str:
    """``text`` in exactly ``width`` terminal cells: cut short with "…", or padded with ``fill``."""
    width = max(width, 1)
    if cell_len(text) > width:
        text = set_cell_size(text, width - 1) + "…"
    pad = fill * (width - cell_len(text))
    return pad + text if align == ">" else text + pad
