"""The incremental peer-wire parser, sans-I/O: ``feed(bytes)`` in, events out.

It keeps the shape of the original BitTorrent client's ``Connection``: each step
says how many bytes it needs next (``_need``) and which method reads them
(``_step``). One parser reads one direction of one connection. Piece payloads are
counted past (``_skip``), never buffered, so a capture's size never becomes memory.

Where the original client hung up (wrong protocol name, a length above
``max_len``) the parser emits a ``Finding``; the replayer closes on it, the
inspector records it and reads on wherever the framing still holds.

Captures lose bytes. A hole inside a message whose length is known costs that
message only; a hole whose far side cannot be placed (it swallowed a length
prefix, or its size is unknown) loses the framing, and the parser then hunts for
the next message boundary (:mod:`inspector.resync`) instead of guessing. Events
that a hunt confirms only once later bytes have arrived come out as
``(event, tag)``: ``tag`` is whatever was passed with the bytes that completed the
event (the pipeline passes the frame), so they keep the frame that completed them.
"""
from __future__ import annotations

from collections.abc import Callable

from . import events as ev
from .extensions import BencodeError, BodyError, decode, describe
from .limits import Budget
from .resync import EXPECTED_MAX, Hunt, Torrent
from .wire import (
    BLOCK, DEFAULT_MAX_LEN, FIXED_LEN, HANDSHAKE_LEN, HASH_HEAD, HASH_HEAD_LEN, MIN_LEN, PIECE_HEAD,
    PIECE_HEAD_LEN, PROTOCOL_NAME, U16, U32, MessageId,
)

AFTER_MSE = "after an MSE key exchange"  # the hunt's reason when a plaintext handshake follows MSE

Step = Callable[[bytes, list], None]


class PeerWireParser:
    """Decoder for the bytes one peer sends.

    ``ext_names`` maps the extended-message ids this side sends to their names; per
    BEP 10 those ids come from the *receiver's* extension handshake, so whoever
    owns both directions (a session, a replay connection) fills it in.
    """

    def __init__(self, *, max_len: int = DEFAULT_MAX_LEN, handshake: bool = True, midstream: bool = False,
                 torrent: Torrent | None = None, why: str = "the connection's start was not captured",
                 keep_payload: bool = False, partial: Budget | None = None) -> None:
        self.max_len = max_len
        # Bytes of unfinished messages are held against ``partial``, shared by every
        # parser of a decode; ``_held`` is this one's share (the message being read).
        self.partial = partial
        self._held = 0
        self._lost = 0  # bytes of the message being read that a hole took (bitfield, extended)
        self._filled = 0  # of which held in the buffer as zeros (a hole with captured bytes after it)
        self.ext_names: dict[int, str] = {}
        self.torrent = torrent or Torrent()
        self.expected: dict[tuple[int, int, int], None] = {}  # blocks the other side asked this one for
        self.midstream = midstream  # the stream's start was not captured: no handshake is owed
        self.why = why  # and why not, for the finding
        self.resyncs = 0  # times the framing was found again
        self._hunt: Hunt | None = None
        self._tag: object = None
        # Piece payload bytes so far, when asked to keep them (``extract``, the replayer);
        # by default they are counted past and this stays None.
        self._keep: list[bytes] | None = None
        if keep_payload:
            self._keep = []
            self.skip_payload = self._keep_payload  # type: ignore[method-assign]
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
            if midstream:
                self._hunt = Hunt(why)

    @property
    def hunting(self) -> bool:
        """The framing is lost and the parser is looking for the next message."""
        return self._hunt is not None

    def expect(self, index: int, begin: int, length: int) -> None:
        """The other side requested this block from this one (it makes a resync certain)."""
        expected = self.expected
        expected[(index, begin, length)] = None
        if len(expected) > EXPECTED_MAX:
            del expected[next(iter(expected))]

    # -- input -------------------------------------------------------------

    def feed(self, data: bytes | memoryview, tag: object = None) -> list:
        """Consume bytes of the stream, in order; return what they completed."""
        out: list = []
        if self.stopped:
            return out
        self._tag = tag
        if self._hunt is not None:
            self._hunting(data, None, out)
            return out
        pos, end = 0, len(data)
        buf = self._buf
        while pos < end:
            if self._skip:
                left = end - pos
                if left < self._skip:
                    if self._keep is not None:
                        self._keep.append(bytes(data[pos:end]))
                    self._skip -= left
                    return out
                if self._keep is not None:
                    self._keep.append(bytes(data[pos : pos + self._skip]))
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
            if self._hunt is not None:
                self._hunting(data[pos:], None, out)
                return out
        return out

    def _keep_payload(self, size: int) -> bool:
        """``skip_payload`` when payloads are kept: the bytes must come through ``feed``."""
        return False

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

    def gap(self, missing: int, tag: object = None) -> list:
        """``missing`` bytes of the stream were not captured; -1: some, count unknown (uTP).

        Inside a message whose length is known (a piece payload, a bitfield, an
        extended body, the handshake) only that message suffers and the framing
        holds after it. Anywhere else (between messages, inside a length prefix,
        past the end of the current message, or of unknown size) the far side of
        the hole cannot be placed: the parser hunts for the next message.
        """
        out: list = []
        if self.stopped or not missing:
            return out
        self._tag = tag
        if self._hunt is not None:
            if self._hunt.why == AFTER_MSE:  # what is found now comes after a loss: a resync that says so
                self._hunt.why = f"{AFTER_MSE}, and a hole"  # (the pipeline noted the hole while scanning)
            self._hunting(None, missing, out)
            return out
        if self._skip:
            inside = self._skip if missing < 0 else min(self._skip, missing)
            piece = self._piece
            if piece is None:
                out.append(ev.Finding("hole", f"{inside} bytes not captured inside a skipped message"))
            elif not self._piece_missing:  # one finding a piece, at its first hole; the piece counts them all
                out.append(ev.Finding("hole", f"{inside} bytes of piece {piece[0]}:{piece[1]} ({piece[2]} bytes) "
                                              "not captured"))
            self._skip -= inside
            self._piece_missing += inside
            if not self._skip:
                self._finish_piece(out)
            if inside == missing:
                return out
            if missing > 0:
                missing -= inside  # the rest of the gap lies past the end of the message
        elif self.midstream:
            pass  # a handshake only begun mid-stream is no framing to keep: hunt
        elif missing >= 0 and self._step not in (self._read_length, self._read_protocol_length):
            remaining, what = self._remaining()
            if missing <= remaining:
                out.append(ev.Finding("hole", f"{missing} bytes not captured inside {what}; framing kept"))
                if self._readable_past(out):
                    self._read_past(missing, out)
                else:
                    self._skip_rest(remaining - missing, out)
                return out
            self._skip_rest(0, out)
            missing -= remaining
        lost = "some bytes (count unknown)" if missing < 0 else f"{missing} bytes"
        out.append(ev.Finding("hole", f"{lost} not captured; framing lost, looking for the next message"))
        self._lose_framing("after a hole", out, None, missing)
        return out

    def end(self) -> list:
        """The stream ended (FIN, RST, or the capture ran out)."""
        out: list = []
        if self.stopped:
            return out
        self._tag = None  # whatever a last resync confirms came with earlier bytes: all tagged
        while self._hunt is not None:
            hunt = self._hunt
            found = hunt.search(self, ended=True)
            if found is None:
                span = "" if hunt.unknown else f" in the {hunt.end} bytes since it was lost"
                self._stop(out, "resync", f"framing not found again{span} ({hunt.why}); "
                                          "the rest of this direction is not decoded")
                return out
            self._resume(hunt, found, out)
        if self.stopped:
            return out
        if self._skip and self._piece is not None:
            index, begin, length = self._piece
            self._stop(out, "truncated", f"stream ended {self._skip} bytes short of the end of piece {index}:{begin} ({length} bytes)")
        elif self._skip:
            self._stop(out, "truncated", f"stream ended {self._skip} bytes short of the end of a message")
        elif self._buf or self._step not in (self._read_length, self._read_protocol_length):
            # its length prefix and head count: a cut bitfield says how much of it came
            self._stop(out, "truncated", f"stream ended inside a message ({self.progress()} of its bytes seen)")
        return out

    # -- handshake steps -----------------------------------------------------

    def _read_protocol_length(self, chunk: bytes, out: list) -> None:
        if chunk[0] != len(PROTOCOL_NAME):
            if self.midstream:
                self._lose_framing(self.why, out, bytes(chunk))
                return
            self._stop(out, "bad_protocol", f"protocol name length {chunk[0]}, expected {len(PROTOCOL_NAME)}")
            return
        self._need, self._step = len(PROTOCOL_NAME), self._read_protocol_name

    def _read_protocol_name(self, chunk: bytes, out: list) -> None:
        if bytes(chunk) != PROTOCOL_NAME:
            if self.midstream:
                self._lose_framing(self.why, out, bytes([len(PROTOCOL_NAME)]) + chunk)
                return
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
        self.midstream = False
        out.append(ev.Handshake(self.reserved, self.info_hash, self.peer_id))  # type: ignore[arg-type]
        self._need, self._step = 4, self._read_length

    # -- message steps ---------------------------------------------------------

    def _read_length(self, chunk: bytes, out: list) -> None:
        (length,) = U32.unpack_from(chunk)
        if length == 0:
            out.append(_KEEPALIVE)
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
            need = length - len(chunk)
            partial = self.partial
            if partial is not None:
                if not partial.take(need):
                    self._over_budget(chunk[:1], partial, out)
                    self._skip = need
                    self._piece = None
                    return
                self._held = need
            self._head = bytes(chunk)
            self._need, self._step = need, self._read_body
        else:
            self._message(bytes(chunk), out)

    def _read_body(self, chunk: bytes, out: list) -> None:
        self._need, self._step = 4, self._read_length
        if self._held:
            self._release()
        body, self._head = self._head + bytes(chunk), b""
        if self._lost:
            self._partial(body, out)
        else:
            self._message(body, out)

    def _over_budget(self, first: bytes | bytearray, partial: Budget, out: list) -> None:
        out.append(ev.Finding("limit", f"{self._what(first)}: holding it would pass the bytes of unfinished "
                                       f"messages held over all flows (--max-partial-total {partial.limit}); skipped"))

    def _readable_past(self, out: list) -> bool:
        """Whether a hole here falls inside a bitfield or an extended body whose id (and
        extension id) were captured; if its head was still being read, the rest is now its body
        (unless holding it would pass the budget: then it is counted past, and said so)."""
        if self._step == self._read_head:
            head = self._buf
            if not head or head[0] not in _READ_ON or (head[0] == MessageId.EXTENDED and len(head) < 2):
                return False
            need = self._length - len(head)
            if self.partial is not None:
                if not self.partial.take(need):
                    self._over_budget(head[:1], self.partial, out)
                    return False
                self._held = need
            self._head = bytes(head)
            head.clear()
            self._need, self._step = need, self._read_body
        return self._step == self._read_body and self._head[0] in _READ_ON

    def _read_past(self, missing: int, out: list) -> None:
        """A hole inside a bitfield or an extended body: read on to the message's end, so it
        is reported at its last byte, with what was captured of it in place (the hole as zeros:
        a bitfield's bytes keep their pieces) and ``missing`` the hole's bytes."""
        self._lost += missing
        if len(self._buf) + missing < self._need:
            self._buf.extend(bytes(missing))
            self._filled += missing
        else:  # the hole reached the message's end: the tail is absent, not zeros
            chunk = bytes(self._buf)
            self._buf.clear()
            self._read_body(chunk, out)

    def _partial(self, body: bytes, out: list) -> None:
        """A bitfield (its captured bytes) or an extended message (no data) that lost ``_lost`` bytes."""
        lost, filled, self._lost, self._filled = self._lost, self._filled, 0, 0
        if body[0] == MessageId.BITFIELD:
            out.append(ev.Bitfield(body[1:], missing=lost, filled=filled))
        elif len(body) >= 2:
            ext_id = body[1]
            name = "handshake" if ext_id == 0 else self.ext_names.get(ext_id)
            out.append(ev.Extended(ext_id, name, None, 0, self._length, missing=lost))

    def _finish_piece(self, out: list) -> None:
        if self._piece is not None:
            index, begin, length = self._piece
            if self.expected:
                self.expected.pop(self._piece, None)
            if self._keep is None:
                out.append(ev.Piece(index, begin, length, self._piece_missing))
            else:  # the block's bytes, when every one of them was captured
                data = b"".join(self._keep) if not self._piece_missing else None
                out.append(ev.Piece(index, begin, length, self._piece_missing, data))
        if self._keep:
            self._keep.clear()
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
            data, trailing, deviations, problems = decode(name, body[2:])
        except BodyError as exc:
            if name is None and not self.ext_names and isinstance(exc, BencodeError):
                # Its name (and so its format) is in the receiver's extension handshake,
                # which the capture does not hold: nothing is wrong that we can tell.
                out.append(ev.Finding("unnamed_extension", f"{what}: not bencoded, and the receiver's extension "
                                                           "handshake naming it was not captured"))
            else:
                out.append(ev.Finding(exc.kind, f"{what}: {exc}"))
            data, trailing = None, len(body) - 2
        else:
            if deviations:
                out.append(ev.Finding("bencode_lenient", f"{what}: {describe(deviations)}"))
            out.extend(ev.Finding("malformed", f"{what}: {problem}") for problem in problems)
        if ext_id == 0 and isinstance(data, dict):
            self.ext_handshake = data
        if name == "ut_metadata" and trailing and isinstance(data, dict) and data.get("msg_type") == 1:
            # The info dictionary, a piece at a time: the session puts it together (piece count).
            return ev.Extended(ext_id, name, data, trailing, len(body), metadata=bytes(body[len(body) - trailing:]))
        return ev.Extended(ext_id, name, data, trailing, len(body))

    def _hashes(self, body: bytes, out: list) -> ev.Event:
        if (len(body) - 1 - HASH_HEAD_LEN) % 32:
            out.append(ev.Finding("malformed", f"hashes with length {len(body)}: not a whole number of hashes"))
        root, base, index, length, proofs = HASH_HEAD.unpack_from(body, 1)
        start = 1 + HASH_HEAD_LEN
        hashes = tuple(body[off : off + 32] for off in range(start, len(body) - 31, 32))
        return ev.Hashes(root, base, index, length, proofs, hashes)

    # -- holes and the hunt ------------------------------------------------------

    def _remaining(self) -> tuple[int, str]:
        """Bytes left in the message being read (its length is known), and what it is."""
        step, have = self._step, len(self._buf)
        if step == self._read_head:
            return self._length - have, self._what(self._buf[:1])
        if step == self._read_body:
            return self._length - len(self._head) - have, self._what(self._head[:1])
        done = {self._read_protocol_name: 1, self._read_reserved: 20, self._read_info_hash: 28,
                self._read_peer_id: 48}[step]
        return HANDSHAKE_LEN - done - have, "the handshake"

    def progress(self) -> int | None:
        """Bytes of the message being read consumed so far, its length prefix included
        (0 between messages); None when that is not known: while hunting, once stopped,
        and while counting past a message that is not a piece (oversize, or cut by a hole).
        ``inspector.locate`` places messages in the stream with it."""
        if self._hunt is not None or self.stopped:
            return None
        if self._skip:
            piece = self._piece
            return None if piece is None else 4 + PIECE_HEAD_LEN + piece[2] - self._skip
        step, have = self._step, len(self._buf)
        if step == self._read_length:
            return have
        if step == self._read_head:
            return 4 + have
        if step == self._read_body:
            return 4 + len(self._head) + have
        done = {self._read_protocol_length: 0, self._read_protocol_name: 1, self._read_reserved: 20,
                self._read_info_hash: 28, self._read_peer_id: 48}[step]
        return done + have

    def _what(self, first: bytes | bytearray) -> str:
        if not first:
            return f"a message of length {self._length}"
        try:
            name = MessageId(first[0]).name.lower()
        except ValueError:
            name = f"id {first[0]}"
        return f"{'an' if name[0] in 'aeiou' else 'a'} {name} message of length {self._length}"

    def _skip_rest(self, rest: int, out: list) -> None:
        """A hole took part of the message being read; count past its last ``rest`` bytes.

        What it was is reported when its id and enough of its head were captured: a
        bitfield or an extended message with ``missing`` set, a handshake with the
        part of the peer id that was captured, so a snap-length-cut capture still
        lists them.
        """
        head = self._head + bytes(self._buf)  # _head is b"" but in the body step
        if self._step == self._read_peer_id:
            # The info hash was captured: a snap-length cut often ends in the peer id.
            self.peer_id = head
            out.append(ev.Handshake(self.reserved, self.info_hash, head))  # type: ignore[arg-type]
        elif self._step == self._read_body or (self._step == self._read_head and head):
            msg_id, length = head[0], self._length
            if msg_id == MessageId.EXTENDED and len(head) >= 2:
                ext_id = head[1]
                name = "handshake" if ext_id == 0 else self.ext_names.get(ext_id)
                out.append(ev.Extended(ext_id, name, None, 0, length, missing=length - len(head) + self._filled))
            elif msg_id == MessageId.BITFIELD:
                out.append(ev.Bitfield(head[1:], missing=length - len(head) + self._filled, filled=self._filled))
        self._buf.clear()
        self._head = b""
        self._lost = self._filled = 0
        self._piece = None
        self._skip = rest
        if self._held:
            self._release()
        self._need, self._step = 4, self._read_length

    def _lose_framing(self, why: str, out: list, data: bytes | None, missing: int | None = None) -> None:
        """Start hunting for the next message, with what is already known to follow: the
        bytes that broke the framing, or a hole (never both). Nothing is being counted past
        here (``_skip`` is 0): a hole inside a skipped message ran it out first."""
        if self._held:
            self._release()
        self._buf.clear()
        self._head = b""
        self._lost = self._filled = 0
        self._need, self._step = 4, self._read_length
        self._hunt = Hunt(why)
        self._hunting(data, missing, out)

    def _hunting(self, data: bytes | memoryview | None, missing: int | None, out: list) -> None:
        hunt = self._hunt
        assert hunt is not None
        if data is not None:
            hunt.add(data, self._tag)
        elif missing is not None:
            hunt.add_gap(missing, self._tag)
        found = hunt.search(self, ended=False)
        if found is not None:
            self._resume(hunt, found, out)

    def _resume(self, hunt: Hunt, found: int, out: list) -> None:
        """The framing holds again at ``found``: decode what was held from there, each
        event stamped with the tag of the bytes that completed it."""
        self._hunt = None
        self.midstream = False  # the framing is confirmed now
        self.resyncs += 1
        skipped = "bytes of unknown count" if hunt.unknown else f"{found} byte{'' if found == 1 else 's'}"
        handshake = hunt.is_handshake(found)
        what = "the handshake" if handshake else "next message"
        if handshake and hunt.why == AFTER_MSE:
            # Nothing lost: MSE's crypto_select chose plaintext, and the stream starts over here.
            out.append(ev.Finding("mse_plaintext", f"an MSE key exchange of {skipped}, then the handshake in "
                                                   "plaintext (crypto_select chose plaintext)"))
        else:
            where = "at the first byte after it" if not found else f"after {skipped}"
            if hunt.skipped is not None:
                index, begin, length = hunt.skipped
                where += (f", the payload of a requested block ({index}:{begin}, {length} bytes) whose piece "
                          "header the hole held")
            out.append(ev.Finding("resync", f"{what} found {where} ({hunt.why})"))
        if handshake:
            self._need, self._step = 1, self._read_protocol_length
        current = self._tag
        for is_gap, item, tag in hunt.replay(found):
            events = self.gap(item, tag) if is_gap else self.feed(item, tag)
            if tag is current:
                out.extend(events)
            else:
                out.extend(e if e.__class__ is tuple else (e, tag) for e in events)
            if self.stopped:
                break
        self._tag = current

    def forget(self) -> None:
        """Decoding is abandoned: the unfinished message no longer holds its bytes."""
        if self._held:
            self._release()

    def _release(self) -> None:
        """The message being read no longer holds its bytes (complete, skipped, or given up)."""
        self.partial.used -= self._held  # type: ignore[union-attr]
        self._held = 0

    def _stop(self, out: list, kind: str, detail: str) -> None:
        out.append(ev.Finding(kind, detail))
        self.stopped = detail
        if self._held:
            self._release()
        self._buf.clear()
        self._skip = 0
        self._hunt = None


_READ_ON = frozenset((MessageId.BITFIELD, MessageId.EXTENDED))  # messages read on past a hole inside
_KEEPALIVE = ev.KeepAlive()  # events are frozen: one serves every keep-alive (a stream of zeros is millions)


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
