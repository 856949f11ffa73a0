"""``btshark extract``: a torrent's files rebuilt from a capture, each piece checked against
the .torrent's SHA-1s (read here with fastbencode, independently of btshark)."""
from __future__ import annotations

import hashlib
import os

import pytest

import wirebuild as wb
from conftest import CAPTURES, run_btshark, torrent_info
from inspector import events as ev
from inspector.parser import PeerWireParser

PLAIN = ["aria2-to-libtorrent", "transmission-to-libtorrent", "libtorrent-to-libtorrent", "libtorrent-utp"]


@pytest.mark.parametrize("stem", PLAIN)
def test_extract_rebuilds_the_payload_bit_for_bit(stem, tmp_path):
    torrent = CAPTURES / f"{stem}.torrent"
    proc = run_btshark("extract", CAPTURES / f"{stem}.pcap", "--torrent", torrent, "-o", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = torrent_info(torrent)
    data = (tmp_path / "payload.bin").read_bytes()
    assert len(data) == info.length
    for index, digest in enumerate(info.pieces):
        assert hashlib.sha1(data[index * info.piece_length : (index + 1) * info.piece_length]).digest() == digest
    assert os.listdir(tmp_path) == ["payload.bin"]  # the work file is gone


def test_extract_says_which_pieces_a_lossy_capture_lacks(tmp_path):
    twins = CAPTURES / "twins"
    torrent = twins / "aria2-to-libtorrent.torrent"
    proc = run_btshark("extract", twins / "aria2-to-libtorrent-lossy.pcap", "--torrent", torrent, "-o", tmp_path)
    out = proc.stdout.decode()
    assert proc.returncode == 1
    assert "not in the capture: pieces" in out and "not written (pieces missing): payload.bin" in out
    assert not (tmp_path / "payload.bin").exists()  # never a file with holes filled in
    whole = run_btshark("extract", twins / "aria2-to-libtorrent.pcap", "--torrent", torrent, "-o", tmp_path / "w")
    assert whole.returncode == 0 and whole.stdout.decode().startswith(f"{len(torrent_info(torrent).pieces)} of ")


def test_extract_encrypted_capture_has_no_piece(tmp_path):
    proc = run_btshark("extract", CAPTURES / "libtorrent-mse.pcap", "--torrent", CAPTURES / "libtorrent-mse.torrent",
                       "-o", tmp_path)
    assert proc.returncode == 1 and proc.stdout.decode().startswith("0 of 16 pieces verified")


@pytest.mark.parametrize("content", [b"not a torrent", b"d4:infod4:name1:xee", b""])
def test_extract_bad_torrent_is_one_line(content, tmp_path):
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(content)
    proc = run_btshark("extract", CAPTURES / "aria2-to-libtorrent.pcap", "--torrent", bad, "-o", tmp_path / "o")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_extract_refuses_a_path_that_leaves_the_folder(tmp_path):
    import fastbencode

    evil = tmp_path / "evil.torrent"
    evil.write_bytes(fastbencode.bencode({b"info": {b"name": b"x", b"piece length": 16384, b"pieces": bytes(20),
                                                   b"files": [{b"path": [b"..", b"etc"], b"length": 1}]}}))
    proc = run_btshark("extract", CAPTURES / "aria2-to-libtorrent.pcap", "--torrent", evil, "-o", tmp_path / "o")
    assert proc.returncode == 2 and "unsafe path" in proc.stderr.decode()


def test_parser_keeps_payloads_only_when_asked():
    block = os.urandom(3000)
    data = wb.piece(1, 0, block) + wb.have(2)
    kept = PeerWireParser(handshake=False, keep_payload=True)
    events = []
    for i in range(0, len(data), 700):
        events += kept.feed(data[i : i + 700])
    assert events[0].data == block and events[1] == ev.Have(2)
    counted = PeerWireParser(handshake=False)
    assert counted.feed(data)[0].data is None
    holed = PeerWireParser(handshake=False, keep_payload=True)
    events = holed.feed(data[:100]) + holed.gap(50) + holed.feed(data[150:])
    piece = next(e for e in events if e.type == "piece")
    assert piece.missing == 50 and piece.data is None  # a block with a hole is not handed out
