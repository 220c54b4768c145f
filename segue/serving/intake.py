"""What an inference request brings before it is parsed: its id, its target, its body.

The hot routes (:mod:`segue.serving.inference`) take the caller's ``x-request-id`` or make a
fresh one (:func:`client_request_id`), tell ``/predict`` and ``/v2/models/{name}[/versions/
{version}]/infer`` from any other path (:func:`hot_target`), and read the body within the size
limit and the body timeout (:func:`read_body`), refusing it with a :class:`RequestError` (400,
408, 413, 503) otherwise.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

from segue.serving.config import ServeConfig
from segue.serving.errors import RequestError

__all__ = [
    "MAX_REQUEST_ID",
    "Call",
    "Target",
    "client_request_id",
    "hot_target",
    "new_request_id",
    "read_body",
]

#: The longest x-request-id kept from a caller, and the longest request id a /feedback
#: label may name.
MAX_REQUEST_ID = 128
_MODELS = "/v2/models/"
_INFER = "/infer"
# A random per-process prefix and a counter: unique across workers and restarts, and much
# cheaper than uuid4 on the hot path.
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count()

Target = tuple[str | None, str | None, bool]  # (model name or None for default, version, oip)


class Call(NamedTuple):
    """What a request's URL and headers say: the model, the version the URL names, whether
    it is an OIP infer call, its ``Inference-Header-Content-Length``; ``shadow`` for the copy
    a shadow route answers."""

    name: str
    version: str | None
    oip: bool
    header_length: str | None = None
    shadow: bool = False


def new_request_id() -> str:
    """A fresh 32-hex-digit request id."""
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


def client_request_id(value: str | None) -> str:
    """The caller's ``x-request-id`` when it is usable, else a new id."""
    if value and len(value) <= MAX_REQUEST_ID and value.isascii() and value.isprintable():
        return value
    return new_request_id()


def hot_target(path: str) -> Target | None:
    """The route ``path`` names, or None if it is not a hot route."""
    if path == "/predict":
        return (None, None, False)
    if path.startswith(_MODELS) and path.endswith(_INFER):
        parts = path[len(_MODELS) : -len(_INFER)].split("/")
        if len(parts) == 1 and parts[0]:
            return (parts[0], None, True)
        if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            return (parts[0], parts[2], True)
    return None


async def read_body(receive: Callable, declared: bytes | None, config: ServeConfig) -> bytes:
    """The request body, refused with 413 as soon as it is known to be over the limit, with
    408 when it has not arrived whole within ``config.body_timeout_s``, and with 503 at once
    when the server begins to stop before it has (``config.body_reads``)."""
    limit = config.max_body_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413, f"request body of {int(declared)} bytes is over the limit of {limit}", None
        )
    try:
        return await config.body_reads.read(
            partial(_receive, receive, limit), config.body_timeout_s
        )
    except TimeoutError:
        raise RequestError(
            408,
            f"the request body did not arrive within {config.body_timeout_s:g} s "
            "(the server's --body-timeout); send the whole body at once",
            None,
        ) from None


async def _receive(receive: Callable, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "the client disconnected mid-request", None)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
