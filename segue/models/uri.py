"""Model URIs: ``runs:/<run_id>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``,
``models:/<name>/latest``, or a local folder holding a package."""

from __future__ import annotations

import re
from dataclasses import dataclass

from segue.errors import InvalidArgument

_RUNS = re.compile(r"^runs:/(?P<run_id>[0-9a-fA-F]{4,32})/(?P<path>.+)$")
_MODELS = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][\w.\-]*)(?:/(?P<version>\d+|latest)|@(?P<alias>[A-Za-z][\w\-]*))$"
)


_SHORTHAND = re.compile(r"[A-Za-z0-9][\w.\-]*(?:/(?:\d+|latest)|@[A-Za-z][\w\-]*)")


def expand_shorthand(text: str) -> str:
    """``churn@champion``, ``churn/3`` or ``churn/latest`` as a ``models:/`` URI; any other text
    (a URI, a folder, a bare name) unchanged.

    Example:
        >>> expand_shorthand("churn@champion")
        'models:/churn@champion'
    """
    text = text.strip()
    return f"models:/{text}" if _SHORTHAND.fullmatch(text) else text


@dataclass(frozen=True)
class ModelUri:
    kind: str  # "runs", "models" or "path"
    text: str
    run_id: str | None = None
    path: str | None = None
    name: str | None = None
    version: int | None = None  # None with alias None means the latest version
    alias: str | None = None


def parse_model_uri(uri: str) -> ModelUri:
    """Parse a model URI.

    Example:
        >>> parse_model_uri("models:/churn@champion").alias
        'champion'
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidArgument(f"model URI must be a non-empty string, got {uri!r}")
    # fullmatch: with match, '$' also accepts a trailing newline ("models:/churn/1\n").
    if uri.startswith("runs:"):
        match = _RUNS.fullmatch(uri)
        path = match["path"].strip("/") if match else ""
        if match is None or not path:
            raise InvalidArgument(f"model URI {uri!r}: expected runs:/<run_id>/<path>")
        return ModelUri("runs", uri, run_id=match["run_id"].lower(), path=path)
    if uri.startswith("models:"):
        match = _MODELS.fullmatch(uri)
        if match is None:
            raise InvalidArgument(
                f"model URI {uri!r}: expected models:/<name>/<version>, models:/<name>@<alias> "
                "or models:/<name>/latest"
            )
        version = match["version"]
        return ModelUri(
            "models",
            uri,
            name=match["name"],
            version=int(version) if version and version != "latest" else None,
            alias=match["alias"],
        )
    if re.match(r"^[a-z][a-z0-9+.\-]*:/", uri) and not re.match(r"^[A-Za-z]:[\\/]", uri):
        raise InvalidArgument(
            f"model URI {uri!r}: unknown scheme; use runs:/…, models:/… or a local folder"
        )
    return ModelUri("path", uri, path=uri)
