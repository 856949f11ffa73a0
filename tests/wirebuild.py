"""Builders for peer-wire bytes, for tests.

Written from the BEPs with literal ids and ``struct`` formats, deliberately not
from ``inspector.wire``, so a wrong table there shows up as a failing test rather
than being copied into the expected bytes.
"""
from __future__ import annotations

import socket
import struct

import fastbencode

PSTR = b"BitTorrent protocol"


def bencode(value: object) -> bytes:
    return fastbencode.bencode(value)


def handshake(info_hash: bytes = bytes(range(20)), peer_id: bytes = b"-LT2090-abcdefghijkl",
              reserved: bytes = bytes(8), pstr: bytes = PSTR, pstrlen: int | None = None) -> bytes:
    assert len(info_hash) == 20 and len(peer_id) == 20 and len(reserved) == 8
    return bytes([len(pstr) if pstrlen is None else pstrlen]) + pstr + reserved + info_hash + peer_id


def raw(body: bytes, length: int | None = None) -> bytes:
    """A length prefix (the body's own length unless given) and the body."""
    return struct.pack(">I", len(body) if length is None else length) + body


def msg(msg_id: int, payload: bytes = b"") -> bytes:
    return raw(bytes([msg_id]) + payload)


def keepalive() -> bytes:
    return bytes(4)


def choke() -> bytes:
    return msg(0)


def unchoke() -> bytes:
    return msg(1)


def interested() -> bytes:
    return msg(2)


def not_interested() -> bytes:
    return msg(3)


def have(index: int) -> bytes:
    return msg(4, struct.pack(">I", index))


def bitfield(bits: bytes) -> bytes:
    return msg(5, bits)


def request(index: int, begin: int, length: int) -> bytes:
    return msg(6, struct.pack(">III", index, begin, length))


def piece(index: int, begin: int, block: bytes) -> bytes:
    return msg(7, struct.pack(">II", index, begin) + block)


def cancel(index: int, begin: int, length: int) -> bytes:
    return msg(8, struct.pack(">III", index, begin, length))


def port(number: int) -> bytes:
    return msg(9, struct.pack(">H", number))


def suggest(index: int) -> bytes:
    return msg(13, struct.pack(">I", index))


def have_all() -> bytes:
    return msg(14)


def have_none() -> bytes:
    return msg(15)


def reject(index: int, begin: int, length: int) -> bytes:
    return msg(16, struct.pack(">III", index, begin, length))


def allowed_fast(index: int) -> bytes:
    return msg(17, struct.pack(">I", index))


def extended(ext_id: int, body: bytes) -> bytes:
    return msg(20, bytes([ext_id]) + body)


def _hash_head(root: bytes, base_layer: int, index: int, length: int, proof_layers: int) -> bytes:
    assert len(root) == 32
    return root + struct.pack(">IIII", base_layer, index, length, proof_layers)


def hash_request(root: bytes, base_layer: int, index: int, length: int, proof_layers: int) -> bytes:
    return msg(21, _hash_head(root, base_layer, index, length, proof_layers))


def hashes(root: bytes, base_layer: int, index: int, length: int, proof_layers: int,
           hash_list: list[bytes] | tuple[bytes, ...]) -> bytes:
    assert all(len(h) == 32 for h in hash_list)
    return msg(22, _hash_head(root, base_layer, index, length, proof_layers) + b"".join(hash_list))


def hash_reject(root: bytes, base_layer: int, index: int, length: int, proof_layers: int) -> bytes:
    return msg(23, _hash_head(root, base_layer, index, length, proof_layers))


def compact_v4(host: str, port_number: int) -> bytes:
    return socket.inet_pton(socket.AF_INET, host) + struct.pack(">H", port_number)


def compact_v6(host: str, port_number: int) -> bytes:
    return socket.inet_pton(socket.AF_INET6, host) + struct.pack(">H", port_number)
