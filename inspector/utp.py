"""uTP (BEP 29, the Micro Transport Protocol over UDP): header check and reassembly.

Most BitTorrent peer traffic today runs over uTP rather than TCP, and neither
scapy nor a default tshark (its ``bt_utp_udp`` heuristic is off) puts it back
together. This module does, in the same shape as :mod:`inspector.tcp`:
``parse`` says whether a UDP payload is a uTP packet and splits it, and
``UtpDirection`` turns the packets one side sends, in capture order, into that
side's byte stream.

Header (20 bytes, big endian): ``type << 4 | version`` (version 1; types
``ST_DATA`` 0, ``ST_FIN`` 1, ``ST_STATE`` 2, ``ST_RESET`` 3, ``ST_SYN`` 4), first
extension type, connection_id u16, timestamp_microseconds u32,
timestamp_difference_microseconds u32, wnd_size u32, seq_nr u16, ack_nr u16;
then a chain of extensions (next type u8, length u8, body), then the payload.

Strictness, and why: UDP ports say nothing (uTP shares its port with the DHT and
with anything else), so the header itself must reject other traffic. Only the 5
byte-0 values ``0x01 0x11 0x21 0x31 0x41`` pass (a bencoded DHT message starts
with ``d`` = 0x64, type 6: rejected). Extensions must be ones seen in the wild
with their sizes -- 1 selective ack (at least 1 byte: BEP 29 asks for whole 32-bit
words, but libtorrent 2.1 sends the bytes its window needs, 23 say, and peers take it),
2 the deprecated extension bits (length 8), 3 libtorrent's close reason
(length 4) -- at most ``MAX_EXTENSIONS`` of them, none running past the datagram.
BEP 29 lets receivers skip unknown extensions; accepting them here would let
most random datagrams with a plausible first byte through. ``ST_STATE``,
``ST_RESET`` and ``ST_SYN`` carry no payload in any implementation (STATE is
"an ACK with no data"), so a payload after them rejects the datagram. Random
datagrams pass about once in thirty thousand; an ``ST_DATA`` header without
extensions is indistinguishable from 20 arbitrary bytes, so callers should still
prefer flows where a SYN or a BitTorrent handshake was seen.

Connection ids: the initiator picks X and sends its ``ST_SYN`` with
connection_id X (the id it will receive on); afterwards the initiator sends
every packet with X + 1 and the responder sends with X (all mod 2**16). A
connection is therefore identified by (initiator address, responder address,
X); ``connection_key`` maps any packet to X given which side sent it. A peer
answering with ``ST_RESET`` may use either id, so for resets try both
``connection_id`` and ``connection_id - 1``; when the SYN was not captured, which
side opened is unknown, and ``connection_id + 1`` is tried as well (the pipeline does).

Sequence numbers count packets, not bytes, and are compared modulo 2**16. The
SYN consumes one: the initiator's first ``ST_DATA`` has seq_nr = SYN's + 1. The
responder has no SYN; its ``ST_STATE`` answering the SYN carries the seq_nr of
its first data packet (libutp and libtorrent do so; the initiator sets
``ack_nr = seq_nr - 1`` from it) -- feed that to ``UtpDirection.accept``.
``ST_STATE`` packets otherwise consume no sequence number and carry no stream
bytes. ``ST_FIN`` consumes one and ends the stream.

Chunks, as in :mod:`inspector.tcp`: ``bytes``/``memoryview`` to feed on, or an
``int``. A lost uTP packet's size is unknown (packets are not byte-numbered), so
a run of lost packets is reported as the single chunk ``-1`` (``LOST``): "bytes
lost here, count unknown". The consumer must resynchronise after it rather
than skip a count. The number of lost packets is known and counted
(``lost_packets``); the bytes never are. Holes are reported, never zero-filled.

Policy, stated once: the first copy of a packet to arrive wins; later copies
(retransmissions) are dropped and counted. Packets ahead of the next expected
seq_nr wait in a buffer bounded by bytes and by packet count. The missing
seq_nrs become ``-1`` chunks and delivery resumes after them as soon as the
other side's ack_nr covers them (it received them, so the capture missed them),
or when either bound is exceeded, or at the end (``flush``). A direction whose
start (SYN, or the STATE answering it) was not captured starts at the first data
packet seen.

Every chunk comes with the number and time of the frame that carried it (for a
``-1``, the frame at which the loss was declared).
"""
from __future__ import annotations

import struct

from .limits import Budget

__all__ = [
    "parse", "is_syn", "connection_key", "UtpDirection", "Chunk", "Delivery",
    "ST_DATA", "ST_FIN", "ST_STATE", "ST_RESET", "ST_SYN", "TYPE_NAMES",
    "VERSION", "HEADER_SIZE", "MAX_EXTENSIONS", "EXT_SACK", "EXT_BITS", "EXT_CLOSE_REASON",
    "SEQ_MASK", "HALF", "LOST", "DEFAULT_MAX_PENDING", "DEFAULT_MAX_PENDING_PACKETS",
]

ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN = range(5)
TYPE_NAMES = ("DATA", "FIN", "STATE", "RESET", "SYN")
VERSION = 1
HEADER_SIZE = 20
MAX_EXTENSIONS = 8
EXT_SACK, EXT_BITS, EXT_CLOSE_REASON = 1, 2, 3

SEQ_MASK = 0xFFFF
HALF = 1 << 15
LOST = -1  # chunk: packets lost here, byte count unknown

DEFAULT_MAX_PENDING = 4 << 20  # out-of-order payload bytes held per direction
DEFAULT_MAX_PENDING_PACKETS = 4096  # and packets (libutp's reorder buffer holds 1024)

# A chunk is bytes to feed on, or an int: -1 for uTP (bytes lost, count unknown).
Chunk = bytes | memoryview | int
# What the reassembler returns: a chunk and the number and time of its frame.
Delivery = tuple[Chunk, int, float]

# type|version, first extension, connection_id, (timestamps, wnd_size skipped), seq_nr, ack_nr
_HEADER = struct.Struct(">BBH12xHH").unpack_from
_TYPE_VER = frozenset((t << 4) | VERSION for t in range(5))
_PAYLOAD_FREE = ST_STATE  # this type and above carry no payload


def parse(payload: bytes | memoryview) -> tuple[int, int, int, int, bytes | memoryview] | None:
    """``(type, connection_id, seq_nr, ack_nr, data)`` of a uTP packet, or None.

    None when the UDP payload is not a plausible uTP packet (see the module
    docstring for the checks). ``data`` is a slice of ``payload``: a memoryview
    in gives a memoryview out, without copying.
    """
    n = len(payload)
    if n < HEADER_SIZE:
        return None
    tv, ext, cid, seq, ack = _HEADER(payload)
    if tv not in _TYPE_VER:
        return None
    pos = HEADER_SIZE
    if ext:
        for _ in range(MAX_EXTENSIONS):
            if pos + 2 > n:
                return None
            nxt = payload[pos]
            size = payload[pos + 1]
            pos += 2 + size
            if pos > n:
                return None
            if ext == EXT_SACK:
                if not size:
                    return None
            elif ext == EXT_CLOSE_REASON:
                if size != 4:
                    return None
            elif ext != EXT_BITS or size != 8:
                return None
            if not nxt:
                break
            ext = nxt
        else:
            return None
    kind = tv >> 4
    if kind >= _PAYLOAD_FREE and pos != n:
        return None
    return kind, cid, seq, ack, payload[pos:]


def is_syn(payload: bytes | memoryview) -> bool:
    """Whether a UDP payload is a plausible uTP ``ST_SYN``: where a uTP flow starts."""
    return len(payload) >= HEADER_SIZE and payload[0] == 0x41 and parse(payload) is not None


def connection_key(type: int, connection_id: int, sender_is_initiator: bool) -> int:
    """X, the id naming a connection, from any packet of it (not ``ST_RESET``, see above).

    The initiator's SYN carries X and its later packets X + 1; the responder's carry X.
    """
    if sender_is_initiator and type != ST_SYN:
        return (connection_id - 1) & SEQ_MASK
    return connection_id


class UtpDirection:
    """Sequence space of one sender: turns its packets in capture order into stream order.

    ``index`` counts sequence numbers consumed since the start (unwrapped), so
    buffered packets are keyed by a plain int; ``next_seq`` is the wire value
    expected next. ``offset`` counts the payload bytes delivered; bytes of lost
    packets are unknown and not in it.
    """

    __slots__ = (
        "next_seq", "index", "offset", "fin_index", "pending", "pending_bytes",
        "max_pending", "max_pending_packets", "packets", "retransmissions", "out_of_order",
        "holes", "lost_packets", "acked", "seen", "budget", "limit_hit",
    )

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING,
                 max_pending_packets: int = DEFAULT_MAX_PENDING_PACKETS, budget: Budget | None = None) -> None:
        self.next_seq: int | None = None
        self.index = 0  # sequence numbers delivered or declared lost
        self.offset = 0  # payload bytes delivered
        self.fin_index: int | None = None  # index of the ST_FIN packet
        self.pending: dict[int, Delivery] = {}  # index -> (payload, frame, ts), ahead of next_seq
        self.pending_bytes = 0
        self.max_pending = max_pending
        self.max_pending_packets = max_pending_packets
        self.packets = 0  # ST_DATA / ST_FIN packets delivered
        self.retransmissions = 0  # copies of packets already delivered or buffered
        self.out_of_order = 0  # packets that had to wait in the buffer
        self.holes = 0  # -1 chunks emitted
        self.lost_packets = 0  # sequence numbers never seen
        self.acked = 0  # index up to which the receiver acknowledged every packet
        self.seen = 0  # index just past the highest packet captured
        self.budget = budget  # out-of-order bytes over all flows, shared
        self.limit_hit: str | None = None  # the bound that last forced buffered packets out

    @property
    def finished(self) -> bool:
        """True once everything up to and including the ``ST_FIN`` has been delivered."""
        return self.fin_index is not None and self.index > self.fin_index and not self.pending

    def syn(self, seq_nr: int) -> None:
        """The sender's ``ST_SYN``: its first data packet is ``seq_nr + 1``."""
        if self.next_seq is None:
            self.next_seq = (seq_nr + 1) & SEQ_MASK

    def accept(self, seq_nr: int) -> None:
        """The responder's ``ST_STATE`` answering the SYN: its first data packet is ``seq_nr``."""
        if self.next_seq is None:
            self.next_seq = seq_nr & SEQ_MASK

    def segment(self, type: int, seq_nr: int, data: bytes | memoryview = b"", frame: int = 0,
                ts: float = 0.0, cut: int = 0) -> tuple[Delivery, ...] | list[Delivery]:
        """One captured packet from this sender; returns the chunks it makes deliverable, in order.

        ``cut`` counts payload bytes the capture did not keep (snap length): they follow
        the packet's data as a hole of that size.

        ``ST_DATA`` and ``ST_FIN`` are reassembled; ``ST_SYN`` is passed to ``syn``;
        ``ST_STATE`` and ``ST_RESET`` consume no sequence number and return nothing.
        """
        if type > ST_FIN:
            if type == ST_SYN:
                self.syn(seq_nr)
            return ()
        nxt = self.next_seq
        if nxt is None:
            self.next_seq = nxt = seq_nr
        delta = (seq_nr - nxt) & SEQ_MASK
        if type == ST_FIN and self.fin_index is None and delta < HALF:
            self.fin_index = self.index + delta
        if not delta:
            self.index += 1
            self.next_seq = (nxt + 1) & SEQ_MASK
            self.packets += 1
            self.offset += len(data)
            if self.index > self.seen:
                self.seen = self.index
            if not self.pending and not cut:
                return ((data, frame, ts),) if data else ()
            out: list[Delivery] = [(data, frame, ts)] if data else []
            if cut:
                out.append((cut, frame, ts))
            self._release(out, self.acked, frame, ts)
            return out
        if delta >= HALF:  # behind the next expected packet: already delivered or given up on
            self.retransmissions += 1
            return ()
        key = self.index + delta
        pending = self.pending
        if key in pending:
            self.retransmissions += 1
            return ()
        pending[key] = (data, frame, ts, cut)
        if key >= self.seen:
            self.seen = key + 1
        self.pending_bytes += len(data)
        self.out_of_order += 1
        budget = self.budget
        if budget is not None:
            budget.used += len(data)
            if budget.used > budget.limit:
                self.limit_hit = "ooo_total"
                return self.flush(frame, ts)
        if self.pending_bytes > self.max_pending or len(pending) > self.max_pending_packets:
            self.limit_hit = "ooo"
            return self.flush(frame, ts)
        if self.acked > self.index:  # packets before it were acknowledged, so never captured
            out = []
            self._release(out, self.acked, frame, ts)
            return out
        return ()

    def ack(self, ack_nr: int, frame: int = 0, ts: float = 0.0) -> list[Delivery]:
        """The other side received every packet of this one up to ``ack_nr``.

        Packets at or below it that are missing while later ones wait were lost
        by the capture: a ``LOST`` chunk now. Without waiting packets the ack is
        only remembered.
        """
        nxt = self.next_seq
        if nxt is None:
            return []
        delta = (ack_nr + 1 - nxt) & SEQ_MASK
        if delta >= HALF:  # behind what was delivered
            return []
        acked = self.index + delta
        if acked <= self.acked or acked > self.seen + self.max_pending_packets:
            return []
        self.acked = acked
        out: list[Delivery] = []
        if self.pending:
            self._release(out, acked, frame, ts)
        return out

    def drop(self) -> None:
        """The flow is forgotten: what it buffered no longer counts against the budget."""
        if self.budget is not None:
            self.budget.used -= self.pending_bytes
        self.pending.clear()
        self.pending_bytes = 0

    def flush(self, frame: int = 0, ts: float = 0.0) -> list[Delivery]:
        """Give up on the packets missing before the buffered ones (bound hit, or end)."""
        out: list[Delivery] = []
        if self.pending:
            self._release(out, max(self.pending) + 1, frame, ts)
        return out

    def _release(self, out: list[Delivery], upto: int, frame: int, ts: float) -> None:
        """Deliver the buffered packets now in order; the missing ones before them
        below ``upto`` are lost, declared at this frame. Walks the missing sequence
        numbers one by one: each is counted lost once, so the walk stays linear."""
        pending = self.pending
        while pending:
            item = pending.pop(self.index, None)
            if item is not None:
                data, item_frame, item_ts, item_cut = item
                self.pending_bytes -= len(data)
                if self.budget is not None:
                    self.budget.used -= len(data)
                self._deliver(data, item_frame, item_ts, out, item_cut)
                continue
            if self.index >= upto:
                break
            missing = 0
            while self.index < upto and self.index not in pending:
                self.index += 1
                missing += 1
            out.append((LOST, frame, ts))
            self.holes += 1
            self.lost_packets += missing
            self.next_seq = ((self.next_seq or 0) + missing) & SEQ_MASK

    def _deliver(self, data: bytes | memoryview, frame: int, ts: float, out: list[Delivery], cut: int) -> None:
        self.index += 1
        self.next_seq = ((self.next_seq or 0) + 1) & SEQ_MASK
        self.packets += 1
        if data:
            self.offset += len(data)
            out.append((data, frame, ts))
        if cut:
            out.append((cut, frame, ts))
