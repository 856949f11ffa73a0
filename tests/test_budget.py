"""The out-of-order budget shared by every flow's directions (``--max-ooo-total``).

Each direction adds the bytes it buffers to one ``Budget`` and takes them back when it
delivers them or is dropped (its flow closed or evicted). If a direction forgot to give
bytes back, a long capture would hit the total bound with nothing buffered and start
declaring losses that are not there; if it gave back too much, the bound would never hold.
"""
from __future__ import annotations

import pytest

from inspector.limits import Budget
from inspector.tcp import TcpDirection
from inspector.utp import ST_DATA, UtpDirection


def test_tcp_buffered_bytes_count_until_delivered_or_dropped():
    budget = Budget(1 << 20)
    a, b = TcpDirection(budget=budget), TcpDirection(budget=budget)
    a.syn(999)  # first byte 1000
    b.syn(4999)  # first byte 5000
    assert a.segment(1003, b"dddd") == ()  # waits for 1000..1002
    assert b.segment(5002, b"zz") == ()  # waits for 5000..5001
    assert budget.used == 6 and (a.pending_bytes, b.pending_bytes) == (4, 2)
    assert [bytes(c) for c, _f, _t in a.segment(1000, b"ab")] == [b"ab"]  # 1002 still missing: nothing released
    assert budget.used == 6
    assert [bytes(c) for c, _f, _t in a.segment(1002, b"c")] == [b"c", b"dddd"]
    assert budget.used == 2 and a.pending_bytes == 0
    b.drop()
    assert budget.used == 0 and b.pending_bytes == 0 and not b.pending
    b.segment(5010, b"y")  # buffers again from nothing
    assert budget.used == 1 and b.pending_bytes == 1


def test_utp_buffered_bytes_count_until_delivered_or_dropped():
    budget = Budget(1 << 20)
    a, b = UtpDirection(budget=budget), UtpDirection(budget=budget)
    a.syn(0)
    b.syn(100)
    assert a.segment(ST_DATA, 3, b"ccc") == ()  # waits for 1 and 2
    assert b.segment(ST_DATA, 102, b"bb") == ()  # waits for 101
    assert budget.used == 5 and (a.pending_bytes, b.pending_bytes) == (3, 2)
    a.segment(ST_DATA, 1, b"a")  # 2 still missing: nothing released
    assert budget.used == 5
    assert [bytes(c) for c, _f, _t in a.segment(ST_DATA, 2, b"b")] == [b"b", b"ccc"]
    assert budget.used == 2 and a.pending_bytes == 0
    b.drop()
    assert budget.used == 0 and b.pending_bytes == 0 and not b.pending
    b.segment(ST_DATA, 104, b"y")  # buffers again from nothing
    assert budget.used == 1 and b.pending_bytes == 1


@pytest.mark.parametrize("kind", ["tcp", "utp"])
def test_a_direction_without_a_budget_drops_alone(kind):
    d = TcpDirection() if kind == "tcp" else UtpDirection()
    d.syn(0)
    if kind == "tcp":
        d.segment(5, b"xx")
    else:
        d.segment(ST_DATA, 5, b"xx")
    d.drop()
    assert d.pending_bytes == 0 and not d.pending
