"""Which frames the fast path (``frames.eth_ipv4_tcp``) takes: Ethernet + IPv4 without
options + TCP, and nothing else, however much the other frames' bytes look alike.

Why: a mutation run found the protocol check unpinned. A UDP datagram (uTP) of the same
length laid out as TCP would be read as a segment with a made-up sequence number.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from inspector import frames

A, B = "10.0.0.1", "10.0.0.2"
BODY = bytes(range(64))  # long enough for any frame to pass the length check


def frame(transport) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=A, dst=B) / transport)


def test_the_fast_path_takes_ethernet_ipv4_tcp() -> None:
    data = frame(TCP(sport=6881, dport=51413, seq=1000, ack=2000, flags="PA") / BODY)
    key, seq, ack, flags, start, end, missing = frames.eth_ipv4_tcp(data, 0, len(data))
    assert key == (bytes([10, 0, 0, 1]), 6881, bytes([10, 0, 0, 2]), 51413)
    assert (seq, ack, flags, missing) == (1000, 2000, 0x18, 0)
    assert data[start:end] == BODY


@pytest.mark.parametrize("transport", [
    UDP(sport=6881, dport=51413) / BODY,
    ICMP() / BODY,
], ids=["udp", "icmp"])
def test_the_fast_path_leaves_other_protocols_to_the_general_decoder(transport) -> None:
    data = frame(transport)
    assert frames.eth_ipv4_tcp(data, 0, len(data)) is None
