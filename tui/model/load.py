"""Reading a capture into a MessageIndex in batches, for a worker thread.

The app must show sessions while the file is still being read and stop when
asked, so the decode runs in a thread that hands over a batch (progress, rows
so far) every ``every`` seconds and checks a cancel flag between frames' records.
Only this thread appends to the index; the UI reads rows below the count it was
last told, which arrays make safe.

A live capture has no end and may fall silent for minutes, so its thread cannot
be the one that decides when a batch is due (it sleeps in a read while the last
rows wait): it only publishes how many rows are complete, and the UI takes a
snapshot on its own timer (``LiveLoader.snapshot``).
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inspector.capfile import CaptureError, CaptureFile
from inspector.locate import Locator
from inspector.pipeline import CaptureDecode
from inspector.session import Session
from inspector.sniff import DumpcapSource, LiveDecode

from .index import MessageIndex


@dataclass
class Progress:
    read: int  # bytes of the file read
    size: int  # the file's size
    rows: int  # rows in the index
    sessions: list[Session]
    done: bool = False
    cancelled: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class CaptureInfo:
    path: str
    size: int
    format: str = ""
    linktypes: tuple[int, ...] = ()
    frames: int = 0
    first: float | None = None
    last: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return (self.last or 0.0) - (self.first or 0.0)


def open_capture(path: str) -> CaptureDecode:
    """The decode, opened now so a bad file fails before any UI starts (CaptureError)."""
    return CaptureDecode(path)


class Loader:
    def __init__(self, decode: CaptureDecode, index: MessageIndex) -> None:
        self.decode = decode
        self.index = index
        self.info = CaptureInfo(decode.capture.path, os.path.getsize(decode.capture.path),
                                decode.capture.format)

    def run(self, batch: Callable[[Progress], None], cancelled: threading.Event, every: float = 0.5,
            first: float = 0.05) -> Progress:
        """Read it all; ``batch`` is called ``first`` seconds in (so rows show at once), then every
        ``every`` seconds (each batch costs the UI a repaint), and at the end."""
        decode, index, info = self.decode, self.index, self.info
        capture = decode.capture
        next_batch = time.monotonic() + first
        last_ts = None
        stopped = False
        for n, record in enumerate(decode):
            index.append(record)
            last_ts = record.ts
            if not n & 255:
                if cancelled.is_set():
                    stopped = True
                    break
                now = time.monotonic()
                if now >= next_batch:
                    next_batch = now + every
                    batch(Progress(capture.position(), info.size, len(index), list(decode.sessions)))
        if stopped:
            capture.close()
        info.frames = capture.frame_count
        info.first = decode.first_ts
        info.last = max(last_ts or 0.0, max((s.end for s in decode.sessions), default=0.0)) or None
        info.warnings = list(decode.warnings)
        info.linktypes = _linktypes(info.path)
        done = Progress(info.size if not stopped else capture.position(), info.size, len(index),
                        list(decode.sessions), done=True, cancelled=stopped, warnings=info.warnings)
        batch(done)
        return done

    def locate(self, cancelled: threading.Event) -> Locator | None:
        """A second read, with the locator on, for where each row's bytes are in the file.

        Locating doubles the cost of a read, so the rows come first (the user sees the
        whole capture sooner) and the bytes' places after. The second read yields the
        same records in the same order; if it did not, no row gets a place."""
        decode = CaptureDecode(self.info.path, locate=True)
        spans: dict[int, object] = {}
        kinds = self.index.kind
        n = -1
        for n, record in enumerate(decode):
            if n >= len(kinds) or (not n & 1023 and cancelled.is_set()):
                decode.capture.close()
                return None
            span = decode.span(record)
            if span is not None:
                spans[n] = span
        if n + 1 != len(kinds):
            return None
        self.index.spans.update(spans)
        return decode.locator


def _linktypes(path: str) -> tuple[int, ...]:
    """The link types of the first frames (a pcap has one; pcapng one per interface)."""
    seen: dict[int, None] = {}
    try:
        with CaptureFile(path) as capture:
            for n, (_, linktype, _) in enumerate(capture):
                seen.setdefault(linktype, None)
                if n >= 1000:
                    break
    except CaptureError:
        pass
    return tuple(seen)


class LiveLoader:
    """A live capture decoded into a MessageIndex until it is stopped.

    ``run`` is the capture thread; ``snapshot`` and ``counts`` are for the UI thread.
    """

    def __init__(self, live: LiveDecode, index: MessageIndex, label: str) -> None:
        self.live = live
        self.index = index
        self.info = CaptureInfo(label, 0, "pcapng")
        self.rows = 0  # rows complete in the index: the only thing the UI reads of them
        self.finished = threading.Event()

    def run(self) -> None:
        """Decode until the capture stops (``live.stop``); the source is closed when it does."""
        index, info = self.index, self.info
        try:
            for record in self.live:
                index.append(record)
                self.rows = len(index)
                info.last = record.ts
        finally:
            info.first = self.live.first_ts
            info.frames = self.live.captured
            info.warnings = list(self.live.warnings)
            self.finished.set()

    def snapshot(self) -> Progress:
        """Rows and sessions so far (``done`` once the capture has stopped and every row is in)."""
        done = self.finished.is_set()
        rows = self.rows
        known = self.index.sessions
        # A session the decoder has opened but no row of which is in yet waits for the next snapshot.
        sessions = [s for s in list(self.live.sessions) if s.id in known]
        return Progress(rows, 0, rows, sessions, done=done, warnings=list(self.info.warnings) if done else [])

    def counts(self) -> tuple[int, int | None]:
        """Frames captured so far, and dropped by the kernel (dumpcap's: known once the capture has stopped)."""
        if self.finished.is_set():
            return self.live.captured, self.live.dropped
        source = self.live.source
        if isinstance(source, DumpcapSource):
            return source.capture.frame_count, None
        return source.captured, self.live.dropped_so_far()
