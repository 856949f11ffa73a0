"""What each display-filter field means, on records built by hand (``test_filters.WORLD``).

Why a table per field: a field is a line of Python source in ``inspector.filters`` that
reads one attribute of a session, a side or an event; a wrong attribute, a wrong side or
a wrong transport compiles and runs quietly, keeping the wrong messages. So every field
of ``FIELDS`` (a meta-test makes sure no field is left out, however many are added) gets
rows that keep some records and drop others, each checked with its negation too, and
Wireshark's rules are checked field by field: a comparison on an absent field is false,
``!=`` on a multi-valued field needs every value to differ, a bare field means present.
``bt.ext.<key>`` (the decoded BEP 10 body: nested keys, lists, dictionaries, values of
any type) has its own table.
"""
from __future__ import annotations

import pytest

from inspector.events import Extended
from inspector.filters import EXT_PREFIX, FIELDS, FilterError, compile_filter
from inspector.pipeline import Record
from test_filters import (
    ALL, EXTENDED, FINDINGS, HANDSHAKES, IN_S1, IN_S2, IN_S3, S1, SIDE_A, SIDE_B, WORLD, check, kept,
)

INFO = "5a:69:5d:b8:c7:31:36:69:0e:ea:7d:c5:14:59:26:5a:12:8e:6a:18"
MESSAGES_WITH_IDS = ALL - HANDSHAKES - {"keepalive"} - FINDINGS
BLOCKS = {"request", "piece", "cancel"}

FIELD_CASES: list[tuple[str, set[str] | frozenset[str]]] = [
    # bt.type, and type (the first filters' name for it)
    ("bt.type == piece", {"piece"}),
    ("bt.type == finding", FINDINGS),
    ("bt.type != piece", ALL - {"piece"}),
    ("bt.type contains ha", HANDSHAKES | {"have"}),
    ('bt.type matches "^(choke|cancel)$"', {"choke", "cancel"}),
    ("bt.type in {request piece}", {"request", "piece"}),
    ("bt.type", ALL),
    ("type == piece", {"piece"}),
    ("type != piece", ALL - {"piece"}),
    ("type in {have cancel}", {"have", "cancel"}),
    ("type == port", {"port_msg"}),
    ("type", ALL),
    # bt.id: a handshake, a keepalive and a finding have none
    ("bt.id == 0", {"choke"}),
    ("bt.id == 7", {"piece"}),
    ("bt.id == 20", EXTENDED),
    ("bt.id == 99", {"unknown"}),
    ("bt.id", MESSAGES_WITH_IDS),
    ("bt.id != 20", MESSAGES_WITH_IDS - EXTENDED),
    ("bt.id in {4..9}", {"have", "bitfield", "request", "piece", "cancel", "port_msg"}),
    # bt.size: the length prefix (68 for a handshake); a finding has none
    ("bt.size == 68", HANDSHAKES),
    ("bt.size == 0", {"keepalive"}),
    ("bt.size == 16393", {"piece"}),
    ("bt.size > 1000", {"piece"}),
    ("bt.size == 13", {"request", "cancel"}),
    ("bt.size == 3", {"bitfield", "port_msg"}),
    ("bt.size == 40", {"ext_hs"}),
    ("bt.size < 5", {"keepalive", "choke", "bitfield", "port_msg"}),
    ("bt.size", ALL - FINDINGS),
    # bt.index, bt.begin, bt.length
    ("bt.index == 3", {"request", "piece"}),
    ("bt.index != 3", {"have", "cancel"}),
    ("bt.index >= 150", {"have", "cancel"}),
    ("bt.index", {"request", "piece", "have", "cancel"}),
    ("bt.begin == 16384", {"request", "piece"}),
    ("bt.begin == 0", {"cancel"}),
    ("bt.begin != 0", {"request", "piece"}),
    ("bt.begin", BLOCKS),
    ("bt.length == 16384", BLOCKS),
    ("bt.length != 16384", set()),
    ("bt.length", BLOCKS),
    # bt.pieces: how many pieces a bitfield claims
    ("bt.pieces == 9", {"bitfield"}),
    ("bt.pieces in {8..10}", {"bitfield"}),
    ("bt.pieces > 9", set()),
    ("bt.pieces", {"bitfield"}),
    # bt.port: the port message's DHT port
    ("bt.port == 6881", {"port_msg"}),
    ("bt.port == 6882", set()),
    ("bt.port != 6881", set()),
    ("bt.port", {"port_msg"}),
    # bt.info_hash, bt.peer_id, bt.reserved
    (f"bt.info_hash == {INFO}", {"hs_a", "hs_b"}),
    (f"bt.info_hash != {INFO}", {"hs_c"}),
    ("bt.info_hash contains 23", {"hs_c"}),
    ("bt.info_hash", HANDSHAKES),
    ('bt.peer_id contains "-TR"', {"hs_a"}),
    ('bt.peer_id matches "^-lt2110-"', {"hs_b"}),
    ("bt.peer_id == " + "00" * 20, {"hs_c"}),
    ("bt.peer_id", HANDSHAKES),
    ("bt.reserved == 00:00:00:00:00:10:00:05", {"hs_a"}),
    ("bt.reserved == 0000000000000000", {"hs_b"}),
    ("bt.reserved == 81-00-00-00-00-00-00-00", {"hs_c"}),
    ("bt.reserved == 00.00.00.00.00.10.00.05", {"hs_a"}),
    ("bt.reserved contains 10", {"hs_a"}),
    ("bt.reserved >= 80", {"hs_c"}),
    ("bt.reserved", HANDSHAKES),
    # bt.client: the client the peer id names ("" when none is known: present, empty)
    ('bt.client == "Transmission 3.00"', {"hs_a"}),
    ('bt.client == "libtorrent (rasterbar) 2.1.1"', {"hs_b"}),
    ('bt.client == ""', {"hs_c"}),
    ('bt.client != ""', {"hs_a", "hs_b"}),
    ('bt.client contains "torrent"', {"hs_b"}),
    ('bt.client in {"Transmission 3.00"}', {"hs_a"}),
    ("bt.client", HANDSHAKES),
    # bt.extensions: the reserved bits' names, several values (hs_b has none: absent)
    ("bt.extensions == dht", {"hs_a"}),
    ("bt.extensions == fast", {"hs_a"}),
    ("bt.extensions == extension_protocol", {"hs_a"}),
    ("bt.extensions == azureus_messaging", {"hs_c"}),
    ("bt.extensions == bit_7", {"hs_c"}),  # a bit no BEP names
    ("bt.extensions != dht", {"hs_c"}),  # hs_a has dht among others; hs_b has no value at all
    ("bt.extensions != bit_7", {"hs_a"}),
    ("bt.extensions contains ext", {"hs_a"}),
    ('bt.extensions matches "^bit_"', {"hs_c"}),
    ("bt.extensions in {fast azureus_messaging}", {"hs_a", "hs_c"}),
    ("bt.extensions < b", {"hs_c"}),  # "azureus_messaging"
    ("bt.extensions", {"hs_a", "hs_c"}),
    # bt.ext_id, bt.ext_name (ext_raw's id names nothing: no name)
    ("bt.ext_id == 0", {"ext_hs"}),
    ("bt.ext_id == 3", {"ext_md"}),
    ("bt.ext_id == 20", {"ext_raw"}),
    ("bt.ext_id != 0", {"ext_md", "ext_raw"}),
    ("bt.ext_id", EXTENDED),
    ("bt.ext_name == handshake", {"ext_hs"}),
    ("bt.ext_name != handshake", {"ext_md"}),
    ("bt.ext_name contains meta", {"ext_md"}),
    ('bt.ext_name matches "^ut_"', {"ext_md"}),
    ("bt.ext_name", {"ext_hs", "ext_md"}),
    # bt.finding, bt.finding.severity, bt.finding.detail
    ("bt.finding == hole", {"hole"}),
    ("bt.finding != hole", {"lenient", "bad"}),
    ("bt.finding in {hole bad_protocol}", {"hole", "bad"}),
    ("bt.finding contains bencode", {"lenient"}),
    ('bt.finding matches "^bad_"', {"bad"}),
    ("bt.finding", FINDINGS),
    ("bt.finding.severity == error", {"bad"}),
    ("bt.finding.severity == warning", {"hole"}),
    ("bt.finding.severity == note", {"lenient"}),
    ("bt.finding.severity != warning", {"bad", "lenient"}),
    ("bt.finding.severity in {error note}", {"bad", "lenient"}),
    ("bt.finding.severity", FINDINGS),
    ('bt.finding.detail contains "not captured"', {"hole"}),
    ('bt.finding.detail == "keys out of order"', {"lenient"}),
    ('bt.finding.detail matches "^not bittorrent"', {"bad"}),
    ("bt.finding.detail", FINDINGS),
    # ip.addr, ip.src, ip.dst (test_filters has the networks and the ordering)
    ("ip.addr == 10.0.0.1", IN_S1),
    ("ip.addr == 2001:db8::7", IN_S3),
    ("ip.addr != ::1", IN_S2 | IN_S3),
    ("ip.src == ::1", IN_S1 & SIDE_B),
    ("ip.src == 192.168.1.5", IN_S2 & SIDE_A),
    ("ip.dst == fe80::1", IN_S3 & SIDE_B),
    ("ip.dst == 10.1.2.3", IN_S2 & SIDE_A),
    ("ip.dst != 10.1.2.3", ALL - (IN_S2 & SIDE_A)),
    ("ip.addr", ALL),
    ("ip.src", ALL),
    ("ip.dst", ALL),
    # port: either end's, several values; the transport's own ports only for tcp./udp.
    ("port == 6881", IN_S1 | IN_S2),
    ("port == 0x1ae1", IN_S1 | IN_S2),
    ("port != 6881", IN_S3),
    ("port > 50000", IN_S1),
    ("port >= 50000", IN_S1 | IN_S3),
    ("port in {443 6882}", IN_S2 | IN_S3),
    ("port in {1..1000}", IN_S3),
    ("port", {"port_msg"}),  # bare, port is the port message (test_filters: bare words)
    ("tcp.port == 6881", IN_S1),
    ("tcp.port == 6882", set()),  # S2's port, but S2 is uTP
    ("tcp.port != 6881", IN_S3),
    ("tcp.port", IN_S1 | IN_S3),
    ("udp.port == 6881", IN_S2),
    ("udp.port == 443", set()),
    ("udp.port != 6881", set()),
    ("udp.port", IN_S2),
    ("tcp.srcport == 6881", IN_S1 & SIDE_A),
    ("tcp.dstport == 6881", IN_S1 & SIDE_B),
    ("tcp.srcport == 443", IN_S3 & SIDE_B),
    ("tcp.dstport == 443", IN_S3 & SIDE_A),
    ("tcp.dstport > 50000", IN_S1 & SIDE_A),
    ("tcp.srcport", IN_S1 | IN_S3),
    ("tcp.dstport", IN_S1 | IN_S3),
    ("udp.srcport == 6881", IN_S2 & SIDE_B),
    ("udp.dstport == 6881", IN_S2 & SIDE_A),
    ("udp.srcport == 6882", IN_S2 & SIDE_A),
    ("udp.srcport == 51413", set()),
    ("udp.srcport", IN_S2),
    ("udp.dstport", IN_S2),
    # session, transport, side, encrypted
    ("session == 2", IN_S2),
    ("session != 2", IN_S1 | IN_S3),
    ("session in {1 3}", IN_S1 | IN_S3),
    ("session > 1", IN_S2 | IN_S3),
    ("session", ALL),
    ("transport == utp", IN_S2),
    ("transport == tcp", IN_S1 | IN_S3),
    ("transport != tcp", IN_S2),
    ('transport matches "^u"', IN_S2),
    ("transport contains t", ALL),
    ("transport", ALL),
    ("side == a", SIDE_A),
    ("side == b", SIDE_B),
    ("side != a", SIDE_B),
    ("side in {a b}", ALL),
    ("side", ALL),
    ("encrypted", IN_S3),
    ("encrypted == 1", IN_S3),
    ("encrypted == true", IN_S3),
    ("encrypted == True", IN_S3),
    ("encrypted == TRUE", IN_S3),
    ("encrypted == 0", IN_S1 | IN_S2),
    ("encrypted == false", IN_S1 | IN_S2),
    ("encrypted != 1", IN_S1 | IN_S2),
    ("encrypted != FALSE", IN_S3),
    # frame, ts, time (the world's first frame is at 100.0)
    ("frame == 7", {"piece"}),
    ("frame != 7", ALL - {"piece"}),
    ("frame in {1..3}", {"hs_a", "hs_b", "ext_hs"}),
    ("frame >= 17", {"choke", "bad"}),
    ("frame", ALL),
    ("ts == 102.0", {"piece"}),
    ("ts >= 107", {"keepalive", "choke", "bad"}),
    ("ts < 100.5", {"hs_a", "hs_b"}),
    ("ts", ALL),
    ("time == 2", {"piece"}),
    ("time < 0.5", {"hs_a", "hs_b"}),
    ("time >= 7", {"keepalive", "choke", "bad"}),
    ("time > 9.99", {"bad"}),
    ("time", ALL),
]


@pytest.mark.parametrize("expression,expected", FIELD_CASES, ids=[e for e, _ in FIELD_CASES])
def test_each_field(expression, expected):
    check(expression, expected)


def test_every_field_has_rows_that_keep_some_records_and_drop_others():
    """A field without a row here (a new one, say) fails this test until it has them."""
    for name in FIELDS:
        rows = [expected for expression, expected in FIELD_CASES if expression.split()[0] == name]
        assert rows, f"no row for {name}"
        assert any(0 < len(expected) < len(ALL) for expected in rows), f"no row of {name} tells records apart"
        if name != "port":  # bare, that is the port message
            assert any(expression == name for expression, _ in FIELD_CASES), f"no bare {name}"


# -- Wireshark's rules, for every field ----------------------------------------------------------

LITERALS = {
    "int": ["0", "3", "6881", "16384", "0x14"], "float": ["102", "100.5", "7"],
    "str": ['"dht"', "handshake", '""', '"Transmission 3.00"', '"10 bytes not captured"'],
    "bytes": ["00", "5a:69", "00:00:00:00:00:10:00:05", '"-TR3000-"'],
    "addr": ["10.0.0.1", "::1", "10.0.0.0/8", "fe80::/10"], "bool": ["1", "0"],
}
ORDERED = {"int", "float", "str", "bytes", "addr"}


def _literals(name: str) -> list[str]:
    field = FIELDS[name]
    return sorted(field.values)[:4] if field.kind == "enum" else LITERALS[field.kind]


@pytest.mark.parametrize("name", [n for n in FIELDS if FIELDS[n].kind != "bool" and n != "port"])
def test_a_comparison_on_an_absent_field_is_false_and_not_in_keeps_it(name):
    kind = FIELDS[name].kind
    absent = ALL - kept(name)
    assert absent or name in ("bt.type", "type", "ip.addr", "ip.src", "ip.dst", "session", "transport", "side",
                              "frame", "ts", "time")  # only the fields every record carries
    for literal in _literals(name):
        ops = ["==", "!="]
        if kind in ORDERED and "/" not in literal:  # a network has no order
            ops += ["<", "<=", ">", ">="]
        if kind in ("str", "bytes", "enum"):
            ops += ["contains", "matches"]
        for op in ops:
            value = '"."' if op == "matches" else literal
            assert not kept(f"{name} {op} {value}") & absent, (name, op, value)
        assert kept(f"{name} in {{{literal}}}").isdisjoint(absent)
        assert absent <= kept(f"{name} not in {{{literal}}}")


@pytest.mark.parametrize("name", [n for n in FIELDS if FIELDS[n].kind != "bool" and n != "port"] + ["port"])
def test_not_equal_is_present_and_no_value_equal(name):
    """``f != v`` keeps the records that carry ``f`` and where ``f == v`` does not hold:
    for a multi-valued field, every value differs (Wireshark's ``!=``, not ``~=``)."""
    present = kept(name) if name != "port" else set(ALL)  # bare port is the message
    for literal in _literals(name):
        equal = kept(f"{name} == {literal}")
        assert kept(f"{name} != {literal}") == present - equal, (name, literal)


def test_multi_valued_fields_match_when_any_value_does():
    """S1's ports are 6881 and 51413, S2's 6882 and 6881, S3's 50000 and 443."""
    assert kept("port == 51413") == IN_S1 and kept("port == 6882") == IN_S2
    assert kept("port == 6881") == IN_S1 | IN_S2
    assert kept("port != 51413") == IN_S2 | IN_S3 and kept("port != 6881") == IN_S3
    assert kept("port < 1000") == IN_S3 and kept("port > 6881") == IN_S1 | IN_S2 | IN_S3
    assert kept("ip.addr == 10.0.0.1") == kept("ip.addr == ::1") == IN_S1
    assert kept("bt.extensions == fast") == kept("bt.extensions == dht") == {"hs_a"}


def test_a_bare_boolean_is_its_value_not_its_presence():
    assert kept("encrypted") == IN_S3 == kept("encrypted == 1") and kept("!encrypted") == IN_S1 | IN_S2


def test_time_counts_from_the_first_frame_asked_for_when_it_runs():
    """``first_ts`` is called as records are filtered (the CLI knows it only after the first
    frame); unknown (no callable, or None), ``time`` is 0 for every record."""
    first: list[float | None] = [None]
    keep = compile_filter("time < 1", lambda: first[0])
    assert all(keep(r) for r in WORLD.values())  # not known yet: 0
    first[0] = 100.0
    assert {n for n, r in WORLD.items() if keep(r)} == {"hs_a", "hs_b", "ext_hs", "ext_md"}
    first[0] = 105.0  # time < 1: ts < 106
    assert {n for n, r in WORLD.items() if keep(r)} == ALL - {"hs_c", "keepalive", "choke", "bad"}
    assert kept("time == 0", first_ts=None) == ALL and kept("time != 0", first_ts=None) == set()
    assert kept("time == 0", first_ts=lambda: None) == ALL
    assert kept("time == 4.5", first_ts=lambda: 105.5) == {"bad"}


# -- bt.ext.<key>: the decoded extended body -------------------------------------------------------

EXT_CASES: list[tuple[str, set[str]]] = [
    ('bt.ext.v == "uTorrent 3.5"', {"ext_hs"}),
    ("bt.ext.v == uTorrent", set()),  # equal is whole
    ("bt.ext.v != uTorrent", {"ext_hs"}),
    ("bt.ext.v contains Torrent", {"ext_hs"}),
    ('bt.ext.v matches "^utorrent 3\\\\.5$"', {"ext_hs"}),
    ("bt.ext.v > uA", {"ext_hs"}),
    ("bt.ext.v < uA", set()),
    ('bt.ext.v in {"uTorrent 3.5", x}', {"ext_hs"}),
    ("bt.ext.v", {"ext_hs"}),
    # nested keys
    ("bt.ext.m.ut_metadata == 3", {"ext_hs"}),
    ("bt.ext.m.ut_metadata == 0x3", {"ext_hs"}),
    ("bt.ext.m.ut_metadata != 3", set()),
    ("bt.ext.m.ut_metadata >= 3", {"ext_hs"}),
    ("bt.ext.m.ut_metadata in {1..5}", {"ext_hs"}),
    ("bt.ext.m.ut_metadata", {"ext_hs"}),
    ("bt.ext.m.ut_pex == 1", {"ext_hs"}),
    ("bt.ext.m.lt_donthave", set()),
    ("bt.ext.m.ut_metadata.deeper", set()),  # a number has no keys
    ("bt.ext.v.deeper", set()),
    # a key may hold dots (BEP 11's added.f): the longest key that leads somewhere wins
    ('bt.ext.added.f == "\\x12\\x10"', {"ext_hs"}),  # flags bytes decode as text, as in a real body
    ('bt.ext.added.f contains "\\x10"', {"ext_hs"}),
    ("bt.ext.added", set()),
    ("bt.ext.d.x == 6", {"ext_hs"}),  # "d.x" itself, before "x" in "d"
    ("bt.ext.d.x == 5", set()),
    ("bt.ext.d.y.z == 7", {"ext_hs"}),  # "z" in "d.y"
    ("bt.ext.d.z", set()),
    # a dictionary contains its keys (whole keys); compared with a value it is nothing
    ("bt.ext.m contains ut_pex", {"ext_hs"}),
    ('bt.ext.m contains "ut_metadata"', {"ext_hs"}),
    ("bt.ext.m contains ut_p", set()),
    ("bt.ext.m contains lt_donthave", set()),
    ("bt.ext.m == 3", set()),
    ("bt.ext.m != 3", {"ext_hs"}),  # present and not equal: a dictionary is not the number 3
    ("bt.ext.m > 3", set()),
    ("bt.ext.m", {"ext_hs"}),
    # a list matches when any item does; != when every item differs
    ("bt.ext.mixed == 300", {"ext_hs"}),
    ("bt.ext.mixed == two", {"ext_hs"}),
    ('bt.ext.mixed == "two"', {"ext_hs"}),
    ("bt.ext.mixed == 2", set()),
    ("bt.ext.mixed > 250", {"ext_hs"}),
    ("bt.ext.mixed < 1", set()),
    ("bt.ext.mixed contains tw", {"ext_hs"}),
    ('bt.ext.mixed matches "^t"', {"ext_hs"}),
    ("bt.ext.mixed in {300}", {"ext_hs"}),
    ("bt.ext.mixed in {two}", {"ext_hs"}),
    ("bt.ext.mixed in {2..299}", set()),
    ("bt.ext.mixed in {2..300}", {"ext_hs"}),
    ("bt.ext.nums != 2", {"ext_hs"}),
    ("bt.ext.nums != 1", set()),
    ("bt.ext.nums != 300", set()),
    ("bt.ext.empty", {"ext_hs"}),  # present, with no item to match
    ("bt.ext.empty == 1", set()),
    ("bt.ext.empty != 1", set()),
    ("bt.ext.empty in {0..9}", set()),
    # a value of another type than the literal matches nothing
    ("bt.ext.v == 5", set()),
    ("bt.ext.v > 5", set()),
    ("bt.ext.v <= 5", set()),
    ('bt.ext.p == "6881"', set()),
    ("bt.ext.p contains 68", set()),
    ('bt.ext.p matches "68"', set()),
    ("bt.ext.v in {1..9}", set()),
    # numbers
    ("bt.ext.p == 6881", {"ext_hs"}),
    ("bt.ext.p == 0x1ae1", {"ext_hs"}),
    ("bt.ext.p in {6000..7000}", {"ext_hs"}),
    ("bt.ext.p in {6881 51413}", {"ext_hs"}),
    ("bt.ext.p not in {6881}", ALL - {"ext_hs"}),
    ("bt.ext.reqq in {200..300}", {"ext_hs"}),
    ("bt.ext.complete_ago < 0", {"ext_hs"}),
    # the ut_metadata message's keys; a key may be named like a message type
    ("bt.ext.msg_type == 1", {"ext_md"}),
    ("bt.ext.piece == 0", {"ext_md"}),
    ("bt.ext.piece", {"ext_md"}),
    ("bt.ext.total_size in {300..400}", {"ext_md"}),
    # a key no message has; and ext_raw (not bencoded) has none
    ("bt.ext.nope", set()),
    ("bt.ext.nope != 1", set()),
]


@pytest.mark.parametrize("expression,expected", EXT_CASES, ids=[e for e, _ in EXT_CASES])
def test_bt_ext_keys(expression, expected):
    check(expression, expected)


def test_bt_ext_is_absent_when_the_body_is_not_a_dictionary():
    world = {"list": Record(S1, 0, 1, 1.0, Extended(5, "x", [1, 2], trailing=0, size=9)),
             "none": Record(S1, 0, 1, 1.0, Extended(5, "x", None, trailing=0, size=9)),
             "dict": Record(S1, 0, 1, 1.0, Extended(5, "x", {"0": 1}, trailing=0, size=9))}
    assert kept("bt.ext.0", world=world) == {"dict"}
    assert kept("bt.ext.0 == 1", world=world) == {"dict"} and kept("bt.ext.0 != 1", world=world) == set()
    assert kept("bt.ext.0 not in {1}", world=world) == {"list", "none"}


def test_bt_ext_needs_a_key():
    assert EXT_PREFIX == "bt.ext."
    for text in ("bt.ext.", "bt.ext", "bt.ext.m.", "bt.ext..m"):
        with pytest.raises(FilterError) as info:
            compile_filter(text)
        assert info.value.column == 1 and ("empty key" in info.value.reason or "unknown field" in info.value.reason)


def test_bt_ext_takes_negative_numbers():
    """Found in review: a bencoded integer may be negative (libtorrent sends complete_ago -1),
    but a bt.ext literal is a number only when it is unsigned digits, so ``-1`` is the
    *text* "-1": ``bt.ext.complete_ago == -1`` keeps nothing, and the range
    ``{-5..5}`` is refused ("a range needs numbers at both ends"). Expected: both keep the
    extension handshake whose complete_ago is -1."""
    check("bt.ext.complete_ago == -1", {"ext_hs"})
    check("bt.ext.complete_ago in {-5..5}", {"ext_hs"})
