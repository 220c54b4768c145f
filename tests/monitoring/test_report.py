"""The HTML monitoring report: self-contained, every feature, inline PNGs, escaped values."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from segue.monitoring.report import bucket_width, latency_over_time
from segue.monitoring.service import Monitor
from segue.registry.service import get_registry


@pytest.fixture
def store_uri(sqlite_template, tmp_path: Path) -> str:
    # Drawing ~35 figures is the cost here, not the store: SQLite alone keeps the suite fast
    # (the store paths are covered on PostgreSQL by the other monitoring tests).
    path = tmp_path / "segue.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def ops(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import opsdata

    return opsdata


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
    for feature in trained.X.columns:
        assert feature in page, feature
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)
    assert len(images) >= len(trained.X.columns) + 4  # features, drift, predictions, perf, latency
    assert not re.search(r"https?://", page)
    assert not re.search(r"<script|<link|@import|url\(", page, re.IGNORECASE)
    assert "Performance over time" in page and "accuracy" in page
    assert "Latency and errors over time" in page
    assert "cancer version 1" in page


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


def test_values_are_escaped() -> None:
    from segue.monitoring import report as report_module

    assert report_module._e("<b>&'\"") == "&lt;b&gt;&amp;&#x27;&quot;"


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
    assert series.times == [0, 60]
    assert series.values["latency_p50_ms"] == [2.0, 10.0]
    assert series.values["server_error_rate"] == pytest.approx([1 / 3, 0.0])
    assert series.values["client_error_rate"] == pytest.approx([1 / 3, 0.0])
