"""Running the inference server: load and warm up the models, wire the logs, then uvicorn.

``segue serve`` calls :func:`run`. With one worker the models are loaded in this process and
the app handed to uvicorn; with several, uvicorn starts ``app_from_env`` in each worker (the
options travel in ``SEGUE_SERVE_*`` variables) and each worker loads the models itself. Either
way the port opens, and ``/v2/health/ready`` says yes, only once every route's model is loaded
(hashes verified) and has answered one warm-up prediction.

:func:`build_app` wires the rest: one route per ``--route`` (or the one ``MODEL_URI``) and per
``--shadow``, a registry watcher for each alias route (:mod:`segue.serving.watcher`), and the
prediction and feedback logs (:mod:`segue.serving.recorder`), flushed every ``--log-flush-s``
and closed after the last request on shutdown.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import logging
import os
import random
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI

from segue.errors import InvalidArgument
from segue.models.package import LoadedModel
from segue.models.uri import parse_model_uri
from segue.serving.app import create_app
from segue.serving.config import MIB, ServeConfig
from segue.serving.deployment import (
    Deployment,
    Route,
    ServedModel,
    ServedModels,
    deploy,
    predict_batch,
)
from segue.serving.protocol import parse_predict
from segue.serving.recorder import Recorder, served_signatures
from segue.serving.routing import RouteSpec, model_uri, parse_routes, role_of, route_label
from segue.serving.shutdown import stop_reads_on_signal
from segue.serving.watcher import POLL_SECONDS, AliasWatcher, Watchers, watched

__all__ = [
    "ServeOptions",
    "app_from_env",
    "build_app",
    "load_deployment",
    "load_routes",
    "read_input_example",
    "run",
]

log = logging.getLogger("segue.serving")

_EXAMPLE = "input_example.json"
#: Seconds uvicorn gives in-flight requests to finish after SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 30
_ENV = "SEGUE_SERVE_"


@dataclass(frozen=True)
class ServeOptions:
    """What ``segue serve`` was asked to do.

    ``model_uri`` (one route of weight 100) and ``routes`` (``URI=WEIGHT`` each) are
    alternatives: give exactly one of them.
    """

    model_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch_size: int = 64
    max_latency_ms: float = 5.0
    max_body_mb: float = 8.0
    body_timeout_s: float = 30.0
    name: str | None = None
    routes: tuple[str, ...] = ()
    shadows: tuple[str, ...] = ()
    poll_s: float = POLL_SECONDS
    log: bool = True
    log_flush_s: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", tuple(self.routes))
        object.__setattr__(self, "shadows", tuple(self.shadows))
        if not 0 <= self.port <= 65535:
            raise InvalidArgument(f"--port must be 0..65535, got {self.port}")
        if self.workers < 1:
            raise InvalidArgument(f"--workers must be >= 1, got {self.workers}")
        if not self.max_body_mb > 0:
            raise InvalidArgument(f"--max-body-mb must be > 0, got {self.max_body_mb}")
        if not self.body_timeout_s > 0:
            raise InvalidArgument(f"--body-timeout must be > 0 seconds, got {self.body_timeout_s}")
        if self.model_uri is not None and self.routes:
            raise InvalidArgument("give MODEL_URI or --route, not both (MODEL_URI is one route)")
        if self.model_uri is None and not self.routes:
            raise InvalidArgument("give a MODEL_URI to serve, or --route URI=WEIGHT")
        if not self.poll_s > 0:
            raise InvalidArgument(f"--poll-s must be > 0 seconds, got {self.poll_s}")
        if not self.log_flush_s > 0:
            raise InvalidArgument(f"--log-flush-s must be > 0 seconds, got {self.log_flush_s}")
        if self.shadows and not self.log:
            raise InvalidArgument(
                "--shadow answers go only to the prediction log: drop --no-log or --shadow"
            )
        self.route_specs()  # refuse malformed routes and shadows here, before loading anything
        self.shadow_specs()

    def route_specs(self) -> list[RouteSpec]:
        """The routes requests are spread over (``MODEL_URI`` alone: one of weight 100)."""
        if self.model_uri is not None:
            return [RouteSpec(self.model_uri, 100.0, route_label(self.model_uri))]
        return parse_routes(self.routes)

    def shadow_specs(self) -> list[RouteSpec]:
        specs = []
        for text in self.shadows:
            try:
                uri = model_uri(text)
            except InvalidArgument as exc:
                raise InvalidArgument(f"--shadow {text!r}: {exc}") from None
            specs.append(RouteSpec(uri, 0.0, route_label(uri)))
        if len({spec.uri for spec in specs}) != len(specs):
            raise InvalidArgument("--shadow: a URI is given twice")
        return specs

    def served_name(self) -> str:
        """``--name``, else the first route's registered model name (or folder name)."""
        return self.name or served_name(self.route_specs()[0].uri)

    def config(self) -> ServeConfig:
        return ServeConfig(
            max_batch_size=self.max_batch_size,
            max_latency_ms=self.max_latency_ms,
            max_body_bytes=int(self.max_body_mb * MIB),
            body_timeout_s=self.body_timeout_s,
        )

    def to_env(self) -> dict[str, str]:
        values = {
            "MODEL_URI": self.model_uri or "",
            "ROUTES": orjson.dumps(self.routes).decode(),
            "SHADOWS": orjson.dumps(self.shadows).decode(),
            "MAX_BATCH_SIZE": str(self.max_batch_size),
            "MAX_LATENCY_MS": repr(self.max_latency_ms),
            "MAX_BODY_MB": repr(self.max_body_mb),
            "BODY_TIMEOUT_S": repr(self.body_timeout_s),
            "NAME": self.name or "",
            "POLL_S": repr(self.poll_s),
            "LOG": "1" if self.log else "0",
            "LOG_FLUSH_S": repr(self.log_flush_s),
        }
        return {_ENV + key: value for key, value in values.items()}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServeOptions:
        def get(key: str, default: str) -> str:
            return env.get(_ENV + key) or default

        try:
            return cls(
                model_uri=get("MODEL_URI", "") or None,
                routes=tuple(orjson.loads(get("ROUTES", "[]"))),
                shadows=tuple(orjson.loads(get("SHADOWS", "[]"))),
                max_batch_size=int(get("MAX_BATCH_SIZE", "64")),
                max_latency_ms=float(get("MAX_LATENCY_MS", "5")),
                max_body_mb=float(get("MAX_BODY_MB", "8")),
                body_timeout_s=float(get("BODY_TIMEOUT_S", "30")),
                name=get("NAME", "") or None,
                poll_s=float(get("POLL_S", str(POLL_SECONDS))),
                log=get("LOG", "1") != "0",
                log_flush_s=float(get("LOG_FLUSH_S", "1")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidArgument(f"{_ENV}* variables are incomplete or malformed: {exc}") from None


def served_name(uri: str) -> str:
    """The name a model URI is served under: the registered name, else the folder name."""
    parsed = parse_model_uri(uri)
    if parsed.kind == "models" and parsed.name is not None:
        return parsed.name
    return os.path.basename(os.path.normpath(parsed.path or "")) or "model"


def load_deployment(uri: str, name: str, config: ServeConfig) -> Deployment:
    """Load ``uri`` (verifying every hash), warm it up, and deploy it as ``name``.

    Raises:
        SegueError: the model cannot be found, fails verification, has no signature, or
            cannot predict on its own input example.
    """
    from segue.registry.service import get_registry

    started = time.perf_counter()
    registry = get_registry()
    model = registry.load_model(uri)
    example = read_input_example(registry, uri, model)
    deployment = deploy(name, model, config, input_example=example)
    if example is not None:
        _warm_up(deployment, example)
    seconds = time.perf_counter() - started
    config.metrics.load_seconds.labels(name, deployment.version).set(seconds)
    return dataclasses.replace(deployment, load_seconds=seconds)


def read_input_example(registry: Any, uri: str, model: LoadedModel) -> dict[str, Any] | None:
    """The package's input example as a ``/predict`` body (None if it has none).

    Read from the content-addressed store by the sha256 the manifest records, so it is
    verified like the model's own files.
    """
    entry = model.manifest.files.get(_EXAMPLE)
    if entry is None:
        return None
    parsed = parse_model_uri(uri)
    if parsed.kind == "path" and parsed.path is not None:
        raw = (Path(parsed.path) / _EXAMPLE).read_bytes()
    else:  # blobs are addressed by the sha256 the manifest records
        raw = registry.tracking.artifacts.read_bytes(entry["sha256"], entry["size"], name=_EXAMPLE)
    example = orjson.loads(raw)
    if isinstance(example, dict) and "columns" in example and "data" in example:
        return {"dataframe_split": {"columns": example["columns"], "data": example["data"]}}
    if isinstance(example, list):
        return (
            {"inputs": example}
            if example and not isinstance(example[0], dict)
            else {"instances": example}
        )
    return None


def _warm_up(deployment: Deployment, example: dict[str, Any]) -> None:
    """One prediction through the serving path (parse, combine, predict) before going ready."""
    request = parse_predict(orjson.dumps(example), deployment.schema)
    try:
        predict_batch(deployment.model, [request])
    except Exception as exc:  # the model's own code
        raise InvalidArgument(
            f"model {deployment.model.source}: the warm-up prediction on its input example "
            f"failed: {type(exc).__name__}: {exc}"
        ) from exc


def build_app(options: ServeOptions, *, rng: random.Random | None = None) -> FastAPI:
    """Load every route's model and create the app (this is what each worker does).

    Wires a registry watcher for each route or shadow serving an alias, the signal handler
    that cuts stalled body reads short on SIGTERM, and the prediction and feedback logs
    (unless ``options.log`` is off). ``rng``: the routing's random source.
    """
    name = options.served_name()
    config = options.config()
    routes, shadows = load_routes(options, name, config)
    watching = [route for route in (*routes, *shadows) if watched(route.uri)]
    if watching:
        watchers = _watchers(watching, name, config, options.poll_s)
        config = dataclasses.replace(config, background=(watchers,))
    # SIGTERM first cuts short the request bodies still arriving (503 at once), so a stalled
    # client never holds the shutdown; then uvicorn's own handler stops gracefully.
    stop_reads = partial(stop_reads_on_signal, config.body_reads)
    config = dataclasses.replace(config, background=(*config.background, stop_reads))
    if options.log:
        from segue.tracking.client import get_client

        # The root recorded in the metadata store, as for model files, so that readers in
        # another folder (segue predictions, segue monitor) find the logs.
        uri = get_client().artifact_uri
        from segue.registry.service import get_registry

        # Labels are checked against the signature of the version that answered them.
        signatures = served_signatures(routes, get_registry())
        recorder = Recorder(uri, [name], flush_interval=options.log_flush_s, signatures=signatures)
        recorder.start()
        config = dataclasses.replace(
            config,
            on_prediction=recorder.record_prediction,
            on_feedback=recorder.record_feedback,
            check_feedback=recorder.check_feedback,
            on_shutdown=(recorder.close,),
        )
    served = ServedModel(name, routes=routes, shadows=shadows, rng=rng)
    return create_app(ServedModels([served]), config)


def load_routes(
    options: ServeOptions, name: str, config: ServeConfig
) -> tuple[list[Route], list[Route]]:
    """The routes and shadow routes of ``options``, each with its model loaded and warmed up."""
    specs = options.route_specs()
    weights = [spec.weight for spec in specs]
    routes = [
        Route(
            spec.label,
            load_deployment(spec.uri, name, config),
            uri=spec.uri,
            weight=spec.weight,
            role=role_of(k, weights),
        )
        for k, spec in enumerate(specs)
    ]
    shadows = [
        Route(spec.label, load_deployment(spec.uri, name, config), uri=spec.uri, role="shadow")
        for spec in options.shadow_specs()
    ]
    return routes, shadows


def _watchers(routes: list[Route], name: str, config: ServeConfig, poll_s: float) -> Watchers:
    from segue.registry.service import get_registry

    registry = get_registry()

    def resolve(uri: str) -> int:
        return registry.resolve(uri).version

    def load(uri: str) -> Deployment:
        return load_deployment(uri, name, config)

    return Watchers(
        [
            AliasWatcher(r, name, resolve=resolve, load=load, poll_s=poll_s, metrics=config.metrics)
            for r in routes
        ],
        listen=registry.alias_listener(),
        metrics=config.metrics,
    )


def app_from_env() -> FastAPI:
    """uvicorn's app factory for ``--workers > 1``: options from ``SEGUE_SERVE_*``."""
    _log_to_stderr()
    return build_app(ServeOptions.from_env(os.environ))


def describe(served: ServedModel) -> str:
    """What is served, for the start-up line: ``models:/churn/3 as 'churn' version 3``."""
    routes = served.routes

    def version(route: Route) -> str:
        return "none" if route.current is None else route.current.version

    if len(routes) == 1 and not served.shadows:
        return f"{routes[0].uri} as {served.name!r} version {version(routes[0])}"
    parts = [f"{r.label}={r.weight:g} (version {version(r)})" for r in routes]
    parts += [f"shadow {r.label} (version {version(r)})" for r in served.shadows]
    return f"{', '.join(parts)} as {served.name!r}"


def _log_to_stderr() -> None:
    """Show the server's own INFO lines (version swaps) and warnings on stderr, once."""
    logger = logging.getLogger("segue")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("segue: %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _uvicorn_options(options: ServeOptions) -> dict[str, Any]:
    def available(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    return {
        "host": options.host,
        "port": options.port,
        # uvloop also sets TCP_NODELAY on accepted sockets (no 40 ms stalls on keep-alive).
        "loop": "uvloop" if available("uvloop") else "asyncio",
        "http": "httptools" if available("httptools") else "h11",
        "access_log": False,  # it halves the request ceiling; metrics and the log record them
        "log_level": "warning",
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "lifespan": "on",
    }


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not listening yet; uvicorn listens on it).

    Raises:
        InvalidArgument: the address is in use or cannot be bound (one line, exit code 2).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidArgument(
                f"--port {port}: {host}:{port} is already in use; pick another --port or stop "
                "what listens there"
            ) from None
        raise InvalidArgument(
            f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)  # the workers of --workers N share it
    return sock


def run(options: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM; then finish in-flight requests and run shutdown hooks.

    The port is bound first, before any model is loaded, so a busy port fails at once with
    one line; the "serving … on http://…" line comes only once the port is ours.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    _log_to_stderr()
    sock = bind(options.host, options.port)
    server: Any = None
    try:
        if options.workers == 1:
            app: Any = build_app(options)
            what = describe(app.state.models.default)
        else:
            # Fail here, with one clear line, rather than in N workers that uvicorn would
            # restart; this also fills the local package cache the workers load from.
            name = options.served_name()
            routes, shadows = load_routes(options, name, options.config())
            what = describe(ServedModel(name, routes=routes, shadows=shadows))
            os.environ.update(options.to_env())
            app = "segue.serving.server:app_from_env"
        config = uvicorn.Config(
            app,
            factory=options.workers > 1,
            workers=options.workers,
            **_uvicorn_options(options),
        )
        port = sock.getsockname()[1]
        print(
            f"segue: serving {what} on http://{options.host}:{port} "
            f"({options.workers} worker(s)); docs at /docs",
            file=sys.stderr,
            flush=True,
        )
        server = uvicorn.Server(config)
        if options.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:  # a second Ctrl+C: uvicorn has stopped already
        pass
    finally:
        sock.close()
    if options.workers == 1 and server is not None and not server.started:
        sys.exit(3)  # the app's startup failed; uvicorn has logged why
