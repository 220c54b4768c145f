"""The rule for the names of stored things (models, schedules): a letter or digit first, then
letters, digits, '_', '-' and '.', up to a length limit."""

from __future__ import annotations

import functools
import re
from typing import Any

from segue.errors import InvalidArgument


def check_name(kind: str, name: Any, longest: int) -> str:
    """``name`` if it follows the rule with at most ``longest`` characters, else InvalidArgument
    saying what is allowed (``kind`` names the thing: "model", "schedule")."""
    # fullmatch: with match, '$' also accepts a trailing newline ("churn\n").
    if not isinstance(name, str) or not _pattern(longest).fullmatch(name):
        raise InvalidArgument(
            f"{kind} name {name!r} must start with a letter or digit and contain only letters, "
            f"digits, '_', '-' and '.' (at most {longest} characters)"
        )
    return name


@functools.cache
def _pattern(longest: int) -> re.Pattern[str]:
    return re.compile(rf"[A-Za-z0-9][\w.\-]{{0,{longest - 1}}}")
