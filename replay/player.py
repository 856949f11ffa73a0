"""The connecter that plays one captured side against live peers.

The capture is a script, not a recording to resend: a live peer answers in its own
time and its own way, so each captured message is played at its captured pace but
only when the protocol allows it (the original client's rules, which a live peer
enforces by hanging up): pieces are announced right after the handshakes, requests
go out only to an unchoked peer (or for its allowed-fast pieces) that has the piece,
and never more at once than the captured side had outstanding; a ``have`` waits
until the piece is really held; ``not_interested`` waits while the peer still has
something we want; a choke waits while the peer still wants something we have, an unchoke until the
peer is interested.
Blocks the captured side requested are spread over the live peers that have them
and asked again elsewhere when a peer chokes, rejects or goes away. Requests from a
live peer are served from the capture's bytes; what the capture lacks is rejected
(Fast) or ignored, as the original client ignored what it could not serve.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from inspector import events as ev
from inspector.output import ranges

from .encoder import HIGH_WATER, Connection, Encoder
from .plan import Block, BlockStore, Plan
from .record import hostport

ANNOUNCES = ("bitfield", "have_all", "have_none")
# Captured messages that are the protocol's answers, played live instead of from the script.
LIVE = frozenset({"request", "piece", "cancel", "reject", *ANNOUNCES})
# Captured messages not replayed: their meaning is the captured peer's world, not this one
# (a DHT port, peer exchange addresses, metadata answers, v2 hashes).
NOT_REPLAYED = frozenset({"port", "extended", "hash_request", "hashes", "hash_reject", "unknown"})


def _fast(conn: Connection, plan: Plan) -> bool:
    mine, theirs = plan.me.reserved or bytes(8), conn.peer_reserved or bytes(8)
    return bool(mine[7] & theirs[7] & 0x04)


@dataclass(eq=False)
class Peer:
    """What we know of one live connection."""

    conn: Connection
    t0: float
    fast: bool
    cursor: int = 0  # next script step for this peer
    am_choking: bool = True
    am_interested: bool = False
    peer_choking: bool = True
    peer_interested: bool = False
    announced: bool = False  # the peer said what it has (bitfield, have_all, have_none or a have)
    has_all: bool = False
    has: set[int] = field(default_factory=set)
    allowed_fast: set[int] = field(default_factory=set)  # what the peer lets us request while choked
    fast_sent: set[int] = field(default_factory=set)  # what we let it request while choked
    outstanding: dict[Block, None] = field(default_factory=dict)  # we asked it, not answered yet
    queue: deque[Block] = field(default_factory=deque)  # it asked us
    blocks_in: int = 0
    served: int = 0
    rejected: int = 0
    ignored: int = 0
    unexpected: int = 0

    def holds(self, index: int) -> bool:
        return self.has_all or index in self.has


@dataclass
class Tally:
    """What the replay achieved, for the report and the exit status."""

    requested: int = 0
    received: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    served: int = 0
    rejected: int = 0
    ignored: int = 0
    verified: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # pieces failing the torrent's hash
    mismatched: list[Block] = field(default_factory=list)  # blocks unlike the capture's bytes
    unchecked: int = 0  # blocks neither the torrent nor the capture could check
    not_replayed: dict[str, int] = field(default_factory=dict)
    most_connections: int = 0


class Player:
    """The encoder's connecter: one captured side, played to every live peer connected."""

    def __init__(self, plan: Plan, *, speed: float | None, progress=None) -> None:
        self.plan = plan
        self.speed = speed  # None: as fast as the protocol allows
        self.progress = progress
        self.encoder: Encoder | None = None
        self.peers: dict[Connection, Peer] = {}
        self.loop = asyncio.get_running_loop()
        self.start: float | None = None  # when the first live peer finished its handshake
        self.last_heard = self.loop.time()
        self.finished = self.loop.create_future()
        self.failure: str | None = None
        self.tally = Tally(requested=len(plan.requested))
        self.holding: set[int] = set(_announced(plan))
        # Requests in captured order, each released at its captured time.
        first: dict[Block, float] = {}
        for step in plan.steps:
            e = step.event
            if e.type == "request":
                first.setdefault((e.index, e.begin, e.length), step.offset)
        self.releases: deque[tuple[float, Block]] = deque((t, b) for b, t in first.items())
        self.wanted: dict[Block, None] = {}  # released, not received, not asked of anyone now
        self.received: set[Block] = set()
        self.requested = set(plan.requested)
        self.incoming = BlockStore() if plan.torrent is not None else None
        self.lost: list[tuple[str, str, str, bool]] = []  # (peer, reason, detail, after the handshake)
        self._timer: asyncio.TimerHandle | None = None
        self._pump_soon = False
        # Addresses not yet handed to the encoder: it keeps only max_initiate spares (the
        # original expected the tracker to hand out more later), so they are fed as room frees.
        self.to_connect: deque[tuple[str, int]] = deque()
        self.served_peer = False  # some peer was satisfied by what we serve
        self.peer_blocks: dict[tuple[str, str], dict[str, int]] = {}  # per connection, once it ended

    # -- the encoder's callbacks ------------------------------------------------------

    def connection_made(self, conn: Connection) -> None:
        now = self.loop.time()
        if self.start is None:
            self.start = now
        self.last_heard = now
        p = Peer(conn, now, _fast(conn, self.plan))
        self.peers[conn] = p
        self.tally.most_connections = max(self.tally.most_connections, len(self.encoder.connections))
        self._announce(p)
        self._pump()

    def got_message(self, conn: Connection, event: ev.Event) -> None:
        self.last_heard = self.loop.time()
        p = self.peers.get(conn)
        if p is None:
            return
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(p, event)
        if not self._pump_soon:  # once per burst of messages, not once per message
            self._pump_soon = True
            self.loop.call_soon(self._pump)

    def connection_lost(self, conn: Connection, reason: str) -> None:
        p = self.peers.pop(conn, None)
        self.lost.append((_addr(conn), reason, conn.detail, conn.complete))
        if p is not None:
            self.peer_blocks[(_addr(conn), hostport(conn.local))] = {
                "received": p.blocks_in, "unasked": p.unexpected, "served": p.served,
                "rejected": p.rejected, "ignored": p.ignored}
        if p is not None and p.served and not p.queue and reason == "closed":
            self.served_peer = True  # it took what it asked for and left
        if p is not None:
            for block in p.outstanding:
                if block not in self.received:
                    self.wanted[block] = None
        if not self.finished.done():
            self._top_up()
            self._pump()

    def connect(self, addrs: list[tuple[str, int]]) -> None:
        self.to_connect.extend(addrs)
        self._top_up()

    def _top_up(self) -> None:
        enc = self.encoder
        while self.to_connect and (len(enc.connections) < enc.max_initiate or len(enc.spares) < enc.max_initiate):
            enc.start_connection(self.to_connect.popleft())

    def connection_flushed(self, conn: Connection) -> None:
        p = self.peers.get(conn)
        if p is not None:
            self._serve(p)
            self._pump()

    def heard(self) -> None:
        """Bytes arrived (keep-alives too): the silence clock restarts."""
        self.last_heard = self.loop.time()

    # -- announcing -------------------------------------------------------------------

    def _announce(self, p: Peer) -> None:
        plan, conn = self.plan, p.conn
        holding = self.holding
        whole = plan.piece_count > 0 and len(holding) == plan.piece_count
        if p.fast and whole and (plan.torrent is not None or _captured_have_all(plan)):
            conn.send_have_all()
        elif holding and plan.piece_count:
            conn.send_bitfield(_bits(holding, plan.piece_count))
        elif p.fast:
            conn.send_have_none()
        # Without Fast, a side holding nothing sends nothing, as modern clients do.

    # -- the peer's messages -------------------------------------------------------------

    def _on_bitfield(self, p: Peer, e: ev.Bitfield) -> None:
        p.announced = True
        p.has = {i * 8 + j for i, byte in enumerate(e.bits) if byte for j in range(8) if byte & (0x80 >> j)}

    def _on_have_all(self, p: Peer, e: ev.Event) -> None:
        p.announced = p.has_all = True

    def _on_have_none(self, p: Peer, e: ev.Event) -> None:
        p.announced = True
        p.has.clear()

    def _on_have(self, p: Peer, e: ev.Have) -> None:
        p.announced = True
        p.has.add(e.index)

    def _on_choke(self, p: Peer, e: ev.Event) -> None:
        p.peer_choking = True
        # Without Fast a choke drops every request; with it, only allowed-fast ones survive
        # (rejects should follow, but some clients never send them: ask elsewhere now).
        for block in [b for b in p.outstanding if b[0] not in p.allowed_fast]:
            del p.outstanding[block]
            self._requeue(block)

    def _on_unchoke(self, p: Peer, e: ev.Event) -> None:
        p.peer_choking = False

    def _on_interested(self, p: Peer, e: ev.Event) -> None:
        p.peer_interested = True
        if p.am_choking and self.plan.serves and self.holding:
            self._send(p, "unchoke")  # the captured side answered interest this way

    def _on_not_interested(self, p: Peer, e: ev.Event) -> None:
        p.peer_interested = False

    def _on_allowed_fast(self, p: Peer, e: ev.AllowedFast) -> None:
        p.allowed_fast.add(e.index)

    def _on_reject(self, p: Peer, e: ev.Reject) -> None:
        block = (e.index, e.begin, e.length)
        if p.outstanding.pop(block, 0) is None:
            self._requeue(block)

    def _on_piece(self, p: Peer, e: ev.Piece) -> None:
        block = (e.index, e.begin, e.length)
        self.tally.bytes_in += e.length
        p.outstanding.pop(block, None)
        if block in self.received or block not in self.requested:
            p.unexpected += 1
            return
        self.received.add(block)
        self.wanted.pop(block, None)
        for other in self.peers.values():  # endgame leftovers: ask no one else
            if block in other.outstanding:
                del other.outstanding[block]
                other.conn.send_cancel(*block)
        p.blocks_in += 1
        self.tally.received += 1
        self._check(block, e.data)
        if self.progress is not None:
            self.progress.update(self.tally)

    def _on_request(self, p: Peer, e: ev.Request) -> None:
        block = (e.index, e.begin, e.length)
        data_ok = e.index in self.holding and self.plan.store.has(*block)
        if data_ok and (not p.am_choking or (p.fast and e.index in p.fast_sent)):
            p.queue.append(block)
            self._serve(p)
        elif p.fast:
            p.conn.send_reject(*block)
            p.rejected += 1
            self.tally.rejected += 1
        else:
            p.ignored += 1
            self.tally.ignored += 1

    def _on_cancel(self, p: Peer, e: ev.Cancel) -> None:
        block = (e.index, e.begin, e.length)
        if block in p.queue:
            p.queue.remove(block)
            if p.fast:  # BEP 6: a cancelled request is still answered
                p.conn.send_reject(*block)

    # -- what we need, and checking what arrives ------------------------------------------

    def _requeue(self, block: Block) -> None:
        if block not in self.received:
            self.wanted = {block: None, **self.wanted}

    def _check(self, block: Block, data: bytes | None) -> None:
        plan = self.plan
        index = block[0]
        if data is None:
            self.tally.unchecked += 1
            return
        if self.incoming is not None:
            self.incoming.add(index, block[1], data)
            size = plan.piece_size(index)
            if self.incoming.covered(index) >= size:
                piece = self.incoming.read(index, 0, size)
                if plan.check(index, piece):
                    self.tally.verified.append(index)
                    self.holding.add(index)
                else:
                    self.tally.failed.append(index)
            return
        captured = plan.store.read(*block)
        if captured is None:
            self.tally.unchecked += 1
        elif captured != data:
            self.tally.mismatched.append(block)

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, p: Peer) -> None:
        conn, store = p.conn, self.plan.store
        while p.queue and not conn.closed and conn.transport.get_write_buffer_size() < HIGH_WATER:
            index, begin, length = p.queue.popleft()
            conn.send_piece(index, begin, store.read(index, begin, length))
            p.served += 1
            self.tally.served += 1
            self.tally.bytes_out += length
            if self.progress is not None:
                self.progress.update(self.tally)

    # -- the script and the requests ---------------------------------------------------------

    def _due(self, offset: float) -> float:
        return 0.0 if self.speed is None else offset / self.speed

    def _pump(self) -> None:
        """Play whatever is due and allowed, hand out requests, and see whether we are done."""
        self._pump_soon = False
        if self.finished.done():
            return
        now = self.loop.time()
        nxt = []
        if self.start is not None:
            while self.releases and self.start + self._due(self.releases[0][0]) <= now:
                block = self.releases.popleft()[1]
                if block not in self.received:
                    self.wanted[block] = None
            if self.releases:
                nxt.append(self.start + self._due(self.releases[0][0]))
        for p in list(self.peers.values()):
            when = self._script(p, now)
            if when is not None:
                nxt.append(when)
        self._assign()
        self._prune()
        if self._done():
            for p in self.peers.values():
                self._script(p, float("inf"))  # what the side still said, now, before hanging up
            self.finish(None)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if nxt:
            self._timer = self.loop.call_at(min(nxt), self._pump)

    def _script(self, p: Peer, now: float) -> float | None:
        """Play ``p``'s due steps in order; the time the next one is due, if any."""
        steps = self.plan.steps
        while p.cursor < len(steps) and not p.conn.closed:
            step = steps[p.cursor]
            due = p.t0 + self._due(step.offset)
            if due > now:
                return due
            kind = step.event.type
            if kind in LIVE:
                pass
            elif kind in NOT_REPLAYED:
                self.tally.not_replayed[kind] = self.tally.not_replayed.get(kind, 0) + 1
            elif not self._play(p, step.event):
                return None  # held until the peer's next message or our next piece
            p.cursor += 1
        return None

    def _play(self, p: Peer, e: ev.Event) -> bool:
        """Send one scripted message if the protocol allows it now; False to hold it."""
        kind = e.type
        if kind == "keepalive":
            p.conn.send_keepalive()
        elif kind == "have":
            if e.index not in self.holding:
                return False
            p.conn.send_have(e.index)
        elif kind == "interested":
            if not p.am_interested:
                self._send(p, kind)
        elif kind == "unchoke":
            if not p.peer_interested:
                return False  # as the original choker: only interested peers are unchoked
            if p.am_choking:
                self._send(p, kind)
        elif kind == "not_interested":
            if self._wants_from(p):
                return False
            if p.am_interested:
                self._send(p, kind)
        elif kind == "choke":
            if p.peer_interested and self._lacks(p):
                return False
            if not p.am_choking:
                self._send(p, kind)
        elif kind == "allowed_fast":
            if p.fast and e.index in self.holding:
                p.conn.send_allowed_fast(e.index)
                p.fast_sent.add(e.index)
        elif kind == "suggest":
            if p.fast and e.index in self.holding:
                p.conn.send_suggest(e.index)
        return True

    def _send(self, p: Peer, kind: str) -> None:
        if kind == "interested":
            p.am_interested = True
            p.conn.send_interested()
        elif kind == "not_interested":
            p.am_interested = False
            p.conn.send_not_interested()
        elif kind == "unchoke":
            p.am_choking = False
            p.conn.send_unchoke()
        elif kind == "choke":
            p.am_choking = True
            p.queue.clear()
            p.conn.send_choke()

    def _wants_from(self, p: Peer) -> bool:
        return bool(p.outstanding) or any(p.holds(b[0]) for b in self._remaining())

    def _remaining(self):
        """Blocks still to get: released or not, and not asked of anyone now."""
        yield from self.wanted
        yield from (b for _, b in self.releases if b not in self.received)

    def _lacks(self, p: Peer) -> bool:
        """The peer misses a piece we hold."""
        return not p.has_all and not self.holding <= p.has

    def _assign(self) -> None:
        """Hand the wanted blocks out, round-robin over the peers that may be asked for them."""
        if not self.wanted:
            return
        room = {p: self.plan.pipeline - len(p.outstanding) for p in self.peers.values()
                if p.conn.complete and not p.conn.closed}
        for p in room:
            if not p.am_interested and any(p.holds(b[0]) for b in self.wanted):
                self._send(p, "interested")
        progress = True
        while progress and self.wanted:
            progress = False
            for p, free in room.items():
                if free <= 0:
                    continue
                block = next((b for b in self.wanted if p.holds(b[0]) and
                              (not p.peer_choking or (p.fast and b[0] in p.allowed_fast))), None)
                if block is None:
                    continue
                del self.wanted[block]
                p.outstanding[block] = None
                p.conn.send_request(*block)
                room[p] = free - 1
                progress = True

    def _prune(self) -> None:
        """Hang up on a peer with nothing for us and nothing to get from us when others wait."""
        enc = self.encoder
        if not enc.spares and not self.to_connect:
            return
        for p in list(self.peers.values()):
            if (p.announced and not p.outstanding and not p.queue and not self._wants_from(p)
                    and not (self.plan.serves and p.peer_interested and self._lacks(p))):
                p.conn.close("done", "nothing more to get from it")

    # -- the end ---------------------------------------------------------------------------------

    def _satisfied(self, p: Peer) -> bool:
        return p.announced and not p.queue and not self._lacks(p)

    def _done(self) -> bool:
        if self.start is None:
            return False
        if self.plan.requested and len(self.received) < len(self.plan.requested):
            return False
        if self.plan.serves and self.holding:
            if any(self._satisfied(p) for p in self.peers.values()):
                self.served_peer = True
            if not self.served_peer or any(p.queue for p in self.peers.values()):
                return False
        if not self.plan.requested and not self.plan.serves:
            return all(p.cursor >= len(self.plan.steps) for p in self.peers.values())
        return True

    def stalled(self) -> str | None:
        """Why the replay can no longer succeed, if it cannot."""
        if self.finished.done() or self.encoder is None:
            return None
        if self.peers or self.encoder.connections or self.encoder.spares or self.to_connect:
            return None
        if self.plan.serves and not self.plan.requested and self.encoder.listening:
            return None  # a listener waits for the next peer
        if not self.lost:
            return None
        return lost_reason(*self.lost[-1], self)

    def unobtainable(self) -> str | None:
        """Why the blocks left cannot come from the peers connected, when every one has said what it has."""
        enc = self.encoder
        if (self.finished.done() or enc is None or enc.spares or self.to_connect or enc.listening or not self.peers
                or len(enc.connections) > len(self.peers)
                or not all(p.announced for p in self.peers.values())):
            return None
        left = [b for b in self._remaining()] + [b for p in self.peers.values() for b in p.outstanding]
        if not left or any(p.holds(b[0]) for p in self.peers.values() for b in left):
            return None
        pieces = sorted({b[0] for b in left})
        return f"no live peer has the {len(left)} block(s) left (pieces {ranges(pieces)})"

    def finish(self, failure: str | None) -> None:
        if self.finished.done():
            return
        self.failure = failure
        if self._timer is not None:
            self._timer.cancel()
        self.finished.set_result(failure)

    def close(self) -> None:
        if self.incoming is not None:
            self.incoming.close()


def lost_reason(addr: str, reason: str, detail: str, complete: bool, player: Player) -> str:
    """One line saying why the last live peer was lost."""
    got = f"after {len(player.received)} of {len(player.plan.requested)} blocks" if player.plan.requested else \
        f"after serving {player.tally.served} blocks"
    if reason == "connect_failed":
        return f"cannot connect to {addr}: {_strip_errno(detail)}"
    if reason in ("info_hash_mismatch", "bad_protocol", "oversize", "self_connection",
                  "duplicate_peer_id", "peer_id_mismatch"):
        return f"{addr}: {detail} (hung up: {reason})"
    if reason == "reset":
        return f"connection to {addr} reset by the peer {got}"
    if reason == "done":
        return f"no live peer has the blocks still wanted ({len(player.plan.requested) - len(player.received)} left)"
    if not complete:
        return f"{addr} closed the connection during the handshake (does it serve this torrent?)"
    return f"{addr} closed the connection {got}"


def _strip_errno(detail: str) -> str:
    """``[Errno 111] Connect call failed ('127.0.0.1', 9)`` -> ``connection refused``."""
    if "111" in detail or "refused" in detail.lower():
        return "connection refused"
    return detail


def _addr(conn: Connection) -> str:
    return hostport(conn.addr)


def _announced(plan: Plan) -> list[int]:
    """The pieces the captured side announced at its start that the capture holds whole."""
    have = set(plan.have)
    for step in plan.steps:
        e = step.event
        if e.type == "bitfield":
            return sorted(i for i in have if i // 8 < len(e.bits) and e.bits[i // 8] & (0x80 >> (i % 8)))
        if e.type == "have_all":
            return sorted(have)
        if e.type in ("have_none", "request", "piece", "have"):
            return []
    return []


def _captured_have_all(plan: Plan) -> bool:
    return any(s.event.type == "have_all" for s in plan.steps[:4])


def _bits(pieces: set[int], count: int) -> bytes:
    bits = bytearray((count + 7) // 8)
    for i in pieces:
        if i < count:
            bits[i >> 3] |= 0x80 >> (i & 7)
    return bytes(bits)
