"""Artifact routes: content-addressed blobs, and the log files servers write.

Blobs (``/blobs/{digest}``) are the artifact store's ``blobs/sha256/..`` files: a client asks
which digests the server lacks (``POST /blobs/missing``) and uploads only those. An upload is
streamed to a staging file and hashed on the way; it is stored only if its bytes hash to the
digest its path names and their count is the ``Content-Length`` announced, else it is refused
(422) and nothing is kept. Downloads stream the stored file in chunks with its digest in the
``x-segue-sha256`` header, for the client to check.

Files (``/files/{path}``) are the prediction and feedback log segments under the artifact
root (``predictions/…``, ``feedback/…``), read with HTTP ranges (as pyarrow reads Parquet) and
written whole: a PUT is published only once all its bytes have arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from segue.artifacts.cas import blob_key
from segue.errors import Conflict, IntegrityError, InvalidArgument, NotFound
from segue.server.app import error_response, json_response, server_state
from segue.server.state import ServerState

router = APIRouter(tags=["artifacts"])

#: Digests one ``POST /blobs/missing`` may ask about.
MAX_DIGESTS = 10_000
#: The folders under the artifact root that ``/files`` serves: the logs servers write.
LOG_FOLDERS = ("predictions", "feedback")
MAX_PATH = 1024

_CHUNK = 1 << 20
#: What an object-store filesystem reads ahead for one download (bounds the server's memory).
_READAHEAD = 4 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_OCTETS = "application/octet-stream"

Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
#: What the path parameters accept, stated in the OpenAPI schema; the handlers check it
#: themselves so that a refusal names the parameter (``digest``, ``path``).
_DIGEST_SCHEMA = {"pattern": "^[0-9a-f]{64}$"}
_PATH_SCHEMA = {
    "pattern": r"^(predictions|feedback)(/[^/.\x00-\x1f\x7f\\][^/\x00-\x1f\x7f\\]*)+$",
    "maxLength": MAX_PATH,
}
_PREFIX_SCHEMA = {
    "pattern": r"^((predictions|feedback)(/[^/.\x00-\x1f\x7f\\][^/\x00-\x1f\x7f\\]*)*/?)?$"
}
DigestPath = Annotated[str, PathParam(json_schema_extra=_DIGEST_SCHEMA)]
PrefixQuery = Annotated[str, Query(max_length=MAX_PATH, json_schema_extra=_PREFIX_SCHEMA)]
LogPath = Annotated[str, PathParam(json_schema_extra=_PATH_SCHEMA)]
#: Uploads are the raw bytes, streamed (no JSON, no form): described for the API docs.
_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {_OCTETS: {"schema": {"type": "string", "format": "binary"}}},
    }
}


class MissingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digests: list[Digest] = Field(max_length=MAX_DIGESTS)


@router.post("/blobs/missing")
def missing_blobs(request: Request, body: MissingBody) -> Response:
    """Which of ``digests`` (sha256 hex, at most 10,000) the server has no blob for."""
    return json_response({"missing": server_state(request).content.missing(body.digests)})


@router.head("/blobs/{digest}")
def blob_head(request: Request, digest: DigestPath) -> Response:
    """The blob's size (``Content-Length``) and digest; 404 when it is not stored."""
    state = server_state(request)
    size = state.backend.size(blob_key(_digest(digest)))
    return Response(headers=_file_headers(size, digest))


@router.get("/blobs/{digest}")
def blob_get(request: Request, digest: DigestPath) -> Response:
    """The blob's bytes, streamed (``Range`` supported), its digest in ``x-segue-sha256``."""
    return _download(request, blob_key(_digest(digest)), {"x-segue-sha256": digest})


@router.put("/blobs/{digest}", status_code=201, openapi_extra=_RAW_BODY)
async def blob_put(request: Request, digest: DigestPath) -> Response:
    """Store the body as the blob ``digest``: refused (422, nothing kept) unless its bytes hash
    to ``digest`` and number ``Content-Length``. Storing a blob already there is a no-op."""
    _digest(digest)
    state = server_state(request)
    staged, received = await _receive(request, state)
    try:
        if received.hexdigest() != digest:
            mismatch = IntegrityError(
                f"the uploaded bytes hash to sha256:{received.hexdigest()}, not to the "
                f"sha256:{digest} the path names; nothing was stored"
            )
            mismatch.http_status = 422  # the caller's bytes are wrong, not the server's store
            mismatch.field = "body"  # type: ignore[attr-defined]  # the error body names it
            raise mismatch
        await run_in_threadpool(state.content.put_staged, digest, staged)
    finally:
        await run_in_threadpool(_discard, staged)
    return json_response({"digest": digest}, 201)


@router.get("/files")
def files_list(request: Request, prefix: PrefixQuery = "") -> Response:
    """``[{"name", "size", "type"}]`` of what is directly under the folder ``prefix`` (a log
    folder, or "" for the root), or of ``prefix`` itself if it is a file; 404 if nothing is."""
    state = server_state(request)
    folder = prefix.rstrip("/")
    if not folder:
        found = [e for e in _root_entries(state) if e[0] in LOG_FOLDERS]
    else:
        found = state.backend.ls(_log_path(folder, "prefix"))
    return json_response([{"name": n, "size": s, "type": t} for n, s, t in found])


@router.head("/files/{path:path}")
def file_head(request: Request, path: LogPath) -> Response:
    """The file's size (``Content-Length``); 404 when it is missing."""
    size = server_state(request).backend.size(_log_path(path))
    return Response(headers=_file_headers(size))


@router.get("/files/{path:path}")
def file_get(request: Request, path: LogPath) -> Response:
    """The file's bytes, streamed, or the ``Range: bytes=…`` asked for (206)."""
    return _download(request, _log_path(path), {})


@router.put("/files/{path:path}", status_code=201, openapi_extra=_RAW_BODY)
async def file_put(request: Request, path: LogPath) -> Response:
    """Write the body to ``path``, replacing what is there: readers see the old file or all of
    the new one, never part of it. Refused (422) without a ``Content-Length`` it matches."""
    key = _log_path(path)
    state = server_state(request)
    staged, received = await _receive(request, state)
    try:
        await run_in_threadpool(state.backend.put_file, key, staged, move=True)
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        conflict = Conflict(f"path {key!r}: a file and a folder cannot share a name ({exc})")
        conflict.field = "path"  # type: ignore[attr-defined]  # the error body names it
        raise conflict from None
    finally:
        await run_in_threadpool(_discard, staged)
    return json_response({"name": key, "size": received.size}, 201)


@router.delete("/files/{path:path}", status_code=204)
def file_delete(request: Request, path: LogPath) -> Response:
    """Delete the file at ``path``; 404 when it is missing."""
    state = server_state(request)
    key = _log_path(path)
    state.backend.size(key)  # NotFound (404) for a missing file or a folder
    state.backend.delete(key)
    return Response(status_code=204)


# --- paths ------------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> InvalidArgument:
    error = InvalidArgument(message)
    error.field = field  # type: ignore[attr-defined]  # the error body names it
    return error


def _digest(digest: str) -> str:
    if digest == "missing":  # /blobs/missing is its own route, which only takes POST
        raise HTTPException(405, "/blobs/missing takes POST only", headers={"allow": "POST"})
    if not _DIGEST.match(digest):
        raise _invalid("digest", f"digest must be 64 lowercase hex characters, got {digest!r}")
    return digest


def _log_path(path: str, field: str = "path") -> str:
    """``path`` if it names something inside a log folder, else a 422 naming ``field``."""
    shown = repr(path[:100])
    if len(path) > MAX_PATH:
        raise _invalid(field, f"{field} is longer than {MAX_PATH} characters")
    if _CONTROL.search(path):
        raise _invalid(field, f"{field} {shown} contains a control character")
    if path.startswith("/") or "\\" in path:
        raise _invalid(field, f"{field} {shown} must be relative, with '/' between folders")
    parts = path.split("/")
    if any(not part or part.startswith(".") for part in parts):
        # '.', '..' and hidden names (temp files of writers in progress) alike.
        raise _invalid(field, f"{field} {shown} has an empty part or one starting with '.'")
    if parts[0] not in LOG_FOLDERS:
        raise _invalid(
            field, f"{field} {shown} must be under one of {', '.join(LOG_FOLDERS)} (the logs)"
        )
    return path


def _root_entries(state: ServerState) -> list[tuple[str, int, str]]:
    try:
        return state.backend.ls("")
    except NotFound:  # an artifact root nobody has written to yet
        return []


# --- uploads ---------------------------------------------------------------------------------


class _Received:
    """The sha256 and byte count of what has been written to a staging file."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.hasher = hashlib.sha256()
        self.size = 0

    def hash(self, data: bytearray) -> None:
        self.hasher.update(data)

    def write(self, data: bytearray) -> None:
        self.file.write(data)

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()


async def _receive(request: Request, state: ServerState) -> tuple[Path, _Received]:
    """The request body in a staging file, hashed; refused (422) without a ``Content-Length``
    or with fewer bytes than it announced (the staging file is then removed)."""
    expected = _content_length(request)
    staged = await run_in_threadpool(_staging_file, state)
    try:
        file = await run_in_threadpool(open, staged, "wb")
        received = _Received(file)
        try:
            await _spool(request, received)
        finally:
            await run_in_threadpool(file.close)
        if received.size != expected:
            raise _invalid(
                "content-length",
                f"the body has {received.size} bytes, not the {expected} its Content-Length "
                "announced; nothing was stored",
            )
    except BaseException:
        await run_in_threadpool(_discard, staged)
        raise
    return staged, received


async def _spool(request: Request, received: _Received) -> None:
    # Chunks are gathered to about a MiB, then hashed in one worker thread and written in
    # another (both let go of the GIL) while the next MiB arrives: the event loop never blocks
    # on the disk, and at most two MiB of a body wait in memory.
    pending: Awaitable[Any] | None = None
    batch = bytearray()
    try:
        async for chunk in request.stream():
            batch += chunk
            if len(batch) >= _CHUNK or (not chunk and batch):
                if pending is not None:
                    await pending
                received.size += len(batch)
                pending = asyncio.gather(
                    run_in_threadpool(received.hash, batch),
                    run_in_threadpool(received.write, batch),
                )
                batch = bytearray()
        if pending is not None:
            await pending
            pending = None
    except ClientDisconnect:
        raise _invalid(
            "content-length", "the client went away before sending the whole body"
        ) from None
    finally:
        if pending is not None:  # a failure while a write was running: let it finish first
            await asyncio.gather(pending, return_exceptions=True)


def _content_length(request: Request) -> int:
    text = request.headers.get("content-length")
    if text is None:
        raise _invalid(
            "content-length",
            "an upload needs a Content-Length header (a chunked body cannot be checked for "
            "truncation)",
        )
    if not text.isdigit():
        raise _invalid("content-length", f"Content-Length must be a byte count, got {text!r}")
    return int(text)


def _staging_file(state: ServerState) -> Path:
    fd, name = tempfile.mkstemp(dir=state.backend.staging_dir(), prefix="upload-")
    os.close(fd)
    return Path(name)


def _discard(path: Path) -> None:
    if path.exists():
        path.unlink()


# --- downloads -------------------------------------------------------------------------------


def _file_headers(size: int, digest: str | None = None) -> dict[str, str]:
    headers = {"content-length": str(size), "accept-ranges": "bytes", "content-type": _OCTETS}
    if digest is not None:
        headers["x-segue-sha256"] = digest
    return headers


def _download(request: Request, key: str, extra: dict[str, str]) -> Response:
    backend = server_state(request).backend
    size = backend.size(key)
    header = request.headers.get("range")
    start, end = 0, size
    status = 200
    if header is not None:
        wanted = _byte_range(header, size)
        if wanted is None:
            return error_response(
                request,
                416,
                f"range {header[:100]!r} is not within the file's {size} bytes",
                kind="InvalidArgument",
                field="range",
                headers={"content-range": f"bytes */{size}"},
            )
        start, end = wanted
        status = 206
    headers = {**_file_headers(end - start), **extra}
    if status == 206:
        headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    opened = backend.open(key, block_size=_READAHEAD)
    return StreamingResponse(_chunks(opened, start, end - start), status, headers)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single ``bytes=`` range within ``size`` bytes, or
    None when it cannot be satisfied; several ranges are refused the same way."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        return None
    return start, end


def _chunks(opened: Any, start: int, length: int) -> Iterator[bytes]:
    # Starlette runs each step of a plain generator in a worker thread.
    try:
        if start:
            opened.seek(start)
        left = length
        while left > 0:
            chunk = opened.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    finally:
        opened.close()
