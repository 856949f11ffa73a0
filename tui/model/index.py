"""Every message and finding of a capture in compact columns, one row each.

A million messages must open at once and scroll smoothly, so nothing is held per
row but a few machine integers in ``array``s (about 50 bytes a row); the rare
messages whose details are more than numbers (handshakes, bitfields, extended
messages, findings) keep their event object. Everything else is rebuilt from the
columns when a row is drawn or selected.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass

from inspector import events as ev
from inspector.pipeline import Record
from inspector.session import Session

TYPES = ("handshake", "keepalive", "choke", "unchoke", "interested", "not_interested", "have", "bitfield",
         "request", "piece", "cancel", "port", "suggest", "have_all", "have_none", "reject", "allowed_fast",
         "extended", "hash_request", "hashes", "hash_reject", "unknown", "finding")
CODE = {name: i for i, name in enumerate(TYPES)}
FINDING = CODE["finding"]
_BLOCK = {CODE[t] for t in ("request", "piece", "cancel", "reject")}
_INDEX = {CODE[t] for t in ("have", "suggest", "allowed_fast")}
_BARE = {CODE[t]: cls for t, cls in (
    ("keepalive", ev.KeepAlive), ("choke", ev.Choke), ("unchoke", ev.Unchoke), ("interested", ev.Interested),
    ("not_interested", ev.NotInterested), ("have_all", ev.HaveAll), ("have_none", ev.HaveNone))}
_BLOCK_CLS = {CODE["request"]: ev.Request, CODE["cancel"]: ev.Cancel, CODE["reject"]: ev.Reject}
_INDEX_CLS = {CODE["have"]: ev.Have, CODE["suggest"]: ev.Suggest, CODE["allowed_fast"]: ev.AllowedFast}


class _Kind:
    """A stand-in event that only has a type: what ``light_record`` hands a filter."""

    __slots__ = ("type",)

    def __init__(self, name: str) -> None:
        self.type = name


_KINDS = tuple(_Kind(name) for name in TYPES)
LIGHT_FIELDS = frozenset(("bt.type", "session"))  # what a light record answers


@dataclass(frozen=True, slots=True)
class Row:
    """One row, rebuilt: what the panes need."""

    row: int
    frame: int
    ts: float
    session: Session
    side: int  # 0: a -> b, 1: b -> a
    event: ev.Event
    span: object  # where its bytes are in the capture file (None: not locatable)


class MessageIndex:
    """Rows in capture order; ``by_session`` lists each session's rows."""

    def __init__(self) -> None:
        self.frame = array("I")
        self.ts = array("d")
        self.session = array("I")
        self.side = array("B")
        self.kind = array("B")
        self.a = array("q")  # index (have, request, piece...) or -1
        self.b = array("q")  # begin (a piece missing bytes keeps its event in ``extra``)
        self.c = array("q")  # length
        self.extra: dict[int, object] = {}  # row -> event, for types the columns cannot rebuild
        self.spans: dict[int, object] = {}  # row -> span, when the capture was read with a locator
        self.sessions: dict[int, Session] = {}
        self.by_session: dict[int, array] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def append(self, record: Record, span: object = None) -> int:
        row = len(self.frame)
        event, session = record.event, record.session
        code = CODE.get(event.type, CODE["unknown"])
        self.frame.append(record.frame)
        self.ts.append(record.ts)
        self.session.append(session.id)
        self.side.append(record.side)
        self.kind.append(code)
        if code in _BLOCK or code == CODE["piece"]:
            self.a.append(event.index)
            self.b.append(event.begin)
            self.c.append(event.length)
            if code == CODE["piece"] and event.missing:
                self.extra[row] = ev.Piece(event.index, event.begin, event.length, event.missing)
        elif code in _INDEX:
            self.a.append(event.index)
            self.b.append(-1)
            self.c.append(-1)
        else:
            self.a.append(-1)
            self.b.append(-1)
            self.c.append(-1)
            if code not in _BARE:
                self.extra[row] = event
        if span is not None:
            self.spans[row] = span
        if session.id not in self.sessions:
            self.sessions[session.id] = session
            self.by_session[session.id] = array("I")
        self.by_session[session.id].append(row)
        return row

    def event(self, row: int) -> ev.Event:
        held = self.extra.get(row)
        if held is not None:
            return held  # type: ignore[return-value]
        code = self.kind[row]
        if code in _BARE:
            return _BARE[code]()
        if code in _INDEX_CLS:
            return _INDEX_CLS[code](self.a[row])
        if code == CODE["piece"]:
            return ev.Piece(self.a[row], self.b[row], self.c[row])
        return _BLOCK_CLS[code](self.a[row], self.b[row], self.c[row])

    def get(self, row: int) -> Row:
        return Row(row, self.frame[row], self.ts[row], self.sessions[self.session[row]], self.side[row],
                   self.event(row), self.spans.get(row))

    def light_record(self, row: int) -> Record:
        """The row as far as a filter over message type and session reads it: no event rebuilt."""
        return Record(self.sessions[self.session[row]], 0, 0, 0.0, _KINDS[self.kind[row]])

    def record(self, row: int) -> Record:
        """The row as the decode gave it, for the display filter."""
        return Record(self.sessions[self.session[row]], self.side[row], self.frame[row], self.ts[row], self.event(row))

    def type_name(self, row: int) -> str:
        return TYPES[self.kind[row]]
