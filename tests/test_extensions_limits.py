"""The bencode limits' bounds (``set_limits``, the command line's --max-bencode-* knobs)
and the pre-check that decides which bodies go to fastbencode.

Why: fastbencode has no depth limit, so a body may reach it only when counting its
``l`` and ``d`` bytes proves it cannot nest too deep; dictionaries count as much as lists.
A mutation run found the bounds of the knobs and the dictionary half of that count unpinned.
"""
from __future__ import annotations

import pytest

from inspector.extensions import DEPTH_CEILING, LimitError, bdecode, decode, set_limits
from test_extensions import limits, strict_calls  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def limits_put_back(limits: None) -> None:
    """Every test here changes the limits: test_extensions' fixture puts them back."""


@pytest.mark.parametrize("depth", [0, DEPTH_CEILING + 1], ids=["zero", "past-ceiling"])
def test_depth_limit_out_of_range_is_refused(depth: int) -> None:
    with pytest.raises(ValueError) as caught:
        set_limits(depth=depth)
    assert str(caught.value) == f"bencode depth limit {depth} not in 1..{DEPTH_CEILING}"


def test_depth_limit_of_one_level() -> None:
    set_limits(depth=1)
    assert bdecode(b"li1ei2ee") == ([1, 2], ())
    with pytest.raises(LimitError, match="depth limit of 1 levels"):
        bdecode(b"lli1eee")


def test_depth_limit_at_the_ceiling() -> None:
    set_limits(depth=DEPTH_CEILING)
    deep = b"l" * DEPTH_CEILING + b"e" * DEPTH_CEILING
    value, _ = bdecode(deep)
    for _ in range(DEPTH_CEILING - 1):
        (value,) = value
    assert value == []


@pytest.mark.parametrize("knob", ["size", "tokens"])
def test_size_and_token_limits_below_one_are_refused(knob: str) -> None:
    with pytest.raises(ValueError) as caught:
        set_limits(**{knob: 0})
    assert str(caught.value) == "bencode size and token limits must be at least 1"


def test_size_and_token_limits_of_one() -> None:
    set_limits(size=1, tokens=1)
    with pytest.raises(LimitError, match=r"--max-bencode-size 1\)"):
        decode(None, b"le")


def test_setting_one_limit_keeps_the_others() -> None:
    set_limits(size=100, depth=3, tokens=50)
    set_limits(depth=5)
    with pytest.raises(LimitError, match=r"above the bencode size limit \(--max-bencode-size 100\)"):
        decode(None, b"l" + b"i1e" * 40 + b"e")  # 122 bytes
    set_limits(size=200)
    with pytest.raises(LimitError, match="depth limit of 5 levels"):
        bdecode(b"l" * 6 + b"e" * 6)


@pytest.mark.parametrize("body", [b"d1:ad1:bd1:ci1eeee", b"d1:ali1ed1:bi2eeee"], ids=["dicts", "mixed"])
def test_nested_dictionaries_count_toward_the_depth(body: bytes, strict_calls: list[int]) -> None:
    set_limits(depth=2)
    with pytest.raises(LimitError, match="depth limit of 2 levels"):
        bdecode(body)
    assert strict_calls == []  # three levels: fastbencode, which has no depth limit, never sees it


def test_a_body_as_long_as_the_token_limit_goes_to_fastbencode(strict_calls: list[int]) -> None:
    set_limits(tokens=7)
    assert bdecode(b"lli1eee") == ([[1]], ())
    assert strict_calls == [7]
    assert bdecode(b"lli12eee") == ([[12]], ())  # eight bytes: the lenient decoder, same answer
    assert strict_calls == [7]
