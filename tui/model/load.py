"""Reading a capture into a MessageIndex in batches, for a worker thread.

The app must show sessions while the file is still being read and stop when
asked, so the decode runs in a thread that hands over a batch (progress, rows
so far) every ``every`` seconds and checks a cancel flag between frames' records.
Only this thread appends to the index; the UI reads rows below the count it was
last told, which arrays make safe.
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
