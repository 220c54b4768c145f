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
from itertools import chain, islice, repeat
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from segue.errors import Conflict, InvalidArgument
from segue.store import collector
from segue.store.entities import (
    Metric,
    MetricHistory,
    Run,
    RunData,
    RunInfo,
    RunTable,
    spread_cells,
)
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

    The history rows skip SQLAlchemy's per-row work: on SQLite one driver executemany per
    key of :data:`_ROWS_PER_INSERT` rows a statement, on PostgreSQL one ``INSERT ... SELECT
    FROM unnest(arrays)`` per key (a statement of five parameters however many points). A
    NaN value is stored as NULL.

    Raises:
        InvalidArgument: a key's three columns differ in length.
    """
    postgres = db.dialect == "postgresql"
    cursor = DriverCursor(s)
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
            if _has_nan(values):
                stored = [None if v != v else v for v in values]
            if postgres:
                insert = _history_insert(db.dialect, cursor.quote)
                cursor.execute(insert, (run_id, key, list(stored), list(steps), list(stamps)))
            else:
                _insert_history_rows(cursor, run_id, key, stored, steps, stamps)
            last = _latest_index(steps, stamps)
            latest.append((run_id, key, stored[last], steps[last], stamps[last]))
        if latest:
            upsert = _latest_upsert(db.dialect, cursor.quote)
            if len(latest) == 1:
                cursor.execute(upsert, latest[0])
            else:
                cursor.executemany(upsert, latest)
    finally:
        cursor.close()


#: History rows one SQLite INSERT carries (500 parameters, under the oldest SQLite's 999):
#: sqlite3 steps a statement, and lets go of the GIL, once a parameter set, so one row a
#: statement hands the GIL back and forth with a logging thread at every row.
_ROWS_PER_INSERT = 100


def _insert_history_rows(
    cursor: DriverCursor,
    run_id: str,
    key: str,
    values: Sequence[float | None],
    steps: Sequence[int],
    stamps: Sequence[int],
) -> None:
    """One key's history rows on SQLite, in the order given (so ids follow it): blocks of
    :data:`_ROWS_PER_INSERT` rows a statement, then the rest a row a statement."""
    count = len(values)
    rows = zip(repeat(run_id), repeat(key), values, steps, stamps, strict=False)
    blocks = count // _ROWS_PER_INSERT
    if blocks:
        flat = list(chain.from_iterable(islice(rows, blocks * _ROWS_PER_INSERT)))
        width = 5 * _ROWS_PER_INSERT
        sql = _history_insert("sqlite", cursor.quote, _ROWS_PER_INSERT)
        cursor.executemany(sql, [flat[i : i + width] for i in range(0, len(flat), width)])
    rest = list(rows)
    if len(rest) == 1:
        cursor.execute(_history_insert("sqlite", cursor.quote), rest[0])
    elif rest:
        cursor.executemany(_history_insert("sqlite", cursor.quote), rest)


def _has_nan(values: Sequence[Any]) -> bool:
    try:
        return any(map(math.isnan, values))  # no Python frame a point
    except TypeError:  # a None among them (NaN as the JSON of a request has it)
        return any(v != v for v in values)  # NaN is the one value unequal to itself


def _latest_index(steps: Sequence[int], stamps: Sequence[int]) -> int:
    """Where the key's latest point is: the highest (step, timestamp); among equals the last
    logged (the highest index)."""
    top = max(steps)
    if steps.count(top) == 1:  # the usual case: one point at the highest step
        return steps.index(top)
    _, _, last = max(zip(steps, stamps, range(len(steps)), strict=True))
    return last


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
def _history_insert(dialect: str, quote: Callable[[str], str], rows: int = 1) -> str:
    """The driver-level INSERT of history rows for ``dialect``: on SQLite, of ``rows`` rows."""
    table = quote(MetricRow.__tablename__)
    names = ", ".join(quote(c) for c in _HISTORY_COLUMNS)
    if dialect == "postgresql":
        # In the arrays' order (WITH ORDINALITY), so ids follow the order points were logged.
        return (
            f"INSERT INTO {table} ({names}) SELECT %s, %s, u.v, u.s, u.t FROM "
            "unnest(%s::float8[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS u(v, s, t, n) "
            "ORDER BY u.n"
        )
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO {table} ({names}) VALUES {values}"


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
    # A burst of acyclic tuples, a row each: no cyclic collection while they are made (a
    # 100,000-point read took 160-230 ms with collections, 45-50 ms without).
    with collector.paused():
        try:
            cursor.execute(compiled.string, args)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if not rows:
            return MetricHistory([], [], [])
        steps, values, stamps = zip(*rows, strict=True)
        return MetricHistory(list(steps), list(values), list(stamps))


_Fetched = list[tuple[list[Any], list[Any], list[Any], list[Any]]]


def _fetch(s: Session, ids: Sequence[str]) -> _Fetched:
    """The rows of the runs ``ids``, their params, latest metrics and tags: one
    ``(runs, params, metrics, tags)`` of row lists a chunk of ids."""
    found: _Fetched = []
    cursor = DriverCursor(s)
    try:
        sql = _load_sql(cursor.mark, cursor.quote)
        for chunk in _chunks(ids):
            marks = ", ".join([cursor.mark] * len(chunk))
            runs, params, metrics, tags = (
                cursor.execute(query.format(marks), chunk).fetchall()
                for query in (sql.runs, sql.params, sql.metrics, sql.tags)
            )
            found.append((runs, params, metrics, tags))
    finally:
        cursor.close()
    return found


def load_runs(s: Session, ids: Sequence[str]) -> list[Run]:
    """Runs with their data, in the order of ``ids`` (unknown ids left out): four queries
    per chunk of ids, sent to the driver as plain SQL and read as plain rows (a page of
    1,000 runs holds some 6,000 rows: no ORM object, no per-statement compilation).

    The records are filled in directly (see :func:`_record`): their frozen ``__init__``
    took a third of a 1,000-run search's Python time. In-process callers pause the collector
    around a search (:meth:`TrackingClient.find_runs`); a server, whose searches overlap,
    does not, so that its cyclic garbage is still collected.
    """
    infos: dict[str, RunInfo] = {}
    params: dict[str, dict[str, str]] = {i: {} for i in ids}
    metrics: dict[str, dict[str, Metric]] = {i: {} for i in ids}
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    nan = math.nan
    record = _record
    for run_rows, param_rows, metric_rows, tag_rows in _fetch(s, ids):
        for row in run_rows:
            fields = dict(zip(_LOADED_FIELDS, row, strict=True))
            if fields["source_dirty"] is not None:  # SQLite gives 0 or 1
                fields["source_dirty"] = bool(fields["source_dirty"])
            infos[row[0]] = record(RunInfo, fields)
        for run_id, key, value in param_rows:
            params[run_id][key] = value
        for run_id, key, number, step, stamp in metric_rows:
            metrics[run_id][key] = record(
                Metric,
                {
                    "key": key,
                    "value": nan if number is None else number,
                    "step": step,
                    "timestamp": stamp,
                },
            )
        for run_id, key, value in tag_rows:
            tags[run_id][key] = value
    return [
        record(
            Run,
            {
                "info": infos[i],
                "data": record(
                    RunData, {"params": params[i], "metrics": metrics[i], "tags": tags[i]}
                ),
            },
        )
        for i in ids
        if i in infos
    ]


def load_table(s: Session, ids: Sequence[str]) -> RunTable:
    """:func:`load_runs` as columns (see :class:`RunTable`): the same runs in the same order,
    from the same queries, with no record per run, param or metric."""
    fetched = _fetch(s, ids)
    rows = {row[0]: row for run_rows, _, _, _ in fetched for row in run_rows}
    ordered = [rows[i] for i in ids if i in rows]
    count = len(ordered)
    where = {row[0]: n for n, row in enumerate(ordered)}
    if ordered:
        info = {
            name: list(values)
            for name, values in zip(_LOADED_FIELDS, zip(*ordered, strict=True), strict=True)
        }
    else:
        info = {name: [] for name in _LOADED_FIELDS}
    info["source_dirty"] = [None if v is None else bool(v) for v in info["source_dirty"]]
    nan = math.nan
    params = spread_cells(
        ((where[run_id], key, value) for _, found, _, _ in fetched for run_id, key, value in found),
        count,
    )
    metrics = spread_cells(
        (
            (where[run_id], key, nan if number is None else number)
            for _, _, found, _ in fetched
            for run_id, key, number, _, _ in found
        ),
        count,
    )
    tags = spread_cells(
        ((where[run_id], key, value) for _, _, _, found in fetched for run_id, key, value in found),
        count,
    )
    return RunTable(info, params, metrics, tags)


_R = TypeVar("_R")


def _record(cls: type[_R], fields: dict[str, Any]) -> _R:
    """``cls(**fields)`` given every field of the frozen dataclass ``cls``, without its
    ``__init__``, which sets the fields one ``object.__setattr__`` at a time (4.5 us for a
    RunInfo, 1.3 for a Metric; this takes a third of that). The record is the same: its
    ``__eq__``, ``__repr__``, ``replace`` and pickling read the fields from its ``__dict__``."""
    made = object.__new__(cls)
    object.__setattr__(made, "__dict__", fields)
    return made


#: The fields of :class:`RunInfo`, in order: the columns of a loaded run row (the experiment's
#: name read from its experiment, every other field from the run).
_LOADED_FIELDS = tuple(f.name for f in dataclasses.fields(RunInfo))


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
    columns = ", ".join(
        f"e.{quote('name')}" if name == "experiment_name" else f"r.{quote(name)}"
        for name in _LOADED_FIELDS
    )

    def of_runs(table: str, names: Sequence[str]) -> str:
        listed = ", ".join(quote(n) for n in names)
        return f"SELECT {listed} FROM {quote(table)} WHERE {quote('run_id')} IN ({{}})"

    return _LoadSql(
        runs=(
            f"SELECT {columns} FROM {runs} r "
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
