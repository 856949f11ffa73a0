"""``btshark tui -i``: the app on a live loopback during a real transfer, driven by Pilot.

aria2 seeds to libtorrent inside a fresh network namespace, as in test_sniff.
The app runs in this process, so the test's main thread joins the namespace
(setns) while the app starts dumpcap, whose pipe it reads; everything else runs
under ``ip netns exec``. The seeder is held to 512 KiB/s, so the 1 MiB transfer
lasts some two seconds: the session shows up in its first batch and its message
count grows after. Moments where new rows must arrive are made with marker
connections (a handshake each way, a new session), so each wait is on a real
event: a session showing in the app, the downloader exiting, never a clock.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from textual.widgets import Input, Label

from test_sniff import DOWNLOADER, MARKER, SEED, TIMEOUT, marker, needs_root, record, transfer
from test_tui import on_loop
from inspector.pipeline import CaptureDecode
from tui import make_live_app
from tui.app import BtsharkApp
from tui.screens.save import SaveScreen
from tui.widgets.messages import MessagesView
from tui.widgets.sessions import SessionsTable

SIZE = (160, 45)
_CLONE_NEWNET = 0x40000000


class Joined:
    """This thread in the namespace ``name`` (children it starts are there too), back out on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._libc = ctypes.CDLL(None, use_errno=True)

    def _enter(self, fd: int) -> None:
        if self._libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {self.name}")

    def __enter__(self) -> Joined:
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        ns = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            self._enter(ns)
        finally:
            os.close(ns)
        return self

    def __exit__(self, *exc: object) -> None:
        self._enter(self._home)
        os.close(self._home)


class Throttled:
    """The namespace, with aria2's upload held to 512 KiB/s (its torrent stays its last argument)."""

    def __init__(self, ns) -> None:
        self.ns = ns

    def cmd(self, *argv: str) -> list[str]:
        return self.ns.cmd(*argv[:-1], "--max-upload-limit=512K", argv[-1])


async def until(pilot, condition, what: str) -> None:
    """Let the app run until ``condition()`` holds (it is checked after each of the app's turns)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def transfer_session(app: BtsharkApp):
    return next((s for s in app.index.sessions.values() if s.info_hash and s.info_hash != MARKER), None)


def shown_messages(app: BtsharkApp, sid: int) -> int:
    """The session's message count as the sessions table shows it."""
    table = app.screen.query_one(SessionsTable)
    return int(table.get_cell(str(sid), "msgs a")) + int(table.get_cell(str(sid), "msgs b"))


def marker_shown(app: BtsharkApp, n: int) -> int | None:
    """The ``n``-th marker session's id once the table shows both its handshakes, else None."""
    ids = sorted(sid for sid, s in app.index.sessions.items() if s.info_hash == MARKER)
    table = app.screen.query_one(SessionsTable)
    if len(ids) < n or str(ids[n - 1]) not in table.rows or shown_messages(app, ids[n - 1]) < 2:
        return None
    return ids[n - 1]


def status_line(app: BtsharkApp) -> str:
    return str(app.screen.query_one("#live-status", Label).render())


def captured_shown(app: BtsharkApp) -> int:
    found = re.search(r"([\d,]+) frames captured", status_line(app))
    return int(found.group(1).replace(",", "")) if found else 0


def marker_frame(app: BtsharkApp, n: int) -> float:
    """The frame of the ``n``-th marker session's last row, once the decoder has both handshakes."""
    ids = sorted(sid for sid, s in app.index.sessions.items() if s.info_hash == MARKER)
    if len(ids) < n or len(app.index.by_session[ids[n - 1]]) < 2:
        return float("inf")
    return app.index.frame[app.index.by_session[ids[n - 1]][-1]]


def dumpcaps(ns_name: str) -> list[int]:
    pids = subprocess.run(["ip", "netns", "pids", ns_name], capture_output=True, text=True).stdout.split()
    out = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "dumpcap":
                out.append(int(pid))
        except FileNotFoundError:
            pass
    return out


@needs_root
@pytest.mark.skipif(not all(shutil.which(t) for t in ("dumpcap", "aria2c", "ethtool", "ip")),
                    reason="needs dumpcap, aria2c, ethtool and ip")
@on_loop
async def test_live_sessions_grow_and_the_table_follows(tmp_path: Path) -> None:
    pytest.importorskip("libtorrent")
    seed_dir, dl_dir, size, payload, torrent, rec = transfer(tmp_path)
    children = []
    app = None
    with record.Namespace(f"btshark-tuilive-{os.getpid()}") as ns:
        try:
            seeder = record.aria2_client(Throttled(ns), tmp_path, torrent, seed_dir, SEED, swarm=False)
            children.append(seeder)
            seeder.wait_ready(TIMEOUT)
            with Joined(ns.name):
                app = make_live_app("lo", backend="dumpcap")
            tee = app.tee
            async with app.run_test(size=SIZE) as pilot:
                view = app.screen.query_one(MessagesView)
                assert view.following
                downloader = record.Child("libtorrent downloader",
                                          record.peer_command(ns, DOWNLOADER, torrent, dl_dir, rec),
                                          tmp_path / "download.log")
                children.append(downloader)
                await until(pilot, lambda: transfer_session(app) is not None
                            and str(transfer_session(app).id) in app.screen.query_one(SessionsTable).rows,
                            "the transfer's session to show")
                sid = transfer_session(app).id
                first = shown_messages(app, sid)

                await until(pilot, lambda: downloader.proc.poll() is not None, "the download to end")
                assert downloader.proc.returncode == 0, downloader.output()
                marker(ns)
                await until(pilot, lambda: marker_shown(app, 1), "the first marker session")
                second = shown_messages(app, sid)
                assert first < second == len(app.index.by_session[sid])
                pieces = sum(app.index.type_name(r) == "piece" for r in app.index.by_session[sid])
                assert pieces == size // (16 << 10)
                # following: the cursor is on the newest row, the marker's second handshake
                newest = app.index.by_session[marker_shown(app, 1)][-1]
                assert view.following and view.selected_row == newest == len(view.rows) - 1
                status = status_line(app)
                assert "following" in status and "not following" not in status

                await pilot.press("home")  # away from the tail: new rows leave the cursor where it is
                assert not view.following and view.cursor == 0
                marker(ns)
                await until(pilot, lambda: marker_shown(app, 2), "the second marker session")
                assert view.cursor == 0 and len(view.rows) > newest + 2
                assert "not following" in status_line(app)

                await pilot.press("end")  # follows again, and keeps following
                assert view.following and view.selected_row == len(view.rows) - 1
                marker(ns)
                await until(pilot, lambda: marker_shown(app, 3), "the third marker session")
                newest = app.index.by_session[marker_shown(app, 3)][-1]
                assert view.following and view.selected_row == newest == len(view.rows) - 1

                await pilot.press("space")  # paused: the view stands still while the capture goes on
                still = len(view.rows)
                marker(ns)
                await until(pilot, lambda: captured_shown(app) >= marker_frame(app, 4), "the status to count the "
                            "fourth marker's frames")
                assert "PAUSED" in status_line(app) and len(view.rows) == still and not marker_shown(app, 4)
                await pilot.press("space")
                await until(pilot, lambda: marker_shown(app, 4), "the fourth marker session, once resumed")
                assert "PAUSED" not in status_line(app)

                assert dumpcaps(ns.name)  # the capture runs, until ctrl+e
                await pilot.press("ctrl+e")
                await until(pilot, lambda: not app.loading, "the capture to stop")
                assert dumpcaps(ns.name) == []
                assert f"{app.live.captured:,} frames captured · 0 dropped" in status_line(app)
                await pilot.press("w")
                await until(pilot, lambda: isinstance(app.screen, SaveScreen), "the save prompt")
                app.screen.query_one(Input).value = str(tmp_path / "saved.pcapng")
                await pilot.press("enter")
                await until(pilot, lambda: not isinstance(app.screen, SaveScreen), "the save")
                saved = CaptureDecode(str(tmp_path / "saved.pcapng"))
                assert [(r.frame, r.session.id, r.event.type) for r in saved] == [
                    (app.index.frame[r], app.index.session[r], app.index.type_name(r)) for r in range(len(app.index))]
                await pilot.press("q")
            assert not os.path.exists(tee)
            assert app.live.captured > 0
        finally:
            if app is not None:
                app.close_live()  # when the test failed before q: no dumpcap or temporary file left
            for child in children:
                child.stop(signal.SIGKILL)



def test_counts_that_arrive_before_the_screen_mounts_are_kept_for_it() -> None:
    """The batch timer starts with the app and may fire before the pushed screen mounts (CI
    saw it): the counts are kept for on_mount to show, not shown on widgets not there yet."""
    from tui.screens.main import MainScreen

    screen = MainScreen()
    screen.on_live_counts(7, None, True)
    assert screen._counts == (7, None, True)
