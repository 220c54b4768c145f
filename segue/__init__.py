"""Segue: one system for the whole life of a model.

Example:
    >>> import segue
    >>> with segue.start_run(experiment="churn", params={"C": 1.0}) as run:
    ...     run.log_metric("acc", 0.93)

Names are imported on first use, so ``import segue`` (and the ``segue`` CLI) start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from segue.version import __version__

_EXPORTS = {
    "segue.autologging": ["autolog"],
    "segue.errors": [
        "AlreadyExists",
        "Conflict",
        "GateFailed",
        "IntegrityError",
        "InvalidArgument",
        "NotFound",
        "SegueError",
    ],
    "segue.pipelines.spec": ["pipeline", "step"],
    "segue.registry.service": ["get_registry", "load_model", "register_model"],
    "segue.serving.client": ["Client"],
    "segue.tracking.fluent": [
        "active_run",
        "end_run",
        "flush",
        "get_run",
        "log_artifact",
        "log_artifacts",
        "log_dataset",
        "log_dict",
        "log_figure",
        "log_metric",
        "log_metrics",
        "log_param",
        "log_params",
        "log_text",
        "search_runs",
        "set_tag",
        "set_tags",
        "set_tracking_uri",
        "start_run",
    ],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "AlreadyExists",
    "Client",
    "Conflict",
    "GateFailed",
    "IntegrityError",
    "InvalidArgument",
    "NotFound",
    "SegueError",
    "__version__",
    "active_run",
    "autolog",
    "end_run",
    "flush",
    "get_registry",
    "get_run",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_dataset",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "pipeline",
    "register_model",
    "search_runs",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "step",
]


#: Submodules reachable as attributes after a bare ``import segue`` (``segue.torch.log_epoch``).
_SUBMODULES = frozenset({"torch"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"segue.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'segue' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from segue.autologging import autolog
    from segue.errors import (
        AlreadyExists,
        Conflict,
        GateFailed,
        IntegrityError,
        InvalidArgument,
        NotFound,
        SegueError,
    )
    from segue.pipelines.spec import pipeline, step
    from segue.registry.service import get_registry, load_model, register_model
    from segue.serving.client import Client
    from segue.tracking.fluent import (
        active_run,
        end_run,
        flush,
        get_run,
        log_artifact,
        log_artifacts,
        log_dataset,
        log_dict,
        log_figure,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        search_runs,
        set_tag,
        set_tags,
        set_tracking_uri,
        start_run,
    )
