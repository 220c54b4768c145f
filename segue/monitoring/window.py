"""Time windows for monitoring commands: durations (``5m``, ``1h``) and ``--since`` values.

Pure functions: the current time is always passed in.

Example:
    >>> parse_duration("1h30m")
    5400.0
    >>> parse_since("2h", now=10_000.0)
    2800.0
"""

from __future__ import annotations

import datetime as dt
import math
import re

from segue.errors import InvalidArgument

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, *, field: str = "duration") -> float:
    """Seconds in ``text``: one or more ``<number><unit>`` parts (``ms s m h d w``), e.g. ``90s``,
    ``1h30m``; a bare number is seconds.

    Raises:
        InvalidArgument: not a positive duration (the message names ``field``).
    """
    raw = str(text).strip().lower()
    seconds: float | None = None
    try:
        seconds = float(raw)
    except ValueError:
        pos = 0
        total = 0.0
        for match in _PART.finditer(raw):
            if match.start() != pos:
                break
            total += float(match[1]) * _UNITS[match[2]]
            pos = match.end()
        if pos == len(raw) and raw:
            seconds = total
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(
            f"{field}: {text!r} is not a positive duration; write e.g. 30s, 5m, 1h, 7d or 1h30m"
        )
    return seconds


def parse_since(text: str | None, *, now: float) -> float | None:
    """The epoch seconds ``--since`` names: a duration back from ``now`` (``24h``), an ISO 8601
    time (``2024-05-01`` or ``2024-05-01T12:00``, UTC unless it has an offset). A bare number
    is a duration in seconds. None stays None (no lower bound).

    Raises:
        InvalidArgument: none of those forms.
    """
    if text is None:
        return None
    raw = str(text).strip()
    try:
        return now - parse_duration(raw, field="--since")
    except InvalidArgument:
        pass
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidArgument(
            f"--since: {text!r} is neither a duration (24h, 30m) nor an ISO time (2024-05-01T12:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def buckets(start: float, end: float, width: float) -> list[tuple[float, float]]:
    """``[start, end)`` cut into consecutive windows of ``width`` seconds (the last may be
    shorter), aligned on multiples of ``width`` since the epoch."""
    if width <= 0:
        raise InvalidArgument(f"window width must be positive, got {width}")
    if end <= start:
        return []
    first = math.floor(start / width) * width
    edges = []
    lo = first
    while lo < end:
        edges.append((max(lo, start), min(lo + width, end)))
        lo += width
    return edges
