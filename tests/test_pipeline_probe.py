"""A new TCP flow's first bytes, held until ``inspector.detect`` says what the flow is.

* A hole while the flow is still being recognised decides it: a start that is lost
  cannot be recognised. Seen from its SYN, the flow is then not BitTorrent (nothing is
  shown); captured mid-stream, it goes on trial with the hole in its place.
* Held bytes that arrive together (a segment that fills the gap before segments held
  out of order) are all taken, and the bytes after the chunk that decided are decoded.
* A session joined mid-stream is noted at the frame of the last byte held before the
  verdict: the highest frame number, whatever the frames' capture times.
* Once an MSE flow's scan finds the plaintext handshake, the bytes after it in the same
  delivery are decoded by the parser that was just made.

Why: a mutation run of ``Decoder._probe`` and ``Decoder._deliver`` left these edits
unnoticed (the hole's verdict, the bytes after it, which held item is the last, the
parser not picked up after the scan). Frames are packed with ``struct``
(``tests/hostile.py``), 1 ms apart from T0 + 1 ms unless restamped.
"""
from __future__ import annotations

from pathlib import Path

import hostile as h
import wirebuild as wb
from inspector import events as ev
from inspector.pipeline import CaptureDecode, Record
from inspector.session import Session, SessionFinding
from test_pipeline_mse_scan import HS_A, HS_B, STEP4, mse_open

HS_A_PLAIN = wb.handshake(h.HASH, h.PEER_A)
HS_B_PLAIN = wb.handshake(h.HASH, h.PEER_B)
MIDSTREAM = "the connection's start was not captured"


def decoded(tmp_path: Path, frames: list[h.Frame]) -> tuple[list[Record], list[Session]]:
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "probe.pcap", frames)))
    records = list(decode)
    return records, decode.sessions


def seen(records: list[Record]) -> list[tuple[int, int, object]]:
    return [(r.side, r.frame, r.event) for r in records]


def test_a_lost_first_segment_makes_a_flow_seen_from_its_syn_not_bittorrent(tmp_path: Path) -> None:
    """a's handshake is sent in two segments; the first (20 bytes) is not captured, the
    second is (frame 4), and b's bare ACK (frame 5) acknowledges both: the hole is the
    first thing a's side delivers. A start that is lost cannot be recognised, so the flow
    is not BitTorrent: b's full handshake after it (frame 6) shows nothing either."""
    conn = h.Conn().open()
    conn.seq[0] += 20
    conn.send(0, HS_A_PLAIN[20:])  # 4
    conn.emit(1, 0)  # 5: ACK of all 68 bytes
    conn.send(1, HS_B_PLAIN)  # 6
    records, sessions = decoded(tmp_path, conn.close().frames)
    assert records == []
    assert sessions == []


def test_a_hole_while_probing_a_mid_stream_flow_reaches_its_trial(tmp_path: Path) -> None:
    """Captured mid-stream: a's first frame keeps 5 bytes that may start a handshake
    ('\\x13BitT', undecided) and the snap length cut the 50 after them. The cut decides
    (not a handshake start that can be recognised): the flow goes on trial, the 5 bytes
    then the 50-byte hole handed to the parser, which loses framing at the hole (frame 1)
    and finds the next message after it in frame 2 (have, unchoke, interested: a run)."""
    conn = h.Conn()
    head = HS_A_PLAIN[:5]
    conn.frames.append(conn.frame(0, h.PSH, head, total_length=20 + 20 + 5 + 50))  # 1
    conn.seq[0] += 50
    conn.send(0, wb.have(3) + wb.unchoke() + wb.interested())  # 2
    records, (session,) = decoded(tmp_path, conn.frames)
    hole = "50 bytes not captured; framing lost, looking for the next message"
    resync = "next message found after 50 bytes (after a hole)"
    assert seen(records) == [
        (0, 1, ev.Finding("hole", hole, "warning")),
        (0, 2, ev.Finding("resync", resync, "warning")),
        (0, 2, ev.Have(3)), (0, 2, ev.Unchoke()), (0, 2, ev.Interested()),
    ]
    assert session.findings == [SessionFinding("midstream", None, 1, MIDSTREAM),
                                SessionFinding("hole", "a", 1, hole),
                                SessionFinding("resync", "a", 2, resync)]
    assert session.sides[0].stream_bytes == 5 + 9 + 5 + 5


def test_held_segments_delivered_together_are_all_probed(tmp_path: Path) -> None:
    """Seen from its SYN, a sends its handshake's last 58 bytes and an interested first
    (frame 4, out of order), then the first 10 bytes (frame 5): both come out together,
    the first 10 (not yet a verdict) then the rest, which completes the handshake (so the
    handshake carries frame 4). Nothing of a's side is lost."""
    conn = h.Conn().open()
    start = conn.seq[0]
    conn.emit(0, h.PSH, HS_A_PLAIN[10:] + wb.interested(), seq=start + 10)  # 4
    conn.emit(0, h.PSH, HS_A_PLAIN[:10])  # 5
    conn.seq[0] = start + 68 + 5
    conn.send(1, HS_B_PLAIN)  # 6
    records, (session,) = decoded(tmp_path, conn.close().frames)
    # a's interested goes out before b's handshake (frame 6): that, and only that, is a finding.
    early = "interested sent before the other side's handshake"
    assert seen(records) == [
        (0, 4, ev.Handshake(bytes(8), h.HASH, h.PEER_A)), (0, 4, ev.Interested()),
        (0, 4, ev.Finding("before_handshake", early, "warning")),
        (1, 6, ev.Handshake(bytes(8), h.HASH, h.PEER_B)),
    ]
    assert session.findings == [SessionFinding("before_handshake", "a", 4, early)]
    assert (session.sides[0].stream_bytes, session.sides[1].stream_bytes) == (68 + 5, 68)


def test_a_mid_stream_session_is_noted_at_the_highest_frame_held(tmp_path: Path) -> None:
    """Captured mid-stream: a sends '\\x13Bi' (frame 1) and 'tTorrent' (frame 2), a
    handshake's start, undecided; b's full handshake (frame 3) decides. The last held
    item is frame 3's, by frame number: frame 2 was stamped later than frame 3 (its time
    the latest of the three) and its bytes sort after frame 3's ('t' > '\\x13'), yet the
    'midstream' note names frame 3."""
    conn = h.Conn()
    conn.send(0, HS_A_PLAIN[:3])  # 1
    conn.send(0, HS_A_PLAIN[3:11])  # 2
    conn.send(1, HS_B_PLAIN)  # 3
    conn.send(0, HS_A_PLAIN[11:] + wb.interested())  # 4
    frames = list(conn.frames)
    frames[1] = (h.T0 + 0.010, frames[1][1])  # after frames 3 and 4 (T0 + 3 ms, + 4 ms)
    records, (session,) = decoded(tmp_path, frames)
    assert seen(records) == [
        (1, 3, ev.Handshake(bytes(8), h.HASH, h.PEER_B)),
        (0, 4, ev.Handshake(bytes(8), h.HASH, h.PEER_A)), (0, 4, ev.Interested()),
    ]
    assert session.findings == [SessionFinding("midstream", None, 3, MIDSTREAM)]


def test_bytes_after_the_plaintext_handshake_in_one_delivery_are_decoded(tmp_path: Path) -> None:
    """MSE (frames 4-6); b's unchoke (frame 7) is captured before its step 4 + handshake
    (frame 8), so both come out together: the handshake found in frame 8's bytes makes
    the parsers, and the unchoke after it, in the same delivery, is decoded (frame 7)."""
    conn = mse_open()
    step4 = STEP4 + HS_B
    start = conn.seq[1]
    conn.emit(1, h.PSH, wb.unchoke(), seq=start + len(step4))  # 7
    conn.emit(1, h.PSH, step4)  # 8
    conn.seq[1] += 5
    conn.send(0, HS_A + wb.interested())  # 9
    records, (session,) = decoded(tmp_path, conn.close().frames)
    plain = "an MSE key exchange of {} bytes, then the handshake in plaintext (crypto_select chose plaintext)"
    assert seen(records) == [
        (1, 8, ev.Finding("mse_plaintext", plain.format(165), "note")),
        (1, 8, ev.Handshake(bytes(8), h.HASH, h.PEER_B)), (1, 7, ev.Unchoke()),
        (0, 9, ev.Finding("mse_plaintext", plain.format(194), "note")),
        (0, 9, ev.Handshake(bytes(8), h.HASH, h.PEER_A)), (0, 9, ev.Interested()),
    ]
    assert session.encrypted
    assert session.sides[1].stream_bytes == 121 + 44 + 68 + 5  # Yb + PadB, step 4, handshake, unchoke
