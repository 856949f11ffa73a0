"""The acceptance test: btshark's decode of every sample capture against Wireshark's.

Three independent looks at each capture in captures/ and ../shared/captures:

1. ``btshark verify X`` (the real command) must exit 0 with every direction it
   reports agreeing -- or, for a capture without plaintext BitTorrent-over-TCP,
   say there is nothing to compare. Which captures are which is decided by
   btshark's own decode, not by file names.
2. tshark run here, directly, with ``-T fields`` (not through inspector/verify.py):
   per direction the same sequence of messages, with the same index, begin,
   length, length prefix, completing frame and frame time; handshakes with the
   same info hash and peer id. Currently every capture agrees, so the comparison
   is strict: any disagreement fails, naming the direction and frames.
3. Captures tshark cannot check: MSE/PE must be listed as encrypted with no
   messages and no parse complaints; uTP (tshark 4.0's uTP reassembly is
   unreliable -- BoundError on pieces split across packets, and libtorrent's
   close-reason extension trips it) is reassembled here from the raw UDP
   payloads, parsed, and every piece's SHA-1 checked against the .torrent; the
   messages btshark prints must be exactly those.
"""
from __future__ import annotations

import functools
import hashlib
import re
import struct
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from conftest import (
    btshark,
    capture_params,
    read_jsonl,
    read_sessions,
    torrent_for,
    torrent_info,
    wild,
)
from inspector.verify import NOTHING_TO_COMPARE

ALL_CAPTURES = capture_params()
MSE_CAPTURES = capture_params(name="libtorrent-mse.pcap")
UTP_CAPTURES = capture_params(name="libtorrent-utp.pcap")

# Wire message ids -> DESIGN.md jsonl type names.
TYPES = {
    0: "choke", 1: "unchoke", 2: "interested", 3: "not_interested", 4: "have", 5: "bitfield",
    6: "request", 7: "piece", 8: "cancel", 9: "port", 13: "suggest", 14: "have_all",
    15: "have_none", 16: "reject", 17: "allowed_fast", 20: "extended", 21: "hash_request",
    22: "hashes", 23: "hash_reject",
}
INDEX_ONLY = {"have", "suggest", "allowed_fast"}
INDEX_BEGIN_LENGTH = {"request", "cancel", "reject"}

FIELDS = [
    "frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
    "bittorrent.protocol.name", "bittorrent.info_hash", "bittorrent.peer_id",
    "bittorrent.msg.type", "bittorrent.msg.length",
    "bittorrent.piece.index", "bittorrent.piece.begin", "bittorrent.piece.length",
    "bittorrent.continuous_data",
]


def test_tshark_knows_the_fields_used(tshark):
    """The field names above are real in this tshark (a typo would read as 'no data')."""
    out = subprocess.run([tshark, "-G", "fields"], capture_output=True, text=True, check=True).stdout
    known = {line.split("\t")[2] for line in out.splitlines() if line.startswith("F\t")}
    assert not [f for f in FIELDS if f not in known]


# ---------------------------------------------------------------- btshark's side


@functools.lru_cache(maxsize=None)
def ours(capture: Path) -> tuple[list[dict], list[dict]]:
    """(jsonl records, sessions) from the real command."""
    return read_jsonl(capture), read_sessions(capture)


def tcp_records(capture: Path) -> list[dict]:
    return [r for r in ours(capture)[0] if r["transport"] == "tcp"]


def by_direction(records: list[dict]) -> dict[tuple[str, str], list[tuple]]:
    out = defaultdict(list)
    for r in records:
        extra = (r["info_hash"], r["peer_id"]) if r["type"] == "handshake" else ()
        out[(r["src"], r["dst"])].append(
            (r["type"], r.get("index"), r.get("begin"), r.get("length"), r["size"], r["frame"], extra)
        )
    return dict(out)


# ---------------------------------------------------------------- tshark's side, read here


def _ints(text: str) -> list[int]:
    return [int(v, 0) for v in text.split(",")] if text else []


def _addr(ip4: str, ip6: str, port: str) -> str:
    return f"{ip4}:{port}" if ip4 else f"[{ip6}]:{port}"


@functools.lru_cache(maxsize=None)
def tshark_decode(tshark: str, capture: Path) -> tuple[dict, dict[int, float], list[str]]:
    """Wireshark's messages per direction, the frame times, and the frames with continuation data.

    ``-E occurrence=a`` gives every value of a field in a frame, comma-separated, in
    stream order; several PDUs in one frame are realigned by what each type carries:
    msg.length is present for every length-prefixed message (0 for a keep-alive, which
    has no msg.type), piece.index for have/suggest/allowed_fast/request/cancel/reject/
    piece, piece.begin for the last four, piece.length for request/cancel/reject (a
    piece's block length is msg.length - 9). A bittorrent layer with no fields at all is
    tshark 4.0's keep-alive.
    """
    ports = sorted({int(addr.rsplit(":", 1)[1]) for s in ours(capture)[1] if s["transport"] == "tcp"
                    for addr in (s["a"], s["b"])})
    cmd = [tshark, "-n", "-r", str(capture), "-o", "tcp.reassemble_out_of_order:TRUE",
           "--enable-heuristic", "bittorrent_tcp"]
    for port in ports:
        cmd += ["-d", f"tcp.port=={port},bittorrent"]
    cmd += ["-Y", "bittorrent", "-T", "fields", "-E", "occurrence=a"]
    for f in FIELDS:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    messages: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    times: dict[int, float] = {}
    continuation: list[str] = []
    for line in proc.stdout.splitlines():
        (frame, epoch, ip4s, ip6s, sport, ip4d, ip6d, dport, names, hashes, peer_ids,
         mtypes, mlengths, indexes, begins, lengths, cont) = line.split("\t")
        frame = int(frame)
        times[frame] = float(epoch)
        direction = (_addr(ip4s, ip6s, sport), _addr(ip4d, ip6d, dport))
        out = messages[direction]
        if cont:
            continuation.append(f"frame {frame}: {len(cont.split(','))} continuation-data block(s)")
        name_list = names.split(",") if names else []
        for i, _ in enumerate(name_list):
            out.append(("handshake", None, None, None, 68, frame,
                        (hashes.split(",")[i], peer_ids.split(",")[i])))
        types, idx, beg, plen = (iter(_ints(x)) for x in (mtypes, indexes, begins, lengths))
        msg_lengths = _ints(mlengths)
        if not (name_list or msg_lengths or cont):
            out.append(("keepalive", None, None, None, 0, frame, ()))
        for size in msg_lengths:
            if size == 0:
                out.append(("keepalive", None, None, None, 0, frame, ()))
                continue
            msg_id = next(types)
            kind = TYPES.get(msg_id, f"unknown id {msg_id}")
            index = begin = length = None
            if kind in INDEX_ONLY:
                index = next(idx)
            elif kind in INDEX_BEGIN_LENGTH:
                index, begin, length = next(idx), next(beg), next(plen)
            elif kind == "piece":
                index, begin, length = next(idx), next(beg), size - 9
            out.append((kind, index, begin, length, size, frame, ()))
        leftover = [list(it) for it in (types, idx, beg, plen)]
        assert leftover == [[], [], [], []], f"frame {frame}: tshark fields did not realign: {line[:300]}"
    return dict(messages), times, continuation


def _first_difference(a: list[tuple], b: list[tuple]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"message {i + 1}: btshark {x} vs tshark {y}"
    return f"btshark has {len(a)} messages, tshark {len(b)}; first extra: {(a + b)[min(len(a), len(b))]}"


# ---------------------------------------------------------------- 1. btshark verify


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_btshark_verify_agrees(capture):
    """TCP and uTP alike: every direction btshark decoded is compared and agrees; a capture
    with nothing to compare (MSE/PE) says so."""
    run = btshark("verify", capture)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stdout.strip().splitlines()
    records = ours(capture)[0]
    if not records:
        assert lines == [NOTHING_TO_COMPARE]
        return
    *directions, summary = lines
    counts = Counter((r["transport"], r["src"], r["dst"]) for r in records)
    assert summary == f"{len(counts)} directions, {len(counts)} agree, 0 differ"
    reported = {}
    for line in directions:
        m = re.fullmatch(r"agree  (tcp|utp) (\S+) -> (\S+)  ours (\d+)  wireshark (\d+)", line)
        assert m, f"not an agreeing direction: {line!r}"
        assert m[4] == m[5]
        reported[(m[1], m[2], m[3])] = int(m[4])
    assert reported == dict(counts)


@pytest.mark.parametrize("name", ["ethereum", "kerberos", "tls-appdata", "whatsapp", "wireguard"])
def test_btshark_verify_says_nothing_to_compare_on_other_protocols(tshark, name):
    run = btshark("verify", wild(f"not-bittorrent-{name}.pcap"))
    assert (run.returncode, run.stdout.strip()) == (0, NOTHING_TO_COMPARE), run.stderr


# ---------------------------------------------------------------- 2. tshark, run here


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_tshark_fields_match_btshark_jsonl(tshark, capture):
    ours_by_dir = by_direction(tcp_records(capture))
    theirs, times, continuation = tshark_decode(tshark, capture)
    if not ours_by_dir:
        # Nothing plaintext over TCP (uTP, or MSE/PE): tshark must not find any either.
        real = {d: [m for m in msgs if m[0] != "keepalive"] for d, msgs in theirs.items()}
        assert not any(real.values()), f"tshark decodes messages btshark does not: {real}"
        return
    assert not continuation, f"tshark lost message alignment (would need a named quirk): {continuation}"
    assert set(theirs) == set(ours_by_dir), "the two decodes see different directions"
    for direction, mine in ours_by_dir.items():
        assert mine == theirs[direction], f"{direction[0]} -> {direction[1]}: " + _first_difference(
            mine, theirs[direction])
    # Same capture times for the frames that completed the messages.
    for r in tcp_records(capture):
        assert r["ts"] == pytest.approx(times[r["frame"]], abs=1e-6), r


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_piece_block_lengths_are_prefix_minus_nine(capture):
    for r in ours(capture)[0]:
        if r["type"] == "piece":
            assert r["size"] == r["length"] + 9


# ---------------------------------------------------------------- 3a. MSE/PE


@pytest.mark.parametrize("capture", MSE_CAPTURES)
def test_mse_sessions_are_encrypted_and_silent(capture):
    records, sessions = ours(capture)
    assert records == []
    assert sessions, "the encrypted connection should still be listed"
    for s in sessions:
        assert s["encrypted"] is True
        assert s["transport"] == "tcp"
        assert s["info_hash"] is None
        assert s["messages"] == {"a": {}, "b": {}}
        assert s["payload_bytes"] == {"a": 0, "b": 0}
        bad = [f for f in s["findings"] if f["kind"] in {"malformed", "bad_protocol", "oversize", "bad_bencode"}]
        assert bad == []
    # 1 MiB went through it, so the streams were followed, not dropped.
    assert sum(s["sides"]["b"]["stream_bytes"] for s in sessions) > 1 << 20


# ---------------------------------------------------------------- 3b. uTP, checked against the raw bytes


def _utp_streams(capture: Path) -> dict[tuple[str, str], bytes]:
    """Each direction's uTP byte stream, put together here from the UDP payloads.

    BEP 29 header: type<<4|version, extension, connection_id, 2 timestamps, wnd_size,
    seq_nr, ack_nr; then the extension chain. ST_DATA packets carry the stream, one
    seq_nr each; the first copy of a seq_nr wins. The capture lost nothing, so each
    direction's seq_nrs form one unbroken run (mod 2**16) -- asserted, not assumed.
    """
    from scapy.layers.inet import IP, UDP
    from scapy.utils import PcapReader

    packets: dict[tuple[str, str], dict[int, bytes]] = defaultdict(dict)
    with PcapReader(str(capture)) as reader:
        for pkt in reader:
            if UDP not in pkt or IP not in pkt:
                continue
            data = bytes(pkt[UDP].payload)
            if len(data) < 20 or data[0] & 0x0F != 1:
                continue
            kind, ext = data[0] >> 4, data[1]
            seq = struct.unpack_from(">H", data, 16)[0]
            pos = 20
            while ext:
                ext, size = data[pos], data[pos + 1]
                pos += 2 + size
            if kind == 0:  # ST_DATA
                key = (f"{pkt[IP].src}:{pkt[UDP].sport}", f"{pkt[IP].dst}:{pkt[UDP].dport}")
                packets[key].setdefault(seq, data[pos:])
    streams = {}
    for key, by_seq in packets.items():
        starts = [s for s in by_seq if (s - 1) & 0xFFFF not in by_seq]
        assert len(starts) == 1, f"{key}: uTP seq_nrs are not one unbroken run"
        seq, parts = starts[0], []
        while seq in by_seq:
            parts.append(by_seq[seq])
            seq = (seq + 1) & 0xFFFF
        streams[key] = b"".join(parts)
    return streams


def _parse_stream(stream: bytes) -> tuple[list[tuple], dict[tuple[int, int], bytes]]:
    """A peer-wire byte stream: its messages (type, index, begin, length, size) and piece blocks."""
    assert stream[:20] == b"\x13BitTorrent protocol"
    messages = [("handshake", None, None, None, 68)]
    blocks = {}
    pos = 68
    while pos < len(stream):
        (size,) = struct.unpack_from(">I", stream, pos)
        body = stream[pos + 4:pos + 4 + size]
        assert len(body) == size, "stream ends inside a message"
        pos += 4 + size
        if not size:
            messages.append(("keepalive", None, None, None, 0))
            continue
        kind = TYPES.get(body[0], "unknown")
        index = begin = length = None
        if kind in INDEX_ONLY:
            (index,) = struct.unpack_from(">I", body, 1)
        elif kind in INDEX_BEGIN_LENGTH:
            index, begin, length = struct.unpack_from(">III", body, 1)
        elif kind == "piece":
            index, begin = struct.unpack_from(">II", body, 1)
            length = size - 9
            blocks[(index, begin)] = body[9:]
        messages.append((kind, index, begin, length, size))
    return messages, blocks


@pytest.mark.parametrize("capture", UTP_CAPTURES)
def test_utp_session_facts(capture):
    records, sessions = ours(capture)
    assert [s["transport"] for s in sessions] == ["utp"]
    (s,) = sessions
    assert s["encrypted"] is False
    assert s["messages"]["a"]["handshake"] == 1 and s["messages"]["b"]["handshake"] == 1
    assert s["info_hash"] == torrent_info(torrent_for(capture)).info_hash
    pieces = [r for r in records if r["type"] == "piece"]
    assert len(pieces) == 64
    assert {r["length"] for r in pieces} == {16384}
    assert {r["src"] for r in pieces} == {s["b"]}, "the seeder (b, port 51413) sends every piece"
    assert s["b"].endswith(":51413")
    assert s["messages"]["b"]["piece"] == 64 and s["payload_bytes"]["b"] == 1 << 20


@pytest.mark.parametrize("capture", UTP_CAPTURES)
def test_utp_pieces_cover_the_torrent_exactly_once(capture):
    torrent = torrent_info(torrent_for(capture))
    blocks = [(r["index"], r["begin"], r["length"]) for r in ours(capture)[0] if r["type"] == "piece"]
    assert len(blocks) == len(set(blocks)), "a block was decoded twice"
    assert set(blocks) == torrent.blocks()


@pytest.mark.parametrize("capture", UTP_CAPTURES)
def test_utp_decode_matches_the_raw_bytes(capture):
    """Reassembled here, the streams hold pieces whose SHA-1s match the .torrent, and
    btshark's messages are exactly the messages in them."""
    torrent = torrent_info(torrent_for(capture))
    streams = _utp_streams(capture)
    mine = defaultdict(list)
    for r in ours(capture)[0]:
        mine[(r["src"], r["dst"])].append((r["type"], r.get("index"), r.get("begin"), r.get("length"), r["size"]))
    assert set(streams) == set(mine)
    all_blocks = {}
    for direction, stream in streams.items():
        messages, blocks = _parse_stream(stream)
        assert mine[direction] == messages, f"{direction}: " + _first_difference(mine[direction], messages)
        all_blocks.update(blocks)
    for index, digest in enumerate(torrent.pieces):
        begins = sorted(b for i, b in all_blocks if i == index)
        data = b"".join(all_blocks[(index, b)] for b in begins)
        assert hashlib.sha1(data).digest() == digest, f"piece {index} does not hash to the .torrent's"
