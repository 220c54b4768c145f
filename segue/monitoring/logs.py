"""The prediction log as monitoring reads it: one row per predicted row, outputs split into
label and probabilities.

The inference server logs one record per request; a request may carry several rows, each with
one output. An output is a label or a number, or, when probabilities were logged, a mapping
with ``predict`` and ``predict_proba`` (or ``label``/``proba``) or the list of class
probabilities itself.

Example:
    >>> rows = flatten(read_predictions(uri, "churn", role="primary"))
    >>> rows.columns.tolist()
    ['request_id', 'row', 'time', 'version', 'role', 'input', 'output']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument

ROW_COLUMNS = ("request_id", "row", "time", "version", "role", "input", "output")
_LABEL_KEYS = ("predict", "label", "prediction")
_PROBA_KEYS = ("predict_proba", "proba", "probabilities")


@dataclass(frozen=True)
class Target:
    """The registered model a monitoring command is about, the version it pins (if any), and
    a ``models:/`` URI for the version to describe it by (its signature, its reference)."""

    name: str
    version: int | None = None
    uri: str = ""


def target(model_uri: str) -> Target:
    """The model of ``models:/NAME``, ``models:/NAME/3``, ``models:/NAME@ALIAS`` or ``NAME``.

    Only ``models:/NAME/<version>`` pins a version: an alias moves, so its log spans versions.

    Raises:
        InvalidArgument: a runs:/ URI or a folder (predictions are logged per registered model).
    """
    from segue.models.uri import expand_shorthand, parse_model_uri

    model_uri = expand_shorthand(model_uri)
    parsed = parse_model_uri(model_uri)
    if parsed.kind == "models" and parsed.name is not None:
        pinned = parsed.version if parsed.alias is None else None
        return Target(parsed.name, pinned, model_uri)
    name = model_uri.strip()
    if parsed.kind == "runs" or not name or any(c in name for c in "/@:\\ "):
        raise InvalidArgument(
            f"model URI {model_uri!r}: predictions are logged per registered model; "
            "give NAME or models:/NAME[/VERSION|@ALIAS]"
        )
    return Target(name, None, f"models:/{name}/latest")


def flatten(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per predicted row of the successful requests in ``predictions`` (a decoded
    :func:`~segue.monitoring.readers.read_predictions` frame), with columns :data:`ROW_COLUMNS`.

    Requests that failed, or whose outputs do not line up with their inputs, are left out.
    """
    columns: dict[str, list[Any]] = {name: [] for name in ROW_COLUMNS}
    if len(predictions):
        ok = predictions[(predictions["status"] // 100) == 2]
        for request_id, when, version, role, inputs, outputs in zip(
            ok["request_id"],
            ok["time"],
            ok["version"],
            ok["role"],
            ok["inputs"],
            ok["outputs"],
            strict=True,
        ):
            if not isinstance(inputs, list) or not isinstance(outputs, list):
                continue
            if len(inputs) != len(outputs):
                continue
            for i, (row, output) in enumerate(zip(inputs, outputs, strict=True)):
                columns["request_id"].append(request_id)
                columns["row"].append(i)
                columns["time"].append(float(when))
                columns["version"].append(str(version))
                columns["role"].append(role)
                columns["input"].append(row)
                columns["output"].append(output)
    frame = pd.DataFrame(columns)
    frame["row"] = frame["row"].astype("int64")
    frame["time"] = frame["time"].astype("float64")
    return frame


def split_output(output: Any, classes: Sequence[Any] | None = None) -> tuple[Any, list | None]:
    """(label, probabilities or None) of one logged output.

    A list of numbers as long as ``classes`` is read as the class probabilities; its label is
    the most probable class.
    """
    if isinstance(output, dict):
        label = next((output[k] for k in _LABEL_KEYS if k in output), None)
        proba = next((output[k] for k in _PROBA_KEYS if k in output), None)
        proba = list(proba) if isinstance(proba, (list, tuple)) else None
        if label is None and proba is not None and classes is not None:
            label = classes[int(np.argmax(proba))]
        return label, proba
    if (
        classes is not None
        and isinstance(output, (list, tuple))
        and len(output) == len(classes)
        and len(classes) > 1
        and all(_is_number(v) for v in output)
    ):
        return classes[int(np.argmax(output))], list(output)
    return output, None


def same_output(online: Any, offline: Any, *, rel_tol: float = 1e-9) -> bool:
    """Whether a logged output equals one computed again: exactly for labels (strings, ints,
    bools), within ``rel_tol`` (relative) for floats, element by element for lists and
    mappings."""
    online, offline = plain(online), plain(offline)
    if isinstance(online, dict) and isinstance(offline, dict):
        return online.keys() == offline.keys() and all(
            same_output(online[k], offline[k], rel_tol=rel_tol) for k in online
        )
    if isinstance(online, list) and isinstance(offline, list):
        return len(online) == len(offline) and all(
            same_output(a, b, rel_tol=rel_tol) for a, b in zip(online, offline, strict=True)
        )
    if isinstance(online, bool) or isinstance(offline, bool):
        return type(online) is type(offline) and online == offline
    if isinstance(online, float) or isinstance(offline, float):
        if not (_is_number(online) and _is_number(offline)):
            return False
        a, b = float(online), float(offline)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0)
    return type(online) is type(offline) and online == offline


def plain(value: Any) -> Any:
    """NumPy scalars and arrays as plain Python values (lists, ints, floats, strs, bools)."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
