"""The piece map: one cell per piece and per side, saying what that side did with it.

What a BitTorrent user asks of a capture is which pieces moved and which did not:
who announced a piece (bitfield, have_all, have), who asked for it, whether every
block asked for came, who served it. A piece is complete only if its requests were
seen: a capture that starts mid-transfer shows its first pieces received partly.
The fold keeps a byte of flags per piece and side plus block counts for the pieces
touched; the grid is a Line-API view, so 100k pieces cost their flags and only the
rows in view are drawn, and a loading batch redraws only the rows it changed.

The torrent's piece count is not on the wire except as a bitfield's length (a
multiple of 8): the map uses the highest index seen, raised to what the longest
bitfield implies (its last byte holds at least one piece).
"""
from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from inspector import events as ev
from inspector.session import Session
from inspector.words import plural

from ..model.index import CODE, MessageIndex
from .banner import peer_label
from .ladder import fit
from .scan import SessionScan

ANNOUNCED, REQUESTED, RECEIVED, COMPLETE, SERVED = 1, 2, 4, 8, 16
MAX_PIECES = 1 << 22  # without a bitfield to bound them, higher indices are counted, not drawn
# What a cell shows: the first state that applies, in this order.
STATES = ((COMPLETE, "█", "complete", "received complete"),
          (RECEIVED, "▒", "partial", "received partly"),
          (REQUESTED, "░", "requested", "requested"),
          (SERVED, "▲", "served", "served"),
          (ANNOUNCED, "○", "announced", "announced"),
          (0, "·", "none", "nothing seen"))
HEADER = 1
NICE = (200, 100, 50, 40, 20, 10, 8, 5, 4, 2, 1)  # columns per row, largest that fits
GROUP = 10  # a space every GROUP cells, to count by
GUTTER = " │ "
_HAVE, _BITFIELD, _HAVE_ALL, _REQUEST, _PIECE = (CODE[t] for t in
                                                  ("have", "bitfield", "have_all", "request", "piece"))


class PieceFold:
    """Per side: flags per piece, block counts (requested, received, served), blocks still awaited."""

    def __init__(self) -> None:
        self.flags = (bytearray(), bytearray())
        self.blocks: tuple[dict[int, list[int]], dict[int, list[int]]] = ({}, {})
        self.awaited: tuple[dict[int, set[int]], dict[int, set[int]]] = ({}, {})
        self.have_all = [False, False]
        self.bitfield_bytes = 0  # the longest bitfield's length, captured or not
        self.highest = -1
        self.out_of_range = 0  # indices past the bitfield's length (or MAX_PIECES)
        self.changed: tuple[int, int] | None = None  # pieces changed since take_changed()

    @property
    def count(self) -> int:
        n = self.highest + 1
        return max(n, 8 * self.bitfield_bytes - 7) if self.bitfield_bytes else n

    def state(self, side: int, piece: int) -> int:
        flags = self.flags[side]
        state = flags[piece] if piece < len(flags) else 0  # a piece only the bitfield's length implies
        return state | ANNOUNCED if self.have_all[side] else state

    def take_changed(self) -> tuple[int, int] | None:
        changed, self.changed = self.changed, None
        return changed

    def feed(self, index: MessageIndex, rows: Sequence[int]) -> None:
        kind, side_of, a, b = index.kind, index.side, index.a, index.b
        for row in rows:
            code = kind[row]
            side = side_of[row]
            if code == _PIECE:
                piece, begin = a[row], b[row]
                if self._mark(side, piece, SERVED):
                    self._count(side, piece, 2)
                    self._received(1 - side, piece, begin)
            elif code == _REQUEST:
                piece = a[row]
                if self._mark(side, piece, REQUESTED):
                    self.flags[side][piece] &= ~COMPLETE
                    self._count(side, piece, 0)
                    self.awaited[side].setdefault(piece, set()).add(b[row])
            elif code == _HAVE:
                self._mark(side, a[row], ANNOUNCED)
            elif code == _BITFIELD:
                self._bitfield(side, index.event(row))
            elif code == _HAVE_ALL:
                self.have_all[side] = True
                self._changed(0, max(self.count - 1, 0))

    def _received(self, side: int, piece: int, begin: int) -> None:
        self._mark(side, piece, RECEIVED)
        self._count(side, piece, 1)
        awaited = self.awaited[side].get(piece)
        if awaited is not None:
            awaited.discard(begin)
            if awaited:
                return
            del self.awaited[side][piece]
        if self.flags[side][piece] & REQUESTED:  # blocks nobody was seen asking for prove nothing complete
            self.flags[side][piece] |= COMPLETE

    def _bitfield(self, side: int, event: ev.Bitfield) -> None:
        self.bitfield_bytes = max(self.bitfield_bytes, event.size - 1)
        for byte_no, byte in enumerate(event.bits):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    self._mark(side, 8 * byte_no + bit, ANNOUNCED)

    def _mark(self, side: int, piece: int, flag: int) -> bool:
        """Set ``flag`` on a piece; False (and counted) when the index is out of range."""
        limit = 8 * self.bitfield_bytes if self.bitfield_bytes else MAX_PIECES
        if piece >= limit:
            self.out_of_range += 1
            return False
        if piece >= len(self.flags[0]):  # both sides' flags grow together
            grow = bytes(piece + 1 - len(self.flags[0]))
            self.flags[0].extend(grow)
            self.flags[1].extend(grow)
        self.flags[side][piece] |= flag
        if piece > self.highest:
            self.highest = piece
        self._changed(piece, piece)
        return True

    def _count(self, side: int, piece: int, which: int) -> None:
        self.blocks[side].setdefault(piece, [0, 0, 0])[which] += 1

    def _changed(self, lo: int, hi: int) -> None:
        changed = self.changed
        self.changed = (lo, hi) if changed is None else (min(lo, changed[0]), max(hi, changed[1]))

    def describe(self, side: int, piece: int) -> str:
        """What side ``side`` did with a piece, in words."""
        state = self.state(side, piece)
        requested, received, served = self.blocks[side].get(piece, (0, 0, 0))
        parts = ["announced"] if state & ANNOUNCED else []
        if requested:
            parts.append(f"requested {plural(requested, 'block')}")
        if received:
            awaited = len(self.awaited[side].get(piece, ()))
            how = (f"{awaited} requested not received" if awaited else "complete" if state & COMPLETE
                   else "no request for it seen")
            parts.append(f"received {plural(received, 'block')}, {how}")
        if served:
            parts.append(f"served {plural(served, 'block')}")
        return ", ".join(parts) or "nothing seen"


def glyph_of(state: int) -> tuple[str, str]:
    """The cell's character and style name for a piece's flags."""
    return next((char, name) for flag, char, name, _ in STATES if state & flag or not flag)


def columns(avail: int) -> int:
    """Cells per row: the largest NICE count that fits ``avail`` cells with its group spaces."""
    return next((n for n in NICE if n + (n - 1) // GROUP <= avail), 1)


class PieceGrid(ScrollView, can_focus=True):
    """Both sides' grids, side by side, one row of pieces per line; a cursor on one piece."""

    COMPONENT_CLASSES = {"piecemap--header", "piecemap--label", "piecemap--cursor",
                         *(f"piecemap--{name}" for _, _, name, _ in STATES)}
    DEFAULT_CSS = """
    PieceGrid { height: 1fr; scrollbar-gutter: stable; }
    PieceGrid > .piecemap--header { text-style: bold; }
    PieceGrid > .piecemap--label { color: $text-muted; }
    PieceGrid > .piecemap--complete { color: $success; }
    PieceGrid > .piecemap--partial { color: $warning; }
    PieceGrid > .piecemap--requested { color: $accent; }
    PieceGrid > .piecemap--served { color: $secondary; }
    PieceGrid > .piecemap--announced { color: $primary; }
    PieceGrid > .piecemap--none { color: $text-muted; }
    PieceGrid > .piecemap--cursor { text-style: reverse; }
    """
    BINDINGS = [
        Binding("left", "move(-1)", "Left", show=False),
        Binding("right", "move(1)", "Right", show=False),
        Binding("up,k", "rows(-1)", "Up", show=False),
        Binding("down,j", "rows(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
    ]

    class Pointed(Message):
        """The cursor moved, or what is known of the piece under it changed."""

    def __init__(self, index: MessageIndex, session: Session, fold: PieceFold, **kw) -> None:
        super().__init__(**kw)
        self.session = session
        self.fold = fold
        self.scan = SessionScan(self, index, session.id, fold, self._fed)
        self.count = 0  # pieces laid out
        self.cursor = 0

    def on_mount(self) -> None:
        self.scan.poke()

    # -- layout -------------------------------------------------------------------------

    @property
    def label_width(self) -> int:
        return len(str(max(self.count - 1, 0))) + 1

    @property
    def grid_width(self) -> int:
        """Cells for one side's grid (the header above it too)."""
        return max(1, (self.scrollable_content_region.width - self.label_width - len(GUTTER)) // 2)

    @property
    def cols(self) -> int:
        return min(columns(self.grid_width), max(self.count, 1))

    @property
    def row_count(self) -> int:
        return -(-self.count // self.cols)

    def _layout(self) -> None:
        width = self.label_width + 2 * self.grid_width + len(GUTTER)
        self.virtual_size = Size(width, self.row_count + HEADER)

    def on_resize(self, event: events.Resize) -> None:
        self._layout()
        self.refresh()

    def _fed(self) -> None:
        changed = self.fold.take_changed()
        if self.fold.count != self.count:
            self.count = self.fold.count
            self._layout()
            self.refresh()
        elif changed is not None:
            first, last = changed[0] // self.cols, min(changed[1], self.count - 1) // self.cols
            self.refresh_lines(first + HEADER, last - first + 1)
        self.post_message(self.Pointed())

    # -- cursor --------------------------------------------------------------------------

    def set_cursor(self, piece: int) -> None:
        if not self.count:
            return
        piece = max(0, min(piece, self.count - 1))
        old, self.cursor = self.cursor // self.cols, piece
        row = piece // self.cols
        self.refresh_line(old + HEADER)
        self.refresh_line(row + HEADER)
        top, height = self.scroll_offset.y, max(1, self.scrollable_content_region.height - HEADER)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)
        self.post_message(self.Pointed())

    def action_move(self, delta: int) -> None:
        self.set_cursor(self.cursor + delta)

    def action_rows(self, delta: int) -> None:
        target = self.cursor + delta * self.cols
        if 0 <= target < self.count:
            self.set_cursor(target)

    def action_page(self, delta: int) -> None:
        page = max(1, self.scrollable_content_region.height - HEADER - 1)
        self.set_cursor(self.cursor + delta * page * self.cols)

    def action_jump(self, where: int) -> None:
        self.set_cursor(where if where >= 0 else self.count - 1)

    def on_click(self, event: events.Click) -> None:
        piece = self.piece_at(event.x + self.scroll_offset.x, event.y - HEADER + self.scroll_offset.y)
        if piece is not None:
            self.set_cursor(piece)

    def piece_at(self, x: int, row: int) -> int | None:
        """The piece drawn at virtual column ``x`` of grid row ``row`` (either side's grid), if any."""
        x -= self.label_width
        if x >= self.grid_width + len(GUTTER):
            x -= self.grid_width + len(GUTTER)
        if row < 0 or not 0 <= x < self.grid_width or (x + 1) % (GROUP + 1) == 0:
            return None
        col = x - x // (GROUP + 1)
        piece = row * self.cols + col
        return piece if col < self.cols and piece < self.count else None

    # -- drawing ---------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y < HEADER:
            strip = self._header()
        else:
            row = y - HEADER + scroll_y
            if row >= self.row_count:
                return Strip.blank(width)
            strip = self._row(row)
        return strip.crop_extend(scroll_x, scroll_x + width, None)

    def _header(self) -> Strip:
        style, grid = self.get_component_rich_style("piecemap--header"), self.grid_width
        text = (" " * self.label_width + fit(f"a {peer_label(self.session, 0)}", grid) + GUTTER
                + fit(f"b {peer_label(self.session, 1)}", grid))
        return Strip([Segment(text, style)], self.virtual_size.width)

    def _row(self, row: int) -> Strip:
        label = self.get_component_rich_style("piecemap--label")
        segments = [Segment(f"{row * self.cols:>{self.label_width - 1}} ", label)]
        for side in (0, 1):
            segments.extend(self._cells(side, row))
            if side == 0:
                segments.append(Segment(GUTTER, label))
        return Strip(segments, self.virtual_size.width)

    def _cells(self, side: int, row: int) -> list[Segment]:
        """One side's cells of a row, runs of one state as one segment, padded to the grid's width."""
        cols, fold, cursor = self.cols, self.fold, self.cursor
        first = row * cols
        out: list[Segment] = []
        run, run_style, used = "", None, 0
        for col in range(min(cols, self.count - first)):
            piece = first + col
            char, name = glyph_of(fold.state(side, piece))
            if col and not col % GROUP:
                char = " " + char
            style = self._style(name, piece == cursor)
            if style != run_style and run:
                out.append(Segment(run, run_style))
                run = ""
            run += char
            run_style = style
            used += len(char)
        if run:
            out.append(Segment(run, run_style))
        out.append(Segment(" " * (self.grid_width - used)))
        return out

    def _style(self, name: str, cursor: bool) -> Style:
        style = self.get_component_rich_style(f"piecemap--{name}")
        return style + self.get_component_rich_style("piecemap--cursor") if cursor else style


class PieceMap(Vertical):
    """The legend, the grid, and a line about the piece under the cursor."""

    DEFAULT_CSS = """
    PieceMap { height: 1fr; }
    PieceMap > .piecemap-legend, PieceMap > .piecemap-detail { height: auto; padding: 0 1; }
    """

    def __init__(self, index: MessageIndex, session: Session, **kw) -> None:
        super().__init__(**kw)
        self.session = session
        self.fold = PieceFold()
        self.grid = PieceGrid(index, session, self.fold, id="piece-grid")

    def compose(self) -> ComposeResult:
        yield Static(classes="piecemap-legend", id="piece-legend")
        yield self.grid
        yield Static(classes="piecemap-detail", id="piece-detail")

    def on_mount(self) -> None:
        legend = Text()
        for _, char, name, words in STATES:
            legend.append(char, self.grid.get_component_rich_style(f"piecemap--{name}"))
            legend.append(f" {words}   ")
        legend.append("(first that applies; complete: every block requested came)", style="italic")
        self.query_one("#piece-legend", Static).update(legend)

    def poke(self) -> None:
        self.grid.scan.poke()

    def facts(self) -> str:
        fold = self.fold
        source = ("the bitfield's length and the highest index seen" if fold.bitfield_bytes
                  else "the highest index seen, no bitfield")
        text = f"{plural(fold.count, 'piece')} (counted from {source})"
        if fold.out_of_range:
            text += f", {fold.out_of_range} out-of-range indices ignored"
        return text

    def on_piece_grid_pointed(self, message: PieceGrid.Pointed) -> None:
        grid, fold = self.grid, self.fold
        if not grid.count:
            text = Text("no piece seen yet")
        else:
            piece = grid.cursor
            text = Text(f"piece #{piece}   a: {fold.describe(0, piece)}   b: {fold.describe(1, piece)}")
        self.query_one("#piece-detail", Static).update(text)
