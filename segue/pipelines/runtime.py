"""Running a pipeline: ``run_pipeline`` (and the CLI's ``run_loaded``).

A run traces the pipeline (refusing a bad definition before any run exists), hashes each
step's code, and hands the DAG to an :class:`~segue.pipelines.execution.Execution`: one parent
run, one child run per step, cached steps skipped, a failed run resumed by running the same
command again. Where everything is recorded: :mod:`segue.pipelines.execution`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from segue.errors import InvalidArgument
from segue.pipelines.code import code_hash
from segue.pipelines.execution import Execution
from segue.pipelines.executors import Executor, get_executor
from segue.pipelines.graph import bind_params, trace
from segue.pipelines.results import PipelineResult, StepResult
from segue.pipelines.spec import PipelineSpec, spec_of
from segue.pipelines.targets import load_target

__all__ = ["PipelineResult", "StepResult", "load_target", "run_loaded", "run_pipeline"]

DEFAULT_EXPERIMENT = "pipelines"


def run_pipeline(
    target: str | Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor = "local",
    address: str | None = None,
    cache: bool = True,
    refresh: Sequence[str] = (),
    experiment: str | None = None,
    cause: Mapping[str, Any] | None = None,
    workers: int | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> PipelineResult:
    """Run a pipeline: a parent run, a child run per step, cached steps skipped.

    Args:
        target: ``"pkg.module:fn"``, ``"path/to/file.py:fn"`` or the ``@segue.pipeline``
            function itself.
        params: the pipeline's params (its function's parameters; defaults fill the rest).
        executor: ``"local"``, ``"ray"`` or an :class:`~segue.pipelines.executors.Executor`.
        address: the Ray cluster, for ``executor="ray"``.
        cache: False reruns every step (``--no-cache``).
        refresh: steps to rerun even when cached (``--refresh STEP``).
        experiment: the runs' experiment (default: the pipeline's, else ``"pipelines"``).
        cause: why it runs, recorded as ``segue.cause`` (default ``{"kind": "manual"}``).
        workers: at most this many steps at once (local executor).
        on_step: called with each step's :class:`StepResult` as it ends.

    Returns the :class:`PipelineResult`; a failed step does not raise (the result says FAILED).

    Raises:
        InvalidArgument: a bad definition or params, before any run is created.
        NotFound: the target does not exist.

    Example:
        >>> result = run_pipeline("pipelines/churn.py:retrain", {"since": "7d"})
        >>> result.output()
    """
    spec, recorded = _resolve(target)
    return run_loaded(
        spec,
        recorded,
        params,
        executor=executor,
        address=address,
        cache=cache,
        refresh=refresh,
        experiment=experiment,
        cause=cause,
        workers=workers,
        on_step=on_step,
    )


def run_loaded(
    spec: PipelineSpec,
    target: str,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor = "local",
    address: str | None = None,
    cache: bool = True,
    refresh: Sequence[str] = (),
    experiment: str | None = None,
    cause: Mapping[str, Any] | None = None,
    workers: int | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> PipelineResult:
    """:func:`run_pipeline` for a pipeline already loaded (by :func:`load_target`), recorded
    as ``target``: the CLI loads a file once, to parse ``--param`` by its annotations."""
    bound = bind_params(spec, params or {})
    dag = trace(spec, bound)
    unknown = [name for name in refresh if name not in dag.nodes]
    if unknown:
        raise InvalidArgument(
            f"--refresh {unknown[0]!r}: pipeline {spec.name!r} has no such step "
            f"(its steps: {', '.join(dag.nodes)})"
        )
    codes = {node.id: code_hash(node.spec.fn) for node in dag.nodes.values()}
    runner = (
        executor
        if not isinstance(executor, str)
        else get_executor(executor, address=address, workers=workers)
    )
    try:
        return Execution(
            dag,
            target,
            runner,
            codes,
            cache=cache,
            refresh=set(refresh),
            experiment=experiment or spec.experiment or DEFAULT_EXPERIMENT,
            cause=dict(cause) if cause is not None else {"kind": "manual"},
            on_step=on_step,
        ).run()
    finally:
        runner.close()


def _resolve(target: str | Callable[..., Any]) -> tuple[PipelineSpec, str]:
    if isinstance(target, str):
        return load_target(target)
    spec = spec_of(target)
    if not isinstance(spec, PipelineSpec):
        raise InvalidArgument(f"{target!r} is not marked @segue.pipeline")
    return spec, f"{spec.module}:{spec.qualname}"
