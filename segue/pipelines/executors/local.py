"""The local executor: independent branches in worker processes, a lone step in this one.

When exactly one step is ready and nothing else is running, it runs here, in the launching
process: a linear chain of steps pays no process hop and no re-read of its inputs (outputs made
here are handed to the next step from memory; they are stored all the same). When several steps
are ready at once, each goes to a worker process of a pool (``workers`` processes at most,
default the CPU count), so independent branches run in parallel, each reading its inputs from
the artifact store.

Workers are forked from a fork server that has imported Segue once, so a worker starts in
milliseconds and inherits no database connection or thread of this process (where there is no
fork server, on Windows, they are spawned); each opens its own client from the ``SEGUE_*``
variables the task carries.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any

from segue.errors import InvalidArgument
from segue.pipelines.executors import OutputRef, StepOutcome, StepTask

__all__ = ["LocalExecutor"]


def _run_in_worker(task: StepTask, sleep: Callable[[float], None]) -> StepOutcome:
    from segue.pipelines.worker import run_task

    return run_task(task, sleep=sleep)[0]


class LocalExecutor:
    """Run steps on this machine.

    Args:
        workers: at most this many steps at once (default: the CPU count); 1 runs every step
            in this process, one after the other.
        sleep: how a retry waits its backoff; it must pickle (a module-level function) to
            reach worker processes.
    """

    name = "local"

    def __init__(
        self, workers: int | None = None, sleep: Callable[[float], None] | None = None
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise InvalidArgument(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        self._sleep = sleep or time.sleep
        self._queue: list[StepTask] = []
        self._running: dict[futures.Future[StepOutcome], StepTask] = {}
        self._pool: futures.ProcessPoolExecutor | None = None
        #: Output values made in this process, by (run id, path): passed on without a read.
        self._values: dict[tuple[str, str], Any] = {}

    def submit(self, task: StepTask) -> None:
        self._queue.append(task)

    def wait(self) -> list[StepOutcome]:
        if self._queue and (self.workers == 1 or (len(self._queue) == 1 and not self._running)):
            return [self._run_here(self._queue.pop(0))]
        if not self._queue and not self._running:
            return []
        pool = self._ensure_pool()
        for task in self._queue:
            self._running[pool.submit(_run_in_worker, task, self._sleep)] = task
        self._queue.clear()
        done, _ = futures.wait(self._running, return_when=futures.FIRST_COMPLETED)
        return [self._collect(future) for future in done]

    def close(self) -> None:
        self._queue.clear()
        self._values.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _run_here(self, task: StepTask) -> StepOutcome:
        from segue.pipelines.worker import run_task

        outcome, values = run_task(task, sleep=self._sleep, resolve=self._resolve, worker=False)
        for name, ref in outcome.outputs.items():
            if ref.kind != "model":  # a model input is always the loaded package, as elsewhere
                self._values[(ref.run_id, ref.path)] = values[name]
        return outcome

    def _resolve(self, ref: OutputRef) -> Any:
        key = (ref.run_id, ref.path)
        if key in self._values:
            return self._values[key]
        from segue.pipelines.worker import load_ref

        return load_ref(ref)

    def _collect(self, future: futures.Future[StepOutcome]) -> StepOutcome:
        task = self._running.pop(future)
        try:
            return future.result()
        except BrokenProcessPool as exc:
            self._pool = None  # a new pool for the next steps
            # Every step in flight in the pool fails with it: which process died is unknown.
            error = (
                f"a worker process died while step {task.node!r} was running (a crash, "
                f"os._exit or out of memory); rerun to resume: {exc}"
            )
        except Exception as exc:  # the outcome could not come back (it did not pickle, ...)
            error = f"step {task.node!r}: {type(exc).__name__}: {exc}"
        return StepOutcome(task.node, "FAILED", {}, 1, 0.0, error=error)

    def _ensure_pool(self) -> futures.ProcessPoolExecutor:
        if self._pool is None:
            context: BaseContext
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                multiprocessing.set_forkserver_preload(["segue.pipelines.worker"])
            else:  # Windows: each worker starts a fresh interpreter
                context = multiprocessing.get_context("spawn")
            self._pool = futures.ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool
