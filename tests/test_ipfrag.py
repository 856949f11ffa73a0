"""IP fragment reassembly: orders, duplicates, overlaps, losses, timeout, caps, and real conversations.

Fragments are cut by scapy (``fragment``, ``fragment6``: an independent
encoder) or built by hand where a test needs overlaps scapy never makes, and
reach the reassembler as ``frames.decode`` reports them. A datagram put back
together must decode exactly as the unfragmented packet does.
"""
from __future__ import annotations

import json
import random
import socket
from pathlib import Path

import pytest
from conftest import CAPTURES, run_btshark
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import RawPcapReader, RawPcapWriter

from inspector.frames import FRAGMENT, MISSING, PAYLOAD, decode
from inspector.ipfrag import MAX_BYTES, MAX_DATAGRAMS, Reassembler
from inspector.pipeline import Decoder

A4, B4 = "192.0.2.1", "198.51.100.7"
A6, B6 = "2001:db8::1", "2001:db8::2"
BODY = bytes(range(256)) * 12  # 3072 bytes, every offset distinguishable


def udp4(body: bytes = BODY, ident: int = 77, src: str = A4) -> IP:
    return IP(src=src, dst=B4, id=ident) / UDP(sport=6881, dport=51413) / body


def udp6(body: bytes = BODY, ident: int = 77) -> IPv6:
    return IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=ident) / UDP(sport=6881, dport=51413) / body


def reported(packets) -> list[tuple]:
    """What ``decode`` hands the pipeline for each raw-IP packet: fragments, all of them."""
    got = [decode(101, bytes(p)) for p in packets]
    assert all(g is not None and g[0] == FRAGMENT for g in got)
    return got


def whole(pkt) -> tuple:
    """The unfragmented packet as ``decode`` sees it."""
    if IPv6ExtHdrFragment in pkt:
        pkt = IPv6(src=pkt[IPv6].src, dst=pkt[IPv6].dst) / pkt[IPv6ExtHdrFragment].payload
    got = decode(101, bytes(pkt))
    assert got is not None and got[0] != FRAGMENT
    return got


def feed(reassembler: Reassembler, fragments, ts: float = 0.0) -> list[list[tuple]]:
    return [reassembler.add(f, ts) for f in fragments]


# ---------------------------------------------------------------- orders and copies


@pytest.mark.parametrize("make, cut", [(udp4, lambda p: fragment(p, fragsize=1000)),
                                       (udp6, lambda p: fragment6(p, 1000))], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("order", ["in-order", "reversed", "shuffled", "duplicated"])
def test_any_order_completes_once_at_the_last_missing_fragment(make, cut, order):
    pkt = make()
    parts = reported(cut(pkt))
    assert len(parts) >= 4
    if order == "reversed":
        parts.reverse()
    elif order == "shuffled":
        random.Random(5).shuffle(parts)
    elif order == "duplicated":  # every fragment twice, the copies before the datagram completes
        parts = [p for pair in zip(parts, parts) for p in pair][:-1]
    r = Reassembler()
    outputs = feed(r, parts)
    assert outputs[-1] == [whole(pkt)]
    assert all(out == [] for out in outputs[:-1])
    assert (r.pending, r.held, r.flush(), r.dropped) == ({}, 0, [], 0)


def test_overlaps_first_copy_wins():
    """Hand-made IPv4 fragments that overlap with different bytes: what arrived first stays."""
    udp = bytes(UDP(sport=1, dport=2, len=8 + 40, chksum=0))
    first = IP(src=A4, dst=B4, id=3, proto=17, flags="MF") / Raw(udp + b"A" * 16)  # datagram bytes 0-24
    middle = IP(src=A4, dst=B4, id=3, proto=17, flags="MF", frag=1) / Raw(b"B" * 32)  # bytes 8-40 (overlaps)
    last = IP(src=A4, dst=B4, id=3, proto=17, frag=2) / Raw(b"C" * 32)  # bytes 16-48 (overlaps both)
    r = Reassembler()
    got = feed(r, reported([first, middle, last]))
    assert got[:2] == [[], []]
    [datagram] = got[2]
    assert datagram[PAYLOAD] == b"A" * 16 + b"B" * 16 + b"C" * 8 and datagram[MISSING] == 0
    assert r.held == 0


def test_a_second_last_fragment_does_not_change_the_length():
    body = bytes(UDP(sport=1, dport=2, len=8 + 8, chksum=0)) + b"x" * 8
    last = IP(src=A4, dst=B4, id=4, proto=17, frag=1) / Raw(b"x" * 8)  # ends at 16
    longer = IP(src=A4, dst=B4, id=4, proto=17, frag=1) / Raw(b"y" * 24)  # claims 32
    first = IP(src=A4, dst=B4, id=4, proto=17, flags="MF") / Raw(body[:8])
    r = Reassembler()
    assert feed(r, reported([last, longer, first]))[2][0][PAYLOAD] == b"x" * 8


def test_datagrams_are_told_apart_by_addresses_protocol_and_id():
    a = fragment(udp4(b"a" * 2000, ident=1), fragsize=800)
    b = fragment(udp4(b"b" * 2000, ident=2), fragsize=800)
    c = fragment(udp4(b"c" * 2000, ident=1, src="192.0.2.9"), fragsize=800)
    r = Reassembler()
    interleaved = [p for trio in zip(a, b, c) for p in trio]
    done = [out for out in feed(r, reported(interleaved)) if out]
    assert done == [[whole(udp4(b"a" * 2000, ident=1))], [whole(udp4(b"b" * 2000, ident=2))],
                    [whole(udp4(b"c" * 2000, ident=1, src="192.0.2.9"))]]


def test_ipv6_next_header_comes_from_the_first_fragment_and_extension_headers_follow():
    pkt = IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=9) / IPv6ExtHdrDestOpt() / TCP(sport=1, dport=2) / BODY
    parts = reported(fragment6(pkt, 1200))
    assert parts[0][3] == 60  # destination options, then TCP
    later = [p[:3] + (59,) + p[4:] for p in parts[1:]]  # RFC 8200: only the first fragment's counts
    r = Reassembler()
    assert feed(r, later[::-1] + parts[:1])[-1] == [whole(pkt)]


# ---------------------------------------------------------------- losses


def test_missing_middle_hands_out_the_start_with_what_is_missing():
    parts = reported(fragment(udp4(), fragsize=1000))
    r = Reassembler()
    assert feed(r, [parts[0], parts[2], parts[3]]) == [[], [], []]
    [(ts, datagram)] = r.flush()
    assert datagram[PAYLOAD] == BODY[:992] and datagram[MISSING] == len(BODY) - 992
    assert (r.partial, r.dropped, r.held) == (1, 0, 0)


def test_missing_last_believes_the_udp_length():
    parts = reported(fragment6(udp6(), 1000))
    r = Reassembler()
    feed(r, parts[:-1])
    [(_, datagram)] = r.flush()
    captured = len(datagram[PAYLOAD])
    assert datagram[PAYLOAD] == BODY[:captured] and captured + datagram[MISSING] == len(BODY)
    assert captured >= len(BODY) - 1000


def test_missing_last_of_tcp_hands_out_what_was_captured():
    pkt = IP(src=A4, dst=B4, id=5) / TCP(sport=1, dport=2, seq=1000) / BODY
    parts = reported(fragment(pkt, fragsize=1000))
    r = Reassembler()
    feed(r, parts[:-1])
    [(_, datagram)] = r.flush()
    expected = whole(pkt)
    assert datagram[:PAYLOAD] == expected[:PAYLOAD]
    assert datagram[PAYLOAD] == BODY[: len(datagram[PAYLOAD])] and len(datagram[PAYLOAD]) > 2000


def test_missing_first_is_dropped():
    parts = reported(fragment(udp4(), fragsize=1000))
    r = Reassembler()
    feed(r, parts[1:])
    assert r.flush() == [] and (r.dropped, r.partial, r.held) == (1, 0, 0)


def test_snap_length_cut_fragments_complete_with_the_cut_bytes_missing():
    frames = [bytes(Ether() / p)[:14 + 20 + 300] for p in fragment(udp4(), fragsize=1000)]
    parts = [decode(1, f) for f in frames]
    r = Reassembler()
    [datagram] = feed(r, parts)[-1]
    assert datagram[PAYLOAD] == BODY[:292] and datagram[MISSING] == len(BODY) - 292


def test_a_fragment_cut_right_after_its_ip_header_still_counts_its_bytes_as_missing():
    """A snap length that ends exactly at the IP header leaves an empty fragment; it still
    says where its bytes belong, so the datagram completes with them missing."""
    parts = fragment(udp4(), fragsize=1000)
    frames = [bytes(Ether() / p) for p in parts]
    frames[-1] = frames[-1][:14 + 20]
    got = [decode(1, f) for f in frames]
    assert got[-1][0] == FRAGMENT and got[-1][-2] == b""
    r = Reassembler()
    [datagram] = feed(r, got)[-1]
    cut = len(bytes(parts[-1][IP].payload))
    assert datagram[MISSING] == cut and datagram[PAYLOAD] == BODY[:len(BODY) - cut]


def test_an_empty_last_fragment_ends_the_datagram():
    """A fragment of no bytes (total length = header length) still carries the offset and
    the last-fragment flag: the datagram is whole when it arrives."""
    parts = fragment(udp4(), fragsize=1000)
    end = sum(len(bytes(p[IP].payload)) for p in parts)
    parts[-1][IP].flags = "MF"
    closing = IP(src=A4, dst=B4, id=77, proto=17, frag=end // 8)
    got = [decode(101, bytes(p)) for p in [*parts, closing]]
    assert got[-1][0] == FRAGMENT and got[-1][-2] == b""
    r = Reassembler()
    done = feed(r, got)
    assert done[:-1] == [[]] * len(parts)
    [datagram] = done[-1]
    assert datagram == whole(udp4())


def test_timeout_in_capture_time_hands_out_on_the_next_fragment():
    old = reported(fragment(udp4(ident=1), fragsize=1000))
    new = reported(fragment(udp4(ident=2), fragsize=1000))
    r = Reassembler()
    assert r.add(old[0], 100.0) == [] and r.add(old[1], 110.0) == []
    assert r.add(new[0], 130.0) == []  # 30 s after the first fragment: still in time
    [expired] = r.add(new[1], 130.5)
    assert expired[PAYLOAD] == BODY[: 2 * 1000 - 8]
    assert r.add(old[2], 131.0) == []  # a straggler starts afresh, without its start
    assert list(r.pending) == [(socket.inet_aton(A4), socket.inet_aton(B4), 17, 2),
                               (socket.inet_aton(A4), socket.inet_aton(B4), 17, 1)]


# ---------------------------------------------------------------- bounds


def test_datagrams_in_progress_are_capped_oldest_first():
    r = Reassembler()
    start = reported(fragment(udp4(b"s" * 1600), fragsize=800))[0]
    starts = [start[:4] + (i,) + start[5:] for i in range(MAX_DATAGRAMS + 50)]  # IP ids 0, 1, ...
    handed_out = [out for out in feed(r, starts) if out]
    assert len(r.pending) == MAX_DATAGRAMS and len(handed_out) == 50
    assert [next(iter(r.pending))[3]] == [50]  # the 50 oldest went, in order
    assert all(out[0][PAYLOAD] == b"s" * 792 and out[0][MISSING] == 808 for out in handed_out)


def test_bytes_held_are_capped():
    r = Reassembler()
    body = b"h" * 60000
    held_after = []
    for i in range(80):  # 80 datagrams of ~60 kB, all but their last fragment
        for part in reported(fragment(udp4(body, ident=i), fragsize=8000))[:-1]:
            r.add(part, 0.0)
            held_after.append(r.held)
    assert max(held_after) <= MAX_BYTES and max(held_after) > MAX_BYTES - 60000
    assert r.held == sum(d.held for d in r.pending.values())
    assert r.partial > 0


def test_a_datagram_claiming_more_than_65535_bytes_is_discarded():
    r = Reassembler()
    start = reported(fragment(udp4(ident=8), fragsize=1000))[0]
    too_far = IP(src=A4, dst=B4, id=8, proto=17, frag=8191) / Raw(b"z" * 16)  # bytes 65528-65544
    assert r.add(start, 0.0) == [] and r.add(reported([too_far])[0], 0.0) == []
    assert (r.pending, r.held, r.dropped) == ({}, 0, 1)
    edge = IP(src=A4, dst=B4, id=9, proto=17, frag=8191) / Raw(b"z" * 7)  # ends at 65535: allowed
    r.add(reported([edge])[0], 0.0)
    assert len(r.pending) == 1


# ---------------------------------------------------------------- in the pipeline


def test_decoder_numbers_a_reassembled_message_by_the_frame_that_completed_it():
    handshake = b"\x13BitTorrent protocol" + bytes(8) + b"i" * 20 + b"-LT2110-" + b"p" * 12
    msgs = handshake + (b"\x00\x00\x00\x01\x02" * 400)  # then 400 interested
    syn = IP(src=A4, dst=B4) / TCP(sport=40000, dport=6881, flags="S", seq=99)
    data = IP(src=A4, dst=B4, id=11) / TCP(sport=40000, dport=6881, flags="PA", seq=100) / msgs
    frames = [bytes(syn)] + [bytes(p) for p in fragment(data, fragsize=600)[::-1]]
    decoder = Decoder()
    for number, frame in enumerate(frames, 1):
        decoder.frame(number, float(number), 101, frame)
    decoder.finish(len(frames))
    assert len(frames) == 5
    assert {r.frame for r in decoder.out} == {5}  # the first fragment, captured last, completed it
    assert [type(r.event).__name__ for r in decoder.out][:2] == ["Handshake", "Interested"]
    assert sum(type(r.event).__name__ == "Interested" for r in decoder.out) == 400


def _convert(source: Path, target: Path, *, v6: bool, fragsize: int | None, count: int) -> dict[int, int]:
    """Rewrite a capture's first ``count`` Ethernet/IPv4 frames (as IPv6 if ``v6``), cut
    into fragments of ``fragsize`` when longer, every other packet's in reverse order.
    Returns each original frame number's new number: that of its last fragment written."""
    numbers: dict[int, int] = {}
    written = 0
    with RawPcapReader(str(source)) as reader, RawPcapWriter(str(target), linktype=1) as writer:
        writer.write_header(None)
        for number, (frame, meta) in enumerate(reader, 1):
            if number > count:
                break
            link, ip = frame[:12], frame[14:]
            if v6:
                ip4 = IP(ip)
                l4 = ip4.payload.copy()
                del l4.chksum
                link += b"\x86\xdd"
                hdr = IPv6(src="2001:db8::" + ip4.src.replace(".", ":"), dst="2001:db8::" + ip4.dst.replace(".", ":"))
                parts = fragment6(hdr / IPv6ExtHdrFragment(id=number) / l4, fragsize) if fragsize else [hdr / l4]
            else:
                link += b"\x08\x00"
                parts = fragment(IP(ip), fragsize=fragsize) if fragsize and len(ip) > 20 + fragsize else [ip]
            if number % 2:
                parts = parts[::-1]
            for part in parts:
                writer.write_packet(link + bytes(part), sec=meta.sec, usec=meta.usec)
            written += len(parts)
            numbers[number] = written
    return numbers


def _records(capture: Path) -> list[dict]:
    proc = run_btshark("read", capture, "-T", "jsonl")
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("name", ["libtorrent-utp.pcap", "aria2-to-libtorrent.pcap"])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_fragmented_real_conversation_decodes_as_the_unfragmented_one(tmp_path, name, v6):
    """The conversation's first 150 frames: handshakes, requests, the first pieces and haves."""
    source = CAPTURES / name
    plain, cut = tmp_path / "plain.pcap", tmp_path / "fragmented.pcap"
    _convert(source, plain, v6=v6, fragsize=None, count=150)
    numbers = _convert(source, cut, v6=v6, fragsize=512, count=150)
    assert numbers[150] > 300  # most packets were cut up
    want, got = _records(plain), _records(cut)
    assert len(want) > 30 and {r["type"] for r in want} >= {"handshake", "extended", "piece", "request", "have"}
    for record in want:
        record["frame"] = numbers[record["frame"]]
    assert got == want
