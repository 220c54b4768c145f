"""Monitoring data shaped into the chart specs the web UI and the HTML report both draw.

Pure functions over plain data (profiles, samples, drift results, per-bucket numbers): no
I/O, no clock, no server. A spec is JSON for ``segue/static/ui/segue.js`` (kinds ``lines``
and ``bars``) or ``heatmap.js`` (kind ``heatmap``); NaN and infinities become ``null`` so
every spec is valid JSON.

Example:
    >>> spec = time_lines("requests", "", [0.0, 3600.0], {"requests": [3, 5]})
    >>> spec["x"]
    {'label': 'time', 'time': True}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from segue.monitoring.drift import FeatureDrift
from segue.monitoring.drift.config import P_TESTS

#: Bins of a numeric histogram (reference and current share them).
HISTOGRAM_BINS = 30
#: Categories a categorical histogram shows; the rest are summed as "(other)".
MAX_CATEGORIES = 25
REFERENCE_COLOR, CURRENT_COLOR = "#4c72b0", "#dd8452"


def clean(value: Any) -> float | None:
    """A number for JSON: None for None, NaN and infinities."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def time_lines(
    label: str,
    unit: str,
    times: Sequence[float],
    series: Mapping[str, Sequence[Any]],
    *,
    start: float | None = None,
    end: float | None = None,
    empty: str = "No requests in this window.",
    height: int = 240,
) -> dict[str, Any]:
    """A ``lines`` spec over real UTC time: one line per ``series`` entry, one point per
    bucket start in ``times`` (epoch seconds); None/NaN leave a gap. ``start``, ``end``: the
    window's, added as empty points so the time axis spans the whole window."""
    xs = [float(t) for t in times]
    before: list[float | None] = []
    after: list[float | None] = []
    if start is not None and (not xs or start < xs[0]):
        xs.insert(0, float(start))
        before.append(None)
    if end is not None and (not xs or end > xs[-1]):
        xs.append(float(end))
        after.append(None)
    lines = [
        {"label": name, "x": xs, "y": [*before, *(clean(v) for v in values), *after]}
        for name, values in series.items()
        if any(clean(v) is not None for v in values)
    ]
    return {
        "x": {"label": "time", "time": True},
        "y": {"label": label, "unit": unit},
        "series": lines,
        "empty": empty,
        "height": height,
    }


# -- histograms -----------------------------------------------------------------------------


def feature_histogram(
    profile: Mapping[str, Any],
    sample: pd.Series | None,
    current: pd.Series,
    drift: FeatureDrift | None = None,
    *,
    label: str = "",
) -> dict[str, Any]:
    """The ``bars`` spec of one feature: its reference vs current distribution as shares of
    rows. Numeric features share even bins over both sides' range (values beyond the
    reference's min/max land in bins of their own and are counted in ``unseen``);
    categorical features show new categories as categories of their own, marked ``(new)``.
    """
    if profile.get("kind") == "numeric":
        return numeric_histogram(profile, sample, current, label=label)
    new = list(drift.unseen.get("new_categories", [])) if drift is not None else []
    return category_histogram(profile, current, new, label=label)


def numeric_histogram(
    profile: Mapping[str, Any], sample: pd.Series | None, current: pd.Series, *, label: str = ""
) -> dict[str, Any]:
    """See :func:`feature_histogram`; ``unseen`` holds ``below_min`` and ``above_max``."""
    from segue.monitoring.stats import sample_from_histogram

    histogram = profile.get("histogram") or {}
    if sample is not None:
        ref = pd.to_numeric(pd.Series(sample), errors="coerce").to_numpy(dtype=float)
    elif histogram.get("edges"):
        ref = sample_from_histogram(histogram["edges"], histogram["counts"])
    else:
        ref = np.array([])
    cur = pd.to_numeric(pd.Series(current, dtype=object), errors="coerce").to_numpy(dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    lo, hi = profile.get("min"), profile.get("max")
    unseen = {
        "new_categories": [],
        "below_min": int(np.count_nonzero(cur < lo)) if lo is not None else 0,
        "above_max": int(np.count_nonzero(cur > hi)) if hi is not None else 0,
        "min": clean(lo),
        "max": clean(hi),
    }
    spec: dict[str, Any] = {
        "x": {"label": label or "value"},
        "y": {"label": "share of rows", "unit": "%"},
        "series": [],
        "edges": [],
        "unseen": unseen,
        "empty": "No values to compare.",
        "height": 220,
    }
    both = np.concatenate([ref, cur])
    if not both.size:
        return spec
    edges = np.histogram_bin_edges(both, bins=HISTOGRAM_BINS)
    spec["edges"] = [float(e) for e in edges]
    spec["series"] = [
        {"label": name, "color": color, "y": _shares(np.histogram(values, bins=edges)[0])}
        for name, values, color in (
            ("reference", ref, REFERENCE_COLOR),
            ("current", cur, CURRENT_COLOR),
        )
    ]
    return spec


def category_histogram(
    profile: Mapping[str, Any],
    current: pd.Series,
    new_categories: Sequence[str] = (),
    *,
    label: str = "",
) -> dict[str, Any]:
    """See :func:`feature_histogram`; ``unseen`` holds ``new_categories`` (their names)."""
    top = {str(t["value"]): int(t["count"]) for t in profile.get("top") or []}
    other = int(profile.get("other_count") or 0)
    counts = pd.Series(current, dtype=object).dropna().astype(str).value_counts()
    new = set(new_categories)
    names = list(dict.fromkeys([*top, *[str(c) for c in counts.index]]))
    shown, rest = names[:MAX_CATEGORIES], names[MAX_CATEGORIES:]
    ref_values = [top.get(n, 0) for n in shown]
    cur_values = [int(counts.get(n, 0)) for n in shown]
    if other or rest:
        shown.append("(other)")
        ref_values.append(other + sum(top.get(n, 0) for n in rest))
        cur_values.append(sum(int(counts.get(n, 0)) for n in rest))
    categories = [f"{n} (new)" if n in new else n for n in shown]
    return {
        "x": {"label": label or "category", "categories": categories},
        "y": {"label": "share of rows", "unit": "%"},
        "series": [
            {"label": "reference", "color": REFERENCE_COLOR, "y": _shares(ref_values)},
            {"label": "current", "color": CURRENT_COLOR, "y": _shares(cur_values)},
        ]
        if shown
        else [],
        "unseen": {
            "new_categories": sorted(new & set(names)),
            "below_min": 0,
            "above_max": 0,
            "min": None,
            "max": None,
        },
        "empty": "No values to compare.",
        "height": 220,
    }


def _shares(counts: Any) -> list[float]:
    values = np.asarray(counts, dtype=float)
    total = values.sum()
    return [float(v) for v in (values / total * 100 if total else values)]


# -- drift over time ------------------------------------------------------------------------


def severity(drift: FeatureDrift) -> float | None:
    """How far one drift test is from "like the reference", on one scale for every test:
    0 like the reference, 0.5 at the threshold, 1 twice as far past it (p-value tests on a
    log scale: a p-value of threshold² is 1). None when nothing was tested."""
    if drift.n_current == 0 or not math.isfinite(drift.statistic):
        return 1.0 if drift.drifted else None
    if drift.test in P_TESTS:
        if drift.p_value is None:
            return None
        p = max(drift.p_value, 1e-300)
        ratio = math.log10(p) / math.log10(drift.threshold) if drift.threshold < 1 else 0.0
    else:
        ratio = drift.statistic / drift.threshold if drift.threshold > 0 else 0.0
    return round(min(max(ratio / 2, 0.0), 1.0), 4)


def drift_heatmap(
    times: Sequence[float], width: float, over_time: Mapping[str, Sequence[FeatureDrift | None]]
) -> dict[str, Any]:
    """The ``heatmap`` spec of drift per feature (rows) per time bucket (columns starting at
    ``times``, ``width`` seconds wide); ``over_time`` maps each feature to one result per
    bucket (None: no rows in that bucket)."""
    rows, values, cells = [], [], []
    for name, results in over_time.items():
        rows.append(name)
        values.append([None if r is None else severity(r) for r in results])
        cells.append([None if r is None else _cell(r) for r in results])
    return {
        "rows": rows,
        "times": [float(t) for t in times],
        "width": float(width),
        "values": values,
        "cells": cells,
        "x": {"label": "time", "time": True},
        "y": {"label": "feature"},
        "legend": {
            "label": "drift severity",
            "low": "like the reference",
            "mid": "at the threshold",
            "high": "far past it",
        },
        "empty": "No requests in this window: nothing to compare.",
    }


def _cell(drift: FeatureDrift) -> dict[str, Any]:
    return {
        "test": drift.test,
        "statistic": clean(drift.statistic),
        "p": clean(drift.p_value),
        "threshold": clean(drift.threshold),
        "n": drift.n_current,
        "drifted": drift.drifted,
    }


# -- predictions ----------------------------------------------------------------------------


def prediction_lines(
    times: Sequence[float],
    per_bucket: Sequence[Sequence[Any]],
    *,
    label: bool,
    end: float | None = None,
) -> dict[str, Any]:
    """Predictions over time: for class labels the share of each (the 8 most frequent) per
    bucket; for numbers their p10, p50 and p90. ``per_bucket`` holds each bucket's values."""
    if label:
        totals = pd.Series([str(v) for values in per_bucket for v in values], dtype=object)
        classes = totals.value_counts().index[:8].tolist()
        series: dict[str, list[float | None]] = {str(c): [] for c in classes}
        for values in per_bucket:
            counts = pd.Series([str(v) for v in values], dtype=object).value_counts()
            for c in classes:
                series[str(c)].append(
                    float(counts.get(c, 0)) / len(values) * 100 if len(values) else None
                )
        return time_lines("share of predictions", "%", times, series, end=end)
    quantiles: dict[str, list[float | None]] = {"p10": [], "p50": [], "p90": []}
    for values in per_bucket:
        numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
        finite = numbers.to_numpy(dtype=float)
        finite = finite[np.isfinite(finite)]
        for q, key in ((10, "p10"), (50, "p50"), (90, "p90")):
            quantiles[key].append(float(np.percentile(finite, q)) if finite.size else None)
    return time_lines("prediction", "", times, quantiles, end=end)


def unseen_rows(features: Sequence[FeatureDrift]) -> list[dict[str, Any]]:
    """One row per feature whose current values the reference never held: new categories,
    values below its minimum or above its maximum, missing values where it had none."""
    rows = []
    for f in features:
        u = f.unseen
        new = list(u.get("new_categories") or [])
        counts = (int(u.get("below_min", 0)), int(u.get("above_max", 0)))
        missing = int(u.get("new_missing", 0))
        if new or any(counts) or missing:
            rows.append(
                {
                    "feature": f.feature,
                    "kind": f.kind,
                    "new_categories": new,
                    "below_min": counts[0],
                    "above_max": counts[1],
                    "new_missing": missing,
                    "n_current": f.n_current,
                }
            )
    return rows
