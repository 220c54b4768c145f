"""A run's artifacts: folder listings, a preview page per file, and the raw bytes.

- ``/runs/{run_id}/artifacts?path=dir/``: what is in a folder (folders first, sizes, hashes);
- ``/runs/{run_id}/artifacts/{path}``: a file's preview — images inline, text, JSON
  pretty-printed, the head of a CSV file as a table, HTML in a sandboxed frame — read from the
  first :data:`~segue.server.ui.previews.HEAD_BYTES` bytes only;
- ``/runs/{run_id}/raw/{path}``: the bytes, streamed and checked against their sha256 on the
  way (the last chunk is held back until the hash matches, so a corrupted blob never arrives
  whole), with a ``sandbox`` Content-Security-Policy so an artifact never runs script on
  this server's origin.

Artifact paths are names in the run's manifest, looked up exactly; a path with ``..``, ``.``
or empty parts, or an absolute one, is refused (422) before anything is looked up.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from segue.artifacts.cas import blob_key
from segue.errors import IntegrityError, InvalidArgument, NotFound
from segue.server.app import server_state
from segue.server.state import ServerState
from segue.server.ui import previews
from segue.server.ui.pages.run import crumbs, resolve
from segue.server.ui.render import render
from segue.store.entities import ArtifactEntry, Run
from segue.tracking import validation

router = APIRouter()
log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@router.get("/runs/{run_id}/artifacts")
def artifacts_page(request: Request, run_id: str, path: str = "") -> Response:
    """The files and folders directly in the folder ``path`` of the run's artifacts."""
    store = server_state(request).tracking
    prefix = previews.folder_prefix(path)
    run = store.get_run(resolve(store, run_id))
    entries = store.list_artifacts(run.id, prefix)
    if prefix and not entries:
        raise NotFound(f"run {run.id} has no artifact folder {prefix!r}")
    folders, files = previews.listing(entries, prefix)
    context = {"run": run, "prefix": prefix, "folders": folders, "files": files}
    return render(
        request,
        "artifacts.html",
        context,
        title=f"Artifacts of {run.info.name}",
        crumbs=crumbs(run, *_folder_crumbs(run, prefix)),
    )


@router.get("/runs/{run_id}/artifacts/{path:path}")
def artifact_page(request: Request, run_id: str, path: str) -> Response:
    """A preview of the artifact at ``path`` (a folder's path shows its listing)."""
    state = server_state(request)
    store = state.tracking
    validation.artifact_path(path.removesuffix("/"))  # "dir/" names a folder
    run = store.get_run(resolve(store, run_id))
    entry = _entry(state, run, path)
    if entry is None:
        return RedirectResponse(_listing_url(run, path.rstrip("/") + "/"), 303)
    context = {
        "run": run,
        "entry": entry,
        "name": path.rsplit("/", 1)[-1],
        **_preview(state, entry),
    }
    folders = _folder_crumbs(run, path)
    return render(
        request,
        "artifact.html",
        context,
        title=f"{context['name']} · {run.info.name}",
        crumbs=crumbs(run, *folders, (context["name"], None)),
    )


@router.get("/runs/{run_id}/raw/{path:path}")
def artifact_raw(request: Request, run_id: str, path: str, download: bool = False) -> Response:
    """The artifact's bytes (``?download=1``: as an attachment), verified by their sha256."""
    state = server_state(request)
    store = state.tracking
    validation.artifact_path(path)
    run = store.get_run(resolve(store, run_id))
    entry = _entry(state, run, path)
    if entry is None:
        raise NotFound(f"run {run.id} has no artifact {path!r} (it is a folder)")
    headers = previews.raw_headers(entry.path, entry.size, entry.digest, download=download)
    if request.headers.get("if-none-match") == headers["etag"]:
        return Response(status_code=304, headers={"etag": headers["etag"]})
    if entry.size <= previews.HEAD_BYTES:  # small: checked whole before a byte is sent
        data = state.content.read_bytes(entry.digest, entry.size, name=entry.path)
        return Response(data, headers=headers)
    opened = _open(state, entry)
    return StreamingResponse(_verified(opened, entry), headers=headers)


def _entry(state: ServerState, run: Run, path: str) -> ArtifactEntry | None:
    """The manifest entry at exactly ``path``; None if ``path`` is a folder.

    Raises:
        NotFound: the run has nothing at ``path``.
    """
    under = state.tracking.list_artifacts(run.id, path.rstrip("/"))
    for entry in under:
        if entry.path == path:
            return entry
    if any(e.path.startswith(path.rstrip("/") + "/") for e in under):
        return None
    raise NotFound(f"run {run.id} has no artifact {path!r}; see its artifacts page")


def _open(state: ServerState, entry: ArtifactEntry) -> BinaryIO:
    try:
        return state.content.backend.open(blob_key(entry.digest))
    except NotFound:
        raise IntegrityError(
            f"artifact {entry.path!r}: its blob sha256:{entry.digest[:12]} is missing from the "
            "artifact store"
        ) from None


def _verified(opened: BinaryIO, entry: ArtifactEntry) -> Iterator[bytes]:
    """The blob's chunks; the last one only once the whole blob hashed to the entry's digest
    (else the answer ends short of its Content-Length, which clients see as a failure)."""
    hasher, size, held = hashlib.sha256(), 0, b""
    try:
        for chunk in iter(lambda: opened.read(_CHUNK), b""):
            hasher.update(chunk)
            size += len(chunk)
            if held:
                yield held
            held = chunk
        if hasher.hexdigest() != entry.digest or size != entry.size:
            log.error("artifact %r: the blob does not match its sha256; download cut", entry.path)
            raise IntegrityError(f"artifact {entry.path!r} is corrupted (sha256 or size differ)")
        yield held
    finally:
        opened.close()


def _preview(state: ServerState, entry: ArtifactEntry) -> dict[str, Any]:
    """What the preview page shows of ``entry``: its kind and, for text-like kinds, the text
    or table read from its head (``truncated`` when the file is longer than that)."""
    kind = previews.kind(entry.path)
    shown: dict[str, Any] = {"kind": kind, "text": None, "table": None, "problem": None}
    shown["truncated"] = entry.size > previews.HEAD_BYTES
    if kind in ("image", "html", "binary"):
        return shown
    if kind == "parquet":
        try:
            with _open(state, entry) as opened:
                shown["table"] = previews.parquet_head(opened)
        except (IntegrityError, InvalidArgument) as exc:
            shown["problem"] = str(exc)
        return shown
    try:
        head = _head(state, entry)
    except IntegrityError as exc:
        return {**shown, "kind": "binary", "problem": str(exc)}
    if previews.looks_binary(head):
        return {**shown, "kind": "binary"}
    if kind == "json" and not shown["truncated"]:
        shown["text"] = previews.pretty_json(head)
    if kind == "csv":
        try:
            shown["table"] = previews.csv_head(head, tab=entry.path.lower().endswith(".tsv"))
        except InvalidArgument as exc:
            shown["problem"] = str(exc)
    if shown["text"] is None:
        shown["text"] = previews.text_of(head, truncated=shown["truncated"])
    return shown


def _head(state: ServerState, entry: ArtifactEntry) -> bytes:
    """The first :data:`HEAD_BYTES` of the artifact (all of it, verified, when it is small)."""
    if entry.size <= previews.HEAD_BYTES:
        return state.content.read_bytes(entry.digest, entry.size, name=entry.path)
    with _open(state, entry) as opened:
        return opened.read(previews.HEAD_BYTES)


def _folder_crumbs(run: Run, path: str) -> list[tuple[str, str | None]]:
    """``artifacts`` and the folders on the way to ``path`` (a folder ends in ``/``)."""
    base = f"/runs/{run.id}/artifacts"
    if not path:
        return [("artifacts", None)]
    folder = path.endswith("/")
    shown: list[tuple[str, str | None]] = [("artifacts", base)]
    for name, prefix in previews.path_crumbs(path + "x" if folder else path):
        shown.append((name, _listing_url(run, prefix)))
    if folder:
        shown[-1] = (shown[-1][0], None)
    return shown


def _listing_url(run: Run, prefix: str) -> str:
    return f"/runs/{run.id}/artifacts?{urlencode({'path': prefix})}"
