"""A served model's traffic, drift and predictions per time bucket (pure).

:func:`operation_charts`: request volume, latency and error rates per bucket of a
prediction-log frame; :func:`drift_over_time`: the window's drift report, each feature's
drift per bucket, the histograms and the unseen values. Both return chart specs
(:mod:`segue.monitoring.charts`) for :func:`segue.monitoring.dashboard.dashboard`.

Example:
    >>> latency_over_time(frame, [(0, 60), (60, 120)])["latency_p99_ms"]
    [12.5, nan]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from segue.monitoring import charts
from segue.monitoring.drift import FeatureDrift, assess, compare
from segue.monitoring.signals import error_rates


@dataclass(frozen=True)
class FeatureView:
    """One feature's drift over the window and its reference vs current histogram spec."""

    drift: FeatureDrift
    histogram: dict[str, Any]


def latency_over_time(
    served: pd.DataFrame, edges: Sequence[tuple[float, float]]
) -> dict[str, list[float]]:
    """Per bucket of a prediction-log frame: ``requests``, ``latency_p50_ms``,
    ``latency_p99_ms`` and the ``server_error_rate`` (5xx) and ``client_error_rate`` (4xx)
    shares; NaN where a bucket had no requests. Pure."""
    times = served["time"].to_numpy(dtype=float) if len(served) else np.array([])
    names = ("latency_p50_ms", "latency_p99_ms", "server_error_rate", "client_error_rate")
    out: dict[str, list[float]] = {"requests": [], **{name: [] for name in names}}
    for a, b in edges:
        part = served[(times >= a) & (times < b)] if len(served) else served
        out["requests"].append(float(len(part)))
        if not len(part):
            for name in names:
                out[name].append(math.nan)
            continue
        latency = part["latency_ms"].to_numpy(dtype=float)
        out["latency_p50_ms"].append(float(np.percentile(latency, 50)))
        out["latency_p99_ms"].append(float(np.percentile(latency, 99)))
        server, client = error_rates(part["status"].to_numpy())
        out["server_error_rate"].append(server)
        out["client_error_rate"].append(client)
    return out


def operation_charts(served: pd.DataFrame, edges: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Volume, latency and error-rate charts: one point per bucket (gaps where empty). Pure."""
    series = latency_over_time(served, edges)
    starts = [a for a, _ in edges]
    end = edges[-1][1] if edges else None
    percent = {
        "server (5xx)": [v * 100 for v in series["server_error_rate"]],
        "client (4xx)": [v * 100 for v in series["client_error_rate"]],
    }
    latency = {"p50": series["latency_p50_ms"], "p99": series["latency_p99_ms"]}
    return {
        "volume": charts.time_lines(
            "requests per bucket", "", starts, {"requests": series["requests"]}, end=end
        ),
        "latency": charts.time_lines("latency", "ms", starts, latency, end=end),
        "errors": charts.time_lines("share of requests", "%", starts, percent, end=end),
    }


def drift_over_time(
    reference: Any,
    frame: pd.DataFrame,
    predictions: np.ndarray,
    row_times: np.ndarray,
    edges: Sequence[tuple[float, float]],
    width: float,
    version: str | None,
) -> dict[str, Any]:
    """The window's drift report (``drift``), the histograms (``features``, as
    :class:`FeatureView`), ``unseen`` values and the specs of
    the ``heatmap``, ``prediction_histogram`` and ``drift_share`` charts. Pure."""
    from segue.monitoring.drift import DriftConfig

    start, end = edges[0][0], edges[-1][1]
    report = assess(
        reference, frame, predictions, DriftConfig(), start=start, end=end, version=version
    )
    over_time: dict[str, list[FeatureDrift | None]] = {f.feature: [] for f in report.features}
    if report.prediction is not None:
        over_time["prediction"] = []
    for a, b in edges:
        mask = (row_times >= a) & (row_times < b)
        found: dict[str, FeatureDrift] = {}
        if mask.any():
            features, prediction = compare(
                reference, frame[mask].reset_index(drop=True), predictions[mask]
            )
            found = {f.feature: f for f in features}
            if prediction is not None:
                found["prediction"] = prediction
        for name, results in over_time.items():
            results.append(found.get(name))
    share = []
    for i in range(len(edges)):
        tested = [
            results[i]
            for name, results in over_time.items()
            if name != "prediction" and results[i] is not None
        ]
        share.append(
            sum(r.drifted for r in tested if r) / len(tested) * 100 if tested else math.nan
        )
    views = []
    for f in report.features:
        sample = None
        if reference.sample is not None and f.feature in reference.sample.columns:
            sample = reference.sample[f.feature]
        current = frame[f.feature] if f.feature in frame.columns else pd.Series([], dtype=object)
        profile = reference.columns.get(f.feature, {})
        spec = charts.feature_histogram(profile, sample, current, f, label=f.feature)
        views.append(FeatureView(f, spec))
    profile = reference.predictions or {}
    current = pd.Series(list(predictions), dtype=object)
    if profile.get("kind") == "numeric":
        sample = pd.Series(profile.get("sample") or [], dtype=object)
        predicted = charts.numeric_histogram(profile, sample, current, label="prediction")
    else:
        new = report.prediction.unseen["new_categories"] if report.prediction else []
        predicted = charts.category_histogram(profile, current, new, label="prediction")
    every = [*report.features, *([report.prediction] if report.prediction else [])]
    return {
        "drift": report,
        "features": views,
        "unseen": charts.unseen_rows(every),
        "heatmap": charts.drift_heatmap([a for a, _ in edges], width, over_time),
        "prediction_histogram": predicted,
        "drift_share": charts.time_lines(
            "features drifted",
            "%",
            [a for a, _ in edges],
            {"drift share": share},
            end=edges[-1][1],
        ),
    }
