"""``/experiments``: every experiment with its run count and last activity, in one query."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from segue.server.app import server_state
from segue.server.ui.render import render

router = APIRouter()


@router.get("/experiments")
def experiments_page(request: Request) -> Response:
    """The experiments, the most recently active first, each linking to its runs."""
    rows = server_state(request).tracking.experiment_activity()
    total = sum(row.run_count for row in rows)
    context = {"rows": rows, "total_runs": total}
    return render(
        request, "experiments.html", context, title="Experiments", crumbs=[("Experiments", None)]
    )
