"""Chart specs of monitoring data (pure): histograms, the drift heat map, lines over time."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segue.errors import InvalidArgument
from segue.monitoring import charts
from segue.monitoring.dashboard import bucket_width, parse_window
from segue.monitoring.drift import FeatureDrift


def _drift(test="ks", statistic=0.1, p_value=0.5, threshold=0.05, n=100, drifted=False, **unseen):
    return FeatureDrift(
        feature="age",
        kind="numeric",
        test=test,
        statistic=statistic,
        p_value=p_value,
        threshold=threshold,
        drifted=drifted,
        n_reference=1000,
        n_current=n,
        unseen={"new_categories": [], "below_min": 0, "above_max": 0, "new_missing": 0, **unseen},
    )


def test_time_lines_are_valid_json_with_gaps_and_span_the_window():
    spec = charts.time_lines("latency", "ms", [0.0, 60.0], {"p50": [1.5, math.nan]}, end=120.0)

    assert json.loads(json.dumps(spec, allow_nan=False)) == spec
    assert spec["x"] == {"label": "time", "time": True}
    assert spec["y"] == {"label": "latency", "unit": "ms"}
    assert spec["series"] == [{"label": "p50", "x": [0.0, 60.0, 120.0], "y": [1.5, None, None]}]


def test_time_lines_leave_out_series_without_a_value():
    spec = charts.time_lines("latency", "ms", [0.0], {"p50": [math.nan]}, empty="nothing")
    assert spec["series"] == [] and spec["empty"] == "nothing"


def test_numeric_histogram_shares_bins_and_counts_values_beyond_the_reference():
    profile = {"kind": "numeric", "min": 0.0, "max": 10.0}
    reference = pd.Series(np.linspace(0, 10, 101))
    current = pd.Series([-5.0, 5.0, 12.0, 13.0, None, "x"], dtype=object)

    spec = charts.numeric_histogram(profile, reference, current, label="age")

    assert spec["x"]["label"] == "age" and spec["y"]["unit"] == "%"
    assert len(spec["edges"]) == charts.HISTOGRAM_BINS + 1
    assert spec["edges"][0] == -5.0 and spec["edges"][-1] == 13.0  # the unseen range is drawn
    ref, cur = spec["series"]
    assert (ref["label"], cur["label"]) == ("reference", "current")
    assert sum(ref["y"]) == pytest.approx(100) and sum(cur["y"]) == pytest.approx(100)
    assert spec["unseen"] == {
        "new_categories": [],
        "below_min": 1,
        "above_max": 2,
        "min": 0.0,
        "max": 10.0,
    }


def test_numeric_histogram_without_values_is_empty_not_an_error():
    spec = charts.numeric_histogram({"kind": "numeric"}, None, pd.Series([], dtype=float))
    assert spec["series"] == [] and spec["edges"] == []


def test_category_histogram_shows_new_categories_as_their_own():
    profile = {
        "kind": "categorical",
        "top": [{"value": "basic", "count": 60}, {"value": "pro", "count": 40}],
    }
    current = pd.Series(["basic", "enterprise", "enterprise", None], dtype=object)
    drift = _drift(test="chi2", new_categories=["enterprise"])

    spec = charts.feature_histogram(profile, None, current, drift, label="plan")

    assert spec["x"]["categories"] == ["basic", "pro", "enterprise (new)"]
    ref, cur = spec["series"]
    assert ref["y"] == pytest.approx([60, 40, 0])
    assert cur["y"] == pytest.approx([100 / 3, 0, 200 / 3])
    assert spec["unseen"]["new_categories"] == ["enterprise"]


def test_category_histogram_sums_the_rest_as_other():
    top = [{"value": f"c{i}", "count": 1} for i in range(charts.MAX_CATEGORIES + 3)]
    spec = charts.category_histogram({"top": top, "other_count": 2}, pd.Series(["c0"]))
    assert len(spec["x"]["categories"]) == charts.MAX_CATEGORIES + 1
    assert spec["x"]["categories"][-1] == "(other)"
    assert spec["series"][0]["y"][-1] == pytest.approx(5 / 30 * 100)  # 3 cut + 2 other of 30


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        (_drift(p_value=1.0), 0.0),
        (_drift(p_value=0.05), 0.5),  # at the threshold
        (_drift(p_value=0.0025), 1.0),  # threshold squared: as far again on a log scale
        (_drift(p_value=1e-300), 1.0),
        (_drift(p_value=0.0), 1.0),
        (_drift(test="psi", statistic=0.1, p_value=None, threshold=0.2), 0.25),
        (_drift(test="psi", statistic=0.2, p_value=None, threshold=0.2), 0.5),
        (_drift(test="psi", statistic=9.0, p_value=None, threshold=0.2), 1.0),
        (_drift(statistic=math.nan, p_value=None, n=0), None),  # nothing tested
        (_drift(statistic=math.nan, p_value=None, n=0, drifted=True), 1.0),  # all missing
    ],
)
def test_severity_puts_every_test_on_one_scale(drift, expected):
    assert charts.severity(drift) == (None if expected is None else pytest.approx(expected))


@given(st.floats(0, 1), st.floats(1e-6, 0.5))
def test_severity_is_between_0_and_1_and_half_at_the_threshold(p, threshold):
    value = charts.severity(_drift(p_value=p, threshold=threshold))
    assert value is not None and 0 <= value <= 1
    assert (value >= 0.5) == (p <= threshold) or math.isclose(p, threshold, rel_tol=1e-3)


def test_drift_heatmap_has_a_row_per_feature_and_a_cell_per_bucket():
    spec = charts.drift_heatmap(
        [0.0, 3600.0],
        3600,
        {"age": [_drift(p_value=0.5), None], "prediction": [_drift(p_value=0.001), None]},
    )

    assert spec["rows"] == ["age", "prediction"]
    assert spec["times"] == [0.0, 3600.0] and spec["width"] == 3600.0
    assert spec["values"][0][1] is None and spec["cells"][0][1] is None
    assert spec["cells"][1][0] == {
        "test": "ks",
        "statistic": 0.1,
        "p": 0.001,
        "threshold": 0.05,
        "n": 100,
        "drifted": False,
    }
    assert spec["x"]["time"] and spec["legend"]["mid"] == "at the threshold"
    json.dumps(spec, allow_nan=False)


def test_prediction_lines_share_of_each_class_or_quantiles():
    labels = charts.prediction_lines([0.0, 60.0], [[1, 1, 0, 1], []], label=True)
    assert {s["label"]: s["y"] for s in labels["series"]} == {"1": [75.0, None], "0": [25.0, None]}
    numbers = charts.prediction_lines([0.0], [[1.0, 2.0, 3.0, "x"]], label=False)
    assert {s["label"]: s["y"] for s in numbers["series"]} == {
        "p10": [1.2],
        "p50": [2.0],
        "p90": [2.8],
    }


def test_unseen_rows_list_only_features_with_unseen_values():
    rows = charts.unseen_rows([_drift(), _drift(above_max=3), _drift(new_missing=2)])
    assert [(r["above_max"], r["new_missing"]) for r in rows] == [(3, 0), (0, 2)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, (10_000 - 86400, 10_000, None)),
        ({"window": "1h", "bucket": "5m"}, (6400, 10_000, 300)),
        ({"start": "1000", "end": "2000"}, (1000, 2000, None)),
        ({"start": "1970-01-01T00:10", "end": "1970-01-01T00:20"}, (600, 1200, None)),
        ({"start": "2h"}, (2800, 10_000, None)),
    ],
)
def test_parse_window(query, expected):
    window = parse_window(now=10_000.0, **query)
    assert (window.start, window.end, window.bucket) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"window": "soon"}, "window: 'soon' is not a positive duration"),
        ({"window": "-1h"}, "not a positive duration"),
        ({"bucket": "0s"}, "bucket: '0s' is not a positive duration"),
        ({"start": "yesterday"}, "start: 'yesterday' is neither a time"),
        ({"start": "3000", "end": "2000"}, "must come before its end"),
        ({"end": "nan"}, "end: 'nan' is not a time"),
    ],
)
def test_parse_window_refuses_what_it_cannot_read(query, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_window(now=10_000.0, **query)


def test_bucket_width_aims_for_the_target():
    assert bucket_width(0, 86400, 24) == 3600
    assert bucket_width(0, 86400) == 7200


def test_time_lines_span_the_window_on_both_sides():
    spec = charts.time_lines("metric", "", [60.0], {"f1": [0.9]}, start=0.0, end=120.0)
    assert spec["series"][0]["x"] == [0.0, 60.0, 120.0]
    assert spec["series"][0]["y"] == [None, 0.9, None]
