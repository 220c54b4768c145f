"""Metric series for the run page's charts: points as columns, decimated past a limit.

Pure functions over plain data (no I/O): a history becomes ``(xs, ys)`` columns that JSON can
carry (NaN and infinities become None, drawn as gaps), and a series longer than
:data:`MAX_POINTS` is thinned by :func:`decimate`, which keeps each bucket's lowest and highest
point so spikes survive, as the eye would see them on a chart a few thousand pixels wide.

Example::

    >>> history = store.get_metric_columns(run_id, "loss")
    >>> xs, ys = decimate(history.steps, finite(history.values), 1000)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FIRST_POINTS", "MAX_POINTS", "Series", "chart_spec", "decimate", "finite", "labels"]

#: Points a chart gets per series; longer series are decimated on the server.
MAX_POINTS = 100_000
#: Points per series of a long series' first paint: a lowest and a highest point for each of
#: 1,000 buckets, at least one bucket a pixel on charts up to 1,000 px wide (the run page's
#: are about 600 px at 1366x768), so it draws what the whole series draws; the whole follows.
FIRST_POINTS = 2_000


@dataclass(frozen=True)
class Series:
    """One run's points of one metric, ready for a chart (``total``: points before thinning)."""

    label: str
    xs: list[int]
    ys: list[float | None]
    total: int

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "x": self.xs, "y": self.ys}

    @property
    def decimated(self) -> bool:
        return len(self.xs) < self.total


def finite(values: Sequence[float | None]) -> list[float | None]:
    """``values`` with None for anything not finite (JSON has no NaN or infinity)."""
    isfinite = math.isfinite
    return [v if v is not None and isfinite(v) else None for v in values]


def decimate(
    xs: Sequence[int], ys: Sequence[float | None], limit: int = MAX_POINTS
) -> tuple[list[int], list[float | None]]:
    """At most ``limit`` points of the series, chosen by min/max per bucket.

    The points are cut into ``limit // 2`` buckets of consecutive points; each bucket keeps its
    lowest and highest value (in their original order), so peaks and dips stay visible. The
    first and last points are always kept, the result is a subsequence of the input, and a
    series of at most ``limit`` points comes back whole. A bucket with no finite value keeps
    its first point (a gap stays a gap).

    Raises:
        ValueError: if ``limit`` is below 4 or ``xs`` and ``ys`` differ in length.

    Example::

        >>> decimate(list(range(10)), [0, 9, 1, 1, 1, 1, 1, -5, 1, 2], 6)
        ([0, 1, 2, 5, 7, 9], [0, 9, 1, 1, -5, 2])
    """
    if limit < 4:
        raise ValueError(f"limit must be at least 4, got {limit}")
    if len(xs) != len(ys):
        raise ValueError(f"xs has {len(xs)} points and ys {len(ys)}")
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    # The first and last points are kept on their own; the rest share the buckets.
    buckets = (limit - 2) // 2
    inner = n - 2
    keep = [0]
    for b in range(buckets):
        start = 1 + b * inner // buckets
        end = 1 + (b + 1) * inner // buckets
        keep.extend(_extremes(ys, start, end))
    keep.append(n - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


def _extremes(ys: Sequence[float | None], start: int, end: int) -> list[int]:
    """The indexes of the lowest and highest finite values in ``ys[start:end]``, in order."""
    chunk = ys[start:end]
    try:  # the common case, no gaps: min and max run in C
        low = start + chunk.index(min(chunk))  # type: ignore[type-var]
        high = start + chunk.index(max(chunk))  # type: ignore[type-var]
    except (TypeError, ValueError):  # a None among the values, or an empty bucket
        return _extremes_with_gaps(ys, start, end)
    if math.isfinite(ys[low]) and math.isfinite(ys[high]):  # type: ignore[arg-type]
        return [low] if low == high else sorted((low, high))
    return _extremes_with_gaps(ys, start, end)


def _extremes_with_gaps(ys: Sequence[float | None], start: int, end: int) -> list[int]:
    low = high = -1
    low_value = high_value = 0.0
    for i in range(start, end):
        value = ys[i]
        if value is None or not math.isfinite(value):
            continue
        if low < 0 or value < low_value:
            low, low_value = i, value
        if high < 0 or value > high_value:
            high, high_value = i, value
    if low < 0:
        return [start] if start < end else []
    return [low] if low == high else sorted((low, high))


def labels(names: Sequence[tuple[str, str]]) -> list[str]:
    """Legend labels for runs given as (run id, run name): the name, or the name and the full
    id when two runs share a name (ids are never cut)."""
    counts: dict[str, int] = {}
    for _, name in names:
        counts[name] = counts.get(name, 0) + 1
    return [name if counts[name] == 1 and name else f"{name} {run_id}" for run_id, name in names]


def chart_spec(
    key: str, series: Sequence[Series] | None = None, *, src: str | None = None
) -> dict[str, Any]:
    """The spec of one metric's ``lines`` chart (``segue.js``): the series inline, or, for
    long ones, the URL ``src`` its points are fetched from (``run.js``) and ``first``, the
    same with :data:`FIRST_POINTS`, drawn first (the page preloads it)."""
    spec: dict[str, Any] = {
        "x": {"label": "step"},
        "y": {"label": key},
        "controls": True,
        "height": 240,
        "empty": f"No points of {key} yet.",
    }
    if src is not None:
        spec["src"] = src
        spec["first"] = f"{src}{'&' if '?' in src else '?'}points={FIRST_POINTS}"
    else:
        spec["series"] = [s.as_json() for s in series or ()]
    return spec
