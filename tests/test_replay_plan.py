"""The replay's plan: what a captured side said and sent, and the block bytes it carried."""
from __future__ import annotations

import hashlib
import os

import pytest

from conftest import TcpConversation, bt_handshake, bt_msg, bt_piece, bt_request, torrent_for
from inspector.extract import read_torrent
from replay.plan import BlockStore, PlanError, build

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent
ARIA2 = REPO / "captures" / "aria2-to-libtorrent.pcap"
MSE = REPO / "captures" / "libtorrent-mse.pcap"


def test_block_store_reads_any_range_across_blocks_and_keeps_the_first_copy():
    store = BlockStore()
    data = os.urandom(3 * 100)
    assert store.add(7, 100, data[100:200]) and store.add(7, 0, data[:100])
    assert store.covered(7) == 200
    assert store.read(7, 50, 120) == data[50:170]
    assert store.read(7, 150, 100) is None  # 200..250 never arrived
    assert not store.add(7, 150, b"x" * 100)  # overlaps what is held
    assert store.read(7, 0, 200) == data[:200]
    assert store.add(7, 250, data[250:]) and store.covered(7) == 200
    assert store.read(8, 0, 1) is None and store.pieces == [7] and store.nbytes == 250
    store.close()


def test_plan_of_the_downloading_side_asks_every_block_of_the_torrent():
    torrent = read_torrent(torrent_for(ARIA2))
    plan = build(str(ARIA2), 1, "a", torrent)
    try:
        blocks = {(i, b, 16384) for i in range(len(torrent.hashes)) for b in range(0, torrent.piece_length, 16384)}
        assert set(plan.requested) == blocks and len(plan.requested) == len(blocks)
        assert not plan.served and plan.me.client.startswith("libtorrent") and plan.them.client.startswith("aria2")
        assert plan.me.info_hash == torrent.info_hash and "fast" in plan.me.extensions
        assert plan.ext_handshake()[b"m"][b"ut_metadata"] == plan.me.extension["m"]["ut_metadata"]
        # Offsets are from the handshakes, in captured order, and the script holds no handshake.
        offsets = [s.offset for s in plan.steps]
        assert offsets == sorted(offsets) and offsets[0] >= 0
        assert {s.event.type for s in plan.steps} >= {"interested", "request", "have"}
        assert "handshake" not in {s.event.type for s in plan.steps}
        assert plan.pipeline > 1  # libtorrent pipelines its requests
        # Every piece hashed from the capture's bytes: what a seeder would announce.
        assert plan.have == list(range(len(torrent.hashes)))
        for i in (0, len(torrent.hashes) - 1):
            piece = plan.store.read(i, 0, torrent.piece_size(i))
            assert hashlib.sha1(piece).digest() == torrent.hashes[i]
    finally:
        plan.close()


def test_plan_without_a_torrent_infers_the_piece_length_and_count():
    torrent = read_torrent(torrent_for(ARIA2))
    plan = build(str(ARIA2), 1, "b")
    try:
        assert plan.piece_length == torrent.piece_length and plan.piece_count == len(torrent.hashes)
        assert plan.have == list(range(len(torrent.hashes)))
        assert len(plan.served) == 64 and not plan.requested
    finally:
        plan.close()


def test_a_piece_missing_a_block_is_not_announced(tmp_path):
    conv = TcpConversation().open()
    ih = b"\x22" * 20
    conv.send(0, bt_handshake(ih, b"-LT2110-aaaaaaaaaaaa"))
    conv.send(1, bt_handshake(ih, b"-TR3000-bbbbbbbbbbbb"))
    for i in range(3):
        for b in (0, 1000):
            conv.send(0, bt_request(i, b, 1000))
    for i in range(3):
        for b in (0, 1000):
            if (i, b) != (1, 1000):
                conv.send(1, bt_piece(i, b, bytes([i]) * 1000))
    plan = build(str(conv.write(tmp_path / "c.pcap")), 1, "b")
    try:
        assert plan.piece_length == 2000 and plan.have == [0, 2]
        assert plan.served == [(0, 0, 1000), (0, 1000, 1000), (1, 0, 1000), (2, 0, 1000), (2, 1000, 1000)]
    finally:
        plan.close()


def test_no_such_session_lists_the_ones_there():
    with pytest.raises(PlanError, match=r"no session 9 in .*its sessions: 1\)"):
        build(str(ARIA2), 9, "a")


def test_an_encrypted_session_is_refused():
    with pytest.raises(PlanError, match="session 1 is encrypted"):
        build(str(MSE), 1, "a")


def test_a_side_without_its_handshake_is_refused(tmp_path):
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(b"\x33" * 20))
    conv.send(1, bt_msg(1))  # b's handshake was never captured: it starts mid-stream
    conv.send(1, bt_msg(1))
    path = conv.write(tmp_path / "c.pcap")
    build(str(path), 1, "a").close()
    with pytest.raises(PlanError, match="side b of session 1 has no captured handshake"):
        build(str(path), 1, "b")


def test_a_torrent_of_another_info_hash_is_refused():
    other = REPO / "captures" / "transmission-to-libtorrent.torrent"
    with pytest.raises(PlanError, match="is not the session's"):
        build(str(ARIA2), 1, "a", read_torrent(other))


def test_differences_name_the_client_extensions_counts_order_and_blocks():
    from replay.compare import differences
    from replay.record import ConnLog

    plan = build(str(ARIA2), 1, "a")  # the live peer stands where aria2 stood
    try:
        hs = {"dir": "received", "type": "handshake", "peer_id": b"-TR3000-xxxxxxxxxxxx".hex(),
              "reserved": bytes(8).hex()}
        ext = {"dir": "received", "type": "extended", "ext_id": 0, "data": {"m": {"ut_pex": 1}}}
        pieces = [{"dir": "received", "type": "piece", "index": i, "begin": b, "length": 16384}
                  for i in range(16) for b in range(0, 65536, 16384) if (i, b) != (15, 49152)]
        extra = {"dir": "received", "type": "piece", "index": 0, "begin": 1, "length": 16384}
        log = ConnLog("127.0.0.1:1", "127.0.0.1:2", True, 0.0,
                      messages=[hs, ext, {"dir": "received", "type": "have_all"},
                                {"dir": "received", "type": "unchoke"}, *pieces, extra,
                                {"dir": "sent", "type": "interested"}])
        found = {d["what"]: d for d in differences(plan, log)}
        assert found["client"]["captured"].startswith("aria2") and found["client"]["live"].startswith("Transmission")
        assert found["extensions"] == {"peer": "127.0.0.1:1", "what": "extensions",
                                       "captured": ["extension_protocol", "fast"], "live": []}
        assert found["extension_names"]["captured"] == ["ut_metadata"] and found["extension_names"]["live"] == ["ut_pex"]
        assert found["count:allowed_fast"]["live"] == 0 and found["count:allowed_fast"]["captured"] == 10
        assert "count:piece" not in found  # 63 + 1 extra = 64, as captured
        order = found["order"]  # both begin with have_all; then aria2 allowed fast pieces, this peer did not
        assert order["captured"][0] == "allowed_fast" and order["live"][:2] == ["unchoke", "piece"]
        assert order["detail"].endswith("at step 2")
        assert found["pieces_missing"]["captured"] == 1 and "15/49152+16384" in found["pieces_missing"]["detail"]
        assert found["pieces_extra"]["live"] == 1 and "0/1+16384" in found["pieces_extra"]["detail"]
        assert "requests_missing" not in found and "count:interested" not in found  # ours are not theirs
    finally:
        plan.close()


def test_mse_that_selected_plaintext_is_planned_from_its_messages():
    """The nDPI capture negotiates MSE, then speaks plaintext: its handshakes and messages were
    decoded, so it can be replayed; RC4-encrypted sessions (above) cannot."""
    from conftest import wild

    path = str(wild("ndpi-mse-then-plaintext.pcapng"))
    plan = build(path, 1, "b")  # the answering side's handshake went in plaintext after the key exchange
    try:
        assert plan.me.info_hash is not None and plan.me.peer_id is not None and plan.steps
    finally:
        plan.close()
    with pytest.raises(PlanError, match="side a of session 1 has no captured handshake"):
        build(path, 1, "a")  # the opener's went inside the encrypted part (MSE's initial payload)
