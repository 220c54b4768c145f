from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer
from sklearn.tree import DecisionTreeClassifier

from segue.errors import InvalidArgument
from segue.models import signature as signature_module
from segue.models.signature import (
    ColumnSpec,
    SchemaWarning,
    Signature,
    TensorSpec,
    infer_signature,
    validate_input,
)


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


def people_signature(**nullable: bool) -> Signature:
    """age int64, income float64, city string, member bool."""
    return Signature(
        (
            ColumnSpec("age", "int64", nullable.get("age", False)),
            ColumnSpec("income", "float64", nullable.get("income", False)),
            ColumnSpec("city", "string", nullable.get("city", False)),
            ColumnSpec("member", "bool"),
        )
    )


def people(rows: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": np.arange(30, 30 + rows, dtype="int64"),
            "income": np.linspace(1000.0, 2000.0, rows),
            "city": [f"city{i}" for i in range(rows)],
            "member": [i % 2 == 0 for i in range(rows)],
        }
    )


def raises(match: str):
    return pytest.raises(InvalidArgument, match=match)


# --- inference -------------------------------------------------------------------------------


def test_infer_from_breast_cancer_frame_with_classes(cancer):
    X, y = cancer
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    sig = infer_signature(X[:5], model.predict(X[:5]), classes=model.classes_)
    assert sig.column_names == X.columns.tolist()
    assert all(spec == ColumnSpec(spec.name, "float64", False) for spec in sig.inputs)
    assert sig.outputs == TensorSpec("int64", (-1,))
    assert sig.classes == (0, 1)
    assert [type(label) for label in sig.classes] == [int, int]


def test_infer_from_numpy_arrays(cancer):
    X, y = cancer
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X.to_numpy(), y)
    sig = infer_signature(
        X.to_numpy()[:5],
        model.predict_proba(X.to_numpy()[:5]),
        classes=np.array(["benign", "malignant"], dtype=object),
    )
    assert sig.inputs == TensorSpec("float64", (-1, 30))
    assert sig.outputs == TensorSpec("float64", (-1, 2))
    assert sig.classes == ("benign", "malignant")
    assert sig.column_names is None


def test_infer_from_a_frame_of_every_kind():
    frame = pd.DataFrame(
        {
            "n": [1, 2],
            "small": np.array([1, 2], dtype="int8"),
            "u": np.array([1, 2], dtype="uint16"),
            "x": np.array([0.5, np.nan], dtype="float32"),
            "s": ["a", None],
            "o": pd.Series(["a", "b"], dtype=object),
            "b": [True, False],
            "c": pd.Categorical(["a", "b"]),
            "t": pd.to_datetime(["2024-01-01", "2024-01-02"]).as_unit("ns"),
            "tz": pd.to_datetime(["2024-01-01", None]).as_unit("us").tz_localize("UTC"),
            "d": pd.to_timedelta([1, 2], unit="s").as_unit("s"),
            "ni": pd.array([1, None], dtype="Int64"),
        }
    )
    inputs = infer_signature(frame).inputs
    assert [(s.name, s.dtype, s.nullable) for s in inputs] == [
        ("n", "int64", False),
        ("small", "int8", False),
        ("u", "uint16", False),
        ("x", "float32", True),
        ("s", "string", True),
        ("o", "string", False),
        ("b", "bool", False),
        ("c", "category", False),
        ("t", "datetime64[ns]", False),
        ("tz", "datetime64[us, UTC]", True),
        ("d", "timedelta64[s]", False),
        ("ni", "int64", True),
    ]


@pytest.mark.parametrize(
    "example",
    [
        [{"age": 31, "city": "Oslo"}, {"age": 45, "city": "Lima"}],
        {"age": [31, 45], "city": ["Oslo", "Lima"]},
        {"age": 31, "city": "Oslo"},
    ],
    ids=["records", "dict of columns", "one record"],
)
def test_infer_from_json_like_examples(example):
    assert infer_signature(example).inputs == (
        ColumnSpec("age", "int64"),
        ColumnSpec("city", "string"),
    )


def test_records_with_missing_values_make_nullable_columns():
    inputs = infer_signature([{"age": 31.5, "city": "Oslo"}, {"age": None}]).inputs
    assert inputs == (ColumnSpec("age", "float64", True), ColumnSpec("city", "string", True))


def test_infer_tensor_from_nested_lists_and_text():
    assert infer_signature([[1, 2], [3, 4]]).inputs == TensorSpec("int64", (-1, 2))
    assert infer_signature(["good film", "bad film"]).inputs == TensorSpec("string", (-1,))
    assert infer_signature(np.array(["a", "b"], dtype=object)).inputs == TensorSpec("string", (-1,))


def test_infer_predictions_as_a_frame():
    sig = infer_signature(np.zeros((2, 3)), pd.DataFrame({"score": [0.1, 0.9]}))
    assert sig.outputs == (ColumnSpec("score", "float64"),)


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("text", r"^input_example: expected .*got str"),
        (pd.DataFrame({"a": []}), r"^input_example: no rows"),
        (np.array(3.0), r"^input_example: no rows"),
        (np.zeros((0, 3)), r"^input_example: no rows"),
        (pd.DataFrame({"a": [None, None]}), r"column 'a' has only missing values"),
        (pd.DataFrame({"a": [[1], [2]]}), r"column 'a' holds list values"),
        (pd.DataFrame({"a": [1, "x"]}), r"column 'a' holds mixed values \(int, str\)"),
        (np.array([{"a": 1}, 2], dtype=object), r"cannot be a tensor"),
        ([[1, 2], [3]], r"^input_example: a list must be rectangular"),
    ],
)
def test_infer_rejects_what_has_no_signature(example, message):
    with raises(message):
        infer_signature(example)


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        (np.array([0, 1, 2]), (0, 1, 2)),
        (np.array([0.5, 1.5], dtype="float32"), (0.5, 1.5)),
        (np.array([True, False]), (True, False)),
        (["no", "yes"], ("no", "yes")),
        (pd.Index(["a", "b"]), ("a", "b")),
    ],
)
def test_classes_become_plain_python_scalars(classes, expected):
    sig = infer_signature(np.zeros((1, 2)), classes=classes)
    assert sig.classes == expected
    assert [type(c) for c in sig.classes] == [type(c) for c in expected]


@pytest.mark.parametrize("classes", [[], [float("nan")], [None], [[1]], "ab"])
def test_bad_classes_are_rejected(classes):
    with raises(r"^classes: "):
        Signature(TensorSpec("float64", (-1, 2)), classes=classes)


# --- the signature as data -------------------------------------------------------------------


def test_round_trip_through_json_columns(cancer):
    X, _ = cancer
    sig = infer_signature(X[:5], np.zeros(5, dtype="int64"), classes=["a", 2, 2.5, True])
    again = Signature.from_dict(json.loads(json.dumps(sig.to_dict())))
    assert again == sig
    assert [type(c) for c in again.classes] == [str, int, float, bool]


def test_round_trip_through_json_tensor():
    sig = Signature(TensorSpec("float32", (-1, 28, 28)), (ColumnSpec("label", "string", True),))
    assert sig.to_dict() == {
        "inputs": {"type": "tensor", "dtype": "float32", "shape": [-1, 28, 28]},
        "outputs": {
            "type": "columns",
            "columns": [{"name": "label", "dtype": "string", "nullable": True}],
        },
        "classes": None,
    }
    assert Signature.from_dict(json.loads(json.dumps(sig.to_dict()))) == sig


column_specs = st.builds(
    ColumnSpec,
    name=st.text(max_size=8),
    dtype=st.sampled_from(
        ["bool", "int8", "uint64", "float32", "string", "category", "datetime64[ns, UTC]"]
    ),
    nullable=st.booleans(),
)
tensor_specs = st.builds(
    TensorSpec,
    dtype=st.sampled_from(["float32", "int64", "bool", "string", "datetime64[s]"]),
    shape=st.lists(st.integers(-1, 64), max_size=4).map(tuple),
)
class_labels = st.one_of(
    st.text(), st.integers(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False)
)


column_lists = st.lists(column_specs, min_size=1, unique_by=lambda s: s.name)


@given(
    inputs=tensor_specs | column_lists,
    outputs=st.none() | tensor_specs | column_lists,
    classes=st.none() | st.lists(class_labels, min_size=1),
)
def test_any_signature_round_trips_through_json(inputs, outputs, classes):
    sig = Signature(inputs, outputs, classes)
    assert Signature.from_dict(json.loads(json.dumps(sig.to_dict()))) == sig


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"inputs": None},
        {"inputs": {"type": "tensor", "dtype": "float32"}},
        {"inputs": {"type": "tensor", "dtype": "float", "shape": [-1]}},
        {"inputs": {"type": "tensor", "dtype": "object", "shape": [-1]}},
        {"inputs": {"type": "tensor", "dtype": "float32", "shape": [-2]}},
        {"inputs": {"type": "columns", "columns": []}},
        {"inputs": {"type": "columns", "columns": [{"name": "a"}]}},
        {"inputs": {"type": "columns", "columns": [{"name": "a", "dtype": "object"}]}},
        {"inputs": {"type": "columns", "columns": [{"name": "a", "dtype": "int64"}] * 2}},
        {"inputs": {"type": "tensor", "dtype": "int64", "shape": [-1]}, "classes": "ab"},
    ],
)
def test_from_dict_rejects_malformed_signatures(data):
    with raises(r"^signature: "):
        Signature.from_dict(data)


def test_signature_normalises_lists_and_is_hashable():
    sig = Signature([ColumnSpec("a", "int64")], TensorSpec("int64", [-1]), np.array([1, 2]))
    assert sig.inputs == (ColumnSpec("a", "int64"),)
    assert sig.outputs.shape == (-1,)
    assert sig.classes == (1, 2)
    same = Signature((ColumnSpec("a", "int64"),), TensorSpec("int64", (-1,)), (1, 2))
    assert sig == same
    assert hash(sig) == hash(same)


# --- validate_input: DataFrames ----------------------------------------------------------------


def test_matching_frame_is_returned_unchanged(cancer):
    X, _ = cancer
    sig = infer_signature(X[:5])
    for frame in (X.iloc[:1], X):
        assert validate_input(frame, sig) is frame


def test_matching_frame_with_object_strings_and_nullable_values_is_returned_unchanged():
    sig = people_signature(income=True, city=True)
    frame = people(3)
    frame["income"] = [1.0, np.nan, 3.0]
    frame["city"] = pd.Series(["a", None, "c"], dtype=object)
    assert validate_input(frame, sig) is frame


def test_frame_with_columns_in_another_order_is_reordered():
    frame = people(2)
    result = validate_input(frame[["member", "city", "income", "age"]], people_signature())
    assert result.columns.tolist() == ["age", "income", "city", "member"]
    pd.testing.assert_frame_equal(result, frame, check_dtype=False)


def test_extra_columns_are_dropped_with_a_warning():
    frame = people(2).assign(foo=1, bar="x")
    with pytest.warns(SchemaWarning, match=r"^input: ignoring extra column\(s\) 'foo', 'bar'$"):
        result = validate_input(frame, people_signature())
    assert result.columns.tolist() == ["age", "income", "city", "member"]


def test_missing_column_is_named_with_its_dtype():
    with raises(r"^input: missing column 'age' \(expected int64\)$"):
        validate_input(people(2).drop(columns="age"), people_signature())


def test_a_nullable_column_may_be_left_out_as_the_server_allows():
    sig = Signature((ColumnSpec("age", "int64"), ColumnSpec("income", "float64", True)))
    result = validate_input(pd.DataFrame({"age": [31, 45]}), sig)
    assert result.columns.tolist() == ["age", "income"]
    assert result["income"].isna().all()


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("age", ["x", "y"], r"^input: column 'age' expected int64, got string$"),
        ("age", [1.5, 2.0], r"^input: column 'age' expected int64, got float64$"),
        ("age", [True, False], r"^input: column 'age' expected int64, got bool$"),
        ("income", [True, False], r"^input: column 'income' expected float64, got bool$"),
        ("city", [1, 2], r"^input: column 'city' expected string, got int64$"),
        ("city", pd.Series([1, "a"], dtype=object), r"column 'city' expected string, got mixed"),
        ("member", [1, 0], r"^input: column 'member' expected bool, got int64$"),
    ],
)
def test_wrong_dtype_names_column_expected_and_got(column, values, message):
    frame = people(2)
    frame[column] = values
    with raises(message):
        validate_input(frame, people_signature())


@pytest.mark.parametrize(
    ("spec", "values", "expected"),
    [
        ("float64", np.array([1, 2], dtype="int64"), [1.0, 2.0]),
        ("float64", np.array([1, 2], dtype="uint8"), [1.0, 2.0]),
        ("float64", np.array([1.5, 2.5], dtype="float32"), [1.5, 2.5]),
        ("float32", np.array([1.5, 2.5], dtype="float64"), [1.5, 2.5]),
        ("float32", np.array([1, 2], dtype="int64"), [1.0, 2.0]),
        ("int64", np.array([1, 2], dtype="int8"), [1, 2]),
        ("int64", np.array([1, 2], dtype="uint32"), [1, 2]),
        ("int32", np.array([1, 2], dtype="int16"), [1, 2]),
        ("float64", pd.array([1, 2], dtype="Int64"), [1.0, 2.0]),
        ("int64", pd.array([1, 2], dtype="Int32"), [1, 2]),
    ],
)
def test_safe_widening_is_performed(spec, values, expected):
    sig = Signature((ColumnSpec("x", spec),))
    result = validate_input(pd.DataFrame({"x": values}), sig)
    assert result["x"].dtype == np.dtype(spec)
    assert result["x"].tolist() == expected


@pytest.mark.parametrize(
    ("spec", "dtype", "values", "words"),
    [
        ("int32", "int64", [1, 2**40], "from 1 to 1099511627776, out of range for int32"),
        ("uint8", "int8", [-1, 2], "from -1 to 2, out of range for uint8"),
        ("int64", "uint64", [1, 2**63], "from 1 to 9223372036854775808, out of range for int64"),
    ],
)
def test_a_typed_int_column_narrows_only_when_every_value_fits(spec, dtype, values, words):
    # The server reads the same frame sent as JSON by its values: one rule for both paths.
    sig = Signature((ColumnSpec("x", spec),))
    fits = validate_input(pd.DataFrame({"x": np.array([1, 2], dtype=dtype)}), sig)
    assert fits["x"].dtype == np.dtype(spec) and fits["x"].tolist() == [1, 2]
    with raises(rf"^input: column 'x' has values {re.escape(words)}"):
        validate_input(pd.DataFrame({"x": np.array(values, dtype=dtype)}), sig)


def test_missing_values_in_a_non_nullable_column_name_the_rows():
    frame = people(9)
    frame.loc[[3, 7], "income"] = np.nan
    message = (
        r"^input: column 'income' has missing values at row\(s\) 3, 7; "
        r"the model was trained without missing values$"
    )
    with raises(message):
        validate_input(frame, people_signature())


def test_missing_values_beyond_ten_rows_are_counted():
    frame = people(15)
    frame["income"] = np.nan
    with raises(r"row\(s\) 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 5 more;"):
        validate_input(frame, people_signature())


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("city", pd.Series(["a", None], dtype=object)),
        ("city", pd.Series(["a", None], dtype="string")),
        ("income", pd.array([1.0, None], dtype="Float64")),
    ],
)
def test_missing_values_are_found_in_every_kind_of_column(column, values):
    frame = people(2)
    frame[column] = values
    with raises(rf"^input: column '{column}' has missing values at row\(s\) 1;"):
        validate_input(frame, people_signature())


@pytest.mark.parametrize(
    ("spec", "values"),
    [
        ("int64", pd.array([1, 2], dtype="Int64")),
        ("bool", pd.array([True, False], dtype="boolean")),
        ("float64", pd.array([1.5, 2.5], dtype="Float64")),
    ],
)
def test_nullable_dtypes_without_missing_values_become_numpy(spec, values):
    sig = Signature((ColumnSpec("x", spec),))
    result = validate_input(pd.DataFrame({"x": values}), sig)
    assert result["x"].dtype == np.dtype(spec)
    assert validate_input(result, sig) is result


def test_nullable_int_column_keeps_its_missing_values():
    sig = Signature((ColumnSpec("x", "int64", nullable=True),))
    frame = pd.DataFrame({"x": pd.array([1, None], dtype="Int32")})
    assert validate_input(frame, sig)["x"].dtype == "Int64"
    with raises(r"^input: column 'x' has missing values at row\(s\) 1;"):
        validate_input(frame, Signature((ColumnSpec("x", "int64"),)))


def test_missing_values_are_allowed_in_nullable_columns():
    frame = people(3)
    frame["income"] = [np.nan, 1.0, np.nan]
    frame["city"] = ["a", None, "c"]
    result = validate_input(frame, people_signature(income=True, city=True))
    assert result["income"].isna().tolist() == [True, False, True]
    assert result["city"].isna().tolist() == [False, True, False]


def test_missing_datetimes_are_found():
    sig = Signature((ColumnSpec("t", "datetime64[us]"),))
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None]).as_unit("us")})
    with raises(r"^input: column 't' has missing values at row\(s\) 1;"):
        validate_input(frame, sig)


def test_non_str_column_labels_are_matched_as_strings():
    sig = Signature((ColumnSpec("0", "float64"), ColumnSpec("1", "float64")))
    result = validate_input(pd.DataFrame(np.eye(2)), sig)
    assert result.columns.tolist() == ["0", "1"]


def test_multiindex_columns_do_not_match_names():
    sig = Signature((ColumnSpec("a", "float64"),))
    frame = pd.DataFrame([[1.0]], columns=pd.MultiIndex.from_tuples([("a", "x")]))
    with raises(r"^input: missing column 'a' \(expected float64\)$"):
        validate_input(frame, sig)


def test_duplicate_columns_are_an_error():
    frame = pd.DataFrame([[1.0, 2.0]], columns=["x", "x"])
    with raises(r"^input: column 'x' appears more than once$"):
        validate_input(frame, Signature((ColumnSpec("x", "float64"),)))


def test_the_index_of_a_frame_is_kept():
    frame = people(2).set_axis([10, 20])[["city", "age", "income", "member"]]
    assert validate_input(frame, people_signature()).index.tolist() == [10, 20]


def test_time_and_category_columns():
    sig = Signature(
        (
            ColumnSpec("t", "datetime64[ns]"),
            ColumnSpec("tz", "datetime64[us, UTC]"),
            ColumnSpec("c", "category"),
        )
    )
    records = [{"t": "2024-01-02T03:04:05", "tz": "2024-01-02T03:04:05+01:00", "c": "a"}]
    result = validate_input(records, sig)
    assert result["t"].tolist() == [pd.Timestamp("2024-01-02T03:04:05")]
    assert result["tz"].tolist() == [pd.Timestamp("2024-01-02T02:04:05", tz="UTC")]
    assert result["c"].dtype == "category"
    assert validate_input(result, sig) is result
    with raises(r"^input: column 't' expected datetime64\[ns\], got values that do not convert"):
        validate_input([{**records[0], "t": "not a date"}], sig)
    with raises(r"^input: column 'tz' expected datetime64\[us, UTC\], got datetime64\[\w+\]$"):
        validate_input([{**records[0], "tz": "2024-01-02"}], sig)


# --- validate_input: other column inputs -------------------------------------------------------


def test_records_become_a_frame_in_signature_order():
    records = [
        {"city": "Oslo", "member": True, "income": 1, "age": 31},
        {"city": "Lima", "member": False, "income": 2.5, "age": 45},
    ]
    result = validate_input(records, people_signature())
    assert result.columns.tolist() == ["age", "income", "city", "member"]
    assert result.dtypes.astype(str).tolist()[:2] == ["int64", "float64"]
    assert result["income"].tolist() == [1.0, 2.5]
    assert result["member"].dtype == bool


def test_a_dict_of_columns_and_a_single_record():
    sig = people_signature()
    columns = {"age": [31, 45], "income": [1.0, 2.0], "city": ["a", "b"], "member": [True, False]}
    assert validate_input(columns, sig)["age"].tolist() == [31, 45]
    record = {"age": 31, "income": 1.0, "city": "a", "member": True}
    result = validate_input(record, sig)
    assert result.shape == (1, 4)
    assert validate_input(result, sig) is result


def test_a_dict_of_typed_arrays_keeps_their_dtype_rules():
    sig = Signature((ColumnSpec("x", "int32"),))
    with raises(r"^input: column 'x' expected int32, got float64$"):
        validate_input({"x": np.array([1.5, 2.0])}, sig)
    assert validate_input({"x": pd.Series([1, 2], dtype="int16")}, sig)["x"].dtype == "int32"


def test_a_2d_array_is_mapped_to_the_signature_columns(cancer):
    X, _ = cancer
    sig = infer_signature(X[:5])
    result = validate_input(X.to_numpy()[:3], sig)
    pd.testing.assert_frame_equal(result, X.iloc[:3].reset_index(drop=True))
    assert validate_input(result, sig) is result


def test_a_2d_array_of_the_wrong_width_or_rank():
    sig = Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "float64")))
    with raises(r"^input: the array has 3 columns, the model takes 2 \('a', 'b'\)$"):
        validate_input(np.zeros((1, 3)), sig)
    with raises(r"^input: expected a 2-D array with 2 columns, got a 1-D array"):
        validate_input(np.zeros(2), sig)


def test_a_structured_array_is_a_frame():
    sig = Signature((ColumnSpec("id", "int64"), ColumnSpec("score", "float64")))
    array = np.array([(1, 2.5), (3, 4.5)], dtype=[("id", "i4"), ("score", "f8")])
    result = validate_input(array, sig)
    assert result.dtypes.astype(str).tolist() == ["int64", "float64"]
    with raises(r"^input: expected a 2-D array with 2 columns, got a 2-D structured array"):
        validate_input(array.reshape(1, 2), sig)


def test_rows_as_lists():
    sig = Signature((ColumnSpec("a", "int64"), ColumnSpec("b", "string")))
    assert validate_input([[1, "x"], (2, "y")], sig)["b"].tolist() == ["x", "y"]
    with raises(r"^input: each row must hold 2 values"):
        validate_input([[1, "x"], [2]], sig)


def test_json_ints_widen_to_float_and_only_whole_floats_fit_an_int():
    # As the server reads JSON (segue.serving.columns.whole): 2.0 is an int, 2.5 is not.
    sig = Signature((ColumnSpec("f", "float32"), ColumnSpec("i", "int64")))
    result = validate_input([{"f": 1, "i": 2}, {"f": 2, "i": 3}], sig)
    assert result["f"].dtype == "float32"
    assert validate_input([{"f": 1, "i": 2.0}], sig)["i"].tolist() == [2]
    with raises(r"^input: column 'i' expected int64, got float64$"):
        validate_input([{"f": 1, "i": 2.5}], sig)
    with raises(r"^input: column 'i' expected int64, got float64$"):
        validate_input([{"f": 1, "i": 2.0**60}], sig)  # past 2**53: maybe a rounded literal
    for infinite in (float("inf"), float("-inf")):  # refused, without a NumPy warning
        with raises(r"^input: column 'i' expected int64, got float64$"):
            validate_input([{"f": 1, "i": infinite}], sig)
    with raises(r"^input: column 'i' expected int64, got bool$"):
        validate_input([{"f": 1, "i": True}], sig)


def test_json_ints_narrow_when_they_fit():
    sig = Signature((ColumnSpec("small", "int8"), ColumnSpec("big", "uint64")))
    result = validate_input([{"small": -5, "big": 2**64 - 1}], sig)
    assert result.dtypes.astype(str).tolist() == ["int8", "uint64"]
    assert result["big"].tolist() == [2**64 - 1]
    with raises(r"^input: column 'small' has values from 1 to 300, out of range for int8"):
        validate_input([{"small": 1, "big": 0}, {"small": 300, "big": 0}], sig)


def test_missing_record_values():
    sig = people_signature(age=True)
    records = [{"age": 1, "income": 1.0, "city": "a", "member": True}, {"income": 2.0}]
    with raises(r"^input: column 'city' has missing values at row\(s\) 1;"):
        validate_input(records, sig)
    records[1].update(city="b", member=False)
    result = validate_input(records, sig)
    assert result["age"].dtype == "Int64"
    assert result["age"].isna().tolist() == [False, True]


def test_a_nullable_column_with_only_missing_values():
    sig = Signature((ColumnSpec("x", "float64", True), ColumnSpec("s", "string", True)))
    result = validate_input([{"x": None, "s": None}], sig)
    assert result.isna().all().all()


@pytest.mark.parametrize(
    "data",
    [[], {"age": []}, pd.DataFrame(columns=["age", "income", "city", "member"]), np.zeros((0, 4))],
)
def test_empty_input_has_no_rows(data):
    with raises(r"^input: no rows$"):
        validate_input(data, people_signature())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("age", r"^input: expected a DataFrame, .*got str$"),
        (None, r"got NoneType$"),
        (3.5, r"got float$"),
        ([1, 2], r"^input: a list must hold records \(dicts\) or rows"),
        ([{"age": 1}, [1]], r"^input: a list must hold records"),
        ({"age": [1, 2], "income": [1.0]}, r"^input: columns have different lengths \[1, 2\]$"),
        ({"age": np.zeros((2, 2))}, r"^input: column 'age' is a 2-D array; expected 1-D$"),
        (pd.Series([1, 2]), r"got Series$"),
    ],
)
def test_unsupported_column_inputs(data, message):
    with raises(message):
        validate_input(data, people_signature())


# --- validate_input: tensors -------------------------------------------------------------------


def test_matching_array_is_returned_unchanged():
    sig = Signature(TensorSpec("float32", (-1, 4)))
    array = np.zeros((3, 4), dtype="float32")
    assert validate_input(array, sig) is array


def test_tensor_shape_is_checked():
    sig = Signature(TensorSpec("float32", (-1, 4)))
    with raises(r"^input: expected shape \(-1, 4\), got \(2, 3\)$"):
        validate_input(np.zeros((2, 3), dtype="float32"), sig)
    with raises(r"^input: expected shape \(-1, 4\), got \(1, 2, 4\)$"):
        validate_input(np.zeros((1, 2, 4), dtype="float32"), sig)
    with raises(r"^input: expected shape \(-1, 4\), got \(\)$"):
        validate_input(np.array(1.0, dtype="float32"), sig)
    images = Signature(TensorSpec("uint8", (-1, 2, -1)))
    assert validate_input(np.zeros((5, 2, 7), dtype="uint8"), images).shape == (5, 2, 7)


def test_a_1d_input_of_one_row():
    sig = Signature(TensorSpec("float64", (-1, 3)))
    assert validate_input([1, 2, 3], sig).tolist() == [[1.0, 2.0, 3.0]]
    assert validate_input(np.array([1.0, 2.0, 3.0]), sig).shape == (1, 3)
    with raises(r"^input: expected shape \(-1, 3\), got \(2,\)$"):
        validate_input([1.0, 2.0], sig)


@pytest.mark.parametrize(
    ("spec", "data", "dtype"),
    [
        ("float32", np.ones((2, 2), dtype="float64"), "float32"),
        ("float64", np.ones((2, 2), dtype="int64"), "float64"),
        ("float32", [[1, 2], [3, 4]], "float32"),
        ("int64", np.ones((2, 2), dtype="int32"), "int64"),
        ("int32", [[1, 2], [3, 4]], "int32"),
        ("float64", pd.DataFrame({"a": [1, 2], "b": [3, 4]}), "float64"),
    ],
)
def test_tensor_casts(spec, data, dtype):
    result = validate_input(data, Signature(TensorSpec(spec, (-1, 2))))
    assert isinstance(result, np.ndarray)
    assert result.dtype == dtype
    assert result.shape == (2, 2)


@pytest.mark.parametrize(
    ("spec", "data", "message"),
    [
        ("int64", np.ones((1, 2)), r"^input: expected int64 values, got float64$"),
        ("float32", np.ones((1, 2), dtype=bool), r"^input: expected float32 values, got bool$"),
        ("int32", np.ones((1, 2), dtype="int64"), r"^input: expected int32 values, got int64$"),
        ("int8", [[1, 300]], r"^input: the array has values out of range for int8$"),
        ("float32", [[1.0, 1e300]], r"^input: the array has values out of range for float32$"),
        ("float32", [["a", "b"]], r"^input: expected float32 values, got string$"),
        ("float32", [[1.0, None]], r"^input: expected float32 values, got missing values$"),
        ("float32", [[{}, 1]], r"^input: expected float32 values, got mixed values \(dict, int\)$"),
        ("float32", [[1.0, 2.0], [3.0]], r"^input: nested lists must be rectangular"),
        ("float32", {"a": [1.0, 2.0]}, r"^input: expected a NumPy array, .* got dict$"),
        ("float32", "12", r"got str$"),
        ("float32", None, r"got NoneType$"),
        ("float32", [], r"^input: no rows$"),
        ("float32", np.zeros((0, 2)), r"^input: no rows$"),
        ("string", [[1, 2]], r"^input: expected string values, got int64$"),
    ],
)
def test_tensor_errors(spec, data, message):
    with raises(message):
        validate_input(data, Signature(TensorSpec(spec, (-1, 2))))


def test_string_tensors():
    sig = Signature(TensorSpec("string", (-1,)))
    assert validate_input(["good film", "bad film"], sig).tolist() == ["good film", "bad film"]
    array = np.array(["a", "b"])
    assert validate_input(array, sig) is array
    with raises(r"^input: expected string values, got mixed values \(int, str\)$"):
        validate_input(["a", 1], sig)


# --- the fast path's internals -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values", "forbidden"),
    [
        ("income", [1.0, 2.0], False),
        ("income", [1.0, np.nan], True),
        ("city", pd.Series(["a", "b"], dtype=object), False),
        ("city", pd.Series(["a", None], dtype=object), True),
        ("city", pd.Series(["a", 1], dtype=object), True),
        ("city", pd.Series(["a", None], dtype="string"), True),
    ],
)
def test_block_checks_agree_with_the_public_api_fallback(column, values, forbidden):
    plan = signature_module._ColumnPlan(people_signature().inputs)
    frame = people(2)
    frame[column] = values
    public = signature_module._column_blocks(frame)
    internal = signature_module._frame_blocks(frame)
    assert signature_module._has_forbidden_values(public, plan) is forbidden
    assert signature_module._has_forbidden_values(internal, plan) is forbidden


# --- properties --------------------------------------------------------------------------------

NAMES = ["age", "income", "city", "member"]
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=3), children, max_size=5)
    ),
    max_leaves=25,
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3)
records = st.lists(st.dictionaries(st.sampled_from([*NAMES, "extra"]), scalars), max_size=4)
columns = st.dictionaries(
    st.sampled_from(NAMES), st.lists(scalars, min_size=1, max_size=3), min_size=1
)

valid_values = {
    "age": st.integers(-(2**63), 2**63 - 1),
    "income": st.integers(-(2**53), 2**53) | st.floats(allow_nan=False),
    "city": st.text(max_size=5),
    "member": st.booleans(),
}
valid_records = st.lists(st.fixed_dictionaries(valid_values), min_size=1, max_size=5)
# Mostly right, sometimes not: reaches the conversions, not only the first check that fails.
near_valid_records = st.lists(
    st.fixed_dictionaries(
        {name: values | scalars for name, values in valid_values.items()},
        optional={"extra": scalars},
    ),
    min_size=1,
    max_size=4,
)


def check_column_result(result: object, sig: Signature) -> None:
    assert isinstance(result, pd.DataFrame)
    assert result.columns.tolist() == sig.column_names
    assert len(result) > 0
    assert validate_input(result, sig) is result  # what the slow path returns, the fast accepts


@settings(max_examples=300, deadline=None)
@given(data=json_like | records | columns | near_valid_records, nullable=st.booleans())
def test_any_json_like_value_for_columns_is_accepted_or_invalid(data, nullable):
    sig = people_signature(income=nullable, city=nullable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)
        try:
            result = validate_input(data, sig)
        except InvalidArgument as exc:
            assert str(exc).startswith("input: ")
        else:
            check_column_result(result, sig)


@settings(max_examples=200, deadline=None)
@given(
    data=json_like | st.lists(st.lists(scalars, max_size=3), max_size=3),
    spec=st.sampled_from(
        [TensorSpec("float32", (-1, 3)), TensorSpec("int8", (-1,)), TensorSpec("string", (-1,))]
    ),
)
def test_any_json_like_value_for_tensors_is_accepted_or_invalid(data, spec):
    sig = Signature(spec)
    try:
        result = validate_input(data, sig)
    except InvalidArgument as exc:
        assert str(exc).startswith("input: ")
    else:
        assert isinstance(result, np.ndarray)
        assert result.ndim == len(spec.shape)
        assert all(want in (-1, got) for want, got in zip(spec.shape, result.shape, strict=True))
        if spec.dtype != "string":
            assert result.dtype == spec.dtype


@given(valid_records)
def test_valid_records_are_accepted_with_their_values(rows):
    result = validate_input(rows, people_signature())
    check_column_result(result, people_signature())
    assert result["age"].tolist() == [row["age"] for row in rows]
    assert result["city"].tolist() == [row["city"] for row in rows]
    assert result["income"].tolist() == [float(row["income"]) for row in rows]


def test_a_category_column_takes_int_and_bool_labels_as_json_carries_them():
    sig = Signature((ColumnSpec("tier", "category"),))
    frame = pd.DataFrame({"tier": pd.Categorical([1, 2, 1])})

    from_frame = validate_input(frame, sig)
    from_records = validate_input([{"tier": 1}, {"tier": 2}, {"tier": 1}], sig)

    assert from_frame["tier"].tolist() == from_records["tier"].tolist() == [1, 2, 1]
    assert isinstance(from_records["tier"].dtype, pd.CategoricalDtype)
    with raises(r"^input: column 'tier' expected category, got mixed values"):
        validate_input([{"tier": 1}, {"tier": "gold"}], sig)


def test_a_float_frame_column_of_whole_numbers_fits_an_int_column_as_its_json_does():
    # pandas makes ints with a missing value floats; the server reads their JSON 3.0 as 3.
    sig = Signature((ColumnSpec("visits", "int32", nullable=True), ColumnSpec("n", "int64")))
    frame = pd.DataFrame({"visits": [3.0, np.nan], "n": [1.0, 2.0]})

    result = validate_input(frame, sig)

    assert result["visits"].tolist()[0] == 3 and pd.isna(result["visits"].tolist()[1])
    assert result["n"].dtype == np.int64 and result["n"].tolist() == [1, 2]
