"""Records and sessions as text, JSON and JSON lines (the DESIGN.md contracts).

Peer-controlled strings (peer ids, extension names, bencoded text, finding details)
are data. On their way to a terminal each is escaped once, reversibly: what
``str.isprintable`` refuses (C0, DEL, C1, format characters such as the bidi
overrides U+202A-U+202E and U+2066-U+2069, zero-width ones, line separators) is
written as Python writes it (``\x1b``, ``\u202e``), and a backslash as ``\\``, so a
peer's literal four characters ``\x1b`` stay distinguishable from an escaped ESC.
An extended body in a text line is JSON, with such characters as JSON escapes.
JSON output is ASCII (``ensure_ascii``): safe on a terminal, the true strings for scripts.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from . import events as ev
from .clients import identify
from .pipeline import Record
from .session import Session
from .wire import reserved_names

def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe_text(text: str) -> str:
    """Peer-controlled text made harmless for a terminal, reversibly (see the module docstring)."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_escape, text))


def _json_escape(ch: str) -> str:
    if ch.isprintable():
        return ch
    units = ch.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def safe_json(value: object) -> str:
    """Compact JSON for a terminal: what ``safe_text`` escapes is a JSON escape here, so it
    is still valid JSON, and loads back to the very same value."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if text.isprintable() else "".join(map(_json_escape, text))


def ranges(numbers: list[int]) -> str:
    """Sorted numbers as runs: ``[1, 2, 3, 7]`` -> ``1-3, 7``."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def printable_id(peer_id: bytes) -> str:
    """A peer id's bytes as Latin-1 text, one character a byte, escaped: ``-TR3000-``, ``ÿ``
    for 0xff, ``\x00`` for a byte that is not printable."""
    return safe_text(peer_id.decode("latin-1"))


def event_fields(event: ev.Event) -> dict:
    """The per-type keys of a record: the JSON contract's names."""
    kind = event.type
    if kind == "piece" and event.missing:
        return {"index": event.index, "begin": event.begin, "length": event.length, "missing": event.missing}
    if kind in ("request", "cancel", "reject", "piece"):
        return {"index": event.index, "begin": event.begin, "length": event.length}
    if kind in ("have", "suggest", "allowed_fast"):
        return {"index": event.index}
    if kind == "handshake":
        return {
            "info_hash": event.info_hash.hex(),
            "peer_id": event.peer_id.hex(),
            "client": identify(event.peer_id),
            "reserved": event.reserved.hex(),
            "extensions": reserved_names(event.reserved),
        }
    if kind == "extended":
        out = {"ext_id": event.ext_id, "ext_name": event.ext_name, "data": event.data}
        if event.trailing:
            out["trailing"] = event.trailing
        if event.missing:
            out["missing"] = event.missing
        return out
    if kind == "port":
        return {"port": event.port}
    if kind == "bitfield":
        return {"pieces": event.count, "missing": event.missing} if event.missing else {"pieces": event.count}
    if kind in ("hash_request", "hashes", "hash_reject"):
        out = {"pieces_root": event.pieces_root.hex(), "base_layer": event.base_layer,
               "index": event.index, "length": event.length, "proof_layers": event.proof_layers}
        if kind == "hashes":
            out["hashes"] = len(event.hashes)
        return out
    return {}


def _endpoints(record: Record) -> tuple[str, str]:
    """Sender and receiver of a record's message."""
    a, b = record.session.sides
    return (a.addr, b.addr) if record.side == 0 else (b.addr, a.addr)


def record_dict(record: Record) -> dict:
    session, event = record.session, record.event
    src, dst = _endpoints(record)
    if event.type == "finding":
        return {"session": session.id, "transport": session.transport, "src": src, "dst": dst, "ts": record.ts,
                "frame": record.frame, "type": "finding", "kind": event.kind, "severity": event.severity,
                "detail": event.detail}
    out = {
        "session": session.id,
        "transport": session.transport,
        "src": src,
        "dst": dst,
        "ts": record.ts,
        "frame": record.frame,
        "type": event.type,
        "id": event.id,
        "size": event.size,
    }
    out.update(event_fields(event))
    return out


_encode = json.JSONEncoder(separators=(",", ":")).encode
_BLOCK_TYPES = frozenset(("request", "cancel", "reject", "piece"))


def jsonl_line(record: Record) -> str:
    """``json.dumps(record_dict(record))``, compactly, built without the dict.

    The common keys are numbers and addresses, which need no escaping, so they are
    formatted directly; only the per-type extras of rarer messages go through the
    encoder. A test holds this equal to ``record_dict``.
    """
    session, event = record.session, record.event
    if event.type == "finding":
        return _encode(record_dict(record))
    src, dst = _endpoints(record)
    msg_id = event.id
    line = (
        f'{{"session":{session.id},"transport":"{session.transport}","src":"{src}","dst":"{dst}",'
        f'"ts":{record.ts!r},"frame":{record.frame},"type":"{event.type}",'
        f'"id":{"null" if msg_id is None else msg_id},"size":{event.size}'
    )
    if event.type in _BLOCK_TYPES:
        line = f'{line},"index":{event.index},"begin":{event.begin},"length":{event.length}'
        if event.type == "piece" and event.missing:
            return f'{line},"missing":{event.missing}}}'
        return line + "}"

    fields = event_fields(event)
    return f"{line},{_encode(fields)[1:]}" if fields else line + "}"


def _detail(event: ev.Event) -> str:
    """A message's fields for a text line, its peer-controlled parts escaped."""
    kind = event.type
    if kind == "handshake":
        names = ",".join(reserved_names(event.reserved)) or "none"
        client = safe_text(identify(event.peer_id) or "unknown client")
        return f"info_hash={event.info_hash.hex()} peer_id={printable_id(event.peer_id)} ({client}) reserved=[{names}]"
    if kind == "piece":
        lost = f" ({event.missing} bytes not captured)" if event.missing else ""
        return f"index={event.index} begin={event.begin} length={event.length}{lost}"
    if kind == "bitfield" and event.missing:
        return f"pieces={event.count} ({event.missing} of its {event.size} bytes not captured)"
    if kind == "extended":
        name = safe_text(event.ext_name) if event.ext_name else f"id {event.ext_id}"
        if event.missing:
            return f"{name} ({event.missing} of its {event.size} bytes not captured)"
        body = safe_json(event.data)
        if len(body) > 200:
            body = body[:200] + "…"
        extra = f" +{event.trailing} bytes" if event.trailing else ""
        return f"{name} {body}{extra}"
    if kind == "unknown":
        return f"id={event.id} size={event.size}"
    fields = event_fields(event)
    return " ".join(f"{k}={v}" for k, v in fields.items())


def text_line(record: Record, first_ts: float) -> str:
    event = record.event
    session = record.session
    src, dst = _endpoints(record)
    if event.type == "finding":
        what = f"!! {event.kind} [{event.severity}]: {safe_text(event.detail)}"
    else:
        what = f"{event.type} {_detail(event)}".rstrip()
    return f"{record.frame:>7} {record.ts - first_ts:11.6f} #{session.id:<3} {src} → {dst}  {what}"


def write_records(records: Iterable[Record], fmt: str, out: TextIO, first_ts: Callable[[], float | None]) -> None:
    """``first_ts`` gives the capture's first frame time once reading has begun."""
    if fmt == "text":
        for record in records:
            out.write(text_line(record, first_ts() or 0.0) + "\n")
    elif fmt == "jsonl":
        for record in records:
            out.write(jsonl_line(record) + "\n")
    else:
        out.write("[")
        first = True
        for record in records:
            out.write(("\n  " if first else ",\n  ") + json.dumps(record_dict(record)))
            first = False
        out.write("\n]\n")


@dataclass(frozen=True, slots=True)
class FieldsStyle:
    """tshark's ``-E`` options of ``-T fields``: a header line, the separator between
    fields, the one between a field's several values, and the quote around each field."""

    header: bool = False
    separator: str = "\t"
    aggregator: str = ","
    quote: str = ""
    occurrence: str = "a"  # of a field's several values: "f" the first, "l" the last, "a" all


def write_fields(records: Iterable[Record], row: Callable[[Record], tuple], names: Sequence[str],
                 style: FieldsStyle, out: TextIO) -> None:
    """``-T fields -e``: a line per record, its values of the fields ``row`` computes,
    empty where the message lacks one (as tshark leaves them)."""
    sep, quote, aggregator = style.separator, style.quote, style.aggregator
    pick = {"f": slice(0, 1), "l": slice(-1, None)}.get(style.occurrence)
    if style.header:
        out.write(sep.join(names) + "\n")
    for record in records:
        values = row(record)
        if pick is not None:
            values = [v[pick] if isinstance(v, (tuple, list)) else v for v in values]
        out.write(sep.join(f"{quote}{_cell(value, aggregator)}{quote}" for value in values) + "\n")


def _cell(value: object, aggregator: str) -> str:
    """A field's value as tshark writes it: numbers in decimal, times to the microsecond,
    bytes in hex, a boolean as 1 or 0, several values joined; text escaped as everywhere."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return aggregator.join(_cell(item, aggregator) for item in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return safe_json(value)
    return str(value)  # a number, an address


def write_sessions(sessions: list[Session], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        json.dump([s.as_dict() for s in sessions], out, indent=2)
        out.write("\n")
        return
    if fmt == "jsonl":
        for s in sessions:
            out.write(json.dumps(s.as_dict(), separators=(",", ":")) + "\n")
        return
    for s in sessions:
        a, b = s.sides
        total = {side: sum(x.messages.values()) for side, x in zip("ab", s.sides)}
        hash_text = s.info_hash.hex() if s.info_hash else "-"
        kind = "encrypted (MSE/PE)" if s.encrypted else "plaintext"
        lines = [
            f"#{s.id} {s.transport} {a.addr} → {b.addr} {kind} {s.state} "
            f"{s.end - s.start:.3f}s info_hash={hash_text}",
        ]
        for label, side in zip("ab", s.sides):
            client = safe_text(side.client or ("-" if side.peer_id is None else "unknown client"))
            lines.append(
                f"    {label}: {side.addr} {client}  {total[label]} messages, "
                f"{side.payload_bytes} payload bytes, {side.stream_bytes} stream bytes"
            )
        if s.finding_counts:
            counted = ", ".join(f"{n} {kind} [{ev.severity_of(kind)}]" for kind, n in sorted(
                s.finding_counts.items(), key=lambda kv: (ev.SEVERITIES.index(ev.severity_of(kv[0])), kv[0])))
            lines.append(f"    findings: {counted}")
        for f in s.findings:
            lines.append(f"    !! frame {f.frame} {f.side or '-'} {f.kind} [{ev.severity_of(f.kind)}]: "
                         f"{safe_text(f.detail)}")
        if s.findings_dropped:
            lines.append(f"    !! {s.findings_dropped} more findings, not kept")
        out.write("".join(line + "\n" for line in lines))
