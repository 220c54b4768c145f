"""Traffic routing, pure: route specs, and which route a request goes to.

A served name can have several weighted routes (``--route churn@champion=90 --route
churn@challenger=10``). :class:`Router` picks one per request: at random by weight, or, for a
request with a routing key, by a stable hash of the key, so one key always lands on the same
route (across requests, workers and restarts) while the weights stay as they are.

Example::

    >>> parse_route("churn@champion=90")
    RouteSpec(uri='models:/churn@champion', weight=90.0, label='churn@champion')
    >>> router = Router([90, 10], rng=random.Random(7))
    >>> router.pick(), router.pick("customer-42")
    (0, 0)
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from segue.errors import InvalidArgument
from segue.models.uri import resolve_model_uri

__all__ = [
    "RouteSpec",
    "Router",
    "key_point",
    "model_uri",
    "parse_route",
    "parse_routes",
    "role_of",
    "route_label",
]

_MODELS = "models:/"
_HASH_SPAN = float(1 << 64)


@dataclass(frozen=True)
class RouteSpec:
    """One route as given: the model URI, its weight, and its label in responses."""

    uri: str
    weight: float
    label: str


def route_label(uri: str) -> str:
    """How responses name a route: the URI without ``models:/`` (``churn@champion``)."""
    return uri[len(_MODELS) :] if uri.startswith(_MODELS) else uri


def model_uri(text: str) -> str:
    """``text`` as a model URI: ``churn@champion`` is short for ``models:/churn@champion``
    (read as every command reads a model: :func:`segue.models.uri.resolve_model_uri`).

    Raises:
        InvalidArgument: a malformed URI.
    """
    return resolve_model_uri(text)


def parse_route(text: str, default_weight: float | None = None) -> RouteSpec:
    """Parse ``URI=WEIGHT`` (``churn@champion=90``; ``=WEIGHT`` optional when
    ``default_weight`` is given).

    Raises:
        InvalidArgument: a malformed URI, or a weight that is missing, not a number or not > 0.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"--route {text!r}: expected URI=WEIGHT, e.g. churn@champion=90")
    uri_text, sep, weight_text = text.rpartition("=")
    weight: float | None
    if sep and _is_number(weight_text):
        weight = float(weight_text)
    else:  # no weight (or an '=' inside a folder name)
        uri_text, weight = text, default_weight
    if weight is None:
        raise InvalidArgument(f"--route {text!r}: give a weight, e.g. {text}=50")
    if not (math.isfinite(weight) and weight > 0):
        raise InvalidArgument(f"--route {text!r}: the weight must be a number > 0")
    try:
        uri = model_uri(uri_text)
    except InvalidArgument as exc:
        raise InvalidArgument(f"--route {text!r}: {exc}") from None
    return RouteSpec(uri, weight, route_label(uri))


def parse_routes(texts: Sequence[str]) -> list[RouteSpec]:
    """Parse every ``--route``; weights are all given or all left out (equal shares).

    Raises:
        InvalidArgument: as :func:`parse_route`, or a URI given twice, or some weights missing.
    """
    weighted = [_has_weight(text) for text in texts]
    if any(weighted) and not all(weighted):
        missing = next(text for text, has in zip(texts, weighted, strict=True) if not has)
        raise InvalidArgument(f"--route {missing!r}: give every route a weight, or none")
    specs = [parse_route(text, default_weight=1.0) for text in texts]
    seen: set[str] = set()
    for spec in specs:
        if spec.uri in seen:
            raise InvalidArgument(f"--route {spec.label!r} is given twice")
        seen.add(spec.uri)
    return specs


def role_of(index: int, weights: Sequence[float]) -> str:
    """``"primary"`` for the heaviest route (the first among equals), else ``"canary"``."""
    heaviest = max(range(len(weights)), key=lambda k: (weights[k], -k))
    return "primary" if index == heaviest else "canary"


def _has_weight(text: str) -> bool:
    _, sep, tail = str(text).rpartition("=")
    return bool(sep) and _is_number(tail)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Router:
    """Picks a route index for each request, by weight.

    Args:
        weights: one positive weight per route; shares are ``weight / sum(weights)``.
        rng: the random source for requests without a routing key (seed it in tests).

    Raises:
        InvalidArgument: no weights, or one that is not a finite number > 0.
    """

    __slots__ = ("_bounds", "_rng", "_single")

    def __init__(self, weights: Sequence[float], *, rng: random.Random | None = None) -> None:
        if not weights:
            raise InvalidArgument("no routes to choose from")
        if not all(math.isfinite(w) and w > 0 for w in weights):
            raise InvalidArgument(f"route weights must be numbers > 0, got {list(weights)}")
        total = math.fsum(weights)
        bounds, running = [], 0.0
        for weight in weights[:-1]:
            running += weight
            bounds.append(running / total)
        self._bounds = bounds
        self._rng = rng or random.Random()
        self._single = len(weights) == 1

    def pick(self, key: str | None = None) -> int:
        """The route for one request: by ``key`` when given (sticky), else at random."""
        if self._single:
            return 0
        point = self._rng.random() if key is None else key_point(key)
        return bisect.bisect_right(self._bounds, point)


def key_point(key: str) -> float:
    """A routing key's fixed place in [0, 1): the same in every process (no hash seed)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPAN
