"""Write an MLflow store's records into Segue, idempotently and resumably.

Each MLflow run becomes a Segue run of the experiment of the same name, with MLflow's run id
where it is free (MLflow's ids and Segue's are both 32 hex digits), and the tags
``mlflow.run_id``, ``mlflow.experiment_id`` and ``mlflow.import.source``. The tag
``mlflow.import.state`` says how far its copy got: ``created`` (info, tags, params: one
transaction for a batch of runs), then ``done`` once its data sets and artifacts are copied
and every metric point is written, in one transaction with the state. Before writing, the
import looks the MLflow ids up among the experiment's runs: a ``done`` run is skipped, an
unfinished one is taken up where it stopped, so a second import adds only what is new and an
interrupted one resumes.

Registered model versions become Segue versions through :mod:`segue.models.mlflow_import`
(the flavors it loads); the others are recorded as skipped with the reason.
"""

from __future__ import annotations

import gc
import json
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from segue.errors import AlreadyExists, InvalidArgument, NotFound, SegueError
from segue.importers.mlflow.records import (
    Columns,
    MlflowDatasetInput,
    MlflowExperiment,
    MlflowModel,
    MlflowRunRecord,
    MlflowSource,
    MlflowVersion,
    Unreadable,
)
from segue.importers.mlflow.summary import ImportSummary
from segue.models.package import MANIFEST
from segue.registry.service import Registry
from segue.store.entities import (
    RUN_STATUSES,
    ArtifactEntry,
    Dataset,
    MetricHistory,
    Run,
    RunInfo,
)
from segue.store.tracking import SqlTrackingStore
from segue.tracking import validation
from segue.tracking.client import MAX_RESULTS, TrackingClient

__all__ = ["FINGERPRINT_TAG", "STATE_TAG", "ImportSummary", "import_store"]

RUN_ID_TAG = "mlflow.run_id"
EXPERIMENT_ID_TAG = "mlflow.experiment_id"
SOURCE_TAG = "mlflow.import.source"
STATE_TAG = "mlflow.import.state"
FINGERPRINT_TAG = "mlflow.import.fingerprint"
#: Runs created in one transaction, and whose metrics are read in one query.
BATCH = 50
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
#: Where tag values too long for Segue's tag index are kept whole, as artifacts of the run.
LONG_TAGS = "mlflow-tags"
#: PostgreSQL's btree holds index rows up to 2,704 bytes: (key, value) of a tag must fit.
_TAG_BYTES = 2_400
_TAG_CUT = 2_000

#: ``progress(phase, done, total)``: ``created`` as batches of runs are created (before their
#: data), ``runs`` as runs are filled, ``versions`` as model versions are copied.
Progress = Callable[[str, int, int], None]


def import_store(
    source: MlflowSource,
    registry: Registry,
    *,
    progress: Progress | None = None,
    models: bool = True,
    batch: int = BATCH,
) -> ImportSummary:
    """Copy everything ``source`` holds into the store ``registry`` writes to.

    Args:
        source: an opened MLflow store (see :func:`segue.importers.mlflow.open_source`).
        registry: the Segue registry (and, through it, tracking client) to write into.
        progress: called as runs and versions are copied.
        models: copy registered models, versions and aliases too.
        batch: runs created in one transaction (and whose metrics are read in one query).

    Returns what was imported, found already imported and skipped (with reasons).

    Example::

        >>> summary = import_store(open_source("sqlite:///mlflow.db"), segue.get_registry())
        >>> summary.runs_new
        120
    """
    copier = _Copier(source, registry, progress or (lambda phase, done, total: None), batch)
    with tempfile.TemporaryDirectory(prefix="segue-import-") as scratch:
        copier.scratch = scratch
        copier.copy_runs()
        if models:
            copier.copy_models()
    return copier.summary


class _Copier:
    def __init__(
        self, source: MlflowSource, registry: Registry, progress: Progress, batch: int
    ) -> None:
        self.source = source
        self.batch = batch
        #: A folder for files downloaded from the source, removed when the import ends.
        self.scratch = ""
        self.registry = registry
        self.tracking: TrackingClient = registry.tracking
        store = self.tracking.store
        if not isinstance(store, SqlTrackingStore):
            # Runs are created whole (ids, times, status) and metrics written in columns:
            # what only the metadata database takes, not a server's API.
            raise InvalidArgument(
                "segue import writes to the metadata database itself: run it where "
                "SEGUE_STORE_URI reaches the database, not through SEGUE_TRACKING_URI"
            )
        self.store = store
        self.progress = progress
        self.summary = ImportSummary(source.location)
        #: MLflow run id -> Segue run id, for parents and model versions.
        self.ids: dict[str, str] = {}
        #: MLflow ids of imported runs that changed in MLflow since.
        self._changed: set[str] = set()

    # -- runs ----------------------------------------------------------------------------

    def copy_runs(self) -> None:
        plan: list[tuple[MlflowExperiment, int, list[MlflowRunRecord], dict[str, Run]]] = []
        for experiment in self.source.experiments():
            segue_id = self._experiment(experiment)
            if segue_id is None:
                for run in self.source.runs(experiment):
                    what = f"run {run.id}"
                    self.summary.skip("run", what, f"experiment {experiment.name!r} not imported")
                continue
            plan.append(
                (experiment, segue_id, self.source.runs(experiment), self._imported(segue_id))
            )
        total = sum(len(runs) for _, _, runs, _ in plan)
        unfinished: list[MlflowRunRecord] = []
        seen = 0
        for experiment, segue_id, runs, imported in plan:
            for start in range(0, len(runs), self.batch):
                batch = runs[start : start + self.batch]
                unfinished += self._create_batch(experiment, segue_id, batch, imported)
                seen += len(batch)
                self.progress("created", seen, total)
        self._fill(unfinished, total)

    def _create_batch(
        self,
        experiment: MlflowExperiment,
        segue_experiment: int,
        batch: list[MlflowRunRecord],
        imported: dict[str, Run],
    ) -> list[MlflowRunRecord]:
        """Create the batch's new runs in one transaction; the runs still to fill."""
        new: list[tuple[RunInfo, dict[str, str], dict[str, str]]] = []
        unfinished = []
        for record in batch:
            existing = imported.get(record.id)
            if existing is None:
                new.append(self._new_run(experiment, segue_experiment, record))
                unfinished.append(record)
                continue
            self.ids[record.id] = existing.id
            if existing.data.tags[STATE_TAG] != "done":
                self.summary.runs_resumed += 1
                unfinished.append(record)
            elif existing.data.tags.get(FINGERPRINT_TAG) == record.fingerprint:
                self.summary.runs_present += 1
            else:  # changed in MLflow since it was imported: brought up to date
                self._changed.add(record.id)
                self.summary.runs_updated += 1
                unfinished.append(record)
        if new:
            self._create(new)
            self.summary.runs_new += len(new)
        return unfinished

    def _fill(self, runs: list[MlflowRunRecord], total: int) -> None:
        """Copy the runs' data sets, artifacts and metrics; the next group's metrics are read
        (in a thread) while this group's are written."""
        done = total - len(runs)
        self.progress("runs", done, total)
        if not runs:
            return
        # A small first group, so that writing starts while the next group is read.
        first = max(1, self.batch // 10)
        groups = [runs[:first]]
        groups += [runs[i : i + self.batch] for i in range(first, len(runs), self.batch)]
        # Millions of points make millions of tuples: the cyclic collector would walk them
        # again and again (about 15% of the time) and finds no cycles among them.
        paused = gc.isenabled()
        gc.disable()
        try:
            self._fill_groups(groups, done, total)
        finally:
            if paused:
                gc.enable()

    def _fill_groups(self, groups: list[list[MlflowRunRecord]], done: int, total: int) -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="mlflow-metrics") as reader:
            pending = reader.submit(self.source.metrics, groups[0])
            for i, group in enumerate(groups):
                points = pending.result()
                if i + 1 < len(groups):
                    pending = reader.submit(self.source.metrics, groups[i + 1])
                for record in group:
                    self._finish(record, self.ids[record.id], points.get(record.id, {}))
                done += len(group)
                self.progress("runs", done, total)

    def _finish(self, record: MlflowRunRecord, run_id: str, columns: dict[str, Columns]) -> None:
        # Data sets and artifacts are upserts, so redoing them after an interruption is
        # harmless; metrics are appended, so they go with the state ``done`` in one
        # transaction: written once, however often the import is started.
        self._datasets(record, run_id)
        self._artifacts(record, run_id)
        if record.id in self._changed:
            self._update(record, run_id, columns)
        else:
            self._metrics(record, run_id, columns)

    def _update(self, record: MlflowRunRecord, run_id: str, columns: dict[str, Columns]) -> None:
        """Bring an imported run up to what MLflow holds now: status, end time, lifecycle,
        tags, params it lacks and the metric points it lacks (MLflow's points are appended to,
        never changed)."""
        run = self.store.get_run(run_id)
        status, reason = _status(record)
        if (status, record.end_time) != (run.info.status, run.info.end_time):
            self.store.set_run_status(run_id, status, record.end_time, reason=reason)
        stage = "deleted" if record.lifecycle_stage == "deleted" else "active"
        if stage != run.info.lifecycle_stage:
            self.store.set_run_lifecycle(run_id, stage)
        what = f"run {record.id}"
        tags = self._tags(record, report=False)
        params = self._clean("param", what, record.params, validation.param_value)
        new_params = {k: v for k, v in params.items() if k not in run.data.params}
        missing = {
            key: _missing(self.store.get_metric_columns(run_id, key), points)
            for key, points in columns.items()
        }
        extra = {**tags, FINGERPRINT_TAG: record.fingerprint}
        self._metrics(record, run_id, missing, params=new_params, tags=extra)

    def _experiment(self, experiment: MlflowExperiment) -> int | None:
        try:
            found = self.store.get_experiment(experiment.name)
            self.summary.experiments_present += 1
            return found.id
        except NotFound:
            pass
        try:
            created = self.store.create_experiment(
                experiment.name, experiment.tags.get("mlflow.note.content") or None
            )
        except SegueError as exc:
            self.summary.skip("experiment", f"experiment {experiment.name!r}", str(exc))
            return None
        self.summary.experiments_new += 1
        return created.id

    def _imported(self, experiment_id: int) -> dict[str, Run]:
        """The experiment's runs already copied from MLflow, by MLflow run id."""
        found: dict[str, Run] = {}
        offset = 0
        while True:
            page = self.store.search_runs(
                [experiment_id], None, [], MAX_RESULTS, include_deleted=True, offset=offset
            )
            for run in page:
                mlflow_id = run.data.tags.get(RUN_ID_TAG)
                if mlflow_id and STATE_TAG in run.data.tags:
                    found[mlflow_id] = run
            if len(page) < MAX_RESULTS:
                return found
            offset += len(page)

    def _new_run(
        self, experiment: MlflowExperiment, segue_experiment: int, record: MlflowRunRecord
    ) -> tuple[RunInfo, dict[str, str], dict[str, str]]:
        what = f"run {record.id}"
        tags = self._tags(record, report=True)
        params = self._clean("param", what, record.params, validation.param_value)
        tags.update(
            {
                RUN_ID_TAG: record.id,
                EXPERIMENT_ID_TAG: record.experiment_id,
                SOURCE_TAG: self.source.location,
                STATE_TAG: "created",
                FINGERPRINT_TAG: record.fingerprint,
            }
        )
        status, reason = _status(record)
        start = record.start_time or experiment.creation_time or 0
        parent = self.ids.get(record.parent_id or "")
        info = RunInfo(
            id=self._free_id(record.id),
            experiment_id=segue_experiment,
            experiment_name=experiment.name,
            name=record.name[:250] or record.id,
            status=status,
            start_time=start,
            end_time=record.end_time if reason is None else (record.end_time or start),
            heartbeat_at=record.end_time or start,
            user=record.user or tags.get("mlflow.user") or "",
            host="",
            python_version="",
            lifecycle_stage="deleted"
            if "deleted" in (record.lifecycle_stage, experiment.lifecycle_stage)
            else "active",
            parent_run_id=parent,
            source_commit=(tags.get("mlflow.source.git.commit") or None),
            entry_point=(tags.get("mlflow.source.name") or None),
            status_reason=reason,
        )
        self.ids[record.id] = info.id
        return info, tags, params

    def _free_id(self, mlflow_id: str) -> str:
        """MLflow's run id when it is a Segue id no run has, else a new one."""
        if _HEX_ID.match(mlflow_id):
            try:
                self.store.resolve_run_id(mlflow_id)
            except NotFound:
                return mlflow_id
        return uuid.uuid4().hex

    def _create(self, runs: list[tuple[RunInfo, dict[str, str], dict[str, str]]]) -> None:
        self.store.create_runs(runs)

    def _tags(self, record: MlflowRunRecord, *, report: bool) -> dict[str, str]:
        """The run's tags as Segue keeps them. A value too long for the tag index (MLflow
        takes 8,000 characters, PostgreSQL indexes about 2,700 bytes) is cut short; the
        whole value is kept as the artifact ``mlflow-tags/<key>`` (see :meth:`_artifacts`)."""
        tags = self._clean("tag", f"run {record.id}", record.tags, _tag)
        for key, value in tags.items():
            if _too_long(key, value):
                whole = f"{LONG_TAGS}/{key}"
                tags[key] = _cut(value) + f" … (whole value: artifact {whole})"
                if report:
                    self.summary.skip(
                        "tag",
                        f"tag {key!r} of run {record.id}",
                        f"{len(value):,} characters: cut short, kept whole as artifact {whole}",
                    )
        return tags

    def _clean(
        self, kind: str, what: str, values: Mapping[str, str], check: Callable[[str, Any], str]
    ) -> dict[str, str]:
        out = {}
        for key, value in values.items():
            try:
                validation.check_key(kind, key)
                if validation.is_reserved(key):
                    raise SegueError(f"{kind} {key!r} is in Segue's reserved namespace")
                out[key] = check(key, value)
            except SegueError as exc:
                self.summary.skip(kind, f"{kind} {key!r} of {what}", str(exc))
        return out

    def _metrics(
        self,
        record: MlflowRunRecord,
        run_id: str,
        columns: dict[str, Columns],
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        clean: dict[str, Columns] = {}
        for key, cols in columns.items():
            try:
                validation.check_key("metric", key)
            except SegueError as exc:
                self.summary.skip("metric", f"metric {key!r} of run {record.id}", str(exc))
                continue
            if cols[0]:
                clean[key] = cols
                self.summary.metric_points += len(cols[0])
        state = {**(tags or {}), STATE_TAG: "done"}
        self.store.log_metric_columns(run_id, clean, params=params, tags=state)

    def _datasets(self, record: MlflowRunRecord, run_id: str) -> None:
        for found in self.source.datasets(record):
            try:
                validation.check_key("dataset", found.name)
                validation.check_key("dataset context", found.context)
                self.store.log_dataset(run_id, found.name, found.context, _dataset(found))
                self.summary.datasets += 1
            except SegueError as exc:
                self.summary.skip(
                    "dataset", f"data set {found.name!r} of run {record.id}", str(exc)
                )

    def _artifacts(self, record: MlflowRunRecord, run_id: str) -> None:
        # Sources download into the scratch folder only what is not a local file already.
        scratch = Path(self.scratch) / record.id
        try:
            try:
                files = self.source.artifacts(record, scratch)
            except Unreadable as exc:
                self.summary.skip("artifact", f"artifacts of run {record.id}", str(exc))
                files = []
            named: list[tuple[str, Path]] = []
            for name, file in files:
                try:
                    named.append((validation.artifact_path(name), file))
                except SegueError as exc:
                    what = f"artifact {name!r} of run {record.id}"
                    self.summary.skip("artifact", what, str(exc))
            stored = self.tracking.artifacts.put_files([file for _, file in named]) if named else []
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
        entries = [
            ArtifactEntry(name, digest, size)
            for (name, _), (digest, size) in zip(named, stored, strict=True)
        ]
        for key, value in record.tags.items():
            if _too_long(key, value):
                try:
                    name = validation.artifact_path(f"{LONG_TAGS}/{key}")
                except SegueError:
                    continue  # a key Segue refuses is skipped as a tag already
                digest, size = self.tracking.artifacts.put_bytes(value.encode())
                entries.append(ArtifactEntry(name, digest, size))
        if not entries:
            return
        self.store.record_artifacts(run_id, entries)
        self.summary.artifacts += len(entries)
        self.summary.artifact_bytes += sum(e.size for e in entries)

    # -- registered models ---------------------------------------------------------------

    def copy_models(self) -> None:
        models = self.source.models()
        total = sum(len(m.versions) for m in models)
        done = 0
        for model in models:
            self._model(model)
            numbers: dict[int, int] = {}
            for version in model.versions:
                number = self._version(model, version)
                if number is not None:
                    numbers[version.version] = number
                done += 1
                self.progress("versions", done, total)
            self._aliases(model, numbers)

    def _model(self, model: MlflowModel) -> None:
        """The registered model, with MLflow's description and tags, even when none of its
        versions can be imported (they are recorded as skipped)."""
        try:
            self.registry.get_model(model.name)
            self.summary.models_present += 1
            return
        except NotFound:
            pass
        except SegueError as exc:
            self.summary.skip("model", f"model {model.name!r}", str(exc))
            return
        tags = self._clean("tag", f"model {model.name!r}", model.tags, _tag)
        try:
            self.registry.store.create_model(
                model.name, str(self.registry.actor), model.description, tags
            )
        except AlreadyExists:  # created meanwhile by someone else: theirs stays
            self.summary.models_present += 1
        except SegueError as exc:
            self.summary.skip("model", f"model {model.name!r}", str(exc))
        else:
            self.summary.models_new += 1

    def _version(self, model: MlflowModel, version: MlflowVersion) -> int | None:
        what = f"{model.name} version {version.version}"
        path = f"mlflow-models/v{version.version}"
        try:
            existing = {
                (v.run_id, v.artifact_path): v for v in self.registry.list_versions(model.name)
            }
        except NotFound:
            existing = {}
        except SegueError as exc:
            self.summary.skip("version", what, str(exc))
            return None
        run_id = self.ids.get(version.run_id or "")
        if run_id is None:
            self.summary.skip("version", what, f"its run {version.run_id} was not imported")
            return None
        found = existing.get((run_id, path))
        if found is not None:
            self.summary.versions_present += 1
            return found.version
        description = f"MLflow {model.name} version {version.version}" + (
            f": {version.description}" if version.description else ""
        )
        try:
            if not self.store.list_artifacts(run_id, f"{path}/{MANIFEST}"):
                self._log_model(version, run_id, path)
            created = self.registry.register(f"runs:/{run_id}/{path}", model.name, description)
        except (SegueError, Unreadable) as exc:
            self.summary.skip("version", what, str(exc))
            return None
        self.summary.versions_new += 1
        return created.version

    def _log_model(self, version: MlflowVersion, run_id: str, path: str) -> None:
        from segue.models.mlflow_import import read_mlflow_model

        with tempfile.TemporaryDirectory(prefix="segue-import-") as scratch:
            folder = self.source.model_folder(version, Path(scratch))
            loaded = read_mlflow_model(folder)
            self.registry.log_model(run_id, loaded.model, path, input_example=loaded.input_example)

    def _aliases(self, model: MlflowModel, numbers: dict[int, int]) -> None:
        wanted = dict(model.aliases)
        for version in model.versions:  # MLflow 2's stages become aliases of the same name
            if version.stage and version.stage.lower() not in ("none", "archived"):
                wanted.setdefault(version.stage.lower(), version.version)
        if not wanted:
            return
        try:
            current = self.registry.get_model(model.name).aliases
        except SegueError:
            current = {}
        for alias, mlflow_version in sorted(wanted.items()):
            what = f"alias {model.name}@{alias}"
            number = numbers.get(mlflow_version)
            if number is None:
                self.summary.skip("alias", what, f"version {mlflow_version} was not imported")
            elif current.get(alias) == number:
                self.summary.aliases_present += 1
            elif alias in current:
                self.summary.skip(
                    "alias",
                    what,
                    f"already points at version {current[alias]} in Segue; left as is",
                )
            else:
                try:
                    self.registry.set_alias(model.name, alias, number, expected=None)
                except SegueError as exc:
                    self.summary.skip("alias", what, str(exc))
                    continue
                self.summary.aliases_new += 1


def _status(record: MlflowRunRecord) -> tuple[str, str | None]:
    """Segue's status for the run and, when it differs from MLflow's, why."""
    if record.status in RUN_STATUSES and record.status != "RUNNING":
        return record.status, None
    # A run still RUNNING in MLflow has no process here to send heartbeats.
    return "KILLED", f"was {record.status} in MLflow when imported"


def _missing(have: MetricHistory, columns: Columns) -> Columns:
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


def _too_long(key: str, value: str) -> bool:
    return len(key.encode()) + len(value.encode()) > _TAG_BYTES


def _cut(value: str) -> str:
    return value.encode()[:_TAG_CUT].decode(errors="ignore")


def _tag(key: str, value: Any) -> str:
    return validation.tag_value(key, value)


def _dataset(found: MlflowDatasetInput) -> Dataset:
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
