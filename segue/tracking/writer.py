"""Background writing of metric points and run heartbeats.

Logging a metric only appends to an in-memory backlog. A daemon thread writes the backlog in
batches every ``flush_interval`` seconds (and sooner when it fills), and touches the heartbeat of
every live run every ``heartbeat_interval`` seconds, so a run whose process died is noticed.

The backlog is bounded (``max_backlog`` points). When it is full, ``when_full="block"`` (the
default: no point is lost) makes the logging call wait until the writer has taken points out,
and ``when_full="drop"`` drops the new points, counts them and warns. A failed write is
retried only when the error is transient (the database is locked, busy or unreachable); a
permanent one (a constraint, a value the database refuses) drops the batch and is reported
loudly, by the call that flushes the run (``end``) and in the log, instead of blocking every
later write.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from segue.errors import InvalidArgument, NotFound, SegueError
from segue.store.entities import Metric
from segue.store.run_data import MetricColumns
from segue.store.sessions import describe, is_transient
from segue.store.tracking import TrackingStore

log = logging.getLogger(__name__)

#: Points held before the writer is woken early.
_EAGER_FLUSH = 5_000
WHEN_FULL = ("block", "drop")

#: A run's buffered points: per key, the columns values, steps and timestamps, in the order
#: logged (what the store writes, with no object a point).
_Columns = tuple[list[float], list[int], list[int]]
_RunPoints = dict[str, _Columns]

#: How many times this process is a forked child of the one that imported this module: a
#: writer started before a fork has no thread in the child (cheaper than os.getpid a point).
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class MetricsLost(SegueError):
    """Metric points could not be written for a permanent reason and were dropped."""

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count


class MetricWriter:
    """Buffers metric points per run and writes them from one background thread.

    Args:
        store: where points and heartbeats go.
        flush_interval: seconds between background writes.
        heartbeat_interval: seconds between heartbeats of the watched runs.
        max_backlog: points held before ``when_full`` applies.
        when_full: ``"block"`` (wait for room) or ``"drop"`` (drop new points, counted).
        clock: wall-clock seconds, injectable for tests.
    """

    def __init__(
        self,
        store: TrackingStore,
        *,
        flush_interval: float = 0.5,
        heartbeat_interval: float = 5.0,
        max_backlog: int = 100_000,
        when_full: Literal["block", "drop"] | str = "block",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if when_full not in WHEN_FULL:
            raise InvalidArgument(f"when_full must be 'block' or 'drop', got {when_full!r}")
        if isinstance(max_backlog, bool) or not isinstance(max_backlog, int) or max_backlog < 1:
            raise InvalidArgument(f"max_backlog must be a positive integer, got {max_backlog!r}")
        self._store = store
        self._flush_interval = flush_interval
        self._heartbeat_interval = heartbeat_interval
        self._max_backlog = max_backlog
        self._when_full = when_full
        self._clock = clock
        self._buffer: dict[str, _RunPoints] = {}
        self._size = 0
        self._waiting = 0
        self._live: set[str] = set()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._forks = -1
        self._eager = min(_EAGER_FLUSH, max_backlog)
        self._last_heartbeat = 0.0
        #: Points dropped because the backlog was full, per run.
        self.dropped: dict[str, int] = defaultdict(int)
        self._full_warned = False
        #: Permanent write failures not yet reported by a foreground flush, per run.
        self._lost: dict[str, MetricsLost] = {}

    @property
    def backlog(self) -> int:
        """Points waiting to be written."""
        with self._lock:
            return self._size

    @property
    def waiting(self) -> int:
        """Logging calls waiting for room in a full backlog."""
        with self._lock:
            return self._waiting

    @property
    def watched(self) -> frozenset[str]:
        """The runs whose heartbeats are being sent."""
        with self._lock:
            return frozenset(self._live)

    def add(self, run_id: str, points: Sequence[Metric]) -> None:
        """Queue ``points``; when the backlog is full, wait for room or drop them."""
        if not points:
            return
        self._ensure_thread()
        with self._lock:
            if self._size and self._size + len(points) > self._max_backlog:
                if self._when_full == "drop":
                    self._drop(run_id, len(points))
                    return
                self._wake.set()
                # Wait until the writer takes points out; a batch bigger than the whole
                # backlog goes in alone.
                self._waiting += 1
                try:
                    self._room.wait_for(
                        lambda: not self._size or self._size + len(points) <= self._max_backlog
                    )
                finally:
                    self._waiting -= 1
            self._full_warned = False
            for point in points:
                columns = self._columns(run_id, point.key)
                columns[0].append(point.value)
                columns[1].append(point.step)
                columns[2].append(point.timestamp)
            self._size += len(points)
            full = self._size >= min(_EAGER_FLUSH, self._max_backlog)
        if full and not self._wake.is_set():  # set() takes a lock: once per wake, not a point
            self._wake.set()

    def add_one(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None:
        """:meth:`add` for one point, given as plain values: what ``log_metric`` calls, once
        a point, so it does the least it can while the backlog has room (no object made, the
        lock held for a few appends)."""
        if not self._running or self._forks != _forks:
            self._ensure_thread()
        with self._lock:
            room = self._size < self._max_backlog
            if room:
                columns = self._columns(run_id, key)
                columns[0].append(value)
                columns[1].append(step)
                columns[2].append(timestamp)
                self._size += 1
                if self._full_warned:
                    self._full_warned = False
                if self._size < self._eager:
                    return
        if not room:  # full: wait or drop, as add does
            self.add(run_id, (Metric(key, value, step, timestamp),))
        elif not self._wake.is_set():
            self._wake.set()

    def _columns(self, run_id: str, key: str) -> _Columns:
        """The buffered columns of ``run_id``'s ``key``, made empty if new (lock held)."""
        run = self._buffer.get(run_id)
        if run is None:
            run = self._buffer[run_id] = {}
        columns = run.get(key)
        if columns is None:
            columns = run[key] = ([], [], [])
        return columns

    def _drop(self, run_id: str, count: int) -> None:
        self.dropped[run_id] += count
        if not self._full_warned:  # once per episode of a full backlog, with the count so far
            self._full_warned = True
            log.warning(
                "the metric backlog is full (%d points): dropping new points of run %s "
                "(%d dropped so far); set SEGUE_METRIC_BACKLOG_POLICY=block to wait instead",
                self._max_backlog,
                run_id,
                sum(self.dropped.values()),
            )

    def watch(self, run_id: str) -> None:
        """Start sending heartbeats for ``run_id``."""
        with self._lock:
            self._live.add(run_id)
        self._ensure_thread()

    def unwatch(self, run_id: str) -> None:
        with self._lock:
            self._live.discard(run_id)

    def flush(self, run_id: str | None = None, *, background: bool = False) -> None:
        """Write buffered points now (all runs, or only ``run_id``).

        Points of a run that no longer exists are dropped. On a transient error they go back
        to the backlog for the next attempt; on a permanent one they are dropped and a
        :class:`MetricsLost` names how many. Errors propagate unless ``background``; a
        permanent failure met in the background propagates from the next foreground flush.
        """
        with self._flush_lock:
            with self._lock:
                if run_id is None:
                    batches, self._buffer = self._buffer, {}
                else:
                    batches = {run_id: self._buffer.pop(run_id, {})}
                self._size -= sum(_count(points) for points in batches.values())
                self._room.notify_all()
            failure: Exception | None = None
            for rid, points in batches.items():
                if not points:
                    continue
                try:
                    self._write(rid, points)
                except NotFound as exc:
                    log.warning("dropping %d metric points: %s", _count(points), exc)
                    failure = failure or exc
                except Exception as exc:
                    if is_transient(exc):
                        self._requeue(rid, points)
                        log.warning("could not write metrics of run %s; will retry: %s", rid, exc)
                        failure = failure or exc
                    else:
                        failure = failure or self._lose(rid, _count(points), exc)
            if not background:
                reported = self._take_lost(run_id)
                failure = failure or reported
                if failure is not None:
                    raise failure

    def _write(self, run_id: str, points: _RunPoints) -> None:
        # A store that takes columns gets them as buffered; another gets a point an object.
        log_columns = getattr(self._store, "log_metric_columns", None)
        if log_columns is not None:
            log_columns(run_id, points)
        else:
            self._store.log_batch(run_id, metrics=as_metrics(points))

    def finish(self, run_id: str, write: Callable[[Mapping[str, MetricColumns]], None]) -> bool:
        """Hand the run's buffered points, as columns per key, to ``write``, which stores
        them together with whatever ends the run (one transaction instead of two).

        Returns False, having written nothing, when an earlier background write of the run
        failed for good (:meth:`flush` reports that). When ``write`` raises, the points go
        back to the backlog and the error propagates.
        """
        with self._flush_lock:
            with self._lock:
                if run_id in self._lost:
                    return False
                points = self._buffer.pop(run_id, {})
                self._size -= _count(points)
                if points:
                    self._room.notify_all()
            try:
                write(points)
            except BaseException:
                if points:
                    self._requeue(run_id, points)
                raise
        return True

    def _lose(self, run_id: str, count: int, exc: Exception) -> MetricsLost:
        with self._lock:
            earlier = self._lost.get(run_id)
            total = count + (earlier.count if earlier else 0)
            lost = MetricsLost(
                f"{total} metric points of run {run_id} could not be written and were "
                f"dropped: {describe(exc)}",
                total,
            )
            self._lost[run_id] = lost
        log.error("%s", lost)
        return lost

    def _take_lost(self, run_id: str | None) -> MetricsLost | None:
        with self._lock:
            if run_id is not None:
                return self._lost.pop(run_id, None)
            lost = list(self._lost.values())
            self._lost.clear()
        return lost[0] if lost else None

    def _requeue(self, run_id: str, points: _RunPoints) -> None:
        """Put ``points`` back in front of the run's points logged since they were taken."""
        with self._lock:
            self._size += _count(points)  # before the later points join them: counted already
            run = self._buffer.setdefault(run_id, {})
            for key, (values, steps, stamps) in points.items():
                later = run.get(key)
                if later is not None:
                    values.extend(later[0])
                    steps.extend(later[1])
                    stamps.extend(later[2])
                run[key] = (values, steps, stamps)

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.flush()

    def _ensure_thread(self) -> None:
        # Called for every logged point: a flag the loop clears on its way out (and the count
        # of forks, as a forked child has no thread) spare the costly is_alive() of the
        # common case.
        if self._running and self._forks == _forks:
            return
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._stop.clear()
                    self._thread = threading.Thread(
                        target=self._loop, name="segue-metric-writer", daemon=True
                    )
                    self._forks = _forks
                    self._running = True  # before start: the loop clears it when it ends
                    self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self._flush_interval)
                self._wake.clear()
                try:
                    self.flush(background=True)
                    self._maybe_heartbeat()
                except Exception:
                    # A bug here must not silently stop every later write: say so and go on.
                    log.exception("the metric writer failed; it keeps running")
        finally:
            self._running = False

    def _maybe_heartbeat(self) -> None:
        now = self._clock()
        if now - self._last_heartbeat < self._heartbeat_interval:
            return
        with self._lock:
            live = list(self._live)
        if not live:
            return
        try:
            self._store.heartbeat(live, int(now * 1000))
            self._last_heartbeat = now
        except Exception:
            log.warning("could not send run heartbeat; will retry", exc_info=True)


def _count(points: _RunPoints) -> int:
    return sum(len(values) for values, _, _ in points.values())


def as_metrics(points: Mapping[str, MetricColumns]) -> list[Metric]:
    """Columns per key as points, key after key, each key's in the order logged."""
    return [
        Metric(key, value, step, stamp)
        for key, (values, steps, stamps) in points.items()
        for value, step, stamp in zip(values, steps, stamps, strict=True)
    ]
