"""btshark's Textual front end: ``make_app(capture)`` builds the app (the CLI and the tests call it)."""
from __future__ import annotations


def make_app(capture: str):
    """The app for ``capture``; raises ``inspector.capfile.CaptureError`` before any UI for a bad file."""
    from .app import BtsharkApp
    from .model.load import open_capture

    return BtsharkApp(open_capture(capture))
