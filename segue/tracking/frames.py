"""Runs as a pandas DataFrame: what ``segue.search_runs`` returns, in MLflow's column layout."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from segue.store.entities import Run

_BASE_COLUMNS = [
    "run_id",
    "experiment",
    "name",
    "status",
    "start_time",
    "end_time",
    "user",
    "parent_run_id",
]


def runs_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per run: attributes, then params.*, metrics.* (latest value) and tags.*."""
    rows = []
    for run in runs:
        i = run.info
        row: dict[str, Any] = {
            "run_id": i.id,
            "experiment": i.experiment_name,
            "name": i.name,
            "status": i.status,
            "start_time": i.start_time,
            "end_time": i.end_time,
            "user": i.user,
            "parent_run_id": i.parent_run_id,
        }
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"metrics.{k}": m.value for k, m in run.data.metrics.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else _BASE_COLUMNS)
    extra = sorted(c for c in frame.columns if c not in _BASE_COLUMNS)
    order = sorted(
        extra, key=lambda c: ("params.", "metrics.", "tags.").index(c.split(".")[0] + ".")
    )
    frame = frame[_BASE_COLUMNS + order]
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame
