"""pcapng captured lengths, snap-length counts, the last bytes of a file and the buffer
refills, each pinned to the byte.

Why: mutation testing (tests/mutation/) left edits to inspector/capfile.py's pcapng reader
that no test noticed: a simple packet block's data not bounded by its block, one frame cut
by the snap length counted however many were, the byte offset of a truncation found after
the last read (the reader had already moved past whole blocks in its buffer), "block" vs
"packet block (frame N)" for a truncated block that holds no packet, reads of more than a
block needs, and file offsets lost across refills. The bytes are built by hand after
draft-ietf-opsawg-pcapng (SPB: type, length, original length, data padded to 4, length =
16 bytes of framing; EPB: 28 bytes before the data, 32 in all); CHUNK is made small so that
blocks bigger than a read are cheap. Every expected value is worked out from the layout.
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from inspector import capfile
from inspector.capfile import CaptureFile
from test_capfile import block, epb, idb, opb, read_all, shb, spb, write
from test_capfile_blocks import HEAD, LOCAL_BLOCK, packet

# ---------------------------------------------------------------- captured lengths


@pytest.mark.parametrize(
    "orig, snaplen, frame, warnings",
    [
        # 8 bytes of data but 100 claimed: only the 8 in the block (24 bytes - 16) are the frame.
        (100, 0, b"abcdefgh", ["1 frame was cut by the snap length"]),
        # The data fills the block exactly: all 8 bytes, nothing cut.
        (8, 0, b"abcdefgh", []),
        # A snap length above what the block holds does not reach past the block either.
        (100, 64, b"abcdefgh", ["1 frame was cut by the snap length (64)"]),
        # A snap length below it cuts the frame to the snap length.
        (100, 4, b"abcd", ["1 frame was cut by the snap length (4)"]),
    ],
    ids=["orig_past_the_block", "orig_fills_the_block", "snaplen_past_the_block", "snaplen_in_the_block"],
)
def test_simple_packet_block_frame_is_bounded_by_its_block_and_the_snap_length(
    tmp_path: Path, orig: int, snaplen: int, frame: bytes, warnings: list[str]
) -> None:
    """A simple packet block has no captured length: the frame is the original length, at most
    the block's data (its length less 16 bytes of framing) and at most the interface's snap
    length (0: none). The block after it is read whole all the same."""
    first = spb("<", b"abcdefgh", orig=orig)
    assert len(first) == 24
    content = shb() + idb(linktype=113, snaplen=snaplen) + first + spb("<", b"next")
    frames, cf = read_all(write(tmp_path, content))
    assert frames == [(0.0, 113, frame), (0.0, 113, b"next"[:snaplen or 4])]
    assert cf.warnings == warnings


def test_every_frame_cut_by_the_snap_length_is_counted(tmp_path: Path) -> None:
    """Three of four frames captured short of their original length: three are reported cut."""
    content = (
        shb() + idb(snaplen=4)
        + epb("<", 0, 1, b"abcd", orig=1500)
        + epb("<", 0, 2, b"ab")
        + epb("<", 0, 3, b"efgh", orig=60)
        + epb("<", 0, 4, b"ijkl", orig=5)
    )
    frames, cf = read_all(write(tmp_path, content))
    assert [data for _ts, _lt, data in frames] == [b"abcd", b"ab", b"efgh", b"ijkl"]
    assert cf.warnings == ["3 frames were cut by the snap length (4)"]


# ---------------------------------------------------------------- the end of the file

# Fewer than 28 bytes (a block header) left when the reader reaches LAST: it reads on, finds
# the end of the file, and only then reads LAST (a whole block shorter than 28 bytes) out of
# what it holds, so what follows LAST lies past the start of the reader's last buffer.
LAST = {
    "simple": spb("<", b"wxyz"),  # 16 bytes of framing + 4 of data: a frame
    "local": block("<", LOCAL_BLOCK, b""),  # 12 bytes, the smallest block: no frame
}


@pytest.mark.parametrize("last", sorted(LAST))
def test_a_few_bytes_after_the_last_whole_block(tmp_path: Path, last: str) -> None:
    """5 bytes after the last whole block cannot be a block (12 bytes at least): the
    warning places them at their own offset in the file."""
    good = HEAD + packet(1_000_000, b"abc") + LAST[last]
    assert len(LAST[last]) + 5 < 28
    frames, cf = read_all(write(tmp_path, good + b"\x06\x00\x00\x00\x40"))
    kept = [(1.0, 1, b"abc")] + ([(1.0, 1, b"wxyz")] if last == "simple" else [])
    assert frames == kept
    assert cf.warnings == [
        f"capture cut short: block at byte offset {len(good)} is truncated "
        f"(needed 12 bytes, 5 left); decoded the {len(kept)} frame{'s' * (len(kept) != 1)} before it"
    ]


# A block of each kind claiming 100 bytes (its header says so), cut off by the end of the file.
CUT = {
    "enhanced": (packet(2_000_000, bytes(68)), "packet block (frame 2)"),
    "obsolete": (opb("<", 0, 2_000_000, bytes(68)), "packet block (frame 2)"),
    "simple": (spb("<", bytes(84)), "packet block (frame 2)"),
    "interface": (block("<", 1, struct.pack("<HHI", 1, 0, 0) + bytes(80)), "block"),
    "local": (block("<", LOCAL_BLOCK, bytes(88)), "block"),
}


@pytest.mark.parametrize("kind", sorted(CUT))
@pytest.mark.parametrize("kept", [50, 14], ids=["fifty_bytes_left", "fourteen_bytes_left"])
def test_a_truncated_last_block_is_named_by_its_kind(tmp_path: Path, kind: str, kept: int) -> None:
    """A packet block cut short by the end of the file is named with the frame it would have
    been; any other block is just "block". Its offset is where it starts, also when (14 bytes
    left) the 12-byte block before it is read only after the reader found the end of the file."""
    whole, what = CUT[kind]
    assert len(whole) == 100
    good = HEAD + packet(1_000_000, b"abc") + block("<", LOCAL_BLOCK, b"")
    frames, cf = read_all(write(tmp_path, good + whole[:kept]))
    assert frames == [(1.0, 1, b"abc")]
    assert cf.warnings == [
        f"capture cut short: {what} at byte offset {len(good)} is truncated "
        f"(needed 100 bytes, {kept} left); decoded the 1 frame before it"
    ]


# ---------------------------------------------------------------- refills


def test_a_block_bigger_than_a_read_is_read_to_its_end_and_no_further(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 64-byte reads, a block longer than what the reader holds is completed by one read
    of exactly its missing bytes: when its frame comes out, the file has been read up to the
    block's end, not past it (the progress a user sees is where the decode is). A block that
    fits in a read comes with a whole read: the next 64 bytes."""
    monkeypatch.setattr(capfile, "CHUNK", 64)
    blocks = [packet(1_000_000, bytes(400)), packet(2_000_000, bytes(300)), packet(3_000_000, b"end")]
    assert [len(b) for b in blocks] == [432, 332, 36]
    ends, at = [], len(HEAD)
    for b in blocks[:2]:
        at += len(b)
        ends.append(at)
    padding = block("<", LOCAL_BLOCK, bytes(500))  # more file after, so a read too long shows
    path = write(tmp_path, HEAD + b"".join(blocks) + padding)
    cf = CaptureFile(path)
    with cf:
        seen = [(len(frame), cf.position()) for _ts, _lt, frame in cf]
    assert seen == [(400, ends[0]), (300, ends[1]), (3, ends[1] + 64)]
    assert cf.warnings == []


def test_offsets_across_many_refills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 64-byte reads, blocks smaller and bigger than a read, of every packet kind, each
    frame is placed at its file offset (data 28 bytes into an EPB or OPB, 12 into an SPB),
    and so is the truncated block that ends the file."""
    monkeypatch.setattr(capfile, "CHUNK", 64)
    blocks = [
        (packet(1_000_000, b"a" * 10), 28),
        (block("<", LOCAL_BLOCK, bytes(40)), None),
        (packet(2_000_000, b"b" * 200), 28),
        (opb("<", 0, 3_000_000, b"c" * 30), 28),
        (spb("<", b"d" * 100), 12),
        (packet(4_000_000, b"e" * 5), 28),
        (block("<", LOCAL_BLOCK, bytes(300)), None),
        (packet(5_000_000, b"f" * 70), 28),
        (spb("<", b"g" * 8), 12),
    ]
    expected, at = [], len(HEAD)
    for b, data_at in blocks:
        if data_at is not None:
            expected.append(at + data_at)
        at += len(b)
    cut = packet(6_000_000, b"h" * 100)
    cf = CaptureFile(write(tmp_path, HEAD + b"".join(b for b, _ in blocks) + cut[:90]))
    with cf:
        seen = [(bytes(buf[start:end]), cf.offset(start)) for _ts, _lt, buf, start, end in cf.views()]
    assert [frame for frame, _ in seen] == [
        b"a" * 10, b"b" * 200, b"c" * 30, b"d" * 100, b"e" * 5, b"f" * 70, b"g" * 8]
    assert [offset for _, offset in seen] == expected
    assert cf.warnings == [
        f"capture cut short: packet block (frame 8) at byte offset {at} is truncated "
        "(needed 132 bytes, 90 left); decoded the 7 frames before it"
    ]
