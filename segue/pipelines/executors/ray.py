"""The Ray executor: each step a Ray task, outputs handed on by reference.

A step runs as a Ray task placed by its ``@segue.step(resources=...)`` (``num_cpus``, default
1; ``num_gpus``; ``memory`` in bytes). The task runs :func:`segue.pipelines.worker.run_task`,
as every executor does: the worker writes the step's outputs into its child run's artifacts
(content hashes, lineage, caching all as locally) and also returns the output values to Ray's
object store. A downstream task receives those values as object references (Ray hands the
task the values, zero-copy where it can), not by reading them back from the artifact store.
A model output is the exception, as with the local executor: the next step gets the loaded,
verified package. Inputs from cached steps (of this or any earlier run, on any executor) are
read from the artifact store.

Values from Ray's object store may be read-only (NumPy arrays and the DataFrame columns backed
by them): a step that changes its inputs in place must copy them first.

Retries: a step's ``retries`` apply to its exceptions (inside the task, with backoff) and to
the Ray worker dying under it (Ray re-runs the task that many times).

Workers get the launching process's ``SEGUE_*`` variables (a Ray ``runtime_env``), so they
reach the same metadata and artifact stores, or the same ``segue server``; on a cluster those
must be reachable from every node (PostgreSQL and S3, or a server), and the pipeline's module
importable there (the same image, or the same file path).

Ray is imported when the executor first connects, never by ``import segue``.

Example:
    >>> run_pipeline("flows/churn.py:retrain", executor="ray", address="ray://head:10001")
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from segue import ray_session
from segue.config import environment
from segue.errors import InvalidArgument
from segue.pipelines.executors import OutputRef, StepOutcome, StepTask

__all__ = ["RayExecutor"]

#: Step resources -> Ray's names for them, and how a cluster total is named.
_RESOURCES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


def _run_step(
    task: StepTask, sleep: Callable[[float], None], runs: list[str], *values: dict[str, Any]
) -> tuple[StepOutcome, dict[str, Any]]:
    """The body of a step's Ray task. ``values`` are the output values of the upstream steps
    run by this executor (Ray resolved their object references), ``runs`` their run ids."""
    from segue.pipelines.worker import load_ref, run_task

    given = dict(zip(runs, values, strict=True))

    def resolve(ref: OutputRef) -> Any:
        if ref.kind != "model" and ref.run_id in given:
            return given[ref.run_id][ref.name]
        return load_ref(ref)

    return run_task(task, sleep=sleep, resolve=resolve)


class RayExecutor:
    """Run steps as Ray tasks on a Ray cluster.

    Args:
        address: the cluster (``ray://head:10001``, ``auto``); None uses the Ray this process
            is connected to, or starts a local one (stopped at :meth:`close`).
        workers: at most this many steps at once (default: as many as the cluster's
            resources allow).
        sleep: how a retry waits its backoff; it must pickle (a module-level function).

    Raises:
        InvalidArgument: Ray is not installed, or ``workers`` is not a positive integer.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise InvalidArgument(f"workers must be a positive integer, got {workers!r}")
        if importlib.util.find_spec("ray") is None:
            raise InvalidArgument("the ray executor needs Ray: pip install 'segue[ray]'")
        self.address = address
        self.workers = workers
        self._sleep = sleep or time.sleep
        self._ray: Any = None
        self._remote: Any = None
        self._owned = False
        self._queue: list[StepTask] = []
        self._failed: list[StepOutcome] = []
        #: Outcome reference -> (task, its values' reference).
        self._running: dict[Any, tuple[StepTask, Any]] = {}
        #: Output values of finished steps in the object store, by the step's run id.
        self._values: dict[str, Any] = {}

    def submit(self, task: StepTask) -> None:
        ray = self._connect()
        unmet = _unmet(task.resources, ray.cluster_resources())
        if unmet:
            self._failed.append(StepOutcome(task.node, "FAILED", {}, 0, 0.0, error=unmet))
            return
        self._queue.append(task)

    def wait(self) -> list[StepOutcome]:
        if self._failed:
            failed, self._failed = self._failed, []
            return failed
        self._dispatch()
        if not self._running:
            return []
        ray = self._ray
        pending = list(self._running)
        ready, _ = ray.wait(pending, num_returns=1)
        more, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        return [self._collect(ref) for ref in dict.fromkeys([*ready, *more])]

    def close(self) -> None:
        self._queue.clear()
        self._failed.clear()
        self._values.clear()
        if self._ray is not None:
            for ref in self._running:
                with contextlib.suppress(Exception):  # already ended: nothing to cancel
                    self._ray.cancel(ref, force=True)
            self._running.clear()
            if self._owned:
                self._ray.shutdown()
            self._ray, self._remote, self._owned = None, None, False

    # -- helpers -----------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        import ray

        self._owned = ray_session.connect(self.address)
        self._ray, self._remote = ray, ray.remote(_run_step)
        return ray

    def _dispatch(self) -> None:
        while self._queue and (self.workers is None or len(self._running) < self.workers):
            task = self._queue.pop(0)
            runs = sorted(
                {ref.run_id for ref in task.inputs.values() if ref.run_id in self._values}
            )
            options = {
                **_ray_resources(task.resources),
                "num_returns": 2,
                "max_retries": task.retries,
                "name": f"segue step {task.node}",
                "runtime_env": {"env_vars": environment(task.env)},
            }
            outcome, values = self._remote.options(**options).remote(
                replace(task, env=environment(task.env)),
                self._sleep,
                runs,
                *(self._values[run] for run in runs),
            )
            self._running[outcome] = (task, values)

    def _collect(self, ref: Any) -> StepOutcome:
        task, values = self._running.pop(ref)
        try:
            outcome: StepOutcome = self._ray.get(ref)
        except Exception as exc:  # the task died or its result could not come back
            error = f"the Ray task running step {task.node!r} failed: {type(exc).__name__}: {exc}"
            return StepOutcome(task.node, "FAILED", {}, 1, 0.0, error=error)
        if outcome.status == "FINISHED":
            self._values[task.run_id] = values
        return outcome


def _ray_resources(resources: Mapping[str, float]) -> dict[str, float]:
    found = {"num_cpus": 1.0, **{k: float(v) for k, v in resources.items()}}
    return {key: value for key, value in found.items() if key in _RESOURCES}


def _unmet(resources: Mapping[str, float], cluster: Mapping[str, float]) -> str | None:
    """Why no node of the cluster could ever run a step asking for ``resources``, or None.

    Ray would wait for such a step forever; it fails at once instead, saying what is missing.
    """
    for key, value in _ray_resources(resources).items():
        have = float(cluster.get(_RESOURCES[key], 0.0))
        if value > have:
            return (
                f"the step asks for {key}={value:g} and the Ray cluster has {have:g} "
                f"{_RESOURCES[key]} in all; lower its @segue.step(resources=...) or add nodes"
            )
    return None
