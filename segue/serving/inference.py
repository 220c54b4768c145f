"""The two hot routes as one plain ASGI handler: raw bytes in, response bytes out.

``POST /predict`` and ``POST /v2/models/{name}[/versions/{version}]/infer`` skip FastAPI's
middleware and routing (about half the request ceiling): the app hands them straight here.
Each request reads ``ServedModel.current`` once and keeps that deployment to the end, parses
and checks the body with :mod:`segue.serving.protocol`, waits for its batch, and answers with
its request id and version. Every outcome is counted in the metrics and offered to the
``on_prediction`` hook.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from segue.errors import NotFound, SegueError
from segue.serving import protocol
from segue.serving.batching import BatcherClosed, PredictionFailed
from segue.serving.config import InferenceRecord, ServeConfig
from segue.serving.deployment import Deployment, ServedModel, ServedModels

__all__ = ["InferenceHandler", "new_request_id"]

log = logging.getLogger("segue.serving")

_MAX_REQUEST_ID = 128
_MODELS = "/v2/models/"
_INFER = "/infer"
_JSON_HEADER = (b"content-type", b"application/json")
# A random per-process prefix and a counter: unique across workers and restarts, and much
# cheaper than uuid4 on the hot path.
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count()

Target = tuple[str | None, str | None, bool]  # (model name or None for default, version, oip)


def new_request_id() -> str:
    """A fresh 32-hex-digit request id."""
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


def client_request_id(value: str | None) -> str:
    """The caller's ``x-request-id`` when it is usable, else a new id."""
    if value and len(value) <= _MAX_REQUEST_ID and value.isprintable():
        return value
    return new_request_id()


class InferenceHandler:
    """Answers inference requests for ``models``."""

    def __init__(self, models: ServedModels, config: ServeConfig) -> None:
        self.models = models
        self.config = config
        self.metrics = config.metrics
        self._in_flight: dict[str, Any] = {}

    @staticmethod
    def match(path: str) -> Target | None:
        """The route ``path`` names, or None if it is not a hot route."""
        if path == "/predict":
            return (None, None, False)
        if path.startswith(_MODELS) and path.endswith(_INFER):
            parts = path[len(_MODELS) : -len(_INFER)].split("/")
            if len(parts) == 1 and parts[0]:
                return (parts[0], None, True)
            if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
                return (parts[0], parts[2], True)
        return None

    async def __call__(
        self, scope: dict, receive: Callable, send: Callable, target: Target
    ) -> None:
        """Serve one ASGI HTTP request for ``target``."""
        given = declared = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                given = value.decode("latin-1")
            elif key == b"content-length":
                declared = value
        request_id = client_request_id(given)
        name, version, oip = target
        try:
            status, version_header, content = await self.answer(
                name, version, oip, request_id, lambda: _read(receive, declared, self.config)
            )
        except Exception:  # our own bug: answer like ServerErrorMiddleware would, logged
            log.exception("request %s failed inside the server", request_id)
            status, version_header = 500, ""
            content = protocol.error_body("internal error; see the server log", None, request_id)
        headers = [
            _JSON_HEADER,
            (b"content-length", str(len(content)).encode()),
            (b"x-request-id", request_id.encode("latin-1")),
        ]
        if version_header:
            headers.append((b"x-model-version", version_header.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def answer(
        self,
        name: str | None,
        version: str | None,
        oip: bool,
        request_id: str,
        read_body: Callable[[], Awaitable[bytes]],
    ) -> tuple[int, str, bytes]:
        """``(status, answering version or "", body)`` for one request; never raises for a
        request's content."""
        arrived = time.time()
        started = time.perf_counter()
        name = name if name is not None else self.models.default.name
        model = served_version = ""
        parsed: protocol.InferRequest | None = None
        answer: dict[str, Any] | None = None
        error = None
        try:
            deployment = current_deployment(self.models, name, version)
            model, served_version = name, deployment.version
            in_flight = self._gauge(name)
            in_flight.inc()
            try:
                with deployment.batcher.incoming():
                    parsed = self._parse(await read_body(), deployment, oip)
                answer = await deployment.batcher.submit(parsed, parsed.input.n_rows)
                content = self._format(answer, parsed, name, deployment.version, oip, request_id)
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
        hook = self.config.on_prediction
        if hook is not None:
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
            try:
                hook(record)
            except Exception:  # a broken log must not turn an answered request into an error
                log.exception("on_prediction hook failed for request %s", request_id)
        return status, served_version, content

    def _parse(self, body: bytes, deployment: Deployment, oip: bool) -> protocol.InferRequest:
        limit = self.config.max_body_bytes
        if oip:
            return protocol.parse_infer(
                body, deployment.schema, max_bytes=limit, outputs=deployment.outputs
            )
        return protocol.parse_predict(body, deployment.schema, max_bytes=limit)

    @staticmethod
    def _format(
        answer: dict[str, Any],
        parsed: protocol.InferRequest,
        name: str,
        version: str,
        oip: bool,
        request_id: str,
    ) -> bytes:
        if oip:
            return protocol.infer_response(
                answer, model=name, version=version, request_id=parsed.id or request_id
            )
        return protocol.predict_response(
            answer["predict"], model=name, version=version, request_id=request_id
        )

    def _gauge(self, name: str) -> Any:
        gauge = self._in_flight.get(name)
        if gauge is None:
            gauge = self._in_flight[name] = self.metrics.in_flight.labels(name)
        return gauge


def current_deployment(models: ServedModels, name: str, version: str | None) -> Deployment:
    """The deployment answering for ``name`` now (404 for another ``version``, 503 if none)."""
    deployment = served_model(models, name).current
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


def served_model(models: ServedModels, name: str) -> ServedModel:
    try:
        return models.get(name)
    except NotFound as exc:
        raise protocol.RequestError(404, str(exc), "model") from None


async def _read(receive: Callable, declared: bytes | None, config: ServeConfig) -> bytes:
    """The request body, refused with 413 as soon as it is known to be over the limit."""
    limit = config.max_body_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise protocol.RequestError(
            413, f"request body of {int(declared)} bytes is over the limit of {limit}", None
        )
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise protocol.RequestError(400, "the client disconnected mid-request", None)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise protocol.RequestError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
