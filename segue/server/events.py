"""Alias changes pushed to clients: the feed behind ``GET /api/v1/events/aliases``.

One :class:`AliasEvents` per server process hears of every alias move and deletion and hands
each to every open event stream (a ``segue serve`` following ``models:/churn@champion``
through this server swaps at once instead of at its next poll). It hears of them three ways:

- moves made through this process are published by the routes as they commit;
- on PostgreSQL, the store's NOTIFY (:func:`segue.store.notify.listen_aliases`) brings the
  moves of every other process on the database, other workers of this server included;
- on SQLite, which has no NOTIFY, the audit log is read every ``poll_s`` seconds
  (:func:`segue.store.notify.poll_aliases`) for the same.

A change may so arrive twice; a client only re-reads the alias, so that costs nothing. One
thread feeds every stream, started with the first one; each stream has a bounded queue, and a
stream that falls :data:`QUEUE_SIZE` changes behind is ended (its client reconnects and reads
every alias again) rather than letting the server's memory grow.

A stream never ends by itself, and uvicorn's graceful shutdown waits for every response under
way before the app hears of it; so SIGTERM and SIGINT first end every stream (the handler
uvicorn installed then runs as before), and a stopping server does not wait on its followers.

Example::

    >>> events = AliasEvents(engine)
    >>> with events.subscribe() as queue:   # on the event loop
    ...     change = await queue.get()        # ("churn", "champion"), or None: stream over
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from sqlalchemy.engine import Engine

from segue.store.notify import listen_aliases, poll_aliases, supports_notify

__all__ = ["QUEUE_SIZE", "AliasEvents", "Change"]

log = logging.getLogger("segue.server")

#: Changes a stream may fall behind by before it is ended.
QUEUE_SIZE = 1000
#: Seconds between looks at the audit log where the database cannot announce changes.
POLL_SECONDS = 0.5
_JOIN_SECONDS = 5.0

#: ``(model, alias)``; None ends a stream.
Change = tuple[str, str] | None


@dataclass(eq=False)
class _Stream:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Change]

    def put(self, change: Change) -> None:
        # On the stream's loop. A stream too far behind is ended: its client starts over.
        if self.queue.full():
            while not self.queue.empty():
                self.queue.get_nowait()
            change = None
        self.queue.put_nowait(change)


class AliasEvents:
    """Every alias change the server hears of, for every open event stream.

    Args:
        engine: the metadata store's engine (PostgreSQL: LISTEN; otherwise the audit log).
        poll_s: seconds between looks at the audit log where there is no LISTEN.
        queue_size: changes a stream may fall behind by before it is ended.
    """

    def __init__(
        self, engine: Engine, *, poll_s: float = POLL_SECONDS, queue_size: int = QUEUE_SIZE
    ) -> None:
        self._engine = engine
        self._poll_s = poll_s
        self._queue_size = queue_size
        self._streams: set[_Stream] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._connected = threading.Event()
        self._handlers: dict[int, Any] = {}  # the signal handlers ours were put in front of
        self._ours: dict[int, Any] = {}

    def publish(self, model: str, alias: str) -> None:
        """Hand ``model@alias`` changed to every open stream (from any thread)."""
        self._send((model, alias))

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Change]]:
        """A queue of the changes heard from now on, for the block's duration (call it on
        the event loop). It yields None when the stream must end: the server is stopping, or
        the stream fell too far behind."""
        stream = _Stream(asyncio.get_running_loop(), asyncio.Queue(self._queue_size))
        with self._lock:
            if self._closed:
                stream.queue.put_nowait(None)
            else:
                self._streams.add(stream)
                self._start()
        self._end_on_signal(stream.loop)
        try:
            yield stream.queue
        finally:
            with self._lock:
                self._streams.discard(stream)

    async def ready(self, timeout: float = 10.0) -> bool:
        """Wait until changes are being heard (the LISTEN is in place, or the audit log's
        starting point read), so that nothing a client reads after this is missed; False if
        that takes longer than ``timeout`` seconds (changes made meanwhile may be missed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._connected.is_set() and not self._closed:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return len(self._streams)

    def close(self) -> None:
        """End every stream and stop hearing of changes."""
        self._end_streams()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS)
        self._restore_signals()

    def _end_streams(self) -> None:
        with self._lock:
            self._closed = True
        self._send(None)

    def _end_on_signal(self, loop: asyncio.AbstractEventLoop) -> None:
        # Signals reach only the main thread: a server on another thread (tests) has none.
        if self._handlers or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._handlers[sig] = previous = signal.getsignal(sig)

            def handle(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                # On the loop, not here: the interrupted code may hold the streams' lock.
                loop.call_soon_threadsafe(self._end_streams)
                if callable(previous):
                    previous(signum, frame)
                elif previous == signal.SIG_DFL:
                    signal.signal(signum, previous)
                    signal.raise_signal(signum)

            signal.signal(sig, handle)
            self._ours[sig] = handle

    def _restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._handlers.items():
            if signal.getsignal(sig) is self._ours[sig]:  # not replaced since
                signal.signal(sig, previous)
        self._handlers.clear()
        self._ours.clear()

    def _send(self, change: Change) -> None:
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the stream is gone
                stream.loop.call_soon_threadsafe(stream.put, change)

    def _start(self) -> None:
        # Under the lock: one feeding thread, started with the first stream.
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._feed, name="segue-alias-events", daemon=True)
        self._thread.start()

    def _on_connect(self) -> None:
        if self._connected.is_set():
            # Reconnected after losing the database: what changed meanwhile was not heard, so
            # every stream ends and its client, reconnecting, reads its aliases again.
            self._send(None)
        self._connected.set()

    def _feed(self) -> None:
        try:
            if supports_notify(self._engine):
                listen_aliases(self._engine, self.publish, self._stop, on_connect=self._on_connect)
            else:
                poll_aliases(
                    self._engine,
                    self.publish,
                    self._stop,
                    interval=self._poll_s,
                    on_connect=self._on_connect,
                )
        except Exception:  # a bug: streams then carry only this process's own moves
            log.exception("the alias change feed stopped")
