"""What a peer did wrong, as a peer on the other end would see it (Wireshark's expert info).

The parser knows one direction's framing; these checks need both directions' state:
who chokes whom, which blocks were asked for, what each side announced. They run
only while that state can be trusted: from a captured start (both handshakes), and
until the capture loses bytes of the connection (a hole, a resync, a cut), after
which the stateful checks stop for the session rather than guess. Checks that need
no history (request sizes, an index past a known piece count, a piece's hash) go on.

Races are not violations: a request that crossed a choke on the wire (sent within
``CHOKE_GRACE`` of a choke that followed an unchoke) and a piece already in flight when
its cancel was sent are let through or kept as notes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import events as ev
from .pieces import PieceFacts

BLOCK = 16 * 1024
CHOKE_GRACE = 1.0  # seconds: a request this soon after a choke may have crossed it
SILENCE = 130.0  # seconds without a byte: keep-alives are due every 120, and timers run a little late
MAX_OUTSTANDING = 1 << 16  # requests remembered per side; past it, piece and reject checks stop

# Findings that do not make the connection's state unknown: everything else (holes,
# resyncs, cut messages, framing errors, a "land" flow whose two directions are one)
# stops the stateful checks.
HARMLESS = frozenset(("bencode_lenient", "unnamed_extension", "duplicate_peer_id", "info_hash_mismatch",
                      "self_connection", "peer_id_mismatch", "mse_plaintext"))
MAP_MESSAGES = frozenset(("bitfield", "have_all", "have_none"))
FAST_MESSAGES = frozenset(("suggest", "have_all", "have_none", "reject", "allowed_fast"))
BIT_MESSAGES = FAST_MESSAGES | {"extended"}  # what a handshake's reserved bits must allow
INDEXED = frozenset(("have", "request", "piece", "cancel", "reject", "suggest", "allowed_fast"))


@dataclass(slots=True)
class _Side:
    handshake: bytes | None = None  # reserved bytes, once its handshake is seen
    sent: int = 0  # messages after its handshake
    piece_map: str | None = None  # the bitfield / have_all / have_none it sent first
    chatter: bool = False  # it sent, before any piece map, more than extension messages (and port)
    choking: bool = True  # it chokes the other side
    unchoked_once: bool = False
    choked_at: float = 0.0
    allowed_fast: set[int] = field(default_factory=set)  # indices it lets the other request while choked
    requests: dict[tuple[int, int, int], int] = field(default_factory=dict)  # outstanding, asked by it: how often
    cancelled: dict[tuple[int, int, int], None] = field(default_factory=dict)
    requests_lost: bool = False
    ext_ids: dict[str, int] | None = None  # its extension handshake's m: what the other may send it
    quiet_told: bool = False  # its present silence was reported
    early_told: bool = False


@dataclass(slots=True)
class Activity:
    """When a side last sent bytes (``active``), and the length of a silence its latest
    bytes ended (``quiet``, 0 once reported). The pipeline keeps these on the session's
    sides as bytes arrive, so a side sending one slow message is not silent; checks fed
    events alone keep their own, from the events' times."""

    active: float | None = None
    quiet: float = 0.0

    def saw(self, ts: float) -> None:
        if self.active is not None and ts - self.active > SILENCE:
            self.quiet = ts - self.active
        self.active = ts


Found = tuple[int, ev.Finding]  # (side it concerns, finding)


class Conformance:
    """Both sides of one session, checked message by message (``check``)."""

    def __init__(self, trusted: bool, pieces: PieceFacts | None = None, activity: tuple | None = None) -> None:
        self.sides = (_Side(), _Side())
        self.own_clock = activity is None
        self.activity = (Activity(), Activity()) if activity is None else activity
        # Whether a side's stream is held up behind a gap (bytes after it wait): what the
        # other side answers may then answer what we have not read yet. The pipeline sets it.
        self.stalled: Callable[[int], bool] | None = None
        self.sender: Callable[[int], str] = "ab".__getitem__  # a side as a bad hash's detail names it
        self.trusted = trusted  # the connection's start was captured and nothing lost since
        self.pieces = pieces
        self.map_bytes: int | None = None  # the shortest bitfield seen: pieces < 8 * this
        self.answered = 0  # pieces matched to their request while trusted: what the checks compared

    def lost(self) -> None:
        """The capture lost part of the connection: what either side knows is no longer ours to know."""
        self.trusted = False

    def sure(self, side: int) -> bool:
        """Whether what ``side`` said so far is all known: trusted, and its stream not held up."""
        return self.trusted and not (self.stalled is not None and self.stalled(side))

    def count(self) -> int | None:
        return self.pieces.count if self.pieces is not None else None

    def check(self, side: int, event: ev.Message, ts: float) -> list[Found]:
        found: list[Found] = []
        me, other = self.sides[side], self.sides[1 - side]
        kind = event.type
        if self.own_clock:
            self.activity[side].saw(ts)
        if self.trusted:  # cheap tests first: on the busiest captures this runs for every message
            a, b = self.activity
            if (a.quiet or b.quiet or (a.active is not None and ts - a.active > SILENCE)
                    or (b.active is not None and ts - b.active > SILENCE)):
                self._silence(ts, found)
        if kind == "handshake":
            me.handshake = event.reserved
            return found
        me.sent += 1
        if other.handshake is None and not me.early_told and self.sure(1 - side):
            me.early_told = True
            found.append((side, ev.Finding("before_handshake", f"{kind} sent before the other side's handshake")))
        if kind in INDEXED and (self.pieces is not None or self.map_bytes is not None):
            self._index(side, event, found)
        if kind in BIT_MESSAGES and self.trusted and me.handshake is not None and other.handshake is not None:
            self._bits(side, event, other, found)
        if kind in MAP_MESSAGES:
            self._piece_map(side, event, me, found)
        elif me.piece_map is None and kind not in ("extended", "port", "keepalive"):
            me.chatter = True  # (a magnet download's ut_metadata requests, a keep-alive: fine before it)
        if kind == "request":
            self._request(side, event, me, other, ts, found)
        elif kind == "piece":
            self._piece(side, event, other, found)
        elif kind == "cancel":
            key = (event.index, event.begin, event.length)
            if me.requests.pop(key, None) is not None:  # every copy of the request
                _remember(me.cancelled, key)
        elif kind == "reject":
            key = (event.index, event.begin, event.length)
            asked = _answer(other.requests, key)
            if not asked and key in other.cancelled:  # BEP 6: a cancelled request may be rejected too
                del other.cancelled[key]
            elif not asked:
                if self.sure(1 - side) and not other.requests_lost:
                    found.append((side, ev.Finding(
                        "unrequested_reject", f"reject of index {event.index} begin {event.begin} "
                                              f"length {event.length}, which the other side never requested")))
        elif kind == "choke":
            me.choking, me.choked_at = True, ts
            if not self._fast():  # BEP 3: a choke discards the other side's requests
                for key in other.requests:
                    _remember(other.cancelled, key)
                other.requests.clear()
        elif kind == "unchoke":
            me.choking, me.unchoked_once = False, True
        elif kind == "allowed_fast":
            if len(me.allowed_fast) < MAX_OUTSTANDING:
                me.allowed_fast.add(event.index)
        elif kind == "extended" and event.ext_id == 0 and isinstance(event.data, dict):
            m = event.data.get("m")
            if isinstance(m, dict):
                ids = dict(me.ext_ids or {})
                for name, number in m.items():
                    if isinstance(number, int) and not isinstance(number, bool):
                        if number > 0:
                            ids[name] = number
                        else:
                            ids.pop(name, None)
                me.ext_ids = ids
            elif me.ext_ids is None:
                me.ext_ids = {}
        return found

    # -- the checks ----------------------------------------------------------------------

    def _silence(self, ts: float, found: list[Found]) -> None:
        for who in (0, 1):
            s, seen = self.sides[who], self.activity[who]
            if s.handshake is None or seen.active is None:
                continue
            quiet, ongoing = seen.quiet, ts - seen.active
            if quiet:  # a silence its latest bytes ended
                seen.quiet = 0.0
                told, s.quiet_told = s.quiet_told, False
                if told:
                    continue
            elif s.quiet_told or ongoing <= SILENCE:
                continue
            else:
                quiet, s.quiet_told = ongoing, True
            found.append((who, ev.Finding("silence", f"side {'ab'[who]} sent nothing for {quiet:.0f} s while the "
                                                     f"connection was live (keep-alives are due every 2 minutes)")))

    def _fast(self) -> bool:
        a, b = (s.handshake for s in self.sides)
        return a is not None and b is not None and bool(a[7] & 0x04) and bool(b[7] & 0x04)

    def _bits(self, side: int, event: ev.Message, other: _Side, found: list[Found]) -> None:
        kind = event.type
        if kind in FAST_MESSAGES:
            lacking = [label for label, s in zip("ab", self.sides) if not s.handshake[7] & 0x04]  # type: ignore[index]
            if lacking:
                found.append((side, ev.Finding("fast_without_bit", f"{kind} (Fast extension, BEP 6), but side "
                                                                   f"{' and '.join(lacking)}'s handshake lacks "
                                                                   f"the Fast bit")))
        elif kind == "extended":
            lacking = [label for label, s in zip("ab", self.sides) if not s.handshake[5] & 0x10]  # type: ignore[index]
            if lacking:
                found.append((side, ev.Finding("extended_without_bit", f"extended message (BEP 10), but side "
                                                                       f"{' and '.join(lacking)}'s handshake lacks "
                                                                       f"the extension-protocol bit")))
            elif (event.ext_id != 0 and (other.ext_ids is None or event.ext_id not in other.ext_ids.values())
                  and self.sure(1 - side)):
                said = ("never sent an extension handshake" if other.ext_ids is None
                        else f"announced {_ids(other.ext_ids)}")
                found.append((side, ev.Finding("unannounced_extension",
                                               f"extended id {event.ext_id}, which the receiver {said}")))

    def _index(self, side: int, event: ev.Message, found: list[Found]) -> None:
        count = self.count()
        bound = count if count is not None else (8 * self.map_bytes if self.map_bytes is not None else None)
        if bound is not None and event.index >= bound:
            where = "the torrent has" if count is not None else "the bitfield has room for"
            found.append((side, ev.Finding("bad_index", f"{event.type} index {event.index}, but {where} "
                                                        f"{bound} pieces (0 to {bound - 1})")))

    def _piece_map(self, side: int, event: ev.Message, me: _Side, found: list[Found]) -> None:
        kind = event.type
        if self.trusted:
            if me.piece_map is not None:
                found.append((side, ev.Finding("second_bitfield", f"{kind} after this side's {me.piece_map}: "
                                                                  f"the piece map is sent once")))
            elif me.chatter:
                found.append((side, ev.Finding("late_bitfield", f"{kind} as message {me.sent} after the "
                                                                f"handshake: it belongs right after it")))
        if me.piece_map is None:
            me.piece_map = kind
        if kind != "bitfield" or event.missing:
            return
        size = len(event.bits)
        self.map_bytes = size if self.map_bytes is None else min(self.map_bytes, size)
        count = self.count()
        if count is None:
            return
        want = -(-count // 8)
        if size != want:
            found.append((side, ev.Finding("bad_bitfield", f"bitfield of {size} bytes; {count} pieces "
                                                           f"take {want}")))
        elif count % 8 and event.bits[-1] & (0xFF >> (count % 8)):
            found.append((side, ev.Finding("bad_bitfield", f"bitfield sets spare bits past piece {count - 1}")))

    def _request(self, side: int, event: ev.Request, me: _Side, other: _Side, ts: float,
                 found: list[Found]) -> None:
        if event.length > BLOCK or event.begin % BLOCK:
            what = f"{event.length} bytes" if event.length > BLOCK else f"at begin {event.begin}"
            found.append((side, ev.Finding("odd_request", f"request for a block of {what} (index {event.index}): "
                                                          f"clients ask for 16 KiB blocks on 16 KiB boundaries")))
        if (other.choking and event.index not in other.allowed_fast
                and (not other.unchoked_once or ts - other.choked_at > CHOKE_GRACE) and self.sure(1 - side)):
            since = ("never unchoked it" if not other.unchoked_once
                     else f"choked it {ts - other.choked_at:.3f} s before")
            found.append((side, ev.Finding("request_while_choked",
                                           f"request for index {event.index} begin {event.begin}, but the other "
                                           f"side {since} (and did not allow the piece fast)")))
        if len(me.requests) >= MAX_OUTSTANDING:
            me.requests_lost = True
            return
        key = (event.index, event.begin, event.length)
        me.requests[key] = me.requests.get(key, 0) + 1  # asked twice, it may be answered twice

    def _piece(self, side: int, event: ev.Piece, other: _Side, found: list[Found]) -> None:
        key = (event.index, event.begin, event.length)
        if _answer(other.requests, key):
            self.answered += self.trusted
        elif not other.requests_lost and self.sure(1 - side):
            if key in other.cancelled:
                del other.cancelled[key]
                found.append((side, ev.Finding("cancelled_piece", f"piece index {event.index} begin {event.begin} "
                                                                  f"after its request was cancelled or discarded "
                                                                  f"(it may have been in flight)")))
            else:
                found.append((side, ev.Finding("unrequested_piece", f"piece index {event.index} begin "
                                                                    f"{event.begin} length {event.length}, which "
                                                                    f"the other side did not request")))
        pieces = self.pieces
        if pieces is not None and event.data is not None and not event.missing:
            me = self.sender(side)
            verdict = pieces.add_block(event.index, event.begin, event.data, me)
            if verdict is not None and not verdict[0]:
                others = "" if verdict[1] == {me} else f"; its blocks came from {', '.join(sorted(verdict[1]))}"
                found.append((side, ev.Finding("bad_piece_hash", f"piece {event.index} does not match the "
                                                                 f"torrent's hash{others}")))


def _answer(requests: dict[tuple[int, int, int], int], key: tuple[int, int, int]) -> bool:
    """One copy of a request answered (by its piece or a reject); False: there was none."""
    left = requests.get(key, 0) - 1
    if left > 0:
        requests[key] = left
    elif left == 0:
        del requests[key]
    return left >= 0


def _remember(keys: dict, key: tuple) -> None:
    keys[key] = None
    if len(keys) > MAX_OUTSTANDING:
        del keys[next(iter(keys))]


def _ids(ids: dict[str, int]) -> str:
    if not ids:
        return "nothing"
    return ", ".join(f"{number} ({name})" for name, number in sorted(ids.items(), key=lambda kv: kv[1]))
