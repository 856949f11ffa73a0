"""Unit tests for inspector.verify: normalising, comparing and reporting two decodes,
and Wireshark's decode through pyshark on a real and on hand-made captures."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from inspector.verify import (
    DirectionReport,
    WireMessage,
    all_agree,
    compare,
    format_report,
    ours_from_records,
    ports_from_records,
    wireshark_messages,
)

A = "10.0.0.1:40000"
B = "10.0.0.2:51413"
ARIA2 = Path("/work/shared/captures/aria2-to-libtorrent.pcap")

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def rec(src, dst, type_, frame, index=None, begin=None, length=None, transport="tcp", **extra):
    return dict(
        session=1, transport=transport, src=src, dst=dst, ts=1.0, frame=frame, type=type_,
        id=None, size=None, index=index, begin=begin, length=length, **extra,
    )


def wm(type_, frame, index=None, begin=None, length=None, note=None):
    return WireMessage(type_, index, begin, length, frame, note)


# A small conversation as btshark would print it with -T jsonl.
RECORDS = [
    rec(A, B, "handshake", 4),
    rec(B, A, "handshake", 5),
    rec(A, B, "interested", 6),
    rec(B, A, "bitfield", 7, length=2),  # a length the comparison must ignore
    rec(B, A, "unchoke", 7),
    rec(A, B, "request", 8, index=3, begin=0x4000, length=16384),
    rec(B, A, "piece", 12, index=3, begin=0x4000, length=16384),
    rec(A, B, "have", 13, index=3),
    rec(A, B, "piece", 14, index=9, begin=0, length=5, transport="utp"),  # not TCP: ignored
]


def theirs_for(records):
    """Wireshark's side made from the same records: a decode that agrees."""
    return {d: list(msgs) for d, msgs in ours_from_records(records).items()}


# --- ours_from_records ---------------------------------------------------------------


def test_ours_from_records_groups_by_direction_in_order_and_drops_non_tcp():
    ours = ours_from_records(RECORDS)
    assert set(ours) == {(A, B), (B, A)}
    assert [m.type for m in ours[(A, B)]] == ["handshake", "interested", "request", "have"]
    assert [m.frame for m in ours[(A, B)]] == [4, 6, 8, 13]
    assert [m.type for m in ours[(B, A)]] == ["handshake", "bitfield", "unchoke", "piece"]


def test_ours_from_records_keeps_only_the_fields_each_type_has():
    ours = ours_from_records(RECORDS)
    request, have = ours[(A, B)][2], ours[(A, B)][3]
    assert (request.index, request.begin, request.length) == (3, 0x4000, 16384)
    assert (have.index, have.begin, have.length) == (3, None, None)
    bitfield = ours[(B, A)][1]
    assert (bitfield.index, bitfield.begin, bitfield.length) == (None, None, None)
    piece = ours[(B, A)][3]
    assert (piece.index, piece.begin, piece.length, piece.frame) == (3, 0x4000, 16384, 12)


def test_ports_from_records_takes_both_ends_of_tcp_only():
    records = RECORDS + [rec("[fd00::1]:6881", "[fd00::2]:6882", "handshake", 20)]
    assert ports_from_records(records) == {40000, 51413, 6881, 6882}


# --- compare --------------------------------------------------------------------------


def test_compare_agreeing_decodes():
    reports = compare(ours_from_records(RECORDS), theirs_for(RECORDS))
    assert [(r.src, r.dst) for r in reports] == [(A, B), (B, A)]  # order of first frame
    assert all(r.agree and r.first_difference is None for r in reports)
    assert [(r.ours, r.theirs) for r in reports] == [(4, 4), (4, 4)]
    assert all_agree(reports)
    assert format_report(reports).splitlines()[-1] == "2 directions, 2 agree, 0 differ"


def test_compare_frames_alone_do_not_make_a_difference():
    theirs = theirs_for(RECORDS)
    theirs[(A, B)] = [
        WireMessage(m.type, m.index, m.begin, m.length, m.frame + 1) for m in theirs[(A, B)]
    ]
    assert all(r.agree for r in compare(ours_from_records(RECORDS), theirs))


def test_compare_difference_in_type():
    theirs = theirs_for(RECORDS)
    theirs[(A, B)][1] = wm("not_interested", 6)
    reports = compare(ours_from_records(RECORDS), theirs)
    ab = reports[0]
    assert (ab.src, ab.dst, ab.agree) == (A, B, False)
    assert ab.first_difference.startswith("#2: ")
    assert "ours interested @frame 6" in ab.first_difference
    assert "wireshark not_interested @frame 6" in ab.first_difference
    assert reports[1].agree
    assert not all_agree(reports)
    assert format_report(reports).splitlines()[-1] == "2 directions, 1 agree, 1 differ"


def test_compare_difference_in_index():
    theirs = theirs_for(RECORDS)
    theirs[(B, A)][3] = wm("piece", 12, index=4, begin=0x4000, length=16384)
    ba = compare(ours_from_records(RECORDS), theirs)[1]
    assert not ba.agree
    assert ba.first_difference == (
        "#4: ours piece(index=3, begin=0x4000, length=16384) @frame 12 | "
        "wireshark piece(index=4, begin=0x4000, length=16384) @frame 12"
    )


def test_compare_difference_in_begin_and_length():
    for changed in (wm("request", 8, 3, 0, 16384), wm("request", 8, 3, 0x4000, 8192)):
        theirs = theirs_for(RECORDS)
        theirs[(A, B)][2] = changed
        ab = compare(ours_from_records(RECORDS), theirs)[0]
        assert not ab.agree and ab.first_difference.startswith("#3: ")


def test_compare_message_missing_at_the_end():
    theirs = theirs_for(RECORDS)
    del theirs[(A, B)][-1]
    ab = compare(ours_from_records(RECORDS), theirs)[0]
    assert (ab.agree, ab.ours, ab.theirs) == (False, 4, 3)
    assert ab.first_difference == (
        "#4: ours have(index=3) @frame 13 | wireshark <none: ends after 3 messages>"
    )
    assert ab.reason is not None and "stops early" in ab.reason
    # ...and the other way round: an extra message at Wireshark's end.
    theirs = theirs_for(RECORDS)
    theirs[(A, B)].append(wm("keepalive", 30))
    ab = compare(ours_from_records(RECORDS), theirs)[0]
    assert not ab.agree and ab.first_difference.startswith("#5: ours <none")
    assert "wireshark keepalive @frame 30" in ab.first_difference


def test_compare_extra_direction_in_ours():
    records = RECORDS + [rec("10.0.0.3:6881", A, "handshake", 40)]
    reports = compare(ours_from_records(records), theirs_for(RECORDS))
    extra = [r for r in reports if r.src == "10.0.0.3:6881"]
    assert len(extra) == 1 and not extra[0].agree and not extra[0].skipped
    assert (extra[0].ours, extra[0].theirs) == (1, 0)
    assert extra[0].first_difference.startswith("#1: ours handshake @frame 40 | wireshark <none")
    assert format_report(reports).splitlines()[-1] == "3 directions, 2 agree, 1 differ"


def test_compare_extra_direction_in_theirs_with_handshake_differs():
    theirs = theirs_for(RECORDS)
    theirs[("10.0.0.3:6881", A)] = [wm("handshake", 40), wm("interested", 41)]
    extra = compare(ours_from_records(RECORDS), theirs)[-1]
    assert (extra.agree, extra.skipped, extra.ours, extra.theirs) == (False, False, 0, 2)


def test_compare_skips_wireshark_only_stream_without_handshake():
    # decode-as forced over an encrypted stream: garbage, no handshake, nothing in ours.
    theirs = theirs_for(RECORDS)
    theirs[("10.0.0.3:5000", B)] = [wm("unknown", 50, note="continuation data, 96 bytes")]
    reports = compare(ours_from_records(RECORDS), theirs)
    skipped = [r for r in reports if r.skipped]
    assert len(skipped) == 1 and skipped[0].src == "10.0.0.3:5000" and not skipped[0].agree
    assert all_agree(reports)
    assert format_report(reports).splitlines()[-1] == (
        "2 directions, 2 agree, 0 differ, 1 skipped (not plaintext BitTorrent)"
    )


def test_compare_names_the_bep52_quirk_and_lists_every_region():
    ours = {(A, B): [wm("handshake", 4), wm("hash_request", 6), wm("have", 6, 1), wm("have", 7, 2),
                     wm("hash_reject", 8), wm("have", 9, 5)]}
    theirs = {(A, B): [wm("handshake", 4), wm("unknown", 6, note="continuation data, 62 bytes"),
                       wm("have", 7, 2), wm("unknown", 8, note="continuation data, 53 bytes"),
                       wm("have", 9, 5)]}
    (report,) = compare(ours, theirs)
    assert not report.agree
    assert report.first_difference.startswith("#2: ours hash_request @frame 6")
    assert report.reason.startswith("frame 6: ") and "BEP 52" in report.reason
    assert len(report.differences) == 2
    assert "hash_request @frame 6; have(index=1) @frame 6" in report.differences[0]
    assert "hash_reject @frame 8" in report.differences[1]
    text = format_report([report], verbose=True)
    assert text.count("\n    ") == 2  # the two regions, indented under the direction


def test_format_report_one_line_per_direction_plus_summary():
    reports = [
        DirectionReport(A, B, 3, 3, True, None),
        DirectionReport(B, A, 3, 2, False, "#3: ours choke @frame 9 | wireshark <none: ends after 2 messages>"),
    ]
    lines = format_report(reports).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("agree ") and f"{A} -> {B}" in lines[0]
    assert lines[1].startswith("DIFFER") and "#3: ours choke @frame 9" in lines[1]
    assert lines[2] == "2 directions, 1 agree, 1 differ"


# --- Wireshark's decode through pyshark ----------------------------------------------


def write_pcap(path: Path, segments, a=("10.0.0.1", 40000), b=("10.0.0.2", 51413)):
    """A minimal Ethernet/IPv4/TCP pcap: handshake of SYNs, then (direction, payload)
    segments ('ab' or 'ba'), each sent in order. Checksums are left zero."""
    seq = {"ab": 1000, "ba": 5000}
    frames = []

    def segment(d, flags, data=b""):
        (sip, sport), (dip, dport) = (a, b) if d == "ab" else (b, a)
        other = "ba" if d == "ab" else "ab"
        tcp = struct.pack(">HHIIBBHHH", sport, dport, seq[d], seq[other], 5 << 4, flags, 65535, 0, 0)
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40 + len(data), 0, 0x4000, 64, 6, 0,
                         socket.inet_aton(sip), socket.inet_aton(dip))
        frames.append(bytes(12) + b"\x08\x00" + ip + tcp + data)
        seq[d] += len(data) + (1 if flags & 0x02 else 0)

    segment("ab", 0x02)
    segment("ba", 0x12)
    segment("ab", 0x10)
    for d, data in segments:
        segment(d, 0x18, data)
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)


HANDSHAKE = b"\x13BitTorrent protocol" + bytes(8) + bytes(range(20)) + b"-XX0001-" + bytes(12)


def msg(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


KEEPALIVE = bytes(4)
REQUEST = msg(6, struct.pack(">III", 1, 0x4000, 16384))


def have(index: int) -> bytes:
    return msg(4, struct.pack(">I", index))


@needs_tshark
def test_wireshark_messages_several_pdus_per_frame_and_keepalives(tmp_path):
    pcap = tmp_path / "small.pcap"
    write_pcap(pcap, [
        ("ab", HANDSHAKE), ("ba", HANDSHAKE),
        ("ab", KEEPALIVE + have(7) + KEEPALIVE + REQUEST[:6]),  # frame 6
        ("ab", REQUEST[6:] + msg(14) + msg(7, struct.pack(">II", 1, 0x4000) + b"x" * 300)),  # 7
        ("ba", msg(16, REQUEST[5:]) + msg(17, struct.pack(">I", 2)) + msg(20, b"\x00de")),  # 8
    ])
    theirs = wireshark_messages(pcap, [51413])
    assert [(m.type, m.index, m.begin, m.length, m.frame) for m in theirs[(A, B)]] == [
        ("handshake", None, None, None, 4),
        ("keepalive", None, None, None, 6),
        ("have", 7, None, None, 6),
        ("keepalive", None, None, None, 6),
        ("request", 1, 0x4000, 16384, 7),
        ("have_all", None, None, None, 7),
        ("piece", 1, 0x4000, 300, 7),
    ]
    assert [(m.type, m.index, m.begin, m.length, m.frame) for m in theirs[(B, A)]] == [
        ("handshake", None, None, None, 5),
        ("reject", 1, 0x4000, 16384, 8),
        ("allowed_fast", 2, None, None, 8),
        ("extended", None, None, None, 8),
    ]


@needs_tshark
def test_split_length_prefix_quirk_is_named(tmp_path):
    # A request whose 4-byte length prefix ends frame 6: tshark 4.0 loses alignment.
    pcap = tmp_path / "split.pcap"
    write_pcap(pcap, [("ab", HANDSHAKE), ("ba", HANDSHAKE),
                      ("ab", have(1) + REQUEST[:4]), ("ab", REQUEST[4:] + have(2)), ("ab", have(3))])
    ours = {(A, B): [wm("handshake", 4), wm("have", 6, 1), wm("request", 7, 1, 0x4000, 16384),
                     wm("have", 7, 2), wm("have", 8, 3)],
            (B, A): [wm("handshake", 5)]}
    ab, ba = compare(ours, wireshark_messages(pcap, [51413]))
    assert ba.agree and not ab.agree
    assert ab.first_difference == (
        "#3: ours request(index=1, begin=0x4000, length=16384) @frame 7 | "
        "wireshark keepalive [empty 4-byte PDU] @frame 6"
    )
    assert ab.reason.startswith("frames 6 and 7: ") and "length prefix ended a TCP segment" in ab.reason


@pytest.fixture(scope="module")
def aria2():
    if shutil.which("tshark") is None or not ARIA2.exists():
        pytest.skip("needs tshark and the shared aria2 capture")
    return wireshark_messages(ARIA2, [51413, 6881])


def tshark_piece_count(pcap: Path, src_port: int) -> int:
    """Piece messages sent from src_port, counted by tshark -T fields (independently of pyshark)."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", "tcp.reassemble_out_of_order:TRUE",
         "-d", "tcp.port==51413,bittorrent", "-Y", f"tcp.srcport=={src_port} && bittorrent",
         "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "bittorrent.msg.type"],
        capture_output=True, text=True, check=True,
    ).stdout
    return sum(value == "7" for line in out.splitlines() for value in line.split(","))


def test_wireshark_messages_on_aria2_capture(aria2):
    seeder, leecher = "127.0.0.1:51413", "127.0.0.1:36687"
    assert set(aria2) == {(seeder, leecher), (leecher, seeder)}
    up, down = aria2[(leecher, seeder)], aria2[(seeder, leecher)]
    assert up[0].type == "handshake" and down[0].type == "handshake"
    assert all(m.type != "handshake" for m in up[1:] + down[1:])
    for messages in (up, down):
        assert [m.frame for m in messages] == sorted(m.frame for m in messages)

    pieces = [m for m in down if m.type == "piece"]
    assert len(pieces) == tshark_piece_count(ARIA2, 51413) == 64  # 16 pieces x 4 blocks
    assert {m.length for m in pieces} == {16384}
    assert sorted({(m.index, m.begin) for m in pieces}) == [
        (i, b) for i in range(16) for b in range(0, 0x10000, 0x4000)
    ]
    assert not any(m.type == "piece" for m in up)
    requests = [m for m in up if m.type == "request"]
    assert sorted((m.index, m.begin, m.length) for m in requests) == sorted(
        (p.index, p.begin, p.length) for p in pieces
    )
    assert sum(m.type == "have" for m in up) == 16
    assert [m.type for m in up[:4]] == ["handshake", "extended", "have_none", "interested"]
    assert [m.type for m in down[:3]] == ["handshake", "extended", "have_all"]
    # tshark labels frame 324 a retransmission (a pure ACK with a later seq was captured
    # first); only with tcp.reassemble_out_of_order does it decode the two requests in it.
    assert [(m.index, m.begin) for m in up if m.frame == 324] == [(11, 0), (11, 0x4000)]
