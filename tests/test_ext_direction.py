"""BEP 10 extension ids are the receiver's (issue 12, item 3).

An extended message's id is one the *receiver* announced in its extension handshake's
``m`` dictionary; naming it from the sender's own ``m`` is a bug that the sample
captures once let through (libtorrent announces the same ids both ways). Here the
expectation is derived in the test, from the handshakes in ``btshark read -T jsonl``
of both sides, by BEP 10's rule; tshark, which knows nothing of names, witnesses the
ids and frames; and a built capture gives each side different ids for every extension
btshark names, so a mix-up of direction cannot go unseen.
"""
from __future__ import annotations

import ipaddress
import subprocess
from collections import Counter
from pathlib import Path

import pytest

import hostile
import wirebuild as wb
from conftest import capture_params, read_jsonl, read_sessions

ALL_CAPTURES = capture_params()


def handshake_ids(records: list[dict]) -> dict[tuple[int, str], dict[str, int]]:
    """(session, address) -> what that address announced: name -> id (BEP 10: 0 disables)."""
    announced: dict[tuple[int, str], dict[str, int]] = {}
    for r in records:
        if r["type"] == "extended" and r["ext_id"] == 0 and isinstance(r["data"], dict):
            m = r["data"].get("m", {})
            announced[(r["session"], r["src"])] = {name: i for name, i in m.items() if isinstance(i, int) and i}
    return announced


def receivers_name(announced: dict[tuple[int, str], dict[str, int]], r: dict) -> str | None:
    """The name the receiver gave ``r``'s id, or None (its handshake not captured, or no such id)."""
    names = [name for name, i in announced.get((r["session"], r["dst"]), {}).items() if i == r["ext_id"]]
    assert len(names) <= 1, f"the receiver announced id {r['ext_id']} for {names}"
    return names[0] if names else None


def address(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    host, _, port = text.rpartition(":")
    number = int(port)
    assert 0 < number < 65536, text
    return ipaddress.ip_address(host.strip("[]")), number


def check_body(name: str | None, data: object, trailing: int) -> None:
    """What BEP 9, 11 and libtorrent's binary extensions say each body holds."""
    if name == "ut_pex":  # BEP 11: compact peers, IPv4 in added/dropped, IPv6 in added6/dropped6
        assert isinstance(data, dict)
        for key, family in (("added", 4), ("dropped", 4), ("added6", 6), ("dropped6", 6)):
            for peer in data.get(key, []):
                assert address(peer)[0].version == family, (key, peer)
        for key in ("added", "added6"):
            if f"{key}.f" in data:
                assert len(data[f"{key}.f"]) == len(data.get(key, [])), "one flag byte per peer"
    elif name == "ut_metadata":  # BEP 9: request 0, data 1 (with the piece after the dictionary), reject 2
        assert data["msg_type"] in (0, 1, 2) and isinstance(data["piece"], int) and data["piece"] >= 0
        assert (trailing > 0) == (data["msg_type"] == 1)
        if data["msg_type"] == 1:
            assert isinstance(data["total_size"], int) and trailing <= data["total_size"]
    elif name == "upload_only":
        assert data in ({"upload_only": 0}, {"upload_only": 1})
    elif name == "lt_donthave":
        assert set(data) == {"index"} and isinstance(data["index"], int)


@pytest.mark.parametrize("capture", ALL_CAPTURES)
def test_extended_messages_are_named_by_the_receivers_handshake(capture):
    records = read_jsonl(capture)
    announced = handshake_ids(records)
    for r in (r for r in records if r["type"] == "extended"):
        if r["ext_id"] == 0:
            assert r["ext_name"] == "handshake"
            continue
        name = receivers_name(announced, r)
        assert r["ext_name"] == name, (r["frame"], r["src"], r["ext_id"], announced)
        if r["data"] is not None:
            check_body(name, r["data"], r.get("trailing", 0))


def test_the_shared_captures_hold_messages_whose_name_depends_on_the_direction(shared_captures):
    """Otherwise the test above could not tell the sender's ids from the receiver's."""
    telling = []
    for capture in sorted(shared_captures.glob("*.pcap")):
        records = read_jsonl(capture)
        announced = handshake_ids(records)
        for r in records:
            if r["type"] == "extended" and r["ext_id"]:
                mine = announced.get((r["session"], r["src"]), {})
                if r["ext_name"] and mine.get(r["ext_name"]) != r["ext_id"]:
                    telling.append((capture.name, r["frame"], r["ext_name"]))
    assert ("aria2-to-libtorrent.pcap", 12, "ut_pex") in telling


def tshark_extended(tshark: str, capture: Path) -> Counter:
    """(frame, sender's port, extended id) of every extended message tshark decodes, told the
    ports btshark found (tshark does not look for BitTorrent on any port by itself)."""
    sessions = read_sessions(capture)
    ports = sorted({int(s[side].rsplit(":", 1)[1]) for s in sessions for side in ("a", "b")})
    decode_as = [arg for port in ports for arg in ("-d", f"tcp.port=={port},bittorrent")]
    out = subprocess.run(
        [tshark, "-r", str(capture), *decode_as, "--enable-heuristic", "bt_utp_udp",
         "-o", "tcp.reassemble_out_of_order:TRUE", "-Y", "bittorrent.extended.id",
         "-T", "fields", "-e", "frame.number", "-e", "tcp.srcport", "-e", "udp.srcport",
         "-e", "bittorrent.extended.id"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    found: Counter = Counter()
    for line in out.splitlines():
        frame, tcp_port, udp_port, ids = line.split("\t")
        for ext_id in ids.split(","):
            found[(int(frame), int(tcp_port or udp_port), int(ext_id))] += 1
    return found


def btshark_extended(capture: Path) -> Counter:
    return Counter((r["frame"], int(r["src"].rsplit(":", 1)[1]), r["ext_id"])
                   for r in read_jsonl(capture) if r["type"] == "extended")


# tshark takes a second or two to start: it witnesses the captures whose extended messages go
# both ways beyond the handshakes (the shared ones: ut_pex) and the built capture below.
TSHARK_WITNESSED = [p for name in ("aria2-to-libtorrent.pcap", "transmission-to-libtorrent.pcap")
                    for p in capture_params(name=name) if not p.id.startswith("captures/")]


@pytest.mark.parametrize("capture", TSHARK_WITNESSED)
def test_tshark_sees_the_same_extended_ids_in_the_same_frames(capture, tshark):
    assert btshark_extended(capture) == tshark_extended(tshark, capture)


# ---------------------------------------------------------------- both directions, every extension

A_ADDR, B_ADDR = "10.0.0.1:40000", "10.0.0.2:6881"
# Disjoint ids: a message named from the wrong side's m gets no name, or another one.
A_M = {b"ut_pex": 1, b"ut_metadata": 2, b"upload_only": 3, b"lt_donthave": 4}
B_M = {b"ut_pex": 11, b"ut_metadata": 12, b"upload_only": 13, b"lt_donthave": 14}
PEX = wb.compact_v4("10.9.8.7", 6881) + wb.compact_v4("10.9.8.6", 51413)
PEX6 = wb.compact_v6("2001:db8::1", 6881)
METADATA = b"d6:lengthi1e4:name1:xe"

# (sender, the message as sent, with the receiver's id, and the record's ext_name and data), in order.
BOTH_WAYS: list[tuple[int, bytes, str, object]] = [
    (0, wb.extended(12, wb.bencode({b"msg_type": 0, b"piece": 0})), "ut_metadata", {"msg_type": 0, "piece": 0}),
    (1, wb.extended(2, wb.bencode({b"msg_type": 1, b"piece": 0, b"total_size": len(METADATA)}) + METADATA),
     "ut_metadata", {"msg_type": 1, "piece": 0, "total_size": len(METADATA)}),
    (0, wb.extended(12, wb.bencode({b"msg_type": 0, b"piece": 1})), "ut_metadata", {"msg_type": 0, "piece": 1}),
    (1, wb.extended(2, wb.bencode({b"msg_type": 2, b"piece": 1})), "ut_metadata", {"msg_type": 2, "piece": 1}),
    (1, wb.extended(1, wb.bencode({b"added": PEX, b"added.f": b"\x01\x10", b"added6": PEX6, b"dropped": b""})),
     "ut_pex", {"added": ["10.9.8.7:6881", "10.9.8.6:51413"], "added.f": "\x01\x10", "added6": ["[2001:db8::1]:6881"],
                "dropped": []}),
    (0, wb.extended(11, wb.bencode({b"dropped": wb.compact_v4("10.1.1.1", 1)})), "ut_pex", {"dropped": ["10.1.1.1:1"]}),
    (1, wb.extended(3, b"\x01"), "upload_only", {"upload_only": 1}),
    (0, wb.extended(13, b"\x00"), "upload_only", {"upload_only": 0}),
    (1, wb.extended(4, bytes.fromhex("0000002a")), "lt_donthave", {"index": 42}),
    (0, wb.extended(14, bytes.fromhex("00010000")), "lt_donthave", {"index": 65536}),
]


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory) -> Path:
    conn = hostile.Conn(a="10.0.0.1", b="10.0.0.2", aport=40000, bport=6881).open()
    reserved = bytes.fromhex("0000000000100000")
    conn.send(0, wb.handshake(hostile.HASH, hostile.PEER_A, reserved))
    conn.send(1, wb.handshake(hostile.HASH, hostile.PEER_B, reserved))
    conn.send(0, wb.extended(0, wb.bencode({b"m": A_M})))
    conn.send(1, wb.extended(0, wb.bencode({b"m": B_M})))
    for side, data, _, _ in BOTH_WAYS:
        conn.send(side, data)
    return hostile.write_pcap(tmp_path_factory.mktemp("ext") / "both-ways.pcap", conn.close().frames)


def test_every_extension_is_named_by_its_receiver_both_ways(both_ways):
    got = [r for r in read_jsonl(both_ways) if r["type"] == "extended" and r["ext_id"]]
    assert [(r["src"], r["ext_name"], r["data"]) for r in got] == \
        [(A_ADDR if side == 0 else B_ADDR, name, data) for side, _, name, data in BOTH_WAYS]
    assert [r.get("trailing", 0) for r in got] == [len(METADATA) if i == 1 else 0 for i in range(len(BOTH_WAYS))]
    for r in got:
        check_body(r["ext_name"], r["data"], r.get("trailing", 0))


def test_tshark_sees_the_same_extended_ids_both_ways(both_ways, tshark):
    ours = btshark_extended(both_ways)
    assert len(ours) == 2 + len(BOTH_WAYS)
    assert ours == tshark_extended(tshark, both_ways)


def test_a_message_sent_with_the_senders_own_id_is_named_by_the_receivers(tmp_path):
    """a sends a ut_pex body with id 1, a's own ut_pex id, which b gave to upload_only; then an
    upload_only body with id 3, a's own upload_only id, which b gave to nothing."""
    conn = hostile.Conn().open().handshakes()
    conn.send(0, wb.extended(0, wb.bencode({b"m": A_M})))
    conn.send(1, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 11, b"upload_only": 1}})))
    conn.send(0, wb.extended(1, wb.bencode({b"added": PEX})))
    conn.send(0, wb.extended(3, b"\x01"))
    records = read_jsonl(hostile.write_pcap(tmp_path / "own-id.pcap", conn.close().frames))
    got = [(r["ext_id"], r["ext_name"]) for r in records if r["type"] == "extended" and r["ext_id"]]
    assert got == [(1, "upload_only"), (3, None)]


def test_a_later_extension_handshake_changes_only_what_it_names(tmp_path):
    """BEP 10: "Subsequent handshake messages can be used to enable/disable extensions ... the m
    dictionary is additive. It's enough that it contains the actual CHANGES to the extension list"."""
    conn = hostile.Conn().open().handshakes()
    conn.send(0, wb.extended(0, wb.bencode({b"m": A_M})))
    conn.send(1, wb.extended(0, wb.bencode({b"m": B_M})))
    conn.send(1, wb.extended(0, wb.bencode({b"m": {b"ut_pex": 0, b"lt_donthave": 21}})))
    conn.send(0, wb.extended(12, wb.bencode({b"msg_type": 0, b"piece": 0})))  # ut_metadata: unchanged
    conn.send(0, wb.extended(21, bytes.fromhex("00000007")))  # lt_donthave: moved to 21
    conn.send(0, wb.extended(11, wb.bencode({b"added": PEX})))  # ut_pex: disabled
    records = read_jsonl(hostile.write_pcap(tmp_path / "again.pcap", conn.close().frames))
    got = [(r["ext_id"], r["ext_name"]) for r in records if r["type"] == "extended" and r["src"] == A_ADDR
           and r["ext_id"]]
    assert got == [(12, "ut_metadata"), (21, "lt_donthave"), (11, None)]
