"""Captures from the wild (``../shared/wild``): loss, mid-stream starts, µTorrent-family
peers, MSE that selects plaintext, and high-entropy traffic that is not BitTorrent.

The truth here is read from the bytes, independently of btshark's pipeline: the
TCP segments are taken from the pcap with scapy and laid out by sequence number, so
the test knows which stream bytes were captured, by which frame, and where the
piece headers in them are.
"""
from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import PcapReader

from conftest import CAPTURES, WILD, WILD_MISSING, read_jsonl, read_sessions, wild


def not_bittorrent() -> list:
    if not WILD.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=WILD_MISSING))]
    return [pytest.param(p, id=p.stem) for p in sorted(WILD.glob("not-bittorrent-*"))]


# ---------------------------------------------------------------- the truth from the bytes


def stream_bytes(capture: Path, src: str, sport: int) -> tuple[dict[int, tuple[int, int]], int]:
    """One TCP direction's captured bytes: stream offset -> (byte, frame), and the ISN's
    offset origin. Offsets count from the first payload byte seen (the capture may not
    hold the SYN); the first copy of a byte wins, as btshark's policy states."""
    seen: dict[int, tuple[int, int]] = {}
    origin = None
    with PcapReader(str(capture)) as reader:
        for frame, pkt in enumerate(reader, 1):
            if IP not in pkt or TCP not in pkt:
                continue
            ip, tcp = pkt[IP], pkt[TCP]
            if ip.src != src or tcp.sport != sport:
                continue
            payload = bytes(tcp.payload)
            pad = len(payload) - (ip.len - ip.ihl * 4 - tcp.dataofs * 4)
            if pad > 0:
                payload = payload[:-pad]
            if not payload:
                continue
            if origin is None:
                origin = tcp.seq
            base = (tcp.seq - origin) & 0xFFFFFFFF
            for i, byte in enumerate(payload):
                seen.setdefault(base + i, (byte, frame))
    return seen, origin or 0


def piece_headers(seen: dict[int, tuple[int, int]], pieces: int) -> list[tuple[int, int, int, int]]:
    """(offset, index, begin, block length) of every captured 13-byte piece header: a
    length prefix for a block of at most 16 KiB, id 7, an index below the piece count
    and a begin that is a multiple of 16 KiB. Thirteen bytes of that shape do not occur
    by chance in payload."""
    found = []
    for off in sorted(seen):
        if seen[off][0] != 0:
            continue
        head = bytes(seen[o][0] for o in range(off, off + 13) if o in seen)
        if len(head) == 13 and head[:2] == b"\x00\x00" and head[4] == 7:
            length, _, index, begin = struct.unpack(">IBII", head)
            if 9 < length <= 9 + 16384 and index < pieces and not begin % 16384 and begin < 1 << 24:
                found.append((off, index, begin, length - 9))
    return found


# ---------------------------------------------------------------- the acceptance figures


def test_lossy_transfer_decodes_the_captured_piece_headers_with_their_frames():
    capture = wild("tcoppi-lossy-transfer.pcap")
    sessions = read_sessions(capture)
    assert len(sessions) == 1
    seeder = sessions[0]["b"]
    host, port = seeder.rsplit(":", 1)
    seen, _ = stream_bytes(capture, host, int(port))
    bitfield_pieces = 8 * 32  # bounds only: the torrent has under 256 pieces
    truth = piece_headers(seen, bitfield_pieces)
    assert len(truth) == 203  # what the wild README says the bytes hold
    ends = {(index, begin): seen.get(off + 12 + size, (None, None))[1] for off, index, begin, size in truth}
    records = [r for r in read_jsonl(capture) if r["type"] == "piece" and r["src"] == seeder]
    decoded = {(r["index"], r["begin"]): r for r in records}
    assert len(records) == len(decoded), "a block reported twice"
    assert set(decoded) <= set(ends), "a piece the captured bytes do not hold"
    found = [key for key in ends if key in decoded]
    assert len(found) >= 0.95 * len(truth), f"{len(found)} of {len(truth)} captured piece headers decoded"
    for key in found:
        if ends[key] is not None:  # its last byte was captured: that frame completed it
            assert decoded[key]["frame"] == ends[key], f"piece {key}"
    lost_ends = [key for key in found if ends[key] is None]
    for key in lost_ends:  # completed by a hole: reported no earlier than its header's frame
        assert decoded[key].get("missing", 0) > 0


def test_midstream_capture_gives_every_message_plausibly():
    capture = wild("ndpi-bittorrent-midstream.pcap")
    records = read_jsonl(capture)
    assert len(records) >= 572
    bounds: dict[int, int] = {}
    for r in records:
        if r["type"] == "bitfield":
            bounds.setdefault(r["session"], 8 * (r["size"] - 1))
    for r in records:
        limit = bounds.get(r["session"], 1 << 22)
        if r["type"] in ("have", "request", "piece", "cancel", "reject", "suggest", "allowed_fast"):
            assert 0 <= r["index"] < limit, r
        if r["type"] in ("request", "piece", "cancel", "reject"):
            assert 0 < r["length"] <= 16384 and r["begin"] % 16384 == 0, r
        if r["type"] == "bitfield":
            assert r["size"] - 1 == bounds[r["session"]] // 8, r
        if r["type"] == "extended":
            # undecoded only when a hole cut it, or its name was in a handshake not captured
            assert r["data"] is not None or r.get("missing") or r["ext_name"] is None, r
    sessions = read_sessions(capture)
    for s in sessions:
        kinds = Counter(f["kind"] for f in s["findings"])
        assert not kinds["bad_protocol"] and not kinds["oversize"], s["findings"]
        assert not kinds["bad_bencode"], s["findings"]
        assert not s["encrypted"]


def test_mse_that_selects_plaintext_is_followed():
    capture = wild("ndpi-mse-then-plaintext.pcapng")
    records = [r for r in read_jsonl(capture) if r["type"] != "finding"]  # messages only
    assert len(records) >= 26
    assert records[0]["type"] == "handshake"
    sessions = read_sessions(capture)
    assert len(sessions) == 1 and sessions[0]["encrypted"]
    assert sessions[0]["info_hash"] == records[0]["info_hash"]


def test_clean_transfer_exactly():
    capture = wild("tcoppi-clean-transfer.pcap")
    records = read_jsonl(capture)
    assert len(records) == 313
    assert Counter(r["type"] for r in records)["keepalive"] == 2
    (session,) = read_sessions(capture)
    assert not [f for f in session["findings"] if f["kind"] != "midstream"]


@pytest.mark.parametrize("capture", not_bittorrent())
def test_not_bittorrent_gives_no_session(capture):
    assert read_sessions(capture) == []
    assert read_jsonl(capture) == []


def test_mse_sample_still_encrypted():
    (session,) = read_sessions(CAPTURES / "libtorrent-mse.pcap")
    assert session["encrypted"] and session["opener_known"]


def test_verify_agrees_on_mse_then_plaintext_naming_tsharks_unframed_bytes():
    from conftest import run_btshark

    proc = run_btshark("verify", wild("ndpi-mse-then-plaintext.pcapng"))
    out = proc.stdout.decode()
    assert proc.returncode == 0, out
    assert out.count("agree*") == 2 and "tshark error: frame 5" in out
