"""The tracking service: what the fluent API and the CLI call; no SQL, no HTTP here.

:class:`TrackingClient` is the one entry point; a run's artifacts are logged and read by
:mod:`segue.tracking.artifacts` and search results become a DataFrame in
:mod:`segue.tracking.frames`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segue.artifacts import ContentStore, FsspecBackend
from segue.config import Settings, settings
from segue.errors import InvalidArgument
from segue.store import collector
from segue.store.engine import open_engine
from segue.store.entities import (
    RUN_STATUSES,
    ArtifactEntry,
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunInfo,
)
from segue.store.filters import Expr, OrderKey, parse_filter, parse_order_by
from segue.store.sessions import is_transient
from segue.store.tracking import SqlTrackingStore, TrackingStore
from segue.tracking import environment, validation
from segue.tracking.artifacts import RunArtifacts
from segue.tracking.writer import MetricsLost, MetricWriter

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_EXPERIMENT = "Default"
MAX_RESULTS = 50_000

log = logging.getLogger(__name__)


class TrackingClient:
    """Create runs and log to them; read and search what was logged.

    Args:
        store: the metadata store.
        artifacts: the content-addressed artifact store.
        config: heartbeat and flush settings.
        clock: wall-clock seconds, injectable for tests.
    """

    def __init__(
        self,
        store: TrackingStore,
        artifacts: ContentStore,
        config: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.config = config
        self._clock = clock
        self._last_reap = -math.inf
        #: Logs and reads the runs' artifacts; the ``*_artifact*`` methods below call it.
        self.run_artifacts = RunArtifacts(store, artifacts)
        self.writer = MetricWriter(
            store,
            flush_interval=config.flush_interval,
            heartbeat_interval=config.heartbeat_interval,
            max_backlog=config.metric_backlog,
            when_full=config.metric_backlog_policy,
            clock=clock,
        )

    @property
    def artifact_uri(self) -> str:
        """The artifact root this client reads and writes: model files, and the prediction and
        feedback logs of the servers it configures (see :func:`artifact_root`)."""
        return self.artifacts.backend.url

    def _now(self) -> int:
        return int(self._clock() * 1000)

    # -- runs ----------------------------------------------------------------------------

    def create_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        source: environment.Source | None = None,
        *,
        system_tags: Mapping[str, str] | None = None,
    ) -> RunInfo:
        """Start a run. ``source`` is where its code comes from (default: this process's git
        commit and entry point); an import gives the source of the run it copies.

        ``tags`` are the user's and may not start with ``segue.`` (InvalidArgument);
        ``system_tags`` are Segue's own (the pipeline runtime's), written as they are."""
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise InvalidArgument(f"run name must be a non-empty string, got {name!r}")
        clean_tags = {
            validation.user_tag_key(k): validation.tag_value(k, v) for k, v in (tags or {}).items()
        }
        clean_tags.update(system_tags or {})
        clean_params = self._clean_params(params or {})
        # Writers reap (readers never write): runs whose process died stop looking live. At
        # most once a heartbeat interval: a sweep starting thousands of runs needs no more.
        now = self._now()
        if now - self._last_reap >= self.config.heartbeat_interval * 1000:
            self.reap_dead_runs()
            self._last_reap = now
        experiment = experiment or DEFAULT_EXPERIMENT
        open_run = getattr(self.store, "open_run", None)
        # Validate before creating the experiment, so a refused run leaves nothing behind.
        # A store that starts a run in one transaction (open_run) creates it there.
        exp = None if open_run else self.store.get_or_create_experiment(experiment)
        digest, packages = environment.packages()
        if open_run is None:
            self.store.record_environment(digest, packages)
        source = environment.source() if source is None else source
        info = RunInfo(
            id=uuid.uuid4().hex,
            experiment_id=exp.id if exp else 0,
            experiment_name=exp.name if exp else experiment,
            name=name or _run_name(),
            status="RUNNING",
            start_time=now,
            end_time=None,
            heartbeat_at=now,
            user=environment.user(),
            host=environment.host(),
            python_version=environment.python_version(),
            parent_run_id=parent_run_id,
            source_commit=source.commit,
            source_dirty=source.dirty,
            entry_point=source.entry_point,
            environment_digest=digest,
        )
        if open_run is not None:
            info = open_run(experiment, info, clean_tags, clean_params, packages)
        else:
            self.store.create_run(info, clean_tags)
            if clean_params:
                self.store.log_batch(info.id, params=clean_params)
        self.writer.watch(info.id)
        return info

    def end_run(
        self, run_id: str, status: str = "FINISHED", error: str | None = None
    ) -> tuple[str, int]:
        """Flush the run's metrics and record its final status; return it and the end time.

        The status is written even when the flush fails, and before the run stops sending
        heartbeats, so the reaper never mistakes an ending run for a dead one. Points that
        could not be written for good (:class:`~segue.tracking.writer.MetricsLost`) turn a
        FINISHED run into FAILED, with the reason recorded, and the error is raised once the
        status is stored. Points held back by a transient error stay queued for the writer.
        """
        if status not in RUN_STATUSES or status == "RUNNING":
            raise InvalidArgument(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
        finish_run = getattr(self.store, "finish_run", None)
        if finish_run is not None:
            # The common case in one transaction: the last points and the status together.
            end_time = self._now()
            try:
                finished = self.writer.finish(
                    run_id, lambda points: finish_run(run_id, points, status, end_time, error=error)
                )
            except Exception as exc:
                # The points are queued again: the steps below write (or report) them one by
                # one, as a store without finish_run would.
                log.debug("ending run %s in one transaction failed: %s", run_id, exc)
                finished = False
            if finished:
                self.writer.unwatch(run_id)
                return status, end_time
        lost: MetricsLost | None = None
        try:
            self.writer.flush(run_id)
        except MetricsLost as exc:
            lost = exc
            if status == "FINISHED":
                status = "FAILED"
            error = f"{error}\n{exc}" if error else str(exc)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning(
                "metrics of run %s are still queued: %s; the writer keeps trying", run_id, exc
            )
        end_time = self._now()
        try:
            self.store.set_run_status(run_id, status, end_time, error=error)
        finally:
            self.writer.unwatch(run_id)
        if lost is not None:
            raise lost
        return status, end_time

    def get_run(self, run_id: str) -> Run:
        """The stored run; a read, so it never writes (dead runs are reaped by writers)."""
        return self.store.get_run(run_id)

    def reap_dead_runs(self) -> list[str]:
        """Mark runs whose process stopped sending heartbeats as KILLED.

        Called when a run is created and by ``segue runs list``; never by reads, which on
        SQLite would then need the write lock.
        """
        timeout_ms = int(self.config.heartbeat_timeout * 1000)
        return self.store.reap_stale_runs(self._now(), timeout_ms)

    def delete_run(self, run_id: str) -> None:
        self.store.set_run_lifecycle(run_id, "deleted")

    def restore_run(self, run_id: str) -> None:
        self.store.set_run_lifecycle(run_id, "active")

    # -- params, metrics, tags -----------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        if params:
            self.store.log_batch(run_id, params=self._clean_params(params))

    @staticmethod
    def _clean_params(params: Mapping[str, Any]) -> dict[str, str]:
        if not isinstance(params, Mapping):
            raise InvalidArgument(f"params must be a dict, got {type(params).__name__}")
        return {
            validation.check_key("param", k): validation.param_value(k, v)
            for k, v in params.items()
        }

    def log_metrics(self, run_id: str, points: Sequence[Metric]) -> None:
        """Queue metric points; they reach the store within ``flush_interval`` seconds."""
        self.writer.add(run_id, points)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set a run's tags; none may start with ``segue.`` (InvalidArgument)."""
        clean = {validation.user_tag_key(k): validation.tag_value(k, v) for k, v in tags.items()}
        if clean:
            self.store.log_batch(run_id, tags=clean)

    def set_system_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Segue's own ``segue.*`` tags (the pipeline runtime's), not for users."""
        if tags:
            self.store.log_batch(run_id, tags=dict(tags))

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        self.writer.flush(run_id)
        return self.store.get_metric_history(run_id, key)

    def flush(self) -> None:
        """Write every buffered metric point, and send the run starts and ends a remote
        store holds back; raise what could not be written."""
        send_queued = getattr(self.store, "flush", None)  # a remote store's queued runs
        try:
            self.writer.flush()
        finally:
            if send_queued is not None:
                send_queued()

    # -- artifacts -----------------------------------------------------------------------

    def log_artifact(
        self, run_id: str, path: str | os.PathLike[str], name: str | None = None
    ) -> str:
        return self.run_artifacts.log_artifact(run_id, path, name)

    def log_artifacts(
        self, run_id: str, directory: str | os.PathLike[str], prefix: str | None = None
    ) -> list[str]:
        # Links skipped are warned about at the caller of the run's method (ActiveRun, fluent).
        return self.run_artifacts.log_artifacts(run_id, directory, prefix, stacklevel=3)

    def log_bytes(self, run_id: str, data: bytes, name: str) -> str:
        return self.run_artifacts.log_bytes(run_id, data, name)

    def log_dict(self, run_id: str, data: Any, name: str) -> str:
        return self.run_artifacts.log_dict(run_id, data, name)

    def log_figure(self, run_id: str, figure: Any, name: str) -> str:
        return self.run_artifacts.log_figure(run_id, figure, name)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        return self.run_artifacts.list_artifacts(run_id, prefix)

    def read_artifact(self, run_id: str, path: str) -> bytes:
        """The artifact's bytes, verified against the hash recorded when it was logged."""
        return self.run_artifacts.read_artifact(run_id, path)

    def download_artifact(self, run_id: str, path: str, dest: str | os.PathLike[str]) -> Path:
        """Copy one artifact to ``dest``, or every artifact under the folder ``path`` into it."""
        return self.run_artifacts.download_artifact(run_id, path, dest)

    # -- data sets -----------------------------------------------------------------------

    def log_dataset(self, run_id: str, data: Any, name: str, context: str = "train") -> Dataset:
        validation.check_key("dataset", name)
        validation.check_key("dataset context", context)
        # pandas is imported here, not at the top, so a server that never profiles data skips it.
        from segue.data.frames import dataset_digest, dataset_schema, to_frame
        from segue.data.profile import profile_frame

        frame = to_frame(data)
        dataset = Dataset(
            digest=dataset_digest(frame),
            n_rows=len(frame),
            n_columns=frame.shape[1],
            schema=dataset_schema(frame),
            profile=profile_frame(frame),
        )
        self.store.log_dataset(run_id, name, context, dataset)
        return dataset

    def list_datasets(self, run_id: str) -> list[DatasetInput]:
        return self.store.list_datasets(run_id)

    # -- search --------------------------------------------------------------------------

    def list_experiments(self) -> list[Experiment]:
        return self.store.list_experiments()

    def find_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Runs matching ``filter`` (see :func:`segue.search_runs`), as stored records."""
        search = self._search(experiment, filter, order_by, max_results)
        with collector.paused():  # the records made and freed: see collector's docstring
            return self.store.search_runs(*search, include_deleted)

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        include_deleted: bool = False,
    ) -> pd.DataFrame:
        """:meth:`find_runs` as a DataFrame (see :func:`segue.search_runs`)."""
        from segue.tracking.frames import runs_frame, table_frame

        search = self._search(experiment, filter, order_by, max_results)
        # A SQL store reads the runs as columns, with no record per run to make and free.
        search_table = getattr(self.store, "search_table", None)
        with collector.paused():  # the rows and the frame's lists: see its docstring
            if search_table is None:
                return runs_frame(self.store.search_runs(*search, include_deleted))
            return table_frame(search_table(*search, include_deleted))

    def _search(
        self,
        experiment: str | Sequence[str] | None,
        filter: str | None,
        order_by: Sequence[str] | str | None,
        max_results: int,
    ) -> tuple[list[int] | None, Expr | None, list[OrderKey], int]:
        """The store's arguments of a search: experiment ids, the parsed filter and order."""
        if isinstance(max_results, bool) or not isinstance(max_results, int):
            raise InvalidArgument(f"max_results must be an integer, got {max_results!r}")
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidArgument(f"max_results must be between 1 and {MAX_RESULTS}")
        where = parse_filter(filter)
        order = parse_order_by([order_by] if isinstance(order_by, str) else order_by)
        ids = None
        if experiment is not None:
            names = [experiment] if isinstance(experiment, str) else list(experiment)
            ids = [self.store.get_experiment(n).id for n in names]
        return ids, where, order, max_results


# Word lists read best as one line each.
_ADJECTIVES = "brisk calm bold keen warm swift quiet bright steady lucid eager noble".split()  # noqa: SIM905
_NOUNS = "heron otter lynx finch maple cedar falcon badger comet delta harbor willow".split()  # noqa: SIM905


def _run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(1, 999)}"


_client: TrackingClient | None = None
_client_lock = threading.Lock()


def get_client() -> TrackingClient:
    """The client for the current settings (``SEGUE_*`` variables), created on first use."""
    global _client
    current = settings()
    with _client_lock:
        if _client is None or _client.config != current:
            if _client is not None:
                _close(_client)
            _client = _remote_client(current) if current.remote else _local_client(current)
        return _client


def _local_client(config: Settings) -> TrackingClient:
    store = SqlTrackingStore(open_engine(config.store_uri))
    artifacts = ContentStore(FsspecBackend(artifact_root(store, config)))
    return TrackingClient(store, artifacts, config)


def _remote_client(config: Settings) -> TrackingClient:
    """Through the ``segue server`` at ``SEGUE_TRACKING_URI``: no database, no artifact store
    of its own. Dead runs are reaped at most once per heartbeat interval."""
    import segue.remote.fs  # noqa: F401  # registers segue+http(s):// with fsspec
    from segue.remote.http import RemoteSession
    from segue.remote.tracking import RestTrackingStore

    assert config.tracking_uri is not None  # config.remote says so
    session = RemoteSession(config.tracking_uri, config.token)
    store = RestTrackingStore(session, reap_interval=config.heartbeat_interval)
    artifacts = ContentStore(FsspecBackend(store.claim_artifact_root(config.artifact_uri)))
    return TrackingClient(store, artifacts, config)


_mismatches_warned: set[tuple[str, str]] = set()


def artifact_root(store: TrackingStore, config: Settings) -> str:
    """Where this client's artifacts live: the root recorded in the metadata store.

    The first client records its own (``SEGUE_ARTIFACT_URI`` or ``$SEGUE_HOME/artifacts``),
    so clients elsewhere find the same blobs. ``SEGUE_ARTIFACT_URI`` overrides the recorded
    root; when they differ, that is warned about once per process.
    """
    recorded = store.claim_artifact_root(config.artifact_uri)
    if not config.artifact_uri_set:
        return recorded
    if (
        recorded != config.artifact_uri
        and (recorded, config.artifact_uri) not in _mismatches_warned
    ):
        _mismatches_warned.add((recorded, config.artifact_uri))
        log.warning(
            "SEGUE_ARTIFACT_URI=%s differs from the artifact root %s recorded in the metadata "
            "store; using SEGUE_ARTIFACT_URI, so clients without it will not see these artifacts",
            config.artifact_uri,
            recorded,
        )
    return config.artifact_uri


def close_client() -> None:
    """Flush and stop the writer of the shared client, if one was created; never create one."""
    with _client_lock:
        if _client is not None:
            _close(_client)


def _close(client: TrackingClient) -> None:
    client.writer.close()
    close = getattr(client.store, "close", None)  # a remote store's connections
    if close is not None:
        close()
