"""Runs as a pandas DataFrame: what ``segue.search_runs`` returns, in MLflow's column layout."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pandas as pd

from segue.store.entities import Run, RunInfo, RunTable, spread_cells

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
#: The run field each base column holds.
_BASE_FIELDS = {
    "run_id": "id",
    "experiment": "experiment_name",
    "name": "name",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "user": "user",
    "parent_run_id": "parent_run_id",
}


def runs_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per run: attributes, then params.*, metrics.* (latest value) and tags.*."""
    return table_frame(runs_table(runs))


def table_frame(table: RunTable) -> pd.DataFrame:
    """:func:`runs_frame` of runs given as columns (what ``SqlTrackingStore.search_table``
    reads): the columns are handed to pandas as they are, with no dict per run to line up.

    A missing param, metric or tag is NaN, as when pandas fills the keys a record lacks.
    """
    if not table.info["id"]:
        # No runs: the base columns, as pandas types them with no rows to infer from.
        frame = pd.DataFrame([], columns=_BASE_COLUMNS)
    else:
        columns: dict[str, Any] = {name: table.info[f] for name, f in _BASE_FIELDS.items()}
        for prefix, found in (
            ("params.", table.params),
            ("metrics.", table.metrics),
            ("tags.", table.tags),
        ):
            for key in sorted(found):
                columns[prefix + key] = found[key]
        frame = pd.DataFrame(columns, columns=list(columns))
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


def runs_table(runs: Iterable[Run]) -> RunTable:
    """Records as columns (see :class:`~segue.store.entities.RunTable`)."""
    runs = list(runs)
    count = len(runs)
    infos = [run.info for run in runs]
    info = {f.name: [getattr(i, f.name) for i in infos] for f in dataclasses.fields(RunInfo)}
    datas = [run.data for run in runs]
    params = spread_cells(
        ((row, key, value) for row, data in enumerate(datas) for key, value in data.params.items()),
        count,
    )
    metrics = spread_cells(
        (
            (row, key, point.value)
            for row, data in enumerate(datas)
            for key, point in data.metrics.items()
        ),
        count,
    )
    tags = spread_cells(
        ((row, key, value) for row, data in enumerate(datas) for key, value in data.tags.items()),
        count,
    )
    return RunTable(info, params, metrics, tags)
