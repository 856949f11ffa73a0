"""The live-client helpers the replayer's acceptance tests stand on, checked against the real clients:
a partial libtorrent seed serves exactly its pieces, full seeds (libtorrent and aria2) complete a
libtorrent download, and LoopbackWatch counts connections by what went over lo."""
from __future__ import annotations

import hashlib
import socket

import fastbencode
import pytest

from live import (Aria2Seeder, LiveError, LoopbackWatch, LtPeer, free_port, make_torrent, needs_aria2,
                  needs_libtorrent, needs_tcpdump)

PIECE = 32 << 10
SIZE = 4 * PIECE - 1000  # four pieces, the last one short
TIMEOUT = 20.0


@pytest.fixture
def torrent(tmp_path):
    return make_torrent(tmp_path, SIZE, PIECE)


def test_make_torrent_describes_its_payload(tmp_path):
    torrent, payload = make_torrent(tmp_path, SIZE, PIECE, name="data.bin")
    assert (torrent, payload) == (tmp_path / "data.torrent", tmp_path / "seed" / "data.bin")
    data = payload.read_bytes()
    info = fastbencode.bdecode(torrent.read_bytes())[b"info"]
    assert len(data) == SIZE
    assert (info[b"name"], info[b"length"], info[b"piece length"]) == (b"data.bin", SIZE, PIECE)
    assert b"announce" not in fastbencode.bdecode(torrent.read_bytes())
    assert info[b"pieces"] == b"".join(hashlib.sha1(data[i:i + PIECE]).digest() for i in range(0, SIZE, PIECE))


@needs_libtorrent
def test_partial_seed_serves_exactly_its_pieces(tmp_path, torrent):
    path, payload = torrent
    with LtPeer(path, tmp_path / "partial", seed=True, have={0, 2}) as seeder, \
            LtPeer(path, tmp_path / "download", seed=False) as downloader:
        assert seeder.pieces() == {0, 2}
        assert not seeder.status().is_seeding
        downloader.connect("127.0.0.1", seeder.port)
        downloader.wait_until(lambda s: s.num_pieces == 2, TIMEOUT, "get two pieces")
        assert downloader.pieces() == {0, 2}
        # The seed said so itself: its bitfield as the downloader holds it.
        (info,) = downloader.handle.get_peer_info()
        assert list(info.pieces) == [True, False, True, False]
        assert [p.address[1] for p in downloader.peers_seen()] == [seeder.port]
    data = payload.read_bytes()
    got = (tmp_path / "download" / payload.name).read_bytes()
    assert got[:PIECE] == data[:PIECE] and got[2 * PIECE:3 * PIECE] == data[2 * PIECE:3 * PIECE]


@needs_libtorrent
def test_partial_seed_refuses_pieces_outside_the_torrent(tmp_path, torrent):
    with pytest.raises(ValueError, match="within the torrent's 4 pieces"):
        LtPeer(torrent[0], tmp_path / "partial", seed=True, have={1, 4})


@needs_libtorrent
@needs_tcpdump
def test_libtorrent_seed_to_libtorrent_downloader_on_one_connection(tmp_path, torrent):
    path, payload = torrent
    with LtPeer(path, payload.parent, seed=True) as seeder:
        assert seeder.status().is_seeding
        with LoopbackWatch([seeder.port], tmp_path / "w.pcap") as watch:
            with LtPeer(path, tmp_path / "download", seed=False) as dl:
                dl.connect("127.0.0.1", seeder.port)
                dl.wait_complete(TIMEOUT)
                assert dl.pieces() == {0, 1, 2, 3}
                (peer,) = dl.peers_seen()
                assert peer.address == ("127.0.0.1", seeder.port) and peer.client.startswith("libtorrent")
            # Both are seeds now and the session is gone: the connection has ended before the watch stops.
    (conn,) = watch.connections()
    assert conn.server_port == seeder.port and conn.end_index is not None
    assert (tmp_path / "download" / payload.name).read_bytes() == payload.read_bytes()


@needs_libtorrent
def test_a_port_asked_for_is_the_port_used_and_a_taken_one_is_refused(tmp_path, torrent):
    port = free_port()
    with LtPeer(torrent[0], torrent[1].parent, port=port, seed=True) as seeder:
        assert seeder.port == port
        with pytest.raises(LiveError, match=f"port {port} is taken"):
            LtPeer(torrent[0], tmp_path / "download", port=port, seed=False)


@needs_libtorrent
def test_wait_complete_times_out_with_the_status(tmp_path, torrent):
    with LtPeer(torrent[0], tmp_path / "download", seed=False) as dl:
        with pytest.raises(LiveError, match=r"complete the download within 0.2 s: state .*pieces \[\] of 4"):
            dl.wait_complete(0.2)


@needs_libtorrent
@needs_aria2
def test_aria2_seed_to_libtorrent_downloader(tmp_path, torrent):
    path, payload = torrent
    with Aria2Seeder(path, payload.parent) as seeder, LtPeer(path, tmp_path / "download", seed=False) as dl:
        dl.connect("127.0.0.1", seeder.port)
        dl.wait_complete(TIMEOUT)
        (peer,) = dl.peers_seen()
        assert peer.address == ("127.0.0.1", seeder.port) and peer.peer_id.startswith(b"A2-")
        assert peer.client.startswith("aria2")
    assert (tmp_path / "download" / payload.name).read_bytes() == payload.read_bytes()


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0), backlog=8) as server:
        yield server.getsockname()[1]


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port))


@needs_tcpdump
def test_watch_sees_a_connection_closed_before_the_next_opens(tmp_path, listener):
    with LoopbackWatch([listener], tmp_path / "w.pcap") as watch:
        a, b = _connect(listener), _connect(listener)
        ports = [a.getsockname()[1], b.getsockname()[1]]
        b.close()
        c = _connect(listener)
        ports.append(c.getsockname()[1])
        a.close()
        c.close()
    conns = watch.connections()
    assert [(x.server_port, x.client_port) for x in conns] == [(listener, p) for p in ports]
    assert all(x.end_index is not None for x in conns)
    first, second, third = conns
    assert first.syn_index < second.syn_index < second.end_index < third.syn_index < first.end_index
    assert watch.max_concurrent() == 2


@needs_tcpdump
def test_watch_sees_three_at_once_and_one_never_closed(tmp_path, listener):
    other = free_port()  # watched too, but nothing goes there
    with LoopbackWatch([other, listener], tmp_path / "w.pcap") as watch:
        socks = [_connect(listener) for _ in range(3)]
        ports = [s.getsockname()[1] for s in socks]
        socks[0].close()
        socks[1].close()
    socks[2].close()  # after the capture stopped: never closed, as far as it knows
    conns = watch.connections()
    assert [(x.server_port, x.client_port) for x in conns] == [(listener, p) for p in ports]
    assert [x.end_index is None for x in conns] == [False, False, True]
    assert conns[2].syn_index < conns[0].end_index
    assert watch.max_concurrent() == 3
