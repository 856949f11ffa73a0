"""Checks across the sessions of a capture, as the original client made them on every
handshake: a peer id at two addresses at once, a second connection between the same
two peers, a peer talking to itself (on TCP and on uTP)."""
from __future__ import annotations

from conftest import TcpConversation, bt_handshake, bt_have, bt_msg, decode_capture, write_packets

from inspector import events as ev
from inspector.session import PeerRegistry, Session

HASH = bytes(range(20))
OTHER_HASH = bytes(range(1, 21))
LOCAL = b"-LT2110-localclient0"
REMOTE = b"-UT3550-remotepeer00"


def _session(a: tuple[str, int], b: tuple[str, int], ids: tuple[bytes, bytes], t0: float, *,
             info_hash: bytes = HASH, close: bool = False) -> list:
    conv = TcpConversation(a=a, b=b, t0=t0).open()
    conv.send(0, bt_handshake(info_hash, ids[0]))
    conv.send(1, bt_handshake(info_hash, ids[1]))
    conv.send(0, bt_msg(2))
    if close:
        conv.close()
    return conv.packets


def _findings(tmp_path, packets) -> dict[int, list[str]]:
    packets = sorted(packets, key=lambda p: p.time)
    _, _, sessions = decode_capture(write_packets(tmp_path / "peers.pcap", packets))
    return {s.id: [f.kind for f in s.findings] for s in sessions}


def test_one_client_talking_to_many_peers_is_not_a_duplicate(tmp_path):
    packets = []
    for n in range(3):
        packets += _session(("10.0.0.1", 40000 + n), (f"10.0.1.{n + 1}", 6881),
                            (LOCAL, b"-UT3550-remotepeer0" + bytes([48 + n])), 1000.0 + n * 0.0001)
    assert all("duplicate_peer_id" not in kinds for kinds in _findings(tmp_path, packets).values())


def test_same_peer_id_at_two_addresses_at_once(tmp_path):
    packets = _session(("10.0.0.1", 40000), ("10.0.1.1", 6881), (LOCAL, REMOTE), 1000.0)
    packets += _session(("10.0.0.1", 40001), ("10.0.1.2", 6881), (LOCAL, REMOTE), 1000.00005)
    found = _findings(tmp_path, packets)
    assert "duplicate_peer_id" not in found[1]
    assert "duplicate_peer_id" in found[2]


def test_same_peer_id_on_another_torrent_is_not_a_duplicate(tmp_path):
    packets = _session(("10.0.0.1", 40000), ("10.0.1.1", 6881), (LOCAL, REMOTE), 1000.0)
    packets += _session(("10.0.0.1", 40001), ("10.0.1.2", 6881), (LOCAL, REMOTE), 1000.00005, info_hash=OTHER_HASH)
    assert all("duplicate_peer_id" not in kinds for kinds in _findings(tmp_path, packets).values())


def test_second_connection_between_the_same_two_peers(tmp_path):
    packets = _session(("10.0.0.1", 40000), ("10.0.1.1", 6881), (LOCAL, REMOTE), 1000.0)
    packets += _session(("10.0.1.1", 50000), ("10.0.0.1", 6881), (REMOTE, LOCAL), 1000.00005)
    found = _findings(tmp_path, packets)
    assert "duplicate_peer_id" in found[2] and "duplicate_peer_id" not in found[1]


def test_reconnection_after_close_is_not_a_duplicate(tmp_path):
    packets = _session(("10.0.0.1", 40000), ("10.0.1.1", 6881), (LOCAL, REMOTE), 1000.0, close=True)
    packets += _session(("10.0.0.1", 40001), ("10.0.1.1", 6881), (LOCAL, REMOTE), 1001.0)
    assert all("duplicate_peer_id" not in kinds for kinds in _findings(tmp_path, packets).values())


def test_tcp_self_connection(tmp_path):
    packets = _session(("10.0.0.1", 40000), ("10.0.0.1", 6881), (LOCAL, LOCAL), 1000.0)
    found = _findings(tmp_path, packets)
    assert found[1] == ["self_connection"]


def test_info_hash_mismatch(tmp_path):
    conv = TcpConversation().open()
    conv.send(0, bt_handshake(HASH, LOCAL))
    conv.send(1, bt_handshake(OTHER_HASH, REMOTE))
    conv.send(1, bt_have(1))
    found = _findings(tmp_path, conv.packets)
    assert "info_hash_mismatch" in found[1]


def test_utp_connection_to_its_own_socket_is_one_session_and_a_self_connection(tmp_path):
    """uTP runs every connection over the listening socket, so a client connecting to
    itself sends and answers on one address and port: the connection ids tell the sides."""
    from test_pipeline import ST_DATA, ST_FIN, ST_STATE, ST_SYN, udp_packets, utp

    x, s, r = 4000, 10, 700
    me = ("10.0.0.7", 6881)
    grams = [
        (0, utp(ST_SYN, x, s, 0)),
        (1, utp(ST_STATE, x, r, s)),
        (0, utp(ST_DATA, x + 1, s + 1, r - 1, bt_handshake(HASH, LOCAL))),
        (1, utp(ST_DATA, x, r, s + 1, bt_handshake(HASH, LOCAL))),
        (0, utp(ST_DATA, x + 1, s + 2, r, bt_msg(2))),
        (1, utp(ST_DATA, x, r + 1, s + 2, bt_msg(1))),
        (0, utp(ST_FIN, x + 1, s + 3, r + 1)),
        (1, utp(ST_FIN, x, r + 2, s + 3)),
    ]
    _, _, sessions = decode_capture(write_packets(tmp_path / "self.pcap", udp_packets(grams, a=me, b=me)))
    (session,) = sessions
    assert [f.kind for f in session.findings] == ["self_connection"]
    assert session.sides[0].messages == {"handshake": 1, "interested": 1}
    assert session.sides[1].messages == {"handshake": 1, "unchoke": 1}


def test_a_connection_replaced_by_a_new_syn_is_not_open(tmp_path):
    """Found in review: a 4-tuple reused before both FINs were seen left the first
    session 'open', and the second was then flagged as a duplicate connection."""
    first = TcpConversation(a=("10.0.0.1", 40000), b=("10.0.1.1", 6881), t0=1000.0).open()
    first.send(0, bt_handshake(HASH, LOCAL))
    first.send(1, bt_handshake(HASH, REMOTE))
    first.fin(0)
    second = TcpConversation(a=("10.0.0.1", 40000), b=("10.0.1.1", 6881), t0=1001.0, isn=(50000, 700000)).open()
    second.send(0, bt_handshake(HASH, LOCAL))
    second.send(1, bt_handshake(HASH, REMOTE))
    _, _, sessions = decode_capture(write_packets(tmp_path / "reuse.pcap", first.packets + second.packets))
    assert [s.state for s in sessions][0] == "replaced"
    assert all(f.kind != "duplicate_peer_id" for s in sessions for f in s.findings)


# ---------------------------------------------------------------- the registry itself (issue 12's mutants)


def _open(registry: PeerRegistry, sid: int, a: str, peer_id: bytes, remote: bytes, frame: int = 1) -> Session:
    """A session from ``a`` whose handshakes (a's, then b's) have both been seen."""
    s = Session(sid, "tcp", a, f"10.9.9.9:{6000 + sid}", opener_known=True, encrypted=False, start=0.0,
                registry=registry)
    s.account(0, [ev.Handshake(bytes(8), HASH, peer_id)], frame, 0.0)
    s.account(1, [ev.Handshake(bytes(8), HASH, remote)], frame + 1, 0.0)
    return s


def _remote(n: int) -> bytes:
    return b"-UT3550-remote%06d" % n


def test_a_closed_session_first_in_the_registry_does_not_hide_an_open_duplicate():
    reg = PeerRegistry()
    first = _open(reg, 1, "10.0.0.1:1", LOCAL, _remote(1))
    first.state = "closed"
    _open(reg, 2, "10.0.0.2:2", LOCAL, _remote(2))  # LOCAL at a second host while #1 is closed: fine
    third = _open(reg, 3, "10.0.0.3:3", LOCAL, _remote(3), frame=30)
    assert [(f.kind, f.side, f.frame) for f in third.findings] == [("duplicate_peer_id", "a", 30)]
    assert "10.0.0.2:2 in session #2" in third.findings[0].detail


def test_a_flagged_session_is_still_registered():
    """#2 duplicates #1 and is flagged; once #1 closes, #3 duplicates #2, which must be known."""
    reg = PeerRegistry()
    first = _open(reg, 1, "10.0.0.1:1", LOCAL, _remote(1))
    second = _open(reg, 2, "10.0.0.2:2", LOCAL, _remote(2))
    assert [f.kind for f in second.findings] == ["duplicate_peer_id"]
    first.state = "closed"
    third = _open(reg, 3, "10.0.0.3:3", LOCAL, _remote(3))
    assert "in session #2" in third.findings[0].detail


def test_a_second_connection_between_the_same_two_peer_ids():
    reg = PeerRegistry()
    first = _open(reg, 1, "10.0.0.1:1", LOCAL, REMOTE)
    second = _open(reg, 2, "10.0.0.1:2", LOCAL, REMOTE, frame=40)
    assert first.findings == []
    assert [f.as_dict() for f in second.findings] == [{
        "kind": "duplicate_peer_id", "severity": "error", "side": "b", "frame": 41,  # known at b's handshake
        "detail": "a second connection between the same two peer ids (session #1 is open)"}]
    first.state = "closed"
    third = _open(reg, 3, "10.0.0.1:3", LOCAL, REMOTE)
    assert "(session #2 is open)" in third.findings[0].detail  # #2, flagged, was registered too


def test_the_registry_keeps_the_latest_64_sessions_of_a_peer_id():
    """65 open sessions of one peer id at one host (to 65 peers: no finding); the oldest
    is forgotten, so a 66th at another host is flagged against #2, the oldest one kept."""
    reg = PeerRegistry()
    sessions = [_open(reg, n, "10.0.0.1:1", LOCAL, _remote(n)) for n in range(1, 66)]
    assert all(s.findings == [] for s in sessions)
    late = _open(reg, 66, "10.0.0.7:7", LOCAL, _remote(66))
    assert "in session #2" in late.findings[0].detail
