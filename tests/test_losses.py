"""End to end below the capture file: a direction's messages cut into TCP segments that
arrive reordered, duplicated (also re-cut at other boundaries) and with some never captured, the receiver's ACKs
interleaved, through ``TcpDirection`` into ``PeerWireParser``. Whatever the damage,
every message decoded is one the sender sent, in order, and nothing raises."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from inspector.parser import PeerWireParser
from inspector.tcp import TcpDirection
from test_parser import _message_stream, assert_sent_in_order, messages

ISN = 0xFFFF_F000  # the sequence space wraps inside the stream


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# a hole inside a bitfield with captured bytes after it: they once moved up to fill it
@example(seed=18153, loss=0.3, shuffle=0, duplicates=0.0, acks=False)
@given(seed=st.integers(0, 2**32 - 1), loss=st.sampled_from([0.0, 0.02, 0.1, 0.3]),
       shuffle=st.integers(0, 8), duplicates=st.floats(0, 0.2), acks=st.booleans())
def test_reordered_duplicated_lossy_segments_never_yield_a_foreign_message(seed, loss, shuffle, duplicates, acks):
    rng = random.Random(seed)
    data, expected, _ = _message_stream(rng)
    # Segment i is sent at time i; retransmissions (whole, or re-cut at other
    # boundaries) some time after the bytes they repeat; the capture misses some
    # segments and sees the rest in time order, locally shuffled.
    segments, pos = [], 0
    while pos < len(data):
        size = rng.choice([1, 7, 100, 536, 1448, 1448, 1448])
        segments.append((pos, data[pos : pos + size]))
        pos += size
    starts = [offset for offset, _ in segments] + [len(data)]
    sent = [(t, seg) for t, seg in enumerate(segments) if rng.random() >= loss]
    sent += [(t + rng.randint(1, 20), seg) for t, seg in sent if rng.random() < duplicates]
    for _ in range(int(duplicates * 50)):
        a = rng.randrange(len(data))
        b = min(len(data), a + rng.choice([3, 700, 2000]))
        last = max(t for t, (offset, _) in enumerate(segments) if offset < b)
        sent.append((last + rng.randint(1, 20), (a, data[a:b])))
    sent.sort(key=lambda item: item[0])
    for _ in range(shuffle):
        if len(sent) > 1:
            i = rng.randrange(len(sent) - 1)
            sent[i], sent[i + 1] = sent[i + 1], sent[i]
    direction = TcpDirection()
    direction.syn((ISN - 1) & 0xFFFFFFFF)
    parser = PeerWireParser(handshake=False)
    events: list = []

    def deliver(chunks) -> None:
        for chunk, frame, _ in chunks:
            events.extend(parser.gap(chunk, frame) if isinstance(chunk, int) else parser.feed(chunk, frame))

    for frame, (t, (offset, payload)) in enumerate(sent, 1):
        deliver(direction.segment((ISN + offset) & 0xFFFFFFFF, payload, frame=frame))
        if acks and rng.random() < 0.5:  # the receiver has every segment sent before time t
            deliver(direction.ack((ISN + starts[min(t, len(segments))]) & 0xFFFFFFFF, frame, 0.0))
    deliver(direction.segment((ISN + len(data)) & 0xFFFFFFFF, b"", fin=True, frame=len(sent) + 1))
    deliver(direction.flush(len(sent) + 1, 0.0))
    events += parser.end()
    got = messages(events)
    assert_sent_in_order(got, expected)
    if not loss and not (acks and shuffle):  # (an ACK captured before the data it covers
        assert len(got) == len(expected)      # declares that data lost)
