"""The artifacts browser's pure parts: folder listings, what a file is, and its preview.

Nothing here reads the artifact store: routes hand in manifest entries and the first bytes of
a blob. How a file is shown follows from its name (:func:`kind`); what the raw route answers
with follows from it too (:func:`raw_headers`): only types a browser cannot run are served as
themselves, HTML and SVG come with a ``sandbox`` Content-Security-Policy, and anything else is
``application/octet-stream``, which no browser renders or runs.

Example::

    >>> folders, files = listing(store.list_artifacts(run_id, "model/"), "model/")
    >>> kind("plots/loss.png"), kind("report.html")
    ('image', 'html')
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal
from urllib.parse import quote

from segue.errors import InvalidArgument
from segue.store.entities import ArtifactEntry
from segue.tracking import validation

__all__ = [
    "CSV_ROWS",
    "HEAD_BYTES",
    "PARQUET_GROUP_BYTES",
    "Folder",
    "Kind",
    "Table",
    "csv_head",
    "folder_prefix",
    "is_active",
    "kind",
    "listing",
    "looks_binary",
    "media_type",
    "parquet_head",
    "path_crumbs",
    "pretty_json",
    "raw_headers",
    "text_of",
]

Kind = Literal["image", "text", "json", "csv", "parquet", "html", "binary"]

#: The most bytes a preview reads from the start of a file.
HEAD_BYTES = 512 * 1024
#: Rows of a CSV or Parquet file a preview shows.
CSV_ROWS = 50
#: The largest first row group of a Parquet file a preview reads.
PARQUET_GROUP_BYTES = 64 * 1024 * 1024

_IMAGES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "avif": "image/avif",
    "ico": "image/x-icon",
    "svg": "image/svg+xml",
}
_TEXT = {
    "txt", "log", "md", "rst", "py", "yaml", "yml", "toml", "cfg", "ini", "sh", "r", "sql",
    "ipynb", "jsonl", "ndjson", "xml", "js", "ts", "css", "out", "err", "tex", "diff", "patch",
}  # fmt: skip
_ACTIVE = ("html", "image/svg+xml")
#: Raw answers can run nothing and load nothing, even opened on their own.
_SANDBOX = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Folder:
    """A folder of a listing: its name, its path (ending in ``/``), files and bytes inside."""

    name: str
    path: str
    files: int
    size: int


@dataclass(frozen=True)
class Table:
    """The head of a CSV file: column names and rows of cell text."""

    columns: list[str]
    rows: list[list[str]]


def folder_prefix(text: str | None) -> str:
    """The folder a ``?path=`` names, as a prefix (``""`` or ``"a/b/"``).

    Raises:
        InvalidArgument: for an absolute path, ``..``, ``.`` or empty parts, control
            characters or backslashes.
    """
    if not text:
        return ""
    return validation.artifact_path(text.removesuffix("/")) + "/"


def listing(
    entries: Sequence[ArtifactEntry], prefix: str
) -> tuple[list[Folder], list[ArtifactEntry]]:
    """What is directly in the folder ``prefix``: its sub-folders (with the count and size of
    the files anywhere below them), then its files, each by name."""
    folders: dict[str, list[int]] = {}
    files = []
    for entry in entries:
        if not entry.path.startswith(prefix):
            continue
        rest = entry.path[len(prefix) :]
        name, slash, _ = rest.partition("/")
        if slash:
            totals = folders.setdefault(name, [0, 0])
            totals[0] += 1
            totals[1] += entry.size
        else:
            files.append(entry)
    shown = [Folder(n, f"{prefix}{n}/", c, s) for n, (c, s) in sorted(folders.items())]
    return shown, sorted(files, key=lambda e: e.path)


def path_crumbs(path: str) -> list[tuple[str, str]]:
    """The folders on the way to ``path``: (name, folder prefix) for each."""
    parts = path.strip("/").split("/")[:-1] if path else []
    return [(part, "/".join(parts[: i + 1]) + "/") for i, part in enumerate(parts)]


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def kind(path: str) -> Kind:
    """How the preview shows the file at ``path``, by its extension."""
    ext = _extension(path)
    if ext in _IMAGES:
        return "image"
    if ext in ("html", "htm"):
        return "html"
    if ext == "json":
        return "json"
    if ext in ("csv", "tsv"):
        return "csv"
    if ext == "parquet":
        return "parquet"
    if ext in _TEXT:
        return "text"
    return "binary"


def media_type(path: str) -> str:
    """The Content-Type the raw route serves ``path`` with: real types for images, HTML and
    text a browser only displays; ``application/octet-stream`` for the rest."""
    ext = _extension(path)
    shown = kind(path)
    if shown == "image":
        return _IMAGES[ext]
    if shown == "html":
        return "text/html; charset=utf-8"
    if shown == "json":
        return "application/json"
    if shown == "csv":
        return "text/csv; charset=utf-8"
    if shown == "text":
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def raw_headers(path: str, size: int, digest: str, *, download: bool) -> dict[str, str]:
    """Headers of the raw route's answer: type, length, digest, disposition and a sandbox."""
    name = path.rsplit("/", 1)[-1]
    fallback = _UNSAFE_NAME.sub("_", name) or "artifact"
    disposition = "attachment" if download else "inline"
    return {
        "content-type": media_type(path),
        "content-length": str(size),
        "content-disposition": f'{disposition}; filename="{fallback}"; '
        f"filename*=UTF-8''{quote(name, safe='')}",
        "content-security-policy": _SANDBOX,
        "x-content-type-options": "nosniff",
        "x-segue-sha256": digest,
        # A path may be logged again with other bytes: revalidate, by the digest, every time.
        "etag": f'"{digest}"',
        "cache-control": "private, no-cache",
    }


def is_active(path: str) -> bool:
    """Whether a browser would run something in the file (HTML, SVG) if it were let."""
    return any(a in media_type(path) for a in _ACTIVE)


# -- previews ----------------------------------------------------------------------------------


def looks_binary(head: bytes) -> bool:
    """Whether the first bytes of a file look like anything but text (a NUL byte)."""
    return b"\x00" in head[:8192]


def text_of(head: bytes, *, truncated: bool) -> str:
    """Bytes as text (UTF-8; bad bytes replaced); a cut multi-byte character at the end of a
    truncated head is dropped rather than shown as garbage."""
    text = head.decode("utf-8", errors="replace")
    if truncated and text.endswith("\ufffd"):
        text = text.rstrip("\ufffd")
    return text


def pretty_json(data: bytes) -> str | None:
    """The JSON document indented by two spaces, or None if it does not parse."""
    try:
        value: Any = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return json.dumps(value, indent=2, ensure_ascii=False)


def csv_head(head: bytes, *, tab: bool = False, rows: int = CSV_ROWS) -> Table:
    """The first ``rows`` rows of a CSV (or TSV) file from its first bytes, as text cells.

    Raises:
        InvalidArgument: when pandas cannot parse it (the message says why).
    """
    import pandas as pd

    if len(head) >= HEAD_BYTES:  # a cut last line would be a wrong row
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        frame = pd.read_csv(
            io.BytesIO(head),
            sep="\t" if tab else ",",
            nrows=rows,
            dtype=str,
            keep_default_na=False,
            encoding_errors="replace",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise InvalidArgument(f"not a CSV file pandas can read: {exc}") from None
    return Table([str(c) for c in frame.columns], frame.astype(str).values.tolist())


def parquet_head(file: BinaryIO, *, rows: int = CSV_ROWS) -> Table:
    """The first ``rows`` rows of the Parquet file open as ``file`` (seekable): its footer and
    first row group are read, nothing more.

    Raises:
        InvalidArgument: when it is no Parquet file, or its first row group is larger than
            :data:`PARQUET_GROUP_BYTES` (too much to read for a preview).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
        meta = parquet.metadata
        if meta.num_row_groups and meta.row_group(0).total_byte_size > PARQUET_GROUP_BYTES:
            raise InvalidArgument("its first row group is too large to preview; download it")
        batch = next(parquet.iter_batches(batch_size=rows), None)
    except pa.ArrowException as exc:
        raise InvalidArgument(f"not a Parquet file pyarrow can read: {exc}") from None
    names = [str(name) for name in parquet.schema_arrow.names]
    if batch is None:
        return Table(names, [])
    columns = [[_cell(v) for v in column.to_pylist()] for column in batch.columns]
    return Table(names, [list(row) for row in zip(*columns, strict=True)])


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
