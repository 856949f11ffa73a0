"""Display filters (``-Y``), for now over message type and session.

A small expression language in tshark's spirit: ``piece``, ``type == request``,
``session == 2``, ``type in {have bitfield}``, combined with ``&&``/``and``,
``||``/``or``, ``!``/``not`` and parentheses.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from .events import MESSAGE_TYPES

Predicate = Callable[[str, int], bool]  # (type, session id) -> keep?

FIELDS = ("type", "session")
_TOKEN = re.compile(r"\s*(==|!=|&&|\|\||[!(){}]|[A-Za-z_][A-Za-z0-9_.]*|\d+)")
_TYPES = frozenset(MESSAGE_TYPES) | {"finding"}
MAX_DEPTH = 64  # parentheses


class FilterError(ValueError):
    """The filter expression is not valid (message is one line, for the user)."""


def compile_filter(text: str) -> Predicate:
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    predicate = parser.expression()
    if parser.pos != len(tokens):
        raise FilterError(f"unexpected {tokens[parser.pos]!r} in filter {text!r}")
    return predicate


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise FilterError(f"cannot read filter {text!r} at column {pos + 1}")
        tokens.append(match.group(1))
        pos = match.end()
    if not tokens:
        raise FilterError("empty filter")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise FilterError(f"filter {self.text!r} ends too early")
        self.pos += 1
        return token

    # Chains are kept as flat lists and negations counted, never nested: a hostile
    # filter of a thousand terms or "!"s must not recurse once per term.

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() in ("||", "or"):
            self.take()
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda t, s: any(p(t, s) for p in terms)

    def conjunction(self) -> Predicate:
        terms = [self.negation()]
        while self.peek() in ("&&", "and"):
            self.take()
            terms.append(self.negation())
        if len(terms) == 1:
            return terms[0]
        return lambda t, s: all(p(t, s) for p in terms)

    def negation(self) -> Predicate:
        flips = 0
        while self.peek() in ("!", "not"):
            self.take()
            flips += 1
        inner = self.atom()
        return (lambda t, s: not inner(t, s)) if flips % 2 else inner

    def atom(self) -> Predicate:
        token = self.take()
        if token == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError(f"filter {self.text[:40]!r}… nests parentheses deeper than {MAX_DEPTH}")
            inner = self.expression()
            if self.take() != ")":
                raise FilterError(f"missing ')' in filter {self.text!r}")
            self.depth -= 1
            return inner
        if token in _TYPES:
            return lambda t, s: t == token
        if token not in FIELDS:
            raise FilterError(f"unknown field or message type {token!r} (fields: type, session; types: {', '.join(MESSAGE_TYPES)})")
        op = self.take()
        if op == "in":
            values = self.value_set(token)
            return (lambda t, s: t in values) if token == "type" else (lambda t, s: s in values)
        if op not in ("==", "!="):
            raise FilterError(f"expected ==, != or in after {token!r}, got {op!r}")
        value = self.value(token)
        equal = (lambda t, s: t == value) if token == "type" else (lambda t, s: s == value)
        return equal if op == "==" else (lambda t, s: not equal(t, s))

    def value_set(self, field: str) -> frozenset:
        if self.take() != "{":
            raise FilterError(f"expected '{{' after 'in' in filter {self.text!r}")
        values = []
        while self.peek() != "}":
            values.append(self.value(field))
        self.take()
        return frozenset(values)

    def value(self, field: str) -> str | int:
        token = self.take()
        if field == "session":
            if not token.isdigit():
                raise FilterError(f"session ids are numbers, not {token!r}")
            if len(token) > 18:
                raise FilterError(f"session id {token[:20]}… is too large")
            return int(token)
        if token not in _TYPES:
            raise FilterError(f"unknown message type {token!r}")
        return token
