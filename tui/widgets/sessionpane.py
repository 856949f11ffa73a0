"""The frame of a one-session view: which session, a banner saying so, and the view itself.

Views open from the main screen with its selected session, or with "all sessions",
and possibly while the capture is still loading, before that session (or any) has
a message. The pane picks the session, waits for it if it must, mounts the view
once it exists, and passes each loading batch on to it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from inspector.session import Session

from ..model.index import FINDING, MessageIndex
from .banner import SessionBanner
from .scan import Folded


class SessionView(Protocol):
    def poke(self) -> None:
        """More rows may have arrived: fold them in."""

    def facts(self) -> str:
        """A few words for the banner (counts, totals)."""


def pick_session(index: MessageIndex, wanted: int | None) -> tuple[int | None, str]:
    """The session a view shows, and a note when it is not the one asked for.

    ``wanted`` is None when the main screen shows all sessions: a view of one
    session then takes the first that has a message (findings alone do not count).
    """
    if wanted is not None:
        return wanted, ""
    kind = index.kind
    for sid, rows in index.by_session.items():
        if any(kind[r] != FINDING for r in rows):
            return sid, f"all sessions selected: showing #{sid}, the first session with messages"
    return None, "all sessions selected, and no session has a message"


class SessionPane(Vertical):
    DEFAULT_CSS = "SessionPane { height: 1fr; }"

    def __init__(self, wanted: int | None, title: str, make: Callable[[Session], Widget], **kw) -> None:
        super().__init__(**kw)
        self.wanted = wanted
        self.title = title
        self.make = make
        self.session: Session | None = None
        self.note = ""
        self.view: Widget | None = None

    def compose(self) -> ComposeResult:
        yield SessionBanner()

    def on_mount(self) -> None:
        self.loaded()

    def loaded(self) -> None:
        """On mount and after each loading batch: find the session, show or update its view."""
        if self.view is None:
            sid, self.note = pick_session(self.app.index, self.wanted)
            self.session = self._session(sid)
            if self.session is not None:
                self.view = self.make(self.session)
                self.mount(self.view)
                self.call_after_refresh(self._focus_view)
        else:
            self.view.poke()
        self.show_banner()

    def _focus_view(self) -> None:
        if self.view is not None:
            focusable = [w for w in self.view.walk_children(with_self=True) if w.focusable]
            if focusable:
                focusable[0].focus()

    def on_folded(self, message: Folded) -> None:
        self.show_banner()

    def _session(self, sid: int | None) -> Session | None:
        if sid is None:
            return None
        app = self.app
        session = app.index.sessions.get(sid)
        if session is None and app.progress is not None:  # known, but nothing decoded from it (yet)
            session = next((s for s in app.progress.sessions if s.id == sid), None)
        return session

    def show_banner(self) -> None:
        facts = self.view.facts() if self.view is not None else ""
        if self.app.loading:
            facts = f"{facts}  (capture still loading)" if facts else "capture still loading"
        self.query_one(SessionBanner).show(self.title, self.session, self.note, facts)
