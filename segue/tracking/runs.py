"""The handle of a live run: what ``segue.start_run`` returns."""

from __future__ import annotations

import dataclasses
import logging
import os
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal

from segue.errors import InvalidArgument
from segue.store.entities import TERMINAL_STATUSES, Dataset, Metric, Run, RunInfo
from segue.tracking import validation
from segue.tracking.client import TrackingClient

_MAX_ERROR = 8000

log = logging.getLogger(__name__)


class ActiveRun:
    """A run being recorded. Use it as a context manager, or call :meth:`end` yourself.

    ``info`` carries what MLflow users read: ``run.info.run_id``, ``experiment_id``,
    ``status``, ``start_time`` and ``end_time`` (epoch milliseconds); it is updated when the
    run ends.

    Example:
        >>> with segue.start_run(experiment="churn") as run:
        ...     run.log_params({"C": 1.0})
        ...     run.log_metric("acc", 0.93)
        >>> run.info.status
        'FINISHED'
    """

    def __init__(
        self,
        client: TrackingClient,
        info: RunInfo,
        on_end: Callable[[ActiveRun], None] | None = None,
    ) -> None:
        self._client = client
        self.info = info
        self._on_end = on_end
        self._steps: dict[str, int] = {}
        #: Metric keys already checked, so a logging loop checks each name once.
        self._keys: set[str] = set()
        self._ended = False
        #: Run first thing when the run ends (last added first), before its metrics are
        #: flushed: a system metrics sampler stops, autologging turned on for the run is off.
        self._closers: list[Callable[[], None]] = []

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def experiment(self) -> str:
        return self.info.experiment_name

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id} name={self.name!r} experiment={self.experiment!r}>"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc_type is None:
            self.end("FINISHED")
            return False
        if issubclass(exc_type, KeyboardInterrupt):
            status, error = "KILLED", "KeyboardInterrupt"
        else:
            status = "FAILED"
            error = "".join(traceback.format_exception(exc_type, exc, tb))[-_MAX_ERROR:]
        try:
            self.end(status, error=error)
        except Exception as failure:
            # The user's own exception is what propagates; ending's failure is only told.
            log.error("run %s could not be ended cleanly: %s", self.id, failure)
            add_note = getattr(exc, "add_note", None)  # Python 3.11+
            if add_note is not None:
                add_note(f"segue: run {self.id} could not be ended cleanly: {failure}")
        return False

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Flush buffered metrics and mark the run FINISHED (or FAILED / KILLED).

        The run stops being the active one even when ending fails (the error propagates),
        so the next ``start_run`` is not refused.
        """
        if status not in TERMINAL_STATUSES:
            raise InvalidArgument(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
        if self._ended:
            return
        self._ended = True
        try:
            self._close()
            final, end_time = self._client.end_run(self.id, status, error)
            self.info = dataclasses.replace(self.info, status=final, end_time=end_time)
        finally:
            if self._on_end is not None:
                self._on_end(self)

    def add_closer(self, close: Callable[[], None]) -> None:
        """Call ``close()`` when the run ends, before its last metrics are flushed."""
        self._closers.append(close)

    def _close(self) -> None:
        while self._closers:
            close = self._closers.pop()
            try:
                close()
            except Exception as exc:  # a helper of the run must not keep it from ending
                log.error("run %s: %r failed while the run ended: %s", self.id, close, exc)

    # -- logging -------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record a hyper-parameter. Params are immutable: a different value is an error."""
        self._client.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._client.log_params(self.id, params)

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        """Record one point; without ``step`` the key's previous step + 1 is used (from 0)."""
        # log_metrics for one point, without its dict, loops or a Metric: this runs once a
        # point, so the common types skip the validation calls.
        if key not in self._keys:
            validation.check_key("metric", key)
            self._keys.add(key)
        number = value if type(value) is float else validation.metric_value(key, value)
        last = self._steps.get(key, -1)
        if step is None:
            step = last + 1
        elif type(step) is not int:
            step = validation.metric_step(key, step)
        if step > last:
            self._steps[key] = step
        self._client.writer.add_one(self.info.id, key, number, step, self._client._now())

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        now = self._client._now()
        points = []
        for key, value in metrics.items():
            if key not in self._keys:
                validation.check_key("metric", key)
            number = validation.metric_value(key, value)
            if step is None:
                point_step = self._steps.get(key, -1) + 1
            else:
                point_step = validation.metric_step(key, step)
            points.append(Metric(key, number, point_step, now))
        # Advance the auto steps only once the whole batch is valid: a refused batch logs nothing.
        for point in points:
            self._steps[point.key] = max(point.step, self._steps.get(point.key, -1))
            self._keys.add(point.key)
        self._client.log_metrics(self.id, points)

    def set_tag(self, key: str, value: Any) -> None:
        self._client.set_tags(self.id, {key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._client.set_tags(self.id, tags)

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Store a file (content-addressed, so identical files are kept once); return its path."""
        return self._client.log_artifact(self.id, path, name)

    def log_artifacts(
        self, directory: str | os.PathLike[str], path: str | None = None
    ) -> list[str]:
        """Store every file under ``directory``, optionally under the logical folder ``path``."""
        return self._client.log_artifacts(self.id, directory, path)

    def log_dict(self, data: Any, name: str) -> str:
        """Store ``data`` as JSON (or YAML when ``name`` ends in .yaml/.yml)."""
        return self._client.log_dict(self.id, data, name)

    def log_text(self, text: str, name: str) -> str:
        return self._client.log_bytes(self.id, str(text).encode(), name)

    def log_figure(self, figure: Any, name: str) -> str:
        """Store a matplotlib figure as a PNG."""
        return self._client.log_figure(self.id, figure, name)

    def log_dataset(self, data: Any, name: str, context: str = "train") -> Dataset:
        """Record a data set's content hash, shape, schema and profile (not its rows)."""
        return self._client.log_dataset(self.id, data, name, context)

    def log_model(
        self,
        model: Any,
        name: str = "model",
        *,
        input_example: Any = None,
        reference_data: Any = None,
        register_as: str | None = None,
    ) -> Any:
        """Save ``model`` as a verified package in this run's artifacts.

        Args:
            model: a scikit-learn estimator or Pipeline, a torch module, an ONNX model, or any
                object with ``predict`` (or a plain function).
            name: artifact folder, so the URI is ``runs:/<run_id>/<name>``.
            input_example: a few rows; the signature (columns, dtypes, classes) is inferred
                from them and the model's output on them.
            reference_data: training data whose profile is stored for drift monitoring.
            register_as: also register the package as the next version of this model.

        Returns a ``ModelInfo`` with ``run_uri`` (``runs:/<run_id>/<name>``, also ``uri``),
        ``model_uri`` (``models:/<model>/<version>`` when registered), ``flavor``,
        ``signature`` and ``version``.

        Example:
            >>> info = run.log_model(clf, input_example=X[:5], register_as="churn")
        """
        from segue.registry.service import get_registry

        return get_registry().log_model(
            self.id,
            model,
            name,
            input_example=input_example,
            reference_data=reference_data,
            register_as=register_as,
        )

    def get(self) -> Run:
        """The run as stored now (metrics flushed first)."""
        self._client.writer.flush(self.id)
        return self._client.get_run(self.id)
