"""Where the parser says it is inside a message (``PeerWireParser.progress``), and the
located decode built on it (``CaptureDecode(path, locate=True)``, ``span``).

Mutation testing found these unpinned: a wrong count inside the handshake or a
bitfield body, a count for a message being skipped past, the ``span`` errors' texts,
and the located decode's idle sweep and first timestamp (the located loop is a copy
of the plain one, so each must be checked on its own). ``progress`` is fed byte by
byte and compared with counts from BEP 3's layout (1-byte pstrlen, 19-byte pstr,
8 reserved, 20 info_hash, 20 peer_id = 68; a message is a 4-byte length then its
id and body); the spans are checked against where the bytes were written.
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import hostile as h
import wirebuild as wb
from inspector.parser import PeerWireParser
from inspector.pipeline import IDLE_TIMEOUT, SWEEP_EVERY, CaptureDecode

HASH = bytes(range(20))
PEER_A = b"-LT2110-aaaaaaaaaaaa"
PEER_B = b"-TR3000-bbbbbbbbbbbb"
HS_A = wb.handshake(HASH, PEER_A)
HS_B = wb.handshake(HASH, PEER_B)
BITFIELD = wb.bitfield(bytes(range(1, 21)))  # length 21: 4 + id + 20 = 25 bytes on the wire
# An extension handshake with its keys out of order: it decodes, with a note (a finding
# that takes no bytes of its own) before the message.
UNSORTED_EXT = wb.extended(0, b"d1:v3:abc1:md6:ut_pexi1eee")


def bytewise(parser: PeerWireParser, data: bytes) -> list[int | None]:
    """``progress`` after each byte of ``data`` fed alone."""
    seen = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        seen.append(parser.progress())
    return seen


def located(path: Path) -> tuple[CaptureDecode, list]:
    decode = CaptureDecode(str(path), locate=True)
    return decode, [(record, decode.span(record)) for record in decode]


def placed(decode: CaptureDecode, pairs: list, side: int) -> list[tuple[str, int, int, bytes | None]]:
    """Side ``side``'s messages: (type, start, end, bytes read back); findings left out."""
    out = []
    for record, span in pairs:
        if record.side == side and record.event.type != "finding":
            assert span is not None, record
            out.append((record.event.type, span[1], span[2], decode.locator.read(span)))
    return out


# ---------------------------------------------------------------- progress, fed byte by byte


def test_progress_counts_every_byte_of_the_handshake():
    parser = PeerWireParser()
    assert parser.progress() == 0  # nothing read of the handshake yet
    # After k of its 68 bytes, k are read; after the last it is done and the next message
    # has not begun. The cut between steps (1, 20, 28, 48) is where each field begins.
    assert bytewise(parser, HS_A) == [*range(1, 68), 0]
    assert parser.peer_id == PEER_A


@pytest.mark.parametrize("wire", [wb.have(7), BITFIELD, wb.request(1, 2, 3), UNSORTED_EXT],
                         ids=["have", "bitfield", "request", "extended"])
def test_progress_counts_every_byte_of_a_message(wire):
    parser = PeerWireParser(handshake=False)
    # Length prefix, head (id and up to 8 more bytes) and body alike: k bytes in, k read;
    # 0 once it is complete.
    assert bytewise(parser, wire) == [*range(1, len(wire)), 0]
    assert bytewise(parser, wb.keepalive()) == [1, 2, 3, 0]


def test_progress_counts_through_a_piece_payload():
    block = bytes(range(30))
    parser = PeerWireParser(handshake=False)
    # 4 + 9 (id, index, begin) + 30: the payload is counted past, not buffered, and still counted.
    assert bytewise(parser, wb.piece(2, 0, block)) == [*range(1, 43), 0]
    whole = wb.piece(3, 16384, block)
    parser.feed(whole[:20])
    assert parser.progress() == 20
    assert parser.skip_payload(5) and parser.progress() == 25


def test_progress_is_unknown_while_skipping_an_oversize_message():
    parser = PeerWireParser(handshake=False, max_len=16)
    oversize = struct.pack(">I", 20) + bytes(20)  # 20 > max_len: counted past
    seen = bytewise(parser, oversize + wb.have(1))
    # Inside the prefix it is a message like any; past it, how much of it is read is not
    # said (it is no piece) until its last byte; then the have is counted from 1.
    assert seen == [1, 2, 3, *[None] * 20, 0, *range(1, 9), 0]


def test_progress_is_unknown_while_counting_past_the_rest_of_a_message_a_hole_cut():
    parser = PeerWireParser(handshake=False)
    request = wb.request(1, 2, 3)  # 17 bytes
    parser.feed(request[:7])
    assert parser.progress() == 7
    [finding] = parser.gap(3)
    assert finding.kind == "hole" and "framing kept" in finding.detail
    assert parser.progress() is None  # 7 bytes of it are left, counted past
    assert bytewise(parser, request[10:] + wb.have(4)) == [None] * 6 + [0, *range(1, 9), 0]


def test_progress_is_unknown_while_hunting():
    # Checked on the parser itself: through the located decode a feed that ends while
    # hunting has returned only findings last (a hunt is lost with one), so no span
    # depends on this answer, yet ``progress`` promises None here to its callers.
    parser = PeerWireParser(handshake=False, midstream=True)
    assert parser.hunting and parser.progress() is None
    parser = PeerWireParser(handshake=False)
    parser.feed(wb.have(1))
    assert parser.progress() == 0
    parser.gap(5)  # at a boundary: where the next message begins is lost
    assert parser.hunting and parser.progress() is None
    parser.feed(b"\x01\x02")
    assert parser.hunting and parser.progress() is None


@pytest.mark.parametrize("wire", [b"\x14" + HS_A[1:], HS_A[:5] + b"x" + HS_A[6:]], ids=["pstrlen", "pstr"])
def test_progress_is_unknown_once_stopped(wire):
    parser = PeerWireParser()
    events = parser.feed(wire)
    assert [e.kind for e in events] == ["bad_protocol"] and parser.stopped
    assert parser.progress() is None


def test_progress_is_unknown_after_the_stream_ended_inside_a_message():
    parser = PeerWireParser()
    parser.feed(HS_A[:30])
    [finding] = parser.end()
    assert finding.kind == "truncated" and parser.progress() is None


# ---------------------------------------------------------------- through the located decode


def conversation() -> h.Conn:
    return h.Conn().open()


@pytest.mark.parametrize("cut", [0, 1, 10, 24, 40, 60, 67],
                         ids=["whole", "after_pstrlen", "in_pstr", "in_reserved", "in_info_hash", "in_peer_id",
                              "last_byte"])
def test_a_handshake_split_across_segments_is_placed_with_what_follows(tmp_path, cut):
    """The segment that completes the handshake also holds a message decoded with a note:
    every message is placed only if the parser knew, before that segment, how much of the
    handshake it had read (else only those after the note are, back from the end)."""
    c = conversation()
    rest = HS_A[cut:] + UNSORTED_EXT + wb.interested()
    if cut:
        c.emit(0, h.PSH, HS_A[:cut])
    c.emit(0, h.PSH, rest)
    c.send(1, HS_B).close()
    path = h.write_pcap(tmp_path / "split.pcap", c.frames)
    decode, pairs = located(path)
    # a's messages all ride in the segment that completes its handshake, sent before b's handshake.
    last = 5 if cut else 4
    assert [(r.event.kind, r.side, r.frame) for r, _ in pairs if r.event.type == "finding"] == \
        [("bencode_lenient", 0, last), ("before_handshake", 0, last)]
    end = 68 + len(UNSORTED_EXT)
    assert placed(decode, pairs, 0) == [("handshake", 0, 68, HS_A), ("extended", 68, end, UNSORTED_EXT),
                                        ("interested", end, end + 5, wb.interested())]
    hs_span = next(span for r, span in pairs if r.event.type == "handshake" and r.side == 0)
    assert decode.locator.frames(hs_span) == ((4, 5) if cut else (4,))  # frames 1-3 open the connection


@pytest.mark.parametrize("cut", [2, 7, 13, 18, 24],
                         ids=["in_prefix", "in_head", "head_read", "in_body", "body_last_byte"])
def test_messages_before_a_bitfield_split_across_segments_are_placed(tmp_path, cut):
    """A segment ends ``cut`` bytes into a 25-byte bitfield: the have before it is placed
    back from where the bitfield began, so that count must be right."""
    c = conversation().send(0, HS_A).send(1, HS_B)
    c.emit(1, h.PSH, wb.have(5) + BITFIELD[:cut])
    c.emit(1, h.PSH, BITFIELD[cut:] + wb.have(6))
    path = h.write_pcap(tmp_path / "bitfield.pcap", c.close().frames)
    decode, pairs = located(path)
    assert placed(decode, pairs, 1) == [("handshake", 0, 68, HS_B), ("have", 68, 77, wb.have(5)),
                                        ("bitfield", 77, 102, BITFIELD), ("have", 102, 111, wb.have(6))]


def test_messages_before_a_piece_split_across_segments_are_placed(tmp_path):
    block = bytes(range(200))
    piece = wb.piece(0, 0, block)  # 4 + 9 + 200
    c = conversation().send(0, HS_A).send(1, HS_B)
    c.emit(1, h.PSH, wb.have(5) + piece[:50])
    c.emit(1, h.PSH, piece[50:100])  # inside the payload: counted past in place
    c.emit(1, h.PSH, piece[100:] + wb.have(6))
    path = h.write_pcap(tmp_path / "piece.pcap", c.close().frames)
    decode, pairs = located(path)
    assert placed(decode, pairs, 1) == [("handshake", 0, 68, HS_B), ("have", 68, 77, wb.have(5)),
                                        ("piece", 77, 290, piece), ("have", 290, 299, wb.have(6))]


def test_an_oversize_message_in_a_located_decode(tmp_path):
    """A length prefix above --max-message is counted past, and the decode goes on to say
    where the stream ended; the have sent before it is placed."""
    c = conversation().send(0, HS_A).send(1, HS_B)
    c.emit(1, h.PSH, wb.have(5))
    c.emit(1, h.PSH, struct.pack(">I", 0x7FFFFFFF) + b"abc")
    path = h.write_pcap(tmp_path / "oversize.pcap", c.close().frames)
    plain = [(r.side, r.frame, r.event) for r in CaptureDecode(str(path))]
    decode, pairs = located(path)
    assert [(r.side, r.frame, r.event) for r, _ in pairs] == plain
    side_b = [r.event.kind if r.event.type == "finding" else r.event.type for r, _ in pairs if r.side == 1]
    assert side_b == ["handshake", "have", "oversize", "truncated"]
    assert placed(decode, pairs, 1) == [("handshake", 0, 68, HS_B), ("have", 68, 77, wb.have(5))]


# ---------------------------------------------------------------- CaptureDecode.span's errors


def test_span_errors_say_what_was_asked_wrongly(tmp_path):
    c = conversation().send(0, HS_A).send(1, HS_B).send(1, wb.have(1)).close()
    path = h.write_pcap(tmp_path / "short.pcap", c.frames)
    plain = CaptureDecode(str(path))
    with pytest.raises(ValueError) as raised:
        plain.span(next(iter(plain)))
    assert str(raised.value) == "messages are located only by CaptureDecode(path, locate=True)"
    decode = CaptureDecode(str(path), locate=True)
    records = iter(decode)
    first = next(records)
    assert decode.span(first) == (0, 0, 68)
    next(records)
    with pytest.raises(ValueError) as raised:
        decode.span(first)
    assert str(raised.value) == "span() answers for the record just yielded only"


# ---------------------------------------------------------------- the located decode's sweep


FIRST_SWEEP, SECOND_SWEEP = SWEEP_EVERY, 2 * SWEEP_EVERY
LAST_FRAME = SECOND_SWEEP + 8


def idle_capture(path: Path) -> Path:
    """A connection that goes quiet in the middle of a bitfield (frames 1-6), then frames
    of no connection up to frame ``LAST_FRAME``, stamped so that the second sweep (frame
    ``2 * SWEEP_EVERY``) is the first that finds it quiet for more than ``IDLE_TIMEOUT``
    since the sweep before it: the capture's clock jumps there."""
    c = conversation().send(0, HS_A).send(1, HS_B)
    c.emit(0, h.PSH, wb.have(7) + BITFIELD[:6])
    frames = list(c.frames)
    assert len(frames) == 6
    pad = h.Conn(a="10.9.0.1", b="10.9.0.2", aport=999, bport=998)  # bare ACKs: no flow opens
    ack = pad.frame(0, h.ACK)[1]
    t0 = h.T0
    for number in range(len(frames) + 1, LAST_FRAME + 1):
        if number <= FIRST_SWEEP:
            ts = t0 + 1
        elif number < SECOND_SWEEP:
            ts = t0 + 2
        else:
            ts = t0 + IDLE_TIMEOUT + 400
        frames.append((ts, ack))
    return h.write_pcap(path, frames)


def test_a_located_decode_closes_an_idle_flow_at_the_sweep_as_a_plain_one_does(tmp_path):
    path = idle_capture(tmp_path / "idle.pcap")
    plain = CaptureDecode(str(path))
    plain_records = [(r.session.id, r.side, r.frame, r.event) for r in plain]
    decode, pairs = located(path)
    assert [(r.session.id, r.side, r.frame, r.event) for r, _ in pairs] == plain_records
    for run in (plain, decode):
        assert run.first_ts == pytest.approx(h.T0 + 0.001, abs=1e-6)  # the first frame's time
        [session] = run.sessions
        assert session.state == "idle"
        assert session.end == pytest.approx(h.T0 + 0.006, abs=1e-6)  # its last packet
    findings = [(r.side, r.frame, r.event.kind) for r, _ in pairs if r.event.type == "finding"]
    # Closed by the second sweep (the first only marks the time), inside the bitfield.
    assert findings == [(0, SECOND_SWEEP, "truncated")]
    assert placed(decode, pairs, 0) == [("handshake", 0, 68, HS_A), ("have", 68, 77, wb.have(7))]
