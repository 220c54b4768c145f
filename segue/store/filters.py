"""Parse the run-search filter language into a small tree; no SQL, no I/O.

The language is MLflow's, plus ``or`` and parentheses::

    (metrics.acc >= 0.9 or metrics.f1 > 0.8) and params.model IN ('rf', 'lr')
    tags.note LIKE 'base%' and status = 'FINISHED' and tags.owner IS NOT NULL

The store turns the tree into SQL; this module only checks that each comparison makes sense
for its key (metrics take numbers, tags take strings, ...) and says where the text is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from segue.errors import InvalidArgument

__all__ = [
    "BoolOp",
    "Comparison",
    "Expr",
    "Kind",
    "OrderKey",
    "format_filter",
    "format_order",
    "parse_filter",
    "parse_order_by",
]

Kind = Literal["metric", "param", "tag", "attribute"]


@dataclass(frozen=True)
class Comparison:
    """One ``key op value`` test on a run.

    ``key`` is canonical (``run_name`` becomes ``name``), ``op`` is upper-case (``==`` becomes
    ``=``, ``<>`` becomes ``!=``), and ``value`` is a float for a number literal, a str for a
    string, a tuple for IN and NOT IN, and None for IS NULL and IS NOT NULL. A float compared
    with a param means a numeric comparison of the param's value.
    """

    kind: Kind
    key: str
    op: str
    value: str | float | tuple[str | float, ...] | None


@dataclass(frozen=True)
class BoolOp:
    """Two or more operands joined by one operator; nested same operators are flattened."""

    op: Literal["and", "or"]
    operands: tuple[Expr, ...]


Expr = Comparison | BoolOp


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` item: a key and its direction."""

    kind: Kind
    key: str
    descending: bool


_PREFIXES: dict[str, Kind] = {
    **dict.fromkeys(("metrics", "metric"), "metric"),
    **dict.fromkeys(("params", "param"), "param"),
    **dict.fromkeys(("tags", "tag"), "tag"),
    **dict.fromkeys(("attributes", "attribute", "attr"), "attribute"),
}
_VALID_ATTRIBUTES = ("status", "name", "run_id", "user", "start_time", "end_time", "experiment")
_ATTRIBUTES = {key: key for key in _VALID_ATTRIBUTES} | {
    "run_name": "name",
    "id": "run_id",
    "user_id": "user",
}
_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
_KEYWORDS = {"and", "or", "in", "not", "like", "ilike", "is", "null", "asc", "desc"}

_NUMERIC = frozenset({"=", "!=", "<", "<=", ">", ">="})
_EQUALITY = frozenset({"=", "!="})
_LIST = frozenset({"IN", "NOT IN"})
_STRING = _EQUALITY | _LIST | {"LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"}
_NONE: frozenset[str] = frozenset()

# What each key accepts: (ops taking a number, ops taking a string, IS [NOT] NULL allowed, why).
_RULES: dict[str, tuple[frozenset[str], frozenset[str], bool, str]] = {
    "metric": (_NUMERIC | _LIST, _NONE, True, "metrics compare with numbers"),
    "param": (_NUMERIC | _LIST, _STRING, True, "params compare with strings or numbers"),
    "tag": (_NONE, _STRING, True, "tags compare with strings"),
    "status": (_NONE, _EQUALITY | _LIST, False, "status compares with =, !=, IN or NOT IN"),
    "start_time": (_NUMERIC, _NONE, False, "start_time compares with epoch milliseconds"),
    "end_time": (_NUMERIC, _NONE, True, "end_time compares with epoch milliseconds"),
    **{
        key: (_NONE, _STRING, False, f"{key} compares with strings")
        for key in ("name", "run_id", "user", "experiment")
    },
}

_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_IDENT = re.compile(r"[^\W\d][\w.\-/:]*")
_OPERATORS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
_MAX_DEPTH = 50  # nested parentheses; keeps recursion far below Python's limit


@dataclass(frozen=True)
class _Token:
    kind: str  # ident, number, string, backtick, op, "(", ")", ",", end
    text: str  # as written
    value: str | float
    pos: int
    end: int


def _error(what: str, text: str, pos: int, message: str, end: int | None = None) -> InvalidArgument:
    if pos >= len(text):
        where = f"at position {pos} (the end)"
    else:
        near = text[pos : min(end, pos + 30)] if end is not None else text[pos : pos + 20]
        where = f"at position {pos} near {near.rstrip()!r}"
    return InvalidArgument(" ".join(f"invalid {what} {where}: {message}".splitlines()))


def _tokenize(text: str, what: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(_Token(ch, ch, ch, i, i + 1))
            i += 1
        elif ch in "'\"`":
            value, end = _read_quoted(text, i, what)
            tokens.append(_Token("backtick" if ch == "`" else "string", text[i:end], value, i, end))
            i = end
        elif match := _NUMBER.match(text, i):
            tokens.append(_Token("number", match.group(), float(match.group()), i, match.end()))
            i = match.end()
        elif match := _IDENT.match(text, i):
            tokens.append(_Token("ident", match.group(), match.group(), i, match.end()))
            i = match.end()
        elif op := next((op for op in _OPERATORS if text.startswith(op, i)), None):
            tokens.append(_Token("op", op, op, i, i + len(op)))
            i += len(op)
        else:
            raise _error(what, text, i, f"unexpected character {ch!r}")
    tokens.append(_Token("end", "", "", len(text), len(text)))
    return tokens


def _read_quoted(text: str, start: int, what: str) -> tuple[str, int]:
    """Read a quoted token; a backslash escapes a quote or a backslash and is kept otherwise."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "'\"`\\":
            out.append(text[i + 1])
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise _error(what, text, start, f"unterminated string: this {quote} is never closed")


def _is_word(token: _Token, *words: str) -> bool:
    return token.kind == "ident" and token.text.lower() in words


def _shown(kind: Kind, key: str) -> str:
    if kind == "attribute":
        return key
    prefix = {"metric": "metrics", "param": "params", "tag": "tags"}[kind]
    return f"{prefix}.{key}" if _IDENT.fullmatch(key) else f"{prefix}.`{key}`"


def _combine(op: Literal["and", "or"], operands: list[Expr]) -> Expr:
    if len(operands) == 1:
        return operands[0]
    flat: list[Expr] = []
    for operand in operands:
        if isinstance(operand, BoolOp) and operand.op == op:
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return BoolOp(op, tuple(flat))


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text, self.what = text, what
        self.tokens = _tokenize(text, what)
        self.index = 0
        self.depth = 0

    def fail(self, token: _Token, message: str, end: int | None = None) -> InvalidArgument:
        return _error(self.what, self.text, token.pos, message, end)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def next(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def expect_end(self, message: str) -> None:
        token = self.peek()
        if token.kind == ")":
            raise self.fail(token, "unbalanced ')': there is no '(' to close")
        if token.kind != "end":
            raise self.fail(token, message)

    def disjunction(self) -> Expr:
        operands = [self.conjunction()]
        while _is_word(self.peek(), "or"):
            self.next()
            operands.append(self.conjunction())
        return _combine("or", operands)

    def conjunction(self) -> Expr:
        operands = [self.primary()]
        while _is_word(self.peek(), "and"):
            self.next()
            operands.append(self.primary())
        return _combine("and", operands)

    def primary(self) -> Expr:
        token = self.peek()
        if token.kind != "(":
            return self.comparison()
        if self.depth >= _MAX_DEPTH:
            raise self.fail(token, f"parentheses nest deeper than {_MAX_DEPTH} levels")
        self.next()
        self.depth += 1
        expr = self.disjunction()
        close = self.next()
        if close.kind != ")":
            raise self.fail(
                close, f"expected 'and', 'or' or ')' to close '(' at position {token.pos}"
            )
        self.depth -= 1
        return expr

    def key(self) -> tuple[Kind, str]:
        token = self.next()
        hint = "expected a key such as metrics.acc, params.lr, tags.team or status"
        if token.kind != "ident" or token.text.lower() in _KEYWORDS:
            raise self.fail(token, hint)
        prefix, dot, key = token.text.partition(".")
        if not dot:
            return "attribute", self.attribute(token, token.text)
        kind = _PREFIXES.get(prefix.lower())
        if kind is None:
            raise self.fail(
                token, f"unknown prefix {prefix!r}; use metrics., params., tags. or attributes."
            )
        quoted = self.peek()
        if not key and quoted.pos == token.end and quoted.text[:1] in ('"', "`"):
            key = str(self.next().value)
        if not key:
            example = f"{prefix}.`val loss`"
            raise self.fail(token, f"empty key after '{prefix}.'; write {prefix}.name or {example}")
        return kind, self.attribute(token, key) if kind == "attribute" else key

    def attribute(self, token: _Token, name: str) -> str:
        if name.lower() not in _ATTRIBUTES:
            valid = f"valid attributes are {', '.join(_VALID_ATTRIBUTES)}"
            raise self.fail(
                token, f"unknown attribute {name!r}; {valid}, or prefix metrics./params./tags."
            )
        return _ATTRIBUTES[name.lower()]

    def operator(self, shown: str) -> str:
        token = self.next()
        if token.kind == "op":
            return {"==": "=", "<>": "!="}.get(token.text, token.text)
        if _is_word(token, "like", "ilike", "in"):
            return token.text.upper()
        if _is_word(token, "not"):
            word = self.next()
            if not _is_word(word, "like", "ilike", "in"):
                raise self.fail(word, "expected LIKE, ILIKE or IN after NOT")
            return f"NOT {word.text.upper()}"
        if _is_word(token, "is"):
            word = self.next()
            negated = _is_word(word, "not")
            word = self.next() if negated else word
            if not _is_word(word, "null"):
                raise self.fail(word, "expected NULL or NOT NULL after IS")
            return "IS NOT NULL" if negated else "IS NULL"
        ops = "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN or IS NULL"
        raise self.fail(token, f"expected an operator after {shown}: {ops}")

    def value(self) -> tuple[str | float, _Token]:
        token = self.next()
        if token.kind in ("number", "string"):
            return token.value, token
        hint = f" (quote strings: '{token.text}')" if token.kind == "ident" else ""
        raise self.fail(token, f"expected a quoted string or a number{hint}")

    def values(self) -> list[tuple[str | float, _Token]]:
        token = self.next()
        if token.kind != "(":
            raise self.fail(token, "expected '(' after IN, as in IN ('rf', 'lr')")
        if self.peek().kind == ")":
            raise self.fail(self.peek(), "empty IN list; give at least one value")
        values = [self.value()]
        while self.peek().kind == ",":
            self.next()
            values.append(self.value())
        close = self.next()
        if close.kind != ")":
            raise self.fail(close, "expected ',' or ')' in the IN list")
        return values

    def comparison(self) -> Comparison:
        start = self.peek()
        kind, key = self.key()
        shown = _shown(kind, key)
        number_ops, string_ops, nullable, why = _RULES[key if kind == "attribute" else kind]
        op = self.operator(shown)
        allowed = nullable if op.startswith("IS") else op in number_ops | string_ops
        if not allowed:
            op_end = self.tokens[self.index - 1].end
            raise self.fail(start, f"{why}; {op!r} is not allowed for {shown}", op_end)
        if op.startswith("IS"):
            return Comparison(kind, key, op, None)
        values = self.values() if op in _LIST else [self.value()]
        for value, token in values:
            if isinstance(value, float) and op not in number_ops:
                raise self.fail(token, f"{why}; quote the value for {shown}: '{token.text}'")
            if isinstance(value, str) and op not in string_ops:
                raise self.fail(token, f"{why}; {op!r} needs a number for {shown}, not a string")
            if isinstance(value, float) != isinstance(values[0][0], float):
                raise self.fail(token, "an IN list cannot mix strings and numbers")
        if key == "status" and kind == "attribute":
            values = [(str(value).upper(), token) for value, token in values]
            for value, token in values:
                if value not in _STATUSES:
                    raise self.fail(token, f"status must be one of {', '.join(_STATUSES)}")
        if op in _LIST:
            return Comparison(kind, key, op, tuple(value for value, _ in values))
        return Comparison(kind, key, op, values[0][0])


def parse_filter(text: str | None) -> Expr | None:
    """Parse a run-search filter into a tree of :class:`Comparison` and :class:`BoolOp`.

    ``and`` binds tighter than ``or``; keywords are case-insensitive; a number literal is
    returned as a float. A blank filter means "no filter".

    Returns:
        The expression, or ``None`` for ``None`` or a blank string.

    Raises:
        InvalidArgument: with the position of the offending token, for syntax errors and for
            comparisons a key does not support (``metrics.acc LIKE 'x'``, ``status = 'DONE'``).

    Example:
        >>> parse_filter("metrics.acc > 0.9")
        Comparison(kind='metric', key='acc', op='>', value=0.9)
        >>> parse_filter("(metrics.acc > 0.9 or metrics.f1 > 0.8) and status = 'finished'").op
        'and'
    """
    if text is None or not text.strip():
        return None
    parser = _Parser(text, "filter")
    expr = parser.disjunction()
    parser.expect_end("expected 'and', 'or' or the end of the filter")
    return expr


def parse_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse ``order_by`` items such as ``"metrics.acc DESC"`` or ``"start_time"``.

    Keys are written as in filters; the direction is ``ASC`` (the default) or ``DESC``, in any
    case. A single string is taken as a one-item list.

    Raises:
        InvalidArgument: for an empty item, an unknown key or anything after the direction.

    Example:
        >>> parse_order_by(["metrics.`val loss` desc", "start_time"])[0]
        OrderKey(kind='metric', key='val loss', descending=True)
    """
    if items is None:
        return []
    keys = []
    for item in [items] if isinstance(items, str) else items:
        parser = _Parser(item, f"order_by item {item!r}")
        if parser.peek().kind == "end":
            raise parser.fail(parser.peek(), "empty item; write a key such as metrics.acc DESC")
        kind, key = parser.key()
        descending = _is_word(parser.peek(), "desc")
        if _is_word(parser.peek(), "asc", "desc"):
            parser.next()
        parser.expect_end("expected ASC, DESC or the end of the item")
        keys.append(OrderKey(kind, key, descending))
    return keys


# -- writing trees back as text ----------------------------------------------------------------

_PREFIX_OF: dict[Kind, str] = {"metric": "metrics", "param": "params", "tag": "tags"}


def format_filter(expr: Expr) -> str:
    """The filter text of ``expr``: :func:`parse_filter` reads it back as the same tree.

    This is how a client sends a parsed filter to a server, which parses it again. Keys are
    written in backticks, strings in single quotes (a backslash escapes a quote or a
    backslash), and every ``and``/``or`` operand that is itself one in parentheses.

    Example:
        >>> format_filter(parse_filter("metrics.acc > 0.9 and params.model = 'rf'"))
        "metrics.`acc` > 0.9 and params.`model` = 'rf'"
    """
    if isinstance(expr, BoolOp):
        return f" {expr.op} ".join(
            f"({format_filter(e)})" if isinstance(e, BoolOp) else format_filter(e)
            for e in expr.operands
        )
    key = _format_key(expr.kind, expr.key)
    if expr.value is None:
        return f"{key} {expr.op}"
    if isinstance(expr.value, tuple):
        return f"{key} {expr.op} ({', '.join(_format_value(v) for v in expr.value)})"
    return f"{key} {expr.op} {_format_value(expr.value)}"


def format_order(keys: Sequence[OrderKey]) -> list[str]:
    """The ``order_by`` items of ``keys``: :func:`parse_order_by` reads them back as the same.

    Example:
        >>> format_order(parse_order_by(["metrics.acc desc", "start_time"]))
        ['metrics.`acc` DESC', 'start_time ASC']
    """
    return [f"{_format_key(k.kind, k.key)} {'DESC' if k.descending else 'ASC'}" for k in keys]


def _format_key(kind: Kind, key: str) -> str:
    if kind == "attribute":
        return key
    return f"{_PREFIX_OF[kind]}.{_quoted(key, '`')}"


def _format_value(value: str | float) -> str:
    if isinstance(value, str):
        return _quoted(value, "'")
    if value != value:  # NaN: no literal reads as it, and no parsed filter holds one
        raise InvalidArgument("a filter cannot compare with NaN")
    if value in (float("inf"), float("-inf")):
        return "1e999" if value > 0 else "-1e999"  # what a literal too big to hold reads as
    return repr(float(value))


def _quoted(text: str, quote: str) -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
