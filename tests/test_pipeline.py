"""The pipeline on synthetic captures: scapy-built conversations written with wrpcap
and decoded through ``CaptureDecode`` -- detection, flows, reassembly, sessions."""
from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from conftest import (
    TcpConversation,
    bt_extended,
    bt_handshake,
    bt_have,
    bt_msg,
    bt_piece,
    bt_request,
    decode_capture,
    read_jsonl,
    read_sessions,
    write_packets,
)
from inspector import events as ev
from inspector import pipeline
from inspector.limits import Limits

HASH = bytes(range(20))
PEER_A = b"-LT2110-aaaaaaaaaaaa"
PEER_B = b"-TR3000-bbbbbbbbbbbb"
BAD_FINDINGS = {"malformed", "bad_protocol", "oversize", "bad_bencode"}


def talk(conv: TcpConversation, *, block: bytes = b"\xab" * 5000, mss: int | None = None) -> TcpConversation:
    """A short but complete exchange: handshakes, extension handshakes, a request and its piece."""
    conv.send(0, bt_handshake(HASH, PEER_A), mss)
    conv.send(1, bt_handshake(HASH, PEER_B), mss)
    conv.send(0, bt_extended(0, {b"m": {b"ut_pex": 1}, b"v": b"libtorrent"}) + bt_msg(2), mss)
    conv.send(1, bt_extended(0, {b"m": {b"ut_pex": 2}}) + bt_msg(1), mss)
    conv.send(0, bt_request(3, 0, len(block)), mss)
    conv.send(1, bt_piece(3, 0, block) + bt_have(3), mss)
    conv.send(0, bt_have(3) + bt_msg(None), mss)
    return conv


TALK_TYPES = [
    (0, "handshake"), (1, "handshake"), (0, "extended"), (0, "interested"), (1, "extended"), (1, "unchoke"),
    (0, "request"), (1, "piece"), (1, "have"), (0, "have"), (0, "keepalive"),
]


def types(messages) -> list[tuple[int, str]]:
    return [(r.side, r.event.type) for r in messages]


def events(messages) -> list[tuple[int, object]]:
    return [(r.side, r.event) for r in messages]


def kinds(findings) -> list[str]:
    return [r.event.kind for r in findings]


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize("port", [443, 2, 80, 51413])
def test_bittorrent_recognised_by_its_handshake_on_any_port(tmp_path, port):
    conv = talk(TcpConversation(b=("10.0.0.2", port)).open()).close()
    messages, findings, sessions = decode_capture(conv.write(tmp_path / "bt.pcap"))
    assert types(messages) == TALK_TYPES
    assert findings == []
    (s,) = sessions
    assert (s.transport, s.sides[0].addr, s.sides[1].addr) == ("tcp", "10.0.0.1:40000", f"10.0.0.2:{port}")
    assert s.opener_known and not s.encrypted and s.state == "closed"
    assert s.sides[0].peer_id == PEER_A and s.sides[1].peer_id == PEER_B and s.info_hash == HASH
    hs = messages[1].event
    assert isinstance(hs, ev.Handshake) and hs.info_hash == HASH and hs.peer_id == PEER_B
    piece = next(r.event for r in messages if r.event.type == "piece")
    assert (piece.index, piece.begin, piece.length, piece.missing) == (3, 0, 5000, 0)
    assert s.sides[1].payload_bytes == 5000


@pytest.mark.parametrize("long", [True, False], ids=["long", "short"])
def test_http_is_not_bittorrent(tmp_path, long):
    conv = TcpConversation(b=("10.0.0.2", 6881)).open()
    request = b"GET /announce?info_hash=%00 HTTP/1.1\r\nHost: tracker\r\n\r\n"
    conv.send(0, request * (3 if long else 1))
    conv.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nd5:peerse" + (b" " * 200 if long else b""))
    conv.close()
    messages, findings, sessions = decode_capture(conv.write(tmp_path / "http.pcap"))
    assert (messages, findings, sessions) == ([], [], [])


def test_tls_is_not_taken_for_mse(tmp_path):
    rng = random.Random(3)
    conv = TcpConversation(b=("10.0.0.2", 443)).open()
    conv.send(0, b"\x16\x03\x01\x02\x00" + rng.randbytes(300))
    conv.send(1, b"\x16\x03\x03\x00\x7a" + rng.randbytes(200))
    conv.close()
    assert decode_capture(conv.write(tmp_path / "tls.pcap")) == ([], [], [])


def test_random_bytes_after_syn_are_an_encrypted_session(tmp_path):
    rng = random.Random(1)
    conv = TcpConversation().open()
    conv.send(0, rng.randbytes(200))
    conv.send(1, rng.randbytes(180))
    conv.send(0, rng.randbytes(3000))
    conv.close()
    messages, findings, sessions = decode_capture(conv.write(tmp_path / "mse.pcap"))
    assert messages == []
    assert not set(kinds(findings)) & BAD_FINDINGS
    (s,) = sessions
    assert s.encrypted and s.state == "closed" and s.info_hash is None
    assert not {f.kind for f in s.findings} & BAD_FINDINGS
    assert (s.sides[0].stream_bytes, s.sides[1].stream_bytes) == (3200, 180)
    assert s.sides[0].messages == {} and s.sides[1].messages == {}


# ---------------------------------------------------------------- connections and their ends


@pytest.mark.parametrize("second_isn", [(5_000_000, 7_000_000), (10, 20), (1000, 900000)],
                         ids=["later-isn", "earlier-isn", "same-isn"])
def test_four_tuple_reused_after_fin_is_a_new_session(tmp_path, second_isn):
    first = TcpConversation().open()
    first.send(0, bt_handshake(HASH, PEER_A))
    first.send(1, bt_handshake(HASH, PEER_B) + bt_msg(1))
    first.close()
    second = TcpConversation(isn=second_isn, t0=first.t + 1.0).open()
    second.send(0, bt_handshake(HASH, b"-LT2110-cccccccccccc"))
    second.send(1, bt_handshake(HASH, b"-TR3000-dddddddddddd") + bt_msg(0))
    second.close()
    messages, findings, sessions = decode_capture(write_packets(tmp_path / "reuse.pcap",
                                                                first.packets + second.packets))
    assert findings == []
    assert [s.state for s in sessions] == ["closed", "closed"]
    assert [(s.sides[0].peer_id, s.sides[1].peer_id) for s in sessions] == [
        (PEER_A, PEER_B), (b"-LT2110-cccccccccccc", b"-TR3000-dddddddddddd")]
    assert [(r.session.id, r.side, r.event.type) for r in messages] == [
        (1, 0, "handshake"), (1, 1, "handshake"), (1, 1, "unchoke"),
        (2, 0, "handshake"), (2, 1, "handshake"), (2, 1, "choke")]
    assert all(s.sides[0].addr == "10.0.0.1:40000" for s in sessions)


@pytest.mark.parametrize("ending,state", [("fin", "closed"), ("rst-a", "reset"), ("rst-b", "reset"),
                                          ("nothing", "open")])
def test_how_a_connection_ends_is_its_state(tmp_path, ending, state):
    conv = talk(TcpConversation().open())
    if ending == "fin":
        conv.close()
    elif ending.startswith("rst"):
        conv.rst(0 if ending == "rst-a" else 1)
    messages, findings, sessions = decode_capture(conv.write(tmp_path / "end.pcap"))
    assert types(messages) == TALK_TYPES
    assert [s.state for s in sessions] == [state]


def test_messages_after_a_reset_are_not_part_of_the_session(tmp_path):
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(HASH, PEER_A))
    conv.send(1, bt_handshake(HASH, PEER_B))
    conv.rst(1)
    conv.send(0, bt_msg(2))  # late data on the dead connection
    messages, _, sessions = decode_capture(conv.write(tmp_path / "rst.pcap"))
    assert types(messages) == [(0, "handshake"), (1, "handshake")]
    assert [s.state for s in sessions] == ["reset"]


# ---------------------------------------------------------------- reassembly


WRAPPING = (2**32 - 60, 2**32 - 3000)  # both sides' sequence numbers wrap past 2**32 mid-stream


def _in_order_events(tmp_path, **kw):
    conv = talk(TcpConversation(**kw).open(), mss=700).close()
    messages, findings, _ = decode_capture(conv.write(tmp_path / "in-order.pcap"))
    assert types(messages) == TALK_TYPES and findings == []
    return conv, events(messages)


@pytest.mark.parametrize("isn", [(1000, 900000), WRAPPING], ids=["plain", "wrapping"])
def test_out_of_order_segments_are_decoded_in_order(tmp_path, isn):
    conv, expected = _in_order_events(tmp_path, isn=isn)
    handshake_done = 5  # SYN, SYN-ACK, ACK, two handshakes: the rest is shuffled
    head, tail, closing = conv.packets[:handshake_done], conv.packets[handshake_done:-3], conv.packets[-3:]
    shuffled = [p.copy() for p in tail[::-1]]  # every data segment after the handshakes, last first
    # Reordered on the way, the segments reach each end out of order, so the ACKs an
    # end sends cannot cover bytes not yet captured (those would be losses, see
    # test_messages_after_a_hole_keep_the_frame_that_completed_them): each
    # acknowledges what the other side had sent by the end of the handshakes.
    for pkt in shuffled:
        last = next(p for p in head[::-1] if p["IP"].src != pkt["IP"].src)
        pkt["TCP"].ack = (last["TCP"].seq + len(last["TCP"].payload)) & 0xFFFFFFFF
    messages, findings, sessions = decode_capture(write_packets(tmp_path / "reversed.pcap",
                                                                head + shuffled + closing))
    for side in (0, 1):  # each side's messages in its stream's order (the sides interleave by arrival)
        assert [e for d, e in events(messages) if d == side] == [e for d, e in expected if d == side]
    # Reversed, b's stream is whole (and decoded) before a's: b's piece comes out before a's request,
    # still held behind a's missing segments. The piece answers what is not read yet, so the
    # conformance checks, which see a's stream held up, say nothing of it.
    assert [r for r in messages if r.event.type == "piece"] and findings == []
    assert sessions[0].state == "closed"
    # Each message keeps the frame that carried its last byte, though the bytes before
    # it arrived later: stream ends of each side's segments, with their frame numbers.
    captured = [(n, p) for n, p in enumerate(head, 1)] + [
        (handshake_done + len(tail) - i, p) for i, p in enumerate(tail)]
    for side, addr in enumerate(("10.0.0.1", "10.0.0.2")):
        ends, end = [], 0
        for number, p in ((n, p) for n, p in captured if p["IP"].src == addr and p.haslayer("Raw")):
            end += len(p["Raw"].load)
            ends.append((end, number))
        offset = 0
        for record in (r for r in messages if r.side == side):
            offset += 68 if record.event.type == "handshake" else 4 + record.event.size
            assert record.frame == next(number for end, number in ends if end >= offset), record
    assert any(b.frame < a.frame for a, b in zip(messages, messages[1:]))  # decoded late, stamped early


def test_handshake_segments_out_of_order(tmp_path):
    conv = TcpConversation().open()
    first, second = conv.send(0, bt_handshake(HASH, PEER_A), mss=30)[:2]
    conv.packets[3], conv.packets[4] = second, first
    conv.send(1, bt_handshake(HASH, PEER_B))
    conv.close()
    messages, findings, sessions = decode_capture(conv.write(tmp_path / "hs.pcap"))
    assert types(messages) == [(0, "handshake"), (1, "handshake")]
    assert messages[0].event.peer_id == PEER_A and findings == [] and len(sessions) == 1


@pytest.mark.parametrize("isn", [(1000, 900000), WRAPPING], ids=["plain", "wrapping"])
def test_retransmissions_and_overlaps_add_nothing(tmp_path, isn):
    conv, expected = _in_order_events(tmp_path, isn=isn)
    data = conv.packets[5:-3]
    packets = conv.packets[:5]
    for i, pkt in enumerate(data):
        nxt = data[i + 1] if i + 1 < len(data) else None
        if i % 2 and nxt is not None and nxt["IP"].src == pkt["IP"].src:
            # a re-segmented copy of this segment's tail and all of the next, captured first
            merged = pkt.copy()
            merged["TCP"].seq = (pkt["TCP"].seq + 5) & 0xFFFFFFFF
            merged["Raw"].load = pkt["Raw"].load[5:] + nxt["Raw"].load
            packets.append(merged)
        packets.append(pkt)
        if i % 3 == 0:
            packets.append(pkt.copy())  # an exact retransmission
    assert len(packets) > len(conv.packets) - 3 + 5
    messages, findings, _ = decode_capture(write_packets(tmp_path / "dups.pcap", packets + conv.packets[-3:]))
    assert events(messages) == expected and findings == []


def test_sequence_numbers_wrap_modulo_2_32(tmp_path):
    _, expected = _in_order_events(tmp_path)
    _, wrapped = _in_order_events(tmp_path, isn=WRAPPING)
    assert wrapped == expected


def _piece_with_hole(tmp_path) -> Path:
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(HASH, PEER_A))
    conv.send(1, bt_handshake(HASH, PEER_B))
    conv.send(0, bt_request(7, 16384, 8000))
    segments = conv.send(1, bt_piece(7, 16384, b"\x5a" * 8000) + bt_have(7) + bt_msg(1), mss=1000)
    conv.send(0, bt_msg(2))
    conv.close()
    lost = segments[3]  # stream bytes 3000..3999 of the piece message: inside its payload
    return conv.write(tmp_path / "hole.pcap", [p for p in conv.packets if p is not lost])


def test_segment_missing_inside_a_piece_is_a_hole_and_decoding_goes_on(tmp_path):
    messages, findings, sessions = decode_capture(_piece_with_hole(tmp_path))
    assert types(messages) == [(0, "handshake"), (1, "handshake"), (0, "request"), (0, "interested"),
                               (1, "piece"), (1, "have"), (1, "unchoke")]
    piece = messages[4].event
    assert (piece.index, piece.begin, piece.length, piece.missing) == (7, 16384, 8000, 1000)
    assert messages[5].event == ev.Have(7)
    # a asks before b ever unchoked it (b's unchoke comes after the piece): a finding of its own.
    assert [(r.side, r.event.kind) for r in findings] == [(0, "request_while_choked"), (1, "hole")]
    assert findings[0].frame == messages[2].frame
    (s,) = sessions
    assert [(f.kind, f.side) for f in s.findings] == [("request_while_choked", "a"), ("hole", "b")]
    assert s.sides[1].payload_bytes == 8000


def test_hole_is_listed_in_sessions_output(tmp_path):
    capture = _piece_with_hole(tmp_path)
    (s,) = read_sessions(capture)
    # a's request before b's unchoke is a finding too (see the test above).
    assert [(f["kind"], f["side"]) for f in s["findings"]] == [("request_while_choked", "a"), ("hole", "b")]
    assert "1000" in s["findings"][1]["detail"]
    assert s["messages"]["b"] == {"handshake": 1, "have": 1, "piece": 1, "unchoke": 1}


def test_hole_in_an_encrypted_session_is_noted_where_the_peer_acknowledged_it(tmp_path):
    rng = random.Random(1)
    conv = TcpConversation().open()
    conv.send(0, rng.randbytes(200))
    conv.send(1, rng.randbytes(180))
    segments = conv.send(0, rng.randbytes(3000), mss=1000)
    conv.close()  # b's FIN (frame 9 once the segment is gone) acknowledges all of a's bytes
    _, _, sessions = decode_capture(conv.write(tmp_path / "mse.pcap", [p for p in conv.packets
                                                                      if p is not segments[1]]))
    (s,) = sessions
    assert s.encrypted and s.sides[0].stream_bytes == 2200
    assert [(f.kind, f.side, f.frame, f.detail) for f in s.findings] == [("hole", "a", 9, "1000 bytes not captured")]


def test_hole_while_the_first_bytes_are_still_being_recognised(tmp_path):
    conv = TcpConversation().open()
    segments = conv.send(0, bt_handshake(HASH, PEER_A), mss=20)  # frames 4..7
    conv.send(1, bt_handshake(HASH, PEER_B))
    conv.send(0, bt_msg(2))
    conv.close()
    messages, _, sessions = decode_capture(conv.write(tmp_path / "probe.pcap", [p for p in conv.packets
                                                                               if p is not segments[1]]))
    (s,) = sessions
    assert [(f.kind, f.side, f.frame, f.detail) for f in s.findings] == [
        ("hole", "a", 7, "20 bytes not captured inside the handshake; framing kept")]
    assert types(messages) == [(1, "handshake"), (0, "interested")]


@pytest.mark.parametrize("start", ["first-data", "syn-ack"])
def test_capture_starting_mid_connection(tmp_path, start):
    conv = talk(TcpConversation().open()).close()
    skip = 3 if start == "first-data" else 1
    messages, findings, sessions = decode_capture(conv.write(tmp_path / "mid.pcap", conv.packets[skip:]))
    assert types(messages) == TALK_TYPES
    (s,) = sessions
    assert (s.sides[0].addr, s.sides[1].addr) == ("10.0.0.1:40000", "10.0.0.2:6881")
    if start == "first-data":
        assert s.opener_known is False
        assert [f.kind for f in s.findings] == ["midstream"]
    else:  # the SYN-ACK names the opener: the side it is sent to
        assert s.opener_known is True and s.findings == []


def test_capture_starting_mid_stream_after_the_handshakes(tmp_path):
    """No SYN, no handshake: the flow is decoded on trial and shown once each direction's
    messages are found (here from their first byte), saying its start was not captured."""
    conv = talk(TcpConversation().open()).close()
    after_handshakes = conv.packets[5:]
    messages, findings, sessions = decode_capture(conv.write(tmp_path / "late.pcap", after_handshakes))
    assert types(messages) == TALK_TYPES[2:]
    assert [r.event.kind for r in findings] == ["resync", "resync"]
    (s,) = sessions
    assert not s.opener_known and [f.kind for f in s.findings][0] == "midstream"


def test_mid_stream_junk_is_not_a_session(tmp_path):
    """A connection joined late that never shows a run of messages stays unshown."""
    conv = TcpConversation().open()
    for _ in range(40):
        conv.send(0, random.Random(7).randbytes(1400))
        conv.send(1, random.Random(8).randbytes(700))
    assert decode_capture(conv.write(tmp_path / "junk.pcap", conv.packets[3:])) == ([], [], [])


def test_ipv6_addresses_in_brackets(tmp_path):
    conv = talk(TcpConversation(a=("2001:db8:0:0::1", 40000), b=("fe80::2", 6881)).open()).close()
    capture = conv.write(tmp_path / "v6.pcap")
    records = read_jsonl(capture)
    assert [r["type"] for r in records] == [t for _, t in TALK_TYPES]
    assert {(r["src"], r["dst"]) for r in records} == {("[2001:db8::1]:40000", "[fe80::2]:6881"),
                                                      ("[fe80::2]:6881", "[2001:db8::1]:40000")}
    (s,) = read_sessions(capture)
    assert (s["a"], s["b"]) == ("[2001:db8::1]:40000", "[fe80::2]:6881")


# ---------------------------------------------------------------- uTP


def utp(kind: int, cid: int, seq: int, ack: int, data: bytes = b"", sack: bool = False) -> bytes:
    """A BEP 29 packet: type<<4|1, extension, connection_id, timestamps, wnd_size, seq_nr, ack_nr."""
    ext = b"\x00\x04\x01\x00\x00\x00" if sack else b""
    return struct.pack(">BBHIIIHH", kind << 4 | 1, 1 if sack else 0, cid & 0xFFFF, 1000, 10, 1 << 20, seq & 0xFFFF, ack & 0xFFFF) + ext + data


def udp_packets(datagrams, a=("10.0.0.1", 6881), b=("10.0.0.2", 51413), t0=1_700_000_000.0):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    out = []
    for i, (side, payload) in enumerate(datagrams):
        src, dst = (a, b) if side == 0 else (b, a)
        pkt = Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / Raw(payload)
        pkt.time = t0 + i * 0.001
        out.append(pkt)
    return out


ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN = range(5)


def utp_conversation(x: int = 0xFFFF, s: int = 65534, r: int = 500, syn: bool = True) -> list:
    """Opener sends with X+1 (SYN with X), the other side with X; seq_nrs wrap on purpose.

    The responder's handshake comes in two packets, the second captured first: only
    the STATE answering the SYN says where the responder's stream starts.
    """
    y = (x + 1) & 0xFFFF
    block = bytes(range(256)) * 12
    piece = bt_piece(1, 0, block)
    hs_b = bt_handshake(HASH, PEER_B)
    grams = [
        (0, utp(ST_SYN, x, s, 0)),
        (1, utp(ST_STATE, x, r, s)),
        (0, utp(ST_DATA, y, s + 1, r - 1, bt_handshake(HASH, PEER_A))),
        (1, utp(ST_DATA, x, r + 1, s + 1, hs_b[30:])),
        (1, utp(ST_DATA, x, r, s + 1, hs_b[:30])),
        (0, utp(ST_DATA, y, s + 2, r + 1, bt_msg(2), sack=True)),
        (1, utp(ST_DATA, x, r + 2, s + 2, bt_msg(1))),
        (0, utp(ST_DATA, y, s + 3, r + 2, bt_request(1, 0, len(block)))),
        # the piece in two packets, the second captured first
        (1, utp(ST_DATA, x, r + 4, s + 3, piece[1000:])),
        (1, utp(ST_DATA, x, r + 3, s + 3, piece[:1000])),
        (0, utp(ST_STATE, y, s + 4, r + 4)),
        (0, utp(ST_FIN, y, s + 4, r + 4)),
        (1, utp(ST_FIN, x, r + 5, s + 4)),
    ]
    if not syn:
        grams = [grams[2], grams[4], grams[3], *grams[5:]]  # no SYN, no STATE; b's handshake in order
    return udp_packets(grams)


def test_utp_connection_is_a_utp_session(tmp_path):
    messages, findings, sessions = decode_capture(write_packets(tmp_path / "utp.pcap", utp_conversation()))
    assert types(messages) == [(0, "handshake"), (1, "handshake"), (0, "interested"), (1, "unchoke"),
                               (0, "request"), (1, "piece")]
    assert findings == []
    (s,) = sessions
    assert (s.transport, s.sides[0].addr, s.sides[1].addr) == ("utp", "10.0.0.1:6881", "10.0.0.2:51413")
    assert s.opener_known and s.state == "closed"
    piece = messages[-1].event
    assert (piece.index, piece.begin, piece.length, piece.missing) == (1, 0, 3072, 0)


def test_utp_without_its_syn(tmp_path):
    messages, _, sessions = decode_capture(write_packets(tmp_path / "utp-mid.pcap", utp_conversation(syn=False)))
    assert [t for _, t in types(messages)] == ["handshake", "handshake", "interested", "unchoke", "request", "piece"]
    (s,) = sessions
    assert s.transport == "utp" and s.opener_known is False


def test_utp_session_in_jsonl(tmp_path):
    records = read_jsonl(write_packets(tmp_path / "utp.pcap", utp_conversation(x=1234, s=10, r=65535)))
    assert {r["transport"] for r in records} == {"utp"}
    assert [r["type"] for r in records] == ["handshake", "handshake", "interested", "unchoke", "request", "piece"]


@pytest.mark.parametrize("side,cid", [
    (0, 0x0000), (0, 0xFFFF), (1, 0xFFFF), (1, 0x0000)],
    ids=["opener-own-id", "opener-other-id", "responder-own-id", "responder-other-id"])
def test_utp_reset_sets_state_reset(tmp_path, side, cid):
    """X = 0xFFFF: the opener sends with X+1 = 0, the responder with X; a reset may carry either."""
    packets = utp_conversation(x=0xFFFF)[:-2]  # no FINs
    reset = udp_packets([(side, utp(ST_RESET, cid, 77, 0))], t0=packets[-1].time + 0.01)
    messages, _, sessions = decode_capture(write_packets(tmp_path / "reset.pcap", packets + reset))
    assert len(messages) == 6
    assert [s.state for s in sessions] == ["reset"]


def test_other_udp_is_ignored(tmp_path):
    dht = b"d1:ad2:id20:" + b"x" * 20 + b"e1:q4:ping1:t2:aa1:y1:qe"
    packets = udp_packets([(0, dht), (1, dht), (0, bytes(40)), (1, b"\x01" * 25)])
    assert decode_capture(write_packets(tmp_path / "udp.pcap", packets)) == ([], [], [])


# ---------------------------------------------------------------- idle flows


def _idle_capture(tmp_path) -> Path:
    quiet = TcpConversation()
    quiet.open().send(0, bt_handshake(HASH, PEER_A))
    quiet.send(1, bt_handshake(HASH, PEER_B))  # ... and then nothing, for 1000 s
    later = TcpConversation(a=("10.0.0.3", 40001), t0=quiet.t + pipeline.IDLE_TIMEOUT + 400)
    talk(later.open())
    return write_packets(tmp_path / "idle.pcap", quiet.packets + later.packets)


def test_idle_flow_is_evicted(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "SWEEP_EVERY", 4)
    messages, _, sessions = decode_capture(_idle_capture(tmp_path))
    assert [s.state for s in sessions] == ["idle", "open"]
    assert sessions[0].end < sessions[1].start
    assert len(messages) == 2 + len(TALK_TYPES)


def test_flows_are_not_evicted_before_a_sweep(tmp_path):
    assert pipeline.SWEEP_EVERY > 100
    _, _, sessions = decode_capture(_idle_capture(tmp_path))
    assert [s.state for s in sessions] == ["open", "open"]


def test_recent_flow_is_not_evicted(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "SWEEP_EVERY", 2)
    conv = talk(TcpConversation(dt=pipeline.IDLE_TIMEOUT / 20).open())
    _, _, sessions = decode_capture(conv.write(tmp_path / "slow.pcap"))
    assert [s.state for s in sessions] == ["open"]


@pytest.mark.parametrize("name", ["aria2-to-libtorrent.pcap", "libtorrent-utp.pcap"])
def test_records_stream_out_with_the_frame_that_completed_them(name):
    """Records are yielded as their frame is read, not held back: memory stays flat
    however long the capture, and live sniffing can show them as they happen."""
    decode = pipeline.CaptureDecode(str(Path(__file__).resolve().parent.parent / "captures" / name))
    seen = 0
    for record in decode:
        if record.event.type == "finding":
            continue
        assert decode.capture.frame_count == record.frame, record
        seen += 1
    assert seen > 100


def _feed(decoder: pipeline.Decoder, packets) -> None:
    for number, pkt in enumerate(packets, 1):
        decoder.frame(number, float(pkt.time), 1, bytes(pkt))


def test_full_flow_table_evicts_the_least_recently_active_tcp_flow():
    decoder = pipeline.Decoder(limits=Limits(flows=2))
    for i in range(5):
        conv = TcpConversation(a=(f"10.0.1.{i + 1}", 40000 + i), t0=1_700_000_000.0 + i)
        conv.open().send(0, bt_handshake(HASH, PEER_A))
        _feed(decoder, conv.packets)
        assert decoder.flow_count <= 2 and len(decoder.flows) <= 2 * 2
    assert [s.state for s in decoder.sessions] == ["evicted"] * 3 + ["open"] * 2


def test_full_flow_table_bounds_utp_flows_too():
    decoder = pipeline.Decoder(limits=Limits(flows=2))
    for i in range(50):
        _feed(decoder, udp_packets([(0, utp(ST_SYN, 100 + i, 1, 0)), (0, utp(ST_DATA, 101 + i, 2, 0, bt_handshake(HASH, PEER_A)))],
                                   a=("10.0.2.1", 30000 + i)))
        # A uTP connection goes by three ids.
        assert decoder.flow_count <= 2 and len(decoder.flows) <= 3 * 2
    assert len(decoder.sessions) == 50
    assert {s.state for s in decoder.sessions[:-2]} == {"evicted"}


def _lossy_transfer(tmp_path) -> tuple[Path, list, object]:
    """Side b sends a piece then 30 haves in 500-byte segments; side a ACKs every
    two segments, as receivers do. One segment inside the piece is not captured,
    though a's next ACK acknowledges it. Returns the capture, the packets written
    and the ACK that is the first to reveal the loss."""
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(HASH, PEER_A))
    conv.send(1, bt_handshake(HASH, PEER_B))
    data = bt_piece(3, 0, b"\x5a" * 5000) + b"".join(bt_have(i) for i in range(30)) + bt_msg(1)
    segments = []
    for n, i in enumerate(range(0, len(data), 500)):
        segments.append(conv.packet(1, "PA", data[i:i + 500]))
        if n % 2:
            conv.packet(0, "A")
    conv.close()
    lost = segments[2]  # stream bytes 1068..1567 of b: inside the piece's payload
    packets = [p for p in conv.packets if p is not lost]
    after = packets.index(segments[3])
    revealing = next(p for p in packets[after:] if p["IP"].src == "10.0.0.1")
    return conv.write(tmp_path / "lossy.pcap", packets), packets, revealing


def test_messages_after_a_hole_keep_the_frame_that_completed_them(tmp_path):
    capture, packets, revealing = _lossy_transfer(tmp_path)
    messages, findings, sessions = decode_capture(capture)
    isn = packets[1]["TCP"].seq + 1  # b's first stream byte
    # b's captured segments: where each ends in b's stream, and its frame number
    ends = [((p["TCP"].seq - isn) % 2**32 + len(p["Raw"].load), n, round(float(p.time), 6))
            for n, p in enumerate(packets, 1) if p["IP"].src == "10.0.0.2" and p.haslayer("Raw")]
    offset, checked = 0, 0
    for record in (r for r in messages if r.side == 1):
        offset += 68 if record.event.type == "handshake" else 4 + record.event.size
        frame, ts = next((n, t) for end, n, t in ends if end >= offset)
        assert (record.frame, round(record.ts, 6)) == (frame, ts), record
        checked += 1
    assert checked == 33  # handshake, piece, 30 haves, unchoke
    piece = next(r.event for r in messages if r.event.type == "piece")
    assert (piece.index, piece.length, piece.missing) == (3, 5000, 500)
    # The hole is declared at the ACK that covers it, not at the end of the capture.
    revealed = packets.index(revealing) + 1
    (hole,) = findings
    assert (hole.event.kind, hole.side, hole.frame) == ("hole", 1, revealed)
    assert revealed < len(packets) - 3
    assert sessions[0].state == "closed" and [f.kind for f in sessions[0].findings] == ["hole"]


def test_lossy_transfer_streams_every_record_with_its_frame(tmp_path):
    """With the hole declared at the ACK that reveals it, nothing waits for the end
    of the capture: each record comes out of ``CaptureDecode`` as its frame is read."""
    capture, packets, revealing = _lossy_transfer(tmp_path)
    decode = pipeline.CaptureDecode(str(capture))
    seen = [(decode.capture.frame_count, r.frame, r.event.type) for r in decode]
    assert len(seen) == 35 and all(read == frame for read, frame, _ in seen), seen
    assert [frame for _, frame, kind in seen if kind == "finding"] == [packets.index(revealing) + 1]


def test_utp_loss_is_declared_at_the_state_that_acknowledges_it(tmp_path):
    x, y, s, r = 300, 301, 10, 500
    grams = [
        (0, utp(ST_SYN, x, s, 0)),
        (1, utp(ST_STATE, x, r, s)),
        (0, utp(ST_DATA, y, s + 1, r - 1, bt_handshake(HASH, PEER_A))),
        (1, utp(ST_DATA, x, r, s + 1, bt_handshake(HASH, PEER_B))),
        (1, utp(ST_DATA, x, r + 1, s + 1, bt_have(0))),  # not captured
        (1, utp(ST_DATA, x, r + 2, s + 1, bt_have(1))),
        (0, utp(ST_STATE, y, s + 2, r + 2)),  # a received r + 1: it was lost by the capture
        (0, utp(ST_FIN, y, s + 2, r + 2)),
        (1, utp(ST_FIN, x, r + 3, s + 2)),
    ]
    packets = udp_packets(grams)
    del packets[4]
    messages, findings, sessions = decode_capture(write_packets(tmp_path / "utp-lossy.pcap", packets))
    assert [(r.side, r.event.type, r.frame) for r in messages] == [(0, "handshake", 3), (1, "handshake", 4)]
    # have(1) alone after the loss cannot be told from payload: said, not guessed
    assert [(r.side, r.event.kind, r.frame) for r in findings] == [(1, "hole", 6), (1, "resync", 8)]
    assert sessions[0].state == "closed"


def test_a_loss_resolved_only_at_the_close_keeps_each_message_s_frame(tmp_path):
    """Found in review: when the end of a connection is what confirms a resync, the
    messages held since the loss come out with the frames that carried them."""
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(HASH, PEER_A))
    conv.send(1, bt_handshake(HASH, PEER_B))
    conv.send(0, bt_msg(2))
    lost = conv.send(0, b"\x00\x00\x00\x05\x04\x00")[0]  # a have cut short: the framing goes with it
    have_at = conv.send(0, b"\x00\x01" + bt_have(3))[0]
    unchoke_at = conv.send(0, bt_msg(1))[0]
    conv.packet(1, "A")
    conv.close()
    packets = [p for p in conv.packets if p is not lost]
    messages, findings, _ = decode_capture(conv.write(tmp_path / "end-resync.pcap", packets))
    frame_of = {id(p): n for n, p in enumerate(packets, 1)}
    late = [(r.event, r.frame) for r in messages if r.event.type in ("have", "unchoke")]
    assert late == [(ev.Have(3), frame_of[id(have_at)]), (ev.Unchoke(), frame_of[id(unchoke_at)])]


def test_a_mid_stream_flow_confirmed_at_its_close_is_shown(tmp_path):
    conv = TcpConversation()  # no SYN: decoded on trial
    conv.send(0, b"\xff\xff\xff" + bt_have(3))
    conv.send(0, bt_msg(1) + bt_msg(2))
    conv.close()
    messages, _, sessions = decode_capture(conv.write(tmp_path / "trial-end.pcap"))
    assert [r.event.type for r in messages] == ["have", "unchoke", "interested"]
    assert len(sessions) == 1 and not sessions[0].opener_known


def _snap(source: Path, target: Path, snaplen: int) -> Path:
    """``source`` as tcpdump -s SNAPLEN would have recorded it (pcap, little-endian)."""
    data = source.read_bytes()
    out, pos = [data[:24]], 24
    while pos < len(data):
        sec, frac, caplen, origlen = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + caplen]
        out.append(struct.pack("<IIII", sec, frac, min(caplen, snaplen), origlen) + frame[:snaplen])
        pos += 16 + caplen
    target.write_bytes(b"".join(out))
    return target


def test_utp_cut_by_the_snap_length_reports_only_what_it_holds(tmp_path):
    """A uTP packet cut by the snap length: its missing bytes are a hole of known size,
    so the messages whose headers were captured still come out, and nothing else."""
    from conftest import CAPTURES

    full = read_jsonl(CAPTURES / "libtorrent-utp.pcap")
    cut = read_jsonl(_snap(CAPTURES / "libtorrent-utp.pcap", tmp_path / "utp-128.pcap", 128))
    assert not any(r["type"] == "finding" for r in full)
    # What the cut adds is what the capture lost (holes, and the resyncs past them): no other finding.
    assert {r["kind"] for r in cut if r["type"] == "finding"} == {"hole", "resync"}
    cut = [r for r in cut if r["type"] != "finding"]
    key = lambda r: (r["src"], r["type"], r.get("index"), r.get("begin"), r.get("length"))
    expected = [key(r) for r in full]
    i = 0
    for record in cut:
        while i < len(expected) and expected[i] != key(record):
            i += 1
        assert i < len(expected), f"{record} is not among the full capture's messages"
        i += 1
    assert sum(r["type"] == "piece" for r in cut) >= 50 and sum(r["type"] == "request" for r in cut) >= 50


def test_a_flood_of_land_connections_does_not_crash_the_flow_table():
    """Source = destination (address and port): both table keys are one key, so the table once
    held no flow it could evict and raised ValueError (issue 10, item 1)."""
    decoder = pipeline.Decoder(limits=Limits(flows=4))
    for i in range(40):
        conv = TcpConversation(a=("10.0.3.1", 20000 + i), b=("10.0.3.1", 20000 + i), t0=1_700_000_000.0 + i)
        conv.packet(0, "S")
        _feed(decoder, conv.packets)
        assert decoder.flow_count <= 4 and len(decoder.flows) <= 4


def test_a_full_flow_table_evicts_its_least_recently_active_eighth_at_once():
    """One pass per n/8 new flows, not a scan of the table per new flow (issue 10, item 3)."""
    decoder = pipeline.Decoder(limits=Limits(flows=64))
    for i in range(65):
        conv = TcpConversation(a=(f"10.0.4.{i % 250 + 1}", 30000 + i), t0=1_700_000_000.0 + i)
        conv.open().send(0, bt_handshake(HASH, PEER_A))
        _feed(decoder, conv.packets)
    states = [s.state for s in decoder.sessions]
    assert states == ["evicted"] * 8 + ["open"] * 57
