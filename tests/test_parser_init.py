"""What a new PeerWireParser starts with, seen through what it reports.

The defaults of its constructor show up late: the reason a mid-stream direction gives
when the framing is never found, the resync count the pipeline reads to decide a trial,
the payload bytes the extractor and the replayer ask it to keep.
"""
from __future__ import annotations

import struct

from inspector import events as ev
from inspector.parser import PeerWireParser


def have(index: int) -> bytes:
    return struct.pack(">IBI", 5, 4, index)


def piece(index: int, begin: int, block: bytes) -> bytes:
    return struct.pack(">IBII", 9 + len(block), 7, index, begin) + block


def test_midstream_default_reason_names_the_missing_start() -> None:
    parser = PeerWireParser(handshake=False, midstream=True)
    assert parser.feed(b"\xff" * 7) == []
    (finding,) = parser.end()
    assert finding.kind == "resync"
    assert "(the connection's start was not captured)" in finding.detail


def test_midstream_reason_given_is_the_one_reported() -> None:
    parser = PeerWireParser(handshake=False, midstream=True, why="after a restart")
    parser.feed(b"\xff" * 7)
    (finding,) = parser.end()
    assert "(after a restart)" in finding.detail
    assert "start was not captured" not in finding.detail


def test_resyncs_counts_from_zero() -> None:
    parser = PeerWireParser(handshake=False, midstream=True)
    assert parser.resyncs == 0
    events = parser.feed(b"\x00\x07" + have(7) + have(8) + have(9) + have(10))
    assert [e.index for e in events if isinstance(e, ev.Have)] == [7, 8, 9, 10]
    assert parser.resyncs == 1


def test_in_step_parser_never_resyncs() -> None:
    parser = PeerWireParser(handshake=False)
    parser.feed(have(1) + have(2))
    assert parser.end() == []
    assert parser.resyncs == 0


def test_kept_payload_is_the_block_even_when_split() -> None:
    parser = PeerWireParser(handshake=False, keep_payload=True)
    wire = piece(3, 16384, b"abcdefgh")
    events = parser.feed(wire[:15]) + parser.feed(wire[15:])
    (block,) = events
    assert (block.index, block.begin, block.length) == (3, 16384, 8)
    assert block.data == b"abcdefgh"


def test_kept_payloads_do_not_run_together() -> None:
    parser = PeerWireParser(handshake=False, keep_payload=True)
    first, second = parser.feed(piece(0, 0, b"one") + piece(0, 3, b"two!"))
    assert (first.data, second.data) == (b"one", b"two!")


def test_payload_not_kept_by_default() -> None:
    parser = PeerWireParser(handshake=False)
    (block,) = parser.feed(piece(1, 0, b"abcd"))
    assert block.length == 4 and block.data is None


def test_kept_payload_refuses_to_be_skipped() -> None:
    """The pipeline's fast path offers payload bytes to ``skip_payload``: a parser that
    keeps them must say no, so they come through ``feed``."""
    wire = piece(2, 0, b"x" * 64)
    keeping = PeerWireParser(handshake=False, keep_payload=True)
    counting = PeerWireParser(handshake=False)
    assert keeping.feed(wire[:20]) == counting.feed(wire[:20]) == []
    assert counting.skip_payload(32) is True
    assert keeping.skip_payload(32) is False
    (block,) = keeping.feed(wire[20:])
    assert block.data == b"x" * 64

