"""Running ``segue server``: bind the port, then uvicorn with one worker or several.

The metadata and artifact stores come from the usual ``SEGUE_*`` variables. With several
workers, uvicorn starts :func:`app_from_env` in each; ``--no-auth`` travels to them as
``SEGUE_SERVER_NO_AUTH=1``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from typing import Any

from fastapi import FastAPI

from segue.config import Settings, settings
from segue.errors import InvalidArgument
from segue.server.app import create_app
from segue.server.state import ServerState
from segue.store import collector
from segue.store.engine import open_engine

__all__ = ["app_from_env", "is_loopback", "run"]

_NO_AUTH = "SEGUE_SERVER_NO_AUTH"
GRACEFUL_SHUTDOWN_SECONDS = 30

log = logging.getLogger("segue.server")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _state(config: Settings, no_auth: bool, local_only: bool = False) -> ServerState:
    if config.remote:
        raise InvalidArgument(
            "SEGUE_TRACKING_URI is set: segue server serves a metadata store of its own "
            "(SEGUE_STORE_URI), not another server; unset SEGUE_TRACKING_URI"
        )
    engine = open_engine(config.store_uri)
    return ServerState(config, engine, no_auth=no_auth, local_only=local_only)


def app_from_env() -> FastAPI:
    """uvicorn's app factory for ``--workers > 1``."""
    _log_to_stderr()
    app = create_app(_state(settings(), os.environ.get(_NO_AUTH) == "1"))
    collector.freeze_loaded()
    return app


def _log_to_stderr() -> None:
    logger = logging.getLogger("segue")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("segue: %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def check_start(state: ServerState, host: str, no_auth: bool) -> list[str]:
    """Refuse an unsafe start; return the warnings to print.

    Raises:
        InvalidArgument: a host other than loopback with no users and no ``--no-auth``.
    """
    if no_auth:
        return [
            "--no-auth: every caller is an anonymous admin who can move aliases, delete models "
            f"and label predictions; anyone who can reach {host} can"
        ]
    if state.auth.has_users():
        return []
    if not is_loopback(host):
        raise InvalidArgument(
            f"--host {host}: refusing to listen beyond this machine with no users: create one "
            "first ('segue users add NAME --role admin', then 'segue tokens create NAME'), or "
            "pass --no-auth to run without authentication"
        )
    return [
        "no users yet: every API call will be refused; create one with "
        "'segue users add NAME --role admin' and a token with 'segue tokens create NAME'"
    ]


def run(
    host: str, port: int, workers: int = 1, *, no_auth: bool = False, local_ui: bool = False
) -> None:
    """Serve until SIGINT/SIGTERM, then let in-flight requests finish.

    ``local_ui`` is ``segue ui``: the same server for one person, on 127.0.0.1 with no login.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from segue.serving.server import bind

    _log_to_stderr()
    config = settings()
    if local_ui:
        host, no_auth = "127.0.0.1", True
    state = _state(config, no_auth, local_only=local_ui)
    warnings = [] if local_ui else check_start(state, host, no_auth)
    sock = bind(host, port)
    try:
        app: Any
        if workers == 1:
            app = create_app(state)
            collector.freeze_loaded()
        else:
            state.close()
            os.environ[_NO_AUTH] = "1" if no_auth else "0"
            app = "segue.server.run:app_from_env"
        uv = uvicorn.Config(
            app,
            factory=workers > 1,
            workers=workers,
            host=host,
            port=port,
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            lifespan="on",
            loop=_available("uvloop", "asyncio"),
            http=_available("httptools", "h11"),
        )
        bound = sock.getsockname()[1]
        for warning in warnings:
            print(f"segue: WARNING {warning}", file=sys.stderr, flush=True)
        if local_ui:
            print(
                f"segue: the UI of {describe(config)} is at http://127.0.0.1:{bound}/ "
                "(no login: this machine only); Ctrl+C stops it",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"segue: server for {describe(config)} on http://{_url_host(host)}:{bound} "
                f"({workers} worker(s)); UI at /, API at /api/v1, docs at /docs",
                file=sys.stderr,
                flush=True,
            )
        if workers > 1:
            Multiprocess(uv, sockets=[sock]).run()
        else:
            uvicorn.Server(uv).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def describe(config: Settings) -> str:
    """The stores served, passwords hidden: ``postgresql+psycopg://u:***@db/segue``."""
    from sqlalchemy.engine import make_url

    try:
        store = make_url(config.store_uri).render_as_string(hide_password=True)
    except Exception:
        store = config.store_uri.split("@")[-1]
    return store


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _available(module: str, otherwise: str) -> Any:
    """``module``'s name if it is installed (uvloop, httptools: faster I/O), else ``otherwise``."""
    import importlib.util

    return module if importlib.util.find_spec(module) is not None else otherwise
