"""What the server is serving: names, their routes, the deployment answering for each route.

A :class:`Deployment` is immutable: one model version with its batcher and compiled input
schema. A :class:`ServedModel` is a served name with one or more weighted :class:`Route`
objects (and optional shadow routes); each route's ``current`` deployment is replaced whole (one
attribute assignment, atomic on the event loop) to move to another version. A request reads
``current`` once, counts itself in that deployment's :class:`InFlight` in the same step, and
keeps the deployment until it is answered, so every request is answered by exactly one version
even while versions are swapped; the old deployment's batcher is drained only once the
requests it took are answered (:meth:`Route.swap`).

Example::

    >>> config = ServeConfig()
    >>> served = ServedModels.of(config, {"churn": segue.load_model("models:/churn@champion")})
    >>> served.get("churn").current.version
    '3'
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument, NotFound
from segue.models.package import LoadedModel
from segue.serving.batching import Batcher
from segue.serving.config import ServeConfig
from segue.serving.inputs import InputSchema, batch_call
from segue.serving.protocol import OUTPUTS, InferRequest, join_answers, split_request
from segue.serving.routing import Router

__all__ = [
    "Deployment",
    "InFlight",
    "Route",
    "ServedModel",
    "ServedModels",
    "deploy",
    "predict_batch",
]

#: Longest a stopping server waits for the requests its batchers still hold.
DRAIN_SECONDS = 30.0


class InFlight:
    """How many requests a deployment has taken and not yet answered (event-loop only)."""

    __slots__ = ("_idle", "count")

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def idle(self) -> None:
        """Return once no request is in flight."""
        while self.count:
            self._idle = asyncio.Event()
            await self._idle.wait()


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
        in_flight: the requests it has taken and not answered yet.
    """

    version: str
    model: LoadedModel
    batcher: Batcher[InferRequest, dict[str, Any]]
    schema: InputSchema
    outputs: tuple[str, ...] = ("predict",)
    input_example: dict[str, Any] | None = None
    load_seconds: float = 0.0
    in_flight: InFlight = field(default_factory=InFlight, compare=False, repr=False)

    async def retire(self) -> None:
        """Answer every request this deployment has taken, then stop its batcher.

        Call it once no route hands the deployment out any more; requests that already have
        it are answered by it, never refused.
        """
        await self.in_flight.idle()
        await self.batcher.drain()


#: The least CPU milliseconds a batch may cost and still be predicted on the event loop's
#: thread; the budget is the server's ``--max-latency-ms`` when that is longer (a request
#: already accepts waiting that long for its batch). A cheap model's batch then costs no GIL
#: hand-off; a slower one goes to the predict thread. At 1.0 ms alone, a scikit-learn
#: pipeline whose batch costs 0.5 ms measured 1.1-1.5 ms on the predict thread under load
#: (the GIL passing to and fro with the loop) and never came back to the loop: 1-row bodies
#: at c=64 answered 40% of the floor's requests a second, and 59% on the loop.
INLINE_MS = 1.0


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
        on_split=config.metrics.split_observer(name, version),
        # A request larger than a batch is split across batches (unless it cannot be).
        split=split_request if batchable else None,
        join=join_answers if batchable else None,
        # A batch costing at most this much CPU runs on the loop: see Batcher.
        inline_ms=max(INLINE_MS, config.max_latency_ms),
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
    data, predict, proba = batch_call(model, [request.input for request in requests])
    total = sum(request.input.n_rows for request in requests)
    results = {"predict": _by_row(predict(data), total, "predict")}
    if any("predict_proba" in request.outputs for request in requests):
        results["predict_proba"] = _by_row(proba(data), total, "predict_proba")
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


class Route:
    """One way a served name answers: a model URI, its share of the traffic, and the
    :class:`Deployment` answering for it now (None while loading).

    Args:
        label: how responses name the route (``x-segue-route``), e.g. ``churn@champion``.
        current: the deployment answering now.
        uri: the model URI it serves (watched for alias moves), if any.
        weight: its share is ``weight / sum of the served name's weights``.
        role: ``"primary"``, ``"canary"`` or ``"shadow"``; what the prediction log records.

    ``wanted`` is the version the route's alias points at while it is not the one serving
    (being loaded, or failing to load: then ``failure`` says why); both are None otherwise.
    The registry watcher sets them; ``/v2/models/{name}`` shows them.
    """

    __slots__ = ("current", "failure", "label", "role", "uri", "wanted", "weight")

    def __init__(
        self,
        label: str,
        current: Deployment | None = None,
        *,
        uri: str | None = None,
        weight: float = 1.0,
        role: str = "primary",
    ) -> None:
        self.label = label
        self.current = current
        self.uri = uri
        self.weight = weight
        self.role = role
        self.wanted: str | None = None
        self.failure: str | None = None

    def status(self) -> dict[str, Any]:
        """What the route serves and, while they differ, what its alias wants it to serve."""
        return {
            "route": self.label,
            "role": self.role,
            "serving": None if self.current is None else self.current.version,
            "wanted": self.wanted,
            "error": self.failure,
        }

    def replace(self, deployment: Deployment) -> Deployment | None:
        """Answer with ``deployment`` from now on; return the one it replaces (to retire).

        One assignment, atomic on the event loop: a request gets the old deployment or the new
        one, never none. Call it on the loop.
        """
        old, self.current = self.current, deployment
        if self.wanted == deployment.version:
            self.wanted = self.failure = None
        return old

    async def swap(self, deployment: Deployment) -> Deployment | None:
        """:meth:`replace`, then retire the replaced deployment once its in-flight requests
        are answered (so no request fails because of the swap). Returns the replaced one."""
        old = self.replace(deployment)
        if old is not None and old is not deployment:
            await old.retire()
        return old

    def __repr__(self) -> str:
        version = None if self.current is None else self.current.version
        return f"<Route {self.label} weight={self.weight:g} {self.role} version={version}>"


class ServedModel:
    """A name the server answers to: its weighted routes, and routes that only shadow them.

    Args:
        name: the served name.
        current: with no ``routes``, the deployment of its one route (labelled ``name``).
        routes: the routes requests are spread over, by weight.
        shadows: routes that also get every request once it is answered, for the log only.
        rng: the random source for routing (seed it in tests).

    ``current`` is the first route's deployment; replace it by assigning a new one.

    Raises:
        InvalidArgument: both ``current`` and ``routes``, no routes, or a label given twice.
    """

    __slots__ = ("_router", "name", "routes", "shadows")

    def __init__(
        self,
        name: str,
        current: Deployment | None = None,
        *,
        routes: Sequence[Route] | None = None,
        shadows: Sequence[Route] = (),
        rng: random.Random | None = None,
    ) -> None:
        if routes is None:
            routes = [Route(name, current)]
        elif current is not None:
            raise InvalidArgument("give a served model either a deployment or routes, not both")
        labels = [route.label for route in routes]
        if len(set(labels)) != len(labels):
            raise InvalidArgument(f"model {name!r}: route labels must differ, got {labels}")
        self.name = name
        self.routes = tuple(routes)
        self.shadows = tuple(shadows)
        self._router = Router([route.weight for route in self.routes], rng=rng)

    @property
    def current(self) -> Deployment | None:
        return self.routes[0].current

    @current.setter
    def current(self, deployment: Deployment | None) -> None:
        self.routes[0].current = deployment

    def route(self, key: str | None = None) -> Route:
        """The route for one request: sticky for a routing ``key``, else random by weight."""
        return self.routes[self._router.pick(key)]

    def route_of_version(self, version: str) -> Route | None:
        """The route whose deployment is ``version`` now, if any."""
        for route in self.routes:
            if route.current is not None and route.current.version == version:
                return route
        return None

    @property
    def versions(self) -> list[str]:
        """The versions answering now, in route order, each once."""
        found = [route.current.version for route in self.routes if route.current is not None]
        return list(dict.fromkeys(found))

    @property
    def ready(self) -> bool:
        return all(route.current is not None for route in (*self.routes, *self.shadows))

    def all_routes(self) -> Iterator[Route]:
        """The routes, then the shadows."""
        yield from self.routes
        yield from self.shadows

    def __repr__(self) -> str:
        return f"<ServedModel {self.name} routes={list(self.routes)}>"


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

    async def drain(self, timeout: float | None = DRAIN_SECONDS) -> None:
        """Answer everything queued, then stop every deployment's batcher.

        Args:
            timeout: most seconds to wait for the queued requests, all batchers together
                (None: no limit); requests still queued then get a 503. A model stuck in
                predict must not keep a stopping server from writing its prediction log.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        for served in self:
            for route in served.all_routes():
                if route.current is not None:
                    left = None if deadline is None else max(0.0, deadline - loop.time())
                    await route.current.batcher.drain(left)
