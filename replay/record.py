"""What each live connection carried, both ways: a message log and, with ``-w``, a pcap.

Both are taken from the bytes on the socket, not from what the player meant to send:
the log is those bytes decoded by the inspector's parser, so it says what the live
peer really saw, and ``btshark read`` on the pcap must give the same messages.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from inspector.output import event_fields
from inspector.parser import PeerWireParser

from .encoder import Connection

if TYPE_CHECKING:
    from .pcapout import Flow, PcapWriter

MAX_LEN = 1 << 23  # the original client's max_message_length


def hostport(addr: tuple[str, int] | None) -> str:
    if addr is None:
        return "?"
    host, port = addr[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class ConnLog:
    peer: str
    local: str
    outgoing: bool
    opened: float  # seconds since the replay started
    closed: float | None = None
    reason: str | None = None
    detail: str = ""
    peer_id: bytes | None = None
    messages: list[dict] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_received: int = 0

    def received(self) -> list[dict]:
        return [m for m in self.messages if m["dir"] == "received"]


class Recorder:
    """The encoder's tap: every connection's bytes, decoded into the log and written to the pcap."""

    def __init__(self, pcap: PcapWriter | None = None, heard=None, *, log_sent: bool = True) -> None:
        self.t0 = time.monotonic()
        self.pcap = pcap
        self.log_sent = log_sent  # what we sent is only needed for the report
        self.heard = heard  # called on every byte received: the silence clock
        self.logs: list[ConnLog] = []
        self._by_conn: dict[Connection, tuple[ConnLog, tuple[PeerWireParser, PeerWireParser], Flow | None]] = {}

    def _now(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    def opened(self, conn: Connection) -> None:
        log = ConnLog(hostport(conn.addr), hostport(conn.local), conn.locally_initiated, self._now())
        self.logs.append(log)
        flow = None
        if self.pcap is not None:
            client, server = (conn.local, conn.addr) if conn.locally_initiated else (conn.addr, conn.local)
            flow = self.pcap.flow(client, server, time.time())
        parsers = (PeerWireParser(max_len=MAX_LEN), PeerWireParser(max_len=MAX_LEN))
        self._by_conn[conn] = (log, parsers, flow)

    def _feed(self, conn: Connection, data: bytes, direction: int) -> None:
        entry = self._by_conn.get(conn)
        if entry is None:
            return
        log, parsers, flow = entry
        if direction:
            log.bytes_received += len(data)
        else:
            log.bytes_sent += len(data)
        if flow is not None:
            flow.data(conn.locally_initiated == (direction == 0), data, time.time())
        if not direction and not self.log_sent:
            return
        t = self._now()
        name = ("sent", "received")[direction]
        for event in parsers[direction].feed(data):
            if event.type == "finding":
                log.messages.append({"t": t, "dir": name, "type": "finding", "kind": event.kind,
                                     "detail": event.detail})
                continue
            if event.type == "handshake" and direction:
                log.peer_id = event.peer_id
            log.messages.append({"t": t, "dir": name, "type": event.type, "id": event.id, **event_fields(event)})

    def sent(self, conn: Connection, data: bytes) -> None:
        self._feed(conn, data, 0)

    def received(self, conn: Connection, data: bytes) -> None:
        if self.heard is not None:
            self.heard()
        self._feed(conn, data, 1)

    def closed(self, conn: Connection, reason: str) -> None:
        entry = self._by_conn.pop(conn, None)
        if entry is None:
            return
        log, _, flow = entry
        log.closed, log.reason, log.detail = self._now(), reason, conn.detail
        if flow is not None:
            by_peer = reason in ("closed", "reset", "error")
            flow.close(time.time(), from_client=conn.locally_initiated != by_peer, reset=reason == "reset")

    def close(self) -> None:
        for conn in list(self._by_conn):
            self.closed(conn, "local")
        if self.pcap is not None:
            self.pcap.close()
