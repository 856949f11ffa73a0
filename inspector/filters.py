"""Display filters (``-Y``, and the TUI's filter bar): tshark's language over btshark's fields.

``bt.index >= 3 && ip.src == 10.0.0.0/8``, ``piece``, ``bt.peer_id contains "-TR"``,
``tcp.port in {6881..6889}``, ``bt.ext.v matches "^uTorrent"``, ``not bt.finding``.

A filter is parsed once, by hand, into Python source for one function over a
``Record`` and compiled by Python itself: evaluating it is a few bytecodes per
message, with ``and``/``or`` short-circuiting natively. Literals never enter the
source; they are bound as constants, so no filter text is ever executed.

Semantics follow Wireshark's: a comparison on a field the message does not carry is
false (so ``X`` and ``not X`` split the messages in two); a field with several
values (``ip.addr``, ``port``, ``bt.extensions``) matches when any value does,
except ``!=``, which needs every value to differ; a bare field is true when the
message carries it (a bare boolean, ``encrypted``, when it is true).
"""
from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .clients import identify
from .events import MESSAGE_TYPES, SEVERITIES, SEVERITY
from .wire import reserved_names

Predicate = Callable[[tuple], bool]  # a Record (session, side, frame, ts, event) -> keep?

MAX_DEPTH = 64  # parentheses
GROUP_DEPTH = 8  # levels of parentheses written inline before a group becomes a function
MAX_DIGITS = 18  # digits (decimal or hex) of a number: a decimal one of 18 always fits 64 bits
_TYPES = frozenset(MESSAGE_TYPES) | {"finding"}
_OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", "<=": "<=", "le": "<=",
        ">": ">", "gt": ">", ">=": ">=", "ge": ">=", "contains": "contains", "matches": "matches", "~": "matches"}
_OP_LIST = "==, !=, <, <=, >, >=, contains, matches or in"


class FilterError(ValueError):
    """The filter expression is not valid: one line for the user, pointing at ``column`` (1-based).

    Its text is always printable (``_printable``): the CLI shows it as it is, unescaped."""

    def __init__(self, message: str, column: int | None = None, text: str = "") -> None:
        where = f"column {column} of {_excerpt(text, column)}: " if column is not None and text else ""
        super().__init__(_printable(where + message))
        self.reason, self.column = _printable(message), column


def _printable(text: str) -> str:
    """``text`` as typed, but what is not printable (a tab, a newline, ESC) escaped: one safe line,
    which the CLI shows as it is (a typed backslash-t and a tab then read alike; the column tells)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _excerpt(text: str, column: int, width: int = 30) -> str:
    """The filter quoted as typed, or for a long one the stretch around ``column``, elided with '…'."""
    if len(text) > 2 * width:
        start, end = max(0, column - 1 - width), column - 1 + width
        return ("…" if start else "") + _excerpt(text[start:end], 0) + ("…" if end < len(text) else "")
    return f"'{text}'"


@dataclass(frozen=True, slots=True)
class Field:
    """A filterable field: ``code`` is a Python expression over the record's parts
    (``s`` session, ``side``, ``frame``, ``ts``, ``e`` event) giving its value, or None
    when the message does not carry it; a ``multi`` field gives a tuple of values."""

    kind: str  # int, float, str, enum, bytes, addr, bool, any
    code: str
    help: str = ""  # for `btshark filters` and the TUI's help (a bt.ext.<key> field has none)
    multi: bool = False
    values: frozenset[str] = frozenset()  # an enum's names


_HS = "e.type == 'handshake'"
_PORTS = "(_ep(s)[2 * side + 1], _ep(s)[3 - 2 * side])"
_KINDS = frozenset(SEVERITY)


def _fields() -> dict[str, Field]:
    f = {
        "bt.type": Field("enum", "e.type", "message type (or finding)", values=_TYPES),
        "bt.id": Field("int", "getattr(e, 'id', None)", "wire message id"),
        "bt.size": Field("int", "getattr(e, 'size', None)", "length prefix (68 for a handshake)"),
        "bt.index": Field("int", "getattr(e, 'index', None)", "piece index (a hash message's: its hash index)"),
        "bt.begin": Field("int", "getattr(e, 'begin', None)", "block offset in its piece"),
        "bt.length": Field("int", "getattr(e, 'length', None)", "block length (a hash message's: hash count)"),
        "bt.pieces": Field("int", "(e.count if e.type == 'bitfield' else None)", "pieces a bitfield claims"),
        "bt.port": Field("int", "(e.port if e.type == 'port' else None)", "DHT port of a port message"),
        "bt.info_hash": Field("bytes", f"(e.info_hash if {_HS} else None)", "handshake info hash"),
        "bt.peer_id": Field("bytes", f"(e.peer_id if {_HS} else None)", "handshake peer id"),
        "bt.reserved": Field("bytes", f"(e.reserved if {_HS} else None)", "handshake reserved bytes"),
        "bt.client": Field("str", f"(_identify(e.peer_id) or '' if {_HS} else None)", "client named by the peer id"),
        "bt.extensions": Field("str", f"(tuple(_reserved_names(e.reserved)) if {_HS} else None)",
                               "names of the reserved bits set", multi=True),
        "bt.ext_id": Field("int", "(e.ext_id if e.type == 'extended' else None)", "extended message id"),
        "bt.ext_name": Field("str", "(e.ext_name if e.type == 'extended' else None)", "extended message name"),
        "bt.finding": Field("enum", "(e.kind if e.type == 'finding' else None)", "a finding's kind", values=_KINDS),
        "bt.finding.severity": Field("enum", "(e.severity if e.type == 'finding' else None)",
                                     "error, warning or note", values=frozenset(SEVERITIES)),
        "bt.finding.detail": Field("str", "(e.detail if e.type == 'finding' else None)", "a finding's text"),
        # Several values sender first, as tshark lists a packet's: -T fields prints them in this order.
        "ip.addr": Field("addr", "(_ep(s)[2 * side], _ep(s)[2 - 2 * side])", "either address", multi=True),
        "ip.src": Field("addr", "_ep(s)[2 * side]", "sender's address"),
        "ip.dst": Field("addr", "_ep(s)[2 - 2 * side]", "receiver's address"),
        "port": Field("int", _PORTS, "either port", multi=True),
        "tcp.port": Field("int", f"({_PORTS} if s.transport == 'tcp' else None)", "either TCP port", multi=True),
        "udp.port": Field("int", f"({_PORTS} if s.transport == 'utp' else None)", "either UDP port (uTP)",
                          multi=True),
        "session": Field("int", "s.id", "session id, as --sessions lists them"),
        "transport": Field("enum", "s.transport", "tcp or utp", values=frozenset(("tcp", "utp"))),
        "side": Field("enum", "'ab'[side]", "sender: a (the opener) or b", values=frozenset("ab")),
        "encrypted": Field("bool", "s.encrypted", "session uses MSE/PE"),
        "frame": Field("int", "frame", "number of the frame that completed the message"),
        "ts": Field("float", "ts", "capture time, epoch seconds"),
        "time": Field("float", "(ts - _first(ts))", "seconds since the first frame"),
    }
    for proto in ("tcp", "udp"):
        want = "tcp" if proto == "tcp" else "utp"
        f[f"{proto}.srcport"] = Field("int", f"(_ep(s)[2 * side + 1] if s.transport == '{want}' else None)",
                                      f"sender's {proto.upper()} port")
        f[f"{proto}.dstport"] = Field("int", f"(_ep(s)[3 - 2 * side] if s.transport == '{want}' else None)",
                                      f"receiver's {proto.upper()} port")
    f["type"] = f["bt.type"]  # the first filters' names, kept
    return f


FIELDS: dict[str, Field] = _fields()
EXT_PREFIX = "bt.ext."  # bt.ext.<key>[.<key>...]: the decoded extended body


# -- tokens --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "op", "word", "string"
    text: str  # the word, the operator, or the string's decoded value
    column: int  # 1-based
    raw: str = ""  # a string's source, quotes included

    def shown(self) -> str:
        return self.raw or self.text


_SPACE = re.compile(r"\s+")
_OP_TOKEN = re.compile(r"&&|\|\||[(){},]|!(?![=<>~&|])|[=!<>~&|]+")  # "!!x": two negations
_WORD = re.compile(r"[^\s\"=!<>~&|(){},]+")
_VALID_OPS = frozenset(("==", "!=", "<", "<=", ">", ">=", "!", "&&", "||", "~", "(", ")", "{", "}", ","))
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0", "a": "\a"}


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, end = 0, len(text)
    while pos < end:
        space = _SPACE.match(text, pos)
        if space:
            pos = space.end()
            continue
        if text[pos] == '"':
            value, after = _string(text, pos)
            tokens.append(Token("string", value, pos + 1, text[pos:after]))
            pos = after
            continue
        # One of the two matches: every character but space and '"' starts an operator or a word.
        match = _OP_TOKEN.match(text, pos) or _WORD.match(text, pos)
        piece = match.group()  # type: ignore[union-attr]
        kind = "op" if match.re is _OP_TOKEN else "word"
        tokens.append(Token(kind, piece, pos + 1))
        pos = match.end()
    if not tokens:
        raise FilterError("empty filter")
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    """A double-quoted string from ``start``: its value and the position after it."""
    out, pos = [], start + 1
    while pos < len(text):
        ch = text[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch != "\\":
            out.append(ch)
            pos += 1
            continue
        code = text[pos + 1:pos + 2]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            pos += 2
        elif code == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[pos + 2:pos + 4]):
            out.append(chr(int(text[pos + 2:pos + 4], 16)))
            pos += 4
        else:
            raise FilterError(f"unknown escape '\\{code}' in a string (known: \\\\ \\\" \\n \\t \\r \\0 \\xNN)", pos + 1)
    raise FilterError("a string is not closed (missing '\"')", start + 1)


# -- the parser --------------------------------------------------------------------------

class _Compiler:
    """Recursive descent over the tokens, writing Python source as it goes.

    Chains are kept as flat lists and negations counted, never nested: a hostile filter
    of a thousand terms or "!"s must not recurse once per term."""

    def __init__(self, tokens: list[Token], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0
        self.depth = 0
        self.consts: dict[str, object] = {}
        self.helpers: list[str] = []  # source of the functions deep groups became
        self.fields: set[str] = set()  # what the filter reads ("bt.type" for a bare message type)

    # helpers

    def error(self, message: str, token: Token | None = None) -> FilterError:
        column = token.column if token is not None else len(self.text.rstrip()) + 1
        return FilterError(message, column, self.text)

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token.kind != "string" and token.text in texts

    def take(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise self.error(f"the filter ends too early: expected {what}")
        self.pos += 1
        return token

    def const(self, value: object) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    # grammar

    def expression(self) -> str:
        terms = [self.conjunction()]
        while self.at("||", "or"):
            self.pos += 1
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"

    def conjunction(self) -> str:
        terms = [self.negation()]
        while self.at("&&", "and"):
            self.pos += 1
            terms.append(self.negation())
        return terms[0] if len(terms) == 1 else "(" + " and ".join(terms) + ")"

    def negation(self) -> str:
        flips = 0
        while self.at("!", "not"):
            self.pos += 1
            flips += 1
        inner = self.atom()
        return f"(not {inner})" if flips % 2 else inner

    def atom(self) -> str:
        token = self.take("a field, a message type or '('")
        if token.kind == "op" and token.text == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"parentheses nest deeper than {MAX_DEPTH}", token)
            inner = self.expression()
            close = self.peek()
            if close is None:
                raise self.error(f"the filter ends too early: missing ')' for the '(' at column {token.column}")
            if not self.at(")"):
                raise self.error(f"expected ')' or an operator (and, or), got '{close.shown()}'", close)
            self.pos += 1
            self.depth -= 1
            if (self.depth + 1) % GROUP_DEPTH:
                return inner
            # Every GROUP_DEPTH levels the group becomes a function of its own: Python refuses
            # source nested more than 200 parentheses deep, and each level here writes a few.
            helper = f"_g{len(self.helpers)}"
            self.helpers.append(f"def {helper}(s, side, frame, ts, e):\n    return {inner}\n")
            return f"{helper}(s, side, frame, ts, e)"
        if token.kind != "word":
            raise self.error(f"expected a field, a message type or '(', got '{token.shown()}'", token)
        name = token.text
        if name in _TYPES and not self._comparison_follows():
            self.fields.add("bt.type")
            return f"(e.type == {self.const(name)})"  # a bare message type (port: the message, not the field)
        try:
            field = _field(name, self.const,
                           f": it takes no comparison (bt.type == {name} is the same as {name} alone)")
        except FilterError as exc:
            raise self.error(exc.reason, token) from None
        self.fields.add("bt.type" if name == "type" else name)
        return self.test(name, field)

    def test(self, name: str, field: Field) -> str:
        op_token = self.peek()
        if op_token is not None and op_token.kind != "string" and op_token.text == "not" and self._next_is_in():
            self.pos += 2
            return f"(not {self.membership(name, field)})"
        if op_token is None or op_token.kind == "string" or (op_token.text not in _OPS and op_token.text != "in"):
            if op_token is not None and op_token.kind == "op" and op_token.text not in _VALID_OPS:
                raise self.error(f"expected {_OP_LIST} after {name}, got '{op_token.text}'", op_token)
            if op_token is not None and op_token.kind != "op" and op_token.text not in ("and", "or"):
                raise self.error(f"expected {_OP_LIST}, or and/or, after {name}, got '{op_token.shown()}'",
                                 op_token)
            return self.exists(field)
        self.pos += 1
        if op_token.text == "in":
            return self.membership(name, field)
        op = _OPS[op_token.text]
        value_token = self.take(f"a value after '{op_token.text}'")
        return self.compare(name, field, op, op_token, value_token)

    def _comparison_follows(self) -> bool:
        token = self.peek()
        if token is None or token.kind == "string":
            return False
        return token.text in _OPS or token.text == "in" or (token.text == "not" and self._next_is_in())

    def _next_is_in(self) -> bool:
        after = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
        return after is not None and after.kind == "word" and after.text == "in"

    def exists(self, field: Field) -> str:
        if field.kind == "bool" or field.multi:  # a true boolean; some value at all
            return f"bool({field.code})"
        return f"({field.code} is not None)"

    def compare(self, name: str, field: Field, op: str, op_token: Token, token: Token) -> str:
        kind = field.kind
        if token.kind == "op":
            raise self.error(f"expected a value for {name}, got '{token.text}'", token)
        if kind == "any":
            if re.fullmatch(r"-?[0-9]{19,}", token.text) and token.kind == "word":
                raise self.error(f"the number {_cut(token.text, 20)} is too large", token)
            literal = self.const(self.regex(token) if op == "matches" else _loose(token))
            return f"_dyn({field.code}, {self.const(op)}, {literal})"
        if op in ("contains", "matches") and kind not in ("str", "enum", "bytes"):
            raise self.error(f"{name} is {_ARTICLE[kind]}; {op_token.text} needs a text or byte-string field",
                             op_token)
        if op not in ("==", "!=") and kind == "bool":
            raise self.error(f"{name} is true or false; only == and != compare it", op_token)
        if op == "matches":
            pattern = self.regex(token)
            test = "_search({x}, " + self.const(pattern) + ")"
        elif op == "contains":
            needle = self.value(name, field, token, contains=True)
            test = "(" + self.const(needle) + " in {x})"
        else:
            value = self.value(name, field, token)
            if kind == "addr":
                test = self.address_test(op, op_token, value)
            elif kind == "enum" and op not in ("==", "!="):
                raise self.error(f"{name} names a kind, it has no order: use ==, !=, in or contains", op_token)
            else:
                test = "({x} " + op + " " + self.const(value) + ")"
        return self._apply(field, test, negative=op == "!=")

    def address_test(self, op: str, op_token: Token, value: object) -> str:
        if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            if op not in ("==", "!="):
                raise self.error(f"a network (CIDR) only takes == or != (or in), not {op_token.text}", op_token)
            test = "_in_nets({x}, " + self.const((value,)) + ")"
            return test if op == "==" else f"(not {test})"
        return "(_akey({x}) " + op + " " + self.const(_akey(value)) + ")"

    def _apply(self, field: Field, test: str, *, negative: bool = False) -> str:
        """``test`` (over ``{x}``) on the field's value: false when it is absent; for a
        multi-valued field, any value (``negative``: every value)."""
        if field.multi:
            check = "all" if negative else "any"
            return f"(bool(_vs := {field.code}) and {check}({test.format(x='_x')} for _x in _vs))"
        # One name serves every field: each test reads its value right after binding it.
        return f"((_v := {field.code}) is not None and {test.format(x='_v')})"

    def membership(self, name: str, field: Field) -> str:
        token = self.peek()
        if field.kind == "bool":
            raise self.error(f"{name} is true or false; 'in' needs a set of values", token)
        if token is not None and token.kind == "word" and field.kind == "addr":
            self.pos += 1  # ip.addr in 10.0.0.0/8: one network, no braces
            value = self.value(name, field, token)
            return self._apply(field, self.address_test("==", token, value))
        opening = self.take("'{'")
        if opening.text != "{" or opening.kind != "op":
            raise self.error(f"expected '{{' after 'in', got '{opening.shown()}'", opening)
        exact: list[object] = []
        spans: list[tuple[object, object]] = []
        while True:
            token = self.take("a value or '}'")
            if token.kind == "op" and token.text == "}":
                break
            if token.kind == "op" and token.text == ",":
                continue
            if token.kind == "word" and ".." in token.text and field.kind in ("int", "float", "any"):
                low_text, high_text = token.text.split("..", 1)
                ends = Token("word", low_text, token.column), Token("word", high_text, token.column + len(low_text) + 2)
                low, high = (_loose(end) if field.kind == "any" else self.value(name, field, end) for end in ends)
                if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
                    raise self.error(f"a range needs numbers at both ends, not '{token.text}'", token)
                if low > high:
                    raise self.error(f"the range {token.text} is empty (its start is after its end)", token)
                spans.append((low, high))
            elif field.kind == "any":
                if token.kind == "op":
                    raise self.error(f"expected a value for {name}, got '{token.text}'", token)
                exact.append(_loose(token))
            else:
                exact.append(self.value(name, field, token))
        if not exact and not spans:
            raise self.error("an empty set '{}' matches nothing", opening)
        if field.kind == "any":
            return f"_dyn({field.code}, 'in', {self.const((tuple(exact), tuple(spans)))})"
        if field.kind == "addr":
            return self._apply(field, "_in_nets({x}, " + self.const(tuple(exact)) + ")")
        hashable = frozenset(exact)
        if not spans:
            return self._apply(field, "({x} in " + self.const(hashable) + ")")
        return self._apply(field, "_in_spans({x}, " + self.const(hashable) + ", " + self.const(tuple(spans)) + ")")

    # values

    def regex(self, token: Token) -> re.Pattern:
        if token.kind != "string":
            raise self.error(f"matches needs a quoted regular expression, got '{token.shown()}'", token)
        try:
            return re.compile(token.text, re.IGNORECASE | re.DOTALL)
        except re.error as exc:
            raise self.error(f"not a regular expression: {exc}", token) from None

    def value(self, name: str, field: Field, token: Token, *, contains: bool = False) -> object:
        kind, text = field.kind, token.text
        if token.kind == "op":
            raise self.error(f"expected a value for {name}, got '{text}'", token)
        if kind in ("int", "float"):
            if token.kind == "string":
                raise self.error(f"{name} is a number; {token.shown()} is text", token)
            return self.number(text, token, floats=kind == "float")
        if kind == "bool":
            if text in ("1", "true", "True", "TRUE"):
                return True
            if text in ("0", "false", "False", "FALSE"):
                return False
            raise self.error(f"{name} is true or false (1 or 0), not '{token.shown()}'", token)
        if kind == "enum":
            if contains:
                return text
            if text not in field.values:
                near = difflib.get_close_matches(text, sorted(field.values), n=1)
                hint = f" (did you mean {near[0]}?)" if near else f" (one of: {', '.join(sorted(field.values))})"
                raise self.error(f"{name} has no value '{text}'{hint}", token)
            return text
        if kind == "str":
            return text
        if kind == "bytes":
            if token.kind == "string":
                return _encode_text(text)
            data = _hex_bytes(text)
            if data is None:
                raise self.error(f"{name} is a byte string: hex bytes like 5a:69:0f (or \"text\"), "
                                 f"not '{text}'", token)
            return data
        if kind == "addr":
            try:
                if "/" in text:
                    return ipaddress.ip_network(text, strict=False)
                return ipaddress.ip_address(text)
            except ValueError:
                raise self.error(f"{name} is an IP address: 10.0.0.1, ::1, or a network like 10.0.0.0/8, "
                                 f"not '{token.shown()}'", token) from None
        raise AssertionError(kind)  # pragma: no cover

    def number(self, text: str, token: Token, *, floats: bool) -> int | float:
        hexadecimal = text[:2] in ("0x", "0X")
        digits = text[2:] if hexadecimal else text
        if len(digits) > MAX_DIGITS and re.fullmatch(r"[0-9a-fA-F]+" if hexadecimal else r"[0-9]+", digits):
            raise self.error(f"the number {_cut(text, 20)} is too large", token)
        try:
            if hexadecimal and re.fullmatch(r"[0-9a-fA-F]+", digits):  # no sign, no "_" (which int() takes)
                return int(digits, 16)
            if re.fullmatch(r"[0-9]+", text):
                return int(text)
            if floats and re.fullmatch(r"[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+", text):
                return float(text)
        except ValueError:
            pass
        what = "a number (decimal, 0x hex" + (", or with a fraction)" if floats else ")")
        raise self.error(f"expected {what}, got '{text}'", token)


_ARTICLE = {"int": "a number", "float": "a number", "addr": "an address", "bool": "true or false"}


def _unknown(name: str) -> str:
    known = sorted(set(FIELDS) | _TYPES)
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    hint = f"; did you mean {near[0]}?" if near else "; see `btshark filters` for the fields"
    return f"unknown field or message type '{_cut(name)}'{hint}"


def _cut(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width] + "…"


def _loose(token: Token) -> object:
    """A literal for a field whose type only the data knows (``bt.ext.*``): number or text."""
    if token.kind == "string":
        return token.text
    text = token.text
    if re.fullmatch(r"-?[0-9]{1,18}", text):
        return int(text)
    if re.fullmatch(r"0[xX][0-9a-fA-F]{1,16}", text):
        return int(text, 16)
    return text


def _encode_text(text: str) -> bytes:
    """Text against bytes (a peer id): one byte a character, as peer ids are shown; UTF-8 beyond Latin-1."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


_HEX_SEP = re.compile(r"[0-9a-fA-F]{2}(?:[:.\-][0-9a-fA-F]{2})*")


def _hex_bytes(text: str) -> bytes | None:
    if _HEX_SEP.fullmatch(text):
        return bytes.fromhex(re.sub(r"[:.\-]", "", text))
    if len(text) % 2 == 0 and re.fullmatch(r"[0-9a-fA-F]+", text):
        return bytes.fromhex(text)
    return None


# -- what the compiled function calls --------------------------------------------------------

def _parse_endpoint(addr: str) -> tuple[object, int | None]:
    host, _, port = addr.rpartition(":")
    try:
        ip: object = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    return ip, int(port) if port.isdigit() else None


def _akey(ip: object) -> tuple[int, int]:
    return (ip.version, int(ip)) if ip is not None else (0, 0)  # type: ignore[attr-defined]


def _in_nets(ip: object, values: tuple) -> bool:
    if ip is None:
        return False
    for v in values:
        if (ip in v) if isinstance(v, (ipaddress.IPv4Network, ipaddress.IPv6Network)) else ip == v:
            return True
    return False


def _in_spans(x: object, exact: frozenset, spans: tuple) -> bool:
    return x in exact or any(low <= x <= high for low, high in spans)  # type: ignore[operator]


def _search(x: object, pattern: re.Pattern) -> bool:
    if isinstance(x, bytes):
        x = x.decode("latin-1")
    return pattern.search(x) is not None  # type: ignore[arg-type]


def _ext(e: object, keys: tuple[str, ...]) -> object:
    if e.type != "extended":  # type: ignore[attr-defined]
        return None
    return _dig(e.data, keys)  # type: ignore[attr-defined]


def _dig(value: object, keys: tuple[str, ...]) -> object:
    """The value at ``keys`` in nested dictionaries. A key may hold dots itself (BEP 11's
    ``added.f``), so at each level the parts are tried joined, longest first:
    ``bt.ext.added.f`` is the key ``added.f``, ``bt.ext.m.ut_pex`` the key ``ut_pex`` in ``m``."""
    if not keys:
        return value
    if not isinstance(value, dict):
        return None
    for n in range(len(keys), 0, -1):
        key = ".".join(keys[:n])
        if key in value:
            found = _dig(value[key], keys[n:])
            if found is not None:
                return found
    return None


def _dyn(value: object, op: str, literal: object) -> bool:
    """A comparison whose types only the data knows: a list matches when any item does
    (``!=``: every item), a dictionary ``contains`` its keys; mismatched types are false."""
    if value is None:
        return False
    if isinstance(value, list):
        if not value:
            return False
        if op == "!=":
            return all(_dyn_one(v, op, literal) for v in value)
        return any(_dyn_one(v, op, literal) for v in value)
    return _dyn_one(value, op, literal)


def _dyn_one(value: object, op: str, literal: object) -> bool:
    if op == "!=":  # present, and not equal (a value of another type is not equal)
        return not _dyn_one(value, "==", literal)
    if op == "in":
        exact, spans = literal  # type: ignore[misc]
        return (value in exact or (isinstance(value, (int, float))
                                   and any(low <= value <= high for low, high in spans)))
    if op == "matches":
        return isinstance(value, str) and literal.search(value) is not None  # type: ignore[attr-defined]
    if op == "contains":
        if isinstance(value, dict):
            return str(literal) in value
        return isinstance(value, str) and str(literal) in value
    numeric = isinstance(value, (int, float))
    if numeric != isinstance(literal, (int, float)) or isinstance(value, (dict, list)):
        return False
    return _COMPARE[op](value, literal)


_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "==": lambda a, b: a == b, "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


def compile_filter(text: str, first_ts: Callable[[], float | None] | None = None) -> Predicate:
    """``text`` as a function ``keep(record) -> bool``; ``first_ts`` gives the capture's
    first frame time for ``time`` (unknown: the message's own, so ``time`` is 0)."""
    try:
        tokens = _tokenize(text)
    except FilterError as exc:
        raise FilterError(exc.reason, exc.column, text) from None
    compiler = _Compiler(tokens, text)
    body = compiler.expression()
    if compiler.pos != len(tokens):
        extra = tokens[compiler.pos]
        if extra.kind == "op" and extra.text == ")":
            raise compiler.error("unexpected ')': no '(' is open", extra)
        raise compiler.error(f"expected and, or or the end of the filter, got '{extra.shown()}'", extra)
    namespace = {**_runtime(first_ts), **compiler.consts}
    source = "".join(compiler.helpers) + f"def keep(r):\n    s, side, frame, ts, e = r\n    return bool({body})\n"
    exec(compile(source, "<filter>", "exec"), namespace)  # noqa: S102 - source built from our own templates
    keep = namespace["keep"]
    keep.source = source  # type: ignore[attr-defined]
    keep.fields = frozenset(compiler.fields)  # type: ignore[attr-defined]  # the TUI skips rebuilding the rest
    return keep  # type: ignore[return-value]


def _field(name: str, bind: Callable[[object], str], type_hint: str) -> Field:
    """The field ``name`` is (``bt.ext.<key>``: made here, its keys bound as a constant by
    ``bind``); FilterError, without a column, when it is none (``type_hint`` follows the
    message for a message type's name)."""
    field = FIELDS.get(name)
    if field is not None:
        return field
    if name.startswith(EXT_PREFIX) and len(name) > len(EXT_PREFIX):
        keys = tuple(name[len(EXT_PREFIX):].split("."))
        if "" in keys:
            raise FilterError(f"'{name}' has an empty key")
        return Field("any", f"_ext(e, {bind(keys)})")
    if name in _TYPES:
        raise FilterError(f"{name} is a message type, not a field{type_hint}")
    raise FilterError(_unknown(name))


def compile_columns(names: Sequence[str], first_ts: Callable[[], float | None] | None = None
                    ) -> Callable[[tuple], tuple]:
    """``-T fields -e``: one compiled function giving a record's values of the fields
    ``names``, None where the message lacks one; FilterError for a name that is no field."""
    consts: dict[str, object] = {}

    def bind(value: object) -> str:
        const = f"_c{len(consts)}"
        consts[const] = value
        return const

    codes = [_field(name, bind, " (-e bt.type gives each message's)").code for name in names]
    namespace = {**_runtime(first_ts), **consts}
    source = "def row(r):\n    s, side, frame, ts, e = r\n    return (" + "".join(f"{c}, " for c in codes) + ")\n"
    exec(compile(source, "<fields>", "exec"), namespace)  # noqa: S102 - source built from the field table
    return namespace["row"]  # type: ignore[return-value]


def _runtime(first_ts: Callable[[], float | None] | None) -> dict[str, object]:
    """What the fields' code calls, for one compiled function (its own address cache)."""
    endpoints: dict[object, tuple] = {}

    def _ep(session: object) -> tuple:
        cached = endpoints.get(session)
        if cached is None:
            a, b = (side.addr for side in session.sides)  # type: ignore[attr-defined]
            cached = endpoints[session] = (*_parse_endpoint(a), *_parse_endpoint(b))
        return cached

    def _first(ts: float) -> float:
        first = first_ts() if first_ts is not None else None
        return ts if first is None else first

    return {"_ep": _ep, "_first": _first, "_identify": identify, "_reserved_names": reserved_names,
            "_akey": _akey, "_in_nets": _in_nets, "_in_spans": _in_spans, "_search": _search, "_ext": _ext,
            "_dyn": _dyn}


def field_help() -> list[tuple[str, str, str]]:
    """(name, type, meaning) for every field, for ``btshark filters`` and the TUI's help."""
    names = {"int": "number", "float": "number", "str": "text", "enum": "name", "bytes": "bytes",
             "addr": "address", "bool": "boolean"}
    rows = [(name, names[f.kind] + (" (several)" if f.multi else ""), f.help)
            for name, f in FIELDS.items() if name != "type"]
    rows.append((EXT_PREFIX + "<key>[.<key>]", "any", "a key of the decoded extended body (bt.ext.v, bt.ext.m.ut_pex, "
                                                      "bt.ext.added.f: a key may hold dots)"))
    return rows
