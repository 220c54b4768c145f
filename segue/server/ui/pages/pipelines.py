"""``/pipelines``: pipeline runs, newest first, with their status, duration, steps executed
and cached, and cause (``?pipeline=module:fn`` keeps one pipeline's, ``?page=`` pages);
``/pipelines/{run_id}``: one pipeline run's DAG, each step with its status, duration, cache
hit, attempts and outputs, and what started the run.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from segue.pipelines.dag import PipelineView, StepView, describe_pipeline_run
from segue.server.app import server_state
from segue.server.ui import runs_table as rt
from segue.server.ui.pages.run import resolve
from segue.server.ui.pipeline_graph import dag_graph
from segue.server.ui.pipeline_view import STATUSES, cause_view, pipeline_page
from segue.server.ui.render import Crumb, render

router = APIRouter()

PAGE_SIZE = 50


@router.get("/pipelines")
def pipelines_page(
    request: Request,
    pipeline: str = "",
    status: str = "",
    page: str | None = None,
    per_page: str | None = None,
) -> Response:
    """Pipeline runs, newest first, a page at a time (of one pipeline, with one status)."""
    store = server_state(request).tracking
    number = rt.positive("page", page, 1, 10**7)
    size = rt.positive("per_page", per_page, PAGE_SIZE, 500)
    rows, shown, total = pipeline_page(
        store, pipeline=pipeline or None, status=status or None, page=number, size=size
    )
    context = {
        "rows": rows,
        "page": shown,
        "total": total,
        "pipeline": pipeline,
        "status": status,
        "statuses": STATUSES,
        "now": int(time.time() * 1000),
    }
    crumbs: list[Crumb] = [("Pipelines", "/pipelines" if pipeline else None)]
    if pipeline:
        crumbs.append((pipeline, None))
    return render(request, "pipelines.html", context, title="Pipelines", crumbs=crumbs)


@router.get("/pipelines/{run_id}")
def pipeline_run_page(request: Request, run_id: str) -> Response:
    """One pipeline run: its DAG and steps (a unique prefix of the id redirects)."""
    state = server_state(request)
    full = resolve(state.tracking, run_id)
    if full != run_id:
        return RedirectResponse(f"/pipelines/{full}", 303)
    view = describe_pipeline_run(state.client, full)
    context = {
        "view": view,
        "info": view.run,
        "graph": dag_graph(view.steps),
        "cause": cause_view(view.cause),
        "cause_json": view.cause,
        "counts": _counts(view.steps),
        "outputs": output_links,
        "pipeline_url": _pipeline_url(view.pipeline),
        "duration": _duration(view, int(time.time() * 1000)),
    }
    crumbs: list[Crumb] = [
        ("Pipelines", "/pipelines"),
        (view.pipeline, _pipeline_url(view.pipeline)),
        (view.run.name, None),
    ]
    return render(
        request, "pipeline.html", context, title=f"Pipeline run {view.run.name}", crumbs=crumbs
    )


def output_links(step: StepView) -> list[tuple[str, str]]:
    """Each output of ``step`` and the artifact page showing it (in the run that holds it:
    for a cached step, the run it was cached from)."""
    links = []
    for name, where in sorted(step.outputs.items()):
        run, path = where.get("run"), where.get("path")
        if run and path:
            links.append((name, f"/runs/{quote(run, safe='')}/artifacts/{quote(path)}"))
    return links


def _pipeline_url(pipeline: str) -> str:
    return f"/pipelines?{urlencode({'pipeline': pipeline})}"


def _duration(view: PipelineView, now: int) -> float:
    end = view.run.end_time if view.run.end_time is not None else now
    return float(end - view.run.start_time)


def _counts(steps: list[StepView]) -> dict[str, Any]:
    return {
        "total": len(steps),
        "executed": sum(s.status == "FINISHED" and not s.cached for s in steps),
        "cached": sum(s.cached for s in steps),
        "failed": sum(s.status == "FAILED" for s in steps),
        "skipped": sum(s.status == "KILLED" for s in steps),
    }
