"""``/runs``: one or more experiments' runs in a table: Segue's filter language, a sort by any
column, the columns a user picks, server-side pages with totals and a bulk select to compare.

Every change (filter, sort, page, columns) is a link or a form whose URL carries it; htmx swaps
the table in place and pushes that URL, and the same URL renders the whole page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from segue.errors import InvalidArgument
from segue.server.app import server_state
from segue.server.ui import runs_table as rt
from segue.server.ui.render import fragment, is_htmx, render
from segue.store.filters import parse_filter
from segue.store.tracking import SqlTrackingStore

router = APIRouter()

Repeated = Annotated[list[str], Query(max_length=100)]


@router.get("/runs")
def runs_page(
    request: Request,
    experiment: Repeated = [],  # noqa: B006
    columns: Repeated = [],  # noqa: B006
    filter: str = "",
    sort: str | None = None,
    dir: str | None = None,
    page: str | None = None,
    per_page: str | None = None,
) -> Response:
    """The runs table (a fragment for htmx, the whole page otherwise)."""
    store = server_state(request).tracking
    context = table(store, experiment, columns, filter, sort, dir, page, per_page)
    status = 422 if context["error"] else 200
    if is_htmx(request) and request.headers.get("hx-history-restore-request") != "true":
        return fragment(request, "_runs_table.html", context, status=status)
    names = context["experiment_names"]
    crumbs: list[tuple[str, str | None]] = [("Experiments", "/experiments")]
    crumbs.append((", ".join(names) if names else "All experiments", None))
    return render(request, "runs.html", context, title="Runs", crumbs=crumbs, status=status)


def table(
    store: SqlTrackingStore,
    names: list[str],
    column_values: list[str],
    text: str,
    sort: str | None,
    direction: str | None,
    page: str | None,
    per_page: str | None,
) -> dict[str, Any]:
    """What ``_runs_table.html`` shows: one count, one page of runs and the keys."""
    experiments = [store.get_experiment(name) for name in dict.fromkeys(names)]
    ids = [e.id for e in experiments] or None
    number = rt.positive("page", page, 1, 10**7)
    size = rt.positive("per_page", per_page, 50, 500)
    sorted_by, descending, order = rt.parse_sort(sort, direction)
    keys = store.run_keys(ids)
    chosen = rt.parse_columns(column_values) or rt.default_columns(keys.metrics, keys.params)
    chosen = rt.with_sorted(chosen, order[0])
    context: dict[str, Any] = {
        "experiment_names": [e.name for e in experiments],
        "filter": text,
        "error": None,
        "keys": keys,
        "columns": chosen,
        "column_names": [c.name for c in chosen],
        "sorted_by": sorted_by,
        "descending": descending,
        "attributes": rt.ATTRIBUTES,
        "runs": [],
        "total": 0,
        "page": rt.page_of(1, size, 0),
        "cell": rt.cell,
        "missing": rt.is_missing,
    }
    try:
        where = parse_filter(text)
    except InvalidArgument as exc:
        context["error"] = rt.filter_error(text, str(exc))
        return context
    total = store.count_runs(ids, where)
    shown = rt.page_of(number, size, total)
    runs = store.search_page(ids, where, order, size, shown.offset) if total else []
    context.update(runs=runs, total=total, page=shown)
    return context
