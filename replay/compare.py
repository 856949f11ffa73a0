"""How the live peer differed from the peer in the capture.

A replay reproduces a bug report only as far as the live peer behaves like the
captured one; what differs (another client, other extensions, messages in another
order, other blocks asked or served) is what a user reads first when the replay
does not reproduce. Differences are reported, never fatal: the exit status says
whether the replayed side did what it did in the capture.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from inspector.clients import identify
from inspector.wire import reserved_names

from .plan import Plan
from .record import ConnLog

IGNORED = frozenset({"keepalive", "finding", "handshake"})


def _shape(types: Iterable[str]) -> list[str]:
    """Message types in order, runs collapsed: ``piece ×64`` is one ``piece``."""
    out: list[str] = []
    for t in types:
        if t not in IGNORED and (not out or out[-1] != t):
            out.append(t)
    return out


def _blocks(messages: Iterable[dict], kind: str) -> set[tuple[int, int, int]]:
    return {(m["index"], m["begin"], m["length"]) for m in messages if m["type"] == kind}


def _span(blocks: set) -> str:
    first = sorted(blocks)[:3]
    more = f" and {len(blocks) - 3} more" if len(blocks) > 3 else ""
    return ", ".join(f"{i}/{b}+{n}" for i, b, n in first) + more


def differences(plan: Plan, log: ConnLog) -> list[dict]:
    """What the live peer of ``log`` did otherwise than the captured other side."""
    out: list[dict] = []
    live = log.received()
    hs = next((m for m in live if m["type"] == "handshake"), None)
    them = plan.them

    def differ(what: str, captured, now, detail: str = "") -> None:
        if captured != now:
            out.append({"peer": log.peer, "what": what, "captured": captured, "live": now,
                        **({"detail": detail} if detail else {})})

    if hs is not None and them.peer_id is not None:
        differ("client", them.client, identify(bytes.fromhex(hs["peer_id"])))
        differ("extensions", them.extensions, reserved_names(bytes.fromhex(hs["reserved"])))
    ext = next((m for m in live if m["type"] == "extended" and m["ext_id"] == 0), None)
    if them.extension or ext is not None:
        m = ext["data"].get("m") if ext is not None and isinstance(ext["data"], dict) else None
        names = sorted(k for k, v in m.items() if isinstance(v, int) and v) if isinstance(m, dict) else []
        differ("extension_names", them.ext_names, names)
    captured = [s.event.type for s in plan.theirs]
    # The plan keeps the captured extension handshake apart from the messages; so here.
    now = [m["type"] for m in live if not (m["type"] == "extended" and m["ext_id"] == 0)]
    counts = Counter(t for t in captured if t not in IGNORED)
    live_counts = Counter(t for t in now if t not in IGNORED)
    for kind in sorted(set(counts) | set(live_counts)):
        differ(f"count:{kind}", counts.get(kind, 0), live_counts.get(kind, 0))
    a, b = _shape(captured), _shape(now)
    if a != b:
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        differ("order", a[at : at + 5], b[at : at + 5], f"message order differs from the capture at step {at + 1}")
    for kind in ("request", "piece"):
        was = {(s.event.index, s.event.begin, s.event.length) for s in plan.theirs if s.event.type == kind}
        got = _blocks(live, kind)
        if was - got:
            differ(f"{kind}s_missing", len(was - got), 0, f"captured, not live: {_span(was - got)}")
        if got - was:
            differ(f"{kind}s_extra", 0, len(got - was), f"live, not captured: {_span(got - was)}")
    return out
