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
import signal
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from types import FrameType
from typing import Any

from segue.serving.errors import RequestError

__all__ = ["STOPPING", "BodyReads", "stop_reads_on_signal"]

#: What a request whose body was still arriving when the server began to stop is told.
STOPPING = "the server is stopping and the request body had not arrived; retry"


class BodyReads:
    """The requests reading their bodies now, so that a stopping server can cut them short.

    Example::

        >>> with reads.reading():  # in the request's task
        ...     body = await receive_whole_body()
        >>> reads.stop()  # from the event loop: every read still waiting raises a 503
    """

    def __init__(self) -> None:
        self.stopping = False
        self._reading: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()  # cancelled by stop(), not by anyone else

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Mark the current task as reading its body while in the block.

        Raises:
            RequestError: 503 when :meth:`stop` cut the read short.
        """
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to cancel
            yield
            return
        self._reading.add(task)
        if self.stopping:
            # Begun after the stop: it may finish if its body is already there (the block
            # then ends before this runs), not wait for one.
            asyncio.get_running_loop().call_soon(self._cut_short, task)
        try:
            yield
        except asyncio.CancelledError:
            # Only our own cancellation becomes a 503; uvicorn's (its grace period is over)
            # goes on as it came.
            if task in self._cut and task.uncancel() == 0:
                raise RequestError(503, STOPPING) from None
            raise
        finally:
            self._reading.discard(task)
            self._cut.discard(task)

    def stop(self) -> None:
        """Cut short every read under way and every read begun from now on that must wait.

        Call it on the event loop (from a signal handler: ``loop.call_soon_threadsafe``).
        """
        self.stopping = True
        for task in list(self._reading):
            self._cut_short(task)

    def _cut_short(self, task: asyncio.Task[Any]) -> None:
        if task in self._reading and task not in self._cut:
            self._cut.add(task)
            task.cancel()


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
