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
| `c` | statistics per session and side (as `read --stats`), over what the filter keeps; Enter jumps to the session |
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

## Filters

`piece`, `bt.index >= 100 && ip.src == 10.0.0.0/8`, `bt.peer_id contains "-TR"`,
`tcp.port in {6881..6889}`, `bt.ext.v matches "^utorrent"`, `bt.finding.severity == error`,
`not (side == a)`. Operators: `== != < <= > >= contains matches in {…} not in`,
`and or not && || !`, parentheses; numbers in decimal or `0x` hex; bytes as `5a:69:…`.
A comparison on a field the message lacks is false.

"""


def _fields() -> str:
    from inspector.filters import field_help

    rows = "".join(f"| `{name}` | {kind} | {meaning} |\n" for name, kind, meaning in field_help())
    return "| field | type | meaning |\n|---|---|---|\n" + rows


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; height: 80%; border: thick $accent; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(TEXT + _fields())
