"""What a connection is, from its opening: the Probe on literal byte shapes, the uTP gate
on literal headers, and end to end on captures of BitTorrent and of things that are not."""
from __future__ import annotations

import os
import struct

import pytest

from conftest import (
    REPO, WILD, TcpConversation, bt_handshake, decode_capture, read_jsonl, read_sessions, wild,
)
from inspector.detect import BITTORRENT, ENCRYPTED, OTHER, UNDECIDED, Probe, UtpGate

SHARED = REPO.parent / "shared" / "captures"


def flights(*sends: tuple[int, bytes], opener_known: bool = True) -> list[int]:
    """The verdict after each (side, bytes) fed to a fresh Probe."""
    probe = Probe(opener_known)
    return [probe.feed(side, data) for side, data in sends]


def key(pad: int) -> bytes:
    """A DH public key and its padding: uniformly random bytes."""
    return os.urandom(96 + pad)


# ---------------------------------------------------------------- MSE by its shape


@pytest.mark.parametrize("pad_a,pad_b", [(0, 0), (512, 512), (37, 401)])
def test_mse_is_two_key_flights_then_step_three(pad_a, pad_b):
    step3 = os.urandom(56 + 12)
    verdicts = flights((0, key(pad_a)), (1, key(pad_b)), (0, step3[:55]), (0, step3[55:]))
    assert verdicts == [UNDECIDED, UNDECIDED, UNDECIDED, ENCRYPTED]


def test_key_flights_may_arrive_in_pieces():
    ya, yb = key(300), key(200)
    verdicts = flights((0, ya[:100]), (0, ya[100:]), (1, yb[:1]), (1, yb[1:]), (0, os.urandom(56)))
    assert verdicts == [UNDECIDED] * 4 + [ENCRYPTED]


def test_mse_needs_the_opener():
    verdicts = flights((0, key(10)), (1, key(10)), (0, os.urandom(200)), opener_known=False)
    assert verdicts[-1] == OTHER and ENCRYPTED not in verdicts


def test_a_random_blob_from_one_side_is_not_mse():
    probe = Probe(True)
    assert probe.feed(0, key(400)) == UNDECIDED  # the opener may still be waiting for Yb
    assert probe.end() == OTHER
    probe = Probe(True)
    assert [probe.feed(0, key(300)), probe.feed(0, key(300))] == [UNDECIDED, OTHER]  # more than Ya + 512


@pytest.mark.parametrize("a_len,b_len", [(95, 200), (609, 200), (200, 95), (200, 609)])
def test_key_flights_are_96_to_608_bytes(a_len, b_len):
    verdicts = flights((0, os.urandom(a_len)), (1, os.urandom(b_len)), (0, os.urandom(100)))
    assert verdicts[-1] == OTHER


def test_the_responder_does_not_speak_first():
    assert flights((1, key(100)), (0, key(100)), (1, os.urandom(100)))[-1] == OTHER


def test_the_responder_waits_for_all_of_step_three():
    verdicts = flights((0, key(5)), (1, key(5)), (0, os.urandom(30)), (1, os.urandom(40)))
    assert verdicts == [UNDECIDED, UNDECIDED, UNDECIDED, OTHER]


def test_an_exchange_cut_after_the_keys_is_still_mse():
    probe = Probe(True)
    probe.feed(0, key(20))
    probe.feed(1, key(20))
    assert probe.end() == ENCRYPTED


def test_a_hole_in_the_opening_leaves_nothing_to_recognise():
    probe = Probe(True)
    probe.feed(0, key(20))
    assert probe.gap(1) == OTHER


# ---------------------------------------------------------------- what looks random but is not MSE


def framed(body: bytes, width: int) -> bytes:
    return len(body).to_bytes(width, "big") + body


@pytest.mark.parametrize("width", [2, 3, 4], ids=["eip8-size", "noise-frame", "kerberos-record"])
def test_length_prefixed_random_flights_are_records(width):
    a, b = framed(os.urandom(300), width), framed(os.urandom(250), width)
    assert flights((0, a), (1, b), (0, os.urandom(100)))[-1] == OTHER
    # The same bytes with a prefix that does not count the rest: nothing excludes MSE.
    a = (300 + 7).to_bytes(width, "big") + a[width:]
    b = (250 + 7).to_bytes(width, "big") + b[width:]
    assert flights((0, a), (1, b), (0, os.urandom(100)))[-1] == ENCRYPTED


def test_ber_sequences_are_records():
    body = os.urandom(300)
    ldap = b"\x30\x84" + len(body).to_bytes(4, "big") + body
    assert flights((0, ldap), (1, key(100)), (0, os.urandom(100)))[-1] == OTHER


def test_tls_client_hello():
    hello = b"\x01" + (508).to_bytes(3, "big") + b"\x03\x03" + os.urandom(504)
    record = b"\x16\x03\x01" + len(hello).to_bytes(2, "big") + hello
    assert flights((0, record), (1, key(200)), (0, os.urandom(100)))[-1] == OTHER


def test_ssh_banners():
    verdicts = flights((0, b"SSH-2.0-OpenSSH_9.6\r\n" + os.urandom(200)),
                       (1, b"SSH-2.0-dropbear_2022.83\r\n" + os.urandom(200)), (0, os.urandom(100)))
    assert verdicts[-1] == OTHER


def test_whatsapp_prologue():
    hello = b"ED\x00\x01" + b"\x00\x00\x04\x08\x09\x08\x02" + b"WA\x05\x02" + framed(os.urandom(270), 3)
    assert flights((0, hello), (1, key(100)), (0, os.urandom(100)))[-1] == OTHER


def test_text_is_not_a_key():
    text = bytes(range(0x21, 0x7F)) * 3  # 94 distinct values, but all printable
    assert flights((0, text), (1, key(100)), (0, os.urandom(100)))[-1] == OTHER


# ---------------------------------------------------------------- plaintext BitTorrent


@pytest.mark.parametrize("opener_known", [True, False])
@pytest.mark.parametrize("side", [0, 1])
def test_handshake_from_either_side_byte_by_byte(side, opener_known):
    probe = Probe(opener_known)
    hs = bt_handshake()
    verdicts = [probe.feed(side, hs[i : i + 1]) for i in range(len(hs))]
    assert verdicts[:19] == [UNDECIDED] * 19 and verdicts[19] == BITTORRENT
    assert bytes(probe.held[side]) == hs  # nothing fed is lost


# ---------------------------------------------------------------- the uTP gate

ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN = range(5)


def utp(kind: int, cid: int, seq: int, ack: int, stamp: int = 5_000_000, data: bytes = b"") -> bytes:
    return struct.pack(">BBHIIIHH", kind << 4 | 1, 0, cid & 0xFFFF, stamp & 0xFFFFFFFF, 0, 1 << 20,
                       seq & 0xFFFF, ack & 0xFFFF) + data


def gate_run(syn: bool, packets, dt: float = 0.001) -> list:
    """The gate's answer after each (side, header) packet, ``dt`` seconds apart."""
    gate = UtpGate(syn)
    return [gate.offer(side, payload, i * dt, i) for i, (side, payload) in enumerate(packets)]


def test_syn_answered_by_the_state_that_acks_it():
    assert gate_run(True, [(0, utp(ST_SYN, 700, 65535, 0)), (1, utp(ST_STATE, 700, 9, 65535))]) == [None, True]


def test_syn_answered_with_a_wrong_ack_is_not_utp():
    assert gate_run(True, [(0, utp(ST_SYN, 700, 100, 0)), (1, utp(ST_STATE, 700, 9, 30000))]) == [None, False]


def test_syn_then_the_openers_first_data_packet():
    answers = gate_run(True, [(0, utp(ST_SYN, 700, 100, 0)), (0, utp(ST_DATA, 701, 101, 0, data=b"x"))])
    assert answers == [None, True]


def test_without_a_syn_the_conversation_must_add_up():
    packets = [
        (0, utp(ST_DATA, 41, 10, 499, data=b"a")),
        (1, utp(ST_DATA, 40, 500, 10, data=b"b")),
        (1, utp(ST_DATA, 40, 501, 10, data=b"c")),
        (0, utp(ST_STATE, 41, 11, 501)),
    ]
    assert gate_run(False, packets) == [None, None, None, True]


def test_one_header_is_never_enough():
    assert gate_run(False, [(0, utp(ST_DATA, 41, 10, 499, data=b"\x13BitTorrent protocol"))]) == [None]


def test_random_headers_never_pass():
    """WireGuard's handshake initiation, 0x01 0x00 0x00 0x00 then random bytes, parses as
    an ST_DATA header every time."""
    answers = gate_run(False, [(i % 2, b"\x01\x00\x00\x00" + os.urandom(144)) for i in range(16)])
    assert True not in answers and answers[-1] is False


def test_a_sender_clock_that_leaps_is_not_utp():
    packets = [(0, utp(ST_SYN, 700, 100, 0, stamp=1_000_000)), (0, utp(ST_DATA, 701, 101, 0, stamp=60_000_000))]
    assert gate_run(True, packets) == [None, False]


def test_ids_must_stay_put():
    packets = [
        (0, utp(ST_DATA, 41, 10, 499, data=b"a")),
        (1, utp(ST_DATA, 40, 500, 10, data=b"b")),
        (1, utp(ST_DATA, 42, 501, 10, data=b"c")),
    ]
    assert gate_run(False, packets) == [None, None, False]


# ---------------------------------------------------------------- end to end


def test_random_flights_after_a_syn_are_encrypted_and_keep_their_bytes(tmp_path):
    conv = TcpConversation().open()
    conv.send(0, key(200))
    conv.send(1, key(100))
    conv.send(0, os.urandom(3000))
    conv.close()
    _, _, sessions = decode_capture(conv.write(tmp_path / "mse.pcap"))
    (s,) = sessions
    assert s.encrypted and (s.sides[0].stream_bytes, s.sides[1].stream_bytes) == (3296, 196)


def test_keys_exchanged_then_closed_is_an_encrypted_session(tmp_path):
    conv = TcpConversation().open()
    conv.send(0, key(10))
    conv.send(1, key(20))
    conv.close()
    _, _, sessions = decode_capture(conv.write(tmp_path / "mse-cut.pcap"))
    (s,) = sessions
    assert s.encrypted and s.state == "closed" and (s.sides[0].stream_bytes, s.sides[1].stream_bytes) == (106, 116)


def test_length_prefixed_exchange_after_a_syn_is_nothing(tmp_path):
    conv = TcpConversation(b=("10.0.0.2", 30303)).open()
    conv.send(0, framed(os.urandom(400), 2))
    conv.send(1, framed(os.urandom(300), 2))
    conv.send(0, os.urandom(3000))
    conv.close()
    assert decode_capture(conv.write(tmp_path / "rlpx.pcap")) == ([], [], [])


@pytest.mark.parametrize("name", ["ethereum", "kerberos", "tls-appdata", "whatsapp", "wireguard"])
def test_other_protocols_give_no_sessions(name):
    assert read_sessions(wild(f"not-bittorrent-{name}.pcap")) == []


@pytest.mark.parametrize("path", [REPO / "captures" / "libtorrent-mse.pcap", SHARED / "libtorrent-mse.pcap",
                                  WILD / "ndpi-mse-then-plaintext.pcapng"], ids=["captures", "shared", "ndpi"])
def test_mse_captures_stay_one_encrypted_session(path):
    if not path.is_file():
        pytest.skip(f"{path} not found")
    (s,) = read_sessions(path)
    assert s["encrypted"] is True and s["opener_known"] is True


def test_utp_capture_decoded_from_its_first_data_packet():
    """The gate held the first packets; fed on, they still make every message, each
    dated by the frame that completed it."""
    path = REPO / "captures" / "libtorrent-utp.pcap"
    (s,) = read_sessions(path)
    records = [r for r in read_jsonl(path) if r["type"] != "finding"]
    assert s["transport"] == "utp" and s["opener_known"] is True
    assert [r["type"] for r in records[:2]] == ["handshake", "handshake"]
    assert records[0]["frame"] == 3  # frame 1 is the SYN, 2 the STATE answering it
    counted = sum(n for side in s["messages"].values() for n in side.values())
    assert counted == len(records) and s["findings"] == []
