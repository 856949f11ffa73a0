"""The display-filter compiler (``-Y`` and the TUI's filter bar): its language, its errors, hostile input.

Why these tests: a filter is typed by a person and runs over every message of a capture,
so three things must hold and are checked here.

* It means what tshark's language means: every operator and its word form, sets and
  ranges, ``and``/``or``/``not`` with their precedence, numbers in hex, byte strings in
  every spelling, CIDR networks, and Wireshark's rules for absent and multi-valued fields.
  Each test names the records a filter keeps *and* those it drops, over a small world of
  records built by hand (``WORLD``) where every value is known.
* A bad filter is one line that points at the right column and says what is wrong; a
  hostile one (deep parentheses, thousand-term chains, thousand "!"s, endless numbers) is
  refused or evaluated in bounded time, never a traceback or a recursion error.
* ``X`` and ``not (X)`` split the records in two, for expressions generated from the
  grammar (hypothesis) and run over the records of the committed captures.

The per-field semantics (one table row per field of ``FIELDS``, and ``bt.ext.<key>``) live
in ``test_filters_fields.py``, which shares ``WORLD`` and its helpers from here.

Tests whose docstring starts "Found in review" pin bugs the first version of the
compiler had (each failed then), with what it did and what is expected.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, btshark_ok, run_btshark
from inspector.events import (
    Bitfield, Cancel, Choke, Extended, Finding, Handshake, Have, KeepAlive, Piece, Port, Request, Unknown,
)
from inspector.filters import FIELDS, MAX_DEPTH, FilterError, compile_filter, field_help
from inspector.pipeline import CaptureDecode, Record
from inspector.session import Session
from inspector.wire import reserved_bytes

SAMPLE = REPO / "captures" / "aria2-to-libtorrent.pcap"

# -- the world: records built by hand, every value known ----------------------------------

# S1: TCP from an IPv4 opener to an IPv6 peer; S2: uTP, both IPv4; S3: TCP, IPv6 both ends, MSE.
S1 = Session(1, "tcp", "10.0.0.1:6881", "[::1]:51413", opener_known=True, encrypted=False, start=100.0)
S2 = Session(2, "utp", "192.168.1.5:6882", "10.1.2.3:6881", opener_known=True, encrypted=False, start=100.0)
S3 = Session(3, "tcp", "[fe80::1]:50000", "[2001:db8::7]:443", opener_known=True, encrypted=True, start=100.0)

INFO_HASH = bytes.fromhex("5a695db8c73136690eea7dc51459265a128e6a18")
OTHER_HASH = bytes(range(0x10, 0x24))  # 10 11 12 ... 23
PEER_TR = b"-TR3000-" + bytes(12)  # Transmission 3.00, twelve zero bytes after the prefix
PEER_LT = b"-LT2110-abcdefghijkl"  # libtorrent (rasterbar) 2.1.1
PEER_ZERO = bytes(20)  # no client known: bt.client is "" (present, empty)
EXT_DATA = {
    "m": {"ut_metadata": 3, "ut_pex": 1}, "v": "uTorrent 3.5", "p": 6881, "reqq": 250,
    "mixed": [1, "two", 300], "nums": [1, 300], "empty": [], "complete_ago": -1,
    "added.f": "\x12\x10", "d": {"x": 5}, "d.x": 6, "d.y": {"z": 7},  # keys with dots, as BEP 11's
}
FIRST_TS = 100.0

_ROWS: list[tuple[str, Session, int, int, float, object]] = [
    # name       session side frame ts     event
    ("hs_a", S1, 0, 1, 100.0, Handshake(reserved_bytes("extension_protocol", "fast", "dht"), INFO_HASH, PEER_TR)),
    ("hs_b", S1, 1, 2, 100.25, Handshake(bytes(8), INFO_HASH, PEER_LT)),
    ("ext_hs", S1, 1, 3, 100.5, Extended(ext_id=0, ext_name="handshake", data=EXT_DATA, trailing=0, size=40)),
    ("ext_md", S1, 0, 4, 100.75, Extended(3, "ut_metadata", {"msg_type": 1, "piece": 0, "total_size": 393},
                                          trailing=393, size=420)),
    ("bitfield", S1, 1, 5, 101.0, Bitfield(b"\xff\x01")),  # 9 pieces, size 3
    ("request", S1, 0, 6, 101.5, Request(3, 16384, 16384)),
    ("piece", S1, 1, 7, 102.0, Piece(3, 16384, 16384)),  # size 16393
    ("hole", S1, 1, 8, 102.5, Finding("hole", "10 bytes not captured")),
    ("have", S2, 0, 9, 103.0, Have(150)),
    ("cancel", S2, 1, 10, 103.5, Cancel(200, 0, 16384)),
    ("port_msg", S2, 1, 11, 104.0, Port(6881)),
    ("ext_raw", S2, 1, 12, 104.5, Extended(20, None, None, trailing=0, size=7)),  # not bencoded, unnamed
    ("unknown", S2, 0, 13, 105.0, Unknown(99, 10)),
    ("lenient", S2, 1, 14, 105.5, Finding("bencode_lenient", "keys out of order")),
    ("hs_c", S3, 0, 15, 106.0, Handshake(b"\x81" + bytes(7), OTHER_HASH, PEER_ZERO)),  # azureus_messaging, bit_7
    ("keepalive", S3, 1, 16, 107.0, KeepAlive()),
    ("choke", S3, 0, 17, 108.0, Choke()),
    ("bad", S3, 0, 18, 110.0, Finding("bad_protocol", "not BitTorrent: no handshake")),
]
WORLD: dict[str, Record] = {name: Record(s, side, frame, ts, ev) for name, s, side, frame, ts, ev in _ROWS}
ALL = frozenset(WORLD)
IN_S1 = frozenset(n for n, r in WORLD.items() if r.session is S1)
IN_S2 = frozenset(n for n, r in WORLD.items() if r.session is S2)
IN_S3 = frozenset(n for n, r in WORLD.items() if r.session is S3)
SIDE_A = frozenset(n for n, r in WORLD.items() if r.side == 0)
SIDE_B = ALL - SIDE_A
HANDSHAKES = frozenset({"hs_a", "hs_b", "hs_c"})
EXTENDED = frozenset({"ext_hs", "ext_md", "ext_raw"})
FINDINGS = frozenset({"hole", "lenient", "bad"})


def kept(expression: str, first_ts: Callable[[], float | None] | None = lambda: FIRST_TS,
         world: dict[str, Record] = WORLD) -> set[str]:
    """The names of the records ``expression`` keeps (each answer must be a real bool)."""
    keep = compile_filter(expression, first_ts)
    out = set()
    for name, record in world.items():
        answer = keep(record)
        assert type(answer) is bool, (expression, name, answer)
        if answer:
            out.add(name)
    return out


def check(expression: str, expected: Iterable[str], *, negate: bool = True, **kw) -> None:
    """``expression`` keeps exactly ``expected``, and ``not (expression)`` exactly the rest
    (``negate=False``: not that, for a filter already as deep as parentheses may go)."""
    expected = set(expected)
    assert expected <= ALL, expected - ALL  # a typo in a test's names must not pass quietly
    assert kept(expression, **kw) == expected, expression
    if negate:
        assert kept(f"not ({expression})", **kw) == ALL - expected, f"not ({expression})"


def error(expression: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        compile_filter(expression)
    return info.value


def test_the_world_is_what_the_tests_assume():
    """Guards the hand-built records themselves (a derived property changing would
    silently change what every expectation below means)."""
    assert WORLD["piece"].event.size == 16393 and WORLD["bitfield"].event.count == 9
    assert WORLD["bitfield"].event.size == 3
    assert len(ALL) == len(_ROWS) and IN_S1 | IN_S2 | IN_S3 == ALL


# -- operators ------------------------------------------------------------------------------

@pytest.mark.parametrize("expression,expected", [
    ("bt.index == 3", {"request", "piece"}),
    ("bt.index eq 3", {"request", "piece"}),
    ("bt.index != 3", {"have", "cancel"}),  # absent: false, not "different"
    ("bt.index ne 3", {"have", "cancel"}),
    ("bt.index < 150", {"request", "piece"}),
    ("bt.index lt 150", {"request", "piece"}),
    ("bt.index <= 150", {"request", "piece", "have"}),
    ("bt.index le 150", {"request", "piece", "have"}),
    ("bt.index > 150", {"cancel"}),
    ("bt.index gt 150", {"cancel"}),
    ("bt.index >= 150", {"have", "cancel"}),
    ("bt.index ge 150", {"have", "cancel"}),
    ("bt.index==3", {"request", "piece"}),  # no blanks needed around an operator
    ("bt.index>=150", {"have", "cancel"}),
    ("bt.index<3", set()),
    ('bt.client contains "Trans"', {"hs_a"}),
    ("bt.client contains Trans", {"hs_a"}),  # a bare word is text too
    ('bt.client matches "^libtorrent"', {"hs_b"}),
    ('bt.client ~ "^libtorrent"', {"hs_b"}),
    ('bt.client~"^libtorrent"', {"hs_b"}),
    ('bt.client matches "^LIBTORRENT \\\\(rasterbar\\\\)"', {"hs_b"}),  # case-blind, as Wireshark's
    ('bt.client matches "(?-i:^LIBTORRENT)"', set()),  # unless the pattern says otherwise
    ('bt.client matches "(?-i:^libtorrent)"', {"hs_b"}),
    ('bt.finding.detail matches "not$"', set()),
    ('bt.finding.detail matches "captured$"', {"hole"}),
])
def test_every_comparison_operator_and_its_word_form(expression, expected):
    check(expression, expected)


@pytest.mark.parametrize("expression,expected", [
    ("bt.index in {3 150}", {"request", "piece", "have"}),
    ("bt.index in {3, 150}", {"request", "piece", "have"}),  # commas optional
    ("bt.index in {3,150}", {"request", "piece", "have"}),
    ("bt.index in {3,,150,}", {"request", "piece", "have"}),
    ("bt.index in {100..200}", {"have", "cancel"}),  # both ends included
    ("bt.index in {151..200}", {"cancel"}),
    ("bt.index in {100..199}", {"have"}),
    ("bt.index in {3 160..300}", {"request", "piece", "cancel"}),  # values and ranges together
    ("bt.index in {0x96}", {"have"}),
    ("bt.index in {0x0..0x3}", {"request", "piece"}),
    ("bt.index in {7..7}", set()),
    ("ts in {100.2..100.6}", {"hs_b", "ext_hs"}),  # float ranges
    ("ts in {100.25..100.5}", {"hs_b", "ext_hs"}),
    ("ts in {102 105.5}", {"piece", "lenient"}),
    ("time in {0.5..1}", {"ext_hs", "ext_md", "bitfield"}),
    ("bt.index not in {3}", ALL - {"request", "piece"}),  # not in = not (in): absent fields are kept
    ("bt.index not in {100..200}", ALL - {"have", "cancel"}),
    ("bt.type in {have cancel}", {"have", "cancel"}),
    ('bt.type in {"have", cancel}', {"have", "cancel"}),
    ("bt.type not in {have cancel finding}", ALL - {"have", "cancel"} - FINDINGS),
    ("bt.client in {\"\" \"Transmission 3.00\"}", {"hs_a", "hs_c"}),
    ("bt.info_hash in {10:11 5a695db8c73136690eea7dc51459265a128e6a18}", {"hs_a", "hs_b"}),
])
def test_sets_ranges_and_not_in(expression, expected):
    check(expression, expected)


def test_not_in_is_exactly_the_negation_of_in():
    for field, values in [("bt.index", "{3 150}"), ("tcp.port", "{6881}"), ("ip.addr", "{::1 10.1.2.3}"),
                          ("bt.extensions", "{dht bit_7}"), ("bt.ext.p", "{6881}")]:
        inside = kept(f"{field} in {values}")
        assert inside and inside != ALL, field  # the set keeps some records and drops some
        assert kept(f"{field} not in {values}") == ALL - inside, field


# -- logic -----------------------------------------------------------------------------------

@pytest.mark.parametrize("expression,expected", [
    ("piece or have", {"piece", "have"}),
    ("piece || have", {"piece", "have"}),
    ("piece||have", {"piece", "have"}),
    ("session == 1 and side == b", IN_S1 & SIDE_B),
    ("session == 1 && side == b", IN_S1 & SIDE_B),
    ("session==1&&side==b", IN_S1 & SIDE_B),
    ("not piece", ALL - {"piece"}),
    ("! piece", ALL - {"piece"}),
    ("!piece", ALL - {"piece"}),
    ("!(piece || have)", ALL - {"piece", "have"}),
    ("not not piece", {"piece"}),
    ("! ! piece", {"piece"}),
    ("not ! not piece", ALL - {"piece"}),
    # and binds tighter than or: S2 | (piece & side a), not (S2 | piece) & side a
    ("session == 2 or piece and side == a", IN_S2),
    ("session == 2 || piece && side == a", IN_S2),
    ("(session == 2 or piece) and side == a", IN_S2 & SIDE_A),
    ("piece and side == b or session == 3", {"piece"} | IN_S3),
    # not binds tighter than and: (not piece) & S1, not not (piece & S1)
    ("not piece and session == 1", IN_S1 - {"piece"}),
    ("!piece && session == 1", IN_S1 - {"piece"}),
    ("not (piece and session == 1)", ALL - {"piece"}),
    ("not piece or have", ALL - {"piece"}),
    ("not (piece or have)", ALL - {"piece", "have"}),
    ("((piece))", {"piece"}),
    ("( piece or have ) and ( session == 2 )", {"have"}),
    ("piece or have or cancel and session == 1", {"piece", "have"}),
    ("piece and session == 1 and side == b and frame == 7", {"piece"}),
    ("piece and session == 1 and side == b and frame == 8", set()),
])
def test_logic_and_precedence(expression, expected):
    check(expression, expected)


def test_word_and_symbol_operators_compile_to_the_same_filter():
    pairs = [("piece and not have or session == 3", "piece && ! have || session == 3"),
             ("bt.index eq 3 or bt.index ge 200", "bt.index == 3 || bt.index >= 200")]
    for words, symbols in pairs:
        assert kept(words) == kept(symbols) and kept(words) not in (set(), set(ALL))


def test_blanks_anywhere_are_ignored_and_nothing_is_the_empty_filter():
    check("  \t piece \n ", {"piece"})
    for blank in ("", "   ", "\t\n"):
        exc = error(blank)
        assert exc.reason == "empty filter" and exc.column is None and str(exc) == "empty filter"


# -- literals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("expression,expected", [
    ("bt.index == 0x96", {"have"}),
    ("bt.index == 0X96", {"have"}),
    ("bt.index == 0xc8", {"cancel"}),
    ("bt.index == 0xC8", {"cancel"}),
    ("bt.begin == 0x4000", {"request", "piece"}),
    ("bt.index == 003", {"request", "piece"}),  # leading zeros: still decimal
    ("bt.id == 0x14", EXTENDED),
    ("ts == 102", {"piece"}),  # an integer literal against a float field
    ("ts == 102.0", {"piece"}),
    ("ts >= 1.1e2", {"bad"}),
    ("ts > 1E2", ALL - {"hs_a"}),
    ("session == 999999999999999999", set()),  # 18 digits: a number
])
def test_numbers_in_decimal_hex_and_with_fractions(expression, expected):
    check(expression, expected)


def test_18_digit_numbers_are_numbers_and_more_are_refused_before_int():
    big = 10 ** 18 - 1
    session = Session(big, "tcp", "10.0.0.9:1", "10.0.0.8:2", opener_known=True, encrypted=False, start=0.0)
    world = {"big": Record(session, 0, 1, 1.0, Have(1)), "small": WORLD["have"]}
    assert kept(f"session == {big}", world=world) == {"big"}
    assert kept(f"session != {big}", world=world) == {"small"}
    for text, column in ((f"session == {'9' * 19}", 12), (f"session == {'9' * 40}", 12),
                         (f"session == {'7' * 5000}", 12), (f"session == 0x{'f' * 19}", 12),
                         (f"session in {{1 {'9' * 25}}}", 15), (f"ts > {'1' * 19}", 6)):
        exc = error(text)
        assert "too large" in exc.reason and exc.column == column, (exc.column, exc.reason)


@pytest.mark.parametrize("expression,expected", [
    ("bt.info_hash == 5a:69:5d:b8:c7:31:36:69:0e:ea:7d:c5:14:59:26:5a:12:8e:6a:18", {"hs_a", "hs_b"}),
    ("bt.info_hash == 5a-69-5d-b8-c7-31-36-69-0e-ea-7d-c5-14-59-26-5a-12-8e-6a-18", {"hs_a", "hs_b"}),
    ("bt.info_hash == 5a.69.5d.b8.c7.31.36.69.0e.ea.7d.c5.14.59.26.5a.12.8e.6a.18", {"hs_a", "hs_b"}),
    ("bt.info_hash == 5a695db8c73136690eea7dc51459265a128e6a18", {"hs_a", "hs_b"}),
    ("bt.info_hash == 5A695DB8C73136690EEA7DC51459265A128E6A18", {"hs_a", "hs_b"}),
    ("bt.info_hash == 5a:69:5d", set()),  # a prefix is not equal ...
    ("bt.info_hash contains 5a:69:5d", {"hs_a", "hs_b"}),  # ... it is contained
    ("bt.info_hash contains 12:8e:6a:18", {"hs_a", "hs_b"}),
    ("bt.info_hash contains 1011", {"hs_c"}),
    ("bt.info_hash contains 10-11-12", {"hs_c"}),
    ("bt.info_hash < 20", {"hs_c"}),  # byte strings order as bytes
    ("bt.info_hash > 20", {"hs_a", "hs_b"}),
    ('bt.peer_id contains "-TR"', {"hs_a"}),  # quoted text against bytes
    ("bt.peer_id contains 2d:54:52", {"hs_a"}),
    ("bt.peer_id contains 2d:54:52:33:30:30:30:2d", {"hs_a"}),
    ('bt.peer_id contains "-"', {"hs_a", "hs_b"}),
    ('bt.peer_id contains "\\x00\\x00"', {"hs_a", "hs_c"}),  # an escaped byte in text
    ('bt.peer_id == "-LT2110-abcdefghijkl"', {"hs_b"}),
    ('bt.peer_id matches "^-tr3"', {"hs_a"}),
    ('bt.peer_id matches "jkl$"', {"hs_b"}),
    ('bt.peer_id contains "-tr"', set()),  # contains is exact, matches is case-blind
])
def test_byte_strings_in_every_spelling(expression, expected):
    check(expression, expected)


@pytest.mark.parametrize("text,value", [
    ('"a\\\\b"', "a\\b"), ('"a\\"b"', 'a"b'), ('"\\n\\t\\r"', "\n\t\r"), ('"\\0\\a"', "\0\a"),
    ('"\\x41\\x7e"', "A~"), ('""', ""), ('"a b  c"', "a b  c"), ('"( ) { } && || !"', "( ) { } && || !"),
])
def test_string_escapes(text, value):
    """A string's value, escapes decoded: the finding whose detail is exactly it is kept."""
    world = {"it": Record(S1, 0, 1, 1.0, Finding("hole", value)),
             "other": Record(S1, 0, 1, 1.0, Finding("hole", value + "x"))}
    assert kept(f"bt.finding.detail == {text}", world=world) == {"it"}
    assert kept(f"bt.finding.detail != {text}", world=world) == {"other"}


# -- addresses ---------------------------------------------------------------------------------

@pytest.mark.parametrize("expression,expected", [
    ("ip.addr == 10.0.0.0/8", IN_S1 | IN_S2),
    ("ip.addr in 10.0.0.0/8", IN_S1 | IN_S2),
    ("ip.addr != 10.0.0.0/8", IN_S3),  # S2 has 192.168.1.5 but also 10.1.2.3: not every value differs
    ("ip.src == 10.0.0.0/8", ({"hs_a", "ext_md", "request"} | (IN_S2 & SIDE_B))),
    ("ip.src in 10.0.0.0/8", ({"hs_a", "ext_md", "request"} | (IN_S2 & SIDE_B))),
    ("ip.src != 10.0.0.0/8", (IN_S1 & SIDE_B) | (IN_S2 & SIDE_A) | IN_S3),
    ("ip.dst == 10.0.0.0/8", (IN_S1 & SIDE_B) | (IN_S2 & SIDE_A)),
    ("ip.src in 127.0.0.0/8", set()),
    ("ip.addr == 192.168.0.0/16", IN_S2),
    ("ip.addr == 192.168.1.5", IN_S2),
    ("ip.addr == 10.0.0.1", IN_S1),
    ("ip.addr == ::1", IN_S1),
    ("ip.src == ::1", IN_S1 & SIDE_B),
    ("ip.dst == ::1", IN_S1 & SIDE_A),
    ("ip.addr == fe80::/10", IN_S3),
    ("ip.addr in fe80::/10", IN_S3),
    ("ip.src == fe80::1", IN_S3 & SIDE_A),
    ("ip.dst == 2001:db8::/32", IN_S3 & SIDE_A),
    ("ip.src == 2001:db8::7", IN_S3 & SIDE_B),
    ("ip.addr == ::/0", IN_S1 | IN_S3),  # every IPv6 address, no IPv4 one
    ("ip.addr == 0.0.0.0/0", IN_S1 | IN_S2),
    ("ip.addr == 10.0.0.1/32", IN_S1),
    ("ip.addr == 10.0.0.7/8", IN_S1 | IN_S2),  # host bits in a network are ignored
    ("ip.addr in {10.0.0.1 fe80::/10}", IN_S1 | IN_S3),
    ("ip.addr in {10.0.0.1, fe80::/10}", IN_S1 | IN_S3),
    ("ip.addr not in {10.0.0.1 fe80::/10}", IN_S2),
    ("ip.src in {::1 192.168.1.5}", (IN_S1 & SIDE_B) | (IN_S2 & SIDE_A)),
    ("ip.addr", ALL),
    ("ip.src", ALL),
])
def test_addresses_and_networks_v4_and_v6(expression, expected):
    check(expression, expected)


@pytest.mark.parametrize("expression,expected", [
    # IPv4 addresses sort before IPv6 ones; comparing the two never raises
    ("ip.src > 10.0.0.1", ALL - {"hs_a", "ext_md", "request"}),
    ("ip.src >= 10.0.0.1", ALL),
    ("ip.src < ::", {"hs_a", "ext_md", "request"} | IN_S2),
    ("ip.src <= 10.0.0.1", {"hs_a", "ext_md", "request"}),
    ("ip.dst <= 10.0.0.1", IN_S1 & SIDE_B),
    ("ip.addr >= fe80::", IN_S3),
    ("ip.addr < ::2", IN_S1 | IN_S2),  # ::1 and every IPv4 address
    ("ip.addr > 255.255.255.255", IN_S1 | IN_S3),
    ("ip.src < 0.0.0.0", set()),
])
def test_address_ordering_across_v4_and_v6(expression, expected):
    check(expression, expected)


# -- error positions ---------------------------------------------------------------------------

@pytest.mark.parametrize("expression,column,says", [
    ("bt.index =< 3", 10, "expected ==, !=, <, <=, >, >=, contains, matches or in after bt.index, got '=<'"),
    ("\tbt.index =< 3", 11, "got '=<'"),
    ("bt.index !~ 3", 10, "got '!~'"),
    ('bt.index "3"', 10, "or and/or, after bt.index"),
    ("bt.index not piece", 10, "after bt.index, got 'not'"),
    ("bt.indx == 3", 1, "unknown field or message type 'bt.indx'; did you mean bt.index?"),
    ("piece and bt.clinet", 11, "did you mean bt.client?"),
    ("zzzzzz", 1, "see `btshark filters`"),
    ('bt.client == "abc', 14, "a string is not closed"),
    ('bt.client == "a\\q"', 16, "unknown escape '\\q'"),
    ('bt.client == "\\x4"', 15, "unknown escape '\\x'"),
    ('bt.client matches "["', 19, "not a regular expression"),
    ('bt.ext.v matches "(a"', 18, "not a regular expression"),
    ("bt.client matches abc", 19, "matches needs a quoted regular expression"),
    ("bt.index in {5..3}", 14, "the range 5..3 is empty"),
    ("ts in {2.5..1.5}", 8, "the range 2.5..1.5 is empty"),
    ("bt.index in {1..x}", 17, "expected a number"),
    ("bt.ext.p in {a..b}", 14, "a range needs numbers at both ends"),
    ("bt.index in {}", 13, "an empty set '{}' matches nothing"),
    ("bt.index in { , }", 13, "an empty set"),
    ("bt.index in 3", 13, "expected '{' after 'in'"),
    ("bt.index in {1 (}", 16, "expected a value for bt.index, got '('"),
    ("bt.index in {1 2", 17, "the filter ends too early"),
    ("bt.type == pice", 12, "bt.type has no value 'pice' (did you mean piece?)"),
    ("bt.finding.severity == warn", 24, "did you mean warning?"),
    ("bt.finding == hol", 15, "did you mean hole?"),
    ("transport == udp", 14, "did you mean utp?"),
    ("side == c", 9, "side has no value 'c' (one of: a, b)"),
    ("bt.type in {piece hve}", 19, "no value 'hve'"),
    ("bt.index contains 3", 10, "bt.index is a number; contains needs a text or byte-string field"),
    ('bt.index matches "3"', 10, "matches needs a text or byte-string field"),
    ("ip.addr contains 10", 9, "ip.addr is an address; contains"),
    ("encrypted contains 1", 11, "encrypted is true or false; contains"),
    ("bt.type < piece", 9, "bt.type names a kind, it has no order"),
    ("side >= a", 6, "has no order"),
    ("encrypted < 1", 11, "encrypted is true or false; only == and != compare it"),
    ("encrypted in {1}", 14, "'in' needs a set of values"),
    ("encrypted == yes", 14, "encrypted is true or false (1 or 0), not 'yes'"),
    ("bt.index == abc", 13, "expected a number (decimal, 0x hex), got 'abc'"),
    ("bt.index == 1.5", 13, "expected a number (decimal, 0x hex), got '1.5'"),
    ("bt.index == -1", 13, "got '-1'"),
    ("bt.index == 0x", 13, "got '0x'"),
    ("ts > 1.2.3", 6, "expected a number (decimal, 0x hex, or with a fraction), got '1.2.3'"),
    ('bt.index == "3"', 13, 'bt.index is a number; "3" is text'),
    ("bt.index == )", 13, "expected a value for bt.index, got ')'"),
    ("bt.peer_id == zz", 15, "bt.peer_id is a byte string"),
    ("bt.peer_id == 5", 15, "bt.peer_id is a byte string"),  # one hex digit is not a byte
    ("bt.peer_id == 5a:6", 15, "bt.peer_id is a byte string"),
    ("ip.addr == 1.2.3", 12, "ip.addr is an IP address"),
    ("ip.src == 10.0.0.0/33", 11, "ip.src is an IP address"),
    ("ip.addr < 10.0.0.0/8", 9, "a network (CIDR) only takes == or != (or in), not <"),
    ("piece have", 7, "expected and, or or the end of the filter, got 'have'"),
    ("piece and have have", 16, "got 'have'"),
    ('piece "x"', 7, "got '\"x\"'"),
    ("piece )", 7, "unexpected ')': no '(' is open"),
    ("(piece))", 8, "unexpected ')'"),
    ("(piece", 7, "missing ')' for the '(' at column 1"),
    ("piece or ((have)", 17, "missing ')' for the '(' at column 10"),
    ("(piece have", 8, "expected ')' or an operator (and, or), got 'have'"),
    ("()", 2, "expected a field, a message type or '(', got ')'"),
    ('"piece"', 1, "expected a field, a message type or '(', got '\"piece\"'"),
    ("&& piece", 1, "got '&&'"),
    ("piece & have", 7, "got '&'"),
    ("bt.ext.m..x", 1, "'bt.ext.m..x' has an empty key"),
    ("bt.ext.", 1, "unknown field or message type 'bt.ext.'"),
    ("session == 9999999999999999999", 12, "the number 9999999999999999999 is too large"),
    ("bt.index == 0x1234567890abcdef123", 13, "is too large"),
    # the filter ending too early points one past its end (trailing blanks not counted)
    ("bt.index ==", 12, "the filter ends too early: expected a value after '=='"),
    ("bt.index ==   ", 12, "the filter ends too early"),
    ("piece and", 10, "the filter ends too early: expected a field, a message type or '('"),
    ("not", 4, "ends too early"),
    ("bt.index in", 12, "the filter ends too early: expected '{'"),
    ("bt.index not in", 16, "ends too early"),
    ("(", 2, "ends too early"),
])
def test_each_bad_filter_points_at_its_column_and_says_why(expression, column, says):
    exc = error(expression)
    assert (exc.column, says in exc.reason) == (column, True), (exc.column, exc.reason)
    quoted = expression.replace("\t", "\\t")  # as typed; what is not printable escaped
    assert str(exc) == f"column {column} of '{quoted}': {exc.reason}"  # one line, quoting the filter
    assert str(exc).isprintable()


def test_a_long_filter_is_quoted_around_the_error_only():
    text = "(" * (MAX_DEPTH + 1) + "have" + ")" * (MAX_DEPTH + 1)
    exc = error(text)
    column = MAX_DEPTH + 1
    assert exc.column == column and f"deeper than {MAX_DEPTH}" in exc.reason
    start, end = column - 1 - 30, column - 1 + 30
    assert str(exc).startswith(f"column {column} of …'{text[start:end]}'…: ")
    assert text not in str(exc)


def test_an_error_quotes_the_filter_as_typed_in_one_printable_line():
    """Found in review: the filter was quoted with repr and the CLI escaped that again, so one
    backslash typed showed as four. Now each character shows as typed, save the ones that are
    not printable (anywhere in the line: a bt.ext key may hold any character)."""
    exc = error('bt.ext.v matches "\\d+')
    assert str(exc).startswith("""column 19 of 'bt.ext.v matches "\\d+': unknown escape '\\d'""")
    exc = error("tcp.port == \\")  # the reason quotes the token as typed too
    assert str(exc) == "column 13 of 'tcp.port == \\': expected a number (decimal, 0x hex), got '\\'"
    exc = error("bt.ext.\x1bkey\u202e == ")
    assert str(exc).isprintable() and exc.reason.isprintable()
    assert "bt.ext.\\x1bkey\\u202e" in str(exc) and "\x1b" not in str(exc)


def test_a_message_type_used_as_a_field_is_not_suggested_as_itself():
    """Found in review: ``piece == 3`` says "unknown field or message type 'piece'; did you mean
    piece?" (the suggestion is the word typed). Expected: the error points at column 1 and
    does not offer the very word as the correction."""
    for word in ("piece", "finding", "have"):
        exc = error(f"{word} == 3")
        assert exc.column == 1
        assert f"did you mean {word}?" not in exc.reason, exc.reason


def test_a_long_word_of_hex_letters_is_not_called_a_too_large_number():
    """Found in review: ``bt.index == deadbeefdeadbeefdead`` (an info hash pasted into a number
    field) is refused as "the number deadbeef… is too large"; it is not a number at all.
    Expected: column 13 and "expected a number", as for any other word."""
    exc = error("bt.index == deadbeefdeadbeefdead")
    assert exc.column == 13
    assert "expected a number" in exc.reason and "too large" not in exc.reason, exc.reason


def test_an_operator_is_never_taken_as_a_bt_ext_value():
    """Found in review: for ``bt.ext.*`` the value token is not checked, so ``bt.ext.v == )``
    compiles (comparing with the text ")") where every other field says "expected a value".
    Expected: a FilterError at the operator's column."""
    for text, column in (("bt.ext.v == )", 13), ("bt.ext.v in {( }", 14), ("bt.ext.v != &&", 13)):
        with pytest.raises(FilterError) as info:
            compile_filter(text)
        assert info.value.column == column and "expected a value" in info.value.reason, text


# -- bare words -------------------------------------------------------------------------------

@pytest.mark.parametrize("expression,expected", [
    ("piece", {"piece"}),
    ("handshake", HANDSHAKES),
    ("extended", EXTENDED),
    ("finding", FINDINGS),
    ("keepalive", {"keepalive"}),
    ("unknown", {"unknown"}),
    ("have_all", set()),
    ("port", {"port_msg"}),  # bare: the port MESSAGE ...
    ("port and session == 2", {"port_msg"}),
    ("(port)", {"port_msg"}),
    ("port == 6881", IN_S1 | IN_S2),  # ... compared: the field (either end's port)
    ("port in {443}", IN_S3),
    ("port eq 443", IN_S3),
    ("bt.port", {"port_msg"}),
    ("encrypted", IN_S3),  # a bare boolean: true when true (not "present")
    ("!encrypted", IN_S1 | IN_S2),
    ("bt.index", {"request", "piece", "have", "cancel"}),  # a bare field: present
    ("bt.extensions", {"hs_a", "hs_c"}),  # a bare multi-valued field: some value
])
def test_bare_words(expression, expected):
    check(expression, expected)


def test_port_not_in_is_the_field_like_port_in():
    """Found in review: ``port in {…}`` is the field but ``port not in {…}`` is read as the bare
    port message followed by a stray "not" (FilterError at column 6). Expected: the field,
    the complement of ``port in {…}``."""
    check("port not in {6881}", IN_S3)


def test_every_message_type_is_a_bare_word_and_a_bt_type_value():
    from inspector.events import MESSAGE_TYPES
    for name in (*MESSAGE_TYPES, "finding"):
        expected = {n for n, r in WORLD.items() if r.event.type == name}
        assert kept(name) == kept(f"bt.type == {name}") == kept(f"type == {name}") == expected, name


# -- hostile input -----------------------------------------------------------------------------

@pytest.mark.parametrize("expression", [
    "(" * 250 + "piece" + ")" * 250,
    "(" * (MAX_DEPTH + 1) + "piece" + ")" * (MAX_DEPTH + 1),
    "piece or " + "(" * (MAX_DEPTH + 1) + "piece" + ")" * (MAX_DEPTH + 1),
    "(" * 20_000,
], ids=["250-deep", "one-too-deep", "after-a-term", "20k-open"])
def test_deep_parentheses_are_refused_at_the_first_one_too_many(expression):
    exc = error(expression)
    assert f"parentheses nest deeper than {MAX_DEPTH}" in exc.reason
    assert exc.column == expression.index("(" * (MAX_DEPTH + 1)) + MAX_DEPTH + 1


def test_nesting_up_to_the_limit_works():
    check("(" * MAX_DEPTH + "have" + ")" * MAX_DEPTH, {"have"}, negate=False)
    check("!(" * MAX_DEPTH + "have" + ")" * MAX_DEPTH, {"have"}, negate=False)  # 64 negations: even
    check("!(" * (MAX_DEPTH - 1) + "have" + ")" * (MAX_DEPTH - 1), ALL - {"have"})


def test_parentheses_depth_is_counted_back_down_after_each_group():
    """Many groups in a row, or deep nesting after a group, are within the limit."""
    check(" || ".join(["(have)"] * (MAX_DEPTH + 5)), {"have"})
    deep = "(" * MAX_DEPTH + "have" + ")" * MAX_DEPTH
    check(f"(piece) || {deep}", {"piece", "have"}, negate=False)
    exc = error(f"(piece) || ({deep})")
    assert "deeper than" in exc.reason and exc.column == len("(piece) || (") + MAX_DEPTH


def test_a_filter_within_the_depth_limit_compiles_whatever_it_nests():
    """Found in review: each level of ``!(a || b && …)`` costs three parentheses in the Python
    source, so a filter within MAX_DEPTH whose innermost test is itself deep (here the
    reserved-bit names) passes Python's limit of 200 nested parentheses: compile_filter
    raises SyntaxError "too many nested parentheses", which the CLI and the TUI do not
    catch (a traceback). Expected: it compiles and keeps what it means."""
    for leaf, hits in (("!bt.extensions != dht", {"hs_a", "hs_b"}), ("bt.extensions not in {dht}", {"hs_b", "hs_c"})):
        # keepalive or (handshake and LEVELS), each level "not (keepalive or (handshake and ...))":
        # a keepalive is kept; a handshake when the leaf holds (64 negations); nothing else
        text = "keepalive || handshake && " + "!(keepalive || handshake && " * MAX_DEPTH + leaf + ")" * MAX_DEPTH
        try:
            keep = compile_filter(text)
        except FilterError as exc:  # refusing it cleanly would at least not be a traceback
            pytest.fail(f"a filter {MAX_DEPTH} deep was refused: {exc.reason}")
        assert {n for n, r in WORLD.items() if keep(r)} == {"keepalive"} | hits


def test_long_chains_and_many_negations_neither_recurse_nor_fail():
    check(" || ".join(["keepalive"] * 999 + ["have"]), {"keepalive", "have"})
    check(" or ".join(f"frame == {n}" for n in range(1000, 2000)) + " or piece", {"piece"})
    check(" && ".join(["!keepalive"] * 1000), ALL - {"keepalive"})
    check(" and ".join(["bt.index"] * 999 + ["bt.index >= 150"]), {"have", "cancel"})
    check("! " * 1000 + "piece", {"piece"})
    check("! " * 1001 + "piece", ALL - {"piece"})
    check("not " * 1000 + "piece", {"piece"})
    check("not " * 999 + "(piece)", ALL - {"piece"})
    check("bt.index in {" + " ".join(map(str, range(4, 10_000))) + "}", {"have", "cancel"})


def test_a_thousand_bangs_written_together_are_a_thousand_negations():
    """Found in review: the tokenizer reads a run of operator characters as one token, so
    ``!!piece`` (and the hostile ``"!" * 1000 + "piece"``, which the old suite accepted)
    is refused: "expected a field, a message type or '(', got '!!'" (column 1).
    Expected: each "!" is a negation, as ``! ! piece`` already is."""
    check("!!piece", {"piece"})
    check("piece && !!have", set())  # a piece is never a have
    check("piece || !!have", {"piece", "have"})
    check("!" * 1000 + "piece", {"piece"})
    check("!" * 1001 + "piece", ALL - {"piece"})


def test_many_small_expressions_compile_or_fail_cleanly_and_split_the_world():
    """Every sequence of up to three of these tokens is a FilterError or a filter whose
    negation keeps exactly the other records."""
    atoms = ["piece", "port", "(", ")", "!", "not", "&&", "or", "bt.index", "==", "3", "in", "{", "}",
             "ip.addr", "::1", "bt.ext.p", ".."]
    compiled = 0
    for n in range(1, 4):
        for combo in itertools.product(atoms, repeat=n):
            text = " ".join(combo)
            try:
                keep = compile_filter(text)
            except FilterError as exc:
                assert exc.column is None or 1 <= exc.column <= len(text) + 1, text
                continue
            compiled += 1
            inverse = compile_filter(f"not ({text})")
            for record in WORLD.values():
                assert keep(record) is not inverse(record), text
    assert compiled > 50  # the atoms do make valid filters


# -- the command line ----------------------------------------------------------------------------

def test_the_command_line_reports_a_bad_filter_in_one_line_with_its_column():
    run = run_btshark("read", SAMPLE, "-Y", "bt.index =< 3")
    err = run.stderr.decode()
    assert run.returncode == 2 and run.stdout == b""
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert err.startswith("btshark: error: ") and "column 10" in err and "=<" in err


@pytest.mark.parametrize("expression", ["(" * 250 + "piece" + ")" * 250, "session == " + "7" * 5000],
                         ids=["250-deep", "5000-digits"])
def test_the_command_line_refuses_hostile_filters_in_one_line(expression):
    run = run_btshark("read", SAMPLE, "-Y", expression, "-c", "1")
    err = run.stderr.decode()
    assert "Traceback" not in err
    assert run.returncode == 2 and len(err.splitlines()) == 1 and err.startswith("btshark: error: ")
    assert run.stdout == b""


def test_the_command_line_runs_a_thousand_term_filter():
    run = run_btshark("read", SAMPLE, "-Y", " || ".join(["piece"] * 1000), "-c", "2")
    lines = run.stdout.decode().splitlines()
    assert run.returncode == 0 and run.stderr == b""
    assert len(lines) == 2 and all(" piece " in line for line in lines)


def test_the_command_line_filters_what_it_prints():
    run = run_btshark("read", SAMPLE, "-Y", "bt.index == 3 && piece && ip.src in 127.0.0.0/8")
    lines = run.stdout.decode().splitlines()
    assert run.returncode == 0
    assert len(lines) == 4 and all("piece index=3 " in line for line in lines)


# -- X and not X split real records ----------------------------------------------------------

CAPTURES = REPO / "captures"


class Records(list):
    """Records with a short repr: hypothesis shows each example's arguments, fixtures too."""

    def __repr__(self) -> str:
        return f"<{len(self)} records>"


@pytest.fixture(scope="module")
def real_records() -> Records:
    """Every record of the committed captures (the twins too: their losses give findings),
    and the hand-built world (IPv6, uTP, port messages, bt.ext lists), decoded once."""
    paths = sorted(CAPTURES.rglob("*.pcap*"))
    records = [record for path in paths for record in CaptureDecode(path)]
    types = {r.event.type for r in records}
    assert {"handshake", "extended", "piece", "finding"} <= types, types  # what the grammar aims at
    return Records(records + list(WORLD.values()))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _hex(data: bytes, sep: str) -> str:
    return sep.join(f"{b:02x}" for b in data)


_INTS = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 7, 9, 13, 16, 20, 68, 150, 393, 443, 6881, 16384, 16393, 51413, 55731]),
    st.integers(0, 70_000))
INT_LIT = st.one_of(_INTS.map(str), _INTS.map(hex))
FLOAT_LIT = st.one_of(
    st.sampled_from(["0", "0.25", "1", "100", "102.0", "1795838809.265053", "1795838809.5", "1795977472.11249",
                     "1e3", "1795838810", "0.423053"]),
    st.floats(0, 2e9, allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.6f}"))
_TEXT = st.one_of(st.sampled_from(["libtorrent", "Transmission", "aria2", "bytes", "hole", "handshake", "ut_metadata",
                                   "dht", "fast", "extension", "", "-LT", "-TR", "piece"]),
                  st.text(st.characters(codec="latin-1", exclude_categories=("Cs",)), max_size=4))
TEXT_LIT = _TEXT.map(_quote)
WORD_LIT = st.sampled_from(["libtorrent", "handshake", "ut_metadata", "dht", "fast", "bit_7", "hole", "x"])
REGEX_LIT = st.sampled_from(["^lib", "torrent", "^-LT", "^$", ".", "\\\\d+", "(?-i:^A)", "^(have|piece)$",
                             "bytes? not", "2\\\\.1", "[a-f]{3}"]).map(lambda p: f'"{p}"')
BYTES_LIT = st.one_of(
    st.sampled_from(["2d:4c:54", "2d:54:52:33", "5a:69:5d", "00:00:00:00:00:10:00:05", "0000000000100004",
                     "10", "05", "00", '"-LT2110-"', '"-TR"', '"A2-"', "41:32:2d"]),
    st.builds(_hex, st.binary(min_size=1, max_size=4), st.sampled_from([":", "-", ".", ""])),
    st.binary(min_size=0, max_size=3).map(lambda b: _quote(b.decode("latin-1"))))
ADDR_LIT = st.sampled_from(["127.0.0.1", "10.0.0.1", "192.168.1.5", "::1", "2001:db8::7", "fe80::1", "0.0.0.0",
                            "255.255.255.255", "::"])
NET_LIT = st.sampled_from(["127.0.0.0/8", "10.0.0.0/8", "fe80::/10", "::/0", "0.0.0.0/0", "127.0.0.1/32"])
EXT_KEYS = st.sampled_from(["v", "p", "m", "m.ut_metadata", "m.ut_pex", "m.lt_donthave", "reqq", "metadata_size",
                            "complete_ago", "e", "upload_only", "yourip", "mixed", "nums", "empty", "msg_type",
                            "piece", "total_size", "nope", "m.ut_metadata.deeper", "added.f", "d.x", "d.y.z",
                            "d.z"])
EXT_LIT = st.one_of(INT_LIT, TEXT_LIT, WORD_LIT)
_CMP = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "eq", "ne", "lt", "le", "gt", "ge"])
_EQ = st.sampled_from(["==", "!=", "eq", "ne"])
_MATCH = st.sampled_from(["matches", "~"])


def _set(items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda xs, sep: "{" + sep.join(xs) + "}", st.lists(items, min_size=1, max_size=4),
                     st.sampled_from([" ", ", ", ","]))


def _range(lit: st.SearchStrategy[str], numbers: st.SearchStrategy, shown: Callable[[object], str] = str
           ) -> st.SearchStrategy[str]:
    """A set item: a literal, or a range ``low..high`` (never empty: its ends in order)."""
    return st.one_of(lit, st.tuples(numbers, numbers).map(
        lambda ab: f"{shown(min(ab))}..{shown(max(ab))}"))


def _membership(name: str, items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda op, s: f"{name} {op} {s}", st.sampled_from(["in", "not in"]), _set(items))


def _tests_of(name: str) -> st.SearchStrategy[str]:
    """Every form of test the grammar allows on one field, with values of its type."""
    field = FIELDS[name]
    bare = st.just(name) if name != "port" else st.just("port")  # bare port: the message
    cmp = lambda ops, lit: st.builds(lambda op, v: f"{name} {op} {v}", ops, lit)  # noqa: E731
    if field.kind == "int":
        return st.one_of(bare, cmp(_CMP, INT_LIT),
                         _membership(name, _range(INT_LIT, _INTS)))
    if field.kind == "float":
        return st.one_of(bare, cmp(_CMP, FLOAT_LIT),
                         _membership(name, _range(FLOAT_LIT, st.floats(0, 2e9), lambda x: f"{x:.3f}")))
    if field.kind == "enum":
        values = st.sampled_from(sorted(field.values))
        return st.one_of(bare, cmp(_EQ, values), cmp(st.just("contains"), st.one_of(WORD_LIT, TEXT_LIT)),
                         cmp(_MATCH, REGEX_LIT), _membership(name, values))
    if field.kind == "str":
        lit = st.one_of(TEXT_LIT, WORD_LIT)
        return st.one_of(bare, cmp(_CMP, lit), cmp(st.just("contains"), lit), cmp(_MATCH, REGEX_LIT),
                         _membership(name, lit))
    if field.kind == "bytes":
        return st.one_of(bare, cmp(_CMP, BYTES_LIT), cmp(st.just("contains"), BYTES_LIT), cmp(_MATCH, REGEX_LIT),
                         _membership(name, BYTES_LIT))
    if field.kind == "addr":
        return st.one_of(bare, cmp(_CMP, ADDR_LIT), cmp(_EQ, NET_LIT),
                         st.builds(lambda net: f"{name} in {net}", NET_LIT),
                         _membership(name, st.one_of(ADDR_LIT, NET_LIT)))
    if field.kind == "bool":
        return st.one_of(bare, cmp(_EQ, st.sampled_from(["0", "1", "true", "false", "True", "FALSE"])))
    raise AssertionError(field.kind)


_EXT_TESTS = st.builds(lambda key, rest: f"bt.ext.{key}{rest}", EXT_KEYS, st.one_of(
    st.just(""),
    st.builds(lambda op, v: f" {op} {v}", _CMP, EXT_LIT),
    st.builds(lambda v: f" contains {v}", EXT_LIT),
    st.builds(lambda op, v: f" {op} {v}", _MATCH, REGEX_LIT),
    st.builds(lambda op, s: f" {op} {s}", st.sampled_from(["in", "not in"]),
              _set(_range(EXT_LIT, st.integers(0, 70_000)))),
))
LEAVES = st.one_of(
    st.sampled_from(["piece", "port", "finding", "handshake", "extended", "have", "request", "keepalive"]),
    st.sampled_from(sorted(FIELDS)).flatmap(_tests_of),
    _EXT_TESTS,
)
EXPRESSIONS = st.recursive(LEAVES, lambda inner: st.one_of(
    st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or", "&&", "||"]), inner),
    st.builds(lambda neg, a: f"{neg}{a}", st.sampled_from(["not ", "! "]), inner),
    st.builds(lambda a: f"({a})", inner),
    st.builds(lambda a: f"!({a})", inner),
), max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=EXPRESSIONS)
def test_x_and_not_x_split_the_records_of_real_captures(real_records, expression):
    keep = compile_filter(expression, lambda: FIRST_TS)
    drop = compile_filter(f"not ({expression})", lambda: FIRST_TS)
    bang = compile_filter(f"!({expression})", lambda: FIRST_TS)
    for record in real_records:
        kept_it = keep(record)
        assert type(kept_it) is bool
        assert drop(record) is not kept_it and bang(record) is not kept_it, (expression, record)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(left=EXPRESSIONS, right=EXPRESSIONS)
def test_and_or_of_two_filters_is_and_or_of_their_answers(real_records, left, right):
    """Joining two compiled filters never lets one's bindings (constants, the walrus slots)
    leak into the other's."""
    a, b = compile_filter(left), compile_filter(right)
    both, either = compile_filter(f"({left}) and ({right})"), compile_filter(f"({left}) || ({right})")
    for record in real_records:
        x, y = a(record), b(record)
        assert both(record) is (x and y) and either(record) is (x or y), (left, right, record)


def test_field_help_lists_every_field_but_the_legacy_alias():
    rows = field_help()
    names = [name for name, _, _ in rows]
    assert sorted(names[:-1]) == sorted(set(FIELDS) - {"type"}) and names[-1].startswith("bt.ext.")
    assert dict((n, t) for n, t, _ in rows)["ip.addr"] == "address (several)"


@pytest.mark.parametrize("expression", ["piece", "bt.index >= 8 || side == a", "ip.src == 127.0.0.10/32 && not have"])
def test_the_command_line_splits_the_records_by_a_filter_and_its_negation(expression):
    """``-Y X`` and ``-Y 'not (X)'`` through ``btshark read``: together every line, once."""
    capture = REPO / "captures" / "swarm" / "swarm-tcp.pcap"
    every = btshark_ok("read", capture, "-T", "jsonl").stdout.splitlines()
    kept = btshark_ok("read", capture, "-T", "jsonl", "-Y", expression).stdout.splitlines()
    rest = btshark_ok("read", capture, "-T", "jsonl", "-Y", f"not ({expression})").stdout.splitlines()
    assert kept and rest and sorted(kept + rest) == sorted(every)


@pytest.mark.parametrize("text,column,says", [
    ("bt.index == 0x1_0", 13, "expected a number"),  # int() takes "_"; a filter does not
    ("bt.ext.v == 12345678901234567890", 13, "the number 12345678901234567890 is too large"),
    ("frame == " + "1" * 30, 10, "the number " + "1" * 20 + "… is too large"),
])
def test_numbers_that_are_not_numbers_or_too_long_are_refused(text, column, says):
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    assert info.value.column == column and says in info.value.reason


def test_where_a_long_filter_is_cut_for_its_error():
    """Up to 60 characters a filter is quoted whole; past that, 30 either side of the error,
    with '…' only on a side that was cut."""
    whole = "bt.index == 1 && " + "x" * 43  # 60 characters, the error at the first x
    assert len(whole) == 60 and str(error(whole)).startswith(f"column 18 of '{whole}': ")
    longer = whole + "y"  # 61: cut, 30 before column 18 reaches the start, so no '…' there
    assert str(error(longer)).startswith(f"column 18 of '{longer[:47]}'…: ")
    tail = "bt.index == 1 && " * 4 + "bt.index =< 3"  # the error at the end: cut before only
    exc = error(tail)
    assert str(exc).startswith(f"column {exc.column} of …'{tail[exc.column - 31:]}': ")


def test_an_error_s_text_escapes_what_is_not_printable_and_leaves_backslashes():
    assert str(FilterError("a \\ b\tc\x1b")) == "a \\ b\\tc\\x1b"
    assert FilterError("a \\ b\tc\x1b", 3).reason == "a \\ b\\tc\\x1b"


def test_string_escapes_in_hex_take_either_case():
    check('bt.ext.v == "uTorrent\\x203.5"', {"ext_hs"})
    check('bt.ext.v == "uTorrent\\x20\\x33.5"', {"ext_hs"})
    check('bt.ext.v contains "\\x54orrent"', {"ext_hs"})  # T
    check('bt.ext.v contains "\\x54\\x6F"', {"ext_hs"})  # "To", an upper-case hex digit
    check('bt.ext.v contains "\\x54\\x6f"', {"ext_hs"})


def test_a_quoted_word_is_a_value_never_an_operator():
    """"or", "and" or ")" in quotes is text: after a term it is no operator."""
    for quoted in ('"or"', '"and"', '"&&"', '")"'):
        exc = error(f"piece {quoted} have")
        assert exc.column == 7 and exc.reason == f"expected and, or or the end of the filter, got '{quoted}'", exc
    assert error('bt.client == "abc').reason == "a string is not closed (missing '\"')"


def test_a_filter_says_which_fields_it_reads():
    """``keep.fields``: the TUI filters by type and session without rebuilding events when
    a filter reads no other field; a wrong set would make it rebuild them, or skip a field."""
    assert compile_filter("piece").fields == {"bt.type"}
    assert compile_filter("type == piece || bt.type == have").fields == {"bt.type"}
    assert compile_filter("bt.index > 3 && session == 1").fields == {"bt.index", "session"}
    assert compile_filter("bt.ext.v contains x").fields == {"bt.ext.v"}


def test_not_in_quotes_is_no_operator():
    assert error('bt.client "not" in {x}').column == 11
    assert str(FilterError("m", 3)) == "m"  # no filter text to quote: the reason alone


@pytest.mark.parametrize("expression, column, reason", [
    ("piece not have", 7, "expected and, or or the end of the filter, got 'not'"),  # no "in": no comparison
    ('piece "=="', 7, "expected and, or or the end of the filter, got '\"==\"'"),  # quoted: no operator
    ('bt.index "==" 3', 10, "expected ==, !=, <, <=, >, >=, contains, matches or in, or and/or, after bt.index, "
                            "got '\"==\"'"),
    ("bt.type not in {nosuch}", 17, "bt.type has no value 'nosuch' (one of: "),  # not in names its field
    ("encrypted not in {2}", 18, "encrypted is true or false; 'in' needs a set of values"),
    ("bt.peer_id contains zz", 21, "bt.peer_id is a byte string: hex bytes like 5a:69:0f (or \"text\"), not 'zz'"),
    ("bt.index == " + "9" * 50, 13, "the number 99999999999999999999… is too large"),  # cut at 20 digits
    ("bt.index in {1", 15, "the filter ends too early: expected a value or '}'"),
    ("bt.index in {1..2..3}", 17, "expected a number (decimal, 0x hex), got '2..3'"),  # a range has two ends
    ("bt.index in {x..3}", 14, "expected a number (decimal, 0x hex), got 'x'"),  # each end at its own column
    ("bt.ext.v in {1..x}", 14, "a range needs numbers at both ends, not '1..x'"),
    ("bt.index in {}", 13, "an empty set '{}' matches nothing"),
])
def test_what_follows_a_name_decides_what_it_is(expression, column, reason):
    exc = error(expression)
    assert exc.column == column and exc.reason.startswith(reason), exc


def test_an_address_field_takes_one_network_without_braces():
    kept_braceless = kept("ip.src in 10.0.0.0/8")
    assert kept_braceless == kept("ip.src in {10.0.0.0/8}") == kept("ip.src == 10.0.0.0/8") != set()
    assert kept("ip.src in 10.0.0.0/8 && piece") == kept_braceless & {"piece"}  # and the filter goes on after it
    assert error("ip.src in zz").reason.startswith("ip.src is an IP address")
    assert error('bt.index in "{" 1 }').reason == "expected '{' after 'in', got '\"{\"'"


def test_false_in_any_case_is_false():
    assert kept("encrypted == False") == kept("encrypted == false") == kept("encrypted == FALSE") == \
        kept("encrypted == 0") == kept("not encrypted") != set()


def test_the_smaller_wordings_and_forms():
    """Each found surviving a mutant: an upper-case 0X in an extended body's literal, a range
    that starts at the value, the hint when no field is near, a stray ')', the source kept."""
    assert kept("bt.ext.p == 0X1AE1") == kept("bt.ext.p == 0x1ae1") == kept("bt.ext.p == 6881") == {"ext_hs"}
    assert kept("bt.ext.reqq in {250..260}") == kept("bt.ext.reqq in {240..250}") == {"ext_hs"}
    assert kept("bt.ext.reqq in {251..260}") == set()
    assert error("zzzz == 1").reason == "unknown field or message type 'zzzz'; see `btshark filters` for the fields"
    assert error("piece )").reason == "unexpected ')': no '(' is open"
    assert "def keep(r):" in compile_filter("piece").source
