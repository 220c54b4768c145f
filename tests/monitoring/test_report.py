"""The HTML monitoring report: self-contained, every feature, the web UI's charts inlined,
escaped values."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from segue.monitoring.report import bucket_width
from segue.monitoring.service import Monitor
from segue.monitoring.timeline import latency_over_time
from segue.registry.service import get_registry


@pytest.fixture
def store_uri(sqlite_template, tmp_path: Path) -> str:
    # Drift per bucket for ~35 charts is the cost here, not the store: SQLite alone keeps it fast
    # (the store paths are covered on PostgreSQL by the other monitoring tests).
    path = tmp_path / "segue.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def _specs(page: str) -> dict[str, tuple[str, dict]]:
    """``{chart id: (kind, spec)}`` of every chart in a report."""
    kinds = dict(re.findall(r"id='([\w-]+)' data-chart='(\w+)'", page))
    specs = re.findall(r"<script type='application/json' id='([\w-]+)-spec'>(.*?)</script>", page)
    return {name: (kinds[name], json.loads(text)) for name, text in specs}


def test_the_report_is_one_self_contained_file(segue_env, ops) -> None:
    trained = ops.train_cancer()
    X, y = trained.X.iloc[:240].copy(), trained.y.iloc[:240]
    X.iloc[120:, 0] *= 2.0  # the second hour drifts on 'mean radius'
    ids = ops.log_predictions(
        segue_env.artifact_uri,
        "cancer",
        "1",
        X,
        trained.pipeline.predict(X),
        step=30,
        latency_ms=[float(i % 50) for i in range(240)],
        status=[500 if i % 40 == 0 else 200 for i in range(240)],
    )
    ops.log_feedback(segue_env.artifact_uri, "cancer", ids, y.tolist(), [ops.T0 + 9000] * 240)

    monitor = Monitor(get_registry(), segue_env.artifact_uri)
    page = monitor.report("models:/cancer/1", now=lambda: ops.T0 + 9000)

    assert page.startswith("<!DOCTYPE html>")
    # Nothing is loaded from elsewhere: scripts and styles are inline, no src or href at all.
    assert not re.search(r"\b(src|href)\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link|@import|url\(\s*['\"]?https?:", page, re.IGNORECASE)
    assert "uPlot" in page and "Segue.kinds.heatmap" in page
    charts = _specs(page)
    for feature in trained.X.columns:
        assert feature in page, feature
    histograms = [spec for kind, spec in charts.values() if kind == "bars"]
    assert len(histograms) == len(trained.X.columns) + 1  # every feature, and the predictions
    kind, heatmap = charts["drift-heatmap"]
    assert kind == "heatmap" and heatmap["rows"][-1] == "prediction"
    assert set(trained.X.columns) <= set(heatmap["rows"])
    # Real UTC time: the buckets start at the logged times (epoch seconds), 10 min apart.
    assert heatmap["times"][0] == ops.T0 and heatmap["width"] == 600
    radius = heatmap["rows"].index("mean radius")
    first, second = heatmap["cells"][radius][:6], heatmap["cells"][radius][6:]
    assert len(second) == 6 and all(cell["drifted"] for cell in second)  # doubled: drifted
    assert max(c["statistic"] for c in first) < min(c["statistic"] for c in second)
    assert min(heatmap["values"][radius][6:]) > 0.5  # past the threshold on the colour scale
    for name in ("volume", "latency", "errors", "predictions", "drift-share", "performance"):
        kind, spec = charts[name]
        assert kind == "lines" and spec["x"]["time"], name
        assert spec["series"] and all(x >= ops.T0 for x in spec["series"][0]["x"]), name
    assert charts["latency"][1]["y"]["unit"] == "ms"
    errors = charts["errors"][1]["series"][0]
    assert errors["label"] == "server (5xx)" and max(v for v in errors["y"] if v) > 0
    # Values beyond the reference's range are shown: in the table and on the histogram.
    unseen = page[page.index("<h2>Unseen values</h2>") : page.index("<h2>Features</h2>")]
    assert "mean radius" in unseen
    assert "Outside the reference range" in page
    assert "Performance over time" in page and "accuracy" in page
    assert "Latency and errors over time" in page
    assert "cancer version 1" in page


def test_the_report_escapes_what_it_shows(segue_env, ops) -> None:
    trained = ops.train_cancer()
    X = trained.X.iloc[:30].copy()
    hostile = "<script>alert('x')</script>"
    X[hostile] = 1.0  # a column the reference does not have: named in the notes
    ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X, [0] * 30)

    page = Monitor(get_registry(), segue_env.artifact_uri).report("cancer/1", now=lambda: ops.T0)

    assert hostile not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<script>") == 3  # uPlot, segue.js, heatmap.js: nothing else


def test_a_report_resolves_its_alias_once(segue_env, ops, alias_moves_after_first_resolve) -> None:
    trained = ops.train_cancer()
    ops.train_cancer()  # version 2
    registry = get_registry()
    registry.set_alias("cancer", "champion", 1)
    X = trained.X.iloc[:60]
    ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X, trained.pipeline.predict(X))
    counting = alias_moves_after_first_resolve(registry, "cancer")

    page = Monitor(counting, segue_env.artifact_uri).report(
        "cancer@champion", bucket=3600, now=lambda: ops.T0
    )

    assert counting.resolved == ["models:/cancer@champion"]
    assert "Segue monitoring report: cancer v1" in page and "cancer version 1" in page


def test_values_and_chart_data_are_escaped() -> None:
    from segue.monitoring import report as report_module

    assert report_module._e("<b>&'\"") == "&lt;b&gt;&amp;&#x27;&quot;"
    chart = report_module._chart("c", "bars", {"x": {"label": "</script><b>"}}, "<i>")
    assert "</script><b>" not in chart and "<i>" not in chart
    spec = chart[chart.index("'c-spec'>") + 9 : chart.rindex("</script>")]
    assert json.loads(spec) == {"x": {"label": "</script><b>"}}


def test_bucket_width_aims_for_about_twelve_points() -> None:
    assert bucket_width(0, 3600) == 300
    assert bucket_width(0, 86400) == 7200
    assert bucket_width(0, 10) == 60


def test_latency_over_time_per_bucket() -> None:
    served = pd.DataFrame(
        {
            "time": [0.0, 1.0, 2.0, 70.0],
            "latency_ms": [1.0, 2.0, 3.0, 10.0],
            "status": [200, 422, 500, 200],
        }
    )
    series = latency_over_time(served, [(0, 60), (60, 120), (120, 180)])
    assert series["requests"] == [3, 1, 0]
    assert series["latency_p50_ms"][:2] == [2.0, 10.0]
    assert math.isnan(series["latency_p50_ms"][2])  # a gap, not a zero
    assert series["server_error_rate"][:2] == pytest.approx([1 / 3, 0.0])
    assert series["client_error_rate"][:2] == pytest.approx([1 / 3, 0.0])
