"""A connection that reuses the addresses and ports (and, for uTP, the connection ids)
of an earlier connection that was not BitTorrent.

Why: the decoder stops following a flow once it is found not to be BitTorrent. Its
sequence numbers then stop where the verdict came; when the far side spoke first (a
mail server's banner), the opener's had not moved past its SYN, and a later SYN on the
same 4-tuple was taken as part of the old flow: the BitTorrent connection after it was
lost without a word. Captures of clients that bind a fixed outgoing port meet this.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import hostile as h
from conftest import bt_handshake, bt_msg, write_packets
from inspector.pipeline import CaptureDecode
from test_pipeline import HASH, PEER_A, PEER_B, ST_DATA, ST_FIN, ST_STATE, ST_SYN, udp_packets, utp

BANNER = b"220 mail.example.org ESMTP ready\r\n"


def decoded(path: Path) -> list[tuple[int, str, int]]:
    """(session id, type, frame) of each record."""
    return [(r.session.id, r.event.type, r.frame) for r in CaptureDecode(str(path))]


def bittorrent_after(first: h.Conn) -> tuple[list[h.Frame], int]:
    """``first``'s frames, then a BitTorrent connection on the same 4-tuple with new
    sequence numbers: (frames, number of the second connection's first frame)."""
    second = h.Conn(t0=first.t + 5)
    second.seq = [555_000, 7_000_000]
    second.open().handshakes().emit(0, h.PSH, bt_msg(2)).close()
    return first.frames + second.frames, len(first.frames) + 1


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "open"])
def test_tcp_port_reused_after_a_server_first_protocol(tmp_path: Path, closed: bool) -> None:
    first = h.Conn().open().send(1, BANNER).send(0, b"EHLO peer\r\n")
    if closed:
        first.close()
    frames, syn = bittorrent_after(first)
    path = h.write_pcap(tmp_path / "reuse.pcap", frames)
    # the second connection: SYN, SYN/ACK, ACK, then a's handshake, b's, a's interested
    assert decoded(path) == [(1, "handshake", syn + 3), (1, "handshake", syn + 4), (1, "interested", syn + 5)]


def test_tcp_port_reused_after_a_client_first_protocol(tmp_path: Path) -> None:
    first = h.Conn().open().send(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").send(1, b"HTTP/1.1 204 No Content\r\n\r\n").close()
    frames, syn = bittorrent_after(first)
    path = h.write_pcap(tmp_path / "reuse.pcap", frames)
    assert decoded(path) == [(1, "handshake", syn + 3), (1, "handshake", syn + 4), (1, "interested", syn + 5)]


def test_utp_ids_reused_after_a_connection_that_was_not_bittorrent(tmp_path: Path) -> None:
    x, y = 300, 301
    one = [(0, utp(ST_SYN, x, 10, 0)), (1, utp(ST_STATE, x, 500, 10)),
           (1, utp(ST_DATA, x, 500, 10, BANNER)), (0, utp(ST_DATA, y, 11, 500, b"EHLO peer\r\n")),
           (0, utp(ST_FIN, y, 12, 500)), (1, utp(ST_FIN, x, 501, 12))]
    two = [(0, utp(ST_SYN, x, 2000, 0)), (1, utp(ST_STATE, x, 9000, 2000)),
           (0, utp(ST_DATA, y, 2001, 8999, bt_handshake(HASH, PEER_A))),
           (1, utp(ST_DATA, x, 9000, 2001, bt_handshake(HASH, PEER_B))),
           (0, utp(ST_DATA, y, 2002, 9000, bt_msg(2)))]
    path = write_packets(tmp_path / "again.pcap", udp_packets(one + two))
    assert decoded(path) == [(1, "handshake", 9), (1, "handshake", 10), (1, "interested", 11)]
