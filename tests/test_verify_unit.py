"""Unit tests for inspector.verify: normalising, comparing and reporting two decodes,
and Wireshark's decode through pyshark on a real and on hand-made captures."""

from __future__ import annotations

import functools
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SHARED_CAPTURES
from inspector.cli import cli
from inspector.verify import (
    NOTHING_TO_COMPARE,
    DirectionReport,
    UtpPacket,
    WireMessage,
    all_agree,
    compare,
    format_report,
    ours_from_records,
    ports_from_records,
    tshark_errors,
    utp_packets,
    verify,
    wireshark_messages,
)

A = "10.0.0.1:40000"
B = "10.0.0.2:51413"
AB, BA = ("tcp", A, B), ("tcp", B, A)
ARIA2 = SHARED_CAPTURES / "aria2-to-libtorrent.pcap"

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
]


def theirs_for(records):
    """Wireshark's side made from the same records: a decode that agrees."""
    return {d: list(msgs) for d, msgs in ours_from_records(records).items()}


# --- ours_from_records ---------------------------------------------------------------


def test_ours_from_records_groups_by_direction_in_order():
    ours = ours_from_records(RECORDS)
    assert set(ours) == {AB, BA}
    assert [m.type for m in ours[AB]] == ["handshake", "interested", "request", "have"]
    assert [m.frame for m in ours[AB]] == [4, 6, 8, 13]
    assert [m.type for m in ours[BA]] == ["handshake", "bitfield", "unchoke", "piece"]


def test_ours_from_records_keeps_only_the_fields_each_type_has():
    ours = ours_from_records(RECORDS)
    request, have = ours[AB][2], ours[AB][3]
    assert (request.index, request.begin, request.length) == (3, 0x4000, 16384)
    assert (have.index, have.begin, have.length) == (3, None, None)
    bitfield = ours[BA][1]
    assert (bitfield.index, bitfield.begin, bitfield.length) == (None, None, None)
    piece = ours[BA][3]
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
    theirs[AB] = [
        WireMessage(m.type, m.index, m.begin, m.length, m.frame + 1) for m in theirs[AB]
    ]
    assert all(r.agree for r in compare(ours_from_records(RECORDS), theirs))


def test_compare_difference_in_type():
    theirs = theirs_for(RECORDS)
    theirs[AB][1] = wm("not_interested", 6)
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
    theirs[BA][3] = wm("piece", 12, index=4, begin=0x4000, length=16384)
    ba = compare(ours_from_records(RECORDS), theirs)[1]
    assert not ba.agree
    assert ba.first_difference == (
        "#4: ours piece(index=3, begin=0x4000, length=16384) @frame 12 | "
        "wireshark piece(index=4, begin=0x4000, length=16384) @frame 12"
    )


def test_compare_difference_in_begin_and_length():
    for changed in (wm("request", 8, 3, 0, 16384), wm("request", 8, 3, 0x4000, 8192)):
        theirs = theirs_for(RECORDS)
        theirs[AB][2] = changed
        ab = compare(ours_from_records(RECORDS), theirs)[0]
        assert not ab.agree and ab.first_difference.startswith("#3: ")


def test_compare_message_missing_at_the_end():
    theirs = theirs_for(RECORDS)
    del theirs[AB][-1]
    ab = compare(ours_from_records(RECORDS), theirs)[0]
    assert (ab.agree, ab.ours, ab.theirs) == (False, 4, 3)
    assert ab.first_difference == (
        "#4: ours have(index=3) @frame 13 | wireshark <none: ends after 3 messages>"
    )
    assert ab.reason is not None and "stops early" in ab.reason
    # ...and the other way round: an extra message at Wireshark's end.
    theirs = theirs_for(RECORDS)
    theirs[AB].append(wm("keepalive", 30))
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
    theirs[("tcp", "10.0.0.3:6881", A)] = [wm("handshake", 40), wm("interested", 41)]
    extra = compare(ours_from_records(RECORDS), theirs)[-1]
    assert (extra.agree, extra.skipped, extra.ours, extra.theirs) == (False, False, 0, 2)


def test_compare_skips_wireshark_only_stream_without_handshake():
    # decode-as forced over an encrypted stream: garbage, no handshake, nothing in ours.
    theirs = theirs_for(RECORDS)
    theirs[("tcp", "10.0.0.3:5000", B)] = [wm("unknown", 50, note="continuation data, 96 bytes")]
    reports = compare(ours_from_records(RECORDS), theirs)
    skipped = [r for r in reports if r.skipped]
    assert len(skipped) == 1 and skipped[0].src == "10.0.0.3:5000" and not skipped[0].agree
    assert all_agree(reports)
    assert format_report(reports).splitlines()[-1] == (
        "2 directions, 2 agree, 0 differ, 1 skipped (not plaintext BitTorrent)"
    )


def test_compare_names_the_bep52_quirk_and_lists_every_region():
    ours = {AB: [wm("handshake", 4), wm("hash_request", 6), wm("have", 6, 1), wm("have", 7, 2),
                     wm("hash_reject", 8), wm("have", 9, 5)]}
    theirs = {AB: [wm("handshake", 4), wm("unknown", 6, note="continuation data, 62 bytes"),
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
    theirs = wireshark_messages(pcap, [51413]).messages
    assert [(m.type, m.index, m.begin, m.length, m.frame) for m in theirs[AB]] == [
        ("handshake", None, None, None, 4),
        ("keepalive", None, None, None, 6),
        ("have", 7, None, None, 6),
        ("keepalive", None, None, None, 6),
        ("request", 1, 0x4000, 16384, 7),
        ("have_all", None, None, None, 7),
        ("piece", 1, 0x4000, 300, 7),
    ]
    assert [(m.type, m.index, m.begin, m.length, m.frame) for m in theirs[BA]] == [
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
    ours = {AB: [wm("handshake", 4), wm("have", 6, 1), wm("request", 7, 1, 0x4000, 16384),
                     wm("have", 7, 2), wm("have", 8, 3)],
            BA: [wm("handshake", 5)]}
    ab, ba = compare(ours, wireshark_messages(pcap, [51413]).messages)
    assert ba.agree and not ab.agree
    assert ab.first_difference == (
        "#3: ours request(index=1, begin=0x4000, length=16384) @frame 7 | "
        "wireshark keepalive [empty 4-byte PDU] @frame 6"
    )
    assert ab.reason.startswith("frames 6 and 7: ") and "length prefix ended a TCP segment" in ab.reason


@needs_tshark
def test_ports_reach_tshark_in_a_private_profile_the_users_cannot_change(tmp_path, monkeypatch):
    """Mid-connection, without a handshake, only "Decode As" makes tshark see BitTorrent:
    the ports go to it in a profile of verify's own, whatever the user's says."""
    pcap = tmp_path / "midstream.pcap"
    write_pcap(pcap, [("ab", have(7) + REQUEST), ("ba", have(1))])
    assert wireshark_messages(pcap, []).messages == {}
    users = tmp_path / "users-wireshark"
    users.mkdir()
    (users / "disabled_protos").write_text("bittorrent\n")
    monkeypatch.setenv("WIRESHARK_CONFIG_DIR", str(users))
    hidden = subprocess.run(["tshark", "-r", str(pcap), "-d", "tcp.port==51413,bittorrent", "-Y", "bittorrent"],
                            capture_output=True, text=True)
    assert hidden.returncode == 0 and hidden.stdout == ""  # the user's profile would show nothing
    theirs = wireshark_messages(pcap, [51413]).messages
    assert {d: [m.type for m in msgs] for d, msgs in theirs.items()} == {AB: ["have", "request"], BA: ["have"]}


@pytest.fixture(scope="module")
def aria2():
    if shutil.which("tshark") is None or not ARIA2.exists():
        pytest.skip("needs tshark and the shared aria2 capture")
    return wireshark_messages(ARIA2, [51413, 6881]).messages


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
    assert set(aria2) == {("tcp", seeder, leecher), ("tcp", leecher, seeder)}
    up, down = aria2[("tcp", leecher, seeder)], aria2[("tcp", seeder, leecher)]
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


# --- nothing decoded on one side, or on both ------------------------------------------


def test_compare_nothing_on_either_side_says_so():
    assert compare({}, {}) == []
    assert all_agree([])
    assert format_report([]) == NOTHING_TO_COMPARE


def test_compare_btshark_decoded_nothing_where_wireshark_decoded_messages_differs():
    theirs = {AB: [wm("handshake", 4), wm("have", 6, 1)], BA: [wm("handshake", 5)]}
    reports = compare({}, theirs)
    assert [(r.status, r.ours, r.theirs) for r in reports] == [("DIFFER", 0, 2), ("DIFFER", 0, 1)]
    assert not all_agree(reports)
    assert "btshark decoded nothing here; Wireshark decoded 2 message(s)" in reports[0].reason
    assert format_report(reports).splitlines()[-1] == "2 directions, 0 agree, 2 differ"


def test_compare_plaintext_after_continuation_data_is_not_skipped():
    # MSE/PE that selects plaintext: Wireshark's first PDUs are garbage, then real messages.
    theirs = {AB: [wm("unknown", 4, note="continuation data, 198 bytes"), wm("interested", 11)]}
    (report,) = compare({}, theirs)
    assert report.status == "DIFFER" and not report.skipped


def test_continuation_data_is_not_a_message_when_every_message_matches():
    """MSE that selects plaintext: tshark shows the key exchange as 'continuation data';
    with it left out, both decodes hold the same messages, and verify says which frames."""
    ours = {AB: [wm("interested", 11), wm("have", 12, 3)]}
    theirs = {AB: [wm("unknown", 4, note="continuation data, 198 bytes"), wm("interested", 11), wm("have", 12, 3)]}
    (report,) = compare(ours, theirs)
    assert report.status == "agree*" and report.agree
    assert any("frame 4" in note and "continuation data, 198 bytes" in note for note in report.tshark_errors)


def test_continuation_data_excuses_nothing_else():
    ours = {AB: [wm("interested", 11), wm("have", 12, 3), wm("have", 13, 4)]}  # one more than tshark
    theirs = {AB: [wm("unknown", 4, note="continuation data, 198 bytes"), wm("interested", 11), wm("have", 12, 3)]}
    (report,) = compare(ours, theirs)
    assert report.status == "DIFFER"
    ours = {AB: [wm("interested", 11), wm("have", 12, 5)]}  # a different index
    (report,) = compare(ours, {AB: theirs[AB]})
    assert report.status == "DIFFER"


def test_tshark_stopping_at_a_loss_btshark_reported_is_named():
    """With out-of-order reassembly on, tshark waits for bytes the capture never held and
    decodes nothing after them; btshark reported the loss and read on."""
    ours = {AB: [wm("have", 4, 1), wm("have", 5, 2), wm("have", 9, 3), wm("have", 10, 4)]}
    theirs = {AB: [wm("have", 4, 1), wm("have", 5, 2)]}
    (report,) = compare(ours, theirs, losses={AB: [8]})
    assert report.status == "agree*"
    assert "frame 8" in report.tshark_errors[0] and "2 later message(s) are not compared" in report.tshark_errors[0]
    (report,) = compare(ours, theirs, losses={AB: [3]})  # a loss before what tshark decoded excuses nothing
    assert report.status == "DIFFER"
    (report,) = compare(ours, theirs, losses={BA: [8]})  # nor one in the other direction
    assert report.status == "DIFFER"
    theirs = {AB: [wm("have", 4, 1), wm("have", 5, 7)]}  # and tshark's messages must all be ours
    (report,) = compare(ours, theirs, losses={AB: [8]})
    assert report.status == "DIFFER"


@needs_tshark
def test_verify_fails_when_btshark_decoded_nothing(tmp_path):
    pcap = tmp_path / "plain.pcap"
    write_pcap(pcap, [("ab", HANDSHAKE), ("ba", HANDSHAKE), ("ab", have(7) + REQUEST)])
    reports = verify(pcap, []).reports  # as if btshark had found nothing in the capture
    assert [(r.transport, r.src, r.dst, r.ours, r.theirs, r.status) for r in reports] == [
        ("tcp", A, B, 0, 3, "DIFFER"), ("tcp", B, A, 0, 1, "DIFFER")]
    assert not all_agree(reports)


@needs_tshark
def test_cli_verify_exits_1_when_btshark_decoded_nothing(tmp_path, monkeypatch):
    pcap = tmp_path / "plain.pcap"
    write_pcap(pcap, [("ab", HANDSHAKE), ("ba", HANDSHAKE), ("ab", have(7))])

    class DecodesNothing:
        def __init__(self, path):
            self.warnings, self.sessions = [], []

        def __iter__(self):
            return iter(())

    monkeypatch.setattr("inspector.pipeline.CaptureDecode", DecodesNothing)
    run = CliRunner().invoke(cli, ["verify", str(pcap)])
    assert run.exit_code == 1, run.output
    assert run.output.splitlines()[-1] == "2 directions, 0 agree, 2 differ"
    assert "DIFFER tcp 10.0.0.1:40000 -> 10.0.0.2:51413  ours 0  wireshark 2" in run.output


# --- uTP: tshark's mistakes, proven from the bytes ------------------------------------

U, V = ("10.0.0.1", 6881), ("10.0.0.2", 51413)
UV, VU = ("utp", "10.0.0.1:6881", "10.0.0.2:51413"), ("utp", "10.0.0.2:51413", "10.0.0.1:6881")
CONN = 0x1000  # the initiator U sends CONN + 1 after its SYN, V sends CONN
CLOSE_REASON = [(3, b"\x00\x00\x00\x05")]


def utp(kind: int, cid: int, seq: int, ack: int, data: bytes = b"", exts=()) -> bytes:
    """A BEP 29 datagram; ``exts`` are (type, body) in chain order."""
    first = exts[0][0] if exts else 0
    chain = b"".join(bytes((exts[i + 1][0] if i + 1 < len(exts) else 0, len(body))) + body
                     for i, (_, body) in enumerate(exts))
    return struct.pack(">BBHIIIHH", kind << 4 | 1, first, cid, 123456, 789, 1 << 20, seq, ack) + chain + data


def write_udp_pcap(path: Path, datagrams) -> Path:
    """(direction 'uv' or 'vu', UDP payload) as Ethernet/IPv4/UDP frames, checksums zero."""
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, (d, payload) in enumerate(datagrams):
            (sip, sport), (dip, dport) = (U, V) if d == "uv" else (V, U)
            udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                             socket.inet_aton(sip), socket.inet_aton(dip))
            frame = bytes(12) + b"\x08\x00" + ip + udp
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
    return path


BLOCK = bytes(range(256)) * 8
PIECE = msg(7, struct.pack(">II", 1, 0) + BLOCK)
UTP_SESSION = [
    ("uv", utp(4, CONN, 100, 0)),                                  # 1 SYN
    ("vu", utp(2, CONN, 500, 100)),                                # 2 STATE
    ("uv", utp(0, CONN + 1, 101, 500, HANDSHAKE)),                 # 3
    ("vu", utp(0, CONN, 500, 101, HANDSHAKE + have(3))),           # 4
    ("uv", utp(0, CONN + 1, 102, 500, REQUEST + have(4))),         # 5
    ("vu", utp(0, CONN, 501, 102, PIECE[:1000])),                  # 6
    ("vu", utp(0, CONN, 502, 102, PIECE[1000:])),                  # 7
    ("uv", utp(0, CONN + 1, 102, 500, REQUEST + have(4))),         # 8: copy of 5
    ("vu", utp(0, CONN, 502, 102, PIECE[1000:])),                  # 9: copy of 7, mid-piece
    ("vu", utp(0, CONN, 503, 102, have(9) + KEEPALIVE)),           # 10
    ("vu", utp(0, CONN, 503, 102, have(9) + KEEPALIVE)),           # 11: copy of 10
    ("uv", utp(0, CONN + 1, 103, 503, have(5), CLOSE_REASON)),     # 12: close reason
    ("uv", utp(1, CONN + 1, 104, 503, b"", CLOSE_REASON)),         # 13: FIN
]
# What the streams hold, each message once, at the frame that completed it.
UTP_OURS = [
    rec(*UV[1:], "handshake", 3), rec(*VU[1:], "handshake", 4), rec(*VU[1:], "have", 4, index=3),
    rec(*UV[1:], "request", 5, 1, 0x4000, 16384), rec(*UV[1:], "have", 5, index=4),
    rec(*VU[1:], "piece", 7, 1, 0, 2048), rec(*VU[1:], "have", 10, index=9),
    rec(*VU[1:], "keepalive", 10), rec(*UV[1:], "have", 12, index=5),
]


@pytest.fixture(scope="module")
def utp_capture(tmp_path_factory):
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    return write_udp_pcap(tmp_path_factory.mktemp("utp") / "utp.pcap", UTP_SESSION)


def utp_records(records):
    return [dict(r, transport="utp") for r in records]


def test_tshark_counts_utp_retransmissions_and_skips_close_reason_packets(utp_capture):
    """The raw tshark facts the set-asides rest on (if a newer tshark fixes them, this says so)."""
    theirs = wireshark_messages(utp_capture, []).messages
    assert [m.frame for m in theirs[UV]] == [3, 5, 5, 8, 8]  # frame 8 again; frame 12 not at all
    assert [m.frame for m in theirs[VU]] == [4, 4, 6, 10, 10, 11, 11]
    assert [(p.frame, p.dissected) for p in utp_packets(utp_capture, [UV]) if not p.dissected] == [
        (12, False), (13, False)]


def test_utp_packets_of_ports_past_a_display_filter_are_still_found(utp_capture):
    """With more port ranges than go in one display filter, tshark lists all of UDP and
    the directions are picked here: the same packets."""
    scattered = [("utp", f"10.9.0.1:{p}", f"10.9.0.2:{p + 1}") for p in range(2000, 6000, 3)]
    assert utp_packets(utp_capture, [UV, VU, *scattered]) == utp_packets(utp_capture, [UV, VU])
    assert len(utp_packets(utp_capture, [UV, VU])) == len(UTP_SESSION)


def test_verify_sets_aside_proven_tshark_utp_errors_and_names_them(utp_capture):
    reports = verify(utp_capture, utp_records(UTP_OURS)).reports
    uv, vu = reports
    assert (uv.transport, uv.status, uv.ours, uv.theirs) == ("utp", "agree*", 4, 5)
    assert (vu.status, vu.ours, vu.theirs) == ("agree*", 5, 7)
    assert all_agree(reports)
    assert [n.split(" ")[:2] for n in uv.tshark_errors] == [["frame", "8"], ["frame", "12"]]
    assert "seq_nr 102 of frame 5" in uv.tshark_errors[0] and "close-reason" in uv.tshark_errors[1]
    assert "have(index=5) @frame 12" in uv.tshark_errors[1]
    assert len(vu.tshark_errors) == 1 and "seq_nr 503 of frame 10" in vu.tshark_errors[0]
    text = format_report(reports)
    assert text.splitlines()[0].startswith("agree* utp 10.0.0.1:6881 -> 10.0.0.2:51413  ours 4  wireshark 5")
    assert text.count("\n    tshark error: frame ") == 3
    assert text.splitlines()[-1] == "2 directions, 2 agree (2 once tshark's errors are set aside), 0 differ"


def test_set_asides_still_catch_btshark_counting_a_retransmission_twice(utp_capture):
    doubled = UTP_OURS + [rec(*VU[1:], "have", 11, index=9), rec(*VU[1:], "keepalive", 11)]
    vu = verify(utp_capture, utp_records(doubled)).reports[1]
    assert vu.status == "DIFFER" and (vu.ours, vu.theirs) == (7, 7)
    assert vu.first_difference.startswith("#6: ours have(index=9) @frame 11 | wireshark <none")


def test_close_reason_packet_is_set_aside_only_when_its_bytes_match_btshark(utp_capture):
    wrong = [dict(r, index=6) if r["frame"] == 12 else r for r in UTP_OURS]
    uv = verify(utp_capture, utp_records(wrong)).reports[0]
    assert uv.status == "DIFFER"
    assert "close-reason" in uv.reason and "frame 12" in uv.reason
    assert len(uv.tshark_errors) == 1  # the retransmission, still proven


def test_tshark_errors_needs_identical_bytes_for_a_retransmission():
    packet = functools.partial(UtpPacket, direction=UV, dissected=True, type=0, connection_id=7,
                               seq_nr=40, extensions=())
    theirs = {UV: [wm("have", 1, 1), wm("have", 2, 2)]}
    same = tshark_errors({}, theirs, [packet(frame=1, data=have(1)), packet(frame=2, data=have(1))])
    assert same[UV].theirs_frames == {2}
    other = tshark_errors({}, theirs, [packet(frame=1, data=have(1)), packet(frame=2, data=have(2))])
    assert other == {}
    # Half the sequence space later the same seq_nr is new data, not a copy.
    later = tshark_errors({}, theirs, [packet(frame=1, data=have(1)),
                                       packet(frame=3, seq_nr=40 + 0x8000, data=b""),
                                       packet(frame=2, data=have(1))])
    assert later == {}
