"""The decoder's flow table, in small hand-built captures: frames larger than a slice,
a fresh SYN on a 4-tuple that already carried a connection, and what the idle sweep
closes and forgets (``IDLE_TIMEOUT``, ``CLOSED_LINGER``, only flows silent since the
previous sweep).

Why: these decide which packets belong to which session and when a session ends, and
a mutation run showed no test pinned their boundaries. Frames are packed with
``struct`` (``tests/hostile.py``); the sweep tests drive ``Decoder`` directly, calling
``sweep`` as the capture driver does, so each sweep's time is exact.
"""
from __future__ import annotations

import pytest

import hostile as h
import wirebuild as wb
from inspector.limits import Limits
from inspector.pipeline import CLOSED_LINGER, IDLE_TIMEOUT, SLICE, CaptureDecode, Decoder
from test_pipeline import ST_DATA, ST_STATE, ST_SYN, udp_packets, utp


def decoded(tmp_path, frames: list[h.Frame]) -> tuple[list, list]:
    """Records and sessions of ``frames`` written as a pcap and read by ``CaptureDecode``."""
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "flows.pcap", frames)))
    return list(decode), decode.sessions


def stamped(frames: list[h.Frame], ts: float) -> list[h.Frame]:
    """The frames, every one captured at ``ts`` (so a flow's last packet time is exact)."""
    return [(ts, data) for _, data in frames]


def feed(decoder: Decoder, frames: list[h.Frame], first: int) -> int:
    """Frames numbered from ``first``, as ``CaptureDecode`` hands them over; the next number."""
    for number, (ts, data) in enumerate(frames, first):
        decoder.frame(number, ts, 1, data)
    return first + len(frames)


def summary(records) -> list[tuple[int, int, str]]:
    return [(r.session.id, r.side, r.event.type) for r in records]


# ---------------------------------------------------------------- frames larger than a slice


def test_a_big_frame_s_records_are_handed_out_one_slice_at_a_time(tmp_path):
    """A 2 x SLICE + 1000 byte payload of zeros is three slices: when its first keep-alive
    is handed out, the session has counted the first slice's keep-alives only (SLICE / 4),
    then two slices', then all; every record has the big frame's number and time."""
    size = 2 * SLICE + 1000
    frames = h.offloaded_zeros(size)
    big = 1 + next(i for i, (_, data) in enumerate(frames) if len(data) > SLICE)
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "big.pcap", frames)))
    counted = []  # the session's keep-alive count as each keep-alive is handed out
    for record in decode:
        if record.event.type == "keepalive":
            assert record.frame == big
            assert record.ts == pytest.approx(frames[big - 1][0], abs=1e-6)
            counted.append(record.session.sides[0].messages["keepalive"])
    assert len(counted) == size // 4
    assert sorted(set(counted)) == [SLICE // 4, 2 * SLICE // 4, size // 4]


def test_a_big_frame_with_a_reset_is_decoded_whole_before_the_reset(tmp_path):
    """SYN, FIN and RST frames are not split: each slice would carry the flag, and an RST on
    the first slice would close the connection before the rest of the payload."""
    size = 2 * SLICE + 1000
    conn = h.Conn().open().handshakes()
    conn.emit(0, h.PSH | h.RST, bytes(size), total_length=0)
    big = len(conn.frames)
    records, (session,) = decoded(tmp_path, conn.frames)
    alive = [r for r in records if r.event.type == "keepalive"]
    assert len(alive) == size // 4
    assert {r.frame for r in alive} == {big}
    (ts,) = {r.ts for r in alive}
    assert ts == pytest.approx(conn.frames[big - 1][0], abs=1e-6)
    assert session.state == "reset"
    assert session.sides[0].stream_bytes == 68 + size


# ---------------------------------------------------------------- a fresh SYN on a used 4-tuple


def second_connection(t0: float) -> h.Conn:
    """The same 4-tuple as ``h.Conn()``'s, opened again with other initial sequence numbers."""
    conn = h.Conn(t0=t0)
    conn.seq = [7000, 800_000]
    conn.open().handshakes().close()
    return conn


def reuse_capture(case: str) -> tuple[list[h.Frame], int]:
    """The frames of a ``case`` below, and the number of the last frame before the second SYN."""
    first = h.Conn()
    if case == "duplicate-syn":  # a retransmitted SYN after the listener spoke: same connection
        first.open().send(1, wb.handshake(h.HASH, h.PEER_B))
        first.emit(0, h.SYN, seq=first.seq[0] - 1, advance=False)
        first.send(0, wb.handshake(h.HASH, h.PEER_A)).send(0, wb.interested()).close()
        return first.frames, 0
    if case == "stray-syn":  # another ISN, the opener has sent nothing yet: not a new connection
        first.open().send(1, wb.handshake(h.HASH, h.PEER_B))
        first.emit(0, h.SYN, seq=5555)
        first.send(0, wb.handshake(h.HASH, h.PEER_A)).send(0, wb.interested()).close()
        return first.frames, 0
    if case == "syn-at-the-stream-s-end":  # its ISN + 1 is where the opener's stream stands
        first.open().handshakes()
        first.emit(0, h.SYN, seq=first.seq[0] - 1, advance=False)
        first.send(0, wb.interested()).close()
        return first.frames, 0
    if case == "after-one-byte":  # the opener had sent one byte: a new ISN is a new connection
        first.open().send(0, b"\x13")
    elif case == "after-a-close":  # closed without a byte from the opener
        first.open().close()
    elif case == "listener-only":  # the capture starts at the SYN-ACK; only the listener spoke
        first.open().send(1, wb.handshake(h.HASH, h.PEER_B))
        del first.frames[0]
    last = len(first.frames)
    return first.frames + second_connection(first.t + 1).frames, last


ONE_CONNECTION = {
    # case: (records as (session id, side, type), session states)
    "duplicate-syn": ([(1, 1, "handshake"), (1, 0, "handshake"), (1, 0, "interested")], ["closed"]),
    "stray-syn": ([(1, 1, "handshake"), (1, 0, "handshake"), (1, 0, "interested")], ["closed"]),
    "syn-at-the-stream-s-end": ([(1, 0, "handshake"), (1, 1, "handshake"), (1, 0, "interested")], ["closed"]),
}
NEW_CONNECTION = {
    "after-one-byte": ([(1, 0, "handshake"), (1, 1, "handshake")], ["closed"]),
    "after-a-close": ([(1, 0, "handshake"), (1, 1, "handshake")], ["closed"]),
    "listener-only": ([(1, 1, "handshake"), (2, 0, "handshake"), (2, 1, "handshake")], ["replaced", "closed"]),
}


@pytest.mark.parametrize("case", list(ONE_CONNECTION))
def test_a_syn_that_does_not_start_a_new_connection_is_absorbed(tmp_path, case):
    records, sessions = decoded(tmp_path, reuse_capture(case)[0])
    expected, states = ONE_CONNECTION[case]
    assert summary(records) == expected
    assert [s.state for s in sessions] == states
    assert [(s.sides[0].peer_id, s.sides[1].peer_id) for s in sessions] == [(h.PEER_A, h.PEER_B)]


@pytest.mark.parametrize("case", list(NEW_CONNECTION))
def test_a_fresh_syn_on_a_used_4_tuple_starts_a_new_session(tmp_path, case):
    frames, last = reuse_capture(case)
    records, sessions = decoded(tmp_path, frames)
    expected, states = NEW_CONNECTION[case]
    assert summary(records) == expected
    assert [s.state for s in sessions] == states
    assert (sessions[-1].sides[0].peer_id, sessions[-1].sides[1].peer_id) == (h.PEER_A, h.PEER_B)
    assert sessions[-1].start == pytest.approx(frames[last][0], abs=1e-6)  # the second SYN
    if len(sessions) == 2:
        # The replaced session ended with its own last packet: the new connection's bare
        # ACKs (taken on the fast path once a flow is known) are not counted as its.
        assert sessions[0].end == pytest.approx(frames[last - 1][0], abs=1e-6)


# ---------------------------------------------------------------- the idle sweep


def test_an_open_flow_is_closed_as_idle_only_past_the_idle_timeout():
    """Two open flows, both silent since t = 1000: still open at 100 s and at exactly
    IDLE_TIMEOUT, both closed as 'idle' past it; an unfinished message is reported at
    the frame number the sweep was given."""
    decoder = Decoder()
    talking = h.Conn(aport=40001).open().handshakes()
    talking.emit(0, h.PSH, b"\x00\x00\x00\x05\x04")  # a have message's first five bytes
    quiet = h.Conn(aport=40002).open().handshakes()
    number = feed(decoder, stamped(talking.frames + quiet.frames, 1000.0), 1)
    decoder.sweep(1001.0, number)  # the first sweep only notes its time
    states = []
    for now in (1100.0, 1000.0 + IDLE_TIMEOUT, 1000.5 + IDLE_TIMEOUT):
        decoder.sweep(now, number + 7)
        states.append([s.state for s in decoder.sessions])
    assert states == [["open", "open"], ["open", "open"], ["idle", "idle"]]
    assert [s.end for s in decoder.sessions] == [1000.0, 1000.0]
    first, second = decoder.sessions
    assert [(f.kind, f.side, f.frame) for f in first.findings] == [("truncated", "a", number + 7)]
    # Both flows join the same two peer ids, the first still open: b's handshake, the second
    # flow's last frame, makes a second connection between them (the original client's check).
    handshake_b = len(talking.frames) + len(quiet.frames)
    assert [(f.kind, f.side, f.frame) for f in second.findings] == [("duplicate_peer_id", "b", handshake_b)]
    assert [(r.session, r.frame, r.event.kind) for r in decoder.out if r.event.type == "finding"] == \
        [(second, handshake_b, "duplicate_peer_id"), (first, number + 7, "truncated")]


def test_a_flow_with_a_packet_since_the_previous_sweep_is_not_idle():
    """However far the clock moved between two sweeps (a frame stamped in the future, a
    step of the capturing host's clock), a flow that had a packet at or after the previous
    sweep is not closed; the sweep after that one closes it."""
    decoder = Decoder()
    conn = h.Conn().open().handshakes()
    number = feed(decoder, stamped(conn.frames, 1000.0), 1)
    decoder.sweep(1000.0, number)  # the previous sweep, at the time of the flow's last packet
    decoder.sweep(1000.0 + 2 * IDLE_TIMEOUT, number)
    assert [s.state for s in decoder.sessions] == ["open"]
    decoder.sweep(1001.0 + 2 * IDLE_TIMEOUT, number)
    assert [s.state for s in decoder.sessions] == ["idle"]


@pytest.mark.parametrize("silence,sessions", [(CLOSED_LINGER, 1), (CLOSED_LINGER + 0.5, 2)],
                         ids=["at-the-linger", "past-the-linger"])
def test_a_closed_flow_absorbs_late_retransmissions_for_the_closed_linger(silence, sessions):
    """A retransmitted handshake CLOSED_LINGER seconds after the close still lands on the
    closed flow and is dropped; later, the flow is forgotten and it starts a new one."""
    decoder = Decoder()
    conn = h.Conn().open().handshakes().close()
    frames = stamped(conn.frames, 1000.0)
    number = feed(decoder, frames, 1)
    decoder.sweep(1001.0, number)
    decoder.sweep(1000.0 + silence, number)
    feed(decoder, [(1000.0 + silence, frames[3][1])], number)  # frames[3]: a's handshake
    decoder.finish(number + 1)
    assert len(decoder.sessions) == sessions
    assert decoder.sessions[0].state == "closed"
    if sessions == 2:
        assert [f.kind for f in decoder.sessions[1].findings] == ["midstream"]


@pytest.mark.parametrize("silence,sessions", [(CLOSED_LINGER, 0), (CLOSED_LINGER + 0.5, 1)],
                         ids=["at-the-linger", "past-the-linger"])
def test_a_flow_that_is_not_bittorrent_is_forgotten_after_the_closed_linger(silence, sessions):
    """An HTTP flow stays in the table (its packets ignored) until CLOSED_LINGER seconds
    after its last packet; then its 4-tuple is free, and a BitTorrent handshake on it
    (its SYN not captured) is a session of its own."""
    decoder = Decoder()
    conn = h.Conn(bport=80).open()
    conn.send(0, b"GET /announce?info_hash=%00 HTTP/1.1\r\nHost: tracker\r\n\r\n")
    conn.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nd5:peerse")
    number = feed(decoder, stamped(conn.frames, 1000.0), 1)
    decoder.sweep(1001.0, number)
    decoder.sweep(1000.0 + silence, number)
    conn.send(0, wb.handshake(h.HASH, h.PEER_A))
    feed(decoder, [(1000.0 + silence, conn.frames[-1][1])], number)
    decoder.finish(number + 1)
    assert len(decoder.sessions) == sessions
    if sessions:
        assert decoder.sessions[0].sides[0].peer_id == h.PEER_A


def test_a_swept_utp_flow_frees_one_place_in_the_flow_table():
    """A uTP connection opened by its SYN is in the table under two of the opener's ids;
    sweeping it frees one place, not two: with room for two flows, the third TCP flow
    after it still evicts the least recently active one."""
    decoder = Decoder(limits=Limits(flows=2))
    x, s, r = 0x1234, 100, 500
    grams = udp_packets([(0, utp(ST_SYN, x, s, 0)), (1, utp(ST_STATE, x, r, s)),
                         (0, utp(ST_DATA, x + 1, s + 1, r - 1, wb.handshake(h.HASH, h.PEER_A)))])
    number = feed(decoder, [(1000.0, bytes(p)) for p in grams], 1)
    decoder.sweep(1001.0, number)
    decoder.sweep(1001.0 + IDLE_TIMEOUT, number)
    for i in range(3):
        conn = h.Conn(a=f"10.0.1.{i + 1}")
        number = feed(decoder, stamped(conn.open().handshakes().frames, 1002.0 + IDLE_TIMEOUT + i), number)
    assert [(s.transport, s.state) for s in decoder.sessions] == [
        ("utp", "idle"), ("tcp", "evicted"), ("tcp", "open"), ("tcp", "open")]


def land_session_cut_in_a_message(t: float) -> list[h.Frame]:
    """A socket connected to itself (source = destination): its SYN, then its handshake
    and the first five bytes of a have, all read as side b's."""
    land = h.Conn(b="10.0.0.1", bport=40000)
    land.emit(0, h.SYN)
    land.emit(0, h.PSH, wb.handshake(h.HASH, h.PEER_A) + b"\x00\x00\x00\x05\x04")
    return stamped(land.frames, t)


def test_a_land_flow_is_swept_like_any_other():
    """A land flow has a single key, on side 1: the sweep must still find it, close it
    as idle and report the message it was cut in."""
    decoder = Decoder()
    number = feed(decoder, land_session_cut_in_a_message(1000.0), 1)
    decoder.sweep(1001.0, number)
    decoder.sweep(1000.5 + IDLE_TIMEOUT, number + 3)
    (session,) = decoder.sessions
    assert session.state == "idle"
    assert [(f.kind, f.side, f.frame) for f in session.findings] == [("land", None, 2), ("truncated", "b", number + 3)]


def test_a_land_flow_open_at_the_end_of_the_capture_is_closed():
    decoder = Decoder()
    number = feed(decoder, land_session_cut_in_a_message(1000.0), 1)
    decoder.finish(number)
    (session,) = decoder.sessions
    assert [(f.kind, f.side, f.frame) for f in session.findings] == [("land", None, 2), ("truncated", "b", number)]
    assert [(r.side, r.frame, r.event.type) for r in decoder.out] == [(1, 2, "handshake"), (1, number, "finding")]


@pytest.mark.parametrize("keep", [None, False, True], ids=["default", "off", "on"])
def test_piece_payloads_are_kept_only_when_asked(keep):
    """A Decoder streams piece bytes past unless told to keep them (``extract``): by
    default a piece record carries no data."""
    decoder = Decoder() if keep is None else Decoder(keep_payload=keep)
    block = bytes(range(256)) * 4
    conn = h.Conn().open().handshakes()
    conn.send(1, wb.piece(2, 16384, block))
    feed(decoder, conn.frames, 1)
    (piece,) = [r.event for r in decoder.out if r.event.type == "piece"]
    assert (piece.index, piece.begin, piece.length, piece.missing) == (2, 16384, len(block), 0)
    assert piece.data == (block if keep else None)
