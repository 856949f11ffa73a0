"""Hostile and malformed captures, built from raw bytes (issue 10).

Each builder writes one capture that once crashed btshark, made it run for
minutes, take gigabytes, or decode silently wrong, or one of the capture-format
cases a reader must refuse with one line. Frames are packed with ``struct`` (not
scapy) so a flood of 200,000 SYNs takes a second to write. Nothing here is
committed as a binary: ``python tests/hostile.py DIR [--scale N]`` writes the
corpus, and ``tests/test_hostile.py`` and ``bench/hostile.py`` call the builders.

``scale`` multiplies the counts and sizes the issue gives (1.0 = the issue's own
figures); the suite runs a reduced scale under a memory limit, the bench the full.
"""
from __future__ import annotations

import argparse
import gzip
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wirebuild as wb  # noqa: E402

Frame = tuple[float, bytes]  # capture time, frame bytes (Ethernet)

HASH = bytes(range(20))
PEER_A = b"-LT2110-aaaaaaaaaaaa"
PEER_B = b"-TR3000-bbbbbbbbbbbb"
T0 = 1_700_000_000.0
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_ETH = bytes(6) + bytes(5) + b"\x01" + b"\x08\x00"
_IP4 = struct.Struct(">BBHHHBBH4s4s")
_TCP = struct.Struct(">HHIIBBHHH")


def ip4(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


def tcp_frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
              payload: bytes = b"", *, offset_words: int = 5, total_length: int | None = None) -> bytes:
    """Ethernet + IPv4 (no options) + TCP; ``total_length=0`` is an offloaded (TSO) frame."""
    tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset_words << 4, flags, 65535, 0, 0)
    length = 20 + len(tcp) + len(payload) if total_length is None else total_length
    ip = _IP4.pack(0x45, 0, length & 0xFFFF, 1, 0x4000, 64, 6, 0, src, dst)
    return _ETH + ip + tcp + payload


class Conn:
    """One TCP connection seen from the wire: each side's sequence numbers kept."""

    def __init__(self, a: str = "10.0.0.1", b: str = "10.0.0.2", aport: int = 40000, bport: int = 6881,
                 t0: float = T0) -> None:
        self.addr = (ip4(a), ip4(b))
        self.port = (aport, bport)
        self.seq = [1000, 900_000]
        self.t = t0
        self.frames: list[Frame] = []

    def frame(self, side: int, flags: int, payload: bytes = b"", *, seq: int | None = None,
              advance: bool = True, **kw: int) -> Frame:
        s = self.seq[side] if seq is None else seq
        self.t += 0.001
        f = (self.t, tcp_frame(self.addr[side], self.addr[1 - side], self.port[side], self.port[1 - side],
                               s, self.seq[1 - side], flags | (ACK if flags != SYN else 0), payload, **kw))
        if advance and seq is None:
            self.seq[side] += len(payload) + (1 if flags & (SYN | FIN) else 0)
        return f

    def emit(self, side: int, flags: int, payload: bytes = b"", **kw) -> "Conn":
        self.frames.append(self.frame(side, flags, payload, **kw))
        return self

    def open(self) -> "Conn":
        self.frames.append(self.frame(0, SYN))
        self.frames.append(self.frame(1, SYN | ACK))
        self.frames.append(self.frame(0, ACK))
        return self

    def send(self, side: int, data: bytes, mss: int = 1448) -> "Conn":
        for i in range(0, len(data), mss):
            self.emit(side, PSH, data[i:i + mss])
        return self

    def handshakes(self) -> "Conn":
        return self.send(0, wb.handshake(HASH, PEER_A)).send(1, wb.handshake(HASH, PEER_B))

    def close(self) -> "Conn":
        return self.emit(0, FIN).emit(1, FIN)


# ---------------------------------------------------------------- writers

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
_RECORD = struct.Struct("<IIII")


def record(ts: float, data: bytes, orig: int | None = None, incl: int | None = None) -> bytes:
    sec = int(ts)
    return _RECORD.pack(sec, round((ts - sec) * 1e6), len(data) if incl is None else incl,
                        len(data) if orig is None else orig) + data


def write_pcap(path: Path, frames: Iterable[Frame], *, compress: bool = False) -> Path:
    opener: Callable = gzip.open if compress else open
    with opener(path, "wb") as out:
        out.write(_PCAP_HEADER)
        for ts, data in frames:
            out.write(record(ts, data))
    return path


# ---------------------------------------------------------------- issue 10's items


def land_flood(n: int) -> Iterator[Frame]:
    """Item 1: SYNs whose source is their destination (address and port)."""
    for i in range(n):
        port = 1024 + i % 64000
        src = ip4(f"10.9.{i // 64000 % 250}.1")
        yield T0 + i * 1e-5, tcp_frame(src, src, port, port, i * 7, 0, SYN)


def syn_flood(n: int) -> Iterator[Frame]:
    """Item 3: SYNs to distinct ports, each a new flow."""
    dst = ip4("10.8.0.2")
    for i in range(n):
        src = ip4(f"10.8.{1 + i // 60000}.1")
        yield T0 + i * 1e-5, tcp_frame(src, dst, 1024 + i % 60000, 6881, i * 7, 0, SYN)


def reverse_segments(n: int) -> list[Frame]:
    """Item 2: a BitTorrent flow, a 1-byte hole, then ``n`` one-byte segments in reverse."""
    c = Conn().open().handshakes()
    data = bytes(range(256)) * (n // 256 + 2)
    base = c.seq[0]
    for i in range(n, 0, -1):
        c.emit(0, PSH, data[i:i + 1], seq=base + i)
    return c.frames


def offloaded_zeros(size: int) -> list[Frame]:
    """Item 4: one TSO frame (IPv4 total length 0) carrying ``size`` zero bytes: keep-alives."""
    c = Conn().open().handshakes()
    c.emit(0, PSH, bytes(size), total_length=0)
    return c.close().frames


def huge_record(size: int) -> list[Frame]:
    """Item 4: one record of ``size`` bytes of 0xFF inside a flow."""
    c = Conn().open().handshakes()
    c.emit(0, PSH, b"\xff" * size, total_length=0)
    return c.frames


def bencode_bomb(size: int, nested: bool) -> list[Frame]:
    """Item 4: an extended message of ``size`` bytes of nested (``llll…``) or flat (``lele…``) lists."""
    body = (b"l" * (size // 2) + b"e" * (size // 2)) if nested else b"l" + b"le" * (size // 2 - 1) + b"e"
    c = Conn().open().handshakes()
    c.send(0, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 1}})))
    c.send(0, wb.extended(1, body), mss=65000)
    return c.close().frames


def partial_messages(flows: int, size: int) -> list[Frame]:
    """Item 4: ``flows`` connections each holding ``size`` bytes of a message never finished."""
    frames: list[Frame] = []
    for f in range(flows):
        c = Conn(aport=30000 + f, t0=T0 + f).open().handshakes()
        c.send(0, wb.raw(b"\x14\x00" + b"d" * size, length=size + 3), mss=65000)
        frames += c.frames
    return sorted(frames, key=lambda fr: fr[0])


def big_bitfields(count: int, size: int) -> list[Frame]:
    """Item 5: ``count`` bitfields of ``size`` bytes each."""
    c = Conn().open().handshakes()
    for _ in range(count):
        c.send(0, wb.bitfield(b"\xa5" * size), mss=65000)
    return c.close().frames


def data_offset_evasion() -> list[Frame]:
    """Item 6: a segment with TCP data offset 2 (an invalid header) between real messages.

    A receiver's stack drops it; its bytes must not enter the stream.
    """
    c = Conn().open().handshakes()
    c.send(0, wb.interested())
    c.emit(0, PSH, wb.have(1) * 3, offset_words=2, advance=False)
    c.send(0, wb.have(7) + wb.have(8))
    return c.close().frames


def timestamp_jump(flows: int = 4, before: int = 30, after: int = 30, sweep_every: int = 4096) -> list[Frame]:
    """Item 7: one frame stamped 1000 s in the future, landing on the sweep frame."""
    conns = [Conn(aport=31000 + i).open().handshakes() for i in range(flows)]
    frames: list[Frame] = [fr for c in conns for fr in c.frames]
    for k in range(before):
        for c in conns:
            frames.append(c.frame(0, PSH, wb.have(k)))
    pad = Conn(a="10.7.0.1", aport=999)
    while len(frames) < sweep_every - 1:
        frames.append(pad.frame(0, ACK))
    t = max(ts for ts, _ in frames)
    frames.append((t + 1000.0, pad.frame(0, ACK)[1]))
    for c in conns:
        c.t = t
    for k in range(after):
        for c in conns:
            frames.append(c.frame(0, PSH, wb.have(1000 + k)))
    return frames


def hole_at_boundary(pieces: int = 5, block: int = 1200) -> list[Frame]:
    """Item 8: the lost segment held exactly a piece header (13 bytes); the payload after
    it is bytes that parse as ``have 1234567`` and ``choke``."""
    c = Conn().open().handshakes()
    c.send(0, wb.interested()).send(1, wb.unchoke())
    fake = (wb.have(1234567) + wb.choke()) * (block // 14)
    for i in range(pieces):
        c.send(0, wb.request(i, 0, len(fake)))
        head = wb.raw(b"\x07" + struct.pack(">II", i, 0), length=9 + len(fake))
        if i == 2:
            c.seq[1] += len(head)  # the header's segment was not captured
        else:
            c.emit(1, PSH, head)
        c.emit(1, PSH, fake)
        c.emit(0, ACK)
    return c.close().frames


def weird_peer() -> list[Frame]:
    """Item 11: a bidi override in ``v``, keys ``ab`` and ``\\xab``, an odd ut_pex ``added``,
    an ESC and a literal backslash-x-1-b in peer-controlled text."""
    c = Conn().open().handshakes()
    c.send(0, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 1}, b"v": "evil\u202ecod.exe".encode(),
                                         b"ab": 1, b"\xab": 2, b"p": 6881})))
    c.send(1, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 3}, b"v": b"esc\x1b[31m and \\x1b"})))
    c.send(1, wb.extended(1, wb.bencode({b"added": b"\x0a\x00\x00\x01\x1a\xe1\x0a", b"added.f": b"\x00"})))
    return c.close().frames


def bt_ports_flood(n: int) -> list[Frame]:
    """Item 10: ``n`` BitTorrent flows on distinct ports (verify once passed one ``-d`` per port)."""
    frames: list[Frame] = []
    for i in range(n):
        c = Conn(a=f"10.6.{i // 250 % 250}.{i % 250 + 1}", aport=20000 + i % 40000, bport=1024 + i,
                 t0=T0 + i * 0.01)
        c.seq = [1000 + i, 5000 + i]
        c.open().send(0, wb.handshake(HASH, PEER_A))
        frames += c.frames
    return frames


def clean_transfer() -> list[Frame]:
    """A small complete exchange (the base that format damage is applied to)."""
    c = Conn().open().handshakes()
    c.send(0, wb.interested()).send(1, wb.unchoke())
    for i in range(4):
        c.send(0, wb.request(i, 0, 4000)).send(1, wb.piece(i, 0, bytes([i]) * 4000)).send(0, wb.have(i))
    return c.close().frames


# ---------------------------------------------------------------- capture-format damage


def pcap_bytes(frames: Iterable[Frame]) -> bytes:
    return _PCAP_HEADER + b"".join(record(ts, data) for ts, data in frames)


def format_cases() -> dict[str, bytes]:
    """Damaged capture files; name -> content."""
    good = clean_transfer()
    whole = pcap_bytes(good)
    first = record(*good[0])
    ts0, frame0 = good[0]
    pcapng_shb = struct.pack("<II", 0x0A0D0D0A, 28) + struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20)
    ip6_loop = bytes(12) + b"\x86\xdd" + struct.pack(">IHBB16s16s", 0x60000000, 200, 0, 64, bytes(16), bytes(16)) \
        + b"\x00\x00" + bytes(6) + b"\x00\x00" + bytes(6) + b"\x00\x00" + bytes(6)
    ihl_low = bytearray(frame0)
    ihl_low[14] = 0x43
    cases = {
        "bad_magic": b"\x00\x01\x02\x03" + whole[4:],
        "cut_file_header": whole[:13],
        "cut_record_header": whole[:24] + first[:7],
        "cut_mid_record": whole[:len(whole) - 700],
        "caplen_over_snaplen": _PCAP_HEADER[:16] + struct.pack("<II", 100, 1) + whole[24:],
        "caplen_1gb": _PCAP_HEADER + _RECORD.pack(int(ts0), 0, 1 << 30, 1 << 30) + frame0,
        "incl_over_orig": _PCAP_HEADER + record(ts0, frame0, orig=10) + whole[24 + len(first):],
        "zero_length_frames": _PCAP_HEADER + b"".join(record(ts0 + i, b"") for i in range(1000)) + whole[24:],
        "ihl_below_5": _PCAP_HEADER + record(ts0, bytes(ihl_low)) + whole[24 + len(first):],
        "ipv6_extension_loop": _PCAP_HEADER + record(ts0, ip6_loop) + whole[24:],
        "pcapng_lengths_disagree": pcapng_shb + struct.pack("<I", 1) + idb[4:8] + idb[8:16] + struct.pack("<I", 24),
        "pcapng_length_overflow": pcapng_shb + struct.pack("<II", 6, 0xFFFFFFFC) + bytes(64),
        "pcapng_unknown_byte_order": pcapng_shb[:8] + b"\x12\x34\x56\x78" + pcapng_shb[12:],
        "gzip_cut_short": gzip.compress(whole)[:-30],
        "gzip_trailing_garbage": gzip.compress(whole) + b"garbage!" * 8,
        "empty": b"",
    }
    return cases


BUILDERS: dict[str, Callable[[float], list[Frame] | Iterator[Frame]]] = {
    "land_flood": lambda s: land_flood(int(131_073 * s)),
    "syn_flood": lambda s: syn_flood(int(200_000 * s)),
    "reverse_segments": lambda s: reverse_segments(int(100_000 * s)),
    "offloaded_zeros": lambda s: offloaded_zeros(int((16 << 20) * s)),
    "huge_record": lambda s: huge_record(int((255 << 20) * s)),
    "bencode_nested": lambda s: bencode_bomb(int((16 << 20) * s) - 64, nested=True),
    "bencode_flat": lambda s: bencode_bomb(int((16 << 20) * s) - 64, nested=False),
    "partial_messages": lambda s: partial_messages(max(2, int(40 * s)), 15 << 20),
    "big_bitfields": lambda s: big_bitfields(max(2, int(20 * s)), (16 << 20) - 64),
    "data_offset_evasion": lambda s: data_offset_evasion(),
    "timestamp_jump": lambda s: timestamp_jump(),
    "hole_at_boundary": lambda s: hole_at_boundary(),
    "weird_peer": lambda s: weird_peer(),
    "bt_ports_flood": lambda s: bt_ports_flood(int(26_000 * s)),
}


def build(name: str, directory: Path, scale: float = 1.0) -> Path:
    path = directory / f"{name}.pcap"
    if name in BUILDERS:
        return write_pcap(path, BUILDERS[name](scale))
    path.write_bytes(format_cases()[name])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("names", nargs="*", help="which (default: all)")
    args = parser.parse_intermixed_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    for name in args.names or [*BUILDERS, *format_cases()]:
        print(build(name, args.directory, args.scale))


if __name__ == "__main__":
    main()
