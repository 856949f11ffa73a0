"""Connections joined mid-stream, decoded on trial: a flow whose SYN was not captured and
that opens with no handshake is decoded while its parsers hunt for message boundaries,
and shown only once one direction has found a run of TRIAL_MESSAGES real messages
(keep-alives and unknown ids do not count) within TRIAL_BYTES; at most MAX_TRIALS flows
are on trial at once.

Why: what a mid-stream flow shows (its 'midstream' note and the frame it names, the
session's facts, which flows are shown at all) was not pinned by any test, as a mutation
run showed. Frames are packed with ``struct`` (``tests/hostile.py``), without SYNs.
"""
from __future__ import annotations

import pytest

import hostile as h
import wirebuild as wb
from inspector.limits import Limits
from inspector.pipeline import MAX_TRIALS, TRIAL_BYTES, CaptureDecode
from inspector.session import SessionFinding

JUNK = b"\xff" * 7  # no byte of it can start a message: the hunt skips all seven
RUN = wb.have(3) + wb.unchoke() + wb.interested()  # three messages: a run that shows the flow
RUN_RECORDS = ["finding", "have", "unchoke", "interested"]  # the resync finding first
RESYNC = "next message found after 7 bytes (the connection's start was not captured)"
MIDSTREAM = "the connection's start was not captured"


def decoded(tmp_path, frames: list[h.Frame], **kw) -> tuple[list, list]:
    """Records and sessions of ``frames`` written as a pcap and read by ``CaptureDecode``."""
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "trial.pcap", frames)), **kw)
    return list(decode), decode.sessions


def in_order(frames: list[h.Frame]) -> list[h.Frame]:
    """The frames restamped 1 ms apart, in the order given."""
    return [(h.T0 + i / 1000, data) for i, (_, data) in enumerate(frames)]


def types(records) -> list[str]:
    return [r.event.type for r in records]


def test_a_mid_stream_session_says_where_its_capture_started(tmp_path):
    """The 'midstream' note names the flow's first captured frame (here the third of the
    capture); the session is a plain TCP one whose opener is not known, starting then."""
    others = [h.Conn(aport=50000 + i).frame(0, h.SYN) for i in range(2)]  # two unrelated SYNs
    late = h.Conn()
    late.emit(0, h.PSH, JUNK + RUN)
    frames = in_order(others + late.frames)
    records, (session,) = decoded(tmp_path, frames)
    assert types(records) == RUN_RECORDS and {r.frame for r in records} == {3}
    assert session.findings == [SessionFinding("midstream", None, 3, MIDSTREAM),
                                SessionFinding("resync", "a", 3, RESYNC)]
    assert (session.id, session.transport, session.opener_known, session.encrypted) == (1, "tcp", False, False)
    assert session.start == pytest.approx(frames[2][0], abs=1e-6)
    assert (session.sides[0].addr, session.sides[1].addr) == ("10.0.0.1:40000", "10.0.0.2:6881")


def test_the_midstream_note_names_the_earliest_frame_held_of_either_side(tmp_path):
    """Both sides sent bytes before the flow was found not to open with a handshake (a's
    first byte could begin one): the note names a's frame, the first captured, even though
    b's frame is stamped earlier and holds bytes that sort first."""
    conn = h.Conn()
    conn.emit(0, h.PSH, b"\x13")
    conn.emit(1, h.PSH, b"\x01\xff\xff")
    conn.emit(0, h.PSH, JUNK + RUN)
    frames = [(h.T0 + 1.0, conn.frames[0][1]), (h.T0 + 0.5, conn.frames[1][1]), (h.T0 + 1.1, conn.frames[2][1])]
    records, (session,) = decoded(tmp_path, frames)
    # b's three bytes hold no message: at the end its hunt gives up, said as a finding
    assert [(r.side, r.event.type) for r in records] == [(0, t) for t in RUN_RECORDS] + [(1, "finding")]
    assert session.findings[0] == SessionFinding("midstream", None, 1, MIDSTREAM)


def test_bytes_released_with_the_first_ones_are_decoded_on_trial(tmp_path):
    """a's first byte (frame 1) could begin a handshake; its third segment (frame 2) comes
    before the second (frame 3), which releases both at once: the flow is found not to open
    with a handshake at the second, and the third, delivered with it, holds the run."""
    conn = h.Conn()
    start = conn.seq[0]
    conn.emit(0, h.PSH, b"\x13")
    conn.emit(0, h.PSH, RUN, seq=start + 1 + len(JUNK))
    conn.emit(0, h.PSH, JUNK, seq=start + 1)
    records, (session,) = decoded(tmp_path, conn.frames)
    assert [(r.frame, r.event.type) for r in records] == [(2, t) for t in RUN_RECORDS]
    assert records[0].event.detail == "next message found after 8 bytes (the connection's start was not captured)"
    assert session.sides[0].stream_bytes == 1 + len(JUNK) + len(RUN)


@pytest.mark.parametrize("tail,shown", [
    (wb.interested(), True),
    (wb.keepalive() + wb.keepalive(), False),
    (wb.raw(b"\x63"), False),  # id 99: an unknown message
], ids=["three-messages", "keepalives", "unknown"])
def test_keepalives_and_unknown_messages_do_not_count_toward_the_run(tmp_path, tail, shown):
    """A have and a request (enough for the hunt to resync), then a third message: only a
    real one shows the flow; keep-alives or an unknown id leave it unshown, to its end."""
    conn = h.Conn()
    conn.emit(0, h.PSH, JUNK + wb.have(3) + wb.request(3, 0, 16384) + tail).close()
    records, sessions = decoded(tmp_path, conn.frames)
    if shown:
        assert types(records) == ["finding", "have", "request", "interested"]
        assert len(sessions) == 1
    else:
        assert (records, sessions) == ([], [])


@pytest.mark.parametrize("junk,shown", [(TRIAL_BYTES, True), (TRIAL_BYTES + 1, False)],
                         ids=["at-the-bound", "past-the-bound"])
def test_a_run_must_come_within_trial_bytes(tmp_path, junk, shown):
    """TRIAL_BYTES of junk, then a run: shown. One byte more, and the trial is over before
    the run arrives."""
    conn = h.Conn()
    conn.send(0, b"\xff" * junk, mss=1024)
    conn.emit(0, h.PSH, RUN).close()
    records, sessions = decoded(tmp_path, conn.frames)
    if shown:
        assert types(records) == RUN_RECORDS
        assert sessions[0].sides[0].stream_bytes == junk + len(RUN)
    else:
        assert (records, sessions) == ([], [])


def test_at_most_max_trials_flows_are_on_trial_at_once(tmp_path):
    """MAX_TRIALS flows of junk are on trial: a flow with a run is then not tried, so not
    shown. Once they are reset, one is; with MAX_TRIALS - 1 on trial again, one more is;
    with MAX_TRIALS on trial (one more junk flow), the next is not."""
    frames: list[h.Frame] = []

    def junk_flows(first_port: int, count: int) -> list[h.Conn]:
        flows = [h.Conn(aport=first_port + i) for i in range(count)]
        for conn in flows:
            frames.append(conn.frame(0, h.PSH, JUNK))
        return flows

    def with_run(port: int) -> None:
        frames.append(h.Conn(aport=port).frame(0, h.PSH, JUNK + RUN))

    full = junk_flows(20000, MAX_TRIALS)
    with_run(30001)  # not tried
    frames.extend(conn.frame(0, h.RST) for conn in full)
    with_run(30002)  # tried and shown: no flow on trial
    junk_flows(21000, MAX_TRIALS - 1)
    with_run(30003)  # tried and shown: MAX_TRIALS - 1 on trial
    junk_flows(22000, 1)
    with_run(30004)  # not tried
    records, sessions = decoded(tmp_path, in_order(frames))
    assert [s.sides[0].addr for s in sessions] == ["10.0.0.1:30002", "10.0.0.1:30003"]
    assert [(r.session.id, r.event.type) for r in records] == [(1, t) for t in RUN_RECORDS] + [
        (2, t) for t in RUN_RECORDS]


def test_a_mid_stream_session_keeps_piece_payloads_when_asked(tmp_path):
    conn = h.Conn()
    conn.emit(0, h.PSH, JUNK + RUN + wb.piece(3, 0, b"abcd"))
    records, _ = decoded(tmp_path, conn.frames, keep_payload=True)
    (piece,) = [r.event for r in records if r.event.type == "piece"]
    assert (piece.index, piece.begin, piece.length, piece.data) == (3, 0, 4, b"abcd")


@pytest.mark.parametrize("limits,finding", [
    (Limits(message=64), ("oversize", "length prefix 101 above max_len 64; skipped")),
    (Limits(partial_total=64), ("limit", "a bitfield message of length 101: holding it would pass the bytes of "
                                         "unfinished messages held over all flows (--max-partial-total 64); skipped")),
], ids=["max-message", "max-partial-total"])
def test_a_mid_stream_session_keeps_the_decode_s_limits(tmp_path, limits, finding):
    """A 100-byte bitfield after the run: over ``--max-message 64`` it is skipped as oversize,
    over ``--max-partial-total 64`` it is not held; either way, no bitfield is reported."""
    conn = h.Conn()
    conn.emit(0, h.PSH, JUNK + RUN + wb.bitfield(bytes(100)))
    records, (session,) = decoded(tmp_path, conn.frames, limits=limits)
    assert types(records) == RUN_RECORDS + ["finding"]
    assert (records[-1].event.kind, records[-1].event.detail) == finding
    assert "bitfield" not in session.sides[0].messages


def test_a_first_segment_cut_by_the_snap_length_keeps_its_hole_and_what_follows(tmp_path):
    """The first captured segment alone shows the flow (a run, then a have cut by the
    snap length): the hole held with it and the next segment are decoded too."""
    late = h.Conn()
    whole = JUNK + RUN + wb.have(4)
    late.emit(0, h.PSH, whole[:-5], total_length=40 + len(whole))  # the IP length counts the 5 bytes cut
    late.seq[0] += 5
    late.emit(0, h.PSH, wb.unchoke())
    records, _ = decoded(tmp_path, late.frames)
    assert [(r.frame, r.event.type) for r in records] == [(1, t) for t in RUN_RECORDS] + [(1, "finding"), (2, "unchoke")]
    assert records[4].event.detail == "5 bytes not captured inside a message of length 5; framing kept"


def test_bytes_each_side_held_before_the_verdict_are_all_decoded(tmp_path):
    """Both sides had sent a byte before a's run showed the flow: b's byte, held, is the
    start of its handshake and must reach b's parser."""
    conn = h.Conn()
    conn.emit(0, h.PSH, b"\x13").emit(1, h.PSH, b"\x13")
    conn.emit(0, h.PSH, JUNK + RUN)
    conn.emit(1, h.PSH, wb.handshake(h.HASH, h.PEER_B)[1:] + wb.unchoke())
    records, (session,) = decoded(tmp_path, conn.frames)
    assert [(r.side, r.frame, r.event.type) for r in records][-2:] == [(1, 4, "handshake"), (1, 4, "unchoke")]
    assert records[-2].event.peer_id == h.PEER_B
    assert session.sides[1].stream_bytes == 68 + 5
