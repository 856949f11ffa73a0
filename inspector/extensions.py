"""BEP 10 extension bodies: the handshake, ut_metadata (BEP 9) and ut_pex (BEP 11).

Bencode itself comes from fastbencode (a maintained, strict decoder with a Rust
core); this module only turns what it returns into JSON-safe data a user can read,
with depth bounded so hostile nesting cannot blow the stack.
"""
from __future__ import annotations

import socket

import fastbencode

MAX_DEPTH = 32
# ut_metadata's dictionary is followed by raw metadata; it is never this long.
MAX_DICT_PREFIX = 1024


class BencodeError(ValueError):
    """The body is not valid bencode."""


def _text(value: bytes) -> str:
    """Bytes as text when they are UTF-8, else as hex (JSON cannot carry raw bytes)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


def json_safe(value: object, depth: int = 0) -> object:
    """Decoded bencode as JSON-safe data: byte strings become text or hex."""
    if depth > MAX_DEPTH:
        raise BencodeError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, dict):
        return {_text(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v, depth + 1) for v in value]
    return value


def bdecode(body: bytes) -> object:
    try:
        return fastbencode.bdecode(body)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise BencodeError(str(exc) or type(exc).__name__) from None


def bdecode_prefix(body: bytes) -> tuple[object, int]:
    """Decode the bencoded value at the start of ``body``; return it and its length.

    Bencode values are prefix-free, so exactly one prefix ending in ``e`` decodes:
    trying each candidate end keeps us on the library's strict decoder.
    """
    if body[:1] != b"d":
        raise BencodeError("the body does not start with a bencoded dictionary")
    limit = min(len(body), MAX_DICT_PREFIX)
    end = body.find(b"e", 0, limit)
    while end != -1:
        try:
            return fastbencode.bdecode(body[: end + 1]), end + 1
        except (ValueError, TypeError, KeyError, RecursionError):
            end = body.find(b"e", end + 1, limit)
    raise BencodeError("no complete bencoded dictionary at the start of the body")


def compact_peers(blob: bytes, width: int) -> list[str]:
    """BEP 11/23 compact peers: 6 bytes (IPv4) or 18 bytes (IPv6) each."""
    family, addr_len = (socket.AF_INET, 4) if width == 6 else (socket.AF_INET6, 16)
    peers = []
    for off in range(0, len(blob) - width + 1, width):
        host = socket.inet_ntop(family, blob[off : off + addr_len])
        port = int.from_bytes(blob[off + addr_len : off + width], "big")
        peers.append(f"{host}:{port}" if width == 6 else f"[{host}]:{port}")
    return peers


def _address(blob: bytes) -> str:
    if len(blob) == 4:
        return socket.inet_ntop(socket.AF_INET, blob)
    if len(blob) == 16:
        return socket.inet_ntop(socket.AF_INET6, blob)
    return blob.hex()


_PEX_LISTS = {b"added": 6, b"dropped": 6, b"added6": 18, b"dropped6": 18}
_ADDRESS_KEYS = (b"yourip", b"ipv4", b"ipv6")


def decode_body(name: str | None, payload: bytes) -> tuple[object, int]:
    """JSON-safe form of an extended message body and the count of raw trailing bytes."""
    if name == "ut_metadata":
        value, used = bdecode_prefix(payload)
        return json_safe(value), len(payload) - used
    value = bdecode(payload)
    if isinstance(value, dict):
        if name == "ut_pex":
            value = {
                k: compact_peers(v, _PEX_LISTS[k]) if k in _PEX_LISTS and isinstance(v, bytes) else v
                for k, v in value.items()
            }
        elif name == "handshake":
            value = {
                k: _address(v) if k in _ADDRESS_KEYS and isinstance(v, bytes) else v
                for k, v in value.items()
            }
    return json_safe(value), 0


def extension_names(handshake: object) -> dict[int, str]:
    """The ``m`` dictionary of a decoded (JSON-safe) extension handshake, id -> name.

    Id 0 in ``m`` means the sender disables that extension, so it is left out.
    """
    if not isinstance(handshake, dict):
        return {}
    m = handshake.get("m")
    if not isinstance(m, dict):
        return {}
    return {v: k for k, v in m.items() if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 256}
