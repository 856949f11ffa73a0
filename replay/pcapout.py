"""What a replay did on its sockets, written as a pcap that any reader accepts.

A replay talks to a live peer over real sockets, where nothing is captured; to show
what happened with the same tools that read captures (``btshark read``, Wireshark),
the replayer reports each connection's bytes here and gets a classic pcap of
synthesized Ethernet + IPv4/IPv6 + TCP frames: handshake, data segments of at most
``mss`` bytes, FIN exchange or RST, with sequence and acknowledgement numbers and
checksums as a real stack would have them, so Wireshark's TCP analysis finds nothing
to complain about. When one side sends a window's worth without hearing back, the
other side acknowledges with a pure ACK first, as a receiver would.

It streams: every call writes its frames and flushes before returning, so memory
stays flat however much a replay moves, and a replay killed half way still leaves
a valid file holding everything up to its last call. It knows nothing of BitTorrent
or asyncio: it gets addresses, bytes and timestamps.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import struct
from typing import BinaryIO

__all__ = ["Flow", "PcapWriter"]

_PCAP_HEAD = struct.Struct("<IHHiIII")  # magic, version 2.4, zone, sigfigs, snaplen, linktype
_PCAP_REC = struct.Struct("<IIII")  # seconds, microseconds, captured length, original length
_ETHER = struct.Struct("!6s6sH")  # destination, source, ethertype
_IPV4 = struct.Struct("!BBHHHBBH4s4s")  # version/IHL, TOS, length, id, flags/fragment, TTL, protocol, checksum, src, dst
_IPV6 = struct.Struct("!IHBB16s16s")  # version/class/flow label, payload length, next header, hop limit, src, dst
_TCP = struct.Struct("!HHIIHHHH")  # ports, seq, ack, data offset/flags, window, checksum, urgent pointer
_MSS_OPTION = struct.Struct("!BBH")  # kind 2, length 4, value

_MAGIC = 0xA1B2C3D4
_SNAPLEN = 262144
_LINKTYPE_ETHERNET = 1
_ETHERTYPE = {4: 0x0800, 6: 0x86DD}
# Locally administered unicast addresses: the connecting side's, then the listening side's.
_MACS = (b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02")
_TTL = 64
_PROTO_TCP = 6
_DF = 0x4000
_WINDOW = 65535
_MAX_MSS = 65535 - 20 - 20  # the IPv4 total length field must hold IP + TCP headers + payload

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_HEADER_WORDS = 5 << 12  # data offset of a header without options, in the flags word
_SYN_WORDS = 6 << 12  # with the 4-byte MSS option


def _fold(total: int) -> int:
    """The checksum for a sum of 16-bit words: the complement of its one's complement fold.

    ``total % 0xFFFF`` is that fold, except that a nonzero sum folds to 0xFFFF
    (one's complement "negative zero"), never 0: so checksum 0, not 0xFFFF.
    """
    return 0xFFFF - (total % 0xFFFF or 0xFFFF)


def _words(data: bytes | memoryview) -> int:
    """The sum of ``data`` as big-endian 16-bit words, modulo 0xFFFF (odd lengths padded with a zero)."""
    value = int.from_bytes(data, "big")
    return (value << 8 if len(data) & 1 else value) % 0xFFFF


class _Side:
    """One direction of a flow: its frame prefix, checksum constants and sequence state."""

    __slots__ = ("ether", "sport", "dport", "src", "dst", "ip_sum", "next_seq", "acked")

    def __init__(self, ether: bytes, src: bytes, sport: int, dst: bytes, dport: int, isn: int) -> None:
        self.ether = ether
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        # The addresses' share of both the IPv4 header checksum and the TCP pseudo-header's.
        self.ip_sum = _words(src) + _words(dst)
        self.next_seq = isn  # the sequence number of our next byte
        self.acked = isn  # the highest ack the other side has sent us


class Flow:
    """One TCP connection in a ``PcapWriter``'s file; made by ``PcapWriter.flow``; ``closed`` once ended."""

    __slots__ = ("_writer", "_sides", "_version", "closed")

    def __init__(self, writer: PcapWriter, client: tuple[str, int], server: tuple[str, int],
                 isns: tuple[int, int]) -> None:
        caddr, saddr = ipaddress.ip_address(client[0]), ipaddress.ip_address(server[0])
        if caddr.version != saddr.version:
            raise ValueError(f"client {caddr} and server {saddr} are of different IP versions")
        self._writer = writer
        self._version = caddr.version
        ethertype = _ETHERTYPE[self._version]
        self._sides = (
            _Side(_ETHER.pack(_MACS[1], _MACS[0], ethertype), caddr.packed, client[1], saddr.packed, server[1], isns[0]),
            _Side(_ETHER.pack(_MACS[0], _MACS[1], ethertype), saddr.packed, server[1], caddr.packed, client[1], isns[1]),
        )
        self.closed = False

    def _open(self, ts: float) -> None:
        client, server = self._sides
        mss = _MSS_OPTION.pack(2, 4, self._writer.mss)
        self._segment(client, server, _SYN_WORDS | SYN, ts, options=mss, ack=0)
        client.next_seq += 1
        self._segment(server, client, _SYN_WORDS | SYN | ACK, ts, options=mss)
        server.next_seq += 1
        self._segment(client, server, _HEADER_WORDS | ACK, ts)
        self._writer._flush()

    def data(self, from_client: bool, data: bytes | bytearray | memoryview, ts: float) -> None:
        """``data`` sent by one side at ``ts``: segments of at most ``mss`` bytes, PSH on the last.

        Each acknowledges everything the other side sent; when a segment would fill
        the other side's 64 KiB window, a pure ACK from that side comes first. Empty
        ``data`` writes nothing; any data once the flow is closed is a ValueError.
        """
        if self.closed:
            raise ValueError("data on a closed flow")
        if not data:
            return
        sender, receiver = self._sides if from_client else self._sides[::-1]
        view = memoryview(data).cast("B")
        mss, size = self._writer.mss, len(view)
        for start in range(0, size, mss):
            chunk = view[start:start + mss]
            if sender.next_seq + len(chunk) - sender.acked >= _WINDOW:  # would fill the window
                self._segment(receiver, sender, _HEADER_WORDS | ACK, ts)
            flags = _HEADER_WORDS | ACK | (PSH if start + mss >= size else 0)
            self._segment(sender, receiver, flags, ts, chunk)
            sender.next_seq += len(chunk)
        self._writer._flush()

    def close(self, ts: float, *, from_client: bool = True, reset: bool = False) -> None:
        """Ends the connection: FIN/ACK from one side, FIN/ACK back, last ACK; or one RST/ACK."""
        if self.closed:
            return
        self.closed = True
        sender, receiver = self._sides if from_client else self._sides[::-1]
        if reset:
            self._segment(sender, receiver, _HEADER_WORDS | RST | ACK, ts)
        else:
            self._segment(sender, receiver, _HEADER_WORDS | FIN | ACK, ts)
            sender.next_seq += 1
            self._segment(receiver, sender, _HEADER_WORDS | FIN | ACK, ts)
            receiver.next_seq += 1
            self._segment(sender, receiver, _HEADER_WORDS | ACK, ts)
        self._writer._forget(self)
        self._writer._flush()

    def _segment(self, side: _Side, other: _Side, flags: int, ts: float,
                 payload: bytes | memoryview = b"", *, options: bytes = b"", ack: int | None = None) -> None:
        """Writes one frame from ``side``; unless ``ack`` is given it acknowledges all ``other`` sent."""
        seq = side.next_seq & 0xFFFFFFFF
        if ack is None:
            ack = other.next_seq & 0xFFFFFFFF
            other.acked = other.next_seq
        tcp_len = 20 + len(options) + len(payload)
        total = (side.ip_sum + _PROTO_TCP + tcp_len + side.sport + side.dport + (seq >> 16) + (seq & 0xFFFF)
                 + (ack >> 16) + (ack & 0xFFFF) + flags + _WINDOW + _words(options) + _words(payload))
        tcp = _TCP.pack(side.sport, side.dport, seq, ack, flags, _WINDOW, _fold(total), 0)
        writer = self._writer
        if self._version == 4:
            ip_id = writer._next_ip_id()
            length = 20 + tcp_len
            checksum = _fold(side.ip_sum + 0x4500 + length + ip_id + _DF + (_TTL << 8 | _PROTO_TCP))
            ip = _IPV4.pack(0x45, 0, length, ip_id, _DF, _TTL, _PROTO_TCP, checksum, side.src, side.dst)
        else:
            ip = _IPV6.pack(6 << 28, tcp_len, _PROTO_TCP, _TTL, side.src, side.dst)
        writer._frame(ts, side.ether + ip + tcp + options, payload)


class PcapWriter:
    """A classic pcap (Ethernet, microsecond timestamps) of synthesized TCP flows, streamed.

    ``flow`` opens a connection (three-way handshake); its ``data`` and ``close``
    write segments; ``close`` here ends every flow still open (FIN exchange at the
    latest timestamp written) and then the file. The file is complete after every call.
    """

    def __init__(self, path: str | os.PathLike, *, mss: int = 1460) -> None:
        if not 1 <= mss <= _MAX_MSS:
            raise ValueError(f"mss must be between 1 and {_MAX_MSS}, not {mss}")
        self.mss = mss
        self._out: BinaryIO | None = open(path, "wb")
        self._flows: dict[Flow, None] = {}  # the open flows, in the order they were opened
        self._count = 0  # flows ever opened: part of each flow's initial sequence numbers
        self._ip_id = 0
        self._last_ts = 0.0
        self._out.write(_PCAP_HEAD.pack(_MAGIC, 2, 4, 0, 0, _SNAPLEN, _LINKTYPE_ETHERNET))
        self._flush()

    def flow(self, client: tuple[str, int], server: tuple[str, int], ts: float) -> Flow:
        """A new connection from ``client`` (the side that connected) to ``server``, opened at ``ts``."""
        if self._out is None:
            raise ValueError("the pcap is closed")
        self._count += 1
        seed = f"{client[0]} {client[1]} {server[0]} {server[1]} {self._count}".encode()
        digest = hashlib.blake2b(seed, digest_size=8).digest()
        flow = Flow(self, client, server, (int.from_bytes(digest[:4], "big"), int.from_bytes(digest[4:], "big")))
        self._flows[flow] = None
        flow._open(ts)
        return flow

    def close(self) -> None:
        """FIN exchange for every flow still open, then the file closed; again does nothing."""
        if self._out is None:
            return
        for flow in list(self._flows):
            flow.close(self._last_ts)
        self._out.close()
        self._out = None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_ip_id(self) -> int:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id

    def _frame(self, ts: float, headers: bytes, payload: bytes | memoryview) -> None:
        micros = round(ts * 1_000_000)
        self._last_ts = max(self._last_ts, ts)
        size = len(headers) + len(payload)
        out = self._out
        out.write(_PCAP_REC.pack(micros // 1_000_000, micros % 1_000_000, size, size) + headers)
        if payload:
            out.write(payload)

    def _forget(self, flow: Flow) -> None:
        self._flows.pop(flow, None)

    def _flush(self) -> None:
        self._out.flush()
