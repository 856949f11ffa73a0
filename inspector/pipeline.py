"""From frames to peer-wire records: the flow table, BitTorrent detection, sessions.

Everything per connection is decided once, when the flow is classified, so the
per-packet path is a dict lookup, the reassembler and the parser. Memory stays
bounded: flows are evicted when idle or closed, out-of-order bytes are capped per
direction, and piece payloads are never held.
"""
from __future__ import annotations

import heapq
import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

from . import events as ev
from .capfile import CaptureFile
from .conformance import HARMLESS, SILENCE
from .pieces import PieceFacts
from .detect import BITTORRENT, ENCRYPTED, OTHER, UNDECIDED, Probe, UtpGate
from .frames import ACK_NO, ETH_IP4_TCP_HOT, FLAGS, FRAGMENT, MISSING, PAYLOAD, SEQ_NO, decode, format_addr
from .ipfrag import Reassembler
from .limits import DEFAULT, Budget, Limits
from .parser import AFTER_MSE
from .session import PeerRegistry, Session
from .wire import HANDSHAKE_PREFIX
from .tcp import ACK, FIN, RST, SYN, TcpDirection
from .utp import ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN, UtpDirection
from .utp import parse as parse_utp

if TYPE_CHECKING:
    from .locate import Locator, Span

PROBE, DONE = UNDECIDED, OTHER + 1  # flow states: a flow in PROBE waits for its verdict
TRIAL = -1  # started mid-stream: decoded on trial, shown once a run of messages is found

TRIAL_BYTES = 40 << 10  # stream bytes per side a mid-stream flow may take to show a run of messages
TRIAL_MESSAGES = 3  # messages in one direction, found after a resync, that make a flow BitTorrent
MAX_TRIALS = 256  # mid-stream flows on trial at once (each holds up to TRIAL_BYTES a side)
MSE_SCAN = 4096  # bytes per side of an MSE flow searched for a plaintext handshake
SWEEP_EVERY = 4096  # frames between eviction sweeps
IDLE_TIMEOUT = 600.0  # capture seconds without a packet before a flow is closed
CLOSED_LINGER = 30.0  # keep closed flows this long to absorb late retransmissions
EVICT_SHARE = 8  # a full flow table evicts its least recently active eighth
SLICE = 1 << 16  # a larger TCP payload is decoded (and its records handed out) a slice at a time
_CONTROL = SYN | FIN | RST
_PORTS = struct.Struct(">HH")


class Record(NamedTuple):
    session: Session
    side: int  # 0 = a, 1 = b
    frame: int
    ts: float
    event: ev.Event


class _Scan:
    """What an MSE flow's directions sent so far, while a plaintext handshake is looked for."""

    __slots__ = ("held", "sizes", "tails")

    def __init__(self) -> None:
        self.held: tuple[list, list] = ([], [])  # (chunk, frame, ts) items, holes too
        self.sizes = [0, 0]
        self.tails = [b"", b""]  # each side's last bytes: a handshake prefix may span two chunks


class Flow:
    """One TCP or uTP connection in the table, before and after it is known to be BitTorrent."""

    __slots__ = ("transport", "addrs", "dirs", "state", "probe", "held", "session", "opener_known", "start",
                 "last_ts", "keys", "reset", "trial", "scan")

    def __init__(self, transport: str, addrs: tuple[str, str], keys: tuple[tuple, ...], opener_known: bool,
                 ts: float, dirs: tuple) -> None:
        self.transport = transport
        self.addrs = addrs
        self.keys = keys
        self.dirs = dirs  # the reassemblers, side 0 then side 1
        self.state = PROBE
        self.probe: Probe | UtpGate | None = Probe(opener_known)
        self.held: tuple[list, list] = ([], [])  # per side, the (chunk, frame, ts) held while probing
        self.trial: list[Record] | None = None  # records of a mid-stream flow not yet shown to be BitTorrent
        self.scan: _Scan | None = None  # an MSE flow's first bytes, searched for a plaintext handshake
        self.session: Session | None = None
        self.opener_known = opener_known
        self.start = ts
        self.last_ts = ts
        self.reset = False


class Decoder:
    """Feed it frames in capture order; it appends ``Record``s to ``out``.

    ``keep_payload``: piece messages carry their block's bytes (``extract``); off by
    default, when payloads are counted past in place.
    """

    session_type = Session  # ``inspector.locate`` puts its own here

    def __init__(self, keep_payload: bool = False, limits: Limits = DEFAULT) -> None:
        self.keep_payload = keep_payload
        self.limits = limits
        self.pieces_by_hash: dict[bytes, PieceFacts] = {}  # info hash -> what is known of its pieces
        self.ooo = Budget(limits.ooo_total)  # out-of-order bytes buffered, all flows
        self.partial = Budget(limits.partial_total)  # bytes of unfinished messages, all flows
        self.flows: dict[tuple, tuple[Flow, int]] = {}
        # Classified IPv4/TCP flows again, keyed by their wire bytes (src, dst, ports),
        # with what ``hot_frame`` touches: flow, side, direction, the other direction,
        # parser, side facts, session.
        self.hot: dict[bytes, tuple] = {}
        self.sessions: list[Session] = []
        self.out: list[Record] = []
        self.fragments = Reassembler()
        self.registry = PeerRegistry()
        self.trials = 0
        self.flow_count = 0  # flows in ``flows`` (a flow has two to four keys, a "land" flow one)
        self.swept = float("-inf")  # capture time of the previous sweep

    def hot_frame(self, number: int, buf: bytes, begin: int, end: int, ts: float) -> bool:
        """Take the bulk of a transfer in place: in-order segments and bare ACKs of
        Ethernet/IPv4/TCP connections already known to be BitTorrent or encrypted.

        Nothing is sliced but the 12 address and port bytes that key the flow, and
        the payload only when it ends something (a message, not a piece's middle).
        False means "not that kind of frame": the caller passes it to ``frame``,
        which handles everything (SYN, FIN, RST, reordering, new flows, snap cuts).
        """
        entry = self.hot.get(buf[begin + 26 : begin + 38])
        if entry is None or end - begin < 54:
            return False
        etype, vihl, total, frag, proto, seq, offset_flags = ETH_IP4_TCP_HOT(buf, begin)
        if (etype != 0x0800 or vihl != 0x45 or proto != 6 or frag & 0x3FFF or offset_flags & _CONTROL
                or offset_flags < 0x5000):  # a data offset below 5 words: a stack drops the segment
            return False
        size = total - 20 - ((offset_flags >> 10) & 0x3C)
        ip_end = begin + 14 + total
        if size < 0 or ip_end > end:  # odd, or cut by the snap length
            return False
        flow, side, direction, other, parser, me, session = entry
        if other.pending:  # this frame's ACK may declare the other direction's holes
            return False
        if not size:
            flow.last_ts = session.end = ts
            return True
        if flow.state == DONE or seq != direction.next_seq or direction.pending:
            return False
        direction.consume(size)
        if parser is None or parser.skip_payload(size):
            me.stream_bytes += size
            if ts - me.active > SILENCE:  # (conformance.Activity.saw, inline on the hot path)
                me.quiet = ts - me.active
            me.active = ts
        else:
            self._deliver(flow, side, ((buf[ip_end - size : ip_end], number, ts),))
        flow.last_ts = session.end = ts
        return True

    def frame(self, number: int, ts: float, linktype: int, data: bytes) -> None:
        """Any frame, in capture order."""
        pkt = decode(linktype, data)
        if pkt is not None:
            self._decoded(number, ts, pkt)

    def _decoded(self, number: int, ts: float, pkt: tuple) -> None:
        """A frame's segment, datagram or IP fragment, as ``decode`` returned it."""
        if pkt[0] == FRAGMENT:  # datagrams it completes (or pushes out) count as this frame
            for whole in self.fragments.add(pkt, ts):
                self._packet(number, ts, whole)
            return
        self._packet(number, ts, pkt)

    def big_frame(self, number: int, ts: float, linktype: int, data: bytes) -> Iterator[None]:
        """``frame`` for a frame larger than ``SLICE``, pausing (yielding) after each ``SLICE``
        of a TCP payload so the caller can hand out the records so far: an offloaded
        frame of 16 MiB of zeros is four million keep-alives, streamed, never held."""
        pkt = decode(linktype, data)
        if pkt is None:
            return
        if pkt[0] != 6 or pkt[FLAGS] & _CONTROL or len(pkt[PAYLOAD]) <= SLICE:
            self._decoded(number, ts, pkt)
            return
        payload, cut, seq = memoryview(pkt[PAYLOAD]), pkt[MISSING], pkt[SEQ_NO]  # slices, not copies
        for start in range(0, len(payload), SLICE):
            part = payload[start : start + SLICE]
            last = start + SLICE >= len(payload)
            self._packet(number, ts, (*pkt[:SEQ_NO], (seq + start) & 0xFFFFFFFF, *pkt[ACK_NO:PAYLOAD], part,
                                      cut if last else 0))
            yield

    def _packet(self, number: int, ts: float, pkt: tuple) -> None:
        """A TCP segment or UDP datagram, as captured or put together from IP fragments."""
        proto, src, dst, sport, dport, seq, ack, flags, payload, cut = pkt
        if proto != 6:
            if proto == 17:
                self._datagram(src, dst, sport, dport, payload, number, ts, cut)
            return
        key = (src, sport, dst, dport)
        entry = self.flows.get(key)
        if entry is None or (flags & (SYN | ACK) == SYN and self._reused(entry[0], seq)):
            if not (payload or cut or flags & SYN):
                return
            entry = self._open(key, flags, ts, number)
        flow, side = entry
        flow.last_ts = ts
        if flow.session is not None:
            flow.session.end = ts  # the connection lasts until its last packet, final ACK included
        if flow.state >= OTHER:
            return
        direction = flow.dirs[side]
        if flags & SYN:
            direction.syn(seq)
        chunks = direction.segment(seq, payload, cut, bool(flags & FIN), number, ts) if payload or cut or flags & FIN else ()
        if direction.limit_hit:
            self._limit(flow, side, number, direction.limit_hit)
            direction.limit_hit = None
        if chunks:
            self._deliver(flow, side, chunks)
        if flags & ACK and flow.state < OTHER:
            acked = flow.dirs[1 - side].ack(ack, number, ts)
            if acked:
                self._deliver(flow, 1 - side, acked)
        if flags & RST:
            flow.reset = True
            self._close(flow, number)
        elif flow.dirs[0].finished and flow.dirs[1].finished:
            self._close(flow, number)

    def finish(self, number: int) -> None:
        """End of capture: close what is still open, reporting what it was cut in."""
        for ts, whole in self.fragments.flush():
            self._packet(number, ts, whole)
        for flow in self._each_flow():
            if flow.state < OTHER:
                self._close(flow, number)
        self.flows.clear()
        self.flow_count = 0
        self.hot.clear()

    # -- flow table ------------------------------------------------------------

    def _open(self, key: tuple, flags: int, ts: float, number: int) -> tuple[Flow, int]:
        src, sport, dst, dport = key
        self._make_room(key, number)
        forward, backward = key, (dst, dport, src, sport)
        # A SYN-ACK's sender is the listener: the opener is on the other end.
        swapped = flags & (SYN | ACK) == SYN | ACK
        if swapped:
            forward, backward = backward, forward
        a = format_addr(forward[0], forward[1])
        b = format_addr(forward[2], forward[3])
        flow = Flow("tcp", (a, b), (forward, backward), bool(flags & SYN), ts, self._directions("tcp"))
        self.flows[forward] = (flow, 0)
        self.flows[backward] = (flow, 1)
        self.flow_count += 1
        if forward == backward:
            # Source = destination: a socket connected to itself (or a forged "land"
            # packet). Both directions are one sequence space, read as side b's; side a
            # sends nothing, so it is finished from the start and a FIN closes the flow.
            flow.dirs[0].fin_offset = 0
        return self.flows[key]

    def _directions(self, transport: str) -> tuple:
        """A new flow's reassemblers, side 0 then side 1."""
        kind = TcpDirection if transport == "tcp" else UtpDirection
        return kind(self.limits.ooo, budget=self.ooo), kind(self.limits.ooo, budget=self.ooo)

    @staticmethod
    def _reused(flow: Flow, seq: int) -> bool:
        """A fresh SYN on a 4-tuple that already carried a connection starts a new one.
        A flow found not to be BitTorrent is no longer followed (its sequence numbers stop
        where the verdict came, before the opener's first byte if the other side spoke
        first), so any SYN on it starts a new connection."""
        first = flow.dirs[0]
        return flow.state >= OTHER or first.next_seq is None or (first.offset > 0 and (seq + 1) & 0xFFFFFFFF != first.next_seq)

    def _forget(self, flow: Flow) -> None:
        """Take a flow out of the tables. It is in ``flows`` under one key at least (every
        caller found it there); a key a newer flow took over stays the newer flow's."""
        for key in flow.keys:
            table = self.hot if key.__class__ is bytes else self.flows
            if table.get(key, (None,))[0] is flow:
                del table[key]
        self.flow_count -= 1
        for direction in flow.dirs:
            direction.drop()


    def sweep(self, now: float, number: int) -> None:
        """Close idle flows and forget closed ones; the driver calls it every ``SWEEP_EVERY`` frames.

        Only a flow without a packet since the previous sweep can be idle: a frame
        stamped far in the future, or a step of the capturing host's clock, then
        cannot close the connections that are still talking.
        """
        previous, self.swept = self.swept, now
        for flow in self._each_flow():
            if flow.last_ts >= previous:
                continue
            idle = now - flow.last_ts
            if flow.state >= OTHER and idle > CLOSED_LINGER or idle > IDLE_TIMEOUT:
                if flow.state < OTHER:
                    self._close(flow, number, state="idle")
                self._forget(flow)

    def _each_flow(self) -> list[Flow]:
        """Every flow in the table once, in the order they were opened: a flow has two to
        four keys, a "land" flow (source = destination) one, and that one on side 1; a
        uTP flow may have lost some to a newer flow and still hold the rest."""
        return list(dict.fromkeys(flow for flow, _ in self.flows.values()))

    def _make_room(self, key: tuple, number: int) -> None:
        """Before a new flow under ``key``: retire the one it replaces, and the least
        recently active flow when the table is full (TCP and uTP alike)."""
        old = self.flows.get(key)
        if old is not None:
            self._close(old[0], number, state="replaced")
            self._forget(old[0])
        if self.flow_count >= self.limits.flows:
            # The least recently active eighth goes at once: one O(n log n) pass per n/8 new
            # flows, not a scan of the whole table for each (a SYN flood made that quadratic).
            flows = self._each_flow()
            for oldest in heapq.nsmallest(max(1, len(flows) // EVICT_SHARE), flows, key=lambda f: f.last_ts):
                if oldest.state < OTHER:
                    self._close(oldest, number, state="evicted")
                self._forget(oldest)

    def _limit(self, flow: Flow, side: int, number: int, bound: str) -> None:
        what = {"ooo": "out-of-order bytes buffered for this direction",
                "ooo_total": "out-of-order bytes buffered over all flows"}[bound]
        if flow.session is not None:
            flow.session.note(side, number, "limit", f"{what} reached ({self.limits.option(bound)}); the bytes "
                                                     "missing before them are declared lost")

    def _datagram(self, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, number: int,
                  ts: float, cut: int = 0) -> None:
        """A UDP datagram: decoded only if it is uTP, which carries peer connections too."""
        packet = parse_utp(payload)
        if packet is None:
            return
        kind, cid, seq, ack, data = packet
        entry = self.flows.get((src, sport, dst, dport, cid))
        if entry is None and kind == ST_RESET:
            # A reset may carry either of the connection's ids (see inspector.utp).
            entry = (self.flows.get((src, sport, dst, dport, (cid - 1) & 0xFFFF))
                     or self.flows.get((src, sport, dst, dport, (cid + 1) & 0xFFFF)))
        if entry is None or kind == ST_SYN and entry[0].state >= OTHER:
            if kind == ST_SYN:
                entry = self._open_utp(src, sport, dst, dport, cid, True, ts, number)
            elif kind == ST_DATA and data:
                entry = self._open_utp(src, sport, dst, dport, cid, False, ts, number)
            else:
                return
        flow, side = entry
        if kind == ST_SYN and flow.opener_known:
            side = 0  # a peer connecting to its own socket sends and answers on one 4-tuple
        flow.last_ts = ts
        if flow.session is not None:
            flow.session.end = ts
        if flow.state >= OTHER:
            return
        gate = flow.probe
        if gate.__class__ is UtpGate:
            confirmed = gate.offer(side, payload, ts, (src, dst, sport, dport, payload, number, ts, cut))
            if confirmed is None:
                return
            flow.probe = Probe(flow.opener_known) if confirmed else None
            if not confirmed:
                self._not_bittorrent(flow)
                return
            for held in gate.held:  # this packet among them
                self._datagram(*held)
            return
        direction = flow.dirs[side]
        if kind == ST_STATE:
            # The responder's first packet is the STATE answering the SYN; it names
            # the responder's first sequence number.
            if side == 1 and direction.next_seq is None and flow.opener_known:
                direction.accept(seq)
        else:
            chunks = direction.segment(kind, seq, data, number, ts, cut)
            if direction.limit_hit:
                self._limit(flow, side, number, direction.limit_hit)
                direction.limit_hit = None
            if chunks:
                self._deliver(flow, side, chunks)
        if kind != ST_SYN and flow.state < OTHER:  # a SYN's ack_nr acknowledges nothing yet
            acked = flow.dirs[1 - side].ack(ack, number, ts)
            if acked:
                self._deliver(flow, 1 - side, acked)
        if kind == ST_STATE:
            return
        if kind == ST_RESET:
            flow.reset = True
            self._close(flow, number)
        elif kind == ST_FIN and flow.dirs[0].finished and flow.dirs[1].finished:
            self._close(flow, number)

    def _open_utp(self, src: bytes, sport: int, dst: bytes, dport: int, cid: int, syn: bool, ts: float,
                  number: int) -> tuple[Flow, int]:
        """Register a uTP connection under the ids each side sends with (see ``inspector.utp``)."""
        self._make_room((src, sport, dst, dport, cid), number)
        forward, backward = (src, sport, dst, dport), (dst, dport, src, sport)
        if syn:  # the opener sends X in its SYN, X + 1 afterwards; the other side sends X
            keys = [(*forward, cid, 0), (*forward, (cid + 1) & 0xFFFF, 0), (*backward, cid, 1)]
        else:  # which side opened is unknown: the other side may send with our id - 1 or + 1
            keys = [(*forward, cid, 0), (*backward, (cid - 1) & 0xFFFF, 1), (*backward, (cid + 1) & 0xFFFF, 1)]
        flow = Flow("utp", (format_addr(src, sport), format_addr(dst, dport)),
                    tuple(key[:5] for key in keys), syn, ts, self._directions("utp"))
        flow.probe = UtpGate(syn)  # one header is not enough: its packets must show a connection
        for *key, side in keys:
            self.flows[tuple(key)] = (flow, side)
        self.flow_count += 1
        return flow, 0

    # -- classification and decoding ---------------------------------------------

    def _deliver(self, flow: Flow, side: int, chunks) -> None:
        """Feed (chunk, frame, ts) triples to a side; each record keeps the frame of the
        bytes that completed it (a resync confirms some only later: they come tagged)."""
        if flow.state == PROBE:
            self._probe(flow, side, chunks)
            return
        if flow.state >= OTHER:
            return
        session = flow.session
        parser = session.parsers[side] if session.parsers else None
        me = session.sides[side]
        out = self.out if flow.trial is None else flow.trial
        for item in chunks:
            chunk, number, ts = item
            if chunk.__class__ is int:
                if parser is None:
                    lost = f"{chunk} bytes" if chunk >= 0 else "packets (size unknown)"
                    session.note(side, number, "hole", f"{lost} not captured")
                    if flow.scan is not None:  # bytes on either side of a hole make no prefix
                        flow.scan.held[side].append(item)
                        flow.scan.tails[side] = b""
                    continue
                events = parser.gap(chunk, item)
            else:
                me.stream_bytes += len(chunk)
                if ts - me.active > SILENCE:
                    me.quiet = ts - me.active
                me.active = ts
                if parser is None:
                    if flow.scan is not None:
                        self._scan(flow, side, item)
                        parser = session.parsers[side] if session.parsers else None
                    continue
                events = parser.feed(chunk, item)
            if events:
                self._emit(session, side, events, number, ts, out)
        if flow.trial is not None:
            self._judge(flow)

    @staticmethod
    def _emit(session: Session, side: int, events: list, number: int, ts: float, out: list) -> None:
        """Events as records: ``(event, item)`` ones (confirmed late) keep their item's frame."""
        for event in events:
            if event.__class__ is tuple:
                event, (_, frame, when) = event
            else:
                frame, when = number, ts
            found = session.account(side, (event,), frame, when)
            out.append(Record(session, side, frame, when, event))
            for who, finding in found:
                out.append(Record(session, who, frame, when, finding))

    def _probe(self, flow: Flow, side: int, chunks) -> None:
        """Hold a connection's first bytes until they say what it is (``inspector.detect``);
        ``chunks`` None: the connection ended first."""
        probe = flow.probe
        rest: list | tuple = ()
        if chunks is None:
            verdict = probe.end()
        else:
            verdict = UNDECIDED
            held = flow.held[side]
            for i, item in enumerate(chunks):
                chunk = item[0]
                if chunk.__class__ is int:  # a hole always ends the probe (Probe.gap)
                    verdict = probe.gap(side)
                    rest = chunks[i:]
                    break
                held.append((bytes(chunk), item[1], item[2]))
                verdict = probe.feed(side, chunk)
                if verdict != UNDECIDED:
                    rest = chunks[i + 1 :]
                    break
        if verdict == UNDECIDED:
            return
        flow.probe = None
        held, flow.held = flow.held, ([], [])
        if verdict == OTHER:
            if chunks is not None and not flow.opener_known and self.trials < MAX_TRIALS:
                self._start_trial(flow, held, side, rest)
            elif chunks is not None:  # at the end ``_close`` retires the flow
                self._not_bittorrent(flow)
            return
        last = max((h[-1] for h in held if h), key=lambda item: item[1])
        self._classify(flow, verdict, last[1], last[2])
        for s in (0, 1):
            if held[s]:
                self._deliver(flow, s, held[s])
        if rest:
            self._deliver(flow, side, rest)

    def _classify(self, flow: Flow, state: int, number: int, ts: float) -> None:
        flow.state = state
        session = self.session_type(0, flow.transport, *flow.addrs, opener_known=flow.opener_known,
                                    encrypted=state == ENCRYPTED, start=flow.start, keep_payload=self.keep_payload,
                                    limits=self.limits, partial=self.partial)
        session.pieces_by_hash = self.pieces_by_hash
        session.conformance.stalled = lambda side: _stalled(flow, side)
        session.end = ts
        if not flow.opener_known:
            session.note(None, number, "midstream", "the connection's start was not captured")
        if flow.keys[0] == flow.keys[1]:
            session.note(None, number, "land", "source and destination are one address and port (a socket "
                                               "connected to itself, or forged): both directions read as side b")
        flow.session = session
        self._register(flow)
        if state == ENCRYPTED:
            flow.scan = _Scan()  # until MSE's first bytes are searched, they are not taken in place
        else:
            self._make_hot(flow)

    def _register(self, flow: Flow) -> None:
        session = flow.session
        session.id = len(self.sessions) + 1
        session.registry = self.registry
        self.sessions.append(session)

    def _make_hot(self, flow: Flow) -> None:
        """Known IPv4/TCP connections also go by their wire bytes, for ``hot_frame``."""
        forward, backward = flow.keys[:2]
        if flow.transport != "tcp" or len(forward[0]) != 4:
            return
        session = flow.session
        for side, (src, sport, dst, dport) in enumerate((forward, backward)):
            wire = src + dst + _PORTS.pack(sport, dport)
            parser = session.parsers[side] if session.parsers else None
            self.hot[wire] = (flow, side, flow.dirs[side], flow.dirs[1 - side], parser, session.sides[side], session)
            if wire not in flow.keys:
                flow.keys += (wire,)

    # -- connections joined mid-stream, and MSE that selects plaintext -----------------

    def _start_trial(self, flow: Flow, held: tuple[list, list], side: int, rest) -> None:
        """A connection whose start was not captured and that opens with no handshake:
        decode it on trial, hunting for message boundaries, and show it only once a run
        of messages is found (``_judge``); anything else stays unshown."""
        flow.state = TRIAL
        self.trials += 1
        first = min((h[0] for h in held if h), key=lambda item: item[1], default=None)
        session = self.session_type(0, flow.transport, *flow.addrs, opener_known=False, encrypted=False,
                                    start=flow.start, keep_payload=self.keep_payload,
                                    limits=self.limits, partial=self.partial)
        session.pieces_by_hash = self.pieces_by_hash
        session.note(None, first[1] if first else 0, "midstream", "the connection's start was not captured")
        flow.session = session
        flow.trial = []
        # Past a verdict reached on the way, _deliver decodes the rest openly or drops it.
        for s in (0, 1):
            if held[s]:
                self._deliver(flow, s, held[s])
        if rest:
            self._deliver(flow, side, rest)

    def _judge(self, flow: Flow) -> None:
        session = flow.session
        for side, parser in enumerate(session.parsers):
            counts = session.sides[side].messages
            real = sum(counts.values()) - counts.get("keepalive", 0) - counts.get("unknown", 0)
            if parser.resyncs and real >= TRIAL_MESSAGES:
                self.trials -= 1
                records, flow.trial = flow.trial, None
                flow.state = BITTORRENT
                self._register(flow)
                self._make_hot(flow)
                self.out.extend(records)
                return
        if (any(me.stream_bytes > TRIAL_BYTES for me in session.sides)
                or all(parser.stopped for parser in session.parsers)):
            self._end_trial(flow)

    def _end_trial(self, flow: Flow) -> None:
        """Not shown to be BitTorrent: forget what was decoded on trial."""
        self.trials -= 1
        for parser in flow.session.parsers:
            parser.forget()
        flow.trial = None
        flow.session = None
        self._not_bittorrent(flow)

    @staticmethod
    def _not_bittorrent(flow: Flow) -> None:
        """Nothing more of the flow is decoded: what it holds out of order is let go
        of, or it would stay charged to the shared budget until the flow is swept."""
        flow.state = OTHER
        for direction in flow.dirs:
            direction.drop()

    def _scan(self, flow: Flow, side: int, item: tuple) -> None:
        """An MSE flow's first bytes: when a plaintext handshake appears in either
        direction (crypto_select chose plaintext), decode both from their start, each
        parser hunting past the key exchange."""
        scan = flow.scan
        chunk = bytes(item[0])
        scan.held[side].append((chunk, item[1], item[2]))
        scan.sizes[side] += len(chunk)
        window = scan.tails[side] + chunk
        scan.tails[side] = window[-(len(HANDSHAKE_PREFIX) - 1):]
        sizes = scan.sizes
        if HANDSHAKE_PREFIX not in window:
            if min(sizes) >= MSE_SCAN or max(sizes) >= 4 * MSE_SCAN:
                flow.scan = None
                self._make_hot(flow)
            return
        flow.scan = None
        session = flow.session
        session.parsers = session.make_parsers(True, AFTER_MSE)
        if session.opener_known and all(kind in HARMLESS for kind in session.finding_counts):
            # MSE chose plaintext and nothing was lost: the checks can start from the handshakes
            # (a direction whose hunt finds a message instead says resync, which stops them again).
            session.conformance.trusted = True
        self._make_hot(flow)
        for s in (0, 1):
            if scan.held[s]:
                session.sides[s].stream_bytes -= sizes[s]  # counted again as they are fed
                self._deliver(flow, s, scan.held[s])

    def _close(self, flow: Flow, number: int, state: str | None = None) -> None:
        if flow.state == PROBE and flow.probe.__class__ is Probe:
            self._probe(flow, 0, None)
        if flow.state >= OTHER:
            return
        if flow.state == TRIAL:
            # The end may still confirm it (a stream that ends on a message boundary).
            for side in (0, 1):
                leftover = flow.dirs[side].flush(number, flow.last_ts)
                if leftover and flow.trial is not None:
                    self._deliver(flow, side, leftover)
            session = flow.session
            if flow.trial is not None:
                for side, parser in enumerate(session.parsers):
                    self._emit(session, side, parser.end(), number, flow.last_ts, flow.trial)
                self._judge(flow)
            if flow.state != BITTORRENT:
                if flow.trial is not None:
                    self._end_trial(flow)
                flow.state = DONE
                return
        for side in (0, 1):
            leftover = flow.dirs[side].flush(number, flow.last_ts)
            if leftover and flow.state != PROBE:
                self._deliver(flow, side, leftover)
        session = flow.session
        if session is not None:
            if session.parsers:
                for side, parser in enumerate(session.parsers):
                    events = parser.end()
                    if events:
                        self._emit(session, side, events, number, flow.last_ts, self.out)
            session.end = flow.last_ts
            if state:
                session.state = state
            elif flow.reset:
                session.state = "reset"
            elif flow.dirs[0].finished and flow.dirs[1].finished:
                session.state = "closed"
        flow.state = DONE


class FrameSource(Protocol):
    """Where frames come from: a ``CaptureFile``, or a live backend (``inspector.sniff``).

    ``views`` yields ``(timestamp, linktype, buffer, start, end)``, the frame being
    ``buffer[start:end]`` (bytes, valid until the next frame is asked for); leaving
    the ``with`` block closes the source.
    """

    warnings: list[str]

    def views(self) -> Iterator[tuple[float, int, bytes, int, int]]: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


def _stalled(flow: Flow, side: int) -> bool:
    """Whether what ``side`` sent is not all read yet: bytes wait behind a gap, or its parser
    is still looking for where its messages start (after an MSE key exchange, a loss)."""
    if flow.dirs[side].pending:
        return True
    parsers = flow.session.parsers if flow.session is not None else None
    return parsers is not None and (parsers[side].midstream or parsers[side].hunting)


class CaptureDecode:
    """A capture file (or any ``FrameSource``) decoded lazily: iterate for records,
    then read ``sessions``.

    ``locate``: also find where each message's bytes lie in the file, for ``span`` and
    ``locator`` (``inspector.locate``: what the TUI's hex pane shows). Off by default,
    when nothing of the kind is recorded and ``read`` runs at full speed.
    """

    def __init__(self, path: str | os.PathLike | FrameSource, keep_payload: bool = False,
                 locate: bool = False, limits: Limits = DEFAULT, torrents: list | None = None) -> None:
        is_file = isinstance(path, (str, os.PathLike))
        if locate and not is_file:
            raise ValueError("messages are located only in a capture file")
        self.capture: FrameSource = CaptureFile(path, max_record=limits.record) if is_file else path
        self.first_ts: float | None = None
        self.locator: Locator | None = None
        if locate:
            from . import locate as where  # not loaded unless asked for

            self.locator = where.Locator(path)
            self.decoder: Decoder = where.LocatingDecoder(self.locator, keep_payload, limits)
        else:
            self.decoder = Decoder(keep_payload, limits)
        for torrent in torrents or ():  # inspector.extract.Torrent: counts, and hashes checked (payloads kept)
            from .pieces import torrent_facts

            self.decoder.keep_payload = True
            self.decoder.pieces_by_hash.update(torrent_facts(torrent))
        self._last: Record | None = None  # the record just yielded, and its span
        self._span: Span | None = None

    @property
    def sessions(self) -> list[Session]:
        return self.decoder.sessions

    @property
    def warnings(self) -> list[str]:
        return self.capture.warnings

    def span(self, record: Record) -> Span | None:
        """Where the record just yielded lies: a small value for ``locator.read`` and
        ``locator.frames`` that may be kept; None when its bytes cannot be placed (a
        finding, bytes lost before or inside it, see ``inspector.locate``)."""
        if self.locator is None:
            raise ValueError("messages are located only by CaptureDecode(path, locate=True)")
        if record is not self._last:
            raise ValueError("span() answers for the record just yielded only")
        return self._span

    def __iter__(self) -> Iterator[Record]:
        return self._records() if self.locator is None else self._located()

    def _records(self) -> Iterator[Record]:
        decoder = self.decoder
        out = decoder.out
        hot_frame, frame = decoder.hot_frame, decoder.frame
        number = 0
        with self.capture as capture:
            for number, (ts, linktype, buf, start, end) in enumerate(capture.views(), 1):
                if not number % SWEEP_EVERY:
                    decoder.sweep(ts, number)
                if not (linktype == 1 and hot_frame(number, buf, start, end, ts)):
                    if self.first_ts is None:
                        self.first_ts = ts
                    if end - start > SLICE:
                        for _ in decoder.big_frame(number, ts, linktype, buf[start:end]):
                            yield from out
                            out.clear()
                    else:
                        frame(number, ts, linktype, buf[start:end])
                if out:
                    yield from out
                    out.clear()
        decoder.finish(number)
        yield from out
        out.clear()

    def _located(self) -> Iterator[Record]:
        """``_records`` telling the locator where each frame lies; ``out`` holds
        (record, span) pairs (``LocatingDecoder``)."""
        decoder, seen = self.decoder, self.locator.seen  # type: ignore[union-attr]
        out: list = decoder.out
        hot_frame, frame = decoder.hot_frame, decoder.frame
        number = 0
        with self.capture as capture:
            offset = capture.offset
            for number, (ts, linktype, buf, start, end) in enumerate(capture.views(), 1):
                seen(number, offset(start), end - start, linktype)
                if not number % SWEEP_EVERY:
                    decoder.sweep(ts, number)
                if not (linktype == 1 and hot_frame(number, buf, start, end, ts)):
                    if self.first_ts is None:
                        self.first_ts = ts
                    frame(number, ts, linktype, buf[start:end])
                if out:
                    yield from self._hand_out(out)
        decoder.finish(number)
        yield from self._hand_out(out)

    def _hand_out(self, out: list) -> Iterator[Record]:
        """The records of (record, span) pairs, each span kept for ``span`` while its record is out."""
        for record, span in out:
            self._last, self._span = record, span
            yield record
        out.clear()
