"""The JSON contract, every message type pinned (issue 12, item 2).

``test_cli.py`` checks exact key sets on the sample captures, but not for bitfield, port,
the BEP 52 messages or unknown ones (the samples hold few or none of them), so a key
renamed in one of those survived the suite. Here one message of every type is built
from the BEPs (``wirebuild``), run
through ``btshark read -T jsonl`` and ``-T json``, and each record must have exactly the
keys written below (README.md's JSON contract, DESIGN.md's table) with exactly the
values that were built. The tables are written by hand, not read from ``inspector``.
The findings those messages earn (a finding is a record of its own, ``type: "finding"``)
are pinned the same way: their keys, their place, their values.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import hostile
import wirebuild as wb
from conftest import CAPTURES, btshark_ok, read_jsonl, read_sessions

from inspector import events as ev
from inspector.output import _detail, ranges

BASE = {"session", "transport", "src", "dst", "ts", "frame", "type", "id", "size"}
INDEX = {"index"}
BLOCK = {"index", "begin", "length"}
HASH_HEAD = {"pieces_root", "base_layer", "index", "length", "proof_layers"}

# message type -> keys beside BASE: DESIGN.md's table and README.md's "a few more".
EXTRA_KEYS: dict[str, set[str]] = {
    "handshake": {"info_hash", "peer_id", "client", "reserved", "extensions"},
    "keepalive": set(), "choke": set(), "unchoke": set(), "interested": set(), "not_interested": set(),
    "have": INDEX, "bitfield": {"pieces"}, "request": BLOCK, "piece": BLOCK, "cancel": BLOCK, "port": {"port"},
    "suggest": INDEX, "have_all": set(), "have_none": set(), "reject": BLOCK, "allowed_fast": INDEX,
    "extended": {"ext_id", "ext_name", "data"},
    "hash_request": HASH_HEAD, "hashes": HASH_HEAD | {"hashes"}, "hash_reject": HASH_HEAD,
    "unknown": set(),
}
# What a message the capture holds only part of adds; and an extended message with bytes after its
# bencoded dictionary (a ut_metadata piece).
PARTIAL_KEYS = {"piece": {"missing"}, "bitfield": {"missing"}, "extended": {"missing"}}
TRAILING_KEYS = {"trailing"}

A, B = ("10.0.0.1", 40000), ("10.0.0.2", 6881)
A_ADDR, B_ADDR = "10.0.0.1:40000", "10.0.0.2:6881"
T0 = 1_700_000_000.0
INFO_HASH = bytes(range(20))
PEER_A = b"-LT2110-aaaaaaaaaaaa"
PEER_B = b"-TR3000-bbbbbbbbbbbb"
# BEP 10 (byte 5, 0x10), BEP 52 (byte 7, 0x10), BEP 6 (byte 7, 0x04), BEP 5 (byte 7, 0x01)
RESERVED = bytes.fromhex("0000000000100015")
ROOT = bytes(range(100, 132))
HASH_1, HASH_2 = bytes([1]) * 32, bytes([2]) * 32
# Each side's BEP 10 m: what the *other* side must use to send it that extension.
A_M = {b"ut_metadata": 3, b"ut_pex": 1}
B_M = {b"ut_metadata": 7, b"ut_pex": 5}
METADATA = b"d4:name3:abce"

# (sending side, the bytes, the record's type, id, size, and per-type values), in wire order.
MESSAGES: list[tuple[int, bytes, dict]] = [
    (0, wb.handshake(INFO_HASH, PEER_A, RESERVED),
     {"type": "handshake", "id": None, "size": 68, "info_hash": INFO_HASH.hex(), "peer_id": PEER_A.hex(),
      "client": "libtorrent (rasterbar) 2.1.1", "reserved": "0000000000100015",
      "extensions": ["extension_protocol", "v2_upgrade", "fast", "dht"]}),
    (1, wb.handshake(INFO_HASH, PEER_B, bytes.fromhex("0000000000100004")),
     {"type": "handshake", "id": None, "size": 68, "info_hash": INFO_HASH.hex(), "peer_id": PEER_B.hex(),
      "client": "Transmission 3.00", "reserved": "0000000000100004", "extensions": ["extension_protocol", "fast"]}),
    (0, wb.extended(0, wb.bencode({b"m": A_M, b"v": b"x/1", b"p": 6881, b"yourip": bytes([10, 0, 0, 2])})),
     {"type": "extended", "id": 20, "size": 2 + len(wb.bencode({b"m": A_M, b"v": b"x/1", b"p": 6881,
                                                              b"yourip": bytes([10, 0, 0, 2])})),
      "ext_id": 0, "ext_name": "handshake",
      "data": {"m": {"ut_metadata": 3, "ut_pex": 1}, "v": "x/1", "p": 6881, "yourip": "10.0.0.2"}}),
    (1, wb.extended(0, wb.bencode({b"m": B_M, b"metadata_size": len(METADATA)})),
     {"type": "extended", "id": 20, "size": 2 + len(wb.bencode({b"m": B_M, b"metadata_size": len(METADATA)})),
      "ext_id": 0, "ext_name": "handshake", "data": {"m": {"ut_metadata": 7, "ut_pex": 5}, "metadata_size": 13}}),
    (1, wb.bitfield(b"\xff\x80"), {"type": "bitfield", "id": 5, "size": 3, "pieces": 9}),
    (0, wb.have_none(), {"type": "have_none", "id": 15, "size": 1}),
    (1, wb.have_all(), {"type": "have_all", "id": 14, "size": 1}),
    (1, wb.allowed_fast(8), {"type": "allowed_fast", "id": 17, "size": 5, "index": 8}),
    (1, wb.suggest(6), {"type": "suggest", "id": 13, "size": 5, "index": 6}),
    (0, wb.interested(), {"type": "interested", "id": 2, "size": 1}),
    (1, wb.unchoke(), {"type": "unchoke", "id": 1, "size": 1}),
    (0, wb.request(3, 16384, 100), {"type": "request", "id": 6, "size": 13, "index": 3, "begin": 16384, "length": 100}),
    (1, wb.piece(3, 16384, bytes(range(100))),
     {"type": "piece", "id": 7, "size": 109, "index": 3, "begin": 16384, "length": 100}),
    (0, wb.cancel(4, 32768, 16384),
     {"type": "cancel", "id": 8, "size": 13, "index": 4, "begin": 32768, "length": 16384}),
    (1, wb.reject(4, 32768, 16384),
     {"type": "reject", "id": 16, "size": 13, "index": 4, "begin": 32768, "length": 16384}),
    (1, wb.have(2), {"type": "have", "id": 4, "size": 5, "index": 2}),
    (0, wb.port(6882), {"type": "port", "id": 9, "size": 3, "port": 6882}),
    # BEP 10: sent with the id the receiver announced (b: ut_metadata 7; a: ut_metadata 3, ut_pex 1).
    (0, wb.extended(7, wb.bencode({b"msg_type": 0, b"piece": 0})),
     {"type": "extended", "id": 20, "size": 2 + len(wb.bencode({b"msg_type": 0, b"piece": 0})),
      "ext_id": 7, "ext_name": "ut_metadata", "data": {"msg_type": 0, "piece": 0}}),
    (1, wb.extended(3, wb.bencode({b"msg_type": 1, b"piece": 0, b"total_size": len(METADATA)}) + METADATA),
     {"type": "extended", "id": 20,
      "size": 2 + len(wb.bencode({b"msg_type": 1, b"piece": 0, b"total_size": 13})) + len(METADATA),
      "ext_id": 3, "ext_name": "ut_metadata", "data": {"msg_type": 1, "piece": 0, "total_size": 13},
      "trailing": len(METADATA)}),
    (1, wb.extended(1, wb.bencode({b"added": wb.compact_v4("10.1.2.3", 6881) + wb.compact_v4("10.1.2.4", 51413),
                                   b"dropped": b""})),
     {"type": "extended", "id": 20, "size": 2 + len(wb.bencode({b"added": bytes(12), b"dropped": b""})),
      "ext_id": 1, "ext_name": "ut_pex", "data": {"added": ["10.1.2.3:6881", "10.1.2.4:51413"], "dropped": []}}),
    (0, wb.hash_request(ROOT, 0, 4, 8, 2),
     {"type": "hash_request", "id": 21, "size": 49, "pieces_root": ROOT.hex(), "base_layer": 0, "index": 4,
      "length": 8, "proof_layers": 2}),
    (1, wb.hashes(ROOT, 0, 4, 2, 0, [HASH_1, HASH_2]),
     {"type": "hashes", "id": 22, "size": 49 + 64, "pieces_root": ROOT.hex(), "base_layer": 0, "index": 4,
      "length": 2, "proof_layers": 0, "hashes": 2}),
    (1, wb.hash_reject(ROOT, 1, 16, 512, 3),
     {"type": "hash_reject", "id": 23, "size": 49, "pieces_root": ROOT.hex(), "base_layer": 1, "index": 16,
      "length": 512, "proof_layers": 3}),
    (0, wb.msg(99, b"xyz"), {"type": "unknown", "id": 99, "size": 4}),
    (1, wb.keepalive(), {"type": "keepalive", "id": None, "size": 0}),
    (0, wb.not_interested(), {"type": "not_interested", "id": 3, "size": 1}),
    (1, wb.choke(), {"type": "choke", "id": 0, "size": 1}),
]
FIRST_MESSAGE_FRAME = 4  # after SYN, SYN-ACK, ACK; then one segment (one frame) per message

# A finding is a record of its own (DESIGN.md: ``type: "finding"``, ``kind``, ``severity``, ``detail``),
# with the message records' place keys and no ``id`` or ``size``.
FINDING_BASE = {"session", "transport", "src", "dst", "ts", "frame", "type", "kind", "severity", "detail"}
# What a peer on the other end would object to in MESSAGES, reasoned out by hand: (the index in
# MESSAGES of the message that caused it, kind, severity, detail). Each is written right after
# that message, with its side, frame and time.
FINDINGS: list[tuple[int, str, str, str]] = [
    # b's have_all (6) after its own bitfield (4): BEP 3/6, one piece map, sent once.
    (6, "second_bitfield", "warning", "have_all after this side's bitfield: the piece map is sent once"),
    # b rejects 4:32768:16384 (14), which a cancelled (13) but never requested.
    (14, "unrequested_reject", "error",
     "reject of index 4 begin 32768 length 16384, which the other side never requested"),
]


def frame_time(frame: int) -> float:
    """``hostile.Conn`` stamps its n-th frame 1 ms after the one before, from T0."""
    return T0 + 0.001 * frame


@pytest.fixture(scope="module")
def every_type(tmp_path_factory) -> Path:
    conn = hostile.Conn(a=A[0], b=B[0], aport=A[1], bport=B[1], t0=T0).open()
    for side, data, _ in MESSAGES:
        conn.emit(side, hostile.PSH, data)
    conn.close()
    return hostile.write_pcap(tmp_path_factory.mktemp("contract") / "every-type.pcap", conn.frames)


def expected_record(n: int) -> dict:
    side, _, fields = MESSAGES[n]
    frame = FIRST_MESSAGE_FRAME + n
    src, dst = (A_ADDR, B_ADDR) if side == 0 else (B_ADDR, A_ADDR)
    return {"session": 1, "transport": "tcp", "src": src, "dst": dst, "ts": frame_time(frame), "frame": frame,
            **fields}


def expected_records() -> list[dict]:
    """Every record ``read -T jsonl`` writes of ``every_type``: each message, then the findings it caused."""
    out = []
    for n in range(len(MESSAGES)):
        message = expected_record(n)
        out.append(message)
        for _, kind, severity, detail in (f for f in FINDINGS if f[0] == n):
            out.append({**{k: message[k] for k in ("session", "transport", "src", "dst", "ts", "frame")},
                        "type": "finding", "kind": kind, "severity": severity, "detail": detail})
    return out


def test_the_table_has_every_type_the_contract_names():
    """DESIGN.md's ``type`` list, copied here, against the table and the built messages."""
    design = {"handshake", "keepalive", "choke", "unchoke", "interested", "not_interested", "have", "bitfield",
              "request", "piece", "cancel", "port", "suggest", "have_all", "have_none", "reject", "allowed_fast",
              "extended", "hash_request", "hashes", "hash_reject", "unknown"}
    assert set(EXTRA_KEYS) == design
    assert {fields["type"] for _, _, fields in MESSAGES} == design


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_every_type_has_exactly_its_keys(every_type, fmt):
    records = records_of(every_type, fmt)
    assert [r["type"] for r in records] == [r["type"] for r in expected_records()]
    messages = [r for r in records if r["type"] != "finding"]
    for r, (_, _, built) in zip(messages, MESSAGES, strict=True):
        extra = EXTRA_KEYS[r["type"]] | (TRAILING_KEYS if "trailing" in built else set())
        assert set(r) == BASE | extra, f"{r['type']}: {sorted(set(r) ^ (BASE | extra))} differ"
    findings = [r for r in records if r["type"] == "finding"]
    assert len(findings) == len(FINDINGS)
    for r in findings:
        assert set(r) == FINDING_BASE, f"{r['kind']}: {sorted(set(r) ^ FINDING_BASE)} differ"


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_every_value_is_what_was_built(every_type, fmt):
    records = records_of(every_type, fmt)
    expected = expected_records()
    assert len(records) == len(expected) == len(MESSAGES) + len(FINDINGS)
    for r, want in zip(records, expected):
        assert r["ts"] == pytest.approx(want.pop("ts"), abs=1e-5)
        assert {k: v for k, v in r.items() if k != "ts"} == want


def records_of(capture: Path, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return read_jsonl(capture)
    return json.loads(btshark_ok("read", capture, "-T", "json").stdout)


# ---------------------------------------------------------------- --sessions -T json

SESSION_KEYS = {"id", "transport", "a", "b", "opener_known", "info_hash", "peer_ids", "clients", "encrypted",
                "start", "end", "state", "messages", "payload_bytes", "sides", "findings", "finding_counts",
                "findings_dropped"}
SIDE_KEYS = {"addr", "peer_id", "client", "reserved", "extensions", "extension_handshake", "messages",
             "payload_bytes", "stream_bytes"}
FINDING_KEYS = {"kind", "severity", "side", "frame", "detail"}


def test_session_record_keys_and_values(every_type):
    (s,) = read_sessions(every_type)
    assert set(s) == SESSION_KEYS
    sent = {label: [f["type"] for who, _, f in MESSAGES if who == side] for side, label in ((0, "a"), (1, "b"))}
    counts = {label: {t: types.count(t) for t in sorted(set(types))} for label, types in sent.items()}
    last_frame = FIRST_MESSAGE_FRAME + len(MESSAGES) + 1  # the two FINs
    assert {k: s[k] for k in SESSION_KEYS - {"start", "end", "sides"}} == {
        "id": 1, "transport": "tcp", "a": A_ADDR, "b": B_ADDR, "opener_known": True, "info_hash": INFO_HASH.hex(),
        "peer_ids": {"a": PEER_A.hex(), "b": PEER_B.hex()},
        "clients": {"a": "libtorrent (rasterbar) 2.1.1", "b": "Transmission 3.00"},
        "encrypted": False, "state": "closed", "messages": counts, "payload_bytes": {"a": 0, "b": 100},
        "findings": [{"kind": kind, "severity": severity, "side": "ab"[MESSAGES[n][0]],
                      "frame": FIRST_MESSAGE_FRAME + n, "detail": detail} for n, kind, severity, detail in FINDINGS],
        "finding_counts": {"second_bitfield": 1, "unrequested_reject": 1}, "findings_dropped": 0,
    }
    assert all(set(f) == FINDING_KEYS for f in s["findings"])
    assert s["start"] == pytest.approx(frame_time(1), abs=1e-5)
    assert s["end"] == pytest.approx(frame_time(last_frame), abs=1e-5)
    assert set(s["sides"]) == {"a", "b"}
    streams = {side: sum(len(data) for who, data, _ in MESSAGES if who == side) for side in (0, 1)}
    a, b = s["sides"]["a"], s["sides"]["b"]
    assert set(a) == set(b) == SIDE_KEYS
    assert a == {"addr": A_ADDR, "peer_id": PEER_A.hex(), "client": "libtorrent (rasterbar) 2.1.1",
                 "reserved": "0000000000100015", "extensions": ["extension_protocol", "v2_upgrade", "fast", "dht"],
                 "extension_handshake": {"m": {"ut_metadata": 3, "ut_pex": 1}, "v": "x/1", "p": 6881,
                                         "yourip": "10.0.0.2"},
                 "messages": counts["a"], "payload_bytes": 0, "stream_bytes": streams[0]}
    assert b == {"addr": B_ADDR, "peer_id": PEER_B.hex(), "client": "Transmission 3.00",
                 "reserved": "0000000000100004", "extensions": ["extension_protocol", "fast"],
                 "extension_handshake": {"m": {"ut_metadata": 7, "ut_pex": 5}, "metadata_size": 13},
                 "messages": counts["b"], "payload_bytes": 100, "stream_bytes": streams[1]}


# ---------------------------------------------------------------- messages the capture holds only part of

BITS = b"\xff" * 2000  # a bitfield of 16,000 pieces, sent in four 500-byte segments; the 2nd is lost
BLOCK_BYTES = bytes(range(256)) * 12  # a 3,072-byte block in three 1,024-byte segments; the 2nd is lost
EXT_BODY = wb.bencode({b"m": {b"ut_pex": 1}, b"v": b"y" * 1500})  # in 600-byte segments; the 2nd is lost


@pytest.fixture(scope="module")
def partial(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """b's bitfield, piece and extended handshake each lose their second segment; a's next segment
    acknowledges past it, so the loss is known at once. Returns the capture and, per
    type, the frame that carried the message's last byte."""
    conn = hostile.Conn(a=A[0], b=B[0], aport=A[1], bport=B[1], t0=T0).open()
    conn.send(0, wb.handshake(INFO_HASH, PEER_A, RESERVED)).send(1, wb.handshake(INFO_HASH, PEER_B, RESERVED))
    last: dict[str, int] = {}

    def lossy(kind: str, data: bytes, size: int) -> None:
        for i in range(0, len(data), size):
            if i == size:
                conn.seq[1] += len(data[i:i + size])  # on the wire, not in the capture
            else:
                conn.emit(1, hostile.PSH, data[i:i + size])
                last[kind] = len(conn.frames)
        conn.emit(0, hostile.PSH, wb.interested())

    lossy("bitfield", wb.bitfield(BITS), 500)
    lossy("piece", wb.piece(5, 0, BLOCK_BYTES), 1024)
    lossy("extended", wb.extended(0, EXT_BODY), 600)
    conn.close()
    return hostile.write_pcap(tmp_path_factory.mktemp("partial") / "partial.pcap", conn.frames), last


def partial_records(capture: Path) -> dict[str, dict]:
    """b's messages past its handshake, by type (the findings, records of their own, left out)."""
    return {r["type"]: r for r in read_jsonl(capture)
            if r["src"] == B_ADDR and r["type"] not in ("handshake", "finding")}


def test_partial_messages_carry_missing(partial):
    capture, last = partial
    got = partial_records(capture)
    assert set(got) == set(PARTIAL_KEYS)
    for kind, r in got.items():
        assert set(r) == BASE | EXTRA_KEYS[kind] | PARTIAL_KEYS[kind], kind
    # 13 + 3072 bytes on the wire; bytes 1024-2047 lost, all of them block bytes.
    assert got["piece"] == {**got["piece"], "id": 7, "size": 9 + 3072, "index": 5, "begin": 0, "length": 3072,
                            "missing": 1024, "frame": last["piece"]}
    assert {k: got["bitfield"][k] for k in ("id", "size")} == {"id": 5, "size": 2001}
    assert {k: got["extended"][k] for k in ("id", "size", "ext_id", "ext_name", "data")} == \
        {"id": 20, "size": 2 + len(EXT_BODY), "ext_id": 0, "ext_name": "handshake", "data": None}
    (session,) = read_sessions(capture)
    assert [f["kind"] for f in session["findings"]] == ["hole"] * 3
    assert all(set(f) == FINDING_KEYS for f in session["findings"])
    assert session["finding_counts"] == {"hole": 3}
    # Each hole is also a record of its own, on b's side, at the frame of a's ack that made it known.
    holes = [r for r in read_jsonl(capture) if r["type"] == "finding"]
    assert all(set(r) == FINDING_BASE for r in holes)
    assert [(r["kind"], r["severity"], r["src"], r["frame"]) for r in holes] == \
        [("hole", "warning", B_ADDR, last[kind] + 1) for kind in ("bitfield", "piece", "extended")]


def test_partial_messages_are_the_same_in_json_and_jsonl(partial):
    """``-T jsonl`` writes block messages by a path of its own; ``-T json`` by the general one."""
    capture, _ = partial
    assert records_of(capture, "json") == records_of(capture, "jsonl")
    assert {r["type"]: r.get("missing") for r in records_of(capture, "json")
            if r["src"] == B_ADDR and r["type"] != "finding"} == \
        {"handshake": None, "bitfield": 500, "piece": 1024, "extended": 600}


def test_partial_bitfield_and_extended_count_only_the_bytes_lost(partial):
    got = partial_records(partial[0])
    # 5 + 2000 bytes on the wire; bytes 500-999 lost, all of them bitfield bytes (0xff each).
    assert (got["bitfield"]["pieces"], got["bitfield"]["missing"]) == (8 * (2000 - 500), 500)
    # 6 + len(EXT_BODY) bytes on the wire; bytes 600-1199 lost, all of them body bytes.
    assert got["extended"]["missing"] == 600


def test_partial_bitfield_and_extended_carry_the_frame_of_their_last_byte(partial):
    capture, last = partial
    got = partial_records(capture)
    assert {kind: got[kind]["frame"] for kind in ("bitfield", "extended")} == \
        {kind: last[kind] for kind in ("bitfield", "extended")}


# ---------------------------------------------------------------- text lines (DESIGN.md's text format)

# What follows "src → dst  " on each message's line, written by hand in MESSAGES' order.
_HS = f"handshake info_hash={INFO_HASH.hex()}"
TEXT: list[str] = [
    f"{_HS} peer_id=-LT2110-aaaaaaaaaaaa (libtorrent (rasterbar) 2.1.1) "
    "reserved=[extension_protocol,v2_upgrade,fast,dht]",
    f"{_HS} peer_id=-TR3000-bbbbbbbbbbbb (Transmission 3.00) reserved=[extension_protocol,fast]",
    'extended handshake {"m":{"ut_metadata":3,"ut_pex":1},"p":6881,"v":"x/1","yourip":"10.0.0.2"}',  # bencode's order
    'extended handshake {"m":{"ut_metadata":7,"ut_pex":5},"metadata_size":13}',
    "bitfield pieces=9",
    "have_none",
    "have_all",
    "allowed_fast index=8",
    "suggest index=6",
    "interested",
    "unchoke",
    "request index=3 begin=16384 length=100",
    "piece index=3 begin=16384 length=100",
    "cancel index=4 begin=32768 length=16384",
    "reject index=4 begin=32768 length=16384",
    "have index=2",
    "port port=6882",
    'extended ut_metadata {"msg_type":0,"piece":0}',
    'extended ut_metadata {"msg_type":1,"piece":0,"total_size":13} +13 bytes',
    'extended ut_pex {"added":["10.1.2.3:6881","10.1.2.4:51413"],"dropped":[]}',
    f"hash_request pieces_root={ROOT.hex()} base_layer=0 index=4 length=8 proof_layers=2",
    f"hashes pieces_root={ROOT.hex()} base_layer=0 index=4 length=2 proof_layers=0 hashes=2",
    f"hash_reject pieces_root={ROOT.hex()} base_layer=1 index=16 length=512 proof_layers=3",
    "unknown id=99 size=4",
    "keepalive",
    "not_interested",
    "choke",
]


def test_every_type_has_its_text_line(every_type):
    lines = btshark_ok("read", every_type).stdout.splitlines()
    # Each message's line, then a "!! kind [severity]: detail" line per finding it caused, with its
    # frame, time and direction.
    expected: list[tuple[int, str]] = []
    for n, what in enumerate(TEXT):
        expected.append((n, what))
        expected += [(n, f"!! {kind} [{severity}]: {detail}") for at, kind, severity, detail in FINDINGS if at == n]
    assert len(TEXT) == len(MESSAGES) and len(lines) == len(expected) == len(MESSAGES) + len(FINDINGS)
    for line, (n, what) in zip(lines, expected):
        side = MESSAGES[n][0]
        src, dst = (A_ADDR, B_ADDR) if side == 0 else (B_ADDR, A_ADDR)
        frame = FIRST_MESSAGE_FRAME + n
        # frame right-aligned in 7, seconds since the capture's first frame (the SYN, frame 1)
        # in 11.6, the session id left-aligned in 3 after '#'.
        head, seconds, rest = line[:7], line[7:19], line[19:]
        assert head == f"{frame:>7}" and rest == f" #1   {src} → {dst}  {what}"
        assert seconds[0] == " " and len(seconds.split(".")[1]) == 6
        assert float(seconds) == pytest.approx(frame_time(frame) - frame_time(1), abs=1e-5)


def test_partial_messages_say_what_was_not_captured_in_text(partial):
    capture, _ = partial
    lines = [line for line in btshark_ok("read", capture).stdout.splitlines() if f"{B_ADDR} → " in line]
    what = [line.split(f"{A_ADDR}  ", 1)[1] for line in lines if "handshake info_hash" not in line and "  !! " not in line]
    assert what == [
        "bitfield pieces=12000 (500 of its 2001 bytes not captured)",
        "piece index=5 begin=0 length=3072 (1024 bytes not captured)",
        f"extended handshake (600 of its {2 + len(EXT_BODY)} bytes not captured)",
    ]
    findings = [line for line in btshark_ok("read", capture).stdout.splitlines() if "!!" in line]
    assert len(findings) == 3 and all("  !! hole [warning]: " in line for line in findings)


def test_text_details_of_what_the_sample_messages_lack():
    """Cases no capture above holds: no reserved bit, a peer id no table knows (raw bytes
    escaped), an extended id nobody announced, a body of more than 200 characters."""
    odd = ev.Handshake(reserved=bytes(8), info_hash=bytes(20), peer_id=b"\xff\x00" * 10)
    raw = "ÿ\\x00" * 10  # one Latin-1 character a byte: 0xff is printable, 0x00 is not
    assert _detail(odd) == f"info_hash={'00' * 20} peer_id={raw} (unknown client) reserved=[none]"
    assert _detail(ev.Extended(ext_id=9, ext_name=None, data={"a": 1}, trailing=0, size=8)) == 'id 9 {"a":1}'
    assert _detail(ev.Extended(ext_id=9, ext_name=None, data=None, trailing=0, size=90, missing=30)) == \
        "id 9 (30 of its 90 bytes not captured)"
    fits = {"v": "x" * 192}  # {"v":"…"} is 8 characters: 200 in all
    assert _detail(ev.Extended(ext_id=1, ext_name="lt_x", data=fits, trailing=0, size=0)) == \
        'lt_x {"v":"' + "x" * 192 + '"}'
    over = {"v": "x" * 193}
    assert _detail(ev.Extended(ext_id=1, ext_name="lt_x", data=over, trailing=2, size=0)) == \
        'lt_x {"v":"' + "x" * 193 + '"…' + " +2 bytes"  # 200 characters kept: the closing brace is cut


@pytest.mark.parametrize("numbers, text", [
    ([], ""), ([5], "5"), ([1, 2, 3, 7], "1-3, 7"), ([0, 2, 3, 4, 9, 10], "0, 2-4, 9-10"), ([4, 5], "4-5"),
])
def test_piece_lists_are_written_as_runs(numbers, text):
    assert ranges(numbers) == text


def test_sessions_text(every_type, partial):
    """``read --sessions``: a line per session, a line per side, the findings counted by kind (by
    severity, then kind), a line per finding."""
    last_frame = FIRST_MESSAGE_FRAME + len(MESSAGES) + 1
    sent = {side: [data for who, data, _ in MESSAGES if who == side] for side in (0, 1)}
    lines = btshark_ok("read", every_type, "--sessions").stdout.splitlines()
    seconds = f"{frame_time(last_frame) - frame_time(1):.3f}"
    assert lines == [
        f"#1 tcp {A_ADDR} → {B_ADDR} plaintext closed {seconds}s info_hash={INFO_HASH.hex()}",
        f"    a: {A_ADDR} libtorrent (rasterbar) 2.1.1  {len(sent[0])} messages, 0 payload bytes, "
        f"{sum(map(len, sent[0]))} stream bytes",
        f"    b: {B_ADDR} Transmission 3.00  {len(sent[1])} messages, 100 payload bytes, "
        f"{sum(map(len, sent[1]))} stream bytes",
        "    findings: 1 unrequested_reject [error], 1 second_bitfield [warning]",  # errors first
        *(f"    !! frame {FIRST_MESSAGE_FRAME + n} {'ab'[MESSAGES[n][0]]} {kind} [{severity}]: {detail}"
          for n, kind, severity, detail in FINDINGS),
    ]
    capture, last = partial
    lines = btshark_ok("read", capture, "--sessions").stdout.splitlines()
    assert "    findings: 3 hole [warning]" in lines
    holes = [line for line in lines if line.startswith("    !! ")]
    assert [line.split(": ", 1)[0] for line in holes] == \
        [f"    !! frame {last[kind] + 1} b hole [warning]" for kind in ("bitfield", "piece", "extended")]  # a's ack
    lines = btshark_ok("read", capture, "--sessions", "--max-findings", "1").stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines[-3:]] == [
        f"    !! frame {last['bitfield'] + 1} b hole [warning]",
        f"    !! frame {last['piece'] + 1} - limit [warning]",  # the cap says itself where it was met
        "    !! 2 more findings, not kept",
    ]


def test_sessions_text_of_an_encrypted_session():
    """MSE/PE without the torrent: no handshake is seen, so no info hash, peer id or client."""
    (session,) = read_sessions(CAPTURES / "libtorrent-mse.pcap")
    a, b = session["sides"]["a"], session["sides"]["b"]
    lines = btshark_ok("read", CAPTURES / "libtorrent-mse.pcap", "--sessions").stdout.splitlines()
    assert session["encrypted"] and session["info_hash"] is None
    assert lines == [
        f"#1 tcp {session['a']} → {session['b']} encrypted (MSE/PE) {session['state']} "
        f"{session['end'] - session['start']:.3f}s info_hash=-",
        f"    a: {a['addr']} -  0 messages, 0 payload bytes, {a['stream_bytes']} stream bytes",
        f"    b: {b['addr']} -  0 messages, 0 payload bytes, {b['stream_bytes']} stream bytes",
    ]


def test_sessions_text_of_a_peer_id_no_client_table_knows(tmp_path):
    """A peer id was seen but names no known client: 'unknown client', not '-' (no id seen)."""
    conn = hostile.Conn(a=A[0], b=B[0], aport=A[1], bport=B[1], t0=T0).open()
    conn.emit(0, hostile.PSH, wb.handshake(INFO_HASH, b"\x01" * 20))
    conn.emit(1, hostile.PSH, wb.handshake(INFO_HASH, b"-TR3000-bbbbbbbbbbbb"))
    conn.close()
    lines = btshark_ok("read", hostile.write_pcap(tmp_path / "unknown.pcap", conn.frames), "--sessions").stdout
    a, b = lines.splitlines()[1:3]
    assert a.startswith(f"    a: {A_ADDR} unknown client  1 messages")
    assert b.startswith(f"    b: {B_ADDR} Transmission 3.00  1 messages")


def test_text_times_count_from_a_first_frame_stamped_at_the_epoch(tmp_path):
    """A first frame at time 0 is a first frame like any other (0 is no missing time)."""
    conn = hostile.Conn(a=A[0], b=B[0], aport=A[1], bport=B[1], t0=-0.001).open()  # SYN at 0.000
    conn.emit(0, hostile.PSH, wb.handshake(INFO_HASH, b"-TR3000-aaaaaaaaaaaa"))
    conn.emit(1, hostile.PSH, wb.handshake(INFO_HASH, b"-TR3000-bbbbbbbbbbbb"))
    lines = btshark_ok("read", hostile.write_pcap(tmp_path / "epoch.pcap", conn.frames)).stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["4", "0.003000"], ["5", "0.004000"]]


def test_sessions_json_is_indented_and_jsonl_is_one_compact_line_each(every_type, partial):
    """``--sessions -T json``: one array, two-space indent; ``-T jsonl``: a compact line a session."""
    for capture in (every_type, partial[0], CAPTURES / "libtorrent-mse.pcap"):
        text = btshark_ok("read", capture, "--sessions", "-T", "json").stdout
        sessions = json.loads(text)
        assert text == json.dumps(sessions, indent=2) + "\n"
        lines = btshark_ok("read", capture, "--sessions", "-T", "jsonl").stdout
        assert lines == "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in sessions)
