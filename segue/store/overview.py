"""What the web UI's tables need from the tracking store beyond search: totals, the keys
runs carry, and each experiment's activity, each in one or a few bounded queries.

The functions run inside a session :class:`segue.store.tracking.SqlTrackingStore` opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from segue.store import search
from segue.store.entities import Experiment
from segue.store.filters import Expr
from segue.store.schema import ExperimentRow, LatestMetricRow, ParamRow, RunRow, TagRow

#: How many of the newest runs :func:`run_keys` reads keys from.
KEY_SAMPLE = 2000


@dataclass(frozen=True)
class ExperimentActivity:
    """An experiment with its active runs' count and when the last one started and ended."""

    experiment: Experiment
    run_count: int
    last_start: int | None
    last_end: int | None


@dataclass(frozen=True)
class RunKeys:
    """The param, metric and tag keys runs carry, each sorted."""

    params: list[str]
    metrics: list[str]
    tags: list[str]


def count_runs(
    s: Session,
    experiment_ids: Sequence[int] | None,
    where: Expr | None,
    include_deleted: bool,
    dialect: str,
) -> int:
    """How many runs of ``experiment_ids`` (None: all) match ``where``."""
    stmt = search.count_query(experiment_ids, where, include_deleted, dialect)
    return int(s.scalar(stmt) or 0)


def run_keys(s: Session, experiment_ids: Sequence[int] | None) -> RunKeys:
    """The keys of the newest :data:`KEY_SAMPLE` active runs of ``experiment_ids``.

    Reading a sample keeps the cost bounded however many runs an experiment holds; a key
    only older runs carry can still be asked for by name.
    """
    newest = sa.select(RunRow.id).where(RunRow.lifecycle_stage == "active")
    if experiment_ids is not None:
        newest = newest.where(RunRow.experiment_id.in_(list(experiment_ids)))
    sample = newest.order_by(RunRow.start_time.desc()).limit(KEY_SAMPLE).subquery()
    found: list[list[str]] = []
    for table in (ParamRow, LatestMetricRow, TagRow):
        stmt = sa.select(table.key).where(table.run_id.in_(sa.select(sample.c.id))).distinct()
        found.append(sorted(s.scalars(stmt)))
    return RunKeys(*found)


def experiment_activity(s: Session) -> list[ExperimentActivity]:
    """Every experiment, the most recently active first, in one query."""
    runs = (
        sa.select(
            RunRow.experiment_id,
            sa.func.count().label("n"),
            sa.func.max(RunRow.start_time).label("last_start"),
            sa.func.max(RunRow.end_time).label("last_end"),
        )
        .where(RunRow.lifecycle_stage == "active")
        .group_by(RunRow.experiment_id)
        .subquery()
    )
    last = sa.func.coalesce(runs.c.last_start, ExperimentRow.created_at)
    stmt: sa.Select[Any] = (
        sa.select(ExperimentRow, runs.c.n, runs.c.last_start, runs.c.last_end)
        .outerjoin(runs, runs.c.experiment_id == ExperimentRow.id)
        .order_by(last.desc(), ExperimentRow.id)
    )
    out = []
    for row, n, start, end in s.execute(stmt):
        experiment = Experiment(
            row.id, row.name, row.description, row.lifecycle_stage, row.created_at, n or 0
        )
        out.append(ExperimentActivity(experiment, n or 0, start, end))
    return out
