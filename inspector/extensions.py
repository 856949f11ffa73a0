"""BEP 10 extension bodies: the handshake, ut_metadata (BEP 9), ut_pex (BEP 11) and
the binary ones (upload_only, share_mode, lt_donthave, ut_holepunch (BEP 55)).

Bencode comes first from fastbencode (a maintained, strict decoder with a Rust
core). Real peers are laxer than it: libtorrent's bdecode accepts dictionary keys
in any order, duplicate keys, and leading zeros (it only calls them "soft errors"),
and µTorrent-family clients send unsorted dictionaries. So when fastbencode refuses
a body, a small lenient decoder of our own tries again and says which deviations
it had to forgive; what libtorrent refuses (bad lengths, junk, empty integers,
more than 20 digits) it refuses too.

Hostile input must not blow the stack, the memory or the clock, and fastbencode
builds the whole value before anything can be checked (a 16 MiB body of nested or
flat lists took a gigabyte and many seconds). So the limits are enforced before or
while building: a body above ``MAX_BENCODE_SIZE`` is not decoded at all; fastbencode
gets only bodies that cannot exceed ``MAX_DEPTH`` or ``MAX_TOKENS`` (counted in C
first); anything else goes to the lenient decoder, which stops at either limit.
``set_limits`` changes them (the command line's knobs).
"""
from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import NamedTuple

import fastbencode

# Bencoded bodies are KiBs: handshakes a few hundred bytes, ut_pex at most a few hundred
# peers, ut_metadata's dictionary a few dozen bytes before its 16 KiB piece. libtorrent
# hangs up on a ut_pex body above 500 KiB and a ut_metadata message above 17 KiB, so
# 1 MiB is generous, and cheap: the worst such body (flat lists) decodes in about a second
# and 60 MB.
MAX_BENCODE_SIZE = 1 << 20
MAX_DEPTH = 32
# libtorrent's default token limit for bdecode.
MAX_TOKENS = 1_000_000
# json_safe and the TUI's tree recurse once per level: a depth limit stays well inside Python's stack.
DEPTH_CEILING = 256
# libtorrent's check_integer refuses integers of more than 20 digits.
MAX_DIGITS = 20
# ut_metadata's dictionary is followed by raw metadata; it is never this long.
MAX_DICT_PREFIX = 1024
# How many distinct deviations one finding names before it just counts the rest.
SHOWN_DEVIATIONS = 3
# Keys are peer-controlled and may be long; a finding shows this many bytes of one.
MAX_KEY_SHOWN = 40

_DIGITS = frozenset(b"0123456789")
_E, _I, _L, _D, _ZERO = b"eild0"


class BodyError(ValueError):
    """An extended message body is not what its extension says; ``kind`` names the finding."""

    kind = "malformed"


class BencodeError(BodyError):
    """The body is not valid bencode, not even to a lenient peer."""

    kind = "bad_bencode"


class LimitError(BodyError):
    """The body is above one of our decoder's limits, so it was not (wholly) decoded."""

    kind = "limit"


def set_limits(*, size: int | None = None, depth: int | None = None, tokens: int | None = None) -> None:
    """Change the bencode limits (body bytes, nesting levels, values) for every later decode."""
    global MAX_BENCODE_SIZE, MAX_DEPTH, MAX_TOKENS
    if depth is not None and not 1 <= depth <= DEPTH_CEILING:
        raise ValueError(f"bencode depth limit {depth} not in 1..{DEPTH_CEILING}")
    if any(limit is not None and limit < 1 for limit in (size, tokens)):
        raise ValueError("bencode size and token limits must be at least 1")
    MAX_BENCODE_SIZE = MAX_BENCODE_SIZE if size is None else size
    MAX_DEPTH = MAX_DEPTH if depth is None else depth
    MAX_TOKENS = MAX_TOKENS if tokens is None else tokens


class Body(NamedTuple):
    """A decoded extended message body: JSON-safe data, the count of raw bytes after it,
    the bencode deviations a strict decoder would have refused, and what was malformed
    but could be skipped (a ``malformed`` finding each; the rest of the data is kept)."""

    data: object
    trailing: int
    deviations: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def _text(value: bytes) -> str:
    """Bytes as text when they are UTF-8, else as hex (JSON cannot carry raw bytes)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


HEX_KEY = "hex:"


def _key(key: bytes) -> str:
    """A dictionary key as text: UTF-8 as it is, else ``hex:`` and its hex. A UTF-8 key that
    itself starts with ``hex:`` is written the second way too, so no two keys meet."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return HEX_KEY + key.hex()
    return HEX_KEY + key.hex() if text.startswith(HEX_KEY) else text


def json_safe(value: object) -> object:
    """Decoded bencode as JSON-safe data: byte strings become text or hex (keys: see ``_key``).

    Recursive: the decoders never hand it more than ``MAX_DEPTH`` levels.
    """
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, dict):
        return {_key(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def describe(deviations: tuple[str, ...]) -> str:
    """The deviations as one finding's detail, the first few named."""
    shown = "; ".join(deviations[:SHOWN_DEVIATIONS])
    more = len(deviations) - SHOWN_DEVIATIONS
    return f"{shown} (and {more} more)" if more > 0 else shown


class _Frame:
    """An open list or dictionary; for a dictionary, its last key and the key awaiting a value."""

    __slots__ = ("value", "last", "pending")

    def __init__(self, value: list | dict) -> None:
        self.value = value
        self.last: bytes | None = None
        self.pending: bytes | None = None


def _lenient(body: bytes, whole: bool) -> tuple[object, int, tuple[str, ...]]:
    """Decode the bencoded value at the start of ``body`` the way libtorrent would.

    Iterative, so depth costs no stack; every step consumes at least one byte and
    every key is compared once with its predecessor, so the work is linear.
    Returns the value, where it ended, and the deviations (in first-seen order).
    """
    deviations: dict[str, None] = {}  # an ordered set: setdefault adds each deviation once
    stack: list[_Frame] = []
    pos, end, tokens = 0, len(body), 0
    while True:
        if pos >= end:
            raise BencodeError(f"data ends inside a value (at byte {pos})")
        tokens += 1
        if tokens > MAX_TOKENS:
            raise LimitError(f"more than the bencode limit of {MAX_TOKENS} values; not decoded")
        c = body[pos]
        top = stack[-1] if stack else None
        if c == _E:
            if top is None:
                raise BencodeError(f"unexpected 'e' at byte {pos}")
            if top.pending is not None:
                key = _text(top.pending[:MAX_KEY_SHOWN])
                raise BencodeError(f"dictionary key {key!r} without a value (at byte {pos})")
            stack.pop()
            value: object = top.value
            pos += 1
        elif top is not None and top.pending is None and isinstance(top.value, dict):
            if c not in _DIGITS:
                raise BencodeError(f"dictionary key is not a string (byte {pos})")
            key, pos = _string(body, pos, deviations)
            if key in top.value:
                deviations.setdefault(f"duplicate key {_text(key[:MAX_KEY_SHOWN])!r}")
            elif top.last is not None and key < top.last:
                deviations.setdefault("dict keys out of order")
            top.last = top.pending = key
            continue
        elif c in (_D, _L):
            if len(stack) >= MAX_DEPTH:
                raise LimitError(f"nested deeper than the bencode depth limit of {MAX_DEPTH} levels; not decoded")
            stack.append(_Frame({} if c == _D else []))
            pos += 1
            continue
        elif c == _I:
            value, pos = _integer(body, pos, deviations)
        elif c in _DIGITS:
            value, pos = _string(body, pos, deviations)
        else:
            raise BencodeError(f"unexpected byte {bytes([c])!r} at byte {pos}")
        if not stack:
            if whole and pos != end:
                raise BencodeError(f"{end - pos} bytes of junk after the value")
            return value, pos, tuple(deviations)
        top = stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
        else:
            top.value[top.pending] = value  # a duplicate key: the last value wins
            top.pending = None


def _integer(body: bytes, pos: int, deviations: dict[str, None]) -> tuple[int, int]:
    stop = body.find(b"e", pos + 1, pos + 3 + MAX_DIGITS)
    if stop == -1:
        raise BencodeError(f"integer at byte {pos} unterminated or longer than {MAX_DIGITS} digits")
    text = body[pos + 1 : stop]
    digits = text[1:] if text[:1] == b"-" else text
    if not digits.isdigit() or len(digits) > MAX_DIGITS:
        raise BencodeError(f"bad integer {_text(text)!r} at byte {pos}")
    if len(digits) > 1 and digits[0] == _ZERO:
        deviations.setdefault("leading zero in integer")
    elif digits == b"0" and text[:1] == b"-":
        deviations.setdefault("negative zero")
    return int(text), stop + 1


def _string(body: bytes, pos: int, deviations: dict[str, None]) -> tuple[bytes, int]:
    colon = body.find(b":", pos, pos + 1 + MAX_DIGITS)
    if colon == -1 or not body[pos:colon].isdigit():
        raise BencodeError(f"string length at byte {pos} without ':'")
    if colon - pos > 1 and body[pos] == _ZERO:
        deviations.setdefault("leading zero in string length")
    start = colon + 1
    stop = start + int(body[pos:colon])
    if stop > len(body):
        raise BencodeError(f"string at byte {pos} runs {stop - len(body)} bytes past the end")
    return body[start:stop], stop


_STRICT_ERRORS = (ValueError, TypeError, KeyError, RecursionError)


def _within_limits(body: bytes) -> bool:
    """Whether ``body`` cannot exceed the depth or token limits, whatever it holds: it has
    no more ``l`` and ``d`` bytes than levels allowed and no more bytes than values allowed.
    Two C-speed counts: most real handshakes and ut_pex bodies pass (the rest take the
    lenient decoder, which is slower but reads them the same), list bombs do not."""
    return len(body) <= MAX_TOKENS and body.count(b"l") + body.count(b"d") <= MAX_DEPTH


def bdecode(body: bytes) -> tuple[object, tuple[str, ...]]:
    """The bencoded value that is all of ``body``, and the deviations forgiven.

    The lenient decoder returns what fastbencode would, when fastbencode accepts the
    body at all; fastbencode is only the faster way there, for bodies it cannot hurt us with.
    """
    if _within_limits(body):
        try:
            return fastbencode.bdecode(body), ()
        except _STRICT_ERRORS:
            pass
    value, _, deviations = _lenient(body, whole=True)
    return value, deviations


def bdecode_prefix(body: bytes) -> tuple[object, int, tuple[str, ...]]:
    """Decode the bencoded dictionary at the start of ``body``: value, length, deviations.

    Bencode values are prefix-free, so exactly one prefix ending in ``e`` decodes:
    trying each candidate end keeps well-formed bodies on the strict decoder.
    """
    if body[:1] != b"d":
        raise BencodeError("the body does not start with a bencoded dictionary")
    limit = min(len(body), MAX_DICT_PREFIX)
    end = body.find(b"e", 0, limit) if _within_limits(body[:limit]) else -1
    while end != -1:
        try:
            return fastbencode.bdecode(body[: end + 1]), end + 1, ()
        except _STRICT_ERRORS:
            end = body.find(b"e", end + 1, limit)
    try:
        return _lenient(body[:limit], whole=False)
    except BencodeError as exc:
        raise BencodeError(f"no complete bencoded dictionary at the start of the body ({exc})") from None


def compact_peers(blob: bytes, width: int) -> list[str]:
    """BEP 11/23 compact peers: 6 bytes (IPv4) or 18 bytes (IPv6) each; a partial last entry is left out."""
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


_U32 = struct.Struct(">I")
_HOLEPUNCH = struct.Struct(">BB")  # msg_type, addr_type
_HOLEPUNCH_ADDR = {0: struct.Struct(">4sH"), 1: struct.Struct(">16sH")}  # address, port
_HOLEPUNCH_ERROR = 2


def _flag(name: str) -> Callable[[bytes], dict]:
    """upload_only and share_mode: one byte, nonzero meaning on (as libtorrent reads it)."""

    def decode(payload: bytes) -> dict:
        if len(payload) != 1:
            raise BodyError(f"{name} body of {len(payload)} bytes, expected 1")
        return {name: payload[0]}

    return decode


def _donthave(payload: bytes) -> dict:
    if len(payload) != _U32.size:
        raise BodyError(f"lt_donthave body of {len(payload)} bytes, expected {_U32.size}")
    return {"index": _U32.unpack(payload)[0]}


def _holepunch(payload: bytes) -> dict:
    """BEP 55. The BEP always ends with a 4-byte err_code (0 unless msg_type is 2,
    error); libtorrent writes it only for errors, so without it the body is still whole."""
    if len(payload) < _HOLEPUNCH.size:
        raise BodyError(f"ut_holepunch body of {len(payload)} bytes, shorter than its header")
    msg_type, addr_type = _HOLEPUNCH.unpack_from(payload)
    layout = _HOLEPUNCH_ADDR.get(addr_type)
    if layout is None:
        raise BodyError(f"ut_holepunch addr_type {addr_type}, expected 0 (IPv4) or 1 (IPv6)")
    head = _HOLEPUNCH.size + layout.size
    sizes = (head + _U32.size,) if msg_type == _HOLEPUNCH_ERROR else (head, head + _U32.size)
    if len(payload) not in sizes:
        expected = " or ".join(map(str, sizes))
        raise BodyError(f"ut_holepunch msg_type {msg_type} body of {len(payload)} bytes, expected {expected}")
    addr, port = layout.unpack_from(payload, _HOLEPUNCH.size)
    host = _address(addr)
    out: dict = {"msg_type": msg_type, "addr": f"{host}:{port}" if addr_type == 0 else f"[{host}]:{port}"}
    if len(payload) > head:
        out["err_code"] = _U32.unpack_from(payload, head)[0]
    return out


# Extensions whose bodies are not bencoded, by the name the receiver's m gives them.
_BINARY: dict[str, Callable[[bytes], dict]] = {
    "upload_only": _flag("upload_only"),
    "share_mode": _flag("share_mode"),
    "lt_donthave": _donthave,
    "ut_holepunch": _holepunch,
}


def _pex_leftovers(value: dict) -> tuple[str, ...]:
    """A ut_pex list whose length is not a whole number of entries, one problem each."""
    problems = []
    for key, width in _PEX_LISTS.items():
        blob = value.get(key)
        if isinstance(blob, bytes) and len(blob) % width:
            whole = len(blob) // width
            problems.append(f"ut_pex {key.decode()} of {len(blob)} bytes: {len(blob) % width} left over after "
                            f"{whole} whole {width}-byte {'entry' if whole == 1 else 'entries'}")
    return tuple(problems)


def decode(name: str | None, payload: bytes) -> Body:
    """An extended message body decoded as what its extension says it is.

    Raises ``BodyError`` when it is not: ``BencodeError`` for bencode, ``LimitError``
    when it is above a limit of ours (the body above ``MAX_BENCODE_SIZE`` is not even read).
    """
    binary = _BINARY.get(name) if name else None
    if binary:
        return Body(binary(payload), 0)
    if name == "ut_metadata":  # only its dictionary is bencoded, and only MAX_DICT_PREFIX bytes are read
        value, used, deviations = bdecode_prefix(payload)
        return Body(json_safe(value), len(payload) - used, deviations)
    if len(payload) > MAX_BENCODE_SIZE:
        raise LimitError(f"extended body of {len(payload)} bytes above the bencode size limit "
                         f"(--max-bencode-size {MAX_BENCODE_SIZE}); not decoded")
    value, deviations = bdecode(payload)
    problems: tuple[str, ...] = ()
    if isinstance(value, dict):
        if name == "ut_pex":
            problems = _pex_leftovers(value)
            value = {
                k: compact_peers(v, _PEX_LISTS[k]) if k in _PEX_LISTS and isinstance(v, bytes) else v
                for k, v in value.items()
            }
        elif name == "handshake":
            value = {
                k: _address(v) if k in _ADDRESS_KEYS and isinstance(v, bytes) else v
                for k, v in value.items()
            }
    return Body(json_safe(value), 0, deviations, problems)


def decode_body(name: str | None, payload: bytes) -> tuple[object, int, tuple[str, ...]]:
    """``decode`` without its problems: the (data, trailing, deviations) the parser unpacks
    (until it reports problems as findings) and resync checks."""
    return decode(name, payload)[:3]


def extension_names(handshake: object, previous: dict[int, str] | None = None) -> dict[int, str]:
    """The ``m`` dictionary of a decoded (JSON-safe) extension handshake, id -> name,
    applied to the ids a previous handshake of the same peer announced.

    BEP 10: "the m dictionary is additive": a later handshake names only what
    changes, and id 0 disables an extension, so it is removed.
    """
    names = dict(previous or {})
    m = handshake.get("m") if isinstance(handshake, dict) else None
    if not isinstance(m, dict):
        return names
    for name, ext_id in m.items():
        if not isinstance(ext_id, int) or isinstance(ext_id, bool):
            continue
        for old in [i for i, n in names.items() if n == name]:
            del names[old]
        if 0 < ext_id < 256:
            names[ext_id] = name
    return names
