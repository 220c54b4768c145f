"""The compare page's pure parts: the param diff, the metrics table with the best value of
each metric, and the parallel-coordinates spec. No I/O: ``pages/compare.py`` reads the store.

Example::

    >>> rows = param_rows(runs)
    >>> [r.key for r in rows if r.differs]
    ['C', 'model']
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from segue.store.entities import Run

__all__ = [
    "MetricRow",
    "ParamRow",
    "lower_is_better",
    "metric_rows",
    "param_rows",
    "parcoords_spec",
]

_LOWER = re.compile(r"loss|error|err\b|mse|mae|rmse|mape|logloss|perplexity|latency|time|brier")


@dataclass(frozen=True)
class ParamRow:
    """One param across the runs (None where a run lacks it) and whether the values differ."""

    key: str
    values: list[str | None]
    differs: bool


@dataclass(frozen=True)
class MetricRow:
    """One metric's latest value per run and the indexes of the best runs."""

    key: str
    values: list[float | None]
    best: frozenset[int]
    lower_better: bool


def param_rows(runs: Sequence[Run], only_differences: bool = False) -> list[ParamRow]:
    """Every param key any run has, sorted, with each run's value."""
    keys = sorted({k for run in runs for k in run.data.params})
    rows = []
    for key in keys:
        values = [run.data.params.get(key) for run in runs]
        differs = len(set(values)) > 1
        if differs or not only_differences:
            rows.append(ParamRow(key, values, differs))
    return rows


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of metric ``key`` is better (a loss, an error, a latency)."""
    return bool(_LOWER.search(key.lower()))


def metric_rows(runs: Sequence[Run]) -> list[MetricRow]:
    """Every metric key any run has, sorted, with the latest values and the best of them."""
    keys = sorted({k for run in runs for k in run.data.metrics})
    rows = []
    for key in keys:
        values: list[float | None] = []
        for run in runs:
            metric = run.data.metrics.get(key)
            finite = metric is not None and math.isfinite(metric.value)
            values.append(metric.value if finite and metric is not None else None)
        lower = lower_is_better(key)
        present = [v for v in values if v is not None]
        best: frozenset[int] = frozenset()
        if len(present) > 1:
            target = min(present) if lower else max(present)
            best = frozenset(i for i, v in enumerate(values) if v == target)
        rows.append(MetricRow(key, values, best, lower))
    return rows


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parcoords_spec(
    runs: Sequence[Run], labels: Sequence[str], metric: str | None
) -> dict[str, Any]:
    """The ``parcoords`` chart (``parcoords.js``): an axis per param that varies (numeric when
    every value reads as a number, else categorical), then ``metric``, whose value colors each
    run's line. Params that are the same in every run are left out: they explain nothing."""
    axes: list[dict[str, Any]] = []
    for row in param_rows(runs, only_differences=True):
        numbers = [_number(v) for v in row.values]
        if all(n is not None or v is None for n, v in zip(numbers, row.values, strict=True)):
            axes.append({"label": row.key, "type": "number", "values": numbers})
        else:
            shown = ["(none)" if v is None else v for v in row.values]
            categories = sorted(set(shown))
            axes.append(
                {"label": row.key, "type": "category", "categories": categories, "values": shown}
            )
    color: list[float | None] = []
    if metric is not None:
        for run in runs:
            point = run.data.metrics.get(metric)
            finite = point is not None and math.isfinite(point.value)
            color.append(point.value if finite and point is not None else None)
        axes.append({"label": metric, "type": "number", "values": color, "metric": True})
    return {
        "runs": list(labels),
        "axes": axes,
        "color": {"label": metric, "values": color} if metric else None,
        "empty": "No param differs between these runs." if len(axes) <= 1 else None,
        "height": 320,
    }
