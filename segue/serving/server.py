"""Running the inference server: load and warm up the model, then uvicorn.

``segue serve`` calls :func:`run`. With one worker the model is loaded in this process and
the app handed to uvicorn; with several, uvicorn starts ``app_from_env`` in each worker (the
options travel in ``SEGUE_SERVE_*`` variables) and each worker loads the model itself. Either
way the port opens, and ``/v2/health/ready`` says yes, only once the model is loaded (hashes
verified) and has answered one warm-up prediction.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI

from segue.errors import InvalidArgument
from segue.models.package import LoadedModel
from segue.models.uri import parse_model_uri
from segue.serving.app import create_app
from segue.serving.config import MIB, ServeConfig
from segue.serving.deployment import Deployment, ServedModel, ServedModels, deploy, predict_batch
from segue.serving.protocol import parse_predict

__all__ = [
    "ServeOptions",
    "app_from_env",
    "build_app",
    "load_deployment",
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
    """What ``segue serve`` was asked to do."""

    model_uri: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch_size: int = 64
    max_latency_ms: float = 5.0
    max_body_mb: float = 8.0
    name: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidArgument(f"--port must be 0..65535, got {self.port}")
        if self.workers < 1:
            raise InvalidArgument(f"--workers must be >= 1, got {self.workers}")
        if not self.max_body_mb > 0:
            raise InvalidArgument(f"--max-body-mb must be > 0, got {self.max_body_mb}")

    def config(self) -> ServeConfig:
        return ServeConfig(
            max_batch_size=self.max_batch_size,
            max_latency_ms=self.max_latency_ms,
            max_body_bytes=int(self.max_body_mb * MIB),
        )

    def to_env(self) -> dict[str, str]:
        values = {
            "MODEL_URI": self.model_uri,
            "MAX_BATCH_SIZE": str(self.max_batch_size),
            "MAX_LATENCY_MS": repr(self.max_latency_ms),
            "MAX_BODY_MB": repr(self.max_body_mb),
            "NAME": self.name or "",
        }
        return {_ENV + key: value for key, value in values.items()}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServeOptions:
        try:
            return cls(
                model_uri=env[_ENV + "MODEL_URI"],
                max_batch_size=int(env.get(_ENV + "MAX_BATCH_SIZE", "64")),
                max_latency_ms=float(env.get(_ENV + "MAX_LATENCY_MS", "5")),
                max_body_mb=float(env.get(_ENV + "MAX_BODY_MB", "8")),
                name=env.get(_ENV + "NAME") or None,
            )
        except (KeyError, ValueError) as exc:
            raise InvalidArgument(f"{_ENV}* variables are incomplete or malformed: {exc}") from None


def served_name(uri: str) -> str:
    """The name a model URI is served under: the registered name, else the folder name."""
    parsed = parse_model_uri(uri)
    if parsed.kind == "models":
        return parsed.name
    return os.path.basename(os.path.normpath(parsed.path)) or "model"


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
    if parsed.kind == "path":
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


def build_app(options: ServeOptions) -> FastAPI:
    """Load the model and create the app (this is what each worker does)."""
    config = options.config()
    name = options.name or served_name(options.model_uri)
    deployment = load_deployment(options.model_uri, name, config)
    return create_app(ServedModels([ServedModel(name, deployment)]), config)


def app_from_env() -> FastAPI:
    """uvicorn's app factory for ``--workers > 1``: options from ``SEGUE_SERVE_*``."""
    return build_app(ServeOptions.from_env(os.environ))


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


def run(options: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM; then finish in-flight requests and run shutdown hooks."""
    import uvicorn

    name = options.name or served_name(options.model_uri)
    if options.workers == 1:
        app: Any = build_app(options)
        version = app.state.models.get(name).current.version
    else:
        # Fail here, with one clear line, rather than in N workers that uvicorn would restart;
        # this also fills the local package cache the workers load from.
        version = load_deployment(options.model_uri, name, options.config()).version
        os.environ.update(options.to_env())
        app = "segue.serving.server:app_from_env"
    print(
        f"segue: serving {options.model_uri} as {name!r} version {version} on "
        f"http://{options.host}:{options.port} ({options.workers} worker(s)); docs at /docs",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        factory=options.workers > 1,
        workers=options.workers if options.workers > 1 else None,
        **_uvicorn_options(options),
    )
