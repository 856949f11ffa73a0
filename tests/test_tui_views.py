"""The TUI's session views: flow ladder, piece map, throughput.

Pilot tests open each view from the main screen on the committed captures and
check what it shows against facts computed independently (the session's message
counts and payload bytes, the .torrent's piece count, the index's timestamps).
The folds are also fed synthetic sessions: the piece states' edge cases, a
ladder too long to draw whole, rows arriving while a view is open. Snapshot
tests (pytest-textual-snapshot) pin the three views' look at 160x45.
"""
from __future__ import annotations

from contextlib import suppress

import asyncio
import functools
import io
import re

import pytest
from textual.worker import WorkerCancelled
from conftest import CAPTURES, torrent_for, torrent_info
from rich.console import Console
from textual.app import App, ComposeResult
from textual.renderables.sparkline import Sparkline as SparklineRenderable

from inspector import events as ev
from inspector.pipeline import Record
from inspector.session import Session
from tui.app import BtsharkApp
from tui.model.index import CODE, FINDING, MessageIndex
from tui.model.load import open_capture
from tui.screens.ladder import LadderScreen
from tui.screens.main import MainScreen
from tui.screens.piecemap import PieceMapScreen
from tui.screens.throughput import ThroughputScreen
from tui.widgets.banner import SessionBanner
from tui.widgets.ladder import GAP, GAP_MIN, HEADER, Ladder, LadderFold, gap_threshold
from tui.widgets.messages import MessagesView
from tui.widgets.piecemap import HEADER as MAP_HEADER
from tui.widgets.piecemap import ANNOUNCED, COMPLETE, GUTTER, RECEIVED, REQUESTED, SERVED, PieceFold, PieceGrid
from tui.widgets.throughput import RateFold, Throughput, axis, zero_based

SIZE = (160, 45)
ARIA2 = CAPTURES / "aria2-to-libtorrent.pcap"
CAPTURE_FILES = [ARIA2, CAPTURES / "libtorrent-to-libtorrent.pcap"]
VIEWS = {"l": LadderScreen, "p": PieceMapScreen, "t": ThroughputScreen}


TIMEOUT = 60.0  # seconds for one Pilot test; each takes about one


def pilot_test(test):
    """An async test run to completion (no pytest asyncio plugin here), failing after TIMEOUT."""
    @functools.wraps(test)
    def run(*args, **kw) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kw), TIMEOUT))
    return run


def make(path) -> BtsharkApp:
    return BtsharkApp(open_capture(str(path)), title=path.name)


async def settle(pilot) -> None:
    """Until the capture is read and no worker runs (a view's scan may chain a second pass)."""
    app = pilot.app
    for _ in range(200):
        with suppress(WorkerCancelled):  # an exclusive worker replaced by the next one
            await app.workers.wait_for_complete()
        await pilot.pause()
        if not app.loading and all(w.is_finished for w in app.workers):
            return
    raise AssertionError("the app kept working")


async def open_view(pilot, key: str) -> None:
    """From the main screen, with the focus off the filter bar (which would take the key as text)."""
    await settle(pilot)
    pilot.app.screen.query_one(MessagesView).focus()
    await pilot.press(key)
    await settle(pilot)
    assert isinstance(pilot.app.screen, VIEWS[key])


def the_session(app: BtsharkApp) -> Session:
    (session,) = app.index.sessions.values()
    return session


def banner(app: BtsharkApp) -> str:
    return str(app.screen.query_one(SessionBanner).render())


# -- the views on real captures --------------------------------------------------------------


@pilot_test
@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.stem)
async def test_ladder_draws_every_message_from_sender_to_receiver(path) -> None:
    app = make(path)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, "l")
        ladder = app.screen.query_one(Ladder)
        session, ix = the_session(app), app.index
        lines = [ladder.line_at(n) for n in range(ladder.line_count)]
        rows = [row for row, _ in lines if row != GAP]
        assert rows == list(ix.by_session[session.id])
        messages = [row for row in rows if ix.kind[row] != FINDING]
        assert len(messages) == sum(session.sides[0].messages.values()) + sum(session.sides[1].messages.values())
        first = ladder.render_line(HEADER).text
        assert ix.kind[rows[0]] == CODE["handshake"] and ix.side[rows[0]] == 0
        assert "handshake" in first and first.rstrip().split()[-1] == str(ix.frame[rows[0]])
        assert "▶│" in first  # a's arrow points at b's lifeline
        header = ladder.render_line(0).text
        assert f"a {session.sides[0].addr}" in header and f"{session.sides[1].addr} b" in header
        b_line = next(n for n, (row, _) in enumerate(lines) if row != GAP and ix.side[row] == 1)
        assert "│◀─" in ladder.render_line(HEADER + b_line).text
        assert "all sessions selected: showing #1" in banner(app)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


@pilot_test
async def test_ladder_marks_the_silence_and_enter_jumps_to_the_message() -> None:
    app = make(ARIA2)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, "l")
        ladder, ix = app.screen.query_one(Ladder), app.index
        # aria2 answers the handshake after a long wait: the one silence of the session.
        rows = ix.by_session[the_session(app).id]
        waits = [ix.ts[b] - ix.ts[a] for a, b in zip(rows, rows[1:])]
        longest = max(waits)
        assert longest >= ladder.threshold > sorted(waits)[-2]
        gap_line = waits.index(longest) + 1
        assert ladder.line_at(gap_line)[0] == GAP
        assert f"… {longest:.3f} s …" in ladder.render_line(HEADER + gap_line).text
        # The cursor steps over the silence; Enter shows that message in the main screen.
        for _ in range(gap_line):
            await pilot.press("down")
        assert ladder.cursor == gap_line + 1
        chosen = ladder.selected_row
        assert chosen == rows[gap_line]
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.screen.query_one(MessagesView).selected_row == chosen


@pilot_test
@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.stem)
async def test_piece_map_shows_every_piece_received_by_the_downloader(path) -> None:
    pieces = len(torrent_info(torrent_for(path)).pieces)
    app = make(path)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, "p")
        grid = app.screen.query_one(PieceGrid)
        session = the_session(app)
        seeder = max((0, 1), key=lambda side: session.sides[side].payload_bytes)
        downloader = 1 - seeder
        assert grid.count == pieces
        assert all(grid.fold.state(downloader, p) & COMPLETE for p in range(pieces))
        assert all(grid.fold.state(seeder, p) & SERVED for p in range(pieces))
        drawn = [grid.render_line(MAP_HEADER + row).text.partition("│") for row in range(grid.row_count)]
        cells = ["".join(line[0] for line in drawn), "".join(line[2] for line in drawn)]
        downloaded, served = cells[downloader], cells[seeder]
        assert downloaded.count("█") == pieces and served.count("▲") == pieces
        assert f"{pieces} pieces" in banner(app)
        await pilot.press("right", "right")
        detail = str(app.screen.query_one("#piece-detail").render())
        assert detail.startswith("piece #2 ") and "complete" in detail
        # A click on a cell of either grid (here b's, past a's grid and the gutter) picks that piece.
        x = grid.label_width + grid.grid_width + len(GUTTER) + 5
        await pilot.click(PieceGrid, offset=(x, MAP_HEADER))
        assert grid.cursor == 5
        await pilot.press("p")
        assert isinstance(app.screen, MainScreen)


@pilot_test
@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.stem)
async def test_throughput_totals_are_the_sessions_payload_bytes(path) -> None:
    app = make(path)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, "t")
        plot = app.screen.query_one(Throughput)
        session = the_session(app)
        assert plot.totals == [session.sides[0].payload_bytes, session.sides[1].payload_bytes]
        assert max(plot.totals) > 0
        start, end = plot.span
        width = app.screen.query_one("#rate-a").size.width
        for side, name in enumerate("ab"):
            label = str(app.screen.query_one(f"#rate-label-{name}").render())
            assert f"{plot.totals[side]:,} bytes" in label
            buckets = plot.fold.buckets(side, start, end, width, plot.blocks[side])
            assert sum(buckets) == plot.totals[side]
            assert plot.peaks[side] == max(buckets) / ((end - start) / width)
        # One bucket per column, at any width.
        await pilot.resize_terminal(120, 45)
        await settle(pilot)
        spark = app.screen.query_one("#rate-b")
        assert spark.size.width < width and len(spark.data) == spark.size.width + 1  # + zero_based's 0
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


@pilot_test
async def test_a_view_of_the_selected_session_says_no_more() -> None:
    app = make(ARIA2)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#sessions").focus()
        await pilot.press("down")  # from "all" to session #1
        assert app.screen.session == the_session(app).id
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, ThroughputScreen)
        text = banner(app)
        assert f"session #{the_session(app).id}" in text and "all sessions" not in text


# -- the folds on synthetic sessions ----------------------------------------------------------


def synthetic(events: list[tuple[int, float, ev.Event]]) -> tuple[Session, MessageIndex]:
    """A session of (side, ts, event) with a MessageIndex over it."""
    session = Session(1, "tcp", "10.0.0.1:6881", "10.0.0.2:51413", opener_known=True, encrypted=False,
                      start=events[0][1])
    index = MessageIndex()
    for frame, (side, ts, event) in enumerate(events, 1):
        index.append(Record(session, side, frame, ts, event))
    session.end = events[-1][1]
    return session, index


def fold_pieces(events) -> PieceFold:
    session, index = synthetic([(side, float(n), e) for n, (side, e) in enumerate(events)])
    fold = PieceFold()
    fold.feed(index, index.by_session[session.id])
    return fold


def test_a_piece_is_complete_when_every_block_requested_came() -> None:
    ask = [(0, ev.Request(3, begin, 16384)) for begin in (0, 16384, 32768)]
    fold = fold_pieces(ask + [(1, ev.Piece(3, 0, 16384)), (1, ev.Piece(3, 16384, 16384))])
    assert fold.state(0, 3) & (REQUESTED | RECEIVED) == REQUESTED | RECEIVED
    assert not fold.state(0, 3) & COMPLETE
    assert "1 requested not received" in fold.describe(0, 3)
    fold = fold_pieces(ask + [(1, ev.Piece(3, b, 16384)) for b in (32768, 0, 16384)])
    assert fold.state(0, 3) & COMPLETE and fold.state(1, 3) & SERVED
    assert fold.describe(1, 3) == "served 3 blocks"
    # Blocks without a request seen (the capture began after it): received, not known complete.
    fold = fold_pieces([(1, ev.Piece(4, 0, 16384))])
    assert fold.state(0, 4) & RECEIVED and not fold.state(0, 4) & COMPLETE
    assert fold.describe(0, 4) == "received 1 block, no request for it seen"
    # Asked again after it came: not complete until that block comes too.
    fold = fold_pieces(ask[:1] + [(1, ev.Piece(3, 0, 16384)), (0, ev.Request(3, 0, 16384))])
    assert not fold.state(0, 3) & COMPLETE


def test_the_piece_count_comes_from_the_bitfield_length_and_the_indices_seen() -> None:
    # 2 bytes of bitfield: 9 to 16 pieces; pieces 0-4 set, then a have for #12.
    fold = fold_pieces([(1, ev.Bitfield(bytes([0b11111000, 0]))), (1, ev.Have(12)), (0, ev.Have(40))])
    assert fold.count == 13
    assert [p for p in range(fold.count) if fold.state(1, p) & ANNOUNCED] == [0, 1, 2, 3, 4, 12]
    assert fold.out_of_range == 1  # #40 is past any 2-byte bitfield
    fold = fold_pieces([(1, ev.Bitfield(bytes([0x80, 0])))])
    assert fold.count == 9
    fold = fold_pieces([(0, ev.HaveAll()), (1, ev.Request(6, 0, 16384))])
    assert fold.count == 7 and all(fold.state(0, p) & ANNOUNCED for p in range(7))


def test_only_silences_past_the_threshold_get_a_line() -> None:
    times = [0.0, 0.01, 0.5, 0.51, 0.53, 2.0, 2.01]
    session, index = synthetic([(n % 2, 100 + t, ev.KeepAlive()) for n, t in enumerate(times)])
    fold = LadderFold()
    fold.feed(index, index.by_session[1][:4])  # in two passes, as while loading
    fold.feed(index, index.by_session[1][4:])
    assert list(fold.gap_at) == [2, 5]
    lines, lengths = fold.marks(gap_threshold(2.01))  # 0.1005 s: both silences
    assert list(lines) == [2, 6] and [round(x, 2) for x in lengths] == [0.49, 1.47]
    lines, _ = fold.marks(1.0)
    assert list(lines) == [5]
    assert gap_threshold(0.5) == GAP_MIN and gap_threshold(3600) == 1.0


def test_buckets_add_up_and_survive_a_timestamp_going_back() -> None:
    events = [(1, 10.0 + t, ev.Piece(0, 0, n)) for t, n in ((0.1, 100), (0.5, 200), (0.45, 300), (0.9, 400))]
    session, index = synthetic(events + [(0, 11.0, ev.Have(0))])
    fold = RateFold()
    fold.feed(index, index.by_session[1])
    assert fold.buckets(1, 10.0, 11.0, 4, 4) == [100, 0, 500, 400]
    assert fold.buckets(0, 10.0, 11.0, 4, 0) == [0, 0, 0, 0]


def test_a_steady_rate_draws_full_bars() -> None:
    console = Console(width=20, record=True, file=io.StringIO())
    console.print(SparklineRenderable(zero_based([5.0] * 20), width=20, height=2))
    assert console.export_text().splitlines()[0] == "█" * 20


def test_the_time_axis_labels_seconds_where_they_fall() -> None:
    ticks, labels = axis(12.5, 100)
    assert len(ticks) == len(labels) == 100
    found = [(m.start(), float(m.group(1))) for m in re.finditer(r"(\d+(?:\.\d+)?) s", labels)]
    assert [t for _, t in found] == [0, 2, 4, 6, 8, 10, 12]
    assert all(x == int(t / 12.5 * 100) and ticks[x] == "┬" for x, t in found)


class Host(App):
    """One view on a synthetic index, as the BtsharkApp would give it."""

    def __init__(self, index: MessageIndex, session: Session) -> None:
        super().__init__()
        self.index, self.session, self.loading, self.progress = index, session, False, None

    def compose(self) -> ComposeResult:
        yield Ladder(self.index, self.session)


@pilot_test
async def test_a_long_ladder_scrolls_to_its_end_and_grows_while_open() -> None:
    n = 200_000  # 2.5 s with a silence of 0.5 s before the 11th message: long enough to be marked
    session, index = synthetic([(k & 1, 50 + k * 1e-5 + (0.5 if k >= 10 else 0), ev.Have(k)) for k in range(n)])
    app = Host(index, session)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        ladder = app.query_one(Ladder)
        ladder.focus()
        assert ladder.line_count == n + 1 and ladder.line_at(10)[0] == GAP
        await pilot.press("end")
        assert ladder.cursor == n
        visible = ladder.scrollable_content_region.height - HEADER
        assert ladder.scroll_offset.y == n + 1 - visible
        last = ladder.render_line(HEADER + visible - 1).text
        assert f"have #{n - 1}" in last and last.rstrip().endswith(str(n))
        await pilot.press("pageup")
        assert ladder.cursor == n - (visible - 1)
        chosen = ladder.selected_row
        # Rows arriving after the view opened (the capture still loading) are folded in; the
        # session is now 30 s long, so only silences of a second or more keep a line.
        for k in range(n, n + 10):
            index.append(Record(session, 0, k + 1, 80 + k * 1e-5, ev.Have(k)))
        session.end = index.ts[-1]
        ladder.poke()
        await settle(pilot)
        assert ladder.threshold == 1.0
        assert ladder.line_count == n + 10 + 1
        assert ladder.line_at(10)[0] == 10 and ladder.line_at(n)[0] == GAP
        assert ladder.selected_row == chosen  # the cursor stayed on its message as the lines moved


# -- snapshots -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(VIEWS))
def test_view_snapshot(snap_compare, key: str) -> None:
    async def run_before(pilot) -> None:
        await open_view(pilot, key)

    assert snap_compare(make(ARIA2), terminal_size=SIZE, run_before=run_before)


def test_a_filter_over_type_and_session_reads_rows_without_rebuilding_their_events():
    """The filter bar's fast path (``light_record``) keeps exactly the rows the full records do."""
    from inspector.filters import compile_filter
    from inspector.pipeline import CaptureDecode
    from tui.model.index import LIGHT_FIELDS, MessageIndex

    ix = MessageIndex()
    for record in CaptureDecode(CAPTURES / "swarm" / "swarm-tcp.pcap"):
        ix.append(record)
    for expression, light in (("piece", True), ("session in {2 3} && !have", True), ("type == finding", True),
                              ("bt.finding || session == 1", False), ("bt.index < 3", False)):
        keep = compile_filter(expression)
        assert (keep.fields <= LIGHT_FIELDS) == light, expression
        full = [r for r in range(len(ix)) if keep(ix.record(r))]
        assert full, expression
        if light:
            assert [r for r in range(len(ix)) if keep(ix.light_record(r))] == full, expression
