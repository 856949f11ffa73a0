"""``btshark read --stats``: what Wireshark's Statistics menu would show for BitTorrent.

Counted from the records ``read`` would print (so ``-Y`` narrows it, as a display
filter narrows Wireshark's statistics): per session and side, messages by type,
payload bytes and rate, how long requests waited for their piece, how often and
how long each side let the other download, and the addresses that sent the most.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TextIO

from .output import safe_text
from .pipeline import Record
from .session import Session
from .words import human_bytes, milliseconds

TOP = 10  # talkers listed
MAX_WAITING = 1 << 16  # requests awaiting their piece, per side; the oldest go unanswered past it


@dataclass(slots=True)
class SideStats:
    messages: dict[str, int] = field(default_factory=dict)
    payload: int = 0
    first: float | None = None
    last: float = 0.0  # its latest message (set with first)
    waiting: dict[tuple[int, int, int], float] = field(default_factory=dict)  # its requests, by block
    requests: int = 0
    latencies: list[float] = field(default_factory=list)  # request to piece, seconds
    chokes: int = 0
    unchokes: int = 0
    unchoked_since: float | None = None  # it lets the other side download since then
    unchoked: list[tuple[float, float]] = field(default_factory=list)  # periods a choke ended
    fast: bool = False  # its handshake set the Fast bit (BEP 6)

    def as_dict(self, start: float, end: float) -> dict:
        span = self.last - self.first if self.first is not None else 0.0  # (set together)
        periods: list[tuple[float, float | None]] = [(a - start, b - start) for a, b in self.unchoked]
        if self.unchoked_since is not None:
            periods.append((self.unchoked_since - start, None))
        open_for = sum((end - start if b is None else b) - a for a, b in periods)
        return {
            "messages": dict(sorted(self.messages.items())),
            "message_total": sum(self.messages.values()),
            "payload_bytes": self.payload,
            "payload_rate": self.payload / span if span > 0 else None,
            "latency": {"requests": self.requests, "answered": len(self.latencies),
                        "median": percentile(self.latencies, 50), "p95": percentile(self.latencies, 95)},
            "choke": {"chokes": self.chokes, "unchokes": self.unchokes, "unchoked_seconds": open_for,
                      "unchoked": [[a, b] for a, b in periods]},
        }


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile (p in 0-100): a value that was measured, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


class Stats:
    """The figures, gathered record by record as ``read`` hands them over, so ``--stats``
    costs one pass and no more memory than the requests still awaiting their piece."""

    def __init__(self) -> None:
        self.sides: dict[int, tuple[SideStats, SideStats]] = {}
        self.sessions: dict[int, Session] = {}
        self.findings: dict[str, int] = {}

    def add(self, record: Record) -> None:
        session, side, _, ts, event = record
        pair = self.sides.get(session.id)
        if pair is None:
            pair = self.sides[session.id] = (SideStats(), SideStats())
            self.sessions[session.id] = session
        kind = event.type
        if kind == "finding":
            self.findings[event.kind] = self.findings.get(event.kind, 0) + 1
            return
        me, other = pair[side], pair[1 - side]
        me.messages[kind] = me.messages.get(kind, 0) + 1
        if me.first is None:
            me.first = ts
        me.last = ts
        if kind == "handshake":
            me.fast = bool(event.reserved[7] & 0x04)
        elif kind == "piece":
            me.payload += event.length
            asked = other.waiting.pop((event.index, event.begin, event.length), None)
            if asked is not None:
                other.latencies.append(ts - asked)
        elif kind == "request":
            me.requests += 1
            key = (event.index, event.begin, event.length)
            if key not in me.waiting:
                if len(me.waiting) >= MAX_WAITING:
                    del me.waiting[next(iter(me.waiting))]
                me.waiting[key] = ts
        elif kind == "cancel" or kind == "reject":
            asker = me if kind == "cancel" else other
            asker.waiting.pop((event.index, event.begin, event.length), None)
        elif kind == "choke":
            me.chokes += 1
            if not (me.fast and other.fast):  # BEP 3: a choke discards the requests; asked again, they wait anew
                other.waiting.clear()
            if me.unchoked_since is not None:
                me.unchoked.append((me.unchoked_since, ts))
                me.unchoked_since = None
        elif kind == "unchoke":
            me.unchokes += 1
            if me.unchoked_since is None:
                me.unchoked_since = ts

    def as_dict(self) -> dict:
        sessions = []
        talkers: dict[str, dict] = {}
        for sid in sorted(self.sides):
            session, pair = self.sessions[sid], self.sides[sid]
            start, end = session.start, session.end
            sides = {}
            hosts: set[str] = set()  # a session between two ports of one host counts once for it
            for label, side, stats in zip("ab", session.sides, pair):
                sides[label] = {"addr": side.addr, **stats.as_dict(start, end)}
                host = side.addr.rsplit(":", 1)[0]
                talker = talkers.setdefault(host, {"addr": host, "payload_bytes": 0, "messages": 0, "sessions": 0})
                talker["payload_bytes"] += stats.payload
                talker["messages"] += sum(stats.messages.values())
                if host not in hosts:
                    talker["sessions"] += 1
                    hosts.add(host)
            sessions.append({"id": sid, "transport": session.transport, "a": session.sides[0].addr,
                             "b": session.sides[1].addr, "start": start, "end": end, "duration": end - start,
                             "sides": sides})
        top = sorted(talkers.values(), key=lambda t: (-t["payload_bytes"], -t["messages"], t["addr"]))[:TOP]
        return {"sessions": sessions, "top_talkers": top, "findings": dict(sorted(self.findings.items()))}


def write_stats(stats: Stats, sessions: list[Session], fmt: str, out: TextIO) -> None:
    """``sessions``: the decode's, for sessions no record reached (they are listed with nothing)."""
    for session in sessions:
        if session.id not in stats.sides:
            stats.sides[session.id] = (SideStats(), SideStats())
            stats.sessions[session.id] = session
    figures = stats.as_dict()
    if fmt == "json":
        json.dump(figures, out, indent=2)
        out.write("\n")
        return
    if fmt == "jsonl":
        for s in figures["sessions"]:
            out.write(json.dumps({"type": "session_stats", **s}, separators=(",", ":")) + "\n")
        out.write(json.dumps({"type": "top_talkers", "talkers": figures["top_talkers"]}, separators=(",", ":")) + "\n")
        out.write(json.dumps({"type": "findings", "findings": figures["findings"]}, separators=(",", ":")) + "\n")
        return
    lines: list[str] = []
    for s in figures["sessions"]:
        lines.append(f"#{s['id']} {s['transport']} {s['a']} → {s['b']}  {s['duration']:.3f} s")
        for label in "ab":
            lines.append(_side_line(label, s["sides"][label]))
    if figures["findings"]:
        lines.append("Findings: " + ", ".join(f"{n} {kind}" for kind, n in figures["findings"].items()))
    lines.append("Top talkers (payload sent):")
    for t in figures["top_talkers"]:
        lines.append(f"    {t['addr']}  {human_bytes(t['payload_bytes'])} in {t['sessions']} "
                     f"session{'s' * (t['sessions'] != 1)}, {t['messages']} messages")
    out.write("".join(line + "\n" for line in lines))


def _side_line(label: str, side: dict) -> str:
    counts = sorted(side["messages"].items(), key=lambda kv: (-kv[1], kv[0]))
    kinds = ", ".join(f"{kind} {n}" for kind, n in counts) or "nothing"
    rate = f", {human_bytes(side['payload_rate'])}/s" if side["payload_rate"] else ""
    line = (f"    {label} {safe_text(side['addr'])}: {side['message_total']} messages ({kinds}); "
            f"{human_bytes(side['payload_bytes'])} payload{rate}")
    latency = side["latency"]
    if latency["answered"]:
        line += (f"; request→piece median {milliseconds(latency['median'])}, p95 {milliseconds(latency['p95'])} "
                 f"({latency['answered']} of {latency['requests']} requests answered)")
    choke = side["choke"]
    if choke["unchokes"] or choke["chokes"]:
        line += (f"; unchoked the other {choke['unchokes']}× (choked {choke['chokes']}×), "
                 f"{choke['unchoked_seconds']:.3f} s in all")
    return line

