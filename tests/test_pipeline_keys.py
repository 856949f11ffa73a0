"""uTP connection ids as flow keys, and holes in a session that has no parser yet.

* A uTP flow goes by the ids each side sends with: seen from its SYN, the opener sends
  X in the SYN and X + 1 after it, the responder X; captured without the SYN, the other
  side may send with the first sender's id - 1 or + 1 (modulo 2**16). Each key names
  a side: side a is the flow's first sender.
* A uTP flow starts at its first packet's time, and its directions are reassembled by
  packet number (``seq_nr``), not by byte offset.
* An MSE flow's bytes are held while its start is searched for a plaintext handshake:
  a hole then is noted on the session in words ("N bytes not captured", or "packets
  (size unknown) not captured" for lost uTP packets) and kept in place, so the parser
  that decodes the held bytes later sees it, and reports it at the hole's frame.
* A connection on trial that fails while its first bytes are handed over stops there.

Why: a mutation run of ``Decoder._open_utp`` and ``Decoder._deliver`` left these edits
unnoticed (a key on the wrong side, the responder's id + 1 key, the start time, the
reassembler type, the hole's note text, the hole held in the scan, the hole's item).

Frames are numbered from 1 in capture order; uTP times are whole seconds (exact), TCP
frames 1 ms apart (``tests/hostile.py``).
"""
from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

import hostile as h
import wirebuild as wb
from conftest import bt_handshake, bt_have, bt_msg, write_packets
from inspector import events as ev
from inspector.pipeline import TRIAL_BYTES, CaptureDecode, Record
from inspector.session import Session
from test_pipeline import HASH, PEER_A, PEER_B, ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN, udp_packets, utp
from test_pipeline_mse_scan import HS_B, KEY_A, KEY_B, STEP3, STEP4, mse_open
from test_pipeline_utp_flows import A, B, T0, decoded, found, opened, timed


def capture(tmp_path: Path, grams: list[tuple[int, bytes]], name: str = "utp.pcap") -> Path:
    return write_packets(tmp_path / name, timed(udp_packets(grams, a=A, b=B)))


def tcp_decoded(tmp_path: Path, frames: list[h.Frame]) -> tuple[list[Record], list[Session]]:
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "tcp.pcap", frames)))
    records = list(decode)
    return records, decode.sessions


# ---------------------------------------------------------------- which id is which side


def test_a_reset_from_the_opener_with_its_syn_id_is_the_opener_s(tmp_path: Path) -> None:
    """Seen from its SYN (X = 300), the opener a sends X + 1 after the SYN; a reset from a
    carrying X is still a's. Both sides have a packet waiting behind a lost one: a's
    have(1) (s + 2 lost), b's have(2) (r + 1 lost). The reset's ack_nr (r + 2) is a's
    acknowledgement of b's packets: it declares b's loss first; closing the flow then
    declares a's. Read as b's, the reset would acknowledge a's packets: a's loss first."""
    x, y, s, r = 300, 301, 10, 500
    grams = [*opened(x, s, r),                                  # 1-4: SYN, STATE, both handshakes
             (0, utp(ST_DATA, y, s + 3, r, bt_have(1))),        # 5
             (1, utp(ST_DATA, x, r + 2, s + 1, bt_have(2))),    # 6
             (0, utp(ST_RESET, x, s + 4, r + 2))]               # 7
    messages, findings, (session,) = decoded(capture(tmp_path, grams))
    assert [(r.side, r.frame, r.event.type) for r in messages][:2] == [(0, 3, "handshake"), (1, 4, "handshake")]
    holes = [(f.side, f.frame) for f in findings if f.event.kind == "hole"]
    assert holes == [(1, 7), (0, 7)]
    assert session.opener_known and session.state == "reset"


@pytest.mark.parametrize("x", [1000, 0xFFFF], ids=["plain", "wrap"])
def test_the_responder_may_be_captured_first_without_the_syn(tmp_path: Path, x: int) -> None:
    """Captured after the SYN, the responder (port 51413, id X) sends first: it is side a,
    and the opener's packets, with X + 1 (0 when X = 0xFFFF), are side b of the same
    session, which starts at the first packet (T0) and ends at the last (T0 + 4)."""
    y, s, r = (x + 1) & 0xFFFF, 40, 700
    grams = [(1, utp(ST_DATA, x, r, s - 1, bt_handshake(HASH, PEER_B))),
             (0, utp(ST_DATA, y, s, r, bt_handshake(HASH, PEER_A))),
             (1, utp(ST_DATA, x, r + 1, s, bt_msg(1))),
             (0, utp(ST_DATA, y, s + 1, r + 1, bt_msg(2))),
             (1, utp(ST_STATE, x, r + 1, s + 1))]
    messages, findings, sessions = decoded(capture(tmp_path, grams))
    assert [(r.side, r.frame, r.event.type) for r in messages] == [
        (0, 1, "handshake"), (1, 2, "handshake"), (0, 3, "unchoke"), (1, 4, "interested")]
    assert findings == []
    (session,) = sessions
    assert (session.sides[0].addr, session.sides[1].addr) == ("10.0.0.2:51413", "10.0.0.1:6881")
    assert (session.sides[0].peer_id, session.sides[1].peer_id) == (PEER_B, PEER_A)
    assert not session.opener_known
    assert (session.start, session.end) == (T0, T0 + 4)


def test_a_utp_flow_starts_at_its_syn_s_time(tmp_path: Path) -> None:
    grams = [*opened(300), (0, utp(ST_DATA, 301, 12, 500, bt_msg(2)))]
    path = write_packets(tmp_path / "late.pcap", timed(udp_packets(grams, a=A, b=B), t0=T0 + 30))
    _, _, (session,) = decoded(path)
    assert (session.start, session.end) == (T0 + 30, T0 + 34)


def test_utp_packets_are_put_in_order_by_packet_number(tmp_path: Path) -> None:
    """b's handshake (68 bytes) in packets r, r + 1, r + 2 of 60, 1 and 7 bytes, captured
    r + 2, r, r + 1 (frames 4, 5, 6): packet numbers, not byte offsets, say where each
    goes. Its last 7 bytes, which complete it, came in frame 4."""
    x, y, s, r = 300, 301, 10, 500
    hs_b = bt_handshake(HASH, PEER_B)
    grams = [(0, utp(ST_SYN, x, s, 0)), (1, utp(ST_STATE, x, r, s)),
             (0, utp(ST_DATA, y, s + 1, r - 1, bt_handshake(HASH, PEER_A))),
             (1, utp(ST_DATA, x, r + 2, s + 1, hs_b[61:])),        # 4
             (1, utp(ST_DATA, x, r, s + 1, hs_b[:60])),            # 5
             (1, utp(ST_DATA, x, r + 1, s + 1, hs_b[60:61])),      # 6
             (1, utp(ST_DATA, x, r + 3, s + 1, bt_msg(1))),        # 7
             (0, utp(ST_FIN, y, s + 2, r + 3)), (1, utp(ST_FIN, x, r + 4, s + 2))]
    messages, findings, (session,) = decoded(capture(tmp_path, grams))
    assert [(r.side, r.frame, r.event.type) for r in messages] == [
        (0, 3, "handshake"), (1, 4, "handshake"), (1, 7, "unchoke")]
    assert findings == []
    assert session.sides[1].peer_id == PEER_B and session.state == "closed"


# ---------------------------------------------------------------- holes before a parser


def test_lost_utp_packets_of_an_encrypted_session_are_noted_as_packets(tmp_path: Path) -> None:
    """An MSE uTP connection (a's key flight, b's, a's step 3 in 1000-byte packets); a's
    packet s + 3 is not captured, and b's STATE acking s + 4 (frame 7) says it was lost.
    uTP cannot tell how many bytes went missing: the note says packets."""
    rng = random.Random(1)
    x, y, s, r = 300, 301, 10, 500
    one, two, three = rng.randbytes(200), rng.randbytes(180), rng.randbytes(3000)
    grams = [(0, utp(ST_SYN, x, s, 0)), (1, utp(ST_STATE, x, r, s)),
             (0, utp(ST_DATA, y, s + 1, r - 1, one)), (1, utp(ST_DATA, x, r, s + 1, two)),
             (0, utp(ST_DATA, y, s + 2, r, three[:1000])),       # 5
             (0, utp(ST_DATA, y, s + 4, r, three[2000:])),       # 6: s + 3 was lost
             (1, utp(ST_STATE, x, r + 1, s + 4)),                # 7
             (0, utp(ST_FIN, y, s + 5, r)), (1, utp(ST_FIN, x, r + 1, s + 5))]
    messages, _, (session,) = decoded(capture(tmp_path, grams))
    assert messages == []
    assert session.encrypted and session.state == "closed"
    assert found(session, "hole") == [("a", 7, "packets (size unknown) not captured")]
    assert session.sides[0].stream_bytes == 2200


def test_a_hole_in_an_mse_flow_s_first_bytes_reaches_the_parser_at_its_frame(tmp_path: Path) -> None:
    """MSE (frames 4-6), then a's piece header and its block's first 100 bytes (frame 7);
    the block's last 900 bytes are not captured; a's have(2..4) come (frame 8). b's step
    4 (frame 9) acknowledges them all: the hole is a's, at frame 9, noted in words while
    no plaintext has been seen. b's handshake (frame 10) shows it: a's bytes are decoded
    from their start, past the 194 bytes of key exchange, the hole in place inside the
    piece. A piece alone is not enough to resume at; the have after it, past the hole,
    is (frame 8). The hole's finding and the piece it completed carry the hole's frame."""
    piece = wb.piece(1, 0, b"\x55" * 1000)
    conn = mse_open()
    conn.send(0, piece[:13 + 100])  # 7
    conn.seq[0] += 900
    conn.send(0, wb.have(2) + wb.have(3) + wb.have(4))  # 8
    conn.send(1, STEP4)  # 9
    conn.send(1, HS_B + wb.unchoke())  # 10
    records, (session,) = tcp_decoded(tmp_path, conn.close().frames)  # 11, 12: the FINs
    a_skip, b_skip = len(KEY_A) + len(STEP3), len(KEY_B) + len(STEP4)
    assert (a_skip, b_skip) == (194, 165)
    a_resync = "next message found after 194 bytes (after an MSE key exchange, and a hole)"
    a_hole = "900 bytes of piece 1:0 (1000 bytes) not captured"
    b_plain = "an MSE key exchange of 165 bytes, then the handshake in plaintext (crypto_select chose plaintext)"
    assert [(r.side, r.frame, r.event) for r in records] == [
        (0, 8, ev.Finding("resync", a_resync)),
        (0, 9, ev.Finding("hole", a_hole)), (0, 9, ev.Piece(1, 0, 1000, missing=900)),
        (0, 8, ev.Have(2)), (0, 8, ev.Have(3)), (0, 8, ev.Have(4)),
        (1, 10, ev.Finding("mse_plaintext", b_plain)), (1, 10, ev.Handshake(bytes(8), h.HASH, h.PEER_B)),
        (1, 10, ev.Unchoke()),
    ]
    assert [r.ts for r in records] == pytest.approx([h.T0 + r.frame / 1000 for r in records], abs=1e-6)
    assert found(session, "hole") == [("a", 9, "900 bytes not captured"), ("a", 9, a_hole)]
    assert session.encrypted and not session.conformance.trusted
    assert session.sides[0].stream_bytes == 194 + 113 + 27


def test_a_trial_that_fails_on_its_first_bytes_takes_no_more(tmp_path: Path) -> None:
    """Captured mid-connection: a's first segment holds 41,000 zero bytes (keepalives at
    best) and 100 more the capture cut off. Its bytes alone pass TRIAL_BYTES without a
    run of messages: the trial ends (nothing is shown), and the cut that follows them in
    the same delivery is dropped, not decoded for a session that is no longer there."""
    payload = bytes(41_000)
    assert len(payload) > TRIAL_BYTES
    frame = h.tcp_frame(h.ip4("10.0.0.1"), h.ip4("10.0.0.2"), 40000, 6881, 5000, 9000, h.ACK | h.PSH,
                        payload, total_length=20 + 20 + len(payload) + 100)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)  # pcap, Ethernet
    path = tmp_path / "cut.pcap"
    path.write_bytes(header + h.record(h.T0, frame, orig=len(frame) + 100))
    decode = CaptureDecode(str(path))
    assert list(decode) == []
    assert decode.sessions == []
