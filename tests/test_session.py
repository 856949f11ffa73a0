"""What a session folds from its two directions: counts, the blocks each side waits for,
what is learnt about the torrent, and which sides are one host. Built from events, as the
pipeline hands them over; expectations written from the peer-wire rules (BEP 3, BEP 6)."""
from __future__ import annotations

from dataclasses import replace

import wirebuild as wb

from inspector import events as ev
from inspector.limits import DEFAULT, Budget
from inspector.session import PeerRegistry, Session

HASH = bytes(range(20))


def session(a: str = "10.0.0.1:40000", b: str = "10.0.0.2:6881", registry: PeerRegistry | None = None,
            sid: int = 1) -> Session:
    return Session(sid, "tcp", a, b, opener_known=True, encrypted=False, start=0.0, registry=registry)


def test_a_finding_does_not_hide_the_messages_after_it():
    s = session()
    s.account(0, [ev.Finding("hole", "4 bytes not captured"), ev.Have(3), ev.Have(4)], 7, 0.0)
    assert s.sides[0].messages == {"have": 2}
    assert [(f.kind, f.side, f.frame) for f in s.findings] == [("hole", "a", 7)]


def test_a_request_is_waited_for_in_the_other_direction_until_cancelled_or_rejected():
    """A request from a is a block b's direction may carry; a's cancel withdraws it, b's reject refuses it."""
    s = session()
    s.account(0, [ev.Request(1, 0, 100), ev.Request(2, 0, 100), ev.Request(3, 0, 100)], 5, 0.0)
    a_parser, b_parser = s.parsers
    assert list(b_parser.expected) == [(1, 0, 100), (2, 0, 100), (3, 0, 100)] and not a_parser.expected
    s.account(0, [ev.Cancel(1, 0, 100)], 6, 0.0)
    assert list(b_parser.expected) == [(2, 0, 100), (3, 0, 100)]
    s.account(1, [ev.Reject(2, 0, 100)], 7, 0.0)
    assert list(b_parser.expected) == [(3, 0, 100)]
    s.account(1, [ev.Cancel(3, 0, 100)], 8, 0.0)  # b cancelling a block it never asked for changes nothing here
    assert list(b_parser.expected) == [(3, 0, 100)]


def test_the_block_length_is_learnt_from_the_first_request():
    s = session()
    assert s.torrent.block == 16384  # BEP 3's customary block until a request says otherwise
    s.account(0, [ev.Request(0, 0, 8192)], 5, 0.0)
    assert s.torrent.block == 8192
    s.account(0, [ev.Request(0, 8192, 4000), ev.Request(1, 0, 32768)], 6, 0.0)  # a last short block, a big one
    assert s.torrent.block == 8192


def test_the_bitfield_bounds_the_piece_count():
    s = session()
    s.account(1, [ev.Bitfield(b"\xff" * 3 + bytes(2), missing=2, filled=2)], 5, 0.0)
    assert (s.torrent.bitfield_bytes, s.torrent.piece_count) == (5, 40)


def _hs(s: Session, side: int, peer_id: bytes, frame: int) -> None:
    s.account(side, [ev.Handshake(bytes(8), HASH, peer_id)], frame, 0.0)


def test_ipv6_hosts_are_told_apart_by_their_whole_address():
    """One peer id at two IPv6 hosts that share a prefix is two hosts (flagged); at one host
    with two ports it is one client with two connections (not flagged)."""
    reg = PeerRegistry()
    me, them = b"-LT2110-localclient0", b"-UT3550-remotepeer%02d"
    first = session("[2001:db8::1]:40000", "[2001:db8::99]:6881", reg, 1)
    _hs(first, 0, me, 1)
    _hs(first, 1, them % 1, 2)
    same_host = session("[2001:db8::1]:40001", "[2001:db8::98]:6881", reg, 2)
    _hs(same_host, 0, me, 3)
    _hs(same_host, 1, them % 2, 4)
    assert same_host.findings == []
    other_host = session("[2001:db8::2]:40000", "[2001:db8::97]:6881", reg, 3)
    _hs(other_host, 0, me, 5)
    assert [(f.kind, f.side, f.frame) for f in other_host.findings] == [("duplicate_peer_id", "a", 5)]
    assert "also used by [2001:db8::1]:40000 in session #1" in other_host.findings[0].detail


def test_both_directions_share_what_is_learnt_and_the_memory_budget():
    """The parsers read bounds from the session's torrent (a bitfield one side sent bounds
    the indexes the other side's messages may hold) and draw on the capture's budget."""
    budget = Budget(1 << 20)
    s = Session(1, "tcp", "10.0.0.1:1", "10.0.0.2:2", opener_known=True, encrypted=False, start=0.0,
                partial=budget)
    assert all(p.torrent is s.torrent and p.partial is budget for p in s.parsers)
    s.account(1, [ev.Bitfield(b"\xff" * 5)], 3, 0.0)
    assert [p.torrent.max_index for p in s.parsers] == [40, 40]


def test_a_connection_seen_from_its_middle_says_so_when_framing_is_found():
    """Without its start, a connection's messages are hunted for; the resync finding says why."""
    s = Session(1, "tcp", "10.0.0.1:1", "10.0.0.2:2", opener_known=False, encrypted=False, start=0.0)
    out = s.parsers[0].feed(wb.piece(1, 0, bytes(300))[150:] + wb.have(1) + wb.have(2) + wb.have(3))
    resync = [e for e in out if e.type == "finding" and e.kind == "resync"]
    assert resync and "(the connection's start was not captured)" in resync[0].detail


def test_parsers_made_later_carry_the_reason_and_the_message_limit():
    """The pipeline makes new parsers when it learns more (MSE that selected plaintext, a
    trial that failed): each says why its start is unknown and keeps ``--max-message``."""
    s = Session(1, "tcp", "10.0.0.1:1", "10.0.0.2:2", opener_known=True, encrypted=False, start=0.0,
                limits=replace(DEFAULT, message=5000))
    assert [p.max_len for p in s.parsers] == [5000, 5000]
    later = s.make_parsers(True, "after an MSE key exchange")
    assert [(p.why, p.max_len, p.midstream) for p in later] == [("after an MSE key exchange", 5000, True)] * 2


def test_a_new_session_ends_where_it_starts_and_keeps_no_block_data_unless_asked():
    s = Session(2, "tcp", "10.0.0.1:1", "10.0.0.2:2", opener_known=False, encrypted=False, start=12.5)
    assert (s.end, s.as_dict()["end"]) == (12.5, 12.5)
    stream = wb.handshake(HASH, b"-UT3550-remotepeer00") + wb.piece(0, 0, b"abc")
    for keep, data in ((None, None), (False, None), (True, b"abc")):
        extra = {} if keep is None else {"keep_payload": keep}
        s = Session(3, "tcp", "a:1", "b:2", opener_known=True, encrypted=False, start=0.0, **extra)
        [piece] = [e for e in s.parsers[1].feed(stream) if e.type == "piece"]
        assert piece.data == data, keep
