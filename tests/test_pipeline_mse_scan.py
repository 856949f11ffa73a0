"""MSE that selects plaintext: a TCP flow that opens with a message stream encryption key
exchange (two DH key flights, then step 3) is an encrypted session, and its first bytes
are searched for the plaintext handshake prefix that shows crypto_select chose
plaintext. The prefix may span TCP segments; once it is found in either direction, both
directions are decoded from their first byte, each parser hunting past the key exchange
(the 'resync' finding says how far), and their stream bytes are not counted twice. No
prefix within MSE_SCAN bytes on both sides, or 4 * MSE_SCAN on one, and the flow is
left encrypted: a handshake after that is not decoded.

Why: the records, frames, findings and byte counts of such a flow were not pinned by
any test, as a mutation run showed. Frames are packed with ``struct``
(``tests/hostile.py``); the key material is seeded random bytes.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

import hostile as h
import wirebuild as wb
from inspector import events as ev
from inspector.pipeline import MSE_SCAN, CaptureDecode, Record
from inspector.session import Session, SessionFinding

HS_A = wb.handshake(h.HASH, h.PEER_A)
HS_B = wb.handshake(h.HASH, h.PEER_B)
# Neither 0x00 (a length prefix's first byte) nor 0x13 (a handshake's) appears in the
# stand-ins for key material and RC4 output: no parser's hunt can stop inside them.
_NO_START = bytes.maketrans(b"\x00\x13", b"\x01\x14")


def noise(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n).translate(_NO_START)


KEY_A = noise(96 + 40, 1)  # Ya + PadA
KEY_B = noise(96 + 25, 2)  # Yb + PadB
STEP3 = noise(20 + 20 + 8 + 4 + 2 + 2 + 2, 3)  # HASH('req1'..), HASH('req2'..)^HASH('req3'..), VC, provide, lengths
STEP4 = noise(8 + 4 + 2 + 30, 4)  # VC, crypto_select (plaintext), len(PadD), PadD


def mse_open() -> h.Conn:
    """Frames 1-3 the TCP handshake, 4 Ya + PadA, 5 Yb + PadB, 6 step 3: an MSE flow."""
    conn = h.Conn().open()
    return conn.send(0, KEY_A).send(1, KEY_B).send(0, STEP3)


def decoded(tmp_path: Path, conn: h.Conn) -> tuple[list[Record], Session]:
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "mse.pcap", conn.frames)))
    records = list(decode)
    (session,) = decode.sessions
    return records, session


def seen(records: list[Record]) -> list[tuple[int, int, object]]:
    return [(r.side, r.frame, r.event) for r in records]


def found(skipped: int) -> ev.Finding:
    """A hunt past the key exchange to a plaintext handshake: a note, nothing was lost."""
    return ev.Finding("mse_plaintext", f"an MSE key exchange of {skipped} bytes, then the handshake in plaintext "
                                       "(crypto_select chose plaintext)")


def ts_of(frame: int) -> float:
    return h.T0 + frame / 1000  # Conn stamps its frames 1 ms apart, the first at T0 + 1 ms


def test_plaintext_handshake_after_the_key_exchange_decodes_both_sides(tmp_path: Path) -> None:
    """b's handshake (frame 7) shows the plaintext: both sides are decoded from their
    start, a's hunt past its 136 + 58 bytes of key exchange, b's past 121 + 44; each
    record carries the frame and time of the bytes that completed it."""
    conn = mse_open()
    conn.send(1, STEP4 + HS_B)  # 7
    conn.send(0, HS_A + wb.interested())  # 8
    conn.send(1, wb.unchoke())  # 9
    records, session = decoded(tmp_path, conn.close())
    a_skip, b_skip = len(KEY_A) + len(STEP3), len(KEY_B) + len(STEP4)
    assert (a_skip, b_skip) == (194, 165)
    assert seen(records) == [
        (1, 7, found(165)), (1, 7, ev.Handshake(bytes(8), h.HASH, h.PEER_B)),
        (0, 8, found(194)), (0, 8, ev.Handshake(bytes(8), h.HASH, h.PEER_A)), (0, 8, ev.Interested()),
        (1, 9, ev.Unchoke()),
    ]
    assert [r.ts for r in records] == pytest.approx([ts_of(r.frame) for r in records], abs=1e-6)
    assert session.findings == [SessionFinding("mse_plaintext", "b", 7, found(165).detail),
                                SessionFinding("mse_plaintext", "a", 8, found(194).detail)]
    assert found(165).severity == "note" and session.conformance.trusted  # the checks run from the handshakes
    assert session.encrypted and session.info_hash == h.HASH
    assert (session.sides[0].peer_id, session.sides[1].peer_id) == (h.PEER_A, h.PEER_B)
    # every byte once: the held ones are not counted again when they are decoded
    assert session.sides[0].stream_bytes == 136 + 58 + 68 + 5
    assert session.sides[1].stream_bytes == 121 + 44 + 68 + 5
    assert session.sides[0].messages == {"handshake": 1, "interested": 1}
    assert session.sides[1].messages == {"handshake": 1, "unchoke": 1}


def test_the_opener_may_show_the_plaintext_first(tmp_path: Path) -> None:
    """a's handshake (frame 8) comes first: b's held bytes (frames 5 and 7) go to its
    parser then, and its handshake in frame 9 is found past them."""
    conn = mse_open()
    conn.send(1, STEP4)  # 7
    conn.send(0, HS_A + wb.interested())  # 8
    conn.send(1, HS_B + wb.unchoke())  # 9
    records, session = decoded(tmp_path, conn.close())
    assert seen(records) == [
        (0, 8, found(194)), (0, 8, ev.Handshake(bytes(8), h.HASH, h.PEER_A)), (0, 8, ev.Interested()),
        (1, 9, found(165)), (1, 9, ev.Handshake(bytes(8), h.HASH, h.PEER_B)), (1, 9, ev.Unchoke()),
    ]
    assert [r.ts for r in records] == pytest.approx([ts_of(r.frame) for r in records], abs=1e-6)
    assert session.encrypted
    assert (session.sides[0].stream_bytes, session.sides[1].stream_bytes) == (194 + 73, 165 + 73)


def gave_up(held: int) -> ev.Finding:
    """What a side whose handshake went inside the encrypted part (MSE's initial payload)
    shows at the end: its hunt found nothing in the ``held`` bytes of key exchange."""
    return ev.Finding("resync", f"framing not found again in the {held} bytes since it was lost "
                                "(after an MSE key exchange); the rest of this direction is not decoded")


@pytest.mark.parametrize("cut", [1, 10, 19], ids=["cut1", "cut10", "cut19"])
def test_a_prefix_split_across_two_segments_is_found(tmp_path: Path, cut: int) -> None:
    """b's handshake prefix is cut after ``cut`` of its 20 bytes: frame 7 ends with the
    first part, frame 8 brings the rest."""
    conn = mse_open()
    conn.send(1, STEP4 + HS_B[:cut])  # 7
    conn.send(1, HS_B[cut:] + wb.unchoke())  # 8
    records, session = decoded(tmp_path, conn.close())  # 9, 10: the FINs
    assert seen(records) == [
        (1, 8, found(165)), (1, 8, ev.Handshake(bytes(8), h.HASH, h.PEER_B)), (1, 8, ev.Unchoke()),
        (0, 10, gave_up(194)),
    ]
    assert (session.sides[0].stream_bytes, session.sides[1].stream_bytes) == (194, 165 + 73)


def test_a_prefix_spread_over_tiny_segments_is_found(tmp_path: Path) -> None:
    """b sends step 4 (114 bytes here), its handshake and an unchoke 8 bytes a segment:
    frames 7 to 30. The prefix is whole once byte 134 has come (frame 7 + 133 // 8 = 23),
    the handshake at byte 182 (frame 29), the unchoke at byte 187 (frame 30)."""
    step4 = noise(8 + 4 + 2 + 100, 5)
    conn = mse_open()
    conn.send(1, step4 + HS_B + wb.unchoke(), mss=8)
    records, session = decoded(tmp_path, conn.close())  # 31, 32: the FINs
    assert seen(records) == [
        (1, 23, found(121 + 114)), (1, 29, ev.Handshake(bytes(8), h.HASH, h.PEER_B)), (1, 30, ev.Unchoke()),
        (0, 32, gave_up(194)),
    ]
    assert session.sides[1].stream_bytes == 121 + 187


@pytest.mark.parametrize("short,shown", [(0, False), (1, True)], ids=["at-the-bound", "one-short"])
def test_both_sides_are_scanned_up_to_mse_scan_bytes(tmp_path: Path, short: int, shown: bool) -> None:
    """Both sides send MSE_SCAN bytes (b one fewer when ``short``) with no prefix: the flow
    stays encrypted and b's handshake after them is not decoded; one byte short, it is."""
    conn = mse_open()
    conn.send(0, noise(MSE_SCAN - 136 - 58, 6))
    conn.send(1, noise(MSE_SCAN - 121 - short, 7))
    conn.send(1, HS_B + wb.unchoke())
    records, session = decoded(tmp_path, conn.close())
    if shown:
        assert [(r.side, r.event) for r in records] == [
            (1, found(MSE_SCAN - 1)), (1, ev.Handshake(bytes(8), h.HASH, h.PEER_B)), (1, ev.Unchoke()),
            (0, gave_up(MSE_SCAN))]
    else:
        assert records == [] and session.findings == []
        assert session.sides[1].messages == {} and session.info_hash is None
    assert session.encrypted
    assert (session.sides[0].stream_bytes, session.sides[1].stream_bytes) == (MSE_SCAN, MSE_SCAN - short + 73)


@pytest.mark.parametrize("short,shown", [(0, False), (1, True)], ids=["at-the-bound", "one-short"])
def test_one_side_is_scanned_up_to_four_times_mse_scan_bytes(tmp_path: Path, short: int, shown: bool) -> None:
    """b sent only its key: a's side is searched until it reaches 4 * MSE_SCAN bytes; a
    handshake from a just past that is not decoded, one byte earlier it is."""
    conn = mse_open()
    conn.send(0, noise(4 * MSE_SCAN - 136 - 58 - short, 8))
    conn.send(0, HS_A + wb.interested())
    conn.send(1, HS_B)
    records, session = decoded(tmp_path, conn.close())
    if shown:
        assert [(r.side, r.event) for r in records] == [
            (0, found(4 * MSE_SCAN - 1)), (0, ev.Handshake(bytes(8), h.HASH, h.PEER_A)), (0, ev.Interested()),
            (1, found(121)), (1, ev.Handshake(bytes(8), h.HASH, h.PEER_B))]
    else:
        assert records == [] and session.findings == [] and session.info_hash is None
    assert session.encrypted
    assert (session.sides[0].stream_bytes, session.sides[1].stream_bytes) == (4 * MSE_SCAN - short + 73, 121 + 68)


def test_a_prefix_is_not_pieced_together_across_a_hole(tmp_path: Path) -> None:
    """b's first 10 handshake bytes, 50 bytes not captured, then the handshake's rest: the
    two pieces read as the prefix only if the hole is ignored. The flow stays encrypted."""
    conn = mse_open()
    conn.send(1, STEP4 + HS_B[:10])
    conn.seq[1] += 50
    conn.send(1, HS_B[10:] + wb.unchoke())
    records, session = decoded(tmp_path, conn.close())
    assert records == [] and session.info_hash is None
    assert session.encrypted


def test_a_hole_while_hunting_past_the_key_exchange_is_a_loss_not_plaintext(tmp_path: Path) -> None:
    """Found in review: a's handshake, a request and a piece header go into a hole while its
    parser hunts past the key exchange, and the piece's payload happens to end in a handshake.
    What the hunt finds after the hole is a resync that names it, not mse_plaintext, and the
    checks stay off: b's piece answers a request the hole took, and must not read as
    unrequested."""
    payload = b"\x55" * 400 + HS_A
    piece = wb.piece(7, 0, payload)
    conn = mse_open()
    conn.send(1, STEP4 + HS_B + wb.unchoke())  # 7
    lost = HS_A + wb.request(0, 0, 16384) + piece[:13 + 100]
    conn.seq[0] += len(lost)
    conn.send(0, piece[13 + 100:])  # 8: after the hole
    conn.send(1, wb.keepalive())  # 9: acknowledges a's bytes past the hole, so it was a loss
    conn.send(1, wb.piece(0, 0, b"\x01" * 16384))
    records, session = decoded(tmp_path, conn.close())
    findings = [(r.side, r.event.kind, r.event.detail) for r in records if r.event.type == "finding"]
    assert findings == [
        (1, "mse_plaintext", found(165).detail),
        (0, "resync", f"the handshake found after {194 + len(lost) + len(payload) - 13 - 100 + 13 - len(HS_A)} "
                      "bytes (after an MSE key exchange, and a hole)"),
    ]
    assert not session.conformance.trusted

