"""``btshark read --stats`` against figures worked out here from ``-T jsonl`` alone.

The test derives every figure from the message records, its own way (no code shared
with ``inspector.stats``): counts by type, payload bytes and rate, request-to-piece
waits matched block by block, chokes, unchokes and the periods between, each session's
start and end as ``--sessions`` gives them; the command must agree exactly.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from conftest import REPO, btshark_ok, capture_params, read_jsonl, run_btshark


def nearest_rank(values: list[float], p: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


def derived(records: list[dict]) -> dict:
    """Per (session, sender address): counts, payload, waits, chokes, from the message records."""
    out: dict = defaultdict(lambda: {"messages": Counter(), "payload": 0, "waits": [], "requests": 0,
                                     "chokes": 0, "unchokes": 0, "times": [], "open": []})
    asked: dict = {}
    fast: set = set()  # (session, address) whose handshake set the Fast bit
    for r in records:
        if r["type"] == "finding":
            continue
        sid = r["session"]
        if r["type"] == "handshake" and "fast" in r["extensions"]:
            fast.add((sid, r["src"]))
        if r["type"] == "choke" and not {(sid, r["src"]), (sid, r["dst"])} <= fast:
            # BEP 3: without Fast on both sides a choke drops the other side's requests
            asked = {k: v for k, v in asked.items() if (k[0], k[1]) != (r["dst"], sid)}
        figures = out[(sid, r["src"])]
        figures["messages"][r["type"]] += 1
        figures["times"].append(r["ts"])
        periods = figures["open"]  # [unchoke, choke or None], absolute times
        if r["type"] == "unchoke" and not (periods and periods[-1][1] is None):
            periods.append([r["ts"], None])
        elif r["type"] == "choke" and periods and periods[-1][1] is None:
            periods[-1][1] = r["ts"]
        block = (sid, r.get("index"), r.get("begin"), r.get("length"))
        if r["type"] == "piece":
            figures["payload"] += r["length"]
            when = asked.pop((r["dst"], *block), None)
            if when is not None:
                out[(sid, r["dst"])]["waits"].append(r["ts"] - when)
        elif r["type"] == "request":
            figures["requests"] += 1
            asked.setdefault((r["src"], *block), r["ts"])
        elif r["type"] in ("cancel", "reject"):
            asker = r["src"] if r["type"] == "cancel" else r["dst"]
            asked.pop((asker, *block), None)
        elif r["type"] in ("choke", "unchoke"):
            figures[r["type"] + "s"] += 1
    return out


def check(stats: dict, records: list[dict], sessions: list[dict]) -> int:
    """Compare; the number of (session, side) pairs that had messages. ``sessions``: what
    ``--sessions -T json`` says of them (their start and end)."""
    want = derived(records)
    compared = 0
    spans = {s["id"]: (s["start"], s["end"]) for s in sessions}
    for session in stats["sessions"]:
        start, end = spans[session["id"]]
        assert (session["start"], session["end"]) == (start, end)
        assert session["duration"] == pytest.approx(end - start, abs=1e-9)
        assert (session["a"], session["b"]) == (session["sides"]["a"]["addr"], session["sides"]["b"]["addr"])
        for label in "ab":
            got = session["sides"][label]
            figures = want.get((session["id"], got["addr"]))
            if figures is None:
                assert got["message_total"] == 0 and got["messages"] == {} and got["payload_rate"] is None
                continue
            compared += 1
            assert got["messages"] == dict(figures["messages"])
            assert got["message_total"] == sum(figures["messages"].values())
            assert got["payload_bytes"] == figures["payload"]
            latency = got["latency"]
            assert latency["requests"] == figures["requests"]
            assert latency["answered"] == len(figures["waits"])
            assert latency["median"] == pytest.approx(nearest_rank(figures["waits"], 50), abs=1e-9)
            assert latency["p95"] == pytest.approx(nearest_rank(figures["waits"], 95), abs=1e-9)
            assert (got["choke"]["chokes"], got["choke"]["unchokes"]) == (figures["chokes"], figures["unchokes"])
            span = max(figures["times"]) - min(figures["times"])
            if span > 0:
                assert got["payload_rate"] == pytest.approx(figures["payload"] / span, rel=1e-9)
            else:
                assert got["payload_rate"] is None
            periods = [[a - start, None if b is None else b - start] for a, b in figures["open"]]
            assert [b is None for _, b in got["choke"]["unchoked"]] == [b is None for _, b in periods]
            assert [x for pair in got["choke"]["unchoked"] for x in pair if x is not None] == pytest.approx(
                [x for pair in periods for x in pair if x is not None], abs=1e-9)
            assert got["choke"]["unchoked_seconds"] == pytest.approx(
                sum((end if b is None else b) - a for a, b in figures["open"]), abs=1e-6)
    seen = {key for key, f in want.items() if sum(f["messages"].values())}
    assert compared == len(seen)  # every side with messages was compared, none left out
    return compared


SWARMS = sorted((REPO / "captures" / "swarm").glob("*.pcap"))


@pytest.mark.parametrize("capture", capture_params() + [pytest.param(p, id=f"swarm/{p.stem}") for p in SWARMS])
def test_stats_match_the_messages(capture: Path):
    stats = json.loads(btshark_ok("read", capture, "--stats", "-T", "json").stdout)
    records = read_jsonl(capture)
    sessions = json.loads(btshark_ok("read", capture, "--sessions", "-T", "json").stdout)
    assert check(stats, records, sessions) >= 1 or not [r for r in records if r["type"] != "finding"]
    assert stats["findings"] == dict(Counter(r["kind"] for r in records if r["type"] == "finding"))
    assert [s["id"] for s in stats["sessions"]] == sorted(s["id"] for s in sessions)  # every one, even silent
    answered = sum(s["sides"][x]["latency"]["answered"] for s in stats["sessions"] for x in "ab")
    pieces = sum(1 for r in records if r["type"] == "piece")
    if capture.parent.name != "swarm":  # two peers alone: every piece answers a request of its own
        assert answered == pieces
    else:  # a swarm: pieces past their cancel, and a block asked twice answered twice, wait for nothing
        assert 0 < answered <= pieces


def test_a_display_filter_narrows_the_statistics():
    capture = capture_params(shared=False, name="aria2-to-libtorrent.pcap")[0].values[0]
    everything = json.loads(btshark_ok("read", capture, "--stats", "-T", "json").stdout)
    only = json.loads(btshark_ok("read", capture, "--stats", "-T", "json", "-Y", "side == b").stdout)
    sessions = json.loads(btshark_ok("read", capture, "--sessions", "-T", "json").stdout)
    assert check(only, [r for r in read_jsonl(capture) if r["type"] == "finding" or
                        r["src"] == everything["sessions"][0]["b"]], sessions) >= 1
    assert only["sessions"][0]["sides"]["a"]["message_total"] == 0
    assert only["sessions"][0]["sides"]["b"] == everything["sessions"][0]["sides"]["b"] | {
        "latency": only["sessions"][0]["sides"]["b"]["latency"]}


def test_top_talkers_add_up_and_the_text_names_them():
    capture = capture_params(shared=False, name="transmission-to-libtorrent.pcap")[0].values[0]
    stats = json.loads(btshark_ok("read", capture, "--stats", "-T", "json").stdout)
    records = [r for r in read_jsonl(capture) if r["type"] != "finding"]
    sent: Counter = Counter()
    for r in records:
        if r["type"] == "piece":
            sent[r["src"].rsplit(":", 1)[0]] += r["length"]
    assert {t["addr"]: t["payload_bytes"] for t in stats["top_talkers"] if t["payload_bytes"]} == dict(sent)
    assert sum(t["messages"] for t in stats["top_talkers"]) == len(records)
    text = btshark_ok("read", capture, "--stats").stdout
    first = stats["sessions"][0]
    assert f"#{first['id']} tcp {first['a']} → {first['b']}" in text
    assert "request→piece median" in text and "Top talkers (payload sent):" in text
    lines = btshark_ok("read", capture, "--stats", "-T", "jsonl").stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines] == (["session_stats"] * len(stats["sessions"])
                                                            + ["top_talkers", "findings"])
    assert json.loads(lines[-1])["findings"] == stats["findings"]


def test_a_choke_without_fast_starts_the_wait_again():
    """BEP 3: a choke discards the requests; one asked again after the unchoke waits from then."""
    from inspector import events as ev
    from inspector.pipeline import Record
    from inspector.session import Session
    from inspector.stats import Stats

    fast, dht = bytes.fromhex("0000000000000004"), bytes.fromhex("0000000000000001")
    # Fast on both sides keeps the request; on one side only, or a DHT bit next to it, does not.
    for reserved_a, reserved_b, wait in ((bytes(8), bytes(8), 0.5), (fast, fast, 10.5), (fast, bytes(8), 0.5),
                                         (bytes(8), fast, 0.5), (dht, dht, 0.5)):
        session = Session(1, "tcp", "10.0.0.1:1", "10.0.0.2:2", opener_known=True, encrypted=False, start=0.0)
        tally = Stats()
        for side, ts, event in ((0, 0.0, ev.Handshake(reserved_a, bytes(20), bytes(20))),
                                (1, 0.0, ev.Handshake(reserved_b, bytes(20), bytes(20))),
                                (0, 0.0, ev.Request(0, 0, 16384)), (1, 1.0, ev.Choke()), (1, 10.0, ev.Unchoke()),
                                (0, 10.0, ev.Request(0, 0, 16384)), (1, 10.5, ev.Piece(0, 0, 16384))):
            tally.add(Record(session, side, 1, ts, event))
        latency = tally.as_dict()["sessions"][0]["sides"]["a"]["latency"]
        assert (latency["requests"], latency["answered"], latency["median"]) == (2, 1, wait)


def test_stats_and_sessions_are_one_view_at_a_time():
    capture = capture_params(shared=False, name="aria2-to-libtorrent.pcap")[0].values[0]
    failed = run_btshark("read", capture, "--stats", "--sessions")
    assert failed.returncode == 2 and failed.stderr.startswith(b"btshark: error: --sessions and --stats")


def test_the_text_form_worked_by_hand():
    """Every figure of the text lines, worked out by hand from eight messages: b's payload
    over its first to last message (32 KiB in 4 s), the nearest-rank waits of two requests
    (1.5 ms and 500 ms), two unchoked periods (1-3 s, and 4 s to the session's end at 12)."""
    import io

    from inspector import events as ev
    from inspector.pipeline import Record
    from inspector.session import Session
    from inspector.stats import Stats, write_stats

    session = Session(1, "tcp", "10.0.0.1:1", "10.0.0.2:2", opener_known=True, encrypted=False, start=0.0)
    session.end = 12.0
    silent = Session(2, "tcp", "10.0.0.1:3", "10.0.0.2:4", opener_known=True, encrypted=False, start=12.5)
    silent.end = 13.0  # no record reached it: listed with nothing
    tally = Stats()
    for side, ts, event in ((0, 0.0, ev.Handshake(bytes(8), bytes(20), bytes(20))),
                            (1, 0.0, ev.Handshake(bytes(8), bytes(20), bytes(20))), (1, 1.0, ev.Unchoke()),
                            (0, 2.0, ev.Request(0, 0, 16384)), (0, 2.0, ev.Request(0, 16384, 16384)),
                            (1, 2.0015, ev.Piece(0, 0, 16384)), (1, 2.5, ev.Piece(0, 16384, 16384)),
                            (1, 3.0, ev.Choke()), (1, 4.0, ev.Unchoke()), (1, 4.0, ev.Finding("hole", "lost")),
                            (0, 5.0, ev.Unchoke()), (0, 5.0, ev.Finding("resync", "found"))):
        tally.add(Record(session, side, 1, ts, event))
    out = io.StringIO()
    write_stats(tally, [session, silent], "text", out)
    assert out.getvalue().splitlines() == [
        "#1 tcp 10.0.0.1:1 → 10.0.0.2:2  12.000 s",
        "    a 10.0.0.1:1: 4 messages (request 2, handshake 1, unchoke 1); 0 B payload; request→piece median "
        "1.500 ms, p95 500.000 ms (2 of 2 requests answered); unchoked the other 1× (choked 0×), 7.000 s in all",
        "    b 10.0.0.2:2: 6 messages (piece 2, unchoke 2, choke 1, handshake 1); 32.0 KiB payload, 8.0 KiB/s; "
        "unchoked the other 2× (choked 1×), 10.000 s in all",
        "#2 tcp 10.0.0.1:3 → 10.0.0.2:4  0.500 s",
        "    a 10.0.0.1:3: 0 messages (nothing); 0 B payload",
        "    b 10.0.0.2:4: 0 messages (nothing); 0 B payload",
        "Findings: 1 hole, 1 resync",
        "Top talkers (payload sent):",
        "    10.0.0.2  32.0 KiB in 2 sessions, 6 messages",
        "    10.0.0.1  0 B in 2 sessions, 4 messages",
    ]


@pytest.mark.parametrize("n, shown", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
                                      (1024 ** 2 - 1, "1024.0 KiB"), (1024 ** 2, "1.0 MiB"),
                                      (5 * 1024 ** 3, "5.0 GiB"), (3 * 1024 ** 4, "3.0 TiB"),
                                      (5 * 1024 ** 5, "5120.0 TiB")])
def test_sizes_are_shown_in_binary_units(n, shown):
    from inspector.words import human_bytes

    assert human_bytes(n) == shown


def test_a_host_with_both_ends_of_a_session_counts_it_once():
    """Found in review: loopback sessions (both ends 127.0.0.1) counted two sessions each."""
    capture = capture_params(shared=False, name="aria2-to-libtorrent.pcap")[0].values[0]
    stats = json.loads(btshark_ok("read", capture, "--stats", "-T", "json").stdout)
    hosts = {s["sides"][x]["addr"].rsplit(":", 1)[0] for s in stats["sessions"] for x in "ab"}
    assert hosts == {"127.0.0.1"}
    assert stats["top_talkers"][0]["sessions"] == len(stats["sessions"])


def tallied(events, a: str = "10.0.0.1:1", b: str = "10.0.0.2:2") -> dict:
    """``Stats`` over (side, ts, event) of one session that starts at 0 and ends at 12."""
    from inspector.pipeline import Record
    from inspector.session import Session
    from inspector.stats import Stats

    session = Session(1, "tcp", a, b, opener_known=True, encrypted=False, start=0.0)
    session.end = 12.0
    tally = Stats()
    for side, ts, event in events:
        tally.add(Record(session, side, 1, ts, event))
    return tally.as_dict()


def test_a_cancel_or_a_reject_ends_the_wait():
    """A piece for a block whose request was cancelled (by the asker) or rejected (by the other
    side) answers nothing; one still asked for does."""
    from inspector import events as ev

    for gone in ((0, 1.0, ev.Cancel(0, 0, 16384)), (1, 1.0, ev.Reject(0, 0, 16384))):
        figures = tallied([(0, 0.0, ev.Request(0, 0, 16384)), (0, 0.0, ev.Request(1, 0, 16384)), gone,
                           (1, 2.0, ev.Piece(0, 0, 16384)), (1, 3.0, ev.Piece(1, 0, 16384))])
        latency = figures["sessions"][0]["sides"]["a"]["latency"]
        assert (latency["requests"], latency["answered"], latency["median"]) == (2, 1, 3.0), gone


def test_the_oldest_waiting_request_is_let_go_past_the_bound(monkeypatch):
    """At most MAX_WAITING requests wait per side: one more lets the oldest go, so its piece
    answers nothing, while the next oldest is still waited for."""
    from inspector import events as ev
    from inspector import stats

    monkeypatch.setattr(stats, "MAX_WAITING", 4)
    requests = [(0, float(i), ev.Request(i, 0, 16384)) for i in range(5)]
    figures = tallied(requests + [(1, 10.0, ev.Piece(0, 0, 16384)), (1, 10.0, ev.Piece(1, 0, 16384))])
    latency = figures["sessions"][0]["sides"]["a"]["latency"]
    assert (latency["requests"], latency["answered"], latency["median"]) == (5, 1, 9.0)
    figures = tallied(requests[:4] + [(1, 10.0, ev.Piece(0, 0, 16384))])  # at the bound, none let go
    assert figures["sessions"][0]["sides"]["a"]["latency"]["answered"] == 1


def test_an_unchoke_while_unchoked_keeps_the_period_s_start():
    from inspector import events as ev

    figures = tallied([(1, 1.0, ev.Unchoke()), (1, 2.0, ev.Unchoke()), (1, 3.0, ev.Choke()), (1, 5.0, ev.Unchoke())])
    choke = figures["sessions"][0]["sides"]["b"]["choke"]
    assert (choke["unchokes"], choke["chokes"], choke["unchoked"]) == (3, 1, [[1.0, 3.0], [5.0, None]])
    assert choke["unchoked_seconds"] == 2.0 + 7.0  # the open period runs to the session's end


def test_ipv6_talkers_are_named_by_their_address_whole():
    from inspector import events as ev

    figures = tallied([(0, 0.0, ev.Interested()), (1, 1.0, ev.Piece(0, 0, 100))],
                      a="[fe80::1]:40000", b="[2001:db8::2]:6881")
    assert [(t["addr"], t["payload_bytes"], t["messages"]) for t in figures["top_talkers"]] == [
        ("[2001:db8::2]", 100, 1), ("[fe80::1]", 0, 1)]
    figures = tallied([(0, 0.0, ev.Interested()), (1, 1.0, ev.Unchoke()), (1, 2.0, ev.Have(1))])
    assert [t["addr"] for t in figures["top_talkers"]] == ["10.0.0.2", "10.0.0.1"]  # no payload: more messages first


def test_json_is_indented_and_jsonl_compact():
    """As the other outputs: -T json indented by two, -T jsonl one compact object a line."""
    capture = SWARMS[0]
    text = btshark_ok("read", capture, "--stats", "-T", "json").stdout
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    lines = btshark_ok("read", capture, "--stats", "-T", "jsonl").stdout.splitlines()
    assert lines and all(line == json.dumps(json.loads(line), separators=(",", ":")) for line in lines)
    assert json.loads(lines[-2])["talkers"] == json.loads(text)["top_talkers"]
