"""Pure conversions of MLflow's records into Segue's, and the checks on names and values
they pass (what fails is recorded in the summary as skipped, with the reason)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from segue.errors import SegueError
from segue.importers.mlflow.records import Columns, MlflowDatasetInput, MlflowRunRecord
from segue.importers.mlflow.summary import ImportSummary
from segue.store.entities import RUN_STATUSES, Dataset, MetricHistory
from segue.tracking import validation


def clean(
    summary: ImportSummary,
    kind: str,
    what: str,
    values: Mapping[str, str],
    check: Callable[[str, Any], str],
) -> dict[str, str]:
    """``values`` (params or tags) whose names and values Segue takes; the others are
    recorded in ``summary`` as skipped."""
    out = {}
    for key, value in values.items():
        try:
            validation.check_key(kind, key)
            if validation.is_reserved(key):
                raise SegueError(f"{kind} {key!r} is in Segue's reserved namespace")
            out[key] = check(key, value)
        except SegueError as exc:
            summary.skip(kind, f"{kind} {key!r} of {what}", str(exc))
    return out


def status(record: MlflowRunRecord) -> tuple[str, str | None]:
    """Segue's status for the run and, when it differs from MLflow's, why."""
    if record.status in RUN_STATUSES and record.status != "RUNNING":
        return record.status, None
    # A run still RUNNING in MLflow has no process here to send heartbeats.
    return "KILLED", f"was {record.status} in MLflow when imported"


def missing_points(have: MetricHistory, columns: Columns) -> Columns:
    """The points of ``columns`` not among ``have`` (as a multiset: a point logged twice in
    MLflow and once here is missing once)."""
    stored = Counter(
        zip(have.steps, have.timestamps, have.values, strict=True)  # NaN stored as None
    )
    out: Columns = ([], [], [])
    for value, step, stamp in zip(*columns, strict=True):
        point = (step, stamp, None if value != value else value)
        if stored[point] > 0:
            stored[point] -= 1
            continue
        out[0].append(value)
        out[1].append(step)
        out[2].append(stamp)
    return out


def tag(key: str, value: Any) -> str:
    return validation.tag_value(key, value)


def dataset(found: MlflowDatasetInput) -> Dataset:
    """MLflow's record of a data set as Segue's: its digest, size and columns (MLflow keeps no
    per-column statistics; its profile, source and schema are kept under ``mlflow``)."""
    schema = _json(found.schema)
    profile = _json(found.profile)
    specs = schema.get("mlflow_colspec") if isinstance(schema, dict) else None
    columns = [
        {"name": str(c.get("name", i)), "dtype": str(c.get("type", ""))}
        for i, c in enumerate(specs if isinstance(specs, list) else [])
        if isinstance(c, dict)
    ]
    n_rows = profile.get("num_rows") if isinstance(profile, dict) else None
    return Dataset(
        digest=found.digest,
        n_rows=int(n_rows) if isinstance(n_rows, int) else 0,
        n_columns=len(columns),
        schema=columns,
        profile={
            "n_rows": n_rows,
            "n_columns": len(columns),
            "columns": {c["name"]: {"dtype": c["dtype"]} for c in columns},
            "mlflow": {
                "profile": profile,
                "schema": schema,
                "source_type": found.source_type,
                "source": _json(found.source),
            },
        },
    )


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
