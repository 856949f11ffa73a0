"""Fuzz harness: ``decode_body`` for every extension name it knows, and one it does not.

``BodyError`` (``BencodeError`` included) is the documented refusal; anything
else is a finding, and so is a decoded value that ``json.dumps`` cannot write
(the contract is JSON-safe data) or an extension handshake whose ``m`` the
name map chokes on.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
with atheris.instrument_imports():
    from inspector.extensions import BodyError, decode_body, extension_names

NAMES = (None, "handshake", "ut_pex", "ut_metadata", "upload_only", "share_mode", "lt_donthave",
         "ut_holepunch", "lt_tex")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    name = NAMES[data[0] % len(NAMES)]
    try:
        body = decode_body(name, data[1:])
    except BodyError:
        return
    json.dumps(body.data)
    if name in (None, "handshake"):
        extension_names(body.data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
