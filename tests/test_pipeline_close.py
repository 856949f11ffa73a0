"""What closing a flow reports (``Decoder._close``), and how ``CaptureDecode`` sets up its
decoder: a flow still probing at the end is probed to a verdict first (two MSE key
flights and nothing more: an encrypted session), a uTP flow whose gate has seen no
connection is let go; each side's buffered out-of-order bytes are flushed, the bytes
missing before them declared a hole at the closing frame and the flow's last packet
time; a flow on trial (started mid-stream) is judged on what the end releases; the
session ends at its last packet, 'closed' only after both FINs. Also: known IPv4/TCP
BitTorrent flows are taken by the fast path (``hot_frame``), sessions share the peer
registry (the duplicate peer id check), and ``CaptureDecode`` passes on its
``keep_payload``, ``limits`` and frame source.

Why: a mutation run showed no test pinning these (``and`` for ``or``, ``dirs[0]`` for
``dirs[1]``, a frame number or time replaced by None, an argument dropped). Frames are
packed with ``struct`` (``tests/hostile.py``); expected frames and times are read off
the frames as built (``h.Conn`` stamps them 1 ms apart).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import hostile as h
import wirebuild as wb
from conftest import write_packets
from inspector.limits import Limits
from inspector.pipeline import CaptureDecode, Decoder, Record
from inspector.session import Session
from test_pipeline import ST_SYN, udp_packets, utp
from test_pipeline_mse_scan import KEY_A, KEY_B

JUNK = b"\xff" * 7  # no byte of it can start a message: a mid-stream hunt skips all seven
RESYNC_START = "next message found after 7 bytes (the connection's start was not captured)"
HOLE_5 = "5 bytes not captured; framing lost, looking for the next message"
RESYNC_HOLE = "next message found after 5 bytes (after a hole)"


def feed(decoder: Decoder, frames: list[h.Frame], first: int = 1) -> int:
    """Frames numbered from ``first``, each given to ``Decoder.frame``; the next number."""
    for number, (ts, data) in enumerate(frames, first):
        decoder.frame(number, ts, 1, data)
    return first + len(frames)


def seen(records: list[Record]) -> list[tuple[int, int, str, str]]:
    """(side, frame, type, detail) of each record; detail is a finding's text, or ''."""
    return [(r.side, r.frame, r.event.type, getattr(r.event, "detail", "") or "") for r in records]


def findings(session: Session) -> list[tuple[str, str | None, int]]:
    return [(f.kind, f.side, f.frame) for f in session.findings]


def ts(conn: h.Conn, frame: int) -> float:
    return conn.frames[frame - 1][0]


# ---------------------------------------------------------------- a flow still probing


def test_a_flow_still_probing_at_the_end_is_probed_to_a_verdict(tmp_path: Path) -> None:
    """a's DH key flight (frame 4) and b's answer (frame 5), then the capture ends: an MSE
    exchange cut short, shown as one encrypted session, still open, ending at frame 5."""
    conn = h.Conn().open()
    conn.send(0, KEY_A).send(1, KEY_B)
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "keys.pcap", conn.frames)))
    list(decode)
    (session,) = decode.sessions
    assert (session.encrypted, session.state, session.opener_known) == (True, "open", True)
    assert session.end == pytest.approx(ts(conn, 5), abs=1e-6)


def test_a_utp_flow_still_gated_at_the_end_is_let_go(tmp_path: Path) -> None:
    """A lone uTP SYN opens a flow whose gate waits for a second packet: at the end it
    is no session and no record (its gate is not a BitTorrent probe)."""
    path = write_packets(tmp_path / "syn.pcap", udp_packets([(0, utp(ST_SYN, 1000, 10, 0))]))
    decode = CaptureDecode(str(path))
    assert (list(decode), decode.sessions) == ([], [])


def test_bytes_buffered_by_a_flow_that_probes_as_nothing_are_let_go() -> None:
    """a sends the handshake prefix's first four bytes (undecided), then a segment 5 bytes
    ahead that waits out of order: at the end the probe says 'not BitTorrent' (one flight
    is no key exchange), and the bytes flushed, hole and all, are decoded by nothing."""
    conn = h.Conn().open()
    conn.emit(0, h.PSH, b"\x13Bit")
    conn.seq[0] += 5
    conn.emit(0, h.PSH, b"orrent protocol")
    decoder = Decoder()
    decoder.finish(feed(decoder, conn.frames))
    assert (decoder.out, decoder.sessions) == ([], [])


# ---------------------------------------------------------------- flushed at the close


def out_of_order_at_the_end(side: int) -> h.Conn:
    """Both handshakes (frames 4, 5), then ``side`` sends a have (6), the next 5 bytes are
    never captured, and an interested, an unchoke and a have(9) (7) wait out of order;
    nothing acknowledges them."""
    conn = h.Conn().open().handshakes()
    conn.send(side, wb.have(1))
    conn.seq[side] += 5
    conn.send(side, wb.interested() + wb.unchoke() + wb.have(9))
    return conn


@pytest.mark.parametrize("side", [0, 1], ids=["a", "b"])
def test_out_of_order_bytes_are_flushed_at_the_close_as_a_hole_then_messages(side: int) -> None:
    """At the end (frame 10), the 5 missing bytes are a hole declared at frame 10 and at the
    flow's last packet time (frame 7's); the three messages after it are decoded with their
    own frame and time once the hunt finds them. The session ends at frame 7's time, still open."""
    conn = out_of_order_at_the_end(side)
    decoder = Decoder()
    feed(decoder, conn.frames)
    decoder.finish(10)
    (session,) = decoder.sessions
    name = "ab"[side]
    tail = [r for r in decoder.out if r.side == side][2:]  # after the handshake and the have(1)
    assert seen(tail) == [(side, 10, "finding", HOLE_5), (side, 7, "finding", RESYNC_HOLE),
                          (side, 7, "interested", ""), (side, 7, "unchoke", ""), (side, 7, "have", "")]
    assert [r.ts for r in tail] == [pytest.approx(ts(conn, 7), abs=1e-6)] * 5
    assert tail[4].event.index == 9
    assert findings(session) == [("hole", name, 10), ("resync", name, 7)]
    assert session.sides[side].messages["have"] == 2
    assert session.end == pytest.approx(ts(conn, 7), abs=1e-6)
    assert session.state == "open"


def test_a_message_cut_by_the_end_is_reported_at_the_closing_frame_and_last_packet_time() -> None:
    """b's have is cut after 5 of its 9 bytes (frame 6), a talks on (frame 7): at the end
    (frame 12) the cut have is 'truncated', at frame 12 and frame 7's time."""
    conn = h.Conn().open().handshakes()
    conn.send(1, wb.have(4)[:5]).send(0, wb.interested())
    decoder = Decoder()
    feed(decoder, conn.frames)
    decoder.finish(12)
    (session,) = decoder.sessions
    (cut,) = [r for r in decoder.out if r.event.type == "finding"]
    assert (cut.side, cut.frame, cut.event.kind) == (1, 12, "truncated")
    assert cut.ts == pytest.approx(ts(conn, 7), abs=1e-6)
    assert findings(session) == [("truncated", "b", 12)]


# ---------------------------------------------------------------- the session's state


@pytest.mark.parametrize("fins", ["a", "b", "both", "none"])
def test_a_session_is_closed_only_after_both_fins(fins: str) -> None:
    """A FIN from one side leaves the session open at the end of the capture; FINs from
    both close it. Either way it ends at its last packet's time."""
    conn = h.Conn().open().handshakes()
    for side, name in enumerate("ab"):
        if fins in (name, "both"):
            conn.emit(side, h.FIN)
    decoder = Decoder()
    decoder.finish(feed(decoder, conn.frames))
    (session,) = decoder.sessions
    assert session.state == ("closed" if fins == "both" else "open")
    assert session.end == pytest.approx(conn.frames[-1][0], abs=1e-6)


# ---------------------------------------------------------------- a flow on trial


def test_a_flow_on_trial_is_shown_by_the_bytes_flushed_at_the_end() -> None:
    """Mid-stream, a sends junk, a have and a request (frame 1: two messages, not a run),
    then 5 bytes are lost and its interested and two haves (frame 2) wait out of order.
    At the end (frame 7) they are released: the hole at frame 7 and frame 2's time, then
    three more messages, and the flow is shown, every record of it."""
    conn = h.Conn()
    conn.emit(0, h.PSH, JUNK + wb.have(3) + wb.request(3, 0, 16384))
    conn.seq[0] += 5
    conn.emit(0, h.PSH, wb.interested() + wb.have(4) + wb.have(5))
    decoder = Decoder()
    feed(decoder, conn.frames)
    assert (decoder.out, decoder.sessions) == ([], [])
    decoder.finish(7)
    (session,) = decoder.sessions
    assert seen(decoder.out) == [
        (0, 1, "finding", RESYNC_START), (0, 1, "have", ""), (0, 1, "request", ""),
        (0, 7, "finding", HOLE_5), (0, 2, "finding", RESYNC_HOLE),
        (0, 2, "interested", ""), (0, 2, "have", ""), (0, 2, "have", "")]
    assert [r.ts for r in decoder.out] == [pytest.approx(ts(conn, f), abs=1e-6) for f in (1, 1, 1, 2, 2, 2, 2, 2)]
    assert findings(session) == [("midstream", None, 1), ("resync", "a", 1), ("hole", "a", 7), ("resync", "a", 2)]
    assert (session.id, session.state) == (1, "open")
    assert session.end == pytest.approx(ts(conn, 2), abs=1e-6)


def test_a_flow_on_trial_is_shown_by_what_the_end_of_its_streams_confirms() -> None:
    """Mid-stream, a sends junk, a have and a request (frame 1), 5 bytes are lost, then an
    interested and an unchoke (frame 2): two one-byte messages, not evidence enough
    until the stream ends right after them. b's 3 bytes (frame 3) acknowledge a's whole
    stream: the hole is declared then. At the end (frame 9) a's hunt accepts the two and
    b's gives up, its finding at frame 9 and frame 3's time: a has four messages, shown."""
    conn = h.Conn()
    conn.emit(0, h.PSH, JUNK + wb.have(3) + wb.request(3, 0, 16384))
    conn.seq[0] += 5
    conn.emit(0, h.PSH, wb.interested() + wb.unchoke())
    conn.emit(1, h.PSH, b"\xff\xff\xff")
    decoder = Decoder()
    feed(decoder, conn.frames)
    assert (decoder.out, decoder.sessions) == ([], [])
    decoder.finish(9)
    (session,) = decoder.sessions
    gave_up = ("framing not found again in the 3 bytes since it was lost (the connection's start was "
               "not captured); the rest of this direction is not decoded")
    assert seen(decoder.out) == [
        (0, 1, "finding", RESYNC_START), (0, 1, "have", ""), (0, 1, "request", ""),
        (0, 3, "finding", HOLE_5), (0, 9, "finding", RESYNC_HOLE),
        (0, 2, "interested", ""), (0, 2, "unchoke", ""), (1, 9, "finding", gave_up)]
    assert [r.ts for r in decoder.out] == [pytest.approx(ts(conn, f), abs=1e-6) for f in (1, 1, 1, 3, 3, 2, 2, 3)]
    assert findings(session) == [("midstream", None, 1), ("resync", "a", 1), ("hole", "a", 3),
                                 ("resync", "a", 9), ("resync", "b", 9)]
    assert session.end == pytest.approx(ts(conn, 3), abs=1e-6)


# ---------------------------------------------------------------- the fast path, the registry


def test_a_known_ipv4_bittorrent_flow_is_taken_by_the_fast_path() -> None:
    """Once both handshakes are decoded, each side's next segment is taken by
    ``hot_frame`` (its return value is what tells the capture driver not to hand the
    frame to ``frame`` as well; nothing else shows which path took it), and decoded."""
    conn = h.Conn().open().handshakes()
    decoder = Decoder()
    number = feed(decoder, conn.frames)
    conn.send(0, wb.interested()).send(1, wb.unchoke())
    for number, (when, data) in enumerate(conn.frames[-2:], number):
        assert decoder.hot_frame(number, data, 0, len(data), when)
    assert [(r.side, r.frame, r.event.type) for r in decoder.out][2:] == [(0, 6, "interested"), (1, 7, "unchoke")]


def test_a_second_connection_between_the_same_peer_ids_is_noted() -> None:
    """Two connections, one after the other, with the same two peer ids, the first still
    open: the second's b handshake (frame 10) is a 'duplicate_peer_id' finding."""
    one = h.Conn().open().handshakes()
    two = h.Conn(aport=40001, t0=one.t).open().handshakes()
    decoder = Decoder()
    feed(decoder, one.frames + two.frames)
    first, second = decoder.sessions
    assert findings(first) == []
    assert findings(second) == [("duplicate_peer_id", "b", 10)]
    assert second.findings[0].detail == "a second connection between the same two peer ids (session #1 is open)"


# ---------------------------------------------------------------- CaptureDecode's set-up


def piece_capture(tmp_path: Path) -> tuple[Path, bytes]:
    block = bytes(range(256)) * 4
    conn = h.Conn().open().handshakes().send(1, wb.piece(2, 0, block))
    return h.write_pcap(tmp_path / "piece.pcap", conn.frames), block


@pytest.mark.parametrize("locate", [False, True], ids=["plain", "locate"])
@pytest.mark.parametrize("keep", [None, False, True], ids=["default", "no", "yes"])
def test_capture_decode_keeps_piece_payloads_only_when_asked(tmp_path: Path, locate: bool, keep: bool | None) -> None:
    path, block = piece_capture(tmp_path)
    decode = CaptureDecode(str(path), locate=locate) if keep is None else \
        CaptureDecode(str(path), keep_payload=keep, locate=locate)
    (piece,) = [r.event for r in decode if r.event.type == "piece"]
    assert piece.data == (block if keep else None)


@pytest.mark.parametrize("locate", [False, True], ids=["plain", "locate"])
def test_capture_decode_passes_its_limits_on(tmp_path: Path, locate: bool) -> None:
    """With room for one flow, the second connection evicts the first."""
    one = h.Conn().open().handshakes()
    two = h.Conn(aport=40001, t0=one.t).open()
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "two.pcap", one.frames + two.frames)),
                           locate=locate, limits=Limits(flows=1))
    list(decode)
    assert decode.sessions[0].state == "evicted"


def test_capture_decode_reads_records_up_to_its_record_limit(tmp_path: Path) -> None:
    """Limits(record=100): the handshake frames (122 bytes) are skipped with a warning."""
    conn = h.Conn().open().handshakes()
    decode = CaptureDecode(str(h.write_pcap(tmp_path / "big.pcap", conn.frames)), limits=Limits(record=100))
    assert list(decode) == []
    assert decode.warnings == ["2 records longer than the largest record read (--max-record 100) were skipped: "
                               "frames 4, 5"]


class Frames:
    """A ``FrameSource`` of Ethernet frames held in memory (as a live backend hands them)."""

    def __init__(self, frames: list[h.Frame]) -> None:
        self.frames = frames
        self.warnings: list[str] = []

    def views(self) -> Iterator[tuple[float, int, bytes, int, int]]:
        for when, data in self.frames:
            yield when, 1, data, 0, len(data)

    def __enter__(self) -> Frames:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_capture_decode_reads_a_frame_source() -> None:
    conn = h.Conn().open().handshakes()
    decode = CaptureDecode(Frames(conn.frames))
    assert [(r.side, r.frame, r.event.type) for r in decode] == [(0, 4, "handshake"), (1, 5, "handshake")]


def test_a_frame_source_cannot_be_located() -> None:
    with pytest.raises(ValueError) as raised:
        CaptureDecode(Frames([]), locate=True)
    assert str(raised.value) == "messages are located only in a capture file"
