"""The prediction log's writers: every answer the inference server gives, kept as Parquet segments.

Appending a record only puts it in an in-memory buffer. A background thread writes the buffer
as one Parquet segment per model and day every ``flush_interval`` seconds (sooner when
``max_rows`` records are waiting), so a crash loses at most what arrived since the last flush.
Labels that arrive later (``POST /feedback``) go to a :class:`FeedbackLog` of the same design.

Layout under the artifact store (``SEGUE_ARTIFACT_URI``, a folder or any fsspec URL)::

    predictions/<model>/date=YYYY-MM-DD/<time_ms>-<writer_id>-<seq>.parquet
    feedback/<model>/date=YYYY-MM-DD/<time_ms>-<writer_id>-<seq>.parquet

The segment format belongs to monitoring, which reads it (:mod:`segue.monitoring.segments`,
readers in :mod:`segue.monitoring.readers`); the server only writes. Each segment is published
atomically (a temp file renamed into place locally, one PUT on object stores): readers never
see a partial file. Writer ids differ across processes, so uvicorn workers never overwrite each
other's segments.

Example:
    >>> log = PredictionLog(settings().artifact_uri)
    >>> log.start()
    >>> log.append(PredictionRecord("r1", time.time(), "churn", "3", "primary",
    ...                             [{"age": 31}], [0], 0.4, 200))
    >>> log.close()
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pyarrow as pa

from segue.artifacts.backend import FsspecBackend
from segue.errors import InvalidArgument
from segue.monitoring import segments
from segue.monitoring.segments import ROLES

log = logging.getLogger(__name__)


#: Default most records held (while storage is slow or failing); beyond it the oldest are
#: dropped and counted rather than exhausting the server's memory.
_BACKLOG = 100_000
#: Longest the flusher sleeps between looks at the (injectable) clock.
_TICK = 0.25

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One request the server answered (or failed to).

    Args:
        request_id: the id the server returned to the caller (and feedback refers to).
        time: when the request arrived, epoch seconds.
        model, version: the registered model and version that answered.
        role: ``"primary"``, ``"canary"`` or ``"shadow"``.
        inputs: the request's rows, each a dict of column -> value.
        outputs: one prediction per row (empty when the request failed).
        latency_ms: time spent answering.
        status: the HTTP status sent.
        error: the error message sent, if any.

    The lists are serialized when the log is flushed, so do not change them after appending.

    Raises:
        InvalidArgument: an unknown role, a malformed model name or a non-finite time.
    """

    request_id: str
    time: float
    model: str
    version: str
    role: str
    inputs: list[dict[str, Any]]
    outputs: list[Any]
    latency_ms: float
    status: int
    error: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidArgument(f"prediction record: role {self.role!r} is not one of {ROLES}")
        segments.check_model(self.model)
        segments.check_time(self.time)


class _SegmentLog(ABC, Generic[T]):
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
        self._given_writer_id = None if writer_id is None else segments.clean_writer_id(writer_id)
        self._default_writer: tuple[int, str] | None = None
        self._buffer: deque[T] = deque(maxlen=backlog)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_flush = clock()
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
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1
            self._buffer.append(item)
            full = len(self._buffer) >= self._max_rows
        if full:
            self._wake.set()

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
                items = list(self._buffer)
                self._buffer.clear()
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
            waiting = len(self._buffer)
            due = self._clock() - self._last_flush >= self._flush_interval
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

    def __enter__(self) -> _SegmentLog[T]:
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
            except Exception:
                log.warning("could not write the %s log; will retry", self._kind, exc_info=True)

    def _write(self, items: list[T]) -> None:
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
        pending = list(groups.items())
        while pending:
            (model, day), group = pending[0]
            try:
                data = segments.parquet_bytes(self._table(group))
            except Exception:
                # Not a storage problem: retrying would fail forever and block the log.
                log.exception("dropping %d %s records that cannot be encoded", len(group), model)
                self._count_dropped(len(group))
                pending.pop(0)
                continue
            newest = max(self._time_of(item) for item in group)
            key = segments.segment_key(
                self._kind, model, day, newest, self.writer_id, next(self._seq)
            )
            try:
                self._backend.put_bytes(key, data)
            except Exception:
                self._requeue([item for _, rest in pending for item in rest])
                raise
            pending.pop(0)

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


class PredictionLog(_SegmentLog[PredictionRecord]):
    """The server's durable prediction log; see the module docs for the layout.

    Args:
        artifact_uri: the artifact store (``settings().artifact_uri``), a folder or fsspec URL.
        flush_interval: seconds between writes; a crash loses at most this much.
        max_rows: write early once this many records are waiting.
        clock: returns epoch seconds; decides when a flush is due.
        writer_id: unique per process; the default is ``hostname-pid-random``.
        max_backlog: most records held while storage is slow or failing (default
            ``max(100_000, 10 * max_rows)``); beyond it the oldest are dropped and counted in
            :attr:`dropped`.

    Example:
        >>> with PredictionLog("s3://bucket/segue") as log:   # start() ... close()
        ...     log.append(record)
    """

    _kind = "predictions"
    _thread_name = "segue-prediction-log"

    def append(self, record: PredictionRecord) -> None:
        """Buffer ``record`` (O(1), thread-safe, no I/O).

        Any object with the attributes of :class:`PredictionRecord` is accepted, such as the
        server's ``InferenceRecord`` (``on_prediction=log.append``): its ``inputs`` and
        ``outputs`` are then read in the writer thread, off the request path.
        """
        self._put(record)

    def _model_of(self, item: PredictionRecord) -> str:
        return item.model

    def _time_of(self, item: PredictionRecord) -> float:
        return item.time

    def _table(self, items: list[PredictionRecord]) -> pa.Table:
        columns = {
            "request_id": [str(r.request_id) for r in items],
            "time": [float(r.time) for r in items],
            "model": [r.model for r in items],
            "version": [str(r.version) for r in items],
            "role": [r.role for r in items],
            "inputs": [segments.to_json(r.inputs) for r in items],
            "outputs": [segments.to_json(r.outputs) for r in items],
            "latency_ms": [float(r.latency_ms) for r in items],
            "status": [int(r.status) for r in items],
            "error": [None if r.error is None else str(r.error) for r in items],
        }
        return pa.table(columns, schema=segments.PREDICTIONS_SCHEMA)


class FeedbackLog(_SegmentLog[tuple[str, Any, float]]):
    """Labels for earlier predictions of ``model``, buffered and written like the predictions.

    Example:
        >>> feedback = FeedbackLog(settings().artifact_uri, "churn")
        >>> feedback.start()
        >>> feedback.append("9f2c…", label=1)
    """

    _kind = "feedback"
    _thread_name = "segue-feedback-log"

    def __init__(
        self,
        artifact_uri: str,
        model: str,
        *,
        flush_interval: float = 1.0,
        max_rows: int = 10_000,
        clock: Callable[[], float] = time.time,
        writer_id: str | None = None,
        max_backlog: int | None = None,
    ) -> None:
        super().__init__(
            artifact_uri,
            flush_interval=flush_interval,
            max_rows=max_rows,
            clock=clock,
            writer_id=writer_id,
            max_backlog=max_backlog,
        )
        self.model = segments.check_model(model)

    def append(self, request_id: str, label: Any, time: float | None = None) -> None:
        """Buffer the true ``label`` of request ``request_id`` (``time`` defaults to now)."""
        when = self._clock() if time is None else segments.check_time(time)
        self._put((request_id, label, when))

    def _model_of(self, item: tuple[str, Any, float]) -> str:
        return self.model

    def _time_of(self, item: tuple[str, Any, float]) -> float:
        return item[2]

    def _table(self, items: list[tuple[str, Any, float]]) -> pa.Table:
        columns = {
            "request_id": [str(request_id) for request_id, _, _ in items],
            "label": [segments.to_json(label) for _, label, _ in items],
            "time": [float(when) for _, _, when in items],
        }
        return pa.table(columns, schema=segments.FEEDBACK_SCHEMA)
