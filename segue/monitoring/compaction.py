"""Compacting the prediction and feedback logs: a day's small segments merged into one file.

The inference server writes a segment per model about every second (``--log-flush-s``), so a
busy day leaves tens of thousands of small Parquet files, and every read lists and opens
them all. :func:`compact` merges the segments of each finished day into one day file
(format: :mod:`segue.monitoring.segments`) in three steps, each safe to stop after:

1. write the day file under a temp name and publish it whole (a rename, or an object
   store's atomic PUT); its footer lists every segment it merged, with its row count;
2. delete the segments it merged;
3. (next run) delete what step 2 left, before merging anything new.

Readers never return a segment a day file lists (:func:`segments.list_day`), so at any
moment, a crash included, every record is read exactly once. Segments published while a
compaction runs are not in its list and stay until the next one. Two compactions of one
model must not run at once (both would publish the same records): on a local artifact
folder a lock refuses the second (:class:`~segue.errors.Conflict`); on an object store,
run one at a time.

Example::

    >>> [d.segments for d in compact(settings().artifact_uri, "churn")]
    [86400, 86400]
"""

from __future__ import annotations

import datetime as dt
import fcntl
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from segue.artifacts.backend import FsspecBackend
from segue.errors import Conflict, InvalidArgument, NotFound
from segue.monitoring import segments

__all__ = ["KINDS", "DayCompaction", "compact"]

#: The logs compacted: a model's prediction log and its feedback (labels) log.
KINDS = {"predictions": segments.PREDICTIONS_SCHEMA, "feedback": segments.FEEDBACK_SCHEMA}
#: Rows gathered from small segments before they are written as one row group.
ROW_GROUP_ROWS = 65_536
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_STAGING_PREFIX = "segue-compact-"
#: Age after which a compaction's staging folder is taken for a crashed run's and removed.
STALE_STAGING_S = 3600.0


@dataclass(frozen=True)
class DayCompaction:
    """What compacting one day of one log did.

    Attributes:
        kind: ``predictions`` or ``feedback``.
        day: the UTC day, ``YYYY-MM-DD``.
        segments: files merged into the day file (0: the day had nothing to merge).
        records: records in the day file (all of the day's published records).
        bytes_before, bytes_after: the day's size before and after.
        file: the day file's name ("" when nothing was merged).
        finished: segments of an earlier, interrupted compaction deleted first.
    """

    kind: str
    day: str
    segments: int
    records: int
    bytes_before: int
    bytes_after: int
    file: str
    finished: int = 0


def compact(
    artifact_uri: str,
    model: str,
    *,
    day: str | None = None,
    clock: Callable[[], float] = time.time,
    remove: Callable[[str], None] | None = None,
) -> list[DayCompaction]:
    """Merge the segments of ``model``'s logs, one file per day.

    Args:
        artifact_uri: the artifact root the logs are under (``get_client().artifact_uri``).
        model: the model whose logs to compact.
        day: only this UTC day (``YYYY-MM-DD``), today's included; by default every day
            before today (UTC, on ``clock``), whose segments are all written.
        remove: deletes one file by path (default: the filesystem's); tests inject a crash.

    Returns:
        One entry per day and log looked at, oldest first (predictions, then feedback).

    Raises:
        InvalidArgument: a bad model name or day.
        NotFound: ``model`` has no log under ``artifact_uri``.
    """
    segments.check_model(model)
    if day is not None and not _is_day(day):
        raise InvalidArgument(f"--day must be a UTC date as YYYY-MM-DD, got {day!r}")
    fs, root = segments.filesystem(artifact_uri)
    delete = remove or fs.rm_file
    bases = {kind: f"{root}/{kind}/{model}" for kind in KINDS}
    if not any(fs.exists(base) for base in bases.values()):
        raise NotFound(f"model {model!r} has no prediction or feedback log in {artifact_uri}")
    backend = FsspecBackend(artifact_uri)
    today = segments.day_of(clock())
    done = []
    with _locked(backend, model):
        _clear_stale_staging(backend.staging_dir(), time.time())
        for kind, base in bases.items():
            for name, path in segments.list_days(fs, base):
                if (day is None and name < today) or name == day:
                    key = f"{kind}/{model}/date={name}"
                    done.append(_compact_day(fs, artifact_uri, key, path, kind, delete))
    return done


@contextmanager
def _locked(backend: FsspecBackend, model: str) -> Iterator[None]:
    """Hold the model's compaction lock (local artifact folders; released if we die)."""
    staging = backend.staging_dir()
    if staging is None:
        yield
        return
    path = staging / f"compact-{model}.lock"
    with open(path, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(
                f"another compaction of {model!r} is running (it holds {path}); wait for it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _clear_stale_staging(staging: Path | None, now: float) -> None:
    """Remove the day files a crashed compaction left half-written in the staging folder."""
    if staging is None:
        return
    for folder in staging.glob(f"{_STAGING_PREFIX}*"):
        if folder.is_dir() and now - folder.stat().st_mtime > STALE_STAGING_S:
            shutil.rmtree(folder, ignore_errors=True)


def _is_day(text: str) -> bool:
    if not _DAY.fullmatch(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _compact_day(
    fs: fsspec.AbstractFileSystem,
    artifact_uri: str,
    key: str,
    path: str,
    kind: str,
    delete: Callable[[str], None],
) -> DayCompaction:
    day = path.rstrip("/").rsplit("=", 1)[-1]
    live = sorted(segments.list_day(fs, path), key=segments.newest_key)
    # Step 3 of an interrupted run: the segments a day file holds that are still here.
    kept = {p for p, _ in live}
    held = [p for p, _ in segments.published(fs, path) if p not in kept]
    for leftover in held:
        delete(leftover)
    sizes = {p: int(fs.size(p)) for p, _ in live}
    if len(live) < 2:
        rows = _rows(fs, live[0][0]) if live else 0
        file = live[0][0].rsplit("/", 1)[-1] if live else ""
        total = sum(sizes.values())
        return DayCompaction(kind, day, 0, rows, total, total, file, finished=len(held))
    schema = KINDS[kind]
    newest = max(ms for _, ms in live)
    name = segments.compacted_name(newest, uuid.uuid4().hex[:12])
    backend = FsspecBackend(artifact_uri)
    staging = backend.staging_dir()  # on the artifacts' own disk: published by a rename
    with tempfile.TemporaryDirectory(prefix=_STAGING_PREFIX, dir=staging) as tmp:
        local = Path(tmp) / name
        sources = _merge(fs, [p for p, _ in live], schema, local)
        records = sum(rows for _, rows in sources)
        written = pq.read_metadata(local).num_rows
        if written != records:  # never publish a day file that lost or doubled a record
            raise AssertionError(f"{key}: wrote {written} records of {records}")
        size = local.stat().st_size
        backend.put_file(f"{key}/{name}", local, move=staging is not None)
    for source, _ in live:
        delete(source)
    return DayCompaction(
        kind, day, len(live), records, sum(sizes.values()), size, name, finished=len(held)
    )


def _merge(
    fs: fsspec.AbstractFileSystem, files: list[str], schema: pa.Schema, target: Path
) -> list[tuple[str, int]]:
    """Write the rows of ``files``, in order, to ``target``; list them in its footer."""
    sources: list[tuple[str, int]] = []
    pending: list[pa.Table] = []
    waiting = 0
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for path in files:
            table = segments.read_segments(fs, [path], schema, None)
            sources.append((path.rsplit("/", 1)[-1], table.num_rows))
            pending.append(table)
            waiting += table.num_rows
            if waiting >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                pending, waiting = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
        writer.add_key_value_metadata({segments.SOURCES_KEY: orjson.dumps(sources)})
    return sources


def _rows(fs: fsspec.AbstractFileSystem, path: str) -> int:
    with fs.open(path, "rb") as f:
        return int(pq.ParquetFile(f).metadata.num_rows)
