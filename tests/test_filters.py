"""The -Y filter compiler: its semantics, and hostile expressions (issue 10, item 9)."""
from __future__ import annotations

import itertools

import pytest

from conftest import REPO, run_btshark
from inspector.filters import MAX_DEPTH, FilterError, compile_filter

CASES = [("piece", 1), ("have", 2), ("request", 1), ("piece", 3)]


def kept(expression: str) -> list[tuple[str, int]]:
    keep = compile_filter(expression)
    return [(t, s) for t, s in CASES if keep(t, s)]


def test_precedence_and_negation():
    assert kept("piece || have && session == 2") == [("piece", 1), ("have", 2), ("piece", 3)]
    assert kept("(piece || have) && session != 2") == [("piece", 1), ("piece", 3)]
    assert kept("!piece") == [("have", 2), ("request", 1)]
    assert kept("!!piece") == kept("piece")
    assert kept("not not not piece") == kept("!piece")
    assert kept("type in {have request} or session == 3") == [("have", 2), ("request", 1), ("piece", 3)]


@pytest.mark.parametrize("expression", [
    "(" * 250 + "piece" + ")" * 250,
    "(" * (MAX_DEPTH + 1) + "piece" + ")" * (MAX_DEPTH + 1),
])
def test_deep_parentheses_are_refused_in_one_line(expression):
    with pytest.raises(FilterError, match=f"deeper than {MAX_DEPTH}"):
        compile_filter(expression)


def test_nesting_up_to_the_limit_works():
    depth = MAX_DEPTH
    assert kept("(" * depth + "have" + ")" * depth) == [("have", 2)]


def test_long_chains_and_many_negations_neither_recurse_nor_fail():
    assert kept("!" * 1000 + "piece") == kept("piece")
    assert kept("!" * 1001 + "piece") == kept("!piece")
    assert kept(" || ".join(["keepalive"] * 999 + ["have"])) == [("have", 2)]
    assert kept(" && ".join(["!keepalive"] * 1000)) == CASES


def test_a_session_id_too_large_is_an_error_not_a_traceback():
    with pytest.raises(FilterError, match="too large"):
        compile_filter("session == " + "9" * 5000)


@pytest.mark.parametrize("expression", ["(" * 250 + "piece" + ")" * 250, "session == " + "7" * 5000,
                                        " || ".join(["piece"] * 1000)])
def test_the_command_line_says_one_line(expression):
    run = run_btshark("read", REPO / "captures" / "aria2-to-libtorrent.pcap", "-Y", expression, "-c", "1")
    err = run.stderr.decode()
    assert "Traceback" not in err
    if " || " in expression:
        assert run.returncode == 0 and len(run.stdout.splitlines()) == 1
    else:
        assert run.returncode == 2 and err.count("\n") == 1 and err.startswith("btshark: error: ")


def test_every_small_expression_compiles_or_fails_cleanly():
    atoms = ["piece", "have", "(", ")", "!", "&&", "||", "session", "==", "2", "type", "in", "{", "}"]
    for n in range(1, 4):
        for combo in itertools.product(atoms, repeat=n):
            try:
                keep = compile_filter(" ".join(combo))
            except FilterError:
                continue
            keep("piece", 2)


@pytest.mark.parametrize("expression,says", [
    ("type ==", "ends too early"),
    ("type in have", "expected '{' after 'in'"),
    ("session == two", "session ids are numbers, not 'two'"),
    ("type == hve", "unknown message type 'hve'"),
    ("(have", "ends too early"),
    ("(have x", "missing ')'"),
    ("size == 3", "unknown field or message type 'size'"),
    ("type has have", "expected ==, != or in after 'type', got 'has'"),
    ("type < have", "at column 5"),
    ("have )", "unexpected ')' in filter 'have )'"),
    ("size == 3", "types: handshake, keepalive, choke, unchoke,"),
])
def test_each_error_says_what_is_wrong(expression, says):
    with pytest.raises(FilterError) as info:
        compile_filter(expression)
    assert says in str(info.value)


def test_session_ids_of_up_to_18_digits_are_numbers():
    """18 digits always fit a 64-bit id; more are refused (as the message says) before int()."""
    keep = compile_filter(f"session == {'9' * 18}")
    assert keep("have", int("9" * 18)) and not keep("have", 1)
    with pytest.raises(FilterError, match=r"session id 9{19}… is too large"):
        compile_filter(f"session == {'9' * 19}")
    with pytest.raises(FilterError, match=r"session id 9{20}… is too large"):
        compile_filter(f"session == {'9' * 40}")


def test_negations_pass_the_session_through():
    keep = compile_filter("!(session == 2) && !!(session in {2 3} || type == port)")
    assert [s for s in range(1, 5) if keep("have", s)] == [3]
    assert keep("port", 4) and not keep("port", 2)


def test_an_over_deep_filter_is_quoted_by_its_first_40_characters():
    text = "(" * (MAX_DEPTH + 1) + "have" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    assert repr(text[:40]) in str(info.value) and repr(text[:41]) not in str(info.value)


def test_type_not_equal():
    keep = compile_filter("type != have")
    assert not keep("have", 1) and keep("piece", 1)


def test_blanks_around_a_filter_are_ignored_and_columns_count_from_one():
    keep = compile_filter("  have   ")
    assert keep("have", 1) and not keep("piece", 1)
    with pytest.raises(FilterError, match=r"at column 1\b"):
        compile_filter("<")
    with pytest.raises(FilterError, match=r"^empty filter$"):
        compile_filter("   ")


def test_parentheses_depth_is_counted_back_down_after_each_group():
    """Many groups in a row, or deep nesting after a group, are within the limit."""
    assert compile_filter(" || ".join(["(have)"] * (MAX_DEPTH + 5)))("have", 1)
    deep = "(" * MAX_DEPTH + "have" + ")" * MAX_DEPTH
    assert compile_filter(f"(piece) || {deep}")("have", 1)
    with pytest.raises(FilterError, match="deeper than"):
        compile_filter(f"(piece) || ({deep})")
