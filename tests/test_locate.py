"""Message bytes read back from the capture file (``CaptureDecode(locate=True)``,
``inspector.locate``): every message of the sample captures, reordered, retransmitted
and lost segments, uTP, pcapng and gzip, a capture that changed, another thread."""
from __future__ import annotations

import gzip
import os
import queue
import shutil
import struct
import threading
from pathlib import Path

import pytest

from conftest import (
    CAPTURES,
    TcpConversation,
    bt_extended,
    bt_handshake,
    bt_have,
    bt_msg,
    bt_piece,
    bt_request,
    capture_params,
    write_packets,
)
from inspector.parser import PeerWireParser
from inspector.pipeline import CaptureDecode

HASH = bytes(range(20))
PEER_A = b"-LT2110-aaaaaaaaaaaa"
PEER_B = b"-TR3000-bbbbbbbbbbbb"
TWINS = CAPTURES / "twins"


def located(path: Path | str, **kw) -> tuple[CaptureDecode, list]:
    """The decode and its (record, span) pairs, spans taken as each record comes out."""
    decode = CaptureDecode(str(path), locate=True, **kw)
    return decode, [(record, decode.span(record)) for record in decode]


def messages(pairs: list) -> list:
    return [(record, span) for record, span in pairs if record.event.type != "finding"]


def wire_size(event) -> int:
    return 68 if event.type == "handshake" else 4 + event.size


def parse_back(data: bytes, ext_names: dict[int, str] | None = None) -> list:
    """``data`` decoded on its own, payloads kept."""
    parser = PeerWireParser(handshake=data.startswith(b"\x13BitTorrent protocol"), keep_payload=True)
    parser.ext_names = dict(ext_names or {})
    return parser.feed(data) + parser.end()


# ---------------------------------------------------------------- the sample captures


@pytest.mark.parametrize("capture", capture_params(shared=False))
def test_every_message_of_a_sample_capture_reads_back(capture):
    kept = [r for r in CaptureDecode(str(capture), keep_payload=True) if r.event.type != "finding"]
    decode, pairs = located(capture)
    found = messages(pairs)
    assert [(r.side, r.frame, r.event) for r, _ in found] == [(r.side, r.frame, r.event) for r in kept]
    if capture.name == "libtorrent-mse.pcap":  # encrypted throughout: nothing to locate, nothing indexed
        assert not found and decode.locator.streams and not any(decode.locator.streams)
        return
    assert found
    for (record, span), keep in zip(found, kept):
        assert span is not None, record
        data = decode.locator.read(span)
        assert data is not None and len(data) == span[2] - span[1] == wire_size(record.event)
        (back,) = parse_back(data, record.session.parsers[record.side].ext_names)
        assert back == record.event
        if back.type == "piece":
            assert back.data is not None and back.data == keep.event.data
        frames = decode.locator.frames(span)
        assert frames[-1] == record.frame and len(set(frames)) == len(frames)


def test_locate_leaves_the_records_as_they_were():
    for capture in (CAPTURES / "aria2-to-libtorrent.pcap", TWINS / "aria2-to-libtorrent-lossy.pcap"):
        plain = [(r.session.id, r.side, r.frame, r.ts, r.event) for r in CaptureDecode(str(capture))]
        _, pairs = located(capture)
        assert [(r.session.id, r.side, r.frame, r.ts, r.event) for r, _ in pairs] == plain
        assert any(r.event.type == "finding" for r, _ in pairs) == ("lossy" in capture.name)


def test_span_answers_for_the_record_just_yielded_only():
    decode = CaptureDecode(str(CAPTURES / "aria2-to-libtorrent.pcap"), locate=True)
    records = iter(decode)
    first = next(records)
    assert decode.span(first) is not None
    next(records)
    with pytest.raises(ValueError):
        decode.span(first)
    plain = CaptureDecode(str(CAPTURES / "aria2-to-libtorrent.pcap"))
    with pytest.raises(ValueError):
        plain.span(next(iter(plain)))


@pytest.mark.parametrize("lossy", ["aria2-to-libtorrent-lossy.pcap", "libtorrent-to-libtorrent-snap128.pcap"])
def test_a_capture_with_losses_never_reads_back_wrong_bytes(lossy):
    """Each twin's lossless capture is the truth: a message located in the lossy one
    sits at the same stream offsets there, with the same bytes."""
    truth_name = lossy.replace("-lossy", "").replace("-snap128", "")
    truth, truth_pairs = located(TWINS / truth_name)
    true_bytes = {(r.side, span[1], span[2]): truth.locator.read(span) for r, span in messages(truth_pairs)}
    decode, pairs = located(TWINS / lossy)
    read_back = 0
    for record, span in messages(pairs):
        if span is None:
            continue
        truth_bytes = true_bytes[(record.side, span[1], span[2])]  # placed where the message truly is
        data = decode.locator.read(span)
        if data is not None:
            assert data == truth_bytes, record
            read_back += 1
    assert 0 < read_back < len(messages(pairs))


# ---------------------------------------------------------------- synthetic conversations


def exchange(conv: TcpConversation, mss: int | None = None) -> tuple[list[bytes], list[bytes]]:
    """A short exchange; returns each side's messages as sent."""
    sent: tuple[list[bytes], list[bytes]] = ([], [])

    def say(side: int, *wire: bytes) -> None:
        sent[side].extend(wire)
        conv.send(side, b"".join(wire), mss)

    say(0, bt_handshake(HASH, PEER_A))
    say(1, bt_handshake(HASH, PEER_B))
    say(0, bt_extended(0, {b"m": {b"ut_pex": 1}, b"v": b"libtorrent"}), bt_msg(2))
    say(1, bt_extended(0, {b"m": {b"ut_pex": 2}}), bt_msg(1))
    say(0, bt_request(3, 0, 5000))
    say(1, bt_piece(3, 0, bytes(range(250)) * 20), bt_have(3))
    say(0, bt_have(3), bt_msg(None))
    return sent


def assert_reads_back(path: Path, sent: tuple[list[bytes], list[bytes]]) -> tuple[CaptureDecode, list]:
    """Every message of ``path`` located, read back as sent, its last frame the record's;
    returns the decode and its (record, span) pairs."""
    decode, pairs = located(path)
    found = messages(pairs)
    for side in (0, 1):
        records = [(r, span) for r, span in found if r.side == side]
        assert [decode.locator.read(span) for _, span in records] == sent[side]
        for record, span in records:
            assert decode.locator.frames(span)[-1] == record.frame
    return decode, pairs


def layout(sent: list[bytes], start: int = 0) -> dict[tuple[int, int], bytes]:
    """Where each message sent lies in its stream: (start, end) -> its bytes."""
    places = {}
    for wire in sent:
        places[(start, start + len(wire))] = wire
        start += len(wire)
    return places


def test_out_of_order_segments_read_back_as_sent(tmp_path):
    conv = TcpConversation().open()
    sent = exchange(conv, mss=300)
    conv.close()
    head, tail, closing = conv.packets[:5], conv.packets[5:-3], conv.packets[-3:]
    shuffled = [p.copy() for p in tail[::-1]]  # after the handshakes, every data segment last first
    for pkt in shuffled:  # acknowledging only what was sent by the handshakes: no losses
        last = next(p for p in head[::-1] if p["IP"].src != pkt["IP"].src)
        pkt["TCP"].ack = (last["TCP"].seq + len(last["TCP"].payload)) & 0xFFFFFFFF
    decode, pairs = assert_reads_back(write_packets(tmp_path / "reversed.pcap", head + shuffled + closing), sent)
    piece = next(span for record, span in pairs if record.event.type == "piece")
    frames = decode.locator.frames(piece)
    assert len(frames) > 1 and frames != tuple(sorted(frames))  # carried by several frames, last first


@pytest.mark.parametrize("isn", [(1000, 900000), (2**32 - 60, 2**32 - 3000)], ids=["plain", "wrapping"])
def test_retransmissions_and_overlaps_read_back_the_first_copy(tmp_path, isn):
    conv = TcpConversation(isn=isn).open()
    sent = exchange(conv, mss=300)
    conv.close()
    data = conv.packets[5:-3]
    packets = conv.packets[:5]
    for i, pkt in enumerate(data):
        nxt = data[i + 1] if i + 1 < len(data) else None
        merged = None
        if i % 2 and nxt is not None and nxt["IP"].src == pkt["IP"].src:
            merged = pkt.copy()  # a re-segmented copy of this segment's tail and the next
            merged["TCP"].seq = (pkt["TCP"].seq + 5) & 0xFFFFFFFF
            merged["Raw"].load = pkt["Raw"].load[5:] + nxt["Raw"].load
        if i % 4 == 1 and merged is not None:  # captured first: it waits, and the segment fills in before it
            packets.append(merged)
        packets.append(pkt)
        if i % 4 == 3 and merged is not None:  # captured after: its head is old, its tail new
            packets.append(merged)
        if i % 3 == 0:  # a late copy with other bytes: the first copy wins
            late = pkt.copy()
            late["Raw"].load = bytes(b ^ 0xFF for b in pkt["Raw"].load)
            packets.append(late)
    assert_reads_back(write_packets(tmp_path / "dups.pcap", packets + conv.packets[-3:]), sent)


def test_the_bytes_read_back_are_those_the_parser_saw(tmp_path):
    """A piece whose first copy was damaged on the way: the decode and the bytes read
    back both hold the damaged copy, not the good one that came later."""
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(HASH, PEER_A))
    conv.send(1, bt_handshake(HASH, PEER_B))
    block = b"\x5a" * 3000
    (segment,) = conv.send(1, bt_piece(1, 0, block), mss=5000)
    damaged = segment.copy()
    damaged["Raw"].load = segment["Raw"].load[:100] + b"\x00" * 10 + segment["Raw"].load[110:]
    conv.close()
    packets = [damaged if p is segment else p for p in conv.packets]
    packets.insert(packets.index(damaged) + 1, segment)
    path = write_packets(tmp_path / "damaged.pcap", packets)
    kept = [r for r in CaptureDecode(str(path), keep_payload=True) if r.event.type == "piece"]
    decode, pairs = located(path)
    (span,) = [span for record, span in pairs if record.event.type == "piece"]
    data = decode.locator.read(span)
    assert data == damaged["Raw"].load and parse_back(data)[0].data == kept[0].event.data != block


def test_a_lost_segment_inside_a_piece_costs_that_piece_only(tmp_path):
    conv = TcpConversation().open()
    sent = exchange(conv, mss=1000)
    conv.close()
    piece = sent[1][3]
    start = sum(map(len, sent[1][:3]))  # the piece's stream offset, side b
    lost = next(p for p in conv.packets if p["IP"].src == "10.0.0.2" and p.haslayer("Raw")
                and (p["TCP"].seq - 900001) == start + 2000)
    path = conv.write(tmp_path / "hole.pcap", [p for p in conv.packets if p is not lost])
    decode, pairs = located(path)
    for record, span in messages(pairs):
        if record.event.type == "piece":
            assert span is None and record.event.missing == 1000
        else:
            assert decode.locator.read(span) in sent[record.side]
    assert len(piece) > 2000 + 1000


def test_a_malformed_message_between_others_misplaces_none(tmp_path):
    """A malformed message consumes bytes but reports none: the messages around it,
    read in the same segment, are placed from either end or not at all."""
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(HASH, PEER_A))
    conv.send(1, bt_handshake(HASH, PEER_B))
    wire = [bt_have(1), bt_have(2), struct.pack(">IB", 6, 4) + bytes(5), bt_have(3), bt_have(4)]
    conv.send(1, b"".join(wire))
    conv.close()
    decode, pairs = located(conv.write(tmp_path / "malformed.pcap"))
    assert [r.event.kind for r, _ in pairs if r.event.type == "finding"] == ["malformed"]
    places = layout(wire, start=68)
    spans = [span for r, span in messages(pairs) if r.side == 1 and r.event.type == "have"]
    assert len(spans) == 4 and [span[1:] for span in spans[2:]] == list(places)[3:]  # after it, from the end
    for span in spans:
        assert span is None or decode.locator.read(span) == places[span[1:]]


def test_after_a_lost_boundary_spans_are_none_or_right(tmp_path):
    """Segments of 7 bytes over 9-byte have messages: a lost one swallows a boundary and
    the parser hunts; what it finds again is placed right, or not at all."""
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(HASH, PEER_A))
    conv.send(1, bt_handshake(HASH, PEER_B))
    haves = [bt_have(i) for i in range(60)]
    segments = conv.send(1, b"".join(haves), mss=7)
    conv.close()
    lost = segments[20]
    decode, pairs = located(conv.write(tmp_path / "boundary.pcap", [p for p in conv.packets if p is not lost]))
    assert any(r.event.type == "finding" and r.event.kind == "resync" for r, _ in pairs)
    offsets = layout(haves, start=68)
    after = 0
    for record, span in messages(pairs):
        if record.side == 1 and record.event.type == "have" and span is not None:
            assert decode.locator.read(span) == offsets[span[1:]] == bt_have(record.event.index)
            after += span[1] > 7 * 21
    assert after > 30


def utp_packet(kind: int, cid: int, seq: int, ack: int, data: bytes = b"") -> bytes:
    return struct.pack(">BBHIIIHH", kind << 4 | 1, 0, cid, 1000, 10, 1 << 20, seq & 0xFFFF, ack & 0xFFFF) + data


def test_utp_messages_read_back_and_a_lost_packet_misplaces_none(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    syn, data, state = 4, 0, 2
    haves = [bt_have(i) for i in range(40)]
    grams = [(0, utp_packet(syn, 7, 100, 0)), (1, utp_packet(state, 7, 500, 100)),
             (0, utp_packet(data, 8, 101, 499, bt_handshake(HASH, PEER_A))),
             (1, utp_packet(data, 7, 500, 101, bt_handshake(HASH, PEER_B)))]
    # b's haves, two and a half to a packet: messages cross packet boundaries
    stream = b"".join(haves)
    for n, i in enumerate(range(0, len(stream), 22)):
        grams.append((1, utp_packet(data, 7, 501 + n, 101, stream[i : i + 22])))
    lost = grams.pop(4 + 5)
    packets = []
    for i, (side, payload) in enumerate(grams):
        src, dst = ("10.0.0.1", 6881), ("10.0.0.2", 51413)
        if side:
            src, dst = dst, src
        pkt = Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / payload
        pkt.time = 1_700_000_000 + i / 1000
        packets.append(pkt)
    decode, pairs = located(write_packets(tmp_path / "utp.pcap", packets))
    assert lost and decode.sessions[0].transport == "utp"
    placed = []
    for record, span in messages(pairs):
        if span is not None:
            data_back = decode.locator.read(span)
            if record.event.type == "handshake":
                assert data_back == (bt_handshake(HASH, PEER_A), bt_handshake(HASH, PEER_B))[record.side]
            else:
                assert data_back == bt_have(record.event.index)
                placed.append(record.event.index)
    assert placed and max(placed) == 39 and len(placed) < 40


def test_bytes_of_ip_fragments_are_not_taken_from_another_frame(tmp_path):
    """A uTP packet whose IP fragments after the first were lost comes out of the
    fragment buffer at the end of the capture, numbered as the last frame: a packet of
    the same size waiting behind it. Its messages must not be read from that frame."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    syn, data, state = 4, 0, 2
    first = b"".join(bt_have(i) for i in range(20))  # 180 bytes: its first 92 in the first fragment
    behind = b"".join(bt_have(100 + i) for i in range(11))[:92]
    a, b = ("10.0.0.1", 6881), ("10.0.0.2", 51413)

    def gram(side: int, payload: bytes):
        src, dst = (a, b) if side == 0 else (b, a)
        return Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / payload

    head = bytes(UDP(sport=b[1], dport=a[1], len=8 + 20 + len(first), chksum=0) / utp_packet(data, 7, 501, 101, first))
    fragment = Ether() / IP(src=b[0], dst=a[0], proto=17, id=42, flags="MF", frag=0) / Raw(head[:120])
    packets = [gram(0, utp_packet(syn, 7, 100, 0)), gram(1, utp_packet(state, 7, 500, 100)),
               gram(0, utp_packet(data, 8, 101, 499, bt_handshake(HASH, PEER_A))),
               gram(1, utp_packet(data, 7, 500, 101, bt_handshake(HASH, PEER_B))),
               fragment, gram(1, utp_packet(data, 7, 502, 101, behind))]
    for i, pkt in enumerate(packets):
        pkt.time = 1_700_000_000 + i / 1000
    decode, pairs = located(write_packets(tmp_path / "fragments.pcap", packets))
    haves = [(r.event.index, span) for r, span in messages(pairs) if r.event.type == "have"]
    assert [index for index, _ in haves][:10] == list(range(10))
    for index, span in haves:
        assert span is None or decode.locator.read(span) in (None, bt_have(index))


@pytest.mark.parametrize("variant", ["pcapng", "gzip", "pcapng-gzip", "raw-ip"])
def test_pcapng_gzip_and_raw_ip_captures_read_back(tmp_path, variant):
    from scapy.utils import wrpcapng

    conv = TcpConversation().open()
    sent = exchange(conv, mss=500)
    conv.close()
    packets = [p["IP"] for p in conv.packets] if variant == "raw-ip" else conv.packets
    path = tmp_path / "capture"
    if variant.startswith("pcapng"):
        wrpcapng(str(path), packets)
    else:
        write_packets(path, packets)
    if variant.endswith("gzip"):
        path.write_bytes(gzip.compress(path.read_bytes()))
    decode, _ = assert_reads_back(path, sent)
    assert decode.locator.compressed == variant.endswith("gzip")


# ---------------------------------------------------------------- reading later, elsewhere


def test_a_changed_or_vanished_capture_reads_back_nothing(tmp_path):
    path = tmp_path / "copy.pcap"
    shutil.copyfile(CAPTURES / "aria2-to-libtorrent.pcap", path)
    decode, pairs = located(path)
    span = messages(pairs)[5][1]
    assert decode.locator.read(span) is not None
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert decode.locator.read(span) is None
    path.unlink()
    assert decode.locator.read(span) is None


def test_reads_from_another_thread_while_decoding():
    decode = CaptureDecode(str(CAPTURES / "transmission-to-libtorrent.pcap"), locate=True)
    spans: queue.Queue = queue.Queue()
    read: list[tuple[tuple[int, int, int], bytes | None]] = []

    def reader() -> None:
        while (span := spans.get()) is not None:
            read.append((span, decode.locator.read(span)))

    worker = threading.Thread(target=reader)
    worker.start()
    for record in decode:
        span = decode.span(record)
        if span is not None:
            spans.put(span)
    spans.put(None)
    worker.join(timeout=60)
    assert not worker.is_alive() and len(read) > 100
    assert all(data is not None and data == decode.locator.read(span) for span, data in read)
