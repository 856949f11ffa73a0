"""``btshark tui``: the capture as sessions, messages, details and bytes, plus views
only a BitTorrent tool can draw (ladder, piece map, throughput).

The capture is read by a worker thread into a compact index (``model/``) while
the screen is already up: sessions appear as they are found, and Esc stops the
read. A second read then finds where each message's bytes are in the file, for
the hex pane (locating doubles a read's cost, so the rows do not wait for it). The app holds the index, the capture's facts and the way back to a
message's bytes; screens and widgets read them from here.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from inspector.locate import Locator
from inspector.pipeline import CaptureDecode

from .messages import LoadProgress
from .model.index import MessageIndex
from .model.load import CaptureInfo, Loader, Progress
from .screens.main import MainScreen

VIEWS = {  # key: (screen module, class, title, description)
    "l": ("ladder", "LadderScreen", "Flow ladder", "The selected session's messages as arrows between its peers"),
    "p": ("piecemap", "PieceMapScreen", "Piece map", "The selected session's pieces: announced, requested, received"),
    "t": ("throughput", "ThroughputScreen", "Throughput", "Payload bytes per second in each direction"),
    "e": ("findings", "FindingsScreen", "Findings", "Every finding of the capture; Enter jumps to it"),
    "i": ("info", "InfoScreen", "Capture info", "File, format, link types, frames, duration, warnings"),
}


class BtsharkApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "btshark"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help"),
        *[Binding(key, f"view('{key}')", title, id=module) for key, (module, _, title, _) in VIEWS.items()],
    ]

    def __init__(self, decode: CaptureDecode, *, title: str | None = None) -> None:
        super().__init__()
        self.decode = decode
        self.index = MessageIndex()
        self.loader = Loader(decode, self.index)
        self.info: CaptureInfo = self.loader.info
        self.sub_title = title or decode.capture.path
        self.loading = True
        self.locating = True  # the second read, for where the bytes are (after the first)
        self.locator: Locator | None = None
        self.progress: Progress | None = None
        self._cancel = threading.Event()

    @property
    def first_ts(self) -> float:
        return self.decode.first_ts or 0.0

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        self._load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self) -> None:
        locator = None
        try:
            done = self.loader.run(lambda p: self.post_message(LoadProgress(p)), self._cancel)
            if not done.cancelled:
                locator = self.loader.locate(self._cancel)
        finally:
            self.call_from_thread(self._located, locator)

    def _located(self, locator: Locator | None) -> None:
        self.locating = False
        self.locator = locator
        for screen in self.screen_stack:
            if hasattr(screen, "on_bytes_located"):
                screen.on_bytes_located()

    def on_load_progress(self, message: LoadProgress) -> None:
        """The loader's batches go to the main screen (and to any view open on top)."""
        self.progress = message.progress
        if message.progress.done:
            self.loading = False
        for screen in self.screen_stack:
            if isinstance(screen, Screen) and hasattr(screen, "on_load_progress"):
                screen.on_load_progress(message)

    def cancel_load(self) -> None:
        self._cancel.set()
        self.locating = False

    def message_bytes(self, span: object) -> tuple[bytes | None, str]:
        """A message's bytes from the capture file, or None and why not (called from a worker thread)."""
        locator = self.locator
        if locator is None:
            return None, ("finding where the bytes are in the capture file…" if self.locating
                          else "bytes not located (reading was stopped)")
        if span is None:
            return None, "bytes not available: part of this message was not captured"
        data = locator.read(span)
        if data is None:
            return None, "bytes could not be read back from the capture file"
        return data, ""

    def message_frames(self, span: object) -> str:
        locator = self.locator
        if locator is None or span is None:
            return ""
        frames = locator.frames(span)
        if not frames:
            return ""
        return f" (bytes in frames {frames[0]}-{frames[-1]})" if frames[0] != frames[-1] else ""

    # -- views, help, commands -------------------------------------------------------------

    def action_view(self, key: str) -> None:
        import importlib

        module, cls, _, _ = VIEWS[key]
        screen_cls = getattr(importlib.import_module(f".screens.{module}", __package__), cls)
        main = self.screen_stack[1] if len(self.screen_stack) > 1 else None
        session = getattr(main, "session", None)
        if isinstance(self.screen, screen_cls):
            return
        self.push_screen(screen_cls(session))

    def action_help(self) -> None:
        from .screens.help import HelpScreen  # Markdown costs 0.1 s of start-up: only when asked

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, (_, _, title, help_text) in VIEWS.items():
            yield SystemCommand(title, f"{help_text} (key {key})", lambda key=key: self.action_view(key))
