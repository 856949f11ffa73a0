"""uTorrent's peer ids may end their head without the closing '-' (a build letter there);
an id laid out that way whose version is unreadable is not taken for uTorrent.

Why: a mutation run found nothing pinning the difference between a framed id with an
unreadable version (still clearly the client: named, no version) and an unframed one
(no frame to trust: not identified).
"""
from __future__ import annotations

import pytest

from inspector.clients import identify

TAIL = b"0123456789ab"


@pytest.mark.parametrize("code, name", [(b"UT", "µTorrent"), (b"UM", "µTorrent Mac")], ids=["ut", "um"])
def test_framed_with_an_unreadable_version_is_named_without_one(code: bytes, name: str) -> None:
    assert identify(b"-" + code + b"!!!!-" + TAIL) == name


@pytest.mark.parametrize("code", [b"UT", b"UM"], ids=["ut", "um"])
def test_unframed_with_an_unreadable_version_is_not_identified(code: bytes) -> None:
    assert identify(b"-" + code + b"!!!!x" + TAIL) is None
