"""An asyncio port of the original BitTorrent client's ``Encoder`` and ``Connection``.

The replayer must speak to live peers by the rules a real client keeps, or the peer
hangs up (or worse, goes along with something no client would do) and the replay
proves nothing. So the structure and rules are Bram Cohen's Encrypter.py: the
``Encoder`` holds the table of connections, refuses our own and already-connected
peer ids, keeps at most ``max_initiate`` connections and a bounded, deduplicated
queue of spare addresses, and sends keep-alives; the ``Connection`` does the
handshake in the original order (the initiator sends first; the receiver answers
only once it has read the info hash and found it is ours) and checks the peer id
(not ours, not a duplicate, the expected one when one was given).

What changed: the raw server is asyncio (a ``Connection`` is the transport's
``asyncio.Protocol``); incoming bytes go through the inspector's own
``PeerWireParser``, so the replayer and the capture reader decode alike, and the
connecter gets its events, not raw messages; the handshake is the modern one (the
peer id goes with it, the reserved bytes are the caller's, a BEP 10 extension
handshake follows when both sides set the bit); and ``connection_lost`` reaches the
connecter for every connection, with a reason, even one refused at the handshake
(``complete`` says whether ``connection_made`` came first): a replay must know why
a live peer was lost. Any connection lost frees a slot for the spares.
"""
from __future__ import annotations

import asyncio
import struct
from typing import Protocol

import fastbencode

from inspector import events as ev
from inspector.parser import PeerWireParser
from inspector.wire import (
    BLOCK, HANDSHAKE_PREFIX, HASH_HEAD, U16, U32, MessageId, reserved_bytes,
)

Address = tuple[str, int]

# Findings the original client hung up on; the last three the connection raises itself.
CLOSING = frozenset({"bad_protocol", "oversize", "info_hash_mismatch", "self_connection",
                     "duplicate_peer_id", "peer_id_mismatch"})

_HEAD = struct.Struct(">IB")  # length prefix, message id
_PIECE = struct.Struct(">IBII")  # a piece message's head: length prefix, id, index, begin
_EXTENSION_BIT = reserved_bytes("extension_protocol")
# Write-buffer watermarks: paused above HIGH, flushed (as the original meant it) at empty.
HIGH_WATER = 1 << 16


class Tap(Protocol):
    """Sees every byte each way, for a record of what was replayed (``-w``, the log)."""

    def opened(self, conn: Connection) -> None: ...
    def sent(self, conn: Connection, data: bytes) -> None: ...
    def received(self, conn: Connection, data: bytes) -> None: ...
    def closed(self, conn: Connection, reason: str) -> None: ...


class Connecter(Protocol):
    """What the encoder calls back (the original client's Connecter)."""

    def connection_made(self, conn: Connection) -> None: ...
    def got_message(self, conn: Connection, event: ev.Event) -> None: ...
    def connection_lost(self, conn: Connection, reason: str) -> None: ...
    def connection_flushed(self, conn: Connection) -> None: ...


def _has_extensions(reserved: bytes) -> bool:
    return any(a & b for a, b in zip(reserved, _EXTENSION_BIT))


def _message(msg_id: int, body: bytes = b"") -> bytes:
    return _HEAD.pack(1 + len(body), msg_id) + body


class Connection(asyncio.Protocol):
    """One peer connection: handshake, peer id checks, then messages both ways."""

    def __init__(self, encoder: Encoder, addr: Address | None, id: bytes | None, locally_initiated: bool) -> None:
        self.encoder = encoder
        self.addr = addr
        self.id = id  # the expected peer id until the handshake, then the peer's
        self.locally_initiated = locally_initiated
        self.complete = False
        self.closed = False
        self.reason: str | None = None
        self.detail = ""
        self.transport: asyncio.Transport | None = None
        self.local: Address | None = None
        self.info_hash = encoder.info_hash  # the one we send (the initiator's choice)
        self.parser = PeerWireParser(max_len=encoder.max_len, keep_payload=True)  # blocks are checked
        self.parser.ext_names = dict(encoder.ext_names)  # the ids the peer sends us are ours
        self.peer_reserved: bytes | None = None
        self.peer_extensions: dict[str, int] = {}  # from the peer's extension handshake: name -> its id
        self._hash_checked = False

    def __repr__(self) -> str:
        return f"<Connection {self.addr} {'out' if self.locally_initiated else 'in'} id={self.id!r}>"

    def get_ip(self) -> str | None:
        return self.addr[0] if self.addr else None

    def get_id(self) -> bytes | None:
        return self.id

    def is_locally_initiated(self) -> bool:
        return self.locally_initiated

    def is_flushed(self) -> bool:
        return self.transport is not None and self.transport.get_write_buffer_size() == 0

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport  # type: ignore[assignment]
        if self.closed:  # the encoder was closed while this one was connecting
            transport.close()
            return
        self.addr = self.addr or transport.get_extra_info("peername")[:2]
        self.local = transport.get_extra_info("sockname")[:2]
        self.transport.set_write_buffer_limits(high=HIGH_WATER, low=0)
        if self.encoder.tap is not None:
            self.encoder.tap.opened(self)
        if self.locally_initiated:
            self._send_handshake()

    def data_received(self, data: bytes) -> None:
        if self.encoder.tap is not None:
            self.encoder.tap.received(self, data)
        events = self.parser.feed(data)
        if not self._hash_checked and self.parser.info_hash is not None:
            self._hash_checked = True
            if self.parser.info_hash not in self.encoder.info_hashes:
                self.close("info_hash_mismatch", f"info hash {self.parser.info_hash.hex()} is not ours")
                return
            self.info_hash = self.parser.info_hash  # a hybrid torrent's receiver answers in kind
            if not self.locally_initiated:
                self._send_handshake()
        for event in events:
            if self.closed:
                return
            if event.type == "handshake":
                self._read_peer_id(event)
            elif event.type == "finding" and event.kind in CLOSING:
                self.close(event.kind, event.detail)
            else:
                if event.type == "extended" and event.ext_id == 0 and isinstance(event.data, dict):
                    m = event.data.get("m")
                    if isinstance(m, dict):
                        self.peer_extensions = {k: v for k, v in m.items() if isinstance(v, int) and 0 < v < 256}
                self.encoder.connecter.got_message(self, event)

    def pause_writing(self) -> None:
        pass  # the buffer is past HIGH_WATER; resume_writing says when it is empty again

    def resume_writing(self) -> None:
        if self.complete and not self.closed:
            self.encoder.connecter.connection_flushed(self)

    def connection_lost(self, exc: Exception | None) -> None:  # type: ignore[override]
        if not self.closed:
            self.closed = True
            reason = "closed" if exc is None else "reset" if isinstance(exc, ConnectionResetError) else "error"
            self.encoder.connection_lost(self, reason, str(exc or "closed by the peer"))

    # -- the handshake -----------------------------------------------------------

    def _send_handshake(self) -> None:
        enc = self.encoder
        self._write(HANDSHAKE_PREFIX + enc.reserved + self.info_hash + enc.my_id)

    def _read_peer_id(self, hs: ev.Handshake) -> None:
        s = hs.peer_id
        if s == self.encoder.my_id:
            self.close("self_connection", "the peer id is our own")
            return
        if any(c is not self and c.id == s for c in self.encoder.connections):
            self.close("duplicate_peer_id", f"peer id {s.hex()} is already connected")
            return
        if self.id is not None and s != self.id:
            self.close("peer_id_mismatch", f"peer id {s.hex()}, expected {self.id.hex()}")
            return
        self.id = s
        self.peer_reserved = hs.reserved
        self.complete = True
        if not self.locally_initiated:
            self.encoder.everinc = True
        if _has_extensions(self.encoder.reserved) and _has_extensions(hs.reserved):
            self._write(_message(MessageId.EXTENDED, b"\0" + fastbencode.bencode(self.encoder.ext_handshake)))
        self.encoder.connecter.connection_made(self)

    # -- closing -------------------------------------------------------------------

    def close(self, reason: str = "local", detail: str = "") -> None:
        """Hang up (the original's close: drop the socket, then sever)."""
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self.encoder.connection_lost(self, reason, detail)

    def sever(self, reason: str, detail: str) -> None:
        """Leave the encoder's table and tell the connecter (the original's sever)."""
        self.closed = True
        self.reason, self.detail = reason, detail
        self.encoder.connections.pop(self, None)
        if self.encoder.tap is not None and self.transport is not None:
            self.encoder.tap.closed(self, reason)
        self.encoder.connecter.connection_lost(self, reason)

    # -- sending ---------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            if self.encoder.tap is not None:
                self.encoder.tap.sent(self, data)
            self.transport.write(data)

    def send_message(self, message: bytes) -> None:
        """One length-prefixed message (``b""`` is a keep-alive), as the original sent them."""
        self._write(U32.pack(len(message)) + message)

    def send_keepalive(self) -> None:
        self._write(U32.pack(0))

    def send_choke(self) -> None:
        self._write(_message(MessageId.CHOKE))

    def send_unchoke(self) -> None:
        self._write(_message(MessageId.UNCHOKE))

    def send_interested(self) -> None:
        self._write(_message(MessageId.INTERESTED))

    def send_not_interested(self) -> None:
        self._write(_message(MessageId.NOT_INTERESTED))

    def send_have(self, index: int) -> None:
        self._write(_message(MessageId.HAVE, U32.pack(index)))

    def send_bitfield(self, bits: bytes) -> None:
        self._write(_message(MessageId.BITFIELD, bits))

    def send_request(self, index: int, begin: int, length: int) -> None:
        self._write(_message(MessageId.REQUEST, BLOCK.pack(index, begin, length)))

    def send_piece(self, index: int, begin: int, block: bytes) -> None:
        self._write(_PIECE.pack(9 + len(block), MessageId.PIECE, index, begin) + block)  # one copy of the block

    def send_cancel(self, index: int, begin: int, length: int) -> None:
        self._write(_message(MessageId.CANCEL, BLOCK.pack(index, begin, length)))

    def send_port(self, port: int) -> None:
        self._write(_message(MessageId.PORT, U16.pack(port)))

    def send_suggest(self, index: int) -> None:
        self._write(_message(MessageId.SUGGEST, U32.pack(index)))

    def send_have_all(self) -> None:
        self._write(_message(MessageId.HAVE_ALL))

    def send_have_none(self) -> None:
        self._write(_message(MessageId.HAVE_NONE))

    def send_reject(self, index: int, begin: int, length: int) -> None:
        self._write(_message(MessageId.REJECT, BLOCK.pack(index, begin, length)))

    def send_allowed_fast(self, index: int) -> None:
        self._write(_message(MessageId.ALLOWED_FAST, U32.pack(index)))

    def send_extended(self, ext_id: int, body: bytes) -> None:
        """Extended message ``ext_id`` (0: a handshake) with a raw body."""
        self._write(_message(MessageId.EXTENDED, bytes([ext_id]) + body))

    def send_extension(self, name: str, payload: dict, trailing: bytes = b"") -> None:
        """A named extension message, under the id the peer's extension handshake gave it."""
        ext_id = self.peer_extensions.get(name)
        if ext_id is None:
            raise KeyError(f"the peer's extension handshake names no {name!r}")
        self.send_extended(ext_id, fastbencode.bencode(payload) + trailing)

    def send_hash_request(self, root: bytes, base: int, index: int, length: int, proofs: int) -> None:
        self._write(_message(MessageId.HASH_REQUEST, HASH_HEAD.pack(root, base, index, length, proofs)))

    def send_hashes(self, root: bytes, base: int, index: int, length: int, proofs: int, hashes: bytes) -> None:
        self._write(_message(MessageId.HASHES, HASH_HEAD.pack(root, base, index, length, proofs) + hashes))

    def send_hash_reject(self, root: bytes, base: int, index: int, length: int, proofs: int) -> None:
        self._write(_message(MessageId.HASH_REJECT, HASH_HEAD.pack(root, base, index, length, proofs)))


class Encoder:
    """The table of connections and the rules for opening them (the original's Encoder).

    Must be made inside a running event loop (the keep-alive timer starts at once).
    ``ext_handshake`` is the BEP 10 handshake dictionary, with bytes keys as
    fastbencode takes them (e.g. ``{b"m": {b"ut_metadata": 3}}``). ``info_hashes``
    are other names the torrent goes by (a hybrid torrent's v1 and v2 hashes): a
    peer naming one of them is accepted, and an incoming one is answered with it.
    """

    def __init__(self, connecter: Connecter, my_id: bytes, info_hash: bytes, *, max_len: int,
                 keepalive_delay: float, max_initiate: int = 40, reserved: bytes = bytes(8),
                 ext_handshake: dict | None = None, tap: Tap | None = None,
                 info_hashes: frozenset[bytes] = frozenset()) -> None:
        if len(my_id) != 20 or len(info_hash) != 20 or len(reserved) != 8:
            raise ValueError("my_id and info_hash take 20 bytes, reserved 8")
        self.connecter = connecter
        self.tap = tap
        self.my_id = my_id
        self.info_hash = info_hash
        # Every info hash a peer may name this torrent by (v1 and v2 of a hybrid torrent).
        self.info_hashes = frozenset({info_hash, *info_hashes})
        self.max_len = max_len
        self.keepalive_delay = keepalive_delay
        self.max_initiate = max_initiate
        self.reserved = reserved
        self.ext_handshake = ext_handshake if ext_handshake is not None else {b"m": {}}
        m = self.ext_handshake.get(b"m", {})
        self.ext_names = {v: k.decode("utf-8", "replace") for k, v in m.items() if 0 < v < 256}
        self.connections: dict[Connection, None] = {}  # ordered, as the original's dict
        self.spares: dict[Address, bytes | None] = {}  # a queue without duplicates
        self.everinc = False
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task] = set()
        self._servers: list[asyncio.Server] = []
        self._keepalive = self._loop.call_later(keepalive_delay, self.send_keepalives)

    def send_keepalives(self) -> None:
        self._keepalive = self._loop.call_later(self.keepalive_delay, self.send_keepalives)
        for c in list(self.connections):
            if c.complete:
                c.send_keepalive()

    def start_connection(self, addr: Address, peer_id: bytes | None = None) -> Connection | None:
        """Connect to ``addr`` unless refused; at ``max_initiate`` connections it becomes a spare."""
        if peer_id is not None:
            if peer_id == self.my_id:
                return None
            if any(c.id == peer_id for c in self.connections):
                return None
        if len(self.connections) >= self.max_initiate:
            if len(self.spares) < self.max_initiate and addr not in self.spares:
                self.spares[addr] = peer_id
            return None
        conn = Connection(self, addr, peer_id, True)
        self.connections[conn] = None
        task = self._loop.create_task(self._connect(conn, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return conn

    async def _connect(self, conn: Connection, addr: Address) -> None:
        try:
            await self._loop.create_connection(lambda: conn, addr[0], addr[1])
        except OSError as exc:
            if not conn.closed:
                conn.closed = True
                self.connection_lost(conn, "connect_failed", str(exc))

    def external_connection_made(self) -> Connection:
        """An incoming connection (the listener's protocol factory)."""
        conn = Connection(self, None, None, False)
        self.connections[conn] = None
        return conn

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> Address:
        """Accept incoming connections on ``host:port``; returns the address bound."""
        server = await self._loop.create_server(self.external_connection_made, host, port)
        self._servers.append(server)
        return server.sockets[0].getsockname()[:2]

    def connection_lost(self, conn: Connection, reason: str, detail: str = "") -> None:
        """Sever ``conn``, then start spares while below ``max_initiate``."""
        conn.sever(reason, detail)
        while len(self.connections) < self.max_initiate and self.spares:
            addr = next(iter(self.spares))
            self.start_connection(addr, self.spares.pop(addr))

    @property
    def listening(self) -> bool:
        return any(server.is_serving() for server in self._servers)

    def ever_got_incoming(self) -> bool:
        return self.everinc

    async def close(self) -> None:
        """Stop listening, keep-alives and connecting, and hang up on everyone."""
        self._keepalive.cancel()
        self.spares.clear()
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.connections):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
