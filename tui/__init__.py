"""btshark's Textual front end: ``make_app(capture)`` and ``make_live_app(iface)`` build the app
(the CLI and the tests call them)."""
from __future__ import annotations


def make_app(capture: str):
    """The app for ``capture``; raises ``inspector.capfile.CaptureError`` before any UI for a bad file."""
    from .app import BtsharkApp
    from .model.load import open_capture

    return BtsharkApp(open_capture(capture))


def make_live_app(iface: str, bpf: str | None = None, backend: str | None = None):
    """The app over a live capture on ``iface``, already capturing (and teeing into a temporary
    pcapng for saving); raises ``inspector.sniff.SniffError`` before any UI when it cannot start.
    Call the app's ``close_live`` when it has ended, however it ended."""
    import os
    import tempfile

    from inspector.sniff import DEFAULT_FILTER, open_live

    from .app import BtsharkApp

    fd, tee = tempfile.mkstemp(prefix="btshark-live-", suffix=".pcapng")
    os.close(fd)
    try:
        live = open_live(iface, bpf or DEFAULT_FILTER, backend, write=tee)
    except BaseException:
        os.unlink(tee)
        raise
    return BtsharkApp(live, title=f"live on {iface}", tee=tee)
