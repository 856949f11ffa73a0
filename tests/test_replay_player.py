"""The player's protocol rules, against scripted peers on loopback sockets.

The scripted peer is the replay's own Encoder with a connecter written for each
case, so every message the replayer sends is seen exactly as a live peer sees it.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable


from conftest import torrent_for
from inspector import events as ev
from inspector.extract import read_torrent
from inspector.wire import reserved_bytes
from replay.encoder import Connection, Encoder
from replay.plan import Plan, build
from replay.player import Player
from replay.record import Recorder
from replay.run import Options, _play

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent
ARIA2 = REPO / "captures" / "aria2-to-libtorrent.pcap"
PEER_ID = b"-XX0001-scriptedpeer"
FAST = reserved_bytes("fast", "extension_protocol")
PLAIN = reserved_bytes("extension_protocol")


class Scripted:
    """A peer whose answers each test writes: ``on`` maps a message type to a reaction."""

    def __init__(self, plan: Plan, on: dict[str, Callable[[Scripted, Connection, ev.Event], None]],
                 made: Callable[[Scripted, Connection], None] | None = None) -> None:
        self.plan, self.on, self.made = plan, on, made
        self.got: list[ev.Event] = []
        self.lost: list[str] = []
        self.requests = 0

    def connection_made(self, conn: Connection) -> None:
        if self.made is not None:
            self.made(self, conn)

    def got_message(self, conn: Connection, event: ev.Event) -> None:
        self.got.append(event)
        self.requests += event.type == "request"
        reaction = self.on.get(event.type)
        if reaction is not None:
            reaction(self, conn, event)

    def connection_lost(self, conn: Connection, reason: str) -> None:
        self.lost.append(reason)

    def connection_flushed(self, conn: Connection) -> None:
        pass

    def serve(self, conn: Connection, e: ev.Request) -> None:
        conn.send_piece(e.index, e.begin, self.plan.store.read(e.index, e.begin, e.length))


def unchoke(peer: Scripted, conn: Connection, e: ev.Event) -> None:
    conn.send_unchoke()


def serve(peer: Scripted, conn: Connection, e: ev.Event) -> None:
    peer.serve(conn, e)


def replay(side: str, peer: Callable[[Plan], Scripted], *, reserved: bytes = FAST, listen: bool = False,
           timeout: float = 5.0) -> tuple[Player, Scripted, Recorder]:
    """Replay ``side`` of the aria2 sample against one scripted peer; both in this loop."""
    plan = build(str(ARIA2), 1, side, read_torrent(torrent_for(ARIA2)))

    async def main():
        scripted = peer(plan)
        them = Encoder(scripted, PEER_ID, plan.info_hash, max_len=1 << 20, keepalive_delay=60,
                       reserved=reserved, ext_handshake={b"m": {}})
        rec = Recorder()
        player = Player(plan, speed=None)
        if listen:
            opts = Options(str(ARIA2), 1, side, listen=("127.0.0.1", 0), timeout=timeout)
            task = asyncio.ensure_future(_play(opts, plan, player, rec))
            while player.encoder is None or not player.encoder.listening:
                await asyncio.sleep(0)  # until the listener is up (no time passes: a yield to the loop)
            host, port = player.encoder._servers[0].sockets[0].getsockname()[:2]
            them.start_connection((host, port))
            await task
        else:
            host, port = await them.listen()
            opts = Options(str(ARIA2), 1, side, connect=[(host, port)], timeout=timeout)
            await _play(opts, plan, player, rec)
        await them.close()
        player.close()
        return player, scripted, rec

    return asyncio.run(asyncio.wait_for(main(), 30))  # the plan's spill file goes with the plan


def have_all(peer: Scripted, conn: Connection) -> None:
    conn.send_have_all()


def first_half(peer: Scripted, conn: Connection) -> None:
    conn.send_bitfield(b"\xff\x00")  # pieces 0-7 of 16


def requests(peer: Scripted) -> list[ev.Event]:
    return [e for e in peer.got if e.type == "request"]


def test_the_downloader_gets_every_block_asks_only_after_the_unchoke_and_keeps_the_captured_pipeline():
    held: list[ev.Request] = []
    most = [0]

    def hold(peer: Scripted, conn: Connection, e: ev.Request) -> None:
        # Answer only once as many requests are waiting as the captured side kept outstanding,
        # so a replayer that asked for more would be seen doing it.
        held.append(e)
        most[0] = max(most[0], len(held))
        served = sum(1 for x in peer.got if x.type == "request") - len(held)
        if len(held) >= min(peer.plan.pipeline, 64 - served):
            for r in held:
                peer.serve(conn, r)
            held.clear()

    player, peer, rec = replay("a", lambda plan: Scripted(plan, {"interested": unchoke, "request": hold}, have_all))
    assert player.failure is None and len(player.received) == 64
    assert sorted(player.tally.verified) == list(range(16)) and not player.tally.failed
    assert {(e.index, e.begin, e.length) for e in requests(peer)} == set(player.plan.requested)
    assert peer.requests == 64 and most[0] == player.plan.pipeline
    log = [(m["dir"], m["type"]) for m in rec.logs[0].messages]
    assert log.index(("received", "unchoke")) < log.index(("sent", "request"))
    # The captured side announced nothing (have_none with Fast) and said have for each piece it verified.
    types = [e.type for e in peer.got]
    assert types[:2] == ["extended", "have_none"] and types.count("have") == 16


def test_no_request_goes_to_a_peer_that_lacks_the_piece_and_the_gap_is_named():
    player, peer, _ = replay("a", lambda plan: Scripted(plan, {"interested": unchoke, "request": serve}, first_half))
    assert requests(peer) and all(e.index < 8 for e in requests(peer))
    assert len(player.received) == 32
    assert player.failure == "no live peer has the 32 block(s) left (pieces 8-15)"


def test_a_choke_without_fast_drops_the_requests_and_they_are_asked_again():
    def on_request(peer: Scripted, conn: Connection, e: ev.Request) -> None:
        if peer.requests == 3 and not peer.on.get("choked"):
            peer.on["choked"] = True
            conn.send_choke()  # the outstanding requests are gone (no Fast)
            conn.send_unchoke()
            return
        peer.serve(conn, e)

    player, peer, _ = replay("a", lambda plan: Scripted(plan, {"interested": unchoke, "request": on_request},
                                                        have_all), reserved=PLAIN)
    assert player.failure is None and len(player.received) == 64
    asked = [(e.index, e.begin) for e in requests(peer)]
    assert len(asked) > 64 and asked.count(asked[2]) == 2  # the third request was dropped and asked again


def test_a_rejected_request_is_asked_again():
    def on_request(peer: Scripted, conn: Connection, e: ev.Request) -> None:
        if (e.index, e.begin) == (5, 16384) and not peer.on.get("rejected"):
            peer.on["rejected"] = True
            conn.send_reject(e.index, e.begin, e.length)
            return
        peer.serve(conn, e)

    player, peer, _ = replay("a", lambda plan: Scripted(plan, {"interested": unchoke, "request": on_request},
                                                        have_all))
    assert player.failure is None and len(player.received) == 64
    assert [(e.index, e.begin) for e in requests(peer)].count((5, 16384)) == 2


def test_a_block_unlike_the_torrent_fails_its_piece():
    def corrupt(peer: Scripted, conn: Connection, e: ev.Request) -> None:
        data = peer.plan.store.read(e.index, e.begin, e.length)
        conn.send_piece(e.index, e.begin, bytes(len(data)) if e.index == 3 else data)

    player, _, _ = replay("a", lambda plan: Scripted(plan, {"interested": unchoke, "request": corrupt}, have_all))
    assert player.tally.failed == [3] and 3 not in player.tally.verified and len(player.tally.verified) == 15


def _downloader(asks: list[tuple[int, int, int]], early: tuple = (), served: int = 1):
    """A peer that asks the replayed seeder for ``asks`` once it is unchoked (``early`` before it is
    interested), and says have for every piece once ``served`` blocks came."""

    def made(peer: Scripted, conn: Connection) -> None:
        for block in early:
            conn.send_request(*block)  # while still choked
        conn.send_interested()

    def unchoked(peer: Scripted, conn: Connection, e: ev.Event) -> None:
        for block in asks:
            conn.send_request(*block)

    def piece(peer: Scripted, conn: Connection, e: ev.Piece) -> None:
        if sum(x.type == "piece" for x in peer.got) == served:
            for i in range(16):
                conn.send_have(i)

    return lambda plan: Scripted(plan, {"unchoke": unchoked, "piece": piece}, made)


def test_the_seeder_announces_unchokes_serves_the_captured_bytes_and_rejects_what_it_lacks():
    asks = [(0, 0, 16384), (15, 49152, 16384), (99, 0, 16384)]
    # Before the unchoke: piece 1 is refused, piece 3 is one the captured aria2 allowed fast.
    early = ((1, 0, 16384), (3, 0, 16384))
    player, peer, _ = replay("b", _downloader(asks, early, served=3), listen=True)
    types = [e.type for e in peer.got]
    assert types[:2] == ["extended", "have_all"]  # Fast, and all 16 pieces in the capture
    fast = [e.index for e in peer.got if e.type == "allowed_fast"]
    assert 3 in fast and 1 not in fast and 0 not in fast
    assert types.index("unchoke") > types.index("have_all")
    pieces = [e for e in peer.got if e.type == "piece"]
    assert [(e.index, e.begin) for e in pieces] == [(3, 0), (0, 0), (15, 49152)]
    for e in pieces:
        assert e.data == player.plan.store.read(e.index, e.begin, e.length)
    assert [(e.index, e.begin) for e in peer.got if e.type == "reject"] == [(1, 0), (99, 0)]
    assert player.failure is None and player.tally.served == 3


def test_without_fast_the_seeder_sends_a_bitfield_and_ignores_what_it_cannot_serve():
    asks = [(2, 0, 16384), (99, 0, 16384)]
    player, peer, _ = replay("b", _downloader(asks), listen=True, reserved=PLAIN)
    types = [e.type for e in peer.got]
    bitfield = next(e for e in peer.got if e.type == "bitfield")
    assert bitfield.bits == b"\xff\xff" and "reject" not in types
    assert [(e.index, e.begin) for e in peer.got if e.type == "piece"] == [(2, 0)]
    assert player.tally.ignored == 1 and player.failure is None
