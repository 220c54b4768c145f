"""Which served model, route and deployment a request names (pure lookups).

A name not served is a 404, a version not served a 404 naming the ones that are, and a route
still loading a 503: each a :class:`RequestError` the edge answers as JSON.
"""

from __future__ import annotations

from segue.errors import NotFound
from segue.serving.deployment import Deployment, Route, ServedModel, ServedModels
from segue.serving.errors import RequestError

__all__ = ["current_deployment", "pick_route", "served_model"]


def pick_route(served: ServedModel, version: str | None, key: str | None) -> Route:
    """The route to answer one request: the one serving ``version`` when the URL names one,
    else by weight (sticky for a routing ``key``). 404 for a version not served, 503 while
    the route has no deployment."""
    if version is None:
        route = served.route(key)
        if route.current is None:
            raise RequestError(503, f"model {served.name!r} is still loading; retry shortly", None)
        return route
    named = served.route_of_version(version)
    if named is None:
        versions = served.versions
        if not versions:
            raise RequestError(503, f"model {served.name!r} is still loading; retry shortly", None)
        raise RequestError(
            404,
            f"model {served.name!r} version {version!r} is not served here; "
            f"{'version' if len(versions) == 1 else 'versions'} {', '.join(versions)} "
            f"{'is' if len(versions) == 1 else 'are'}",
            "version",
        )
    return named


def current_deployment(models: ServedModels, name: str, version: str | None) -> Deployment:
    """The deployment answering for ``name`` now: its first route's, or the one serving
    ``version`` (404 for another ``version``, 503 if none)."""
    served = served_model(models, name)
    if version is None:
        deployment = served.current
        if deployment is None:
            raise RequestError(503, f"model {name!r} is still loading; retry shortly", None)
        return deployment
    route = pick_route(served, version, None)
    assert route.current is not None
    return route.current


def served_model(models: ServedModels, name: str) -> ServedModel:
    try:
        return models.get(name)
    except NotFound as exc:
        raise RequestError(404, str(exc), "model") from None
