"""What a pipeline run returns: its steps' results and a way to load their outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from segue.errors import InvalidArgument
from segue.pipelines.executors import OutputRef

__all__ = ["PipelineResult", "StepResult"]


@dataclass(frozen=True)
class StepResult:
    """How one step of a pipeline run ended.

    ``status`` is FINISHED, FAILED or KILLED (never started: an upstream step failed);
    ``cached_from`` the run whose outputs were reused (None when the step ran); ``outputs``
    output name -> content hash.
    """

    node: str
    run_id: str
    status: str
    cached_from: str | None
    seconds: float
    attempts: int
    outputs: dict[str, str]
    error: str | None = None


@dataclass(frozen=True)
class PipelineResult:
    """A pipeline run: its parent run id, status and steps (in DAG order).

    Example:
        >>> result = run_pipeline("pipelines/churn.py:retrain", {"since": "7d"})
        >>> result.status, result.model_uri()
        ('FINISHED', 'runs:/4f1c…/outputs/output')
    """

    run_id: str
    pipeline: str
    status: str
    steps: list[StepResult]
    error: str | None = None
    returned: str | None = None
    refs: Mapping[str, Mapping[str, OutputRef]] = field(default_factory=dict, repr=False)

    def step(self, node: str) -> StepResult:
        for result in self.steps:
            if result.node == node:
                return result
        raise InvalidArgument(f"pipeline run {self.run_id} has no step {node!r}")

    def _ref(self, node: str | None, name: str) -> OutputRef:
        node = node or self.returned
        if node is None:
            raise InvalidArgument("the pipeline returns nothing: name the step, output(node)")
        self.step(node)
        ref = self.refs.get(node, {}).get(name)
        if ref is None:
            raise InvalidArgument(f"step {node!r} has no stored output {name!r}")
        return ref

    def output(self, node: str | None = None, name: str = "output") -> Any:
        """The stored output of step ``node`` (default: the step the pipeline returned)."""
        from segue.pipelines.worker import load_ref

        return load_ref(self._ref(node, name))

    def model_uri(self, node: str | None = None) -> str | None:
        """``runs:/<run>/outputs/output`` when that output is a model package, else None.

        For a cached step, ``<run>`` is the run that made the package.
        """
        ref = self._ref(node, "output")
        return f"runs:/{ref.run_id}/{ref.path}" if ref.kind == "model" else None
