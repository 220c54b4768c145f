"""Building the inference app: load and warm up the models, wire the watchers and the logs.

:func:`build_app` is what each worker does (:mod:`segue.serving.server` runs it): one route per
``--route`` (or the one ``MODEL_URI``) and per ``--shadow``, each model loaded (hashes
verified) and answering one warm-up prediction on its input example; a registry watcher for
each alias route (:mod:`segue.serving.watcher`); and the prediction and feedback logs
(:mod:`segue.serving.recorder`), flushed every ``--log-flush-s`` and closed after the last
request on shutdown.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI

from segue.errors import InvalidArgument
from segue.models.package import LoadedModel
from segue.models.uri import parse_model_uri
from segue.serving.app import create_app
from segue.serving.auth import Guard, KeyFile, TokenCache, remote_tokens, store_tokens
from segue.serving.config import ServeConfig
from segue.serving.deployment import (
    Deployment,
    Route,
    ServedModel,
    ServedModels,
    deploy,
    predict_batch,
)
from segue.serving.options import ServeOptions
from segue.serving.protocol import parse_predict
from segue.serving.recorder import Recorder, served_signatures
from segue.serving.routing import role_of
from segue.serving.shutdown import stop_reads_on_signal
from segue.serving.watcher import AliasWatcher, Watchers, watched

__all__ = ["build_app", "guard", "load_deployment", "load_routes", "read_input_example"]

_EXAMPLE = "input_example.json"


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
            on_answer=recorder.record_answer,
            on_feedback=recorder.record_feedback,
            check_feedback=recorder.check_feedback,
            on_shutdown=(recorder.close,),
        )
    if options.auth or options.api_key_file:
        config = dataclasses.replace(config, auth=guard(options))
    served = ServedModel(name, routes=routes, shadows=shadows, rng=rng)
    return create_app(ServedModels([served]), config)


def guard(options: ServeOptions) -> Guard:
    """What checks the bearer tokens of the inference routes: the ``--api-key-file`` keys
    and, with ``--auth``, the metadata store's tokens (the team server's in remote mode)."""
    from segue.config import settings

    keys = KeyFile(options.api_key_file) if options.api_key_file else None
    tokens = None
    if options.auth:
        config = settings()
        if config.remote and config.tracking_uri:
            tokens = TokenCache(remote_tokens(config.tracking_uri, config.token))
        else:
            tokens = TokenCache(store_tokens())
    return Guard(keys=keys, tokens=tokens)


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
        listen=registry.alias_listener() or _audit_listener(),
        metrics=config.metrics,
    )


#: Seconds between looks at the registry's audit log where the store cannot announce moves.
AUDIT_POLL_S = 0.2


def _audit_listener() -> Callable[..., None] | None:
    """Where the store announces nothing (SQLite), hear alias moves from its audit log.

    Every move writes its audit entry, whichever process makes it, so each worker of a
    server reads the same moves within :data:`AUDIT_POLL_S` of their commit: the workers
    of ``--workers N`` all start loading the new version at once, as they do on a
    PostgreSQL NOTIFY, instead of each at its own ``--poll-s``. The query reads only the
    entries newer than the last one seen.
    """
    from segue.config import settings
    from segue.store.engine import open_engine
    from segue.store.notify import poll_aliases

    config = settings()
    if config.remote:
        return None  # the team server pushes moves (Registry.alias_listener covers it)
    return partial(poll_aliases, open_engine(config.store_uri), interval=AUDIT_POLL_S)
