"""replay.pcapout: the pcap a replay writes reads back as exactly what was sent.

One scenario, three connections interleaved in one file (two IPv4, one IPv6;
closed by the server, left for the writer's close, reset), carries real peer-wire
messages with random piece data in chunks that cut messages anywhere, from one
byte to far above the MSS. It is then read four independent ways: btshark's own
decode (messages, order, addresses, timestamps, session states), a plain
struct parse here (sequence and ack numbers frame by frame, the streams' bytes,
segment sizes, flags), scapy (checksums recomputed) and tshark (no malformed
frames, no TCP analysis warnings, checksums good, conversations and bytes).
"""
from __future__ import annotations

import ipaddress
import json
import os
import random
import struct
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import wirebuild as wb
from conftest import REPO, decode_capture
from inspector.capfile import CaptureFile
from replay.pcapout import Flow, PcapWriter

T0 = 1_700_000_000.0
MSS = 1460

# ------------------------------------------------------------------ reading frames back, independently


@dataclass(frozen=True)
class Frame:
    ts: float
    length: int  # captured bytes
    version: int
    ip_id: int | None  # IPv4 only
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: str  # e.g. "SA", "PA", "FA", "RA"
    window: int
    options: bytes
    payload: bytes


_FLAG_NAMES = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "A"))


def read_frames(path: Path) -> list[Frame]:
    """Every frame of a little-endian microsecond pcap; asserts it ends on a record boundary."""
    data = Path(path).read_bytes()
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    frames, pos = [], 24
    while pos < len(data):
        sec, usec, caplen, origlen = struct.unpack_from("<IIII", data, pos)
        assert caplen == origlen <= snaplen and usec < 1_000_000
        pos += 16
        frame = data[pos:pos + caplen]
        assert len(frame) == caplen, "the file ends inside a record"
        pos += caplen
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype == 0x0800:
            ihl = (frame[14] & 0x0F) * 4
            total, ip_id, df, ttl = struct.unpack_from("!HHHB", frame, 16)
            assert (total, df, ttl) == (caplen - 14, 0x4000, 64)
            src, dst = frame[26:30], frame[30:34]
            tcp_at = 14 + ihl
        else:
            assert ethertype == 0x86DD
            assert struct.unpack_from("!H", frame, 18)[0] == caplen - 54
            src, dst = frame[22:38], frame[38:54]
            ip_id, tcp_at = None, 54
        sport, dport, seq, ack, off_flags, window = struct.unpack_from("!HHIIHH", frame, tcp_at)
        header = (off_flags >> 12) * 4
        flags = "".join(name for bit, name in _FLAG_NAMES if off_flags & bit)
        frames.append(Frame(
            sec + usec / 1e6, caplen, 4 if ethertype == 0x0800 else 6, ip_id,
            str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), sport, dport, seq, ack, flags,
            window, frame[tcp_at + 20:tcp_at + header], frame[tcp_at + header:],
        ))
    return frames


def endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ------------------------------------------------------------------ the scenario


@dataclass
class Direction:
    """What one side of a flow has queued and sent, and the messages that completed."""

    src: tuple[str, int]
    dst: tuple[str, int]
    queued: bytearray = field(default_factory=bytearray)
    sent: int = 0
    ends: list[tuple[int, dict]] = field(default_factory=list)  # (stream offset where it ends, expected record)


@dataclass
class Conn:
    flow: Flow
    client: Direction
    server: Direction


class Scenario:
    """Drives a PcapWriter and records what a reader must find: messages, streams, calls."""

    def __init__(self, writer: PcapWriter) -> None:
        self.writer = writer
        self.expected: list[dict] = []
        self.conns: list[Conn] = []
        self.last_ts = 0.0

    def open(self, client: tuple[str, int], server: tuple[str, int], ts: float) -> Conn:
        conn = Conn(self.writer.flow(client, server, ts), Direction(client, server), Direction(server, client))
        self.conns.append(conn)
        return conn

    def queue(self, conn: Conn, from_client: bool, message: bytes, expect: dict) -> None:
        side = conn.client if from_client else conn.server
        side.queued += message
        side.ends.append((len(side.queued), expect))

    def send(self, conn: Conn, from_client: bool, size: int | None, ts: float) -> None:
        """The next ``size`` queued bytes (all of them if None) in one ``data`` call."""
        side = conn.client if from_client else conn.server
        end = len(side.queued) if size is None else min(side.sent + size, len(side.queued))
        conn.flow.data(from_client, bytes(side.queued[side.sent:end]), ts)
        side.sent = end
        while side.ends and side.ends[0][0] <= end:
            _, expect = side.ends.pop(0)
            self.expected.append({"src": endpoint(*side.src), "dst": endpoint(*side.dst), "ts": ts, **expect})


def handshake(peer_id: bytes) -> tuple[bytes, dict]:
    return wb.handshake(info_hash=INFO_HASH, peer_id=peer_id), {
        "type": "handshake", "size": 68, "info_hash": INFO_HASH.hex(), "peer_id": peer_id.hex()}


def simple(kind: str, message: bytes, **fields: int) -> tuple[bytes, dict]:
    return message, {"type": kind, "size": len(message) - 4, **fields}


INFO_HASH = bytes(range(100, 120))
CONNECTIONS = (  # client, server, how it ends
    (("127.0.0.1", 50001), ("127.0.0.1", 6881), "server_fin"),
    (("::1", 50002), ("::1", 6882), "left_open"),
    (("127.0.0.2", 50003), ("127.0.0.1", 6883), "reset"),
)
BLOCK = 16384
EXACT_WINDOW_BLOCK = 65535 - 13  # a piece message of exactly 65535 bytes: fills a window to the byte


def run_scenario(path: Path, seed: int = 7, mss: int = MSS) -> Scenario:
    rnd = random.Random(seed)
    with PcapWriter(path, mss=mss) as writer:
        sc = Scenario(writer)
        conns = [sc.open(c, s, T0 + i * 0.0003) for i, (c, s, _) in enumerate(CONNECTIONS)]
        # Each step runs for every connection before the next step, so their frames interleave.
        steps = []

        def step(fn):
            steps.append(fn)
            return fn

        @step
        def handshakes(n: int, conn: Conn, ts: float) -> None:
            sc.queue(conn, True, *handshake(b"-AA0001-%012d" % n))
            sc.send(conn, True, None, ts)
            sc.queue(conn, False, *handshake(b"-BB0001-%012d" % n))
            bits = bytes([0xFF, 0xFF, 0xC0])
            sc.queue(conn, False, *simple("bitfield", wb.bitfield(bits)))
            sc.send(conn, False, None, ts + 0.0001)  # handshake and bitfield in one call

        @step
        def interest(n: int, conn: Conn, ts: float) -> None:
            sc.queue(conn, True, *simple("interested", wb.interested()))
            sc.send(conn, True, None, ts)
            sc.queue(conn, False, *simple("unchoke", wb.unchoke()))
            sc.send(conn, False, None, ts + 0.0001)

        @step
        def requests(n: int, conn: Conn, ts: float) -> None:
            for i in range(8):
                sc.queue(conn, True, *simple("request", wb.request(n, i * BLOCK, BLOCK),
                                             index=n, begin=i * BLOCK, length=BLOCK))
            sc.send(conn, True, None, ts)

        @step
        def pieces(n: int, conn: Conn, ts: float) -> None:
            for i in range(8):
                sc.queue(conn, False, *simple("piece", wb.piece(n, i * BLOCK, rnd.randbytes(BLOCK)),
                                              index=n, begin=i * BLOCK, length=BLOCK))
            while conn.server.sent < len(conn.server.queued):  # cuts anywhere, 1 byte to 40 kB
                sc.send(conn, False, rnd.choice((1, 7, 700, MSS, MSS + 1, 5000, 40000)), ts)
                ts += 0.00001

        @step
        def have_byte_by_byte(n: int, conn: Conn, ts: float) -> None:
            sc.queue(conn, True, *simple("have", wb.have(n), index=n))
            sc.queue(conn, True, *simple("keepalive", wb.keepalive()))
            for i in range(len(conn.client.queued) - conn.client.sent):
                sc.send(conn, True, 1, ts + i * 0.00001)

        @step
        def exact_window(n: int, conn: Conn, ts: float) -> None:
            sc.queue(conn, False, *simple("piece", wb.piece(n, 8 * BLOCK, rnd.randbytes(EXACT_WINDOW_BLOCK)),
                                          index=n, begin=8 * BLOCK, length=EXACT_WINDOW_BLOCK))
            sc.send(conn, False, None, ts)

        for s, fn in enumerate(steps):
            for n, conn in enumerate(conns):
                fn(n, conn, T0 + 0.01 * (s + 1) + 0.001 * n)
        end = T0 + 0.01 * (len(steps) + 1)
        for n, ((_, _, how), conn) in enumerate(zip(CONNECTIONS, conns)):
            if how == "server_fin":
                conn.flow.close(end + 0.001 * n, from_client=False)
            elif how == "reset":
                conn.flow.close(end + 0.001 * n, reset=True)
        sc.last_ts = end + 0.001 * (len(conns) - 1)
    return sc


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> tuple[Path, Scenario]:
    path = tmp_path_factory.mktemp("pcapout") / "replay.pcap"
    return path, run_scenario(path)


# ------------------------------------------------------------------ btshark reads what was sent


def btshark_read(path: Path, *extra: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "read", str(path), *extra],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout


def test_btshark_decodes_exactly_the_messages_sent(scenario):
    path, sc = scenario
    records = [json.loads(line) for line in btshark_read(path, "-T", "jsonl").splitlines()]
    # Nothing lost or misread; the one finding per connection is the scenario's own: exact_window
    # sends a piece (begin 8 * BLOCK) the client never requested, reported right after that piece.
    findings = [(n, r) for n, r in enumerate(records) if r["type"] == "finding"]
    assert [(r["kind"], r["severity"]) for _, r in findings] == [("unrequested_piece", "error")] * len(CONNECTIONS)
    for n, r in findings:
        piece = records[n - 1]
        assert (piece["type"], piece["begin"], piece["length"]) == ("piece", 8 * BLOCK, EXACT_WINDOW_BLOCK)
        assert {k: r[k] for k in ("session", "src", "dst", "ts", "frame")} == \
            {k: piece[k] for k in ("session", "src", "dst", "ts", "frame")}
    records = [r for r in records if r["type"] != "finding"]
    got = [{k: r[k] for k in exp} for r, exp in zip(records, sc.expected)]
    for g in got:
        g["ts"] = round(g["ts"], 6)
    assert len(records) == len(sc.expected)
    assert got == [{**e, "ts": round(e["ts"], 6)} for e in sc.expected]
    frames = [r["frame"] for r in records]
    assert frames == sorted(frames)


def test_btshark_sessions_have_the_right_opener_and_ending(scenario):
    path, _ = scenario
    sessions = json.loads(btshark_read(path, "--sessions", "-T", "json"))
    states = {"server_fin": "closed", "left_open": "closed", "reset": "reset"}
    # The only finding is the scenario's own: b's exact_window piece, which a never requested.
    assert [(s["a"], s["b"], s["state"], [(f["kind"], f["side"]) for f in s["findings"]]) for s in sessions] == [
        (endpoint(*c), endpoint(*srv), states[how], [("unrequested_piece", "b")]) for c, srv, how in CONNECTIONS
    ]
    for s in sessions:
        assert s["payload_bytes"] == {"a": 0, "b": 8 * BLOCK + EXACT_WINDOW_BLOCK}


# ------------------------------------------------------------------ TCP, frame by frame


def test_sequence_numbers_acks_segments_and_streams(scenario):
    path, sc = scenario
    frames = read_frames(path)
    by_flow: dict[frozenset, list[Frame]] = {}
    for f in frames:
        by_flow.setdefault(frozenset({(f.src, f.sport), (f.dst, f.dport)}), []).append(f)
    assert len(by_flow) == len(sc.conns)
    for (client, server, how), conn in zip(CONNECTIONS, sc.conns):
        flow = by_flow[frozenset({client, server})]
        assert {f.version for f in flow} == {6 if ":" in client[0] else 4}
        syn, synack, ack = flow[:3]
        assert (syn.flags, (syn.src, syn.sport), syn.ack) == ("S", client, 0)
        assert (synack.flags, (synack.src, synack.sport)) == ("SA", server)
        assert syn.options == synack.options == struct.pack("!BBH", 2, 4, MSS)
        assert (ack.flags, (ack.src, ack.sport)) == ("A", client)
        assert len({syn.seq, synack.seq}) == 2
        nxt = {client: syn.seq, server: synack.seq}
        stream = {client: bytearray(), server: bytearray()}
        last_ack = {client: None, server: None}
        for f in flow:
            me, other = (f.src, f.sport), (f.dst, f.dport)
            assert f.seq == nxt[me] % 2**32, f
            if "A" in f.flags:
                assert f.ack == nxt[other] % 2**32, f  # everything the other side sent is acknowledged
                last_ack[me] = nxt[other]
            assert f.window == 65535
            assert len(f.payload) <= MSS
            if f.payload:
                assert last_ack[other] is not None and nxt[me] + len(f.payload) - last_ack[other] < 65535, \
                    "a segment would fill or overrun the receiver's window"
            else:
                assert "P" not in f.flags
            stream[me] += f.payload
            nxt[me] += len(f.payload) + ("S" in f.flags) + ("F" in f.flags)
        assert stream[client] == conn.client.queued and stream[server] == conn.server.queued
        tail = [(f.flags, (f.src, f.sport)) for f in flow[-3:]]
        if how == "reset":
            assert tail[-1] == ("RA", client) and sum("R" in f.flags for f in flow) == 1
        else:
            closer, other = (server, client) if how == "server_fin" else (client, server)
            assert tail == [("FA", closer), ("FA", other), ("A", closer)]
    ids = [f.ip_id for f in frames if f.version == 4]
    assert ids == list(range(1, len(ids) + 1))
    times = [f.ts for f in frames]
    assert times == sorted(times) and times[-1] == pytest.approx(sc.last_ts, abs=1e-6)


def test_psh_on_the_last_segment_of_each_call(tmp_path):
    path = tmp_path / "psh.pcap"
    sizes = [1, 99, 100, 101, 250, 1000]
    with PcapWriter(path, mss=100) as writer:
        flow = writer.flow(("10.1.0.1", 1), ("10.1.0.2", 2), T0)
        for n in sizes:
            flow.data(True, bytes(n), T0 + n)
    data = [f for f in read_frames(path) if f.payload]
    assert [len(f.payload) for f in data] == [1, 99, 100, 100, 1, 100, 100, 50, *[100] * 10]
    assert ["P" in f.flags for f in data] == [True, True, True, False, True, False, False, True,
                                               *[False] * 9, True]
    assert struct.unpack("!BBH", read_frames(path)[0].options) == (2, 4, 100)


def test_checksums_recomputed_by_scapy(scenario):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import rdpcap

    path, _ = scenario
    packets = rdpcap(str(path))
    assert len(packets) == len(read_frames(path))
    for pkt in packets:
        layers = [layer for layer in (IP, TCP) if layer in pkt]
        assert TCP in pkt and (IP in pkt or IPv6 in pkt)
        for layer in layers:
            stored = pkt[layer].chksum
            fresh = pkt.copy()
            del fresh[layer].chksum
            assert fresh.__class__(bytes(fresh))[layer].chksum == stored, pkt.summary()


# ------------------------------------------------------------------ tshark


def tshark_lines(tshark: str, *args: str) -> list[str]:
    proc = subprocess.run([tshark, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_tshark_finds_nothing_wrong(scenario, tshark):
    path, _ = scenario
    decode_as = [arg for _, (_, port), _ in CONNECTIONS for arg in ("-d", f"tcp.port=={port},bittorrent")]
    checks = ["-o", "tcp.analyze_sequence_numbers:TRUE", "-o", "tcp.check_checksum:TRUE",
              "-o", "ip.check_checksum:TRUE"]
    flagged = tshark_lines(
        tshark, "-r", str(path), *checks, *decode_as, "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.flags",
        "-Y", "_ws.malformed || _ws.expert.severity >= warning || tcp.analysis.flags"
              " || tcp.checksum.status == 0 || ip.checksum.status == 0",
    )
    # The reset is the one warning a correct file has ("Connection reset (RST)").
    assert [line.split("\t") for line in flagged] == [["50003", "0x0014"]]  # RST/ACK
    fields = tshark_lines(tshark, "-r", str(path), *checks, *decode_as, "-T", "fields",
                          "-e", "tcp.checksum.status", "-e", "ip.checksum.status", "-e", "bittorrent.msg.type")
    assert len(fields) == len(read_frames(path))
    assert {line.split("\t")[0] for line in fields} == {"1"}  # every TCP checksum checked and good
    assert {line.split("\t")[1] for line in fields} == {"1", ""}  # IPv4 ones good, IPv6 has none
    assert any(line.split("\t")[2] for line in fields)  # the dissector did decode BitTorrent


def _si(n: int) -> str:
    """Byte counts as tshark's conversation table prints them."""
    for power, prefix in ((4, "T"), (3, "G"), (2, "M"), (1, "k")):
        if n // 1000 ** power >= 10:
            return f"{n // 1000 ** power} {prefix}B"
    return f"{n} bytes"


def test_tshark_conversations_and_bytes(scenario, tshark):
    path, _ = scenario
    frames = read_frames(path)
    lines = [line.split() for line in tshark_lines(tshark, "-r", str(path), "-q", "-z", "conv,tcp") if "<->" in line]
    assert len(lines) == len(CONNECTIONS)
    seen = set()
    for cols in lines:
        a, b = cols[0].rsplit(":", 1), cols[2].rsplit(":", 1)
        a, b = (a[0], int(a[1])), (b[0], int(b[1]))
        # columns: A <-> B, then frames and bytes B->A, A->B, total (each byte count is "N unit")
        b_to_a, a_to_b = [f for f in frames if (f.src, f.sport) == b], [f for f in frames if (f.src, f.sport) == a]
        assert b_to_a and a_to_b
        expect = [len(b_to_a), _si(sum(f.length for f in b_to_a)), len(a_to_b), _si(sum(f.length for f in a_to_b)),
                  len(b_to_a) + len(a_to_b), _si(sum(f.length for f in b_to_a + a_to_b))]
        got = [int(cols[3]), f"{cols[4]} {cols[5]}", int(cols[6]), f"{cols[7]} {cols[8]}",
               int(cols[9]), f"{cols[10]} {cols[11]}"]
        assert got == expect
        seen.add(frozenset({a, b}))
    assert seen == {frozenset({c, s}) for c, s, _ in CONNECTIONS}
    payload = tshark_lines(tshark, "-r", str(path), "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.len")
    sums: dict[int, int] = {}
    for line in payload:
        port, size = line.split("\t")
        sums[int(port)] = sums.get(int(port), 0) + int(size)
    wanted = {}
    for (client, server, _), conn in zip(CONNECTIONS, scenario[1].conns):
        wanted[client[1]] = len(conn.client.queued)
        wanted[server[1]] = len(conn.server.queued)
    assert sums == wanted


# ------------------------------------------------------------------ streaming, closing, determinism


def test_file_is_complete_after_every_call(tmp_path):
    path = tmp_path / "live.pcap"
    writer = PcapWriter(path, mss=300)
    assert read_frames(path) == []
    client, server = ("127.0.0.1", 41000), ("127.0.0.1", 6881)
    flow = writer.flow(client, server, T0)
    assert [f.flags for f in read_frames(path)] == ["S", "SA", "A"]
    rnd = random.Random(3)
    messages = [wb.handshake(peer_id=b"-AA0001-abcdefghijkl"), wb.interested(), wb.have(5),
                wb.piece(0, 0, rnd.randbytes(2000)), wb.request(1, 0, BLOCK)]
    names = ["handshake", "interested", "have", "piece", "request"]
    # The server never answers, so a's messages earn what the decode's conformance checks say of them.
    breaks = [None, "before_handshake", None, "unrequested_piece", "request_while_choked"]
    stream = b"".join(messages)
    ends = [sum(map(len, messages[:i])) for i in range(1, len(messages) + 1)]
    # Calls end at every message boundary and at points inside messages, one a single byte in.
    cuts = sorted({1, *ends, *rnd.sample(range(2, len(stream)), 12)})
    sent, complete_counts = 0, set()
    for cut in cuts:
        flow.data(True, stream[sent:cut], T0 + cut / 1000)  # a millisecond a byte: no two-minute silences
        sent = cut
        frames = read_frames(path)  # also asserts the file ends on a record boundary
        assert b"".join(f.payload for f in frames) == stream[:sent]
        with CaptureFile(path) as capture:
            assert len(list(capture)) == len(frames) and capture.warnings == []
        decoded, findings, _ = decode_capture(path)
        complete = sum(end <= sent for end in ends)
        assert [r.event.type for r in decoded] == names[:complete]
        assert [f.event.kind for f in findings if f.event.kind != "truncated"] == [k for k in breaks[:complete] if k]
        # A message cut by the end of the file may be reported as truncated; nothing else.
        assert {f.event.kind for f in findings} - set(breaks) <= ({"truncated"} if sent not in ends else set())
        complete_counts.add(complete)
    assert complete_counts == set(range(len(messages) + 1))
    flow.close(T0 + sent / 1000, from_client=False)
    assert [f.flags for f in read_frames(path)[-3:]] == ["FA", "FA", "A"]
    writer.close()


def test_close_is_idempotent_and_ends_the_flows(tmp_path):
    path = tmp_path / "close.pcap"
    writer = PcapWriter(path)
    first = writer.flow(("127.0.0.1", 41001), ("127.0.0.1", 6881), T0)
    second = writer.flow(("::1", 41002), ("::1", 6881), T0 + 1)
    first.data(False, b"x" * 10, T0 + 2)
    size = path.stat().st_size
    first.data(True, b"", T0 + 2)
    assert path.stat().st_size == size  # an empty call writes nothing
    second.close(T0 + 3, reset=True)
    size = path.stat().st_size
    second.close(T0 + 4)
    assert path.stat().st_size == size
    with pytest.raises(ValueError):
        second.data(True, b"late", T0 + 5)
    writer.close()
    frames = read_frames(path)
    assert [(f.flags, f.sport, f.ts) for f in frames[-3:]] == [("FA", 41001, T0 + 3), ("FA", 6881, T0 + 3),
                                                                 ("A", 41001, T0 + 3)]
    assert sum("R" in f.flags for f in frames) == 1
    size = path.stat().st_size
    writer.close()
    first.close(T0 + 9)
    assert path.stat().st_size == size
    with pytest.raises(ValueError):
        writer.flow(("127.0.0.1", 1), ("127.0.0.1", 2), T0)


def test_mixed_address_families_are_refused(tmp_path):
    with PcapWriter(tmp_path / "mixed.pcap") as writer, pytest.raises(ValueError):
        writer.flow(("127.0.0.1", 1), ("::1", 2), T0)


def test_same_calls_same_file(tmp_path):
    run_scenario(tmp_path / "one.pcap", seed=11)
    run_scenario(tmp_path / "two.pcap", seed=11)
    assert (tmp_path / "one.pcap").read_bytes() == (tmp_path / "two.pcap").read_bytes()


def test_memory_stays_flat_however_much_is_written(tmp_path):
    chunk = os.urandom(1 << 16)
    with PcapWriter(tmp_path / "big.pcap") as writer:
        flow = writer.flow(("127.0.0.1", 41003), ("127.0.0.1", 6881), T0)
        tracemalloc.start()
        try:
            for i in range(256):  # 16 MiB
                flow.data(i % 2 == 0, chunk, T0 + i)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 1 << 20
    assert (tmp_path / "big.pcap").stat().st_size > 16 << 20
