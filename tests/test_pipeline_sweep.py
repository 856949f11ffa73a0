"""The idle sweep looks at every flow: one that is still talking does not end the sweep.

Why: a mutation run found that nothing showed a sweep going on past a flow with a packet
since the previous sweep; the flows opened after it would then never be closed as idle.
"""
from __future__ import annotations

import hostile as h
from inspector.pipeline import IDLE_TIMEOUT, Decoder
from test_pipeline_flows import feed, stamped


def test_a_talking_flow_opened_first_does_not_shield_the_idle_ones_after_it() -> None:
    decoder = Decoder()
    talking = h.Conn(aport=40001).open().handshakes()
    quiet = h.Conn(aport=40002).open().handshakes()
    number = feed(decoder, stamped(talking.frames + quiet.frames, 1000.0), 1)
    decoder.sweep(1000.5, number)
    # the first connection speaks again just before the next sweep; the second stays silent
    later = 1000.0 + IDLE_TIMEOUT + 10
    number = feed(decoder, stamped(talking.emit(0, h.PSH, b"\x00\x00\x00\x00").frames[-1:], later), number)
    decoder.sweep(later + 1, number)
    assert [s.state for s in decoder.sessions] == ["open", "idle"]
