"""Frame decode: link types, VLANs, IPv4/IPv6, TCP/UDP, padding, snap cuts, fragments.

Frames are built with scapy (an independent encoder) or by hand with struct
where scapy has no layer for the link type.
"""
from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback

from conftest import SHARED_CAPTURES, SHARED_MISSING
from inspector import frames
from inspector.capfile import CaptureFile
from inspector.frames import (
    ACK, ACK_NO, DPORT, FLAGS, FRAGMENT, MISSING, PAYLOAD, PSH, SEQ_NO, SPORT, SRC, SYN, decode, format_addr,
)

SAMPLE = SHARED_CAPTURES / "aria2-to-libtorrent.pcap"
A4, B4 = "192.0.2.1", "198.51.100.7"
A6, B6 = "2001:db8::1", "fe80::abcd:1"
DATA = b"\x13BitTorrent protocol" + bytes(8)


def eth(**kw) -> Ether:
    """Ethernet with fixed addresses, so scapy never tries to resolve them."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **kw)


def ip4(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, a)


def ip6(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, a)


def tcp(payload=DATA, **kw):
    return TCP(sport=51413, dport=6881, seq=0xFFFFFFF0, ack=12345, flags="PA", **kw) / payload


def tcp4(payload=DATA, **kw):
    return IP(src=A4, dst=B4) / tcp(payload, **kw)


def expected_tcp4(payload=DATA, missing=0):
    return (6, ip4(A4), ip4(B4), 51413, 6881, 0xFFFFFFF0, 12345, PSH | ACK, payload, missing)


def both(linktype: int, data: bytes):
    """decode, checked against the general path the fast path must agree with."""
    got = decode(linktype, data)
    assert got == frames._decode(linktype, data)
    return got


# ---------------------------------------------------------------- link types


def test_ethernet_ipv4_tcp():
    got = both(1, bytes(eth() / tcp4()))
    assert got == expected_tcp4()
    assert isinstance(got[PAYLOAD], bytes)
    assert (got[SPORT], got[DPORT], got[SEQ_NO], got[ACK_NO]) == (51413, 6881, 0xFFFFFFF0, 12345)


def test_tcp_flags_and_options():
    got = both(1, bytes(eth() / tcp4(b"", options=[("MSS", 1460), ("WScale", 7), ("SAckOK", b"")])))
    assert got[PAYLOAD] == b""
    got = both(1, bytes(eth() / IP() / TCP(flags="SEC", options=[("MSS", 1460)]) / b"hi"))
    assert got[FLAGS] == SYN | 0x40 | 0x80 and got[PAYLOAD] == b"hi"


@pytest.mark.parametrize(
    "tags",
    [
        [Dot1Q(vlan=5)],
        [Dot1AD(vlan=100), Dot1Q(vlan=5)],
        [Dot1Q(vlan=1), Dot1Q(vlan=2), Dot1Q(vlan=3)],
    ],
)
def test_vlan_tags(tags):
    pkt = eth()
    for tag in tags:
        pkt = pkt / tag
    assert both(1, bytes(pkt / tcp4())) == expected_tcp4()


def test_vlan_tpid_0x9100():
    frame = bytes(eth(type=0x9100) / Dot1Q(vlan=7) / tcp4())
    assert frame[12:14] == b"\x91\x00"
    assert both(1, frame) == expected_tcp4()


def test_linux_cooked_v1_and_v2():
    assert both(113, bytes(CookedLinux(proto=0x0800) / tcp4())) == expected_tcp4()
    assert both(276, bytes(CookedLinuxV2(proto=0x0800) / tcp4())) == expected_tcp4()
    v6 = IPv6(src=A6, dst=B6) / tcp()
    assert both(113, bytes(CookedLinux(proto=0x86DD) / v6))[:3] == (6, ip6(A6), ip6(B6))
    assert both(276, bytes(CookedLinuxV2(proto=0x86DD) / v6))[:3] == (6, ip6(A6), ip6(B6))


@pytest.mark.parametrize("linktype", [101, 12, 14, 228])
def test_raw_ipv4(linktype):
    assert both(linktype, bytes(tcp4())) == expected_tcp4()


@pytest.mark.parametrize("linktype", [101, 12, 14, 229])
def test_raw_ipv6(linktype):
    got = both(linktype, bytes(IPv6(src=A6, dst=B6) / tcp()))
    assert got == (6, ip6(A6), ip6(B6)) + expected_tcp4()[3:]


@pytest.mark.parametrize("order", "<>")
@pytest.mark.parametrize("af", [2, 10, 24, 28, 30])
def test_bsd_null_either_byte_order(order, af):
    l3 = tcp4() if af == 2 else IPv6(src=A6, dst=B6) / tcp()
    got = both(0, struct.pack(order + "I", af) + bytes(l3))
    assert got is not None and got[PAYLOAD] == DATA


def test_null_as_scapy_writes_it_and_loop_in_network_order():
    assert both(0, bytes(Loopback(type=2) / tcp4())) == expected_tcp4()
    assert both(108, struct.pack(">I", 2) + bytes(tcp4())) == expected_tcp4()
    assert both(108, struct.pack(">I", 24) + bytes(IPv6(src=A6, dst=B6) / tcp()))[PAYLOAD] == DATA
    assert both(0, struct.pack("<I", 7) + bytes(tcp4())) is None  # some other family


def test_ip_version_mismatch_and_unknown_linktype():
    assert both(101, b"\x50" + bytes(tcp4())[1:]) is None
    assert both(147, bytes(eth() / tcp4())) is None  # a user DLT
    assert both(1, bytes(eth(type=0x86DD) / tcp4())) is None  # says IPv6, is IPv4


# ---------------------------------------------------------------- IPv6


def test_ipv6_extension_headers():
    pkt = (
        IPv6(src=A6, dst=B6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting(addresses=["2001:db8::99"])
        # scapy leaves AH's next header and length 0, which with a zero ICV reads as a run of
        # 8-byte hop-by-hop headers: set both, and an ICV no header could be read from.
        / AH(nh=60, payloadlen=4, spi=1, seq=7, icv=b"\xa5" * 12)
        / IPv6ExtHdrDestOpt()
        / tcp()
    )
    assert both(1, bytes(eth() / pkt)) == (6, ip6(A6), ip6(B6)) + expected_tcp4()[3:]


def test_ipv6_udp():
    got = both(1, bytes(eth() / IPv6(src=A6, dst=B6) / UDP(sport=6881, dport=6882) / b"utp-data"))
    assert got == (17, ip6(A6), ip6(B6), 6881, 6882, 0, 0, 0, b"utp-data", 0)


def test_ipv6_fragments_are_reported_not_decoded():
    udp = UDP(sport=1, dport=2, len=8 + 3000) / (b"u" * 1000)
    first = IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(offset=0, m=1, id=0x89ABCDEF) / udp
    assert len(bytes(first)) == 40 + 8 + 8 + 1008
    got = both(101, bytes(first))
    assert got == (FRAGMENT, ip6(A6), ip6(B6), 17, 0x89ABCDEF, 0, True, bytes(first)[-1008:], 0)
    later = IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(offset=126, m=0, id=9, nh=17) / (b"u" * 1000)
    assert both(101, bytes(later)) == (FRAGMENT, ip6(A6), ip6(B6), 17, 9, 1008, False, b"u" * 1000, 0)
    cut = both(1, bytes(eth() / later)[:-300])
    assert cut[7:] == (b"u" * 700, 300)  # the fragment's bytes, and those the snap length cut


def test_ipv6_atomic_fragment_is_the_whole_packet():
    pkt = IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(offset=0, m=0, id=5) / IPv6ExtHdrDestOpt() / tcp()
    assert both(101, bytes(pkt)) == (6, ip6(A6), ip6(B6)) + expected_tcp4()[3:]


def test_ipv6_unknown_next_header_and_esp():
    assert both(101, bytes(IPv6(nh=50) / (b"\x00" * 40))) is None  # ESP
    assert both(101, bytes(IPv6(nh=59))) is None  # no next header


# ---------------------------------------------------------------- lengths


def test_ethernet_padding_is_stripped():
    frame = bytes(eth() / tcp4(b"ab"))
    padded = frame + b"PADPADPAD" + bytes(10)
    assert both(1, padded)[PAYLOAD] == b"ab"
    udp = bytes(eth() / IP() / UDP() / b"x") + b"\xee" * 17
    assert both(1, udp)[PAYLOAD] == b"x"
    v6 = bytes(eth() / IPv6() / tcp(b"")) + b"\xee" * 4
    assert both(1, v6)[PAYLOAD] == b""


def test_snap_length_cut_payload():
    frame = bytes(eth() / tcp4(b"p" * 1000))
    for cut in (1, 500, 1000):
        got = both(1, frame[:-cut])
        assert got[PAYLOAD] == b"p" * (1000 - cut) and got[MISSING] == cut
    v6 = bytes(eth() / IPv6() / UDP() / (b"q" * 300))
    assert both(1, v6[:-100])[MISSING] == 100


def test_truncated_headers_are_none():
    frame = bytes(eth() / tcp4(b"", options=[("MSS", 1460)]))  # 14 + 20 + 24 bytes
    for size in range(len(frame)):
        assert both(1, frame[:size]) is None, size
    assert both(1, frame) is not None
    v6 = bytes(eth() / IPv6() / IPv6ExtHdrHopByHop() / UDP())
    for size in range(len(v6)):
        assert both(1, v6[:size]) is None, size


def test_tso_zero_total_length_uses_the_frame():
    frame = bytearray(bytes(eth() / tcp4(b"z" * 3000)))
    frame[16:18] = b"\x00\x00"
    got = both(1, bytes(frame))
    assert got[PAYLOAD] == b"z" * 3000 and got[MISSING] == 0


def test_inconsistent_lengths_are_none():
    frame = bytearray(bytes(eth() / tcp4()))
    frame[16:18] = struct.pack(">H", 30)  # total length shorter than the headers
    assert both(1, bytes(frame)) is None
    frame = bytearray(bytes(eth() / tcp4()))
    frame[46] = 0x40  # TCP data offset 16 bytes
    assert both(1, bytes(frame)) is None
    frame[14] = 0x44  # IPv4 header length 16
    assert both(1, bytes(frame)) is None


def test_ipv4_options():
    pkt = IP(src=A4, dst=B4, options=b"\x01\x01\x01\x00") / tcp()
    assert both(1, bytes(eth() / pkt)) == expected_tcp4()


# ---------------------------------------------------------------- not TCP/UDP, fragments


def test_other_protocols_are_none():
    assert both(1, bytes(eth() / ARP())) is None
    assert both(1, bytes(eth() / IP() / ICMP() / b"ping")) is None
    assert both(1, bytes(eth(type=0x0806) / tcp4())) is None


def test_ipv4_fragments_are_reported_not_decoded():
    pkt = IP(src=A4, dst=B4, id=0xBEEF) / UDP(sport=6881, dport=6881) / (b"f" * 3000)
    parts = fragment(pkt, fragsize=1000)
    assert len(parts) == 4
    udp = bytes(pkt[UDP])
    got = [both(1, bytes(eth() / p)) for p in parts]
    assert [g[:7] for g in got] == [
        (FRAGMENT, ip4(A4), ip4(B4), 17, 0xBEEF, offset, offset < 3000) for offset in (0, 1000, 2000, 3000)
    ]
    assert b"".join(g[7] for g in got) == udp and {g[8] for g in got} == {0}
    padded = bytes(eth() / parts[3]) + bytes(30)  # Ethernet padding stays out of the fragment
    assert both(1, padded)[7] == udp[3000:]


def test_ipv4_first_fragment_with_only_more_fragments_set():
    """Offset 0 with MF set: the fast path must pass it on, not decode its TCP header as a segment."""
    frame = bytes(eth() / IP(src=A4, dst=B4, flags="MF", id=7) / tcp(b"t" * 100))
    assert frames.eth_ipv4_tcp(frame, 0, len(frame)) is None
    got = both(1, frame)
    assert got[:7] == (FRAGMENT, ip4(A4), ip4(B4), 6, 7, 0, True)
    assert got[7] == frame[34:]
    df = bytes(eth() / IP(src=A4, dst=B4, flags="DF") / tcp())  # Don't Fragment is no fragment
    assert both(1, df) == expected_tcp4()


def test_ipv4_fragments_of_other_protocols_are_none():
    for part in fragment(IP(src=A4, dst=B4) / ICMP() / (b"i" * 3000), fragsize=1000):
        assert both(1, bytes(eth() / part)) is None


def test_reassembled_datagrams():
    segment = bytes(tcp(b"t" * 3000))
    assert frames.reassembled(6, ip4(A4), ip4(B4), segment, len(segment), True) == expected_tcp4(b"t" * 3000)
    # Captured from the start, 1000 bytes short: the TCP header decodes, the rest is missing.
    got = frames.reassembled(6, ip4(A4), ip4(B4), segment[:-1000], len(segment), True)
    assert got[PAYLOAD] == b"t" * 2000 and got[MISSING] == 1000
    # IPv6: extension headers after the Fragment header are part of the datagram.
    dest = bytes(IPv6ExtHdrDestOpt(nh=17) / UDP(sport=1, dport=2) / (b"u" * 500))
    got = frames.reassembled(60, ip6(A6), ip6(B6), dest, len(dest), True)
    assert got == (17, ip6(A6), ip6(B6), 1, 2, 0, 0, 0, b"u" * 500, 0)
    # The last fragment lost: the UDP length is believed over what was seen.
    udp = bytes(UDP(sport=1, dport=2) / (b"u" * 3000))
    got = frames.reassembled(17, ip4(A4), ip4(B4), udp[:2008], 2008, False)
    assert got[PAYLOAD] == b"u" * 2000 and got[MISSING] == 1000
    got = frames.reassembled(17, ip4(A4), ip4(B4), udp[:2008], 2008, True)  # the IP length is known: trust it
    assert got[PAYLOAD] == b"u" * 2000 and got[MISSING] == 0
    assert frames.reassembled(6, ip4(A4), ip4(B4), segment[:19], len(segment), True) is None
    assert frames.reassembled(60, ip6(A6), ip6(B6), dest[:3], len(dest), True) is None


def test_udp():
    got = both(1, bytes(eth() / IP(src=A4, dst=B4) / UDP(sport=6881, dport=51413) / b"d1:ad2:id20:"))
    assert got == (17, ip4(A4), ip4(B4), 6881, 51413, 0, 0, 0, b"d1:ad2:id20:", 0)
    short = bytearray(bytes(IP() / UDP() / b"abcdef"))
    short[24:26] = struct.pack(">H", 10)  # UDP length says 2 payload bytes: trust it
    assert both(101, bytes(short))[PAYLOAD] == b"ab"
    long_ = bytearray(bytes(IP() / UDP() / b"abcdef"))
    long_[24:26] = struct.pack(">H", 500)  # longer than the IP packet, not a fragment: trust IP
    assert both(101, bytes(long_))[PAYLOAD] == b"abcdef" and both(101, bytes(long_))[MISSING] == 0


def test_format_addr():
    assert format_addr(ip4("10.1.2.3"), 6881) == "10.1.2.3:6881"
    assert format_addr(ip6("2001:db8::1"), 51413) == "[2001:db8::1]:51413"
    assert format_addr(ip6("::ffff:10.0.0.1"), 1) == "[::ffff:10.0.0.1]:1"


# ---------------------------------------------------------------- properties

_BASES = [
    (1, bytes(eth() / tcp4())),
    (1, bytes(eth() / tcp4(b"", options=[("MSS", 1460)]))),
    (1, bytes(eth() / IP(options=b"\x01\x01\x01\x00") / UDP() / b"abc")),
    (1, bytes(eth() / Dot1Q() / IPv6() / IPv6ExtHdrHopByHop() / tcp())),
    (113, bytes(CookedLinux(proto=0x0800) / tcp4())),
    (0, bytes(Loopback(type=2) / tcp4())),
    (1, bytes(eth() / IP(flags="MF", frag=3) / UDP() / b"abc")),
    (101, bytes(IPv6() / IPv6ExtHdrFragment(offset=1, m=1) / tcp())),
]


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(_BASES),
    edits=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 120),
    extra=st.binary(max_size=8),
)
def test_mutated_frames_never_raise_and_fast_path_agrees(base, edits, cut, extra):
    linktype, frame = base
    data = bytearray(frame)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    data = bytes(data[: len(data) - cut] if cut < len(data) else b"") + extra
    got = both(linktype, data)
    if got is not None and got[0] == FRAGMENT:
        assert len(got) == 9 and got[5] % 8 == 0 and got[8] >= 0
    elif got is not None:
        assert got[0] in (6, 17) and len(got) == 10 and got[MISSING] >= 0
    if got is not None:
        assert len(got[1]) == len(got[2]) in (4, 16)


@settings(max_examples=200, deadline=None)
@given(linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 9999]), data=st.binary(max_size=100))
def test_random_bytes_never_raise(linktype, data):
    both(linktype, data)


# ---------------------------------------------------------------- against Wireshark


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.skipif(not SAMPLE.exists(), reason=SHARED_MISSING)
def test_sample_capture_matches_tshark():
    out = subprocess.run(
        ["tshark", "-r", str(SAMPLE), "-T", "fields", "-e", "frame.number", "-e", "tcp.len", "-e", "tcp.seq_raw"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    theirs = [tuple(line.split("\t")) for line in out]
    ours = []
    with CaptureFile(SAMPLE) as cf:
        for number, (_ts, linktype, data) in enumerate(cf, 1):
            got = decode(linktype, data)
            if got is None or got[0] != 6:
                ours.append((str(number), "", ""))
            else:
                ours.append((str(number), str(len(got[PAYLOAD]) + got[MISSING]), str(got[SEQ_NO])))
    assert len(ours) == len(theirs) == 1102
    assert ours == theirs
    assert sum(int(t[1]) for t in theirs if t[1]) > 1_000_000  # the 1 MiB transfer is in there


# ---------------------------------------------------------------- mutation survivors (issue 12)


def test_ipv4_with_options_on_ethernet_is_not_taken_by_the_fast_path():
    """IHL 6: the TCP header starts 4 bytes later than the fast path's fixed layout."""
    got = both(1, bytes(eth() / IP(src=A4, dst=B4, options=b"\x01\x01\x01\x00") / tcp()))
    assert got == expected_tcp4()


def test_ipv4_options_are_refused_by_the_fast_path_even_when_shifted_bytes_look_like_tcp():
    """Read 4 bytes early, the TCP header's ack (0x50180001) is where the fast path's fixed
    layout looks for the data offset: 5 words, plausible. Only the IHL check keeps it out."""
    pkt = IP(src=A4, dst=B4, options=b"\x01\x01\x01\x00") / TCP(sport=51413, dport=6881, ack=0x50180001) / b"data"
    frame = bytes(eth() / pkt)
    assert frames.eth_ipv4_tcp(frame, 0, len(frame)) is None
    got = both(1, frame)
    assert (got[SPORT], got[DPORT], got[ACK_NO], got[PAYLOAD]) == (51413, 6881, 0x50180001, b"data")


@pytest.mark.parametrize("linktype", [0, 2, 105, 147])
def test_ethernet_bytes_under_another_link_type_are_not_decoded(linktype):
    """Only link type 1 is Ethernet: the fast path must not take an Ethernet-looking frame of
    another link type (0 is loopback, whose 4-byte family 0x0000ffff is no address family)."""
    assert decode(linktype, bytes(eth() / tcp4())) is None


def test_the_fast_path_reads_the_ethertype_at_the_frame_start():
    """An unknown ethertype (0x1208) whose next bytes, one further on, read as 0x0800 and an
    IPv4 header: nothing to decode, on either path."""
    inner = bytes(IP(src=A4, dst=B4) / tcp())
    frame = b"\x02" * 12 + b"\x12\x08\x00" + inner
    assert both(1, frame) is None


def test_ipv6_authentication_header_counts_in_four_byte_words():
    """RFC 4302: AH's length is in 4-byte words minus 2 (other extension headers: 8-byte words minus 1)."""
    pkt = eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 10)]) \
        / AH(spi=1, icv=b"\x00" * 12) / IPv6ExtHdrDestOpt() / tcp()
    got = both(1, bytes(pkt))
    assert (got[SRC], got[SPORT], got[DPORT], got[PAYLOAD]) == (ip6(A6), 51413, 6881, DATA)


def test_ipv6_payload_length_zero_takes_the_frame_length():
    """An offloaded (or jumbogram) IPv6 segment says 0: the payload runs to the frame's end."""
    frame = bytearray(bytes(eth() / IPv6(src=A6, dst=B6) / tcp()))
    frame[18:20] = b"\x00\x00"
    got = both(1, bytes(frame))
    assert got[PAYLOAD] == DATA and got[MISSING] == 0


@pytest.mark.parametrize("first", [0x55, 0x65, 0x44])
def test_ipv4_with_another_version_or_a_short_header_is_refused(first):
    frame = bytearray(bytes(eth() / tcp4()))
    frame[14] = first
    assert both(1, bytes(frame)) is None


def test_a_loopback_frame_of_another_address_family_is_not_ip():
    """Address family 17 (AF_PACKET-ish, not AF_INET or any AF_INET6): not decoded, even
    if the bytes after it would read as IPv6."""
    body = bytes(IPv6(src=A6, dst=B6) / tcp())
    assert both(0, struct.pack("<I", 17) + body) is None
    assert both(0, struct.pack("<I", 10) + body)[PAYLOAD] == DATA


def test_tcp_reserved_bits_do_not_change_the_header_length():
    """The data offset is the top 4 bits of byte 12; the 3 reserved bits and NS below it are not part of it."""
    frame = bytearray(bytes(eth() / tcp4()))
    frame[14 + 20 + 12] |= 0x0E  # reserved bits set
    got = both(1, bytes(frame))
    assert got[PAYLOAD] == DATA


def test_an_empty_udp_datagram_is_decoded_with_an_empty_payload():
    got = both(1, bytes(eth() / IP(src=A4, dst=B4) / UDP(sport=6881, dport=6882)))
    assert got == (17, ip4(A4), ip4(B4), 6881, 6882, 0, 0, 0, b"", 0)


def test_a_udp_length_of_eight_inside_a_longer_packet_ends_the_payload():
    frame = bytes(eth() / IP(src=A4, dst=B4) / UDP(sport=6881, dport=6882, len=8) / b"trailer")
    assert both(1, frame)[PAYLOAD] == b""
