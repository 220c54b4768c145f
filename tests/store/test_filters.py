"""Tests for the run-search filter parser: valid trees, pointed errors, and fuzzing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segue.errors import InvalidArgument
from segue.store.filters import (
    BoolOp,
    Comparison,
    Expr,
    OrderKey,
    format_filter,
    format_order,
    parse_filter,
    parse_order_by,
)


def metric(key: str, op: str, value: object) -> Comparison:
    return Comparison("metric", key, op, value)  # type: ignore[arg-type]


def param(key: str, op: str, value: object) -> Comparison:
    return Comparison("param", key, op, value)  # type: ignore[arg-type]


def tag(key: str, op: str, value: object) -> Comparison:
    return Comparison("tag", key, op, value)  # type: ignore[arg-type]


def attr(key: str, op: str, value: object) -> Comparison:
    return Comparison("attribute", key, op, value)  # type: ignore[arg-type]


def and_(*operands: Expr) -> BoolOp:
    return BoolOp("and", operands)


def or_(*operands: Expr) -> BoolOp:
    return BoolOp("or", operands)


VALID = [
    # MLflow-style conjunctions
    (
        "metrics.acc > 0.9 and params.model = 'rf' and tags.team = 'x'",
        and_(metric("acc", ">", 0.9), param("model", "=", "rf"), tag("team", "=", "x")),
    ),
    (
        "(metrics.acc >= 0.9 or metrics.f1 > 0.8) and status = 'FINISHED'",
        and_(
            or_(metric("acc", ">=", 0.9), metric("f1", ">", 0.8)),
            attr("status", "=", "FINISHED"),
        ),
    ),
    # precedence: AND binds tighter than OR
    (
        "metrics.a = 1 or metrics.b = 2 and metrics.c = 3",
        or_(metric("a", "=", 1.0), and_(metric("b", "=", 2.0), metric("c", "=", 3.0))),
    ),
    (
        "metrics.a = 1 and metrics.b = 2 or metrics.c = 3",
        or_(and_(metric("a", "=", 1.0), metric("b", "=", 2.0)), metric("c", "=", 3.0)),
    ),
    # flattening of nested same operators, including through parentheses
    (
        "(metrics.a = 1 and metrics.b = 2) and (metrics.c = 3 and metrics.d = 4)",
        and_(*(metric(k, "=", float(v)) for v, k in enumerate("abcd", start=1))),
    ),
    (
        "metrics.a = 1 or (metrics.b = 2 or (metrics.c = 3))",
        or_(metric("a", "=", 1.0), metric("b", "=", 2.0), metric("c", "=", 3.0)),
    ),
    ("((metrics.a = 1))", metric("a", "=", 1.0)),
    # operators
    ("params.model IN ('rf', 'lr')", param("model", "IN", ("rf", "lr"))),
    ("params.model NOT IN ('svm')", param("model", "NOT IN", ("svm",))),
    ("params.model not in ('svm',\"lr\")", param("model", "NOT IN", ("svm", "lr"))),
    ("tags.note LIKE 'base%'", tag("note", "LIKE", "base%")),
    ("tags.note ILIKE '%X%'", tag("note", "ILIKE", "%X%")),
    ("tags.note NOT LIKE 'a_'", tag("note", "NOT LIKE", "a_")),
    ("tags.note not ilike 'a'", tag("note", "NOT ILIKE", "a")),
    ("metrics.a == 1", metric("a", "=", 1.0)),
    ("metrics.a != 1", metric("a", "!=", 1.0)),
    ("metrics.a <> 1", metric("a", "!=", 1.0)),
    ("metrics.a<1", metric("a", "<", 1.0)),
    ("metrics.a<=1", metric("a", "<=", 1.0)),
    ("metrics.a>=1", metric("a", ">=", 1.0)),
    ("metrics.a IN (1, 2.5)", metric("a", "IN", (1.0, 2.5))),
    ("metrics.a NOT IN (1)", metric("a", "NOT IN", (1.0,))),
    # numbers
    ("metrics.a > -1", metric("a", ">", -1.0)),
    ("metrics.a > -.5", metric("a", ">", -0.5)),
    ("metrics.a > 1.", metric("a", ">", 1.0)),
    ("metrics.a > 1e-3", metric("a", ">", 0.001)),
    ("metrics.a > -2.5E+2", metric("a", ">", -250.0)),
    ("metrics.a>-1", metric("a", ">", -1.0)),
    # params against numbers mean numeric comparison
    ("params.max_depth > 3", param("max_depth", ">", 3.0)),
    ("params.max_depth = 3", param("max_depth", "=", 3.0)),
    ("params.max_depth IN (3, 4)", param("max_depth", "IN", (3.0, 4.0))),
    ("params.max_depth = '3'", param("max_depth", "=", "3")),
    # quoted keys
    ("metrics.`val loss` < 0.2", metric("val loss", "<", 0.2)),
    ('metrics."val loss" < 0.2', metric("val loss", "<", 0.2)),
    ("params.`a.b` = 'x'", param("a.b", "=", "x")),
    ("tags.`it\\`s` = 'x'", tag("it`s", "=", "x")),
    ("metrics.a.b > 1", metric("a.b", ">", 1.0)),
    ("tags.mlflow.user = 'x'", tag("mlflow.user", "=", "x")),
    ("tags.data-set/v1:x = 'y'", tag("data-set/v1:x", "=", "y")),
    ("metrics.précision > 0", metric("précision", ">", 0.0)),
    # a double-quoted token is a key only right after a prefix; as a value it is a string
    ('tags."k" = "v"', tag("k", "=", "v")),
    # strings and escapes
    ("tags.t = 'it\\'s'", tag("t", "=", "it's")),
    ('tags.t = "say \\"hi\\""', tag("t", "=", 'say "hi"')),
    ("tags.t = 'back\\\\slash'", tag("t", "=", "back\\slash")),
    ("tags.t LIKE '100\\%'", tag("t", "LIKE", "100\\%")),
    ("tags.t = ''", tag("t", "=", "")),
    ("tags.t = 'and or ( ) ,'", tag("t", "=", "and or ( ) ,")),
    # IS NULL
    ("tags.owner IS NULL", tag("owner", "IS NULL", None)),
    ("tags.owner is not null", tag("owner", "IS NOT NULL", None)),
    ("metrics.acc IS NULL", metric("acc", "IS NULL", None)),
    ("params.lr IS NOT NULL", param("lr", "IS NOT NULL", None)),
    ("end_time IS NULL", attr("end_time", "IS NULL", None)),
    # prefixes and attributes, with aliases
    ("metric.a = 1", metric("a", "=", 1.0)),
    ("param.a = 'x'", param("a", "=", "x")),
    ("tag.a = 'x'", tag("a", "=", "x")),
    ("METRICS.a = 1", metric("a", "=", 1.0)),
    ("attributes.status = 'running'", attr("status", "=", "RUNNING")),
    ("attribute.run_name = 'r'", attr("name", "=", "r")),
    ("attr.id = 'abc'", attr("run_id", "=", "abc")),
    ("attr.`run_name` = 'r'", attr("name", "=", "r")),
    ("name LIKE 'exp-%'", attr("name", "LIKE", "exp-%")),
    ("run_name = 'r'", attr("name", "=", "r")),
    ("run_id IN ('a', 'b')", attr("run_id", "IN", ("a", "b"))),
    ("id != 'a'", attr("run_id", "!=", "a")),
    ("user = 'ada'", attr("user", "=", "ada")),
    ("user_id = 'ada'", attr("user", "=", "ada")),
    ("experiment ILIKE 'churn%'", attr("experiment", "ILIKE", "churn%")),
    ("Status = 'killed'", attr("status", "=", "KILLED")),
    ("status IN ('finished', 'Failed')", attr("status", "IN", ("FINISHED", "FAILED"))),
    ("status NOT IN ('RUNNING')", attr("status", "NOT IN", ("RUNNING",))),
    ("start_time >= 1700000000000", attr("start_time", ">=", 1.7e12)),
    ("end_time < 5", attr("end_time", "<", 5.0)),
    # keywords in any case, whitespace of any kind
    (
        "metrics.a = 1 AND metrics.b = 2 Or metrics.c = 3",
        or_(and_(metric("a", "=", 1.0), metric("b", "=", 2.0)), metric("c", "=", 3.0)),
    ),
    ("\n\tmetrics.a\n>\t1  ", metric("a", ">", 1.0)),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[text for text, _ in VALID])
def test_valid_filters_parse_to_the_expected_tree(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_blank_filter_means_no_filter(text: str | None) -> None:
    assert parse_filter(text) is None


# (filter, position of the offending token, a fragment the message must contain)
INVALID = [
    ("metrics.acc > 1 and params.x = 'y' adn 2", 35, "expected 'and', 'or' or the end"),
    ("metrics.acc LIKE 'x'", 0, "'LIKE' is not allowed for metrics.acc"),
    ("metrics.acc NOT IN ('x')", 20, "needs a number for metrics.acc"),
    ("metrics.acc = 'x'", 14, "metrics compare with numbers"),
    ("metrics. > 1", 0, "empty key after 'metrics.'"),
    ("params.`` = 'x'", 0, "empty key"),
    ('metrics. "x" > 1', 0, "empty key"),
    ("tags.x = 'abc", 9, "unterminated string"),
    ('tags.x = "abc', 9, "unterminated string"),
    ("tags.x = 'abc\\'", 9, "unterminated string"),
    ("metrics.`abc > 1", 8, "unterminated"),
    ("params.x IN ()", 13, "empty IN list"),
    ("params.x IN 'a'", 12, "expected '(' after IN"),
    ("params.x IN ('a' 'b')", 17, "expected ',' or ')'"),
    ("params.x IN ('a',)", 17, "expected a quoted string or a number"),
    ("params.x IN ('a'", 16, "expected ',' or ')'"),
    ("params.x IN (1, 'a')", 16, "cannot mix strings and numbers"),
    ("metrics.acc 0.9", 12, "expected an operator after metrics.acc"),
    ("metrics.`val loss` 0.9", 19, "expected an operator after metrics.`val loss`"),
    ("metrics.acc", 11, "expected an operator"),
    ("metrics.acc >", 13, "expected a quoted string or a number"),
    ("metrics.acc > and", 14, "expected a quoted string or a number"),
    ("status = FINISHED", 9, "quote strings: 'FINISHED'"),
    ("(metrics.acc > 1", 16, "to close '(' at position 0"),
    ("((metrics.acc > 1)", 18, "to close '(' at position 0"),
    ("metrics.acc > 1)", 15, "unbalanced ')'"),
    ("()", 1, "expected a key"),
    ("metrics.acc > 1 and", 19, "expected a key"),
    ("and metrics.acc > 1", 0, "expected a key"),
    ("not metrics.acc > 1", 0, "expected a key"),
    ("'x' = 1", 0, "expected a key"),
    ("1 = 1", 0, "expected a key"),
    ("metrics.acc > 1 'x'", 16, "expected 'and', 'or' or the end"),
    ("metrics.acc > 1 metrics.f1 > 2", 16, "expected 'and', 'or' or the end"),
    ("metrics.acc @ 1", 12, "unexpected character '@'"),
    ("metrics.acc ! 1", 12, "unexpected character '!'"),
    ("metrics.acc > --1", 14, "unexpected character '-'"),
    ("foo = 'x'", 0, "unknown attribute 'foo'; valid attributes are status, name, run_id"),
    ("attributes.foo = 'x'", 0, "unknown attribute 'foo'"),
    ("bogus.x = 1", 0, "unknown prefix 'bogus'"),
    ("tags.x NOT 'a'", 11, "expected LIKE, ILIKE or IN after NOT"),
    ("tags.x IS 'a'", 10, "expected NULL or NOT NULL after IS"),
    ("tags.x IS NOT 'a'", 14, "expected NULL or NOT NULL after IS"),
    # type rules
    ("tags.x = 3", 9, "tags compare with strings; quote the value for tags.x: '3'"),
    ("tags.x > 'a'", 0, "'>' is not allowed for tags.x"),
    ("params.x < 'a'", 11, "'<' needs a number for params.x"),
    ("params.x LIKE 3", 14, "quote the value"),
    ("status = 'done'", 9, "status must be one of RUNNING, FINISHED, FAILED, KILLED"),
    ("status IN ('RUNNING', 'done')", 22, "status must be one of"),
    ("status = 1", 9, "quote the value"),
    ("status LIKE 'R%'", 0, "'LIKE' is not allowed for status"),
    ("status IS NULL", 0, "'IS NULL' is not allowed for status"),
    ("start_time LIKE 'x'", 0, "'LIKE' is not allowed for start_time"),
    ("start_time = '2024-01-01'", 13, "needs a number for start_time"),
    ("start_time IN (1, 2)", 0, "'IN' is not allowed for start_time"),
    ("end_time = 'x'", 11, "needs a number for end_time"),
    ("name = 1", 7, "quote the value"),
    ("name < 'b'", 0, "'<' is not allowed for name"),
    ("experiment = 3", 13, "quote the value"),
    ("user IS NULL", 0, "'IS NULL' is not allowed for user"),
    # errors deep inside a larger filter point at the right place
    ("metrics.a > 1 and (tags.b = 'x' or metrics.c LIKE 'y')", 35, "'LIKE' is not allowed"),
    ("(" * 60 + "metrics.a > 1" + ")" * 60, 50, "parentheses nest deeper than 50 levels"),
]


@pytest.mark.parametrize(("text", "position", "fragment"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_filters_point_at_the_offending_token(
    text: str, position: int, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_filter(text)
    message = str(caught.value)
    assert message.startswith(f"invalid filter at position {position} ")
    assert fragment in message
    assert len(message.splitlines()) == 1


def test_error_message_shows_the_text_near_the_position() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_filter("metrics.acc > 1 adn 2")
    assert str(caught.value) == (
        "invalid filter at position 16 near 'adn 2': expected 'and', 'or' or the end of the filter"
    )
    with pytest.raises(InvalidArgument) as caught:
        parse_filter("metrics.acc LIKE 'x'")
    assert str(caught.value) == (
        "invalid filter at position 0 near 'metrics.acc LIKE': "
        "metrics compare with numbers; 'LIKE' is not allowed for metrics.acc"
    )


def test_error_snippet_is_cut_and_kept_on_one_line() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_filter("metrics.a > 1 xx" + " yyyyyyy" * 20)
    near = re.search(r"near '(.*?)':", str(caught.value))
    assert near is not None and len(near.group(1)) <= 20
    with pytest.raises(InvalidArgument) as caught:
        parse_filter("tags.a = 1\n\r\u2028and tags.b = 'x'")
    assert len(str(caught.value).splitlines()) == 1


def test_error_at_the_end_says_so() -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid filter at position 13 \(the end\): "):
        parse_filter("metrics.acc >")


# -- fuzzing: any text either parses or raises InvalidArgument with a one-line message --------

TOKENS = [
    *("metrics.acc", "params.model", "tags.team", "attr.name", "status", "start_time"),
    *("end_time", "experiment", "metrics.", "params.", "foo", "foo.bar", "metrics.`x y`"),
    *("`val loss`", '"val loss"', "'rf'", "'it\\'s'", "'FINISHED'", "'unterminated", "''"),
    *("0", "1", "-2.5e3", ".5", "1e999", "(", ")", ",", "=", "==", "!=", "<>", "<", "<="),
    *(">", ">=", "!", "and", "OR", "not", "IN", "like", "ILIKE", "is", "NULL", "asc", "DESC"),
    *("\\", "`", "'", '"', "@", "\n", "-", "\u00e9", "\x00"),
]


def _check_parses_or_raises_invalid_argument(text: str) -> None:
    try:
        parse_filter(text)
    except InvalidArgument as error:
        assert len(str(error).splitlines()) == 1
        assert str(error).startswith("invalid filter at position ")


@given(st.text())
def test_arbitrary_text_parses_or_raises_invalid_argument(text: str) -> None:
    _check_parses_or_raises_invalid_argument(text)


@given(st.lists(st.sampled_from(TOKENS), max_size=30), st.sampled_from([" ", ""]))
def test_token_soup_parses_or_raises_invalid_argument(tokens: list[str], sep: str) -> None:
    _check_parses_or_raises_invalid_argument(sep.join(tokens))


@given(
    st.sampled_from([text for text, _ in VALID]),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(TOKENS),
)
def test_mutated_valid_filters_parse_or_raise_invalid_argument(
    text: str, where: int, cut: int, token: str
) -> None:
    # Near-valid input reaches the deep error paths that random soup rarely gets to.
    where %= len(text) + 1
    _check_parses_or_raises_invalid_argument(text[:where] + token + text[where + cut :])


@pytest.mark.parametrize("text", ["(" * 5000, ")" * 5000, "metrics.a = 1 and " * 2000 + "x"])
def test_pathological_input_raises_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_filter(text)


def test_long_chains_parse_without_recursion() -> None:
    text = " or ".join(f"metrics.m{i} > {i}" for i in range(3000))
    expr = parse_filter(text)
    assert isinstance(expr, BoolOp) and len(expr.operands) == 3000


# -- round trip: rendering any tree and parsing it back gives the same tree -------------------

_PREFIX = {"metric": "metrics", "param": "params", "tag": "tags"}
_STRING_OPS = ["=", "!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"]
_NUMBER_OPS = ["=", "!=", "<", "<=", ">", ">="]
_keys = st.text(min_size=1)
_strings = st.text()
_numbers = st.floats(allow_nan=False, allow_infinity=False)


def _lists(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(values, min_size=1, max_size=4).map(tuple)


def _comparisons(kind: str) -> st.SearchStrategy[Comparison]:
    number = st.one_of(
        st.tuples(st.sampled_from(_NUMBER_OPS), _numbers),
        st.tuples(st.sampled_from(["IN", "NOT IN"]), _lists(_numbers)),
    )
    string = st.one_of(
        st.tuples(st.sampled_from(_STRING_OPS), _strings),
        st.tuples(st.sampled_from(["IN", "NOT IN"]), _lists(_strings)),
    )
    null = st.tuples(st.sampled_from(["IS NULL", "IS NOT NULL"]), st.none())
    op_value = {
        "metric": st.one_of(number, null),
        "param": st.one_of(number, string, null),
        "tag": st.one_of(string, null),
    }[kind]
    return st.builds(lambda k, ov: Comparison(kind, k, *ov), _keys, op_value)  # type: ignore[arg-type]


_attribute_comparisons = st.one_of(
    st.builds(
        lambda op, v: attr("status", op, v),
        st.sampled_from(["=", "!="]),
        st.sampled_from(["RUNNING", "FINISHED", "FAILED", "KILLED"]),
    ),
    st.builds(
        lambda key, op, v: attr(key, op, v),
        st.sampled_from(["start_time", "end_time"]),
        st.sampled_from(_NUMBER_OPS),
        _numbers,
    ),
    st.builds(
        lambda key, op, v: attr(key, op, v),
        st.sampled_from(["name", "run_id", "user", "experiment"]),
        st.sampled_from(_STRING_OPS),
        _strings,
    ),
)
_leaves = st.one_of(*(_comparisons(kind) for kind in _PREFIX), _attribute_comparisons)


def _bool_ops(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    def build(op: str, operands: list[Expr]) -> BoolOp:
        # Parsing flattens nested same operators, so the trees we generate must be flat too.
        flat: list[Expr] = []
        for operand in operands:
            if isinstance(operand, BoolOp) and operand.op == op:
                flat.extend(operand.operands)
            else:
                flat.append(operand)
        return BoolOp(op, tuple(flat))  # type: ignore[arg-type]

    return st.builds(
        build, st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3)
    )


_trees = st.recursive(_leaves, _bool_ops, max_leaves=8)


def _quote(text: str, quote: str) -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def _render_value(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_render_value(v) for v in value) + ")"
    return repr(value) if isinstance(value, float) else _quote(str(value), "'")


def _render(expr: Expr) -> str:
    if isinstance(expr, BoolOp):
        return f" {expr.op} ".join(f"({_render(e)})" for e in expr.operands)
    key = expr.key if expr.kind == "attribute" else f"{_PREFIX[expr.kind]}.{_quote(expr.key, '`')}"
    if expr.value is None:
        return f"{key} {expr.op}"
    return f"{key} {expr.op} {_render_value(expr.value)}"


@given(_trees)
def test_rendered_trees_parse_back_to_themselves(expr: Expr) -> None:
    assert parse_filter(_render(expr)) == expr


@given(_trees)
def test_formatted_trees_parse_back_to_themselves(expr: Expr) -> None:
    assert parse_filter(format_filter(expr)) == expr


@pytest.mark.parametrize(
    "text",
    [
        "metrics.acc > 0.9 and params.model = 'rf'",
        "(metrics.acc >= 0.9 or metrics.f1 > 0.8) and status = 'finished'",
        r"tags.promo LIKE '50\%%' or tags.`it's` IN ('a\'b', 'c\\d')",
        "metrics.huge > 1e999 and metrics.tiny < -1e999",  # infinities, as parsed
        "params.depth IN (2, 10.5, -3e-7) and end_time IS NULL and tags.x IS NOT NULL",
        "run_name NOT ILIKE 'a%' or experiment != 'b' or start_time <= 1700000000000",
    ],
)
def test_formatted_filters_parse_back_to_the_same_tree(text: str) -> None:
    expr = parse_filter(text)
    assert expr is not None

    formatted = format_filter(expr)

    assert parse_filter(formatted) == expr
    assert format_filter(parse_filter(formatted)) == formatted  # type: ignore[arg-type]


# -- order_by ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (None, []),
        ([], []),
        (["metrics.acc DESC"], [OrderKey("metric", "acc", True)]),
        (["start_time"], [OrderKey("attribute", "start_time", False)]),
        (["params.lr ASC"], [OrderKey("param", "lr", False)]),
        (["tags.team desc"], [OrderKey("tag", "team", True)]),
        (["metrics.`val loss` Desc"], [OrderKey("metric", "val loss", True)]),
        (['metrics."val loss"'], [OrderKey("metric", "val loss", False)]),
        (
            ["attr.run_name", "id asc"],
            [OrderKey("attribute", "name", False), OrderKey("attribute", "run_id", False)],
        ),
        (["  experiment  "], [OrderKey("attribute", "experiment", False)]),
        ("metrics.acc DESC", [OrderKey("metric", "acc", True)]),
    ],
)
def test_order_by_items_parse(items: list[str] | None, expected: list[OrderKey]) -> None:
    assert parse_order_by(items) == expected


@pytest.mark.parametrize(
    ("item", "position", "fragment"),
    [
        ("", 0, "empty item"),
        ("   ", 3, "empty item"),
        ("metrics.acc DOWN", 12, "expected ASC, DESC or the end of the item"),
        ("metrics.acc DESC, start_time", 16, "expected ASC, DESC or the end"),
        ("metrics.acc DESC DESC", 17, "expected ASC, DESC or the end"),
        ("foo", 0, "unknown attribute 'foo'"),
        ("metrics.", 0, "empty key"),
        ("metrics.`x", 8, "unterminated"),
        ("DESC", 0, "expected a key"),
        ("(metrics.acc)", 0, "expected a key"),
    ],
)
def test_order_by_errors_point_at_the_offending_token(
    item: str, position: int, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_order_by(["start_time", item])
    message = str(caught.value)
    assert message.startswith(f"invalid order_by item {item!r} at position {position} ")
    assert fragment in message


_order_keys = st.one_of(
    st.builds(OrderKey, st.sampled_from(["metric", "param", "tag"]), _keys, st.booleans()),
    st.builds(
        OrderKey,
        st.just("attribute"),
        st.sampled_from(["name", "run_id", "user", "status", "start_time", "end_time"]),
        st.booleans(),
    ),
)


@given(st.lists(_order_keys, max_size=4))
def test_formatted_order_parses_back_to_the_same_keys(keys: list[OrderKey]) -> None:
    assert parse_order_by(format_order(keys)) == keys


@given(st.lists(st.text(), max_size=3))
def test_arbitrary_order_by_parses_or_raises_invalid_argument(items: list[str]) -> None:
    try:
        parse_order_by(items)
    except InvalidArgument as error:
        assert len(str(error).splitlines()) == 1
