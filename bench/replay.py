"""Seeding replay against a live libtorrent, beside libtorrent seeding libtorrent.

``btshark replay --listen`` serves a live downloader from a capture's bytes. The
issue wants that at least half as fast as libtorrent serving the same torrent to
the same downloader, with the replayer's peak RSS under 150 MB (piece data read
from disk when asked for, not loaded). So both arms run here, in the same run, on
loopback, every peer in its own process: a libtorrent downloader is timed from its
``connect_peer`` to libtorrent's ``torrent_finished_alert`` (every piece in and
hash-checked), once against a libtorrent seeder of the payload and once against
``btshark replay`` of the capture's seeding side. The replay's peak RSS comes from
``os.wait4``; its planning time is from its start to its "listening on" line.

The capture is the 256 MiB one bench/run.py records (recorded the same way when
absent); the payload is rebuilt from it with ``btshark extract``.

    python bench/replay.py [--size 256MiB] [--runs 3] [--profile OUT.prof]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from run import OUT, record  # noqa: E402  (bench/ is scripts, not a package)

LOCALHOST = "127.0.0.1"
TIMEOUT = 300.0  # seconds for any one step: a transfer that takes longer has failed
RSS_GOAL = 150e6
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree's inspector and replay, not an installed one
LISTENING = re.compile(r"btshark: replay: listening on (\S+):(\d+)")


# --------------------------------------------------------------------------- the libtorrent children


def peer_main(argv: Sequence[str]) -> int:
    """One libtorrent peer in this process: a seeder until SIGTERM, or a downloader until complete.

    The seeder prints ``listening PORT`` once it listens and seeds. The downloader
    connects to ``--peer``, and prints ``done SECONDS`` from the connect to every
    piece being in and checked.
    """
    import libtorrent as lt

    ap = argparse.ArgumentParser(prog="bench/replay.py _peer")
    ap.add_argument("--role", choices=("seed", "download"), required=True)
    ap.add_argument("--torrent", type=Path, required=True)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--peer", help="HOST:PORT the downloader takes the torrent from")
    args = ap.parse_args(argv)
    seeding = args.role == "seed"
    if not seeding and not args.peer:
        ap.error("a downloader needs --peer")

    ses = lt.session({
        "listen_interfaces": f"{LOCALHOST}:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_ip_notifier": False, "dht_bootstrap_nodes": "",
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "out_enc_policy": int(lt.enc_policy.pe_disabled), "in_enc_policy": int(lt.enc_policy.pe_disabled),
        "alert_mask": int(lt.alert_category.error | lt.alert_category.status),
    })
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(str(args.torrent))
    atp.save_path = str(args.dir)
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    if seeding:
        atp.flags |= lt.torrent_flags.seed_mode  # extract checked every piece
    handle = ses.add_torrent(atp)

    port = 0
    checked = said = False
    started: float | None = None
    deadline = time.monotonic() + TIMEOUT
    while not stop.is_set() and time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.listen_succeeded_alert) and alert.socket_type == lt.socket_type_t.tcp:
                port = alert.port
            elif isinstance(alert, lt.torrent_checked_alert):
                checked = True
            elif isinstance(alert, lt.torrent_finished_alert) and started is not None:
                print(f"done {time.perf_counter() - started:.6f}", flush=True)
                return 0
            elif isinstance(alert, (lt.listen_failed_alert, lt.torrent_error_alert, lt.file_error_alert)):
                print(f"error: {alert.message()}", flush=True)
                return 1
        if seeding and port and checked and not said and handle.status().is_seeding:
            print(f"listening {port}", flush=True)
            said = True
        elif not seeding and checked and started is None:
            host, _, peer_port = args.peer.rpartition(":")
            started = time.perf_counter()
            handle.connect_peer((host, int(peer_port)))
    if seeding and stop.is_set():
        return 0
    print(f"error: timed out, {handle.status().state}", flush=True)
    return 1


# --------------------------------------------------------------------------- the bench


class Child:
    """A child process whose output lines are read by a thread (so the pipe never fills) and waited on."""

    def __init__(self, cmd: list[str], *, stderr: bool = False) -> None:
        self.cmd = cmd
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE if stderr else subprocess.DEVNULL, text=True,
                                     cwd=ROOT, env=ENV)
        self.lines: list[tuple[float, str]] = []  # (seconds since start, line)
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr if stderr else self.proc.stdout,),
                                        daemon=True)
        self._reader.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append((time.perf_counter() - self.started, line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_line(self, pattern: re.Pattern[str]) -> tuple[float, re.Match[str]]:
        """When (seconds since start) the first line matching ``pattern`` came, and the match."""
        def found() -> tuple[float, re.Match[str]] | None:
            return next(((t, m) for t, line in self.lines if (m := pattern.search(line))), None)

        with self._changed:
            self._changed.wait_for(lambda: self._ended or found() is not None, TIMEOUT)
            hit = found()
        if hit is None:
            self.fail("never said " + pattern.pattern)
        return hit

    def cpu(self) -> float:
        """CPU seconds (user and system) the running child has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reap(self) -> tuple[int, float]:
        """Wait for the child to exit; its peak RSS in bytes and CPU seconds (a non-zero exit fails the bench)."""
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._reader.join(TIMEOUT)
        if self.proc.returncode:
            self.fail(f"exited with {self.proc.returncode}")
        return usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime

    def stop(self) -> tuple[int, float]:
        self.proc.send_signal(signal.SIGTERM)
        return self.reap()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        """A child the bench gave up on is killed, not left running."""
        if self.proc.returncode is None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def fail(self, why: str) -> None:
        self.__exit__()
        tail = "\n".join(line for _, line in self.lines[-10:])
        sys.exit(f"bench: {' '.join(self.cmd)}: {why}\n{tail}")


def btshark(*args: str, profile: Path | None = None) -> list[str]:
    """This tree's btshark (the console script may point at another checkout), under cProfile if asked."""
    under = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    return [sys.executable, *under, "-m", "inspector", *args]


def peer(role: str, torrent: Path, folder: Path, *extra: str) -> Child:
    return Child([sys.executable, str(Path(__file__).resolve()), "_peer", "--role", role,
                  "--torrent", str(torrent), "--dir", str(folder), *extra])


def payload(capture: Path, torrent: Path) -> Path:
    """The torrent's data, rebuilt from the capture (and hash-checked) by btshark extract."""
    folder = OUT / f"{capture.stem}-payload"
    if folder.is_dir() and any(folder.iterdir()):
        print(f"reusing {folder.relative_to(ROOT)}", file=sys.stderr)
        return folder
    print("extracting the payload with btshark extract ...", file=sys.stderr)
    subprocess.run(btshark("extract", str(capture), "--torrent", str(torrent), "-o", str(folder)),
                   check=True, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL)
    return folder


def download(torrent: Path, port: int) -> tuple[float, float]:
    """A libtorrent downloader into a fresh folder from 127.0.0.1:port: seconds from connect to complete,
    and the downloader's CPU seconds."""
    folder = OUT / "replay-download"
    shutil.rmtree(folder, ignore_errors=True)
    with peer("download", torrent, folder, "--peer", f"{LOCALHOST}:{port}") as child:
        _, done = child.wait_line(re.compile(r"^done (\S+)"))
        _, cpu = child.reap()
    shutil.rmtree(folder)
    return float(done.group(1)), cpu


def libtorrent_run(torrent: Path, data: Path) -> dict:
    with peer("seed", torrent, data) as seeder:
        _, listening = seeder.wait_line(re.compile(r"^listening (\d+)"))
        begun = seeder.cpu()
        seconds, cpu = download(torrent, int(listening.group(1)))
        rss, total = seeder.stop()
    return {"seconds": seconds, "rss": rss, "cpu": total - begun, "downloader_cpu": cpu}


def replay_run(capture: Path, torrent: Path, profile: Path | None = None) -> dict:
    """One replay served to one downloader; with ``profile``, the replay runs under cProfile (slower)."""
    with Child(btshark("replay", str(capture), "--session", "1", "--side", "b", "--listen", f"{LOCALHOST}:0",
                       "--speed", "max", "--torrent", str(torrent), profile=profile), stderr=True) as replay:
        plan, listening = replay.wait_line(LISTENING)
        begun = replay.cpu()
        seconds, cpu = download(torrent, int(listening.group(2)))
        rss, total = replay.reap()
    return {"seconds": seconds, "rss": rss, "cpu": total - begun, "downloader_cpu": cpu, "plan": plan}


def table(title: str, rows: list[tuple[str, list[dict]]], size: int) -> str:
    base = statistics.median(r["seconds"] for r in rows[0][1])
    lines = [title, "",
             "| seeder | connect to complete (median) | MB/s | seeder peak RSS | seeder CPU serving | "
             "downloader CPU | plan (median) | rate vs libtorrent |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, results in rows:
        seconds = statistics.median(r["seconds"] for r in results)
        plan = f"{statistics.median(r['plan'] for r in results):.2f} s" if "plan" in results[0] else "-"
        lines.append(f"| {name} | {seconds:.2f} s | {size / seconds / 1e6:.0f} | "
                     f"{max(r['rss'] for r in results) / 2**20:.0f} MiB | "
                     f"{statistics.median(r['cpu'] for r in results):.2f} s | "
                     f"{statistics.median(r['downloader_cpu'] for r in results):.2f} s | {plan} | "
                     f"{base / seconds:.2f}× |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["_peer"]:
        sys.exit(peer_main(sys.argv[2:]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="256MiB", help="data transferred in the capture")
    ap.add_argument("--runs", type=int, default=3, help="runs per seeder (median taken)")
    ap.add_argument("--profile", type=Path, metavar="OUT.prof",
                    help="instead: one replay under cProfile, its stats written here")
    args = ap.parse_args()

    capture = OUT / f"big-{args.size}.pcap"
    record(args.size, capture)
    torrent = capture.with_suffix(".torrent")
    data = payload(capture, torrent)
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    if args.profile is not None:
        r = replay_run(capture, torrent, args.profile.resolve())
        print(f"profiled replay: planned in {r['plan']:.2f} s, served {size / r['seconds'] / 1e6:.0f} MB/s; "
              f"python -m pstats {args.profile}")
        return
    lt_runs, replay_runs = [], []
    for _ in range(args.runs):  # interleaved: a noisy moment costs both arms alike
        lt_runs.append(libtorrent_run(torrent, data))
        replay_runs.append(replay_run(capture, torrent))
    print(table(f"{capture.name} seeded to a libtorrent downloader on loopback: {size / 1e6:.0f} MB, "
                f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {args.runs} runs each",
                [("libtorrent", lt_runs), ("btshark replay --speed max", replay_runs)], size))
    ratio = statistics.median(r["seconds"] for r in lt_runs) / statistics.median(r["seconds"] for r in replay_runs)
    peak = max(r["rss"] for r in replay_runs)
    print(f"\nrate: btshark replay seeds at {ratio:.2f}× libtorrent's rate (needs ≥ 0.5): "
          f"{'met' if ratio >= 0.5 else 'NOT met'}; peak RSS {peak / 2**20:.0f} MiB (needs < 150 MB): "
          f"{'met' if peak < RSS_GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
