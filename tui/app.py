"""``btshark tui``: the capture as sessions, messages, details and bytes, plus views
only a BitTorrent tool can draw (ladder, piece map, throughput).

The capture is read by a worker thread into a compact index (``model/``) while
the screen is already up: sessions appear as they are found, and Esc stops the
read. A second read then finds where each message's bytes are in the file, for
the hex pane (locating doubles a read's cost, so the rows do not wait for it). The app holds the index, the capture's facts and the way back to a
message's bytes; screens and widgets read them from here.

Live (``btshark tui -i``) is the same app over ``open_live``: a thread decodes
into the index until the capture stops, a timer hands the main screen a batch
every ``LIVE_BATCH`` seconds (the capture thread may sleep in a read for minutes,
so it cannot be the one to say a batch is due), and the capture is teed into a
temporary pcapng that ``w`` copies out. Pausing freezes the view, not the
capture: frames keep being captured and decoded, and resuming shows them all.
Bytes are not located in a live capture (the locator needs the whole file).
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from inspector.locate import Locator
from inspector.pipeline import CaptureDecode
from inspector.sniff import LiveDecode

from .messages import LoadProgress
from .model.index import MessageIndex
from .model.load import CaptureInfo, LiveLoader, Loader, Progress
from .screens.main import MainScreen

VIEWS = {  # key: (screen module, class, title, description)
    "l": ("ladder", "LadderScreen", "Flow ladder", "The selected session's messages as arrows between its peers"),
    "p": ("piecemap", "PieceMapScreen", "Piece map", "The selected session's pieces: announced, requested, received"),
    "t": ("throughput", "ThroughputScreen", "Throughput", "Payload bytes per second in each direction"),
    "e": ("findings", "FindingsScreen", "Findings", "Every finding of the capture; Enter jumps to it"),
    "c": ("stats", "StatsScreen", "Statistics", "Per session and side: messages, payload rate, request→piece "
                                                "wait, chokes (read --stats), over the filter's messages"),
    "i": ("info", "InfoScreen", "Capture info", "File, format, link types, frames, duration, warnings"),
}
LIVE_BATCH = 0.1  # seconds between batches of a live capture shown


class BtsharkApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "btshark"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help"),
        *[Binding(key, f"view('{key}')", title, id=module) for key, (module, _, title, _) in VIEWS.items()],
        Binding("space", "pause", "Pause/resume", id="pause"),
        Binding("w", "save", "Save capture", id="save"),
        Binding("ctrl+e", "stop_capture", "Stop capture", id="stop_capture"),
    ]
    LIVE_ACTIONS = {"pause", "save", "stop_capture"}

    def __init__(self, decode: CaptureDecode, *, title: str | None = None, tee: str | None = None) -> None:
        """``decode``: a file's, or a ``LiveDecode`` whose capture is being written to ``tee``."""
        super().__init__()
        self.decode = decode
        self.index = MessageIndex()
        self.live = decode if isinstance(decode, LiveDecode) else None
        self.tee = tee
        self.loader: Loader | LiveLoader = (LiveLoader(decode, self.index, title or "live capture")
                                            if isinstance(decode, LiveDecode) else Loader(decode, self.index))
        self.info: CaptureInfo = self.loader.info
        self.sub_title = title or decode.capture.path
        self.loading = True
        self.locating = self.live is None  # the second read, for where the bytes are (after the first)
        self.locator: Locator | None = None
        self.progress: Progress | None = None
        self.paused = False
        self._cancel = threading.Event()
        self._shown_rows = -1
        self._capturing = False  # the capture thread has been started

    @property
    def first_ts(self) -> float:
        return self.decode.first_ts or 0.0

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        if isinstance(self.loader, LiveLoader):
            self._capturing = True
            self._capture()
            self._batches = self.set_interval(LIVE_BATCH, self._live_batch)
        else:
            self._load()

    # -- live capture ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _capture(self) -> None:
        assert isinstance(self.loader, LiveLoader)
        self.loader.run()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.live is not None or action not in self.LIVE_ACTIONS

    def _live_batch(self) -> None:
        """The timer's batch: counts always; rows and sessions unless paused (and only when new)."""
        assert isinstance(self.loader, LiveLoader)
        captured, dropped = self.loader.counts()
        for screen in self.screen_stack:
            if hasattr(screen, "on_live_counts"):
                screen.on_live_counts(captured, dropped, self.paused)
        if self.paused:
            return
        progress = self.loader.snapshot()
        if progress.done:
            self._batches.stop()
        elif progress.rows == self._shown_rows:
            return
        self._shown_rows = progress.rows
        self.post_message(LoadProgress(progress))

    def action_pause(self) -> None:
        if self.live is None:
            return
        self.paused = not self.paused
        self._live_batch()

    async def action_stop_capture(self) -> None:
        """Stop capturing (the view keeps what was captured; the dropped count becomes known)."""
        if self.live is not None:
            await asyncio.to_thread(self.end_capture)

    def end_capture(self) -> None:
        """Stop the capture and wait for its thread and for dumpcap to end (any thread; idempotent)."""
        if self.live is None:
            return
        self.live.stop()
        if self._capturing:
            assert isinstance(self.loader, LiveLoader)
            self.loader.finished.wait()
        self.live.close()

    def close_live(self) -> None:
        """End the capture and remove its temporary file (the CLI calls it too, however the app ended)."""
        self.end_capture()
        if self.tee is not None and os.path.exists(self.tee):
            os.unlink(self.tee)

    async def action_quit(self) -> None:
        if self.live is not None:
            self._batches.stop()
        await asyncio.to_thread(self.close_live)
        self.exit()

    def action_save(self) -> None:
        if self.live is None or self.tee is None:
            return
        from .screens.save import SaveScreen

        if not isinstance(self.screen, SaveScreen):
            self.push_screen(SaveScreen(self.tee))

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
        if self.live is not None:
            return None, "a live capture's bytes are not shown: save it (w) and open the file"
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
