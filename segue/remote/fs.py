"""An fsspec filesystem over ``segue server``'s artifact routes: ``segue+http://host:port/…``.

In remote mode the artifact store is ``"segue+" + SEGUE_TRACKING_URI``, so everything that
reads or writes artifacts through fsspec (:class:`~segue.artifacts.FsspecBackend`, the content
store, the prediction and feedback log writers, the monitoring readers, pyarrow) works through
the server unchanged (``segue.remote`` registers the protocols with fsspec, and installing
Segue declares them as fsspec entry points). Paths are ``host:port/<key>`` with keys under the
server's artifact root:

- ``blobs/sha256/ab/cd/<digest>`` go to ``/api/v1/blobs/<digest>``: uploaded in one streamed
  PUT that the server checks against the digest; read back with ranged GETs (the content store
  checks the digest of what it reads).
- other keys (``predictions/…``, ``feedback/…``) go to ``/api/v1/files/<key>``.

The bearer token is ``SEGUE_TOKEN`` (or ``token=``). A server must be at the root of its
address (``http://host:port``, not ``http://host/prefix``).

Example:
    >>> fs, root = fsspec.core.url_to_fs("segue+http://127.0.0.1:5000")
    >>> fs.ls(f"{root}/predictions/churn", detail=False)
    ['127.0.0.1:5000/predictions/churn/date=2025-06-15']
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote

import httpx
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from segue.errors import InvalidArgument, NotFound, ServerError
from segue.remote.http import RemoteSession, raise_for_error

__all__ = ["PROTOCOLS", "SegueFile", "SegueFileSystem"]

PROTOCOLS = ("segue+http", "segue+https")
#: Digests one ``POST /blobs/missing`` may carry (the server's limit).
MISSING_BATCH = 10_000

_CHUNK = 1 << 20
_WINDOW_MIN = 4 << 20
_WINDOW_MAX = 64 << 20
_BLOB = re.compile(r"^blobs/sha256/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})$")


class SegueFileSystem(AbstractFileSystem):
    """The artifact store of the ``segue server`` a path names (``host:port/<key>``).

    Args:
        scheme: ``http`` or ``https``, how the servers are reached.
        token: the bearer token; None reads ``SEGUE_TOKEN``.
        transport: an httpx transport for the requests (e.g. one with a proxy or a client
            certificate), as fsspec storage options or ``fsspec.config.conf["segue+http"]``.
    """

    protocol = PROTOCOLS
    root_marker = ""
    #: Blob uploads are checked against their digest by the server as they are stored.
    verifies_uploads = True

    def __init__(
        self,
        scheme: str = "http",
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if scheme not in ("http", "https"):
            raise InvalidArgument(f"scheme must be http or https, got {scheme!r}")
        if token is None:
            from segue.config import settings

            token = settings().token
        self.scheme = scheme
        self._token = token
        self._transport = transport
        self._sessions: dict[str, RemoteSession] = {}

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        from segue.config import settings

        # The token is part of fsspec's instance cache key: a new SEGUE_TOKEN gets a new one.
        scheme = "https" if str(path).startswith("segue+https://") else "http"
        return {"scheme": scheme, "token": settings().token}

    def unstrip_protocol(self, name: str) -> str:
        if name.startswith(PROTOCOLS):
            return name
        return f"segue+{self.scheme}://{name}"

    # --- paths ------------------------------------------------------------------------------

    def _split(self, path: str) -> tuple[RemoteSession, str, str]:
        """The session to the server ``path`` names, that server's ``host:port`` and the key."""
        path = self._strip_protocol(path)
        address, _, key = path.partition("/")
        if not address:
            raise InvalidArgument(f"artifact path {path!r} names no server (host:port/…)")
        session = self._sessions.get(address)
        if session is None:
            session = RemoteSession(
                f"{self.scheme}://{address}", self._token, transport=self._transport
            )
            self._sessions[address] = session
        return session, address, key.strip("/")

    @staticmethod
    def _route(key: str) -> tuple[str, str | None]:
        """The API path of ``key`` and, for a blob, its digest."""
        match = _BLOB.match(key)
        if match is not None:
            digest = match.group(3)
            if match.group(1) != digest[:2] or match.group(2) != digest[2:4]:
                raise FileNotFoundError(f"{key!r} is not where the blob {digest} is kept")
            return f"/blobs/{digest}", digest
        if key == "blobs" or key.startswith("blobs/"):
            raise InvalidArgument(
                f"{key!r}: the server offers blobs one at a time by digest, not as folders"
            )
        return "/files/" + quote(key, safe="/=@:+,;~"), None

    # --- reading ----------------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        session, address, key = self._split(path)
        self._route(key)  # refuses blob folders
        try:
            found = session.call("GET", "/files", params={"prefix": key})
        except NotFound as exc:
            raise FileNotFoundError(path) from exc
        entries = [
            {"name": f"{address}/{e['name']}", "size": e["size"], "type": e["type"]} for e in found
        ]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        session, address, key = self._split(path)
        name = f"{address}/{key}" if key else address
        if not key:
            return {"name": name, "size": 0, "type": "directory"}
        route, digest = self._route(key)
        try:
            response = session.send("HEAD", route)
        except NotFound:
            if digest is None:
                # Folders are not files: one is there when something is stored under it.
                try:
                    if self.ls(path, detail=False):
                        return {"name": name, "size": 0, "type": "directory"}
                except (FileNotFoundError, InvalidArgument):
                    pass
            raise FileNotFoundError(path) from None
        return {"name": name, "size": int(response.headers["content-length"]), "type": "file"}

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        session, _, key = self._split(path)
        route, _ = self._route(key)
        headers = {}
        if start is not None or end is not None:
            # Negative offsets count from the end, as Python slices do.
            negative = any(v is not None and v < 0 for v in (start, end))
            size = int(self.info(path)["size"]) if negative else 0
            first = max(0, size + start) if start is not None and start < 0 else (start or 0)
            if end is None:
                headers["range"] = f"bytes={first}-"
            else:
                last = size + end if end < 0 else end
                if last <= first:
                    return b""
                headers["range"] = f"bytes={first}-{last - 1}"
        try:
            with session.http.stream("GET", route, headers=headers) as response:
                if response.status_code == 416:
                    return b""  # a range that starts at or past the end: nothing to read
                if response.status_code == 404:
                    raise FileNotFoundError(path)
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response, session.base_url)
                data: bytes = response.read()
                return data
        except httpx.HTTPError as exc:
            where = session.base_url
            raise ServerError(f"cannot reach the Segue server at {where}: {exc}") from exc

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SegueFile:
        if mode not in ("rb", "wb"):
            raise ValueError(f"{path!r}: mode {mode!r} is not supported (rb or wb)")
        # Reads need no fsspec cache: SegueFile streams sequential reads from one GET.
        cache_type = "none" if mode == "rb" else "readahead"
        return SegueFile(self, path, mode, block_size or "default", autocommit, cache_type)

    # --- writing ----------------------------------------------------------------------------

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        """Upload the local file ``lpath`` to ``rpath`` in one streamed PUT."""
        if os.path.isdir(lpath):
            return  # folders exist by what is stored under them
        with open(lpath, "rb") as source:
            self._upload(rpath, source, os.fstat(source.fileno()).st_size)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        session, _, key = self._split(path)
        route, _ = self._route(key)
        session.send("PUT", route, content=bytes(value), headers=_octets(len(value)))

    def _upload(self, path: str, source: IO[bytes], size: int) -> None:
        session, _, key = self._split(path)
        route, _ = self._route(key)
        session.send("PUT", route, content=_read_chunks(source), headers=_octets(size))

    def rm_file(self, path: str) -> None:
        session, _, key = self._split(path)
        route, digest = self._route(key)
        if digest is not None:
            raise InvalidArgument(f"{key!r}: blobs are removed on the server, not by its clients")
        try:
            session.send("DELETE", route)
        except NotFound:
            if self.isdir(path):
                return  # a folder goes away with the last file under it
            raise FileNotFoundError(path) from None

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def missing(self, paths: list[str]) -> list[str]:
        """The paths among ``paths`` with nothing stored: blobs asked about in batches
        (``POST /blobs/missing``), other files one by one."""
        gone = []
        blobs: dict[tuple[RemoteSession, str], list[str]] = {}
        for path in paths:
            session, _, key = self._split(path)
            _, digest = self._route(key)
            if digest is None:
                if not self.exists(path):
                    gone.append(path)
            else:
                blobs.setdefault((session, digest), []).append(path)
        by_server: dict[RemoteSession, list[str]] = {}
        for session, digest in blobs:
            by_server.setdefault(session, []).append(digest)
        for session, digests in by_server.items():
            for i in range(0, len(digests), MISSING_BATCH):
                batch = digests[i : i + MISSING_BATCH]
                answer = session.call("POST", "/blobs/missing", json={"digests": batch})
                for digest in answer["missing"]:
                    gone += blobs.get((session, digest), [])
        return gone


class SegueFile(AbstractBufferedFile):
    """A file on a segue server, read with ranged GETs streamed as they arrive: sequential
    reads continue one response (asking for twice as much each time, up to 64 MiB), a seek
    starts another. Written to a local temp file, then sent in one streamed PUT when closed;
    nothing is sent if the ``with`` block fails."""

    fs: SegueFileSystem
    closed: bool
    _window: _Window | None = None
    _span = _WINDOW_MIN

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)  # fsspec asks for whole blocks, past the end of the file
        out = bytearray()
        while start < end:
            window = self._window
            if window is None or window.pos != start or window.done:
                sequential = window is not None and window.pos == start
                if window is not None:
                    window.close()
                self._span = min(2 * self._span, _WINDOW_MAX) if sequential else _WINDOW_MIN
                stop = min(self.size, start + max(end - start, self._span))
                window = self._window = _Window(self.fs, self.path, start, stop)
            piece = window.read(end - start)
            if not piece:
                break  # the file is shorter than it was when opened
            out += piece
            start += len(piece)
        return bytes(out)

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None
        super().close()

    def _initiate_upload(self) -> None:
        # Closed by commit or discard, once the PUT is sent or the write abandoned.
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115

    def _upload_chunk(self, final: bool = False) -> bool:
        self.buffer.seek(0)
        shutil.copyfileobj(self.buffer, self._spool)
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        size = self._spool.tell()
        self._spool.seek(0)
        try:
            self.fs._upload(self.path, self._spool, size)
        finally:
            self._spool.close()

    def discard(self) -> None:
        spool = getattr(self, "_spool", None)
        if spool is not None:
            spool.close()

    def __exit__(self, *exc_info: Any) -> None:
        if exc_info[0] is not None and self.mode == "wb" and not self.closed:
            self.discard()  # a write that failed half-way publishes nothing
            self.closed = True
            return
        self.close()


class _Window:
    """Bytes ``[start, end)`` of a file on a server, from one streamed ranged GET."""

    def __init__(self, fs: SegueFileSystem, path: str, start: int, end: int) -> None:
        session, _, key = fs._split(path)
        route, _ = fs._route(key)
        self.pos, self.end = start, end
        self._left = b""
        self._where = session.base_url
        self._context = session.http.stream(
            "GET", route, headers={"range": f"bytes={start}-{end - 1}"}
        )
        try:
            response = self._context.__enter__()
            if response.status_code == 404:
                raise FileNotFoundError(path)
            if response.status_code >= 400:
                response.read()
                raise_for_error(response, self._where)
        except BaseException as exc:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, httpx.HTTPError):
                raise ServerError(f"cannot reach the Segue server at {self._where}: {exc}") from exc
            raise
        self._chunks = response.iter_raw()

    @property
    def done(self) -> bool:
        return self.pos >= self.end

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes from where the last read stopped (fewer only at the end)."""
        parts, wanted = [], min(size, self.end - self.pos)
        have = 0
        try:
            while have < wanted:
                chunk = self._left or next(self._chunks, b"")
                self._left = b""
                if not chunk:
                    break
                take = chunk[: wanted - have]
                self._left = chunk[len(take) :]
                parts.append(take)
                have += len(take)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot read from the Segue server at {self._where}: {exc}") from exc
        self.pos += have
        return b"".join(parts)

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def _octets(size: int) -> dict[str, str]:
    return {"content-length": str(size), "content-type": "application/octet-stream"}


def _read_chunks(source: IO[bytes]) -> Iterator[bytes]:
    yield from iter(lambda: source.read(_CHUNK), b"")
