"""The model registry through ``segue server``: :class:`RestRegistryStore`.

The same :class:`~segue.store.registry.RegistryStore` as the SQL store, call for call, over
``/api/v1/models/...``. The server records its authenticated user in the audit log, so the
``actor`` arguments are not sent; an alias move is decided again on the server (its gates
evaluated there, the package verified there), which is told only whether the move is forced,
why, and which version the client saw the alias at.

:meth:`RestRegistryStore.alias_listener` follows ``GET /api/v1/events/aliases``, the server's
stream of alias changes, so ``segue serve`` swaps as soon as an alias moves.

Example:
    >>> store = RestRegistryStore(RemoteSession("http://127.0.0.1:5000", token="sgt_…"))
    >>> store.get_alias("churn", "champion")
    3
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from segue.errors import InvalidArgument, SegueError
from segue.remote.http import RemoteSession
from segue.store import codec
from segue.store.aliases import AliasListener, check_alias
from segue.store.entities import AuditEntry, Gate, ModelVersion, RegisteredModel
from segue.store.registry import check_digest_prefix, check_model_name

__all__ = ["RestRegistryStore"]

log = logging.getLogger("segue.remote")

#: First and longest pause before reconnecting to the event stream.
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 30.0
#: How often the listener looks at its stop event while the stream is quiet.
_TICK = 0.25


def _seg(value: str) -> str:
    return quote(value, safe="")


class RestRegistryStore:
    """:class:`~segue.store.registry.RegistryStore` over a ``segue server``.

    Args:
        session: the connection to the server.
    """

    def __init__(self, session: RemoteSession) -> None:
        self.session = session

    # -- models --------------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        check_model_name(name)
        body = {"name": name, "description": description, "tags": dict(tags or {})}
        return codec.load(RegisteredModel, self.session.call("POST", "/models", json=body))

    def get_model(self, name: str) -> RegisteredModel:
        return codec.load(RegisteredModel, self.session.call("GET", self._model(name)))

    def list_models(self) -> list[RegisteredModel]:
        return codec.load(list[RegisteredModel], self.session.call("GET", "/models"))

    def _model(self, name: str) -> str:
        return f"/models/{_seg(name)}"

    # -- versions ------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        run_id: str,
        artifact_path: str,
        manifest_digest: str,
        flavor: str,
        actor: str,
        description: str | None = None,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register the next version of ``name``; the server's audit entry records
        ``reason`` (``details`` stay here, as with :meth:`set_alias`)."""
        body: dict[str, Any] = {
            "run_id": run_id,
            "artifact_path": artifact_path,
            "manifest_digest": manifest_digest,
            "flavor": flavor,
            "description": description,
        }
        if reason is not None:  # a server without the field still takes the others
            body["reason"] = reason
        found = self.session.call("POST", f"{self._model(name)}/versions", json=body)
        return codec.load(ModelVersion, found)

    def get_version(self, name: str, version: int) -> ModelVersion:
        found = self.session.call("GET", f"{self._model(name)}/versions/{int(version)}")
        return codec.load(ModelVersion, found)

    def list_versions(self, name: str) -> list[ModelVersion]:
        found = self.session.call("GET", f"{self._model(name)}/versions")
        return codec.load(list[ModelVersion], found)

    def delete_version(self, name: str, version: int, actor: str) -> None:
        self.session.call("DELETE", f"{self._model(name)}/versions/{int(version)}")

    # -- aliases -------------------------------------------------------------------------

    def _alias(self, name: str, alias: str) -> str:
        return f"{self._model(name)}/aliases/{_seg(alias)}"

    def get_alias(self, name: str, alias: str) -> int | None:
        try:
            check_alias(alias)
        except InvalidArgument:  # a name no alias can have: unset, as the SQL store says
            self.get_model(name)
            return None
        version = self.session.call("GET", self._alias(name, alias))["version"]
        return None if version is None else int(version)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected: int | None,
        actor: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Point ``alias`` at ``version`` if it still points at ``expected`` (None: unset).

        The server evaluates the alias's gates itself; ``details["forced"]`` says the caller
        overrides them (with ``reason``).

        Raises:
            Conflict: the alias no longer points at ``expected``.
            GateFailed: a gate failed on the server and the move was not forced.
        """
        check_alias(alias)
        body = {
            "version": version,
            "expected": expected,
            "force": bool((details or {}).get("forced")),
            "reason": reason,
        }
        self.session.call("PUT", self._alias(name, alias), json=body)

    def delete_alias(self, name: str, alias: str, actor: str) -> None:
        self.session.call("DELETE", self._alias(name, check_alias(alias)))

    def alias_listener(self) -> AliasListener:
        """``listen(on_change, stop, on_connect=None)``, which blocks and calls
        ``on_change(model, alias)`` each time an alias moves or is deleted, until ``stop``
        is set (see :func:`listen_aliases`)."""
        return partial(listen_aliases, self.session)

    # -- gates ---------------------------------------------------------------------------

    def add_gate(self, name: str, alias: str, requirement: str, actor: str) -> Gate:
        check_alias(alias)
        body = {"alias": alias, "requirement": requirement}
        return codec.load(Gate, self.session.call("POST", f"{self._model(name)}/gates", json=body))

    def list_gates(self, name: str, alias: str | None = None) -> list[Gate]:
        params = None if alias is None else {"alias": alias}
        found = self.session.call("GET", f"{self._model(name)}/gates", params=params)
        return codec.load(list[Gate], found)

    def remove_gate(self, name: str, gate_id: int, actor: str) -> Gate:
        found = self.session.call("DELETE", f"{self._model(name)}/gates/{int(gate_id)}")
        return codec.load(Gate, found)

    # -- audit and lineage ---------------------------------------------------------------

    def history(self, name: str, limit: int = 1000) -> list[AuditEntry]:
        found = self.session.call("GET", f"{self._model(name)}/history", params={"limit": limit})
        return codec.load(list[AuditEntry], found)

    def versions_for_dataset(self, digest: str) -> list[ModelVersion]:
        check_digest_prefix(digest)
        found = self.session.call("GET", f"/datasets/{_seg(digest)}/versions")
        return codec.load(list[ModelVersion], found)

    def versions_for_run(self, run_id: str) -> list[ModelVersion]:
        found = self.session.call("GET", f"/runs/{_seg(run_id)}/versions")
        return codec.load(list[ModelVersion], found)


# -- the server's stream of alias changes ---------------------------------------------------


def listen_aliases(
    session: RemoteSession,
    on_change: Callable[[str, str], None],
    stop: threading.Event,
    on_connect: Callable[[], None] | None = None,
) -> None:
    """Call ``on_change(model, alias)`` for every alias change the server pushes, until
    ``stop`` is set.

    Blocks: run it in a thread. When the stream breaks (the server restarts, the network
    drops) it is opened again with growing pauses (0.5 s, doubling up to 30 s); ``on_connect``
    runs after each (re)connection, since changes made while disconnected were not heard.
    """
    backoff = _FIRST_BACKOFF
    failures = 0
    with _Closer(stop) as closer, _closing(session):
        while not stop.is_set():
            try:
                for event in _events(session, closer, on_connect):
                    backoff, failures = _FIRST_BACKOFF, 0
                    if event is not None:
                        on_change(*event)
            except (SegueError, httpx.HTTPError) as exc:
                if stop.is_set():
                    return
                failures += 1
                if failures == 1:  # once per outage; the retries go on quietly
                    log.warning(
                        "lost the alias change stream of %s (%s); reconnecting",
                        session.base_url,
                        exc,
                    )
            stop.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


@contextlib.contextmanager
def _closing(session: RemoteSession) -> Iterator[None]:
    try:
        yield
    finally:
        session.close()  # this thread's connection


def _events(
    session: RemoteSession, closer: _Closer, on_connect: Callable[[], None] | None
) -> Iterator[tuple[str, str] | None]:
    """The changes of one connection to the stream (None for the opening comment), until the
    server ends it or ``closer`` cuts it."""
    headers = {"accept": "text/event-stream"}
    with session.stream("GET", "/events/aliases", headers=headers) as response:
        closer.watch(response)
        try:
            kind, data = "message", ""
            connected = False
            for line in response.iter_lines():
                if not connected:
                    # The server's first line comes once it hears every change: from here on
                    # nothing is missed, so the caller reads its aliases now.
                    connected = True
                    if on_connect is not None:
                        on_connect()
                    yield None
                if line.startswith(":"):
                    continue
                if line == "":
                    if kind == "alias" and data:
                        change = _parse(data)
                        if change is not None:
                            yield change
                    kind, data = "message", ""
                    continue
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    kind = value
                elif field == "data":
                    data = f"{data}\n{value}" if data else value
        finally:
            closer.watch(None)


def _parse(data: str) -> tuple[str, str] | None:
    try:
        payload = orjson.loads(data)
        model, alias = payload["model"], payload["alias"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        log.warning("ignoring a malformed alias event: %r", data[:200])
        return None
    if not (isinstance(model, str) and isinstance(alias, str)):
        return None
    return model, alias


class _Closer:
    """Closes the open stream when ``stop`` is set, so a quiet stream (pings come every 15 s)
    does not hold up a stopping listener."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._done = threading.Event()
        self._response: httpx.Response | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="segue-events-stop", daemon=True)

    def __enter__(self) -> _Closer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._done.set()
        self._thread.join()

    def watch(self, response: httpx.Response | None) -> None:
        with self._lock:
            self._response = response
        if response is not None and self._stop.is_set():
            self._close()

    def _run(self) -> None:
        while not self._done.is_set():
            if self._stop.wait(_TICK):
                self._close()
                return

    def _close(self) -> None:
        with self._lock:
            response = self._response
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # wakes the blocked read at once
                sock.shutdown(socket.SHUT_RDWR)
