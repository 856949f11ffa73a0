"""The ``stream`` harness's input format: TCP segments of one connection, not a capture.

A mutated capture file mostly dies in the pcap or IP header checks; this format
keeps those valid (the harness writes them) and gives the fuzzer only what a
hostile peer or a lossy wire controls: which side sends, the TCP flags, where
the segment lies relative to the next expected byte (holes, overlaps,
retransmissions), and the payload. So it reaches reassembly, detection and the
peer-wire parser within a few mutations. ``encode`` turns seed frames (built by
``tests/hostile.py``) into this format, ``pcap`` turns an input back into a
capture.

An input is a run of segments, each ``ctl flags offset length`` (``>BBhH``) then
``length`` payload bytes. ``ctl`` bit 0 is the side, bit 1 makes the segment a
UDP datagram (uTP) instead.
"""
from __future__ import annotations

import struct

SEGMENT = struct.Struct(">BBhH")  # ctl, TCP flags, sequence offset from the next expected byte, payload length
ADDRS = (bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2)))
PORTS = (40000, 6881)
ISN = (1000, 900_000)
SYN, FIN, ACK = 0x02, 0x01, 0x10
MAX_SEGMENTS = 2048
T0 = 1_700_000_000

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)  # Ethernet
_RECORD = struct.Struct("<IIII")
_ETH = bytes(11) + b"\x01\x08\x00"
_IP4 = struct.Struct(">BBHHHBBH4s4s")
_TCP = struct.Struct(">HHIIBBHHH")
_UDP = struct.Struct(">HHHH")
_IP4_LEN, _TCP_LEN, _UDP_LEN = _IP4.size, _TCP.size, _UDP.size


def _frame(side: int, proto: int, l4: bytes, payload: bytes) -> bytes:
    ip = _IP4.pack(0x45, 0, (_IP4_LEN + len(l4) + len(payload)) & 0xFFFF, 1, 0x4000, 64, proto, 0,
                   ADDRS[side], ADDRS[1 - side])
    return _ETH + ip + l4 + payload


def pcap(data: bytes) -> bytes:
    """The capture an input describes; a last segment cut short keeps what is there."""
    out = [_PCAP_HEADER]
    nxt = list(ISN)
    pos, count = 0, 0
    while pos + SEGMENT.size <= len(data) and count < MAX_SEGMENTS:
        ctl, flags, offset, length = SEGMENT.unpack_from(data, pos)
        pos += SEGMENT.size
        payload = data[pos : pos + length]
        pos += length
        side = ctl & 1
        if ctl & 2:
            frame = _frame(side, 17, _UDP.pack(PORTS[side], PORTS[1 - side], _UDP_LEN + len(payload), 0), payload)
        else:
            seq = (nxt[side] + offset) & 0xFFFFFFFF
            ack = nxt[1 - side] if flags & ACK else 0
            tcp = _TCP.pack(PORTS[side], PORTS[1 - side], seq, ack, 5 << 4, flags, 65535, 0, 0)
            frame = _frame(side, 6, tcp, payload)
            end = (seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
            if (end - nxt[side]) & 0xFFFFFFFF < 1 << 31:
                nxt[side] = end
        out.append(_RECORD.pack(T0 + count // 1000, count % 1000 * 1000, len(frame), len(frame)) + frame)
        count += 1
    return b"".join(out)


def encode(frames: list[tuple[float, bytes]]) -> bytes:
    """Ethernet/IPv4/TCP frames of one connection (side 0 sends the first) as an input."""
    first_src = frames[0][1][26:30]
    nxt: list[int | None] = [None, None]
    out = []
    for _, frame in frames:
        ihl = (frame[14] & 0x0F) * 4
        total = int.from_bytes(frame[16:18], "big")
        tcp = 14 + ihl
        side = 0 if frame[26:30] == first_src else 1
        seq = int.from_bytes(frame[tcp + 4 : tcp + 8], "big")
        flags = frame[tcp + 13]
        payload = frame[tcp + (frame[tcp + 12] >> 4) * 4 : 14 + total]
        if nxt[side] is None:
            nxt[side] = seq
        offset = (seq - nxt[side] + (1 << 31)) % (1 << 32) - (1 << 31)
        if not -32768 <= offset < 32768:
            raise ValueError(f"sequence offset {offset} does not fit the format")
        out.append(SEGMENT.pack(side, flags, offset, len(payload)) + payload)
        end = (seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        if (end - nxt[side]) & 0xFFFFFFFF < 1 << 31:
            nxt[side] = end
    return b"".join(out)
