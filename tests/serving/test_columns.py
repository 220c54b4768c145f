"""The float64 block's two fast ways: simdjson's (``split_float64``) and the packed rows'
(``finite_float64``), each giving exactly the array orjson's way gives, or declining."""

from __future__ import annotations

import gc
import json
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segue.models.signature import ColumnSpec, Signature
from segue.serving import columns
from segue.serving.columns import finite_float64, split_float64
from segue.serving.inputs import InputSchema
from segue.serving.protocol import RequestError, parse_predict

NAMES = ["a", "b", "c"]
NAMES_JSON = b'["a","b","c"]'  # as orjson writes them, as InputSchema passes them
SCHEMA = InputSchema(Signature(tuple(ColumnSpec(name, "float64") for name in NAMES)))


def _orjsons_way(body: bytes, schema: InputSchema = SCHEMA) -> Any:
    """What parse_predict gives without simdjson: the array, or (status, message)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(columns, "_simdjson", None)
        return _parsed(body, schema)


def _parsed(body: bytes, schema: InputSchema = SCHEMA) -> Any:
    try:
        return parse_predict(body, schema).input.blocks[0]
    except RequestError as exc:
        return (exc.status, str(exc))


def _split(data: Any, names: Any = NAMES) -> bytes:
    return json.dumps({"dataframe_split": {"columns": names, "data": data}}).encode()


# Numbers written the ways clients write them: shortest repr, fixed digits, exponents,
# integers up to 64 bits, subnormals, -0.0, and 17 significant digits.
_DOUBLES = st.floats(allow_nan=False, allow_infinity=False)
_NUMBERS = st.one_of(
    _DOUBLES.map(repr),
    _DOUBLES.map(lambda x: f"{x:.17g}"),
    _DOUBLES.map(lambda x: f"{x:.3e}"),
    st.integers(-(2**63), 2**64 - 1).map(str),
    st.sampled_from(["0", "-0", "-0.0", "5e-324", "2.2250738585072014e-308", "1E2", "1e+2"]),
    st.sampled_from(["0.1", "0.30000000000000004", "9007199254740993", "1.7976931348623157e308"]),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(_NUMBERS, min_size=3, max_size=3), min_size=1, max_size=40),
    space=st.sampled_from(["", " ", "\n  "]),
)
def test_simdjson_reads_every_number_as_orjsons_way_does(rows: list[list[str]], space: str):
    data = f",{space}".join("[" + f",{space}".join(row) + "]" for row in rows)
    body = (
        f'{{{space}"dataframe_split":{space}{{"columns":{space}["a","b","c"],'
        f'{space}"data":{space}[{data}]}}{space}}}'
    ).encode()

    expected = _orjsons_way(body)
    got = split_float64(body, NAMES, 0, NAMES_JSON)
    by_list = split_float64(body, NAMES, 0)  # the columns compared as a list of strings
    assert (got is None and by_list is None) or got.tobytes() == by_list.tobytes()

    if isinstance(expected, tuple):  # 1.798e+308 rounds past the largest double: refused
        assert got is None and _parsed(body) == expected
        return
    if not np.isfinite(np.vdot(expected, expected)):  # past 1e154: the checked way's to read
        assert got is None
        return
    assert got is not None, body  # every other such body takes the fast way
    assert got.dtype == np.float64 and got.flags.writeable and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()  # bit for bit: -0.0 and subnormals included
    assert _parsed(body).tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    "body",
    [
        _split([[1, 2], [3, 4, 5, 6]]),  # ragged rows of the right total
        _split([[1, [2], 3]]),  # a nested array, which simdjson would flatten
        _split([[1, 2, 3], 4]),  # a row that is a number
        _split([[1, 2, 3], [[4, 5, 6]]]),
        _split([{"a": 1, "b": 2, "c": 3}]),  # one row that is an object of the right count
        _split([[1, 2, 3, 4]]),
        _split([[[1, 2, 3]]]),
        _split([[1, True, 3]]),
        _split([[1, None, 3]]),
        _split([[1, "2", 3]]),
        _split([[1, {"x": 2}, 3]]),
        _split([]),  # no rows: orjson's way names the problem
        _split([[1, 2, 3]], ["a", "c", "b"]),  # another order: reordered the checked way
        _split([[1, 2, 3]], ["a", "b"]),
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1e400,2,3]]}}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[100000000000000000000,2,3]]}}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1e308,1e308,1e308]]}}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[NaN,2,3]]}}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1,2,3]],"index":[0]}}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1,2,3]]},"x":1}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1,2,3]],"data":[[4,5,6]]}}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1,2,3]]},'
        b'"dataframe_split":{"columns":["a","b","c"],"data":[[4,5,6]]}}',
        b'{"dataframe\\u005fsplit":{"columns":["a","b","c"],"data":[[1,2,3]]}}',
        b'{"dataframe_split":{"columns":["a","b","\\u0063"],"data":[[1,2,3]]}}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1,2,3],]}}',
        b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1,2,3]]}',
        b'{"dataframe_split":{"columns":["a","b","\xff"],"data":[[1,2,3]]}}',
        b'{"dataframe_split":[["a","b","c"],[[1,2,3]]]}',
        b'{"instances":[{"a":1,"b":2,"c":3}]}',
        b"[]",
        b"",
    ],
)
def test_any_other_body_is_declined_and_answered_as_before(body: bytes):
    assert split_float64(body, NAMES, 0) is None
    assert split_float64(body, NAMES, 0, NAMES_JSON) is None
    expected, got = _orjsons_way(body), _parsed(body)
    if isinstance(expected, tuple):
        assert got == expected
    else:
        assert got.tobytes() == expected.tobytes()


def test_the_columns_written_back_by_simdjson_are_only_a_shortcut():
    spaced = _split([[1, 2, 3]])  # json.dumps: a space after each comma
    compact = b'{"dataframe_split":{"columns":["a","b","c"],"data":[[1,2,3]]}}'

    for body in (spaced, compact):
        assert split_float64(body, NAMES, 0, NAMES_JSON).tolist() == [[1, 2, 3]]
        assert split_float64(body, NAMES, 0, b'["x"]').tolist() == [[1, 2, 3]]  # by the list
        assert split_float64(body, ["a", "c", "b"], 0, b'["a","c","b"]') is None
    assert SCHEMA._names_json == NAMES_JSON


def test_brackets_in_column_names_are_counted_as_theirs():
    names = ["x[0]", "x[1]", "[y]"]
    schema = InputSchema(Signature(tuple(ColumnSpec(name, "float64") for name in names)))
    body = _split([[1, 2, 3], [4, 5, 6]], names)

    got = split_float64(body, names, 3)

    assert got is not None and got.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert split_float64(_split([[1, [2], 3]], names), names, 3) is None
    assert split_float64(body, names, 2) is None  # miscounted: declined, never misread
    assert schema.split_body(body) is not None  # the schema counts its names' brackets


def test_a_large_body_counts_its_brackets_as_a_small_one():
    rows = [[float(i), i + 0.5, -i] for i in range(300)]
    body = _split(rows)
    assert len(body) > columns._COUNT_WITH_NUMPY

    assert split_float64(body, NAMES, 0).tolist() == rows
    nested = _split([*rows[:150], [1, [2], 3], *rows[151:]])
    assert split_float64(nested, NAMES, 0) is None
    assert _parsed(nested) == _orjsons_way(nested)


def test_a_body_is_kept_as_the_logs_text_only_when_it_holds_nothing_more():
    tight = _split([[1.5, 2, 3]])
    padded = tight[:-1] + b" " * 4096 + b"}"

    assert SCHEMA.split_body(tight).raw == tight
    assert SCHEMA.split_body(padded).raw is None  # written from the array instead


def test_a_parser_still_holding_a_document_is_replaced():
    body = _split([[1, 2, 3]])
    assert split_float64(body, NAMES, 0) is not None
    held = columns._PARSERS.parser.parse(b'{"kept": [1]}')["kept"]  # left referenced

    assert split_float64(body, NAMES, 0) is None  # this request goes orjson's way
    assert split_float64(body, NAMES, 0).tolist() == [[1, 2, 3]]  # a new parser
    assert held.as_list() == [1]


def test_each_thread_parses_with_its_own_parser():
    bodies = [_split([[i, i, i]] * 50) for i in range(8)]
    results: dict[int, list] = {}

    def read(i: int) -> None:
        results[i] = [split_float64(bodies[i], NAMES, 0)[0, 0] for _ in range(200)]

    threads = [threading.Thread(target=read, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: [float(i)] * 200 for i in range(8)}


def test_without_simdjson_every_body_goes_orjsons_way(monkeypatch):
    monkeypatch.setattr(columns, "_simdjson", None)
    body = _split([[1, 2, 3]])

    assert split_float64(body, NAMES, 0) is None
    assert parse_predict(body, SCHEMA).input.blocks[0].tolist() == [[1, 2, 3]]


def test_the_packed_rows_array_sits_on_its_bytearray():
    array = finite_float64([[1.0, 2.0, 3.0]] * 4, 3)

    assert type(array.base) is bytearray and array.flags.writeable
    assert not gc.is_tracked(array.base)


def test_a_body_over_a_mebibyte_is_parsed_by_a_parser_of_its_own():
    small = _split([[1, 2, 3]])
    split_float64(small, NAMES, 0)
    kept = columns._PARSERS.parser
    rows = [[float(i), 0.5, -1.25] for i in range(60_000)]
    large = _split(rows)
    assert len(large) > columns._KEEP_PARSER_UP_TO

    assert split_float64(large, NAMES, 0).tolist() == rows
    assert columns._PARSERS.parser is kept  # which cannot hold the large one:
    with pytest.raises(ValueError, match="CAPACITY"):
        kept.parse(large)
    assert split_float64(small, NAMES, 0).tolist() == [[1, 2, 3]]
