"""Classic pcap records pinned to the byte: lengths that disagree, records read past, file
offsets and read sizes across refills, and the file header arriving in pieces.

Why: mutation testing (tests/mutation/) left edits to inspector/capfile.py's pcap reader
that no test noticed: the count of records longer than the snap length (and a snap length
of 0, "not given"), the count and the words of the warning for records whose captured
length is above their original length, the bound of MAX_BLOCK itself, the time and length
of a record skipped by --max-record, file offsets after refills and after a record read
past, reads of more (or less) than a record needs, a skipped record that ends the file,
the file header read through a pipe that returns a few bytes at a time, and the list of
several snap lengths in a pcapng warning. The bytes are built by hand after the pcap
layout (a 24-byte file header: magic, version, zone, sigfigs, snap length, link type; then
per record 16 bytes: seconds, fraction, captured length, original length, and the data);
CHUNK is made small so that records bigger than a read are cheap. Every expected value is
worked out from that layout, never asked of the reader.
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from inspector import capfile
from inspector.capfile import MAX_BLOCK, CaptureFile
from inspector.limits import Limits
from inspector.pipeline import CaptureDecode
from test_capfile import epb, idb, pcap, read_all, read_limited, shb, write
from test_capfile_blocks import Blocked, Trickle, Written, summary

HEADER = 24  # a pcap file header
RECORD = 16  # a pcap record header


def inflated(count: int) -> str:
    if count == 1:
        return "1 record claims more captured bytes than the packet had (captured length above original length)"
    return (f"{count} records claim more captured bytes than the packet had "
            "(captured length above original length)")


# ---------------------------------------------------------------- lengths that disagree


@pytest.mark.parametrize(
    "snaplen, records, warnings",
    [
        # 150 and 101 bytes pass the snap length of 100; 60 and exactly 100 do not.
        (100, [b"a" * 150, b"b" * 60, b"c" * 101, b"d" * 100],
         ["2 records are longer than the file's snap length (100)"]),
        # A snap length of 0 gives none: no record is longer than it.
        (0, [b"a" * 150, b"b" * 60], []),
    ],
    ids=["snaplen_100", "snaplen_not_given"],
)
def test_records_longer_than_the_snap_length_are_counted(
    tmp_path: Path, snaplen: int, records: list[bytes], warnings: list[str]
) -> None:
    """Each record is read whole, whatever the file's snap length says; each one longer than
    it is counted in one warning (captured = original length: none was cut)."""
    frames, cf = read_all(write(tmp_path, pcap([(i, 0, data) for i, data in enumerate(records)], snaplen=snaplen)))
    assert [data for _ts, _lt, data in frames] == records
    assert cf.warnings == warnings


def test_records_with_more_captured_than_original_bytes_are_counted(tmp_path: Path) -> None:
    """Two of three records claim more captured bytes than their original length: they are
    read whole all the same, and the warning counts both, in the words users see."""
    recs = [(1, 0, b"a" * 10, 4), (2, 0, b"b" * 5, 5), (3, 0, b"c" * 8, 2)]
    frames, cf = read_all(write(tmp_path, pcap(recs)))
    assert frames == [(1.0, 1, b"a" * 10), (2.0, 1, b"b" * 5), (3.0, 1, b"c" * 8)]
    assert cf.warnings == [inflated(2)]


def test_every_pcap_warning_of_one_file_in_order(tmp_path: Path) -> None:
    """Skipped, inflated, longer than the snap length, cut by it: one line each, in that order."""
    recs = [
        (1, 0, b"a" * 120),  # skipped (--max-record 100); longer than the snap length of 50
        (2, 0, b"b" * 60, 30),  # inflated; longer than the snap length
        (3, 0, b"c" * 50, 1500),  # cut by the snap length
    ]
    frames, cf = read_limited(write(tmp_path, pcap(recs, snaplen=50)), 100)
    assert [data for _ts, _lt, data in frames] == [b"", b"b" * 60, b"c" * 50]
    assert cf.warnings == [
        summary(1, "1", 100),
        inflated(1),
        "1 record is longer than the file's snap length (50)",
        "1 frame was cut by the snap length (50)",
    ]


def test_several_snap_lengths_are_listed_in_order(tmp_path: Path) -> None:
    """pcapng: frames cut on interfaces with snap lengths 6 and 4 (and one without a snap
    length, 0, which is not listed): one warning naming the limits, smallest first."""
    content = (
        shb() + idb(snaplen=6) + idb(snaplen=0) + idb(snaplen=4)
        + epb("<", 0, 1_000_000, b"abcdef", orig=1500)
        + epb("<", 1, 2_000_000, b"whole")
        + epb("<", 2, 3_000_000, b"abcd", orig=60)
    )
    frames, cf = read_all(write(tmp_path, content))
    assert [data for _ts, _lt, data in frames] == [b"abcdef", b"whole", b"abcd"]
    assert cf.warnings == ["2 frames were cut by the snap length (4, 6)"]


@pytest.mark.parametrize(
    "incl, damaged",
    [(MAX_BLOCK, False), (MAX_BLOCK + 1, True)],
    ids=["max_block", "past_max_block"],
)
def test_a_record_of_max_block_bytes_is_skipped_not_damage(tmp_path: Path, incl: int, damaged: bool) -> None:
    """A record header claiming MAX_BLOCK bytes may be a record (skipped by --max-record, here
    cut short by the end of the file); one byte more is damage. The header is at byte 43
    (24 + 16 + 3), with 16 + 40 bytes of it in the file."""
    content = pcap([(1, 0, b"abc")]) + struct.pack("<IIII", 2, 0, incl, 60) + b"junk" * 10
    frames, cf = read_all(write(tmp_path, content))
    if damaged:
        assert frames == [(1.0, 1, b"abc")]
        assert cf.warnings == [
            f"capture damaged: record 2 claims {incl} bytes at byte offset 43; "
            "stopped there, decoded the 1 frame before it"
        ]
    else:
        assert frames == [(1.0, 1, b"abc"), (2.0, 1, b"")]
        assert cf.warnings == [
            f"capture cut short: record 2 at byte offset 43 is truncated (needed {16 + incl} bytes, "
            "56 left); decoded the 2 frames before it",
            summary(1, "2", 1 << 20),
        ]


# ---------------------------------------------------------------- records skipped by --max-record


def test_a_skipped_record_keeps_its_own_time(tmp_path: Path) -> None:
    recs = [(1, 250_000, b"a" * 10), (2, 500_000, b"b" * 200), (3, 750_000, b"c" * 10)]
    frames, cf = read_limited(write(tmp_path, pcap(recs)), 100)
    assert frames == [(1.25, 1, b"a" * 10), (2.5, 1, b""), (3.75, 1, b"c" * 10)]
    assert cf.warnings == [summary(1, "2", 100)]


def test_a_skipped_record_is_a_frame_of_no_bytes_in_views(tmp_path: Path) -> None:
    """``views`` gives a frame as buffer[start:end]: a skipped record's frame has length 0."""
    recs = [(1, 0, b"a" * 10), (2, 0, b"b" * 200), (3, 0, b"c" * 10)]
    cf = CaptureFile(write(tmp_path, pcap(recs)), max_record=100)
    with cf:
        seen = [(ts, bytes(buf[start:end]), end - start) for ts, _lt, buf, start, end in cf.views()]
    assert seen == [(1.0, b"a" * 10, 10), (2.0, b"", 0), (3.0, b"c" * 10, 10)]


def test_a_located_decode_reads_past_a_skipped_record(tmp_path: Path) -> None:
    """The TUI's located decode notes every frame's place and size: a skipped record is a
    frame of 0 bytes, and the decode runs on to the end of the file."""
    recs = [(1, 0, b"a" * 10), (2, 0, b"b" * 200), (3, 0, b"c" * 10)]
    decode = CaptureDecode(str(write(tmp_path, pcap(recs))), locate=True, limits=Limits(record=100))
    list(decode)
    assert decode.capture.frame_count == 3
    assert decode.capture.warnings == [summary(1, "2", 100)]


def test_a_skipped_record_past_the_buffer_can_end_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 64-byte reads, the last record (500 bytes) is read past to the end of the file,
    which ends there: nothing is cut short."""
    monkeypatch.setattr(capfile, "CHUNK", 64)
    frames, cf = read_limited(write(tmp_path, pcap([(1, 0, b"a" * 10), (2, 0, b"b" * 500)])), 100)
    assert frames == [(1.0, 1, b"a" * 10), (2.0, 1, b"")]
    assert cf.warnings == [summary(1, "2", 100)]


# ---------------------------------------------------------------- refills


def test_offsets_of_records_across_refills_and_a_record_read_past(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 64-byte reads, records smaller and bigger than a read and one read past
    (--max-record 100): each frame is placed at its file offset (16 bytes into its record),
    and so is the truncated record that ends the file."""
    monkeypatch.setattr(capfile, "CHUNK", 64)
    datas = [b"a" * 10, b"b" * 30, b"c" * 70, b"d" * 500, b"e" * 5, b"f" * 90, b"g" * 8]
    expected, at = [], HEADER
    for data in datas:
        expected.append(at + RECORD)
        at += RECORD + len(data)
    records = pcap([(i, 0, data) for i, data in enumerate(datas, 1)])
    cut = pcap([(8, 0, b"h" * 100)])[HEADER:]
    cf = CaptureFile(write(tmp_path, records + cut[:90]), max_record=100)
    with cf:
        seen = [(bytes(buf[start:end]), cf.offset(start)) for _ts, _lt, buf, start, end in cf.views()]
    assert [frame for frame, _ in seen] == [data if len(data) <= 100 else b"" for data in datas]
    # Not the skipped record's offset (the fourth): it has no bytes to place.
    assert [offset for i, (_, offset) in enumerate(seen) if i != 3] == expected[:3] + expected[4:]
    assert cf.warnings == [
        f"capture cut short: record 8 at byte offset {at} is truncated "
        "(needed 116 bytes, 90 left); decoded the 7 frames before it",
        summary(1, "4", 100),
    ]


def test_a_record_bigger_than_a_read_is_read_to_its_end_and_no_further(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 64-byte reads, a record longer than what the reader holds is completed by one
    read of exactly its missing bytes: when its frame comes out, the file has been read up
    to the record's end. A record that fits comes with a whole read: the next 64 bytes."""
    monkeypatch.setattr(capfile, "CHUNK", 64)
    datas = [bytes(400), bytes(300), b"end", bytes(500)]  # the last one: more file after
    ends, at = [], HEADER
    for data in datas:
        at += RECORD + len(data)
        ends.append(at)
    cf = CaptureFile(write(tmp_path, pcap([(i, 0, data) for i, data in enumerate(datas, 1)])))
    with cf:
        seen = [(len(frame), cf.position()) for _ts, _lt, frame in cf][:3]
    assert seen == [(400, ends[0]), (300, ends[1]), (3, ends[1] + 64)]
    assert cf.warnings == []


# ---------------------------------------------------------------- the file header


def test_a_file_header_that_comes_a_few_bytes_a_read() -> None:
    """A pipe that returns at most 10 bytes a read: the 24-byte file header is gathered from
    three reads, and the records after it are read whole."""
    content = pcap([(1, 0, b"a" * 30), (2, 500_000, b"b" * 5)], linktype=113)
    cf = CaptureFile(Trickle(content, 10))
    with cf:
        frames = list(cf)
    assert cf.format == "pcap"
    assert frames == [(1.0, 113, b"a" * 30), (2.5, 113, b"b" * 5)]
    assert cf.warnings == []


def test_a_live_capture_that_wrote_only_its_file_header_opens_without_waiting() -> None:
    """tcpdump writing to a pipe writes the 24-byte file header, then waits for a packet:
    the reader opens on the header alone and reads on only when asked for a frame."""
    header = pcap([])
    assert len(header) == HEADER
    cf = CaptureFile(Written(header))  # a read past the header would raise Blocked
    assert cf.format == "pcap" and cf.frame_count == 0
    frames = iter(cf)
    with pytest.raises(Blocked):
        next(frames)
    cf.close()
