"""The peer wire protocol's fixed facts, declared as data.

Message ids, the handshake layout, each message's fixed length and the precompiled
structs that read them live here so the parser, the replayer's encoder and the
tests all agree on one table.
"""
from __future__ import annotations

import struct
from enum import IntEnum

PROTOCOL_NAME = b"BitTorrent protocol"
HANDSHAKE_PREFIX = bytes([len(PROTOCOL_NAME)]) + PROTOCOL_NAME
HANDSHAKE_LEN = 1 + len(PROTOCOL_NAME) + 8 + 20 + 20

# The original client hung up above 2**23; libtorrent allows large bitfields and
# BEP 52 hash lists, so allow a little more but still bound every buffer.
DEFAULT_MAX_LEN = 1 << 24


class MessageId(IntEnum):
    CHOKE = 0
    UNCHOKE = 1
    INTERESTED = 2
    NOT_INTERESTED = 3
    HAVE = 4
    BITFIELD = 5
    REQUEST = 6
    PIECE = 7
    CANCEL = 8
    PORT = 9
    SUGGEST = 13
    HAVE_ALL = 14
    HAVE_NONE = 15
    REJECT = 16
    ALLOWED_FAST = 17
    EXTENDED = 20
    HASH_REQUEST = 21
    HASHES = 22
    HASH_REJECT = 23


U8 = struct.Struct(">B")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
BLOCK = struct.Struct(">III")  # request, cancel, reject: index, begin, length
PIECE_HEAD = struct.Struct(">II")  # piece: index, begin (the block follows)
HASH_HEAD = struct.Struct(">32sIIII")  # BEP 52: pieces root, base layer, index, length, proof layers
HASH_HEAD_LEN = HASH_HEAD.size
PIECE_HEAD_LEN = 1 + PIECE_HEAD.size  # id + index + begin

# Exact length prefix for each fixed-size message (id byte included).
FIXED_LEN: dict[int, int] = {
    MessageId.CHOKE: 1,
    MessageId.UNCHOKE: 1,
    MessageId.INTERESTED: 1,
    MessageId.NOT_INTERESTED: 1,
    MessageId.HAVE: 5,
    MessageId.REQUEST: 13,
    MessageId.CANCEL: 13,
    MessageId.PORT: 3,
    MessageId.SUGGEST: 5,
    MessageId.HAVE_ALL: 1,
    MessageId.HAVE_NONE: 1,
    MessageId.REJECT: 13,
    MessageId.ALLOWED_FAST: 5,
    MessageId.HASH_REQUEST: 1 + HASH_HEAD_LEN,
    MessageId.HASH_REJECT: 1 + HASH_HEAD_LEN,
}

# Smallest legal length prefix for the variable-size messages.
MIN_LEN: dict[int, int] = {
    MessageId.BITFIELD: 1,
    MessageId.PIECE: PIECE_HEAD_LEN,
    MessageId.EXTENDED: 2,
    MessageId.HASHES: 1 + HASH_HEAD_LEN,
}

# Reserved handshake bits: (byte index, mask) -> name, as BEPs 4, 5, 6, 10, 52 and
# the clients that introduced the rest assign them.
RESERVED_BITS: dict[tuple[int, int], str] = {
    (0, 0x80): "azureus_messaging",
    (2, 0x08): "location_aware",
    (5, 0x10): "extension_protocol",
    (7, 0x01): "dht",
    (7, 0x02): "xbt_pex",
    (7, 0x04): "fast",
    (7, 0x08): "nat_traversal",
    (7, 0x10): "v2_upgrade",
}


def reserved_names(reserved: bytes) -> list[str]:
    """Names of the reserved bits set, unknown ones as ``bit_N`` (0 = most significant)."""
    names = []
    for byte_index, value in enumerate(reserved):
        for shift in range(7, -1, -1):
            mask = 1 << shift
            if value & mask:
                names.append(
                    RESERVED_BITS.get((byte_index, mask), f"bit_{byte_index * 8 + 7 - shift}")
                )
    return names


def reserved_bytes(*names: str) -> bytes:
    """The 8 reserved bytes with the named bits set (the replayer's and tests' builder)."""
    out = bytearray(8)
    by_name = {name: key for key, name in RESERVED_BITS.items()}
    for name in names:
        byte_index, mask = by_name[name]
        out[byte_index] |= mask
    return bytes(out)
