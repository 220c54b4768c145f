"""Running the inference server: bind the port, then uvicorn with one worker or several.

``segue serve`` calls :func:`run`. The port is bound first, so a busy port fails at once with
one line. With one worker the app is built (:func:`segue.serving.assembly.build_app`) in this
process and handed to uvicorn; with several, this process only checks the models, loading none
(:mod:`segue.serving.preflight`: a bad URI fails here, once), then uvicorn starts
:func:`app_from_env` in each worker (the options travel in ``SEGUE_SERVE_*`` variables,
:mod:`segue.serving.options`) and each worker loads the models itself; a worker that cannot
stops the server (exit code 3). Either way the port opens, and ``/v2/health/ready`` says yes,
only once every route's model is loaded (hashes verified) and has answered one warm-up
prediction.
"""

from __future__ import annotations

import errno
import gc
import importlib.util
import logging
import os
import socket
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from segue.errors import InvalidArgument, SegueError

# The app, its models and options (pandas, NumPy) are imported where they are used, so
# `segue server`, which only borrows bind(), and the parent of `segue serve --workers N`,
# which loads no model, do not import them.
if TYPE_CHECKING:
    from fastapi import FastAPI

    from segue.serving.deployment import Route, ServedModel
    from segue.serving.options import ServeOptions

__all__ = ["app_from_env", "bind", "describe", "describe_routes", "run"]

#: Seconds uvicorn gives in-flight requests to finish after SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 30


def app_from_env() -> FastAPI:
    """uvicorn's app factory for ``--workers > 1``: options from ``SEGUE_SERVE_*``."""
    from uvicorn.config import STARTUP_FAILURE

    from segue.serving.assembly import build_app
    from segue.serving.options import ServeOptions

    _log_to_stderr()
    _lean_imports()
    try:
        with loading():
            app = build_app(ServeOptions.from_env(os.environ))
            settle_process()
        return app
    except SegueError as exc:  # what the parent's check cannot see: the warm-up, say
        print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
    except Exception:  # the model's own code, when loaded
        logging.getLogger(__name__).exception("worker %d could not load the models", os.getpid())
    # Exit code 3 tells uvicorn the worker failed to start: it stops the server rather than
    # restarting workers that would fail the same way.
    sys.exit(STARTUP_FAILURE)


def _lean_imports() -> None:
    """This process only loads and serves models: skip what only other uses import."""
    from segue.models.flavors.sklearn import import_lean

    import_lean()


def loading() -> AbstractContextManager[None]:
    """Around loading a server process's models: no cyclic garbage collection until
    :func:`settle_process`.

    Importing the frameworks and building the models makes hundreds of thousands of objects
    that all live on; the collector walked them again and again while they were made (about
    0.3 s of the CPU time to ready of a scikit-learn model, some 10%). Call
    :func:`settle_process` inside the block: it freezes all that, without a collection (the
    few cycles loading leaves stay until exit). Frozen, the objects made while paused no
    longer count towards a young collection; otherwise the first allocation after the pause
    would start one that walks them all (0.2-0.4 s).
    """
    from segue.store.collector import paused

    return paused()


#: How long a thread holding the GIL keeps it while another waits (Python's default is 5 ms).
#: The event loop waits for the GIL after each wake-up while the prediction log's writer or a
#: predict thread runs: at 5 ms a second's log flush held every request that arrived during
#: it for several such waits (100-row bodies at c=64: p99 236 ms, at 0.5 ms 113 ms).
SWITCH_INTERVAL_S = 0.0005

#: The collector's thresholds in a server process (Python's are 700, 10, 10). Every answered
#: request leaves objects alive for up to a second, in the prediction log's buffer, so at the
#: default a young collection ran every few dozen requests and walked them again and again:
#: at 1-row bodies, c=64, about 500 collections a second and up to a fifth of its CPU.
#: Objects freed by reference counting (most of what a request makes) never count here.
GC_THRESHOLDS = (50_000, 20, 100)


def settle_process() -> None:
    """Set a server process up for serving, once its models are loaded (inside
    :func:`loading`).

    Shortens the GIL's switch interval (:data:`SWITCH_INTERVAL_S`), collects less often
    (:data:`GC_THRESHOLDS`) and moves everything
    loaded so far (frameworks, models) out of the garbage collector's sight (``gc.freeze``):
    a full collection then walks only what requests create, not the hundreds of thousands of
    objects of scikit-learn, pandas and the model; such collections held the event loop for
    up to 137 ms each under load before. Objects freed by reference counting are freed as
    ever; only cycles among what is frozen stay until exit (a model swapped out later leaves
    its own cycles, if it has any, once; later models are not frozen).
    """
    from segue.store.collector import freeze_loaded

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    freeze_loaded()
    gc.set_threshold(*GC_THRESHOLDS)


def describe(served: ServedModel) -> str:
    """What is served, for the start-up line: ``models:/churn/3 as 'churn' version 3``."""

    def version(route: Route) -> str:
        return "none" if route.current is None else route.current.version

    return describe_routes(
        served.name,
        [(str(r.uri), r.label, r.weight, version(r)) for r in served.routes],
        [(r.label, version(r)) for r in served.shadows],
    )


def describe_routes(
    name: str,
    routes: Sequence[tuple[str, str, float, str]],
    shadows: Sequence[tuple[str, str]] = (),
) -> str:
    """:func:`describe` from ``(uri, label, weight, version)`` of each route and ``(label,
    version)`` of each shadow (what the parent of ``--workers N`` knows, loading no model)."""
    if len(routes) == 1 and not shadows:
        uri, _, _, version = routes[0]
        return f"{uri} as {name!r} version {version}"
    parts = [f"{label}={weight:g} (version {version})" for _, label, weight, version in routes]
    parts += [f"shadow {label} (version {version})" for label, version in shadows]
    return f"{', '.join(parts)} as {name!r}"


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
    supervisor: Multiprocess | None = None
    try:
        if options.workers == 1:
            with loading():
                from segue.serving.assembly import build_app

                _lean_imports()
                app: Any = build_app(options)
                settle_process()
            what = describe(app.state.models.default)
        else:
            from segue.serving.preflight import check_routes

            # Fail here, with one clear line, rather than in N workers; this also fills the
            # local package cache the workers load from. Only checked: each worker loads the
            # models itself, so this process imports no framework and holds no model.
            what = check_routes(options)
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
            supervisor = Multiprocess(config, sockets=[sock])
            supervisor.run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:  # a second Ctrl+C: uvicorn has stopped already
        pass
    finally:
        sock.close()
    if options.workers == 1 and server is not None and not server.started:
        sys.exit(3)  # the app's startup failed; uvicorn has logged why
    if supervisor is not None and _worker_failed_to_start(supervisor):
        sys.exit(3)  # a worker could not load a model; uvicorn stopped them and logged why


def _worker_failed_to_start(supervisor: Any) -> bool:
    """Whether uvicorn stopped because a worker failed before serving (its exit code 3)."""
    from uvicorn.config import STARTUP_FAILURE

    return any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
