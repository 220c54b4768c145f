"""What the pipeline pages show, from what the runtime recorded: a page of pipeline runs with
their steps counted (executed, cached, failed), and a run's cause as words and links.

A page of the list costs a fixed number of queries whatever the number of runs: one count,
one page of parent runs, and one search for the step runs of that page's runs (by their
``segue.pipeline.run`` tag), never one query per run.

Example::

    >>> rows, page, total = pipeline_page(state.tracking, pipeline=None, page=1, size=50)
    >>> rows[0].executed, rows[0].cached
    (2, 1)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from segue.errors import InvalidArgument
from segue.pipelines.dag import pipeline_runs_filter
from segue.server.ui.runs_table import Page, page_of
from segue.store.entities import Run
from segue.store.filters import Comparison, Expr, parse_order_by
from segue.store.tracking import SqlTrackingStore

__all__ = [
    "STATUSES",
    "CauseView",
    "Link",
    "PipelineRow",
    "StepCounts",
    "cause_view",
    "pipeline_page",
    "step_counts",
]

_NEWEST = parse_order_by(["start_time DESC"])
#: The most step runs one page's count reads (a page of 500 runs of 100 steps each).
_MAX_STEPS = 50_000

Link = tuple[str, str]
"""A link: its text and its URL."""


@dataclass(frozen=True)
class StepCounts:
    """How the steps of one pipeline run ended."""

    total: int = 0
    executed: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    running: int = 0


@dataclass(frozen=True)
class PipelineRow:
    """One pipeline run of the list."""

    run: Run
    pipeline: str
    executor: str | None
    cause: CauseView
    steps: StepCounts
    resumed_from: str | None


@dataclass(frozen=True)
class CauseView:
    """Why a pipeline run ran: ``kind`` (manual, schedule, alert, loop…), a sentence, and the
    links to what started it (the loop, the schedule, the alert)."""

    kind: str
    text: str
    links: list[Link]


#: The statuses the list filters by (``?status=``).
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")


def _filter(pipeline: str | None, status: str | None) -> Expr:
    if status and status not in STATUSES:
        raise InvalidArgument(f"status={status!r}: give one of {', '.join(STATUSES)}")
    return pipeline_runs_filter(pipeline or None, status or None)


def pipeline_page(
    store: SqlTrackingStore,
    *,
    pipeline: str | None,
    page: int,
    size: int,
    status: str | None = None,
) -> tuple[list[PipelineRow], Page, int]:
    """Page ``page`` of the pipeline runs (``size`` a page, newest first; only
    ``pipeline``'s and only those with ``status`` when given), the page's place, and how many
    runs there are in all.

    Raises:
        InvalidArgument: a status that is not one of :data:`STATUSES`.
    """
    where = _filter(pipeline, status)
    total = store.count_runs(None, where)
    shown = page_of(page, size, total)
    runs = store.search_page(None, where, _NEWEST, size, shown.offset) if total else []
    counts = step_counts(store, [r.id for r in runs])
    rows = [
        PipelineRow(
            run=run,
            pipeline=run.data.tags.get("segue.pipeline", ""),
            executor=run.data.tags.get("segue.executor"),
            cause=cause_view(_json(run.data.tags.get("segue.cause"))),
            steps=counts.get(run.id, StepCounts()),
            resumed_from=run.data.tags.get("segue.resumed_from"),
        )
        for run in runs
    ]
    return rows, shown, total


def step_counts(store: SqlTrackingStore, parents: Sequence[str]) -> dict[str, StepCounts]:
    """The steps of each pipeline run in ``parents``, counted, from one search."""
    if not parents:
        return {}
    where = Comparison("tag", "segue.pipeline.run", "IN", tuple(parents))
    tally: dict[str, dict[str, int]] = {p: {} for p in parents}
    for child in store.search_runs(None, where, [], _MAX_STEPS):
        parent = child.data.tags.get("segue.pipeline.run", "")
        if parent not in tally:
            continue
        seen = tally[parent]
        seen["total"] = seen.get("total", 0) + 1
        kind = _ended(child)
        seen[kind] = seen.get(kind, 0) + 1
    return {parent: StepCounts(**seen) for parent, seen in tally.items()}


def _ended(child: Run) -> str:
    status = child.info.status
    if status == "FINISHED":
        return "cached" if "segue.cached_from" in child.data.tags else "executed"
    if status == "FAILED":
        return "failed"
    if status == "KILLED":
        return "skipped"
    return "running"


def cause_view(cause: Mapping[str, Any] | None) -> CauseView:
    """``cause`` (the ``segue.cause`` tag's JSON) in words, with links to what it names."""
    if not cause:
        return CauseView("manual", "started by hand", [])
    kind = str(cause.get("kind", "manual"))
    links: list[Link] = []
    parts: list[str] = []
    loop = cause.get("loop")
    schedule = cause.get("schedule")
    firing = cause.get("firing")
    if kind == "loop" and loop:
        parts.append(f"loop {loop}")
        links.append((f"loop {loop}", f"/loops/{quote(str(loop), safe='')}"))
    if cause.get("rule") or cause.get("alert") is not None:
        alert = cause.get("alert")
        what = f"alert {alert}" if alert is not None else "an alert"
        parts.append(f"{what} of rule {cause.get('rule', '?')}")
        model = cause.get("model") or cause.get("alert_model")
        if model:
            links.append((what, f"/monitoring/{quote(str(model), safe='')}#alerts"))
    if schedule and kind != "loop":
        parts.append(f"schedule {schedule}")
        query = urlencode({"schedule": schedule})
        links.append((f"schedule {schedule}", f"/schedules?{query}"))
    if firing is not None:
        parts.append(f"firing {firing}")
        if kind == "loop" and loop:
            page = f"/loops/{quote(str(loop), safe='')}"
            links.append((f"firing {firing}", f"{page}#firing-{firing}"))
        elif schedule:
            query = urlencode({"schedule": schedule})
            links.append((f"firing {firing}", f"/schedules?{query}#firing-{firing}"))
    if kind == "manual" and not parts:
        return CauseView(kind, "started by hand", [])
    text = ", ".join(parts) if parts else kind
    return CauseView(kind, text, links)


def _json(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
