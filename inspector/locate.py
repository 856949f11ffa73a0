"""Where each message's bytes lie in the capture file, so a viewer can show them.

The TUI's hex pane shows the selected message's bytes as they were on the wire.
Keeping every message's bytes would make the capture's size memory, so they are
read back from the file when asked for. ``CaptureDecode(path, locate=True)`` swaps
in the classes here, which note two things while decoding:

* per direction of a connection, a *stream index*: each run of bytes the
  reassembler delivered (TCP and uTP alike deliver in stream order, first copy
  winning, holes as sizes), as the frame that carried it, where that frame lies in
  the file and where the run goes in the stream -- a few integers in arrays;
* per message, a *span* ``(stream, start, end)``: its place in that stream, from the
  parser's own count of the bytes it consumed (``PeerWireParser.progress``).

Stream offsets count from the direction's first byte. TCP's are sequence numbers
(a hole counts its size); uTP's count bytes in reassembled order, a lost packet
counting nothing (its size is unknown, so the parser hunts afterwards and spans
resume once its framing is found again).

``Locator.read(span)`` reopens the file, reads each frame the span needs, decodes
it again (``inspector.frames.decode``) and takes the run from its payload; the
message's length prefix (or handshake prefix) must then match its span. It gives
None rather than wrong bytes: bytes never captured, a file whose size or time
changed, a frame that no longer decodes to the segment it was, IP fragments (their
datagram spans frames). A gzip-compressed capture is indexed by offsets in its
decompressed stream, and each read decompresses from the start up to the frame:
correct, and slow on large files. Spans are None for findings, for messages with
bytes the capture lacks, and where the parser's place in the stream is not known.
"""
from __future__ import annotations

import gzip
import os
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

from . import events as ev
from .frames import PAYLOAD, SEQ_NO, TCP, UDP, decode
from .limits import DEFAULT, Limits
from .parser import PeerWireParser
from .pipeline import OTHER, Decoder, Flow, Record
from .session import Session
from .tcp import SEQ_MASK, Delivery, TcpDirection
from .utp import UtpDirection
from .utp import parse as parse_utp
from .wire import HANDSHAKE_LEN, HANDSHAKE_PREFIX, U32

__all__ = ["Locator", "LocatingDecoder", "Span"]

Span = tuple[int, int, int]  # stream id, start, end (stream offsets)

# Frames whose place in the file is remembered, for packets delivered after waiting
# in a reassembler: one that waited longer than this is not located.
RING = 1 << 16
_MASK = RING - 1


class _Stream:
    """One direction's delivered runs, in stream order: run i is ``lengths[i]`` bytes at
    stream offset ``starts[i]``, carried by frame ``frames[i]``, whose captured bytes are
    ``sizes[i]`` bytes at file offset ``offsets[i]``."""

    __slots__ = ("id", "linktype", "base", "starts", "lengths", "frames", "offsets", "sizes")

    def __init__(self, sid: int, linktype: int, base: int | None) -> None:
        self.id = sid
        self.linktype = linktype  # every frame of the stream has it (else its run is not noted)
        self.base = base  # TCP: the sequence number of stream offset 0; None for uTP
        self.starts = array("q")
        self.lengths = array("I")
        self.frames = array("q")
        self.offsets = array("q")
        self.sizes = array("I")


class Locator:
    """The stream indexes of one capture file, and reading spans back from it.

    Safe to call from another thread while the decode runs or after it finished:
    the indexes only grow, and each read opens the file anew.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._identity = self._stat()
        with open(self.path, "rb") as f:
            self.compressed = f.read(2) == b"\x1f\x8b"
        self.streams: list[_Stream | None] = []  # by id; None once let go of
        self.current = 0  # the frame being decoded
        self.hidden = 0  # a frame whose number goes with bytes it did not carry, for a while
        self._numbers = array("q", bytes(8 * RING))  # the last frames: number, file offset, size, link type
        self._offsets = array("q", bytes(8 * RING))
        self._sizes = array("I", bytes(4 * RING))
        self._linktypes = array("H", bytes(2 * RING))

    # -- while decoding ------------------------------------------------------------

    def seen(self, number: int, offset: int, size: int, linktype: int) -> None:
        """Frame ``number``'s captured bytes are ``size`` bytes at file offset ``offset``."""
        i = number & _MASK
        self._numbers[i] = number
        self._offsets[i] = offset
        self._sizes[i] = size
        self._linktypes[i] = linktype
        self.current = number

    def note(self, direction: _Located, frame: int, start: int, length: int) -> None:
        """``direction`` delivered ``length`` bytes of ``frame`` at stream offset ``start``."""
        i = frame & _MASK
        if self._numbers[i] != frame or frame == self.hidden:
            return
        linktype = self._linktypes[i]
        stream = direction.stream
        if stream is None:
            if direction.released:
                return
            stream = direction.stream = _Stream(len(self.streams), linktype, direction.base())
            self.streams.append(stream)
        elif stream.linktype != linktype:
            return
        stream.lengths.append(length)
        stream.frames.append(frame)
        stream.offsets.append(self._offsets[i])
        stream.sizes.append(self._sizes[i])
        stream.starts.append(start)  # last: a reader takes the count of runs from it

    def release(self, stream: _Stream) -> None:
        self.streams[stream.id] = None

    # -- reading back ----------------------------------------------------------------

    def frames(self, span: Span) -> tuple[int, ...] | None:
        """The numbers of the frames carrying the span's bytes, in stream order; None if
        some of its bytes are not in the index."""
        found = self._runs(span)
        if found is None:
            return None
        stream, first, last = found
        return tuple(dict.fromkeys(stream.frames[first:last]))

    def read(self, span: Span) -> bytes | None:
        """The span's bytes as on the wire, read from the file; None if they cannot be."""
        found = self._runs(span)
        if found is None or self._stat() != self._identity:
            return None
        stream, first, last = found
        _, start, end = span
        parts = []
        opener = gzip.open if self.compressed else open
        try:
            with opener(self.path, "rb") as f:
                for i in range(first, last):
                    at = stream.starts[i]
                    f.seek(stream.offsets[i])
                    frame = f.read(stream.sizes[i])
                    run = self._run(stream, frame, at, stream.lengths[i]) if len(frame) == stream.sizes[i] else None
                    if run is None:
                        return None
                    parts.append(run[max(start - at, 0) : end - at])
        except (OSError, EOFError, ValueError, zlib.error):  # gone, unreadable, corrupt compressed data
            return None
        data = b"".join(parts)
        if len(data) == HANDSHAKE_LEN and data.startswith(HANDSHAKE_PREFIX):
            return data
        if len(data) < 4 or U32.unpack_from(data)[0] != len(data) - 4:
            return None
        return data

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _runs(self, span: Span) -> tuple[_Stream, int, int] | None:
        """The stream and the index range of the runs that hold all of the span's bytes."""
        sid, start, end = span
        stream = self.streams[sid] if 0 <= sid < len(self.streams) else None
        if stream is None or end <= start:
            return None
        starts, lengths = stream.starts, stream.lengths
        count = len(starts)  # a snapshot: the decode may be appending
        first = bisect_right(starts, start, 0, count) - 1
        if first < 0:
            return None
        i, pos = first, start
        while pos < end:
            if i >= count or starts[i] > pos or starts[i] + lengths[i] <= pos:
                return None  # bytes between runs: never captured
            pos = starts[i] + lengths[i]
            i += 1
        return stream, first, i

    @staticmethod
    def _run(stream: _Stream, frame: bytes, start: int, length: int) -> bytes | None:
        """The ``length`` bytes at stream offset ``start`` from a frame that carried them."""
        pkt = decode(stream.linktype, frame)
        if pkt is None:
            return None
        if stream.base is None:  # uTP: the run is the packet's whole payload
            packet = parse_utp(pkt[PAYLOAD]) if pkt[0] == UDP else None
            data = packet[4] if packet is not None else b""
            return bytes(data) if len(data) == length else None
        if pkt[0] != TCP:
            return None
        payload = pkt[PAYLOAD]
        skip = (start - pkt[SEQ_NO] + stream.base) & SEQ_MASK  # where the run begins in the payload
        return payload[skip : skip + length] if skip + length <= len(payload) else None


class _Located:
    """What both located reassemblers add: their stream in the index, and noting each
    delivery there. Their own calls into themselves (a TCP overlap trimmed and taken
    again, a uTP buffer flushed when full) are noted once, by the outermost call."""

    __slots__ = ()
    locator: Locator
    stream: _Stream | None
    released: bool
    noted: int  # stream offset up to which deliveries are noted
    depth: int  # calls into the reassembler under way

    def base(self) -> int | None:
        return None

    def release(self) -> None:
        """Nothing this direction carries will be located: let its index go."""
        self.released = True
        if self.stream is not None:
            self.locator.release(self.stream)
            self.stream = None

    def _note(self, chunks: Iterable[Delivery]) -> None:
        note, pos = self.locator.note, self.noted
        for chunk, frame, _ts in chunks:
            if chunk.__class__ is int:
                if chunk > 0:  # a hole of known size; uTP's LOST (-1) counts nothing
                    pos += chunk
            elif chunk:
                note(self, frame, pos, len(chunk))
                pos += len(chunk)
        self.noted = pos


class LocatingTcpDirection(_Located, TcpDirection):
    __slots__ = ("locator", "stream", "released", "noted", "depth")

    def __init__(self, locator: Locator) -> None:
        super().__init__()
        self.locator = locator
        self.stream = None
        self.released = False
        self.noted = 0
        self.depth = 0

    def base(self) -> int | None:
        return (self.next_seq - self.offset) & SEQ_MASK  # type: ignore[operator]

    def consume(self, size: int) -> None:
        self.locator.note(self, self.locator.current, self.noted, size)
        self.noted += size
        super().consume(size)

    def segment(self, seq: int, payload: bytes | memoryview, cut: int = 0, fin: bool = False, frame: int = 0,
                ts: float = 0.0) -> tuple[Delivery, ...] | list[Delivery]:
        self.depth += 1
        out = super().segment(seq, payload, cut, fin, frame, ts)
        self.depth -= 1
        if out and not self.depth:
            self._note(out)
        return out

    def ack(self, ack: int, frame: int = 0, ts: float = 0.0) -> list[Delivery]:
        out = super().ack(ack, frame, ts)
        if out:
            self._note(out)
        return out

    def flush(self, frame: int = 0, ts: float = 0.0) -> list[Delivery]:
        out = super().flush(frame, ts)
        if out:
            self._note(out)
        return out


class LocatingUtpDirection(_Located, UtpDirection):
    __slots__ = ("locator", "stream", "released", "noted", "depth")

    def __init__(self, locator: Locator) -> None:
        super().__init__()
        self.locator = locator
        self.stream = None
        self.released = False
        self.noted = 0
        self.depth = 0

    def segment(self, type: int, seq_nr: int, data: bytes | memoryview = b"", frame: int = 0, ts: float = 0.0,
                cut: int = 0) -> tuple[Delivery, ...] | list[Delivery]:
        self.depth += 1
        out = super().segment(type, seq_nr, data, frame, ts, cut)
        self.depth -= 1
        if out and not self.depth:
            self._note(out)
        return out

    def ack(self, ack_nr: int, frame: int = 0, ts: float = 0.0) -> list[Delivery]:
        out = super().ack(ack_nr, frame, ts)
        if out:
            self._note(out)
        return out

    def flush(self, frame: int = 0, ts: float = 0.0) -> list[Delivery]:
        self.depth += 1
        out = super().flush(frame, ts)
        self.depth -= 1
        if out and not self.depth:
            self._note(out)
        return out


class LocatingParser(PeerWireParser):
    """A parser that also says where in its stream each event it returns lies.

    ``position`` counts the stream bytes consumed (fed, or lost with a known size);
    after each ``feed``, ``gap`` and ``end``, ``spans`` holds one ``(start, end)`` or
    None per event returned. A message's place follows from where the message being
    read began before the call and where the one being read begins after it: the
    messages in between fill exactly that stretch, unless something (a finding,
    a hunt) took bytes, and then only those after the last finding are placed, back
    from the end. Events completed by a hole are not placed.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.position = 0
        self.spans: list[tuple[int, int] | None] = []
        self.direction: _Located | None = None  # the reassembler feeding it (``LocatingDecoder``)
        self._depth = 0  # a resync replays held bytes through feed and gap: counted already

    def feed(self, data: bytes | memoryview, tag: object = None) -> list:
        if self._depth:
            return super().feed(data, tag)
        first = self._boundary()
        self._depth = 1
        events = super().feed(data, tag)
        self._depth = 0
        self.position += len(data)
        self.spans = self._place(events, first)
        return events

    def gap(self, missing: int, tag: object = None) -> list:
        if self._depth:
            return super().gap(missing, tag)
        self._depth = 1
        events = super().gap(missing, tag)
        self._depth = 0
        if missing > 0:
            self.position += missing
        self.spans = [None] * len(events)
        return events

    def end(self) -> list:
        self._depth = 1
        events = super().end()
        self._depth = 0
        self.spans = self._place(events, None)
        return events

    def skip_payload(self, size: int) -> bool:
        if super().skip_payload(size):
            self.position += size
            return True
        return False

    def _boundary(self) -> int | None:
        """Where the message being read began (where the next one begins, between messages)."""
        done = self.progress()
        return None if done is None else self.position - done

    def _place(self, events: list, first: int | None) -> list[tuple[int, int] | None]:
        spans: list[tuple[int, int] | None] = [None] * len(events)
        last = self._boundary()
        if not events or last is None:
            return spans
        plain = [e[0] if e.__class__ is tuple else e for e in events]
        sizes = [None if e.__class__ is ev.Finding else HANDSHAKE_LEN if e.__class__ is ev.Handshake else 4 + e.size
                 for e in plain]
        if first is not None and sum(s for s in sizes if s) == last - first:
            pos = first
            for k, size in enumerate(sizes):
                if size:
                    spans[k] = (pos, pos + size)
                    pos += size
        else:
            pos = last
            for k in range(len(sizes) - 1, -1, -1):
                size = sizes[k]
                if not size:
                    break
                spans[k] = (pos - size, pos)
                pos -= size
        for k, event in enumerate(plain):
            if getattr(event, "missing", 0):
                spans[k] = None
        return spans


class LocatingSession(Session):
    parser_type = LocatingParser


class LocatingDecoder(Decoder):
    """``Decoder`` noting where messages lie: its ``out`` (and trial lists) hold
    ``(record, span)`` pairs, which ``CaptureDecode`` hands out."""

    session_type = LocatingSession

    def __init__(self, locator: Locator, keep_payload: bool = False, limits: Limits = DEFAULT) -> None:
        super().__init__(keep_payload, limits)
        self.locator = locator

    def _directions(self, transport: str) -> tuple:
        kind = LocatingTcpDirection if transport == "tcp" else LocatingUtpDirection
        dirs = kind(self.locator), kind(self.locator)
        for direction in dirs:
            direction.max_pending, direction.budget = self.limits.ooo, self.ooo
        return dirs

    def finish(self, number: int) -> None:
        # Datagrams still waiting for IP fragments come out first, numbered as the last
        # frame, which did not carry them.
        self.locator.hidden = number
        for ts, whole in self.fragments.flush():
            self._packet(number, ts, whole)
        self.locator.hidden = 0
        super().finish(number)

    def _deliver(self, flow: Flow, side: int, chunks: Iterable[Delivery]) -> None:
        session = flow.session
        if session is not None and session.parsers:
            parser = session.parsers[side]
            if parser.direction is None:
                parser.direction = flow.dirs[side]
        super()._deliver(flow, side, chunks)
        self._settle(flow)

    def _close(self, flow: Flow, number: int, state: str | None = None) -> None:
        super()._close(flow, number, state)
        self._settle(flow)

    @staticmethod
    def _settle(flow: Flow) -> None:
        """Let go of the indexes of a flow that will show no more messages: not
        BitTorrent, or encrypted with no plaintext handshake found."""
        session = flow.session
        if (session is None and flow.state >= OTHER) or (session is not None and session.parsers is None
                                                         and flow.scan is None):
            for direction in flow.dirs:
                direction.release()

    def _emit(self, session: Session, side: int, events: list, number: int, ts: float,  # type: ignore[override]
              out: list) -> None:
        parser = session.parsers[side]  # type: ignore[index]
        stream = parser.direction.stream if parser.direction is not None else None
        spans = iter(parser.spans) if stream is not None else None
        for event in events:  # one record each, then the findings the session's checks made of it
            records: list[Record] = []
            Decoder._emit(session, side, (event,), number, ts, records)
            span = next(spans, None) if spans is not None else None
            out.append((records[0], None if span is None else (stream.id, *span)))  # type: ignore[union-attr]
            out.extend((record, None) for record in records[1:])
