"""Failed-authentication limits: a client with too many failures in a minute is refused.

Shared by the team server (``segue server``) and the inference server (``segue serve --auth``);
it lives here, below both edges, as ``segue.serving`` imports nothing from ``segue.server``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from segue.errors import TooManyRequests

#: Failed attempts allowed from one client in :data:`WINDOW` seconds.
MAX_FAILURES = 10
WINDOW = 60.0


class FailureLimiter:
    """Counts failed authentications per client (its address) over a sliding minute.

    Example::

        >>> limiter = FailureLimiter()
        >>> limiter.check("10.0.0.7")      # raises TooManyRequests after 10 failures
        >>> limiter.failed("10.0.0.7")
    """

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def check(self, client: str) -> None:
        """Raise :class:`TooManyRequests` if ``client`` already failed too often this minute."""
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if len(times) >= self.max_failures:
                retry = max(1, int(times[0] + self.window - now + 0.999))
                raise TooManyRequests(
                    f"too many failed authentications from {client}: "
                    f"{len(times)} in the last {int(self.window)} s; retry in {retry} s",
                    retry_after=retry,
                )
            if not times:
                self._failures.pop(client, None)

    def failed(self, client: str) -> None:
        """Count one failed attempt by ``client``."""
        now = self._clock()
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 100_000:  # a flood of addresses must not grow memory
                self._failures = {c: t for c, t in self._failures.items() if t}
