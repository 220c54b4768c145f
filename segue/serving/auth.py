"""Bearer tokens for ``segue serve --auth`` and ``--api-key-file``: who may predict.

A :class:`Guard` stands in front of the routes :mod:`segue.serving.access` marks as needing a
token. A request passes with ``Authorization: Bearer <token>`` when the token is

- a key of the ``--api-key-file`` (:class:`KeyFile`): one key a line, kept as sha256
  digests, compared in constant time, read again when the file changes; or
- with ``--auth``, a token of the metadata store (any scope, ``predict`` included) whose user
  is not disabled, or in remote mode one the team server accepts (:class:`TokenCache`).

Otherwise it gets a 401 JSON body, and a client with 10 failures in a minute gets 429 until
the minute has passed (:class:`~segue.auth.ratelimit.FailureLimiter`, per worker process).

Store tokens are remembered for :data:`TOKEN_TTL_S` seconds (unknown ones too), so the hot
path pays a hash and a dict lookup, not a query: a token revoked or a user disabled is
refused by a running server within that time.

Example::

    >>> guard = Guard(keys=KeyFile("keys.txt"))
    >>> app = create_app(models, ServeConfig(auth=guard))  # /predict now needs a key
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from segue.auth.ratelimit import FailureLimiter
from segue.errors import (
    InvalidArgument,
    SegueError,
    ServerError,
    TooManyRequests,
    Unauthenticated,
)
from segue.serving import responses
from segue.serving.failure_log import FailureLog
from segue.serving.intake import client_request_id

__all__ = ["TOKEN_TTL_S", "Guard", "KeyFile", "TokenCache", "remote_tokens", "store_tokens"]

log = logging.getLogger("segue.serving")

#: Seconds a store token's answer (valid or not) is remembered.
TOKEN_TTL_S = 2.0
#: Most tokens remembered; beyond it the expired ones are dropped, then all.
MAX_CACHED = 10_000
#: Shortest key ``--api-key-file`` accepts.
MIN_KEY_LENGTH = 16
_BEARER = b"bearer "


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class KeyFile:
    """The keys of ``--api-key-file``: one a line; lines starting with ``#`` and blank lines
    are ignored, spaces around a key too.

    Only the keys' sha256 digests are kept, and a presented key's digest is compared with
    each of them in constant time. The file's modification time is looked at at most every
    ``recheck_s`` seconds and the keys read again when it changed; a file that disappears or
    holds no key then accepts no key (and says so in the log) until it is fixed.

    Raises:
        InvalidArgument: at construction, a file that cannot be read, holds no key, or a key
            shorter than :data:`MIN_KEY_LENGTH` characters (naming its line).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.fspath(path)
        self.recheck_s = recheck_s
        self._clock = clock
        self._digests: tuple[bytes, ...] = ()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = clock()
        try:
            self._reload()
        except OSError as exc:
            raise InvalidArgument(
                f"--api-key-file {self.path}: cannot read it: {exc.strerror or exc}"
            ) from None
        if not self._digests:
            raise InvalidArgument(
                f"--api-key-file {self.path}: no key in it; write one key a line, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))' >> FILE"
            )

    def accepts(self, digest: bytes) -> bool:
        """Whether the key of sha256 ``digest`` is in the file (as last read)."""
        now = self._clock()
        if now - self._checked >= self.recheck_s:
            self._checked = now
            self._refresh()
        found = False
        for known in self._digests:  # every digest, found or not: no early exit to time
            found |= hmac.compare_digest(known, digest)
        return found

    def _refresh(self) -> None:
        try:
            changed = self._signature() != self._stamp
            if changed:
                self._reload()
                log.info("--api-key-file %s read again: %d key(s)", self.path, len(self._digests))
        except (OSError, InvalidArgument) as exc:
            if self._digests or self._stamp is not None:
                log.warning(
                    "--api-key-file %s: %s; no key is accepted until it is fixed", self.path, exc
                )
            self._digests, self._stamp = (), None

    def _signature(self) -> tuple[int, int, int]:
        stat = os.stat(self.path)
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _reload(self) -> None:
        stamp = self._signature()
        with open(self.path, encoding="utf-8") as file:
            lines = file.read().splitlines()
        digests = []
        for number, line in enumerate(lines, start=1):
            key = line.strip()
            if not key or key.startswith("#"):
                continue
            if len(key) < MIN_KEY_LENGTH:
                raise InvalidArgument(
                    f"--api-key-file {self.path}: the key on line {number} is shorter than "
                    f"{MIN_KEY_LENGTH} characters; use a random one, e.g. secrets.token_urlsafe(32)"
                )
            digests.append(_digest(key))
        self._digests, self._stamp = tuple(digests), stamp


_MISS = object()


class TokenCache:
    """Tokens checked by ``authenticate`` and remembered, valid or not, for ``ttl`` seconds.

    Args:
        authenticate: returns who the token belongs to, or raises
            :class:`~segue.errors.Unauthenticated` (unknown, revoked, expired, or its user
            disabled). It may block (a query, an HTTP call): it runs in a worker thread, once
            at a time per token however many requests bring it.
        ttl: seconds an answer is remembered; a revoked token passes for at most this long.
        clock: monotonic seconds (injectable: tests move time instead of sleeping).
    """

    def __init__(
        self,
        authenticate: Callable[[str], Any],
        *,
        ttl: float = TOKEN_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_CACHED,
    ) -> None:
        self._authenticate = authenticate
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._entries: dict[bytes, tuple[bool, float]] = {}
        self._pending: dict[bytes, asyncio.Future[bool]] = {}
        self._failures = FailureLog(clock=clock)

    def cached(self, digest: bytes) -> bool | None:
        """The remembered answer for the token of sha256 ``digest``; None when there is none
        (or it is older than ``ttl``)."""
        entry = self._entries.get(digest)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def check(self, token: str, digest: bytes) -> bool:
        """Whether ``token`` is valid, asking ``authenticate`` (off the event loop) unless the
        answer is remembered.

        Raises:
            ServerError: the source could not answer (the store or the team server is down,
                or refuses this server); nothing is remembered, the error is logged (a
                traceback once a minute).
        """
        known = self.cached(digest)
        if known is not None:
            return known
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            try:
                valid = await run_in_threadpool(self._ask, token)
            except Exception as exc:
                self._failures.failed(exc, "checking a bearer token failed")
                raise ServerError(
                    f"cannot check the token now ({type(exc).__name__}: {exc}); retry"
                ) from exc
            self._remember(digest, valid)
            future.set_result(valid)
            return valid
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._pending[digest]

    def _ask(self, token: str) -> bool:
        try:
            self._authenticate(token)
        except Unauthenticated:
            return False
        return True

    def _remember(self, digest: bytes, valid: bool) -> None:
        now = self._clock()
        if len(self._entries) >= self._max:
            self._entries = {d: e for d, e in self._entries.items() if e[1] > now}
            if len(self._entries) >= self._max:
                self._entries.clear()
        self._entries[digest] = (valid, now + self.ttl)


class Guard:
    """Lets a request through when its bearer token is a key of ``keys`` or a valid token
    of ``tokens``; answers 401 (429 when its client failed too often) otherwise.

    Args:
        keys: the ``--api-key-file`` keys, or None.
        tokens: the ``--auth`` tokens, or None. At least one of the two.
        limiter: counts each client's failures (default: 10 a minute).
    """

    def __init__(
        self,
        *,
        keys: KeyFile | None = None,
        tokens: TokenCache | None = None,
        limiter: FailureLimiter | None = None,
    ) -> None:
        if keys is None and tokens is None:
            raise InvalidArgument("a guard needs --api-key-file, --auth or both")
        self.keys = keys
        self.tokens = tokens
        self.limiter = limiter or FailureLimiter()
        hint = []
        if tokens is not None:
            hint.append("a token from 'segue tokens create NAME --scope predict'")
        if keys is not None:
            hint.append("a key of the server's --api-key-file")
        self._missing = (
            f"this route needs a token: send 'Authorization: Bearer <token>' ({' or '.join(hint)})"
        )

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind this guard."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if await self.admit(scope, send):
                await app(scope, receive, send)

        return guarded

    async def admit(self, scope: Scope, send: Send) -> bool:
        """True when the request may go on; else its error response is sent and False."""
        client = scope["client"][0] if scope.get("client") else "unknown"
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if value[:7].lower() == _BEARER:
                    token = value[7:].strip().decode("latin-1") or None
                break
        try:
            self.limiter.check(client)
            if token is not None:
                digest = _digest(token)
                if self.keys is not None and self.keys.accepts(digest):
                    return True
                if self.tokens is not None and await self.tokens.check(token, digest):
                    return True
            self.limiter.failed(client)
            message = self._missing if token is None else "unknown, revoked or expired token"
            raise Unauthenticated(message)
        except SegueError as exc:
            await _refuse(scope, send, exc)
            return False


async def _refuse(scope: Scope, send: Send, exc: SegueError) -> None:
    given = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value.decode("latin-1")
    request_id = client_request_id(given)
    status = exc.http_status
    if status >= 500:
        status = 503  # the token's source did not answer: retry, nothing is wrong with you
    body = responses.error_body(str(exc), None, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    if isinstance(exc, Unauthenticated):
        headers.append((b"www-authenticate", b"Bearer"))
    if isinstance(exc, TooManyRequests):
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def store_tokens() -> Callable[[str], Any]:
    """``authenticate`` over the configured metadata store's tokens (``--auth``)."""
    from segue.auth.service import AuthService
    from segue.config import settings
    from segue.store.auth import SqlAuthStore
    from segue.store.engine import open_engine

    service = AuthService(SqlAuthStore(open_engine(settings().store_uri)))
    if not service.has_users():
        log.warning(
            "--auth: the store has no users, so no token can pass yet: segue users add NAME "
            "--role viewer, then segue tokens create NAME --scope predict"
        )
    return service.authenticate


def remote_tokens(base_url: str, token: str | None) -> Callable[[str], Any]:
    """``authenticate`` through the team server at ``base_url`` (``--auth`` in remote mode).

    Each presented token is sent to ``POST /api/v1/token-introspection`` with this server's own
    token (``SEGUE_TOKEN``): an inactive answer is refused here, and bad tokens never count
    against this server's failure limit on the team server.
    """
    from segue.auth.secrets import parse_token
    from segue.errors import Unauthenticated
    from segue.remote.http import RemoteSession

    session = RemoteSession(base_url, token, timeout=10.0)

    def authenticate(presented: str) -> Any:
        parse_token(presented)  # malformed: refused without a round trip
        answer = session.call("POST", "/token-introspection", json={"token": presented})
        if not answer.get("active"):
            raise Unauthenticated("unknown, revoked or expired token")
        return answer

    return authenticate
