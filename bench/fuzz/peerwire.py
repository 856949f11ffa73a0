"""Fuzz harness: ``PeerWireParser`` fed one direction's bytes in random splits, with holes.

The parser reads whatever a peer sends and reports trouble as ``Finding`` events;
it documents no exception, so any that escapes ``feed``, ``gap`` or ``end`` is a
finding. The first byte chooses the parser's mode (handshake owed, mid-stream,
``max_len``, payload kept); then each step byte feeds a chunk of that many bytes
(240 and up: 2**14 to 2**27), declares a hole, or names a block the other side asked for.
Extension ids 1-7 are named so extended messages reach every body decoder.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
with atheris.instrument_imports():
    from inspector.parser import PeerWireParser

EXT_NAMES = {1: "ut_pex", 2: "ut_metadata", 3: "upload_only", 4: "lt_donthave", 5: "ut_holepunch",
             6: "share_mode", 7: "lt_tex"}
MAX_LENS = (1 << 17, 1 << 14, 64, 1 << 24)
GAP, EXPECT = 255, 254  # steps that declare a hole (24-bit size - 1) or an expected block; others feed
U32 = struct.Struct(">I").unpack  # a hole's three size bytes, padded to four
BLOCK = struct.Struct(">III")  # index, begin, length


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode = data[0]
    handshake = not mode & 1
    parser = PeerWireParser(max_len=MAX_LENS[(mode >> 2) & 3], handshake=handshake,
                            midstream=not handshake and bool(mode & 2), keep_payload=bool(mode & 16))
    parser.ext_names.update(EXT_NAMES)
    pos, end = 1, len(data)
    while pos < end:
        step = data[pos]
        pos += 1
        if step == GAP:
            parser.gap(U32(data[pos : pos + 3].rjust(4, b"\0"))[0] + 1, pos)
            pos += 3
        elif step == EXPECT:
            parser.expect(*BLOCK.unpack(data[pos : pos + BLOCK.size].rjust(BLOCK.size, b"\0")))
            pos += BLOCK.size
        else:
            size = step if step < 240 else 1 << (step - 226)
            parser.feed(data[pos : pos + size], pos)
            pos += size
        parser.progress()
    parser.end()


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
