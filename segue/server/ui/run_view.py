"""What the run page shows, shaped from store records: pure functions, no I/O.

Example::

    >>> rows = metric_rows(run, others)        # latest values, one column per overlaid run
    >>> columns = profile_rows(dataset.profile)  # one row per column of a data set
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from segue.store.entities import ArtifactEntry, Metric, Run, RunInfo

__all__ = [
    "INLINE_STEPS",
    "MAX_COMPARE",
    "LoggedModel",
    "MetricRow",
    "duration_ms",
    "logged_models",
    "metric_rows",
    "profile_rows",
    "source_rows",
]

#: A chart whose series reach past this step has its points fetched after the page loads
#: (``/runs/{id}/metrics/{key}.json``), so long series never slow the page itself.
INLINE_STEPS = 2_000
#: Runs one run page may overlay on its own.
MAX_COMPARE = 20
MANIFEST = "segue-model.json"


@dataclass(frozen=True)
class MetricRow:
    """One metric of the page: its key and each shown run's latest point (None if absent)."""

    key: str
    latest: list[Metric | None]


@dataclass(frozen=True)
class LoggedModel:
    """A model package in the run's artifacts: its folder and manifest entry."""

    folder: str
    manifest: ArtifactEntry
    size: int
    files: int


def duration_ms(info: RunInfo, now_ms: int) -> int:
    """How long the run took (or, while it runs, has taken so far)."""
    end = info.end_time if info.end_time is not None else now_ms
    return max(0, end - info.start_time)


def metric_rows(runs: Sequence[Run]) -> list[MetricRow]:
    """Every metric key of ``runs`` (the page's run first), with each run's latest point."""
    keys = sorted({key for run in runs for key in run.data.metrics})
    return [MetricRow(key, [run.data.metrics.get(key) for run in runs]) for key in keys]


def needs_fetch(row: MetricRow, limit: int = INLINE_STEPS) -> bool:
    """Whether the chart of ``row`` loads its points lazily (a series past ``limit`` steps)."""
    return any(point is not None and point.step > limit for point in row.latest)


def source_rows(info: RunInfo) -> list[tuple[str, str | None]]:
    """Where the run came from, as (label, value) rows; unknown values are None."""
    dirty = None if info.source_dirty is None else ("yes" if info.source_dirty else "no")
    return [
        ("Commit", info.source_commit),
        ("Uncommitted changes", dirty),
        ("Entry point", info.entry_point),
        ("Host", info.host),
        ("Python", info.python_version),
        ("User", info.user),
    ]


def logged_models(entries: Sequence[ArtifactEntry]) -> list[LoggedModel]:
    """The model packages among a run's artifacts: folders holding a ``segue-model.json``."""
    found = []
    for entry in entries:
        folder, _, name = entry.path.rpartition("/")
        if name != MANIFEST:
            continue
        inside = [e for e in entries if not folder or e.path.startswith(folder + "/")]
        found.append(LoggedModel(folder, entry, sum(e.size for e in inside), len(inside)))
    return found


def profile_rows(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per column of a data set profile (:func:`segue.data.profile.profile_frame`):
    name, kind, dtype, counts, and the summary its kind has (range and moments, or the most
    frequent values)."""
    rows = []
    for name, column in (profile.get("columns") or {}).items():
        if not isinstance(column, Mapping):
            continue
        top = column.get("top") or []
        rows.append(
            {
                "name": str(name),
                "kind": column.get("kind", ""),
                "dtype": column.get("dtype", ""),
                "count": column.get("count"),
                "missing": column.get("missing"),
                "unique": column.get("n_unique"),
                "min": column.get("min"),
                "mean": column.get("mean"),
                "max": column.get("max"),
                "std": column.get("std"),
                "top": [(str(t.get("value")), t.get("count")) for t in top[:3]],
                "more": max(0, len(top) - 3) + (1 if column.get("other_count") else 0),
            }
        )
    return rows
