"""Saving a live capture: the pcapng the capture is teed into, copied out.

The capture thread is still appending to that file, and it may end in the middle
of a block, so the copy stops after the last whole block: what is saved always
opens, and holds every frame that had reached the file.
"""
from __future__ import annotations

import os
import shutil
import struct
import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

_BLOCK_LE = struct.Struct("<II")  # pcapng block type, total length
_BLOCK_BE = struct.Struct(">II")
_SHB = 0x0A0D0D0A
_BYTE_ORDER = struct.Struct("<I")  # the section header's byte-order magic, read little-endian
_MAGIC_LE = 0x1A2B3C4D


def whole_blocks(path: str) -> int:
    """How many bytes at the start of the pcapng at ``path`` are whole blocks."""
    with open(path, "rb") as f:
        data = f.read()
    end = 0
    block = _BLOCK_LE
    while end + 12 <= len(data):
        kind = _BLOCK_LE.unpack_from(data, end)[0]
        if kind == _SHB:  # each section says its byte order
            block = _BLOCK_LE if _BYTE_ORDER.unpack_from(data, end + 8)[0] == _MAGIC_LE else _BLOCK_BE
        length = block.unpack_from(data, end)[1]
        if length < 12 or end + length > len(data):
            break
        end += length
    return end


def save_capture(tee: str, dest: str) -> int:
    """Copy the whole blocks of ``tee`` to ``dest``; returns the bytes written."""
    size = whole_blocks(tee)
    with open(tee, "rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(_Limited(src, size), out)
    return size


class _Limited:
    def __init__(self, f, size: int) -> None:
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data


class SaveScreen(ModalScreen[None]):
    """Asks where to save what was captured so far (Enter saves, Esc cancels)."""

    DEFAULT_CSS = """
    SaveScreen { align: center middle; }
    SaveScreen > Vertical { width: 80; height: auto; border: round $accent; padding: 0 1; background: $panel; }
    """
    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, tee: str) -> None:
        super().__init__()
        self.tee = tee

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save what was captured so far (pcapng) to:")
            yield Input(time.strftime("btshark-live-%Y%m%d-%H%M%S.pcapng"), id="save-path")
            yield Label("", id="save-error", markup=False)  # a path is text

    def on_input_submitted(self, event: Input.Submitted) -> None:
        dest = os.path.expanduser(event.value.strip())
        try:
            size = save_capture(self.tee, dest)
        except OSError as exc:
            self.query_one("#save-error", Label).update(f"cannot write {dest}: {exc.strerror or exc}")
            return
        self.app.notify(f"Saved {size:,} bytes to {dest}", markup=False)
        self.dismiss()
