"""Counts and sizes in words, for warnings, ``--stats`` and the TUI: "1 frame was", "1.5 KiB"."""
from __future__ import annotations


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def were(count: int) -> str:
    return "was" if count == 1 else "were"


def human_bytes(n: float) -> str:
    """Bytes in binary units: whole bytes below 1 KiB, then one decimal (``1.5 KiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"
