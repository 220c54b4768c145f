"""The two hot routes as one plain ASGI handler: raw bytes in, response bytes out.

``POST /predict`` and ``POST /v2/models/{name}[/versions/{version}]/infer`` skip FastAPI's
middleware and routing (about half the request ceiling): the app hands them straight here.
Each request picks one of the served name's routes (by weight, sticky on an ``x-routing-key``
header, or the route serving the version the URL names), reads that route's ``current``
deployment once and counts itself in it, parses and checks the body with
:mod:`segue.serving.protocol`, waits for its batch, and answers with its request id, version
(``x-model-version``) and route (``x-segue-route``). Every outcome is counted in the metrics
and offered to the ``on_prediction`` hook. Shadow routes then get the same body in the
background; their answers go only to the hook, with role ``"shadow"``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from starlette.types import Receive, Scope, Send

from segue.errors import SegueError
from segue.serving import binary, protocol, responses
from segue.serving.batching import BatcherClosed, PredictionFailed
from segue.serving.config import InferenceRecord, ServeConfig
from segue.serving.deployment import Deployment, Route, ServedModel, ServedModels
from segue.serving.intake import Call, Target, client_request_id, read_body
from segue.serving.targets import pick_route, served_model

__all__ = ["Answer", "InferenceHandler"]

log = logging.getLogger("segue.serving")

_JSON_HEADER = (b"content-type", b"application/json")
#: Most shadow requests waiting at once; beyond it shadowing is skipped (and counted) rather
#: than letting a slow shadow model pile up work and memory.
MAX_SHADOW_IN_FLIGHT = 1024
_BINARY_HEADER = binary.HEADER.encode()
_BYTES_HEADER = (b"content-type", b"application/octet-stream")


class Answer:
    """What one request is answered with: status, body, and who answered.

    ``json_length``: the size of the body's JSON part when binary tensor data follows it.
    """

    __slots__ = ("content", "json_length", "route", "status", "version")

    def __init__(
        self,
        status: int,
        content: bytes,
        version: str = "",
        route: str = "",
        json_length: int | None = None,
    ) -> None:
        self.status = status
        self.content = content
        self.version = version
        self.route = route
        self.json_length = json_length


class _Outcome:
    """How one attempt at a prediction went: what was parsed and predicted, or why not."""

    __slots__ = ("answer", "error", "field", "parsed", "status")

    def __init__(self) -> None:
        self.status = 200
        self.error: str | None = None
        self.field: str | None = None
        self.parsed: protocol.InferRequest | None = None
        self.answer: dict[str, Any] | None = None


#: What an attempt may fail with for the request's sake, not the server's: see
#: :meth:`InferenceHandler._refuse`. Anything else is a bug in the server.
_FAILURES = (SegueError, PredictionFailed, BatcherClosed)


class InferenceHandler:
    """Answers inference requests for ``models``."""

    def __init__(self, models: ServedModels, config: ServeConfig) -> None:
        self.models = models
        self.config = config
        self.metrics = config.metrics
        self._shadows: set[asyncio.Task] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        """Serve one ASGI HTTP request for ``target``."""
        given = declared = key = header_length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
            elif name == b"x-routing-key":
                key = value.decode("latin-1")
            elif name == _BINARY_HEADER:
                header_length = value.decode("latin-1")
        request_id = client_request_id(given)
        model, version, oip = target
        try:
            answer = await self.answer(
                model,
                version,
                oip,
                request_id,
                lambda: read_body(receive, declared, self.config),
                routing_key=key,
                header_length=header_length,
            )
        except asyncio.CancelledError:
            # The server stopped and its grace period ran out with this request under way:
            # answer in JSON and end quietly, not with uvicorn's traceback and text/plain 500.
            content = responses.error_body("the server is stopping; retry", None, request_id)
            answer = Answer(503, content)
        except Exception:  # our own bug: answer like ServerErrorMiddleware would, logged
            log.exception("request %s failed inside the server", request_id)
            content = responses.error_body("internal error; see the server log", None, request_id)
            answer = Answer(500, content)
        headers = [
            _JSON_HEADER if answer.json_length is None else _BYTES_HEADER,
            (b"content-length", str(len(answer.content)).encode()),
            (b"x-request-id", request_id.encode("latin-1")),
        ]
        if answer.status == 408 or self.config.body_reads.stopping:
            # The rest of the body may still come, or the server is going: drop the connection.
            headers.append((b"connection", b"close"))
        if answer.json_length is not None:
            headers.append((_BINARY_HEADER, str(answer.json_length).encode()))
        if answer.version:
            headers.append((b"x-model-version", answer.version.encode()))
        if answer.route:
            headers.append((b"x-segue-route", answer.route.encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.content})

    async def answer(
        self,
        name: str | None,
        version: str | None,
        oip: bool,
        request_id: str,
        read_body: Callable[[], Awaitable[bytes]],
        *,
        routing_key: str | None = None,
        header_length: str | None = None,
    ) -> Answer:
        """The :class:`Answer` to one request; never raises for a request's content.

        ``header_length``: the request's ``Inference-Header-Content-Length`` (binary tensors).
        """
        arrived = time.time()
        started = time.perf_counter()
        name = name if name is not None else self.models.default.name
        call = Call(name, version, oip, header_length)
        model = served_version = label = ""
        role = "primary"
        served: ServedModel | None = None
        deployment: Deployment | None = None
        body = b""
        outcome = _Outcome()
        json_length = None
        try:
            served = served_model(self.models, name)
            route = pick_route(served, version, routing_key)
            assert route.current is not None  # pick_route answers 503 while it is loading
            model, label, role = name, route.label, route.role
            served_version = route.current.version
            # The body is read before the request counts against a deployment: a client that
            # stalls (408 after the body timeout) must never keep an old version from draining.
            with route.current.batcher.incoming():  # only a hint to the batch about to go
                body = await read_body()
            requests = self.metrics.requests
            # No await between reading `current` and counting in it: a swap cannot retire
            # this deployment before the request is answered.
            deployment = route.current
            deployment.in_flight.enter()
            requests.enter(name)
            served_version = deployment.version
            try:
                await self._predict(outcome, deployment, body, call)
                assert outcome.parsed is not None and outcome.answer is not None
                content, json_length = _format(
                    outcome.answer, outcome.parsed, name, served_version, label, oip, request_id
                )
            finally:
                requests.leave(name)
                deployment.in_flight.leave()
        except _FAILURES as exc:
            self._refuse(outcome, exc, model, served_version)
            content = responses.error_body(outcome.error or "", outcome.field, request_id)
            if outcome.status == 500:
                log.error(
                    "request %s to %s version %s: %s",
                    request_id,
                    model,
                    served_version,
                    outcome.error,
                )
        latency = time.perf_counter() - started
        self.metrics.observe_request(model, served_version, outcome.status, latency)
        self._record(
            outcome, request_id, arrived, model or name, served_version, latency, role, label
        )
        if outcome.parsed is not None and served is not None and served.shadows:
            self._shadow(served, deployment, body, call, request_id, arrived)
        return Answer(outcome.status, content, served_version, label, json_length)

    async def _predict(
        self, outcome: _Outcome, deployment: Deployment, body: bytes, call: Call
    ) -> None:
        """Parse ``body`` for ``deployment`` and wait for its batch, into ``outcome``."""
        outcome.parsed = parsed = self._parse(body, deployment, call)
        outcome.answer = await deployment.batcher.submit(parsed, parsed.input.n_rows)

    def _refuse(self, outcome: _Outcome, exc: Exception, model: str, version: str) -> None:
        """The one error ladder: why an attempt failed, as a status and message in
        ``outcome`` (model failures counted in the metrics)."""
        if isinstance(exc, SegueError):  # RequestError included: the caller's mistake, 4xx
            outcome.status, outcome.error = exc.http_status, str(exc)
            outcome.field = getattr(exc, "field", None)
        elif isinstance(exc, PredictionFailed):
            outcome.status, outcome.error = 500, f"the model failed to predict: {exc}"
            self.metrics.model_errors.labels(model, version).inc()
        else:  # BatcherClosed: drained under this request (a stop or a swap)
            outcome.status, outcome.error = 503, str(exc)

    def _record(
        self,
        outcome: _Outcome,
        request_id: str,
        arrived: float,
        model: str,
        version: str,
        latency: float,
        role: str,
        route: str,
    ) -> None:
        """Offer the attempt to the ``on_answer`` hook (answered with an array of
        predictions) or else the ``on_prediction`` hook, if there is one."""
        answer = outcome.answer
        answered = self.config.on_answer
        if answered is not None and answer is not None and outcome.status == 200:
            output = answer.get("predict")
            if type(output) is np.ndarray:
                assert outcome.parsed is not None  # answered, so parsed
                input = outcome.parsed.input
                try:
                    answered(
                        request_id, arrived, model, version, role, input, output, latency * 1000
                    )
                except Exception:  # a broken log must not turn an answered request into an error
                    log.exception("on_answer hook failed for request %s", request_id)
                return
        hook = self.config.on_prediction
        if hook is None:
            return
        record = InferenceRecord(
            request_id,
            arrived,
            model,
            version,
            latency * 1000,
            outcome.status,
            input=None if outcome.parsed is None else outcome.parsed.input,
            output=None if outcome.answer is None else outcome.answer.get("predict"),
            error=outcome.error,
            role=role,
            route=route,
        )
        _offer(hook, record)

    def _shadow(
        self,
        served: ServedModel,
        answered: Deployment | None,
        body: bytes,
        call: Call,
        request_id: str,
        arrived: float,
    ) -> None:
        """Send the request to each shadow in the background (after the caller's answer)."""
        for route in served.shadows:
            deployment = route.current
            if deployment is None or _same_version(deployment, answered):
                continue  # a shadow of the version that answered would only repeat its answer
            if len(self._shadows) >= MAX_SHADOW_IN_FLIGHT:
                self.metrics.shadow_skipped.labels(served.name).inc()
                continue
            deployment.in_flight.enter()
            task = asyncio.get_running_loop().create_task(
                self._answer_shadow(route, deployment, body, call, request_id, arrived)
            )
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _answer_shadow(
        self,
        route: Route,
        deployment: Deployment,
        body: bytes,
        call: Call,
        request_id: str,
        arrived: float,
    ) -> None:
        started = time.perf_counter()
        outcome = _Outcome()
        try:
            # The shadow's own version answers: a model_version the body names is the
            # primary's, not the shadow's.
            await self._predict(outcome, deployment, body, call._replace(shadow=True))
        except _FAILURES as exc:  # e.g. the shadow's signature refuses what the route took
            self._refuse(outcome, exc, call.name, deployment.version)
        finally:
            deployment.in_flight.leave()
        latency = time.perf_counter() - started
        self._record(
            outcome,
            request_id,
            arrived,
            call.name,
            deployment.version,
            latency,
            "shadow",
            route.label,
        )

    async def settle(self) -> None:
        """Wait for the shadow requests under way (at shutdown, before the batchers drain)."""
        while self._shadows:
            await asyncio.gather(*self._shadows, return_exceptions=True)

    def _parse(self, body: bytes, deployment: Deployment, call: Call) -> protocol.InferRequest:
        limit = self.config.max_body_bytes
        if call.oip:
            return protocol.parse_infer(
                body,
                deployment.schema,
                max_bytes=limit,
                outputs=deployment.outputs,
                model=call.name,
                version=None if call.shadow else deployment.version,
                url_version=call.version,
                header_length=call.header_length,
            )
        return protocol.parse_predict(body, deployment.schema, max_bytes=limit)


def _format(
    answer: dict[str, Any],
    parsed: protocol.InferRequest,
    name: str,
    version: str,
    route: str,
    oip: bool,
    request_id: str,
) -> tuple[bytes, int | None]:
    """The response body, and the size of its JSON part when binary outputs follow it."""
    if oip:
        return responses.infer_response(
            answer,
            model=name,
            version=version,
            request_id=parsed.id or request_id,
            binary_outputs=parsed.binary,
        )
    content = responses.predict_response(
        answer["predict"], model=name, version=version, request_id=request_id, route=route
    )
    return content, None


def _same_version(a: Deployment, b: Deployment | None) -> bool:
    """Whether two deployments serve the same version of the same model."""
    return b is not None and a.version == b.version and _model_name(a) == _model_name(b)


def _model_name(deployment: Deployment) -> str:
    registered = deployment.model.version
    return deployment.model.source if registered is None else registered.model_name


def _offer(hook: Callable[[InferenceRecord], None], record: InferenceRecord) -> None:
    try:
        hook(record)
    except Exception:  # a broken log must not turn an answered request into an error
        log.exception("on_prediction hook failed for request %s", record.request_id)
