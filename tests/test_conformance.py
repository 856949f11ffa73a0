"""The conformance checks' rules, one by one, on events fed straight to ``Conformance``.

``test_findings_kinds.py`` raises every kind from captured bytes; here are the edges a
real transfer walks along: races that are not violations (a request crossing a choke,
a piece crossing its cancel), what a choke does to pending requests with and without
the Fast extension, the checks stopping after a loss, and the real captures, clean
transfers all, on which nothing of severity error may be raised while the checks
demonstrably compared every piece with its request.
"""
from __future__ import annotations

import pytest

from conftest import capture_params, wild
from inspector import events as ev
from inspector.conformance import BLOCK, CHOKE_GRACE, SILENCE, Conformance
from inspector.pieces import PieceFacts
from inspector.extract import read_torrent
from inspector.pipeline import CaptureDecode

FAST_EXT = bytes.fromhex("0000000000100004")
PLAIN = bytes(8)


def hs(reserved: bytes = FAST_EXT) -> ev.Handshake:
    return ev.Handshake(reserved, bytes(20), bytes(20))


def started(a: bytes = FAST_EXT, b: bytes = FAST_EXT, pieces: PieceFacts | None = None) -> Conformance:
    c = Conformance(trusted=True, pieces=pieces)
    assert c.check(0, hs(a), 0.0) == [] and c.check(1, hs(b), 0.0) == []
    return c


def kinds(found: list) -> list[tuple[int, str]]:
    return [(side, f.kind) for side, f in found]


def test_a_request_before_any_unchoke_is_an_error_but_an_allowed_fast_piece_is_not():
    c = started()
    assert kinds(c.check(1, ev.AllowedFast(4), 0.1)) == []
    assert kinds(c.check(0, ev.Request(4, 0, BLOCK), 0.2)) == []
    assert kinds(c.check(0, ev.Request(5, 0, BLOCK), 0.3)) == [(0, "request_while_choked")]


def test_a_request_crossing_a_choke_is_let_through_but_not_one_well_after():
    c = started()
    c.check(1, ev.Unchoke(), 1.0)
    assert kinds(c.check(0, ev.Request(0, 0, BLOCK), 2.0)) == []
    c.check(1, ev.Choke(), 3.0)
    assert kinds(c.check(0, ev.Request(0, BLOCK, BLOCK), 3.0 + CHOKE_GRACE / 2)) == []
    late = c.check(0, ev.Request(0, 2 * BLOCK, BLOCK), 3.0 + CHOKE_GRACE * 1.5)
    assert kinds(late) == [(0, "request_while_choked")] and "choked it 1.500 s before" in late[0][1].detail
    c.check(1, ev.Unchoke(), 5.0)
    assert kinds(c.check(0, ev.Request(1, 0, BLOCK), 5.1)) == []


def test_pieces_answer_requests_once_and_a_cancelled_one_is_a_note():
    c = started()
    c.check(1, ev.Unchoke(), 0.1)
    c.check(0, ev.Request(0, 0, BLOCK), 0.2)
    c.check(0, ev.Request(0, BLOCK, BLOCK), 0.2)
    assert kinds(c.check(1, ev.Piece(0, 0, BLOCK), 0.3)) == []
    assert kinds(c.check(1, ev.Piece(0, 0, BLOCK), 0.4)) == [(1, "unrequested_piece")]  # answered already
    c.check(0, ev.Cancel(0, BLOCK, BLOCK), 0.5)
    assert kinds(c.check(1, ev.Piece(0, BLOCK, BLOCK), 0.6)) == [(1, "cancelled_piece")]
    assert kinds(c.check(1, ev.Piece(0, BLOCK, BLOCK), 0.7)) == [(1, "unrequested_piece")]
    assert kinds(c.check(1, ev.Piece(0, 2 * BLOCK, 100), 0.8)) == [(1, "unrequested_piece")]  # length differs
    assert c.answered == 1


def test_with_fast_a_choke_keeps_requests_and_the_choker_rejects_them():
    c = started()
    c.check(1, ev.Unchoke(), 0.1)
    c.check(0, ev.Request(3, 0, BLOCK), 0.2)
    c.check(0, ev.Request(3, BLOCK, BLOCK), 0.2)
    c.check(1, ev.Choke(), 0.3)
    assert kinds(c.check(1, ev.Reject(3, 0, BLOCK), 0.4)) == []
    assert kinds(c.check(1, ev.Piece(3, BLOCK, BLOCK), 0.5)) == []  # still asked for under Fast
    assert kinds(c.check(1, ev.Reject(3, 0, BLOCK), 0.6)) == [(1, "unrequested_reject")]


def test_a_block_requested_twice_may_be_answered_twice():
    """aria2 asks again for blocks it takes a choke to have discarded; libtorrent, with Fast,
    serves both copies (a real swarm capture): neither piece is unrequested, a third is."""
    c = started()
    c.check(1, ev.Unchoke(), 0.1)
    c.check(0, ev.Request(2, 0, BLOCK), 0.2)
    c.check(0, ev.Request(2, 0, BLOCK), 0.3)
    assert kinds(c.check(1, ev.Piece(2, 0, BLOCK), 0.4)) == []
    assert kinds(c.check(1, ev.Reject(2, 0, BLOCK), 0.5)) == []
    assert kinds(c.check(1, ev.Piece(2, 0, BLOCK), 0.6)) == [(1, "unrequested_piece")]
    c.check(0, ev.Request(2, 0, BLOCK), 0.7)
    c.check(0, ev.Request(2, 0, BLOCK), 0.7)
    c.check(0, ev.Cancel(2, 0, BLOCK), 0.8)  # a cancel takes back every copy
    assert kinds(c.check(1, ev.Piece(2, 0, BLOCK), 0.9)) == [(1, "cancelled_piece")]


def test_a_magnet_download_may_fetch_the_metadata_before_its_piece_map():
    c = started()
    c.check(0, ev.Extended(0, "handshake", {"m": {"ut_metadata": 3}}, 0, 30), 0.1)
    c.check(1, ev.Extended(0, "handshake", {"m": {"ut_metadata": 2}}, 0, 30), 0.1)
    for _ in range(2):  # a retried request, too
        assert kinds(c.check(0, ev.Extended(2, "ut_metadata", {"msg_type": 0, "piece": 0}, 0, 30), 0.2)) == []
    assert kinds(c.check(0, ev.Port(6881), 0.3)) == []
    assert kinds(c.check(0, ev.KeepAlive(), 0.35)) == []
    assert kinds(c.check(0, ev.HaveNone(), 0.4)) == []


def test_a_cancelled_request_may_be_rejected_once():
    c = started()
    c.check(1, ev.Unchoke(), 0.1)
    c.check(0, ev.Request(1, 0, BLOCK), 0.2)
    c.check(0, ev.Cancel(1, 0, BLOCK), 0.3)
    assert kinds(c.check(1, ev.Reject(1, 0, BLOCK), 0.4)) == []
    assert kinds(c.check(1, ev.Reject(1, 0, BLOCK), 0.5)) == [(1, "unrequested_reject")]


def test_after_a_loss_the_stateful_checks_stop_and_the_stateless_go_on():
    c = started()
    c.lost()
    assert kinds(c.check(0, ev.Request(0, 0, BLOCK), 0.1)) == []  # b may have unchoked in the hole
    assert kinds(c.check(1, ev.Piece(9, 0, BLOCK), 0.2)) == []
    assert kinds(c.check(0, ev.Request(0, 5, 2 * BLOCK), 0.3)) == [(0, "odd_request")]
    c.check(1, ev.Bitfield(b"\xff"), 0.4)
    assert kinds(c.check(1, ev.Have(8), 0.5)) == [(1, "bad_index")]


def test_an_untrusted_start_checks_nothing_stateful():
    c = Conformance(trusted=False)
    assert kinds(c.check(0, ev.Request(0, 0, BLOCK), 0.1)) == []
    assert kinds(c.check(0, ev.Extended(7, None, {}, 0, 3), 0.2)) == []
    assert kinds(c.check(1, ev.Bitfield(b"\x01"), 0.3)) == []  # no late_bitfield: its place is unknown


def test_the_piece_map_goes_first_but_may_follow_the_extension_handshake():
    c = started()
    assert kinds(c.check(1, ev.Extended(0, "handshake", {"m": {"ut_pex": 1}}, 0, 20), 0.1)) == []
    assert kinds(c.check(1, ev.Bitfield(b"\xff"), 0.2)) == []
    assert kinds(c.check(1, ev.HaveAll(), 0.3)) == [(1, "second_bitfield")]
    assert kinds(c.check(0, ev.Interested(), 0.4)) == []
    assert kinds(c.check(0, ev.Interested(), 0.4)) == []
    assert kinds(c.check(0, ev.HaveNone(), 0.5)) == [(0, "late_bitfield")]


def test_bitfield_length_and_spare_bits_against_a_known_piece_count():
    for bits, detail in ((b"\xff\x80", "take 2"), (b"\xff\xc0\x00", "bitfield of 3 bytes"),
                         (b"\xff\xa0", "spare bits")):
        c = started(pieces=PieceFacts(10))
        found = c.check(1, ev.Bitfield(bits), 0.1)
        assert kinds(found) == ([] if detail == "take 2" else [(1, "bad_bitfield")]), bits
        assert not found or detail in found[0][1].detail
    c = started(pieces=PieceFacts(10))
    assert kinds(c.check(1, ev.Bitfield(b"\xff\xc0"), 0.1)) == []  # pieces 0-9: exact
    assert kinds(c.check(1, ev.Have(9), 0.2)) == []
    assert kinds(c.check(1, ev.Have(10), 0.3)) == [(1, "bad_index")]


def test_extension_ids_follow_the_receivers_latest_handshake():
    c = started()
    assert kinds(c.check(0, ev.Extended(1, None, {}, 0, 3), 0.1)) == [(0, "unannounced_extension")]
    c.check(1, ev.Extended(0, "handshake", {"m": {"ut_pex": 1, "ut_metadata": 2}}, 0, 40), 0.2)
    assert kinds(c.check(0, ev.Extended(1, "ut_pex", {}, 0, 3), 0.3)) == []
    assert kinds(c.check(0, ev.Extended(2, "ut_metadata", {}, 0, 3), 0.3)) == []
    c.check(1, ev.Extended(0, "handshake", {"m": {"ut_metadata": 0}}, 0, 30), 0.4)  # 0: switched off
    assert kinds(c.check(0, ev.Extended(2, None, {}, 0, 3), 0.5)) == [(0, "unannounced_extension")]
    assert kinds(c.check(0, ev.Extended(1, "ut_pex", {}, 0, 3), 0.6)) == []


def test_fast_and_extension_bits_are_needed_on_both_handshakes():
    c = started(a=FAST_EXT, b=PLAIN)
    found = c.check(0, ev.AllowedFast(1), 0.1)
    assert kinds(found) == [(0, "fast_without_bit")] and "side b's" in found[0][1].detail
    found = c.check(1, ev.Extended(0, "handshake", {}, 0, 3), 0.2)
    assert kinds(found) == [(1, "extended_without_bit")] and "side b's" in found[0][1].detail
    c = started()
    assert kinds(c.check(0, ev.Suggest(1), 0.1)) == []


def test_silence_is_told_once_per_quiet_spell():
    c = started()
    assert kinds(c.check(0, ev.KeepAlive(), SILENCE - 1)) == []
    found = c.check(0, ev.KeepAlive(), 2 * SILENCE - 2)
    assert kinds(found) == [(1, "silence")]  # a spoke within the limit each time; b never did
    assert f"side b sent nothing for {2 * SILENCE - 2:.0f} s" in found[0][1].detail
    assert kinds(c.check(0, ev.KeepAlive(), 2 * SILENCE - 1)) == []
    assert kinds(c.check(1, ev.KeepAlive(), 2 * SILENCE)) == []  # b speaks: told already
    found = c.check(0, ev.KeepAlive(), 4 * SILENCE)
    assert kinds(found) == [(0, "silence"), (1, "silence")]
    assert found[0][1].detail.startswith(f"side a sent nothing for {2 * SILENCE + 1:.0f} s ")  # 4S - (2S - 1)


def test_a_piece_is_hash_checked_once_all_its_blocks_are_in():
    good = bytes(range(256)) * 96  # 24 KiB: a piece of two blocks, the second short
    checked = []
    facts = PieceFacts(2, lambda i, data: checked.append((i, data)) or data == good, lambda i: len(good))
    c = started(pieces=facts)
    c.check(1, ev.Unchoke(), 0.1)
    for begin in (0, BLOCK):
        c.check(0, ev.Request(0, begin, min(BLOCK, len(good) - begin)), 0.2)
    assert kinds(c.check(1, ev.Piece(0, BLOCK, len(good) - BLOCK, data=good[BLOCK:]), 0.3)) == []
    assert checked == []
    assert kinds(c.check(1, ev.Piece(0, 0, BLOCK, data=good[:BLOCK]), 0.4)) == []
    assert checked == [(0, good)] and facts.checked == 1
    c.check(0, ev.Request(1, 0, BLOCK), 0.5)
    bad = ev.Piece(1, 0, len(good) - BLOCK, data=bytes(len(good) - BLOCK))
    facts.size = lambda i: len(good) - BLOCK if i == 1 else len(good)
    assert kinds(c.check(1, bad, 0.6)) == [(1, "unrequested_piece"), (1, "bad_piece_hash")]


@pytest.mark.parametrize("capture", [*capture_params(), "tcoppi-clean-transfer.pcap"])
def test_clean_transfers_raise_no_error_while_every_piece_is_compared(capture):
    """The committed captures (with their .torrent, so piece counts and hashes are checked too)
    and the wild clean transfer."""
    capture = wild(capture) if isinstance(capture, str) else capture
    torrent = capture.with_suffix(".torrent") if capture.with_suffix(".torrent").exists() else None
    decode = CaptureDecode(capture, torrents=[read_torrent(torrent)] if torrent else [])
    errors = [(r.frame, r.event.kind, r.event.detail) for r in decode
              if r.event.type == "finding" and r.event.severity == "error"]
    assert errors == []
    plain = [s for s in decode.sessions if not s.encrypted]
    pieces = sum(side.messages.get("piece", 0) for s in plain for side in s.sides)
    assert sum(s.conformance.answered for s in plain) == pieces  # every piece met its request
    assert all(s.conformance.trusted for s in plain)
    if torrent is not None and pieces:
        facts = {id(s.conformance.pieces): s.conformance.pieces for s in plain if s.conformance.pieces}
        assert sum(f.checked for f in facts.values()) == read_torrent(torrent).pieces


# -- from captured bytes: what review found the first checks getting wrong ------------------

def _decode(tmp_path, frames) -> list:
    import hostile

    return list(CaptureDecode(hostile.write_pcap(tmp_path / "c.pcap", frames)))


def test_a_side_sending_one_slow_message_is_not_silent_but_a_quiet_one_is(tmp_path):
    import hostile
    import wirebuild as wb

    c = hostile.Conn().open().handshakes()
    c.send(1, wb.unchoke()).send(0, wb.request(0, 0, BLOCK))
    block = wb.piece(0, 0, bytes(BLOCK))
    for i in range(0, len(block), 1024):  # b: a segment every 10 s for 160 s
        c.t += 10
        c.send(1, block[i:i + 1024])
        if i % 5120 == 0:
            c.send(0, wb.keepalive())  # a: a keep-alive every 50 s
    c.t += 130
    c.send(1, wb.keepalive())  # b, after 130 s without a byte
    found = [(r.side, r.event.kind) for r in _decode(tmp_path, c.close().frames) if r.event.type == "finding"]
    assert found == [(0, "silence"), (1, "silence")]  # a's keep-alives stopped too, 130 s before


def test_a_piece_answering_a_request_held_behind_a_loss_is_not_unrequested(tmp_path):
    import hostile
    import wirebuild as wb

    c = hostile.Conn().open().handshakes()
    c.send(1, wb.unchoke())
    c.seq[0] += len(wb.have(1))  # a's have: sent, not captured
    c.send(0, wb.request(3, 0, 100))  # held behind the missing bytes
    c.send(1, wb.piece(3, 0, bytes(100)))  # b's ack covers both
    records = _decode(tmp_path, c.close().frames)
    found = [r.event.kind for r in records if r.event.type == "finding"]
    assert "hole" in found and "unrequested_piece" not in found
    assert [r.event.type for r in records if r.event.type in ("request", "piece")] == ["piece", "request"]


def test_metadata_exchanged_in_the_capture_gives_the_piece_count(tmp_path):
    """BEP 9: once the info dictionary's pieces are in and hash to the info hash, an index
    past its piece count is a bad_index; before (or with a dictionary that hashes wrong), none."""
    import hashlib

    import hostile
    import wirebuild as wb

    info = wb.bencode({b"name": b"m.bin", b"piece length": BLOCK, b"length": 5 * BLOCK, b"pieces": bytes(100),
                       b"pad": bytes(20000)})  # two metadata pieces
    for info_hash, flagged in ((hashlib.sha1(info).digest(), True), (bytes(20), False)):
        c = hostile.Conn().open()
        c.send(0, wb.handshake(info_hash, b"-LT2110-aaaaaaaaaaaa", FAST_EXT))
        c.send(1, wb.handshake(info_hash, b"-LT2110-bbbbbbbbbbbb", FAST_EXT))
        c.send(0, wb.extended(0, wb.bencode({b"m": {b"ut_metadata": 2}})))
        c.send(1, wb.extended(0, wb.bencode({b"m": {b"ut_metadata": 3}, b"metadata_size": len(info)})))
        c.send(1, wb.have(7))  # no count known yet: nothing to say
        for piece in (1, 0):
            head = wb.bencode({b"msg_type": 1, b"piece": piece, b"total_size": len(info)})
            c.send(1, wb.extended(2, head + info[piece * BLOCK:(piece + 1) * BLOCK]))
        c.send(1, wb.have(4)).send(1, wb.have(5))
        records = _decode(tmp_path, c.close().frames)
        found = [(r.event.kind, r.event.detail) for r in records if r.event.type == "finding"]
        assert found == ([("bad_index", "have index 5, but the torrent has 5 pieces (0 to 4)")] if flagged else [])


def test_the_piece_count_of_an_info_dictionary():
    import wirebuild as wb

    from inspector.pieces import count_from_info

    assert count_from_info(wb.bencode({b"piece length": 4, b"pieces": bytes(60)})) == 3
    tree = {b"a": {b"": {b"length": 9}}, b"d": {b"b": {b"": {b"length": 4}}, b"c": {b"": {b"length": 0}}}}
    assert count_from_info(wb.bencode({b"piece length": 4, b"file tree": tree})) == 3 + 1
    assert count_from_info(b"not bencode") is None
    assert count_from_info(wb.bencode({b"piece length": 4})) is None


# -- the edges the first mutation run found unpinned ------------------------------------------

def test_each_kind_says_what_happened_in_its_words():
    c = started(PLAIN, PLAIN)
    (found,) = c.check(1, ev.HaveAll(), 0.1)
    assert found[1].detail == "have_all (Fast extension, BEP 6), but side a and b's handshake lacks the Fast bit"
    (found,) = c.check(0, ev.Extended(0, "handshake", {}, 0, 3), 0.2)
    assert found[1].detail == ("extended message (BEP 10), but side a and b's handshake lacks the "
                               "extension-protocol bit")
    c = started()
    (found,) = c.check(0, ev.Extended(3, None, {}, 0, 3), 0.1)
    assert found[1].detail == "extended id 3, which the receiver never sent an extension handshake"
    c.check(1, ev.Extended(0, "handshake", {"v": "x"}, 0, 3), 0.2)  # no m: it announces nothing
    (found,) = c.check(0, ev.Extended(3, None, {}, 0, 3), 0.3)
    assert found[1].detail == "extended id 3, which the receiver announced nothing"
    c.check(1, ev.Extended(0, "handshake", {"m": {"ut_pex": 2, "lt_donthave": 7, "ut_metadata": 1}}, 0, 3), 0.4)
    (found,) = c.check(0, ev.Extended(3, None, {}, 0, 3), 0.5)
    assert found[1].detail == "extended id 3, which the receiver announced 1 (ut_metadata), 2 (ut_pex), 7 (lt_donthave)"
    c.check(1, ev.Bitfield(b"\xff"), 0.6)
    (found,) = c.check(1, ev.Suggest(9), 0.7)
    assert found[1].detail == "suggest index 9, but the bitfield has room for 8 pieces (0 to 7)"
    (found, choked) = c.check(0, ev.Request(1, 0, 2 * BLOCK), 0.8)
    assert found[1].detail == ("request for a block of 32768 bytes (index 1): clients ask for 16 KiB blocks "
                               "on 16 KiB boundaries")
    assert choked[1].detail == ("request for index 1 begin 0, but the other side never unchoked it "
                                "(and did not allow the piece fast)")
    c = started(pieces=PieceFacts(10))
    (found,) = c.check(1, ev.Bitfield(b"\xff\xff\x00"), 0.1)
    assert found[1].detail == "bitfield of 3 bytes; 10 pieces take 2"
    (found,) = c.check(0, ev.Have(10), 0.2)
    assert found[1].detail == "have index 10, but the torrent has 10 pieces (0 to 9)"


@pytest.mark.parametrize("count,bits,says", [
    (16, b"\xff\xff", None),  # whole bytes: no spare bits to set
    (9, b"\xff\x80", None),
    (9, b"\xff\xc0", "bitfield sets spare bits past piece 8"),
    (17, b"\xff\xff\x80", None),
    (17, b"\xff\xff", "bitfield of 2 bytes; 17 pieces take 3"),
])
def test_bitfield_length_and_spare_bits_for_counts_on_and_off_byte_boundaries(count, bits, says):
    c = started(pieces=PieceFacts(count))
    assert [f.detail for _, f in c.check(1, ev.Bitfield(bits), 0.1)] == ([says] if says else [])


def test_the_bitfield_bound_is_the_smallest_seen():
    c = started()
    c.check(1, ev.Bitfield(b"\xff\xff"), 0.1)
    c.check(0, ev.Bitfield(b"\x00"), 0.2)
    assert kinds(c.check(1, ev.Have(8), 0.3)) == [(1, "bad_index")]
    c = started()
    c.check(0, ev.Bitfield(b"\x00"), 0.1)
    c.check(1, ev.Bitfield(b"\xff\xff"), 0.2)
    assert kinds(c.check(1, ev.Have(8), 0.3)) == [(1, "bad_index")]


DHT_EXT = bytes.fromhex("0000000000100001")  # the bit beside Fast's


@pytest.mark.parametrize("a,b", [(PLAIN, PLAIN), (FAST_EXT, PLAIN), (PLAIN, FAST_EXT), (FAST_EXT, DHT_EXT),
                                 (DHT_EXT, FAST_EXT)])
def test_without_fast_on_both_a_choke_discards_requests_so_a_late_piece_is_only_a_note(a, b):
    c = started(a, b)
    c.check(1, ev.Unchoke(), 0.1)
    c.check(0, ev.Request(3, 0, BLOCK), 0.2)
    c.check(1, ev.Choke(), 0.3)
    assert kinds(c.check(1, ev.Piece(3, 0, BLOCK), 0.4)) == [(1, "cancelled_piece")]


def test_the_extension_bit_is_0x10_of_byte_5_alone():
    c = started(bytes.fromhex("0000000000010004"), FAST_EXT)  # byte 5 holds 0x01, not 0x10
    assert kinds(c.check(1, ev.Extended(0, "handshake", {}, 0, 3), 0.1)) == [(1, "extended_without_bit")]


def test_what_answers_a_stream_held_up_behind_a_gap_is_not_judged():
    c = started()
    c.stalled = lambda side: side == 1  # b's stream waits behind a gap: its unchoke may be there
    assert kinds(c.check(0, ev.Request(0, 0, BLOCK), 0.1)) == []
    assert kinds(c.check(0, ev.Extended(5, None, {}, 0, 3), 0.2)) == []
    assert kinds(c.check(1, ev.Piece(7, 0, BLOCK), 0.3)) == [(1, "unrequested_piece")]  # a's stream is whole
    assert kinds(c.check(1, ev.Reject(7, 0, BLOCK), 0.4)) == [(1, "unrequested_reject")]
    c = started()  # the mirror: a's stream held up, b's judged
    c.stalled = lambda side: side == 0
    c.check(1, ev.Unchoke(), 0.1)
    assert kinds(c.check(1, ev.Piece(7, 0, BLOCK), 0.2)) == []
    assert kinds(c.check(1, ev.Extended(5, None, {}, 0, 3), 0.3)) == []
    assert kinds(c.check(0, ev.Request(7, 0, BLOCK), 0.4)) == []
    c.check(1, ev.Choke(), 0.5)
    assert kinds(c.check(0, ev.Request(8, 0, BLOCK), 2.0)) == [(0, "request_while_choked")]
    late = Conformance(trusted=True)
    late.stalled = lambda side: side == 0
    late.check(1, hs(), 0.0)
    assert kinds(late.check(1, ev.Interested(), 0.1)) == []  # a's handshake may be in the gap
    early = Conformance(trusted=True)
    early.stalled = lambda side: side == 1
    early.check(0, hs(), 0.0)
    assert kinds(early.check(0, ev.Interested(), 0.1)) == []  # b's handshake may be in the gap
    early.stalled = None
    assert kinds(early.check(0, ev.Interested(), 0.2)) == [(0, "before_handshake")]
    assert kinds(early.check(0, ev.Interested(), 0.3)) == []  # told once


def test_past_the_request_cap_piece_and_reject_checks_stop(monkeypatch):
    import inspector.conformance as conformance

    monkeypatch.setattr(conformance, "MAX_OUTSTANDING", 2)
    c = started()
    c.check(1, ev.Unchoke(), 0.1)
    c.check(0, ev.Request(0, 0, BLOCK), 0.2)
    c.check(0, ev.Request(1, 0, BLOCK), 0.2)
    assert kinds(c.check(1, ev.Piece(5, 0, BLOCK), 0.3)) == [(1, "unrequested_piece")]  # not full yet
    c.check(0, ev.Request(2, 0, BLOCK), 0.4)  # one too many: not remembered
    assert kinds(c.check(1, ev.Piece(2, 0, BLOCK), 0.5)) == []
    assert kinds(c.check(1, ev.Reject(6, 0, BLOCK), 0.6)) == []
    plain = started(PLAIN, PLAIN)
    plain.check(1, ev.Unchoke(), 0.1)
    plain.check(0, ev.Request(0, 0, BLOCK), 0.2)
    plain.check(0, ev.Request(1, 0, BLOCK), 0.2)
    plain.check(1, ev.Choke(), 0.3)  # discards both: remembered as cancelled
    plain.check(1, ev.Unchoke(), 0.4)
    plain.check(0, ev.Request(2, 0, BLOCK), 0.5)
    plain.check(0, ev.Cancel(2, 0, BLOCK), 0.6)  # a third: the oldest is forgotten
    assert list(plain.sides[0].cancelled) == [(1, 0, BLOCK), (2, 0, BLOCK)]
    assert kinds(plain.check(1, ev.Piece(0, 0, BLOCK), 0.7)) == [(1, "unrequested_piece")]
    assert kinds(plain.check(1, ev.Piece(2, 0, BLOCK), 0.8)) == [(1, "cancelled_piece")]


def test_an_answered_request_is_gone_so_its_cancel_takes_nothing_back():
    c = started()
    c.check(1, ev.Unchoke(), 0.1)
    c.check(0, ev.Request(0, 0, BLOCK), 0.2)
    c.check(1, ev.Piece(0, 0, BLOCK), 0.3)
    c.check(0, ev.Cancel(0, 0, BLOCK), 0.4)  # too late: nothing outstanding
    assert c.sides[0].requests == {} and not c.sides[0].cancelled
    assert kinds(c.check(1, ev.Piece(0, 0, BLOCK), 0.5)) == [(1, "unrequested_piece")]


def test_odd_messages_do_not_break_the_checks():
    c = started()
    assert kinds(c.check(0, ev.Cancel(4, 0, BLOCK), 0.1)) == []  # never requested: nothing to take back
    c.check(1, ev.Extended(0, "handshake", {"m": {"ut_pex": "1", "ut_x": 0, "bad": True, "ut_metadata": 2}}, 0, 3), 0.2)
    assert c.sides[1].ext_ids == {"ut_metadata": 2}
    assert kinds(c.check(0, ev.Extended(1, None, {}, 0, 3), 0.3)) == [(0, "unannounced_extension")]
    lone = Conformance(trusted=True)
    lone.check(1, hs(PLAIN), 0.0)  # only b's handshake was seen
    assert kinds(lone.check(0, ev.HaveAll(), 0.1)) == []
    untrusted = Conformance(trusted=False)
    untrusted.check(0, hs(PLAIN), 0.0)
    untrusted.check(1, hs(PLAIN), 0.0)
    assert kinds(untrusted.check(1, ev.HaveAll(), 0.1)) == []  # bits are judged from a captured start only


def test_silence_is_judged_per_side_and_told_once():
    from inspector.conformance import Activity

    seen = (Activity(0.0), Activity(0.0))
    c = Conformance(trusted=True, activity=seen)
    c.check(0, hs(), 0.0)  # b never sends its handshake: its silence is not judged
    seen[0].active = 10.0
    assert kinds(c.check(0, ev.KeepAlive(), 10.0)) == [(0, "before_handshake")]
    seen[0].active = SILENCE + 50
    assert kinds(c.check(0, ev.KeepAlive(), SILENCE + 50)) == []  # its own bytes came meanwhile
    c = Conformance(trusted=True, activity=(Activity(0.0), Activity(0.0)))
    c.check(1, hs(), 0.0)  # a's handshake never seen: a is not judged, b still is
    c.activity[1].saw(SILENCE + 30)
    assert kinds(c.check(1, ev.KeepAlive(), SILENCE + 30)) == [(1, "silence"), (1, "before_handshake")]
    c = Conformance(trusted=True, activity=seen)
    seen[0].active = seen[1].active = 0.0
    c.check(0, hs(), 0.0)
    c.check(1, hs(), 0.0)
    seen[1].saw(2 * SILENCE)  # b was quiet, and is told when its bytes come; a, while it lasts
    found = c.check(1, ev.KeepAlive(), 2 * SILENCE)
    assert [(w, f.detail) for w, f in found] == [
        (0, f"side a sent nothing for {2 * SILENCE:.0f} s while the connection was live (keep-alives are due "
            "every 2 minutes)"),
        (1, f"side b sent nothing for {2 * SILENCE:.0f} s while the connection was live (keep-alives are due "
            "every 2 minutes)")]
    assert kinds(c.check(1, ev.KeepAlive(), 2 * SILENCE + 1)) == []  # neither again
    seen[0].saw(3 * SILENCE + 10)  # a's silence ends: told already, while it lasted
    seen[1].saw(3 * SILENCE + 10)  # b's second one ends: told now
    assert kinds(c.check(1, ev.KeepAlive(), 3 * SILENCE + 10)) == [(1, "silence")]
    assert kinds(c.check(1, ev.KeepAlive(), 3 * SILENCE + 11)) == []


def test_the_metadata_is_taken_only_whole_in_range_and_hashing_right():
    import hashlib

    import wirebuild as wb
    from inspector.pieces import Metadata

    info = wb.bencode({b"piece length": BLOCK, b"pieces": bytes(60), b"pad": bytes(20000)})
    total, v1, v2 = len(info), hashlib.sha1(info).digest(), hashlib.sha256(info).digest()[:20]
    first, second = info[:BLOCK], info[BLOCK:]
    for info_hash in (v1, v2):
        m = Metadata()
        assert m.add(0, total, first, info_hash) is None
        assert m.add(-1, total, second, info_hash) is None  # no such piece
        assert m.add(2, total, second, info_hash) is None  # past the end (2 * 16 KiB >= total)
        assert m.add(1, None, second, info_hash) is None  # no total_size
        assert m.add(1, total, second, info_hash) == 3
        assert m.add(1, total, second, info_hash) is None  # told once
    exact = Metadata()
    assert exact.add(2, 2 * BLOCK, bytes(BLOCK), v1) is None  # piece 2 of exactly two pieces: none
    assert exact.pieces == {}
    early = Metadata()
    assert early.add(0, total, info, None) is None and early.pieces == {}  # no handshake yet: kept for nothing
    assert Metadata().add(0, total, info, bytes(20)) is None  # hashes wrong


def test_the_largest_metadata_taken_is_max_metadata(monkeypatch):
    import hashlib

    import inspector.pieces as pieces
    import wirebuild as wb

    info = wb.bencode({b"piece length": BLOCK, b"pieces": bytes(40)})
    monkeypatch.setattr(pieces, "MAX_METADATA", len(info))
    assert pieces.Metadata().add(0, len(info), info, hashlib.sha1(info).digest()) == 2
    monkeypatch.setattr(pieces, "MAX_METADATA", len(info) - 1)
    assert pieces.Metadata().add(0, len(info), info, hashlib.sha1(info).digest()) is None


def test_a_piece_is_whole_only_when_every_byte_is_in():
    checked = []
    facts = PieceFacts(2, lambda i, data: checked.append(data) or True, lambda i: 2 * BLOCK)
    assert facts.add_block(2, 0, bytes(2 * BLOCK), "a") is None and checked == []  # no such piece
    assert facts.add_block(0, -1, bytes(10), "a") is None
    assert facts.add_block(0, 2 * BLOCK - 5, bytes(10), "a") is None  # runs past the piece
    assert facts.add_block(0, 100, b"\x01" * BLOCK, "a") is None  # odd blocks: a 16 KiB count would call it whole
    assert facts.add_block(0, BLOCK + 100, b"\x02" * (BLOCK - 100), "a") is None
    assert facts.add_block(0, 0, b"\x03" * 100, "b") == (True, {"a", "b"})  # who sent its blocks
    assert checked == [b"\x03" * 100 + b"\x01" * BLOCK + b"\x02" * (BLOCK - 100)]
    assert facts.add_block(1, 0, bytes(100), "a") is None
    assert facts.add_block(1, 200, bytes(2 * BLOCK - 200), "a") is None  # a gap of 100 bytes between
    assert facts.add_block(1, 100, bytes(100), "a") == (True, {"a"})


def test_unfinished_pieces_past_the_cap_go_unchecked_oldest_first(monkeypatch):
    import inspector.pieces as pieces

    monkeypatch.setattr(pieces, "MAX_ASSEMBLING", 4 * BLOCK)  # room for two unfinished pieces
    facts = PieceFacts(4, lambda i, data: True, lambda i: 2 * BLOCK)
    for index in (0, 1, 2):
        facts.add_block(index, 0, bytes(BLOCK), "a")
    assert list(facts.assembling) == [1, 2]
    assert facts.add_block(2, BLOCK, bytes(BLOCK), "a") == (True, {"a"}) and facts.checked == 1
    assert facts.add_block(0, BLOCK, bytes(BLOCK), "a") is None  # its first half was let go
    assert list(facts.assembling) == [1, 0] and facts.held == 4 * BLOCK
    huge = PieceFacts(1, lambda i, data: True, lambda i: 5 * BLOCK)  # one piece above the whole budget
    assert huge.add_block(0, 0, bytes(BLOCK), "a") is None and not huge.assembling and huge.held == 0


def test_v1_hashes_that_are_not_bytes_fall_back_to_the_file_tree():
    import wirebuild as wb

    from inspector.pieces import count_from_info

    tree = {b"f": {b"": {b"length": 9}}}
    assert count_from_info(wb.bencode({b"piece length": 4, b"pieces": [1], b"file tree": tree})) == 3
    assert count_from_info(wb.bencode({b"piece length": 4, b"pieces": bytes(30), b"file tree": tree})) == 3


def test_the_limits_are_strict_two_minutes_and_one_second_are_allowed(monkeypatch):
    from inspector.conformance import Activity

    spell = Activity(0.0)
    spell.saw(SILENCE)
    assert spell.quiet == 0.0  # exactly two minutes: not longer
    spell.saw(2 * SILENCE + 0.5)
    assert spell.quiet == SILENCE + 0.5
    c = started()
    assert kinds(c.check(0, ev.KeepAlive(), SILENCE)) == []  # b quiet exactly two minutes: fine
    c.check(1, ev.Unchoke(), SILENCE)
    c.check(1, ev.Choke(), SILENCE + 1.0)
    assert kinds(c.check(0, ev.Request(0, 0, BLOCK), SILENCE + 1.0 + CHOKE_GRACE)) == []  # within the grace
    import inspector.conformance as conformance

    monkeypatch.setattr(conformance, "MAX_OUTSTANDING", 2)
    c = started()
    for index in (1, 2, 3):  # the third past the cap is not remembered
        c.check(1, ev.AllowedFast(index), 0.1)
    assert kinds(c.check(0, ev.Request(2, 0, BLOCK), 0.2)) == []
    assert kinds(c.check(0, ev.Request(3, 0, BLOCK), 0.3)) == [(0, "request_while_choked")]


def test_a_request_by_b_waits_on_a_stream_held_up():
    c = started()
    c.stalled = lambda side: side == 0  # a's unchoke may be in its gap
    assert kinds(c.check(1, ev.Request(0, 0, BLOCK), 0.1)) == []
    c.stalled = None
    assert kinds(c.check(1, ev.Request(0, BLOCK, BLOCK), 0.2)) == [(1, "request_while_choked")]


def test_a_bad_hash_names_every_sender_of_the_piece():
    """Sessions of one torrent share its pieces: the block that completes a bad piece may be
    fine and another peer's wrong, so the finding names who sent what."""
    good = bytes(range(256)) * 128  # two blocks
    facts = PieceFacts(1, lambda i, data: data == good, lambda i: len(good))
    first, second = started(pieces=facts), started(pieces=facts)
    first.sender, second.sender = (lambda side: f"#1 {'ab'[side]}"), (lambda side: f"#2 {'ab'[side]}")
    for c in (first, second):
        c.check(1, ev.Unchoke(), 0.1)
    first.check(0, ev.Request(0, 0, BLOCK), 0.2)
    second.check(0, ev.Request(0, BLOCK, BLOCK), 0.2)
    assert kinds(first.check(1, ev.Piece(0, 0, BLOCK, data=bytes(BLOCK)), 0.3)) == []  # wrong, and not yet known
    (found,) = second.check(1, ev.Piece(0, BLOCK, BLOCK, data=good[BLOCK:]), 0.4)
    assert found == (1, ev.Finding("bad_piece_hash", "piece 0 does not match the torrent's hash; its blocks "
                                                     "came from #1 b, #2 b"))
    alone = started(pieces=PieceFacts(1, lambda i, data: False, lambda i: BLOCK))
    alone.check(1, ev.Unchoke(), 0.1)
    alone.check(0, ev.Request(0, 0, BLOCK), 0.2)
    (found,) = alone.check(1, ev.Piece(0, 0, BLOCK, data=bytes(BLOCK)), 0.3)
    assert found[1].detail == "piece 0 does not match the torrent's hash"


def test_the_assembly_budget_counts_what_is_held(monkeypatch):
    import inspector.pieces as pieces

    monkeypatch.setattr(pieces, "MAX_ASSEMBLING", 6 * BLOCK)  # three unfinished pieces of two blocks
    facts = PieceFacts(9, lambda i, data: True, lambda i: 2 * BLOCK)
    for index in (0, 1, 2):
        facts.add_block(index, 0, bytes(BLOCK), "a")
    assert facts.held == 6 * BLOCK
    assert facts.add_block(1, BLOCK, bytes(BLOCK), "a") == (True, {"a"}) and facts.held == 4 * BLOCK
    facts.add_block(3, 0, bytes(BLOCK), "a")
    facts.add_block(4, 0, bytes(BLOCK), "a")  # one too many: piece 0, the oldest, goes
    assert list(facts.assembling) == [2, 3, 4] and facts.held == 6 * BLOCK
    exact = PieceFacts(1, lambda i, data: True, lambda i: 6 * BLOCK)  # a piece of exactly the budget is checked
    assert exact.add_block(0, 0, bytes(6 * BLOCK), "a") == (True, {"a"})


def test_a_bad_hash_names_the_sides_when_no_session_names_them():
    facts = PieceFacts(1, lambda i, data: False, lambda i: 2 * BLOCK)
    c = started(pieces=facts)
    c.check(0, ev.Unchoke(), 0.1)
    c.check(1, ev.Unchoke(), 0.1)
    c.check(0, ev.Request(0, 0, BLOCK), 0.2)
    c.check(1, ev.Request(0, BLOCK, BLOCK), 0.2)
    c.check(1, ev.Piece(0, 0, BLOCK, data=bytes(BLOCK)), 0.3)
    (found,) = c.check(0, ev.Piece(0, BLOCK, BLOCK, data=bytes(BLOCK)), 0.4)
    assert found[1].detail == "piece 0 does not match the torrent's hash; its blocks came from a, b"
