"""One TCP packet through the decoder, and the end of the capture: which packets open a
flow, which frame number and time reach the findings a packet causes (a flow replaced
or evicted to make room, a hole an ACK declares, a message cut by a reset), when both
FINs close a flow, what a flow that is not BitTorrent still takes, and what ``finish``
closes and flushes.

Why: a mutation run showed no test pinning these in ``Decoder._packet``, ``_open`` and
``finish`` (a frame number replaced by None, ``&`` by ``|``, ``dirs[0]`` by ``dirs[1]``
all went unnoticed). Frames are packed with ``struct`` (``tests/hostile.py``) and the
expected frame numbers and times are read off the frames as built. Most tests hand
every frame to ``Decoder.frame``, as the capture driver does for any frame its fast path
(``hot_frame``, Ethernet/IPv4 segments of known flows only) declines: a raw-IP or IPv6
capture takes this path for every frame.
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import hostile as h
import wirebuild as wb
from inspector.limits import Limits
from inspector.pipeline import CaptureDecode, Decoder
from inspector.session import Session

A, B = "10.0.0.1:40000", "10.0.0.2:6881"  # h.Conn()'s ends
HAVE_HEAD = b"\x00\x00\x00\x05\x04"  # the first five of a have message's nine bytes
GET = b"GET /announce?info_hash=%00 HTTP/1.1\r\nHost: tracker\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nd5:peerse"


def feed(decoder: Decoder, frames: list[h.Frame], first: int = 1) -> int:
    """Frames numbered from ``first``, each given to ``Decoder.frame``; the next number."""
    for number, (ts, data) in enumerate(frames, first):
        decoder.frame(number, ts, 1, data)
    return first + len(frames)


def drive(decoder: Decoder, frames: list[h.Frame], first: int) -> int:
    """Frames numbered from ``first`` as ``CaptureDecode`` hands Ethernet frames over:
    the fast path first, ``frame`` for what it declines; the next number."""
    for number, (ts, data) in enumerate(frames, first):
        if not decoder.hot_frame(number, data, 0, len(data), ts):
            decoder.frame(number, ts, 1, data)
    return first + len(frames)


def handshakes(conn: h.Conn, n: int) -> h.Conn:
    """Both handshakes, with peer ids of pair ``n`` (one pair per connection: two connections
    between the same peer ids are a finding of their own)."""
    conn.send(0, wb.handshake(h.HASH, b"-LT2110-a%011d" % n))
    return conn.send(1, wb.handshake(h.HASH, b"-TR3000-b%011d" % n))


def findings(session: Session) -> list[tuple[str, str | None, int]]:
    return [(f.kind, f.side, f.frame) for f in session.findings]


def bare(conn: h.Conn, side: int, flags: int, payload: bytes = b"") -> h.Frame:
    """A segment from ``side`` with exactly ``flags`` (``Conn`` adds ACK to all but a SYN),
    its acknowledgement field still covering what the other side sent; appended."""
    conn.t += 0.001
    frame = (conn.t, h.tcp_frame(conn.addr[side], conn.addr[1 - side], conn.port[side], conn.port[1 - side],
                                 conn.seq[side], conn.seq[1 - side], flags, payload))
    conn.seq[side] += len(payload)
    conn.frames.append(frame)
    return frame


# ---------------------------------------------------------------- which packets open a flow


@pytest.mark.parametrize("flags", [h.ACK, h.FIN | h.ACK, h.RST], ids=["ack", "fin", "rst"])
def test_a_packet_without_payload_or_syn_opens_no_flow(flags: int) -> None:
    """A capture that starts mid-connection with a bare ACK, FIN or RST from b: that packet
    opens nothing, so a's handshake a second later opens the flow, a is side a and the
    session starts at a's handshake (frame 2)."""
    conn = h.Conn()
    conn.emit(1, flags, advance=False)
    conn.t += 1.0
    conn.send(0, wb.handshake(h.HASH, h.PEER_A)).send(1, wb.handshake(h.HASH, h.PEER_B)).send(0, wb.interested())
    decoder = Decoder()
    decoder.finish(feed(decoder, conn.frames) - 1)
    (session,) = decoder.sessions
    assert (session.sides[0].addr, session.sides[1].addr) == (A, B)
    assert (session.sides[0].peer_id, session.sides[1].peer_id) == (h.PEER_A, h.PEER_B)
    assert session.start == conn.frames[1][0]
    assert findings(session) == [("midstream", None, 2)]
    assert [(r.side, r.frame, r.event.type) for r in decoder.out] == [
        (0, 2, "handshake"), (1, 3, "handshake"), (0, 4, "interested")]


# ---------------------------------------------------------------- making room for a flow


def cut_connection() -> h.Conn:
    """Handshakes, then the first five bytes of a have from a: open, and cut in a message."""
    conn = h.Conn().open().handshakes()
    conn.emit(0, h.PSH, HAVE_HEAD)
    return conn


@pytest.mark.parametrize("how", ["replaced", "evicted"])
def test_a_flow_retired_for_a_new_one_reports_its_cut_message_at_the_new_flow_s_first_frame(how: str) -> None:
    """A new connection's SYN (frame 7) retires an open flow: the same 4-tuple with another
    initial sequence number replaces it, or, with room for one flow, another 4-tuple evicts
    it. The retired session's cut message is reported at frame 7, with the time of the
    retired flow's own last packet (frame 6)."""
    first = cut_connection()
    if how == "replaced":
        second = h.Conn(t0=first.t + 1)
        second.seq = [7000, 800_000]
    else:
        second = h.Conn(aport=40001, t0=first.t + 1)
    second.open().handshakes()
    decoder = Decoder(limits=Limits(flows=1))
    decoder.finish(feed(decoder, first.frames + second.frames) - 1)
    retired, new = decoder.sessions
    assert (retired.state, new.state) == (how, "open")
    assert findings(retired) == [("truncated", "a", 7)]
    (cut,) = [r for r in decoder.out if r.event.type == "finding"]
    assert (cut.session, cut.side, cut.frame, cut.ts) == (retired, 0, 7, first.frames[5][0])
    assert retired.end == first.frames[5][0]
    assert new.start == second.frames[0][0] and findings(new) == []


# ---------------------------------------------------------------- the session's end


def test_a_closed_session_ends_with_its_final_ack() -> None:
    """FIN from a, FIN from b, then a's final ACK: the connection lasts until that ACK."""
    conn = h.Conn().open().handshakes().close().emit(0, 0)
    decoder = Decoder()
    feed(decoder, conn.frames)
    (session,) = decoder.sessions
    assert session.state == "closed"
    assert session.end == conn.frames[-1][0]
    assert session.end > conn.frames[-2][0]


# ---------------------------------------------------------------- ACKs declare holes


def piece_with_a_lost_segment() -> h.Conn:
    """b sends a piece of 1000 bytes in three segments, the middle 300 bytes never
    captured, then a have (frames 6 to 8); a's interested follows (frame 9)."""
    conn = h.Conn().open().handshakes()
    message = wb.piece(0, 0, bytes(range(250)) * 4)
    conn.send(1, message[:513])
    conn.seq[1] += 300
    conn.send(1, message[813:])
    conn.send(1, wb.have(3))
    return conn


def test_an_ack_covering_missing_bytes_declares_the_hole_at_its_frame_and_time() -> None:
    """a's interested acknowledges b's whole stream: the 300 bytes b's buffered segments
    wait for were received, so the capture missed them. The hole is declared at a's frame
    and time, and b's piece and have, buffered since frames 7 and 8, are decoded then."""
    conn = piece_with_a_lost_segment()
    bare(conn, 0, h.PSH | h.ACK, wb.interested())
    decoder = Decoder()
    feed(decoder, conn.frames)
    (session,) = decoder.sessions
    assert findings(session) == [("hole", "b", 9)]
    hole, piece, have = [r for r in decoder.out if r.side == 1][1:]
    assert (hole.frame, hole.ts, hole.event.kind) == (9, conn.frames[8][0], "hole")
    assert "300 bytes of piece 0:0" in hole.event.detail
    assert (piece.event.type, piece.frame, piece.event.missing) == ("piece", 7, 300)
    assert (have.event.type, have.frame, have.event.index) == ("have", 8, 3)


def test_a_segment_without_the_ack_flag_acknowledges_nothing() -> None:
    """The same, but a's segment has no ACK flag: its acknowledgement field means nothing,
    so b's bytes stay buffered until the capture ends (frame 12), where the hole is declared,
    at the time of the connection's last packet."""
    conn = piece_with_a_lost_segment()
    bare(conn, 0, h.PSH, wb.interested())
    decoder = Decoder()
    feed(decoder, conn.frames)
    assert [r.side for r in decoder.out] == [0, 1, 0]  # handshakes, interested: nothing of b's yet
    decoder.finish(12)
    (session,) = decoder.sessions
    assert findings(session) == [("hole", "b", 12)]
    hole = [r for r in decoder.out if r.event.type == "finding"][0]
    assert (hole.frame, hole.ts) == (12, conn.frames[8][0])


def test_a_direction_s_bound_is_reported_once_when_it_is_hit() -> None:
    """b's 18 bytes wait for the 9 before them, over a --max-ooo of 10: one limit finding at
    that frame, the 9 bytes declared lost; b's later in-order segments add none."""
    conn = h.Conn().open().handshakes()
    conn.emit(1, h.PSH, wb.have(2) + wb.have(3), seq=conn.seq[1] + 9)
    conn.seq[1] += 27
    conn.send(1, wb.have(4)).send(1, wb.have(5))
    decoder = Decoder(limits=Limits(ooo=10))
    feed(decoder, conn.frames)
    (session,) = decoder.sessions
    assert [(kind, frame) for kind, _, frame in findings(session) if kind in ("limit", "hole")] == [
        ("limit", 6), ("hole", 6)]
    assert "--max-ooo 10" in session.findings[0].detail
    assert [r.event.index for r in decoder.out if r.event.type == "have"] == [2, 3, 4, 5]


# ---------------------------------------------------------------- RST and FIN


def test_a_reset_closes_the_flow_at_its_frame() -> None:
    """b's RST (frame 7) ends the connection: a's message cut by it is reported at frame 7,
    and a's bytes after it are not decoded."""
    conn = cut_connection()
    conn.emit(1, h.RST)
    conn.emit(0, h.PSH, b"\x00\x00\x00\x03\x00\x00\x00\x00\x00")
    decoder = Decoder()
    number = feed(decoder, conn.frames)
    decoder.finish(number + 10)
    (session,) = decoder.sessions
    assert session.state == "reset"
    assert findings(session) == [("truncated", "a", 7)]
    assert [(r.frame, r.event.type) for r in decoder.out] == [(4, "handshake"), (5, "handshake"), (7, "finding")]


@pytest.mark.parametrize("first", [0, 1], ids=["a-first", "b-first"])
def test_a_flow_closes_at_the_second_fin(first: int) -> None:
    """One side's FIN (frame 6) closes its direction only: the other side's interested and
    the first five bytes of a have (frame 7) are still decoded, and its FIN (frame 8)
    closes the flow, reporting the cut have at that frame."""
    conn = h.Conn().open().handshakes()
    conn.emit(first, h.FIN)
    conn.emit(1 - first, h.PSH, wb.interested() + HAVE_HEAD)
    conn.emit(1 - first, h.FIN)
    decoder = Decoder()
    feed(decoder, conn.frames)
    (session,) = decoder.sessions
    assert session.state == "closed"
    side = "ab"[1 - first]
    assert findings(session) == [("truncated", side, 8)]
    assert [(r.side, r.frame, r.event.type) for r in decoder.out][2:] == [
        (1 - first, 7, "interested"), (1 - first, 8, "finding")]


# ---------------------------------------------------------------- flows that are not BitTorrent


def test_a_flow_that_is_not_bittorrent_buffers_nothing() -> None:
    """An HTTP connection, told apart once both sides spoke, then sends 100 bytes out of
    order: they are not buffered, so with a --max-ooo-total of 105 a BitTorrent connection
    after it can still hold its 9 reordered bytes until the missing ones come."""
    http = h.Conn(bport=80).open().send(0, GET).send(1, OK)
    http.emit(1, h.PSH, b"z" * 100, seq=http.seq[1] + 50)
    peer = h.Conn(aport=40001, t0=http.t + 1).open().handshakes()
    peer.emit(1, h.PSH, wb.have(2), seq=peer.seq[1] + 9)
    peer.emit(1, h.PSH, wb.have(1), advance=False)
    decoder = Decoder(limits=Limits(ooo_total=105))
    number = feed(decoder, http.frames + peer.frames)
    decoder.finish(number - 1)
    (session,) = decoder.sessions
    assert session.sides[0].addr == "10.0.0.1:40001"
    assert findings(session) == []
    assert [(r.event.index, r.frame) for r in decoder.out if r.event.type == "have"] == [
        (1, number - 1), (2, number - 2)]


def test_bytes_held_before_a_flow_is_found_not_bittorrent_are_let_go() -> None:
    """a's 100 bytes arrive out of order (50 before them never captured) while the HTTP
    flow is still undecided; once b's answer shows it is not BitTorrent they no longer
    count against --max-ooo-total 105, and a BitTorrent connection after it can hold its
    9 reordered bytes until the missing ones come."""
    http = h.Conn(bport=80).open().send(0, GET)
    http.emit(0, h.PSH, b"z" * 100, seq=http.seq[0] + 50)
    http.send(1, OK)
    peer = h.Conn(aport=40001, t0=http.t + 1).open().handshakes()
    peer.emit(1, h.PSH, wb.have(2), seq=peer.seq[1] + 9)
    peer.emit(1, h.PSH, wb.have(1), advance=False)
    decoder = Decoder(limits=Limits(ooo_total=105))
    number = feed(decoder, http.frames + peer.frames)
    (session,) = decoder.sessions
    assert session.sides[0].addr == "10.0.0.1:40001"
    assert findings(session) == []
    assert [(r.event.index, r.frame) for r in decoder.out if r.event.type == "have"] == [
        (1, number - 1), (2, number - 2)]


# ---------------------------------------------------------------- the end of the capture


_IP4 = struct.Struct(">BBHHHBBH4s4s")
MF = 0x2000  # IPv4 "more fragments"


def first_fragment(conn: h.Conn, side: int, payload: bytes, keep: int) -> h.Frame:
    """The first IPv4 fragment of ``side``'s segment carrying ``payload``: its TCP header and
    the first ``keep`` payload bytes (20 + keep a multiple of 8). Appended; the rest of the
    datagram is never captured."""
    assert (20 + keep) % 8 == 0 and keep < len(payload)
    segment = h.tcp_frame(conn.addr[side], conn.addr[1 - side], conn.port[side], conn.port[1 - side],
                          conn.seq[side], conn.seq[1 - side], h.PSH | h.ACK, payload)[34:]
    data = segment[: 20 + keep]
    ip = _IP4.pack(0x45, 0, 20 + len(data), 4242, MF, 64, 6, 0, conn.addr[side], conn.addr[1 - side])
    conn.t += 0.001
    conn.seq[side] += len(payload)
    frame = (conn.t, bytes(6) + bytes(5) + b"\x01" + b"\x08\x00" + ip + data)
    conn.frames.append(frame)
    return frame


def test_fragments_left_at_the_end_are_decoded_as_the_last_frame_with_their_own_time(tmp_path: Path) -> None:
    """b's segment (frame 6) arrives as a first IP fragment whose rest is never captured;
    a talks on (frames 7 and 8). At the end the fragment's bytes are decoded: b's two haves
    as the capture's last frame (8) at the fragment's time, and the third have, cut after
    two bytes, is reported at frame 8 when the connection is closed."""
    conn = h.Conn().open().handshakes()
    first_fragment(conn, 1, wb.have(7) + wb.have(8) + wb.have(9), keep=20)
    conn.send(0, wb.interested()).send(0, wb.keepalive())
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "fragment.pcap", conn.frames)))
    records = list(decode)
    (session,) = decode.sessions
    assert [(r.side, r.frame, r.event.type) for r in records] == [
        (0, 4, "handshake"), (1, 5, "handshake"), (0, 7, "interested"), (0, 8, "keepalive"),
        (1, 8, "have"), (1, 8, "have"), (1, 8, "finding")]
    haves = [r for r in records if r.event.type == "have"]
    assert [r.event.index for r in haves] == [7, 8]
    assert [r.ts for r in haves] == [pytest.approx(conn.frames[5][0], abs=1e-6)] * 2
    assert findings(session) == [("truncated", "b", 8)]
    assert "2 of its bytes" in session.findings[0].detail
    assert session.sides[1].messages["have"] == 2


def test_every_flow_open_at_the_end_is_closed_at_the_last_frame_number() -> None:
    """Three connections: one cut in a have from a, one whose FIN from b came with the 9
    bytes before it never captured, one closed by both FINs. At the end (frame 30) the
    first two report what they were cut in at frame 30, each at the time of its own last
    packet; the closed one reports nothing more."""
    cut = handshakes(h.Conn(aport=40001).open(), 1)
    cut.emit(0, h.PSH, HAVE_HEAD)
    lossy = handshakes(h.Conn(aport=40002, t0=cut.t).open(), 2)
    lossy.seq[1] += 9
    lossy.emit(1, h.FIN)
    closed = handshakes(h.Conn(aport=40003, t0=lossy.t).open(), 3).close()
    decoder = Decoder()
    feed(decoder, cut.frames + lossy.frames + closed.frames)
    assert [(s.state, s.findings) for s in decoder.sessions] == [("open", []), ("open", []), ("closed", [])]
    decoder.finish(30)
    first, second, third = decoder.sessions
    assert findings(first) == [("truncated", "a", 30)]
    assert findings(second) == [("hole", "b", 30), ("resync", "b", 30)]  # nothing after the hole to resync on
    assert "9 bytes not captured" in second.findings[0].detail
    assert findings(third) == []
    ends = {(r.session.id, r.ts) for r in decoder.out if r.event.type == "finding"}
    assert ends == {(1, cut.frames[-1][0]), (2, lossy.frames[-1][0])}
    assert {r.frame for r in decoder.out if r.event.type == "finding"} == {30}


def test_after_the_end_nothing_is_left_open() -> None:
    """A second ``finish`` adds nothing, and the table is empty: a bare ACK of an ended
    connection (fast path or not) neither extends nor reopens its session, a handshake on
    its 4-tuple starts a new one, and with room for three flows three new connections fit
    without evicting any."""
    conn = cut_connection()
    other = handshakes(h.Conn(aport=40001).open(), 1)
    decoder = Decoder(limits=Limits(flows=3))
    number = drive(decoder, conn.frames + other.frames, 1)
    decoder.finish(number - 1)
    records, ended = list(decoder.out), [(s.state, s.end, findings(s)) for s in decoder.sessions]
    assert ended[0][2] == [("truncated", "a", number - 1)]
    decoder.finish(number)
    assert decoder.out == records and [(s.state, s.end, findings(s)) for s in decoder.sessions] == ended

    conn.t += 100.0
    conn.emit(1, 0)  # b's bare ACK
    number = drive(decoder, conn.frames[-1:], number)
    assert [(s.state, s.end, findings(s)) for s in decoder.sessions] == ended

    conn.emit(0, h.PSH, wb.handshake(h.HASH, h.PEER_A))
    later = [handshakes(h.Conn(a=f"10.0.1.{i}", t0=conn.t + i).open(), 1 + i) for i in (1, 2)]
    drive(decoder, conn.frames[-1:] + later[0].frames + later[1].frames, number)
    assert [(s.sides[0].addr, s.state) for s in decoder.sessions] == [
        (A, "open"), ("10.0.0.1:40001", "open"), (A, "open"), ("10.0.1.1:40000", "open"),
        ("10.0.1.2:40000", "open")]
    assert [(s.state, s.end, findings(s)) for s in decoder.sessions[:2]] == ended
