"""The tracking store: experiments, runs, params, metrics, tags, artifacts and data sets.

:class:`SqlTrackingStore` opens the transactions and keeps experiments, runs and artifact
records; writing and loading a run's params, metrics and tags is in :mod:`segue.store.run_data`,
the data sets runs used in :mod:`segue.store.datasets`, and search's SQL in
:mod:`segue.store.search`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from segue.errors import AlreadyExists, InvalidArgument, NotFound
from segue.store import datasets, overview, roots, run_data, search
from segue.store.entities import (
    ArtifactEntry,
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    MetricHistory,
    Run,
    RunInfo,
    RunTable,
)
from segue.store.filters import Expr, OrderKey
from segue.store.schema import (
    ArtifactRow,
    EnvironmentRow,
    ExperimentRow,
    ParamRow,
    RunRow,
    StorePropertyRow,
    TagRow,
)
from segue.store.sessions import Database, DriverCursor, rowcount

ARTIFACT_ROOT = "artifact_root"
#: Pages of a search sorted by a metric ending within this many runs read the metric's index
#: in order (see :func:`segue.store.search.split_on_sort_metric`); deeper ones sort every run.
_SPLIT_DEPTH = 5000


class TrackingStore(Protocol):
    """What experiment tracking needs from a metadata store."""

    def create_experiment(self, name: str, description: str | None = None) -> Experiment: ...
    def get_experiment(self, name: str) -> Experiment: ...
    def get_or_create_experiment(self, name: str) -> Experiment: ...
    def list_experiments(self) -> list[Experiment]: ...
    def create_run(self, info: RunInfo, tags: Mapping[str, str] = ...) -> RunInfo: ...
    def get_run(self, run_id: str) -> Run: ...
    def resolve_run_id(self, prefix: str) -> str: ...
    def set_run_status(
        self,
        run_id: str,
        status: str,
        end_time: int | None,
        *,
        error: str | None = None,
        reason: str | None = None,
    ) -> None: ...
    def set_run_lifecycle(self, run_id: str, stage: str) -> None: ...
    def heartbeat(self, run_ids: Sequence[str], now: int) -> None: ...
    def reap_stale_runs(self, now: int, timeout_ms: int) -> list[str]: ...
    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] = ...,
        tags: Mapping[str, str] = ...,
    ) -> None: ...
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...
    def record_environment(self, digest: str, packages: Mapping[str, str]) -> None: ...
    def get_environment(self, digest: str) -> dict[str, str]: ...
    def record_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None: ...
    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]: ...
    def log_dataset(self, run_id: str, name: str, context: str, dataset: Dataset) -> None: ...
    def list_datasets(self, run_id: str) -> list[DatasetInput]: ...
    def search_runs(
        self,
        experiment_ids: Sequence[int] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        include_deleted: bool = False,
    ) -> list[Run]: ...
    def claim_artifact_root(self, uri: str) -> str: ...


class SqlTrackingStore:
    """:class:`TrackingStore` over SQLAlchemy, for SQLite and PostgreSQL.

    The constructor only keeps the engine; the schema must already be current
    (see :func:`segue.store.engine.ensure_schema`). Batches of rows are sent as one
    executemany (a parameter set per row) and long IN lists in chunks, so no statement
    outgrows SQLite's variable limit or PostgreSQL's 65,535 parameters however big a batch is.
    """

    def __init__(self, engine: Engine) -> None:
        self._db = Database(engine)

    @property
    def engine(self) -> Engine:
        """The database engine, shared with the other stores of the same database."""
        return self._db.engine

    # -- experiments ---------------------------------------------------------------------

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        _check_name("experiment", name)
        with self._db.write() as s, s.begin():
            if s.scalar(sa.select(ExperimentRow.id).where(ExperimentRow.name == name)):
                raise AlreadyExists(f"experiment {name!r} already exists")
            row = ExperimentRow(name=name, description=description, created_at=_now())
            s.add(row)
            try:
                s.flush()
            except sa.exc.IntegrityError as exc:
                # A concurrent writer inserted the name after our check (PostgreSQL).
                raise AlreadyExists(f"experiment {name!r} already exists") from exc
            return _experiment(row)

    def get_experiment(self, name: str) -> Experiment:
        with self._db.read() as s:
            row = s.scalar(sa.select(ExperimentRow).where(ExperimentRow.name == name))
            if row is None:
                raise NotFound(f"experiment {name!r} does not exist; see `segue experiments list`")
            return _experiment(row)

    def get_or_create_experiment(self, name: str) -> Experiment:
        _check_name("experiment", name)
        with self._db.write() as s, s.begin():
            stmt = self._db.insert(ExperimentRow).values(name=name, created_at=_now())
            s.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            row = s.scalars(sa.select(ExperimentRow).where(ExperimentRow.name == name)).one()
            return _experiment(row)

    def list_experiments(self) -> list[Experiment]:
        counts = (
            sa.select(RunRow.experiment_id, sa.func.count().label("n"))
            .where(RunRow.lifecycle_stage == "active")
            .group_by(RunRow.experiment_id)
            .subquery()
        )
        stmt = (
            sa.select(ExperimentRow, sa.func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.experiment_id == ExperimentRow.id)
            .order_by(ExperimentRow.id)
        )
        with self._db.read() as s:
            return [_experiment(row, n) for row, n in s.execute(stmt)]

    # -- runs ----------------------------------------------------------------------------

    def create_run(self, info: RunInfo, tags: Mapping[str, str] | None = None) -> RunInfo:
        with self._db.write() as s, s.begin():
            _insert_run(s, info, tags)
        return info

    def create_runs(
        self,
        runs: Sequence[tuple[RunInfo, Mapping[str, str], Mapping[str, str]]],
        metrics: Mapping[str, Sequence[Metric]] | None = None,
    ) -> None:
        """Several runs, each ``(info, tags, params)``, in one transaction: all or none.

        The batch primitive a pipeline uses for its cached steps' runs (one commit, not one a
        step), and an import or a benchmark for thousands of runs: ``metrics`` holds points
        per run id. What must exist (experiments, parents, earlier in the batch or stored;
        environments) and what must not (the ids) is checked with a query per chunk, and the
        rows go as one executemany per table. Not part of :class:`TrackingStore`: a store
        without it gets ``create_run`` and ``log_batch`` a run at a time.
        """
        if not runs:
            return
        with self._db.write() as s, s.begin():
            _check_new_runs(s, self._db, [info for info, _, _ in runs])
            cursor = DriverCursor(s)
            try:
                sql = _run_sql(cursor.mark, cursor.quote)
                rows = [tuple(getattr(i, name) for name in _RUN_FIELDS) for i, _, _ in runs]
                cursor.executemany(sql.run, rows)
                tags = [(i.id, k, v) for i, t, _ in runs for k, v in (t or {}).items()]
                if tags:
                    cursor.executemany(sql.tag, tags)
                params = [
                    (i.id, k, v, run_data.as_number(v))
                    for i, _, p in runs
                    for k, v in (p or {}).items()
                ]
                if params:
                    cursor.executemany(sql.param, params)
            finally:
                cursor.close()
            for run_id, points in (metrics or {}).items():
                if points:
                    columns = run_data.metric_columns(points)
                    run_data.write_metric_columns(s, self._db, run_id, columns)

    def open_run(
        self,
        experiment: str,
        info: RunInfo,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        packages: Mapping[str, str] | None = None,
    ) -> RunInfo:
        """Start a run in ``experiment`` (created if new) with its tags and params, in one
        transaction; return ``info`` with the experiment's id and name.

        ``packages`` is the environment ``info.environment_digest`` names, recorded first if
        the store lacks it. What a sweep's every run does: the statements go to the driver
        as plain SQL, so a run starts in well under a millisecond. Not part of
        :class:`TrackingStore`: without it a client calls ``get_or_create_experiment``,
        ``record_environment``, ``create_run`` and ``log_batch``.
        """
        _check_name("experiment", experiment)
        # A connection, not a session: no unit of work to set up for a handful of statements.
        with self._db.engine.connect() as s, s.begin():
            cursor = DriverCursor(s)
            try:
                sql = _run_sql(cursor.mark, cursor.quote)
                checks = (experiment, info.id, info.parent_run_id, info.environment_digest)
                found, taken, parent, environment = cursor.execute(sql.checks, checks).fetchone()
                if found is None:
                    stmt = self._db.insert(ExperimentRow).values(name=experiment, created_at=_now())
                    s.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
                    found = cursor.execute(sql.experiment, (experiment,)).fetchone()[0]
                if taken:
                    raise AlreadyExists(f"run {info.id!r} already exists")
                if info.parent_run_id and not parent:
                    raise NotFound(f"parent run {info.parent_run_id!r} does not exist")
                digest = info.environment_digest
                if digest and not environment:
                    if packages is None:
                        raise NotFound(f"environment {digest} does not exist; record it first")
                    stmt = self._db.insert(EnvironmentRow).values(digest=digest, packages=packages)
                    s.execute(stmt.on_conflict_do_nothing())
                info = dataclasses.replace(info, experiment_id=found, experiment_name=experiment)
                cursor.execute(sql.run, tuple(getattr(info, name) for name in _RUN_FIELDS))
                if tags:
                    cursor.executemany(sql.tag, [(info.id, k, v) for k, v in tags.items()])
                if params:
                    rows = [(info.id, k, v, run_data.as_number(v)) for k, v in params.items()]
                    cursor.executemany(sql.param, rows)
            finally:
                cursor.close()
        return info

    def finish_run(
        self,
        run_id: str,
        metrics: Sequence[Metric] | Mapping[str, run_data.MetricColumns],
        status: str,
        end_time: int,
        *,
        error: str | None = None,
    ) -> None:
        """Write the run's last metric ``metrics`` (points, or columns per key as
        :meth:`log_metric_columns` takes them) and its final status in one transaction: how a
        run ends. Not part of :class:`TrackingStore` (see :meth:`open_run`)."""
        # A connection, not a session: no unit of work to set up for a handful of statements.
        with self._db.engine.connect() as s, s.begin():
            cursor = DriverCursor(s)
            try:
                sql = _run_sql(cursor.mark, cursor.quote)
                ended = cursor.execute(sql.finish, (status, end_time, error, run_id)).rowcount
            finally:
                cursor.close()
            if ended == 0:
                raise NotFound(f"run {run_id!r} does not exist")
            if metrics:
                columns = (
                    metrics if isinstance(metrics, Mapping) else run_data.metric_columns(metrics)
                )
                run_data.write_metric_columns(s, self._db, run_id, columns)

    def get_run(self, run_id: str) -> Run:
        with self._db.read() as s:
            runs = run_data.load_runs(s, [run_id])
        if not runs:
            raise NotFound(f"run {run_id!r} does not exist; see `segue runs list`")
        return runs[0]

    def resolve_run_id(self, prefix: str) -> str:
        """The full id of the run whose id starts with ``prefix`` (at least 4 characters)."""
        if not isinstance(prefix, str) or len(prefix) < 4 or not prefix.isalnum():
            raise InvalidArgument(
                f"run id {prefix!r}: give the id or at least its first 4 characters"
            )
        prefix = prefix.lower()
        if len(prefix) == RUN_ID_LENGTH:  # a whole id: its primary key (LIKE scans every run)
            stmt = sa.select(RunRow.id).where(RunRow.id == prefix)
        else:
            stmt = sa.select(RunRow.id).where(RunRow.id.startswith(prefix)).limit(2)
        with self._db.read() as s:
            found = list(s.scalars(stmt))
        if not found:
            raise NotFound(f"run {prefix!r} does not exist; see `segue runs list`")
        if len(found) > 1:
            raise InvalidArgument(f"run id prefix {prefix!r} is ambiguous; give more characters")
        return found[0]

    def set_run_status(
        self,
        run_id: str,
        status: str,
        end_time: int | None,
        *,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        values: dict[str, object] = {
            "status": status,
            "end_time": end_time,
            "status_reason": reason,
        }
        if error is not None:
            values["error"] = error
        with self._db.write() as s, s.begin():
            result = s.execute(sa.update(RunRow).where(RunRow.id == run_id).values(**values))
            if rowcount(result) == 0:
                raise NotFound(f"run {run_id!r} does not exist")

    def set_run_lifecycle(self, run_id: str, stage: str) -> None:
        with self._db.write() as s, s.begin():
            stmt = sa.update(RunRow).where(RunRow.id == run_id).values(lifecycle_stage=stage)
            if rowcount(s.execute(stmt)) == 0:
                raise NotFound(f"run {run_id!r} does not exist; see `segue runs list`")

    def heartbeat(self, run_ids: Sequence[str], now: int) -> None:
        if not run_ids:
            return
        with self._db.write() as s, s.begin():
            for chunk in self._db.chunks(list(run_ids), 1):
                s.execute(
                    sa.update(RunRow)
                    .where(RunRow.id.in_(chunk), RunRow.status == "RUNNING")
                    .values(heartbeat_at=now)
                )

    def reap_stale_runs(self, now: int, timeout_ms: int) -> list[str]:
        """Mark RUNNING runs whose heartbeat stopped ``timeout_ms`` ago as KILLED."""
        stale = sa.and_(RunRow.status == "RUNNING", RunRow.heartbeat_at < now - timeout_ms)
        with self._db.read() as s:
            # A cheap read first: most calls find nothing and need no write lock.
            if not s.scalar(sa.select(sa.exists().where(stale))):
                return []
        with self._db.write() as s, s.begin():
            ids = list(s.scalars(sa.select(RunRow.id).where(stale)))
            for chunk in self._db.chunks(ids, 1):
                s.execute(
                    sa.update(RunRow)
                    .where(RunRow.id.in_(chunk), stale)
                    .values(
                        status="KILLED",
                        end_time=RunRow.heartbeat_at,
                        status_reason="process died: no heartbeat since end_time",
                    )
                )
            return ids

    # -- params, metrics, tags -----------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.log_metric_columns(run_id, run_data.metric_columns(metrics), params=params, tags=tags)

    def log_metric_columns(
        self,
        run_id: str,
        metrics: Mapping[str, run_data.MetricColumns],
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """:meth:`log_batch` with each key's points as columns ``(values, steps,
        timestamps)``, all in one transaction: the server's path, which makes no object per
        point."""
        with self._db.write() as s, s.begin():
            if s.get(RunRow, run_id) is None:
                raise NotFound(f"run {run_id!r} does not exist")
            if params:
                run_data.write_params(s, self._db, run_id, params)
            if tags:
                run_data.write_tags(s, self._db, run_id, tags)
            if metrics:
                run_data.write_metric_columns(s, self._db, run_id, metrics)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        with self._db.read() as s:
            return run_data.metric_history(s, run_id, key)

    def get_metric_columns(self, run_id: str, key: str) -> MetricHistory:
        """Metric ``key``'s history as columns: what a chart of 100,000 points reads (no
        object per point)."""
        with self._db.read() as s:
            return run_data.history_columns(s, run_id, key)

    # -- environments, artifacts, data sets ----------------------------------------------

    def record_environment(self, digest: str, packages: Mapping[str, str]) -> None:
        with self._db.write() as s, s.begin():
            stmt = self._db.insert(EnvironmentRow).values(digest=digest, packages=dict(packages))
            s.execute(stmt.on_conflict_do_nothing())

    def get_environment(self, digest: str) -> dict[str, str]:
        with self._db.read() as s:
            row = s.get(EnvironmentRow, digest)
            if row is None:
                raise NotFound(f"environment {digest} does not exist")
            return dict(row.packages)

    def record_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        if not entries:
            return
        now = _now()
        rows = [
            {
                "run_id": run_id,
                "path": e.path,
                "digest": e.digest,
                "size": e.size,
                "created_at": now,
            }
            for e in entries
        ]
        with self._db.write() as s, s.begin():
            if s.get(RunRow, run_id) is None:
                raise NotFound(f"run {run_id!r} does not exist")
            stmt = self._db.insert(ArtifactRow)
            upsert = stmt.on_conflict_do_update(
                index_elements=["run_id", "path"],
                set_={c: stmt.excluded[c] for c in ("digest", "size", "created_at")},
            )
            s.execute(upsert, rows)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        stmt = sa.select(ArtifactRow).where(ArtifactRow.run_id == run_id).order_by(ArtifactRow.path)
        if prefix:
            stmt = stmt.where(ArtifactRow.path.startswith(prefix, autoescape=True))
        with self._db.read() as s:
            return [ArtifactEntry(r.path, r.digest, r.size, r.created_at) for r in s.scalars(stmt)]

    def log_dataset(self, run_id: str, name: str, context: str, dataset: Dataset) -> None:
        with self._db.write() as s, s.begin():
            if s.get(RunRow, run_id) is None:
                raise NotFound(f"run {run_id!r} does not exist")
            datasets.link(s, self._db, run_id, name, context, dataset)

    def list_datasets(self, run_id: str) -> list[DatasetInput]:
        with self._db.read() as s:
            return datasets.of_run(s, run_id)

    # -- the store itself ----------------------------------------------------------------

    def claim_artifact_root(self, uri: str) -> str:
        """The artifact root recorded in this store, after recording ``uri`` if none is.

        The first client to ask records where artifacts live, so that every later client (in
        another folder, on another machine) finds the same blobs. An embedded SQLite database
        records a root inside its own folder relative to it (see :mod:`segue.store.roots`), so
        a moved ``$SEGUE_HOME`` keeps its artifacts.
        """
        folder = roots.database_folder(self._db.engine)
        with self._db.read() as s:
            recorded = s.get(StorePropertyRow, ARTIFACT_ROOT)
            if recorded is not None:
                return roots.resolved_form(recorded.value, folder)
        with self._db.write() as s, s.begin():
            stmt = self._db.insert(StorePropertyRow).values(
                key=ARTIFACT_ROOT, value=roots.stored_form(uri, folder), created_at=_now()
            )
            s.execute(stmt.on_conflict_do_nothing())  # a racing client may have won
            query = sa.select(StorePropertyRow.value).where(StorePropertyRow.key == ARTIFACT_ROOT)
            return roots.resolved_form(s.scalars(query).one(), folder)

    # -- search --------------------------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[int] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        include_deleted: bool = False,
        offset: int = 0,
    ) -> list[Run]:
        """The matching runs, sorted; ``offset`` skips that many first (a page of a table)."""
        with self._db.read() as s:
            ids = self._search_ids(
                s, experiment_ids, where, order_by, max_results, include_deleted, offset
            )
            return run_data.load_runs(s, ids)

    def search_table(
        self,
        experiment_ids: Sequence[int] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        include_deleted: bool = False,
    ) -> RunTable:
        """:meth:`search_runs` as columns: what ``segue.search_runs`` makes its DataFrame of,
        with no record per run. Not part of :class:`TrackingStore`: a store without it gets
        the records turned into columns."""
        with self._db.read() as s:
            ids = self._search_ids(s, experiment_ids, where, order_by, max_results, include_deleted)
            return run_data.load_table(s, ids)

    def _search_ids(
        self,
        s: Session,
        experiment_ids: Sequence[int] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        include_deleted: bool,
        offset: int = 0,
    ) -> list[str]:
        if offset < 0 or max_results < 0:
            raise InvalidArgument(f"offset {offset} and max_results {max_results} must be >= 0")
        sql, params = _compiled_search(
            self._db.engine.dialect,
            None if experiment_ids is None else tuple(experiment_ids),
            where,
            tuple(order_by),
            max_results,
            include_deleted,
            offset,
        )
        return [row[0] for row in s.connection().exec_driver_sql(sql, params)]

    # -- what the web UI's tables show (SQL stores only) ---------------------------------

    def count_runs(
        self,
        experiment_ids: Sequence[int] | None,
        where: Expr | None,
        include_deleted: bool = False,
    ) -> int:
        """How many runs :meth:`search_runs` would find with no limit."""
        dialect = self._db.engine.dialect.name
        with self._db.read() as s:
            return overview.count_runs(s, experiment_ids, where, include_deleted, dialect)

    def search_page(
        self,
        experiment_ids: Sequence[int] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        offset: int = 0,
    ) -> list[Run]:
        """:meth:`search_runs` for a page of a table: the same runs, and when the first sort
        key is a metric the filter does not require, a page near the top is read along that
        metric's index (then, if the page reaches them, from the runs lacking it) instead of
        sorting every run: two statements instead of one, milliseconds instead of a full sort.
        """
        split = search.split_on_sort_metric(where, order_by)
        if split is None or offset + max_results > _SPLIT_DEPTH:
            return self.search_runs(experiment_ids, where, order_by, max_results, offset=offset)
        if offset < 0 or max_results < 0:
            raise InvalidArgument(f"offset {offset} and max_results {max_results} must be >= 0")
        dialect = self._db.engine.dialect.name
        has, lacks = split
        with self._db.read() as s:
            query = search.build_query(
                experiment_ids, has, order_by, max_results, False, dialect, offset
            )
            ids = list(s.scalars(query))
            if len(ids) < max_results:
                # The page reaches the runs lacking the metric: skip as many of them as the
                # offset passes beyond the runs having it.
                skip = 0
                if not ids and offset:
                    having = search.count_query(experiment_ids, has, False, dialect)
                    skip = max(0, offset - int(s.scalar(having) or 0))
                rest = search.build_query(
                    experiment_ids,
                    lacks,
                    order_by[1:],
                    max_results - len(ids),
                    False,
                    dialect,
                    skip,
                )
                ids += list(s.scalars(rest))
            return run_data.load_runs(s, ids)

    def run_keys(self, experiment_ids: Sequence[int] | None) -> overview.RunKeys:
        """The param, metric and tag keys the newest runs of ``experiment_ids`` carry."""
        with self._db.read() as s:
            return overview.run_keys(s, experiment_ids)

    def experiment_activity(self) -> list[overview.ExperimentActivity]:
        """Every experiment with its run count and last activity, in one query."""
        with self._db.read() as s:
            return overview.experiment_activity(s)


@functools.lru_cache(maxsize=256)
def _compiled_search(
    dialect: sa.Dialect,
    experiment_ids: tuple[int, ...] | None,
    where: Expr | None,
    order_by: tuple[OrderKey, ...],
    max_results: int,
    include_deleted: bool,
    offset: int,
) -> tuple[str, Any]:
    """The SQL and parameters of a search, compiled once per distinct search: a table page
    or a script repeating a search skips building and compiling the statement (several
    milliseconds for a filtered, sorted one)."""
    stmt = search.build_query(
        experiment_ids, where, order_by, max_results, include_deleted, dialect.name, offset
    )
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positional and compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    return compiled.string, params


#: Characters of a run id (a uuid4's hex).
RUN_ID_LENGTH = 32


def _check_new_runs(s: Session, db: Database, infos: Sequence[RunInfo]) -> None:
    """Raise what :func:`_insert_run` would for the first refused run of ``infos``, with a
    query per chunk of ids instead of one per run."""

    def stored(column: Any, values: set[Any]) -> set[Any]:
        found: set[Any] = set()
        for chunk in db.chunks(sorted(values, key=str), 1):
            found.update(s.scalars(sa.select(column).where(column.in_(chunk))))
        return found

    ids = [i.id for i in infos]
    experiments = stored(ExperimentRow.id, {i.experiment_id for i in infos})
    taken = stored(RunRow.id, set(ids))
    parents = stored(RunRow.id, {i.parent_run_id for i in infos if i.parent_run_id})
    digests = {i.environment_digest for i in infos if i.environment_digest}
    environments = stored(EnvironmentRow.digest, digests)
    earlier: set[str] = set()
    for info in infos:
        if info.experiment_id not in experiments:
            raise NotFound(f"experiment {info.experiment_id} does not exist")
        if info.id in taken or info.id in earlier:
            raise AlreadyExists(f"run {info.id!r} already exists")
        parent = info.parent_run_id
        if parent and parent not in parents and parent not in earlier:
            raise NotFound(f"parent run {info.parent_run_id!r} does not exist")
        digest = info.environment_digest
        if digest and digest not in environments:
            raise NotFound(f"environment {digest} does not exist; record it before the run")
        earlier.add(info.id)


def _insert_run(s: Session, info: RunInfo, tags: Mapping[str, str] | None) -> None:
    digest = info.environment_digest
    # What must exist and what must not, in one query; Core inserts, no ORM unit of work:
    # a run starts in a few statements.
    checks = sa.select(
        sa.exists().where(ExperimentRow.id == info.experiment_id),
        sa.exists().where(RunRow.id == info.id),
        sa.exists().where(RunRow.id == info.parent_run_id),
        sa.exists().where(EnvironmentRow.digest == digest),
    )
    experiment, taken, parent, environment = s.execute(checks).one()
    if not experiment:
        raise NotFound(f"experiment {info.experiment_id} does not exist")
    if taken:
        raise AlreadyExists(f"run {info.id!r} already exists")
    if info.parent_run_id and not parent:
        raise NotFound(f"parent run {info.parent_run_id!r} does not exist")
    if digest and not environment:
        raise NotFound(f"environment {digest} does not exist; record it before the run")
    row = {k: v for k, v in vars(info).items() if k != "experiment_name"}
    s.execute(sa.insert(cast(sa.Table, RunRow.__table__)), [row])
    if tags:
        rows = [{"run_id": info.id, "key": k, "value": v} for k, v in tags.items()]
        s.execute(sa.insert(cast(sa.Table, TagRow.__table__)), rows)


def _now() -> int:
    return int(time.time() * 1000)


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"{what} name must be a non-empty string, got {name!r}")
    if len(name) > 256:
        raise InvalidArgument(f"{what} name is {len(name)} characters long; the limit is 256")


def _experiment(row: ExperimentRow, run_count: int = 0) -> Experiment:
    return Experiment(
        row.id, row.name, row.description, row.lifecycle_stage, row.created_at, run_count
    )


#: The columns of a run row, in the order the driver-level INSERT lists them.
_RUN_FIELDS = tuple(c.name for c in RunRow.__table__.columns)


@dataclasses.dataclass(frozen=True)
class _RunSql:
    experiment: str
    checks: str
    run: str
    tag: str
    param: str
    finish: str


@functools.cache
def _run_sql(mark: str, quote: Callable[[str], str]) -> _RunSql:
    """The driver-level statements that start and end a run, with ``mark`` for a parameter."""

    def insert(table: str, columns: Sequence[str]) -> str:
        names = ", ".join(quote(c) for c in columns)
        return f"INSERT INTO {quote(table)} ({names}) VALUES ({', '.join([mark] * len(columns))})"

    runs = quote(RunRow.__tablename__)
    experiment = f"SELECT id FROM {quote(ExperimentRow.__tablename__)} WHERE name = {mark}"
    return _RunSql(
        experiment=experiment,
        checks=(
            f"SELECT ({experiment}), "
            f"EXISTS (SELECT 1 FROM {runs} WHERE id = {mark}), "
            f"EXISTS (SELECT 1 FROM {runs} WHERE id = {mark}), "
            f"EXISTS (SELECT 1 FROM {quote(EnvironmentRow.__tablename__)} WHERE digest = {mark})"
        ),
        run=insert(RunRow.__tablename__, _RUN_FIELDS),
        tag=insert(TagRow.__tablename__, ("run_id", "key", "value")),
        param=insert(ParamRow.__tablename__, ("run_id", "key", "value", "value_num")),
        finish=(
            f"UPDATE {runs} SET status = {mark}, end_time = {mark}, status_reason = NULL, "
            f"error = COALESCE({mark}, error) WHERE id = {mark}"
        ),
    )
