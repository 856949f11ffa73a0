"""Capture file reading: every format variant, damage, truncation, chunk boundaries."""
from __future__ import annotations

import gzip
import os
import struct
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED_CAPTURES, SHARED_MISSING
from inspector import capfile
from inspector.capfile import CaptureError, CaptureFile

SAMPLE = SHARED_CAPTURES / "aria2-to-libtorrent.pcap"

# ---------------------------------------------------------------- builders


def pcap(records, order="<", nano=False, linktype=1, snaplen=65535) -> bytes:
    """A classic pcap file; records are (sec, frac, data) or (sec, frac, data, orig_len)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, *orig in records:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), orig[0] if orig else len(data)))
        out.append(data)
    return b"".join(out)


def block(order: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def shb(order="<") -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order="<", linktype=1, snaplen=0, tsresol=None, tsoffset=None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += option(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += option(order, 2, b"eth0") + struct.pack(order + "HH", 0, 0)
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(order, ifid, ticks, data, orig=None) -> bytes:
    head = struct.pack(order + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data) if orig is None else orig)
    return block(order, 6, head + data + option(order, 1, b"a comment") + bytes(4))


def opb(order, ifid, ticks, data) -> bytes:
    head = struct.pack(order + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
    return block(order, 2, head + data)


def spb(order, data, orig=None) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(data) if orig is None else orig) + data)


def write(tmp_path: Path, content: bytes, name="cap") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def read_all(path) -> tuple[list, CaptureFile]:
    cf = CaptureFile(path)
    with cf:
        frames = list(cf)
    return frames, cf


FRAMES = [bytes([i]) * (20 + 37 * i) for i in range(6)]  # odd lengths exercise block padding


# ---------------------------------------------------------------- pcap


@pytest.mark.parametrize("order", "<>")
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, order, nano):
    div = 10**9 if nano else 10**6
    frac = 999_999_999 if nano else 999_999
    recs = [(1_700_000_000 + i, frac - i, data) for i, data in enumerate(FRAMES)]
    frames, cf = read_all(write(tmp_path, pcap(recs, order, nano, linktype=113)))
    assert [f[2] for f in frames] == FRAMES
    assert {f[1] for f in frames} == {113}
    for (sec, fr, _), (ts, _, _) in zip(recs, frames):
        # The float nearest the exact tick count: correctly rounded, not sec + frac / div.
        assert ts == float(Fraction(sec * div + fr, div))
    assert cf.frame_count == len(FRAMES)
    assert cf.warnings == []
    assert cf.format == "pcap"


def test_pcap_nanosecond_timestamp_is_not_read_as_microseconds(tmp_path):
    frames, _ = read_all(write(tmp_path, pcap([(10, 500_000_000, b"x")], nano=True)))
    assert frames[0][0] == 10.5


@pytest.mark.parametrize("nano, sec, frac", [(False, 5, 789946), (True, 1, 506437259)])
def test_pcap_timestamp_is_correctly_rounded(tmp_path, nano, sec, frac):
    div = 10**9 if nano else 10**6
    assert sec + frac / div != float(Fraction(sec * div + frac, div))  # the naive sum is off by one ulp
    frames, _ = read_all(write(tmp_path, pcap([(sec, frac, b"x")], nano=nano)))
    assert frames[0][0] == float(Fraction(sec * div + frac, div))


def test_pcap_linktype_ignores_fcs_bits(tmp_path):
    frames, _ = read_all(write(tmp_path, pcap([(1, 0, b"x")], linktype=0x1400_0001)))
    assert frames[0][1] == 1


def test_pcap_empty_capture_has_no_frames(tmp_path):
    frames, cf = read_all(write(tmp_path, pcap([])))
    assert frames == [] and cf.warnings == [] and cf.frame_count == 0


def test_pcap_truncated_last_record(tmp_path):
    good = pcap([(1, i, data) for i, data in enumerate(FRAMES)])
    path = write(tmp_path, good[:-10])
    frames, cf = read_all(path)
    assert [f[2] for f in frames] == FRAMES[:-1]
    offset = len(good) - 16 - len(FRAMES[-1])
    assert cf.warnings == [
        f"capture cut short: record 6 at byte offset {offset} is truncated "
        f"(needed {16 + len(FRAMES[-1])} bytes, {16 + len(FRAMES[-1]) - 10} left); "
        "decoded the 5 frames before it"
    ]
    assert cf.frame_count == 5


def test_pcap_truncated_record_header(tmp_path):
    good = pcap([(1, 0, b"abc"), (2, 0, b"def")])
    frames, cf = read_all(write(tmp_path, good[: 24 + 16 + 3 + 5]))
    assert [f[2] for f in frames] == [b"abc"]
    assert len(cf.warnings) == 1
    assert "record 2 at byte offset 43" in cf.warnings[0]
    assert "needed 16 bytes, 5 left" in cf.warnings[0]


def test_pcap_snaplen_cut_summary(tmp_path):
    recs = [(1, 0, b"a" * 100, 1514), (1, 1, b"b" * 60), (1, 2, b"c" * 100, 200)]
    frames, cf = read_all(write(tmp_path, pcap(recs, snaplen=100)))
    assert len(frames) == 3
    assert cf.warnings == ["2 frames were cut by the snap length (100)"]


def test_pcap_absurd_record_length_is_damage(tmp_path):
    good = pcap([(1, 0, b"abc"), (2, 0, b"def")])
    bad = good + struct.pack("<IIII", 3, 0, 0xFFFF0000, 60) + b"junk" * 100
    frames, cf = read_all(write(tmp_path, bad))
    assert [f[2] for f in frames] == [b"abc", b"def"]
    assert len(cf.warnings) == 1
    assert cf.warnings[0].startswith(f"capture damaged: record 3 claims {0xFFFF0000} bytes at byte offset {len(good)};")
    assert "decoded the 2 frames before it" in cf.warnings[0]


def test_pcap_record_larger_than_a_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(capfile, "CHUNK", 64)
    big = os.urandom(10_000)
    frames, cf = read_all(write(tmp_path, pcap([(1, 0, b"a"), (2, 0, big), (3, 0, b"c")])))
    assert [f[2] for f in frames] == [b"a", big, b"c"]
    assert cf.warnings == []


# ---------------------------------------------------------------- --max-record


def read_limited(path, max_record: int) -> tuple[list, CaptureFile]:
    cf = CaptureFile(path, max_record=max_record)
    with cf:
        frames = list(cf)
    return frames, cf


@pytest.mark.parametrize("chunk", [64, 1 << 16], ids=["records_past_the_buffer", "records_in_the_buffer"])
def test_pcap_records_over_max_record_are_skipped_as_empty_frames(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(capfile, "CHUNK", chunk)
    recs = [(1, 0, b"a" * 10), (2, 0, b"b" * 500), (3, 0, b"c" * 100), (4, 0, b"d" * 101), (5, 0, b"e" * 10)]
    frames, cf = read_limited(write(tmp_path, pcap(recs)), 100)
    assert [(ts, data) for ts, _lt, data in frames] == [
        (1.0, b"a" * 10), (2.0, b""), (3.0, b"c" * 100), (4.0, b""), (5.0, b"e" * 10)]
    assert cf.skipped == [2, 4] and cf.frame_count == 5
    assert cf.warnings == ["2 records longer than the largest record read (--max-record 100) were skipped: "
                           "frames 2, 4"]


def test_skipped_records_beyond_the_listed_twenty_are_counted_not_named(tmp_path):
    recs = [(i, 0, b"x" * 50) for i in range(1, 23)]
    frames, cf = read_limited(write(tmp_path, pcap(recs)), 49)
    assert len(frames) == 22 and cf.skipped == list(range(1, 21))
    names = ", ".join(str(i) for i in range(1, 21))
    assert cf.warnings == [f"22 records longer than the largest record read (--max-record 49) were skipped: "
                           f"frames {names}, ..."]


def test_pcap_skipped_record_cut_by_the_end_of_the_file(tmp_path):
    content = pcap([(1, 0, b"a" * 10), (2, 0, b"b" * 500)])[:-300]  # record 2 at byte 50, 216 of 516 bytes
    frames, cf = read_limited(write(tmp_path, content), 100)
    assert [data for _ts, _lt, data in frames] == [b"a" * 10, b""]
    assert cf.warnings[0] == ("capture cut short: record 2 at byte offset 50 is truncated (needed 516 bytes, "
                              "216 left); decoded the 2 frames before it")


@pytest.mark.parametrize("chunk", [64, 1 << 16], ids=["blocks_past_the_buffer", "blocks_in_the_buffer"])
def test_pcapng_blocks_over_max_record_are_skipped(tmp_path, monkeypatch, chunk):
    """Packet blocks become empty frames; another big block (here of an unknown type)
    is read past without a frame, as any unknown block is."""
    monkeypatch.setattr(capfile, "CHUNK", chunk)
    big_unknown = block("<", 0x0BAD, bytes(600))
    content = (shb() + idb() + epb("<", 0, 1_000_000, b"a" * 10) + epb("<", 0, 2_000_000, b"b" * 500)
               + big_unknown + spb("<", b"c" * 400) + opb("<", 0, 3_000_000, b"d" * 300)
               + epb("<", 0, 4_000_000, b"e" * 10))
    frames, cf = read_limited(write(tmp_path, content), 100)
    assert [data for _ts, _lt, data in frames] == [b"a" * 10, b"", b"", b"", b"e" * 10]
    assert cf.skipped == [2, 3, 4]
    assert cf.warnings == ["3 records longer than the largest record read (--max-record 100) were skipped: "
                           "frames 2, 3, 4"]


def test_pcapng_skipped_block_cut_by_the_end_of_the_file(tmp_path):
    head = shb() + idb() + epb("<", 0, 1_000_000, b"a" * 10)
    big = epb("<", 0, 2_000_000, b"b" * 500)
    frames, cf = read_limited(write(tmp_path, head + big[:-100]), 100)
    assert [data for _ts, _lt, data in frames] == [b"a" * 10, b""]
    assert cf.warnings[0] == (f"capture cut short: block at byte offset {len(head)} is truncated "
                              f"(needed {len(big)} bytes, {len(big) - 100} left); decoded the 2 frames before it")


# ---------------------------------------------------------------- progress


def test_position_is_the_bytes_of_the_file_read(tmp_path):
    content = pcap([(1, 0, b"a" * 1000)] * 200)
    path = write(tmp_path, content)
    cf = CaptureFile(path)
    assert 0 < cf.position() <= len(content)
    assert len(list(cf)) == 200
    assert cf.position() == len(content)
    cf.close()
    assert cf.position() == 0


def test_position_of_a_gzip_capture_counts_compressed_bytes(tmp_path):
    packed = gzip.compress(pcap([(1, 0, os.urandom(1000))] * 200))
    cf = CaptureFile(write(tmp_path, packed, "cap.gz"))
    assert len(list(cf)) == 200
    assert cf.position() == len(packed)
    cf.close()


# ---------------------------------------------------------------- pcapng


@pytest.mark.parametrize("order", "<>")
def test_pcapng_interfaces_with_different_link_types(tmp_path, order):
    content = (
        shb(order)
        + idb(order, linktype=1)
        + idb(order, linktype=113)
        + idb(order, linktype=101, tsresol=9)
        + epb(order, 0, 1_700_000_000_000_001, FRAMES[0])
        + epb(order, 2, 1_700_000_000_123_456_789, FRAMES[1])
        + epb(order, 1, 1_700_000_001_000_000, FRAMES[2])
    )
    frames, cf = read_all(write(tmp_path, content))
    assert frames == [
        (float(Fraction(1_700_000_000_000_001, 10**6)), 1, FRAMES[0]),
        (float(Fraction(1_700_000_000_123_456_789, 10**9)), 101, FRAMES[1]),
        (1_700_000_001.0, 113, FRAMES[2]),
    ]
    assert cf.warnings == [] and cf.format == "pcapng" and cf.frame_count == 3


def test_pcapng_power_of_two_resolution_and_offset(tmp_path):
    content = (
        shb()
        + idb(tsresol=0x80 | 10, tsoffset=1_600_000_000)
        + idb(tsresol=3, tsoffset=-5)
        + epb("<", 0, 5 * 1024 + 512, b"a")
        + epb("<", 1, 7_250, b"b")
    )
    frames, _ = read_all(write(tmp_path, content))
    assert [f[0] for f in frames] == [1_600_000_005.5, 2.25]


def test_pcapng_interface_option_overrunning_its_block_is_ignored(tmp_path):
    bad_idb = block("<", 1, struct.pack("<HHI", 113, 0, 0) + struct.pack("<HH", 9, 200) + b"\x09\x00\x00\x00")
    frames, cf = read_all(write(tmp_path, shb() + bad_idb + epb("<", 0, 2_500_000, b"a")))
    assert frames == [(2.5, 113, b"a")] and cf.warnings == []


def test_pcapng_sections_reset_interfaces_and_byte_order(tmp_path):
    content = (
        shb("<") + idb("<", linktype=1) + epb("<", 0, 1_000_000, b"first")
        + shb(">") + idb(">", linktype=276) + epb(">", 0, 2_000_000, b"second")
        + shb("<") + epb("<", 0, 3_000_000, b"third")  # no IDB in this section
    )
    frames, cf = read_all(write(tmp_path, content))
    assert frames == [(1.0, 1, b"first"), (2.0, 276, b"second")]
    assert len(cf.warnings) == 1
    assert "packet block (frame 3) for undeclared interface 0" in cf.warnings[0]
    assert "decoded the 2 frames before it" in cf.warnings[0]


def test_pcapng_simple_and_obsolete_packet_blocks(tmp_path):
    content = (
        shb(">")
        + idb(">", linktype=113, snaplen=6)
        + idb(">", linktype=1)
        + opb(">", 1, 4_500_000, b"obsolete")
        + spb(">", b"simple", orig=1000)  # cut by IDB 0's snap length; the block pads it to 8
        + spb(">", b"short")
    )
    frames, cf = read_all(write(tmp_path, content))
    # SPBs: IDB 0's link type, previous frame's timestamp.
    assert frames == [(4.5, 1, b"obsolete"), (4.5, 113, b"simple"), (4.5, 113, b"short")]
    assert cf.warnings == ["1 frame was cut by the snap length (6)"]


def test_pcapng_simple_packet_block_first_has_zero_time(tmp_path):
    frames, _ = read_all(write(tmp_path, shb() + idb() + spb("<", b"x")))
    assert frames == [(0.0, 1, b"x")]


def test_pcapng_skips_unknown_blocks(tmp_path):
    content = (
        shb()
        + block("<", 4, struct.pack("<HH", 0, 0))  # name resolution
        + idb()
        + block("<", 5, bytes(12))  # interface statistics
        + epb("<", 0, 1, b"a")
        + block("<", 0x40000BAD, b"custom payload")
        + block("<", 10, bytes(4))  # decryption secrets
        + epb("<", 0, 2, b"b")
    )
    frames, cf = read_all(write(tmp_path, content))
    assert [f[2] for f in frames] == [b"a", b"b"] and cf.warnings == []


def test_pcapng_snaplen_cut(tmp_path):
    content = shb() + idb(snaplen=4) + epb("<", 0, 1, b"abcd", orig=1500) + epb("<", 0, 2, b"ab")
    frames, cf = read_all(write(tmp_path, content))
    assert len(frames) == 2
    assert cf.warnings == ["1 frame was cut by the snap length (4)"]


def test_pcapng_truncated_last_block(tmp_path):
    good = shb() + idb() + b"".join(epb("<", 0, i, d) for i, d in enumerate(FRAMES))
    last = epb("<", 0, 5, FRAMES[-1])
    frames, cf = read_all(write(tmp_path, good[:-3]))
    assert [f[2] for f in frames] == FRAMES[:-1]
    assert cf.warnings == [
        f"capture cut short: packet block (frame 6) at byte offset {len(good) - len(last)} is truncated "
        f"(needed {len(last)} bytes, {len(last) - 3} left); decoded the 5 frames before it"
    ]


def test_pcapng_truncated_inside_block_header(tmp_path):
    good = shb() + idb() + epb("<", 0, 1, b"abc")
    frames, cf = read_all(write(tmp_path, good + epb("<", 0, 2, b"def")[:6]))
    assert [f[2] for f in frames] == [b"abc"]
    assert cf.warnings == [
        f"capture cut short: block at byte offset {len(good)} is truncated "
        "(needed 12 bytes, 6 left); decoded the 1 frame before it"
    ]


@pytest.mark.parametrize(
    "garbage, what",
    [
        (struct.pack("<II", 6, 37) + bytes(40), "with length 37"),  # not a multiple of 4
        (struct.pack("<II", 6, 8) + bytes(40), "with length 8"),
        (struct.pack("<II", 6, 1 << 30) + bytes(40), f"with length {1 << 30}"),
        (epb("<", 0, 3, b"xyz")[:-4] + struct.pack("<I", 99), "trailing length does not match"),
        (block("<", 6, struct.pack("<IIIII", 0, 0, 0, 500, 500) + b"abc"), "with captured length 500"),
        (shb()[:8] + b"XXXX" + shb()[12:], "bad byte-order magic"),
        (block("<", 1, b""), "interface block with length 12"),
    ],
)
def test_pcapng_garbage_mid_file(tmp_path, garbage, what):
    good = shb() + idb() + epb("<", 0, 1, b"abc") + epb("<", 0, 2, b"def")
    frames, cf = read_all(write(tmp_path, good + garbage + epb("<", 0, 9, b"never")))
    assert [f[2] for f in frames] == [b"abc", b"def"]
    assert len(cf.warnings) == 1
    assert cf.warnings[0].startswith("capture damaged: ")
    assert what in cf.warnings[0]
    assert f"at byte offset {len(good)}; stopped there, decoded the 2 frames before it" in cf.warnings[0]


def test_pcapng_simple_packet_block_before_interface_is_damage(tmp_path):
    frames, cf = read_all(write(tmp_path, shb() + spb("<", b"x")))
    assert frames == [] and "simple packet block (frame 1) before any interface" in cf.warnings[0]


# ---------------------------------------------------------------- gzip


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_compressed(tmp_path, kind):
    if kind == "pcap":
        content = pcap([(7, i, d) for i, d in enumerate(FRAMES)], nano=True)
    else:
        content = shb() + idb(tsresol=9) + b"".join(epb("<", 0, 7 * 10**9 + i, d) for i, d in enumerate(FRAMES))
    frames, cf = read_all(write(tmp_path, gzip.compress(content), "cap.gz"))
    assert frames == [(float(Fraction(7 * 10**9 + i, 10**9)), 1, d) for i, d in enumerate(FRAMES)]
    assert cf.warnings == [] and cf.format == kind


def test_gzip_cut_short_keeps_frames_before(tmp_path):
    content = pcap([(1, i, os.urandom(3000)) for i in range(50)])
    packed = gzip.compress(content)
    frames, cf = read_all(write(tmp_path, packed[: len(packed) // 2]))
    assert 0 < len(frames) < 50
    assert [f[2] for f in frames] == [content[24 + 16 + i * 3016 : 24 + (i + 1) * 3016] for i in range(len(frames))]
    assert any("reading stopped" in w for w in cf.warnings)
    assert any(w.startswith(f"capture cut short: record {len(frames) + 1} ") for w in cf.warnings)


# ---------------------------------------------------------------- not a capture


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"Hello, this is a text file.\n" * 20, "not a pcap or pcapng capture"),
        (bytes(range(256)) * 4, "not a pcap or pcapng capture"),
        (b"\n\r\r\nnot a section header at all", "not a pcap or pcapng capture"),
        (gzip.compress(b"plain text, compressed\n", mtime=0), "not a pcap or pcapng capture (gzip-compressed)"),
        (b"\x1f\x8b\x08\x00garbage that is not deflate", "corrupt gzip data (Error -3 while decompressing data"),
        (pcap([])[:20], "pcap header is truncated (20 of 24 bytes)"),
    ],
)
def test_not_a_capture(tmp_path, content, message):
    path = write(tmp_path, content, "input.bin")
    with pytest.raises(CaptureError) as info:
        CaptureFile(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CaptureError, match=r"nope\.pcap: No such file or directory$"):
        CaptureFile(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match=r": Is a directory$"):
        CaptureFile(tmp_path)


# ---------------------------------------------------------------- object behaviour


def test_single_pass_and_close(tmp_path):
    path = write(tmp_path, pcap([(1, 0, b"a"), (2, 0, b"b"), (3, 0, b"c")], snaplen=1) )
    cf = CaptureFile(path)
    it = iter(cf)
    assert next(it)[2] == b"a"
    assert cf.frame_count == 1
    cf.close()
    assert list(cf) == []
    cf.close()  # idempotent
    with CaptureFile(path) as again:
        assert [f[2] for f in again] == [b"a", b"b", b"c"]
        assert list(again) == []


# ---------------------------------------------------------------- scapy's writers


def test_reads_what_scapy_writes(tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapNgWriter, wrpcap

    pkts = []
    for i in range(5):
        p = Ether() / IP(dst="10.0.0.1") / TCP(sport=6881, dport=51413, seq=i) / (b"x" * i)
        p.time = 1_700_000_000 + i / 4
        pkts.append(p)
    wrpcap(str(tmp_path / "s.pcap"), pkts)
    with PcapNgWriter(str(tmp_path / "s.pcapng")) as w:
        for p in pkts:
            w.write(p)
    for name in ("s.pcap", "s.pcapng"):
        frames, cf = read_all(tmp_path / name)
        assert [f[2] for f in frames] == [bytes(p) for p in pkts], name
        assert [f[0] for f in frames] == [float(p.time) for p in pkts], name
        assert {f[1] for f in frames} == {1} and cf.warnings == []


@pytest.mark.skipif(not SAMPLE.exists(), reason=SHARED_MISSING)
def test_sample_capture_frame_count():
    frames, cf = read_all(SAMPLE)
    assert len(frames) == cf.frame_count == 1102 and cf.warnings == []


# ---------------------------------------------------------------- properties

_records = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999), st.binary(max_size=300)),
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records, chunk=st.sampled_from([1, 3, 16, 17, 100, 1 << 20]), ng=st.booleans())
def test_any_chunk_size_reads_the_same(tmp_path, monkeypatch, records, chunk, ng):
    monkeypatch.setattr(capfile, "CHUNK", chunk)
    if ng:
        content = shb(">") + idb(">", tsresol=6) + b"".join(
            epb(">", 0, s * 10**6 + f, d) for s, f, d in records)
    else:
        content = pcap(records)
    frames, cf = read_all(write(tmp_path, content))
    assert frames == [(float(Fraction(s * 10**6 + f, 10**6)), 1, d) for s, f, d in records]
    assert cf.warnings == []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records.filter(bool), data=st.data(), ng=st.booleans())
def test_any_truncation_yields_a_prefix_and_says_so(tmp_path, records, data, ng):
    if ng:
        head = shb() + idb()
        parts = [epb("<", 0, s * 10**6 + f, d) for s, f, d in records]
    else:
        head = pcap([])
        parts = [pcap([r])[24:] for r in records]
    content = head + b"".join(parts)
    cut = data.draw(st.integers(len(head), len(content)))
    frames, cf = read_all(write(tmp_path, content[:cut]))
    whole = 0
    boundary = len(head)
    for part in parts:
        if boundary + len(part) > cut:
            break
        boundary += len(part)
        whole += 1
    assert [f[2] for f in frames] == [d for _, _, d in records[:whole]]
    if boundary == cut:
        assert cf.warnings == []
    else:
        assert len(cf.warnings) == 1 and cf.warnings[0].startswith("capture cut short: ")
        assert cf.warnings[0].endswith(f"decoded the {whole} frame{'s' * (whole != 1)} before it")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(min_size=1, max_size=200), ng=st.booleans())
def test_junk_after_good_frames_never_raises(tmp_path, junk, ng):
    head = shb() + idb() + epb("<", 0, 1, b"abc") if ng else pcap([(1, 0, b"abc")])
    frames, cf = read_all(write(tmp_path, head + junk))
    assert frames[0][2] == b"abc"
    assert all("\n" not in w for w in cf.warnings)
