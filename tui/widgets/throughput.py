"""Throughput: payload bytes per second in each direction over a session's time.

The fold keeps, per direction, each piece message's time and the running total of
block bytes (8 + 8 bytes a block). Any time slice's bytes are then two binary
searches, so the buckets follow the screen's width without another pass over
the session, and a resize costs a few hundred searches. Drawn with textual's own
Sparkline (one bucket per column) over an axis labelled in seconds.
"""
from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from inspector.session import Session
from inspector.words import human_bytes

from ..model.index import CODE, MessageIndex
from .banner import peer_label
from .scan import SessionScan

_PIECE = CODE["piece"]
MIN_LABEL_GAP = 12  # cells between time labels, at least


class RateFold:
    """Per side (the sender): piece times, kept non-decreasing, and cumulative block bytes."""

    def __init__(self) -> None:
        self.times = (array("d"), array("d"))
        self.cum = (array("q", [0]), array("q", [0]))  # cum[k]: bytes of the first k blocks

    def feed(self, index: MessageIndex, rows: Sequence[int]) -> None:
        kind, side_of, ts, length = index.kind, index.side, index.ts, index.c
        for row in rows:
            if kind[row] == _PIECE:
                side = side_of[row]
                times, cum = self.times[side], self.cum[side]
                t = ts[row]
                times.append(max(t, times[-1]) if times else t)  # a reordered timestamp must not break bisect
                cum.append(cum[-1] + length[row])

    def buckets(self, side: int, start: float, end: float, n: int, blocks: int) -> list[int]:
        """Bytes sent by ``side`` in each of ``n`` equal slices of [start, end], of its first ``blocks`` blocks."""
        times, cum = self.times[side], self.cum[side]
        step = (end - start) / n
        at = [bisect_left(times, start + k * step, 0, blocks) for k in range(n)]
        at.append(bisect_right(times, end, 0, blocks))
        return [cum[at[k + 1]] - cum[at[k]] for k in range(n)]


def zero_based(rates: list[float]) -> list[float]:
    """Sparkline data whose bars start at zero.

    Sparkline scales bars from the data's minimum, so a steady rate would draw as a
    flat floor. One more value, 0, pins the minimum at zero; with ``width + 1``
    values Sparkline's bucketing puts it in the last column beside the last rate,
    where its ``max`` summary drops it.
    """
    return [*rates, 0.0]


def seconds(s: float) -> str:
    return f"{s:.3g} s" if s >= 1 else f"{s * 1000:.3g} ms"


def axis(duration: float, width: int) -> tuple[str, str]:
    """A time axis ``width`` cells wide over ``duration`` seconds: tick line and label line."""
    if width <= 0 or duration <= 0:
        return "", ""
    least = duration * MIN_LABEL_GAP / width
    power = 10 ** math.floor(math.log10(least))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= least)
    decimals = max(0, -math.floor(math.log10(step)))
    ticks, labels = ["─"] * width, [" "] * width
    k = 0
    while (t := k * step) <= duration:
        x = min(width - 1, int(t / duration * width))
        ticks[x] = "┬"
        label = f"{t:.{decimals}f} s"
        if x + len(label) <= width:
            labels[x:x + len(label)] = label
        k += 1
    return "".join(ticks), "".join(labels)


class Throughput(Vertical):
    """Two sparklines (a → b, b → a) over one time axis, with totals and peaks."""

    DEFAULT_CSS = """
    Throughput { height: 1fr; padding: 0 1; }
    Throughput > .rate-label { height: 1; margin-top: 1; }
    Throughput > Sparkline { height: 1fr; }
    Throughput > #rate-a > .sparkline--max-color { color: $accent; }
    Throughput > #rate-a > .sparkline--min-color { color: $accent 40%; }
    Throughput > #rate-b > .sparkline--max-color { color: $secondary; }
    Throughput > #rate-b > .sparkline--min-color { color: $secondary 40%; }
    Throughput > #rate-axis { height: 2; color: $text-muted; }
    Throughput > #rate-note { height: 1; color: $text-muted; }
    """

    def __init__(self, index: MessageIndex, session: Session, **kw) -> None:
        super().__init__(**kw)
        self.session = session
        self.fold = RateFold()
        self.scan = SessionScan(self, index, session.id, self.fold, self._fed)
        self.blocks = [0, 0]  # blocks per side laid out (the fold may be ahead while a scan runs)
        self.totals = [0, 0]
        self.peaks = [0.0, 0.0]

    def compose(self) -> ComposeResult:
        for name in "ab":
            yield Static(classes="rate-label", id=f"rate-label-{name}")
            yield Sparkline([], summary_function=max, id=f"rate-{name}")
        yield Static(id="rate-axis")
        yield Static(id="rate-note")

    def on_mount(self) -> None:
        self.scan.poke()

    def poke(self) -> None:
        self.scan.poke()

    def facts(self) -> str:
        return (f"payload a → b {self.totals[0]:,} bytes, b → a {self.totals[1]:,} bytes, "
                f"over {self.span[1] - self.span[0]:.3f} s")

    @property
    def span(self) -> tuple[float, float]:
        """The session's time: its first packet to its last packet or block, never empty."""
        start = self.session.start
        last = max((t[b - 1] for t, b in zip(self.fold.times, self.blocks) if b), default=start)
        return start, max(self.session.end, last, start + 1e-6)

    def _fed(self) -> None:
        self.blocks = [len(t) for t in self.fold.times]
        self.totals = [self.fold.cum[side][self.blocks[side]] for side in (0, 1)]
        self.replot()

    def on_resize(self, event: events.Resize) -> None:
        self.replot()

    def replot(self) -> None:
        width = self.query_one("#rate-a", Sparkline).size.width
        if not width:
            return
        start, end = self.span
        slice_s = (end - start) / width
        for side, name in enumerate("ab"):
            rates = [n / slice_s for n in self.fold.buckets(side, start, end, width, self.blocks[side])]
            self.peaks[side] = max(rates)
            self.query_one(f"#rate-{name}", Sparkline).data = zero_based(rates)
            me, them = peer_label(self.session, side), peer_label(self.session, 1 - side)
            label = Text(f"{name} → {'ba'[side]}  ", style="bold")
            total = self.totals[side]
            label.append(f"{me} to {them}:  {total:,} bytes ({human_bytes(total)}), "
                         f"peak {human_bytes(self.peaks[side])}/s, mean {human_bytes(total / (end - start))}/s")
            self.query_one(f"#rate-label-{name}", Static).update(label)
        ticks, labels = axis(end - start, width)
        self.query_one("#rate-axis", Static).update(Text(f"{ticks}\n{labels}"))
        self.query_one("#rate-note", Static).update(Text(
            f"time from the session's start; one column = {seconds(slice_s)}; bytes are piece messages' blocks"))
