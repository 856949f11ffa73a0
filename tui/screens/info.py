"""Capture info: the file, its format and link types, frames, duration, warnings."""
from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from inspector.output import safe_text

LINKTYPES = {0: "BSD loopback", 1: "Ethernet", 101: "raw IP", 113: "Linux cooked (SLL)",
             228: "raw IPv4", 229: "raw IPv6", 276: "Linux cooked v2 (SLL2)"}


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "-"


class InfoScreen(Screen):
    BINDINGS = [Binding("escape,i", "app.pop_screen", "Back")]

    def __init__(self, session: int | None = None) -> None:
        super().__init__()
        self._ready = False  # on_mount has begun: batches before it are shown then

    def compose(self) -> ComposeResult:
        yield Static(id="info-text")
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        self.refresh_info()

    def on_load_progress(self, message) -> None:
        if self._ready:
            self.refresh_info()

    def refresh_info(self) -> None:
        app = self.app
        info = app.info
        sessions = app.progress.sessions if app.progress else []
        links = ", ".join(f"{LINKTYPES.get(t, 'linktype')} ({t})" for t in info.linktypes) or "-"
        lines = [
            f"File          {safe_text(info.path)}",
            f"Size          {info.size:,} bytes",
            f"Format        {info.format or '-'}",
            f"Link types    {links}",
            f"Frames        {info.frames:,}" if not app.loading else "Frames        (still reading)",
            f"First frame   {_when(info.first)}",
            f"Last frame    {_when(info.last)}",
            f"Duration      {info.duration:.3f} s",
            f"Sessions      {len(sessions)}",
            f"Messages      {len(app.index):,} (findings included)",
            "",
            "Warnings" if info.warnings else "Warnings      none",
            *[f"  {safe_text(w)}" for w in info.warnings],
        ]
        self.query_one("#info-text", Static).update(Text("\n".join(lines)))
