"""The handle of a live run: what ``segue.start_run`` returns."""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping
from typing import Any

from segue.store.entities import Dataset, Metric, Run, RunInfo
from segue.tracking import validation
from segue.tracking.client import TrackingClient

_MAX_ERROR = 8000


class ActiveRun:
    """A run being recorded. Use it as a context manager, or call :meth:`end` yourself.

    Example:
        >>> with segue.start_run(experiment="churn") as run:
        ...     run.log_params({"C": 1.0})
        ...     run.log_metric("acc", 0.93)
    """

    def __init__(self, client: TrackingClient, info: RunInfo, on_end=None) -> None:
        self._client = client
        self.info = info
        self._on_end = on_end
        self._steps: dict[str, int] = {}
        self._ended = False

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

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("KILLED", error="KeyboardInterrupt")
        else:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            self.end("FAILED", error=text[-_MAX_ERROR:])
        return False

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Flush buffered metrics and mark the run FINISHED (or FAILED / KILLED)."""
        if self._ended:
            return
        self._client.end_run(self.id, status, error)
        self._ended = True
        if self._on_end is not None:
            self._on_end(self)

    # -- logging -------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record a hyper-parameter. Params are immutable: a different value is an error."""
        self._client.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._client.log_params(self.id, params)

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        """Record one point; without ``step`` the key's previous step + 1 is used (from 0)."""
        self.log_metrics({key: value}, step=step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        now = self._client._now()
        points = []
        for key, value in metrics.items():
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
        self._client.log_metrics(self.id, points)

    def set_tag(self, key: str, value: Any) -> None:
        self._client.set_tags(self.id, {key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._client.set_tags(self.id, tags)

    def log_artifact(self, path: str | os.PathLike, name: str | None = None) -> str:
        """Store a file (content-addressed, so identical files are kept once); return its path."""
        return self._client.log_artifact(self.id, path, name)

    def log_artifacts(self, directory: str | os.PathLike, path: str | None = None) -> list[str]:
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
