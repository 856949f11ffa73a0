"""replay.encoder over real sockets on 127.0.0.1: two Encoders against each other, and
one against a live aria2 seeder. Nothing sleeps: every wait is on a callback, with a
timeout."""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path

import fastbencode
import pytest

from inspector import events as ev
from inspector.wire import reserved_bytes
from replay.encoder import Connection, Encoder

INFO_HASH = hashlib.sha1(b"btshark replay test").digest()
ID_A = b"-BS0001-aaaaaaaaaaaa"
ID_B = b"-BS0001-bbbbbbbbbbbb"
TIMEOUT = 10.0


def run(main: Callable[[], Coroutine], timeout: float = TIMEOUT) -> None:
    """Run on a private loop: unlike asyncio.run, this leaves no "current loop: None"
    behind for later tests whose libraries (pyshark) call asyncio.get_event_loop()."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), timeout))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class Recorder:
    """A connecter that logs every callback and lets a test await a condition on the log."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Connection, object]] = []
        self.watch: Callable[[], None] | None = None  # called after every callback
        self._changed = asyncio.Event()

    def _note(self, what: str, conn: Connection, arg: object = None) -> None:
        self.log.append((what, conn, arg))
        if self.watch:
            self.watch()
        self._changed.set()

    def connection_made(self, conn: Connection) -> None:
        self._note("made", conn)

    def got_message(self, conn: Connection, event: ev.Event) -> None:
        self._note("message", conn, event)

    def connection_lost(self, conn: Connection, reason: str) -> None:
        self._note("lost", conn, reason)

    def connection_flushed(self, conn: Connection) -> None:
        self._note("flushed", conn)

    def of(self, what: str) -> list[tuple[Connection, object]]:
        return [(c, a) for w, c, a in self.log if w == what]

    def messages(self, conn: Connection | None = None) -> list[ev.Event]:
        return [a for w, c, a in self.log if w == "message" and (conn is None or c is conn)]

    async def until(self, predicate: Callable[[], object]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


def encoder(rec: Recorder, my_id: bytes, **kw) -> Encoder:
    kw.setdefault("max_len", 1 << 24)
    kw.setdefault("keepalive_delay", 120)
    kw.setdefault("info_hash", INFO_HASH)
    return Encoder(rec, my_id, **kw)


def test_two_encoders_handshake_and_exchange_messages_both_ways():
    async def main():
        ra, rb = Recorder(), Recorder()
        ext = reserved_bytes("extension_protocol", "fast")
        a = encoder(ra, ID_A, reserved=ext, ext_handshake={b"m": {b"ut_pex": 1}, b"v": b"A 1.0"})
        b = encoder(rb, ID_B, reserved=ext, ext_handshake={b"m": {b"ut_pex": 7, b"ut_metadata": 3}})
        addr = await b.listen()
        out = a.start_connection(addr, ID_B)
        await ra.until(lambda: ra.of("made"))
        await rb.until(lambda: rb.of("made"))
        (inc, _), = rb.of("made")
        assert out.complete and out.id == ID_B and inc.id == ID_A and not inc.locally_initiated
        assert a.ever_got_incoming() is False and b.ever_got_incoming() is True
        # Each got the other's extension handshake, m and all, and knows the ids to send under.
        await ra.until(lambda: ra.messages())
        await rb.until(lambda: rb.messages())
        assert ra.messages()[0].data["m"] == {"ut_pex": 7, "ut_metadata": 3}
        assert rb.messages()[0].data == {"m": {"ut_pex": 1}, "v": "A 1.0"}
        assert out.peer_extensions == {"ut_pex": 7, "ut_metadata": 3} and inc.peer_extensions == {"ut_pex": 1}

        out.send_interested()
        out.send_request(3, 16384, 16384)
        out.send_extension("ut_pex", {b"added": b"\x7f\x00\x00\x01\x1a\xe1"})
        inc.send_bitfield(b"\xf0\x01")
        inc.send_unchoke()
        inc.send_piece(3, 16384, os.urandom(16384))
        inc.send_reject(1, 0, 16384)
        await rb.until(lambda: len(rb.messages()) == 4)
        await ra.until(lambda: len(ra.messages()) == 5)
        got_b = rb.messages()[1:]
        assert [m.type for m in got_b] == ["interested", "request", "extended"]
        assert got_b[1] == ev.Request(3, 16384, 16384)
        assert got_b[2].ext_id == 7 and got_b[2].ext_name == "ut_pex"  # b's id, named by b's m
        assert got_b[2].data["added"] == ["127.0.0.1:6881"]
        assert ra.messages()[1:] == [ev.Bitfield(b"\xf0\x01"), ev.Unchoke(), ev.Piece(3, 16384, 16384),
                                     ev.Reject(1, 0, 16384)]

        out.close()
        await rb.until(lambda: rb.of("lost"))
        # Callbacks in order, each side: made, then messages, then lost, once.
        assert [w for w, _, _ in ra.log] == ["made"] + ["message"] * 5 + ["lost"]
        assert [w for w, _, _ in rb.log] == ["made"] + ["message"] * 4 + ["lost"]
        assert ra.of("lost") == [(out, "local")] and rb.of("lost") == [(inc, "closed")]
        assert not a.connections and not b.connections
        await a.close()
        await b.close()

    run(main)


def test_wrong_info_hash_is_refused_by_the_receiver_before_it_answers():
    async def main():
        ra, rb = Recorder(), Recorder()
        a = encoder(ra, ID_A, info_hash=hashlib.sha1(b"another torrent").digest())
        b = encoder(rb, ID_B)
        out = a.start_connection(await b.listen())
        await rb.until(lambda: rb.of("lost"))
        await ra.until(lambda: ra.of("lost"))
        (inc, reason), = rb.of("lost")
        assert reason == "info_hash_mismatch" and not inc.complete
        assert ra.of("lost") == [(out, "closed")] and not out.complete
        assert not ra.of("made") and not rb.of("made") and not ra.messages()  # b never answered
        await a.close()
        await b.close()

    run(main)


def test_connecting_to_ourselves_is_refused():
    async def main():
        ra = Recorder()
        a = encoder(ra, ID_A)
        addr = await a.listen()
        assert a.start_connection(addr, ID_A) is None and not a.connections
        a.start_connection(addr)
        await ra.until(lambda: len(ra.of("lost")) == 2)
        assert sorted(reason for _, reason in ra.of("lost")) == ["self_connection"] * 2
        assert not ra.of("made") and not a.connections
        await a.close()

    run(main)


def test_duplicate_peer_id_is_refused():
    async def main():
        r1, r2, rb = Recorder(), Recorder(), Recorder()
        a1, a2 = encoder(r1, ID_A), encoder(r2, ID_A)  # two encoders claiming one peer id
        b = encoder(rb, ID_B)
        addr = await b.listen()
        a1.start_connection(addr)
        await rb.until(lambda: rb.of("made"))
        a2.start_connection(addr)
        await rb.until(lambda: rb.of("lost"))
        (conn, reason), = rb.of("lost")
        assert reason == "duplicate_peer_id" and not conn.complete
        assert len(rb.of("made")) == 1 and len(b.connections) == 1
        # And b will not open a connection to a peer id it is already connected to.
        assert b.start_connection(("127.0.0.1", 9), ID_A) is None
        for e in (a1, a2, b):
            await e.close()

    run(main)


def test_expected_peer_id_mismatch_is_refused():
    async def main():
        ra, rb = Recorder(), Recorder()
        a, b = encoder(ra, ID_A), encoder(rb, ID_B)
        out = a.start_connection(await b.listen(), b"-XX0000-xxxxxxxxxxxx")
        await ra.until(lambda: ra.of("lost"))
        assert ra.of("lost") == [(out, "peer_id_mismatch")] and not ra.of("made")
        await a.close()
        await b.close()

    run(main)


def test_max_initiate_spares_bounded_deduped_and_started_as_connections_are_lost():
    async def main():
        ra = Recorder()
        a = encoder(ra, ID_A, max_initiate=2)
        peers = []
        for n in range(5):
            rec = Recorder()
            peers.append((encoder(rec, bytes([n]) * 20), rec))
        addrs = [await e.listen() for e, _ in peers]
        most = 0

        def count() -> None:
            nonlocal most
            most = max(most, len(a.connections))

        ra.watch = count
        for addr in addrs:
            a.start_connection(addr)
        a.start_connection(addrs[2])  # already a spare: not queued twice
        count()
        assert len(a.connections) == 2
        assert list(a.spares) == addrs[2:4]  # bounded by max_initiate: the fifth is dropped
        started = []
        while len(started) < 4:
            await ra.until(lambda: len(ra.of("made")) > len(started))
            conn = ra.of("made")[len(started)][0]
            started.append(conn.addr)
            conn.close()
        assert started == addrs[:4] and not a.spares and most == 2
        for _, rec in peers[:4]:
            await rec.until(lambda: rec.of("made"))
        assert not peers[4][1].log  # the address dropped from the full spares queue is never tried
        assert all(reason == "local" for _, reason in ra.of("lost"))
        await a.close()
        for e, _ in peers:
            await e.close()

    run(main)


def test_a_failed_connect_is_lost_and_frees_its_slot_for_a_spare():
    async def main():
        ra, rb = Recorder(), Recorder()
        a, b = encoder(ra, ID_A, max_initiate=1), encoder(rb, ID_B)
        addr, dead = await b.listen(), ("127.0.0.1", _free_port())  # nothing listens at dead
        first = a.start_connection(dead)
        assert a.start_connection(addr) is None and list(a.spares) == [addr]
        await ra.until(lambda: ra.of("made"))
        assert ra.log[0] == ("lost", first, "connect_failed") and not first.complete
        assert ra.of("made")[0][0].id == ID_B and not a.spares
        await a.close()
        await b.close()

    run(main)


def test_keepalives_go_to_complete_connections_every_delay():
    async def main():
        ra, rb = Recorder(), Recorder()
        a = encoder(ra, ID_A, keepalive_delay=0.05)
        b = encoder(rb, ID_B)
        a.start_connection(await b.listen())
        await rb.until(lambda: sum(m.type == "keepalive" for m in rb.messages()) >= 2)
        assert {m.type for m in rb.messages()} == {"keepalive"}
        assert not ra.messages()  # b's delay is long: it sent none
        await a.close()
        await b.close()

    run(main)


def test_length_above_max_len_closes():
    async def main():
        ra, rb = Recorder(), Recorder()
        a, b = encoder(ra, ID_A), encoder(rb, ID_B, max_len=100)
        out = a.start_connection(await b.listen())
        await ra.until(lambda: ra.of("made"))
        out.send_have(1)
        out.send_bitfield(bytes(100))  # length prefix 101
        out.send_have(2)
        await rb.until(lambda: rb.of("lost"))
        assert [r for _, r in rb.of("lost")] == ["oversize"]
        assert rb.messages() == [ev.Have(1)]  # nothing after the oversize message is taken
        await a.close()
        await b.close()

    run(main)


def test_bad_protocol_name_closes():
    async def main():
        rb = Recorder()
        b = encoder(rb, ID_B)
        host, port = await b.listen()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\x13BitTorrent protocoX" + bytes(48))
        await rb.until(lambda: rb.of("lost"))
        assert [r for _, r in rb.of("lost")] == ["bad_protocol"]
        assert await reader.read() == b""  # closed without an answer
        writer.close()
        await b.close()

    run(main)


def test_connection_flushed_fires_when_a_big_write_drains():
    async def main():
        ra, rb = Recorder(), Recorder()
        a, b = encoder(ra, ID_A), encoder(rb, ID_B, max_len=1 << 26)
        out = a.start_connection(await b.listen())
        await ra.until(lambda: ra.of("made"))
        assert out.is_flushed() and not ra.of("flushed")
        out.send_piece(0, 0, bytes(32 << 20))  # far beyond the socket buffers: the transport holds the rest
        assert not out.is_flushed()
        await ra.until(lambda: ra.of("flushed"))
        assert out.is_flushed() and ra.of("flushed") == [(out, None)]
        await rb.until(lambda: rb.messages())
        assert rb.messages() == [ev.Piece(0, 0, 32 << 20)]
        await a.close()
        await b.close()

    run(main)


# ---------------------------------------------------------------- against a live aria2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PIECE_LEN = 32 << 10


def _torrent(tmp: Path) -> tuple[Path, bytes]:
    """A one-file v1 torrent of random data, seeded from tmp/seed: its path and info hash."""
    data = os.urandom(3 * PIECE_LEN + 1000)
    seed = tmp / "seed"
    seed.mkdir()
    (seed / "payload.bin").write_bytes(data)
    pieces = b"".join(hashlib.sha1(data[i : i + PIECE_LEN]).digest() for i in range(0, len(data), PIECE_LEN))
    info = {b"length": len(data), b"name": b"payload.bin", b"piece length": PIECE_LEN, b"pieces": pieces}
    path = tmp / "t.torrent"
    path.write_bytes(fastbencode.bencode({b"info": info}))
    return path, hashlib.sha1(fastbencode.bencode(info)).digest()


@pytest.mark.skipif(shutil.which("aria2c") is None, reason="aria2c not installed")
def test_against_a_live_aria2_seeder(tmp_path):
    torrent, info_hash = _torrent(tmp_path)
    port = _free_port()

    async def main():
        aria2 = await asyncio.create_subprocess_exec(
            "aria2c", "--no-conf=true", f"--dir={tmp_path / 'seed'}", "--seed-ratio=0.0",
            "--bt-seed-unverified=true", "--check-integrity=false", f"--listen-port={port}",
            "--interface=127.0.0.1", "--disable-ipv6=true", "--enable-dht=false", "--enable-dht6=false",
            "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--bt-require-crypto=false",
            "--enable-rpc=false", "--bt-save-metadata=false", "--file-allocation=none",
            "--auto-save-interval=0", "--summary-interval=1", "--console-log-level=notice",
            "--show-console-readout=true", "--bt-stop-timeout=0", str(torrent),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
        try:
            seen = b""
            while b"SEED(" not in seen:  # aria2 says it is seeding once its listener is up
                chunk = await aria2.stdout.read(4096)
                assert chunk, f"aria2c exited: {seen[-500:]!r}"
                seen += chunk
            ra = Recorder()
            # Extension protocol without Fast, so aria2 sends a bitfield rather than have_all.
            a = encoder(ra, ID_A, info_hash=info_hash, reserved=reserved_bytes("extension_protocol"),
                        ext_handshake={b"m": {b"ut_metadata": 2}})
            out = a.start_connection(("127.0.0.1", port))
            await ra.until(lambda: ra.of("made") or ra.of("lost"))
            assert not ra.of("lost"), ra.of("lost")
            assert out.id.startswith(b"A2-")
            await ra.until(lambda: any(m.type == "bitfield" for m in ra.messages()))
            bitfield = next(m for m in ra.messages() if m.type == "bitfield")
            assert bitfield.bits == b"\xf0"  # four pieces, all of them
            assert any(m.type == "extended" and m.ext_id == 0 for m in ra.messages())
            out.send_interested()
            await ra.until(lambda: any(m.type == "unchoke" for m in ra.messages()))
            out.send_request(3, 0, 1000)
            await ra.until(lambda: any(m.type == "piece" for m in ra.messages()))
            assert [m for m in ra.messages() if m.type == "piece"] == [ev.Piece(3, 0, 1000)]
            assert not any(m.type == "finding" for m in ra.messages())
            assert not ra.of("lost")
            await a.close()
        finally:
            aria2.terminate()
            await aria2.wait()

    run(main, timeout=60)
