"""A session: one peer connection, its two sides, and what they said.

The parser knows one direction; only the session sees both, so the checks that
need both handshakes (info hash mismatch, a peer talking to itself) and the
BEP 10 id naming (ids come from the *receiver's* handshake) live here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import events as ev
from .clients import identify
from .conformance import HARMLESS, Conformance, Found
from .pieces import Metadata, PieceFacts
from .extensions import extension_names
from .limits import DEFAULT, Budget, Limits
from .parser import PeerWireParser
from .resync import Torrent
from .wire import reserved_names

EXT_FACTS = ("v", "m", "p", "reqq", "metadata_size", "yourip")


@dataclass(slots=True)
class Side:
    """What one endpoint revealed about itself."""

    addr: str
    reserved: bytes | None = None
    info_hash: bytes | None = None
    peer_id: bytes | None = None
    extension: dict = field(default_factory=dict)  # the facts of its extension handshake
    messages: dict[str, int] = field(default_factory=dict)
    payload_bytes: int = 0  # piece block bytes sent
    stream_bytes: int = 0  # TCP/uTP payload bytes sent
    active: float = 0.0  # when it last sent bytes (conformance.Activity): from the session's start
    quiet: float = 0.0  # a silence its latest bytes ended, not yet reported

    @property
    def client(self) -> str | None:
        return identify(self.peer_id) if self.peer_id else None

    def as_dict(self) -> dict:
        return {
            "addr": self.addr,
            "peer_id": self.peer_id.hex() if self.peer_id else None,
            "client": self.client,
            "reserved": self.reserved.hex() if self.reserved else None,
            "extensions": reserved_names(self.reserved) if self.reserved else [],
            "extension_handshake": self.extension,
            "messages": dict(sorted(self.messages.items())),
            "payload_bytes": self.payload_bytes,
            "stream_bytes": self.stream_bytes,
        }


@dataclass(frozen=True, slots=True)
class SessionFinding:
    kind: str
    side: str | None  # "a", "b", or None for the connection as a whole
    frame: int
    detail: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "severity": ev.severity_of(self.kind), "side": self.side,
                "frame": self.frame, "detail": self.detail}


class PeerRegistry:
    """Who is talking to whom across the sessions of a capture, for the check the
    original client made on every handshake: one connection per peer id.

    A side's own id repeats across its sessions (one client, many peers), so what is
    flagged is a peer id at two addresses at once, or a second connection between the
    same two peer ids while the first is still open.
    """

    def __init__(self) -> None:
        self._by_id: dict[tuple[bytes, bytes], list[tuple[Session, int]]] = {}

    def handshake(self, session: Session, side: int, found: list[Found]) -> None:
        me = session.sides[side]
        key = (me.info_hash or b"", me.peer_id or b"")
        others = self._by_id.setdefault(key, [])
        host = _host(me.addr)
        theirs = session.sides[1 - side].peer_id
        for other, other_side in others:
            if other is session or other.state != "open":
                continue
            them = other.sides[other_side]
            if _host(them.addr) != host:
                found.append((side, ev.Finding("duplicate_peer_id", f"peer id {me.peer_id.hex()} also used by "
                                                                    f"{them.addr} in session #{other.id}")))
                break
            if theirs is not None and other.sides[1 - other_side].peer_id == theirs:
                found.append((side, ev.Finding("duplicate_peer_id", f"a second connection between the same two "
                                                                    f"peer ids (session #{other.id} is open)")))
                break
        others.append((session, side))
        if len(others) > 64:
            del others[0]


def _host(addr: str) -> str:
    return addr.rsplit(":", 1)[0]


class Session:
    """Both directions of one connection. Side 0 is ``a``: the opener, when known."""

    parser_type = PeerWireParser  # ``inspector.locate`` puts its own here

    def __init__(self, sid: int, transport: str, a: str, b: str, *, opener_known: bool,
                 encrypted: bool, start: float, registry: PeerRegistry | None = None,
                 keep_payload: bool = False, limits: Limits = DEFAULT, partial: Budget | None = None) -> None:
        self.id = sid
        self.transport = transport
        self.sides = (Side(a, active=start), Side(b, active=start))
        self.opener_known = opener_known
        self.encrypted = encrypted
        self.start = start
        self.end = start
        self.state = "open"
        self.findings: list[SessionFinding] = []
        self.findings_dropped = 0  # past ``limits.findings``: counted, not kept
        self.limits = limits
        self.partial = partial
        self.registry = registry
        self.keep_payload = keep_payload
        self.torrent = Torrent()
        self.finding_counts: dict[str, int] = {}  # every finding by kind, kept or not
        self.pieces_by_hash: dict[bytes, PieceFacts] = {}  # --torrent's, and counts metadata exchanges gave
        self.metadata: Metadata | None = None  # ut_metadata pieces, while they come
        # MSE may hide a handshake: nothing before a plaintext one is known.
        self.conformance = Conformance(opener_known and not encrypted, activity=self.sides)
        self.conformance.sender = lambda side: f"#{self.id} {'ab'[side]}"  # the id is given on registering
        self.parsers = None if encrypted else self.make_parsers(not opener_known)

    def make_parsers(self, midstream: bool, why: str = "the connection's start was not captured"
                     ) -> tuple[PeerWireParser, PeerWireParser]:
        """Parsers for both directions, sharing what is learnt about the torrent."""
        return tuple(self.parser_type(midstream=midstream, torrent=self.torrent, why=why,  # type: ignore[return-value]
                                      keep_payload=self.keep_payload, max_len=self.limits.message,
                                      partial=self.partial) for _ in range(2))

    @property
    def info_hash(self) -> bytes | None:
        return self.sides[0].info_hash or self.sides[1].info_hash

    def note(self, side: int | None, frame: int, kind: str, detail: str) -> None:
        counts = self.finding_counts
        counts[kind] = counts.get(kind, 0) + 1
        if kind not in HARMLESS and kind not in ev.CONFORMANCE:
            self.conformance.lost()
        findings = self.findings
        if len(findings) < self.limits.findings:
            findings.append(SessionFinding(kind, None if side is None else "ab"[side], frame, detail))
        elif self.findings_dropped:
            self.findings_dropped += 1
        else:
            self.findings_dropped = 1
            findings.append(SessionFinding("limit", None, frame, f"findings kept per session reached "
                                           f"({self.limits.option('findings')}); later ones are counted only"))

    def account(self, side: int, events: list[ev.Event], frame: int, ts: float) -> list[Found]:
        """Fold one direction's events into the session's facts and findings; what the
        conformance checks found, as (side, finding), for the caller to show after them."""
        me = self.sides[side]
        found: list[Found] = []
        for event in events:
            kind = event.type
            if kind == "finding":
                self.note(side, frame, event.kind, event.detail)
                continue
            me.messages[kind] = me.messages.get(kind, 0) + 1
            start = len(found)
            found += self.conformance.check(side, event, ts)
            if kind == "handshake":
                self._handshake(side, event, found)
            for who, finding in found[start:]:
                self.note(who, frame, finding.kind, finding.detail)
            if kind == "piece":
                me.payload_bytes += event.length
            elif kind == "request":
                if self.parsers:
                    self.parsers[1 - side].expect(event.index, event.begin, event.length)
                    if me.messages[kind] == 1:
                        self.torrent.block = event.length
            elif kind == "cancel" or kind == "reject":
                if self.parsers:
                    asked = self.parsers[1 - side if kind == "cancel" else side]
                    asked.expected.pop((event.index, event.begin, event.length), None)
            elif kind == "bitfield":
                torrent = self.torrent
                if torrent.bitfield_bytes is None:
                    torrent.bitfield_bytes = event.size - 1
                    torrent.piece_count = 8 * torrent.bitfield_bytes
            elif kind == "extended" and event.metadata is not None:
                self._metadata(event)
            elif kind == "extended" and event.ext_id == 0 and isinstance(event.data, dict):
                me.extension = {k: event.data[k] for k in EXT_FACTS if k in event.data}
                if self.parsers:
                    # What this side names in its m dictionary is what the other sends it.
                    receiver = self.parsers[1 - side]
                    receiver.ext_names = extension_names(event.data, receiver.ext_names)
        return found

    def _metadata(self, event: ev.Extended) -> None:
        """A ut_metadata piece: once the info dictionary is whole and hashes right, its piece
        count bounds the indices of this session and of later ones of the torrent."""
        if self.metadata is None:
            self.metadata = Metadata()
        data = event.data  # a data message's dictionary (the parser hands over its bytes only then)
        count = self.metadata.add(data.get("piece"), data.get("total_size"), event.metadata,  # type: ignore[union-attr]
                                  self.info_hash)
        if count is not None and self.conformance.pieces is None:
            facts = self.conformance.pieces = PieceFacts(count)
            self.pieces_by_hash.setdefault(self.info_hash, facts)  # type: ignore[arg-type]

    def _handshake(self, side: int, hs: ev.Handshake, found: list[Found]) -> None:
        me, other = self.sides[side], self.sides[1 - side]
        me.reserved, me.info_hash, me.peer_id = hs.reserved, hs.info_hash, hs.peer_id
        if self.conformance.pieces is None and hs.info_hash in self.pieces_by_hash:
            self.conformance.pieces = self.pieces_by_hash[hs.info_hash]
        if other.info_hash is not None and other.info_hash != hs.info_hash:
            found.append((side, ev.Finding("info_hash_mismatch", f"info hash {hs.info_hash.hex()} differs from "
                                                                 f"the other side's {other.info_hash.hex()}")))
        if other.peer_id is not None and other.peer_id == hs.peer_id and len(hs.peer_id) == 20:
            found.append((side, ev.Finding("self_connection", f"both sides use peer id {hs.peer_id.hex()}")))
        if self.registry is not None:
            self.registry.handshake(self, side, found)

    def as_dict(self) -> dict:
        a, b = self.sides
        return {
            "id": self.id,
            "transport": self.transport,
            "a": a.addr,
            "b": b.addr,
            "opener_known": self.opener_known,
            "info_hash": self.info_hash.hex() if self.info_hash else None,
            "peer_ids": {"a": a.peer_id.hex() if a.peer_id else None, "b": b.peer_id.hex() if b.peer_id else None},
            "clients": {"a": a.client, "b": b.client},
            "encrypted": self.encrypted,
            "start": self.start,
            "end": self.end,
            "state": self.state,
            "messages": {"a": dict(sorted(a.messages.items())), "b": dict(sorted(b.messages.items()))},
            "payload_bytes": {"a": a.payload_bytes, "b": b.payload_bytes},
            "sides": {"a": a.as_dict(), "b": b.as_dict()},
            "findings": [f.as_dict() for f in self.findings],
            "finding_counts": dict(sorted(self.finding_counts.items())),
            "findings_dropped": self.findings_dropped,
        }
