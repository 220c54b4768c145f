"""Batch scoring on Ray: the files of a :class:`~segue.serving.batch_inputs.BatchPlan`
scored in parallel by a pool of Ray Data workers, each holding the model.

Each worker loads the model through the registry's verified loading (the manifest must be the
one registered and every file must hash to what it records), once, then scores whole files
with the same reader, scorer and writer as the local engine (:func:`segue.serving.batch.
score_into`), so the outputs are identical to the local engine's, row for row and file for
file. A file is the unit of work: one input file -> one output file, rows in input order.
Outputs are written by the workers under temporary names and renamed into place only when
every file is scored (all or nothing, as locally).

The workers get this process's ``SEGUE_*`` environment (a Ray ``runtime_env``), so they reach
the same metadata and artifact store, or the same ``segue server``. On a cluster, the input
and output folders must be on storage every node sees.

Ray is imported inside the functions: ``import segue`` never imports it.

Example:
    >>> model = segue.load_model("models:/churn@champion")
    >>> score_files_on_ray(model, plan_batch("in/", "out/"), address="ray://head:10001").rows
    1200000
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from segue import errors, ray_session
from segue.config import environment
from segue.errors import InvalidArgument, SegueError
from segue.serving import batch
from segue.serving.batch import ScoreResult
from segue.serving.batch_inputs import BatchPlan

Progress = Callable[[int, "int | None"], None]

#: Seconds between two looks at the workers' progress.
_POLL = 0.2


def score_files_on_ray(
    model: Any,
    plan: BatchPlan,
    chunk_size: int = 10_000,
    proba: bool = False,
    on_progress: Progress | None = None,
    *,
    address: str | None = None,
    workers: int | None = None,
) -> ScoreResult:
    """Score every input of ``plan`` on Ray, the files in parallel, all or nothing.

    Args:
        model: the model as loaded here (``segue.load_model(...)``); the workers load the
            same package themselves, verified (a ``models:/…@alias`` is pinned to the version
            it resolved to here, so an alias moved meanwhile changes nothing).
        plan, chunk_size, proba, on_progress: as for :func:`segue.serving.batch.score_files`.
        address: the Ray cluster (``ray://head:10001``, ``auto``); None uses the Ray instance
            this process is connected to, or starts a local one (and stops it at the end).
        workers: at most this many workers, each holding the model (default: one per CPU of
            the cluster, at most one per file).

    Returns:
        A :class:`~segue.serving.batch.ScoreResult`.

    Raises:
        InvalidArgument, IntegrityError, OSError: as the local engine, from whichever worker
            met it first; the Ray package missing.
    """
    batch.check_chunk_size(chunk_size)
    ray = _import_ray()
    started = time.perf_counter()
    totals = batch.check_inputs(model, plan)
    total = sum(totals)
    with ray_session.quiet("ray.data"):
        owned = ray_session.connect(address)
        try:
            with batch.staged(plan) as temps:
                uri = _pinned_uri(model)
                done = _run(ray, uri, plan, temps, chunk_size, proba, on_progress, total, workers)
        finally:
            if owned:
                ray.shutdown()
    return ScoreResult(done, plan.output, time.perf_counter() - started, len(plan.pairs))


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # the data extra: pyarrow-backed datasets
    except ImportError:
        raise InvalidArgument("the ray engine needs Ray Data: pip install 'segue[ray]'") from None
    return ray


def _pinned_uri(model: Any) -> str:
    version = getattr(model, "version", None)
    if version is not None:
        return str(version.uri)
    source = str(model.source)
    if "://" in source or source.startswith(("runs:/", "models:/")):
        return source
    return str(Path(source).absolute())  # a package folder, for workers on this machine


def _run(
    ray: Any,
    model_uri: str,
    plan: BatchPlan,
    temps: list[Path],
    chunk_size: int,
    proba: bool,
    on_progress: Progress | None,
    total: int,
    workers: int | None,
) -> int:
    tally = ray.remote(num_cpus=0)(_Tally).remote(len(plan.pairs))
    items = [
        {"index": i, "source": str(source.absolute()), "temp": str(temp.absolute())}
        for i, ((source, _), temp) in enumerate(zip(plan.pairs, temps, strict=True))
    ]
    job = (model_uri, items, chunk_size, proba, tally, workers, environment())
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(ray, tally, total, on_progress, stop), daemon=True
    )
    watcher.start()
    try:
        if _through_client(ray):
            # Ray Data cannot run in a Ray Client's process (ray://): the job that drives the
            # workers runs in a task on the cluster, and reports here.
            done, failure = ray.get(ray.remote(num_cpus=0)(_score_job).remote(*job))
        else:
            done, failure = _score_job(*job)
    finally:
        stop.set()
        watcher.join()
        ray.kill(tally)
    if failure is not None:
        raise _rebuild(failure, plan.pairs[int(failure["index"])][0])
    if on_progress is not None:
        on_progress(done, total)
    return done


def _through_client(ray: Any) -> bool:
    from ray.util.client import ray as client

    return bool(client.is_connected())


def _score_job(
    model_uri: str,
    items: list[dict[str, Any]],
    chunk_size: int,
    proba: bool,
    tally: Any,
    workers: int | None,
    env: dict[str, str],
) -> tuple[int, dict[str, Any] | None]:
    """Score ``items`` (index, source, temporary output) with a pool of :class:`_FileScorer`
    workers; return the rows written and the first failure (in file order), if any."""
    import ray

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    scorer = {"model_uri": model_uri, "chunk_size": chunk_size, "proba": proba, "tally": tally}
    done = 0
    with _data_context(ray):
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _FileScorer,
            fn_constructor_kwargs=scorer,
            batch_size=1,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(
                min_size=1, max_size=max(1, min(workers or cpus, len(items)))
            ),
            num_cpus=1,
            # Ray Data restarts a worker that dies and retries its file: safe, since a file
            # is scored again from its first row into the same temporary output.
            runtime_env={"env_vars": env},
        )
        for row in dataset.iter_rows():
            if row["error"]:
                return done, {key: row[key] for key in ("index", "error", "kind", "filename")}
            done += int(row["rows"])
    return done, None


@contextlib.contextmanager
def _data_context(ray: Any) -> Iterator[None]:
    """Ray Data's own progress bars and notices off, and rows kept in order, for datasets made
    in the block; the settings the caller had come back after it."""
    context = ray.data.DataContext.get_current()
    options = context.execution_options
    saved = (
        context.enable_progress_bars,
        context.print_on_execution_start,
        context.enable_auto_log_stats,
        options.preserve_order,
    )
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    options.preserve_order = True
    try:
        yield
    finally:
        (
            context.enable_progress_bars,
            context.print_on_execution_start,
            context.enable_auto_log_stats,
            options.preserve_order,
        ) = saved


def _watch(
    ray: Any, tally: Any, total: int, on_progress: Progress | None, stop: threading.Event
) -> None:
    while not stop.wait(_POLL):
        if on_progress is not None:
            on_progress(ray.get(tally.rows.remote()), total)


class _Tally:
    """Rows scored so far in each file, as the workers report them (a Ray actor)."""

    def __init__(self, files: int) -> None:
        self.done = [0] * files

    def set(self, index: int, rows: int) -> None:
        self.done[index] = rows

    def rows(self) -> int:
        return sum(self.done)


class _FileScorer:
    """A Ray Data worker: loads and verifies the model once, then scores whole files.

    Errors a user can cause come back as rows (kind and message), so the driver raises them
    as one clear error instead of a Ray traceback.
    """

    def __init__(self, model_uri: str, chunk_size: int, proba: bool, tally: Any) -> None:
        from segue.registry.service import load_model

        self.chunk_size, self.proba, self.tally = chunk_size, proba, tally
        self.model: Any = None
        self.failure: dict[str, Any] | None = None
        try:
            self.model = load_model(model_uri)  # every file hash-checked, on this worker
        except (SegueError, OSError) as exc:
            self.failure = _describe(exc)

    def __call__(self, files: pd.DataFrame) -> pd.DataFrame:
        results = [self._score(row) for row in files.itertuples(index=False)]
        return pd.DataFrame(results, columns=["index", "rows", "error", "kind", "filename"])

    def _score(self, item: Any) -> dict[str, Any]:
        index = int(item.index)
        if self.failure is not None:
            return {"index": index, "rows": 0, **self.failure}

        def report(rows: int, _total: int | None) -> None:
            self.tally.set.remote(index, rows)

        try:
            rows = batch.score_into(
                self.model,
                Path(item.source),
                Path(item.temp),
                self.chunk_size,
                self.proba,
                report,
            )
        except (SegueError, OSError) as exc:
            return {"index": index, "rows": 0, **_describe(exc)}
        return {"index": index, "rows": rows, "error": "", "kind": "", "filename": ""}


def _describe(exc: SegueError | OSError) -> dict[str, Any]:
    if isinstance(exc, OSError):
        message = exc.strerror or str(exc)
        return {"error": message, "kind": "OSError", "filename": str(exc.filename or "")}
    return {"error": str(exc), "kind": type(exc).__name__, "filename": ""}


def _rebuild(row: dict[str, Any], source: Path) -> Exception:
    """The error a worker met, as the exception the local engine raises (naming the input as
    the user gave it, not as the worker was told it)."""
    message = str(row["error"]).replace(str(source.absolute()), str(source))
    if row["kind"] == "OSError":
        return OSError(errno.EIO, message, row["filename"] or None)
    kind = getattr(errors, str(row["kind"]), None)
    if isinstance(kind, type) and issubclass(kind, SegueError):
        return kind(message)
    return SegueError(message)
