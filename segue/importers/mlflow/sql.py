"""An MLflow database (``sqlite:///mlflow.db``, ``postgresql://…``, ``mysql://…``) read with
SQLAlchemy Core over MLflow's tables, without MLflow installed; opened for reading only.

The tables are declared here with just the columns read (MLflow's schema is stable across
2.x and 3.x for these); MLflow 3's ``workspace`` column is not read: every workspace is
imported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from segue.errors import InvalidArgument
from segue.importers.mlflow import locations
from segue.importers.mlflow.records import (
    Columns,
    MlflowDatasetInput,
    MlflowExperiment,
    MlflowModel,
    MlflowRunRecord,
    MlflowVersion,
    Unreadable,
)

_meta = sa.MetaData()
_experiments = sa.Table(
    "experiments",
    _meta,
    sa.Column("experiment_id", sa.Integer),
    sa.Column("name", sa.String),
    sa.Column("lifecycle_stage", sa.String),
    sa.Column("creation_time", sa.BigInteger),
)
_experiment_tags = sa.Table(
    "experiment_tags",
    _meta,
    sa.Column("key", sa.String),
    sa.Column("value", sa.String),
    sa.Column("experiment_id", sa.Integer),
)
_runs = sa.Table(
    "runs",
    _meta,
    sa.Column("run_uuid", sa.String),
    sa.Column("name", sa.String),
    sa.Column("user_id", sa.String),
    sa.Column("status", sa.String),
    sa.Column("start_time", sa.BigInteger),
    sa.Column("end_time", sa.BigInteger),
    sa.Column("lifecycle_stage", sa.String),
    sa.Column("artifact_uri", sa.String),
    sa.Column("experiment_id", sa.Integer),
)
_params = sa.Table(
    "params",
    _meta,
    sa.Column("key", sa.String),
    sa.Column("value", sa.String),
    sa.Column("run_uuid", sa.String),
)
_tags = sa.Table(
    "tags",
    _meta,
    sa.Column("key", sa.String),
    sa.Column("value", sa.String),
    sa.Column("run_uuid", sa.String),
)
_metrics = sa.Table(
    "metrics",
    _meta,
    sa.Column("key", sa.String),
    sa.Column("value", sa.Float),
    sa.Column("timestamp", sa.BigInteger),
    sa.Column("step", sa.BigInteger),
    sa.Column("is_nan", sa.Boolean),
    sa.Column("run_uuid", sa.String),
)
_latest_metrics = sa.Table(
    "latest_metrics",
    _meta,
    sa.Column("key", sa.String),
    sa.Column("value", sa.Float),
    sa.Column("timestamp", sa.BigInteger),
    sa.Column("step", sa.BigInteger),
    sa.Column("run_uuid", sa.String),
)
_datasets = sa.Table(
    "datasets",
    _meta,
    sa.Column("dataset_uuid", sa.String),
    sa.Column("name", sa.String),
    sa.Column("digest", sa.String),
    sa.Column("dataset_source_type", sa.String),
    sa.Column("dataset_source", sa.Text),
    sa.Column("dataset_schema", sa.Text),
    sa.Column("dataset_profile", sa.Text),
)
_inputs = sa.Table(
    "inputs",
    _meta,
    sa.Column("input_uuid", sa.String),
    sa.Column("source_type", sa.String),
    sa.Column("source_id", sa.String),
    sa.Column("destination_type", sa.String),
    sa.Column("destination_id", sa.String),
)
_input_tags = sa.Table(
    "input_tags",
    _meta,
    sa.Column("input_uuid", sa.String),
    sa.Column("name", sa.String),
    sa.Column("value", sa.String),
)
_logged_models = sa.Table(  # MLflow 3
    "logged_models",
    _meta,
    sa.Column("model_id", sa.String),
    sa.Column("artifact_location", sa.String),
    sa.Column("source_run_id", sa.String),
)
_registered_models = sa.Table(
    "registered_models",
    _meta,
    sa.Column("name", sa.String),
    sa.Column("description", sa.String),
)
_registered_model_tags = sa.Table(
    "registered_model_tags",
    _meta,
    sa.Column("name", sa.String),
    sa.Column("key", sa.String),
    sa.Column("value", sa.String),
)
_model_versions = sa.Table(
    "model_versions",
    _meta,
    sa.Column("name", sa.String),
    sa.Column("version", sa.Integer),
    sa.Column("description", sa.String),
    sa.Column("current_stage", sa.String),
    sa.Column("source", sa.String),
    sa.Column("storage_location", sa.String),
    sa.Column("run_id", sa.String),
)
_aliases = sa.Table(
    "registered_model_aliases",
    _meta,
    sa.Column("name", sa.String),
    sa.Column("alias", sa.String),
    sa.Column("version", sa.Integer),
)


class SqlSource:
    """The MLflow database at ``uri`` (an SQLAlchemy URL as MLflow takes it)."""

    def __init__(self, uri: str) -> None:
        self.location = sa.engine.make_url(uri).render_as_string(hide_password=True)
        self._uri = uri
        self._engine: sa.engine.Engine | None = None
        #: Relative artifact locations are resolved against the database's folder.
        self._base = _sqlite_folder(uri)
        self._logged: bool | None = None

    @property
    def engine(self) -> sa.engine.Engine:
        if self._engine is None:
            self._engine = _open(self._uri)
        return self._engine

    def _rows(self, stmt: sa.Select[Any]) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(stmt))
        except sa.exc.SQLAlchemyError as exc:
            raise InvalidArgument(
                f"--from {self.location}: not an MLflow tracking database ({exc.args[0]})"
            ) from None

    def experiments(self) -> list[MlflowExperiment]:
        e = _experiments
        rows = self._rows(sa.select(e).order_by(e.c.experiment_id))
        tags: dict[str, dict[str, str]] = {}
        for key, value, exp_id in self._rows(sa.select(_experiment_tags)):
            tags.setdefault(str(exp_id), {})[key] = value or ""
        return [
            MlflowExperiment(
                str(r.experiment_id),
                r.name,
                r.lifecycle_stage or "active",
                r.creation_time,
                tags.get(str(r.experiment_id), {}),
            )
            for r in rows
        ]

    def runs(self, experiment: MlflowExperiment) -> list[MlflowRunRecord]:
        r = _runs
        exp_id = int(experiment.id)
        rows = self._rows(
            sa.select(r).where(r.c.experiment_id == exp_id).order_by(r.c.start_time, r.c.run_uuid)
        )
        mine = sa.select(r.c.run_uuid).where(r.c.experiment_id == exp_id).scalar_subquery()
        params: dict[str, dict[str, str]] = {}
        for key, value, run_id in self._rows(
            sa.select(_params).where(_params.c.run_uuid.in_(mine))
        ):
            params.setdefault(run_id, {})[key] = value
        tags: dict[str, dict[str, str]] = {}
        for key, value, run_id in self._rows(sa.select(_tags).where(_tags.c.run_uuid.in_(mine))):
            tags.setdefault(run_id, {})[key] = value or ""
        latest: dict[str, list[tuple[str, ...]]] = {}
        lm = _latest_metrics
        stmt = sa.select(lm.c.run_uuid, lm.c.key, lm.c.step, lm.c.timestamp, lm.c.value)
        for run_id, *point in self._rows(stmt.where(lm.c.run_uuid.in_(mine))):
            latest.setdefault(run_id, []).append(tuple(str(p) for p in point))
        records = [
            MlflowRunRecord(
                id=row.run_uuid,
                experiment_id=experiment.id,
                name=row.name or tags.get(row.run_uuid, {}).get("mlflow.runName") or row.run_uuid,
                status=row.status or "FINISHED",
                start_time=row.start_time,
                end_time=row.end_time,
                lifecycle_stage=row.lifecycle_stage or "active",
                user=row.user_id,
                artifact_uri=row.artifact_uri,
                params=params.get(row.run_uuid, {}),
                tags=tags.get(row.run_uuid, {}),
                metrics_seen=tuple(latest.get(row.run_uuid, ())),
            )
            for row in rows
        ]
        return parents_first(records)

    def metrics(self, runs: Sequence[MlflowRunRecord]) -> Mapping[str, dict[str, Columns]]:
        """One query a run, through the driver's cursor: a store's metrics are millions of
        points, so no object is made per point (the columns are sliced from ``zip``)."""
        m = _metrics
        stmt = (
            sa.select(m.c.key, m.c.value, m.c.step, m.c.timestamp, m.c.is_nan)
            .where(m.c.run_uuid == sa.bindparam("run"))
            # Along MLflow's (run_uuid, key, step) index, no sort: ties in step stay in the
            # order they were logged, and Segue orders its history by step, then time.
            .order_by(m.c.key, m.c.step)
        )
        out: dict[str, dict[str, Columns]] = {}
        try:
            with self.engine.connect() as conn:
                compiled = stmt.compile(dialect=conn.dialect)
                raw = conn.connection.driver_connection
                assert raw is not None
                cursor = raw.cursor()
                try:
                    for run in runs:
                        params: Any = compiled.construct_params({"run": run.id})
                        if compiled.positional and compiled.positiontup is not None:
                            params = tuple(params[name] for name in compiled.positiontup)
                        cursor.execute(compiled.string, params)
                        out[run.id] = _columns(cursor.fetchall())
                finally:
                    cursor.close()
        except sa.exc.SQLAlchemyError as exc:
            raise InvalidArgument(f"--from {self.location}: {exc.args[0]}") from None
        return out

    def datasets(self, run: MlflowRunRecord) -> list[MlflowDatasetInput]:
        i, d, t = _inputs, _datasets, _input_tags
        stmt = (
            sa.select(i.c.input_uuid, d)
            .join(d, d.c.dataset_uuid == i.c.source_id)
            .where(
                i.c.destination_type == "RUN",
                i.c.destination_id == run.id,
                i.c.source_type == "DATASET",
            )
        )
        rows = self._rows(stmt)
        if not rows:
            return []
        contexts = {
            input_id: value
            for input_id, name, value in self._rows(
                sa.select(t).where(t.c.input_uuid.in_([row.input_uuid for row in rows]))
            )
            if name == "mlflow.data.context"
        }
        return [
            MlflowDatasetInput(
                name=row.name,
                digest=row.digest,
                context=contexts.get(row.input_uuid) or "train",
                schema=row.dataset_schema,
                profile=row.dataset_profile,
                source_type=row.dataset_source_type,
                source=row.dataset_source,
            )
            for row in rows
        ]

    def artifacts(self, run: MlflowRunRecord, scratch: Path) -> list[tuple[str, Path]]:
        files = []
        if run.artifact_uri:
            files = locations.list_files(run.artifact_uri, scratch, self._base)
        if not self._has_logged_models():
            return files
        m = _logged_models
        stmt = sa.select(m.c.model_id, m.c.artifact_location).where(m.c.source_run_id == run.id)
        models = [(i, where) for i, where in self._rows(stmt.order_by(m.c.model_id)) if where]
        return files + locations.logged_model_files(models, scratch, self._list_files)

    def _list_files(self, location: str, scratch: Path) -> list[tuple[str, Path]]:
        return locations.list_files(location, scratch, self._base)

    def _has_logged_models(self) -> bool:
        if self._logged is None:
            self._logged = sa.inspect(self.engine).has_table("logged_models")
        return self._logged

    def models(self) -> list[MlflowModel]:
        v = _model_versions
        versions: dict[str, list[MlflowVersion]] = {}
        for row in self._rows(sa.select(v).order_by(v.c.name, v.c.version)):
            versions.setdefault(row.name, []).append(
                MlflowVersion(
                    model=row.name,
                    version=int(row.version),
                    run_id=row.run_id,
                    source=row.source,
                    storage_location=row.storage_location,
                    description=row.description,
                    stage=row.current_stage if row.current_stage not in (None, "None") else None,
                )
            )
        aliases: dict[str, dict[str, int]] = {}
        for name, alias, version in self._rows(sa.select(_aliases)):
            aliases.setdefault(name, {})[alias] = int(version)
        tags: dict[str, dict[str, str]] = {}
        for name, key, value in self._rows(sa.select(_registered_model_tags)):
            tags.setdefault(name, {})[key] = value or ""
        rm = _registered_models
        return [
            MlflowModel(
                row.name,
                row.description,
                versions.get(row.name, []),
                aliases.get(row.name, {}),
                tags.get(row.name, {}),
            )
            for row in self._rows(sa.select(rm).order_by(rm.c.name))
        ]

    def model_folder(self, version: MlflowVersion, scratch: Path) -> Path:
        where = model_location(version, self._artifact_uri)
        return locations.local_folder(where, scratch, self._base)

    def _artifact_uri(self, run_id: str) -> str | None:
        rows = self._rows(sa.select(_runs.c.artifact_uri).where(_runs.c.run_uuid == run_id))
        return rows[0][0] if rows else None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _columns(rows: list[tuple[Any, ...]]) -> dict[str, Columns]:
    """Rows ``(key, value, step, timestamp, is_nan)`` sorted by key, as columns per key."""
    if not rows:
        return {}
    keys, values, steps, stamps, nans = zip(*rows, strict=True)
    out: dict[str, Columns] = {}
    start = 0
    for key in dict.fromkeys(keys):
        end = start + keys.count(key)
        column = list(values[start:end])
        if any(nans[start:end]):
            column = [
                math.nan if nan else v for v, nan in zip(column, nans[start:end], strict=True)
            ]
        out[key] = (column, list(steps[start:end]), list(stamps[start:end]))
        start = end
    return out


def model_location(version: MlflowVersion, artifact_uri: Any) -> str:
    """Where the version's files are: MLflow 3 records them; MLflow 2's ``runs:/<id>/<path>``
    source is a path in the run's artifacts; anything else is a location itself."""
    if version.storage_location:
        return version.storage_location
    source = version.source or ""
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        base = artifact_uri(run_id)
        if base is None:
            raise Unreadable(f"version {version.version}: its run {run_id} is not in the store")
        return f"{base.rstrip('/')}/{path}"
    if not source or source.startswith("models:/"):
        raise Unreadable(f"version {version.version}: no storage location recorded for {source!r}")
    return source


def parents_first(runs: list[MlflowRunRecord]) -> list[MlflowRunRecord]:
    """``runs`` reordered so that each run's parent (when in the list) comes before it."""
    by_id = {run.id: run for run in runs}
    placed: set[str] = set()
    out: list[MlflowRunRecord] = []

    def place(run: MlflowRunRecord, seen: frozenset[str]) -> None:
        if run.id in placed:
            return
        parent = run.parent_id
        if parent in by_id and parent not in seen:
            place(by_id[parent], seen | {run.id})
        placed.add(run.id)
        out.append(run)

    for run in runs:
        place(run, frozenset())
    return out


def _open(uri: str) -> sa.engine.Engine:
    url = sa.engine.make_url(uri)
    if url.drivername.startswith("sqlite"):
        path = url.database or ""
        if not path or not Path(path).is_file():
            raise InvalidArgument(f"--from {uri}: no such SQLite file")
        # Read-only: an import never writes to the store it copies.
        return sa.create_engine(f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true")
    if url.drivername == "postgresql":  # MLflow's spelling; Segue installs psycopg 3
        url = url.set(drivername="postgresql+psycopg")
    try:
        return sa.create_engine(url)
    except (ImportError, sa.exc.ArgumentError) as exc:
        raise InvalidArgument(f"--from {uri}: cannot open this database ({exc})") from None


def _sqlite_folder(uri: str) -> Path | None:
    url = sa.engine.make_url(uri)
    if url.drivername.startswith("sqlite") and url.database:
        return Path(url.database).resolve().parent
    return None
