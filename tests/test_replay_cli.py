"""``btshark replay`` as a user meets it: bad input, peers that fail it, Ctrl-C, ``-w``.

The misbehaving peers are plain sockets in a thread, each doing one thing a real
peer can do to a replay: refuse, answer for another torrent, reset mid-transfer,
say nothing.
"""
from __future__ import annotations

import json
import re
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import (TcpConversation, bt_handshake, bt_msg, btshark_command, read_jsonl, run_btshark,
                      torrent_for)
from inspector.extract import read_torrent

REPO = Path(__file__).resolve().parent.parent
ARIA2 = REPO / "captures" / "aria2-to-libtorrent.pcap"
MSE = REPO / "captures" / "libtorrent-mse.pcap"
INFO_HASH = read_torrent(torrent_for(ARIA2)).info_hash
FAST = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04])


def replay(*args: str) -> subprocess.CompletedProcess:
    """``btshark replay ARGS``, its output as text."""
    run = run_btshark("replay", *args)
    return subprocess.CompletedProcess(run.args, run.returncode, run.stdout.decode(), run.stderr.decode())


def error_line(run: subprocess.CompletedProcess) -> str:
    """The run's one error line (and there is exactly one, and no traceback)."""
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("btshark: error:")]
    assert len(lines) == 1, run.stderr
    return lines[0]


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("args, message", [
    ([str(ARIA2), "--session", "9", "--side", "a", "--connect", "127.0.0.1:1"], r"no session 9 in .*its sessions: 1"),
    ([str(MSE), "--session", "1", "--side", "a", "--connect", "127.0.0.1:1"], "session 1 is encrypted"),
    ([str(ARIA2), "--session", "1", "--side", "a", "--connect", "192.0.2.7:6881"],
     "192.0.2.7 .* is not a loopback address; pass --allow-remote"),
    ([str(ARIA2), "--session", "1", "--side", "b", "--listen", "0.0.0.0:0"], "is not a loopback address"),
    ([str(ARIA2), "--session", "1", "--side", "a"], "give --connect"),
    ([str(ARIA2), "--session", "1", "--side", "a", "--connect", "localhost"], "is not HOST:PORT"),
    ([str(ARIA2), "--session", "1", "--side", "a", "--connect", "127.0.0.1:1", "--speed", "0"], "--speed takes"),
    ([str(REPO / "README.md"), "--session", "1", "--side", "a", "--connect", "127.0.0.1:1"], "README.md"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    run = replay(*args)
    assert run.returncode == 2, run.stderr
    assert re.search(message, error_line(run)), run.stderr


def test_a_side_whose_handshake_was_not_captured_is_refused(tmp_path):
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(INFO_HASH))
    conv.send(1, bt_msg(1) + bt_msg(1))
    path = conv.write(tmp_path / "c.pcap")
    run = replay(str(path), "--session", "1", "--side", "b", "--connect", "127.0.0.1:1")
    assert run.returncode == 2 and "side b of session 1 has no captured handshake" in error_line(run)


# ------------------------------------------------------------------------------ failing peers


class Peer(threading.Thread):
    """A one-connection server on loopback running ``script(conn)``."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                self.script(conn)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.sock.close()


def read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_message(conn: socket.socket) -> bytes:
    (length,) = struct.unpack(">I", read_exact(conn, 4))
    return read_exact(conn, length)


def seeder_until(what: int):
    """Handshake for our torrent, have_all and unchoke; return once message id ``what`` arrives."""

    def script(conn: socket.socket) -> bytes:
        read_exact(conn, 68)
        conn.sendall(bt_handshake(INFO_HASH, b"-XX0001-failingpeer!", FAST) + bt_msg(14) + bt_msg(1))
        while True:
            body = read_message(conn)
            if body and body[0] == what:
                return body

    return script


def run_against(script, *extra: str, timeout: str = "2") -> subprocess.CompletedProcess:
    peer = Peer(script)
    peer.start()
    run = replay(str(ARIA2), "--session", "1", "--side", "a", "--connect", f"127.0.0.1:{peer.port}",
                 "--speed", "max", "--timeout", timeout, *extra)
    peer.join(10)
    assert peer.error is None or isinstance(peer.error, (EOFError, ConnectionError)), peer.error
    return run


def test_a_refused_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        run = replay(str(ARIA2), "--session", "1", "--side", "a", "--connect", f"127.0.0.1:{port}")
    assert run.returncode == 1
    assert error_line(run) == f"btshark: error: cannot connect to 127.0.0.1:{port}: connection refused"


def test_a_peer_with_another_info_hash():
    def script(conn: socket.socket) -> None:
        read_exact(conn, 68)
        conn.sendall(bt_handshake(b"\x99" * 20, b"-XX0001-otherhash!!!", FAST))
        conn.recv(1)  # until the replayer hangs up

    run = run_against(script)
    assert run.returncode == 1
    assert f"info hash {'99' * 20} is not ours (hung up: info_hash_mismatch)" in error_line(run)


def test_a_reset_mid_transfer():
    def script(conn: socket.socket) -> None:
        seeder_until(6)(conn)  # the first request
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST

    run = run_against(script)
    assert run.returncode == 1
    assert error_line(run).endswith("reset by the peer after 0 of 64 blocks")


def test_a_silent_peer_before_its_handshake():
    def script(conn: socket.socket) -> None:
        read_exact(conn, 68)
        conn.recv(1)  # says nothing, until the replayer gives up and hangs up

    run = run_against(script, timeout="1")
    assert run.returncode == 1
    assert error_line(run).endswith("within 1 s")


def test_a_peer_silent_after_the_handshake():
    def script(conn: socket.socket) -> None:
        read_exact(conn, 68)
        conn.sendall(bt_handshake(INFO_HASH, b"-XX0001-silentpeer!!", FAST) + bt_msg(14))
        while conn.recv(65536):  # never unchokes; reads until the replayer hangs up
            pass

    run = run_against(script, timeout="1")
    assert run.returncode == 1
    assert error_line(run).endswith("silent for 1 s")


def test_ctrl_c_stops_cleanly_and_still_writes_the_report_and_the_pcap(tmp_path):
    got_interest = threading.Event()

    def script(conn: socket.socket) -> None:
        read_exact(conn, 68)
        conn.sendall(bt_handshake(INFO_HASH, b"-XX0001-slowseeder!!", FAST) + bt_msg(14))
        while True:
            body = read_message(conn)
            if body[:1] == b"\x02":
                got_interest.set()

    peer = Peer(script)
    peer.start()
    report, pcap = tmp_path / "r.json", tmp_path / "w.pcap"
    proc = subprocess.Popen([*btshark_command(), "replay", str(ARIA2), "--session", "1", "--side", "a",
                             "--connect", f"127.0.0.1:{peer.port}", "--speed", "max", "--timeout", "60",
                             "--report", str(report), "-w", str(pcap)],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert got_interest.wait(30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err
    data = json.loads(report.read_text())
    assert data["result"] == "interrupted" and data["exit"] == 130
    sent = [m["type"] for m in data["connections"][0]["messages"] if m["dir"] == "sent"]
    assert sent[:2] == ["handshake", "extended"] and "interested" in sent
    decoded = [r["type"] for r in read_jsonl(pcap)]
    assert decoded.count("handshake") == 2 and "interested" in decoded and "have_all" in decoded


def test_a_seeder_whose_capture_holds_no_whole_piece_is_refused(tmp_path):
    from conftest import bt_piece, bt_request
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(INFO_HASH, b"-LT2110-aaaaaaaaaaaa"))
    conv.send(1, bt_handshake(INFO_HASH, b"-TR3000-bbbbbbbbbbbb"))
    for i in range(2):
        conv.send(0, bt_request(i, 0, 1000) + bt_request(i, 1000, 1000))
        conv.send(1, bt_piece(i, 0, bytes(1000)))  # the second block of each piece never came
    path = conv.write(tmp_path / "c.pcap")
    run = replay(str(path), "--session", "1", "--side", "b", "--listen", "127.0.0.1:0")
    assert run.returncode == 2
    assert error_line(run).endswith("the capture holds no whole piece of them: nothing to announce")
