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
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from segue.errors import InvalidArgument, NotFound, SegueError
from segue.importers.mlflow import convert
from segue.importers.mlflow.records import (
    Columns,
    MlflowExperiment,
    MlflowRunRecord,
    MlflowSource,
    Unreadable,
)
from segue.importers.mlflow.summary import ImportSummary
from segue.importers.mlflow.versions import ModelCopier
from segue.registry.service import Registry
from segue.store.entities import (
    ArtifactEntry,
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
        report = progress or (lambda phase, done, total: None)
        ModelCopier(source, registry, copier.summary, copier.ids, report).copy_models()
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
        status, reason = convert.status(record)
        if (status, record.end_time) != (run.info.status, run.info.end_time):
            self.store.set_run_status(run_id, status, record.end_time, reason=reason)
        stage = "deleted" if record.lifecycle_stage == "deleted" else "active"
        if stage != run.info.lifecycle_stage:
            self.store.set_run_lifecycle(run_id, stage)
        what = f"run {record.id}"
        tags = self._tags(record)
        params = convert.clean(self.summary, "param", what, record.params, validation.param_value)
        new_params = {k: v for k, v in params.items() if k not in run.data.params}
        missing = {
            key: convert.missing_points(self.store.get_metric_columns(run_id, key), points)
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
        tags = self._tags(record)
        params = convert.clean(self.summary, "param", what, record.params, validation.param_value)
        tags.update(
            {
                RUN_ID_TAG: record.id,
                EXPERIMENT_ID_TAG: record.experiment_id,
                SOURCE_TAG: self.source.location,
                STATE_TAG: "created",
                FINGERPRINT_TAG: record.fingerprint,
            }
        )
        status, reason = convert.status(record)
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

    def _tags(self, record: MlflowRunRecord) -> dict[str, str]:
        """The run's tags as Segue keeps them: whole, however long (MLflow takes 8,000
        characters; Segue's stores take any length, PostgreSQL's too since migration 0009)."""
        return convert.clean(self.summary, "tag", f"run {record.id}", record.tags, convert.tag)

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
                self.store.log_dataset(run_id, found.name, found.context, convert.dataset(found))
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
        if not entries:
            return
        self.store.record_artifacts(run_id, entries)
        self.summary.artifacts += len(entries)
        self.summary.artifact_bytes += sum(e.size for e in entries)
