"""Hot swap: keep each alias route on the version its alias points at, without dropping a request.

An :class:`AliasWatcher` looks at the registry every ``poll_s`` seconds, and at once when the
move is heard: a PostgreSQL notification, on SQLite the registry's audit log read every 0.2 s
(see :mod:`segue.store.notify`), a team server's push in remote mode. Every worker of
``--workers N`` hears the same move itself, so they all swap within moments of each other.
When the alias has moved, the watcher loads the new version on its own thread (every hash
verified, one warm-up prediction), then hands the new
:class:`~segue.serving.deployment.Deployment` to the event loop, which assigns it to the
route in one step (:meth:`~segue.serving.deployment.Route.replace`) and, in a task of its
own, retires the old one once the requests it took are answered
(:meth:`~segue.serving.deployment.Deployment.retire`). A version that fails to load is logged
once, counted in ``segue_swap_failures_total``, shown as the route's ``wanted`` version (with
the error) in ``/v2/models/{name}``, and tried again with exponential backoff
(:func:`retry_delay`; a blob being restored, a store briefly down); the old version keeps
serving meanwhile.

:class:`Watchers` runs a server's watchers (and the notification listener) for as long as the
app serves: it is one of the app's ``background`` context managers.

Example::

    >>> watcher = AliasWatcher(route, "churn", resolve=lambda uri: 4, load=load_version)
    >>> watcher.check()          # one look: the new version's deployment, or None
    <Deployment version='4' ...>
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from segue.errors import InvalidArgument
from segue.models.uri import parse_model_uri
from segue.serving.deployment import Deployment, Route
from segue.serving.metrics import ServingMetrics

__all__ = ["AliasWatcher", "Watchers", "retry_delay", "watched"]

log = logging.getLogger("segue.serving")

#: Default seconds between looks at the registry.
POLL_SECONDS = 5.0
#: Longest a stopping server waits for a watcher busy loading a version.
_JOIN_SECONDS = 30.0
#: Seconds before the first retry of a version that failed to load; doubled on each failure.
RETRY_SECONDS = 1.0
#: Longest wait between retries.
MAX_RETRY_SECONDS = 300.0

Apply = Callable[[Route, Deployment], None]


def retry_delay(
    failures: int, *, first: float = RETRY_SECONDS, cap: float = MAX_RETRY_SECONDS
) -> float:
    """Seconds to wait before the next attempt after ``failures`` failed ones (pure).

    Example::

        >>> [retry_delay(n, first=1.0, cap=5.0) for n in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 5.0]
    """
    return min(cap, first * 2.0 ** max(0, failures - 1))


def watched(uri: str | None) -> bool:
    """Whether a route serving ``uri`` follows the registry (``models:/name@alias``)."""
    if not uri or not uri.startswith("models:"):
        return False
    return parse_model_uri(uri).alias is not None


class AliasWatcher:
    """Keeps ``route`` (serving ``models:/name@alias``) on the version the alias points at.

    Args:
        route: the route to keep current.
        served: the name the route answers for (for logs).
        resolve: the version number ``route.uri`` points at now (``Registry.resolve``);
            called on the watcher's thread.
        load: a ``models:/name/<version>`` URI -> its deployment, loaded, verified and warmed
            up; called on the watcher's thread.
        poll_s: seconds between looks at the registry.
        metrics: counts failed loads in ``segue_swap_failures_total``.
        clock: monotonic seconds, for the retry backoff (injectable for tests).
        retry_s, max_retry_s: the first and the longest wait before retrying a version
            that failed to load (see :func:`retry_delay`).

    Raises:
        InvalidArgument: the route does not serve an alias URI, or ``poll_s`` is not > 0.
    """

    def __init__(
        self,
        route: Route,
        served: str,
        *,
        resolve: Callable[[str], int],
        load: Callable[[str], Deployment],
        poll_s: float = POLL_SECONDS,
        metrics: ServingMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = RETRY_SECONDS,
        max_retry_s: float = MAX_RETRY_SECONDS,
    ) -> None:
        uri = route.uri
        if uri is None or not watched(uri):
            raise InvalidArgument(f"route {route.label!r}: only models:/name@alias is watched")
        if not poll_s > 0:
            raise InvalidArgument(f"--poll-s must be > 0 seconds, got {poll_s}")
        parsed = parse_model_uri(uri)
        assert parsed.name is not None and parsed.alias is not None  # watched() says so
        self.route = route
        self.served = served
        self.uri: str = uri
        self.model: str = parsed.name
        self.alias: str = parsed.alias
        self.resolve = resolve
        self.load = load
        self.poll_s = poll_s
        self.metrics = metrics
        self.clock = clock
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        # The version that failed to load, how many times in a row, and when to try again.
        self._failing: int | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._unresolved = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> Deployment | None:
        """Look at the registry once: the deployment of the version the alias points at now,
        if it is not the one serving (None otherwise, if it could not be loaded, or if it
        failed before and its next retry is not due yet)."""
        try:
            number = self.resolve(self.uri)
        except Exception as exc:  # alias deleted, database down: keep serving what we have
            if not self._unresolved:
                log.warning(
                    "route %s: cannot resolve %s (%s); version %s keeps serving",
                    self.route.label,
                    self.route.uri,
                    exc,
                    self._serving(),
                )
                self._unresolved = True
            return None
        self._unresolved = False
        current = self.route.current
        if current is not None and current.version == str(number):
            self._forget_failure()
            self.route.wanted = self.route.failure = None
            return None
        if number != self._failing:  # a new target: it gets its own first attempt
            self._forget_failure()
        elif self.clock() < self._retry_at:
            return None
        self.route.wanted = str(number)
        uri = f"models:/{self.model}/{number}"
        try:
            deployment = self.load(uri)
        except Exception as exc:  # whatever the model's code raises while loading or warming
            self._failed_to_load(number, exc)
            return None
        if self._failures:
            log.info(
                "route %s: version %s loaded after %d failed attempt(s)",
                self.route.label,
                number,
                self._failures,
            )
        self._forget_failure()
        return deployment

    def _failed_to_load(self, number: int, exc: Exception) -> None:
        self._failing = number
        self._failures += 1
        delay = retry_delay(self._failures, first=self.retry_s, cap=self.max_retry_s)
        self._retry_at = self.clock() + delay
        self.route.failure = f"{type(exc).__name__}: {exc}"
        if self.metrics is not None:
            self.metrics.swap_failures.labels(self.served, self.route.label).inc()
        if self._failures == 1:  # once per target: the retries are counted, not logged
            log.error(
                "route %s: %s@%s moved to version %s, which failed to load; version %s keeps "
                "serving (retrying with backoff, first in %g s): %s",
                self.route.label,
                self.model,
                self.alias,
                number,
                self._serving(),
                delay,
                self.route.failure,
            )

    def _forget_failure(self) -> None:
        self._failing, self._failures, self._retry_at = None, 0, 0.0

    def _timeout(self) -> float:
        """Seconds until the next look: the poll interval, or sooner when a retry is due."""
        if self._failing is None:
            return self.poll_s
        return max(0.0, min(self.poll_s, self._retry_at - self.clock()))

    def _serving(self) -> str:
        current = self.route.current
        return "none" if current is None else current.version

    def wake(self) -> None:
        """Look at the registry now rather than at the next poll."""
        self._wake.set()

    def start(self, apply: Apply) -> None:
        """Watch on a daemon thread; ``apply(route, deployment)`` puts a new version in place
        and returns once it answers."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(apply,), name=f"segue-watch-{self.route.label}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, apply: Apply) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._timeout())
            self._wake.clear()
            if self._stop.is_set():
                return
            deployment = self.check()
            if deployment is None or self._stop.is_set():
                continue  # a deployment never applied has no batcher running: nothing to stop
            try:
                apply(self.route, deployment)
            except Exception:  # the loop is gone (shutting down) or the swap itself failed
                if not self._stop.is_set():
                    log.exception(
                        "route %s: could not swap in version %s",
                        self.route.label,
                        deployment.version,
                    )


class Watchers:
    """A server's alias watchers, run while the app serves (an async context manager).

    Args:
        watchers: one per watched route.
        listen: a blocking ``listen(on_change, stop, on_connect=None)`` (from
            ``Registry.alias_listener()``) that wakes the watcher of a moved alias at once;
            None to rely on polling.
        metrics: counts swaps in ``segue_model_swaps_total``.
        clock: monotonic seconds, for the drain times logged.
    """

    def __init__(
        self,
        watchers: Sequence[AliasWatcher],
        *,
        listen: Callable[..., None] | None = None,
        metrics: ServingMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watchers = list(watchers)
        self.listen = listen
        self.metrics = metrics
        self.clock = clock
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._retiring: set[asyncio.Task] = set()

    def __call__(self) -> Watchers:
        """The context manager itself (``ServeConfig.background`` takes factories)."""
        return self

    async def __aenter__(self) -> Watchers:
        loop = asyncio.get_running_loop()

        def apply(route: Route, deployment: Deployment) -> None:
            asyncio.run_coroutine_threadsafe(self._swap(route, deployment), loop).result()

        self._stop.clear()
        for watcher in self.watchers:
            watcher.start(apply)
        if self.listen is not None and self.watchers:
            self._listener = threading.Thread(
                target=self.listen,
                args=(self.notified, self._stop),
                kwargs={"on_connect": self.wake_all},
                name="segue-registry-listen",
                daemon=True,
            )
            self._listener.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self._stop.set()
        for watcher in self.watchers:
            watcher.stop()
        await asyncio.to_thread(self._join)
        while self._retiring:  # old versions still answering their last requests
            await asyncio.gather(*self._retiring, return_exceptions=True)

    def _join(self) -> None:
        deadline = time.monotonic() + _JOIN_SECONDS
        for thread in (*self.watchers, self._listener):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    def notified(self, model: str, alias: str) -> None:
        """``model@alias`` changed: wake the watchers that follow it."""
        for watcher in self.watchers:
            if watcher.model == model and watcher.alias == alias:
                watcher.wake()

    def wake_all(self) -> None:
        for watcher in self.watchers:
            watcher.wake()

    async def _swap(self, route: Route, deployment: Deployment) -> None:
        # Only the assignment is awaited by the watcher's thread: a slow request still held by
        # the old deployment must not hold up the route's next swap.
        old = route.replace(deployment)
        served = next(w.served for w in self.watchers if w.route is route)
        if self.metrics is not None:
            self.metrics.swaps.labels(served, route.label).inc()
        log.info(
            "route %s of %r: version %s -> %s (loaded and warmed up in %.2f s)",
            route.label,
            served,
            "none" if old is None else old.version,
            deployment.version,
            deployment.load_seconds,
        )
        if old is not None and old is not deployment:
            task = asyncio.get_running_loop().create_task(self._retire(route, old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, route: Route, old: Deployment) -> None:
        started = self.clock()
        try:
            await old.retire()
        except Exception:
            log.exception("route %s: could not drain version %s", route.label, old.version)
            return
        log.info(
            "route %s: version %s drained after %.2f s",
            route.label,
            old.version,
            self.clock() - started,
        )
