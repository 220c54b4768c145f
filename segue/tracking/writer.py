"""Background writing of metric points and run heartbeats.

Logging a metric only appends to an in-memory buffer. A daemon thread writes the buffer in
batches every ``flush_interval`` seconds (and sooner when it fills), and touches the heartbeat of
every live run every ``heartbeat_interval`` seconds, so a run whose process died is noticed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from segue.errors import NotFound
from segue.store.entities import Metric
from segue.store.tracking import TrackingStore

log = logging.getLogger(__name__)

#: Points held before the writer is woken early.
_EAGER_FLUSH = 5_000


class MetricWriter:
    """Buffers metric points per run and writes them from one background thread."""

    def __init__(
        self,
        store: TrackingStore,
        *,
        flush_interval: float = 0.5,
        heartbeat_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._flush_interval = flush_interval
        self._heartbeat_interval = heartbeat_interval
        self._clock = clock
        self._buffer: dict[str, list[Metric]] = defaultdict(list)
        self._size = 0
        self._live: set[str] = set()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0

    def add(self, run_id: str, points: Sequence[Metric]) -> None:
        with self._lock:
            self._buffer[run_id].extend(points)
            self._size += len(points)
            full = self._size >= _EAGER_FLUSH
        self._ensure_thread()
        if full:
            self._wake.set()

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

        Points of a run that no longer exists are dropped; on any other failure they go back
        to the buffer for the next attempt. Errors propagate unless ``background``.
        """
        with self._flush_lock:
            with self._lock:
                if run_id is None:
                    batches, self._buffer = dict(self._buffer), defaultdict(list)
                else:
                    batches = {run_id: self._buffer.pop(run_id, [])}
                self._size -= sum(len(points) for points in batches.values())
            failure: Exception | None = None
            for rid, points in batches.items():
                if not points:
                    continue
                try:
                    self._store.log_batch(rid, metrics=points)
                except NotFound as exc:
                    log.warning("dropping %d metric points: %s", len(points), exc)
                    failure = failure or exc
                except Exception as exc:
                    self._requeue(rid, points)
                    log.warning("could not write metrics of run %s; will retry: %s", rid, exc)
                    failure = failure or exc
            if failure is not None and not background:
                raise failure

    def _requeue(self, run_id: str, points: list[Metric]) -> None:
        with self._lock:
            self._buffer[run_id][:0] = points
            self._size += len(points)

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.flush()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._stop.clear()
                    self._thread = threading.Thread(
                        target=self._loop, name="segue-metric-writer", daemon=True
                    )
                    self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            self.flush(background=True)
            self._maybe_heartbeat()

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
