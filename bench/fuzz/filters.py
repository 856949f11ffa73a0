"""Fuzz harness: display filters (``-Y``) compiled and evaluated.

``FilterError`` is the documented refusal of a bad expression; anything else
is a finding. A compiled filter is evaluated as ``read`` does, on every message
type and a few session ids, and must answer a bool.
"""
from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
with atheris.instrument_imports():
    from inspector.events import MESSAGE_TYPES
    from inspector.filters import FilterError, compile_filter

TYPES = (*MESSAGE_TYPES, "finding")
SESSIONS = (0, 1, 2, 7, 1 << 40)


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    try:
        keep = compile_filter(text)
    except FilterError:
        return
    for kind in TYPES:
        for sid in SESSIONS:
            if not isinstance(keep(kind, sid), bool):
                raise TypeError(f"filter {text!r} answered {keep(kind, sid)!r} for ({kind}, {sid})")


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
