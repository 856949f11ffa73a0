"""`btshark verify` on hostile captures (issue 10, item 10), through the real command.

* A capture tshark reads not one frame of (a first record longer than it accepts, a
  pcapng block it refuses) is one line on stderr naming what tshark said, and what
  btshark read of it, with exit status 2: never pyshark's traceback.
* A capture tshark reads part of and then stops on (cut mid-record, gzip cut short or
  followed by garbage, a record longer than it accepts after good ones) is compared on
  the frames tshark read; a line says where tshark stopped, and btshark's messages in
  later frames are counted, not compared.
* 26,000 BitTorrent flows on 52,000 ports, one ``-d tcp.port==P,bittorrent`` each more
  than the argument list holds, verify.

The captures are built here from raw frames (tests/hostile.py); tshark is the reference
for how far tshark reads.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import hostile
import wirebuild as wb
from conftest import btshark_command

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

TSHARK_MAX_RECORD = 262144  # tshark 4.0 refuses a pcap record longer than this; btshark reads it


def verify(pcap: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*btshark_command(), "verify", str(pcap)], capture_output=True, text=True,
                          timeout=timeout)


def damaged(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.pcap"
    path.write_bytes(hostile.format_cases()[name])
    return path


def frames_tshark_reads(pcap: Path) -> int:
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True).stdout.split()
    return int(out[-1]) if out else 0


def one_line_error(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


@pytest.mark.parametrize("name, tshark_says", [
    ("caplen_1gb", "(pcap: File has 1073741824-byte packet, bigger than maximum of 262144)"),
    ("pcapng_lengths_disagree", "(pcapng: total block lengths (first 20 and second 24) don't match)"),
    ("pcapng_length_overflow", "(pcapng: total block length 4294967292 is too large (> 134348832))"),
])
def test_a_capture_tshark_cannot_read_is_one_line_and_exit_2(tmp_path, name, tshark_says):
    pcap = damaged(tmp_path, name)
    assert frames_tshark_reads(pcap) == 0
    line = one_line_error(verify(pcap))
    assert line.startswith(f"btshark: error: tshark cannot read {pcap}: appears to be damaged or corrupt {tshark_says}; ")
    assert "btshark read 0 frames of it and decoded 0 messages (capture damaged: " in line


def test_what_btshark_reads_of_a_capture_tshark_cannot_is_said(tmp_path):
    """One frame past tshark's record limit holding a handshake and 30,000 haves."""
    conn = hostile.Conn()
    conn.emit(0, hostile.PSH, wb.handshake(hostile.HASH, hostile.PEER_A) + wb.have(1) * 30_000, total_length=0)
    assert len(conn.frames[0][1]) > TSHARK_MAX_RECORD
    pcap = hostile.write_pcap(tmp_path / "big-first.pcap", conn.frames)
    line = one_line_error(verify(pcap))
    assert line.startswith(f"btshark: error: tshark cannot read {pcap}: appears to be damaged or corrupt (pcap: File has ")
    assert "; btshark read 1 frame of it and decoded 30001 messages" in line


@pytest.mark.parametrize("name", ["cut_mid_record", "gzip_cut_short", "gzip_trailing_garbage"])
def test_what_tshark_reads_before_damage_is_compared(tmp_path, name):
    pcap = damaged(tmp_path, name)
    read = frames_tshark_reads(pcap)
    assert read > 0
    run = verify(pcap)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert all(line.startswith("btshark: warning: ") for line in run.stderr.splitlines()), run.stderr
    *_, stopped, summary = run.stdout.splitlines()
    assert re.fullmatch(rf"tshark stopped reading after frame {read}: appears to (have been cut short in "
                        rf"the middle of a packet|be damaged or corrupt \(pcap: .*\)); compared frames 1-{read}",
                        stopped), stopped
    assert summary == "2 directions, 2 agree, 0 differ"


def test_btshark_messages_after_tshark_stops_are_counted_not_compared(tmp_path):
    """A flow, then a frame past tshark's record limit (30,000 haves), then one more have."""
    conn = hostile.Conn().open().handshakes()
    conn.send(0, wb.interested()).send(1, wb.unchoke())
    conn.emit(0, hostile.PSH, wb.have(1) * 30_000, total_length=0)
    conn.send(0, wb.have(2))
    pcap = hostile.write_pcap(tmp_path / "big-later.pcap", conn.frames)
    read = frames_tshark_reads(pcap)
    assert read == len(conn.frames) - 2
    run = verify(pcap)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("agree  tcp 10.0.0.1:40000 -> 10.0.0.2:6881  ours 2  wireshark 2")
    assert lines[-2].startswith(f"tshark stopped reading after frame {read}: appears to be damaged or corrupt")
    assert lines[-2].endswith(f"compared frames 1-{read} (btshark's 30001 message(s) in later frames not compared)")
    assert lines[-1] == "2 directions, 2 agree, 0 differ"


def ports_flood(flows: int) -> list[hostile.Frame]:
    """``flows`` BitTorrent connections, no two sharing a port, each one frame: a handshake
    (as captured mid-connection; both decoders find it by its first 20 bytes)."""
    frames: list[hostile.Frame] = []
    for i in range(flows):
        conn = hostile.Conn(a=f"10.6.{i // 250 % 250}.{i % 250 + 1}", aport=1024 + i, bport=1024 + flows + i,
                            t0=hostile.T0 + i * 0.01)
        frames += conn.send(0, wb.handshake(hostile.HASH, hostile.PEER_A)).frames
    return frames


def test_a_flood_of_bittorrent_ports_verifies(tmp_path):
    flows = 26_000
    pcap = hostile.write_pcap(tmp_path / "ports.pcap", ports_flood(flows))
    # One "-d tcp.port==P,bittorrent" per port, each string and its pointer, would not fit.
    one_each = sum(len(arg) + 1 + 8 for p in range(1024, 1024 + 2 * flows) for arg in ("-d", f"tcp.port=={p},bittorrent"))
    assert one_each > os.sysconf("SC_ARG_MAX")
    run = verify(pcap, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[-1] == f"{flows} directions, {flows} agree, 0 differ"  # each flow: one handshake, one way
    assert len(lines) == flows + 1 and all(line.startswith("agree  tcp ") for line in lines[:-1])
