"""Real swarms: the conformance checks compare every piece and stay quiet.

Review recorded swarms of one seed and several downloaders (``captures/record.py
--swarm``) and the checks cried wolf on what real clients do: aria2 sends a fresh
bitfield where several haves would do (BEP 3 wants one piece map; libtorrent and
transmission take it, so it is a warning); aria2, choked and unchoked by a libtorrent
peer that had not yet read its requests, forgets them and asks for the same blocks
again, and is sent each twice (counted once, the second piece was an "unrequested"
error); libtorrent's uTP selective acks are as long as its window needs, 23 bytes say,
not whole 32-bit words as BEP 29 asks (refused, they left false holes, which stopped
the checks on uTP sessions).

``captures/swarm/`` keeps two small recordings made by the project's recorder (see
captures/README.md) that hold each of those: these tests fail if a fix goes. They live
in a folder of their own because the sample-wide tests expect one connection per
capture. A re-recording may miss a timing-dependent behaviour (a block asked twice);
``test_the_captures_still_hold_what_the_fixes_are_about`` then says so, rather than
letting these tests pass without testing anything.
"""
from __future__ import annotations

import functools
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, module_scope
from inspector import events as ev
from inspector.extract import Torrent, read_torrent
from inspector.pipeline import CaptureDecode
from inspector.session import Session

SWARMS = REPO / "captures" / "swarm"
TCP, UTP = SWARMS / "swarm-tcp.pcap", SWARMS / "swarm-utp.pcap"
# Findings that say the capture lost part of a connection: its checks stop there, so its
# pieces are not all compared, and rightly.
LOSS = frozenset(("hole", "truncated", "midstream", "resync", "limit"))


@dataclass(frozen=True)
class Finding:
    session: Session
    side: int
    kind: str
    severity: str
    frame: int
    detail: str

    def __str__(self) -> str:
        sender = self.session.sides[self.side]
        return (f"frame {self.frame} session {self.session.id} ({sender.addr} {sender.client}): "
                f"{self.severity} {self.kind}: {self.detail}")


@dataclass(frozen=True)
class Swarm:
    torrent: Torrent
    sessions: list[Session]
    findings: list[Finding]
    doubles: int  # pieces that answered a block asked for twice (or more) and still outstanding


def _doubles(requests: dict, event: ev.Event, asker: tuple[int, int]) -> int:
    """Keep count of each side's outstanding requests; 1 when a piece answers one asked twice."""
    asked = requests.setdefault(asker, Counter())
    key = (event.index, event.begin, event.length)
    if event.type == "request":
        asked[key] += 1
    elif event.type == "cancel":
        asked.pop(key, None)
    elif asked[key] > 0:  # piece or reject
        asked[key] -= 1
        return int(event.type == "piece" and asked[key] > 0)
    return 0


def decode(path: Path) -> Swarm:
    """The capture decoded once, with its .torrent (piece counts, and every piece hash-checked)."""
    torrent = read_torrent(path.with_suffix(".torrent"))
    decoded = CaptureDecode(path, torrents=[torrent])
    findings, requests, doubles = [], {}, 0
    for record in decoded:
        event = record.event
        if event.type == "finding":
            findings.append(Finding(record.session, record.side, event.kind, event.severity, record.frame,
                                    event.detail))
        elif event.type in ("request", "cancel", "piece", "reject"):
            asker = record.side if event.type in ("request", "cancel") else 1 - record.side
            doubles += _doubles(requests, event, (record.session.id, asker))
    return Swarm(torrent, decoded.sessions, findings, doubles)


@pytest.fixture(scope=module_scope)
def swarm():
    """``swarm(path)``: the capture decoded, once per module (per test in mutmut's stats run,
    where each test must make its own calls to be credited with them)."""
    return functools.cache(decode)


def compared(session: Session) -> bool:
    """A plaintext session seen from its start, nothing of it lost: every piece it carried is checked."""
    return not session.encrypted and session.opener_known and not LOSS & set(session.finding_counts)


def pieces(session: Session) -> int:
    return sum(side.messages.get("piece", 0) for side in session.sides)


BOTH = [pytest.param(TCP, id="swarm-tcp"), pytest.param(UTP, id="swarm-utp")]


@pytest.mark.parametrize("path", BOTH)
def test_no_conformance_error(swarm, path):
    errors = [str(f) for f in swarm(path).findings if f.kind in ev.CONFORMANCE and f.severity == "error"]
    assert errors == []


@pytest.mark.parametrize("path", BOTH)
def test_every_piece_of_a_whole_session_met_its_request(swarm, path):
    """The checks compared: a piece that met no request would be an error, and one compared
    while the checks had stopped would not be counted. In the end game a piece may cross
    its cancel on the wire: a note (``cancelled_piece``), not a request met."""
    sessions = [s for s in swarm(path).sessions if compared(s)]
    carried = {s.id: pieces(s) for s in sessions}
    met = {s.id: s.conformance.answered + s.finding_counts.get("cancelled_piece", 0) for s in sessions}
    assert met == carried
    assert sum(s.conformance.answered for s in sessions) > 0


@pytest.mark.parametrize("path", BOTH)
def test_every_piece_was_hash_checked(swarm, path):
    decoded = swarm(path)
    facts = {id(s.conformance.pieces): s.conformance.pieces for s in decoded.sessions if s.conformance.pieces}
    assert sum(f.checked for f in facts.values()) >= decoded.torrent.pieces


def test_utp_swarm_has_no_holes(swarm):
    """libtorrent's selective acks of any length are uTP, not a loss: tcpdump saw every datagram."""
    decoded = swarm(UTP)
    assert [s for s in decoded.sessions if s.transport == "utp"]
    assert [str(f) for f in decoded.findings if f.kind == "hole"] == []


def test_aria2s_fresh_bitfield_is_a_warning(swarm):
    for finding in swarm(TCP).findings:
        if finding.kind == "second_bitfield":
            assert finding.severity == "warning", str(finding)
            assert (finding.session.sides[finding.side].client or "").startswith("aria2"), str(finding)


def utp_sack_lengths(path: Path) -> list[int]:
    """The length of every selective-ack extension (BEP 29, type 1) in the capture's UDP
    datagrams, read straight from the bytes (Ethernet, IPv4, UDP) without btshark."""
    data = path.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4 and struct.unpack_from("<I", data, 20)[0] == 1
    lengths, pos = [], 24
    while pos + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        frame = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:  # IPv4, UDP
            continue
        payload = frame[14 + (frame[14] & 15) * 4 + 8:]
        if len(payload) < 20 or payload[0] not in (0x01, 0x11, 0x21, 0x31, 0x41):
            continue
        ext, at = payload[1], 20
        while ext and at + 2 <= len(payload):
            if ext == 1:
                lengths.append(payload[at + 1])
            ext, at = payload[at], at + 2 + payload[at + 1]
    return lengths


def test_the_captures_still_hold_what_the_fixes_are_about(swarm):
    """Without these in the bytes, the tests above would pass whatever the code did
    (re-record until they are there: see captures/README.md)."""
    assert swarm(TCP).doubles > 0, "no block asked for twice and sent twice in swarm-tcp"
    assert any(f.kind == "second_bitfield" for f in swarm(TCP).findings), "aria2 sent no second bitfield"
    odd = [n for n in utp_sack_lengths(UTP) if n % 4]
    assert odd, "no selective ack whose length is not a multiple of 4 in swarm-utp"
