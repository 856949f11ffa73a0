"""BEP 52 merkle trees: the SHA-256 hashes a v2 or hybrid torrent checks its pieces with.

A v2 torrent names each file by the root of a binary tree over the SHA-256 of its
16 KiB blocks ("pieces root"), and lists the tree's layer one piece above the leaves
("piece layers") for every file longer than a piece. No bencode or torrent library
in reach computes these (torf and the other .torrent readers are v1 only; libtorrent
does, but it is a test-only dependency), and the rules fit in a few lines, so they
are here, checked in the tests against the hashes libtorrent writes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

BLOCK = 16384  # a leaf: the hash of this many bytes (fewer at the end of a file)
ZERO = bytes(32)  # a leaf past the end of a file


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(data: bytes) -> list[bytes]:
    """The leaf hashes of ``data``: one per 16 KiB block, the last block as long as it is."""
    return [_sha256(data[i : i + BLOCK]) for i in range(0, len(data), BLOCK)]


def root(nodes: Sequence[bytes], width: int, pad: bytes = ZERO) -> bytes:
    """The root over ``nodes`` filled out to ``width`` (a power of two) with ``pad``,
    itself the root of a subtree of zero leaves when ``nodes`` are not leaves."""
    if width & (width - 1) or len(nodes) > width:
        raise ValueError(f"{len(nodes)} nodes do not fit a tree {width} wide")
    layer = list(nodes)
    while width > 1:
        if len(layer) % 2:
            layer.append(pad)
        layer = [_sha256(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
        pad = _sha256(pad + pad)
        width //= 2
    return layer[0] if layer else pad


def span(count: int) -> int:
    """The width of the smallest tree that holds ``count`` nodes."""
    return 1 << max(count - 1, 0).bit_length()


def piece_hash(data: bytes, piece_length: int) -> bytes:
    """A piece's node in its file's piece layer (the last piece of a file padded with zero leaves)."""
    return root(leaves(data), piece_length // BLOCK)


def small_file_root(data: bytes) -> bytes:
    """The pieces root of a file no longer than one piece: its tree is only as wide as its blocks."""
    hashes = leaves(data)
    return root(hashes, span(len(hashes)))


def layer_root(layer: Sequence[bytes], piece_length: int) -> bytes:
    """The pieces root a file's piece layer hashes up to."""
    return root(layer, span(len(layer)), pad=root((), piece_length // BLOCK))
