"""Rows as text: the one-line summaries of the messages table, in fixed-width columns.

Widths are fixed so a row is drawn without measuring any other row (a million
rows must not be measured to draw twenty), and every peer-controlled string goes
through ``safe_text`` (a bencoded body through ``safe_json``) exactly once before it
can reach the terminal: a summary is ready to draw, never to be escaped again.
"""
from __future__ import annotations

from inspector import events as ev
from inspector.clients import identify
from inspector.output import printable_id, safe_json, safe_text
from inspector.wire import reserved_names

COLUMNS = (("frame", 8), ("time", 11), ("#", 5), ("dir", 3), ("type", 15), ("summary", 0))


def _piece_ref(index: int, begin: int, length: int) -> str:
    return f"#{index} +0x{begin:x} {length}"


def summary(event: ev.Event) -> str:
    """``request #12 +0x4000 16384``, ``have #7``, ``extended ut_metadata request piece 0``."""
    kind = event.type
    if kind in ("request", "cancel", "reject"):
        return f"{kind} {_piece_ref(event.index, event.begin, event.length)}"
    if kind == "piece":
        lost = f" ({event.missing} bytes not captured)" if event.missing else ""
        return f"piece {_piece_ref(event.index, event.begin, event.length)}{lost}"
    if kind in ("have", "suggest", "allowed_fast"):
        return f"{kind} #{event.index}"
    if kind == "handshake":
        client = safe_text(identify(event.peer_id) or "unknown client")
        names = ",".join(reserved_names(event.reserved)) or "no extensions"
        return f"handshake {client} {event.info_hash.hex()[:12]}… [{names}]"
    if kind == "bitfield":
        return f"bitfield {event.count} of {8 * len(event.bits)} bits set"
    if kind == "extended":
        return f"extended {extended_summary(event)}"
    if kind == "port":
        return f"port {event.port}"
    if kind == "finding":
        return f"!! {event.kind} [{event.severity}]: {safe_text(event.detail)}"
    if kind in ("hash_request", "hashes", "hash_reject"):
        return f"{kind} #{event.index} layer {event.base_layer} +{event.length}"
    if kind == "unknown":
        return f"unknown id {event.id} ({event.size} bytes)"
    return kind


_UT_METADATA = {0: "request", 1: "data", 2: "reject"}


def extended_summary(event: ev.Extended) -> str:
    name = safe_text(event.ext_name) if event.ext_name else f"id {event.ext_id}"
    data = event.data
    if event.missing:
        return f"{name} ({event.missing} of {event.size} bytes not captured)"
    if event.ext_id == 0 and isinstance(data, dict):
        m = data.get("m")
        names = safe_text(", ".join(sorted(m))) if isinstance(m, dict) else ""
        v = f" {safe_text(data['v'])}" if isinstance(data.get("v"), str) else ""
        return f"handshake{v} [{names}]"
    if name == "ut_metadata" and isinstance(data, dict):
        what = _UT_METADATA.get(data.get("msg_type"), f"type {data.get('msg_type')}")
        return safe_text(f"ut_metadata {what} piece {data.get('piece')}")  # both the peer's, of any type
    if name == "ut_pex" and isinstance(data, dict):
        added = data.get("added") or []
        dropped = data.get("dropped") or []
        return f"ut_pex +{len(added)} -{len(dropped)} peers"
    body = safe_json(data)
    return f"{name} {body[:120]}{'…' if len(body) > 120 else ''}"


def peer_id_text(peer_id: bytes | None) -> str:
    return printable_id(peer_id) if peer_id else "-"
