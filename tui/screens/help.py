"""The help screen: what each key does, from the bindings themselves."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

TEXT = """\
# btshark

| key | what it does |
|---|---|
| `/` or `f` | filter (the `-Y` language of `btshark read`); Enter applies, Esc clears, Up/Down history |
| `s` `m` `d` | focus sessions, messages, details |
| Up/Down, PgUp/PgDn, Home/End (`k` `j` `g` `G`) | move in the messages |
| `l` | flow ladder of the selected session |
| `p` | piece map of the selected session |
| `t` | throughput of the selected session |
| `e` | findings; Enter jumps to the message |
| `i` | capture info |
| Esc | stop reading the capture; close a view |
| Ctrl+P | command palette |
| `?` | this help |
| End | live (`btshark tui -i`): follow the newest message again (any scrolling stops following) |
| space | live: pause/resume the view (the capture goes on) |
| `w` | live: save what was captured (pcapng) |
| Ctrl+E | live: stop capturing |
| `q` | quit |

Click a column header in the sessions table to sort by it (again: reversed).
Peer-controlled text (peer ids, client names, bencoded strings) is shown with
control characters escaped.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; height: 80%; border: thick $accent; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(TEXT)
