"""Every finding kind, produced from bytes (issue 12, item 4).

Planted bugs that never raised ``info_hash_mismatch`` or ``self_connection`` survived the
suite: the tests that built those connections looked at kinds only, or not through the
command. Here each kind README.md names (and ``inspector.events.SEVERITY`` grades) gets
a connection of its own, built frame by frame (``hostile.Conn``, ``wirebuild``), all in
one capture, and ``btshark read --sessions -T json`` must list exactly the findings
written below for it: kind, severity, side (``a`` the opener, ``b`` the other, null for
the connection) and the frame, each reasoned from how the bytes were laid out.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import hostile
import wirebuild as wb
from conftest import btshark_ok
from inspector.events import SEVERITY

PSH, FIN = hostile.PSH, hostile.FIN
T0 = hostile.T0
HASH = bytes(range(20))
OTHER_HASH = bytes(range(1, 21))
RESERVED = bytes.fromhex("0000000000100005")  # BEP 10, BEP 6 fast, BEP 5 dht


Expected = tuple[str, str, str | None, int, str]  # kind, severity, side, frame, a part of the detail


@dataclass
class Case:
    """One connection of the capture (its opener's address) and the findings its session must
    list, frames counted from the case's first frame."""

    opener: str
    frames: list[hostile.Frame]
    findings: list[Expected]


def peer(n: int, side: str) -> bytes:
    """A peer id of its own for each case and side, so no two cases share one."""
    return f"-LT2110-{side}{n:011d}".encode()


def opener(n: int) -> str:
    return f"10.1.{n}.1:{40000 + n}"


def conn(n: int, **kw) -> hostile.Conn:
    return hostile.Conn(a=f"10.1.{n}.1", b=f"10.1.{n}.2", aport=40000 + n, bport=6881, t0=T0 + n, **kw)


def opened(n: int) -> hostile.Conn:
    """SYN, SYN-ACK, ACK (frames 1-3), then both handshakes (frames 4 and 5)."""
    c = conn(n).open()
    c.send(0, wb.handshake(HASH, peer(n, "a"), RESERVED)).send(1, wb.handshake(HASH, peer(n, "b"), RESERVED))
    return c


def bad_protocol(n: int) -> Case:
    c = conn(n).open().send(0, wb.handshake(HASH, peer(n, "a"), RESERVED))
    c.send(1, wb.handshake(HASH, peer(n, "b"), RESERVED, pstr=b"BitTorrent protocoX"))  # frame 5
    return Case(opener(n), c.close().frames, [("bad_protocol", "error", "b", 5, "protocoX")])


def oversize(n: int) -> Case:
    c = opened(n)
    c.send(1, wb.raw(b"\x07" + bytes(8), length=1 << 25))  # frame 6: a length prefix of 32 MiB
    # Its bytes are counted past; b's FIN (frame 8, after a's) ends the stream 32 MiB short of them.
    return Case(opener(n), c.close().frames, [("oversize", "error", "b", 6, str(1 << 25)),
                                              ("truncated", "warning", "b", 8, "short of the end")])


def malformed(n: int) -> Case:
    c = opened(n)
    c.send(0, wb.raw(b"\x04" + bytes(5)))  # frame 6: a have of 6 bytes, 5 expected
    return Case(opener(n), c.close().frames, [("malformed", "error", "a", 6, "have with length 6")])


def bad_bencode(n: int) -> Case:
    c = opened(n)
    c.send(1, wb.extended(0, b"d3:foo"))  # frame 6: a dictionary cut short
    return Case(opener(n), c.close().frames, [("bad_bencode", "error", "b", 6, "extended message 0")])


def info_hash_mismatch(n: int) -> Case:
    c = conn(n).open().send(0, wb.handshake(HASH, peer(n, "a"), RESERVED))
    c.send(1, wb.handshake(OTHER_HASH, peer(n, "b"), RESERVED))  # frame 5
    return Case(opener(n), c.close().frames, [("info_hash_mismatch", "error", "b", 5, OTHER_HASH.hex())])


def self_connection(n: int) -> Case:
    c = conn(n).open().send(0, wb.handshake(HASH, peer(n, "a"), RESERVED))
    c.send(1, wb.handshake(HASH, peer(n, "a"), RESERVED))  # frame 5: the opener's own peer id
    return Case(opener(n), c.close().frames, [("self_connection", "error", "b", 5, peer(n, "a").hex())])


def hole(n: int) -> Case:
    c = opened(n)
    c.send(0, wb.request(0, 0, 3000))  # frame 6
    block = wb.piece(0, 0, bytes(3000))
    c.emit(1, PSH, block[:1000])  # frame 7
    c.seq[1] += 1000  # bytes 1000-1999 sent, not captured
    c.emit(1, PSH, block[2000:])  # frame 8
    c.emit(0, hostile.ACK)  # frame 9: a acknowledges all of it, so the gap was a loss
    # b never unchoked a: the request is a finding of its own (kept: the loss came after it).
    return Case(opener(n), c.close().frames, [("request_while_choked", "error", "a", 6, "never unchoked"),
                                              ("hole", "warning", "b", 9, "1000 bytes of piece 0:0")])


def truncated(n: int) -> Case:
    c = opened(n)
    c.send(1, wb.piece(1, 0, bytes(3000))[:1013])  # frame 6: the header and 1000 of 3000 block bytes
    c.emit(0, FIN)  # frame 7
    c.emit(1, FIN)  # frame 8: b's stream, and the connection, end 2000 bytes short
    return Case(opener(n), c.frames, [("truncated", "warning", "b", 8, "2000 bytes short")])


def midstream(n: int) -> Case:
    c = conn(n)  # no SYN captured: the first frame is a's handshake
    c.send(0, wb.handshake(HASH, peer(n, "a"), RESERVED)).send(1, wb.handshake(HASH, peer(n, "b"), RESERVED))
    c.send(0, wb.interested())
    return Case(opener(n), c.close().frames, [("midstream", "warning", None, 1, "start was not captured")])


def resync(n: int) -> Case:
    c = opened(n)
    c.send(1, wb.bitfield(b"\xff"))  # frame 6: 8 pieces
    c.send(1, wb.have(1) + wb.have(2))  # frame 7
    c.seq[1] += len(wb.have(3) + wb.have(4))  # between whole messages: sent, not captured
    c.send(1, wb.have(5) + wb.have(6) + wb.have(7))  # frame 8: a run a resync can confirm
    c.emit(0, hostile.ACK)  # frame 9: acknowledges past the gap, so it was a loss
    # The loss is known at frame 9; the framing is found again in the bytes frame 8 carried.
    return Case(opener(n), c.close().frames, [("hole", "warning", "b", 9, "framing lost"),
                                              ("resync", "warning", "b", 8, "found")])


def mse_plaintext(n: int) -> Case:
    """MSE whose crypto_select chose plaintext: 136 + 60 bytes of key exchange from a (frames
    4 and 6), 121 + 44 from b (frames 5 and 7, b's handshake after them in 7), then a's
    handshake (frame 8). Nothing lost: the checks run, and a's request while b chokes it
    (frame 9) is an error, as in a plaintext connection."""
    c = conn(n).open()
    c.send(0, mse_noise(96 + 40, 1)).send(1, mse_noise(96 + 25, 2)).send(0, mse_noise(60, 3))
    c.send(1, mse_noise(44, 4) + wb.handshake(HASH, peer(n, "b"), RESERVED))  # frame 7
    c.send(0, wb.handshake(HASH, peer(n, "a"), RESERVED))  # frame 8
    c.send(0, wb.request(0, 0, 16384))  # frame 9
    return Case(opener(n), c.close().frames, [("mse_plaintext", "note", "b", 7, "key exchange of 165 bytes"),
                                              ("mse_plaintext", "note", "a", 8, "key exchange of 196 bytes"),
                                              ("request_while_choked", "error", "a", 9, "never unchoked")])


def mse_noise(n: int, seed: int) -> bytes:
    """Stand-ins for key material and RC4 output, with no byte a message could start at (0x00, 0x13)."""
    return random.Random(seed).randbytes(n).translate(bytes.maketrans(b"\x00\x13", b"\x01\x14"))


def duplicate_peer_id(n: int) -> list[Case]:
    """The same peer id, on the same torrent, from a second host while the first session is open."""
    first = conn(n).open()
    first.send(0, wb.handshake(HASH, peer(n, "a"), RESERVED)).send(1, wb.handshake(HASH, peer(n, "b"), RESERVED))
    second = hostile.Conn(a=f"10.1.{n}.3", b=f"10.1.{n}.2", aport=40000 + n, bport=6881, t0=first.t).open()
    second.send(0, wb.handshake(HASH, peer(n, "a"), RESERVED))  # frame 4 of the second
    second.send(1, wb.handshake(HASH, peer(n, "c"), RESERVED)).close()
    opening = list(first.frames)
    first.frames.clear()
    first.t = second.t
    return [Case(opener(n), opening, []),
            Case(f"10.1.{n}.3:{40000 + n}", second.frames,
                 [("duplicate_peer_id", "error", "a", 4, f"also used by {opener(n)}")]),
            Case(opener(n), first.close().frames, [])]


def bencode_lenient(n: int) -> Case:
    c = opened(n)
    c.send(0, wb.extended(0, b"d1:v1:x1:md6:ut_pexi1eee"))  # frame 6: "v" before "m", as uTorrent sends
    return Case(opener(n), c.close().frames, [("bencode_lenient", "note", "a", 6, "extended message 0")])


def unnamed_extension(n: int) -> Case:
    c = opened(n)
    c.send(0, wb.extended(5, b"\x01\x02\x03"))  # frame 6: no extension handshake of b's was captured
    return Case(opener(n), c.close().frames, [("unnamed_extension", "note", "a", 6, "extended message 5"),
                                              ("unannounced_extension", "error", "a", 6, "never sent an extension")])


def limit(n: int) -> Case:
    c = opened(n)
    # Above 1 KiB: frames 6 and 7 (1448 bytes a segment); complete at frame 7.
    c.send(0, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 1}, b"pad": bytes(2000)})))
    return Case(opener(n), c.close().frames, [("limit", "warning", "a", 7, "--max-bencode-size")])


def land(n: int) -> Case:
    """Source = destination: one stream, read as side b (README); noted when the connection is
    recognised, by the handshake in frame 2 (a SYN alone makes no session)."""
    c = hostile.Conn(a=f"10.1.{n}.1", b=f"10.1.{n}.1", aport=7000, bport=7000, t0=T0 + n)
    c.emit(0, hostile.SYN)  # frame 1
    c.send(0, wb.handshake(HASH, peer(n, "a"), RESERVED))  # frame 2
    return Case(f"10.1.{n}.1:7000", c.frames, [("land", "note", None, 2, "source and destination")])


# -- what a peer did wrong (inspector.conformance) --------------------------------------

NO_FAST = bytes.fromhex("0000000000100001")  # BEP 10 and DHT, not BEP 6
NO_EXT = bytes.fromhex("0000000000000005")  # BEP 6 and DHT, not BEP 10
PIECE_LENGTH = 16384
LAST_PIECE = 1000
INFO = {b"name": b"kinds.bin", b"piece length": PIECE_LENGTH, b"length": 2 * PIECE_LENGTH + LAST_PIECE,
        b"pieces": bytes(20) * 3}  # three pieces, none of whose bytes hash to zeros
TORRENT_HASH = hashlib.sha1(wb.bencode(INFO)).digest()


def opened_with(n: int, a: bytes = RESERVED, b: bytes = RESERVED, info_hash: bytes = HASH) -> hostile.Conn:
    c = conn(n).open()
    return c.send(0, wb.handshake(info_hash, peer(n, "a"), a)).send(1, wb.handshake(info_hash, peer(n, "b"), b))


def request_while_choked(n: int) -> Case:
    c = opened(n).send(0, wb.interested())  # frame 6
    c.send(0, wb.request(0, 0, PIECE_LENGTH))  # frame 7: b never unchoked a
    return Case(opener(n), c.close().frames, [("request_while_choked", "error", "a", 7, "never unchoked")])


def unrequested_piece(n: int) -> Case:
    c = opened(n).send(1, wb.unchoke())  # frame 6
    c.send(1, wb.piece(0, 0, bytes(100)))  # frame 7: nobody asked for it
    return Case(opener(n), c.close().frames, [("unrequested_piece", "error", "b", 7, "index 0 begin 0 length 100")])


def cancelled_piece(n: int) -> Case:
    c = opened(n).send(1, wb.unchoke())  # frame 6
    c.send(0, wb.request(0, 0, 1000)).send(0, wb.cancel(0, 0, 1000))  # frames 7, 8
    c.send(1, wb.piece(0, 0, bytes(1000)))  # frame 9: sent before the cancel arrived, say
    return Case(opener(n), c.close().frames, [("cancelled_piece", "note", "b", 9, "cancelled")])


def unrequested_reject(n: int) -> Case:
    c = opened(n).send(1, wb.reject(2, 0, PIECE_LENGTH))  # frame 6
    return Case(opener(n), c.close().frames, [("unrequested_reject", "error", "b", 6, "never requested")])


def bad_index(n: int) -> Case:
    c = opened(n).send(1, wb.bitfield(b"\xff"))  # frame 6: room for 8 pieces
    c.send(1, wb.have(8))  # frame 7
    return Case(opener(n), c.close().frames, [("bad_index", "error", "b", 7, "have index 8")])


def bad_bitfield(n: int) -> Case:
    c = opened_with(n, info_hash=TORRENT_HASH)  # the --torrent's three pieces
    c.send(1, wb.bitfield(b"\xe1"))  # frame 6: pieces 0-2, and a spare bit
    return Case(opener(n), c.close().frames, [("bad_bitfield", "error", "b", 6, "spare bits")])


def second_bitfield(n: int) -> Case:
    c = opened(n).send(1, wb.bitfield(b"\xf0")).send(1, wb.bitfield(b"\xff"))  # frames 6, 7
    return Case(opener(n), c.close().frames, [("second_bitfield", "warning", "b", 7, "after this side's bitfield")])


def late_bitfield(n: int) -> Case:
    c = opened(n).send(1, wb.unchoke()).send(1, wb.bitfield(b"\xff"))  # frames 6, 7
    return Case(opener(n), c.close().frames, [("late_bitfield", "warning", "b", 7, "message 2")])


def fast_without_bit(n: int) -> Case:
    c = opened_with(n, b=NO_FAST).send(1, wb.have_all())  # frame 6
    return Case(opener(n), c.close().frames, [("fast_without_bit", "error", "b", 6, "side b's handshake")])


def extended_without_bit(n: int) -> Case:
    c = opened_with(n, a=NO_EXT).send(0, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 1}})))  # frame 6
    return Case(opener(n), c.close().frames, [("extended_without_bit", "error", "a", 6, "side a's handshake")])


def unannounced_extension(n: int) -> Case:
    c = opened(n).send(1, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 1}})))  # frame 6: b takes ut_pex as 1
    c.send(0, wb.extended(2, wb.bencode({b"added": b""})))  # frame 7
    return Case(opener(n), c.close().frames, [("unannounced_extension", "error", "a", 7, "announced 1 (ut_pex)")])


def odd_request(n: int) -> Case:
    c = opened(n).send(1, wb.unchoke())  # frame 6
    c.send(0, wb.request(0, 100, PIECE_LENGTH))  # frame 7
    return Case(opener(n), c.close().frames, [("odd_request", "note", "a", 7, "at begin 100")])


def before_handshake(n: int) -> Case:
    c = conn(n).open().send(0, wb.handshake(HASH, peer(n, "a"), RESERVED))  # frame 4
    c.send(0, wb.interested())  # frame 5, before b's handshake (frame 6)
    c.send(1, wb.handshake(HASH, peer(n, "b"), RESERVED))
    return Case(opener(n), c.close().frames, [("before_handshake", "warning", "a", 5, "interested")])


def silence(n: int) -> Case:
    c = opened(n)
    c.t += 150  # neither side says anything for two and a half minutes
    c.send(0, wb.keepalive())  # frame 6: both were silent too long; a speaks again
    return Case(opener(n), c.close().frames, [("silence", "note", "a", 6, "side a sent nothing for 150 s"),
                                              ("silence", "note", "b", 6, "side b sent nothing for 150 s")])


def bad_piece_hash(n: int) -> Case:
    c = opened_with(n, info_hash=TORRENT_HASH).send(1, wb.unchoke())  # frame 6
    c.send(0, wb.request(2, 0, LAST_PIECE))  # frame 7: the last piece, whole
    c.send(1, wb.piece(2, 0, bytes(LAST_PIECE)))  # frame 8: zeros, which piece 2's hash is not
    return Case(opener(n), c.close().frames, [("bad_piece_hash", "error", "b", 8, "piece 2 does not match")])


BUILDERS: dict[str, Callable[[int], Case | list[Case]]] = {
    "bad_protocol": bad_protocol, "oversize": oversize, "malformed": malformed, "bad_bencode": bad_bencode,
    "info_hash_mismatch": info_hash_mismatch, "self_connection": self_connection, "hole": hole,
    "truncated": truncated, "midstream": midstream, "resync": resync, "mse_plaintext": mse_plaintext,
    "duplicate_peer_id": duplicate_peer_id,
    "bencode_lenient": bencode_lenient, "unnamed_extension": unnamed_extension, "limit": limit, "land": land,
    "request_while_choked": request_while_choked, "unrequested_piece": unrequested_piece,
    "cancelled_piece": cancelled_piece, "unrequested_reject": unrequested_reject, "bad_index": bad_index,
    "bad_bitfield": bad_bitfield, "second_bitfield": second_bitfield, "late_bitfield": late_bitfield,
    "fast_without_bit": fast_without_bit, "extended_without_bit": extended_without_bit,
    "unannounced_extension": unannounced_extension, "odd_request": odd_request,
    "before_handshake": before_handshake, "bad_piece_hash": bad_piece_hash,
    "silence": silence,  # last: its clock jumps two and a half minutes
}
# The replayer's: a peer that answered with another peer id than the one dialled. A capture
# does not say which peer id was dialled, so the inspector never raises it.
NOT_FROM_CAPTURES = {"peer_id_mismatch"}
README_SEVERITY = {  # README.md, "Lines starting !! are findings, each with a severity"
    "error": {"bad_protocol", "oversize", "malformed", "bad_bencode", "info_hash_mismatch", "self_connection",
              "duplicate_peer_id", "request_while_choked", "unrequested_piece", "unrequested_reject", "bad_index",
              "bad_bitfield", "fast_without_bit", "extended_without_bit",
              "unannounced_extension", "bad_piece_hash"},
    "warning": {"hole", "truncated", "midstream", "resync", "limit", "late_bitfield", "before_handshake",
                "second_bitfield"},
    "note": {"bencode_lenient", "unnamed_extension", "land", "mse_plaintext", "cancelled_piece", "odd_request",
             "silence"},
}
LIMIT_OPTIONS = ("--max-bencode-size", "1k")  # only the limit case's body is above it


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, dict[str, list[Expected]]]]:
    """One capture of every case; per kind, per opener, the findings expected (frames in the capture)."""
    frames: list[hostile.Frame] = []
    expected: dict[str, dict[str, list[Expected]]] = {}
    for n, (kind, build) in enumerate(BUILDERS.items(), start=1):
        cases = build(n)
        for case in cases if isinstance(cases, list) else [cases]:
            mine = expected.setdefault(kind, {}).setdefault(case.opener, [])
            mine += [(k, sev, side, len(frames) + frame, part) for k, sev, side, frame, part in case.findings]
            frames += case.frames
    folder = tmp_path_factory.mktemp("kinds")
    (folder / "kinds.torrent").write_bytes(wb.bencode({b"info": INFO}))
    return hostile.write_pcap(folder / "kinds.pcap", frames), expected


def options(capture: Path) -> tuple:
    """The limit case's bound, and the .torrent the bad_bitfield and bad_piece_hash cases are of."""
    return (*LIMIT_OPTIONS, "--torrent", capture.parent / "kinds.torrent")


def test_every_graded_kind_has_a_case():
    assert set(SEVERITY) == set(BUILDERS) | NOT_FROM_CAPTURES
    assert set().union(*README_SEVERITY.values()) == set(BUILDERS)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_kind_from_bytes(built, kind):
    capture, expected = built
    sessions = {s["a"]: s for s in json.loads(
        btshark_ok("read", capture, "--sessions", "-T", "json", *options(capture)).stdout)}
    for opener_addr, findings in expected[kind].items():
        session = sessions[opener_addr]
        got = [(f["kind"], f["severity"], f["side"], f["frame"]) for f in session["findings"]]
        assert got == [(k, sev, side, frame) for k, sev, side, frame, _ in findings], opener_addr
        for f, (*_, part) in zip(session["findings"], findings):
            assert part in f["detail"], f
    graded = {sev for findings in expected[kind].values() for k, sev, *_ in findings if k == kind}
    assert graded == {sev for sev, kinds in README_SEVERITY.items() if kind in kinds}


def test_sessions_text_lists_each_finding_with_its_frame_side_and_severity(built):
    capture, expected = built
    text = btshark_ok("read", capture, "--sessions", *options(capture)).stdout
    shown = sorted(line.strip().split(": ", 1)[0] for line in text.splitlines() if line.strip().startswith("!! "))
    assert shown == sorted(f"!! frame {frame} {side or '-'} {kind} [{severity}]"
                           for per_opener in expected.values() for findings in per_opener.values()
                           for kind, severity, side, frame, _ in findings)
