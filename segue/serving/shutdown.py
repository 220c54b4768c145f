"""A stopping server cuts short the request bodies still arriving, instead of waiting for them.

uvicorn's graceful shutdown waits for every request under way, so a client that declared a
body and stalls would hold SIGTERM for up to ``--body-timeout``. :class:`BodyReads` knows which
requests are reading their bodies; :meth:`BodyReads.stop` ends each of those reads at once
with a 503 "the server is stopping; retry": nothing of such a request has reached a model, so
the client (or its load balancer) may safely send it again elsewhere. A body that is already
there is still read whole, and a request that has its body is answered as before.

ASGI tells an app nothing of a shutdown until its requests are done (the lifespan's shutdown
comes after), so :func:`stop_reads_on_signal` puts a handler for SIGTERM and SIGINT in front
of the one uvicorn installed, for as long as the app runs: it stops the reads, then does what
uvicorn's handler does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import FrameType
from typing import Any

from segue.serving.errors import RequestError

__all__ = ["STOPPING", "BodyReads", "stop_reads_on_signal"]

#: What a request whose body was still arriving when the server began to stop is told.
STOPPING = "the server is stopping and the request body had not arrived; retry"


class BodyReads:
    """The requests reading their bodies now: each read ends with a 408 when its body has not
    arrived within its timeout, and a stopping server cuts every read short with a 503.

    One timer serves every read (it sweeps the reads under way every ``timeout / 10``,
    between 10 ms and 1 s, while there are any), where an ``asyncio.timeout`` per request
    cost a timer handle on the loop's heap each time: a read is two dict operations, and a
    body that is already there never waits for the sweep. A read thus ends between its
    timeout and a tenth more.

    Example::

        >>> body = await reads.read(receive_whole_body, timeout=30.0)  # in the request's task
        >>> reads.stop()  # from the event loop: every read still waiting raises a 503
    """

    def __init__(self) -> None:
        self.stopping = False
        self._reading: dict[asyncio.Task[Any], tuple[float, float]] = {}  # (deadline, timeout)
        # Cancelled by us, not by anyone else: with the answer's status (503 or 408).
        self._cut: dict[asyncio.Task[Any], int] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on

    async def read(self, read: Callable[[], Awaitable[bytes]], timeout: float) -> bytes:
        """``await read()`` in the current task, cut short when it takes over ``timeout``
        seconds or the server stops.

        Raises:
            RequestError: 408 after ``timeout``; 503 when :meth:`stop` cut the read short.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # not in a task: nothing to cancel
            return await read()
        self._reading[task] = (loop.time() + timeout, timeout)
        if self._sweep is None or self._sweep_loop is not loop:  # e.g. the last loop closed
            self._sweep = loop.call_later(_sweep_every(timeout), self._sweep_reads, loop)
            self._sweep_loop = loop
        if self.stopping:
            # Begun after the stop: it may finish if its body is already there (the read
            # then ends before this runs), not wait for one.
            loop.call_soon(self._cut_short, task, 503)
        try:
            return await read()
        except asyncio.CancelledError:
            # Only our own cancellation becomes an answer; uvicorn's (its grace period is
            # over) goes on as it came.
            status = self._cut.get(task)
            if status is not None and task.uncancel() == 0:
                if status == 503:
                    raise RequestError(503, STOPPING) from None
                raise TimeoutError from None
            raise
        finally:
            del self._reading[task]
            if self._cut:
                self._cut.pop(task, None)

    def _sweep_reads(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cut short the reads past their deadline; come back while any are under way."""
        if loop is not self._sweep_loop:  # a sweep of a loop the reads have left
            return
        self._sweep = None
        if not self._reading:
            return
        now = loop.time()
        shortest = math.inf
        for task, (deadline, timeout) in list(self._reading.items()):
            if deadline <= now:
                self._cut_short(task, 408)
            shortest = min(shortest, timeout)
        self._sweep = loop.call_later(_sweep_every(shortest), self._sweep_reads, loop)

    def stop(self) -> None:
        """Cut short every read under way and every read begun from now on that must wait.

        Call it on the event loop (from a signal handler: ``loop.call_soon_threadsafe``).
        """
        self.stopping = True
        for task in list(self._reading):
            self._cut_short(task, 503)

    def _cut_short(self, task: asyncio.Task[Any], status: int) -> None:
        if task in self._reading and task not in self._cut:
            self._cut[task] = status
            task.cancel()


def _sweep_every(timeout: float) -> float:
    """How often the reads are checked against a timeout: a tenth of it, 10 ms to 1 s."""
    return min(max(timeout / 10, 0.01), 1.0)


@contextlib.asynccontextmanager
async def stop_reads_on_signal(
    reads: BodyReads, signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> AsyncIterator[None]:
    """While in the block, ``signals`` first call ``reads.stop()`` on this loop, then the
    handler each had before (uvicorn's, which starts the graceful shutdown).

    Signals only reach the main thread: elsewhere (a server on a test's thread) this does
    nothing. The previous handlers are put back on leaving, unless replaced meanwhile.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(reads.stop)
        before = previous[signal.Signals(sig)]
        if callable(before):
            before(sig, frame)
        elif before == signal.SIG_DFL:  # e.g. terminate: put it back and let it act
            signal.signal(sig, before)
            signal.raise_signal(sig)

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handle:
                signal.signal(sig, before)
