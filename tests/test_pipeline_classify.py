"""What a session is given when its flow is found to be BitTorrent (``Decoder._classify``):
its notes (a start not captured, a socket connected to itself) with the frame that
showed them and their text, its end, and the decode's limits and shared budgets.

Why: a pre-screen of the pipeline's mutants found these unchecked for flows opened by a
SYN or a handshake (the mid-stream trial has its own tests). Frames are packed with
``struct`` (``tests/hostile.py``).
"""
from __future__ import annotations

import pytest

import hostile as h
import wirebuild as wb
from inspector.limits import Limits
from inspector.pipeline import CaptureDecode
from inspector.session import SessionFinding

LAND = ("source and destination are one address and port (a socket connected to itself, "
        "or forged): both directions read as side b")


def decoded(tmp_path, frames: list[h.Frame], **kw) -> tuple[list, list]:
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "classify.pcap", frames)), **kw)
    return list(decode), decode.sessions


def test_a_connection_joined_at_its_handshake_is_noted_at_its_first_frame(tmp_path):
    """No SYN captured, but the bytes start with a handshake: a session at once (no
    trial), noted as started mid-capture at the frame that opened it, ending with its
    last packet."""
    others = [h.Conn(aport=50000).frame(0, h.SYN)]
    late = h.Conn(t0=h.T0 + 1).handshakes()
    late.emit(0, h.PSH, wb.interested())
    frames = others + late.frames
    records, (session,) = decoded(tmp_path, frames)
    assert session.findings == [SessionFinding("midstream", None, 2, "the connection's start was not captured")]
    assert (session.id, session.opener_known) == (1, False)
    assert session.start == pytest.approx(frames[1][0], abs=1e-6)
    assert session.end == pytest.approx(frames[-1][0], abs=1e-6)
    assert [(r.frame, r.event.type) for r in records] == [(2, "handshake"), (3, "handshake"), (4, "interested")]


def test_a_land_session_says_why_both_directions_are_side_b(tmp_path):
    land = h.Conn(b="10.0.0.1", bport=40000)
    land.emit(0, h.SYN)
    land.emit(0, h.PSH, wb.handshake(h.HASH, h.PEER_A))
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "land.pcap", land.frames)))
    # As the handshake is handed out (live, before the capture ends), the session
    # already ends with the packet that showed it to be BitTorrent.
    ends = [record.session.end for record in decode]
    assert ends == [pytest.approx(land.frames[-1][0], abs=1e-6)]
    (session,) = decode.sessions
    assert session.findings == [SessionFinding("land", None, 2, LAND)]


def test_a_session_opened_by_its_syn_keeps_the_decode_s_message_bound(tmp_path):
    conn = h.Conn().open().handshakes()
    conn.send(1, wb.bitfield(bytes(100)))
    records, (session,) = decoded(tmp_path, conn.frames, limits=Limits(message=64))
    assert (records[-1].event.kind, records[-1].event.detail) == ("oversize", "length prefix 101 above max_len 64; skipped")
    assert "bitfield" not in session.sides[1].messages


def test_unfinished_messages_share_one_budget_over_all_sessions(tmp_path):
    """Two connections, each with 60 bytes of a 101-byte bitfield held when the capture
    ends: with --max-partial-total 100 the first is held, the second is not."""
    frames = []
    for port in (40001, 40002):
        conn = h.Conn(aport=port, t0=h.T0 + port - 40000).open().handshakes()
        conn.send(1, wb.bitfield(bytes(100))[:60])
        frames += conn.frames
    frames.sort()
    records, sessions = decoded(tmp_path, frames, limits=Limits(partial_total=100))
    limited = [(r.session.id, r.event.kind) for r in records if r.event.type == "finding" and r.event.kind == "limit"]
    assert limited == [(2, "limit")]
