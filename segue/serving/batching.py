"""Micro-batching: concurrent requests' rows go to the model together, in one call off the loop.

:func:`should_flush` is the whole policy, a pure function. :class:`Batcher` applies it on an
asyncio event loop: requests wait in a queue; a collector task takes up to ``max_batch_size``
rows of them and hands the batch to ONE call of the batch function on a single worker thread,
so the event loop keeps parsing requests while the model runs, and rows that arrive meanwhile
form the next batch. At low load a request goes alone and waits for nothing; under load the
batches grow by themselves. Each request's future gets its own result back.

When the model raises on a batch of several requests, each of them is predicted again on its
own, so one request the model cannot handle fails alone instead of failing the other clients
that happened to share its batch. A failure's traceback is logged once a minute per distinct
error (:class:`~segue.serving.failure_log.FailureLog`); its repeats meanwhile get one line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from segue.serving.failure_log import FailureLog, error_key

__all__ = [
    "Batcher",
    "BatcherClosed",
    "BatcherFailed",
    "PredictionFailed",
    "should_flush",
]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("segue.serving")


def should_flush(
    n_rows: int,
    oldest_age: float,
    *,
    max_batch_size: int,
    max_latency: float,
    incoming: int = 0,
) -> bool:
    """Whether the waiting rows should go to the model now.

    Args:
        n_rows: rows waiting.
        oldest_age: seconds the oldest waiting request has waited.
        max_batch_size: a batch of this many rows goes at once.
        max_latency: the longest a request waits for others to join its batch, in seconds.
        incoming: requests already being received (their bodies still arriving). Only for
            those is waiting worth it; with none, the batch goes now, so a lone request never
            waits, and under load the next batch grows by itself while the model runs.

    Example::

        >>> should_flush(1, 0.0, max_batch_size=64, max_latency=0.005, incoming=0)
        True
    """
    if n_rows <= 0:
        return False
    if n_rows >= max_batch_size or oldest_age >= max_latency:
        return True
    return incoming <= 0


class PredictionFailed(Exception):
    """The batch function raised on this request, alone (an HTTP 500)."""


class BatcherClosed(Exception):
    """The batcher was drained (the server is stopping or the model was replaced): HTTP 503."""


class BatcherFailed(BatcherClosed):
    """The batcher's own collector failed (a bug in Segue, not the model's): every request it
    held gets this (an HTTP 503, to retry), and the next request starts a new collector."""


class _Waiting:
    """A queued request: ``taken`` of its ``rows`` have gone into batches so far, whose
    results wait in ``parts`` while it is split across batches."""

    __slots__ = ("future", "item", "parts", "rows", "since", "taken")

    def __init__(self, item: Any, rows: int, future: asyncio.Future, since: float) -> None:
        self.item = item
        self.rows = rows
        self.future = future
        self.since = since
        self.taken = 0
        self.parts: list[Any] | None = None  # made for the first piece: most never split


#: One request's share of a batch: the request, and its rows start:stop in the batch.
_Share = tuple[_Waiting, int, int]


class Batcher(Generic[T, R]):
    """Gathers concurrent :meth:`submit` calls into batches for ``run``.

    Args:
        run: called on the worker thread with a list of items; returns one result per item,
            in order. If it raises on a batch of several items, it is called again for each
            item alone (on the same thread, in order): only the items it still raises on
            fail, with :class:`PredictionFailed`.
        max_batch_size: most rows per batch; a larger request is split (see ``split``) or,
            without ``split``, goes alone.
        max_latency_ms: most time a request waits for others to join its batch.
        clock: monotonic seconds (injectable for tests); also times the failure log.
        on_batch: called on the event loop with each batch's row count (metrics).
        on_split: called on the event loop with the number of requests of each batch that
            failed and was predicted request by request (metrics).
        failure_log: logs the failures (default: a traceback once a minute per distinct
            error, timed by ``clock``).
        split, join: ``split(item, start, stop)`` gives the item's rows ``start:stop`` as an
            item, and ``join(results)`` one result from its pieces' results, in order. With
            them, every batch is filled to ``max_batch_size`` rows: a request that does not
            fit in the room left is split, its first rows fill the batch and the rest go
            first in the next one (so 100-row requests at 64 rows a batch cost 1.6 calls
            each, not 2); without them, a request larger than a batch goes alone, and one
            that does not fit waits for the next batch.
        inline_ms: run a batch on the event loop's own thread, not the worker thread, while
            the batch function costs at most this many milliseconds of CPU a call (a moving
            average of the calls so far, measured on whichever thread ran them; the first
            call always goes to the thread). Handing a cheap call to a thread costs more than
            the call (the two threads pass the GIL to and fro); a call this short delays the
            loop's other requests less than that does. 0 (the default): always the thread.

    The collector starts on the first :meth:`submit`, on the running loop. While a batch waits
    for requests still arriving, the collector sleeps on an event (set by each
    :meth:`submit` and each request leaving :meth:`incoming`) with the rest of
    ``max_latency`` as its timeout; it never spins. If the collector itself fails, the
    requests it holds get :class:`BatcherFailed` and the next :meth:`submit` starts a new
    one: a bug on one path must not leave every later request waiting forever.

    Example::

        >>> batcher = Batcher(lambda items: [x * 2 for x in items], max_batch_size=64)
        >>> await batcher.submit(21, rows=1)
        42
    """

    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int = 64,
        max_latency_ms: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_batch: Callable[[int], None] | None = None,
        on_split: Callable[[int], None] | None = None,
        failure_log: FailureLog | None = None,
        split: Callable[[T, int, int], T] | None = None,
        join: Callable[[list[R]], R] | None = None,
        inline_ms: float = 0.0,
    ) -> None:
        if (split is None) != (join is None):
            raise ValueError("split and join go together")
        self.run = run
        self.split = split
        self.join = join
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000
        self.clock = clock
        self.on_batch = on_batch
        self.on_split = on_split
        self.failure_log = failure_log if failure_log is not None else FailureLog(clock=clock)
        self._queue: deque[_Waiting] = deque()
        self._batch: list[_Share] = []  # the batch being run (failed with the rest on a crash)
        self._rows = 0
        self._incoming = 0
        # Set by submit() and by a request leaving incoming(): the collector sleeps on it.
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.inline_budget = inline_ms / 1000
        #: Moving average of the batch function's CPU seconds a call (None: not run yet).
        self.cost: float | None = None

    @property
    def waiting_rows(self) -> int:
        return self._rows

    def incoming(self) -> _Incoming:
        """Mark a request as on its way while its body is read and checked (``with``).

        A batch about to go waits for such requests (up to ``max_latency``). Leave the block
        before calling :meth:`submit`.
        """
        return _Incoming(self)

    def _arrived(self) -> None:
        self._incoming -= 1
        if self._wake is not None:
            self._wake.set()  # a batch waiting for this request need wait no more

    async def submit(self, item: T, rows: int = 1) -> R:
        """Queue ``item`` (``rows`` rows) and wait for its result.

        Raises:
            PredictionFailed: the batch it ran in failed.
            BatcherClosed: the batcher has been drained (or, as :class:`BatcherFailed`, its
                collector failed while holding the request).
        """
        if self._closed:
            raise BatcherClosed("the model is no longer served here; retry")
        if self._task is None:
            self._start()
        assert self._wake is not None and self._idle is not None
        return await self._enqueue(item, rows)

    def _enqueue(self, item: T, rows: int) -> asyncio.Future[R]:
        assert self._wake is not None and self._idle is not None
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(item, rows, future, self.clock()))
        self._rows += rows
        self._idle.clear()
        self._wake.set()
        return future

    def _start(self) -> None:
        # The events outlive a failed collector: drain() may be waiting on them.
        if self._wake is None or self._idle is None:
            self._wake = asyncio.Event()
            self._idle = asyncio.Event()
            self._idle.set()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segue-predict")
        self._task = asyncio.get_running_loop().create_task(self._guarded())

    async def _guarded(self) -> None:
        """The collector, and what happens when it fails: its requests get 503, not silence."""
        try:
            await self._collect()
        except asyncio.CancelledError:
            self._fail_pending(BatcherClosed("the server is stopping; retry"))
            raise
        except Exception as exc:  # a bug here must not strand every later request
            log.exception(
                "the batcher's collector failed; failing its %d waiting request(s) with 503 "
                "and starting a new collector for the next request",
                len(self._batch) + len(self._queue),
            )
            self._fail_pending(
                BatcherFailed(f"the server's batcher failed ({type(exc).__name__}); retry")
            )
            self._task = None  # the next submit() starts a new collector

    def _fail_pending(self, failure: BatcherClosed) -> None:
        """Fail the batch being run and every queued request; mark the batcher idle."""
        for waiting in (*(share[0] for share in self._batch), *self._queue):
            if not waiting.future.done():
                waiting.future.set_exception(failure)
        self._batch = []
        self._queue.clear()
        self._rows = 0
        if self._idle is not None:
            self._idle.set()

    async def _collect(self) -> None:
        assert self._wake is not None and self._idle is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._gather()
            self._batch = self._take()
            if self._batch:  # empty when every request waiting was cancelled or had failed
                await self._run(loop, self._batch)
            self._batch = []

    async def _gather(self) -> None:
        """Let requests already on their way join the batch (at most ``max_latency``)."""
        assert self._wake is not None
        # One loop pass: requests read in the same pass as the first one join at no cost.
        await asyncio.sleep(0)
        while True:
            age = self.clock() - self._queue[0].since
            if should_flush(
                self._rows,
                age,
                max_batch_size=self.max_batch_size,
                max_latency=self.max_latency,
                incoming=self._incoming,
            ):
                return
            # Sleep until a request arrives or finishes arriving, or the oldest has waited
            # max_latency: whichever comes first.
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.max_latency - age)

    def _take(self) -> list[_Share]:
        """The next batch: queued requests, in order, up to ``max_batch_size`` rows; with
        ``split``, the first that does not fit gives its first rows to fill the batch."""
        batch: list[_Share] = []
        room = self.max_batch_size
        queue = self._queue
        while queue and room > 0:
            waiting = queue[0]
            if waiting.future.done():  # a piece failed, or the caller went: drop the rest
                queue.popleft()
                self._rows -= waiting.rows - waiting.taken
                continue
            start = waiting.taken
            left = waiting.rows - start
            if left > room:
                if self.split is not None:
                    left = room  # fill the batch; the rest goes first in the next one
                elif batch:
                    break  # it goes in the next batch (alone, if larger than one)
            if left == waiting.rows - start:
                queue.popleft()
            waiting.taken = start + left
            self._rows -= left
            room -= left
            batch.append((waiting, start, start + left))
        return batch

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Share]) -> None:
        split = self.split
        items = [
            waiting.item
            if stop - start == waiting.rows or split is None
            else split(waiting.item, start, stop)
            for waiting, start, stop in batch
        ]
        if self.on_batch is not None:
            self.on_batch(sum(stop - start for _, start, stop in batch))
        outcomes: Sequence[R | _Failure]
        inline = self.cost is not None and self.cost <= self.inline_budget
        try:
            if inline:
                outcomes = self._checked(items)
            else:
                outcomes = await loop.run_in_executor(self._executor, self._checked, items)
        except Exception as exc:  # the model's own code: anything can come out of it
            if len(batch) == 1:
                outcomes = [_Failure(exc)]
            else:
                # Only the requests that fail on their own must fail: predict each alone.
                if self.on_split is not None:
                    self.on_split(len(batch))
                if inline:
                    outcomes = self._one_by_one(items)
                else:
                    outcomes = await loop.run_in_executor(self._executor, self._one_by_one, items)
                if not any(isinstance(outcome, _Failure) for outcome in outcomes):
                    what = f"a batch of {len(batch)} requests failed where each alone did not"
                    self.failure_log.failed(exc, what)
        failed: dict[tuple[str, str], list[Exception]] = {}  # by distinct error
        for (waiting, start, stop), outcome in zip(batch, outcomes, strict=True):
            future = waiting.future
            if isinstance(outcome, _Failure):
                key = error_key(outcome.exc)
                failed.setdefault(key, []).append(outcome.exc)
                if not future.done():  # a request split across batches fails as a whole
                    future.set_exception(PredictionFailed(": ".join(key)))
            elif future.done():  # the client went away, or another piece failed
                pass
            elif start == 0 and stop == waiting.rows:
                future.set_result(outcome)  # the whole request in this batch
            else:
                if waiting.parts is None:
                    waiting.parts = []
                waiting.parts.append(outcome)
                if stop == waiting.rows:  # its last piece
                    assert self.join is not None  # split is never set without join
                    future.set_result(self.join(waiting.parts))
        for errors in failed.values():
            self.failure_log.failed(errors[0], f"prediction failed for {len(errors)} request(s)")

    def _checked(self, items: list[T]) -> Sequence[R]:
        started = time.thread_time()
        try:
            results = self.run(items)
        finally:
            spent = time.thread_time() - started
            self.cost = spent if self.cost is None else 0.8 * self.cost + 0.2 * spent
        if len(results) != len(items):
            raise RuntimeError(f"batch function gave {len(results)} results for {len(items)}")
        return results

    def _one_by_one(self, items: list[T]) -> list[R | _Failure]:
        """Each item alone, in order (on the worker thread): a result or the failure."""
        outcomes: list[R | _Failure] = []
        for item in items:
            try:
                outcomes.append(self._checked([item])[0])
            except Exception as exc:  # the model's own code
                outcomes.append(_Failure(exc))
        return outcomes

    async def drain(self, timeout: float | None = None) -> None:
        """Finish every queued request, then stop taking new ones and release the thread.

        Args:
            timeout: most seconds to wait for the queued requests (None: as long as they
                take). Requests still waiting then get :class:`BatcherClosed`.

        Returns at once when the collector has failed or never started; it never waits on a
        collector that is gone.
        """
        self._closed = True
        task = self._task
        if task is not None and self._idle is not None:
            idle = asyncio.ensure_future(self._idle.wait())
            try:
                await asyncio.wait(
                    {idle, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                idle.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_pending(BatcherClosed("the model is no longer served here; retry"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)


class _Incoming:
    """:meth:`Batcher.incoming`'s context: a plain class, as it is entered once a request
    (a generator-based context manager cost ~6% of the event loop's time at 1-row bodies)."""

    __slots__ = ("batcher",)

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    def __enter__(self) -> None:
        self.batcher._incoming += 1

    def __exit__(self, *exc: object) -> None:
        self.batcher._arrived()


class _Failure:
    """A request's failure when predicted alone (a result in :meth:`Batcher._one_by_one`)."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
