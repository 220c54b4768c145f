"""The tracking store over HTTP: :class:`RestTrackingStore` speaks to ``segue server``.

It implements :class:`~segue.store.tracking.TrackingStore` method by method over the
``/api/v1`` tracking routes, so :class:`~segue.tracking.client.TrackingClient` works the same
against a remote server as against a database.

What cannot change once stored is kept client-side: an experiment by name once seen, and the
environments already recorded (by digest). The first run is started with one request; later
starts and ends are queued for a background sender (:mod:`segue.remote.run_sender`), which
carries many in one request, so a sweep of short runs is not bound by round trips. Reaping dead runs
(which the tracking client asks for at every run start) is sent at most once per
``reap_interval`` seconds of the caller's clock. Metric points travel grouped by key, up to
:data:`POINTS_PER_REQUEST` points a request.

Example:
    >>> store = RestTrackingStore(RemoteSession("http://127.0.0.1:5000", token))
    >>> store.get_or_create_experiment("churn").id
    1
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from segue.errors import InvalidArgument
from segue.remote.http import RemoteSession
from segue.remote.run_sender import POINTS_PER_REQUEST, RunSender, metric_points
from segue.store import codec
from segue.store.entities import (
    ArtifactEntry,
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunInfo,
)
from segue.store.filters import Expr, OrderKey, format_filter, format_order
from segue.store.run_data import MetricColumns, metric_columns

__all__ = ["POINTS_PER_REQUEST", "RestTrackingStore"]


class RestTrackingStore:
    """:class:`~segue.store.tracking.TrackingStore` through a ``segue server``.

    Args:
        session: the connection to the server (its token decides what is allowed).
        reap_interval: seconds between two reaps of dead runs actually sent; calls in between
            answer ``[]`` at once (the heartbeat interval is the natural value: a run cannot be
            found dead more often than heartbeats are due).
        background: queued run starts and ends are sent by a thread at once (else only when
            something is flushed or read; see :class:`~segue.remote.run_sender.RunSender`).

    Errors are the server's, raised as the same classes (``NotFound``, ``Conflict``, …);
    :class:`~segue.errors.ServerError` when the server fails or cannot be reached.
    """

    def __init__(
        self, session: RemoteSession, *, reap_interval: float = 5.0, background: bool = True
    ) -> None:
        self.session = session
        self._reap_interval_ms = int(reap_interval * 1000)
        self._lock = threading.Lock()
        self._experiments: dict[str, Experiment] = {}
        self._environments: set[str] = set()
        self._last_reap: int | None = None
        #: Sends the run starts and ends :meth:`open_run` and :meth:`finish_run` queue.
        self.sender = RunSender(session, background=background)
        #: Whether a run was started through the server: later starts can then be queued.
        self._sent_one = False

    # -- experiments ---------------------------------------------------------------------

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        data = self.session.call(
            "POST", "/experiments", json={"name": name, "description": description}
        )
        return self._remember(codec.load(Experiment, data))

    def get_experiment(self, name: str) -> Experiment:
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        if not isinstance(name, str) or not _fits_a_path(name):
            # A name a URL path cannot carry (a '/'): look it up in the list instead.
            found = [e for e in self.list_experiments() if e.name == name]
            if not found:
                return self._remember(self._get_by_path(name))  # the server's NotFound
            return self._remember(found[0])
        return self._remember(self._get_by_path(name))

    def _get_by_path(self, name: Any) -> Experiment:
        data = self.session.call("GET", f"/experiments/{quote(str(name), safe='')}")
        return codec.load(Experiment, data)

    def get_or_create_experiment(self, name: str) -> Experiment:
        cached = self._experiments.get(name) if isinstance(name, str) else None
        if cached is not None:
            return cached
        data = self.session.call("POST", "/experiments", json={"name": name, "get_or_create": True})
        return self._remember(codec.load(Experiment, data))

    def list_experiments(self) -> list[Experiment]:
        return [codec.load(Experiment, e) for e in self.session.call("GET", "/experiments")]

    def _remember(self, experiment: Experiment) -> Experiment:
        # Only counts change in an experiment, and only list_experiments reports them.
        with self._lock:
            self._experiments[experiment.name] = experiment
        return experiment

    # -- runs ----------------------------------------------------------------------------

    def create_run(self, info: RunInfo, tags: Mapping[str, str] | None = None) -> RunInfo:
        body = {"info": codec.dump(info), "tags": dict(tags or {}), **_system(tags)}
        return codec.load(RunInfo, self.session.call("POST", "/runs", json=body))

    def open_run(
        self,
        experiment: str,
        info: RunInfo,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        packages: Mapping[str, str] | None = None,
    ) -> RunInfo:
        """Start a run in ``experiment`` (created if new) with its tags and params; return
        ``info`` with the experiment's id and name.

        The first run waits for the server, so a token too weak or a server that cannot be
        reached fails here. Later ones are queued for the background sender and this returns
        at once; a refusal of one is raised by a later ``open_run`` or :meth:`flush`.
        """
        self.sender.raise_refused()
        exp = self.get_or_create_experiment(experiment)
        if info.environment_digest and packages is not None:
            self.record_environment(info.environment_digest, packages)
        info = dataclasses.replace(info, experiment_id=exp.id, experiment_name=exp.name)
        if self._sent_one:
            self.sender.open(info, tags or {}, params or {}, bool(_system(tags)))
            return info
        created = self.create_run(info, tags)
        if params:
            self.log_batch(info.id, params=params)
        self._sent_one = True
        return created

    def finish_run(
        self,
        run_id: str,
        metrics: Mapping[str, MetricColumns],
        status: str,
        end_time: int,
        *,
        error: str | None = None,
    ) -> None:
        """End a run with its last metric points (columns per key): queued for the
        background sender, like a start (see :meth:`open_run`). More points than one request
        carries are sent first, in requests of their own."""
        if sum(len(values) for values, _, _ in metrics.values()) > POINTS_PER_REQUEST:
            points = [
                Metric(key, value, step, stamp)
                for key, (values, steps, stamps) in metrics.items()
                for value, step, stamp in zip(values, steps, stamps, strict=True)
            ]
            self.log_batch(run_id, metrics=points)
            metrics = {}
        self.sender.end(run_id, metrics, status, end_time, error)

    def flush(self) -> None:
        """Send the queued run starts and ends now; raise what the server refused."""
        self.sender.drain()
        self.sender.raise_refused()

    def get_run(self, run_id: str) -> Run:
        return codec.load(Run, self.session.call("GET", _run(run_id)))

    def resolve_run_id(self, prefix: str) -> str:
        # Checked here too: an empty or '/'-holding prefix cannot be sent as a path.
        if not isinstance(prefix, str) or len(prefix) < 4 or not prefix.isalnum():
            raise InvalidArgument(
                f"run id {prefix!r}: give the id or at least its first 4 characters"
            )
        found = self.session.call("GET", f"/run-prefixes/{quote(prefix, safe='')}")
        return str(found["run_id"])

    def set_run_status(
        self,
        run_id: str,
        status: str,
        end_time: int | None,
        *,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        body = {"status": status, "end_time": end_time, "error": error, "reason": reason}
        self.session.call("POST", f"{_run(run_id)}/status", json=body)

    def set_run_lifecycle(self, run_id: str, stage: str) -> None:
        self.session.call("POST", f"{_run(run_id)}/lifecycle", json={"stage": stage})

    def heartbeat(self, run_ids: Sequence[str], now: int) -> None:
        if run_ids:
            body = {"run_ids": list(run_ids), "now": now}
            self.session.call("POST", "/runs/heartbeat", json=body)

    def reap_stale_runs(self, now: int, timeout_ms: int) -> list[str]:
        """Mark RUNNING runs whose heartbeat stopped ``timeout_ms`` ago as KILLED.

        Sent at most once per ``reap_interval`` of ``now`` (the caller's clock); a call
        sooner answers ``[]`` without a request.
        """
        with self._lock:
            last = self._last_reap
            if last is not None and 0 <= now - last < self._reap_interval_ms:
                return []
            self._last_reap = now
        body = {"now": now, "timeout_ms": timeout_ms}
        return [str(i) for i in self.session.call("POST", "/runs/reap", json=body)]

    # -- params, metrics, tags -----------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Record params, metrics and tags: one request, or one per
        :data:`POINTS_PER_REQUEST` points (params and tags go with the first, so a refused
        param stores nothing)."""
        path = f"{_run(run_id)}/batch"
        first: dict[str, Any] = {
            "params": dict(params or {}),
            "tags": dict(tags or {}),
            **_system(tags),
        }
        if len(metrics) <= POINTS_PER_REQUEST:
            self.session.call(
                "POST", path, json={**first, "metrics": metric_points(metric_columns(metrics))}
            )
            return
        for start in range(0, len(metrics), POINTS_PER_REQUEST):
            chunk = metric_points(metric_columns(metrics[start : start + POINTS_PER_REQUEST]))
            self.session.call("POST", path, json={**first, "metrics": chunk})
            first = {}

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        found = self.session.call("GET", f"{_run(run_id)}/metric-history", params={"key": key})
        return [
            Metric(key, float(value), step, timestamp)
            for value, step, timestamp in zip(
                found["value"], found["step"], found["timestamp"], strict=True
            )
        ]

    # -- environments, artifacts, data sets ----------------------------------------------

    def record_environment(self, digest: str, packages: Mapping[str, str]) -> None:
        """Record an environment once: a digest this store recorded or read is not sent
        again (a digest names its packages for good)."""
        if digest in self._environments:
            return
        path = f"/environments/{quote(digest, safe='')}"
        self.session.call("PUT", path, json={"packages": dict(packages)})
        with self._lock:
            self._environments.add(digest)

    def get_environment(self, digest: str) -> dict[str, str]:
        found = self.session.call("GET", f"/environments/{quote(digest, safe='')}")
        with self._lock:
            self._environments.add(digest)
        return {str(k): str(v) for k, v in found.items()}

    def record_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        if not entries:
            return
        body = {"entries": [{"path": e.path, "digest": e.digest, "size": e.size} for e in entries]}
        self.session.call("POST", f"{_run(run_id)}/artifacts", json=body)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        params = {"prefix": prefix} if prefix else None
        found = self.session.call("GET", f"{_run(run_id)}/artifacts", params=params)
        return [codec.load(ArtifactEntry, e) for e in found]

    def log_dataset(self, run_id: str, name: str, context: str, dataset: Dataset) -> None:
        body = {"name": name, "context": context, "dataset": codec.dump(dataset)}
        self.session.call("POST", f"{_run(run_id)}/datasets", json=body)

    def list_datasets(self, run_id: str) -> list[DatasetInput]:
        found = self.session.call("GET", f"{_run(run_id)}/datasets")
        return [codec.load(DatasetInput, d) for d in found]

    def search_runs(
        self,
        experiment_ids: Sequence[int] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        max_results: int,
        include_deleted: bool = False,
    ) -> list[Run]:
        body = {
            "experiment_ids": None if experiment_ids is None else list(experiment_ids),
            "filter": None if where is None else format_filter(where),
            "order_by": format_order(order_by),
            "max_results": max_results,
            "include_deleted": include_deleted,
        }
        return [codec.load(Run, r) for r in self.session.call("POST", "/runs/search", json=body)]

    # -- the store itself ----------------------------------------------------------------

    def close(self) -> None:
        """Send the queued run starts and ends, then close the connections to the server (a
        later call opens new ones)."""
        self.sender.close()
        self.session.close()

    def claim_artifact_root(self, uri: str) -> str:
        """The server's artifact store, as this client reaches it: ``segue+<server url>``
        (``uri``, a local root, is the server's business, not the client's)."""
        return "segue+" + self.session.base_url


def _run(run_id: str) -> str:
    return f"/runs/{quote(str(run_id), safe='')}"


def _fits_a_path(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..")


def _system(tags: Mapping[str, str] | None) -> dict[str, bool]:
    """The flag the server wants on a request carrying Segue's own ``segue.`` tags: only
    Segue code reaches the store with them (the client refuses them from users)."""
    # The prefix of segue.tracking.validation.RESERVED_TAG_PREFIX (a layer this one may not
    # import).
    return {"system": True} if any(key.startswith("segue.") for key in tags or {}) else {}
