from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segue.data.frames import dataset_digest, dataset_schema, to_frame
from segue.errors import InvalidArgument

# --- to_frame: accepted inputs ---------------------------------------------------------------


def test_dataframe_with_str_columns_is_returned_as_is():
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert to_frame(df) is df


def test_dataframe_column_names_become_str():
    df = pd.DataFrame(np.arange(6).reshape(3, 2))
    frame = to_frame(df)
    assert frame.columns.tolist() == ["0", "1"]
    assert frame["1"].tolist() == [1, 3, 5]
    assert df.columns.tolist() == [0, 1]  # the caller's frame is left alone


@pytest.mark.parametrize(("name", "column"), [("age", "age"), (None, "0"), (7, "7")])
def test_series_becomes_one_column(name, column):
    frame = to_frame(pd.Series([1.5, 2.5], name=name))
    assert frame.columns.tolist() == [column]
    assert frame[column].tolist() == [1.5, 2.5]


def test_1d_array_becomes_column_0():
    frame = to_frame(np.array([3, 1, 2]))
    assert frame.columns.tolist() == ["0"]
    assert frame["0"].tolist() == [3, 1, 2]
    assert frame["0"].dtype == np.int64


def test_empty_1d_array():
    frame = to_frame(np.array([], dtype=float))
    assert frame.shape == (0, 1)


def test_2d_array_columns_are_numbered():
    frame = to_frame(np.arange(6.0).reshape(2, 3))
    assert frame.columns.tolist() == ["0", "1", "2"]
    assert frame.to_numpy().tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_structured_array_has_one_column_per_field():
    array = np.array([(1, 2.5), (3, 4.5)], dtype=[("id", "i4"), ("score", "f8")])
    frame = to_frame(array)
    assert frame.columns.tolist() == ["id", "score"]
    assert frame["score"].tolist() == [2.5, 4.5]


def test_list_of_records_fills_missing_keys():
    frame = to_frame([{"a": 1, "b": "x"}, {"a": 2}, {"b": "z", 3: True}])
    assert frame.columns.tolist() == ["a", "b", "3"]
    assert frame["a"].isna().tolist() == [False, False, True]
    assert frame["b"].tolist()[::2] == ["x", "z"]


def test_list_of_rows():
    frame = to_frame([[1, "a"], (2, "b"), np.array([3, "c"], dtype=object)])
    assert frame.columns.tolist() == ["0", "1"]
    assert frame["0"].tolist() == [1, 2, 3]
    assert frame["1"].tolist() == ["a", "b", "c"]


def test_dict_of_columns():
    frame = to_frame({"x": [1, 2], "y": np.array([0.5, 1.5]), "z": ("a", "b"), 4: [True, False]})
    assert frame.columns.tolist() == ["x", "y", "z", "4"]
    assert frame["y"].tolist() == [0.5, 1.5]
    assert frame["4"].dtype == bool


def test_dict_series_are_taken_by_position_not_index():
    frame = to_frame({"x": pd.Series([1, 2], index=[10, 20]), "y": [3, 4]})
    assert frame["x"].tolist() == [1, 2]
    assert frame["y"].tolist() == [3, 4]


def test_dict_keeps_extension_dtypes():
    frame = to_frame({"c": pd.Series(["a", "b"], dtype="category")})
    assert isinstance(frame["c"].dtype, pd.CategoricalDtype)


@pytest.mark.parametrize("data", [[], {}])
def test_empty_list_or_dict_is_an_empty_frame(data):
    assert to_frame(data).shape == (0, 0)


# --- to_frame: rejected inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (3, "got int"),
        ("a,b\n1,2", "got str"),
        (None, "got NoneType"),
        ((1, 2), "got tuple"),
        ({1, 2}, "got set"),
        (np.float64(1.0), "got float64"),
        (np.array(1.0), "got a 0-D array"),
        (np.zeros((2, 2, 2)), "got a 3-D array of shape (2, 2, 2)"),
        ([[1, 2], [3]], "rows have different lengths (1, 2)"),
        ([1, 2, 3], "item 0 is int"),
        ([{"a": 1}, [1]], "item 0 is dict"),
        ([[1], "ab"], "item 1 is str"),
        ([np.zeros((1, 1))], "item 0 is ndarray"),
        ({"a": 1}, "column 'a' is int"),
        ({"a": [1], "b": "xy"}, "column 'b' is str"),
        ({"a": np.zeros((2, 2))}, "column 'a' is a 2-D array"),
        ({"a": [1, 2], "b": [1]}, "'a' has 2, 'b' has 1"),
        ({1: [1], "1": [2]}, "duplicate column names ['1']"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column names ['a']"),
        (pd.DataFrame([[1, 2]], columns=[1, "1"]), "duplicate column names ['1']"),
    ],
)
def test_rejected_inputs_name_the_problem(data, message):
    with pytest.raises(InvalidArgument) as excinfo:
        to_frame(data)
    assert str(excinfo.value).startswith("data: ")
    assert message in str(excinfo.value)


def test_unknown_type_message_lists_what_is_accepted():
    with pytest.raises(InvalidArgument, match="expected a pandas DataFrame, a NumPy array"):
        to_frame(object())


# --- dataset_digest --------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31, 45, 27],
            "score": [0.5, np.nan, -1.25],
            "city": ["Oslo", None, "Lima"],
            "member": [True, False, True],
            "joined": pd.to_datetime(["2020-01-01", None, "2021-06-30"]),
            "tier": pd.Categorical(["a", "b", "a"]),
            "visits": pd.array([1, None, 3], dtype="Int64"),
        }
    )


def test_digest_is_sha256_hex():
    digest = dataset_digest(_frame())
    assert len(digest) == 64
    assert int(digest, 16) >= 0


def test_equal_frames_have_equal_digests():
    assert dataset_digest(_frame()) == dataset_digest(_frame())
    assert dataset_digest(_frame()) == dataset_digest(_frame().copy(deep=True))


def test_digest_ignores_the_index():
    df = _frame()
    assert dataset_digest(df) == dataset_digest(df.set_axis([10, 20, 30]))
    assert dataset_digest(df) == dataset_digest(df.set_axis(["x", "y", "z"]))


def test_digest_ignores_nan_bit_pattern_and_zero_sign():
    other_nan = np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)[0]
    a = pd.DataFrame({"x": [np.nan, 0.0]})
    b = pd.DataFrame({"x": [other_nan, -0.0]})
    assert a.equals(b)
    assert dataset_digest(a) == dataset_digest(b)


def test_digest_of_a_2d_block_frame_equals_that_of_separate_columns():
    block = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=["a", "b", "c"])
    columns = pd.DataFrame({name: block[name].to_numpy().copy() for name in block})
    assert dataset_digest(block) == dataset_digest(columns)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda df: df.assign(age=[31, 45, 28]), id="int value"),
        pytest.param(lambda df: df.assign(score=[0.5, 0.0, -1.25]), id="missing to value"),
        pytest.param(lambda df: df.assign(city=["Oslo", None, "Lim"]), id="string value"),
        pytest.param(lambda df: df.assign(member=[True, True, True]), id="bool value"),
        pytest.param(lambda df: df.assign(tier=pd.Categorical(["a", "a", "a"])), id="category"),
        pytest.param(lambda df: df.assign(visits=pd.array([1, 2, 3], dtype="Int64")), id="Int64"),
        pytest.param(
            lambda df: df.assign(joined=pd.to_datetime(["2020-01-02", None, "2021-06-30"])),
            id="datetime value",
        ),
        pytest.param(lambda df: df.rename(columns={"age": "Age"}), id="column name"),
        pytest.param(lambda df: df.astype({"age": "float64"}), id="dtype int to float"),
        pytest.param(lambda df: df.astype({"age": "int32"}), id="dtype int width"),
        pytest.param(lambda df: df.astype({"visits": "float64"}), id="dtype nullable"),
        pytest.param(lambda df: df.iloc[[1, 0, 2]], id="row order"),
        pytest.param(lambda df: df[df.columns[::-1]], id="column order"),
        pytest.param(lambda df: df.iloc[:2], id="fewer rows"),
        pytest.param(lambda df: df.drop(columns="tier"), id="fewer columns"),
    ],
)
def test_digest_changes_with_content(change):
    assert dataset_digest(change(_frame())) != dataset_digest(_frame())


def test_digest_of_empty_frames_depends_on_shape_and_schema():
    digests = {
        dataset_digest(pd.DataFrame()),
        dataset_digest(pd.DataFrame(index=range(3))),
        dataset_digest(pd.DataFrame({"a": np.array([], dtype=float)})),
        dataset_digest(pd.DataFrame({"a": np.array([], dtype=int)})),
    }
    assert len(digests) == 4


def test_digest_handles_unhashable_objects():
    df = pd.DataFrame({"x": [[1, 2], {"a": 1}, None]})
    assert dataset_digest(df) == dataset_digest(df.copy())
    assert dataset_digest(df) != dataset_digest(pd.DataFrame({"x": [[1, 3], {"a": 1}, None]}))


finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(st.lists(finite_floats, min_size=1, max_size=50), st.data())
def test_digest_changes_when_any_one_value_changes(values, data):
    position = data.draw(st.integers(0, len(values) - 1))
    new = data.draw(finite_floats.filter(lambda x: x != values[position]))
    changed = [*values[:position], new, *values[position + 1 :]]
    df = pd.DataFrame({"x": values, "s": [str(v) for v in values]})
    assert dataset_digest(df) == dataset_digest(pd.DataFrame({"x": values, "s": df["s"]}))
    assert dataset_digest(df) != dataset_digest(df.assign(x=changed))
    assert dataset_digest(df) != dataset_digest(df.assign(s=[str(v) for v in changed]))


@given(st.lists(st.text(max_size=5), min_size=2, max_size=20, unique=True))
def test_digest_is_sensitive_to_row_order(values):
    df = pd.DataFrame({"s": values})
    assert dataset_digest(df) != dataset_digest(df.iloc[::-1])
    assert dataset_digest(df) == dataset_digest(df.iloc[::-1].iloc[::-1])


# --- dataset_schema --------------------------------------------------------------------------


def test_schema_lists_names_and_dtypes_in_order():
    schema = dataset_schema(_frame())
    assert [column["name"] for column in schema] == list(_frame().columns)
    assert schema[:2] == [{"name": "age", "dtype": "int64"}, {"name": "score", "dtype": "float64"}]
    assert {"name": "member", "dtype": "bool"} in schema
    assert {"name": "tier", "dtype": "category"} in schema
    assert {"name": "visits", "dtype": "Int64"} in schema


def test_schema_of_non_str_columns_uses_str_names():
    assert dataset_schema(pd.DataFrame({0: [1.0]})) == [{"name": "0", "dtype": "float64"}]
