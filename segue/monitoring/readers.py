"""Reading the prediction and feedback logs the inference server writes.

The logs are day-partitioned Parquet segments (format: :mod:`segue.monitoring.segments`);
the writers live in :mod:`segue.serving.predlog`. Readers list only the day partitions of their
window, skip segments that end before it and let pyarrow filter the rest.

Example:
    >>> read_predictions(settings().artifact_uri, "churn", role="primary").outputs.tolist()
    [[0]]
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa

from segue.errors import InvalidArgument
from segue.monitoring import segments
from segue.monitoring.segments import PREDICTION_COLUMNS, ROLES

__all__ = [
    "PREDICTION_COLUMNS",
    "find_requests",
    "follow_predictions",
    "read_feedback",
    "read_predictions",
    "tail_predictions",
]


def read_predictions(
    artifact_uri: str,
    model: str,
    *,
    start: float | None = None,
    end: float | None = None,
    version: str | int | None = None,
    role: str | None = None,
    decode: bool = True,
) -> pd.DataFrame:
    """The logged predictions of ``model`` with ``start <= time < end``, oldest first.

    Only the day partitions of the window are listed, segments that end before ``start`` are
    skipped, and the rest are read and filtered by pyarrow.

    Args:
        start, end: epoch seconds; None for no bound.
        version, role: keep only these.
        decode: turn the ``inputs`` and ``outputs`` JSON back into lists (the costly part of
            reading millions of rows); False leaves the JSON strings.

    Returns:
        A DataFrame with the columns of :data:`PREDICTION_COLUMNS` (empty if nothing matched).

    Example:
        >>> read_predictions(uri, "churn", start=time.time() - 3600, role="canary")
    """
    import pyarrow.dataset as ds  # only readers need it, not the server that writes the log

    segments.check_model(model)
    where = segments.time_window(start, end)
    if version is not None:
        where = segments.both(where, ds.field("version") == str(version))
    if role is not None:
        if role not in ROLES:
            raise InvalidArgument(f"role {role!r} is not one of {ROLES}")
        where = segments.both(where, ds.field("role") == role)
    fs, root = segments.filesystem(artifact_uri)

    def read() -> pa.Table:
        base = f"{root}/predictions/{model}"
        files = [path for path, _ in segments.segments_in_window(fs, base, start, end)]
        return segments.read_segments(fs, files, segments.PREDICTIONS_SCHEMA, where)

    return _predictions_frame(_relisting(read), decode)


def read_feedback(
    artifact_uri: str,
    model: str,
    *,
    start: float | None = None,
    end: float | None = None,
    decode: bool = True,
) -> pd.DataFrame:
    """The labels fed back for ``model`` with ``start <= time < end``, oldest first.

    Returns:
        A DataFrame with columns ``request_id``, ``label`` (decoded unless ``decode=False``)
        and ``time``.
    """
    segments.check_model(model)
    fs, root = segments.filesystem(artifact_uri)

    def read() -> pa.Table:
        base = f"{root}/feedback/{model}"
        files = [path for path, _ in segments.segments_in_window(fs, base, start, end)]
        where = segments.time_window(start, end)
        return segments.read_segments(fs, files, segments.FEEDBACK_SCHEMA, where)

    table = segments.by_time(_relisting(read))
    frame = table.drop_columns(["label"]).to_pandas()
    labels = table.column("label").to_pylist()
    frame.insert(
        1, "label", segments.decode_json(labels) if decode else pd.Series(labels, dtype=object)
    )
    return frame


def find_requests(
    artifact_uri: str, model: str, request_ids: Iterable[str], *, start: float | None = None
) -> dict[str, tuple[int, int, str]]:
    """``{request_id: (rows, status, version)}`` of the logged requests of ``model`` among
    ``request_ids`` (as answered to callers: shadows left out) that arrived at ``start`` or
    later; ids not logged are absent. ``version`` is the version that answered (whose
    signature says what a label of the request must be).

    Reads the ``request_id`` column of the window's segments first and the rest only of the
    segments that hold one of the ids.

    Example:
        >>> find_requests(uri, "churn", ["9f2c…"], start=time.time() - 30 * 86400)
        {'9f2c…': (5, 200, '3')}
    """
    import pyarrow.dataset as ds

    segments.check_model(model)
    wanted = sorted(set(request_ids))
    if not wanted:
        return {}
    fs, root = segments.filesystem(artifact_uri)
    where = ds.field("request_id").isin(pa.array(wanted, pa.string())) & (
        ds.field("role") != "shadow"
    )
    if start is not None:
        where = where & (ds.field("time") >= float(start))

    def read() -> pa.Table:
        base = f"{root}/predictions/{model}"
        files = [path for path, _ in segments.segments_in_window(fs, base, start, None)]
        schema = segments.PREDICTIONS_SCHEMA
        named = segments.read_segments(fs, files, schema, where, ["__filename"])
        holding = sorted(set(named.column("__filename").to_pylist()))
        columns = ["request_id", "status", "version", "inputs"]
        return segments.read_segments(fs, holding, schema, where, columns)

    table = _relisting(read)
    found: dict[str, tuple[int, int, str]] = {}
    for request_id, status, version, inputs in zip(
        table.column("request_id").to_pylist(),
        table.column("status").to_pylist(),
        table.column("version").to_pylist(),
        segments.decode_json(table.column("inputs").to_pylist()),
        strict=True,
    ):
        split = segments.split_inputs(inputs)
        if split is not None:
            inputs = split[1]
        rows = len(inputs) if isinstance(inputs, list) else 1
        found[request_id] = (rows, int(status), str(version or ""))
    return found


def tail_predictions(artifact_uri: str, model: str, n: int = 20) -> pd.DataFrame:
    """The ``n`` most recent predictions of ``model``, oldest first.

    Reads segments newest first and stops as soon as no unread segment can hold a newer record.
    """
    segments.check_model(model)
    fs, root = segments.filesystem(artifact_uri)
    base = f"{root}/predictions/{model}"
    return _relisting(lambda: _tail(fs, segments.newest_first(fs, base), n))


def follow_predictions(
    artifact_uri: str,
    model: str,
    *,
    n: int = 20,
    interval: float = 1.0,
    sleep: Callable[[float], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the ``n`` most recent predictions, then, every ``interval`` seconds, the
    records of segments published since (each batch oldest first; empty batches skipped).

    Example:
        >>> for batch in follow_predictions(uri, "churn"):
        ...     print(batch[["request_id", "outputs"]])
    """
    segments.check_model(model)
    fs, root = segments.filesystem(artifact_uri)
    base = f"{root}/predictions/{model}"

    def first() -> tuple[pd.DataFrame, set[str]]:
        recent = segments.recent_segments(fs, base)
        listed = {path for path, _ in recent}
        older = (s for s in segments.newest_first(fs, base) if s[0] not in listed)
        newest = sorted(recent, key=segments.newest_key, reverse=True)
        return _tail(fs, itertools.chain(newest, older), n), _seen(fs, recent)

    frame, seen = _relisting(first)
    yield frame
    sleep = sleep or time.sleep
    while True:
        sleep(interval)
        table, seen = _relisting(partial(_published_since, fs, base, seen))
        if table.num_rows:
            yield _predictions_frame(table, True)


def _seen(fs: fsspec.AbstractFileSystem, listed: list[tuple[str, int]]) -> set[str]:
    """The paths of ``listed`` and of the segments its day files hold (all read already)."""
    seen = {path for path, _ in listed}
    for path, _ in listed:
        if segments.is_compacted(path):
            folder = path.rsplit("/", 1)[0]
            seen.update(f"{folder}/{name}" for name, _ in segments.sources_of(fs, path))
    return seen


def _published_since(
    fs: fsspec.AbstractFileSystem, base: str, seen: set[str]
) -> tuple[pa.Table, set[str]]:
    """The records of the recent segments not in ``seen``, and what has been seen then.

    A day file that appeared holds segments already read: only the rows of those it holds
    that were not are taken from it (they are stored in the order its footer lists them).
    """
    recent = segments.recent_segments(fs, base)
    tables = []
    for path in sorted(path for path, _ in recent if path not in seen):
        table = segments.read_segments(fs, [path], segments.PREDICTIONS_SCHEMA, None)
        if segments.is_compacted(path):
            table = _unseen_rows(fs, path, table, seen)
        tables.append(table)
    found = pa.concat_tables(tables) if tables else segments.PREDICTIONS_SCHEMA.empty_table()
    return found, _seen(fs, recent)


def _unseen_rows(
    fs: fsspec.AbstractFileSystem, path: str, table: pa.Table, seen: set[str]
) -> pa.Table:
    folder = path.rsplit("/", 1)[0]
    parts = []
    start = 0
    for name, rows in segments.sources_of(fs, path):
        if f"{folder}/{name}" not in seen:
            parts.append(table.slice(start, rows))
        start += rows
    return pa.concat_tables(parts) if parts else table.schema.empty_table()


#: Times a read lists the segments again when one of them vanished while it read.
_RELISTS = 5

T = TypeVar("T")


def _relisting(read: Callable[[], T]) -> T:
    """``read()``, run again when a segment it listed is gone before it is read: a
    compaction published a day file holding it and deleted it meanwhile, so listing again
    finds its records, once, in the day file."""
    for attempt in range(_RELISTS):
        try:
            return read()
        except FileNotFoundError:
            if attempt == _RELISTS - 1:
                raise
    raise AssertionError("unreachable")


def _predictions_frame(table: pa.Table, decode: bool) -> pd.DataFrame:
    table = segments.by_time(table)
    frame = table.drop_columns(["inputs", "outputs"]).to_pandas()
    for position, name, decoder in (
        (5, "inputs", segments.decode_inputs),
        (6, "outputs", segments.decode_json),
    ):
        values = table.column(name).to_pylist()
        frame.insert(position, name, decoder(values) if decode else pd.Series(values, dtype=object))
    return frame


def _tail(
    fs: fsspec.AbstractFileSystem, newest_first: Iterable[tuple[str, int]], n: int
) -> pd.DataFrame:
    if n < 1:
        raise InvalidArgument(f"the number of records must be at least 1, got {n}")
    tables: list[pa.Table] = []
    rows = 0
    threshold = -math.inf
    for path, newest_ms in newest_first:
        # Every record of this segment and of the older ones is at most newest_ms.
        if rows >= n and (newest_ms + 1) / 1000 < threshold:
            break
        table = segments.read_segments(fs, [path], segments.PREDICTIONS_SCHEMA, None)
        tables.append(table)
        rows += table.num_rows
        if rows >= n:
            times = pa.concat_tables(tables).column("time").to_numpy()
            threshold = _nth_largest(times, n)
    table = pa.concat_tables(tables) if tables else segments.PREDICTIONS_SCHEMA.empty_table()
    table = segments.by_time(table)
    return _predictions_frame(table.slice(max(0, table.num_rows - n)), True)


def _nth_largest(values: Any, n: int) -> float:
    return float(np.partition(values, len(values) - n)[len(values) - n])
