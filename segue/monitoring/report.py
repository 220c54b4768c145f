"""A monitoring report: one self-contained HTML file with numbers and pictures.

For a model's logged window it shows the drift verdict and table, each feature's reference and
current distributions with its drift score over time, the prediction distribution, the
performance over time (when feedback labels exist), the latency, and the server (5xx) and
client (4xx) error rates over time.
Plots are PNGs (:mod:`segue.monitoring.plots`) inlined as base64, so the file opens
anywhere, offline: no scripts, no CDN, no links. Every value is HTML-escaped.

Example:
    >>> html = Monitor(registry, artifact_uri).report("churn@champion", start=time.time() - 86400)
    >>> Path("report.html").write_text(html)
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segue.monitoring import logs, plots
from segue.monitoring.drift import DriftReport, compare, verdict
from segue.monitoring.plots import Series
from segue.monitoring.readers import read_predictions
from segue.monitoring.signals import error_rates
from segue.monitoring.window import buckets

if TYPE_CHECKING:
    from segue.monitoring.performance import PerformanceReport
    from segue.monitoring.service import Monitor

#: Time buckets a report aims for when none is given.
TARGET_BUCKETS = 12
_NICE = (60, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)


def bucket_width(start: float, end: float, target: int = TARGET_BUCKETS) -> float:
    """A round bucket width (1 min … 1 week) giving about ``target`` buckets over the span."""
    span = max(end - start, 1.0)
    return next((w for w in _NICE if span / w <= target), _NICE[-1])


def build_report(
    monitor: Monitor,
    model_uri: str,
    *,
    start: float | None = None,
    end: float | None = None,
    bucket: float | None = None,
    now: Callable[[], float] | None = None,
) -> str:
    """The HTML report of ``model_uri``'s logged predictions in ``[start, end)``.

    ``model_uri`` is resolved once: every section describes the same version, even if an
    alias moves while the report is drawn.

    Args:
        monitor: the monitoring service (registry and logs).
        bucket: seconds per point of the over-time plots (default: about 12 points).
        now: epoch seconds, stamped in the report (default ``time.time``).

    Raises:
        InvalidArgument: nothing logged in the window, or no reference in the package.
        NotFound: no such model, version or alias.
    """
    import time

    version = monitor.resolve(model_uri)
    reference = monitor.reference(version)
    report = monitor.drift_of(version, start=start, end=end, reference=reference)
    logged = read_predictions(monitor.artifact_uri, report.model, start=start, end=end)
    served = logged[logged["role"] != "shadow"]
    rows = logs.flatten(served[served["role"] == "primary"])
    rows = rows[rows["version"] == str(report.version)]
    lo = float(logged["time"].min()) if start is None else start
    hi = float(logged["time"].max()) + 1e-3 if end is None else end
    width = bucket or bucket_width(lo, hi)
    edges = buckets(lo, hi, width)
    frame = pd.DataFrame.from_records(list(rows["input"])) if len(rows) else pd.DataFrame()
    frame.columns = [str(c) for c in frame.columns]
    labels = [logs.split_output(o)[0] for o in rows["output"]]
    predictions = np.empty(len(labels), dtype=object)
    predictions[:] = labels
    drift_over_time = _drift_over_time(reference, frame, predictions, rows, edges)
    sections = [
        _summary(report, lo, hi, width, (now or time.time)()),
        _drift_table(report),
        _figure_section("Drift share over time", plots.line_plot(drift_over_time, ["drift_share"])),
        _features(reference, report, frame, drift_over_time),
        _prediction_section(reference, predictions),
        _performance_section(
            monitor.performance(model_uri, version=version, window=width, start=lo, end=hi)
        ),
        _operations_section(served, edges),
    ]
    title = f"Segue monitoring report: {report.model} v{report.version}"
    return _page(title, "".join(sections))


# --- data over time ----------------------------------------------------------------------


def _drift_over_time(
    reference: Any,
    frame: pd.DataFrame,
    predictions: np.ndarray,
    rows: pd.DataFrame,
    edges: Sequence[tuple[float, float]],
) -> Series:
    times = rows["time"].to_numpy()
    out = Series([], {"drift_share": []})
    for a, b in edges:
        mask = (times >= a) & (times < b)
        if not mask.any():
            continue
        features, prediction = compare(
            reference, frame[mask].reset_index(drop=True), predictions[mask]
        )
        out.times.append(a)
        share = sum(f.drifted for f in features) / len(features) if features else 0.0
        out.values["drift_share"].append(share)
        for f in [*features, *([prediction] if prediction is not None else [])]:
            series = out.values.setdefault(f"{f.feature}", [math.nan] * (len(out.times) - 1))
            series.append(f.statistic)
        for series in out.values.values():
            series.extend([math.nan] * (len(out.times) - len(series)))
    return out


def latency_over_time(served: pd.DataFrame, edges: Sequence[tuple[float, float]]) -> Series:
    """p50 and p99 latency (ms) and the server (5xx) and client (4xx) error rates per bucket
    of a prediction-log frame."""
    times = served["time"].to_numpy() if len(served) else np.array([])
    names = ("latency_p50_ms", "latency_p99_ms", "server_error_rate", "client_error_rate")
    out = Series([], {name: [] for name in names})
    for a, b in edges:
        part = served[(times >= a) & (times < b)]
        if not len(part):
            continue
        latency = part["latency_ms"].to_numpy(dtype=float)
        out.times.append(a)
        out.values["latency_p50_ms"].append(float(np.percentile(latency, 50)))
        out.values["latency_p99_ms"].append(float(np.percentile(latency, 99)))
        server, client = error_rates(part["status"].to_numpy())
        out.values["server_error_rate"].append(server)
        out.values["client_error_rate"].append(client)
    return out


# --- sections --------------------------------------------------------------------------------


def _summary(report: DriftReport, lo: float, hi: float, width: float, stamp: float) -> str:
    drifted, rule = verdict(report)
    items = [
        ("Model", f"{report.model} version {report.version}"),
        ("Window", f"{_when(lo)} to {_when(hi)} (points every {_duration(width)})"),
        ("Rows", f"{report.n_rows}"),
        ("Features", drifted),
        ("Data set", rule),
        ("Generated", _when(stamp)),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    return (
        f"<section><h2>Summary</h2><table class='kv'>{body}</table>"
        + (f"<ul class='notes'>{notes}</ul>" if notes else "")
        + "</section>"
    )


def _drift_table(report: Any) -> str:
    head = ["feature", "kind", "test", "statistic", "p-value", "threshold", "verdict", "n ref"]
    head.append("n current")
    rows = []
    every = [*report.features, *([report.prediction] if report.prediction else [])]
    for f in every:
        name = f"[prediction] {f.feature}" if f is report.prediction else f.feature
        cells = [
            name,
            f.kind,
            f.test,
            _num(f.statistic),
            _num(f.p_value),
            _num(f.threshold),
            "DRIFT" if f.drifted else "ok",
            str(f.n_reference),
            str(f.n_current),
        ]
        cls = " class='drift'" if f.drifted else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (
        "<section><h2>Drift by feature</h2><table class='grid'>"
        f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _features(reference: Any, report: Any, frame: pd.DataFrame, over_time: Series) -> str:
    key = (
        "<p class='notes'>Left: distribution, "
        f"<span style='color:{plots.REFERENCE_COLOR}'>reference</span> vs "
        f"<span style='color:{plots.CURRENT_COLOR}'>current</span>. Right: the drift statistic "
        "per time bucket, its threshold dashed.</p>"
    )
    parts = ["<section><h2>Features</h2>", key]
    for f in report.features:
        profile = reference.columns.get(f.feature, {})
        sample = None
        if reference.sample is not None and f.feature in reference.sample.columns:
            sample = reference.sample[f.feature]
        current = frame[f.feature] if f.feature in frame.columns else pd.Series([], dtype=object)
        # Titles and legends are HTML: drawing text is most of a small figure's cost.
        figure = plots.new_figure(2)
        dist, trend = figure.axes
        if profile.get("kind") == "numeric":
            plots.numeric_hist(dist, profile, sample, current, legend=False)
        else:
            plots.category_bars(dist, profile, current, legend=False)
        plots.trend(trend, over_time, f.feature, f.threshold)
        state = "DRIFT" if f.drifted else "ok"
        image = plots.png_tag(figure, f.feature)
        parts.append(
            f"<div class='feature'><h3>{_e(f.feature)} <small>{_e(f.test)} "
            f"{_e(_num(f.statistic))}: {_e(state)}</small></h3>{image}</div>"
        )
    parts.append("</section>")
    return "".join(parts)


def _prediction_section(reference: Any, predictions: np.ndarray) -> str:
    profile = reference.predictions
    if not len(predictions):
        return _note_section("Predictions", "no predictions in the window")
    figure = plots.new_figure(1)
    axis = figure.axes[0]
    current = pd.Series(list(predictions), dtype=object)
    if profile is not None and profile.get("kind") == "numeric":
        sample = pd.to_numeric(pd.Series(profile.get("sample") or []), errors="coerce")
        plots.numeric_hist(axis, profile, sample, current)
    else:
        plots.category_bars(axis, profile or {}, current)
    return _figure_section("Prediction distribution", plots.png_tag(figure, "predictions"))


def _performance_section(report: PerformanceReport) -> str:
    if not report.n_labelled:
        return _note_section("Performance", " ".join(report.notes) or "no feedback labels")
    names = sorted({k for w in report.windows for k in w.metrics})
    series = Series(
        [w.start for w in report.windows],
        {k: [w.metrics.get(k, math.nan) for w in report.windows] for k in names},
    )
    rows = [["metric", "production (all windows)", *(f"training v{v}" for v in report.training)]]
    for k in names:
        training = [_num(m.get(k)) for m in report.training.values()]
        rows.append([k, _num(report.overall.get(k)), *training])
    table = "<table class='grid'>" + "".join(
        "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    counts = f"<p>{_e(report.n_labelled)} of {_e(report.n_predictions)} rows labelled.</p>"
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)  # e.g. labels skipped
    if notes:
        counts += f"<ul class='notes'>{notes}</ul>"
    return (
        f"<section><h2>Performance over time</h2>{counts}{table}</table>"
        f"{plots.png_tag(plots.line_figure(series, names), 'performance')}</section>"
    )


def _operations_section(served: pd.DataFrame, edges: Sequence[tuple[float, float]]) -> str:
    series = latency_over_time(served, edges)
    if not series.times:
        return _note_section("Latency and errors", "no requests in the window")
    figure = plots.new_figure(2)
    latency, errors = figure.axes
    when = plots.hours(series.times)
    for key in ("latency_p50_ms", "latency_p99_ms"):
        latency.plot(when, series.values[key], marker="o", label=key.removesuffix("_ms"))
    latency.set_ylabel("ms")
    latency.legend(fontsize=8)
    latency.set_title("latency", fontsize=9)
    errors.plot(when, series.values["server_error_rate"], marker="o", color="#c44e52", label="5xx")
    errors.plot(when, series.values["client_error_rate"], marker="o", color="#dd8452", label="4xx")
    errors.legend(fontsize=8)
    errors.set_title("error rates: server (5xx) and client (4xx)", fontsize=9)
    errors.set_ylim(bottom=0)
    for axis in figure.axes:
        axis.set_xlabel(plots.hours_label(series.times), fontsize=7)
    return _figure_section("Latency and errors over time", plots.png_tag(figure, "latency"))


# --- HTML ------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3 small{font-weight:normal;color:#666}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.25em .7em;text-align:left}
table.grid td,table.grid th{border-bottom:1px solid #eee}tr.drift td{color:#b00;font-weight:600}
table.kv th{color:#555;font-weight:600}ul.notes{color:#666;font-size:.9em}
img{max-width:100%}.feature{margin:1em 0}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{_e(title)}</h1>{body}</body></html>\n"
    )


def _figure_section(title: str, image: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{image}</section>"


def _note_section(title: str, note: str) -> str:
    return f"<section><h2>{_e(title)}</h2><p class='notes'>{_e(note)}</p></section>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"
