"""Reading pipeline runs back: the DAG of one run with each step's state, and the list of runs.

What ``segue pipeline show`` and ``segue pipeline list`` print and the web UI draws. Reads only.

Example:
    >>> view = describe_pipeline_run(get_client(), "4f1c")
    >>> [(s.id, s.status, s.cached_from) for s in view.steps]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from segue.errors import InvalidArgument
from segue.store.entities import Run, RunInfo
from segue.store.filters import BoolOp, Comparison, Expr, parse_filter, parse_order_by

__all__ = ["PipelineView", "StepView", "describe_pipeline_run", "list_pipeline_runs"]

_NEWEST = parse_order_by(["start_time DESC"])


@dataclass(frozen=True)
class StepView:
    """One node of a pipeline run's DAG and how its step ended.

    ``status`` is the child run's (FINISHED, FAILED, RUNNING, KILLED) or ``PENDING`` when no
    child run exists yet; ``seconds`` its duration (None while running); ``outputs`` output name
    -> ``{"run", "path", "digest", "kind"}`` (``run`` holds the artifact: for a cached step, the
    run it was cached from); ``upstream`` the node ids it takes inputs from.
    """

    id: str
    step: str
    status: str
    run_id: str | None = None
    seconds: float | None = None
    cached_from: str | None = None
    attempts: int | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    error: str | None = None
    skipped: str | None = None

    @property
    def upstream(self) -> list[str]:
        return sorted({source.split(".")[0] for source in self.inputs.values()})

    @property
    def cached(self) -> bool:
        return self.cached_from is not None


@dataclass(frozen=True)
class PipelineView:
    """A pipeline run: its parent run, what started it, and its steps in DAG order."""

    run: RunInfo
    pipeline: str
    executor: str | None
    cause: dict[str, Any]
    resumed_from: str | None
    params: dict[str, str]
    steps: list[StepView]

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def seconds(self) -> float | None:
        return _seconds(self.run)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the web UI's JSON."""
        return {
            "run_id": self.run.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "experiment": self.run.experiment_name,
            "start_time": self.run.start_time,
            "end_time": self.run.end_time,
            "seconds": self.seconds,
            "executor": self.executor,
            "cause": self.cause,
            "resumed_from": self.resumed_from,
            "params": self.params,
            "error": self.run.error,
            "steps": [
                {
                    "id": s.id,
                    "step": s.step,
                    "status": s.status,
                    "run_id": s.run_id,
                    "seconds": s.seconds,
                    "cached": s.cached,
                    "cached_from": s.cached_from,
                    "attempts": s.attempts,
                    "upstream": s.upstream,
                    "inputs": s.inputs,
                    "params": s.params,
                    "outputs": s.outputs,
                    "error": s.error,
                    "skipped": s.skipped,
                }
                for s in self.steps
            ],
        }


def describe_pipeline_run(client: Any, run_id: str) -> PipelineView:
    """The DAG of pipeline run ``run_id`` (a full id or its first 4+ characters).

    Args:
        client: a :class:`~segue.tracking.client.TrackingClient`.

    Raises:
        NotFound: no such run. InvalidArgument: the run is not a pipeline run.
    """
    run = client.get_run(client.store.resolve_run_id(run_id))
    tags = run.data.tags
    if tags.get("segue.kind") != "pipeline":
        raise InvalidArgument(f"run {run.id} is not a pipeline run (see segue pipeline list)")
    dag = json.loads(client.read_artifact(run.id, "pipeline/dag.json"))
    where = parse_filter(f"tags.`segue.pipeline.run` = '{run.id}'")
    children = {
        c.data.tags.get("segue.step"): c
        for c in client.store.search_runs([run.info.experiment_id], where, _NEWEST, 50_000)
    }
    steps = [_step(node, children.get(node["id"])) for node in dag["nodes"]]
    return PipelineView(
        run=run.info,
        pipeline=tags.get("segue.pipeline", dag.get("pipeline", "")),
        executor=tags.get("segue.executor"),
        cause=_json(tags.get("segue.cause")) or {},
        resumed_from=tags.get("segue.resumed_from"),
        params=dict(run.data.params),
        steps=steps,
    )


def list_pipeline_runs(client: Any, *, pipeline: str | None = None, limit: int = 50) -> list[Run]:
    """Pipeline runs (parent runs), newest first; only ``pipeline``'s when given."""
    return list(client.store.search_runs(None, pipeline_runs_filter(pipeline), _NEWEST, limit))


def pipeline_runs_filter(pipeline: str | None = None, status: str | None = None) -> Expr:
    """The search for pipeline runs (of ``pipeline``, with ``status``, when given).

    Built as a tree, not parsed from text: a pipeline's path may hold any character, quotes
    included, which the filter language's string literals cannot escape.
    """
    tests: list[Expr] = [Comparison("tag", "segue.kind", "=", "pipeline")]
    if pipeline is not None:
        tests.append(Comparison("tag", "segue.pipeline", "=", pipeline))
    if status is not None:
        tests.append(Comparison("attribute", "status", "=", status))
    return BoolOp("and", tuple(tests)) if len(tests) > 1 else tests[0]


def _step(node: dict[str, Any], child: Run | None) -> StepView:
    base = {
        "id": node["id"],
        "step": node.get("step", ""),
        "inputs": dict(node.get("inputs", {})),
        "params": dict(node.get("params", {})),
    }
    if child is None:
        return StepView(status="PENDING", **base)
    tags = child.data.tags
    attempts = tags.get("segue.attempts")
    return StepView(
        status=child.info.status,
        run_id=child.id,
        seconds=_seconds(child.info),
        cached_from=tags.get("segue.cached_from"),
        attempts=int(attempts) if attempts and attempts.isdigit() else None,
        outputs=_json(tags.get("segue.step.outputs")) or {},
        error=child.info.error,
        skipped=tags.get("segue.step.skipped"),
        **base,
    )


def _seconds(info: RunInfo) -> float | None:
    return None if info.end_time is None else (info.end_time - info.start_time) / 1000


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
