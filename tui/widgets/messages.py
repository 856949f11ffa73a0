"""The messages table: a Line-API view over rows of the MessageIndex.

No widget per row and no measuring (DataTable measures every cell): a row is
drawn from the index's columns only when it scrolls into view, and the strips
drawn lately are cached. A million rows cost their array of row ids.

On a live capture the table follows the newest row (``following``) until the
user moves or scrolls away, and End follows again, as ``tail -f`` viewers do.
"""
from __future__ import annotations

from array import array

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..model.format import summary
from ..model.index import FINDING, MessageIndex

HEADER = f"{'frame':>8} {'time':>11} {'#':>4}  {'':2} {'type':<14} summary"


class MessagesView(ScrollView, can_focus=True):
    """Rows of the index (all, or one session's, or a filter's), one line each."""

    COMPONENT_CLASSES = {"messages--cursor", "messages--a", "messages--b", "messages--error",
                         "messages--warning", "messages--note"}
    DEFAULT_CSS = """
    MessagesView { height: 1fr; }
    MessagesView > .messages--cursor { background: $accent 40%; }
    MessagesView:focus > .messages--cursor { background: $accent; color: $text; }
    MessagesView > .messages--a { color: $text; }
    MessagesView > .messages--b { color: $secondary; }
    MessagesView > .messages--error { color: $error; }
    MessagesView > .messages--warning { color: $warning; }
    MessagesView > .messages--note { color: $text-muted; }
    """
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
    ]
    cursor = reactive(0, repaint=False)
    following = reactive(False, repaint=False)  # the cursor stays on the newest row as rows arrive

    class Selected(Message):
        """The cursor is on index row ``row`` (-1: no rows)."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    def __init__(self, index: MessageIndex, *, live: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.index = index
        self.live = live  # End follows the newest row (and it starts following)
        self.set_reactive(MessagesView.following, live)
        self.rows: array | range = range(0)
        self.first_ts = 0.0
        self._cache: LRUCache[tuple[int, int], Strip] = LRUCache(1024)
        self._posted = -1  # the row last posted as Selected

    # -- what is shown -----------------------------------------------------------------

    def show(self, rows: array | range, first_ts: float, *, keep_row: int | None = None) -> None:
        """Show ``rows`` (index row ids); the cursor stays on ``keep_row`` when it is among them."""
        self.rows = rows
        self.first_ts = first_ts
        self._cache.clear()
        self.virtual_size = Size(200, len(rows))
        at = 0
        if self.following:
            at = len(rows) - 1
        elif keep_row is not None and len(rows):
            at = _position(rows, keep_row)
        self.set_cursor(at, force=True)
        self.refresh()

    def grew(self) -> None:
        """More rows arrived at the end of what is shown (loading, or live)."""
        self.virtual_size = Size(200, len(self.rows))
        self.set_cursor(len(self.rows) - 1 if self.following else self.cursor)
        self.refresh()

    def refresh_rows(self) -> None:
        """Draw every row again (the first frame's time changed)."""
        self._cache.clear()
        self.refresh()

    @property
    def selected_row(self) -> int:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else -1

    def set_cursor(self, position: int, force: bool = False) -> None:
        """Move the cursor; ``Selected`` is posted when it moves, or the row under it changes
        (the first rows arriving under a cursor that had none)."""
        position = max(0, min(position, len(self.rows) - 1))
        row = self.rows[position] if 0 <= position < len(self.rows) else -1
        if position != self.cursor or force or row != self._posted:
            old, self.cursor = self.cursor, position
            self.refresh_line(old)
            self.refresh_line(position)
            self.scroll_to_line(position)
            self._posted = row
            self.post_message(self.Selected(row))

    def scroll_to_line(self, position: int) -> None:
        top, height = self.scroll_offset.y, self.scrollable_content_region.height or 1
        if position < top:
            self.scroll_to(y=position, animate=False)
        elif position >= top + height:
            self.scroll_to(y=position - height + 1, animate=False)

    # -- actions -------------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.following = False
        self.set_cursor(self.cursor + delta)

    def action_page(self, delta: int) -> None:
        self.following = False
        page = max(1, self.scrollable_content_region.height - 1)
        self.set_cursor(self.cursor + delta * page)
        self.scroll_to(y=max(0, self.cursor - page // 2) if delta < 0 else self.scroll_offset.y + delta * page,
                       animate=False)

    def action_jump(self, where: int) -> None:
        self.following = self.live and where < 0
        self.set_cursor(where if where >= 0 else len(self.rows) - 1)

    def on_click(self, event: events.Click) -> None:
        self.following = False
        self.set_cursor(event.y + self.scroll_offset.y)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.following = False  # the wheel scrolls (ScrollView's own handler); the view stays where it goes

    # -- drawing -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        position = y + scroll_y
        width = self.size.width
        if position >= len(self.rows):
            return Strip.blank(width)
        key = (self.rows[position], position == self.cursor)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._draw(*key)
            self._cache[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, None)

    def _draw(self, row: int, is_cursor: bool) -> Strip:
        ix = self.index
        side = ix.side[row]
        event = ix.event(row)
        arrow = "→" if side == 0 else "←"
        text = (f"{ix.frame[row]:>8} {ix.ts[row] - self.first_ts:11.6f} {ix.session[row]:>4}  {arrow:2} "
                f"{event.type:<14} {summary(event)}")
        if ix.kind[row] == FINDING:
            cls = f"messages--{event.severity}"
        else:
            cls = "messages--a" if side == 0 else "messages--b"
        style: Style = self.get_component_rich_style(cls)
        if is_cursor:
            style = style + self.get_component_rich_style("messages--cursor")
        return Strip([Segment(text.ljust(200), style)], 200)

    def notify_style_update(self) -> None:
        self._cache.clear()
        super().notify_style_update()


def _position(rows: array | range, row: int) -> int:
    """Where index row ``row`` is among ``rows`` (sorted), or the nearest before it."""
    import bisect
    return max(0, bisect.bisect_right(rows, row) - 1)
