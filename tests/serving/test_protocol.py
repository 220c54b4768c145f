"""Request parsing and validation at the edge (pure functions)."""

from __future__ import annotations

import gc
import json
import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segue.models.signature import (
    ColumnSpec,
    SchemaWarning,
    Signature,
    TensorSpec,
    infer_signature,
    validate_input,
)
from segue.monitoring.segments import input_records, split_inputs
from segue.serving import binary
from segue.serving.inputs import InputSchema, combine, log_json
from segue.serving.protocol import (
    RequestError,
    parse_infer,
    parse_predict,
)

MIXED = Signature(
    (
        ColumnSpec("age", "int64"),
        ColumnSpec("income", "float64", nullable=True),
        ColumnSpec("score", "float32"),
        ColumnSpec("city", "string"),
        ColumnSpec("member", "bool"),
        ColumnSpec("visits", "int32", nullable=True),
        ColumnSpec("tier", "int8"),
        ColumnSpec("seen", "datetime64[ns]"),
    )
)
SCHEMA = InputSchema(MIXED)
ROWS = [
    {
        "age": 31,
        "income": 52000.5,
        "score": 0.5,
        "city": "Oslo",
        "member": True,
        "visits": 3,
        "tier": 2,
        "seen": "2024-01-02T03:04:05",
    },
    {
        "age": 45,
        "income": None,
        "score": 1,
        "city": "Lima",
        "member": False,
        "visits": None,
        "tier": -1,
        "seen": "2024-02-03",
    },
]
TENSOR = InputSchema(Signature(TensorSpec("float32", (-1, 3))))
NAMES = [spec.name for spec in MIXED.inputs]


def body(data: Any) -> bytes:
    return orjson.dumps(data)


def oip(columns: dict[str, list], datatypes: dict[str, str] | None = None, **extra: Any) -> bytes:
    default = {"age": "INT64", "income": "FP64", "score": "FP32", "city": "BYTES"}
    default |= {"member": "BOOL", "visits": "INT32", "tier": "INT8", "seen": "BYTES"}
    default |= datatypes or {}
    inputs = [
        {"name": name, "shape": [len(values)], "datatype": default[name], "data": values}
        for name, values in columns.items()
    ]
    return body({"inputs": inputs, **extra})


def columns_of(rows: list[dict]) -> dict[str, list]:
    return {name: [row[name] for row in rows] for name in NAMES}


# --- the four /predict formats and OIP give the model the same frame -----------------------


def _split(rows: list[dict], order: list[str]) -> dict:
    return {"dataframe_split": {"columns": order, "data": [[r[c] for c in order] for r in rows]}}


@pytest.mark.parametrize(
    "payload",
    [
        body({"instances": ROWS}),
        body({"dataframe_records": ROWS}),
        body(_split(ROWS, NAMES)),
        body(_split(ROWS, NAMES[::-1])),
        body({"inputs": columns_of(ROWS)}),
        oip(columns_of(ROWS)),
    ],
    ids=["instances", "records", "split", "split-reordered", "inputs", "oip"],
)
def test_every_format_gives_what_validate_input_gives(payload):
    parse = parse_infer if b'"datatype"' in payload else parse_predict

    request = parse(payload, SCHEMA)
    frame = combine([request.input])

    assert request.input.n_rows == 2
    expected = validate_input(ROWS, MIXED)
    pd.testing.assert_frame_equal(validate_input(frame, MIXED), expected)


EXTRA = [{**row, "customer_id": f"c-{i}"} for i, row in enumerate(ROWS)]


@pytest.mark.parametrize(
    "payload",
    [
        body({"instances": EXTRA}),
        body({"dataframe_records": EXTRA}),
        body(_split(EXTRA, ["customer_id", *NAMES])),
        body({"inputs": columns_of(EXTRA)}),
        oip(columns_of(EXTRA), {"customer_id": "BYTES"}),
    ],
    ids=["instances", "records", "split", "inputs", "oip"],
)
def test_extra_columns_are_ignored_served_as_load_model_predict_ignores_them(payload):
    parse = parse_infer if b'"datatype"' in payload else parse_predict

    frame = combine([parse(payload, SCHEMA).input])

    with pytest.warns(SchemaWarning, match="'customer_id'"):
        local = validate_input(EXTRA, MIXED)
    pd.testing.assert_frame_equal(validate_input(frame, MIXED), local)


def test_the_same_frame_is_judged_alike_served_and_by_load_model_predict():
    # A category column where the signature says string, an extra column and a nullable
    # column left out: one policy (segue.models.validation.match_columns) for both paths.
    df = pd.DataFrame(ROWS).drop(columns=["income"]).assign(note=["a", "b"])
    df["city"] = df["city"].astype("category")
    # visits: ints with a missing value, so floats in pandas (3.0 and NaN, in JSON 3.0, null)

    sent = b'{"dataframe_split": %s}' % df.to_json(orient="split", index=False).encode()
    served = combine([parse_predict(sent, SCHEMA).input])
    with pytest.warns(SchemaWarning, match="'note'"):
        local = validate_input(df, MIXED)

    pd.testing.assert_frame_equal(validate_input(served, MIXED), local)
    assert local["income"].isna().all()


def test_a_category_of_ints_is_taken_served_as_by_load_model_predict():
    df = pd.DataFrame({"tier": pd.Categorical([1, 2, 1]), "x": [0.5, 1.0, 2.0]})
    signature = infer_signature(df)
    schema = InputSchema(signature)

    sent = b'{"dataframe_split": %s}' % df.to_json(orient="split", index=False).encode()
    served = combine([parse_predict(sent, schema).input])

    pd.testing.assert_frame_equal(validate_input(served, signature), validate_input(df, signature))
    mixed = body({"instances": [{"tier": 1, "x": 0.5}, {"tier": "gold", "x": 1.0}]})
    with pytest.raises(RequestError, match="labels of one type expected, got a string, an integer"):
        parse_predict(mixed, schema)


def test_numeric_columns_of_one_dtype_become_one_block_and_a_matching_frame():
    schema = InputSchema(Signature(tuple(ColumnSpec(c, "float64") for c in "abc")))

    request = parse_predict(body({"instances": [{"a": 1, "b": 2.5, "c": -3}]}), schema)
    frame = combine([request.input, request.input])

    assert schema.single_block
    assert request.input.blocks[0].dtype == np.float64
    assert frame.to_numpy().tolist() == [[1.0, 2.5, -3.0]] * 2
    assert validate_input(frame, schema.signature) is frame  # the model's fast path


def test_oip_columns_of_shape_n_by_1_and_requested_outputs():
    payload = orjson.loads(
        oip(columns_of(ROWS[:1]), id="req-7", outputs=[{"name": "predict_proba"}])
    )
    for tensor in payload["inputs"]:
        tensor["shape"] = [1, 1]
        tensor["data"] = [[value] for value in tensor["data"]]

    request = parse_infer(body(payload), SCHEMA)

    assert request.id == "req-7"
    assert request.outputs == ("predict_proba",)
    assert request.input.records()[0]["city"] == "Oslo"


def test_outputs_asked_in_parameters_and_defaults():
    both = parse_infer(
        oip(columns_of(ROWS), parameters={"outputs": ["predict", "predict_proba"]}), SCHEMA
    )
    default = parse_infer(oip(columns_of(ROWS)), SCHEMA)

    assert both.outputs == ("predict", "predict_proba")
    assert default.outputs == ("predict",)


def test_a_missing_nullable_column_is_all_missing():
    rows = [{k: v for k, v in ROWS[0].items() if k != "income"}]

    frame = combine([parse_predict(body({"instances": rows}), SCHEMA).input])

    assert math.isnan(frame["income"].iloc[0])


def test_records_give_back_the_rows_for_the_prediction_log():
    request = parse_predict(body({"instances": ROWS}), SCHEMA)

    back = request.input.records()

    assert back[0]["age"] == 31 and back[1]["city"] == "Lima"
    assert math.isnan(back[1]["income"]) and back[1]["visits"] is None


def _inputs_for_the_log() -> list:
    """Requests of several schemas and sizes, in an interleaved order."""
    floats = InputSchema(
        Signature((ColumnSpec("a", "float64", nullable=True), ColumnSpec('b "x" 5%', "float64")))
    )
    ints = InputSchema(Signature((ColumnSpec("n", "int64"), ColumnSpec("m", "int64"))))
    flags = InputSchema(Signature((ColumnSpec("f", "bool"),)))
    singles = InputSchema(Signature((ColumnSpec("s", "float32"), ColumnSpec("t", "float32"))))
    tensor64 = InputSchema(Signature(TensorSpec("float64", (-1, 2))))
    rng = np.random.default_rng(3)
    big = rng.normal(size=(1031, 2)).tolist()
    return [
        parse_predict(body({"instances": ROWS}), SCHEMA).input,
        parse_predict(
            body({"inputs": {"a": [0.1, None, 1e300], 'b "x" 5%': [1, -0.0, 5e-324]}}), floats
        ).input,
        parse_predict(
            body({"dataframe_split": {"columns": ["a", 'b "x" 5%'], "data": big}}), floats
        ).input,
        parse_predict(body({"instances": [{"n": 2**63 - 1, "m": -5}]}), ints).input,
        parse_predict(
            body({"dataframe_split": {"columns": ["a", 'b "x" 5%'], "data": [[1 / 3, 2]]}}), floats
        ).input,
        parse_predict(body({"instances": [{"f": True}, {"f": False}]}), flags).input,
        parse_predict(body({"instances": [{"s": 0.1, "t": 3}]}), singles).input,
        parse_predict(body({"inputs": [[0.1, 2.0], [float("1e-7"), -1]]}), tensor64).input,
        parse_predict(body({"inputs": [[0.1, 2.0, 3.0]]}), TENSOR).input,
        parse_predict(body({"inputs": {"a": [7.5], 'b "x" 5%': [8]}}), floats).input,
    ]


def _records_text(one) -> list:
    return orjson.loads(orjson.dumps(one.records(), option=orjson.OPT_SERIALIZE_NUMPY))


def test_the_logs_json_of_the_inputs_reads_back_as_their_records():
    inputs = _inputs_for_the_log()

    texts = log_json(inputs)

    for one, text in zip(inputs, texts, strict=True):
        assert input_records(orjson.loads(text)) == _records_text(one)
    assert json.loads(texts[1]) == {
        "dataframe_split": {
            "columns": ["a", 'b "x" 5%'],
            "data": [[0.1, 1.0], [None, -0.0], [1e300, 5e-324]],
        }
    }
    assert input_records(json.loads(texts[1]))[1] == {"a": None, 'b "x" 5%': -0.0}
    # float32 columns are written as records (orjson writes float32 arrays shorter), tensors as
    # their nested lists.
    assert json.loads(texts[6]) == _records_text(inputs[6])
    assert json.loads(texts[7]) == [[0.1, 2.0], [1e-7, -1.0]]


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(["float64", "int64", "int8", "uint16", "bool"]),
    width=st.integers(1, 4),
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_the_logs_json_of_one_block_requests_is_their_split_rows(dtype, width, sizes, seed):
    # Each request keeps its own rows, under the signature's column names, values exact.
    names = ["x", '"q"', "%s", "é"][:width]
    schema = InputSchema(Signature(tuple(ColumnSpec(name, dtype) for name in names)))
    rng = np.random.default_rng(seed)
    inputs = [
        schema.from_rows((rng.normal(size=(n, width)) * 1e4).astype(dtype).tolist()) for n in sizes
    ]

    texts = log_json(inputs)

    for one, text in zip(inputs, texts, strict=True):
        split = split_inputs(orjson.loads(text))
        assert split is not None and split[0] == names
        assert input_records(orjson.loads(text)) == _records_text(one)


_CELLS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.just([1.0]),
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(_CELLS, min_size=2, max_size=2), min_size=1, max_size=4),
    nullable=st.booleans(),
    split=st.booleans(),
    ragged=st.booleans(),
)
def test_a_float_blocks_fast_path_answers_as_the_checked_one(rows, nullable, split, ragged):
    # A body without true/false skips the per-value type scan of a float64 block: the array,
    # or the error naming the field, must be what the checked path gives.
    schema = InputSchema(
        Signature((ColumnSpec("a", "float64", nullable=nullable), ColumnSpec("b", "float64")))
    )
    if split:
        if ragged:  # a row too short or too long must be named as the checked path names it
            rows = [rows[0][:1], *rows[1:]] if len(rows) % 2 else [[*rows[0], 1.0], *rows[1:]]
        value: Any = {"columns": ["a", "b"], "data": rows}
        payload = {"dataframe_split": value}
        checked = lambda: schema.from_split(value, "dataframe_split")  # noqa: E731
    else:
        value = [{"a": a, "b": b} for a, b in rows]
        payload = {"instances": value}
        checked = lambda: schema.from_records(value, "instances")  # noqa: E731
    raw = json.dumps(payload).encode()  # orjson writes no integer past 64 bits
    try:
        expected = checked().blocks[0]
    except RequestError as exc:
        expected = (exc.status, str(exc))
    try:
        got = parse_predict(raw, schema).input.blocks[0]
    except RequestError as exc:
        got = (exc.status, str(exc))
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == expected


def test_a_float_beyond_float64_is_refused_on_the_fast_path_too():
    schema = InputSchema(Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "float64"))))

    with pytest.raises(RequestError, match="b"):
        parse_predict(b'{"dataframe_split":{"columns":["a","b"],"data":[[1.0,1e400]]}}', schema)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ('"1.5"', "expected float64, got a string"),  # float() would take it as 1.5
        ("null", "null"),
        ("[1.0]", "expected float64, got an array"),
        ("true", "expected float64, got a boolean"),
    ],
)
def test_a_many_row_split_body_takes_only_numbers_on_its_fast_path(cell: str, message: str):
    """The fast path (rows packed as C doubles) refuses what the checked path refuses, naming
    the value's column and row, and gives an array a model may write to."""
    schema = InputSchema(Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "float64"))))
    rows = ",".join(["[1.0,2.0]"] * 250 + [f"[3.0,{cell}]"] + ["[4.0,5.0]"] * 249)
    raw = f'{{"dataframe_split":{{"columns":["a","b"],"data":[{rows}]}}}}'.encode()

    with pytest.raises(RequestError) as caught:
        parse_predict(raw, schema)
    assert caught.value.status == 422
    assert "column 'b', row 250" in str(caught.value) and message in str(caught.value)

    fine = parse_predict(raw.replace(cell.encode(), b"6"), schema).input
    assert fine.blocks[0].shape == (500, 2) and fine.blocks[0][250, 1] == 6.0
    assert fine.blocks[0].dtype == np.float64 and fine.blocks[0].flags.writeable
    assert fine.raw is not None  # kept as the log's text
    base = fine.blocks[0]
    while base is not None:  # no memoryview for the collector to track
        assert not gc.is_tracked(base)
        base = getattr(base, "base", None)


# --- errors ---------------------------------------------------------------------------------


def _with(**changes: Any) -> bytes:
    return body({"instances": [{**ROWS[0], **changes}]})


def _without(name: str) -> bytes:
    return body({"instances": [{k: v for k, v in ROWS[0].items() if k != name}]})


ERRORS = [
    # (case, body, status, field, words in the message)
    ("empty", b"", 400, None, "empty"),
    ("blank", b"  \n", 400, None, "empty"),
    ("not json", b"{'a': 1}", 400, None, "not valid JSON"),
    ("nan literal", b'{"instances": [{"age": NaN}]}', 400, None, "not valid JSON"),
    ("huge float", b'{"instances": [{"score": 1e999}]}', 400, None, "not valid JSON"),
    ("array", b"[1, 2]", 400, None, "JSON object"),
    ("no format", body({}), 400, None, "exactly one of"),
    ("two formats", body({"instances": ROWS, "inputs": {}}), 400, None, "exactly one of"),
    ("unknown key", body({"instances": ROWS, "foo": 1}), 400, "foo", "unknown key"),
    ("instances not list", body({"instances": {"age": 1}}), 400, "instances", "array"),
    ("record not object", body({"instances": [[1, 2]]}), 400, "instances", "object"),
    ("no rows", body({"instances": []}), 422, None, "no rows"),
    ("missing column", _without("age"), 422, "age", "missing column 'age'"),
    ("null not nullable", _with(age=None), 422, "age", "null"),
    ("null float", _with(score=None), 422, "score", "null"),
    ("string for int", _with(age="31"), 422, "age", "expected int64, got a string"),
    ("float for int", _with(age=31.5), 422, "age", "expected int64, got a number"),
    ("bool for float", _with(score=True), 422, "score", "got a boolean"),
    ("int for bool", _with(member=1), 422, "member", "expected bool"),
    ("list value", _with(score=[1.0]), 422, "score", "got an array"),
    ("object value", _with(city={"a": 1}), 422, "city", "got an object"),
    ("number for string", _with(city=5), 422, "city", "expected string"),
    ("int8 range", _with(tier=300), 422, "tier", "out of range for int8"),
    ("int32 range", _with(visits=2**40), 422, "visits", "out of range for int32"),
    ("int64 range", _with(age=2**63), 422, "age", "out of range for int64"),
    ("int64 huge", _with(age=0).replace(b'"age":0', b'"age":18446744073709551616'), 422, "age",
     "got a number"),
    ("float32 overflow", _with(score=1e300), 422, "score", "out of range for float32"),
    ("bad date", _with(seen="yesterday"), 422, "seen", "seen"),
    ("split not object", body({"dataframe_split": [1]}), 400, "dataframe_split", "object"),
    ("split columns", body({"dataframe_split": {"columns": [1], "data": []}}), 400,
     "dataframe_split.columns", "column names"),
    ("split ragged", body({"dataframe_split": {"columns": NAMES, "data": [[1]]}}), 400,
     "dataframe_split.data", "8 values"),
    ("split missing", body({"dataframe_split": {"columns": NAMES[1:], "data": [[0] * 7]}}),
     422, "age", "missing column 'age'"),
    ("split repeated", body({"dataframe_split": {"columns": ["age", "age"], "data": []}}), 400,
     "dataframe_split.columns", "repeats"),
    ("inputs lengths", body({"inputs": columns_of(ROWS) | {"age": [1]}}), 400, "inputs",
     "different lengths"),
    ("inputs not list", body({"inputs": columns_of(ROWS) | {"age": 1}}), 400, "age", "array"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "payload", "status", "field", "words"), ERRORS)
def test_predict_errors_name_the_field(case, payload, status, field, words):
    with pytest.raises(RequestError) as caught:
        parse_predict(payload, SCHEMA)

    error = caught.value
    assert (error.status, error.field) == (status, field), error.message
    assert words in error.message


def _tensor(**changes: Any) -> dict:
    base = {"name": "age", "shape": [1], "datatype": "INT64", "data": [31]}
    return {**base, **changes}


def _infer_with(**changes: Any) -> bytes:
    columns = columns_of(ROWS[:1])
    inputs = orjson.loads(oip(columns))["inputs"]
    inputs[0] = _tensor(**changes)
    return body({"inputs": inputs})


OIP_ERRORS = [
    ("no inputs", body({"id": "x"}), 400, "inputs", "non-empty array"),
    ("inputs empty", body({"inputs": []}), 400, "inputs", "non-empty array"),
    ("unknown key", body({"inputs": [], "model": 1}), 400, "model", "unknown key"),
    ("id not string", body({"id": 5, "inputs": []}), 400, "id", "string"),
    ("tensor not object", body({"inputs": [1]}), 400, "inputs[0]", "object"),
    ("tensor unknown key", _infer_with(foo=1), 400, "inputs[0]", "unknown key 'foo'"),
    ("no name", _infer_with(name=None), 400, "inputs[0].name", "string"),
    ("bad shape", _infer_with(shape=[-1]), 400, "age", "non-negative"),
    ("bad datatype", _infer_with(datatype="FLOAT"), 400, "age", "datatype"),
    ("no data", _infer_with(data=None), 400, "age", "data"),
    ("shape vs data", _infer_with(shape=[2]), 400, "age", "shape says 2"),
    ("2-D column", _infer_with(shape=[1, 2], data=[[1, 2]]), 422, "age", "[n] or [n, 1]"),
    ("datatype mismatch", _infer_with(datatype="FP64"), 422, "age", "cannot carry"),
    ("unknown instead of needed", _infer_with(name="color"), 422, "age", "missing column 'age'"),
    ("twice", body({"inputs": [_tensor(), _tensor()]}), 400, "age", "twice"),
    ("missing column", body({"inputs": [_tensor()]}), 422, "score", "missing column 'score'"),
    ("wrong value", _infer_with(data=["x"]), 422, "age", "got a string"),
    ("unknown output", oip(columns_of(ROWS), outputs=[{"name": "explain"}]), 422, "outputs",
     "unknown output"),
    ("outputs shape", oip(columns_of(ROWS), outputs={"name": "predict"}), 400, "outputs", "array"),
    ("parameters", oip(columns_of(ROWS), parameters=[1]), 400, "parameters", "object"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "payload", "status", "field", "words"), OIP_ERRORS)
def test_infer_errors_name_the_field(case, payload, status, field, words):
    with pytest.raises(RequestError) as caught:
        parse_infer(payload, SCHEMA)

    error = caught.value
    assert (error.status, error.field) == (status, field), error.message
    assert words in error.message


def test_predict_proba_is_refused_for_a_model_without_it():
    with pytest.raises(RequestError, match="unknown output 'predict_proba'") as caught:
        parse_infer(
            oip(columns_of(ROWS), outputs=[{"name": "predict_proba"}]), SCHEMA, outputs=("predict",)
        )

    assert caught.value.status == 422


def test_body_over_the_limit_is_413():
    with pytest.raises(RequestError) as caught:
        parse_predict(body({"instances": ROWS}), SCHEMA, max_bytes=10)

    assert caught.value.status == 413


# --- tensors --------------------------------------------------------------------------------


def test_tensor_inputs_nested_one_row_and_oip_flat():
    nested = parse_predict(body({"inputs": [[1, 2, 3], [4, 5, 6]]}), TENSOR).input
    one = parse_predict(body({"inputs": [1, 2, 3]}), TENSOR).input
    flat = parse_infer(
        body(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [2, 3],
                        "datatype": "FP32",
                        "data": [1, 2, 3, 4, 5, 6],
                    }
                ]
            }
        ),
        TENSOR,
    ).input

    assert nested.tensor.dtype == np.float32 and nested.tensor.shape == (2, 3)
    assert one.tensor.shape == (1, 3)
    np.testing.assert_array_equal(flat.tensor, nested.tensor)
    assert combine([nested, one]).shape == (3, 3)


TENSOR_ERRORS = [
    ("ragged", body({"inputs": [[1, 2, 3], [4]]}), 400, "rectangular"),
    ("wrong width", body({"inputs": [[1, 2]]}), 422, "expected shape [-1, 3]"),
    ("strings", body({"inputs": [["a", "b", "c"]]}), 422, "got a string"),
    ("nulls", body({"inputs": [[1, None, 3]]}), 422, "null"),
    ("bools", body({"inputs": [[True, False, True]]}), 422, "got a boolean"),
    ("overflow", body({"inputs": [[1e300, 0, 0]]}), 422, "out of range for float32"),
    ("no rows", body({"inputs": []}), 422, "expected shape"),
    ("scalar", body({"inputs": 5}), 400, "expected an array"),
    ("frame for tensor", body(_split(ROWS, NAMES)), 400, "takes a tensor"),
    ("oip size", body({"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32",
                                   "data": [1, 2]}]}), 400, "do not fill shape"),
    ("oip datatype", body({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "BYTES",
                                       "data": ["a", "b", "c"]}]}), 422, "cannot carry"),
    ("two inputs", body({"inputs": [{"name": "input", "shape": [1], "datatype": "FP32",
                                     "data": [1]}] * 2}), 422, "one input tensor"),
    ("input's name", body({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                                       "data": [1, 2, 3]}]}), 422, "named 'input', got 'x'"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "payload", "status", "words"), TENSOR_ERRORS)
def test_tensor_errors(case, payload, status, words):
    parse = parse_infer if b'"datatype"' in payload else parse_predict

    with pytest.raises(RequestError) as caught:
        parse(payload, TENSOR)

    assert caught.value.status == status, caught.value.message
    assert words in caught.value.message


def test_a_model_without_signature_cannot_be_served():
    with pytest.raises(Exception, match="no signature"):
        InputSchema(None)


# --- nothing but RequestError, whatever comes in --------------------------------------------


def _nested(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=5), children, max_size=4
    )


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    _nested,
    max_leaves=8,
)
#: JSON shaped like a request, with any values in it, so parsing gets past the first checks.
_COLUMN = st.sampled_from([*NAMES, "x"])
_TENSOR = st.fixed_dictionaries(
    {
        "name": _COLUMN,
        "shape": st.lists(st.integers(-1, 3), max_size=3),
        "datatype": st.sampled_from(["FP64", "INT64", "BOOL", "BYTES", "INT8", "X"]),
        "data": st.lists(JSON, max_size=4),
    }
)
_SPLIT = st.fixed_dictionaries(
    {
        "columns": st.lists(_COLUMN, max_size=9),
        "data": st.lists(st.lists(JSON, max_size=9), max_size=3),
    }
)
NEAR = st.one_of(
    st.fixed_dictionaries({"instances": st.lists(st.dictionaries(_COLUMN, JSON), max_size=3)}),
    st.fixed_dictionaries({"dataframe_split": _SPLIT}),
    st.fixed_dictionaries({"inputs": st.dictionaries(_COLUMN, st.lists(JSON, max_size=3))}),
    st.fixed_dictionaries(
        {
            "inputs": st.lists(_TENSOR, max_size=9),
            "outputs": st.lists(st.fixed_dictionaries({"name": JSON}), max_size=2),
        }
    ),
)


def _only_request_errors(payload: bytes) -> None:
    for schema in (SCHEMA, TENSOR):
        for parse in (parse_predict, parse_infer):
            try:
                request = parse(payload, schema)
            except RequestError as exc:
                assert 400 <= exc.status < 500
                assert isinstance(exc.message, str) and exc.message
            else:
                assert request.input.n_rows > 0
                combine([request.input])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_any_bytes_give_a_request_error_or_an_input(payload):
    _only_request_errors(payload)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON, NEAR))
def test_any_json_gives_a_request_error_or_an_input(data):
    # The standard library writes integers beyond 64 bits, which orjson refuses to.
    _only_request_errors(json.dumps(data).encode())


# --- what third-party clients send: KServe's model_name/model_version, binary tensors ---------


def test_kserve_bodies_may_name_the_model_and_the_version_answering():
    payload = oip(columns_of(ROWS), model_name="churn", model_version="3")

    request = parse_infer(payload, SCHEMA, model="churn", version="3")

    assert request.input.n_rows == 2


TARGET_ERRORS = [
    ("other model", {"model_name": "fraud"}, None, "model_name", ["'fraud'", "'churn'"]),
    ("other version in the URL", {"model_version": "2"}, "3", "model_version",
     ["'2'", "URL names version '3'"]),
    ("other version answering", {"model_version": "2"}, None, "model_version",
     ["'2'", "version '3' answers", "/v2/models/churn/versions/2/infer"]),
    ("name not a string", {"model_name": 5}, None, "model_name", ["a string"]),
    ("version not a string", {"model_version": 3}, None, "model_version", ["a string"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "extra", "url_version", "field", "words"), TARGET_ERRORS)
def test_a_body_naming_another_model_or_version_is_400_naming_both(
    case, extra, url_version, field, words
):
    with pytest.raises(RequestError) as caught:
        parse_infer(
            oip(columns_of(ROWS), **extra),
            SCHEMA,
            model="churn",
            version="3",
            url_version=url_version,
        )

    assert (caught.value.status, caught.value.field) == (400, field)
    for word in words:
        assert word in caught.value.message


@pytest.mark.parametrize("datatype", [{}, ["FP64"], 5, None, True])
def test_a_datatype_that_is_not_a_string_is_400(datatype):
    with pytest.raises(RequestError) as caught:
        parse_infer(_infer_with(datatype=datatype), SCHEMA)

    assert (caught.value.status, caught.value.field) == (400, "age")
    assert "inputs[0].datatype: expected one of BOOL" in caught.value.message


_NUMPY = {"BOOL": bool, "INT64": np.int64, "INT32": np.int32, "INT8": np.int8, "FP64": np.float64}
_NUMPY |= {"FP32": np.float32, "BYTES": object}


def binary_body(
    tensors: dict[str, tuple[str, list]], *, as_json: tuple[str, ...] = (), **extra: Any
) -> tuple[bytes, str]:
    """An infer body as tritonclient sends it: JSON, then each tensor's raw bytes; and the
    Inference-Header-Content-Length. ``tensors``: name -> (datatype, values)."""
    inputs, raw = [], []
    for name, (datatype, values) in tensors.items():
        tensor: dict[str, Any] = {"name": name, "shape": [len(values)], "datatype": datatype}
        if name in as_json:
            tensor["data"] = values
        else:
            data = binary.encode(np.array(values, dtype=_NUMPY[datatype]), datatype)
            tensor["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        inputs.append(tensor)
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(raw), str(len(header))


def _mixed_tensors(rows: list[dict]) -> dict[str, tuple[str, list]]:
    datatypes = {"age": "INT64", "income": "FP64", "score": "FP32", "city": "BYTES"}
    datatypes |= {"member": "BOOL", "visits": "INT32", "tier": "INT8", "seen": "BYTES"}
    columns = columns_of(rows)
    return {
        name: (datatypes[name], columns[name])
        for name in ("age", "score", "city", "member", "tier", "seen")
    }


def test_binary_tensors_give_what_the_same_json_gives():
    tensors = _mixed_tensors(ROWS)
    json_body = oip({name: values for name, (_, values) in tensors.items()})
    payload, header = binary_body(tensors, as_json=("seen",))

    from_bytes = combine([parse_infer(payload, SCHEMA, header_length=header).input])
    from_json = combine([parse_infer(json_body, SCHEMA).input])

    pd.testing.assert_frame_equal(from_bytes, from_json)


def test_binary_tensor_for_a_tensor_model():
    values = np.arange(6, dtype=np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": values.nbytes},
                }
            ]
        }
    )

    request = parse_infer(header + values.tobytes(), TENSOR, header_length=str(len(header)))

    np.testing.assert_array_equal(request.input.tensor, values.reshape(2, 3))


def _binary_with(changes: dict[str, Any], tail: bytes = b"") -> tuple[bytes, str]:
    payload, header = binary_body({"age": ("INT64", [31])})
    inputs = orjson.loads(payload[: int(header)])["inputs"]
    inputs[0] |= changes
    head = orjson.dumps({"inputs": inputs})
    return head + payload[int(header) :] + tail, str(len(head))


def _one(name: str, datatype: str, raw: bytes, count: int = 1) -> tuple[bytes, str]:
    tensor = {"name": name, "shape": [count], "datatype": datatype}
    head = orjson.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": len(raw)}}]})
    return head + raw, str(len(head))


BINARY_ERRORS = [
    ("header not a number", (_binary_with({})[0], "12a"), 400, "inference-header-content-length",
     "expected the size in bytes"),
    ("header past the body", (_binary_with({})[0], "9999"), 400,
     "inference-header-content-length", "has only"),
    ("size not a number", _binary_with({"parameters": {"binary_data_size": "8"}}), 400,
     "inputs[0].parameters.binary_data_size", "integer"),
    ("size past the end", _binary_with({"parameters": {"binary_data_size": 9}}), 400,
     "inputs[0].parameters.binary_data_size", "only 8 are left"),
    ("data and bytes", _binary_with({"data": [31]}), 400, "age", "not both"),
    ("bytes left over", _binary_with({}, tail=b"\0"), 400, "inference-header-content-length",
     "1 bytes after the JSON belong to no input"),
    ("wrong size for the shape", _binary_with({"shape": [2]}), 400, "age", "takes 16 bytes"),
    ("parameters not an object", _binary_with({"parameters": 8}), 400, "age", "an object"),
    ("no header", (_binary_with({})[0][:-8], None), 400, "inputs[0].parameters.binary_data_size",
     "needs the inference-header-content-length header"),
    ("BOOL not 0 or 1", _one("member", "BOOL", b"\x02"), 400, "member", "0 or 1"),
    ("BYTES cut off", _one("city", "BYTES", b"\x05\0\0\0ab"), 400, "city", "cut off"),
    ("BYTES length cut off", _one("city", "BYTES", b"\x05\0"), 400, "city", "cut off"),
    ("BYTES not UTF-8", _one("city", "BYTES", b"\x01\0\0\0\xff"), 400, "city", "UTF-8"),
    ("BYTES count", _one("city", "BYTES", b"\x01\0\0\0a", count=2), 400, "city",
     "shape holds 2 values, the bytes hold 1"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "sent", "status", "field", "words"), BINARY_ERRORS)
def test_binary_errors_name_the_field(case, sent, status, field, words):
    payload, header = sent
    with pytest.raises(RequestError) as caught:
        parse_infer(payload, SCHEMA, header_length=header)

    assert (caught.value.status, caught.value.field) == (status, field), caught.value.message
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("extra", "binary_outputs"),
    [
        ({}, set()),
        ({"parameters": {"binary_data_output": True}}, {"predict"}),
        ({"outputs": [{"name": "predict", "parameters": {"binary_data": True}}]}, {"predict"}),
        (
            {
                "parameters": {"binary_data_output": True},
                "outputs": [
                    {"name": "predict", "parameters": {"binary_data": False}},
                    {"name": "predict_proba"},
                ],
            },
            {"predict_proba"},
        ),
    ],
    ids=["json", "all-binary", "one-binary", "one-json"],
)
def test_binary_outputs_are_asked_per_request_or_per_output(extra, binary_outputs):
    request = parse_infer(oip(columns_of(ROWS), **extra), SCHEMA)

    assert request.binary == binary_outputs


@pytest.mark.parametrize(
    "extra",
    [
        {"parameters": {"binary_data_output": "yes"}},
        {"outputs": [{"name": "predict", "parameters": {"binary_data": 1}}]},
        {"outputs": [{"name": "predict", "parameters": []}]},
    ],
)
def test_binary_output_flags_must_be_booleans(extra):
    with pytest.raises(RequestError) as caught:
        parse_infer(oip(columns_of(ROWS), **extra), SCHEMA)

    assert caught.value.status == 400


# Any JSON where a tensor's fields go, with and without bytes after the JSON.
_ANY_TENSOR = st.fixed_dictionaries(
    {
        "name": st.one_of(_COLUMN, st.just("input"), JSON),
        "shape": st.one_of(st.lists(st.integers(-1, 2**63), max_size=3), JSON),
        "datatype": st.one_of(st.sampled_from([*sorted(binary._DTYPES), "BYTES"]), JSON),
    },
    optional={
        "data": st.one_of(st.lists(JSON, max_size=4), JSON),
        "parameters": st.one_of(
            st.fixed_dictionaries({"binary_data_size": st.one_of(st.integers(-1, 24), JSON)}),
            JSON,
        ),
    },
)
_ANY_INFER = st.fixed_dictionaries(
    {"inputs": st.lists(_ANY_TENSOR, min_size=1, max_size=3)},
    optional={
        "model_name": JSON,
        "model_version": JSON,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.one_of(st.just("predict"), JSON)}, optional={"parameters": JSON}
            ),
            max_size=2,
        ),
        "parameters": st.one_of(
            st.fixed_dictionaries({"binary_data_output": JSON, "outputs": JSON}), JSON
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ANY_INFER, st.binary(max_size=24), st.one_of(st.none(), st.text(max_size=4)))
def test_any_infer_body_gives_a_request_error_or_an_input(data, tail, header):
    header_json = json.dumps(data).encode()
    for given_header in (header, str(len(header_json))):
        payload = header_json + tail if given_header is not None else header_json
        for schema in (SCHEMA, TENSOR):
            try:
                request = parse_infer(
                    payload, schema, model="m", version="1", header_length=given_header
                )
            except RequestError as exc:
                assert 400 <= exc.status < 500
            else:
                assert request.input.n_rows > 0
                combine([request.input])


@pytest.mark.parametrize("shape", [[0, 2**63], [0] * 65])
def test_a_shape_past_numpys_limits_is_400(shape):
    payload = body({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": []}]})

    with pytest.raises(RequestError) as caught:
        parse_infer(payload, TENSOR)

    assert caught.value.status == 400 and "larger than an array can be" in caught.value.message


def test_finite_rows_whose_sum_overflows_are_taken_whole():
    schema = InputSchema(Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "float64"))))
    body = b'{"dataframe_split":{"columns":["a","b"],"data":[[1e308,1e308],[1,2]]}}'

    parsed = parse_predict(body, schema).input.blocks[0]

    np.testing.assert_array_equal(parsed, [[1e308, 1e308], [1.0, 2.0]])


def test_a_split_body_in_the_signatures_order_is_logged_as_it_came():
    schema = InputSchema(Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "float64"))))
    body = b'{ "dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3e0, -0.0]]} }'
    reordered = b'{"dataframe_split": {"columns": ["b", "a"], "data": [[2.5, 1]]}}'

    kept, written = (parse_predict(b, schema).input for b in (body, reordered))

    assert log_json([kept, written]) == [
        body,  # the client's own text: nothing written again
        b'{"dataframe_split":{"columns":["a","b"],"data":[[1.0,2.5]]}}',
    ]
    assert input_records(orjson.loads(body)) == [{"a": 1, "b": 2.5}, {"a": 3.0, "b": -0.0}]
    assert kept.rows(0, 1).raw is None  # a piece of a request is not its body


@pytest.mark.parametrize("literal", ["true", "false", "true ", " false"])
def test_a_bool_among_the_numbers_of_a_large_body_is_refused_naming_its_column(literal):
    schema = InputSchema(Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "float64"))))
    rows = [f"[{i}.5, 1e-3]" for i in range(400)]
    rows[321] = f"[1.5,{literal}]"
    body = '{"dataframe_split": {"columns": ["a", "b"], "data": [' + ",".join(rows) + "]}}"
    assert len(body) > 4096  # the long way of looking for the words

    with pytest.raises(RequestError, match="column 'b', row 321") as refused:
        parse_predict(body.encode(), schema)
    assert refused.value.status == 422

    fine = parse_predict(body.replace(literal, "2").encode(), schema).input
    assert fine.raw is not None and fine.blocks[0][321].tolist() == [1.5, 2.0]


@pytest.mark.parametrize(
    "body",
    [
        # padded: more bytes than json.dumps writes for its rows
        b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2.5]]' + b" " * 5000 + b"}}",
        # a key given twice, once spelled with an escape: readers could take either
        b'{"dataframe_split": {"columns": ["a", "b"], "d\\u0061ta": [[9.0, 9.0]], '
        b'"data": [[1.5, 2.5]]}}',
    ],
)
def test_a_body_is_kept_as_the_logs_text_only_when_it_is_plainly_its_rows(body):
    schema = InputSchema(Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "float64"))))

    parsed = parse_predict(body, schema).input

    assert parsed.raw is None
    assert log_json([parsed]) == [b'{"dataframe_split":{"columns":["a","b"],"data":[[1.5,2.5]]}}']
