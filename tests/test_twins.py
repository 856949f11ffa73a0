"""btshark on lossy and snap-length-cut captures, measured against a lossless twin.

Issue #6: a decoder that is right on clean captures can still be wrong on the
captures users bring, which lose packets or cut them short. Each twin set in
``captures/twins/`` is one real transfer captured twice at the same time by
``captures/record.py --twin``: ``X.pcap`` through a 512 MiB kernel buffer
(lossless), and ``X-lossy.pcap`` through a 256 KiB one (the kernel dropped packets)
or ``X-snap128.pcap`` with ``-s 128``.

The truth is computed here without btshark: the pcap records are read with
``struct``, each TCP direction of the lossless twin is put together by
sequence number and cut into peer-wire messages (handshake, then 4-byte length
prefix + body), each with its stream byte range. The other twin's segments say
which stream bytes it captured (sequence number and captured payload length,
relative to the lossless twin's ISN) and which frame carried which bytes on
the wire. ``btshark read TWIN -T jsonl`` is then held to the truth:

* every message it reports is a truth message of the same direction, in order
  (``match_in_order``), and its ``frame`` carried the message's last byte;
* lossy: at least 99% of the messages whose bytes were all captured are reported;
* snap128: the same sessions, and every message whose header was captured is reported.
"""
from __future__ import annotations

import bisect
import functools
import socket
import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, read_jsonl, read_sessions, torrent_info

TWINS = REPO / "captures" / "twins"
LOSSY = (TWINS / "aria2-to-libtorrent.pcap", TWINS / "aria2-to-libtorrent-lossy.pcap")
SNAP = (TWINS / "libtorrent-to-libtorrent.pcap", TWINS / "libtorrent-to-libtorrent-snap128.pcap")
SNAPLEN = 128
MIN_RECALL = 0.99
SAMPLE_MAX_BYTES = 2_000_000

PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")
ETHERNET_LEN = 14
IPV4 = struct.Struct("!BBHHHBBH4s4s")
TCP = struct.Struct("!HHIIBB")
PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
LINKTYPE_ETHERNET = 1
ETHERTYPE_IPV4 = 0x0800
PROTO_TCP = 6
SYN = 0x02
SEQ_MOD = 1 << 32

LENGTH = struct.Struct("!I")
INDEX = struct.Struct("!I")
INDEX_BEGIN_LENGTH = struct.Struct("!III")
INDEX_BEGIN = struct.Struct("!II")
HANDSHAKE_LEN = 68
HANDSHAKE_HEADER = 48  # pstrlen, "BitTorrent protocol", reserved, info hash: all a session needs

MESSAGE_TYPES = {
    0: "choke", 1: "unchoke", 2: "interested", 3: "not_interested", 4: "have", 5: "bitfield",
    6: "request", 7: "piece", 8: "cancel", 9: "port", 13: "suggest", 14: "have_all", 15: "have_none",
    16: "reject", 17: "allowed_fast", 20: "extended", 21: "hash_request", 22: "hashes", 23: "hash_reject",
}
INDEX_ONLY = {"have", "suggest", "allowed_fast"}
INDEX_BEGIN_LEN = {"request", "cancel", "reject"}
# Bytes from a message's start that say what it is (type and the fields compared here);
# other messages are small and fixed-size, so their header is the whole message.
HEADER_BYTES = {"piece": 13, "bitfield": 5, "extended": 6, "handshake": HANDSHAKE_HEADER}


# ---------------------------------------------------------------- reading a capture


@dataclass(frozen=True)
class Segment:
    """One captured TCP segment: where its payload sits in its direction's stream."""

    frame: int  # 1-based
    direction: tuple[str, str]  # (src, dst) as "ip:port"
    seq: int
    syn: bool
    wire_len: int  # payload bytes on the wire
    data: bytes  # payload bytes captured (a prefix of the wire payload)


def _endpoint(addr: bytes, port: int) -> str:
    return f"{socket.inet_ntoa(addr)}:{port}"


@functools.lru_cache(maxsize=None)
def read_segments(path: Path) -> tuple[Segment, ...]:
    """Every IPv4 TCP segment of a little-endian pcap of Ethernet frames (what tcpdump on lo writes)."""
    raw = path.read_bytes()
    magic, _, _, _, _, _, linktype = PCAP_HEADER.unpack_from(raw)
    assert magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) and linktype == LINKTYPE_ETHERNET, (hex(magic), linktype)
    segments = []
    off, frame = PCAP_HEADER.size, 0
    while off < len(raw):
        _, _, incl, _ = RECORD_HEADER.unpack_from(raw, off)
        pkt = raw[off + RECORD_HEADER.size: off + RECORD_HEADER.size + incl]
        off += RECORD_HEADER.size + incl
        frame += 1
        if int.from_bytes(pkt[12:14], "big") != ETHERTYPE_IPV4:
            continue
        vihl, _, total, _, _, _, proto, _, src, dst = IPV4.unpack_from(pkt, ETHERNET_LEN)
        if proto != PROTO_TCP:
            continue
        ip_len = (vihl & 0x0F) * 4
        tcp_at = ETHERNET_LEN + ip_len
        sport, dport, seq, _, doff, flags = TCP.unpack_from(pkt, tcp_at)
        tcp_len = (doff >> 4) * 4
        payload_at = tcp_at + tcp_len
        segments.append(Segment(frame, (_endpoint(src, sport), _endpoint(dst, dport)), seq, bool(flags & SYN),
                                total - ip_len - tcp_len, pkt[payload_at:payload_at + total - ip_len - tcp_len]))
    return tuple(segments)


def stream_isns(segments: tuple[Segment, ...]) -> dict[tuple[str, str], int]:
    """The initial sequence number of each direction, from its SYN."""
    isns: dict[tuple[str, str], int] = {}
    for seg in segments:
        if seg.syn:
            isns.setdefault(seg.direction, seg.seq)
    return isns


def offset(seg: Segment, isn: int) -> int:
    """Stream offset of a segment's first payload byte (byte 0 follows the SYN)."""
    return (seg.seq - isn - 1) % SEQ_MOD


def reassemble(segments: tuple[Segment, ...]) -> dict[tuple[str, str], bytes]:
    """Each direction's whole byte stream; a lossless capture must have no gap."""
    isns = stream_isns(segments)
    streams: dict[tuple[str, str], bytearray] = defaultdict(bytearray)
    for seg in segments:
        if not seg.data:
            continue
        assert len(seg.data) == seg.wire_len, f"frame {seg.frame} of the lossless twin is cut"
        start = offset(seg, isns[seg.direction])
        buf = streams[seg.direction]
        assert start <= len(buf), f"frame {seg.frame}: the lossless twin lacks stream bytes {len(buf)}..{start}"
        buf[start:start + len(seg.data)] = seg.data
    return {d: bytes(b) for d, b in streams.items()}


# ---------------------------------------------------------------- the truth: peer-wire messages


@dataclass(frozen=True)
class TruthMessage:
    direction: tuple[str, str]
    start: int  # stream byte range [start, end)
    end: int
    type: str
    key: tuple  # what btshark's record must say: type, size and the type's fields

    @property
    def header_end(self) -> int:
        return min(self.end, self.start + HEADER_BYTES.get(self.type, self.end - self.start))


def message_key(kind: str, size: int, fields: dict) -> tuple:
    return (kind, size, tuple(sorted(fields.items())))


def cut_messages(direction: tuple[str, str], stream: bytes) -> list[TruthMessage]:
    """Handshake, then length-prefixed messages, to the end of the stream (a cut-off tail is dropped)."""
    out = []
    if len(stream) < HANDSHAKE_LEN:
        return out
    assert stream[:20] == b"\x13BitTorrent protocol", f"{direction}: not a plaintext BitTorrent stream"
    out.append(TruthMessage(direction, 0, HANDSHAKE_LEN, "handshake",
                            message_key("handshake", HANDSHAKE_LEN, {"info_hash": stream[28:48].hex()})))
    pos = HANDSHAKE_LEN
    while pos + 4 <= len(stream):
        (size,) = LENGTH.unpack_from(stream, pos)
        end = pos + 4 + size
        if end > len(stream):
            break
        body = stream[pos + 4:end]
        kind = "keepalive" if size == 0 else MESSAGE_TYPES.get(body[0], "unknown")
        fields: dict = {}
        if kind in INDEX_ONLY:
            (fields["index"],) = INDEX.unpack_from(body, 1)
        elif kind in INDEX_BEGIN_LEN:
            fields["index"], fields["begin"], fields["length"] = INDEX_BEGIN_LENGTH.unpack_from(body, 1)
        elif kind == "piece":
            fields["index"], fields["begin"] = INDEX_BEGIN.unpack_from(body, 1)
            fields["length"] = size - 9
        elif kind == "extended":
            fields["ext_id"] = body[1]
        out.append(TruthMessage(direction, pos, end, kind, message_key(kind, size, fields)))
        pos = end
    return out


def reported_key(record: dict) -> tuple:
    """The same key, from one btshark -T jsonl record."""
    kind = record["type"]
    if kind == "handshake":
        fields = {"info_hash": record["info_hash"]}
    elif kind in INDEX_ONLY:
        fields = {"index": record["index"]}
    elif kind in INDEX_BEGIN_LEN or kind == "piece":
        fields = {k: record[k] for k in ("index", "begin", "length")}
    elif kind == "extended":
        fields = {"ext_id": record["ext_id"]}
    else:
        fields = {}
    return message_key(kind, record["size"], fields)


@functools.lru_cache(maxsize=None)
def truth(lossless: Path) -> dict[tuple[str, str], list[TruthMessage]]:
    """The messages of each direction of the lossless twin."""
    return {d: cut_messages(d, s) for d, s in reassemble(read_segments(lossless)).items()}


# ---------------------------------------------------------------- what the other twin holds


class Coverage:
    """Which stream bytes a capture holds, and which frames carried which bytes on the wire."""

    def __init__(self, segments: tuple[Segment, ...], isns: dict[tuple[str, str], int]) -> None:
        spans: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        self.carriers: dict[tuple[str, str], list[tuple[int, int, int]]] = defaultdict(list)
        for seg in segments:
            if seg.direction not in isns or not seg.wire_len:
                continue
            start = offset(seg, isns[seg.direction])
            self.carriers[seg.direction].append((start, start + seg.wire_len, seg.frame))
            if seg.data:
                spans[seg.direction].append((start, start + len(seg.data)))
        self.captured = {d: _merge(s) for d, s in spans.items()}

    def holds(self, direction: tuple[str, str], start: int, end: int) -> bool:
        """Whether every byte of [start, end) of the direction was captured."""
        merged = self.captured.get(direction, [])
        i = bisect.bisect_right(merged, (start, float("inf"))) - 1
        return i >= 0 and merged[i][0] <= start and end <= merged[i][1]

    def frames_carrying(self, direction: tuple[str, str], byte: int) -> set[int]:
        return {frame for start, end, frame in self.carriers.get(direction, []) if start <= byte < end}


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


@functools.lru_cache(maxsize=None)
def coverage(lossless: Path, twin: Path) -> Coverage:
    """The twin's coverage, relative to the lossless twin's ISNs (the same connection)."""
    return Coverage(read_segments(twin), stream_isns(read_segments(lossless)))


# ---------------------------------------------------------------- matching btshark to the truth


def match_in_order(reported: list[dict], truth_messages: list[TruthMessage],
                   frames_ok=lambda record, message: True) -> list[int | None]:
    """For each reported record of one direction, the index of the truth message it is, or None.

    Records must map to truth messages in increasing order (a subsequence). Among equal
    keys the first whose frame passes ``frames_ok`` is taken, else the first equal key,
    so a repeated message (a second ``unchoke``) is not blamed on the wrong frame.
    """
    out: list[int | None] = []
    pos = 0
    for record in reported:
        key = reported_key(record)
        candidates = [i for i in range(pos, len(truth_messages)) if truth_messages[i].key == key]
        good = [i for i in candidates if frames_ok(record, truth_messages[i])]
        pick = (good or candidates or [None])[0]
        out.append(pick)
        if pick is not None:
            pos = pick + 1
    return out


@dataclass(frozen=True)
class Comparison:
    """btshark's messages on a twin against the truth, per direction."""

    matched: dict[tuple[str, str], list[int | None]]
    reported: dict[tuple[str, str], list[dict]]
    truth: dict[tuple[str, str], list[TruthMessage]]
    cover: Coverage

    def extras(self) -> list[dict]:
        """Reported records that are no truth message (in that place)."""
        return [r for d, recs in self.reported.items() for r, i in zip(recs, self.matched.get(d, [])) if i is None]

    def missing(self, wanted) -> tuple[list[TruthMessage], int]:
        """Truth messages for which ``wanted(message)`` holds but which btshark did not report; and how many wanted."""
        missing, total = [], 0
        for d, msgs in self.truth.items():
            found = set(self.matched.get(d, []))
            for i, m in enumerate(msgs):
                if wanted(m):
                    total += 1
                    if i not in found:
                        missing.append(m)
        return missing, total

    def wrong_frames(self) -> list[tuple[dict, set[int]]]:
        """Reported records whose frame did not carry their message's last byte, with the frames that did."""
        out = []
        for d, recs in self.reported.items():
            for r, i in zip(recs, self.matched.get(d, [])):
                if i is not None:
                    carriers = self.cover.frames_carrying(d, self.truth[d][i].end - 1)
                    if not carriers and r.get("missing"):
                        continue  # its end was lost: the hole that ended it was declared later
                    if r["frame"] not in carriers:
                        out.append((r, carriers))
        return out


def compare(lossless: Path, twin: Path) -> Comparison:
    """Run ``btshark read TWIN -T jsonl`` and match its messages (not findings) to the truth."""
    messages = truth(lossless)
    cover = coverage(lossless, twin)
    reported: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in read_jsonl(twin):
        if r["type"] != "finding":
            reported[(r["src"], r["dst"])].append(r)

    def frames_ok(record: dict, message: TruthMessage) -> bool:
        return record["frame"] in cover.frames_carrying(message.direction, message.end - 1)

    matched = {d: match_in_order(recs, messages.get(d, []), frames_ok) for d, recs in reported.items()}
    return Comparison(matched, dict(reported), messages, cover)


def _show(items, limit: int = 5) -> str:
    items = list(items)
    return f"{len(items)}: {items[:limit]}" + (" ..." if len(items) > limit else "")


# ---------------------------------------------------------------- the twin files themselves


@pytest.mark.parametrize("pair", [pytest.param(LOSSY, id="lossy"), pytest.param(SNAP, id="snap128")])
def test_twin_set_is_committed_small_and_one_transfer(pair):
    lossless, twin = pair
    for path in (lossless, twin, lossless.with_suffix(".torrent")):
        assert path.is_file(), f"{path} missing (record it with captures/record.py --twin)"
        assert path.stat().st_size < SAMPLE_MAX_BYTES
    messages = truth(lossless)
    info = torrent_info(lossless.with_suffix(".torrent"))
    assert len(messages) == 2  # one connection, both directions
    assert {m[0].key for m in messages.values()} == {message_key("handshake", 68, {"info_hash": info.info_hash})}
    pieces = {m.key for msgs in messages.values() for m in msgs if m.type == "piece"}
    blocks = {message_key("piece", length + 9, {"index": i, "begin": b, "length": length})
              for i, b, length in info.blocks()}
    assert pieces == blocks  # the truth holds the whole torrent, block by block
    # Same connection in both files: the twin's streams start at the lossless ISNs.
    assert set(stream_isns(read_segments(twin))) <= set(stream_isns(read_segments(lossless)))


def test_lossy_twin_lost_stream_bytes():
    cover = coverage(*LOSSY)
    messages = truth(LOSSY[0])
    lost = [m for msgs in messages.values() for m in msgs if not cover.holds(m.direction, m.start, m.end)]
    kept = [m for msgs in messages.values() for m in msgs if cover.holds(m.direction, m.start, m.end)]
    assert lost and kept, "a lossy twin must lose some messages and keep others, or it tests nothing"


def test_snap128_twin_is_every_frame_cut_at_128():
    lossless, twin = (read_segments(p) for p in SNAP)
    assert [s.frame for s in twin] == [s.frame for s in lossless]
    assert all(s.seq == t.seq and s.wire_len == t.wire_len for s, t in zip(lossless, twin))
    assert any(len(t.data) < t.wire_len for t in twin)
    assert all(len(t.data) == t.wire_len or len(t.data) < SNAPLEN for t in twin)


# ---------------------------------------------------------------- the helpers, on what they must catch


def test_match_in_order_finds_extras_and_gaps():
    d = ("a:1", "b:2")
    keys = [message_key("have", 5, {"index": i}) for i in range(4)]
    msgs = [TruthMessage(d, 9 * i, 9 * i + 9, "have", k) for i, k in enumerate(keys)]
    have = [{"type": "have", "size": 5, "index": i} for i in (0, 2, 9, 1, 3)]
    # 0 and 2 match; 9 is no truth message; 1 comes after 2 in the output but before it in the truth.
    assert match_in_order(have, msgs) == [0, 2, None, None, 3]


def test_lossless_twins_decode_exactly_to_the_truth():
    """The truth and btshark agree where nothing was lost: the truth code is not what the twin tests measure."""
    for lossless in (LOSSY[0], SNAP[0]):
        result = compare(lossless, lossless)
        assert result.extras() == []
        missing, total = result.missing(lambda m: True)
        assert total > 64 and missing == []
        assert result.wrong_frames() == []


# ---------------------------------------------------------------- lossy


def test_lossy_decodes_99_percent_of_fully_captured_messages():
    result = compare(*LOSSY)
    missing, total = result.missing(lambda m: result.cover.holds(m.direction, m.start, m.end))
    recall = 1 - len(missing) / total
    assert recall >= MIN_RECALL, (f"{recall:.1%} of {total} fully captured messages reported; missing "
                                  + _show((m.direction, m.start, m.key) for m in missing))


def test_lossy_reports_no_message_the_twin_lacks():
    result = compare(*LOSSY)
    assert result.extras() == [], _show(result.extras())


def test_lossy_frames_carry_the_last_byte():
    result = compare(*LOSSY)
    assert result.wrong_frames() == [], _show(result.wrong_frames())


# ---------------------------------------------------------------- snap length 128


def _session_facts(capture: Path) -> list[tuple]:
    return sorted((s["transport"], s["a"], s["b"], s["info_hash"]) for s in read_sessions(capture))


def test_snap128_lists_the_same_sessions():
    lossless, twin = SNAP
    assert _session_facts(twin) == _session_facts(lossless)


def test_snap128_reports_every_message_whose_header_was_captured():
    result = compare(*SNAP)
    missing, total = result.missing(lambda m: result.cover.holds(m.direction, m.start, m.header_end))
    assert total > 64 and missing == [], _show((m.direction, m.start, m.key) for m in missing)


def test_snap128_reports_no_message_the_twin_lacks():
    result = compare(*SNAP)
    assert result.extras() == [], _show(result.extras())


def test_snap128_frames_carry_the_last_byte():
    result = compare(*SNAP)
    assert result.wrong_frames() == [], _show(result.wrong_frames())
