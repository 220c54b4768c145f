"""A run's data in SQL: params, metrics and tags, written in batches and loaded whole.

The functions here run inside a session that :class:`segue.store.tracking.SqlTrackingStore`
opens. Batches go as one executemany (a parameter set per row) and long IN lists in chunks, so
no statement outgrows SQLite's variable limit or PostgreSQL's 65,535 parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from segue.errors import Conflict, InvalidArgument
from segue.store.entities import Metric, MetricHistory, Run, RunData, RunInfo
from segue.store.schema import ExperimentRow, LatestMetricRow, MetricRow, ParamRow, RunRow, TagRow
from segue.store.sessions import Database, DriverCursor

_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit


def write_params(s: Session, db: Database, run_id: str, params: Mapping[str, str]) -> None:
    """Record ``params``; one already recorded must have the same value.

    Raises:
        Conflict: a param is already recorded with another value (params are immutable).
    """
    rows = [
        {"run_id": run_id, "key": k, "value": v, "value_num": as_number(v)}
        for k, v in params.items()
    ]
    s.execute(db.insert(ParamRow).on_conflict_do_nothing(), rows)
    stored: dict[str, str] = {}
    for keys in db.chunks(list(params), 1):
        stmt = sa.select(ParamRow.key, ParamRow.value).where(
            ParamRow.run_id == run_id, ParamRow.key.in_(keys)
        )
        stored.update((k, v) for k, v in s.execute(stmt))
    for key, value in params.items():
        if stored.get(key) != value:
            raise Conflict(
                f"param {key!r} of run {run_id} is already {stored.get(key)!r}; "
                f"params are immutable, cannot change it to {value!r} (log a new run instead)"
            )


def write_tags(s: Session, db: Database, run_id: str, tags: Mapping[str, str]) -> None:
    """Set ``tags``, replacing the values of tags already set."""
    rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
    stmt = db.insert(TagRow)
    upsert = stmt.on_conflict_do_update(
        index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
    )
    s.execute(upsert, rows)


#: One metric's points as columns of equal length: values, steps and timestamps.
MetricColumns = tuple[Sequence[float], Sequence[int], Sequence[int]]

_HISTORY_COLUMNS = ("run_id", "key", "value", "step", "timestamp")


def metric_columns(metrics: Sequence[Metric]) -> dict[str, MetricColumns]:
    """``metrics`` as columns per key, in the order logged."""
    columns: dict[str, tuple[list[float], list[int], list[int]]] = {}
    for m in metrics:
        found = columns.get(m.key)
        if found is None:
            found = columns[m.key] = ([], [], [])
        found[0].append(m.value)
        found[1].append(m.step)
        found[2].append(m.timestamp)
    return dict(columns)


def write_metric_columns(
    s: Session | sa.Connection, db: Database, run_id: str, columns: Mapping[str, MetricColumns]
) -> None:
    """Append each key's points, given as columns, to its history and keep its latest point.

    The history rows skip SQLAlchemy's per-row work: on SQLite one driver executemany of
    plain tuples per key, on PostgreSQL one ``INSERT ... SELECT FROM unnest(arrays)`` per key
    (a statement of five parameters however many points). A NaN value is stored as NULL.

    Raises:
        InvalidArgument: a key's three columns differ in length.
    """
    postgres = db.dialect == "postgresql"
    cursor = DriverCursor(s)
    insert = _history_insert(db.dialect, cursor.quote)
    latest: list[tuple[object, ...]] = []
    try:
        for key, (values, steps, stamps) in columns.items():
            if not len(values) == len(steps) == len(stamps):
                raise InvalidArgument(
                    f"metric {key!r}: {len(values)} values, {len(steps)} steps and "
                    f"{len(stamps)} timestamps; each point needs all three"
                )
            if not values:
                continue
            stored: Sequence[float | None] = values
            if any(v != v for v in values):  # NaN is the one value unequal to itself
                stored = [None if v != v else v for v in values]
            if postgres:
                cursor.execute(insert, (run_id, key, list(stored), list(steps), list(stamps)))
            elif len(values) == 1:
                cursor.execute(insert, (run_id, key, stored[0], steps[0], stamps[0]))
            else:
                rows = list(zip(repeat(run_id), repeat(key), stored, steps, stamps, strict=False))
                cursor.executemany(insert, rows)  # one tuple a row
            # The highest (step, timestamp); among equals the last logged (the highest index).
            step, stamp, last = max(zip(steps, stamps, range(len(values)), strict=True))
            latest.append((run_id, key, stored[last], step, stamp))
        if latest:
            upsert = _latest_upsert(db.dialect, cursor.quote)
            if len(latest) == 1:
                cursor.execute(upsert, latest[0])
            else:
                cursor.executemany(upsert, latest)
    finally:
        cursor.close()


@functools.cache
def _latest_upsert(dialect: str, quote: Callable[[str], str]) -> str:
    """The driver-level upsert of a key's latest point: kept unless the new point has a
    higher step, or the same step and a timestamp as late or later."""
    table = quote(LatestMetricRow.__tablename__)
    mark = "%s" if dialect == "postgresql" else "?"
    names = ", ".join(quote(c) for c in _HISTORY_COLUMNS)
    step, stamp = quote("step"), quote("timestamp")
    updated = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in ("value", "step", "timestamp"))
    return (
        f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * 5)}) "
        f"ON CONFLICT ({quote('run_id')}, {quote('key')}) DO UPDATE SET {updated} "
        f"WHERE excluded.{step} > {table}.{step} OR "
        f"(excluded.{step} = {table}.{step} AND excluded.{stamp} >= {table}.{stamp})"
    )


@functools.cache
def _history_insert(dialect: str, quote: Callable[[str], str]) -> str:
    """The driver-level INSERT of history rows for ``dialect``."""
    table = quote(MetricRow.__tablename__)
    names = ", ".join(quote(c) for c in _HISTORY_COLUMNS)
    if dialect == "postgresql":
        # In the arrays' order (WITH ORDINALITY), so ids follow the order points were logged.
        return (
            f"INSERT INTO {table} ({names}) SELECT %s, %s, u.v, u.s, u.t FROM "
            "unnest(%s::float8[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS u(v, s, t, n) "
            "ORDER BY u.n"
        )
    return f"INSERT INTO {table} ({names}) VALUES (?, ?, ?, ?, ?)"


def metric_history(s: Session, run_id: str, key: str) -> list[Metric]:
    """Every point of metric ``key`` of the run, by step, then time, then logging order."""
    stmt = (
        sa.select(MetricRow.value, MetricRow.step, MetricRow.timestamp)
        .where(MetricRow.run_id == run_id, MetricRow.key == key)
        .order_by(MetricRow.step, MetricRow.timestamp, MetricRow.id)
    )
    # Plain rows, not ORM objects: a history can hold millions of points.
    nan = math.nan
    return [
        Metric(key, nan if value is None else value, step, stamp)
        for value, step, stamp in s.execute(stmt)
    ]


def history_columns(s: Session, run_id: str, key: str) -> MetricHistory:
    """Metric ``key``'s history as columns (steps, values, timestamps), in the order of
    :func:`metric_history`, with no object per point (NaN stays None: it is not JSON).

    The rows come straight from the driver's cursor: a chart's 100,000 points read in about
    half the time SQLAlchemy's result rows take.
    """
    stmt = (
        sa.select(MetricRow.step, MetricRow.value, MetricRow.timestamp)
        .where(MetricRow.run_id == run_id, MetricRow.key == key)
        .order_by(MetricRow.step, MetricRow.timestamp, MetricRow.id)
    )
    compiled = stmt.compile(dialect=s.get_bind().dialect)
    args: Any = compiled.params
    if compiled.positional and compiled.positiontup is not None:
        args = tuple(args[name] for name in compiled.positiontup)
    cursor = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, args)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return MetricHistory([], [], [])
    steps, values, stamps = zip(*rows, strict=True)
    return MetricHistory(list(steps), list(values), list(stamps))


def load_runs(s: Session, ids: Sequence[str]) -> list[Run]:
    """Runs with their data, in the order of ``ids`` (unknown ids left out): four queries
    per chunk of ids, sent to the driver as plain SQL and read as plain rows (a page of
    1,000 runs holds some 6,000 rows: no ORM object, no per-statement compilation)."""
    infos: dict[str, RunInfo] = {}
    params: dict[str, dict[str, str]] = {i: {} for i in ids}
    metrics: dict[str, dict[str, Metric]] = {i: {} for i in ids}
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    nan = math.nan
    cursor = DriverCursor(s)
    try:
        sql = _load_sql(cursor.mark, cursor.quote)
        for chunk in _chunks(ids):
            marks = ", ".join([cursor.mark] * len(chunk))
            for row in cursor.execute(sql.runs.format(marks), chunk).fetchall():
                values = list(row)
                if values[_DIRTY] is not None:  # SQLite gives 0 or 1
                    values[_DIRTY] = bool(values[_DIRTY])
                values.insert(2, values.pop())  # the experiment's name, after its id
                infos[row[0]] = RunInfo(*values)
            for run_id, key, value in cursor.execute(sql.params.format(marks), chunk).fetchall():
                params[run_id][key] = value
            latest = cursor.execute(sql.metrics.format(marks), chunk).fetchall()
            for run_id, key, number, step, stamp in latest:
                metrics[run_id][key] = Metric(key, nan if number is None else number, step, stamp)
            for run_id, key, value in cursor.execute(sql.tags.format(marks), chunk).fetchall():
                tags[run_id][key] = value
    finally:
        cursor.close()
    return [Run(infos[i], RunData(params[i], metrics[i], tags[i])) for i in ids if i in infos]


#: The runs' columns in the order of :class:`RunInfo`'s fields, its experiment name left out
#: (the loaded row appends it).
_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunInfo) if f.name != "experiment_name")
#: Where source_dirty is in a loaded run row.
_DIRTY = _RUN_FIELDS.index("source_dirty")


@dataclasses.dataclass(frozen=True)
class _LoadSql:
    """The statements of :func:`load_runs`, each with ``{}`` for the id list's marks."""

    runs: str
    params: str
    metrics: str
    tags: str


@functools.cache
def _load_sql(mark: str, quote: Callable[[str], str]) -> _LoadSql:
    runs, experiments = quote(RunRow.__tablename__), quote(ExperimentRow.__tablename__)
    columns = ", ".join(f"r.{quote(name)}" for name in _RUN_FIELDS)

    def of_runs(table: str, names: Sequence[str]) -> str:
        listed = ", ".join(quote(n) for n in names)
        return f"SELECT {listed} FROM {quote(table)} WHERE {quote('run_id')} IN ({{}})"

    return _LoadSql(
        runs=(
            f"SELECT {columns}, e.{quote('name')} FROM {runs} r "
            f"JOIN {experiments} e ON e.id = r.{quote('experiment_id')} WHERE r.id IN ({{}})"
        ),
        params=of_runs(ParamRow.__tablename__, ("run_id", "key", "value")),
        metrics=of_runs(
            LatestMetricRow.__tablename__, ("run_id", "key", "value", "step", "timestamp")
        ),
        tags=of_runs(TagRow.__tablename__, ("run_id", "key", "value")),
    )


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


def as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
