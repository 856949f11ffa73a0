"""Fuzz harness: hostile bytes as a capture file, through the whole ``btshark read`` path.

The bytes go to a file (so gzip detection, which only a path gets, is reached),
are decoded by ``CaptureDecode`` to the end, and every record and session is
rendered as the CLI would. ``CaptureError`` is the one exception the API lets
out (a file that is not a capture at all); anything else is a finding. The last
byte's two low bits turn on ``locate`` and ``keep_payload``: the TUI's and
``extract``'s variants of the same decode.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
with atheris.instrument_imports():
    import inspector.locate  # noqa: F401  (imported lazily by CaptureDecode: instrumented only if imported here)
    from inspector.capfile import CaptureError
    from inspector.output import jsonl_line, text_line, write_sessions
    from inspector.pipeline import CaptureDecode

_FD, PATH = tempfile.mkstemp(prefix="btshark-fuzz-", suffix=".pcap", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
os.close(_FD)


def TestOneInput(data: bytes) -> None:
    with open(PATH, "wb") as out:
        out.write(data)
    mode = data[-1] if data else 0
    try:
        decode = CaptureDecode(PATH, locate=bool(mode & 1), keep_payload=bool(mode & 2))
    except CaptureError:
        return
    for record in decode:
        text_line(record, decode.first_ts or 0.0)
        if record.event.type != "finding":
            jsonl_line(record)
        if decode.locator is not None:
            decode.span(record)
    sink = io.StringIO()
    write_sessions(decode.sessions, "text", sink)
    write_sessions(decode.sessions, "json", sink)


def main() -> None:
    try:
        atheris.Setup(sys.argv, TestOneInput)
        atheris.Fuzz()
    finally:
        os.unlink(PATH)


if __name__ == "__main__":
    main()
