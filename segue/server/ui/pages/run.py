"""``/runs/{run_id}``: one run — header, params, metrics and their charts, tags, source,
environment, data sets, models and artifacts — and the points of its metric charts.

``?compare=RUN_ID`` (repeatable, ids or unique prefixes) overlays other runs' series on the
same charts. Charts of short series carry their points in the page; a series past
:data:`~segue.server.ui.run_view.INLINE_STEPS` steps is fetched by ``run.js`` from
``/runs/{run_id}/metrics/{key}.json`` after the page shows, decimated past
:data:`~segue.server.ui.series.MAX_POINTS` points.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from segue.errors import InvalidArgument, NotFound
from segue.server.app import server_state
from segue.server.ui import previews, run_view, series
from segue.server.ui.render import PAGE_HEADERS, render
from segue.store.entities import Run
from segue.store.tracking import SqlTrackingStore

router = APIRouter()

_FULL_ID = re.compile(r"^[0-9a-f]{32}$")
_PREFIX = re.compile(r"^[0-9a-fA-F]{4,32}$")
Compare = Annotated[list[str], Query(max_length=100)]


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, compare: Compare = []) -> Response:  # noqa: B006
    """The run page (a unique prefix of the id redirects to the full id)."""
    state = server_state(request)
    store = state.tracking
    full = resolve(store, run_id)
    if full != run_id:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/runs/{full}{query}", 303)
    run = store.get_run(full)
    others, problems = overlays(store, full, compare)
    entries = store.list_artifacts(full)
    folders, files = previews.listing(entries, "")
    shown = charts(store, [run, *others])
    context = {
        "run": run,
        "info": run.info,
        "others": others,
        "compare_url": f"/compare?{urlencode([('run', r.id) for r in [run, *others]])}",
        "problems": problems,
        "duration": run_view.duration_ms(run.info, int(time.time() * 1000)),
        "charts": shown,
        "anchors": {chart["key"]: f"chart-{i}" for i, chart in enumerate(shown, 1)},
        "metric_rows": run_view.metric_rows([run, *others]),
        "source": run_view.source_rows(run.info),
        "environment": environment(store, run.info.environment_digest),
        "datasets": [
            (d, run_view.profile_rows(d.dataset.profile)) for d in store.list_datasets(full)
        ],
        "models": run_view.logged_models(entries),
        "versions": state.registry_store.versions_for_run(full),
        "folders": folders,
        "files": files,
        "entries": len(entries),
        "prefix": "",
    }
    return render(request, "run.html", context, title=f"Run {run.info.name}", crumbs=crumbs(run))


Points = Annotated[int, Query(ge=4, le=series.MAX_POINTS)]


@router.get("/runs/{run_id}/metrics/{key:path}.json")
def metric_points(
    request: Request,
    run_id: str,
    key: str,
    compare: Compare = [],  # noqa: B006
    points: Points = series.MAX_POINTS,
) -> Response:
    """``{"series": [{"label", "x", "y"}], "total", "drawn"}``: the metric's points of the run
    and of each overlaid run that has it, each decimated past ``points`` (the chart's limit by
    default; the page asks first for what its width shows, then for the rest)."""
    store = server_state(request).tracking
    run = store.get_run(resolve(store, run_id))
    others, _ = overlays(store, run.id, compare)
    lines = [line for line in _series(store, [run, *others], key, points) if line.total]
    body = {
        "series": [line.as_json() for line in lines],
        "total": sum(line.total for line in lines),
        "drawn": sum(len(line.xs) for line in lines),
    }
    # The page's headers too: nosniff, no caching of what a session may read.
    return Response(orjson.dumps(body), headers=PAGE_HEADERS, media_type="application/json")


def resolve(store: SqlTrackingStore, run_id: str) -> str:
    """The full id of the run ``run_id`` names (itself, or a unique prefix of 4+ characters).

    Raises:
        NotFound: no run has that id or prefix (or it cannot be one).
        InvalidArgument: the prefix is ambiguous.
    """
    if _FULL_ID.match(run_id):
        return run_id
    if not _PREFIX.match(run_id):
        raise NotFound(f"run {run_id!r} does not exist; see `segue runs list`")
    return store.resolve_run_id(run_id)


def overlays(
    store: SqlTrackingStore, run_id: str, compare: list[str]
) -> tuple[list[Run], list[str]]:
    """The runs ``compare`` names (at most :data:`MAX_COMPARE`, each once, never the page's
    own run), and a message for each it could not find."""
    runs: list[Run] = []
    problems: list[str] = []
    seen = {run_id}
    for wanted in compare:
        wanted = wanted.strip()
        if not wanted:
            continue
        try:
            found = store.get_run(resolve(store, wanted))
        except (NotFound, InvalidArgument) as exc:
            problems.append(f"compare: {exc}")
            continue
        if found.id in seen:
            continue
        if len(runs) == run_view.MAX_COMPARE:
            problems.append(f"compare: at most {run_view.MAX_COMPARE} runs are overlaid")
            break
        seen.add(found.id)
        runs.append(found)
    return runs, problems


def charts(store: SqlTrackingStore, runs: list[Run]) -> list[dict[str, Any]]:
    """One chart per metric key of ``runs`` that has a series (more than one point in some
    run): its spec with the points (short series) or the URL to fetch them from (long ones)."""
    main, others = runs[0], runs[1:]
    query = urlencode([("compare", r.id) for r in others])
    shown: list[dict[str, Any]] = []
    for row in run_view.metric_rows(runs):
        if run_view.needs_fetch(row):
            src = f"/runs/{main.id}/metrics/{quote(row.key, safe='')}.json"
            spec = series.chart_spec(row.key, src=f"{src}?{query}" if query else src)
            shown.append({"key": row.key, "kind": "metric", "spec": spec, "total": None})
            continue
        lines = [line for line in _series(store, runs, row.key) if line.total]
        if all(line.total < 2 for line in lines):  # one value per run: the table says it all
            continue
        spec = series.chart_spec(row.key, lines)
        total = sum(line.total for line in lines)
        drawn = sum(len(line.xs) for line in lines)
        shown.append(
            {"key": row.key, "kind": "lines", "spec": spec, "total": total, "drawn": drawn}
        )
    return shown


def _series(
    store: SqlTrackingStore, runs: list[Run], key: str, limit: int = series.MAX_POINTS
) -> list[series.Series]:
    names = series.labels([(r.id, r.info.name) for r in runs])
    lines = []
    for run, label in zip(runs, names, strict=True):
        if key not in run.data.metrics:
            lines.append(series.Series(label, [], [], 0))
            continue
        history = store.get_metric_columns(run.id, key)
        xs, ys = history.steps, series.finite(history.values)
        total = len(xs)
        xs, ys = series.decimate(xs, ys, limit)
        lines.append(series.Series(label, xs, ys, total))
    return lines


def environment(store: SqlTrackingStore, digest: str | None) -> list[tuple[str, str]] | None:
    """The packages the run's environment recorded, by name (None when none was recorded)."""
    if digest is None:
        return None
    try:
        packages = store.get_environment(digest)
    except NotFound:
        return None
    return sorted(packages.items(), key=lambda item: item[0].lower())


def crumbs(run: Run, *more: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    """Experiments / the run's experiment / the run (/ more)."""
    experiment = run.info.experiment_name
    link = f"/runs?{urlencode({'experiment': experiment})}"
    here = f"/runs/{run.id}" if more else None
    return [("Experiments", "/experiments"), (experiment, link), (run.info.name, here), *more]
