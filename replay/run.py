"""``btshark replay``: plan from the capture, play against live peers, report.

The command's promises live here: only loopback unless ``--allow-remote``; a
timeout on connecting and on silence; Ctrl-C ends the replay cleanly and the report
and pcap are still written; every way a replay can fail ends in one line saying
why. Exit status: 0 when the replayed side did what it did in the capture, 1 when
the live peer did not let it (or a block or piece was wrong), 2 for bad input, 130
when interrupted.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from inspector.extract import ExtractError, read_torrent

from .compare import differences
from .encoder import Encoder
from .plan import Plan, PlanError, build
from .player import Player
from .progress import Progress
from .record import MAX_LEN, Recorder, hostport

Address = tuple[str, int]
KEEPALIVE = 120.0  # the original client's keepalive_interval
INTERRUPTED = "interrupted"


class ReplayError(Exception):
    """Bad input for a replay (one line, exit 2)."""


@dataclass
class Options:
    capture: str
    session: int
    side: str
    connect: list[Address] = field(default_factory=list)
    listen: Address | None = None
    torrent: str | None = None
    speed: float | None = 1.0  # None: as fast as the protocol allows
    max_initiate: int = 40
    timeout: float = 30.0
    write: str | None = None
    report: str | None = None
    allow_remote: bool = False


def parse_address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ReplayError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not speed > 0 or speed == float("inf"):
        raise ReplayError(f"--speed takes a positive factor or 'max', not {text!r}")
    return speed


def check_loopback(addrs: list[Address], allow_remote: bool) -> list[Address]:
    """Resolve each address; anything off loopback is refused unless allowed."""
    out = []
    for host, port in addrs:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ReplayError(f"cannot resolve {host}: {exc.strerror}") from None
        ips = {info[4][0] for info in infos}
        remote = sorted(ip for ip in ips if not ipaddress.ip_address(ip.split("%")[0]).is_loopback)
        if remote and not allow_remote:
            raise ReplayError(f"{host} ({remote[0]}) is not a loopback address; "
                              "pass --allow-remote to replay to other hosts")
        out.append((host, port))
    return out


def load(opts: Options) -> Plan:
    torrent = None
    if opts.torrent is not None:
        try:
            torrent = read_torrent(opts.torrent)
        except ExtractError as exc:
            raise ReplayError(str(exc)) from None
    try:
        plan = build(opts.capture, opts.session, opts.side, torrent)
    except PlanError as exc:
        raise ReplayError(str(exc)) from None
    if plan.serves and not plan.requested and not plan.have:
        plan.close()
        raise ReplayError(f"side {opts.side} of session {opts.session} served blocks, but the capture holds "
                          "no whole piece of them: nothing to announce")
    return plan


async def _play(opts: Options, plan: Plan, player: Player, rec: Recorder) -> None:
    loop = asyncio.get_running_loop()
    enc = Encoder(player, plan.me.peer_id, plan.info_hash, max_len=MAX_LEN, keepalive_delay=KEEPALIVE,
                  max_initiate=opts.max_initiate, reserved=plan.me.reserved,
                  ext_handshake=plan.ext_handshake(), tap=rec, info_hashes=plan.info_hashes)
    player.encoder = enc
    rec.heard = player.heard
    interrupt = lambda: player.finish(INTERRUPTED)  # noqa: E731
    loop.add_signal_handler(signal.SIGINT, interrupt)
    loop.add_signal_handler(signal.SIGTERM, interrupt)
    try:
        if opts.listen is not None:
            try:
                bound = await enc.listen(*opts.listen)
            except OSError as exc:
                player.finish(f"cannot listen on {hostport(opts.listen)}: {exc.strerror or exc}")
            else:
                print(f"btshark: replay: listening on {hostport(bound)}", file=sys.stderr, flush=True)
        player.connect(opts.connect)
        began = loop.time()
        while not player.finished.done():
            await asyncio.wait([player.finished], timeout=min(0.25, opts.timeout / 4))
            if player.finished.done():
                break
            now = loop.time()
            why = player.stalled() or player.unobtainable()
            if why is None and player.start is None and now - began > opts.timeout:
                why = _no_peer(opts, player)
            if why is None and player.start is not None and now - player.last_heard > opts.timeout:
                peers = ", ".join(hostport(c.addr) for c in enc.connections)
                why = (f"{peers} silent for {opts.timeout:g} s" if peers else
                       f"no live peer for {opts.timeout:g} s ({len(player.lost)} connection(s) ended)")
            if why is not None:
                player.finish(why)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        await enc.close()


def _no_peer(opts: Options, player: Player) -> str:
    if opts.connect and player.lost:
        from .player import lost_reason
        return lost_reason(*player.lost[-1], player)
    if opts.connect:
        return f"no handshake from {', '.join(hostport(a) for a in opts.connect)} within {opts.timeout:g} s"
    return f"no peer connected to {hostport(opts.listen)} within {opts.timeout:g} s"


def run(opts: Options) -> int:
    """The whole command; returns the exit status (ReplayError for bad input)."""
    if opts.listen is None and not opts.connect:
        raise ReplayError("give --connect HOST:PORT (one or more) or --listen HOST:PORT")
    if opts.listen is not None and opts.connect:
        raise ReplayError("--connect and --listen cannot be used together")
    check_loopback(opts.connect + ([opts.listen] if opts.listen else []), opts.allow_remote)
    plan = load(opts)
    try:
        return _run(opts, plan)
    finally:
        plan.close()


def _run(opts: Options, plan: Plan) -> int:
    pcap = None
    if opts.write is not None:
        from .pcapout import PcapWriter
        try:
            pcap = PcapWriter(opts.write)
        except OSError as exc:
            raise ReplayError(f"cannot write {opts.write}: {exc.strerror or exc}") from None
    if opts.report is not None:
        try:
            Path(opts.report).touch()
        except OSError as exc:
            raise ReplayError(f"cannot write {opts.report}: {exc.strerror or exc}") from None
    rec = Recorder(pcap, log_sent=opts.report is not None)
    started = time.time()
    downloading = bool(plan.requested)
    progress = Progress(len(plan.requested) if downloading else 0, "received" if downloading else "served")

    async def main() -> Player:
        player = Player(plan, speed=opts.speed, progress=progress)
        try:
            await _play(opts, plan, player, rec)
        finally:
            player.close()
        return player

    player = asyncio.run(main())
    progress.close(player.tally)
    rec.close()
    report = _report(opts, plan, player, rec, started)
    if opts.report is not None:
        Path(opts.report).write_text(json.dumps(report, indent=1) + "\n")
    for line in _summary(report):
        print(f"btshark: replay: {line}", file=sys.stderr)
    if report["result"] == "failed":
        print(f"btshark: error: {report['reason']}", file=sys.stderr)
    return report["exit"]


def _outcome(plan: Plan, player: Player) -> tuple[str, str | None]:
    t = player.tally
    if player.failure == INTERRUPTED:
        return INTERRUPTED, "interrupted"
    if player.failure is not None:
        return "failed", player.failure
    if t.failed:
        return "failed", f"{len(t.failed)} piece(s) failed their hash check: {', '.join(map(str, t.failed[:10]))}"
    if t.mismatched:
        i, b, n = t.mismatched[0]
        return "failed", f"{len(t.mismatched)} block(s) differ from the capture's bytes (first: piece {i} at {b}+{n})"
    return "ok", None


def _report(opts: Options, plan: Plan, player: Player, rec: Recorder, started: float) -> dict:
    result, reason = _outcome(plan, player)
    t = player.tally
    diffs = [d for log in rec.logs if log.peer_id is not None for d in differences(plan, log)]
    return {
        "capture": opts.capture,
        "session": plan.session,
        "side": plan.side,
        "client": plan.me.client,
        "mode": "listen" if opts.listen else "connect",
        "peers": [hostport(a) for a in opts.connect] or [hostport(opts.listen)],
        "speed": "max" if opts.speed is None else opts.speed,
        "result": result,
        "reason": reason,
        "exit": {"ok": 0, "failed": 1, INTERRUPTED: 130}[result],
        "started": started,
        "duration": round(time.time() - started, 3),
        "blocks": {
            "requested": t.requested, "received": t.received, "served": t.served, "rejected": t.rejected,
            "ignored": t.ignored, "unchecked": t.unchecked,
            "mismatched": [list(b) for b in t.mismatched],
        },
        "pieces": {"verified": sorted(t.verified), "failed": sorted(t.failed), "announced": sorted(player.holding)}
        if plan.torrent is not None else {"announced": sorted(player.holding)},
        "bytes": {"received": t.bytes_in, "sent": t.bytes_out},
        "most_connections": t.most_connections,
        "not_replayed": t.not_replayed,
        "capture_conflicts": [list(b) for b in plan.conflicts],  # blocks the session carried twice, unlike
        "differences": diffs,
        "connections": [{
            "peer": log.peer, "local": log.local, "direction": "out" if log.outgoing else "in",
            "peer_id": log.peer_id.hex() if log.peer_id else None, "opened": log.opened, "closed": log.closed,
            "reason": log.reason, "detail": log.detail, "bytes_sent": log.bytes_sent,
            "bytes_received": log.bytes_received, "blocks": player.peer_blocks.get((log.peer, log.local)),
            "messages": log.messages,
        } for log in rec.logs],
        "lost": [{"peer": a, "reason": r, "detail": d} for a, r, d, _ in player.lost if not any(
            log.peer == a for log in rec.logs)],
    }


def _summary(report: dict) -> list[str]:
    b = report["blocks"]
    what = (f"{b['received']} of {b['requested']} requested blocks received" if b["requested"]
            else f"{b['served']} blocks served")
    if "verified" in report["pieces"]:
        what += f", {len(report['pieces']['verified'])} pieces verified"
    lines = [f"session {report['session']} side {report['side']} ({report['client']}): {what} "
             f"in {report['duration']:.1f} s over {len(report['connections'])} connection(s)"]
    diffs = report["differences"]
    if diffs:
        shown = "; ".join(f"{d['what']} {d['captured']} -> {d['live']}" for d in diffs[:4])
        more = f"; {len(diffs) - 4} more" if len(diffs) > 4 else ""
        lines.append(f"{len(diffs)} difference(s) from the capture: {shown}{more}")
    if report["result"] == INTERRUPTED:
        lines.append("interrupted")
    return lines
