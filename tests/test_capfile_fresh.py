"""A pcapng file of each byte order read in a fresh interpreter.

Why a fresh one: the pcapng block layouts (``capfile._Section``) are compiled once, when
the module is imported. A test in the running process only ever sees the layouts its
first import compiled; reading in a new ``python`` is what a user's ``btshark`` does, and
it is the only way a change to those layouts shows up in a test. The file uses every
layout: block type and length, interface description (link type, snap length, options:
a power-of-two resolution and a signed offset), enhanced, obsolete and simple packet
blocks (the simple one cut by the snap length); and fields with their top bit set, which
pcapng's unsigned layouts must not read as negative numbers.
"""
from __future__ import annotations

import ast
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from test_capfile import block, epb, idb, opb, option, shb, spb

READ = """
import sys
from inspector.capfile import CaptureFile
with CaptureFile(sys.argv[1]) as cf:
    frames = [(ts, linktype, bytes(data)) for ts, linktype, data in cf]
print(repr((cf.format, cf.frame_count, frames, cf.warnings)))
"""


def read_fresh(path: Path) -> tuple:
    # The environment passed on whole: the mutation tools (tests/mutation/) name the code
    # under test in it.
    proc = subprocess.run([sys.executable, "-c", READ, str(path)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout)


@pytest.mark.parametrize("order", ["<", ">"], ids=["little", "big"])
def test_every_pcapng_layout_in_a_fresh_interpreter(tmp_path: Path, order: str) -> None:
    content = (
        shb(order)
        # interface 0: Linux cooked capture, 6-byte snap length, 2**-10 s ticks from 1.6e9 s
        + idb(order, linktype=113, snaplen=6, tsresol=0x80 | 10, tsoffset=1_600_000_000)
        # interface 1: Ethernet, millisecond ticks, 5 s before the epoch
        + idb(order, linktype=1, tsresol=3, tsoffset=-5)
        + epb(order, 0, 5 * 1024 + 512, b"abc")
        + epb(order, 1, 7_250, b"de")
        + opb(order, 1, 9_500, b"obsolete")
        + spb(order, b"simple", orig=1000)  # interface 0's link type and snap length
    )
    path = tmp_path / f"layouts-{'le' if order == '<' else 'be'}.pcapng"
    path.write_bytes(content)
    fmt, count, frames, warnings = read_fresh(path)
    assert fmt == "pcapng" and count == 4
    assert frames == [
        (1_600_000_005.5, 113, b"abc"),
        (2.25, 1, b"de"),
        (4.5, 1, b"obsolete"),
        (4.5, 113, b"simple"),  # a simple packet block has no time: the previous frame's
    ]
    assert warnings == ["1 frame was cut by the snap length (6)"]


def write(tmp_path: Path, order: str, content: bytes) -> Path:
    path = tmp_path / f"top-bits-{'le' if order == '<' else 'be'}.pcapng"
    path.write_bytes(content)
    return path


ORDERS = pytest.mark.parametrize("order", ["<", ">"], ids=["little", "big"])


@ORDERS
def test_top_bits_of_times_lengths_and_options(tmp_path: Path, order: str) -> None:
    big_comment = option(order, 1, b"c" * 0x8000)  # an option length with its top bit set
    iface = block(order, 1, struct.pack(order + "HHI", 1, 0, 0)  # Ethernet, no snap length; milliseconds
                  + big_comment + option(order, 9, bytes([3])) + struct.pack(order + "HH", 0, 0))
    content = (
        shb(order) + iface
        # 0x1_8000_0000 ms: the low word of the time has its top bit set
        + epb(order, 0, 0x1_8000_0000, b"late")
        # a simple packet block claiming 0xFFFF_FFF0 bytes on the wire: cut, whatever the snap length
        + spb(order, b"tiny", orig=0xFFFF_FFF0)
    )
    fmt, count, frames, warnings = read_fresh(write(tmp_path, order, content))
    assert frames == [(0x1_8000_0000 / 1000, 1, b"late"), (0x1_8000_0000 / 1000, 1, b"tiny")]
    assert warnings == ["1 frame was cut by the snap length"]  # none declared


@ORDERS
def test_a_snap_length_with_its_top_bit_set(tmp_path: Path, order: str) -> None:
    content = shb(order) + idb(order, linktype=1, snaplen=0x8000_0000) + spb(order, b"whole!", orig=6)
    fmt, count, frames, warnings = read_fresh(write(tmp_path, order, content))
    assert frames == [(0.0, 1, b"whole!")] and warnings == []


@ORDERS
def test_an_obsolete_packet_block_for_interface_65535(tmp_path: Path, order: str) -> None:
    content = shb(order) + idb(order) + epb(order, 0, 1_000_000, b"one") + opb(order, 0xFFFF, 2_000_000, b"two")
    fmt, count, frames, (warning,) = read_fresh(write(tmp_path, order, content))
    assert frames == [(1.0, 1, b"one")]
    assert "packet block (frame 2) for undeclared interface 65535" in warning


@ORDERS
@pytest.mark.parametrize("btype", [6, 0x0A0D0D0A], ids=["packet", "section"])
def test_a_block_length_with_its_top_bit_set(tmp_path: Path, order: str, btype: int) -> None:
    bom = struct.pack(order + "I", 0x1A2B3C4D)
    bogus = struct.pack(order + "II", btype, 0xFFFF_FFF0) + (bom if btype != 6 else bytes(4)) + bytes(20)
    content = shb(order) + idb(order) + epb(order, 0, 1_000_000, b"one") + bogus
    fmt, count, frames, (warning,) = read_fresh(write(tmp_path, order, content))
    assert frames == [(1.0, 1, b"one")]
    assert f"block of type {btype:#x} with length 4294967280" in warning
