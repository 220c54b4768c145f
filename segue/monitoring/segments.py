"""The format of the prediction and feedback logs: day-partitioned Parquet segments.

The inference server writes them (:mod:`segue.serving.predlog`); monitoring reads them
(:mod:`segue.monitoring.readers`). Both sides share this module, which sits in monitoring so
that monitoring never imports the serving edge.

Layout under the artifact store (``SEGUE_ARTIFACT_URI``, a folder or any fsspec URL)::

    predictions/<model>/date=YYYY-MM-DD/<time_ms>-<writer_id>-<seq>.parquet
    feedback/<model>/date=YYYY-MM-DD/<time_ms>-<writer_id>-<seq>.parquet

``date`` is the UTC day of the records' ``time``; ``time_ms`` is the newest record's time in
the segment (epoch milliseconds, rounded up, zero-padded so names sort by it): every record of a
segment is at most that old, so readers skip segments that end before their window, and a tail
reads the newest segments first. Values that are not plain columns (a request's rows, its
predictions, a label) are stored as JSON text.

A segment is identified here by ``(path, time_ms)``. Names starting with ``.`` or not ending in
``.parquet`` are never read: temp files of a write in progress, or of a writer that crashed.

``segue predictions compact`` (:mod:`segue.monitoring.compaction`) merges a day's segments
into one day file, ``<time_ms>-compacted-<12 hex>.parquet`` (no writer's segment has such a
name), whose Parquet footer lists the segments it holds, in order, with their row counts
(:data:`SOURCES_KEY`). The day file is published whole before any of them is deleted, and
:func:`list_day` never returns a segment a day file lists: a reader sees each record once,
whether the compaction finished, is running, or crashed between the two steps.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import fsspec
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from segue.errors import InvalidArgument

#: Who a logged request was answered for.
ROLES = ("primary", "canary", "shadow")
PREDICTION_COLUMNS = (
    "request_id",
    "time",
    "model",
    "version",
    "role",
    "inputs",
    "outputs",
    "latency_ms",
    "status",
    "error",
)
FEEDBACK_COLUMNS = ("request_id", "label", "time")
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("time", pa.float64()),
        ("model", pa.string()),
        ("version", pa.string()),
        ("role", pa.string()),
        ("inputs", pa.string()),
        ("outputs", pa.string()),
        ("latency_ms", pa.float64()),
        ("status", pa.int32()),
        ("error", pa.string()),
    ]
)
FEEDBACK_SCHEMA = pa.schema(
    [("request_id", pa.string()), ("label", pa.string()), ("time", pa.float64())]
)
SUFFIX = ".parquet"
DAY_SECONDS = 86_400
#: The footer key of a day file: JSON ``[[segment name, rows], ...]`` of what it merged.
SOURCES_KEY = b"segue.sources"
_COMPACTED = re.compile(r"\d{13}-compacted-[0-9a-f]{12}\.parquet")
#: The registry's rule for model names; names become folder names, so it matters here too.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][\w.\-]{0,255}")
_WRITER_ID = re.compile(r"[^A-Za-z0-9.]+")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def segment_key(kind: str, model: str, day: int, newest: float, writer_id: str, seq: int) -> str:
    """The key of a new segment under the artifact store, e.g.
    ``predictions/churn/date=2025-06-15/1750000000000-host-12-ab12cd34-000007.parquet``."""
    newest_ms = math.ceil(newest * 1000)
    return f"{kind}/{model}/date={day_name(day)}/{newest_ms:013d}-{writer_id}-{seq:06d}{SUFFIX}"


# --- values --------------------------------------------------------------------------------


def check_model(name: Any) -> str:
    """``name`` if it is a valid model name (it becomes a folder name), else InvalidArgument."""
    if not (isinstance(name, str) and _is_model_name(name)):
        raise InvalidArgument(
            f"model name {name!r} must start with a letter or digit and contain only letters, "
            "digits, '_', '-' and '.'"
        )
    return name


@functools.lru_cache(maxsize=1024)
def _is_model_name(name: str) -> bool:
    # Checked on every record the server logs; the server answers for a handful of names.
    return _MODEL_NAME.fullmatch(name) is not None


def check_time(value: Any) -> float:
    """``value`` as finite epoch seconds, else InvalidArgument."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, (bool, str)) or not math.isfinite(seconds):
        raise InvalidArgument(f"time must be finite epoch seconds, got {value!r}")
    return seconds


def clean_writer_id(text: str) -> str:
    # '-' separates the parts of a segment name; keep the id to characters safe in any store.
    return _WRITER_ID.sub("_", text).strip("_") or "writer"


@functools.lru_cache(maxsize=64)
def day_name(day_number: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day_number)).isoformat()


def day_of(seconds: float) -> str:
    return day_name(math.floor(seconds / DAY_SECONDS))


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


#: Most bytes of text in one piece of :func:`string_column` (each piece holds the GIL).
STRING_CHUNK_BYTES = 4 << 20


def string_column(texts: Sequence[bytes], *, utf8_checked: bool = False) -> pa.ChunkedArray:
    """UTF-8 texts (such as orjson's output) as an Arrow string column, built from one buffer
    and offsets per piece of at most :data:`STRING_CHUNK_BYTES` (and a text always whole).

    Arrow checks that the texts are UTF-8, unless ``utf8_checked`` says every one of them is
    already known to be: written by orjson, or a body orjson parsed (it refuses bytes that
    are not UTF-8). The check read every byte once more while holding the GIL."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    ends = np.cumsum(lengths)
    chunks: list[pa.Array] = []
    start = 0
    while start < len(texts) or not chunks:
        # A piece ends with the first text that brings it to STRING_CHUNK_BYTES, or the last.
        before = int(ends[start - 1]) if start else 0
        stop = int(np.searchsorted(ends, before + STRING_CHUNK_BYTES)) + 1
        chunks.append(_strings(texts[start:stop], lengths[start:stop], utf8_checked))
        start = stop
    return pa.chunked_array(chunks, type=pa.string())


def _strings(texts: Sequence[bytes], lengths: np.ndarray, utf8_checked: bool) -> pa.Array:
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError(f"a text of {offsets[-1]:,} bytes is past Arrow's 2 GiB string limit")
    data = pa.py_buffer(b"".join(texts))
    array = pa.StringArray.from_buffers(len(texts), pa.py_buffer(offsets.astype(np.int32)), data)
    # The offsets are a checked cumulative sum; the UTF-8 is read by Arrow unless known.
    array.validate(full=not utf8_checked)
    return array


def to_json(value: Any) -> str:
    """JSON text for any value a request or a model may hold (NumPy, timestamps, NaN -> null)."""
    try:
        return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        # What orjson refuses (ints beyond 64 bits, nesting too deep) the stdlib still writes.
        try:
            return json.dumps(value, default=str, allow_nan=False)
        except ValueError:
            return orjson.dumps(str(value)).decode()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars that orjson does not take
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if type(value).__name__ == "NAType":  # pandas.NA
        return None
    return str(value)


def decode_json(texts: list[str | None]) -> pd.Series:
    """The values of JSON texts (None stays None), as an object Series."""
    loads = orjson.loads
    return pd.Series([None if text is None else loads(text) for text in texts], dtype=object)


def split_inputs(value: Any) -> tuple[list[Any], list[Any]] | None:
    """The ``(columns, rows)`` of inputs logged as MLflow's ``dataframe_split`` body,
    ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` (how the server logs a
    request of one numeric block), else None."""
    if type(value) is dict and len(value) == 1:
        split = value.get("dataframe_split")
        if type(split) is dict and len(split) == 2:
            columns, data = split.get("columns"), split.get("data")
            if type(columns) is list and type(data) is list:
                return columns, data
    return None


def input_records(value: Any) -> Any:
    """Logged inputs as records: the ``dataframe_split`` shape becomes one object per row
    (see :func:`split_inputs`); any other value is returned as it is."""
    split = split_inputs(value)
    if split is None:
        return value
    columns, data = split
    return [dict(zip(columns, row, strict=False)) for row in data]


def decode_inputs(texts: list[str | None]) -> pd.Series:
    """:func:`decode_json` for the ``inputs`` column: each request's rows as records."""
    loads = orjson.loads
    return pd.Series(
        [None if text is None else input_records(loads(text)) for text in texts], dtype=object
    )


# --- listing and reading ------------------------------------------------------------------


def filesystem(artifact_uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(artifact_uri)
    return fs, root.rstrip("/")


def _list(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    # Object-store filesystems cache listings; a follower must see new segments.
    fs.invalidate_cache(path)
    try:
        return sorted(fs.ls(path, detail=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_days(fs: fsspec.AbstractFileSystem, base: str) -> list[tuple[str, str]]:
    """``(YYYY-MM-DD, path)`` of each day partition under ``base``, oldest first."""
    found = []
    for path in _list(fs, base):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith("date="):
            found.append((name[5:], path))
    return sorted(found)


def list_day(fs: fsspec.AbstractFileSystem, day_path: str) -> list[tuple[str, int]]:
    """The published segments of one day as ``(path, newest record's epoch ms)``, leaving out
    those a day file holds already (see :func:`sources_of`).

    Raises:
        FileNotFoundError: a day file listed here was deleted before its footer was read (a
            compaction replaced it meanwhile): list again.
    """
    found = published(fs, day_path)
    held = {name for path, _ in found if is_compacted(path) for name, _ in sources_of(fs, path)}
    if not held:
        return found
    return [segment for segment in found if segment[0].rsplit("/", 1)[-1] not in held]


def published(fs: fsspec.AbstractFileSystem, day_path: str) -> list[tuple[str, int]]:
    """Every published segment of one day, day files and the segments they hold included."""
    found = []
    for path in _list(fs, day_path):
        name = path.rsplit("/", 1)[-1]
        # Temp files of a write in progress (or of a writer that crashed) end otherwise.
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue
        head = name.split("-", 1)[0]
        found.append((path, int(head) if head.isdigit() else 2**62))
    return found


def is_compacted(path: str) -> bool:
    """Whether ``path`` is a day file written by a compaction."""
    return _COMPACTED.fullmatch(path.rsplit("/", 1)[-1]) is not None


def compacted_name(newest_ms: int, token: str) -> str:
    """The name of a day file whose newest record is at ``newest_ms`` (``token``: 12 hex)."""
    return f"{newest_ms:013d}-compacted-{token}{SUFFIX}"


#: Day files never change once published (each has a name of its own): footers read once.
_SOURCES: dict[str, tuple[tuple[str, int], ...]] = {}
_SOURCES_KEPT = 4096


def sources_of(fs: fsspec.AbstractFileSystem, path: str) -> tuple[tuple[str, int], ...]:
    """``(segment name, rows)`` of the segments the day file ``path`` merged, in the order
    its rows hold them (read from its footer once per process)."""
    cached = _SOURCES.get(path)
    if cached is not None:
        return cached
    with fs.open(path, "rb") as f:
        metadata = pq.ParquetFile(f).metadata.metadata or {}
    listed = orjson.loads(metadata.get(SOURCES_KEY, b"[]"))
    sources = tuple((str(name), int(rows)) for name, rows in listed)
    if len(_SOURCES) >= _SOURCES_KEPT:
        _SOURCES.clear()
    _SOURCES[path] = sources
    return sources


def segments_in_window(
    fs: fsspec.AbstractFileSystem, base: str, start: float | None, end: float | None
) -> list[tuple[str, int]]:
    """Segments under ``base`` that may hold records with ``start <= time < end``, oldest
    first: only the window's day partitions are listed."""
    first = day_of(start) if start is not None else ""
    last = day_of(end) if end is not None else "~"
    found = []
    for day, path in list_days(fs, base):
        if first <= day <= last:
            found += [s for s in list_day(fs, path) if start is None or (s[1] + 1) / 1000 >= start]
    return sorted(found, key=newest_key)


def newest_first(fs: fsspec.AbstractFileSystem, base: str) -> Iterator[tuple[str, int]]:
    """Segments under ``base`` by newest record, newest first, listing days as needed."""
    for _, path in reversed(list_days(fs, base)):
        yield from sorted(list_day(fs, path), key=newest_key, reverse=True)


def recent_segments(fs: fsspec.AbstractFileSystem, base: str) -> list[tuple[str, int]]:
    """Segments of the two newest days: where new segments appear, even around midnight."""
    return [s for _, path in list_days(fs, base)[-2:] for s in list_day(fs, path)]


def newest_key(segment: tuple[str, int]) -> tuple[int, str]:
    return segment[1], segment[0]


def read_segments(
    fs: fsspec.AbstractFileSystem,
    files: list[str],
    schema: pa.Schema,
    where: Any,
    columns: list[str] | None = None,
) -> pa.Table:
    """The rows of ``files`` matching the pyarrow expression ``where`` (None: all); only
    ``columns`` if given (``"__filename"``: the segment each row came from)."""
    # Imported here: an inference server writes segments and seldom reads them (7 MB).
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    if not files:
        if columns is None:
            return schema.empty_table()
        fields = [
            pa.field(c, pa.string()) if c == "__filename" else schema.field(c) for c in columns
        ]
        return pa.schema(fields).empty_table()
    if isinstance(fs, LocalFileSystem):
        arrow_fs: Any = pafs.LocalFileSystem()  # native: faster than through fsspec
    else:
        arrow_fs = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=arrow_fs)
    return dataset.to_table(columns=columns, filter=where)


def time_window(start: float | None, end: float | None) -> Any:
    """A pyarrow filter for ``start <= time < end`` (None: no bound; no bounds: None)."""
    import pyarrow.dataset as ds

    where = None
    if start is not None:
        where = ds.field("time") >= float(start)
    if end is not None:
        where = both(where, ds.field("time") < float(end))
    return where


def both(left: Any, right: Any) -> Any:
    return right if left is None else left & right


def by_time(table: pa.Table) -> pa.Table:
    """``table`` sorted by time (stable); segments are usually in order already, and
    checking is far cheaper than moving every string."""
    order = pc.sort_indices(table.column("time")).to_numpy()
    if np.array_equal(order, np.arange(len(order))):
        return table
    return table.take(order)
