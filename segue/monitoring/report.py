"""A monitoring report: one self-contained HTML file with the web UI's charts.

For a model's logged window it shows the drift verdict and table, drift per feature over time
(a heat map), the unseen values, each feature's reference and current distributions, the
prediction distribution, the performance over time (when feedback labels exist), the request
volume, the latency, and the server (5xx) and client (4xx) error rates over time.

The charts are those of the web UI's monitoring page (specs from
:mod:`segue.monitoring.charts`, drawn by uPlot and ``heatmap.js``): the scripts and style
sheets are read from the package and inlined, and each chart's data is a
``<script type="application/json">``, so the file opens anywhere, offline, with real UTC time
axes. Nothing is loaded from elsewhere. Every value is HTML-escaped; chart data is JSON with
``<``, ``>`` and ``&`` escaped.

Example:
    >>> html = Monitor(registry, artifact_uri).report("churn@champion", start=time.time() - 86400)
    >>> Path("report.html").write_text(html)
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from segue.errors import InvalidArgument
from segue.monitoring.dashboard import Dashboard, bucket_width, dashboard
from segue.monitoring.drift import verdict
from segue.monitoring.readers import read_predictions

if TYPE_CHECKING:
    from segue.monitoring.service import Monitor

__all__ = ["TARGET_BUCKETS", "bucket_width", "build_report"]

#: Time buckets a report aims for when none is given.
TARGET_BUCKETS = 12
#: Files inlined into every report, from the ``segue.static`` package, in load order.
STYLES = ("vendor/uplot/uPlot.min.css", "ui/segue.css")
SCRIPTS = ("vendor/uplot/uPlot.iife.min.js", "ui/segue.js", "ui/heatmap.js")


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
        bucket: seconds per point of the over-time charts (default: about 12 points).
        now: epoch seconds, stamped in the report (default ``time.time``).

    Raises:
        InvalidArgument: nothing logged in the window, or no reference in the package.
        NotFound: no such model, version or alias.
    """
    import time

    version = monitor.resolve(model_uri)
    monitor.reference(version)  # a package without a reference stops here, naming the version
    number = str(version.version)
    if start is None or end is None:
        logged = read_predictions(
            monitor.artifact_uri,
            version.model_name,
            start=start,
            end=end,
            version=number,
            decode=False,
        )
        if not len(logged):
            raise _nothing_logged(version.model_name, number, start, end)
        start = float(logged["time"].min()) if start is None else start
        end = float(logged["time"].max()) + 1e-3 if end is None else end
    width = bucket or bucket_width(start, end, TARGET_BUCKETS)
    board = dashboard(
        monitor, version.model_name, start=start, end=end, bucket=width, resolved=version
    )
    if not board.n_rows or board.drift is None:
        raise _nothing_logged(version.model_name, number, start, end)
    stamp = (now or time.time)()
    title = f"Segue monitoring report: {board.model} v{board.version}"
    return _page(title, _body(board, stamp))


def _nothing_logged(model: str, version: str, start: float | None, end: float | None) -> Exception:
    return InvalidArgument(
        f"no predictions logged for {model} (version {version}, primary) between "
        f"{_when(start) if start is not None else 'the beginning'} and "
        f"{_when(end) if end is not None else 'now'}; widen the window (--since) or check "
        "that the server logs predictions"
    )


# --- sections --------------------------------------------------------------------------------


def _body(board: Dashboard, stamp: float) -> str:
    charts = board.charts
    parts = [
        _summary(board, stamp),
        _section(
            "Drift per feature over time",
            _chart(
                "drift-heatmap",
                "heatmap",
                charts["heatmap"],
                "Drift per feature (rows) per "
                "time bucket (columns, UTC); hover a cell for its test",
            ),
        ),
        _section(
            "Drift share over time",
            _chart(
                "drift-share",
                "lines",
                charts["drift_share"],
                "Share of features drifted per bucket (%)",
            ),
        ),
        _drift_table(board),
        _unseen_section(board.unseen),
        _features(board),
        _section(
            "Prediction distribution",
            "<div class='grid'>"
            + _chart(
                "prediction-histogram",
                "bars",
                charts["prediction_histogram"],
                "Predictions: reference vs current (% of rows)",
            )
            + _chart("predictions", "lines", charts["predictions"], "Predictions over time")
            + "</div>",
        ),
        _performance_section(board),
        _section(
            "Latency and errors over time",
            "<div class='grid'>"
            + _chart("volume", "lines", charts["volume"], "Request volume (requests per bucket)")
            + _chart("latency", "lines", charts["latency"], "Latency p50 and p99 (ms)")
            + _chart(
                "errors",
                "lines",
                charts["errors"],
                "Error rates: server (5xx) and client (4xx), % of requests",
            )
            + "</div>",
        ),
    ]
    return "".join(parts)


def _summary(board: Dashboard, stamp: float) -> str:
    assert board.drift is not None
    drifted, rule = verdict(board.drift)
    items = [
        ("Model", f"{board.model} version {board.version}"),
        (
            "Window",
            f"{_when(board.start)} to {_when(board.end)} (points every {board.bucket_text})",
        ),
        ("Requests", f"{board.n_requests}"),
        ("Rows", f"{board.drift.n_rows}"),
        ("Features", drifted),
        ("Data set", rule),
        ("Generated", _when(stamp)),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    notes = "".join(f"<li>{_e(n)}</li>" for n in [*board.drift.notes, *board.notes])
    return (
        f"<section><h2>Summary</h2><table class='kv'>{body}</table>"
        + (f"<ul class='notes'>{notes}</ul>" if notes else "")
        + "</section>"
    )


def _drift_table(board: Dashboard) -> str:
    report = board.drift
    assert report is not None
    head = ["feature", "kind", "test", "statistic", "p-value", "threshold", "verdict", "n ref"]
    head.append("n current")
    numeric = {3, 4, 5, 7, 8}
    rows = []
    for f in [*report.features, *([report.prediction] if report.prediction else [])]:
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
        cls = " class='drifted'" if f.drifted else ""
        rows.append(f"<tr{cls}>" + _cells(cells, numeric) + "</tr>")
    return _section("Drift by feature", _table(head, rows, set(numeric)))


def _unseen_section(unseen: Sequence[dict[str, Any]]) -> str:
    if not unseen:
        return _note_section("Unseen values", "every current value lies within the reference")
    head = [
        "feature",
        "new categories",
        "below the reference min",
        "above the reference max",
        "missing (none in reference)",
        "rows",
    ]
    rows = [
        "<tr>"
        + _cells(
            [
                u["feature"],
                ", ".join(u["new_categories"]) or "-",
                str(u["below_min"]),
                str(u["above_max"]),
                str(u["new_missing"]),
                str(u["n_current"]),
            ],
            {2, 3, 4, 5},
        )
        + "</tr>"
        for u in unseen
    ]
    numeric = set(range(2, len(head)))
    return _section("Unseen values", _table(head, rows, numeric, "unseen"))


def _features(board: Dashboard) -> str:
    parts = [
        "<p class='hint'>Each feature's distribution: reference (blue) vs current "
        "(orange), as a share of rows.</p><div class='grid'>"
    ]
    for i, view in enumerate(board.features, 1):
        f, unseen = view.drift, view.histogram["unseen"]
        caption = f"{f.feature} · {f.test} {_num(f.statistic)} · {'DRIFT' if f.drifted else 'ok'}"
        note = ""
        if unseen["below_min"] or unseen["above_max"]:
            note = (
                f"Outside the reference range ({_num(unseen['min'])} to "
                f"{_num(unseen['max'])}): {unseen['below_min']} below, "
                f"{unseen['above_max']} above."
            )
        if unseen["new_categories"]:
            note = "New categories: " + ", ".join(unseen["new_categories"])
        parts.append(
            f"<div class='feature'>{_chart(f'hist-{i}', 'bars', view.histogram, caption)}"
            + (f"<p class='unseen-note'>{_e(note)}</p>" if note else "")
            + "</div>"
        )
    parts.append("</div>")
    return _section("Features", "".join(parts))


def _performance_section(board: Dashboard) -> str:
    report = board.performance
    if report is None or not report.n_labelled:
        notes = " ".join(report.notes) if report is not None else ""
        return _note_section("Performance", notes or "no feedback labels")
    names = sorted({k for w in report.windows for k in w.metrics})
    head = ["metric", "production (all windows)", *(f"training v{v}" for v in report.training)]
    rows = []
    for k in names:
        training = [_num(m.get(k)) for m in report.training.values()]
        cells = [k, _num(report.overall.get(k)), *training]
        rows.append("<tr>" + _cells(cells, set(range(1, len(cells)))) + "</tr>")
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    counts = f"<p>{_e(report.n_labelled)} of {_e(report.n_predictions)} rows labelled.</p>"
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)  # e.g. labels skipped
    if notes:
        counts += f"<ul class='notes'>{notes}</ul>"
    table = (
        f"<div class='table-wrap'><table><thead><tr>{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    chart = _chart("performance", "lines", board.charts["performance"], "Metrics over time")
    return _section("Performance over time", counts + table + chart)


# --- HTML ------------------------------------------------------------------------------------

_STYLE = """
main{max-width:1400px;margin:0 auto}
ul.notes{color:#5c6577;font-size:.9em}
.unseen-note{color:#9a6700;font-size:.88rem;margin:.3rem .2rem}
.report-meta{color:#5c6577}
"""


@cache
def _asset(path: str) -> str:
    text = resources.files("segue.static").joinpath(path).read_text(encoding="utf-8")
    # An inlined file must not end the element it sits in.
    return re.sub(r"</(script|style)", r"<\\/\1", text, flags=re.IGNORECASE)


def _page(title: str, body: str) -> str:
    styles = "".join(f"<style>{_asset(p)}</style>" for p in STYLES)
    scripts = "".join(f"<script>{_asset(p)}</script>" for p in SCRIPTS)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title>{styles}<style>{_STYLE}</style>{scripts}</head>"
        f"<body><main><h1>{_e(title)}</h1>{body}</main></body></html>\n"
    )


def _chart(chart_id: str, kind: str, spec: dict[str, Any], label: str) -> str:
    data = _json(spec)
    return (
        f"<figure class='chart-box'><figcaption>{_e(label)}</figcaption>"
        f"<div class='chart' id='{_e(chart_id)}' data-chart='{_e(kind)}' "
        f"data-spec='{_e(chart_id)}-spec' role='img' aria-label='{_e(label)}'></div>"
        f"<script type='application/json' id='{_e(chart_id)}-spec'>{data}</script></figure>"
    )


def _json(value: Any) -> str:
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _section(title: str, content: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{content}</section>"


def _note_section(title: str, note: str) -> str:
    return f"<section><h2>{_e(title)}</h2><p class='notes'>{_e(note)}</p></section>"


def _cells(values: Sequence[Any], numeric: set[int]) -> str:
    return "".join(
        f"<td{' class=num' if i in numeric else ''}>{_e(v)}</td>" for i, v in enumerate(values)
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4g}"


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(head: Sequence[str], rows: Sequence[str], numeric: set[int], cls: str = "") -> str:
    """A table of already-rendered ``rows`` under escaped ``head`` cells (``numeric``: the
    columns whose headers align right)."""
    header = "".join(
        f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(head)
    )
    attr = f" class='{cls}'" if cls else ""
    return (
        f"<div class='table-wrap'><table{attr}><thead><tr>{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
