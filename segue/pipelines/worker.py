"""Running one step task where an executor put it: retries, logs, the child run, outputs.

:func:`run_task` is the one function every executor calls (in this process, in a worker
process, in a Ray task): it loads the inputs, calls the step function with the step's child run
active (so ``segue.log_metric`` inside a step logs to that run), retries with backoff, captures
stdout/stderr, and writes the outputs into the child run's artifacts. It never raises for a
failing step: the :class:`StepOutcome` says FAILED and carries the traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from segue.pipelines import materializers
from segue.pipelines.capture import capture
from segue.pipelines.executors import OutputRef, StepOutcome, StepTask
from segue.pipelines.targets import import_step

__all__ = ["load_ref", "run_task"]

_MAX_ERROR = 8000


def run_task(
    task: StepTask,
    *,
    sleep: Callable[[float], None] = time.sleep,
    resolve: Callable[[OutputRef], Any] | None = None,
    worker: bool = True,
) -> tuple[StepOutcome, dict[str, Any]]:
    """Run ``task``; return its outcome and its output values (name -> value).

    Args:
        sleep: how the backoff between attempts waits (tests pass a no-op).
        resolve: gives an input's value (an executor holding it in memory); default: loaded
            from the artifact store (:func:`load_ref`), its hash verified.
        worker: this is a worker process (or a Ray task), not the launching process: it takes
            the task's ``SEGUE_*`` variables into its environment (the launching process has
            them already, and other threads of it share ``os.environ``), and a
            KeyboardInterrupt in the step fails the step. In the launching process a
            KeyboardInterrupt is the user's Ctrl-C and propagates (the run ends KILLED).

    A step calling ``sys.exit`` fails (not retried), wherever it runs.
    """
    if worker:
        _apply_env(task.env)
    stops: tuple[type[BaseException], ...] = (
        (SystemExit, KeyboardInterrupt) if worker else (SystemExit,)
    )
    from segue.tracking.client import get_client

    client = get_client()
    logs = io.StringIO()
    started = time.perf_counter()
    attempts = 0
    error: str | None = None
    values: dict[str, Any] = {}
    stored: dict[str, OutputRef] = {}
    with _active(client, task), capture(logs):
        try:
            fn = import_step(task.function)
            kwargs = {arg: (resolve or load_ref)(ref) for arg, ref in task.inputs.items()}
            kwargs.update(task.params)
        except Exception:
            error = traceback.format_exc()
        else:
            for attempt in range(1, task.retries + 2):
                attempts = attempt
                try:
                    result = fn(**kwargs)
                    error = None
                    break
                except Exception:
                    error = traceback.format_exc()
                    print(f"segue: attempt {attempt} of step {task.node!r} failed", file=logs)
                    print(error, file=logs)
                    if attempt <= task.retries:
                        sleep(task.backoff * 2 ** (attempt - 1))
                except stops as exc:  # an exit is no transient fault: no retry
                    error = traceback.format_exc()
                    print(f"segue: step {task.node!r} stopped: {exc!r}", file=logs)
                    print(error, file=logs)
                    break
            if error is None:
                try:
                    values = _split(task, result)
                    for name, value in values.items():
                        saved = materializers.save_output(
                            client,
                            task.run_id,
                            name,
                            value,
                            task.output_kinds.get(name),
                            pickle=task.pickle,
                        )
                        stored[name] = OutputRef(
                            task.node, name, task.run_id, saved.path, saved.digest, saved.kind
                        )
                except Exception:
                    error = traceback.format_exc()
                    stored, values = {}, {}
    client.writer.flush(task.run_id)
    outcome = StepOutcome(
        node=task.node,
        status="FAILED" if error else "FINISHED",
        outputs=stored,
        attempts=attempts,
        seconds=time.perf_counter() - started,
        logs=logs.getvalue(),
        error=error[-_MAX_ERROR:] if error else None,
        pid=os.getpid(),
    )
    return outcome, values


def load_ref(ref: OutputRef) -> Any:
    """The value of a stored output, read through this process's client."""
    from segue.tracking.client import get_client

    return materializers.load_output(get_client(), ref.run_id, ref.path, ref.kind)


def _split(task: StepTask, result: Any) -> dict[str, Any]:
    if len(task.outputs) == 1:
        return {task.outputs[0]: result}
    if not isinstance(result, tuple) or len(result) != len(task.outputs):
        raise TypeError(
            f"step {task.node!r} is annotated to return a tuple of {len(task.outputs)}, "
            f"returned {type(result).__name__}"
        )
    return dict(zip(task.outputs, result, strict=True))


#: The variables that say which stores a process uses and as whom.
_STORES = (
    "SEGUE_HOME",
    "SEGUE_STORE_URI",
    "SEGUE_ARTIFACT_URI",
    "SEGUE_TRACKING_URI",
    "SEGUE_TOKEN",
)


def _apply_env(env: Mapping[str, str]) -> None:
    """A worker opens the stores the launching process used: ``env`` holds every ``SEGUE_*``
    variable of that process, so a store variable it lacks goes too (a worker forked from a
    fork server started earlier, or another machine's, may hold a ``SEGUE_TRACKING_URI`` of
    its own). Other variables stay."""
    for key in _STORES:
        if key not in env:
            os.environ.pop(key, None)
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextlib.contextmanager
def _active(client: Any, task: StepTask) -> Iterator[None]:
    """The step's child run as the active run, for ``segue.log_metric`` & co. inside it.

    The runtime created the run and ends it; this only makes it current here (the fluent
    API keeps the stack of active runs in one ContextVar).
    """
    from segue.tracking import fluent
    from segue.tracking.runs import ActiveRun

    info = task.run if task.run is not None else client.get_run(task.run_id).info
    run = ActiveRun(client, info)
    token = fluent._active.set((*fluent._active.get(), run))
    try:
        yield
    finally:
        fluent._active.reset(token)
