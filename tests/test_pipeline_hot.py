"""``Decoder.hot_frame``, the fast path, against its docstring: it takes in place the
in-order segments and bare ACKs of known Ethernet/IPv4/TCP BitTorrent flows and
returns True; any other frame it leaves alone and returns False, for ``frame``.

Why: when the fast path declines a frame it should take, the output is the same, only
slower, so a capture test cannot tell; when it takes one it must decline (IP options,
a fragment, a SYN/FIN/RST, a bad data offset, a frame cut by the snap length, bytes
out of order, a closed flow), bytes enter a stream the full path would have kept out.
A mutation run showed no test pinned these checks. Each case here is called directly,
the frame placed at a non-zero offset inside a larger buffer (as a capture file's read
buffer holds it: ``begin``/``end`` delimit it), at each check's boundary. Frames are
packed with ``struct`` (``tests/hostile.py``), messages with ``tests/wirebuild.py``.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest

import hostile as h
import wirebuild as wb
from inspector import events as ev
from inspector.pipeline import Decoder, Record
from inspector.session import Session

FILL = b"\xee"  # the read buffer's bytes around the frame (not a frame: ethertype 0xEEEE)
BEFORE = 100  # where the frame starts in the buffer


def hot_flow(conn: h.Conn | None = None) -> tuple[Decoder, h.Conn, Session, int]:
    """A decoder that has seen ``conn`` open and both handshakes through the full path
    (so the flow is known as BitTorrent); its session and the next frame number."""
    conn = (conn or h.Conn()).open().handshakes()
    decoder = Decoder()
    for number, (ts, data) in enumerate(conn.frames, 1):
        decoder.frame(number, ts, 1, data)
    (session,) = decoder.sessions
    assert [r.event.type for r in decoder.out] == ["handshake", "handshake"]
    decoder.out.clear()
    return decoder, conn, session, len(conn.frames) + 1


def placed(frame: bytes, after: int = 60) -> tuple[bytes, int, int]:
    """``frame`` inside a read buffer: (buffer, begin, end), ``BEFORE`` bytes before it."""
    return FILL * BEFORE + frame + FILL * after, BEFORE, BEFORE + len(frame)


def segment(conn: h.Conn, side: int, flags: int, payload: bytes = b"", **kw) -> bytes:
    """``side``'s next segment, exactly these flags (``Conn.frame`` always adds ACK)."""
    return h.tcp_frame(conn.addr[side], conn.addr[1 - side], conn.port[side], conn.port[1 - side],
                       conn.seq[side], conn.seq[1 - side], flags, payload, **kw)


def take(decoder: Decoder, number: int, frame: bytes, ts: float, after: int = 60) -> bool:
    buf, begin, end = placed(frame, after)
    return decoder.hot_frame(number, buf, begin, end, ts)


def stream_bytes(session: Session) -> tuple[int, int]:
    return session.sides[0].stream_bytes, session.sides[1].stream_bytes


# ---------------------------------------------------------------- frames it takes


def test_an_in_order_segment_is_taken_and_decoded_in_place():
    decoder, conn, session, number = hot_flow()
    sent = stream_bytes(session)
    ts, frame = conn.frame(0, h.PSH, wb.have(7))  # 63 bytes: the IP datagram ends where the frame does
    assert decoder.hot_frame(number, *placed(frame), ts) is True
    assert decoder.out == [Record(session, 0, number, ts, ev.Have(7))]
    assert session.end == ts
    assert stream_bytes(session) == (sent[0] + 9, sent[1])
    # the direction moved on by the 9 bytes: the next segment is in order too
    ts2, frame2 = conn.frame(0, h.PSH, wb.have(8))
    assert decoder.hot_frame(number + 1, *placed(frame2), ts2) is True
    assert decoder.out[1:] == [Record(session, 0, number + 1, ts2, ev.Have(8))]
    assert session.end == ts2 and stream_bytes(session) == (sent[0] + 18, sent[1])


def test_a_bare_ack_of_exactly_54_bytes_is_taken_and_extends_the_session():
    decoder, conn, session, number = hot_flow()
    sent = stream_bytes(session)
    ts, frame = conn.frame(1, h.ACK)
    assert len(frame) == 54  # Ethernet 14 + IPv4 20 + TCP 20, no payload
    assert take(decoder, number, frame, ts) is True
    assert decoder.out == [] and stream_bytes(session) == sent
    assert session.end == ts


def test_a_bare_ack_padded_to_the_ethernet_minimum_is_taken_without_its_padding():
    decoder, conn, session, number = hot_flow()
    sent = stream_bytes(session)
    ts, frame = conn.frame(0, h.ACK)
    assert take(decoder, number, frame + bytes(6), ts) is True  # 60 bytes, the IP datagram 40
    assert decoder.out == [] and stream_bytes(session) == sent and session.end == ts


def test_a_segment_with_a_trailer_after_its_ip_datagram_is_read_to_the_datagram_s_end():
    decoder, conn, session, number = hot_flow()
    sent = stream_bytes(session)
    ts, frame = conn.frame(0, h.PSH, wb.have(7))
    assert take(decoder, number, frame + b"\xff\xff\xff\xff", ts) is True  # a frame check sequence, say
    assert decoder.out == [Record(session, 0, number, ts, ev.Have(7))]
    assert stream_bytes(session) == (sent[0] + 9, sent[1])


def test_a_one_byte_segment_is_taken_and_its_message_completed_by_the_next():
    decoder, conn, session, number = hot_flow()
    sent = stream_bytes(session)
    message = wb.have(7)
    ts, frame = conn.frame(0, h.PSH, message[:1])
    assert take(decoder, number, frame, ts) is True
    assert decoder.out == [] and session.end == ts
    assert stream_bytes(session) == (sent[0] + 1, sent[1])
    ts2, frame2 = conn.frame(0, h.PSH, message[1:])
    assert take(decoder, number + 1, frame2, ts2) is True
    assert decoder.out == [Record(session, 0, number + 1, ts2, ev.Have(7))]
    assert stream_bytes(session) == (sent[0] + 9, sent[1])


def test_a_segment_with_data_offset_exactly_5_words_and_no_flags_at_all_is_taken():
    """Offset and flags read 0x5000: the lowest value the data offset check lets through."""
    decoder, conn, session, number = hot_flow()
    frame = segment(conn, 0, 0, wb.have(7))
    assert frame[46:48] == b"\x50\x00"
    conn.t += 0.001
    assert take(decoder, number, frame, conn.t) is True
    assert decoder.out == [Record(session, 0, number, conn.t, ev.Have(7))]
    assert session.end == conn.t


def test_reserved_header_bits_are_not_read_as_part_of_the_data_offset():
    """RFC 9293 3.1: the reserved bits (and AE beside them) are ignored by a receiver;
    the header is still 5 words and the payload all 9 bytes."""
    decoder, conn, session, number = hot_flow()
    sent = stream_bytes(session)
    ts, frame = conn.frame(0, h.PSH, wb.have(7))
    frame = bytearray(frame)
    frame[46] = 0x5F  # data offset 5, reserved 0b111, AE 1
    assert take(decoder, number, bytes(frame), ts) is True
    assert decoder.out == [Record(session, 0, number, ts, ev.Have(7))]
    assert stream_bytes(session) == (sent[0] + 9, sent[1])


def test_a_piece_s_segments_are_counted_past_and_the_last_one_completes_it():
    decoder, conn, session, number = hot_flow()
    sent = stream_bytes(session)
    message = wb.piece(3, 16384, bytes(range(256)) * 12)  # 13 + 3072 bytes
    parts = [message[:1000], message[1000:2000], message[2000:]]
    stamps = []
    for i, part in enumerate(parts):
        ts, frame = conn.frame(1, h.PSH, part)
        stamps.append(ts)
        assert take(decoder, number + i, frame, ts) is True
        assert session.end == ts
        assert stream_bytes(session) == (sent[0], sent[1] + sum(map(len, parts[: i + 1])))
        if i < 2:
            assert decoder.out == []
    message, *findings = decoder.out
    assert message == Record(session, 1, number + 2, stamps[2], ev.Piece(3, 16384, 3072))
    # No request came before it: the piece earns its finding, right after it, at its frame.
    assert [(r.side, r.frame, r.ts, r.event.kind) for r in findings] == \
        [(1, number + 2, stamps[2], "unrequested_piece")]


def test_a_bare_ack_after_the_connection_was_reset_is_taken_as_its_last_packet():
    decoder, conn, session, number = hot_flow()
    ts, rst = conn.frame(1, h.RST)
    decoder.frame(number, ts, 1, rst)
    assert session.state == "reset"
    sent = stream_bytes(session)
    ts2, frame = conn.frame(0, h.ACK)
    assert take(decoder, number + 1, frame, ts2) is True
    assert decoder.out == [] and stream_bytes(session) == sent and session.end == ts2


# ---------------------------------------------------------------- frames it leaves to ``frame``


def assert_left_alone(decoder: Decoder, session: Session, number: int, frame: bytes, ts: float,
                      after: int = 60) -> None:
    end, sent = session.end, stream_bytes(session)
    assert take(decoder, number, frame, ts, after) is False
    assert decoder.out == [] and session.end == end and stream_bytes(session) == sent


def set_byte(at: int, value: int) -> Callable[[bytearray], None]:
    def edit(frame: bytearray) -> None:
        frame[at] = value
    return edit


def set_flag(flag: int) -> Callable[[bytearray], None]:
    def edit(frame: bytearray) -> None:
        frame[47] |= flag
    return edit


def field16(offset: int, value: int) -> Callable[[bytearray], None]:
    """Set the 16-bit big-endian field at ``offset`` of the Ethernet frame."""
    def edit(frame: bytearray) -> None:
        frame[offset : offset + 2] = value.to_bytes(2, "big")
    return edit


def fragment(field: int) -> Callable[[bytearray], None]:
    return field16(20, field)  # IPv4 flags and fragment offset


def ip_total(total: int) -> Callable[[bytearray], None]:
    return field16(16, total)  # IPv4 total length


def ethertype(value: int) -> Callable[[bytearray], None]:
    return field16(12, value)


def cut(size: int) -> Callable[[bytearray], None]:
    def edit(frame: bytearray) -> None:
        del frame[size:]
    return edit


@pytest.mark.parametrize("edit", [
    # Each one edit of the next in-order segment (have 7, 63 bytes); the rest of it as sent.
    pytest.param(ethertype(0x88B5), id="not_ipv4"),  # an IPv4 datagram's bytes under another ethertype
    pytest.param(set_byte(23, 17), id="udp"),  # the same bytes as a UDP datagram's
    pytest.param(fragment(0x2000), id="more_fragments"),  # the first fragment: DF off, MF on
    pytest.param(fragment(0x0001), id="fragment_offset_8"),  # a later fragment, the lowest offset
    pytest.param(fragment(0x1FFF), id="fragment_offset_max"),
    pytest.param(set_flag(h.SYN), id="syn"),
    pytest.param(set_flag(h.FIN), id="fin"),
    pytest.param(set_flag(h.RST), id="rst"),
    pytest.param(set_byte(46, 0x40), id="data_offset_4"),  # below 5 words: a stack drops the segment
    pytest.param(set_byte(46, 0x00), id="data_offset_0"),
    pytest.param(ip_total(39), id="ip_total_39"),  # one byte less than its IP and TCP headers
    pytest.param(cut(62), id="cut_by_one"),  # the datagram ends one byte past the frame (snap length)
])
def test_a_frame_that_is_not_an_in_order_segment_is_left_to_the_full_path(edit):
    decoder, conn, session, number = hot_flow()
    ts, sent = conn.frame(0, h.PSH, wb.have(7))
    frame = bytearray(sent)
    edit(frame)
    assert_left_alone(decoder, session, number, bytes(frame), ts)


@pytest.mark.parametrize("size", [38, 47, 53])
def test_a_frame_shorter_than_54_bytes_is_left_alone_even_at_the_end_of_the_buffer(size):
    """A bare ACK cut by the snap length, the last frame of the read buffer: 38 bytes end
    with the ports (the flow's key), 47 one byte short of the flags."""
    decoder, conn, session, number = hot_flow()
    ts, frame = conn.frame(0, h.ACK)
    assert_left_alone(decoder, session, number, frame[:size], ts, after=0)


def test_a_frame_with_ip_options_is_left_to_the_full_path():
    """Four NOP options (IHL 6). The ports (257, 0x0101) and the other side's sequence
    numbers (0x6000....) are chosen so a reader that took the header as 5 words would
    find this flow's key (the options read as its ports) and a plausible bare ACK (the
    acknowledgement number's top half read as data offset 6, no flags)."""
    conn = h.Conn(aport=0x0101, bport=0x0101)
    conn.seq[1] = 0x6000_0000
    decoder, conn, session, number = hot_flow(conn)
    ts, frame = conn.frame(0, h.ACK)
    options = b"\x01\x01\x01\x01"
    with_options = bytearray(frame[:34] + options + frame[34:])
    with_options[14] = 0x46
    with_options[16:18] = (20 + 4 + 20).to_bytes(2, "big")
    assert with_options[26:38] == conn.addr[0] + conn.addr[1] + options
    assert with_options[46:48] == b"\x60\x00"
    assert_left_alone(decoder, session, number, bytes(with_options), ts)


@pytest.mark.parametrize("shift", [1, 1000, -9, -1])
def test_a_segment_out_of_order_is_left_to_the_full_path(shift):
    """Ahead of the next expected byte (a hole before it), or behind it (a retransmission)."""
    decoder, conn, session, number = hot_flow()
    conn.frame(0, h.PSH, wb.have(7))  # sent, not captured: only moves the sequence number
    conn.seq[0] += shift - 9
    ts, frame = conn.frame(0, h.PSH, wb.have(8))
    assert_left_alone(decoder, session, number, frame, ts)


def test_a_segment_that_fills_this_direction_s_hole_is_left_to_the_full_path():
    decoder, conn, session, number = hot_flow()
    first = conn.frame(0, h.PSH, wb.have(7))
    ts, ahead = conn.frame(0, h.PSH, wb.have(8))
    decoder.frame(number, ts, 1, ahead)  # held: the 9 bytes before it are missing
    assert decoder.out == []
    ts, frame = first[0] + 1.0, first[1]  # in order now, but the bytes after it wait
    assert_left_alone(decoder, session, number + 1, frame, ts)


@pytest.mark.parametrize("payload", [pytest.param(b"", id="bare_ack"), pytest.param(wb.have(7), id="data")])
def test_any_segment_is_left_to_the_full_path_while_the_other_direction_holds_a_hole(payload):
    """Its acknowledgement may declare the other direction's missing bytes lost."""
    decoder, conn, session, number = hot_flow()
    conn.frame(1, h.PSH, wb.unchoke())  # not captured
    ts, ahead = conn.frame(1, h.PSH, wb.interested())
    decoder.frame(number, ts, 1, ahead)
    assert decoder.out == []
    ts, frame = conn.frame(0, h.PSH if payload else h.ACK, payload)
    assert_left_alone(decoder, session, number + 1, frame, ts)


def test_a_segment_after_the_connection_was_reset_is_left_to_the_full_path():
    decoder, conn, session, number = hot_flow()
    ts, rst = conn.frame(1, h.RST)
    decoder.frame(number, ts, 1, rst)
    assert session.state == "reset"
    ts, frame = conn.frame(0, h.PSH, wb.have(7))  # in order, but the connection is over
    assert_left_alone(decoder, session, number + 1, frame, ts)


def test_a_frame_of_an_unknown_flow_is_left_to_the_full_path():
    decoder, _conn, session, number = hot_flow()
    other = h.Conn(aport=40001)  # never seen: no key in the table
    ts, frame = other.frame(0, h.PSH, wb.have(7))
    assert_left_alone(decoder, session, number, frame, ts)
