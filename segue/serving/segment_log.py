"""The background writer both server logs share: items buffered in memory, Parquet segments out.

:class:`SegmentLog` holds appended items in a bounded buffer (the oldest dropped and counted
when storage is slow or failing) and writes them from one background thread, every
``flush_interval`` seconds on the injected clock or sooner once ``max_rows`` are waiting, as one
segment per model and day published atomically. A subclass says what an item is: its model, its
time and its Arrow table (:class:`~segue.serving.predlog.PredictionLog`,
:class:`~segue.serving.predlog.FeedbackLog`).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa

from segue.artifacts.backend import FsspecBackend
from segue.errors import InvalidArgument, PermissionDenied, Unauthenticated
from segue.monitoring import segments

__all__ = ["SegmentLog", "one_key"]

log = logging.getLogger(__name__)


#: Default most records held (while storage is slow or failing); beyond it the oldest are
#: dropped and counted rather than exhausting the server's memory.
_BACKLOG = 100_000
#: Longest the flusher sleeps between looks at the (injectable) clock.
_TICK = 0.25
#: Most records the writer thread turns into Arrow in one go. Encoding is Python work that
#: holds the GIL, which the event loop shares: a second of 1-row requests at c=64 (about 3,000
#: records, 9 ms of encoding) in one go held up the requests under way. In pieces, with
#: :data:`PIECE_PAUSE_S` between them, the loop runs between pieces: that p99 went from 44 to
#: 34 ms (3 runs each, 2-core machine). Still one segment per flush. Each piece also costs
#: about 0.1 ms whatever its size: 9,000 answered 1-row requests took 1.49 us a record in
#: pieces of 200 and 0.92 us in pieces of 1,000 (the least of 15 runs), each piece holding
#: the GIL about 1 ms: such a flush spans 9 pieces where it spanned 45.
ENCODE_PIECE = 1000
#: The writer thread's pause between two pieces (the GIL is the loop's meanwhile).
PIECE_PAUSE_S = 0.002

T = TypeVar("T")


class SegmentLog(ABC, Generic[T]):
    """Buffer items in memory; write them as Parquet segments from one background thread."""

    _kind = ""
    _schema: pa.Schema
    _thread_name = "segue-segment-log"

    def __init__(
        self,
        artifact_uri: str,
        *,
        flush_interval: float = 1.0,
        max_rows: int = 10_000,
        clock: Callable[[], float] = time.time,
        writer_id: str | None = None,
        max_backlog: int | None = None,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (isinstance(flush_interval, (int, float)) and flush_interval > 0):
            raise InvalidArgument(f"flush_interval must be positive seconds, got {flush_interval}")
        if not (isinstance(max_rows, int) and max_rows >= 1):
            raise InvalidArgument(f"max_rows must be a positive integer, got {max_rows!r}")
        backlog = max(_BACKLOG, 10 * max_rows) if max_backlog is None else max_backlog
        if not (isinstance(backlog, int) and backlog >= max_rows):
            raise InvalidArgument(f"max_backlog must be an integer >= max_rows, got {backlog!r}")
        self.artifact_uri = artifact_uri
        self._backend = FsspecBackend(artifact_uri)
        self._flush_interval = float(flush_interval)
        self._max_rows = max_rows
        self._clock = clock
        self._pause = pause
        self._given_writer_id = None if writer_id is None else segments.clean_writer_id(writer_id)
        self._default_writer: tuple[int, str] | None = None
        self._buffer: deque[T] = deque(maxlen=backlog)
        self._hold_apart()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_flush = clock()
        self._refused_at = -math.inf
        self._seq = itertools.count()
        #: Records dropped: beyond ``max_backlog`` while storage was slow or failing, or
        #: impossible to encode.
        self.dropped = 0
        self._reported = 0

    @property
    def writer_id(self) -> str:
        """This process's writer id: ``hostname-pid-random`` unless one was given."""
        if self._given_writer_id is not None:
            return self._given_writer_id
        pid = os.getpid()
        # Re-derived after a fork, so a log created before uvicorn forks its workers still
        # gets one id per process.
        if self._default_writer is None or self._default_writer[0] != pid:
            host = segments.clean_writer_id(socket.gethostname())
            self._default_writer = (pid, f"{host}-{pid}-{uuid.uuid4().hex[:8]}")
        return self._default_writer[1]

    def _put(self, item: T) -> None:
        with self._lock:
            self._seal_locked()
            self._extend_locked((item,))
            full = len(self._buffer) >= self._max_rows
        if full:
            self._wake.set()

    def _extend_locked(self, items: Sequence[T]) -> None:
        """Append ``items`` to the bounded buffer (under the lock); the oldest records it
        then drops are counted in :attr:`dropped`."""
        limit = self._buffer.maxlen or 0  # always set: the deque is bounded
        self.dropped += max(0, len(self._buffer) + len(items) - limit)
        self._buffer.extend(items)

    def _hold_apart(self) -> None:
        """Set up what a subclass holds apart from the buffer (see :meth:`_seal_locked`)."""

    def _seal_locked(self) -> None:
        """Move items held elsewhere than the buffer into it, oldest first, before an item is
        appended there (under the lock): a subclass that holds some items apart keeps their
        order so. None here."""

    def _waiting_locked(self) -> int:
        """How many records wait to be written (under the lock)."""
        return len(self._buffer)

    def _drain_locked(self) -> list[T]:
        """Every waiting item, oldest first, taken out of the log (under the lock)."""
        items = list(self._buffer)
        self._buffer.clear()
        return items

    def start(self) -> None:
        """Start the background thread that flushes every ``flush_interval`` seconds."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
            self._thread.start()
        atexit.register(self._at_exit)

    def flush(self) -> None:
        """Write the buffered records now, one segment per model and day.

        Raises:
            OSError: storage failed; the unwritten records stay buffered for the next flush.
        """
        with self._flush_lock:
            with self._lock:
                items = self._drain_locked()
                self._last_flush = self._clock()
                unreported, self._reported = self.dropped - self._reported, self.dropped
            if unreported:
                log.warning(
                    "the %s log dropped %d records (over max_backlog): storage is failing or "
                    "slower than the requests",
                    self._kind,
                    unreported,
                )
            if items:
                self._write(items)

    def flush_if_due(self) -> bool:
        """Flush if ``flush_interval`` has passed on the clock or ``max_rows`` are waiting.

        Returns whether anything was written. The background thread calls this; tests with an
        injected clock may call it directly.
        """
        with self._lock:
            waiting = self._waiting_locked()
            now = self._clock()
            due = now - self._last_flush >= self._flush_interval
            if due and not waiting:
                # Nothing to write: the next write is due an interval from now. Without this
                # the writer thread, finding the interval long past, would wake every tick.
                self._last_flush = now
        if waiting and (due or waiting >= self._max_rows):
            self.flush()
            return True
        return False

    def close(self) -> None:
        """Stop the background thread, then write everything still buffered."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        atexit.unregister(self._at_exit)
        self.flush()

    def __enter__(self) -> SegmentLog[T]:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception:
            log.exception("could not write the last %s at exit", self._kind)

    def _loop(self) -> None:
        while not self._stop.is_set():
            remaining = self._flush_interval - (self._clock() - self._last_flush)
            self._wake.wait(min(max(remaining, 0.001), _TICK, self._flush_interval))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush_if_due()
            except (Unauthenticated, PermissionDenied) as exc:
                # Through a team server: retried (an admin may fix the role), said once a minute.
                now = self._clock()
                if now - self._refused_at >= 60:
                    self._refused_at = now
                    log.error(
                        "the team server refuses to keep the %s log (%s): this server's "
                        "SEGUE_TOKEN needs the editor role; records wait (at most "
                        "max_backlog) and are retried",
                        self._kind,
                        exc,
                    )
            except Exception:
                log.warning("could not write the %s log; will retry", self._kind, exc_info=True)

    def _write(self, items: list[T]) -> None:
        groups = self._groups_of(items)
        pending = list(groups.items())
        while pending:
            (model, day), group = pending[0]
            try:
                data = segments.parquet_bytes(self._encode(group))
            except Exception:
                # Not a storage problem: retrying would fail forever and block the log.
                log.exception("dropping %d %s records that cannot be encoded", len(group), model)
                self._count_dropped(self._count(group))
                pending.pop(0)
                continue
            newest = self._newest(group)
            key = segments.segment_key(
                self._kind, model, day, newest, self.writer_id, next(self._seq)
            )
            try:
                self._backend.put_bytes(key, data)
            except Exception:
                self._requeue([item for _, rest in pending for item in rest])
                raise
            pending.pop(0)

    def _groups_of(self, items: list[T]) -> dict[tuple[str, int], list[T]]:
        """``items`` by model and day (see :meth:`_groups`)."""
        return self._one_group(items) or self._groups(items)

    def _count(self, group: list[T]) -> int:
        """How many records ``group`` holds."""
        return len(group)

    def _newest(self, group: list[T]) -> float:
        """The time of ``group``'s newest record."""
        return max(map(self._time_of, group))

    def _one_group(self, items: list[T]) -> dict[tuple[str, int], list[T]] | None:
        """``items`` as their one group, when they are all of one valid model and day and
        their times are finite floats (what a server's records are), else None. The same
        answer as :meth:`_groups` gives them, by a few C-level passes instead of Python work
        a record."""
        key = one_key(list(map(self._model_of, items)), list(map(self._time_of, items)))
        return None if key is None else {key: items}

    def _groups(self, items: list[T]) -> dict[tuple[str, int], list[T]]:
        """``items`` by model and day; records whose model or time is invalid are dropped
        (counted and logged)."""
        groups: dict[tuple[str, int], list[T]] = {}
        refused = 0
        for item in items:
            try:
                model = segments.check_model(self._model_of(item))
                day = math.floor(segments.check_time(self._time_of(item)) / segments.DAY_SECONDS)
            except InvalidArgument as exc:
                # Records that skipped PredictionRecord's checks (any object with its
                # attributes is accepted) cannot be filed; dropping them keeps the rest flowing.
                refused += 1
                reason = str(exc)
                continue
            groups.setdefault((model, day), []).append(item)
        if refused:
            log.error("dropping %d %s records: %s", refused, self._kind, reason)
            self._count_dropped(refused)
        return groups

    def _encode(self, group: list[T]) -> pa.Table:
        """``group``'s table, built :data:`ENCODE_PIECE` records at a time with a pause
        between pieces (see there)."""
        if len(group) <= ENCODE_PIECE:
            return self._table(group)
        return pa.concat_tables(
            self._pieces(len(group), lambda start, stop: self._table(group[start:stop]))
        )

    def _pieces(
        self, count: int, table: Callable[[int, int], pa.Table], *, after: bool = False
    ) -> list[pa.Table]:
        """``table(start, stop)`` of ``count`` records, :data:`ENCODE_PIECE` at a time, with a
        pause between two pieces (and before the first, ``after`` other pieces)."""
        tables = []
        for start in range(0, count, ENCODE_PIECE):
            if start or after:
                self._pause(PIECE_PAUSE_S)
            tables.append(table(start, min(start + ENCODE_PIECE, count)))
        return tables

    def _count_dropped(self, count: int) -> None:
        with self._lock:
            self.dropped += count
            self._reported += count  # logged already, with the reason

    def _requeue(self, items: list[T]) -> None:
        with self._lock:
            merged = [*items, *self._buffer]
            limit = self._buffer.maxlen or len(merged)  # always set: the deque is bounded
            self.dropped += max(0, len(merged) - limit)
            self._buffer = deque(merged, maxlen=limit)  # keeps the newest

    @abstractmethod
    def _model_of(self, item: T) -> str: ...

    @abstractmethod
    def _time_of(self, item: T) -> float: ...

    @abstractmethod
    def _table(self, items: list[T]) -> pa.Table: ...


def one_key(models: list[Any], times: list[Any]) -> tuple[str, int] | None:
    """The (model, day) of records whose ``models`` and ``times`` these are (at least one),
    when they are all of one valid model and day and their times are finite floats (what a
    server's records are), else None; by a few C-level passes, not Python work a record."""
    try:
        distinct = set(models)
        if len(distinct) != 1 or set(map(type, times)) != {float}:
            return None
        (model,) = distinct
        segments.check_model(model)
    except (TypeError, InvalidArgument):  # a model that is not a name (unhashable, say)
        return None
    days = np.floor(np.array(times) / segments.DAY_SECONDS)
    first = days[0]
    if not (np.isfinite(first) and (days == first).all()):
        return None
    return (model, int(first))
