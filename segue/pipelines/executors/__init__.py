"""Executors: where a pipeline's steps run.

The runtime (:mod:`segue.pipelines.runtime`) owns the DAG, the cache and the child runs; an
executor only runs one step's function somewhere and materializes its outputs there. Both sides
speak in small picklable records:

- :class:`StepTask` — what to run: the step function's location, its params, its inputs as
  :class:`OutputRef` (where an upstream output is stored), the child run it logs to.
- :class:`StepOutcome` — what happened: status, attempts, seconds, the outputs' refs, the
  captured logs, the error.

A worker turns a task into an outcome with :func:`segue.pipelines.worker.run_task` (retries with
backoff, log capture, the child run active for ``segue.log_metric``, outputs written to the
child run's artifacts). An executor calls it wherever it runs steps: in this process, in a
worker process, in a Ray task.

Protocol: the runtime ``submit``\\ s every ready task, then calls ``wait`` for at least one
outcome, submits what became ready, and so on; ``close`` at the end. ``wait`` returns the
outcomes of the tasks that ended (at least one, when any was submitted and not yet returned).

Example:
    >>> executor = get_executor("local", workers=2)
    >>> executor.submit(task)
    >>> [outcome] = executor.wait()
    >>> executor.close()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from segue.errors import InvalidArgument
from segue.store.entities import RunInfo

__all__ = [
    "EXECUTORS",
    "Executor",
    "FunctionRef",
    "OutputRef",
    "StepOutcome",
    "StepTask",
    "get_executor",
]

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class FunctionRef:
    """Where a step's function lives, so any process can import it.

    ``module`` is the module's name; ``file`` its source file (used when the module cannot be
    imported by name in the worker, e.g. a pipeline file run by path); ``qualname`` the name of
    the step (the decorated function) in that module.
    """

    module: str
    qualname: str
    file: str | None = None

    def __str__(self) -> str:
        return f"{self.module}:{self.qualname}"


@dataclass(frozen=True)
class OutputRef:
    """One stored step output: the artifact ``path`` of child run ``run_id``.

    ``digest`` is the content hash (sha256 of the materialized bytes; for a model package, of its
    manifest); ``kind`` the materializer that wrote it (``parquet``, ``arrow``, ``npy``,
    ``json``, ``pickle``, ``model``). ``node``/``name`` say which step output it is.
    """

    node: str
    name: str
    run_id: str
    path: str
    digest: str
    kind: str


@dataclass(frozen=True)
class StepTask:
    """One step to run.

    Attributes:
        node: the DAG node id (unique in the pipeline).
        function: the step's function.
        run_id: the child run the step logs to and stores its outputs in.
        params: the step's params (plain JSON-able values).
        inputs: argument name -> the upstream output it receives.
        outputs: the output names (``("output",)``, or ``("output.0", "output.1", ...)``).
        output_kinds: output name -> materializer kind chosen from the annotation, or None to
            choose from the value.
        pickle: whether outputs without a materializer may be pickled (cloudpickle).
        retries: extra attempts after a failure; backoff: seconds before the first retry
            (doubling each time).
        resources: ``{"num_cpus": ..., "num_gpus": ...}`` for executors that place tasks.
        env: the ``SEGUE_*`` variables of the process that launched the pipeline, so a worker
            elsewhere opens the same stores.
        run: the child run's record as created (so a worker need not read it back).
    """

    node: str
    function: FunctionRef
    run_id: str
    params: Mapping[str, Any]
    inputs: Mapping[str, OutputRef]
    outputs: tuple[str, ...]
    output_kinds: Mapping[str, str | None] = field(default_factory=dict)
    pickle: bool = False
    retries: int = 0
    backoff: float = 1.0
    resources: Mapping[str, float] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    run: RunInfo | None = None


@dataclass(frozen=True)
class StepOutcome:
    """How a task ended.

    ``outputs`` maps output name -> :class:`OutputRef` (empty when the step failed);
    ``logs`` is the captured stdout/stderr of every attempt; ``error`` the last attempt's
    traceback; ``pid`` the process that ran the step.
    """

    node: str
    status: Literal["FINISHED", "FAILED"]
    outputs: Mapping[str, OutputRef]
    attempts: int
    seconds: float
    logs: str = ""
    error: str | None = None
    pid: int = 0


@runtime_checkable
class Executor(Protocol):
    """Runs step tasks; see the module docstring for the protocol."""

    #: ``"local"`` or ``"ray"``: recorded as the pipeline run's ``segue.executor`` tag.
    name: str

    def submit(self, task: StepTask) -> None:
        """Accept a task whose inputs are all stored; it may start now or at ``wait``."""
        ...

    def wait(self) -> list[StepOutcome]:
        """Block until at least one submitted task has ended; return every ended one."""
        ...

    def close(self) -> None:
        """Release workers; pending tasks are abandoned."""
        ...


def get_executor(
    name: str,
    *,
    address: str | None = None,
    workers: int | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Executor:
    """The executor called ``name``.

    Args:
        name: ``"local"`` (worker processes on this machine) or ``"ray"`` (a Ray cluster).
        address: the Ray cluster (``ray://host:10001``, ``auto``); default: a local Ray.
        workers: at most this many steps at once (local; default: the CPU count).
        sleep: how a retry waits its backoff (tests pass a no-op).

    Raises:
        InvalidArgument: an unknown executor, or an address given to the local executor.
    """
    if name == "local":
        if address is not None:
            raise InvalidArgument("--address is for the ray executor; the local one runs here")
        from segue.pipelines.executors.local import LocalExecutor

        return LocalExecutor(workers=workers, sleep=sleep)
    if name == "ray":
        from segue.pipelines.executors.ray import RayExecutor

        return RayExecutor(address=address, workers=workers, sleep=sleep)
    raise InvalidArgument(f"executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
