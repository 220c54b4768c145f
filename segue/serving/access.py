"""Who may call each route of ``segue serve``: the one place it is declared.

Every route is a key of :data:`ACCESS`, ``(METHOD, path template)``, marked :data:`TOKEN` or
:data:`PUBLIC`. Without ``--auth`` or ``--api-key-file`` every route is open; with either,
the :data:`TOKEN` routes (inference and feedback) need ``Authorization: Bearer <token>``
and the public ones (health, readiness, metadata, metrics, docs) stay open, for probes,
load balancers and Prometheus. :func:`check_routes` runs whenever the app is built and
refuses a route missing here, so no route is added without saying who may call it;
``tests/serving/test_auth.py`` walks the route table.

Example::

    >>> ACCESS[("POST", "/predict")]
    'token'
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from segue.errors import InvalidArgument

__all__ = ["ACCESS", "HOT_PATHS", "PUBLIC", "PUBLIC_MOUNTS", "TOKEN", "check_routes", "protect"]

PUBLIC = "public"
TOKEN = "token"
#: Mounted apps (the docs' static files): each is listed here, public.
PUBLIC_MOUNTS = frozenset({"/static/vendor"})
#: The routes the app answers past its router (:class:`segue.serving.app._ServingApp`).
HOT_PATHS = ("/predict", "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")

ACCESS: dict[tuple[str, str], str] = {
    # -- inference and feedback: a token, when the server requires one ----------------------
    ("POST", "/predict"): TOKEN,
    ("POST", "/v2/models/{name}/infer"): TOKEN,
    ("POST", "/v2/models/{name}/versions/{version}/infer"): TOKEN,
    ("POST", "/feedback"): TOKEN,
    # -- health and readiness (probes send GET or HEAD) -------------------------------------
    ("GET", "/v2/health/live"): PUBLIC,
    ("HEAD", "/v2/health/live"): PUBLIC,
    ("GET", "/v2/health/ready"): PUBLIC,
    ("HEAD", "/v2/health/ready"): PUBLIC,
    ("GET", "/v2/models/{name}/ready"): PUBLIC,
    ("HEAD", "/v2/models/{name}/ready"): PUBLIC,
    ("GET", "/v2/models/{name}/versions/{version}/ready"): PUBLIC,
    ("HEAD", "/v2/models/{name}/versions/{version}/ready"): PUBLIC,
    # -- metadata, metrics, docs ------------------------------------------------------------
    ("GET", "/v2"): PUBLIC,
    ("GET", "/v2/models/{name}"): PUBLIC,
    ("GET", "/v2/models/{name}/versions/{version}"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("HEAD", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
}

_Guarded = Callable[[Callable], Callable]


def check_routes(app: Starlette) -> None:
    """Refuse an app with a route or mount that :data:`ACCESS` does not list.

    Raises:
        InvalidArgument: naming the route, and the hot routes if they do not share one rule
            (the app answers them past its router, all alike).
    """
    for route in app.routes:
        if isinstance(route, Mount):
            if route.path not in PUBLIC_MOUNTS:
                raise InvalidArgument(f"mount {route.path} is not in serving access.PUBLIC_MOUNTS")
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if (method, route.path) not in ACCESS:
                    raise InvalidArgument(
                        f"route {method} {route.path} is not in serving access.ACCESS"
                    )
        else:
            raise InvalidArgument(f"route {getattr(route, 'path', route)!r} is not declared")
    if len({ACCESS[("POST", path)] for path in HOT_PATHS}) != 1:
        raise InvalidArgument("the hot routes must share one rule in serving access.ACCESS")


def protect(app: Starlette, guarded: _Guarded) -> bool:
    """Put every :data:`TOKEN` route's ASGI app behind ``guarded(app)``.

    Returns whether the hot routes are protected (the app's fast dispatch must then check
    too). Call :func:`check_routes` first.
    """
    for route in app.routes:
        if isinstance(route, Route) and any(
            ACCESS.get((method, route.path)) == TOKEN for method in route.methods or ()
        ):
            route.app = guarded(route.app)
    return ACCESS[("POST", HOT_PATHS[0])] == TOKEN
