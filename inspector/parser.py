"""The incremental peer-wire parser, sans-I/O: ``feed(bytes)`` in, events out.

It keeps the shape of the original BitTorrent client's ``Connection``: each step
says how many bytes it needs next (``_need``) and which method reads them
(``_step``). One parser reads one direction of one connection. Piece payloads are
counted past (``_skip``), never buffered, so a capture's size never becomes memory.

Where the original client hung up (wrong protocol name, a length above
``max_len``) the parser emits a ``Finding``; the replayer closes on it, the
inspector records it and reads on wherever the framing still holds.
"""
from __future__ import annotations

from collections.abc import Callable

from . import events as ev
from .extensions import BodyError, decode_body, describe
from .wire import (
    BLOCK, DEFAULT_MAX_LEN, FIXED_LEN, HASH_HEAD, HASH_HEAD_LEN, MIN_LEN, PIECE_HEAD,
    PIECE_HEAD_LEN, PROTOCOL_NAME, U16, U32, MessageId,
)

Step = Callable[[bytes, list], None]


class PeerWireParser:
    """Decoder for the bytes one peer sends.

    ``ext_names`` maps the extended-message ids this side sends to their names; per
    BEP 10 those ids come from the *receiver's* extension handshake, so whoever
    owns both directions (a session, a replay connection) fills it in.
    """

    def __init__(self, *, max_len: int = DEFAULT_MAX_LEN, handshake: bool = True) -> None:
        self.max_len = max_len
        self.ext_names: dict[int, str] = {}
        self.reserved: bytes | None = None
        self.info_hash: bytes | None = None
        self.peer_id: bytes | None = None
        self.ext_handshake: dict | None = None
        self.stopped: str | None = None  # why decoding stopped, once it has
        self._buf = bytearray()
        self._skip = 0
        self._piece: tuple[int, int, int] | None = None  # index, begin, block length
        self._piece_missing = 0
        self._length = 0
        self._head = b""
        if handshake:
            self._need, self._step = 1, self._read_protocol_length
        else:
            self._need, self._step = 4, self._read_length

    # -- input -------------------------------------------------------------

    def feed(self, data: bytes | memoryview) -> list[ev.Event]:
        """Consume bytes of the stream, in order; return what they completed."""
        out: list[ev.Event] = []
        if self.stopped:
            return out
        pos, end = 0, len(data)
        buf = self._buf
        while pos < end:
            if self._skip:
                left = end - pos
                if left < self._skip:
                    self._skip -= left
                    return out
                pos += self._skip
                self._skip = 0
                self._finish_piece(out)
                continue
            need = self._need
            if buf:
                take = need - len(buf)
                buf += data[pos : pos + take]
                pos += take
                if len(buf) < need:
                    return out
                chunk = bytes(buf)
                buf.clear()
            elif end - pos >= need:
                chunk = data[pos : pos + need]
                pos += need
            else:
                buf += data[pos:end]
                return out
            self._step(chunk, out)
            if self.stopped:
                return out
        return out

    def skip_payload(self, size: int) -> bool:
        """Count ``size`` bytes past if they fall strictly inside a piece payload.

        The bulk of any transfer is such bytes; the capture pipeline's fast path
        offers them here without slicing them out, and falls back to ``feed`` when
        this says no.
        """
        if self._skip > size:
            self._skip -= size
            return True
        return False

    def gap(self, missing: int) -> list[ev.Event]:
        """``missing`` bytes of the stream were not captured; -1: some, count unknown (uTP).

        Inside a piece payload this costs nothing but a count; at a message
        boundary the framing survives; anywhere else it is lost and decoding stops.
        """
        out: list[ev.Event] = []
        if self.stopped:
            return out
        if missing < 0:
            self._stop(out, "hole", "bytes not captured (count unknown); framing lost, decoding of this direction stopped")
            return out
        if self._skip:
            inside = min(self._skip, missing)
            self._skip -= inside
            self._piece_missing += inside
            if not self._skip:
                self._finish_piece(out)
            if inside == missing:
                out.append(ev.Finding("hole", f"{missing} bytes not captured inside a piece payload"))
                return out
            missing -= inside  # the rest of the gap follows the end of the message
        if not self._buf and self._step == self._read_length:
            out.append(ev.Finding("hole", f"{missing} bytes not captured between messages; messages in them are lost"))
        else:
            self._stop(out, "hole", f"{missing} bytes not captured mid-message; framing lost, decoding of this direction stopped")
        return out

    def end(self) -> list[ev.Event]:
        """The stream ended (FIN, RST, or the capture ran out)."""
        out: list[ev.Event] = []
        if self.stopped:
            return out
        if self._skip and self._piece is not None:
            index, begin, length = self._piece
            self._stop(out, "truncated", f"stream ended {self._skip} bytes short of the end of piece {index}:{begin} ({length} bytes)")
        elif self._skip:
            self._stop(out, "truncated", f"stream ended {self._skip} bytes short of the end of an oversized message")
        elif self._buf or self._step not in (self._read_length, self._read_protocol_length):
            self._stop(out, "truncated", f"stream ended inside a message ({len(self._buf)} of its bytes seen)")
        return out

    # -- handshake steps -----------------------------------------------------

    def _read_protocol_length(self, chunk: bytes, out: list) -> None:
        if chunk[0] != len(PROTOCOL_NAME):
            self._stop(out, "bad_protocol", f"protocol name length {chunk[0]}, expected {len(PROTOCOL_NAME)}")
            return
        self._need, self._step = len(PROTOCOL_NAME), self._read_protocol_name

    def _read_protocol_name(self, chunk: bytes, out: list) -> None:
        if bytes(chunk) != PROTOCOL_NAME:
            self._stop(out, "bad_protocol", f"protocol name {bytes(chunk)!r}")
            return
        self._need, self._step = 8, self._read_reserved

    def _read_reserved(self, chunk: bytes, out: list) -> None:
        self.reserved = bytes(chunk)
        self._need, self._step = 20, self._read_info_hash

    def _read_info_hash(self, chunk: bytes, out: list) -> None:
        self.info_hash = bytes(chunk)
        self._need, self._step = 20, self._read_peer_id

    def _read_peer_id(self, chunk: bytes, out: list) -> None:
        self.peer_id = bytes(chunk)
        out.append(ev.Handshake(self.reserved, self.info_hash, self.peer_id))  # type: ignore[arg-type]
        self._need, self._step = 4, self._read_length

    # -- message steps ---------------------------------------------------------

    def _read_length(self, chunk: bytes, out: list) -> None:
        (length,) = U32.unpack_from(chunk)
        if length == 0:
            out.append(ev.KeepAlive())
            return
        if length > self.max_len:
            out.append(ev.Finding("oversize", f"length prefix {length} above max_len {self.max_len}; skipped"))
            self._skip = length
            self._piece = None
            return
        self._length = length
        self._need, self._step = min(length, PIECE_HEAD_LEN), self._read_head

    def _read_head(self, chunk: bytes, out: list) -> None:
        length = self._length
        self._need, self._step = 4, self._read_length
        if chunk[0] == MessageId.PIECE and length >= PIECE_HEAD_LEN:
            index, begin = PIECE_HEAD.unpack_from(chunk, 1)
            self._piece = (index, begin, length - PIECE_HEAD_LEN)
            self._skip = length - PIECE_HEAD_LEN
            if not self._skip:
                self._finish_piece(out)
        elif length > len(chunk):
            self._head = bytes(chunk)
            self._need, self._step = length - len(chunk), self._read_body
        else:
            self._message(bytes(chunk), out)

    def _read_body(self, chunk: bytes, out: list) -> None:
        self._need, self._step = 4, self._read_length
        body, self._head = self._head + bytes(chunk), b""
        self._message(body, out)

    def _finish_piece(self, out: list) -> None:
        if self._piece is not None:
            index, begin, length = self._piece
            out.append(ev.Piece(index, begin, length, self._piece_missing))
        self._piece = None
        self._piece_missing = 0

    def _message(self, body: bytes, out: list) -> None:
        msg_id = body[0]
        size = len(body)
        expected = FIXED_LEN.get(msg_id)
        if expected is not None and size != expected:
            out.append(ev.Finding("malformed", f"{MessageId(msg_id).name.lower()} with length {size}, expected {expected}"))
            return
        minimum = MIN_LEN.get(msg_id)
        if minimum is not None and size < minimum:
            out.append(ev.Finding("malformed", f"{MessageId(msg_id).name.lower()} with length {size}, at least {minimum} expected"))
            return
        decode = _DECODERS.get(msg_id)
        out.append(decode(self, body, out) if decode else ev.Unknown(msg_id, size))

    def _extended(self, body: bytes, out: list) -> ev.Event:
        ext_id = body[1]
        name = "handshake" if ext_id == 0 else self.ext_names.get(ext_id)
        what = f"extended message {ext_id} ({name or 'unnamed'})"
        try:
            data, trailing, deviations = decode_body(name, body[2:])
        except BodyError as exc:
            out.append(ev.Finding(exc.kind, f"{what}: {exc}"))
            data, trailing = None, len(body) - 2
        else:
            if deviations:
                out.append(ev.Finding("bencode_lenient", f"{what}: {describe(deviations)}"))
        if ext_id == 0 and isinstance(data, dict):
            self.ext_handshake = data
        return ev.Extended(ext_id, name, data, trailing, len(body))

    def _hashes(self, body: bytes, out: list) -> ev.Event:
        if (len(body) - 1 - HASH_HEAD_LEN) % 32:
            out.append(ev.Finding("malformed", f"hashes with length {len(body)}: not a whole number of hashes"))
        root, base, index, length, proofs = HASH_HEAD.unpack_from(body, 1)
        start = 1 + HASH_HEAD_LEN
        hashes = tuple(body[off : off + 32] for off in range(start, len(body) - 31, 32))
        return ev.Hashes(root, base, index, length, proofs, hashes)

    def _stop(self, out: list, kind: str, detail: str) -> None:
        out.append(ev.Finding(kind, detail))
        self.stopped = detail
        self._buf.clear()
        self._skip = 0


def _block(cls: type) -> Callable[[PeerWireParser, bytes, list], ev.Event]:
    return lambda parser, body, out: cls(*BLOCK.unpack_from(body, 1))


def _index(cls: type) -> Callable[[PeerWireParser, bytes, list], ev.Event]:
    return lambda parser, body, out: cls(U32.unpack_from(body, 1)[0])


def _bare(cls: type) -> Callable[[PeerWireParser, bytes, list], ev.Event]:
    instance = cls()
    return lambda parser, body, out: instance


def _hash_head(cls: type) -> Callable[[PeerWireParser, bytes, list], ev.Event]:
    return lambda parser, body, out: cls(*HASH_HEAD.unpack_from(body, 1))


_DECODERS: dict[int, Callable[[PeerWireParser, bytes, list], ev.Event]] = {
    MessageId.CHOKE: _bare(ev.Choke),
    MessageId.UNCHOKE: _bare(ev.Unchoke),
    MessageId.INTERESTED: _bare(ev.Interested),
    MessageId.NOT_INTERESTED: _bare(ev.NotInterested),
    MessageId.HAVE: _index(ev.Have),
    MessageId.BITFIELD: lambda parser, body, out: ev.Bitfield(body[1:]),
    MessageId.REQUEST: _block(ev.Request),
    MessageId.CANCEL: _block(ev.Cancel),
    MessageId.PORT: lambda parser, body, out: ev.Port(U16.unpack_from(body, 1)[0]),
    MessageId.SUGGEST: _index(ev.Suggest),
    MessageId.HAVE_ALL: _bare(ev.HaveAll),
    MessageId.HAVE_NONE: _bare(ev.HaveNone),
    MessageId.REJECT: _block(ev.Reject),
    MessageId.ALLOWED_FAST: _index(ev.AllowedFast),
    MessageId.EXTENDED: PeerWireParser._extended,
    MessageId.HASH_REQUEST: _hash_head(ev.HashRequest),
    MessageId.HASHES: PeerWireParser._hashes,
    MessageId.HASH_REJECT: _hash_head(ev.HashReject),
}
