"""Running the inference server: bind the port, then uvicorn with one worker or several.

``segue serve`` calls :func:`run`. The port is bound first, so a busy port fails at once with
one line. With one worker the app is built (:func:`segue.serving.assembly.build_app`) in this
process and handed to uvicorn; with several, uvicorn starts :func:`app_from_env` in each worker
(the options travel in ``SEGUE_SERVE_*`` variables, :mod:`segue.serving.options`) and each
worker loads the models itself. Either way the port opens, and ``/v2/health/ready`` says yes,
only once every route's model is loaded (hashes verified) and has answered one warm-up
prediction.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from segue.errors import InvalidArgument

# The app, its models and options (pandas, NumPy) are imported where they are used, so
# `segue server`, which only borrows bind(), does not import them.
if TYPE_CHECKING:
    from segue.serving.deployment import Route, ServedModel
    from segue.serving.options import ServeOptions

__all__ = ["app_from_env", "bind", "describe", "run"]

#: Seconds uvicorn gives in-flight requests to finish after SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 30


def app_from_env() -> FastAPI:
    """uvicorn's app factory for ``--workers > 1``: options from ``SEGUE_SERVE_*``."""
    from segue.serving.assembly import build_app
    from segue.serving.options import ServeOptions

    _log_to_stderr()
    _lean_imports()
    return build_app(ServeOptions.from_env(os.environ))


def _lean_imports() -> None:
    """This process only loads and serves models: skip what only other uses import."""
    from segue.models.flavors.sklearn import import_lean

    import_lean()


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

    from segue.serving.assembly import build_app, load_routes
    from segue.serving.deployment import ServedModel

    _log_to_stderr()
    _lean_imports()
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
