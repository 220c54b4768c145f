"""The model's failures in the server log: a traceback once a minute per distinct error.

The batcher (:mod:`segue.serving.batching`) reports each failed prediction here; a client
sending, again and again, an input the model cannot handle then gets one line per repeat, not
one traceback each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["FailureLog", "error_key"]

log = logging.getLogger("segue.serving")


class FailureLog:
    """Logs the model's failures: a traceback once per ``window`` seconds per distinct error.

    Errors are told apart by their type and the first line of their message. A repeat within
    the window gets one line; the next traceback says how many repeats it stood for. So a
    client sending, again and again, an input the model cannot handle cannot flood the log
    with tracebacks.

    Args:
        window: seconds between two tracebacks of the same error.
        clock: monotonic seconds (injectable for tests).
        max_errors: distinct errors remembered; past it the oldest are forgotten first.
    """

    def __init__(
        self,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_errors: int = 256,
    ) -> None:
        self.window = window
        self.clock = clock
        self.max_errors = max_errors
        # (type name, first line) -> [when its traceback was logged, repeats since]
        self._seen: dict[tuple[str, str], list[float]] = {}

    def failed(self, exc: BaseException, what: str) -> None:
        """Log that ``what`` (e.g. "prediction failed for 2 request(s)") failed with ``exc``."""
        key = error_key(exc)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            seen[1] += 1
            log.error(
                "%s: %s: %s (repeated; its traceback is logged once every %g s)",
                what,
                *key,
                self.window,
            )
            return
        repeats = 0 if seen is None else int(seen[1])
        self._seen.pop(key, None)  # re-inserted last: the dict stays in order of tracebacks
        self._seen[key] = [now, 0]
        if len(self._seen) > self.max_errors:
            del self._seen[next(iter(self._seen))]
        since = f" (and {repeats} more time(s) since its last traceback)" if repeats else ""
        log.error("%s: %s: %s%s", what, *key, since, exc_info=exc)


def error_key(exc: BaseException) -> tuple[str, str]:
    """What tells errors apart: the type's name and the first line of the message (cut to 300
    characters)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else "(no message)"
    return type(exc).__name__, line if len(line) <= 300 else line[:297] + "..."
