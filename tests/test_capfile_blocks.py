"""pcapng blocks and interface options at their bounds, records read past, and the head
handed back in front of a gzip stream, each pinned to the byte.

Why: mutation testing (tests/mutation/) left edits to inspector/capfile.py that no test
noticed: a block exactly at a bound (28 bytes on hand, a 12-byte last block, --max-record
+ 32 bytes, MAX_BLOCK), an interface option ending exactly at the block's trailer or running
past it, warnings checked only in part, file offsets after a record read past, streams that
return fewer bytes than asked for. The bytes are built by hand after draft-ietf-opsawg-pcapng
(SHB 0x0A0D0D0A, IDB 1, OPB 2, SPB 3, EPB 6, options as code, length, value padded to 4) and
RFC 1952 (gzip); every expected value is worked out from those specs, not from the reader.
"""
from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import pytest

from inspector import capfile
from inspector.capfile import MAX_BLOCK, CaptureError, CaptureFile
from test_capfile import block, opb, option, pcap, read_all, read_limited, shb, spb, write

# ---------------------------------------------------------------- builders

LOCAL_BLOCK = 0x80000001  # a block type reserved for local use: a reader skips it


def packet(ticks: int, data: bytes, ifid: int = 0, incl: int | None = None) -> bytes:
    """An enhanced packet block with no options: 32 bytes of framing around ``data`` (padded to 4)."""
    size = len(data) if incl is None else incl
    head = struct.pack("<IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, size, size)
    return block("<", 6, head + data)


def interface(*options: bytes, linktype: int = 1) -> bytes:
    """An interface description block with exactly ``options`` (no end of options added), snap length 0."""
    return block("<", 1, struct.pack("<HHI", linktype, 0, 0) + b"".join(options))


END_OF_OPTIONS = struct.pack("<HH", 0, 0)
IDB = interface()  # link type 1 (Ethernet), microseconds
HEAD = shb() + IDB  # 28 + 20 bytes


class Trickle:
    """A pipe from a live capture: non-seekable, and each read returns at most ``most`` bytes."""

    name = "<trickle>"

    def __init__(self, data: bytes, most: int) -> None:
        self.data, self.most, self.at = data, most, 0

    def read(self, size: int) -> bytes:
        got = self.data[self.at : self.at + min(size, self.most)]
        self.at += len(got)
        return got

    def close(self) -> None:
        pass


class Blocked(Exception):
    """Stands for a read that would wait: the capture has written nothing more yet."""


class Written:
    """A live capture's pipe holding ``pieces`` so far: each read returns the next one;
    a read past the last would wait for the capture to write more."""

    name = "<live>"

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)

    def read(self, size: int) -> bytes:
        if not self.pieces:
            raise Blocked
        assert len(self.pieces[0]) <= size
        return self.pieces.pop(0)

    def close(self) -> None:
        pass


class Recorded(io.BytesIO):
    """A stream that notes the size of every read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def pipe_of(content: bytes) -> io.FileIO:
    """The read end of an OS pipe already holding ``content`` (small: it fits the pipe's buffer)."""
    r, w = os.pipe()
    os.write(w, content)
    os.close(w)
    return io.FileIO(r, "rb")


def summary(count: int, frames: str, max_record: int) -> str:
    if count == 1:  # one of each, said so
        return (f"1 record longer than the largest record read (--max-record {max_record}) "
                f"was skipped: frame {frames}")
    return (f"{count} records longer than the largest record read (--max-record {max_record}) "
            f"were skipped: frames {frames}")


# ---------------------------------------------------------------- blocks at the bounds


def test_a_block_that_has_arrived_whole_is_yielded_before_reading_on() -> None:
    """28 bytes on hand are a whole block header: a 28-byte simple packet block that is
    the last thing a live capture wrote comes out at once, not after the next write."""
    spb28 = spb("<", b"twelve bytes")  # 12 framing + 4 original length + 12 data
    assert len(spb28) == 28
    stream = Written(shb() + interface(linktype=113), spb28)
    cf = CaptureFile(stream)
    frames = iter(cf)
    assert next(frames) == (0.0, 113, b"twelve bytes")
    cf.close()
    assert cf.warnings == []


def test_a_twelve_byte_block_can_end_the_file(tmp_path: Path) -> None:
    """12 bytes are the smallest block (type, length, length): a file ending with one is whole."""
    last = block("<", LOCAL_BLOCK, b"")
    assert len(last) == 12
    frames, cf = read_all(write(tmp_path, HEAD + packet(1_000_000, b"abc") + last))
    assert frames == [(1.0, 1, b"abc")]
    assert cf.warnings == []


@pytest.mark.parametrize(
    "blen, damaged",
    [(MAX_BLOCK, False), (MAX_BLOCK + 4, True)],
    ids=["at_max_block", "past_max_block"],
)
def test_block_length_up_to_max_block_is_read_past(tmp_path: Path, blen: int, damaged: bool) -> None:
    """A packet block may claim up to MAX_BLOCK bytes: it is skipped as too long (and here
    cut short by the end of the file); one more word is not a block length but damage."""
    good = HEAD + packet(1_000_000, b"first")
    tail = struct.pack("<IIIIIII", 6, blen, 0, 0, 1_000_000, blen - 32, blen - 32) + bytes(100)
    frames, cf = read_all(write(tmp_path, good + tail))
    if damaged:
        assert frames == [(1.0, 1, b"first")]
        assert cf.warnings == [
            f"capture damaged: block of type 0x6 with length {blen} at byte offset {len(good)}; "
            "stopped there, decoded the 1 frame before it"
        ]
    else:
        assert frames == [(1.0, 1, b"first"), (1.0, 1, b"")]
        assert cf.warnings == [
            f"capture cut short: block at byte offset {len(good)} is truncated "
            f"(needed {blen} bytes, 128 left); decoded the 2 frames before it",
            summary(1, "2", 1 << 20),
        ]


@pytest.mark.parametrize(
    "max_record, kept",
    [(100, True), (99, False)],
    ids=["exactly_max_record", "one_byte_over"],
)
def test_packet_block_at_max_record(tmp_path: Path, max_record: int, kept: bool) -> None:
    """A block of 132 bytes is 32 of framing and 100 of data: read with --max-record 100, skipped with 99."""
    data = bytes(range(100))
    content = HEAD + packet(2_000_000, data) + packet(3_000_000, b"next")
    assert len(packet(2_000_000, data)) == 132
    frames, cf = read_limited(write(tmp_path, content), max_record)
    assert frames[1] == (3.0, 1, b"next")
    assert frames[0][2] == (data if kept else b"")
    assert cf.skipped == ([] if kept else [1])
    assert cf.warnings == ([] if kept else [summary(1, "1", max_record)])


@pytest.mark.parametrize("kind", ["enhanced", "obsolete", "simple", "local", "statistics"])
def test_only_packet_blocks_over_max_record_become_empty_frames(tmp_path: Path, kind: str) -> None:
    """Of the blocks longer than --max-record, the packet blocks (EPB, OPB, SPB) count as
    frames, each an empty one; any other block is read past without a frame."""
    data = b"z" * 400
    big = {
        "enhanced": packet(2_000_000, data),
        "obsolete": opb("<", 0, 2_000_000, data),
        "simple": spb("<", data),
        "local": block("<", LOCAL_BLOCK, data),
        # interface 0, timestamp 0, a 400-byte comment
        "statistics": block("<", 5, bytes(12) + option("<", 1, data) + END_OF_OPTIONS),
    }[kind]
    content = HEAD + packet(2_000_000, b"first") + big + packet(3_000_000, b"last")
    cf = CaptureFile(write(tmp_path, content), max_record=100)
    with cf:
        # (timestamp, link type, frame, frame length as views gives it)
        frames = [(ts, lt, buf[start:end], end - start) for ts, lt, buf, start, end in cf.views()]
    is_packet = kind in ("enhanced", "obsolete", "simple")
    # The big block has the time of the frame before it (which a skipped frame repeats) and
    # its interface is Ethernet (1), so either time and link type would read the same.
    skipped = [(2.0, 1, b"", 0)] if is_packet else []
    assert frames == [(2.0, 1, b"first", 5), *skipped, (3.0, 1, b"last", 4)]
    assert cf.skipped == ([2] if is_packet else [])
    assert cf.warnings == ([summary(1, "2", 100)] if is_packet else [])


# ---------------------------------------------------------------- reading past skipped records


def test_skipped_block_read_past_through_a_stream_that_trickles() -> None:
    """A pipe returns at most 100 bytes a read: the 1032-byte block is read past piece by
    piece, exactly to its end, and the block after it is whole."""
    content = HEAD + packet(1_000_000, b"a" * 10) + packet(2_000_000, bytes(1000)) + packet(3_000_000, b"c" * 10)
    cf = CaptureFile(Trickle(content, 100), max_record=100)
    with cf:
        frames = list(cf)
    assert [data for _ts, _lt, data in frames] == [b"a" * 10, b"", b"c" * 10]
    assert frames[2][0] == 3.0
    assert cf.warnings == [summary(1, "2", 100)]


def test_skipping_a_block_of_megabytes_reads_at_most_a_mebibyte_at_a_time() -> None:
    """A 2.5 MiB block past the default --max-record (1 MiB) is read past in pieces of at most
    1 MiB, so skipping holds no more than the largest record read would; the next block is whole."""
    big = packet(2_000_000, bytes(5 << 19))
    content = HEAD + packet(1_000_000, b"a") + big + packet(3_000_000, b"c")
    stream = Recorded(content)
    cf = CaptureFile(stream)
    with cf:
        frames = list(cf)
    assert frames == [(1.0, 1, b"a"), (1.0, 1, b""), (3.0, 1, b"c")]
    assert cf.warnings == [summary(1, "2", 1 << 20)]
    assert max(stream.asked) == 1 << 20


def test_skipping_a_block_just_over_a_mebibyte(tmp_path: Path) -> None:
    """1.5 MiB to read past from a file: one read of 1 MiB, then exactly the rest."""
    content = HEAD + packet(1_000_000, b"a") + packet(2_000_000, bytes(3 << 19)) + packet(3_000_000, b"c")
    frames, cf = read_all(write(tmp_path, content))
    assert frames == [(1.0, 1, b"a"), (1.0, 1, b""), (3.0, 1, b"c")]
    assert cf.warnings == [summary(1, "2", 1 << 20)]


def test_offsets_after_a_block_read_past(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 64-byte reads a 532-byte block is read past, not held: the frames after it are
    still placed at their file offsets, and so is the damage that ends the file."""
    monkeypatch.setattr(capfile, "CHUNK", 64)
    blocks = [packet(1_000_000 + i, bytes([i]) * (5 + i)) for i in range(4)]
    blocks.append(packet(2_000_000, bytes(500)))  # skipped
    blocks += [packet(3_000_000, b"after"), packet(4_000_000, b"last")]
    garbage = struct.pack("<II", 6, 37) + bytes(40)
    content = HEAD + b"".join(blocks) + garbage
    data_at = []  # the file offset of each packet block's data: 28 bytes into it
    at = len(HEAD)
    for b in blocks:
        data_at.append(at + 28)
        at += len(b)
    cf = CaptureFile(write(tmp_path, content), max_record=100)
    with cf:
        seen = [(bytes(buf[start:end]), cf.offset(start)) for _ts, _lt, buf, start, end in cf.views()]
    assert [frame for frame, _offset in seen] == [bytes([i]) * (5 + i) for i in range(4)] + [b"", b"after", b"last"]
    # Not the skipped frame's offset: it has no bytes to place.
    assert [offset for i, (_frame, offset) in enumerate(seen) if i != 4] == data_at[:4] + data_at[5:]
    assert cf.warnings == [
        f"capture damaged: block of type 0x6 with length 37 at byte offset {at}; "
        "stopped there, decoded the 7 frames before it",
        summary(1, "5", 100),
    ]


# ---------------------------------------------------------------- damage, in the words users see


def test_bad_byte_order_magic_warning(tmp_path: Path) -> None:
    good = HEAD + packet(1, b"abc") + packet(2, b"def")
    magic = b"\x4d\x3c\x2b\x1b"  # 0x1A2B3C4D little-endian with one bit flipped: neither byte order
    bad = shb()[:8] + magic + shb()[12:]
    frames, cf = read_all(write(tmp_path, good + bad + packet(3, b"never")))
    assert [f[2] for f in frames] == [b"abc", b"def"]
    assert cf.warnings == [
        f"capture damaged: section header with a bad byte-order magic at byte offset {len(good)}; "
        "stopped there, decoded the 2 frames before it"
    ]


def test_captured_length_just_past_the_block_is_damage(tmp_path: Path) -> None:
    """A 36-byte packet block holds 4 bytes of data: a captured length of 8 reaches into its trailer."""
    good = HEAD + packet(1_000_000, b"abc") + packet(2_000_000, b"def")
    bad = packet(3_000_000, b"ghij", incl=8)
    assert len(bad) == 36
    frames, cf = read_all(write(tmp_path, good + bad + packet(4_000_000, b"never")))
    assert frames == [(1.0, 1, b"abc"), (2.0, 1, b"def")]
    assert cf.warnings == [
        f"capture damaged: packet block (frame 3) with captured length 8 at byte offset {len(good)}; "
        "stopped there, decoded the 2 frames before it"
    ]


def test_undeclared_interface_warning(tmp_path: Path) -> None:
    good = HEAD + packet(1_000_000, b"abc")
    frames, cf = read_all(write(tmp_path, good + packet(2_000_000, b"def", ifid=1)))
    assert frames == [(1.0, 1, b"abc")]
    assert cf.warnings == [
        f"capture damaged: packet block (frame 2) for undeclared interface 1 at byte offset {len(good)}; "
        "stopped there, decoded the 1 frame before it"
    ]


def test_simple_packet_block_before_any_interface_warning(tmp_path: Path) -> None:
    frames, cf = read_all(write(tmp_path, shb() + spb("<", b"x") + IDB))
    assert frames == []
    assert cf.warnings == [
        "capture damaged: simple packet block (frame 1) before any interface at byte offset 28; "
        "stopped there, decoded the 0 frames before it"
    ]


# ---------------------------------------------------------------- interface options


@pytest.mark.parametrize(
    "options, ticks, expected",
    [
        # if_tsresol 3 (milliseconds), then if_tsoffset 100 s ending right at the trailer.
        ([option("<", 9, b"\x03"), option("<", 14, struct.pack("<q", 100))], 2_500, 102.5),
        # An if_tsoffset header with no room left for its 8 bytes: not an option, ignored.
        ([struct.pack("<HH", 14, 8)], 2_500_000, 2.5),
        # Nothing after opt_endofopt is an option.
        ([END_OF_OPTIONS, option("<", 9, b"\x09")], 1_500_000, 1.5),
        # if_tsresol 9 (nanoseconds) after a comment, and after a 4-byte name that needs no padding.
        ([option("<", 1, b"hi"), option("<", 9, b"\x09"), END_OF_OPTIONS], 1_500_000_000, 1.5),
        ([option("<", 2, b"eth0"), option("<", 9, b"\x09"), END_OF_OPTIONS], 1_500_000_000, 1.5),
        # An 8-byte if_name is not an offset; an if_tsoffset of 4 bytes is not one either.
        ([option("<", 2, b"wlan0mon"), END_OF_OPTIONS], 1_500_000, 1.5),
        ([option("<", 14, struct.pack("<i", 100)), END_OF_OPTIONS], 1_500_000, 1.5),
    ],
    ids=["tsoffset_ends_at_the_trailer", "tsoffset_runs_into_the_trailer", "after_end_of_options",
         "tsresol_after_a_comment", "tsresol_after_a_four_byte_name", "eight_byte_name",
         "four_byte_tsoffset"],
)
def test_interface_options(tmp_path: Path, options: list[bytes], ticks: int, expected: float) -> None:
    content = shb() + interface(*options) + packet(ticks, b"x")
    frames, cf = read_all(write(tmp_path, content))
    assert frames == [(expected, 1, b"x")]
    assert cf.warnings == []


# ---------------------------------------------------------------- streams and the gzip head


def test_position_of_a_pipe_is_zero() -> None:
    """A pipe has no position: progress reads 0 while the frames come as from a file."""
    stream = pipe_of(HEAD + packet(1_000_000, b"abc"))
    cf = CaptureFile(stream)
    with cf:
        assert cf.position() == 0
        assert list(cf) == [(1.0, 1, b"abc")]
        assert cf.position() == 0


def test_a_pipe_named_by_its_descriptor_reads_and_says_stream() -> None:
    """open(fd) and subprocess pipes carry their descriptor, an int, as ``name``: the
    capture reads all the same, and an error names it "<stream>"."""
    stream = pipe_of(HEAD + packet(1_000_000, b"abc"))
    assert isinstance(stream.name, int)
    with CaptureFile(stream) as cf:
        assert list(cf) == [(1.0, 1, b"abc")]
    with pytest.raises(CaptureError) as caught:
        CaptureFile(pipe_of(b"\x00" * 32))
    assert str(caught.value).startswith("<stream>: ")


def test_gzip_position_goes_forward_within_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compressed file is read whole up front (1 MiB reads) and decompressed from
    there: the position counts what the decompressor took, so it only grows and never
    passes the file's size, ending at it."""
    monkeypatch.setattr(capfile, "CHUNK", 1 << 20)
    packed = gzip.compress(pcap([(1, i, os.urandom(1000)) for i in range(300)]))
    cf = CaptureFile(write(tmp_path, packed, "cap.gz"))
    positions = []
    with cf:
        for _frame in cf:
            positions.append(cf.position())
        assert len(positions) == 300
        assert positions[0] < len(packed)
        assert all(0 < p <= len(packed) for p in positions)
        assert positions == sorted(positions)
        assert positions[-1] == len(packed)


def gzip_member(content: bytes, extra: bytes) -> bytes:
    """An RFC 1952 member with FEXTRA set and ``extra`` as the extra field."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(content) + deflate.flush()
    head = b"\x1f\x8b\x08\x04" + bytes(4) + b"\x00\xff" + struct.pack("<H", len(extra)) + extra
    return head + body + struct.pack("<II", zlib.crc32(content), len(content))


@pytest.mark.parametrize("extra", [b"", b"BT\x02\x00hi"], ids=["empty", "one_subfield"])
@pytest.mark.parametrize("via", ["file", "pipe"])
def test_gzip_with_an_extra_field(tmp_path: Path, extra: bytes, via: str) -> None:
    """The gzip header's extra field, even an empty one, is read past (from the bytes the
    format check already took) before the compressed capture."""
    content = HEAD + packet(1_000_000, b"abc") + packet(2_000_000, b"def")
    packed = gzip_member(content, extra)
    source = write(tmp_path, packed, "cap.gz") if via == "file" else pipe_of(packed)
    frames, cf = read_all(source)
    assert frames == [(1.0, 1, b"abc"), (2.0, 1, b"def")]
    assert cf.warnings == [] and cf.format == "pcapng"


# The rewindable head itself. Through CaptureFile only GzipFile reads it, and gzip hides most
# wrong counts (a short read is followed by another, a long one is decompressed all the same),
# so the contract of a file's read(n) and tell() is checked on the class directly.


def rewound(data: bytes, taken: int) -> capfile._Rewound:
    """As CaptureFile makes one: ``taken`` bytes already read from the stream, handed back in front."""
    stream = io.BytesIO(data)
    return capfile._Rewound(stream.read(taken), stream)


DATA = bytes(range(20))


def test_rewound_reads_the_head_again_then_the_rest() -> None:
    r = rewound(DATA, 8)
    assert r.tell() == 0
    assert r.read(0) == b""
    assert r.read(3) == DATA[:3] and r.tell() == 3
    assert r.read(5) == DATA[3:8] and r.tell() == 8  # exactly what is left of the head
    assert r.read(4) == DATA[8:12] and r.tell() == 12
    assert r.read(100) == DATA[12:] and r.read(1) == b""


def test_rewound_read_across_the_end_of_the_head() -> None:
    r = rewound(DATA, 8)
    assert r.read(2) == DATA[:2]
    assert r.read(10) == DATA[2:12] and r.tell() == 12
    assert r.read(3) == DATA[12:15] and r.tell() == 15


def test_rewound_read_of_everything_gives_the_head_and_the_whole_rest() -> None:
    """read() and read(-1), as a file's: all that is left (it gave the head alone)."""
    for size in (-1, None):
        r = rewound(DATA, 8)
        assert (r.read() if size is None else r.read(size)) == DATA and r.read(1) == b""
    r = rewound(DATA, 8)
    assert r.read(3) == DATA[:3] and r.read(-1) == DATA[3:]
