"""Unfinished messages held against the budget shared by every parser of a decode
(``--max-partial-total``), the requests a parser remembers, and how it names a message
in a finding. Each budget figure is counted by hand from the message's length prefix.
"""
from __future__ import annotations

import wirebuild as wb
from inspector import events as ev
from inspector.limits import Budget
from inspector.parser import PeerWireParser
from inspector.resync import EXPECTED_MAX

HS = wb.handshake(bytes(range(20)), b"-qB4650-A1b2C3d4E5f6")


def after_handshake(budget: Budget) -> PeerWireParser:
    parser = PeerWireParser(partial=budget)
    assert [e.type for e in parser.feed(HS)] == ["handshake"]
    return parser


def test_a_message_waiting_for_its_body_holds_its_missing_bytes_until_complete():
    budget = Budget(1000)
    parser = after_handshake(budget)
    bits = wb.bitfield(bytes(300))  # length prefix 301: id and 300 bytes of body
    assert parser.feed(bits[:13]) == []  # the prefix and a head of 9 bytes read: 292 to come
    assert budget.used == 292
    (done,) = parser.feed(bits[13:])
    assert done.type == "bitfield" and budget.used == 0


def test_a_message_that_would_pass_the_budget_is_skipped_with_a_limit_finding():
    budget = Budget(1000)
    budget.used = 800  # other parsers hold this much
    parser = after_handshake(budget)
    bits = wb.bitfield(bytes(300))
    out = parser.feed(bits[:13])
    assert out == [ev.Finding("limit", "a bitfield message of length 301: holding it would pass the bytes of "
                                       "unfinished messages held over all flows (--max-partial-total 1000); "
                                       "skipped")]
    assert budget.used == 800
    assert parser.feed(bits[13:]) == []  # its body is read past
    (have,) = parser.feed(wb.have(7))
    assert have.type == "have" and have.index == 7 and budget.used == 800


def test_unknown_and_vowel_named_messages_are_named_right_in_the_finding():
    for message, name in ((wb.raw(bytes([99]) + bytes(400)), "an id 99 message of length 401"),
                          (wb.extended(1, bytes(400)), "an extended message of length 402")):
        budget = Budget(100)
        parser = after_handshake(budget)
        (finding,) = parser.feed(message[:13])
        assert finding.kind == "limit" and finding.detail.startswith(f"{name}: holding it would pass")


def test_forgetting_a_parser_gives_back_what_its_unfinished_message_held():
    budget = Budget(1000)
    parser = after_handshake(budget)
    parser.feed(wb.bitfield(bytes(300))[:13])
    assert budget.used == 292
    parser.forget()
    assert budget.used == 0


def test_requests_remembered_are_the_latest_expected_max():
    parser = PeerWireParser()
    for i in range(EXPECTED_MAX + 2):
        parser.expect(i, 0, 16384)
    assert len(parser.expected) == EXPECTED_MAX
    assert (0, 0, 16384) not in parser.expected and (1, 0, 16384) not in parser.expected
    assert (2, 0, 16384) in parser.expected and (EXPECTED_MAX + 1, 0, 16384) in parser.expected
