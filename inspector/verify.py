"""`btshark verify`: btshark's decode checked against Wireshark's own BitTorrent dissector.

Wireshark's decode comes from tshark through pyshark, run as the project's acceptance
criterion asks::

    tshark -r CAPTURE -o tcp.reassemble_out_of_order:TRUE \\
           -d tcp.port==P,bittorrent ... -Y "tcp && bittorrent"

Both decodes are normalised to :class:`WireMessage` (message type in the ``-T jsonl``
vocabulary of DESIGN.md, plus index, begin and block length where the message has them)
and compared direction by direction. btshark's own decode is passed in as its jsonl
records, so this module does not depend on the decoder.

How tshark 4.0 shows BitTorrent, and how that is mapped here (one ``bittorrent`` layer
per PDU; pyshark exposes several PDUs in one frame as repeated layers, in stream order):

=================================================  ======================================
Wireshark layer                                    WireMessage
=================================================  ======================================
``bittorrent.protocol.name`` present               ``handshake``
``bittorrent.msg.type`` 0-9, 13-17, 20             the DESIGN.md name (``suggest`` for 13,
                                                   ``reject`` for 16, ``extended`` for 20)
``bittorrent.piece.index/begin/length``            index, begin, length (request, cancel,
                                                   reject); index only for have, suggest,
                                                   allowed_fast
piece (7): no length field                         length = ``bittorrent.msg.length`` - 9
``bittorrent.msg.length`` == 0, or an empty layer  ``keepalive`` (tshark 4.0 dissects a
                                                   4-byte PDU to an empty layer)
``bittorrent.continuous_data``                     ``unknown`` (tshark's "Continuation data")
``bittorrent.azureus_msg``                         ``unknown`` (Azureus messaging protocol)
=================================================  ======================================

tshark 4.0's dissector knows no message ids other than 0-9, 13-17 and 20: BEP 52's
hash_request/hashes/hash_reject (21-23) and any other id become "Continuation data" that
swallows the rest of the TCP segment, including any further messages in it. Other
quirks of tshark 4.0 that :func:`compare` recognises and names are listed in
:data:`TSHARK_QUIRKS`.

pyshark drives its own asyncio event loop: call :func:`wireshark_messages` from
synchronous code (or a worker thread), not from inside a running event loop.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "WireMessage",
    "DirectionReport",
    "TSHARK_QUIRKS",
    "wireshark_messages",
    "ours_from_records",
    "ports_from_records",
    "compare",
    "format_report",
    "all_agree",
    "verify",
]

Direction = tuple[str, str]

# Wireshark's bittorrent.msg.type values -> DESIGN.md jsonl type names.
WIRESHARK_TYPES: dict[int, str] = {
    0: "choke",
    1: "unchoke",
    2: "interested",
    3: "not_interested",
    4: "have",
    5: "bitfield",
    6: "request",
    7: "piece",
    8: "cancel",
    9: "port",
    13: "suggest",
    14: "have_all",
    15: "have_none",
    16: "reject",
    17: "allowed_fast",
    20: "extended",
    # tshark 4.0 has no 21-23 (BEP 52); listed so a newer tshark maps them right.
    21: "hash_request",
    22: "hashes",
    23: "hash_reject",
}

# Which of index/begin/length each message type carries (DESIGN.md `-T jsonl`).
_INDEX_ONLY = frozenset({"have", "suggest", "allowed_fast"})
_INDEX_BEGIN_LENGTH = frozenset({"request", "cancel", "reject", "piece"})
_BEP52 = frozenset({"hash_request", "hashes", "hash_reject"})

TSHARK_QUIRKS: dict[str, str] = {
    "unknown_id": (
        "tshark 4.0 knows only message ids 0-9, 13-17 and 20; it shows any other id as "
        "'Continuation data' and skips the rest of that TCP segment"
    ),
    "bep52": (
        "tshark 4.0 does not know BEP 52 messages (ids 21-23: hash_request, hashes, "
        "hash_reject); it shows them as 'Continuation data' and skips the rest of that TCP segment"
    ),
    "split_prefix": (
        "a message's 4-byte length prefix ended a TCP segment; tshark 4.0 cuts it off as an "
        "empty 4-byte PDU (which reads like a keep-alive) and shows the rest of the next "
        "segment as 'Continuation data'"
    ),
    "split_handshake": (
        "the handshake was split across TCP segments before its 20th byte; tshark 4.0 "
        "does not recognise it and shows 'Continuation data'"
    ),
    "continuation": (
        "tshark 4.0 lost message alignment here and shows 'Continuation data' "
        "(it does so for unknown ids and for length prefixes >= 0x1000000, then skips "
        "the rest of the segment)"
    ),
    "truncated": (
        "Wireshark's decode stops early: a message still incomplete at the end of the "
        "capture, or data tshark did not reassemble (out-of-order segments need "
        "tcp.reassemble_out_of_order:TRUE)"
    ),
}


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One peer-wire message, normalised for comparison.

    Only ``type``, ``index``, ``begin`` and ``length`` take part in the comparison;
    ``frame`` and ``note`` say where and what, for the report.
    """

    type: str  # DESIGN.md jsonl type name
    index: int | None
    begin: int | None
    length: int | None  # request/cancel/reject: requested length; piece: block bytes
    frame: int  # frame that completed the message
    note: str | None = None  # e.g. Wireshark's "continuation data, 1234 bytes"

    @property
    def key(self) -> tuple[str, int | None, int | None, int | None]:
        return (self.type, self.index, self.begin, self.length)

    def describe(self) -> str:
        parts = []
        if self.index is not None:
            parts.append(f"index={self.index}")
        if self.begin is not None:
            parts.append(f"begin={self.begin:#x}")
        if self.length is not None:
            parts.append(f"length={self.length}")
        text = self.type + (f"({', '.join(parts)})" if parts else "")
        if self.note:
            text += f" [{self.note}]"
        return f"{text} @frame {self.frame}"


@dataclass(frozen=True, slots=True)
class DirectionReport:
    src: str
    dst: str
    ours: int  # number of messages in btshark's decode
    theirs: int  # number of messages in Wireshark's decode
    agree: bool
    first_difference: str | None  # one line: position, our message @frame, theirs @frame
    reason: str | None = None  # known tshark quirk that explains the first difference
    differences: tuple[str, ...] = ()  # every differing region, one line each
    skipped: bool = False  # Wireshark-only, no handshake: not plaintext BitTorrent


def _normalise(type_: str, index, begin, length, frame: int, note: str | None = None) -> WireMessage:
    """Keep index/begin/length only where DESIGN.md gives the message type them."""
    if type_ in _INDEX_BEGIN_LENGTH:
        return WireMessage(type_, _int(index), _int(begin), _int(length), frame, note)
    if type_ in _INDEX_ONLY:
        return WireMessage(type_, _int(index), None, None, frame, note)
    return WireMessage(type_, None, None, None, frame, note)


def _int(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    return int(str(value), 0)  # Wireshark shows BASE_HEX fields as "0x00004000"


def _endpoint(addr: str, port: int | str) -> str:
    """'ip:port', IPv6 as '[addr]:port' (compressed form, as btshark prints it)."""
    ip = ipaddress.ip_address(addr)
    if ip.version == 6:
        return f"[{ip.compressed}]:{int(port)}"
    return f"{ip}:{int(port)}"


# ---------------------------------------------------------------------------
# Wireshark's side


def _field(layer, name: str) -> str | None:
    field = layer.get_field(name)
    if field is None:
        return None
    return field.get_default_value()


def _field_size(layer, name: str) -> int | None:
    field = layer.get_field(name)
    if field is None or field.size is None:
        return None
    return int(field.size)


def _layer_to_message(layer, frame: int) -> WireMessage:
    """Map one Wireshark ``bittorrent`` layer (one PDU) to a WireMessage."""
    if layer.get_field("bittorrent.protocol.name") is not None:
        return WireMessage("handshake", None, None, None, frame)
    msg_type = _field(layer, "bittorrent.msg.type")
    msg_len = _field(layer, "bittorrent.msg.length")
    if msg_type is not None:
        type_id = int(msg_type, 0)
        type_ = WIRESHARK_TYPES.get(type_id)
        if type_ is None:
            return WireMessage("unknown", None, None, None, frame, f"Wireshark msg.type {type_id}")
        length = _field(layer, "bittorrent.piece.length")
        if type_ == "piece":
            length = int(msg_len) - 9 if msg_len is not None else None
        return _normalise(
            type_,
            _field(layer, "bittorrent.piece.index"),
            _field(layer, "bittorrent.piece.begin"),
            length,
            frame,
        )
    if layer.get_field("bittorrent.continuous_data") is not None:
        size = _field_size(layer, "bittorrent.continuous_data")
        note = "continuation data" + (f", {size} bytes" if size is not None else "")
        return WireMessage("unknown", None, None, None, frame, note)
    if layer.get_field("bittorrent.azureus_msg") is not None:
        aztype = _field(layer, "bittorrent.msg.aztype")
        return WireMessage("unknown", None, None, None, frame, f"Azureus message {aztype}")
    if msg_len is not None and int(msg_len) == 0:
        return WireMessage("keepalive", None, None, None, frame)
    if not layer.field_names:
        # tshark 4.0 dissects every 4-byte PDU to an empty layer: a keep-alive, or a
        # length prefix that ended a segment (see TSHARK_QUIRKS['split_prefix']).
        return WireMessage("keepalive", None, None, None, frame, "empty 4-byte PDU")
    return WireMessage("unknown", None, None, None, frame, "unrecognised Wireshark layer")


def _packet_direction(packet) -> Direction | None:
    """(src, dst) of the innermost IP header carrying the TCP segment."""
    ip_layer = None
    tcp_layer = None
    for layer in packet.layers:
        name = layer.layer_name
        if name in ("ip", "ipv6"):
            ip_layer = layer
        elif name == "tcp":
            tcp_layer = layer
            break
    if ip_layer is None or tcp_layer is None:
        return None
    prefix = ip_layer.layer_name
    src = _field(ip_layer, f"{prefix}.src")
    dst = _field(ip_layer, f"{prefix}.dst")
    sport = _field(tcp_layer, "tcp.srcport")
    dport = _field(tcp_layer, "tcp.dstport")
    if None in (src, dst, sport, dport):
        return None
    return _endpoint(src, sport), _endpoint(dst, dport)


def wireshark_messages(
    capture: str | os.PathLike,
    ports: Iterable[int],
    *,
    tshark_path: str | None = None,
) -> dict[Direction, list[WireMessage]]:
    """Wireshark's decode via pyshark, keyed by (src 'ip:port', dst 'ip:port') (IPv6 as
    '[addr]:port'), messages in stream order. TCP only.

    ``ports`` are decoded as BitTorrent (``-d tcp.port==P,bittorrent``, which matches
    either end of a connection). With no ports, only tshark's BitTorrent heuristic
    (enabled by default; it fires on a segment that starts with the 20-byte
    "\\x13BitTorrent protocol" and then claims the whole conversation) finds streams.
    """
    import pyshark  # imported here so `btshark read` never pays for it

    ports = sorted({int(p) for p in ports})
    capture = pyshark.FileCapture(
        os.fspath(capture),
        decode_as={f"tcp.port=={p}": "bittorrent" for p in ports} or None,
        override_prefs={"tcp.reassemble_out_of_order": "TRUE"},
        display_filter="tcp && bittorrent",
        keep_packets=False,
        tshark_path=tshark_path,
    )
    result: dict[Direction, list[WireMessage]] = {}
    try:
        for packet in capture:
            direction = _packet_direction(packet)
            if direction is None:
                continue
            frame = int(packet.number)
            messages = result.setdefault(direction, [])
            for layer in packet.get_multiple_layers("bittorrent"):
                messages.append(_layer_to_message(layer, frame))
    finally:
        capture.close()
    return result


# ---------------------------------------------------------------------------
# btshark's side


def ours_from_records(records: Iterable[Mapping]) -> dict[Direction, list[WireMessage]]:
    """btshark's ``-T jsonl`` records grouped by (src, dst), in record order; TCP only."""
    result: dict[Direction, list[WireMessage]] = {}
    for record in records:
        if record.get("transport") != "tcp":
            continue
        message = _normalise(
            str(record["type"]),
            record.get("index"),
            record.get("begin"),
            record.get("length"),
            int(record["frame"]),
        )
        result.setdefault((str(record["src"]), str(record["dst"])), []).append(message)
    return result


def ports_from_records(records: Iterable[Mapping]) -> set[int]:
    """Every TCP port btshark saw BitTorrent on: the ports to decode as BitTorrent."""
    ports: set[int] = set()
    for record in records:
        if record.get("transport") != "tcp":
            continue
        for endpoint in (record["src"], record["dst"]):
            ports.add(int(str(endpoint).rsplit(":", 1)[1]))
    return ports


# ---------------------------------------------------------------------------
# Comparison


def _explain(ours: Sequence[WireMessage], theirs: Sequence[WireMessage], i: int) -> str | None:
    """Name the known tshark quirk behind a difference at position i, if there is one."""
    our = ours[i] if i < len(ours) else None
    their = theirs[i] if i < len(theirs) else None
    if their is None:
        return TSHARK_QUIRKS["truncated"] if our is not None else None
    continuation = their.type == "unknown" and (their.note or "").startswith("continuation")
    if continuation and our is not None:
        if our.type in _BEP52:
            return f"frame {their.frame}: {TSHARK_QUIRKS['bep52']}"
        if our.type == "handshake":
            return f"frame {their.frame}: {TSHARK_QUIRKS['split_handshake']}"
        if our.type == "unknown":
            return f"frame {their.frame}: {TSHARK_QUIRKS['unknown_id']}"
    if (
        their.type == "keepalive"
        and (our is None or our.type != "keepalive")
        and i + 1 < len(theirs)
        and theirs[i + 1].type == "unknown"
    ):
        return (
            f"frames {their.frame} and {theirs[i + 1].frame}: {TSHARK_QUIRKS['split_prefix']}"
        )
    # A tshark continuation just before this point swallowed messages that followed it.
    if i > 0 and i - 1 < len(theirs):
        previous = theirs[i - 1]
        if previous.type == "unknown" and (previous.note or "").startswith("continuation"):
            if i - 1 < len(ours) and ours[i - 1].type in _BEP52:
                return f"frame {previous.frame}: {TSHARK_QUIRKS['bep52']}"
            return f"frame {previous.frame}: {TSHARK_QUIRKS['unknown_id']}"
    if continuation:
        return f"frame {their.frame}: {TSHARK_QUIRKS['continuation']}"
    return None


def _first_difference(ours: Sequence[WireMessage], theirs: Sequence[WireMessage]) -> int | None:
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a.key != b.key:
            return i
    if len(ours) != len(theirs):
        return min(len(ours), len(theirs))
    return None


def _side(messages: Sequence[WireMessage], i: int) -> str:
    if i < len(messages):
        return messages[i].describe()
    return f"<none: ends after {len(messages)} messages>"


def _regions(ours: Sequence[WireMessage], theirs: Sequence[WireMessage], limit: int = 20) -> tuple[str, ...]:
    """Differing regions after aligning both sequences (difflib), one line each."""
    matcher = difflib.SequenceMatcher(
        None, [m.key for m in ours], [m.key for m in theirs], autojunk=False
    )
    lines = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if len(lines) == limit:
            lines.append("... more differing regions not shown")
            break

        def span(messages, lo, hi):
            if lo == hi:
                return "nothing"
            shown = "; ".join(m.describe() for m in messages[lo : min(hi, lo + 3)])
            more = f"; ... ({hi - lo} in all)" if hi - lo > 3 else ""
            return shown + more

        def where(lo, hi):
            return f"#{lo + 1}-{hi}" if hi > lo else f"before #{lo + 1}"

        lines.append(
            f"{tag}: ours {where(i1, i2)} [{span(ours, i1, i2)}] "
            f"vs wireshark {where(j1, j2)} [{span(theirs, j1, j2)}]"
        )
    return tuple(lines)


def _connection(direction: Direction) -> frozenset[str]:
    return frozenset(direction)


def compare(
    ours: Mapping[Direction, Sequence[WireMessage]],
    theirs: Mapping[Direction, Sequence[WireMessage]],
) -> list[DirectionReport]:
    """Compare two decodes direction by direction, in order of each direction's first frame.

    A direction only Wireshark has, on a connection btshark decoded nothing on, and in
    which Wireshark saw no handshake, is reported as ``skipped``: decode-as forced
    tshark over a stream that is not plaintext BitTorrent (MSE/PE, for one).
    """
    our_connections = {_connection(d) for d, msgs in ours.items() if msgs}
    directions = set(ours) | set(theirs)

    def first_frame(direction: Direction) -> int:
        frames = [m[0].frame for m in (ours.get(direction), theirs.get(direction)) if m]
        return min(frames) if frames else 0

    reports = []
    for direction in sorted(directions, key=lambda d: (first_frame(d), d)):
        a = list(ours.get(direction, ()))
        b = list(theirs.get(direction, ()))
        src, dst = direction
        i = _first_difference(a, b)
        if i is None:
            reports.append(DirectionReport(src, dst, len(a), len(b), True, None))
            continue
        if (
            not a
            and _connection(direction) not in our_connections
            and not any(m.type == "handshake" for m in b)
        ):
            reports.append(
                DirectionReport(
                    src, dst, 0, len(b), False, None,
                    reason="only Wireshark decoded this direction, without a handshake: "
                    "not plaintext BitTorrent (encrypted, or another protocol on the port)",
                    skipped=True,
                )
            )
            continue
        line = f"#{i + 1}: ours {_side(a, i)} | wireshark {_side(b, i)}"
        reports.append(
            DirectionReport(
                src, dst, len(a), len(b), False, line,
                reason=_explain(a, b, i),
                differences=_regions(a, b),
            )
        )
    return reports


def all_agree(reports: Iterable[DirectionReport]) -> bool:
    """True when every direction that was compared agrees (skipped ones do not count)."""
    return all(r.agree or r.skipped for r in reports)


def format_report(reports: Sequence[DirectionReport], *, verbose: bool = False) -> str:
    """One line per direction, then "N directions, N agree, N differ" (and skipped, if any).

    ``verbose`` adds, under a differing direction, every differing region.
    """
    lines = []
    for r in reports:
        status = "agree " if r.agree else ("skip  " if r.skipped else "DIFFER")
        line = f"{status} {r.src} -> {r.dst}  ours {r.ours}  wireshark {r.theirs}"
        if r.first_difference:
            line += f"  first difference {r.first_difference}"
        if r.reason:
            line += f"  -- {r.reason}"
        lines.append(line)
        if verbose:
            lines.extend(f"    {d}" for d in r.differences)
    compared = [r for r in reports if not r.skipped]
    agree = sum(r.agree for r in compared)
    summary = f"{len(compared)} directions, {agree} agree, {len(compared) - agree} differ"
    skipped = len(reports) - len(compared)
    if skipped:
        summary += f", {skipped} skipped (not plaintext BitTorrent)"
    lines.append(summary)
    return "\n".join(lines)


def verify(
    capture: str | os.PathLike,
    records: Iterable[Mapping],
    *,
    extra_ports: Iterable[int] = (),
    tshark_path: str | None = None,
) -> list[DirectionReport]:
    """The whole of `btshark verify`: btshark's records for CAPTURE against Wireshark's decode.

    Wireshark decodes as BitTorrent every TCP port btshark found BitTorrent on (plus
    ``extra_ports``); its heuristic also catches streams that begin with a handshake.
    """
    records = list(records)
    ours = ours_from_records(records)
    ports = ports_from_records(records) | {int(p) for p in extra_ports}
    theirs = wireshark_messages(capture, ports, tshark_path=tshark_path)
    return compare(ours, theirs)
