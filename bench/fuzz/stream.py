"""Fuzz harness: one TCP connection's segments (``segments`` format) through the pipeline.

The capture and IP headers are written by the harness, so every input reaches
the flow table, TCP reassembly, BitTorrent detection and the peer-wire parser;
the fuzzer controls sides, flags, sequence offsets (holes, overlaps) and payloads.
No exception may escape: a well-formed capture is never an error.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from segments import pcap  # noqa: E402  (the harness's own format, not instrumented)

with atheris.instrument_imports():
    from inspector.capfile import CaptureFile
    from inspector.output import jsonl_line, text_line, write_sessions
    from inspector.pipeline import CaptureDecode


def TestOneInput(data: bytes) -> None:
    decode = CaptureDecode(CaptureFile(io.BytesIO(pcap(data))))
    for record in decode:
        text_line(record, decode.first_ts or 0.0)
        if record.event.type != "finding":
            jsonl_line(record)
    write_sessions(decode.sessions, "json", io.StringIO())


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
