"""One keep-alive HTTP connection to ``segue server``, and its errors as Segue's own.

Example:
    >>> session = RemoteSession("http://127.0.0.1:5000", token="sgt_…")
    >>> session.call("GET", "/experiments")
    [{'id': 1, 'name': 'Default', ...}]
"""

from __future__ import annotations

import os
import socket
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import httpx
import orjson

from segue import errors
from segue.errors import SegueError, ServerError

__all__ = ["API", "Queued", "RemoteSession", "hold_calls_for", "raise_for_error", "sending"]

API = "/api/v1"

#: Error types the server names in its bodies, raised again here as the same class.
_ERRORS: dict[str, type[SegueError]] = {
    cls.__name__: cls
    for cls in (
        errors.InvalidArgument,
        errors.NotFound,
        errors.AlreadyExists,
        errors.Conflict,
        errors.IntegrityError,
        errors.Unauthenticated,
        errors.PermissionDenied,
        errors.TooManyRequests,
    )
}


class Queued(Protocol):
    """What a client queued to send later (see :func:`hold_calls_for`)."""

    def drain(self) -> None:
        """Send everything queued now; raise if the server cannot be reached."""


#: Queues whose work every later call to a server waits for (read-your-writes).
_queues: weakref.WeakSet[Queued] = weakref.WeakSet()
_local = threading.local()


def hold_calls_for(queue: Queued) -> None:
    """Make every call of this process to a Segue server first send what ``queue`` holds.

    A run started in the background is then on the server before any request that could
    name it (its artifacts, a model version registered from it, a search), whichever
    :class:`RemoteSession` sends that request.
    """
    _queues.add(queue)


@contextmanager
def sending() -> Iterator[None]:
    """Calls made inside go out at once: what a queue's own sending uses."""
    inside = getattr(_local, "sending", False)
    _local.sending = True
    try:
        yield
    finally:
        _local.sending = inside


def _wait_for_queues() -> None:
    if not _queues or getattr(_local, "sending", False):
        return
    with sending():
        for queue in list(_queues):
            queue.drain()


class RemoteSession:
    """Calls to ``base_url`` + ``/api/v1`` with a bearer token, over one keep-alive connection
    per thread pool slot (TCP_NODELAY set: no 40 ms Nagle stall on small requests).

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:5000``.
        token: the bearer token (``SEGUE_TOKEN``); None for a server started with ``--no-auth``.
        timeout: seconds to connect and to wait for each answer.
        transport: an httpx transport, for tests.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"accept": "application/json", "user-agent": "segue-client"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._headers = headers
        self._timeout = timeout
        self._transport = transport
        self._local = threading.local()
        self._clients: list[httpx.Client] = []  # every thread's, for close()
        self._clients_lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def http(self) -> httpx.Client:
        """This thread's client (httpx clients are not shared across threads here, nor with a
        forked child: its requests on the parent's connection would mix with the parent's)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._local = threading.local()
            self._clients = []  # the parent's: left to it, open
            self._clients_lock = threading.Lock()
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            transport = self._transport or httpx.HTTPTransport(
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)], retries=2
            )
            client = httpx.Client(
                base_url=self.base_url + API,
                headers=self._headers,
                timeout=self._timeout,
                transport=transport,
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """``method path`` with ``json`` as the body; the answer's JSON (None when empty).

        Raises:
            SegueError: the server's 4xx error, as the class it names (NotFound, …).
            ServerError: a 5xx answer, or the server cannot be reached.
        """
        content = None if json is None else orjson.dumps(json)
        headers = None if content is None else {"content-type": "application/json"}
        response = self.send(method, path, content=content, params=params, headers=headers)
        if not response.content:
            return None
        return orjson.loads(response.content)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw response to ``method path`` (errors raised as :meth:`call` does)."""
        _wait_for_queues()
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the Segue server at {self.base_url}: {exc}") from exc
        raise_for_error(response, self.base_url)
        return response

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed response (for downloads); errors raised before the body is read."""
        _wait_for_queues()
        try:
            with self.http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                raise_for_error(response, self.base_url)
                yield response
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the Segue server at {self.base_url}: {exc}") from exc

    def close(self) -> None:
        """Close the connections of every thread (a later call opens new ones)."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._local = threading.local()


def raise_for_error(response: httpx.Response, where: str) -> None:
    """Raise the Segue error a 4xx/5xx ``response`` describes; nothing for a success."""
    status = response.status_code
    if status < 400:
        return
    request_id = response.headers.get("x-request-id")
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    message = str(message or response.text[:300] or f"HTTP {status}")
    kind = body.get("type") if isinstance(body, dict) else None
    if status >= 500:
        raise ServerError(f"{where} failed: {message}", request_id=request_id, status_code=status)
    if kind == "GateFailed":
        raise errors.GateFailed(message, list(body.get("report") or []))
    if kind == "TooManyRequests":
        retry = response.headers.get("retry-after", "60")
        raise errors.TooManyRequests(message, retry_after=int(retry) if retry.isdigit() else 60)
    cls = _ERRORS.get(str(kind))
    if cls is None:
        cls = {401: errors.Unauthenticated, 403: errors.PermissionDenied, 404: errors.NotFound}.get(
            status, errors.InvalidArgument
        )
    raise cls(message)
