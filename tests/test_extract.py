"""``btshark extract``: a torrent's files rebuilt from a capture, each piece checked against the
.torrent's hashes. What is expected comes from outside btshark: v1 facts read with fastbencode,
v2 and hybrid torrents made, laid out and hashed by libtorrent, transfers by libtorrent over lo."""
from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import fastbencode
import pytest

import wirebuild as wb
from conftest import CAPTURES, TcpConversation, bt_handshake, bt_piece, run_btshark, torrent_info, write_packets
from inspector import events as ev
from inspector import merkle
from inspector.parser import PeerWireParser
from inspector.extract import extract, read_torrent
from live import BLOCK, FILES, capture_transfer, make_torrent, needs_libtorrent, needs_tcpdump

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
    assert "not in the capture: pieces" in out and "not written (pieces missing or failing): payload.bin" in out
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


# --------------------------------------------------------------------------- v2 (BEP 52) and hybrid torrents



@needs_libtorrent
@pytest.mark.parametrize("piece_length", [16 << 10, 64 << 10])
def test_merkle_hashes_are_libtorrents(tmp_path, piece_length):
    import libtorrent as lt

    folder = tmp_path / "files"
    folder.mkdir()
    sizes = [1, BLOCK, BLOCK + 1, piece_length, piece_length + 1, 2 * piece_length + 1, 5 * piece_length + 100]
    blobs = {f"f{n}.bin": os.urandom(size) for n, size in enumerate(sizes)}
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    made = lt.create_torrent(lt.list_files(str(folder)), piece_length, lt.create_torrent.v2_only)
    lt.set_piece_hashes(made, str(tmp_path))
    meta = fastbencode.bdecode(lt.bencode(made.generate()))
    tree, layers = meta[b"info"][b"file tree"], meta[b"piece layers"]
    for name, blob in blobs.items():
        root = tree[name.encode()][b""][b"pieces root"]
        if len(blob) <= piece_length:
            assert root not in layers and merkle.small_file_root(blob) == root, name
            continue
        layer = [layers[root][i : i + 32] for i in range(0, len(layers[root]), 32)]
        mine = [merkle.piece_hash(blob[i : i + piece_length], piece_length) for i in range(0, len(blob), piece_length)]
        assert mine == layer, name
        assert merkle.layer_root(layer, piece_length) == root, name


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by its path there."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _capture(path: Path, sessions: list[tuple[bytes, list[tuple[int, int, bytes]]]]) -> list[list[int]]:
    """One TCP session after another, each opened with handshakes naming its info hash, then the
    seeding side's blocks; returns, per session, the frame number that completes each block."""
    packets, frames = [], []
    for n, (info_hash, blocks) in enumerate(sessions):
        conv = TcpConversation(a=("10.0.0.1", 40000 + n), t0=1_700_000_000.0 + 10 * n).open()
        conv.send(0, bt_handshake(info_hash, peer_id=b"-XX0001-down%08d" % n))
        conv.send(1, bt_handshake(info_hash, peer_id=b"-XX0001-seed%08d" % n))
        ends = []
        for index, begin, data in blocks:
            conv.send(1, bt_piece(index, begin, data))
            ends.append(len(packets) + len(conv.packets))
        conv.close()
        packets += conv.packets
        frames.append(ends)
    write_packets(path, packets)
    return frames


def _extract(capture: Path, torrent: Path, out: Path) -> tuple[int, str]:
    proc = run_btshark("extract", capture, "--torrent", torrent, "-o", out)
    assert proc.stderr == b"", proc.stderr
    return proc.returncode, proc.stdout.decode()


def _flip(data: bytes, at: int = 100) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@needs_libtorrent
@needs_tcpdump
@pytest.mark.parametrize("kind", ["v2", "hybrid"])
def test_extract_a_live_v2_or_hybrid_transfer_bit_for_bit(made, kind, tmp_path):
    m = made[kind]
    pcap = capture_transfer(m.torrent, m.seed, tmp_path / "transfer.pcap", tmp_path / "down")
    code, out = _extract(pcap, m.torrent, tmp_path / "out")
    assert code == 0, out
    assert out.startswith(f"{m.pieces} of {m.pieces} pieces verified; {len(FILES)} file(s) written")
    assert _files(tmp_path / "out") == _files(m.seed)  # bit for bit, and no pad file, no work file


@needs_libtorrent
@pytest.mark.parametrize("kind", ["v2", "hybrid"])
def test_extract_says_which_pieces_a_v2_capture_lacks(made, kind, tmp_path):
    """Piece 1 not captured at all, piece 4 without its second block; blocks stop at the end of
    each file (a hybrid torrent's pad bytes are not captured: they count as zeros)."""
    m = made[kind]
    kept = [b for b in m.blocks if b[0] != 1 and b[:2] != (4, BLOCK)]
    assert len(kept) == len(m.blocks) - 2  # piece 1 had one block of file data, piece 4 two
    _capture(tmp_path / "some.pcap", [(m.v2_hash, kept)])
    code, out = _extract(tmp_path / "some.pcap", m.torrent, tmp_path / "out")
    assert code == 1
    assert out.startswith(f"{m.pieces - 2} of {m.pieces} pieces verified; 1 file(s) written")
    assert "not in the capture: pieces 1, 4\n" in out
    lacking = {m.piece_files[1], m.piece_files[4]}
    assert f"not written (pieces missing or failing): {', '.join(sorted(lacking))}" in out
    whole = set(FILES) - {p.removeprefix("multi/") for p in lacking}
    assert _files(tmp_path / "out") == {f"multi/{p}": (m.seed / "multi" / p).read_bytes() for p in whole}


@needs_libtorrent
@pytest.mark.parametrize("case", ["first-right", "later-right", "none-right"])
def test_extract_reports_a_block_seen_twice_with_different_bytes(made, case, tmp_path):
    m = made["v2"]
    place = (0, BLOCK)  # piece 0's second block
    good = next(b for b in m.blocks if b[:2] == place)
    wrong, other = (*place, _flip(good[2])), (*place, _flip(good[2], 5000))
    first, later = {"first-right": (good, wrong), "later-right": (wrong, good), "none-right": (wrong, other)}[case]
    frames = _capture(tmp_path / "twice.pcap", [(m.v2_hash, [first if b[:2] == place else b for b in m.blocks]),
                                                 (m.v2_hash, [later])])
    code, out = _extract(tmp_path / "twice.pcap", m.torrent, tmp_path / "out")
    earlier = f"frames {frames[0][0]}-{frames[0][1]}"  # the blocks of piece 0 in the first session
    assert (f"block seen twice with different bytes: piece 0 begin {BLOCK} length {BLOCK} in frame {frames[1][0]} "
            f"(the piece's earlier bytes: {earlier})\n") in out
    written = _files(tmp_path / "out")
    if case == "none-right":
        assert code == 1 and "captured but failing their hash: pieces 0\n" in out
        assert "multi/a.bin" not in written and "multi/c.bin" in written
    else:  # the version that hashes right is the one written
        assert code == 0, out
        assert written == _files(m.seed)


@needs_libtorrent
def test_extract_takes_identical_overlapping_blocks_quietly(made, tmp_path):
    """The same bytes again (a retransmission, a second peer), even straddling blocks, is no conflict."""
    m = made["v2"]
    data = (m.seed / "multi" / "a.bin").read_bytes()
    straddle = (0, BLOCK // 2, data[BLOCK // 2 : BLOCK // 2 + BLOCK])
    _capture(tmp_path / "dup.pcap", [(m.v2_hash, list(reversed(m.blocks))), (m.v2_hash, [straddle, m.blocks[0]])])
    code, out = _extract(tmp_path / "dup.pcap", m.torrent, tmp_path / "out")
    assert code == 0 and "seen twice" not in out, out
    assert _files(tmp_path / "out") == _files(m.seed)


@needs_libtorrent
def test_extract_hybrid_takes_sessions_named_by_either_info_hash(made, tmp_path):
    """Half the blocks under the v1 info hash, half under the truncated v2 one: both count; a
    session of another torrent sending garbage for the same places does not."""
    m = made["hybrid"]
    garbage = [(i, b, os.urandom(len(d))) for i, b, d in m.blocks]
    _capture(tmp_path / "both.pcap", [(m.v1_hash, list(m.blocks[::2])), (bytes(20), garbage),
                                      (m.v2_hash, list(m.blocks[1::2]))])
    code, out = _extract(tmp_path / "both.pcap", m.torrent, tmp_path / "out")
    assert code == 0 and "seen twice" not in out, out
    assert _files(tmp_path / "out") == _files(m.seed)


@needs_libtorrent
@pytest.mark.parametrize("kind", ["v2", "hybrid"])
def test_extract_hybrid_fails_a_piece_v1_and_v2_disagree_on(made, kind, tmp_path):
    """Piece 1 ends a.bin: its block sent with non-zero bytes where the padding is. v2 hashes the
    file's bytes only and passes; v1 hashes the whole piece and fails."""
    m = made[kind]
    index, begin, data = next(b for b in m.blocks if b[0] == 1)
    padded = (index, begin, data + b"\x01" * (BLOCK - len(data)))
    _capture(tmp_path / "pad.pcap", [(m.v2_hash, [padded if b[0] == 1 else b for b in m.blocks])])
    code, out = _extract(tmp_path / "pad.pcap", m.torrent, tmp_path / "out")
    if kind == "v2":
        assert code == 0 and _files(tmp_path / "out") == _files(m.seed), out
    else:
        assert code == 1 and "captured but v1 and v2 hashes disagree: pieces 1\n" in out
        assert "multi/a.bin" not in _files(tmp_path / "out")


@needs_libtorrent
def test_extract_refuses_a_v2_torrent_whose_hashes_do_not_add_up(made, tmp_path):
    meta = fastbencode.bdecode(made["v2"].torrent.read_bytes())
    root, layer = next(iter(meta[b"piece layers"].items()))
    meta[b"piece layers"][root] = _flip(layer, 0)
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(fastbencode.bencode(meta))
    proc = run_btshark("extract", CAPTURES / "aria2-to-libtorrent.pcap", "--torrent", bad, "-o", tmp_path / "o")
    assert proc.returncode == 2 and "does not hash to its pieces root" in proc.stderr.decode()


def test_extract_memory_does_not_grow_with_the_payload(tmp_path):
    """8 MiB of blocks, each in one segment: extract holds none of them (they go to the work file)."""
    size, piece = 8 << 20, 256 << 10
    torrent, payload = make_torrent(tmp_path, size, piece)
    data = payload.read_bytes()
    conv = TcpConversation(mss=65000).open()
    info_hash = hashlib.sha1(fastbencode.bencode(fastbencode.bdecode(torrent.read_bytes())[b"info"])).digest()
    conv.send(0, bt_handshake(info_hash, peer_id=b"-XX0001-down00000000"))
    conv.send(1, bt_handshake(info_hash, peer_id=b"-XX0001-seed00000000"))
    for at in range(0, size, BLOCK):
        conv.send(1, bt_piece(at // piece, at % piece, data[at : at + BLOCK]))
    conv.write(tmp_path / "big.pcap")
    loaded = read_torrent(torrent)
    tracemalloc.start()
    try:
        result = extract(str(tmp_path / "big.pcap"), loaded, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(result.verified) == size // piece and (tmp_path / "out" / "payload.bin").read_bytes() == data
    assert peak < size // 2, f"peak {peak} bytes of Python memory for {size} bytes of blocks"
