"""Pipelines: plain Python steps composed by plain Python functions, run with caching.

``@segue.step`` and ``@segue.pipeline`` only mark functions; :func:`run_pipeline` traces a
pipeline into a DAG, checks it, and runs it (one parent run, one child run per step).

Example:
    >>> @segue.step
    ... def double(x: int) -> int:
    ...     return 2 * x
    >>> @segue.pipeline
    ... def twice(x: int = 1) -> int:
    ...     return double(double(x))
    >>> run_pipeline(twice, {"x": 3}).output()
    12
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Model", "pipeline", "run_pipeline", "step"]

_WHERE = {
    "Model": "segue.pipelines.spec",
    "pipeline": "segue.pipelines.spec",
    "step": "segue.pipelines.spec",
    "run_pipeline": "segue.pipelines.runtime",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'segue.pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from segue.pipelines.runtime import run_pipeline
    from segue.pipelines.spec import Model, pipeline, step
