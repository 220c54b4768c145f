"""The inference server's HTTP app: Open Inference Protocol v2, ``/predict``, metrics, docs.

The two hot routes (``POST /v2/models/{name}[/versions/{v}]/infer`` and ``POST /predict``) go
from the app's ``__call__`` straight to a plain ASGI handler (:mod:`segue.serving.inference`),
past FastAPI's middleware and routing: they read the raw body, parse and check it with orjson
and NumPy, wait for the batcher, and answer with orjson bytes. No pydantic model and no
DataFrame is built per request; pydantic only describes the API in ``/docs``. Everything else
(metadata, health, metrics, docs) is ordinary FastAPI.

Example::

    >>> config = ServeConfig()
    >>> app = create_app(ServedModels.of(config, {"cancer": model}), config)
    >>> # uvicorn.run(app) — or `segue serve models:/cancer/1`
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from segue.errors import SegueError
from segue.serving import access, metadata, responses, schemas
from segue.serving.auth import Guard
from segue.serving.config import Feedback, ServeConfig
from segue.serving.deployment import ServedModels
from segue.serving.feedback import check_json_content, parse_feedback
from segue.serving.inference import InferenceHandler
from segue.serving.intake import client_request_id, hot_target
from segue.serving.metrics import CONTENT_TYPE
from segue.serving.openapi import description, openapi
from segue.serving.targets import current_deployment, served_model
from segue.static.docs import add_docs
from segue.version import __version__

__all__ = ["create_app"]

log = logging.getLogger("segue.serving")

EXTENSIONS = ["segue-predict", "prometheus-metrics", "binary_tensor_data"]
#: The status of a "not ready" answer: the OIP health API says 200 for true and 4xx for
#: false, and Triton answers 400; 503 stays for inference sent before the model is loaded.
NOT_READY = 400
_Endpoint = Callable[..., Awaitable[Response]]
_JSON = "application/json"


def create_app(models: ServedModels, config: ServeConfig) -> FastAPI:
    """The ASGI app serving ``models``.

    ``app.state.models`` and ``app.state.config`` are the objects given, so a deployment can
    be replaced while the app runs (see :class:`~segue.serving.deployment.ServedModel`).
    """
    app = _ServingApp(
        title="Segue inference server",
        version=__version__,
        description=description(models),
        docs_url=None,  # add_docs below: Swagger UI from the package, not a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=partial(_lifespan, models=models, config=config),
    )
    app.state.models = models
    app.state.config = config
    app.state.metrics = config.metrics
    app.inference = InferenceHandler(models, config)
    route = _HotRoute(app.inference)
    for path in (
        "/predict",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ):
        # An ASGI app as the endpoint (Starlette calls it with scope, receive, send).
        app.router.routes.append(Route(path, route, methods=["POST"], include_in_schema=False))
    _add_metadata_routes(app, models, config)
    if config.on_feedback is not None:
        _add_feedback_route(app, models, config)
    app.add_exception_handler(SegueError, _segue_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.openapi = partial(openapi, app, models)  # type: ignore[method-assign]
    add_docs(app)
    access.check_routes(app)  # every route says who may call it
    if config.auth is not None and access.protect(app, config.auth.wrap):
        app.guard = config.auth  # the hot routes, answered past the router, check it too
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI, *, models: ServedModels, config: ServeConfig) -> AsyncIterator:
    assert isinstance(app, _ServingApp)
    async with AsyncExitStack() as background:
        for start in config.background:
            await background.enter_async_context(start())
        yield
        # uvicorn has stopped accepting and answered the in-flight requests by now; leaving
        # the stack stops what runs beside the server (no swap can start after this).
    await app.inference.settle()  # shadow requests still under way
    await models.drain()
    for callback in config.on_shutdown:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:  # one failing hook must not keep the others from running
            log.exception("shutdown hook %r failed", callback)


class _ServingApp(FastAPI):
    """FastAPI for everything but the hot routes, which go straight to the handler."""

    inference: InferenceHandler
    guard: Guard | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            target = hot_target(scope["path"])
            if target is not None:
                if self.guard is None or await self.guard.admit(scope, send):
                    await self.inference(scope, receive, send, target)
                return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = False

        async def tracked(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await super().__call__(scope, receive, tracked)
        except asyncio.CancelledError:
            # The server stopped and its grace period ran out (e.g. a /feedback body that
            # never came): a JSON 503, not uvicorn's traceback and text/plain 500.
            if not started:
                request_id = client_request_id(_header(scope, b"x-request-id"))
                body = responses.error_body("the server is stopping; retry", None, request_id)
                headers = [
                    (b"content-type", _JSON.encode()),
                    (b"content-length", b"%d" % len(body)),
                ]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class _HotRoute:
    """The hot routes as Starlette sees them: for 405s, and any request the fast dispatch in
    :class:`_ServingApp` did not take (e.g. under a mount prefix)."""

    def __init__(self, inference: InferenceHandler) -> None:
        self.inference = inference

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope.get("path_params", {})
        target = (params.get("name"), params.get("version"), "name" in params)
        await self.inference(scope, receive, send, target)


# --- metadata, health and metrics ----------------------------------------------------------


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=_JSON)


def _add_metadata_routes(app: FastAPI, models: ServedModels, config: ServeConfig) -> None:
    responses = schemas.metadata_responses()

    @app.get("/v2", summary="Server metadata", responses=responses["server"])
    async def server_metadata() -> Response:
        return _json({"name": "segue", "version": __version__, "extensions": EXTENSIONS})

    @_probe(app, "/v2/health/live", summary="Liveness", responses=responses["live"])
    async def live() -> Response:
        return _json({"live": True})

    @_probe(app, "/v2/health/ready", summary="Readiness", responses=responses["ready"])
    async def ready() -> Response:
        is_ready = models.ready
        return _json({"ready": is_ready}, 200 if is_ready else NOT_READY)

    @app.get("/v2/models/{name}", summary="Model metadata", responses=responses["model"])
    async def model_metadata(name: str) -> Response:
        deployment = current_deployment(models, name, None)
        served = served_model(models, name)
        body = metadata.model_metadata(name, deployment, served.versions)
        # Segue's extension: per route, the version serving and the one its alias wants.
        body["routes"] = [route.status() for route in served.all_routes()]
        return _json(body)

    @app.get(
        "/v2/models/{name}/versions/{version}",
        summary="Model version metadata",
        responses=responses["model"],
    )
    async def version_metadata(name: str, version: str) -> Response:
        return _json(metadata.model_metadata(name, current_deployment(models, name, version)))

    @_probe(app, "/v2/models/{name}/ready", summary="Model readiness", responses=responses["ready"])
    async def model_ready(name: str) -> Response:
        return _model_ready(models, name, None)

    @_probe(
        app,
        "/v2/models/{name}/versions/{version}/ready",
        summary="Model version readiness",
        responses=responses["ready"],
    )
    async def version_ready(name: str, version: str) -> Response:
        return _model_ready(models, name, version)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(config.metrics.exposition(), media_type=CONTENT_TYPE)


def _probe(app: FastAPI, path: str, **options: Any) -> Callable[[_Endpoint], _Endpoint]:
    """Register a health route for GET and HEAD (probes and load balancers send either);
    only GET is documented."""

    def register(endpoint: _Endpoint) -> _Endpoint:
        app.add_api_route(path, endpoint, methods=["GET"], **options)
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
        return endpoint

    return register


def _model_ready(models: ServedModels, name: str, version: str | None) -> Response:
    if not served_model(models, name).ready:
        return _json({"name": name, "ready": False}, NOT_READY)
    current_deployment(models, name, version)  # 404 for a version not served
    return _json({"name": name, "ready": True})


# --- feedback ------------------------------------------------------------------------------


def _add_feedback_route(app: FastAPI, models: ServedModels, config: ServeConfig) -> None:
    record = config.on_feedback
    assert record is not None

    @app.post(
        "/feedback",
        summary="Feedback: the true label of earlier predictions",
        status_code=202,
        responses=schemas.feedback_responses(),
        openapi_extra=schemas.feedback_request(),
    )
    async def feedback(request: Request) -> Response:
        check_json_content(request.headers.get("content-type"))
        items = parse_feedback(await request.body(), max_bytes=config.max_body_bytes)
        now = time.time()
        accepted = []
        for name, request_id, label in items:
            served = served_model(models, name or models.default.name)
            accepted.append(Feedback(served.name, request_id, label, now))
        if config.check_feedback is not None:  # may read the prediction log: off the loop
            await run_in_threadpool(config.check_feedback, accepted)
        for item in accepted:  # all checked first: a bad item refuses the whole request
            record(item)
        return _json({"accepted": len(accepted)}, 202)


# --- errors --------------------------------------------------------------------------------


def _error(request: Request, status: int, message: str, field: str | None = None) -> Response:
    request_id = client_request_id(request.headers.get("x-request-id"))
    body = responses.error_body(message, field, request_id)
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
