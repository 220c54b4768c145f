"""What the server is serving: names, the deployment answering for each, and batched predict.

A :class:`Deployment` is immutable: one model version with its batcher and compiled input
schema. A :class:`ServedModel` is a served name whose ``current`` deployment is replaced whole
(one attribute assignment, atomic on the event loop) to move to another version. A request
reads ``current`` once and keeps that deployment until it is answered, so every request is
answered by exactly one version even while versions are swapped.

Example::

    >>> config = ServeConfig()
    >>> served = ServedModels.of(config, {"churn": segue.load_model("models:/churn@champion")})
    >>> served.get("churn").current.version
    '3'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument, NotFound
from segue.models.package import LoadedModel
from segue.serving.batching import Batcher
from segue.serving.config import ServeConfig
from segue.serving.inputs import InputSchema, combine
from segue.serving.protocol import OUTPUTS, InferRequest

__all__ = ["Deployment", "ServedModel", "ServedModels", "deploy", "predict_batch"]


@dataclass(frozen=True, eq=False)
class Deployment:
    """One model version as served: the model, its batcher and its compiled input schema.

    Attributes:
        version: the version string in responses ("3" for a registered version).
        outputs: the outputs requests may ask for (``predict``, and ``predict_proba`` when
            the model has it).
        input_example: a ``/predict`` body built from the package's input example (docs and
            warm-up), or None.
        load_seconds: time taken to fetch, verify, load and warm up the model.
    """

    version: str
    model: LoadedModel
    batcher: Batcher[InferRequest, dict[str, Any]]
    schema: InputSchema
    outputs: tuple[str, ...] = ("predict",)
    input_example: dict[str, Any] | None = None
    load_seconds: float = 0.0


def deploy(
    name: str,
    model: LoadedModel,
    config: ServeConfig,
    *,
    version: str | None = None,
    input_example: dict[str, Any] | None = None,
    load_seconds: float = 0.0,
) -> Deployment:
    """Prepare ``model`` to be served as ``name``: its schema, batcher and metrics.

    Raises:
        InvalidArgument: the model has no signature.
    """
    version = version or version_of(model)
    schema = InputSchema(model.signature)
    # A tensor whose first dimension is fixed cannot be stacked with others.
    batchable = schema.tensor is None or schema.tensor.shape[0] == -1
    batcher: Batcher[InferRequest, dict[str, Any]] = Batcher(
        partial(predict_batch, model),
        max_batch_size=config.max_batch_size if batchable else 1,
        max_latency_ms=config.max_latency_ms,
        on_batch=config.metrics.batch_observer(name, version),
    )
    config.metrics.load_seconds.labels(name, version).set(load_seconds)
    has_proba = getattr(model.raw, "predict_proba", None) is not None
    return Deployment(
        version=version,
        model=model,
        batcher=batcher,
        schema=schema,
        outputs=OUTPUTS if has_proba else ("predict",),
        input_example=input_example,
        load_seconds=load_seconds,
    )


def version_of(model: LoadedModel) -> str:
    """The registered version number, else the short id of the run that logged the model."""
    if model.version is not None:
        return str(model.version.version)
    run_id = model.manifest.run_id
    return run_id[:8] if run_id else "local"


def predict_batch(model: LoadedModel, requests: list[InferRequest]) -> list[dict[str, Any]]:
    """Predict on the requests' rows in one call; give each request its rows of the result.

    Runs on the batcher's worker thread, so building the batch's DataFrame is off the loop.
    """
    data = combine([request.input for request in requests])
    total = sum(request.input.n_rows for request in requests)
    results = {"predict": _by_row(model.predict(data), total, "predict")}
    if any("predict_proba" in request.outputs for request in requests):
        results["predict_proba"] = _by_row(model.predict_proba(data), total, "predict_proba")
    answers = []
    start = 0
    for request in requests:
        stop = start + request.input.n_rows
        answers.append({name: _rows(results[name], start, stop) for name in request.outputs})
        start = stop
    return answers


def _by_row(result: Any, total: int, what: str) -> np.ndarray | pd.DataFrame:
    if isinstance(result, pd.Series):
        result = result.to_numpy()
    elif isinstance(result, (list, tuple)):
        result = np.asarray(result)
    if not isinstance(result, (np.ndarray, pd.DataFrame)) or result.ndim == 0:
        raise TypeError(f"{what} returned {type(result).__name__}, not one value per row")
    if len(result) != total:
        raise ValueError(f"{what} returned {len(result)} rows for {total} input rows")
    return result


def _rows(result: np.ndarray | pd.DataFrame, start: int, stop: int) -> Any:
    if isinstance(result, pd.DataFrame):
        return result.iloc[start:stop]
    return result[start:stop]


class ServedModel:
    """A name the server answers to, and the :class:`Deployment` answering for it now.

    ``current`` is None until a deployment is ready; replace it by assigning a new one.
    """

    __slots__ = ("current", "name")

    def __init__(self, name: str, current: Deployment | None = None) -> None:
        self.name = name
        self.current = current

    @property
    def ready(self) -> bool:
        return self.current is not None

    def __repr__(self) -> str:
        version = None if self.current is None else self.current.version
        return f"<ServedModel {self.name} version={version}>"


class ServedModels:
    """The served names, in order; the first is the default (``POST /predict``).

    Raises:
        InvalidArgument: no models, or a name given twice.
    """

    def __init__(self, models: Iterable[ServedModel]) -> None:
        self._by_name: dict[str, ServedModel] = {}
        for served in models:
            if served.name in self._by_name:
                raise InvalidArgument(f"model name {served.name!r} is served twice")
            self._by_name[served.name] = served
        if not self._by_name:
            raise InvalidArgument("no models to serve")

    @classmethod
    def of(cls, config: ServeConfig, models: Mapping[str, LoadedModel]) -> ServedModels:
        """Deploy each loaded model under its name."""
        return cls(ServedModel(name, deploy(name, m, config)) for name, m in models.items())

    def get(self, name: str) -> ServedModel:
        served = self._by_name.get(name)
        if served is None:
            raise NotFound(f"model {name!r} is not served here; served: {', '.join(self._by_name)}")
        return served

    @property
    def default(self) -> ServedModel:
        return next(iter(self._by_name.values()))

    @property
    def ready(self) -> bool:
        """Every served name has a deployment (loaded and warmed up)."""
        return all(served.ready for served in self._by_name.values())

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    async def drain(self) -> None:
        """Answer everything queued, then stop every deployment's batcher."""
        for served in self:
            if served.current is not None:
                await served.current.batcher.drain()
