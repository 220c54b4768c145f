"""The ``segue server`` application: ``/api/v1`` routes, authentication, errors, docs.

Every route is declared in :data:`segue.server.access.ACCESS`; one app-wide dependency
authenticates the bearer token (401 without a valid one, 429 after too many failures from one
client) and checks the route's role, with the model's grants where the route names a model
(403). Handlers read the caller from :func:`caller`.

Errors are ``{"error", "type", "field", "request_id"}`` JSON with a 4xx status for anything a
caller can cause; a 500 only for a bug, with the traceback in the server log.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Mount

from segue.auth.principal import Principal
from segue.auth.service import SESSION_SCOPE
from segue.errors import (
    GateFailed,
    InvalidArgument,
    PermissionDenied,
    SegueError,
    TooManyRequests,
    Unauthenticated,
)
from segue.server import access
from segue.server.state import ServerState
from segue.static.docs import add_docs
from segue.store import codec
from segue.version import __version__

log = logging.getLogger("segue.server")

API = "/api/v1"
_JSON = "application/json"


def create_app(state: ServerState) -> FastAPI:
    """The server over ``state``'s stores.

    Raises:
        InvalidArgument: a route without an entry in :data:`~segue.server.access.ACCESS`
            (every route must say who may call it).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="Segue server",
        version=__version__,
        description="Tracking, registry, artifacts and monitoring for a team.",
        openapi_url=f"{API}/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(_authorize), Depends(_check_csrf)],
        lifespan=lifespan,
    )
    app.state.segue = state
    # Imported here: the route modules import this one for caller, json_response, ….
    from segue.server.routes import ROUTERS

    for router in ROUTERS:
        app.include_router(router, prefix=API, responses=ERROR_RESPONSES)
    from segue.server.mlflow import ROUTER as MLFLOW  # MLflow's REST API

    app.include_router(MLFLOW)
    app.add_api_route(f"{API}/health", _health, methods=["GET"], tags=["server"])
    app.add_api_route(
        f"{API}/whoami", _whoami, methods=["GET"], tags=["server"], responses=ERROR_RESPONSES
    )
    add_docs(app)
    from segue.server.ui import add_ui

    add_ui(app)
    app.add_exception_handler(SegueError, _segue_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    check_routes(app)
    return app


def check_routes(app: FastAPI) -> None:
    """Refuse an app with a route or mount that :mod:`segue.server.access` does not list.

    Records each route's full path template (``/api/v1/runs/{run_id}``) by route in
    ``app.state.route_paths``: FastAPI keeps included routers whole, so a request's
    ``scope["route"]`` holds the path relative to its router.
    """
    openapi = app.openapi_url
    paths: dict[int, str] = {}
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path
        if isinstance(route, Mount):
            if route.path not in access.PUBLIC_MOUNTS:
                raise InvalidArgument(f"mount {route.path} is not in access.PUBLIC_MOUNTS")
        elif isinstance(route, APIRoute):
            for method in context.methods or route.methods or ():
                if (method, path) not in access.ACCESS:
                    raise InvalidArgument(f"route {method} {path} is not in access.ACCESS")
            paths[id(route)] = str(path)
        elif path != openapi:
            raise InvalidArgument(f"route {path or route!r} is not declared")
    app.state.route_paths = paths


class ErrorBody(BaseModel):
    """What every refused or failed call answers."""

    error: str
    type: str
    field: str | None = None
    request_id: str
    report: list[dict[str, Any]] | None = None


_ERRORS = {
    400: "Malformed request.",
    401: "No token, or one that is unknown, revoked or expired.",
    403: "The caller's role is too weak for this route (on this model).",
    404: "The named thing does not exist.",
    409: "The request conflicts with what is stored (a gate refused an alias move: 'report').",
    413: "The body is too large.",
    422: "A field is malformed; 'field' names it.",
    429: "Too many failed authentications from this client; retry after Retry-After seconds.",
}


#: Every authenticated route may answer these; saying so lets clients (and Schemathesis)
#: expect them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in _ERRORS.items()
}


# --- authentication --------------------------------------------------------------------------

ANONYMOUS = Principal("anonymous", "admin", kind="anonymous")


@functools.cache
def _local_user() -> Principal:
    from segue.identity import local_actor

    return Principal(local_actor().name, "admin", kind="local")


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.segue
    return state


def caller(request: Request) -> Principal:
    """The authenticated caller of this request (set by the app-wide dependency)."""
    principal: Principal = request.state.principal
    return principal


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _authorize(request: Request) -> None:
    # A plain function: FastAPI runs it in the thread pool, as the token lookup reads the store.
    route = request.scope.get("route")
    path = request.app.state.route_paths.get(id(route), getattr(route, "path", ""))
    rule = access.ACCESS.get((request.method, path))
    if rule is None:  # check_routes makes this unreachable for APIRoutes
        raise InvalidArgument(f"no access rule for {request.method} {request.url.path}")
    if rule.role == access.PUBLIC:
        request.state.principal = None
        return
    state = server_state(request)
    host = _host_name(request)
    if state.local_only and host not in _LOOPBACK_NAMES:
        raise PermissionDenied(f"this server answers only at 127.0.0.1; the request named {host!r}")
    if state.no_auth:
        # segue ui acts as the person at this machine (the audit log names them, as the CLI
        # does); a --no-auth server cannot know who calls it.
        request.state.principal = _local_user() if state.local_only else ANONYMOUS
        return
    model = request.path_params.get(rule.model) if rule.model else None
    if _is_page(request):
        principal = _session(request, state)
        state.auth.authorize(principal, rule.role, model)
        request.state.principal = principal
        return
    client = client_address(request)
    state.limiter.check(client)
    try:
        token = _bearer(request)
        if token is None:
            raise Unauthenticated(
                "this route needs a token: send 'Authorization: Bearer <token>' (clients: set "
                "SEGUE_TOKEN; create one with 'segue tokens create NAME')"
            )
        principal = state.auth.authenticate(token)
        if principal.scope == SESSION_SCOPE:
            raise Unauthenticated(
                "a web session is not an API token; create one with 'segue tokens create NAME'"
            )
    except Unauthenticated:
        state.limiter.failed(client)
        raise
    state.auth.authorize(principal, rule.role, model)
    request.state.principal = principal


_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def _host_name(request: Request) -> str:
    host = request.headers.get("host", "")
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def _is_page(request: Request) -> bool:
    from segue.server.ui import is_page

    return is_page(request)


def _session(request: Request, state: ServerState) -> Principal:
    """The user of a web page: from the session cookie a login set."""
    from segue.server.ui.render import SESSION_COOKIE

    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthenticated("log in to see this page")
    try:
        principal = state.auth.authenticate(token)
    except Unauthenticated as exc:
        raise Unauthenticated(f"your session has ended ({exc}); log in again") from None
    if principal.scope != SESSION_SCOPE:
        raise Unauthenticated("log in to see this page")
    return principal


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _check_csrf(request: Request) -> None:
    """Refuse a page's form or htmx request that changes something without the CSRF token
    (sent as the ``csrf_token`` form field or the ``X-CSRF-Token`` header)."""
    if request.method in _SAFE_METHODS or not _is_page(request):
        return
    from segue.server.ui.render import CSRF_FIELD, CSRF_HEADER, csrf_matches

    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not csrf_matches(request, sent):
        raise PermissionDenied(
            "this form's CSRF token is missing or stale: reload the page and try again"
        )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def _health(request: Request) -> dict[str, Any]:
    """Liveness: the server process answers (no token needed)."""
    return {"status": "ok", "version": __version__}


async def _whoami(request: Request) -> dict[str, Any]:
    """The caller: user, role, token id and scope."""
    principal = caller(request)
    return {
        "user": principal.user,
        "role": principal.role,
        "token_id": principal.token_id,
        "scope": principal.scope,
        "actor": str(principal.actor),
    }


# --- errors ------------------------------------------------------------------------------


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``value`` (entities included) as JSON."""
    return Response(orjson.dumps(codec.dump(value)), status, headers, media_type=_JSON)


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    kind: str,
    field: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    request_id = (request.headers.get("x-request-id") or uuid.uuid4().hex)[:128]
    body: dict[str, Any] = {"error": message, "type": kind, "field": field}
    body["request_id"] = request_id
    body.update(extra or {})
    return json_response(body, status, {"x-request-id": request_id, **(headers or {})})


async def _segue_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SegueError)
    if _is_page(request):
        from segue.server.ui.errors import page_error

        return page_error(request, exc)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, GateFailed):
        extra["report"] = [vars(r) if hasattr(r, "__dict__") else r for r in exc.report]
    if isinstance(exc, TooManyRequests):
        headers["retry-after"] = str(exc.retry_after)
    if isinstance(exc, Unauthenticated):
        headers["www-authenticate"] = "Bearer"
    status = exc.http_status if exc.http_status < 500 else 500
    return error_response(
        request,
        status,
        str(exc),
        kind=type(exc).__name__,
        field=getattr(exc, "field", None),
        extra=extra,
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    field = ".".join(where) or None
    message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg"))
    if _is_page(request):
        from segue.server.ui.errors import page_error

        return page_error(request, InvalidArgument(message))
    return error_response(request, 422, message, kind="InvalidArgument", field=field)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if exc.status_code == 404:
        message = f"no route {request.url.path!r}; see /docs for this server's API"
    elif exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path only; a path
        # served by several routes (GET and PUT of an alias) allows all of theirs.
        allowed = _allowed_methods(request)
        headers["allow"] = ", ".join(allowed)
        use = " or ".join(allowed)
        message = f"{request.method} is not allowed on {request.url.path}: use {use}"
    else:
        message = str(exc.detail)
    if _is_page(request):
        from segue.server.ui.errors import status_page

        return status_page(request, exc.status_code, message, headers=headers)
    return error_response(request, exc.status_code, message, kind="HTTPError", headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    from starlette.routing import compile_path

    # The most specific templates win, as in routing: /blobs/missing, not /blobs/{digest}.
    by_template: dict[str, set[str]] = {}
    for context in iter_route_contexts(request.app.routes):
        if isinstance(context.original_route, APIRoute):
            path = str(context.path)
            regex, _, _ = compile_path(path)
            if regex.match(request.url.path):
                methods = set(context.methods or context.original_route.methods or ())
                by_template.setdefault(path, set()).update(methods)
    if not by_template:
        return []
    fewest = min(t.count("{") for t in by_template)
    return sorted({m for t, ms in by_template.items() if t.count("{") == fewest for m in ms})


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    if _is_page(request):
        from segue.server.ui.errors import status_page

        message = f"internal error ({type(exc).__name__}); see the server log"
        return status_page(request, 500, message)
    return error_response(
        request, 500, f"internal error ({type(exc).__name__}); see the server log", kind="Internal"
    )
