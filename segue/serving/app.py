"""The inference server's HTTP app: Open Inference Protocol v2, ``/predict``, metrics, docs.

The two hot routes (``POST /v2/models/{name}[/versions/{v}]/infer`` and ``POST /predict``) are
plain Starlette routes: they read the raw body, parse and check it with orjson and NumPy
(:mod:`segue.serving.protocol`), wait for the batcher, and answer with orjson bytes. No pydantic
model and no DataFrame is built per request; pydantic only describes the API in ``/docs``.

Example::

    >>> config = ServeConfig()
    >>> app = create_app(ServedModels.of(config, {"cancer": model}), config)
    >>> # uvicorn.run(app) — or `segue serve models:/cancer/1`
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from segue import __version__
from segue.errors import NotFound, SegueError
from segue.serving import protocol, schemas
from segue.serving.batching import BatcherClosed, PredictionFailed
from segue.serving.config import InferenceRecord, ServeConfig
from segue.serving.deployment import Deployment, ServedModel, ServedModels
from segue.serving.metrics import CONTENT_TYPE

__all__ = ["create_app"]

log = logging.getLogger("segue.serving")

EXTENSIONS = ["segue-predict", "prometheus-metrics"]
_JSON = "application/json"
_MAX_REQUEST_ID = 128


def create_app(models: ServedModels, config: ServeConfig) -> FastAPI:
    """The ASGI app serving ``models``.

    ``app.state.models`` and ``app.state.config`` are the objects given, so a deployment can
    be replaced while the app runs (see :class:`~segue.serving.deployment.ServedModel`).
    """
    app = FastAPI(
        title="Segue inference server",
        version=__version__,
        description=schemas.description(models),
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=partial(_lifespan, models=models, config=config),
    )
    app.state.models = models
    app.state.config = config
    app.state.metrics = config.metrics
    inference = _Inference(models, config)
    app.add_route("/predict", inference.predict, methods=["POST"], include_in_schema=False)
    app.add_route(
        "/v2/models/{name}/infer", inference.infer, methods=["POST"], include_in_schema=False
    )
    app.add_route(
        "/v2/models/{name}/versions/{version}/infer",
        inference.infer,
        methods=["POST"],
        include_in_schema=False,
    )
    _add_metadata_routes(app, models, config)
    app.add_exception_handler(SegueError, _segue_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.openapi = partial(schemas.openapi, app, models)  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI, *, models: ServedModels, config: ServeConfig) -> AsyncIterator:
    yield
    # uvicorn has stopped accepting and answered the in-flight requests by now.
    await models.drain()
    for callback in config.on_shutdown:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:  # one failing hook must not keep the others from running
            log.exception("shutdown hook %r failed", callback)


class _Inference:
    """The hot routes, sharing one path from raw bytes to response bytes."""

    def __init__(self, models: ServedModels, config: ServeConfig) -> None:
        self.models = models
        self.config = config
        self.metrics = config.metrics

    async def predict(self, request: Request) -> Response:
        return await self._answer(request, self.models.default.name, None, oip=False)

    async def infer(self, request: Request) -> Response:
        params = request.path_params
        return await self._answer(request, params["name"], params.get("version"), oip=True)

    async def _answer(
        self, request: Request, name: str, version: str | None, oip: bool
    ) -> Response:
        arrived = time.time()
        started = time.perf_counter()
        request_id = _request_id(request)
        model = served_version = ""
        parsed: protocol.InferRequest | None = None
        answer: dict[str, Any] | None = None
        error = None
        try:
            deployment = _deployment(self.models, name, version)
            model, served_version = name, deployment.version
            in_flight = self.metrics.in_flight.labels(name)
            in_flight.inc()
            try:
                parsed, answer, content = await self._run(
                    request, name, deployment, oip, request_id
                )
            finally:
                in_flight.dec()
            status = 200
        except SegueError as exc:  # RequestError included: the caller's mistake, 4xx
            status, error = exc.http_status, str(exc)
            content = protocol.error_body(error, getattr(exc, "field", None), request_id)
        except PredictionFailed as exc:
            status, error = 500, f"the model failed to predict: {exc}"
            content = protocol.error_body(error, None, request_id)
            self.metrics.model_errors.labels(model, served_version).inc()
            log.error("request %s to %s version %s: %s", request_id, model, served_version, error)
        except BatcherClosed as exc:
            status, error = 503, str(exc)
            content = protocol.error_body(error, None, request_id)
        latency = time.perf_counter() - started
        self.metrics.observe_request(model, served_version, status, latency)
        if self.config.on_prediction is not None:
            record = InferenceRecord(
                request_id,
                arrived,
                model or name,
                served_version,
                latency * 1000,
                status,
                input=None if parsed is None else parsed.input,
                output=None if answer is None else answer.get("predict"),
                error=error,
            )
            _call_hook(self.config.on_prediction, record)
        headers = {"x-request-id": request_id}
        if served_version:
            headers["x-model-version"] = served_version
        return Response(content, status_code=status, media_type=_JSON, headers=headers)

    async def _run(
        self, request: Request, name: str, deployment: Deployment, oip: bool, request_id: str
    ) -> tuple[protocol.InferRequest, dict[str, Any], bytes]:
        limit = self.config.max_body_bytes
        body = await _read_body(request, limit)
        if oip:
            parsed = protocol.parse_infer(
                body, deployment.schema, max_bytes=limit, outputs=deployment.outputs
            )
        else:
            parsed = protocol.parse_predict(body, deployment.schema, max_bytes=limit)
        answer = await deployment.batcher.submit(parsed, parsed.input.n_rows)
        if oip:
            content = protocol.infer_response(
                answer, model=name, version=deployment.version, request_id=parsed.id or request_id
            )
        else:
            content = protocol.predict_response(
                answer["predict"], model=name, version=deployment.version, request_id=request_id
            )
        return parsed, answer, content


def _deployment(models: ServedModels, name: str, version: str | None) -> Deployment:
    deployment = _served(models, name).current
    if deployment is None:
        raise protocol.RequestError(503, f"model {name!r} is still loading; retry shortly", None)
    if version is not None and version != deployment.version:
        raise protocol.RequestError(
            404,
            f"model {name!r} version {version!r} is not served here; "
            f"version {deployment.version} is",
            "version",
        )
    return deployment


def _served(models: ServedModels, name: str) -> ServedModel:
    try:
        return models.get(name)
    except NotFound as exc:
        raise protocol.RequestError(404, str(exc), "model") from None


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return uuid.uuid4().hex


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise protocol.RequestError(
            413, f"request body of {declared} bytes is over the limit of {limit}", None
        )
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise protocol.RequestError(
                    413, f"request body is over the limit of {limit} bytes", None
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise protocol.RequestError(400, "the client disconnected mid-request", None) from None
    return b"".join(chunks)


def _call_hook(hook: Any, record: InferenceRecord) -> None:
    try:
        hook(record)
    except Exception:  # a broken log must not turn an answered request into an error
        log.exception("on_prediction hook failed for request %s", record.request_id)


# --- metadata, health and metrics ----------------------------------------------------------


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=_JSON)


def _add_metadata_routes(app: FastAPI, models: ServedModels, config: ServeConfig) -> None:
    responses = schemas.metadata_responses()

    @app.get("/v2", summary="Server metadata", responses=responses["server"])
    async def server_metadata() -> Response:
        return _json({"name": "segue", "version": __version__, "extensions": EXTENSIONS})

    @app.get("/v2/health/live", summary="Liveness", responses=responses["live"])
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", summary="Readiness", responses=responses["ready"])
    async def ready() -> Response:
        is_ready = models.ready
        return _json({"ready": is_ready}, 200 if is_ready else 503)

    @app.get("/v2/models/{name}", summary="Model metadata", responses=responses["model"])
    async def model_metadata(name: str) -> Response:
        return _json(schemas.model_metadata(name, _deployment(models, name, None)))

    @app.get(
        "/v2/models/{name}/versions/{version}",
        summary="Model version metadata",
        responses=responses["model"],
    )
    async def version_metadata(name: str, version: str) -> Response:
        return _json(schemas.model_metadata(name, _deployment(models, name, version)))

    @app.get("/v2/models/{name}/ready", summary="Model readiness", responses=responses["ready"])
    async def model_ready(name: str) -> Response:
        return _model_ready(models, name, None)

    @app.get(
        "/v2/models/{name}/versions/{version}/ready",
        summary="Model version readiness",
        responses=responses["ready"],
    )
    async def version_ready(name: str, version: str) -> Response:
        return _model_ready(models, name, version)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(config.metrics.exposition(), media_type=CONTENT_TYPE)


def _model_ready(models: ServedModels, name: str, version: str | None) -> Response:
    if _served(models, name).current is None:
        return _json({"name": name, "ready": False}, 503)
    _deployment(models, name, version)  # 404 for a version not served
    return _json({"name": name, "ready": True})


# --- errors --------------------------------------------------------------------------------


def _error(request: Request, status: int, message: str, field: str | None = None) -> Response:
    request_id = _request_id(request)
    body = protocol.error_body(message, field, request_id)
    return Response(body, status, media_type=_JSON, headers={"x-request-id": request_id})


async def _segue_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SegueError)
    return _error(request, exc.http_status, str(exc), getattr(exc, "field", None))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route {request.url.path!r}; see /docs for this server's API"
    else:
        message = str(exc.detail)
    response = _error(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback after this handler answers.
    return _error(request, 500, f"internal error ({type(exc).__name__}); see the server log")
