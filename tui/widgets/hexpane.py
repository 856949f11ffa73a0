"""The hex pane: the selected message's bytes, read back from the capture file.

Sixteen bytes a line, drawn by the Line API; the bytes of the field selected in
the details tree are highlighted. The bytes are not kept by the loader: they are
read from the file (by the frames' offsets) when a message is selected.
"""
from __future__ import annotations

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

WIDTH = 8 + 2 + 16 * 3 + 1 + 16


class HexPane(ScrollView):
    COMPONENT_CLASSES = {"hexpane--field", "hexpane--offset", "hexpane--note"}
    DEFAULT_CSS = """
    HexPane { height: 1fr; }
    HexPane > .hexpane--field { background: $accent; color: $text; }
    HexPane > .hexpane--offset { color: $text-muted; }
    HexPane > .hexpane--note { color: $text-muted; text-style: italic; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.data = b""
        self.note = "no message selected"
        self.field: tuple[int, int] | None = None

    def show_bytes(self, data: bytes | None, note: str = "") -> None:
        self.data = data or b""
        self.note = note
        self.field = None
        lines = (len(self.data) + 15) // 16 if data else 1
        self.virtual_size = Size(WIDTH, lines)
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def highlight(self, field: tuple[int, int] | None) -> None:
        self.field = field
        if field is not None and self.data:
            line = field[0] // 16
            top, height = self.scroll_offset.y, self.scrollable_content_region.height or 1
            if not top <= line < top + height:
                self.scroll_to(y=line, animate=False)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        line = y + self.scroll_offset.y
        if not self.data:
            if y == 0:
                return Strip([Segment(self.note, self.get_component_rich_style("hexpane--note"))]).crop_extend(0, width, None)
            return Strip.blank(width)
        start = line * 16
        if start >= len(self.data):
            return Strip.blank(width)
        chunk = self.data[start : start + 16]
        on = self.get_component_rich_style("hexpane--field")
        lo, hi = self.field or (0, 0)
        segs = [Segment(f"{start:08x}  ", self.get_component_rich_style("hexpane--offset"))]
        for i, byte in enumerate(chunk):
            at = start + i
            segs.append(Segment(f"{byte:02x}", on if lo <= at < hi else None))
            segs.append(Segment(" ", on if lo <= at < hi - 1 and i != 15 else None))
        segs.append(Segment("   " * (16 - len(chunk)) + " "))
        for i, byte in enumerate(chunk):
            at = start + i
            segs.append(Segment(chr(byte) if 32 <= byte < 127 else ".", on if lo <= at < hi else None))
        return Strip(segs).crop_extend(self.scroll_offset.x, self.scroll_offset.x + width, None)
