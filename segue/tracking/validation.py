"""Checks on names and values users log, with messages that name the field."""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from segue.errors import InvalidArgument

_KEY = re.compile(r"^[\w\-. /:]+$")
MAX_KEY = 250
MAX_PARAM_VALUE = 6000


def check_key(kind: str, key: Any) -> str:
    """A param, metric or tag name: 1-250 characters of letters, digits, _ - . / : or space."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"{kind} name must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY:
        raise InvalidArgument(
            f"{kind} name {key[:40]!r}… is {len(key)} characters; limit {MAX_KEY}"
        )
    if not _KEY.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise InvalidArgument(
            f"{kind} name {key!r} may only contain letters, digits, spaces and _ - . / :"
        )
    return key


#: Tags under this prefix are Segue's own (who created a run, a pipeline's steps, cache keys):
#: Segue reads them to decide what a run is, so users may not write them.
RESERVED_TAG_PREFIX = "segue."

#: The reserved tags the pipeline runtime writes (exact names, or prefixes ending in ``.``);
#: over HTTP, the only ones a request flagged ``system`` may carry.
RUNTIME_TAGS = frozenset(
    {
        "segue.kind",
        "segue.pipeline",
        "segue.pipeline.key",
        "segue.pipeline.run",
        "segue.executor",
        "segue.cause",
        "segue.resumed_from",
        "segue.step",
        "segue.step.function",
        "segue.step.code",
        "segue.step.key",
        "segue.step.outputs",
        "segue.step.skipped",
        "segue.cached_from",
        "segue.attempts",
    }
)
_RUNTIME_TAG_PREFIXES = ("segue.input.", "segue.output.")


def is_reserved(key: str) -> bool:
    return key.startswith(RESERVED_TAG_PREFIX)


def user_tag_key(key: Any) -> str:
    """A tag name a user may set: a valid name outside the reserved ``segue.`` namespace."""
    check_key("tag", key)
    if is_reserved(key):
        raise InvalidArgument(
            f"tag {key!r} is reserved: tags starting with {RESERVED_TAG_PREFIX!r} are written "
            "by Segue itself; choose another name"
        )
    return str(key)


def runtime_tag_key(key: str) -> str:
    """A reserved tag the pipeline runtime writes (the server's check on a ``system`` request)."""
    if key in RUNTIME_TAGS or key.startswith(_RUNTIME_TAG_PREFIXES):
        return key
    raise InvalidArgument(f"tag {key!r} is reserved and not one the pipeline runtime writes")


def param_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidArgument(
            f"param {key!r}: value is {len(text)} characters; limit {MAX_PARAM_VALUE} "
            "(log long values as an artifact with log_text or log_dict)"
        )
    return text


def tag_value(key: str, value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def metric_value(key: str, value: Any) -> float:
    if type(value) is float or type(value) is int:  # the common case, without ABC checks
        return float(value)
    # NumPy booleans are no numbers.Real but convert to float: refuse them like Python's.
    is_bool = isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"
    if is_bool or not isinstance(value, numbers.Real):
        # NumPy 0-d arrays and scalars are numbers.Real or convert cleanly.
        try:
            if is_bool or isinstance(value, (str, bytes)):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"metric {key!r}: value must be a number, got {type(value).__name__} {value!r}"
            ) from None
        return number
    return float(value)


def metric_step(key: str, step: Any) -> int:
    if type(step) is int:  # the common case, without ABC checks
        return step
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidArgument(f"metric {key!r}: step must be an integer, got {step!r}")
    return int(step)


_DRIVE = re.compile(r"^[A-Za-z]:")


def artifact_path(path: Any) -> str:
    """A logical artifact path: relative, '/'-separated, no '..' parts.

    Refused too, because no operating system can write them back as the same file: control
    characters (NUL among them), backslashes (a separator on Windows, a character elsewhere)
    and a drive (``C:``).
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidArgument(f"artifact path must be a non-empty string, got {path!r}")
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise InvalidArgument(f"artifact path {path!r} must not contain control characters")
    if "\\" in path:
        raise InvalidArgument(f"artifact path {path!r} must use '/' between folders, not '\\'")
    if _DRIVE.match(path):
        raise InvalidArgument(f"artifact path {path!r} must be relative, without a drive")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(
            f"artifact path {path!r} must be relative, without empty, '.' or '..' parts"
        )
    return path


def is_finite(value: float) -> bool:
    return math.isfinite(value)
