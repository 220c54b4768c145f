"""Batch scoring: predict over a Parquet or CSV file of any size, one chunk at a time.

Memory stays bounded by the chunk size: the input is streamed (``ParquetFile.iter_batches``,
``pandas.read_csv(chunksize=…)``) and each scored chunk is appended to the output at once.
(Parquet is decoded a row group at a time, so a file written as one huge row group costs that
row group's memory.) The
output is written under a temporary name beside the target and renamed into place at the end,
so a failed run leaves nothing half-written at the output path (and any old file untouched).

Many files (a folder or a glob, see :mod:`segue.serving.batch_inputs`) are scored one after
the other by :func:`score_files`, all or nothing: every output is written under its temporary
name first and renamed into place only once every input has been scored.
:mod:`segue.serving.ray_batch` scores the same plan on a Ray cluster, with the same functions.

Example:
    >>> model = segue.load_model("models:/churn@champion")
    >>> score_file(model, "customers.parquet", "scored.parquet", proba=True).rows
    120000
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from segue.errors import InvalidArgument
from segue.serving.batch_inputs import BatchPlan, file_format

_COUNT_BLOCK = 1 << 20
#: What a file that is not the CSV or Parquet it claims to be raises.
_UNREADABLE = (pa.ArrowInvalid, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)
#: Row numbers in a validation message count from the chunk's start; the user wants the file's.
_ROWS = re.compile(r"(?P<head>at row\(s\) )(?P<rows>\d+(?:, \d+)*)")

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class ScoreResult:
    """What :func:`score_file` or :func:`score_files` wrote: rows, where (a file, or the
    folder of the outputs), how long it took, and how many files."""

    rows: int
    output_path: Path
    seconds: float
    files: int = 1


def score_file(
    model: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    chunk_size: int = 10_000,
    proba: bool = False,
    on_progress: Progress | None = None,
) -> ScoreResult:
    """Write the rows of ``input_path`` with the model's ``prediction`` to ``output_path``.

    Args:
        model: a loaded model (``segue.load_model(...)``): ``predict``, optionally
            ``predict_proba``, and a ``signature`` whose columns are taken from each chunk.
        input_path, output_path: ``.parquet`` (or ``.pq``) or ``.csv`` files, in any
            combination; the format follows the name.
        chunk_size: rows read, scored and written at a time.
        proba: also write one ``proba_<class>`` column per class.
        on_progress: called after each chunk with (rows done, total rows or None).

    Returns:
        A :class:`ScoreResult`.

    Raises:
        InvalidArgument: an unsupported file type, a column the model needs that is missing or
            has the wrong type (naming the column and the row where its chunk starts), or
            output columns that would clash with input columns.
        OSError: the input cannot be read or the output written.
    """
    check_chunk_size(chunk_size)
    source, target = Path(input_path), Path(output_path)
    reader_format = file_format(source, "input")
    file_format(target, "output")
    started = time.perf_counter()
    total = _count_rows(source, reader_format)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path(target)
    try:
        done = score_into(model, source, temp, chunk_size, proba, on_progress, total)
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return ScoreResult(done, target, time.perf_counter() - started)


def score_files(
    model: Any,
    plan: BatchPlan,
    chunk_size: int = 10_000,
    proba: bool = False,
    on_progress: Progress | None = None,
) -> ScoreResult:
    """Score every input of ``plan`` into its output, one file after the other, all or nothing.

    Every input's columns are checked before any row is scored; the outputs are renamed into
    place only once all inputs are scored, so a failure leaves no new output behind.

    Args:
        model, chunk_size, proba: as for :func:`score_file`.
        plan: the input -> output pairs (:func:`segue.serving.batch_inputs.plan_batch`).
        on_progress: called after each chunk with (rows done, total rows of all inputs).

    Returns:
        A :class:`ScoreResult` whose ``output_path`` is ``plan.output``.

    Raises:
        InvalidArgument, OSError: as :func:`score_file`, naming the file.

    Example:
        >>> score_files(model, plan_batch("in/", "out/")).files
        12
    """
    check_chunk_size(chunk_size)
    started = time.perf_counter()
    totals = check_inputs(model, plan)
    total = sum(totals)
    done = 0
    with staged(plan) as temps:
        for (source, _), temp in zip(plan.pairs, temps, strict=True):

            def advance(rows: int, _total: int | None, before: int = done) -> None:
                if on_progress is not None:
                    on_progress(before + rows, total)

            done += score_into(model, source, temp, chunk_size, proba, advance)
    return ScoreResult(done, plan.output, time.perf_counter() - started, len(plan.pairs))


def check_chunk_size(chunk_size: int) -> None:
    """Refuse a chunk size that is not a positive number of rows."""
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise InvalidArgument(f"chunk size must be a positive number of rows, got {chunk_size!r}")


def check_inputs(model: Any, plan: BatchPlan) -> list[int]:
    """Check every input's type and columns, and the outputs' types, before scoring a row.

    Returns:
        Each input's row count (exact for Parquet; for CSV a line count, for progress only).
    """
    names = _column_names(model)
    totals = []
    for source, target in plan.pairs:
        fmt = file_format(source, "input")
        file_format(target, "output")
        totals.append(_count_rows(source, fmt))
        _check_columns(source, _read_column_names(source, fmt), names)
    return totals


@contextlib.contextmanager
def staged(plan: BatchPlan) -> Iterator[list[Path]]:
    """A temporary path beside each output of ``plan`` to score into.

    When the block ends without an error, each is renamed into place; when it fails, they are
    removed, and so is the output folder if it was made for them and is still empty.
    """
    made = plan.folder and not plan.output.exists()
    for _, target in plan.pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
    temps = [temp_path(target) for _, target in plan.pairs]
    committed = False
    try:
        yield temps
        for (_, target), temp in zip(plan.pairs, temps, strict=True):
            os.replace(temp, target)
        committed = True
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        if made and not committed:
            with contextlib.suppress(OSError):
                plan.output.rmdir()


def temp_path(target: Path) -> Path:
    """A hidden name beside ``target``, of the same type, to write it under before renaming it
    into place."""
    return target.with_name(f".{target.stem}.tmp-{uuid.uuid4().hex[:12]}{target.suffix}")


def score_into(
    model: Any,
    source: Path,
    target: Path,
    chunk_size: int,
    proba: bool,
    on_progress: Progress | None = None,
    total: int | None = None,
) -> int:
    """Score ``source`` into ``target`` (written in place: pass a temporary path), chunk by
    chunk; the formats follow the names.

    Returns:
        The rows written.
    """
    names = _column_names(model)
    done = 0
    with _writer(target, file_format(target, "output")) as write:
        for offset, chunk in _chunks(source, file_format(source, "input"), chunk_size, names):
            where = f"{source}, chunk starting at row {offset}"
            write(_score(model, chunk, names, proba, offset, where), offset)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total)
    if done == 0:
        raise InvalidArgument(f"{source}: no rows to score")
    return done


def _column_names(model: Any) -> list[str] | None:
    signature = getattr(model, "signature", None)
    return None if signature is None else signature.column_names


def _count_rows(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except pa.ArrowInvalid as exc:
            raise InvalidArgument(f"{path}: not a Parquet file ({exc})") from None
    # A newline count: exact unless quoted values hold newlines; only the progress bar uses it.
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(_COUNT_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines + (last != b"\n") - 1)


def _chunks(
    path: Path, fmt: str, chunk_size: int, names: list[str] | None
) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(row offset, chunk)`` pairs, after checking the model's columns are all there."""
    offset = 0
    try:
        if fmt == "parquet":
            reader = pq.ParquetFile(path)
            _check_columns(path, reader.schema_arrow.names, names)
            for batch in reader.iter_batches(batch_size=chunk_size):
                if batch.num_rows == 0:
                    continue
                yield offset, batch.to_pandas()
                offset += batch.num_rows
            return
        with pd.read_csv(path, chunksize=chunk_size) as chunks:
            for chunk in chunks:
                if offset == 0:
                    _check_columns(path, [str(c) for c in chunk.columns], names)
                if chunk.empty:
                    continue  # a header and no rows
                yield offset, chunk
                offset += len(chunk)
    except _UNREADABLE as exc:
        raise InvalidArgument(
            f"{path}: cannot be read as {fmt.upper()} after row {offset}: {exc}"
        ) from None


def _read_column_names(path: Path, fmt: str) -> list[str]:
    try:
        if fmt == "parquet":
            return list(pq.read_schema(path).names)
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except _UNREADABLE as exc:
        message = f"{path}: cannot be read as {fmt.upper()} after row 0: {exc}"
        raise InvalidArgument(message) from None


def _check_columns(path: Path, present: list[str], names: list[str] | None) -> None:
    missing = [name for name in names or [] if name not in set(present)]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise InvalidArgument(
            f"{path}: no column {listed}, which the model needs "
            f"(it takes {len(names or [])} columns; the file has {len(present)})"
        )


def _score(
    model: Any, chunk: pd.DataFrame, names: list[str] | None, proba: bool, offset: int, where: str
) -> pd.DataFrame:
    # Only the signature's columns go to the model: the others (ids, …) are passed through.
    features = chunk if names is None else chunk[names]
    try:
        predictions = _columns("prediction", model.predict(features), len(chunk), where)
        if proba:
            predictions.update(_probabilities(model, features))
    except InvalidArgument as exc:
        message = _ROWS.sub(lambda m: _shift_rows(m, offset), str(exc).removeprefix("input: "))
        raise InvalidArgument(f"{where}: {message}") from None
    except (ValueError, TypeError) as exc:
        # The model itself choked on these rows (sklearn raises ValueError on bad values).
        raise InvalidArgument(f"{where}: the model failed: {type(exc).__name__}: {exc}") from None
    clashes = [name for name in predictions if name in chunk.columns]
    if clashes:
        raise InvalidArgument(
            f"{where}: the input already has a column {clashes[0]!r}; rename it, the output "
            "adds one of that name"
        )
    return chunk.assign(**predictions)


def _shift_rows(match: re.Match[str], offset: int) -> str:
    rows = ", ".join(str(int(row) + offset) for row in match["rows"].split(", "))
    return f"{match['head']}{rows}"


def _probabilities(model: Any, features: pd.DataFrame) -> dict[str, Any]:
    probabilities = np.asarray(model.predict_proba(features))
    width = probabilities.shape[1] if probabilities.ndim == 2 else 0
    classes = getattr(model, "classes", None)
    if not classes or len(classes) != width:
        classes = range(width)
    return {f"proba_{c}": probabilities[:, i] for i, c in enumerate(classes)}


def _columns(name: str, values: Any, rows: int, where: str) -> dict[str, Any]:
    if isinstance(values, (pd.DataFrame, pd.Series)):
        values = values.to_numpy()
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 0 or len(array) != rows:
        raise InvalidArgument(f"{where}: the model returned {array.shape} for {rows} rows")
    if array.ndim == 1:
        return {name: array}
    return {f"{name}_{i}": array[:, i] for i in range(array.shape[1])}


@contextlib.contextmanager
def _writer(path: Path, fmt: str) -> Iterator[Callable[[pd.DataFrame, int], None]]:
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            first = [True]

            def write_csv(frame: pd.DataFrame, offset: int) -> None:
                frame.to_csv(f, header=first[0], index=False)
                first[0] = False

            yield write_csv
        return
    writer: pq.ParquetWriter | None = None

    def write_parquet(frame: pd.DataFrame, offset: int) -> None:
        nonlocal writer
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        elif not table.schema.equals(writer.schema, check_metadata=False):
            table = _conform(table, writer.schema, offset)
        writer.write_table(table)

    try:
        yield write_parquet
    finally:
        if writer is not None:
            writer.close()


def _conform(table: pa.Table, schema: pa.Schema, offset: int) -> pa.Table:
    """Cast a later chunk to the file's schema (CSV chunks infer their types one by one)."""
    for field in schema:
        column = table.column(field.name)
        if column.type == field.type:
            continue
        try:
            column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InvalidArgument(
                f"column {field.name!r} holds {column.type} values from row {offset} but "
                f"{field.type} before; a Parquet file needs one type per column (write .csv, "
                "or make the column's values uniform)"
            ) from None
    return table.cast(schema)
