"""Everything the peer-wire parser can say, as frozen, slotted dataclasses.

One module for all events, as h11 does it, so the inspector's exporters, the TUI and
the replayer match on the same types. ``type`` and ``id`` are the JSON contract's
names (DESIGN.md); ``size`` is the message's length prefix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Union

from .wire import HASH_HEAD_LEN, PIECE_HEAD_LEN, MessageId


@dataclass(frozen=True, slots=True)
class Handshake:
    reserved: bytes
    info_hash: bytes
    peer_id: bytes
    type: ClassVar[str] = "handshake"
    id: ClassVar[None] = None
    size: ClassVar[int] = 68


@dataclass(frozen=True, slots=True)
class KeepAlive:
    type: ClassVar[str] = "keepalive"
    id: ClassVar[None] = None
    size: ClassVar[int] = 0


@dataclass(frozen=True, slots=True)
class Choke:
    type: ClassVar[str] = "choke"
    id: ClassVar[int] = MessageId.CHOKE
    size: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class Unchoke:
    type: ClassVar[str] = "unchoke"
    id: ClassVar[int] = MessageId.UNCHOKE
    size: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class Interested:
    type: ClassVar[str] = "interested"
    id: ClassVar[int] = MessageId.INTERESTED
    size: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class NotInterested:
    type: ClassVar[str] = "not_interested"
    id: ClassVar[int] = MessageId.NOT_INTERESTED
    size: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class Have:
    index: int
    type: ClassVar[str] = "have"
    id: ClassVar[int] = MessageId.HAVE
    size: ClassVar[int] = 5


@dataclass(frozen=True, slots=True)
class Bitfield:
    """``bits``: each captured byte at its place (byte i is pieces 8i..8i+7), so a piece map
    drawn from it stays true after a loss; a hole with captured bytes after it is zeros
    there, and a tail the capture lacks is absent. ``missing`` counts the bytes not
    captured, ``filled`` those of them inside ``bits`` (as zeros)."""

    bits: bytes
    missing: int = 0
    filled: int = 0
    type: ClassVar[str] = "bitfield"
    id: ClassVar[int] = MessageId.BITFIELD

    @property
    def size(self) -> int:
        return 1 + len(self.bits) + self.missing - self.filled

    @property
    def count(self) -> int:
        """How many pieces the sender claims (in the captured bytes)."""
        return int.from_bytes(self.bits, "big").bit_count()


@dataclass(frozen=True, slots=True)
class Request:
    index: int
    begin: int
    length: int
    type: ClassVar[str] = "request"
    id: ClassVar[int] = MessageId.REQUEST
    size: ClassVar[int] = 13


@dataclass(frozen=True, slots=True)
class Piece:
    """A block; its bytes were streamed past, ``missing`` of them not captured.
    ``data`` holds them only when the parser was asked to keep payloads."""

    index: int
    begin: int
    length: int
    missing: int = 0
    data: bytes | None = field(default=None, repr=False, compare=False)
    type: ClassVar[str] = "piece"
    id: ClassVar[int] = MessageId.PIECE

    @property
    def size(self) -> int:
        return PIECE_HEAD_LEN + self.length


@dataclass(frozen=True, slots=True)
class Cancel:
    index: int
    begin: int
    length: int
    type: ClassVar[str] = "cancel"
    id: ClassVar[int] = MessageId.CANCEL
    size: ClassVar[int] = 13


@dataclass(frozen=True, slots=True)
class Port:
    port: int
    type: ClassVar[str] = "port"
    id: ClassVar[int] = MessageId.PORT
    size: ClassVar[int] = 3


@dataclass(frozen=True, slots=True)
class Suggest:
    index: int
    type: ClassVar[str] = "suggest"
    id: ClassVar[int] = MessageId.SUGGEST
    size: ClassVar[int] = 5


@dataclass(frozen=True, slots=True)
class HaveAll:
    type: ClassVar[str] = "have_all"
    id: ClassVar[int] = MessageId.HAVE_ALL
    size: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class HaveNone:
    type: ClassVar[str] = "have_none"
    id: ClassVar[int] = MessageId.HAVE_NONE
    size: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class Reject:
    index: int
    begin: int
    length: int
    type: ClassVar[str] = "reject"
    id: ClassVar[int] = MessageId.REJECT
    size: ClassVar[int] = 13


@dataclass(frozen=True, slots=True)
class AllowedFast:
    index: int
    type: ClassVar[str] = "allowed_fast"
    id: ClassVar[int] = MessageId.ALLOWED_FAST
    size: ClassVar[int] = 5


@dataclass(frozen=True, slots=True)
class Extended:
    """BEP 10 message. ``data`` is the bencoded body made JSON-safe (None if it was
    not bencoded); ``trailing`` counts raw bytes after it (ut_metadata pieces);
    ``missing`` counts body bytes the capture lacks (then ``data`` is None)."""

    ext_id: int
    ext_name: str | None
    data: object
    trailing: int
    size: int
    missing: int = 0
    metadata: bytes | None = field(default=None, repr=False, compare=False)  # a ut_metadata piece's bytes
    type: ClassVar[str] = "extended"
    id: ClassVar[int] = MessageId.EXTENDED


@dataclass(frozen=True, slots=True)
class HashRequest:
    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int
    type: ClassVar[str] = "hash_request"
    id: ClassVar[int] = MessageId.HASH_REQUEST
    size: ClassVar[int] = 1 + HASH_HEAD_LEN


@dataclass(frozen=True, slots=True)
class Hashes:
    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int
    hashes: tuple[bytes, ...]
    type: ClassVar[str] = "hashes"
    id: ClassVar[int] = MessageId.HASHES

    @property
    def size(self) -> int:
        return 1 + HASH_HEAD_LEN + 32 * len(self.hashes)


@dataclass(frozen=True, slots=True)
class HashReject:
    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int
    type: ClassVar[str] = "hash_reject"
    id: ClassVar[int] = MessageId.HASH_REJECT
    size: ClassVar[int] = 1 + HASH_HEAD_LEN


@dataclass(frozen=True, slots=True)
class Unknown:
    """A message id no BEP we know assigns; kept, not guessed at."""

    id: int
    size: int
    type: ClassVar[str] = "unknown"


# How much each kind of finding matters, as Wireshark's expert info grades it:
# "error", what a real peer would hang up on; "warning", what the capture lost
# (the bytes themselves may be fine) or what a peer should not do but tolerates;
# "note", a deviation real peers forgive.
SEVERITY: dict[str, str] = {
    "bad_protocol": "error",
    "oversize": "error",
    "malformed": "error",
    "bad_bencode": "error",
    "info_hash_mismatch": "error",
    "self_connection": "error",
    "hole": "warning",
    "truncated": "warning",
    "midstream": "warning",
    "resync": "warning",
    "mse_plaintext": "note",  # MSE's key exchange chose plaintext: decoding starts at the handshake after it
    "duplicate_peer_id": "error",
    "peer_id_mismatch": "error",
    "bencode_lenient": "note",
    "unnamed_extension": "note",
    "limit": "warning",  # a bound of inspector.limits was met: bytes skipped, not wrong
    "land": "note",
    # What a peer did wrong (inspector.conformance): errors a peer may hang up on,
    # warnings it usually tolerates, notes for what some clients do by habit.
    "request_while_choked": "error",
    "unrequested_piece": "error",
    "cancelled_piece": "note",
    "unrequested_reject": "error",
    "bad_index": "error",
    "bad_bitfield": "error",
    "second_bitfield": "warning",  # aria2 sends a fresh bitfield for many haves; libtorrent takes it
    "late_bitfield": "warning",
    "fast_without_bit": "error",
    "extended_without_bit": "error",
    "unannounced_extension": "error",
    "odd_request": "note",
    "before_handshake": "warning",
    "silence": "note",
    "bad_piece_hash": "error",
}


SEVERITIES = ("error", "warning", "note")
CONFORMANCE = frozenset((
    "request_while_choked", "unrequested_piece", "cancelled_piece", "unrequested_reject", "bad_index",
    "bad_bitfield", "second_bitfield", "late_bitfield", "fast_without_bit", "extended_without_bit",
    "unannounced_extension", "odd_request", "before_handshake", "silence", "bad_piece_hash"))


def severity_of(kind: str) -> str:
    """A kind's severity; a kind not in the table is taken as an error, never hidden."""
    return SEVERITY.get(kind, "error")


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a real peer would have hung up on, or forgiven, or that the capture lost.

    ``kind`` is one of SEVERITY's keys; ``severity`` follows from it unless given.
    """

    kind: str
    detail: str
    severity: str = ""
    type: ClassVar[str] = "finding"

    def __post_init__(self) -> None:
        if not self.severity:
            object.__setattr__(self, "severity", severity_of(self.kind))
        elif self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")


Message = Union[
    Handshake, KeepAlive, Choke, Unchoke, Interested, NotInterested, Have, Bitfield,
    Request, Piece, Cancel, Port, Suggest, HaveAll, HaveNone, Reject, AllowedFast,
    Extended, HashRequest, Hashes, HashReject, Unknown,
]
Event = Union[Message, Finding]

MESSAGE_TYPES: tuple[str, ...] = (
    "handshake", "keepalive", "choke", "unchoke", "interested", "not_interested",
    "have", "bitfield", "request", "piece", "cancel", "port", "suggest", "have_all",
    "have_none", "reject", "allowed_fast", "extended", "hash_request", "hashes",
    "hash_reject", "unknown",
)
