"""Link layer, IP and TCP/UDP header decode: one call per captured frame.

This is on the hot path of every decode (hundreds of thousands of frames a
second), so ``decode`` is one flat function over precompiled structs returning a
plain tuple, and addresses stay packed bytes: the flow table formats them once
per flow with ``format_addr``, not once per frame.
"""
from __future__ import annotations

import socket
import struct

__all__ = [
    "decode", "reassembled", "format_addr", "LINKTYPE_NAMES",
    "PROTO", "SRC", "DST", "SPORT", "DPORT", "SEQ_NO", "ACK_NO", "FLAGS", "PAYLOAD", "MISSING",
    "TCP", "UDP", "FRAGMENT", "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS",
]

# Field positions in the tuple ``decode`` returns (``_NO`` keeps them apart from the flags).
PROTO, SRC, DST, SPORT, DPORT, SEQ_NO, ACK_NO, FLAGS, PAYLOAD, MISSING = range(10)
TCP, UDP = 6, 17
FRAGMENT = 44  # decode's PROTO for an IP fragment (IPv6's number for its Fragment header)
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS = (1 << i for i in range(9))

LINKTYPE_NAMES: dict[int, str] = {
    0: "NULL",
    1: "ETHERNET",
    12: "RAW",
    14: "RAW",
    101: "RAW",
    108: "LOOP",
    113: "LINUX_SLL",
    228: "IPV4",
    229: "IPV6",
    276: "LINUX_SLL2",
}

_ETH_IP4 = 0x0800
_ETH_IP6 = 0x86DD
_VLAN = frozenset((0x8100, 0x88A8, 0x9100))
_RAW = frozenset((12, 14, 101, 228, 229))
_AF_INET6 = frozenset((10, 24, 28, 30))  # Linux, and the BSDs' and macOS's AF_INET6
_IP_VERSION = {4: _ETH_IP4, 6: _ETH_IP6}

_U16 = struct.Struct(">H").unpack_from
_IP4 = struct.Struct(">BxHHHxB2x4s4s").unpack_from  # ver+ihl, total length, id, frag, proto, src, dst
_IP6 = struct.Struct(">BxxxHBx16s16s").unpack_from  # ver, payload length, next header, src, dst
_EXT = struct.Struct(">BB").unpack_from  # next header, length
_FRAG6 = struct.Struct(">BxHI").unpack_from  # next header, offset+flags, id
_TCP = struct.Struct(">HHIIH").unpack_from  # ports, seq, ack, offset+flags
_UDP = struct.Struct(">HHH").unpack_from  # ports, length
_ETH_IP4_TCP = struct.Struct(">12xHBxHxxHxB2x4s4sHHIIH").unpack_from  # ethertype, then _IP4, then _TCP
# What the capture pipeline's hot path needs from Ethernet + IPv4 (no options) + TCP,
# read in place: ethertype, version+IHL, total length, fragment field, protocol,
# sequence number, offset+flags. Addresses and ports (bytes 26-38) are its flow key.
ETH_IP4_TCP_HOT = struct.Struct(">12xHBxH2xHxB2x12xI4xH").unpack_from
ETH_IP4_ADDRS = slice(26, 38)
_IP6_EXT = frozenset((0, 43, 60, 51))  # hop-by-hop, routing, destination options, AH


def decode(linktype: int, data: bytes) -> tuple | None:
    """The TCP or UDP segment in a captured frame, an IP fragment, or None.

    Returns ``(proto, src, dst, sport, dport, seq, ack, flags, payload, missing)``
    (indices ``PROTO`` .. ``MISSING``): proto 6 or 17; src and dst the packed
    4- or 16-byte addresses; seq, ack and flags (9 bits, ``FIN`` .. ``NS``) from
    the TCP header, 0 for UDP; payload the L4 payload as ``bytes`` (one slice of
    ``data``, bounded by the IP length so Ethernet padding never enters it);
    missing the payload bytes the headers say exist but the capture lacks
    (snap length cut), normally 0.

    An IP fragment, first fragments included, is not decoded here: it comes back
    as ``(FRAGMENT, src, dst, proto, ident, offset, more, data, missing)`` for
    ``inspector.ipfrag`` to put together (proto is IPv4's protocol, or the next
    header of IPv6's Fragment header; data the fragment's bytes after the IP
    headers; missing as above), and the whole datagram goes to ``reassembled``.
    IPv4 fragments of protocols other than TCP and UDP are None.

    None for anything else: other link types and protocols, truncated or
    inconsistent headers.
    """
    if linktype == 1:
        head = eth_ipv4_tcp(data, 0, len(data))
        if head is not None:
            (src, sport, dst, dport), seq, ack, flags, start, cap, missing = head
            return TCP, src, dst, sport, dport, seq, ack, flags, data[start:cap], missing
    return _decode(linktype, data)


def eth_ipv4_tcp(buf: bytes, begin: int, end: int) -> tuple | None:
    """The overwhelmingly common frame, Ethernet + IPv4 without options + TCP, in one unpack.

    Reads the headers in place (no slicing) and returns ``((src, sport, dst, dport),
    seq, ack, flags, payload_start, payload_end, missing)`` with offsets into
    ``buf`` (the first item is the flow key the pipeline looks up); None for every other frame and every frame it has doubts about, which
    the general decoder then handles (and this path must agree with). Fragments
    (an offset, or More Fragments set: ``0x3FFF``) are among those.
    """
    if end - begin < 54:
        return None
    etype, vihl, total, frag, proto, src, dst, sport, dport, seq, ack, offset_flags = _ETH_IP4_TCP(buf, begin)
    if etype != _ETH_IP4 or vihl != 0x45 or proto != TCP or frag & 0x3FFF or total < 40:
        return None
    ip_end = begin + 14 + total
    start = begin + 34 + ((offset_flags >> 10) & 0x3C)
    cap = ip_end if ip_end < end else end
    if not begin + 54 <= start <= cap:
        return None
    return (src, sport, dst, dport), seq, ack, offset_flags & 0x1FF, start, cap, ip_end - cap


def _decode(linktype: int, data: bytes) -> tuple | None:
    """The general decoder: every link type, VLAN tags, IPv6 extension headers, UDP, fragments."""
    try:
        if linktype == 1:
            etype = data[12] << 8 | data[13]
            off = 14
        elif linktype in _RAW:
            etype = _IP_VERSION.get(data[0] >> 4)
            off = 0
        elif linktype == 113:
            etype = _U16(data, 14)[0]
            off = 16
        elif linktype == 276:
            etype = _U16(data, 0)[0]
            off = 20
        elif linktype == 0 or linktype == 108:
            # The address family is one byte in a 4-byte word of either byte order.
            af = data[0] or data[3]
            etype = _ETH_IP4 if af == 2 else _ETH_IP6 if af in _AF_INET6 else None
            off = 4
        else:
            return None
        while etype in _VLAN:
            etype = data[off + 2] << 8 | data[off + 3]
            off += 4

        if etype == _ETH_IP4:
            vihl, total, ident, frag, proto, src, dst = _IP4(data, off)
            ihl = (vihl & 15) << 2
            if vihl >> 4 != 4 or ihl < 20:
                return None
            # Total length 0 is what TCP segmentation offload leaves: the frame is the packet.
            ip_end = off + total if total else len(data)
            if ip_end < off + ihl:
                return None
            off += ihl
            if frag & 0x3FFF:
                if proto != TCP and proto != UDP:
                    return None
                return _fragment(src, dst, proto, ident, (frag & 0x1FFF) << 3, frag & 0x2000, data, off, ip_end)
        elif etype == _ETH_IP6:
            ver, plen, proto, src, dst = _IP6(data, off)
            if ver >> 4 != 6:
                return None
            off += 40
            ip_end = off + plen if plen else len(data)
            if proto in _IP6_EXT:
                proto, off = _skip_ext6(proto, data, off)
            if proto == FRAGMENT:
                nxt, offset_flags, ident = _FRAG6(data, off)
                off += 8
                if offset_flags & 0xFFF9:
                    return _fragment(src, dst, nxt, ident, offset_flags & 0xFFF8, offset_flags & 1, data, off, ip_end)
                proto, off = _skip_ext6(nxt, data, off)  # an atomic fragment is the whole packet
            if off > ip_end:
                return None
        else:
            return None
        return _transport(proto, src, dst, data, off, ip_end, False)
    except (IndexError, struct.error):
        return None


def reassembled(proto: int, src: bytes, dst: bytes, data: bytes, length: int, known: bool) -> tuple | None:
    """The TCP or UDP segment in a datagram put back together from fragments, as ``decode``'s tuple.

    ``data`` is the datagram after its IP header (after IPv6's Fragment header,
    ``proto`` being that header's next header) as far as it was captured from its
    start, ``length`` its full size: the bytes in between are ``missing``.
    ``known`` is False when the last fragment was lost, so ``length`` is only a
    lower bound and a longer UDP length is believed.
    """
    try:
        off = 0
        if len(src) == 16:
            proto, off = _skip_ext6(proto, data, 0)
            if off > length:
                return None
        return _transport(proto, src, dst, data, off, length, not known)
    except (IndexError, struct.error):
        return None


def _skip_ext6(proto: int, data: bytes, off: int) -> tuple[int, int]:
    """Past IPv6 extension headers other than Fragment: the next protocol and where it starts."""
    while proto in _IP6_EXT:
        nxt, hlen = _EXT(data, off)
        off += (hlen + 2) << 2 if proto == 51 else (hlen + 1) << 3
        proto = nxt
    return proto, off


def _fragment(src: bytes, dst: bytes, proto: int, ident: int, offset: int, more: int, data: bytes, off: int,
              ip_end: int) -> tuple | None:
    """Report a fragment instead of decoding it: only the whole datagram has a whole TCP/UDP header and payload."""
    cap = len(data)
    if ip_end < cap:
        cap = ip_end
    if off > cap:
        return None
    return FRAGMENT, src, dst, proto, ident, offset, bool(more), data[off:cap], ip_end - cap


def _transport(proto: int, src: bytes, dst: bytes, data: bytes, off: int, ip_end: int, partial: bool) -> tuple | None:
    """TCP or UDP at ``off``; ``partial``: the IP length is a lower bound, a longer UDP length is believed."""
    cap = len(data)
    if ip_end < cap:
        cap = ip_end
    if proto == TCP:
        sport, dport, seq, ack, offset_flags = _TCP(data, off)
        start = off + ((offset_flags >> 10) & 0x3C)
        if start < off + 20 or start > cap:
            return None
        return TCP, src, dst, sport, dport, seq, ack, offset_flags & 0x1FF, data[start:cap], ip_end - cap
    if proto == UDP:
        sport, dport, length = _UDP(data, off)
        start = off + 8
        if start > cap:
            return None
        end = off + length
        if length < 8 or (end > ip_end and not partial):
            end = ip_end
        stop = end if end < cap else cap
        return UDP, src, dst, sport, dport, 0, 0, 0, data[start:stop], end - stop
    return None


def format_addr(addr: bytes, port: int) -> str:
    """``ip:port`` for IPv4, ``[ip]:port`` for IPv6, as the JSON output and UI show them."""
    if len(addr) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, addr)}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, addr)}]:{port}"
