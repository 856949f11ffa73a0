"""The line above a session view that says which session it shows, and why that one.

A view opened with "all sessions" selected shows one session it picked itself;
the banner says so, so nobody reads the first session's ladder as the capture's.
Client names come from peer ids, so the line is built as Text, never as markup.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from inspector.output import safe_text
from inspector.session import Session


def peer_label(session: Session, side: int) -> str:
    """``127.0.0.1:51413 (aria2 1.36.0)``: a side's address and client."""
    me = session.sides[side]
    return f"{me.addr} ({safe_text(me.client)})" if me.client else me.addr


class SessionBanner(Static):
    DEFAULT_CSS = """
    SessionBanner { height: auto; padding: 0 1; background: $boost; }
    """

    def show(self, view: str, session: Session | None, note: str, facts: str = "") -> None:
        text = Text(f"{view}  ", style="bold")
        if session is not None:
            text.append(f"session #{session.id} {session.transport}  a {peer_label(session, 0)}"
                        f"  ⇄  b {peer_label(session, 1)}")
            if session.encrypted:
                text.append("  (MSE-encrypted: its messages are not decoded)", style="italic")
        if facts:
            text.append(f"\n{facts}")
        if note:
            text.append(f"\n{note}", style="italic")
        self.update(text)
