"""Counts in words, for warnings and the TUI: "1 frame was", "2 frames were"."""
from __future__ import annotations


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def were(count: int) -> str:
    return "was" if count == 1 else "were"
