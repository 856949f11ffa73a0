"""Issue 7's acceptance: captured sides replayed against real clients on loopback.

(a) the downloading side against a live aria2 and a live libtorrent seeder; (b) the
seeding side serving a live libtorrent downloader until libtorrent says complete;
(c) five partial libtorrent seeders behind ``--max-initiate 2``, with the live side's
connections counted from a tcpdump of ``lo``; (d) the ``-w`` pcap of a replay read
back by btshark and tshark.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import btshark_command, read_jsonl, torrent_for
from inspector.extract import extract, read_torrent
from live import Aria2Seeder, capture_transfer, LoopbackWatch, LtPeer, needs_aria2, needs_libtorrent, needs_tcpdump

REPO = Path(__file__).resolve().parent.parent
ARIA2 = REPO / "captures" / "aria2-to-libtorrent.pcap"  # side a downloads, side b seeds
LT = REPO / "captures" / "libtorrent-to-libtorrent.pcap"


def seed_dir(tmp: Path, capture: Path) -> tuple[Path, Path]:
    """The capture's torrent beside a ``seed/`` folder holding its payload, rebuilt from the capture."""
    torrent = tmp / "t.torrent"
    shutil.copy(torrent_for(capture), torrent)
    result = extract(str(capture), read_torrent(torrent), tmp / "seed")
    assert not result.missing and not result.bad
    return torrent, tmp / "seed"


def replay(capture: Path, side: str, *args: str, tmp: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp / f"report-{side}.json"
    run = subprocess.run([*btshark_command(), "replay", str(capture), "--session", "1", "--side", side,
                          "--report", str(report), "--timeout", "20", *args],
                         capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in run.stderr, run.stderr
    return run, json.loads(report.read_text())


def assert_downloaded_everything(run: subprocess.CompletedProcess, report: dict) -> None:
    assert run.returncode == 0, run.stderr
    assert report["result"] == "ok" and report["exit"] == 0
    blocks = report["blocks"]
    assert blocks["requested"] == 64 and blocks["received"] == 64
    assert report["pieces"]["verified"] == list(range(16)) and report["pieces"]["failed"] == []


@needs_aria2
def test_a_downloader_replayed_against_a_live_aria2_seeder(tmp_path):
    torrent, seed = seed_dir(tmp_path, ARIA2)
    pcap = tmp_path / "replay.pcap"
    with Aria2Seeder(torrent, seed) as aria2:
        run, report = replay(ARIA2, "a", "--connect", f"127.0.0.1:{aria2.port}", "--torrent", str(torrent),
                             "-w", str(pcap), tmp=tmp_path)
    assert_downloaded_everything(run, report)
    [conn] = report["connections"]
    hs = next(m for m in conn["messages"] if m["dir"] == "received" and m["type"] == "handshake")
    assert hs["client"].startswith("aria2")
    # (d) the pcap holds exactly the messages the replay logged, both ways, in order.
    logged = [(m["dir"], m["type"], m.get("index"), m.get("begin"), m.get("length")) for m in conn["messages"]]
    me = conn["local"]
    decoded = [("sent" if r["src"] == me else "received", r["type"], r.get("index"), r.get("begin"), r.get("length"))
               for r in read_jsonl(pcap)]
    assert decoded == logged and len(decoded) > 64 + 64
    if shutil.which("tshark"):
        port = aria2.port
        bad = subprocess.run(["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},bittorrent",
                              "-Y", "_ws.malformed || _ws.expert.severity >= error"],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 0 and bad.stdout.strip() == "", bad.stdout
        pieces = subprocess.run(["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},bittorrent",
                                 "-Y", "bittorrent.msg.type == 7", "-T", "fields", "-e", "bittorrent.piece.index"],
                                capture_output=True, text=True, timeout=120)
        assert len(pieces.stdout.split()) == 64


@needs_libtorrent
def test_a_downloader_replayed_at_captured_pace_against_a_live_libtorrent_seeder(tmp_path):
    torrent, seed = seed_dir(tmp_path, ARIA2)
    with LtPeer(torrent, seed, seed=True) as lt:
        run, report = replay(ARIA2, "a", "--connect", f"127.0.0.1:{lt.port}", "--torrent", str(torrent),
                             tmp=tmp_path)
        seen = lt.peers_seen()
    assert_downloaded_everything(run, report)
    assert report["speed"] == 1.0
    # libtorrent saw the captured side's client: the peer id is the captured one.
    assert [p.client for p in seen] and all(p.client.startswith("libtorrent") for p in seen)
    assert report["connections"][0]["peer_id"] is not None


@needs_libtorrent
def test_a_seeder_replayed_serves_a_live_libtorrent_downloader_to_completion(tmp_path):
    torrent = tmp_path / "t.torrent"
    shutil.copy(torrent_for(LT), torrent)
    report_path = tmp_path / "r.json"
    proc = subprocess.Popen([*btshark_command(), "replay", str(LT), "--session", "1", "--side", "b",
                             "--listen", "127.0.0.1:0", "--speed", "max", "--timeout", "20",
                             "--report", str(report_path)], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1])
        with LtPeer(torrent, tmp_path / "down", seed=False) as lt:
            lt.connect("127.0.0.1", port)
            lt.wait_complete(60)  # libtorrent's own hash checks passed on every piece
            assert lt.pieces() == set(range(16))
        err = proc.stderr.read()
        proc.wait(60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    report = json.loads(report_path.read_text())
    assert report["result"] == "ok" and report["blocks"]["served"] >= 64 and report["blocks"]["rejected"] == 0
    assert (tmp_path / "down" / "payload.bin").read_bytes() == (  # what the capture carried, byte for byte
        _payload(tmp_path, LT))


def _payload(tmp: Path, capture: Path) -> bytes:
    out = tmp / "expected"
    extract(str(capture), read_torrent(torrent_for(capture)), out)
    return (out / "payload.bin").read_bytes()


@needs_libtorrent
@needs_tcpdump
def test_five_partial_seeders_two_at_a_time(tmp_path):
    torrent, seed = seed_dir(tmp_path, ARIA2)
    seeders = []
    try:
        for k in range(5):  # disjoint: seeder k holds the pieces i with i % 5 == k
            seeders.append(LtPeer(torrent, tmp_path / f"s{k}", seed=True, have={i for i in range(16) if i % 5 == k}))
        ports = [s.port for s in seeders]
        watch = LoopbackWatch(ports, tmp_path / "lo.pcap")
        try:
            run, report = replay(ARIA2, "a", *[a for p in ports for a in ("--connect", f"127.0.0.1:{p}")],
                                 "--torrent", str(torrent), "--speed", "max", "--max-initiate", "2", tmp=tmp_path)
        finally:
            watch.stop()
    finally:
        for s in seeders:
            s.close()
    assert_downloaded_everything(run, report)
    conns = watch.connections()
    assert {c.server_port for c in conns} == set(ports)  # every seeder was needed, and reached
    assert watch.max_concurrent() <= 2
    assert report["most_connections"] <= 2
    # Each seeder gave what only it had: 4 pieces of 4 blocks from the first, 3 from the others.
    per = {c["peer"]: c["blocks"]["received"] for c in report["connections"]}
    assert {int(peer.rsplit(":", 1)[1]): n for peer, n in per.items()} == {
        port: 4 * sum(1 for i in range(16) if i % 5 == k) for k, port in enumerate(ports)}


@needs_libtorrent
@needs_tcpdump
@pytest.mark.parametrize("kind", ["v2", "hybrid"])
def test_a_v2_or_hybrid_download_replayed_checks_pieces_against_the_merkle_trees(made, kind, tmp_path):
    m = made[kind]
    pcap = capture_transfer(m.torrent, m.seed, tmp_path / "transfer.pcap", tmp_path / "down")
    with LtPeer(m.torrent, m.seed, seed=True) as live:
        run, report = replay(pcap, "a", "--connect", f"127.0.0.1:{live.port}", "--torrent", str(m.torrent),
                             "--speed", "max", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert report["blocks"]["received"] == report["blocks"]["requested"] > 0
    # Every piece with file bytes in it is checked against the v2 tree (and v1 too for hybrid).
    assert report["pieces"]["verified"] == list(range(m.pieces)) and report["pieces"]["failed"] == []
