"""The pictures of a monitoring report: small Matplotlib figures, inlined as PNG ``<img>`` tags.

Figures are drawn with Matplotlib's object API (no pyplot, no global state, Agg canvas) on a
fixed layout, and over time as hours since the first point: both keep a report of dozens of
figures fast to draw.

Example:
    >>> figure = new_figure(1)
    >>> line = png_tag(line_figure(Series([0.0, 3600.0], {"drift_share": [0.1, 0.4]}),
    ...                            ["drift_share"]), "drift share")
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

REFERENCE_COLOR, CURRENT_COLOR = "#4c72b0", "#dd8452"


@dataclass(frozen=True)
class Series:
    """Values over time: one point per bucket start."""

    times: list[float]
    values: dict[str, list[float]]


def new_figure(columns: int) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # A fixed layout: constrained/tight layout measures every tick label and costs most of
    # the drawing time of a report with dozens of small figures.
    figure = Figure(figsize=(4.2 * columns, 2.5), dpi=72)
    figure.subplots_adjust(left=0.09, right=0.98, bottom=0.2, top=0.88, wspace=0.25)
    for axis in figure.subplots(1, columns, squeeze=False)[0]:
        axis.xaxis.set_major_locator(MaxNLocator(4))
        axis.yaxis.set_major_locator(MaxNLocator(3))
        axis.tick_params(labelsize=7)
    return figure


def numeric_hist(
    axis: Any, profile: dict, sample: Any, current: pd.Series, *, legend: bool = True
) -> None:
    from segue.monitoring.stats import sample_from_histogram

    histogram = profile.get("histogram") or {}
    if sample is not None:
        ref = pd.to_numeric(pd.Series(sample), errors="coerce").to_numpy(dtype=float)
    elif histogram.get("edges"):
        ref = sample_from_histogram(histogram["edges"], histogram["counts"])
    else:
        ref = np.array([])
    cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    both = np.concatenate([ref, cur])
    if not both.size:
        axis.text(0.5, 0.5, "no values", ha="center", transform=axis.transAxes)
        return
    edges = np.histogram_bin_edges(both, bins=30)
    # stairs: one artist per histogram instead of a patch per bar (far faster to draw).
    for values, color, label in (
        (ref, REFERENCE_COLOR, "reference"),
        (cur, CURRENT_COLOR, "current"),
    ):
        if values.size:
            density, _ = np.histogram(values, bins=edges, density=True)
            axis.stairs(density, edges, fill=True, alpha=0.5, color=color, label=label)
    if legend:
        axis.legend(fontsize=7)


def category_bars(axis: Any, profile: dict, current: pd.Series, *, legend: bool = True) -> None:
    from matplotlib.ticker import FixedLocator

    top = profile.get("top") or []
    total = sum(t["count"] for t in top) + (profile.get("other_count") or 0)
    ref = {str(t["value"]): t["count"] / total for t in top} if total else {}
    counts = current.dropna().astype(str).value_counts(normalize=True)
    names = list(dict.fromkeys([*ref, *counts.index[:20]]))[:25]
    x = np.arange(len(names))
    axis.bar(
        x - 0.2, [ref.get(n, 0.0) for n in names], 0.4, color=REFERENCE_COLOR, label="reference"
    )
    axis.bar(
        x + 0.2,
        [float(counts.get(n, 0.0)) for n in names],
        0.4,
        color=CURRENT_COLOR,
        label="current",
    )
    axis.set_xticks(x, [n[:12] for n in names], fontsize=7, rotation=45)
    axis.xaxis.set_major_locator(FixedLocator(x.tolist()))
    if legend:
        axis.legend(fontsize=7)


def trend(axis: Any, series: Series, name: str, threshold: float) -> None:
    values = series.values.get(name, [])
    if values:
        axis.plot(hours(series.times), values, marker="o", color=CURRENT_COLOR)
        axis.axhline(threshold, color="#c44e52", linestyle="--", linewidth=1)


def line_plot(series: Series, names: list[str]) -> str:
    return png_tag(line_figure(series, names), " ".join(names))


def line_figure(series: Series, names: list[str]) -> Any:
    figure = new_figure(1)
    axis = figure.axes[0]
    for name in names:
        axis.plot(hours(series.times), series.values.get(name, []), marker="o", label=name)
    axis.legend(fontsize=7)
    axis.set_xlabel(hours_label(series.times), fontsize=7)
    return figure


def hours(times: Sequence[float]) -> list[float]:
    # Hours since the first point: plain numbers tick far faster than date axes.
    return [(t - times[0]) / 3600 for t in times] if times else []


def hours_label(times: Sequence[float]) -> str:
    if not times:
        return "hours"
    start = dt.datetime.fromtimestamp(times[0], dt.timezone.utc)
    return f"hours since {start:%Y-%m-%d %H:%M:%S} UTC"


def png_tag(figure: Any, alt: str) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 3})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}">'
