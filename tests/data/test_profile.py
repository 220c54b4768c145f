from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segue.data.profile import (
    QUANTILES,
    bin_counts,
    category_counts,
    column_kind,
    numeric_values,
    profile_frame,
)
from segue.errors import InvalidArgument

NUMERIC_KEYS = {
    "kind",
    "dtype",
    "count",
    "missing",
    "infinite",
    "n_unique",
    "min",
    "max",
    "mean",
    "std",
    "quantiles",
    "histogram",
}
CATEGORICAL_KEYS = {"kind", "dtype", "count", "missing", "n_unique", "top", "other_count"}
DATETIME_KEYS = {"kind", "dtype", "count", "missing", "min", "max"}


def _assert_plain_json(value) -> None:
    """Only JSON's own types, no NumPy scalars, no NaN or infinity."""
    if isinstance(value, dict):
        assert all(isinstance(key, str) for key in value)
        for item in value.values():
            _assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), repr(value)


def _round_trip(profile: dict) -> dict:
    _assert_plain_json(profile)
    return json.loads(json.dumps(profile, allow_nan=False))


def _assert_histogram_consistent(column: dict, values: np.ndarray, bins: int) -> None:
    edges, counts = column["histogram"]["edges"], column["histogram"]["counts"]
    assert sum(counts) == column["count"]
    assert len(counts) == len(edges) - 1
    assert len(edges) <= bins + 1
    assert edges[0] == column["min"]
    assert edges[-1] == column["max"]
    if column["min"] == column["max"]:
        assert edges == [column["min"]] * 2
    else:
        assert all(a < b for a, b in itertools.pairwise(edges))
        assert counts == np.histogram(values, bins=edges)[0].tolist()
    assert bin_counts(values, edges) == counts


# --- known data ------------------------------------------------------------------------------


def test_breast_cancer_matches_numpy():
    datasets = pytest.importorskip("sklearn.datasets")
    df = datasets.load_breast_cancer(as_frame=True).frame
    profile = _round_trip(profile_frame(df))
    assert profile["n_rows"] == 569
    assert profile["n_columns"] == 31
    assert list(profile["columns"]) == list(df.columns)
    for name, series in df.items():
        column, values = profile["columns"][name], series.to_numpy(dtype=float)
        assert set(column) == NUMERIC_KEYS
        assert column["kind"] == "numeric"
        assert column["dtype"] == str(series.dtype)
        assert (column["count"], column["missing"], column["infinite"]) == (569, 0, 0)
        assert column["n_unique"] == len(np.unique(values))
        assert column["min"] == values.min()
        assert column["max"] == values.max()
        assert column["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert column["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        expected = np.quantile(values, QUANTILES)
        for q, x in zip(QUANTILES, expected, strict=True):
            assert column["quantiles"][str(q)] == pytest.approx(x, rel=1e-12, abs=1e-300)
        _assert_histogram_consistent(column, values, bins=20)
    assert profile["columns"]["target"]["n_unique"] == 2
    assert profile["columns"]["target"]["min"] == 0
    assert isinstance(profile["columns"]["target"]["max"], int)


def _mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31.0, np.nan, 45.0, 27.0, np.nan, 60.0, 31.0, 38.0],
            "visits": pd.array([1, None, 3, 3, 5, None, 7, 3], dtype="Int64"),
            "count": np.array([4, 1, 4, 2, 9, 4, 1, 0], dtype=np.int64),
            "city": ["Oslo", "Lima", None, "Oslo", "Kyiv", "Oslo", "Lima", np.nan],
            "tier": pd.Categorical(["b", "a", "b", None, "b", "a", "c", "b"], ["a", "b", "c", "z"]),
            "member": [True, False, True, True, False, True, True, True],
            "opted_in": pd.array([True, None, False, True, None, None, True, True], "boolean"),
            "joined": pd.to_datetime(
                ["2020-01-05", None, "2019-03-01", "2021-12-31", "2020-06-01", None, None, None]
            ),
        }
    )


def test_numeric_column_with_missing_values():
    column = _round_trip(profile_frame(_mixed_frame()))["columns"]["age"]
    values = np.array([31.0, 45.0, 27.0, 60.0, 31.0, 38.0])
    assert column["kind"] == "numeric"
    assert (column["count"], column["missing"], column["infinite"]) == (6, 2, 0)
    assert (column["min"], column["max"], column["n_unique"]) == (27.0, 60.0, 5)
    assert column["mean"] == pytest.approx(values.mean())
    assert column["std"] == pytest.approx(values.std(ddof=1))
    assert column["quantiles"]["0.5"] == pytest.approx(np.median(values))
    _assert_histogram_consistent(column, values, bins=20)


def test_nullable_and_numpy_integers_report_integer_bounds():
    columns = _round_trip(profile_frame(_mixed_frame()))["columns"]
    visits, count = columns["visits"], columns["count"]
    assert (visits["dtype"], visits["count"], visits["missing"]) == ("Int64", 6, 2)
    assert (visits["min"], visits["max"], visits["n_unique"]) == (1, 7, 4)
    assert type(visits["min"]) is int
    assert visits["mean"] == pytest.approx(22 / 6)
    assert (count["min"], count["max"], count["count"], count["missing"]) == (0, 9, 8, 0)
    assert count["quantiles"]["0.25"] == pytest.approx(np.quantile([4, 1, 4, 2, 9, 4, 1, 0], 0.25))


def test_object_strings_are_categorical_with_top_and_other():
    column = _round_trip(profile_frame(_mixed_frame(), max_categories=2))["columns"]["city"]
    assert set(column) == CATEGORICAL_KEYS
    assert (column["kind"], column["count"], column["missing"], column["n_unique"]) == (
        "categorical",
        6,
        2,
        3,
    )
    assert column["top"] == [
        {"value": "Oslo", "count": 3, "frequency": 0.5},
        {"value": "Lima", "count": 2, "frequency": pytest.approx(2 / 6)},
    ]
    assert column["other_count"] == 1


def test_category_dtype_skips_unused_categories():
    column = _round_trip(profile_frame(_mixed_frame()))["columns"]["tier"]
    assert (column["dtype"], column["count"], column["missing"], column["n_unique"]) == (
        "category",
        7,
        1,
        3,
    )
    assert [(entry["value"], entry["count"]) for entry in column["top"]] == [
        ("b", 4),
        ("a", 2),
        ("c", 1),
    ]
    assert column["other_count"] == 0


def test_booleans_are_categorical():
    columns = _round_trip(profile_frame(_mixed_frame()))["columns"]
    member, opted_in = columns["member"], columns["opted_in"]
    assert (member["kind"], member["dtype"], member["count"], member["missing"]) == (
        "categorical",
        "bool",
        8,
        0,
    )
    assert member["top"] == [
        {"value": "True", "count": 6, "frequency": 0.75},
        {"value": "False", "count": 2, "frequency": 0.25},
    ]
    assert (opted_in["kind"], opted_in["count"], opted_in["missing"]) == ("categorical", 5, 3)
    assert [entry["value"] for entry in opted_in["top"]] == ["True", "False"]


def test_datetime_column():
    column = _round_trip(profile_frame(_mixed_frame()))["columns"]["joined"]
    assert set(column) == DATETIME_KEYS
    assert (column["kind"], column["count"], column["missing"]) == ("datetime", 4, 4)
    assert column["min"] == "2019-03-01T00:00:00"
    assert column["max"] == "2021-12-31T00:00:00"


def test_timezone_aware_datetime_keeps_its_offset():
    series = pd.Series(pd.to_datetime(["2020-01-01 12:00", "2020-01-02 00:00"]).tz_localize("UTC"))
    column = profile_frame(pd.DataFrame({"t": series}))["columns"]["t"]
    assert column["kind"] == "datetime"
    assert column["min"] == "2020-01-01T12:00:00+00:00"


def test_timedeltas_are_numeric_seconds():
    series = pd.Series(pd.to_timedelta(["1s", "90s", None]))
    column = _round_trip(profile_frame(pd.DataFrame({"d": series})))["columns"]["d"]
    assert (column["kind"], column["count"], column["missing"]) == ("numeric", 2, 1)
    assert (column["min"], column["max"], column["mean"]) == (1.0, 90.0, 45.5)


def test_top_is_ordered_by_count_then_value_and_capped():
    values = ["d"] * 3 + ["c"] * 2 + ["b"] * 2 + ["a"] * 2 + ["e"]
    column = profile_frame(pd.DataFrame({"s": values}), max_categories=3)["columns"]["s"]
    assert [(entry["value"], entry["count"]) for entry in column["top"]] == [
        ("d", 3),
        ("a", 2),
        ("b", 2),
    ]
    assert column["other_count"] == 3
    assert column["n_unique"] == 5


def test_values_that_print_alike_are_one_category():
    column = profile_frame(pd.DataFrame({"x": [1, "1", 2.5, None]}))["columns"]["x"]
    assert column["top"] == [
        {"value": "1", "count": 2, "frequency": pytest.approx(2 / 3)},
        {"value": "2.5", "count": 1, "frequency": pytest.approx(1 / 3)},
    ]


def test_unhashable_objects_are_counted_by_their_text():
    column = profile_frame(pd.DataFrame({"x": [[1, 2], [1, 2], {"a": 1}, None]}))["columns"]["x"]
    assert (column["count"], column["missing"], column["n_unique"]) == (3, 1, 2)
    assert column["top"][0] == {"value": "[1, 2]", "count": 2, "frequency": pytest.approx(2 / 3)}


def test_infinities_are_counted_apart_from_the_statistics():
    df = pd.DataFrame({"x": [1.0, np.inf, 2.0, -np.inf, np.nan, 3.0]})
    column = _round_trip(profile_frame(df))["columns"]["x"]
    assert (column["count"], column["missing"], column["infinite"]) == (3, 1, 2)
    assert (column["min"], column["max"], column["mean"], column["std"]) == (1.0, 3.0, 2.0, 1.0)
    _assert_histogram_consistent(column, np.array([1.0, 2.0, 3.0]), bins=20)


def test_constant_column_has_one_bin():
    column = profile_frame(pd.DataFrame({"x": [5.0] * 4}))["columns"]["x"]
    assert column["histogram"] == {"edges": [5.0, 5.0], "counts": [4]}
    assert (column["n_unique"], column["std"]) == (1, 0.0)


def test_single_value_has_no_std():
    column = _round_trip(profile_frame(pd.DataFrame({"x": [2.5]})))["columns"]["x"]
    assert column["std"] is None
    assert column["quantiles"] == dict.fromkeys(map(str, QUANTILES), 2.5)


def test_huge_values_do_not_leak_infinity():
    df = pd.DataFrame({"x": [1e308, 1.5e308, -1e308]})
    column = _round_trip(profile_frame(df))["columns"]["x"]
    assert (column["min"], column["max"]) == (-1e308, 1.5e308)
    assert column["std"] is None  # overflows float64
    _assert_histogram_consistent(column, df["x"].to_numpy(), bins=20)


def test_bins_caps_the_number_of_edges():
    values = np.arange(1000.0)
    column = profile_frame(pd.DataFrame({"x": values}), bins=4)["columns"]["x"]
    assert column["histogram"]["edges"] == [0.0, 249.75, 499.5, 749.25, 999.0]
    assert column["histogram"]["counts"] == [250, 250, 250, 250]


def test_few_distinct_values_give_fewer_unique_edges():
    values = np.array([0] * 90 + [1] * 5 + [2] * 5)
    column = profile_frame(pd.DataFrame({"x": values}))["columns"]["x"]
    assert column["histogram"]["edges"][0] == 0.0
    assert column["histogram"]["edges"][-1] == 2.0
    _assert_histogram_consistent(column, values.astype(float), bins=20)


# --- empty and all-missing -------------------------------------------------------------------


def test_empty_frame():
    df = pd.DataFrame(
        {
            "x": np.array([], dtype=float),
            "s": np.array([], dtype=object),
            "t": np.array([], dtype="datetime64[ns]"),
        }
    )
    profile = _round_trip(profile_frame(df))
    assert (profile["n_rows"], profile["n_columns"]) == (0, 3)
    assert profile["columns"]["x"]["kind"] == "numeric"
    assert profile["columns"]["x"]["count"] == 0
    assert profile["columns"]["s"]["kind"] == "categorical"
    assert profile["columns"]["s"]["top"] == []
    assert profile["columns"]["t"]["min"] is None
    assert _round_trip(profile_frame(pd.DataFrame())) == {
        "n_rows": 0,
        "n_columns": 0,
        "columns": {},
    }


def test_all_missing_columns_keep_their_kind():
    df = pd.DataFrame(
        {
            "x": [np.nan, np.nan],
            "i": pd.array([None, None], dtype="Int64"),
            "s": pd.Series([None, None], dtype=object),
            "t": pd.to_datetime([None, None]),
        }
    )
    columns = _round_trip(profile_frame(df))["columns"]
    assert columns["x"] == {
        "kind": "numeric",
        "dtype": "float64",
        "count": 0,
        "missing": 2,
        "infinite": 0,
        "n_unique": 0,
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "quantiles": dict.fromkeys(map(str, QUANTILES)),
        "histogram": {"edges": [], "counts": []},
    }
    assert (columns["i"]["kind"], columns["i"]["missing"]) == ("numeric", 2)
    assert columns["s"] == {
        "kind": "categorical",
        "dtype": "object",
        "count": 0,
        "missing": 2,
        "n_unique": 0,
        "top": [],
        "other_count": 0,
    }
    assert (columns["t"]["kind"], columns["t"]["min"], columns["t"]["max"]) == (
        "datetime",
        None,
        None,
    )


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{"bins": 0}, {"bins": 2.5}, {"bins": True}, {"max_categories": 0}]
)
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(InvalidArgument, match="expected an integer of at least 1"):
        profile_frame(pd.DataFrame({"x": [1.0]}), **kwargs)


def test_duplicate_column_names_are_rejected():
    with pytest.raises(InvalidArgument, match="share a name"):
        profile_frame(pd.DataFrame([[1, 2]], columns=[1, "1"]))


# --- helpers used by monitoring --------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        ("float32", "numeric"),
        ("int8", "numeric"),
        ("uint64", "numeric"),
        ("Int64", "numeric"),
        ("Float64", "numeric"),
        ("timedelta64[ns]", "numeric"),
        ("bool", "categorical"),
        ("boolean", "categorical"),
        ("object", "categorical"),
        ("string", "categorical"),
        ("category", "categorical"),
        ("complex128", "categorical"),
        ("datetime64[ns]", "datetime"),
        ("datetime64[ns, UTC]", "datetime"),
    ],
)
def test_column_kind(dtype, kind):
    assert column_kind(pd.Series([], dtype=dtype).dtype) == kind


def test_numeric_values_are_float64_with_nan_for_missing():
    values = numeric_values(pd.Series([1, None, 3], dtype="Int64"))
    assert values.dtype == np.float64
    assert np.isnan(values[1])
    assert numeric_values(pd.Series(pd.to_timedelta(["2min"]))).tolist() == [120.0]


def test_category_counts_by_string():
    counts = category_counts(pd.Series([True, False, True, None], dtype=object))
    assert counts.to_dict() == {"True": 2, "False": 1}


def test_bin_counts_clips_out_of_range_values_and_skips_nan():
    assert bin_counts([-5.0, 0.0, 0.5, 1.0, 1.5, 2.0, 7.0, np.nan], [0.0, 1.0, 2.0]) == [3, 4]
    assert bin_counts([1.0, 3.0, 9.0], [3.0, 3.0]) == [3]
    assert bin_counts([], [0.0, 1.0]) == [0]


def test_bin_counts_needs_two_edges():
    with pytest.raises(InvalidArgument, match="at least 2 edges"):
        bin_counts([1.0], [1.0])


# --- properties ------------------------------------------------------------------------------

float_arrays = hnp.arrays(
    np.float64,
    st.integers(0, 200),
    elements=st.floats(allow_subnormal=False, width=64) | st.sampled_from([0.0, 1.0, np.nan]),
)


@settings(max_examples=200, deadline=None)
@given(float_arrays, st.integers(1, 30))
def test_numeric_profile_invariants(values, bins):
    column = _round_trip(profile_frame(pd.DataFrame({"x": values}), bins=bins))["columns"]["x"]
    finite = values[np.isfinite(values)]
    assert column["count"] + column["missing"] + column["infinite"] == len(values)
    assert column["count"] == len(finite)
    if len(finite) == 0:
        assert column["histogram"] == {"edges": [], "counts": []}
        return
    assert column["n_unique"] == len(np.unique(finite))
    assert (column["min"], column["max"]) == (finite.min(), finite.max())
    quantiles = [column["quantiles"][str(q)] for q in QUANTILES]
    assert quantiles == sorted(quantiles)
    assert column["min"] <= quantiles[0] and quantiles[-1] <= column["max"]
    _assert_histogram_consistent(column, finite, bins)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.none() | st.sampled_from(["a", "b", "c", "d", "é", ""]), max_size=60),
    st.integers(1, 5),
)
def test_categorical_profile_invariants(values, max_categories):
    df = pd.DataFrame({"s": pd.Series(values, dtype=object)})
    column = _round_trip(profile_frame(df, max_categories=max_categories))["columns"]["s"]
    present = [value for value in values if value is not None]
    assert column["count"] == len(present)
    assert column["missing"] == len(values) - len(present)
    assert column["n_unique"] == len(set(present))
    assert len(column["top"]) == min(max_categories, len(set(present)))
    assert column["other_count"] + sum(entry["count"] for entry in column["top"]) == len(present)
    counts = [entry["count"] for entry in column["top"]]
    assert counts == sorted(counts, reverse=True)
    for entry in column["top"]:
        assert entry["count"] == present.count(entry["value"])
        assert entry["frequency"] == pytest.approx(entry["count"] / len(present))
    left_out = set(present) - {entry["value"] for entry in column["top"]}
    assert all(present.count(value) <= min(counts) for value in left_out)
