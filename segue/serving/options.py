"""What ``segue serve`` was asked to do: its options, checked once, and carried to workers.

:class:`ServeOptions` refuses a bad option (one line naming the flag, exit code 2) before any
model is loaded; with ``--workers N`` the options travel to each worker in ``SEGUE_SERVE_*``
variables (:meth:`ServeOptions.to_env`, :meth:`ServeOptions.from_env`). The app is built in
:mod:`segue.serving.assembly` and served by :mod:`segue.serving.server`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from segue.errors import InvalidArgument
from segue.models.uri import parse_model_uri
from segue.serving.routing import RouteSpec, model_uri, parse_routes, route_label

# The serving config (NumPy, pandas) is imported only by config(): the parent of
# `segue serve --workers N` checks the options and the models without importing them.
if TYPE_CHECKING:
    from segue.serving.config import ServeConfig

__all__ = ["POLL_SECONDS", "ServeOptions", "served_name"]

_ENV = "SEGUE_SERVE_"

#: ``--poll-s``: :data:`segue.serving.watcher.POLL_SECONDS`, which imports the serving stack.
POLL_SECONDS = 5.0


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
    auth: bool = False
    api_key_file: str | None = None

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
        if self.api_key_file is not None:
            from segue.serving.auth import KeyFile

            object.__setattr__(self, "api_key_file", os.path.abspath(self.api_key_file))
            KeyFile(self.api_key_file)  # refuse a missing file, or one without a good key
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
        from segue.serving.config import MIB, ServeConfig

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
            "AUTH": "1" if self.auth else "0",
            "API_KEY_FILE": self.api_key_file or "",
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
                auth=get("AUTH", "0") == "1",
                api_key_file=get("API_KEY_FILE", "") or None,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidArgument(f"{_ENV}* variables are incomplete or malformed: {exc}") from None


def served_name(uri: str) -> str:
    """The name a model URI is served under: the registered name, else the folder name."""
    parsed = parse_model_uri(uri)
    if parsed.kind == "models" and parsed.name is not None:
        return parsed.name
    return os.path.basename(os.path.normpath(parsed.path or "")) or "model"
