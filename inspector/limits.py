"""What a capture may make btshark hold: every bound in one place, each an option of ``read``.

Captures come from the wild, and some are made to hurt the tool reading them: a
flood of flows, a message that claims 16 MiB and never ends in each of forty
flows, a record of 255 MiB. Each bound here is checked *before* the memory is
taken, and hitting one is reported as a ``limit`` finding (or a capture warning)
that names the bound and its option; decoding goes on past it. The defaults are
far above anything a real client sends (see the README's table), so only a
hostile or broken capture meets them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .extensions import MAX_BENCODE_SIZE, MAX_DEPTH
from .wire import DEFAULT_MAX_LEN

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for one decode. Field -> ``read`` option: ``message`` -> ``--max-message`` etc."""

    message: int = DEFAULT_MAX_LEN  # a message's length prefix (BitTorrent clients use 16 MiB at most)
    ooo: int = 4 * MiB  # out-of-order bytes buffered per direction of a flow
    ooo_total: int = 256 * MiB  # out-of-order bytes buffered over all flows
    flows: int = 65536  # flows tracked at once (the least recently active eighth is evicted when full)
    partial_total: int = 64 * MiB  # bytes of unfinished messages (bitfields, extended, ...) over all flows
    bencode_depth: int = MAX_DEPTH  # nesting of an extended message's bencode
    bencode_size: int = MAX_BENCODE_SIZE  # an extended message's bencoded body
    findings: int = 1000  # findings kept per session (the rest are counted)
    record: int = 1 * MiB  # a capture record (tshark refuses records above 256 KiB)

    def option(self, field: str) -> str:
        """How a user sets ``field``: its option and current value, for a finding."""
        return f"--max-{field.replace('_', '-')} {getattr(self, field)}"


DEFAULT = Limits()

# ``read``'s options, in the order ``--help`` lists them.
OPTIONS: dict[str, str] = {
    "message": "Longest message length prefix decoded; longer ones are counted past.",
    "ooo": "Out-of-order bytes buffered per flow direction before the bytes missing before them are declared lost.",
    "ooo_total": "Out-of-order bytes buffered over all flows.",
    "flows": "Flows tracked at once; when full, the least recently active eighth is evicted.",
    "partial_total": "Bytes of unfinished messages buffered over all flows; a message that would pass it is skipped.",
    "bencode_depth": "Nesting depth of an extended message's bencode.",
    "bencode_size": "Size of an extended message's bencoded body; larger bodies are not decoded.",
    "findings": "Findings kept per session for --sessions; later ones are counted.",
    "record": "Largest capture record read; longer records are skipped with a warning.",
}


class Budget:
    """Bytes held for one purpose across all flows, against ``limit``; shared by reference."""

    __slots__ = ("used", "limit")

    def __init__(self, limit: int) -> None:
        self.used = 0
        self.limit = limit

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes if that stays within the limit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True


def parse_size(text: str) -> int:
    """``1048576``, ``1M``, ``64k``, ``2G`` (binary units) as a count of bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = units.get(value[-1:], 1)
    number = value[:-1] if scale > 1 else value
    if not number.isdigit():
        raise ValueError(f"{text!r} is not a size (a number, optionally with k, M or G)")
    return int(number) * scale

