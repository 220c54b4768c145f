"""The run page's metric series: columns, decimation and chart specs (pure, no HTTP)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segue.server.ui import run_view, series
from segue.store.entities import Metric, Run, RunData, RunInfo

values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.none(),
)


@st.composite
def series_and_limit(draw):
    ys = draw(st.lists(values, min_size=0, max_size=400))
    limit = draw(st.integers(min_value=4, max_value=60))
    return list(range(len(ys))), ys, limit


@settings(max_examples=300, deadline=None)
@given(series_and_limit())
def test_decimation_keeps_a_bounded_ordered_subsequence_with_the_ends_and_extremes(case):
    xs, ys, limit = case
    out_x, out_y = series.decimate(xs, ys, limit)
    assert len(out_x) == len(out_y) <= limit
    # a subsequence: strictly increasing positions, each point as it was
    assert out_x == sorted(set(out_x))
    assert all(out_y[i] == ys[x] for i, x in enumerate(out_x))
    if len(xs) <= limit:
        assert (out_x, out_y) == (xs, ys)
        return
    assert out_x[0] == xs[0] and out_x[-1] == xs[-1]
    finite = [y for y in ys if y is not None]
    if finite:  # the global lowest and highest values survive
        kept = [y for y in out_y if y is not None]
        assert min(kept) == min(finite) and max(kept) == max(finite)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=5, max_size=300))
def test_every_bucket_keeps_its_spike(ys):
    """A spike anywhere in the series is drawn, however long the series."""
    spiked = list(ys)
    where = len(ys) // 3
    spiked[where] = 1e300
    _, out_y = series.decimate(list(range(len(spiked))), spiked, 4)
    assert 1e300 in out_y


def test_decimation_of_a_long_series_stays_under_the_chart_limit():
    n = 250_000
    xs = list(range(n))
    ys: list[float | None] = [math.sin(i / 1000) for i in xs]
    ys[123_456] = 50.0
    out_x, out_y = series.decimate(xs, ys)
    assert 99_000 <= len(out_x) <= series.MAX_POINTS
    assert 50.0 in out_y and out_x[0] == 0 and out_x[-1] == n - 1


@pytest.mark.parametrize(
    ("xs", "ys", "limit", "message"),
    [([1, 2], [1.0], 10, "xs has 2 points and ys 1"), ([1], [1.0], 3, "at least 4")],
)
def test_decimation_refuses_bad_input(xs, ys, limit, message):
    with pytest.raises(ValueError, match=message):
        series.decimate(xs, ys, limit)


def test_a_bucket_without_finite_values_stays_a_gap():
    xs = list(range(12))
    ys = [1.0, None, None, None, None, None, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    out_x, out_y = series.decimate(xs, ys, 6)
    assert out_x[0] == 0 and 1 in out_x and out_y[out_x.index(1)] is None


def test_values_json_cannot_carry_become_gaps():
    values = [0.5, None, math.nan, math.inf, -math.inf, -0.25]
    assert series.finite(values) == [0.5, None, None, None, None, -0.25]


def test_labels_name_runs_and_add_the_full_id_only_when_names_clash():
    ids = ["a" * 32, "b" * 32, "c" * 32]
    assert series.labels([(ids[0], "lr"), (ids[1], "rf")]) == ["lr", "rf"]
    clash = series.labels([(ids[0], "lr"), (ids[1], "lr"), (ids[2], "rf")])
    assert clash == [f"lr {ids[0]}", f"lr {ids[1]}", "rf"]


def test_a_chart_spec_carries_points_or_where_to_fetch_them():
    line = series.Series("run a", [0, 1], [0.5, None], 2)
    inline = series.chart_spec("loss", [line])
    assert inline["series"] == [{"label": "run a", "x": [0, 1], "y": [0.5, None]}]
    assert inline["x"]["label"] == "step" and inline["y"]["label"] == "loss"
    assert inline["controls"] is True
    fetched = series.chart_spec("loss", src="/runs/x/metrics/loss.json")
    assert fetched["src"] == "/runs/x/metrics/loss.json" and "series" not in fetched
    # What the chart draws first (the page preloads it): the same, thinned to FIRST_POINTS.
    assert (
        fetched["first"]
        == "/runs/x/metrics/loss.json?points=2000"
        == (f"/runs/x/metrics/loss.json?points={series.FIRST_POINTS}")
    )
    overlaid = series.chart_spec("loss", src="/runs/x/metrics/loss.json?compare=y")
    assert overlaid["first"] == "/runs/x/metrics/loss.json?compare=y&points=2000"


def _run(run_id: str, metrics: dict[str, Metric]) -> Run:
    info = RunInfo(run_id, 1, "e", run_id, "FINISHED", 0, 10, 0, "u", "h", "3.11")
    return Run(info, RunData(metrics=metrics))


def test_metric_rows_line_up_the_latest_values_of_every_run():
    a = _run("a", {"loss": Metric("loss", 0.1, 9, 1), "acc": Metric("acc", 0.9, 0, 1)})
    b = _run("b", {"loss": Metric("loss", 0.2, 5000, 1)})
    rows = run_view.metric_rows([a, b])
    assert [r.key for r in rows] == ["acc", "loss"]
    assert rows[0].latest[1] is None and rows[1].latest[1].value == 0.2
    assert not run_view.needs_fetch(rows[0]) and run_view.needs_fetch(rows[1])


def test_a_run_lasts_until_it_ends_or_until_now():
    ended = _run("a", {}).info
    assert run_view.duration_ms(ended, 99) == 10
    running = RunInfo("r", 1, "e", "r", "RUNNING", 1000, None, 0, "u", "h", "3.11")
    assert run_view.duration_ms(running, 4000) == 3000


def test_profile_rows_summarise_numeric_and_categorical_columns():
    profile = {
        "columns": {
            "age": {"kind": "numeric", "dtype": "float64", "count": 2, "missing": 1,
                    "n_unique": 2, "min": 31.0, "max": 45.0, "mean": 38.0, "std": 9.9},
            "city": {"kind": "categorical", "dtype": "object", "count": 3, "missing": 0,
                     "n_unique": 4, "other_count": 1,
                     "top": [{"value": v, "count": 1} for v in ("Oslo", "Lima", "Rome", "Kyiv")]},
        }
    }  # fmt: skip
    age, city = run_view.profile_rows(profile)
    assert (age["name"], age["min"], age["max"], age["missing"]) == ("age", 31.0, 45.0, 1)
    assert city["top"] == [("Oslo", 1), ("Lima", 1), ("Rome", 1)] and city["more"] == 2
