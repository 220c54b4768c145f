"""Module-level tracking functions acting on the active run, as MLflow users expect."""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import pandas as pd

from segue.config import set_tracking_uri as set_tracking_uri  # segue.set_tracking_uri
from segue.errors import InvalidArgument
from segue.store.entities import Dataset, Run
from segue.tracking.client import close_client, get_client
from segue.tracking.runs import ActiveRun
from segue.tracking.system_metrics import SystemMetricsMonitor
from segue.tracking.system_metrics import interval_of as system_metrics_interval

#: The stack of active runs, innermost last.
_active: ContextVar[tuple[ActiveRun, ...]] = ContextVar("segue_active_runs", default=())
_open: list[ActiveRun] = []
_atexit_registered = False


def start_run(
    experiment: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    *,
    autolog: bool = False,
    system_metrics: bool | float = False,
) -> ActiveRun:
    """Start a run and make it the active one.

    Args:
        experiment: experiment name, created if new (default: the parent's experiment for a
            nested run, else ``"Default"``).
        name: run name (default: a generated one).
        params: params to log at once; tags: tags to set at once.
        nested: start a child of the active run instead of refusing while one is active.
        autolog: turn on :func:`segue.autolog` until this run ends (if it was not on already).
        system_metrics: sample CPU, memory, disk, network (and GPU) use into ``system/…``
            metrics every 10 s, or every this many seconds (see
            :mod:`segue.tracking.system_metrics`), until the run ends.

    Returns the :class:`ActiveRun`; as a context manager it ends the run FINISHED, FAILED (on an
    exception, recorded) or KILLED (on KeyboardInterrupt).

    Example:
        >>> with segue.start_run(experiment="churn", params={"C": 0.5}) as run:
        ...     run.log_metric("acc", 0.91)
    """
    global _atexit_registered
    interval = system_metrics_interval(system_metrics)
    stack = _active.get()
    if stack and not nested:
        raise InvalidArgument(
            f"run {stack[-1].id} is already active; end it first or pass nested=True"
        )
    client = get_client()
    parent = stack[-1] if stack else None
    if parent is not None and experiment is None:
        experiment = parent.experiment
    info = client.create_run(
        experiment, name, params, tags, parent_run_id=parent.id if parent else None
    )
    run = ActiveRun(client, info, on_end=_forget)
    _active.set((*stack, run))
    _open.append(run)
    if interval is not None:
        run.add_closer(SystemMetricsMonitor(run.log_metrics, interval).start().stop)
    if autolog:
        from segue.autologging import autolog_during_run

        autolog_during_run(run)
    if not _atexit_registered:
        atexit.register(_end_open_runs)
        _atexit_registered = True
    return run


log = logging.getLogger(__name__)


def _forget(run: ActiveRun) -> None:
    _active.set(tuple(r for r in _active.get() if r is not run))
    if run in _open:
        _open.remove(run)


def _end_open_runs() -> None:
    """At interpreter exit: runs left open finish cleanly, with every metric written."""
    for run in reversed(list(_open)):
        try:
            run.end("FINISHED")
        except Exception as exc:  # every other run must still be ended
            log.error("run %s could not be ended at exit: %s", run.id, exc)
    # Not get_client(): the settings may have changed since, and exiting must not open a store.
    try:
        close_client()
    except Exception as exc:  # at exit there is no caller left to raise to
        log.error("metrics could not all be written at exit: %s", exc)


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    stack = _active.get()
    return stack[-1] if stack else None


def _require() -> ActiveRun:
    run = active_run()
    if run is None:
        raise InvalidArgument("no active run: call segue.start_run() first")
    return run


def end_run(status: str = "FINISHED") -> None:
    """End the active run."""
    _require().end(status)


def flush() -> None:
    """Wait until every metric point logged and every run started or ended is stored.

    Locally, metric points are written in the background; through a ``segue server`` (remote
    mode) the starts and ends of runs after the first are sent in the background too. Exiting
    the process flushes as well; call this where another process must see the runs at once.

    Raises what could not be stored: :class:`~segue.tracking.writer.MetricsLost`, or the
    server's refusal of a run started or ended in the background.

    Example:
        >>> for c in (0.1, 1.0, 10.0):
        ...     with segue.start_run(experiment="sweep", params={"C": c}):
        ...         pass
        >>> segue.flush()
    """
    get_client().flush()


def get_run(run_id: str) -> Run:
    """The stored run with its params, latest metrics and tags."""
    return get_client().get_run(run_id)


def log_param(key: str, value: Any) -> None:
    _require().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _require().log_params(params)


def log_metric(key: str, value: Any, step: int | None = None) -> None:
    _require().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    _require().log_metrics(metrics, step)


def set_tag(key: str, value: Any) -> None:
    _require().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _require().set_tags(tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> str:
    return _require().log_artifact(path, name)


def log_artifacts(directory: str | os.PathLike[str], path: str | None = None) -> list[str]:
    return _require().log_artifacts(directory, path)


def log_dict(data: Any, name: str) -> str:
    return _require().log_dict(data, name)


def log_text(text: str, name: str) -> str:
    return _require().log_text(text, name)


def log_figure(figure: Any, name: str) -> str:
    return _require().log_figure(figure, name)


def log_dataset(data: Any, name: str, context: str = "train") -> Dataset:
    return _require().log_dataset(data, name, context)


def search_runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int = 1000,
) -> pd.DataFrame:
    """Find runs with one SQL query; one DataFrame row per run.

    Args:
        experiment: an experiment name or a list of them (default: all).
        filter: e.g. ``"metrics.acc > 0.9 and params.model = 'rf' and tags.team = 'x'"``;
            ``and``/``or``/parentheses, ``= != < <= > >= LIKE ILIKE IN IS NULL``.
        order_by: e.g. ``["metrics.acc DESC", "start_time"]``.
        max_results: at most this many rows.

    Returns columns run_id, experiment, name, status, start_time, end_time, user,
    parent_run_id, then ``params.*``, ``metrics.*`` (latest value) and ``tags.*``.

    Raises:
        InvalidArgument: a malformed filter, naming the position of the offending token.

    Example:
        >>> segue.search_runs("churn", "metrics.acc > 0.9", order_by=["metrics.acc DESC"])
    """
    return get_client().search_runs(experiment, filter, order_by, max_results)
