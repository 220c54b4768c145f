"""``/compare?run=ID&run=ID...``: 2 to 20 runs side by side — a summary, the param diff, the
latest metrics with the best highlighted, each metric's series overlaid, and a
parallel-coordinates plot of the params against one metric (``metric=``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from segue.errors import InvalidArgument
from segue.server.app import server_state
from segue.server.ui import compare_view, run_view, series
from segue.server.ui.render import render
from segue.store.entities import Run
from segue.store.tracking import SqlTrackingStore

router = APIRouter()

MIN_RUNS, MAX_RUNS = 2, 20
#: Points per series on the overlays: enough for a chart, light enough for 20 runs.
OVERLAY_POINTS = 4000
Repeated = Annotated[list[str], Query(max_length=100)]


@router.get("/compare")
def compare_page(
    request: Request,
    run: Repeated = [],  # noqa: B006
    metric: str | None = None,
    only: str | None = None,
) -> Response:
    """The comparison, or the page with an inline error for fewer than 2 or more than 20 runs."""
    ids = list(dict.fromkeys(i.strip() for i in run if i.strip()))
    crumbs = [("Experiments", "/experiments"), ("Compare runs", None)]
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        message = (
            f"Compare needs {MIN_RUNS} to {MAX_RUNS} runs; {len(ids)} given. "
            "Select them with the checkboxes of the runs table."
        )
        context = {"error": message, "runs": []}
        return render(request, "compare.html", context, title="Compare", crumbs=crumbs, status=422)
    store = server_state(request).tracking
    runs = [store.get_run(store.resolve_run_id(i)) for i in ids]
    context = comparison(store, runs, metric, only_differences=only == "1")
    return render(request, "compare.html", context, title="Compare runs", crumbs=crumbs)


def comparison(
    store: SqlTrackingStore, runs: list[Run], metric: str | None, *, only_differences: bool
) -> dict[str, Any]:
    """What ``compare.html`` shows."""
    labels = series.labels([(r.id, r.info.name) for r in runs])
    metrics = compare_view.metric_rows(runs)
    keys = [row.key for row in metrics]
    if metric is not None and metric not in keys:
        raise InvalidArgument(f"metric={metric!r}: none of these runs has it; pick one of {keys}")
    chosen = metric or (keys[0] if keys else None)
    now = int(time.time() * 1000)
    charts = [overlay(store, runs, labels, key) for key in keys]
    return {
        "error": None,
        "runs": runs,
        "labels": labels,
        "durations": [run_view.duration_ms(r.info, now) for r in runs],
        "params": compare_view.param_rows(runs, only_differences),
        "only_differences": only_differences,
        "metrics": metrics,
        "metric": chosen,
        "overlays": [chart for chart in charts if _has_steps(chart)],
        "parcoords": compare_view.parcoords_spec(runs, labels, chosen),
    }


def _has_steps(chart: dict[str, Any]) -> bool:
    """Whether a run logged the chart's metric at more than one step (a single value per run
    is in the metrics table; a chart of one dot a run says nothing more)."""
    return any(len(line["x"]) > 1 for line in chart["spec"]["series"])


def overlay(
    store: SqlTrackingStore, runs: list[Run], labels: list[str], key: str
) -> dict[str, Any]:
    """A ``lines`` chart of metric ``key``: a series per run, by step."""
    lines = []
    for run, label in zip(runs, labels, strict=True):
        if key not in run.data.metrics:
            continue
        history = store.get_metric_columns(run.id, key)
        xs, ys = series.decimate(history.steps, series.finite(history.values), OVERLAY_POINTS)
        lines.append({"label": label, "x": xs, "y": ys})
    return {
        "key": key,
        "spec": {
            "x": {"label": "step"},
            "y": {"label": key},
            "series": lines,
            "controls": True,
            "height": 240,
            "empty": f"No points of {key}.",
        },
    }
