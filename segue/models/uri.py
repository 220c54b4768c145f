"""Model URIs: ``runs:/<run_id>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``,
``models:/<name>/latest``, or a local folder holding a package."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from segue.errors import InvalidArgument

_RUNS = re.compile(r"^runs:/(?P<run_id>[0-9a-fA-F]{4,32})/(?P<path>.+)$")
_MODELS = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][\w.\-]*)(?:/(?P<version>\d+|latest)|@(?P<alias>[A-Za-z][\w\-]*))$"
)


_SHORTHAND = re.compile(r"[A-Za-z0-9][\w.\-]*(?:/(?:\d+|latest)|@[A-Za-z][\w\-]*)")
#: NAME/… or NAME@… that is not a valid shorthand (churn/abc, churn@): models:/ explains why.
_NEAR_SHORTHAND = re.compile(r"[A-Za-z0-9][\w.\-]*(?:/[^/@]*|@[^/@]*)")
_NAME = re.compile(r"[A-Za-z0-9][\w.\-]*")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*:")
_FORMS = {
    "models": ("NAME@ALIAS", "NAME/VERSION", "models:/…"),
    "runs": ("runs:/RUN_ID/PATH",),
    "path": ("a folder holding a model package",),
}


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


def resolve_model_uri(
    text: str,
    *,
    accept: Collection[str] = ("models", "runs", "path"),
    bare_name: str | None = None,
    refusal: str | None = None,
    is_dir: Callable[[str], bool] = os.path.isdir,
) -> str:
    """The one reading of a model argument that every command shares (``segue serve``,
    ``predict``, ``models download|show|card``, ``predictions``, ``monitor``, ``--route``).

    ``churn@champion``, ``churn/3`` and ``churn/latest`` are short for ``models:/…``, unless
    a folder of that name exists (a path you can see wins; write ``models:/churn/3`` to be
    explicit). A bare ``NAME`` is a folder, or with ``bare_name="latest"`` the model's latest
    version. Other text without a scheme is a folder path, left for the loader to open.

    Args:
        text: what the user typed.
        accept: the kinds the command can use: ``"models"``, ``"runs"``, ``"path"``.
        bare_name: ``"latest"`` to read a bare registered name as its latest version;
            None to refuse it (with a hint) when no such folder exists.
        refusal: what to say of a kind the command cannot use (default: the forms it takes).
        is_dir: whether a folder exists (injected for tests).

    Returns:
        A ``models:/`` or ``runs:/`` URI, or a folder path.

    Raises:
        InvalidArgument: malformed text, or a kind the command cannot use.

    Example:
        >>> resolve_model_uri("churn@champion")
        'models:/churn@champion'
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"model URI must be a non-empty string, got {text!r}")
    text = text.strip()
    folders = "path" in accept
    if _SCHEME.match(text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        uri = text
    elif folders and (_SHORTHAND.fullmatch(text) or _NAME.fullmatch(text)) and is_dir(text):
        return text  # an existing folder named like a shorthand: what the user sees wins
    elif _SHORTHAND.fullmatch(text) or (not folders and _NEAR_SHORTHAND.fullmatch(text)):
        uri = f"models:/{text}"  # a malformed one (churn/abc) gets models:/'s own message
    elif _NAME.fullmatch(text) and bare_name == "latest" and "models" in accept:
        uri = f"models:/{text}/latest"
    elif _NAME.fullmatch(text) and "models" in accept:
        where = "no such folder; for a registered model give its" if folders else "give its"
        raise InvalidArgument(
            f"model URI {text!r}: {where} version or alias, e.g. {text}@champion or {text}/3"
        )
    else:
        uri = text
    kind = parse_model_uri(uri).kind
    if kind not in accept:
        forms = [form for k in ("models", "runs", "path") if k in accept for form in _FORMS[k]]
        listed = ", ".join(forms[:-1]) + " or " + forms[-1] if len(forms) > 1 else forms[0]
        raise InvalidArgument(f"model URI {text!r}: {refusal or 'this command takes ' + listed}")
    return uri


def registered_model_uri(text: str) -> str:
    """:func:`resolve_model_uri` for commands about a registered model (its prediction log,
    its monitoring): ``NAME`` is its latest version; ``runs:/`` and folders are refused.

    Example:
        >>> registered_model_uri("churn")
        'models:/churn/latest'
    """
    return resolve_model_uri(
        text,
        accept=("models",),
        bare_name="latest",
        refusal="predictions are logged per registered model; give NAME or models:/NAME@ALIAS",
    )
