"""Runs started and ended in the background: a sweep's ``with segue.start_run(): ...`` costs
no round trip of its own.

A client that has started one run through the server (which proved its token may, and made
the experiment) queues later starts and ends here, with the ids and times it made itself. One
daemon thread sends what is queued as ``POST /run-batches`` requests, at once and in order:
what piles up while a request is out goes in the next, up to :data:`OPS_PER_REQUEST`
operations or :data:`POINTS_PER_REQUEST` metric points. The queue holds :data:`MAX_QUEUED`
operations; past that a start or end waits for room (no run is dropped). Exiting the process
sends what is queued (an ``atexit`` hook); in a child process (a ``multiprocessing`` worker,
whose exit skips such hooks) every operation is sent at once, and a fork first sends what the
parent has queued.

Every other call of the process to a Segue server first sends what is queued
(:func:`segue.remote.http.hold_calls_for`), so a run is on the server before anything can name
it. A server that cannot be reached or answers 502-504 is retried, with backoff, and keeps
the operations queued; a retried request says so, and the server then takes a start or
end it already applied as done instead of refusing or repeating it. An operation the server
refuses (a revoked token, a param that changed) is dropped, logged, and raised by the
client's next ``start_run`` or ``flush``.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from segue.errors import SegueError, ServerError
from segue.remote import http
from segue.remote.http import RemoteSession
from segue.store import codec
from segue.store.entities import RunInfo
from segue.store.run_data import MetricColumns
from segue.store.sessions import is_transient

__all__ = [
    "MAX_QUEUED",
    "OPS_PER_REQUEST",
    "POINTS_PER_REQUEST",
    "RunSender",
    "RunsNotRecorded",
    "metric_points",
]

log = logging.getLogger(__name__)

#: Operations one request carries at most.
OPS_PER_REQUEST = 500
#: Metric points one request carries at most (about 1.5 MB of JSON): a run's batch of points,
#: or the ends in one request of queued operations.
POINTS_PER_REQUEST = 50_000
#: Operations held before the caller sends them itself.
MAX_QUEUED = 10_000
#: Seconds between two tries to reach a server that is down, at most.
MAX_BACKOFF = 5.0


class RunsNotRecorded(SegueError):
    """The server refused runs started or ended in the background; each is named."""


class RunSender:
    """The queue of run starts and ends of one client, and the thread that sends it.

    Args:
        session: the connection to the server.
        background: send from a thread of its own as soon as something is queued; when
            False, only :meth:`drain` sends (and every call to a server, which drains).
    """

    def __init__(self, session: RemoteSession, *, background: bool = True) -> None:
        self._session = session
        self._background = background
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        #: One batch out at a time, so operations reach the server in the order queued.
        self._send_lock = threading.Lock()
        self._ops: list[dict[str, Any]] = []
        self._refused: list[str] = []
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        #: A multiprocessing worker (its exit skips atexit hooks): nothing waits in a queue.
        self._at_once = multiprocessing.parent_process() is not None
        http.hold_calls_for(self)
        _senders.add(self)

    # -- queueing --------------------------------------------------------------------------

    def open(
        self, info: RunInfo, tags: Mapping[str, str], params: Mapping[str, str], system: bool
    ) -> None:
        """Queue the start of a run (``info`` as the client made it) with its tags and
        params."""
        op = {"op": "open", "info": codec.dump(info), "tags": dict(tags), "params": dict(params)}
        if system:
            op["system"] = True
        self._put(op)

    def end(
        self,
        run_id: str,
        metrics: Mapping[str, MetricColumns],
        status: str,
        end_time: int,
        error: str | None,
    ) -> None:
        """Queue the end of a run with its last metric points."""
        op = {
            "op": "end",
            "run_id": run_id,
            "metrics": metric_points(metrics),
            "status": status,
            "end_time": end_time,
            "error": error,
        }
        self._put(op)

    def _put(self, op: dict[str, Any]) -> None:
        self._check_fork()
        if self._background and not self._at_once:
            self._ensure_thread()
            with self._lock:
                # Full: wait for the thread to make room (it keeps trying while the server
                # cannot be reached), as a full metric backlog makes log_metric wait.
                self._room.wait_for(lambda: len(self._ops) < MAX_QUEUED)
                self._ops.append(op)
                self._queued.notify()
            return
        with self._lock:
            self._ops.append(op)
            full = len(self._ops) >= MAX_QUEUED
        if self._at_once or full:  # no thread of its own: the caller sends
            self.drain()
            if self._at_once:
                self.raise_refused()

    @property
    def queued(self) -> int:
        """Operations waiting to be sent."""
        with self._lock:
            return len(self._ops)

    # -- sending ---------------------------------------------------------------------------

    def drain(self) -> None:
        """Send every queued operation now, on this thread.

        Raises :class:`~segue.errors.ServerError` when the server cannot be reached (the
        operations stay queued); refusals are kept for :meth:`raise_refused`.
        """
        self._check_fork()
        with self._send_lock, http.sending():
            while True:
                with self._lock:
                    batch = _take(self._ops)
                    if not batch:
                        return
                    self._room.notify_all()
                self._send(batch)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        body: dict[str, Any] = {"ops": [_sent(op) for op in batch]}
        if any("_tried" in op for op in batch):
            body["retry"] = True  # some may have been applied: the server checks each
        results: list[str | None]
        try:
            answer = self._session.call("POST", "/run-batches", json=body)
        except Exception as exc:
            if is_transient(exc):
                self._requeue(batch)
                raise
            results = [str(exc)] * len(batch)
        else:
            # What the server could not apply for now (its database locked, say) goes back,
            # in order, with whatever follows it in the batch.
            answers = answer["results"]
            later = [i for i, r in enumerate(answers) if r is not None and r.get("retry")]
            if later:
                self._requeue(batch[later[0] :])
                batch, answers = batch[: later[0]], answers[: later[0]]
            results = [None if r is None else str(r.get("error") or r) for r in answers]
            if later:
                self._note_refused(batch, results)
                raise ServerError("the Segue server could not apply some runs yet; will retry")
        self._note_refused(batch, results)

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        for op in batch:
            op["_tried"] = True  # kept out of the body (see _sent)
        with self._lock:  # back in front, in order, for the next try
            self._ops[:0] = batch

    def _note_refused(self, batch: list[dict[str, Any]], results: list[str | None]) -> None:
        refused = [
            f"{_describe(op)}: {reason}"
            for op, reason in zip(batch, results, strict=True)
            if reason is not None
        ]
        if refused:
            more = f" (and {len(refused) - 1} more in this request)" if len(refused) > 1 else ""
            log.error("the Segue server refused %s%s", refused[0], more)
            with self._lock:
                self._refused.extend(refused)

    def raise_refused(self) -> None:
        """Raise :class:`RunsNotRecorded` for operations refused since the last call."""
        with self._lock:
            refused, self._refused = self._refused, []
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise RunsNotRecorded(f"the Segue server refused {refused[0]}{more}")

    def _loop(self) -> None:
        backoff = 0.05
        while not self._closed.is_set():
            with self._lock:
                if not self._ops:
                    self._queued.wait(0.5)
                if not self._ops:
                    continue
            try:
                self.drain()
                backoff = 0.05
            except ServerError as exc:
                log.warning("cannot send runs to the Segue server; will retry: %s", exc)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # a bug here must not stop every later run: say so, go on
                log.exception("the run sender failed; it keeps running")
                self._closed.wait(backoff)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._closed.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="segue-run-sender", daemon=True
                )
                self._thread.start()

    def _check_fork(self) -> None:
        # A forked child inherits the parent's queue, which the parent sends: forget it, and
        # send its own operations at once (its exit may skip atexit hooks).
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._queued = threading.Condition(self._lock)
            self._room = threading.Condition(self._lock)
            self._send_lock = threading.Lock()
            self._ops, self._refused = [], []
            self._closed = threading.Event()
            self._thread = None
            self._at_once = True

    def close(self) -> None:
        """Send what is queued and stop the thread; refusals and a server that cannot be
        reached are logged (there is no caller left to raise to)."""
        self._closed.set()
        with self._lock:
            self._queued.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        try:
            self.drain()
        except SegueError as exc:
            with self._lock:
                unsent = len(self._ops)
            log.error("%d run starts and ends could not be sent: %s", unsent, exc)
        try:
            self.raise_refused()
        except RunsNotRecorded as exc:
            log.error("%s", exc)


_senders: weakref.WeakSet[RunSender] = weakref.WeakSet()


def _close_all() -> None:
    """At exit: every sender sends what it holds (a script that never used segue.start_run
    has no other hook that would)."""
    for sender in list(_senders):
        sender.close()


def _send_before_fork() -> None:
    """Before a fork: what the parent queued reaches the server, so that a child can name the
    runs (log metrics to a run whose start the parent queued)."""
    for sender in list(_senders):
        try:
            sender.drain()
        except Exception as exc:  # the fork goes on; the parent keeps the operations
            log.warning("could not send queued runs before a fork: %s", exc)


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_send_before_fork)


def _take(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first operations of ``ops`` one request carries, taken out of it: up to
    :data:`OPS_PER_REQUEST`, and up to :data:`POINTS_PER_REQUEST` metric points (the first
    always, however many it holds)."""
    count = points = 0
    for op in ops[:OPS_PER_REQUEST]:
        held = sum(len(group["points"]) for group in op.get("metrics", ()))
        if count and points + held > POINTS_PER_REQUEST:
            break
        count += 1
        points += held
    batch = ops[:count]
    del ops[:count]
    return batch


def _sent(op: dict[str, Any]) -> dict[str, Any]:
    """``op`` as the server reads it (without the sender's own marks)."""
    if "_tried" not in op:
        return op
    return {k: v for k, v in op.items() if k != "_tried"}


def _describe(op: dict[str, Any]) -> str:
    if op["op"] == "open":
        return f"the start of run {op['info']['id']}"
    return f"the end of run {op['run_id']}"


def metric_points(metrics: Mapping[str, MetricColumns]) -> list[dict[str, Any]]:
    """Columns per key as the server reads them: one ``{"key", "points": [[value, step,
    timestamp], ...]}`` object per key, in the order logged; values that are not finite as
    ``"NaN"``/``"Infinity"``/``"-Infinity"``."""
    out = []
    for key, (values, steps, stamps) in metrics.items():
        if all(map(math.isfinite, values)):
            points: list[Any] = list(zip(values, steps, stamps, strict=True))
        else:
            points = [(_json_value(v), s, t) for v, s, t in zip(values, steps, stamps, strict=True)]
        out.append({"key": key, "points": points})
    return out


def _json_value(value: float) -> float | str:
    """A metric value as the server reads it: a finite float as is, else ``"NaN"``,
    ``"Infinity"`` or ``"-Infinity"``."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
