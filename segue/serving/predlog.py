"""The prediction log's writers: every answer the inference server gives, kept as Parquet segments.

Appending a record only puts it in an in-memory buffer. A background thread writes the buffer
as one Parquet segment per model and day every ``flush_interval`` seconds (sooner when
``max_rows`` records are waiting), so a crash loses at most what arrived since the last flush
(:class:`~segue.serving.segment_log.SegmentLog`, the writer both logs share).
Labels that arrive later (``POST /feedback``) go to a :class:`FeedbackLog` of the same design.

Layout under the artifact store (``SEGUE_ARTIFACT_URI``, a folder or any fsspec URL)::

    predictions/<model>/date=YYYY-MM-DD/<time_ms>-<writer_id>-<seq>.parquet
    feedback/<model>/date=YYYY-MM-DD/<time_ms>-<writer_id>-<seq>.parquet

The segment format belongs to monitoring, which reads it (:mod:`segue.monitoring.segments`,
readers in :mod:`segue.monitoring.readers`); the server only writes. Each segment is published
atomically (a temp file renamed into place locally, one PUT on object stores): readers never
see a partial file. Writer ids differ across processes, so uvicorn workers never overwrite each
other's segments.

Example:
    >>> log = PredictionLog(settings().artifact_uri)
    >>> log.start()
    >>> log.append(PredictionRecord("r1", time.time(), "churn", "3", "primary",
    ...                             [{"age": 31}], [0], 0.4, 200))
    >>> log.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from segue.errors import InvalidArgument
from segue.monitoring import segments
from segue.monitoring.segments import ROLES
from segue.serving.inputs import EXACT_JSON, ModelInput, log_json
from segue.serving.segment_log import SegmentLog, one_key


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One request the server answered (or failed to).

    Args:
        request_id: the id the server returned to the caller (and feedback refers to).
        time: when the request arrived, epoch seconds.
        model, version: the registered model and version that answered.
        role: ``"primary"``, ``"canary"`` or ``"shadow"``.
        inputs: the request's rows, each a dict of column -> value.
        outputs: one prediction per row (empty when the request failed).
        latency_ms: time spent answering.
        status: the HTTP status sent.
        error: the error message sent, if any.

    The lists are serialized when the log is flushed, so do not change them after appending.

    Raises:
        InvalidArgument: an unknown role, a malformed model name or a non-finite time.
    """

    request_id: str
    time: float
    model: str
    version: str
    role: str
    inputs: list[dict[str, Any]]
    outputs: list[Any]
    latency_ms: float
    status: int
    error: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidArgument(f"prediction record: role {self.role!r} is not one of {ROLES}")
        segments.check_model(self.model)
        segments.check_time(self.time)


#: What the prediction log buffers for one record: a plain tuple of its columns' values
#: (see :meth:`PredictionLog.append`).
_Entry = tuple[str, float, str, str, str, Any, Any, float, int, "str | None"]


class _Answers:
    """Answered requests (:meth:`PredictionLog.append_answer`), oldest first, as one list
    per column: what the entries of those requests would hold, without a tuple each."""

    __slots__ = ("ids", "inputs", "latencies", "models", "outputs", "roles", "times", "versions")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.times: list[float] = []
        self.models: list[str] = []
        self.versions: list[str] = []
        self.roles: list[str] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.latencies: list[float] = []

    def __len__(self) -> int:
        return len(self.ids)

    def entries(self) -> list[_Entry]:
        """The same answers as the log's entries (status 200, no error)."""
        return list(zip(*self.columns(0, len(self.ids)), strict=True))

    def table(self, start: int, stop: int) -> pa.Table:
        """Rows ``start:stop`` as a segment table."""
        return _columns_table(*self.columns(start, stop))

    def columns(self, start: int, stop: int) -> tuple[list[Any], ...]:
        """Rows ``start:stop``'s values, one list per column of an entry."""
        n = stop - start
        return (
            self.ids[start:stop],
            self.times[start:stop],
            self.models[start:stop],
            self.versions[start:stop],
            self.roles[start:stop],
            self.inputs[start:stop],
            self.outputs[start:stop],
            self.latencies[start:stop],
            [200] * n,
            [None] * n,
        )


#: An item of the prediction log's flushes: one entry, or answers held as columns (always
#: the newest of a flush).
_Item = _Entry | _Answers


class PredictionLog(SegmentLog[_Item]):
    """The server's durable prediction log; see the module docs for the layout.

    Args:
        artifact_uri: the artifact store (``settings().artifact_uri``), a folder or fsspec URL.
        flush_interval: seconds between writes; a crash loses at most this much.
        max_rows: write early once this many records are waiting.
        clock: returns epoch seconds; decides when a flush is due.
        writer_id: unique per process; the default is ``hostname-pid-random``.
        max_backlog: most records held while storage is slow or failing (default
            ``max(100_000, 10 * max_rows)``); beyond it the oldest are dropped and counted in
            :attr:`dropped`.
        pause: how the writer thread waits between pieces of a large flush
            (:data:`~segue.serving.segment_log.ENCODE_PIECE`); ``time.sleep``.

    Example:
        >>> with PredictionLog("s3://bucket/segue") as log:   # start() ... close()
        ...     log.append(record)
    """

    _kind = "predictions"
    _thread_name = "segue-prediction-log"

    def _hold_apart(self) -> None:
        self._answers = _Answers()

    def append(self, record: PredictionRecord) -> None:
        """Buffer ``record`` (O(1), thread-safe, no I/O).

        Any object with the attributes of :class:`PredictionRecord` is accepted, such as the
        server's ``InferenceRecord`` (``on_prediction=log.append``): its ``inputs`` and
        ``outputs`` are then read in the writer thread, off the request path.

        What is buffered is a plain tuple of the record's values, the request's body (when
        it is the text kept) and its predictions array, not the record: the record, its
        parsed arrays and their buffers are freed as soon as the request is answered. A
        tuple of such values leaves the garbage collector's sight at the first collection,
        where a second of records kept as objects (about six per request) made each young
        collection walk tens of thousands of them: ~11 ms, every half second, at 1-row
        bodies and c=64.
        """
        self._put(
            (
                record.request_id,
                record.time,
                record.model,
                record.version,
                record.role,
                _inputs_of(record),
                _outputs_of(record),
                record.latency_ms,
                record.status,
                record.error,
            )
        )

    def append_answer(
        self,
        request_id: str,
        time: float,
        model: str,
        version: str,
        role: str,
        input: ModelInput,
        output: np.ndarray,
        latency_ms: float,
    ) -> None:
        """Buffer a request answered with ``output``, one prediction per row of ``input``
        (the server's ``on_answer`` hook): what :meth:`append` buffers for the record of such
        a request, status 200, without the record.

        The values go to one list per column (:class:`_Answers`), not into a tuple each: the
        writer thread then builds the segment's columns from those lists, without taking
        thousands of tuples apart while it holds the GIL the event loop shares. An
        :meth:`append` after answers first moves them into the buffer as entries, so a
        segment holds its records in the order they came.
        """
        raw = input.raw
        with self._lock:
            answers = self._answers
            answers.ids.append(request_id)
            answers.times.append(time)
            answers.models.append(model)
            answers.versions.append(version)
            answers.roles.append(role)
            answers.inputs.append(input if raw is None else raw)
            answers.outputs.append(output)
            answers.latencies.append(latency_ms)
            waiting = len(self._buffer) + len(answers.ids)
            if waiting >= self._buffer.maxlen:  # type: ignore[operator]  # always bounded
                self._seal_locked()  # the buffer drops (and counts) the oldest records
            full = waiting >= self._max_rows
        if full:
            self._wake.set()

    def _seal_locked(self) -> None:
        answers = self._answers
        if answers.ids:
            self._answers = _Answers()
            self._extend_locked(answers.entries())

    def _waiting_locked(self) -> int:
        return len(self._buffer) + len(self._answers.ids)

    def _drain_locked(self) -> list[_Item]:
        items = super()._drain_locked()
        if self._answers.ids:
            items.append(self._answers)
            self._answers = _Answers()
        return items

    def _groups_of(self, items: list[_Item]) -> dict[tuple[str, int], list[_Item]]:
        """As :meth:`SegmentLog._groups_of`; answers held as columns stay so when they and
        the entries before them are all of one model and day (a server's flush), and become
        entries otherwise."""
        entries, answers = _held(items)
        if answers is None:
            return super()._groups_of(items)
        key = one_key(answers.models, answers.times)
        if key is not None and (not entries or key in (self._one_group(entries) or {})):
            return {key: items}
        return super()._groups_of([*entries, *answers.entries()])

    def _encode(self, group: list[_Item]) -> pa.Table:
        entries, answers = _held(group)
        if answers is None:
            return super()._encode(group)
        tables = [super()._encode(entries)] if entries else []
        tables += self._pieces(len(answers), answers.table, after=bool(tables))
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def _count(self, group: list[_Item]) -> int:
        return sum(len(item) if type(item) is _Answers else 1 for item in group)

    def _newest(self, group: list[_Item]) -> float:
        entries, answers = _held(group)
        if answers is None:
            return super()._newest(group)
        newest = max(answers.times)
        return max(newest, super()._newest(entries)) if entries else newest

    def _requeue(self, items: list[_Item]) -> None:
        entries: list[_Item] = []
        for item in items:
            if type(item) is _Answers:
                entries.extend(item.entries())
            else:
                entries.append(item)
        super()._requeue(entries)

    #: An entry's model and time (for grouping), at C speed: called on every record a flush.
    _model_of = staticmethod(itemgetter(2))  # type: ignore[assignment]
    _time_of = staticmethod(itemgetter(1))  # type: ignore[assignment]

    def _table(self, items: list[_Item]) -> pa.Table:
        return _columns_table(*zip(*items, strict=True))


def _held(items: list[_Item]) -> tuple[list[_Item], _Answers | None]:
    """``items`` as the entries and the answers held as columns that end them, if any."""
    if items and type(items[-1]) is _Answers:
        return items[:-1], items[-1]
    return items, None


def _columns_table(
    ids: Sequence[Any],
    times: Sequence[Any],
    models: Sequence[Any],
    versions: Sequence[Any],
    roles: Sequence[Any],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    latencies: Sequence[Any],
    statuses: Sequence[Any],
    errors: Sequence[Any],
) -> pa.Table:
    """The segment table of records whose columns' values these are (entries' or answers')."""
    columns = {
        "request_id": ids,
        "time": _floats(times),
        "model": _repeated(models),
        "version": _repeated(versions),
        "role": _repeated(roles),
        "inputs": _inputs_json(inputs),
        "outputs": _outputs_column(outputs),
        "latency_ms": _floats(latencies),
        "status": statuses,
        "error": _nulls(errors),
    }
    try:  # the server's records hold these types already
        return pa.table(columns, schema=segments.PREDICTIONS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # Other records are taken as any record's values would be (a version of 3 is "3");
    # what cannot be (a status of "two hundred") fails here, and the caller drops it.
    columns.update(
        request_id=[str(x) for x in ids],
        time=[float(x) for x in times],
        version=[str(x) for x in versions],
        latency_ms=[float(x) for x in latencies],
        status=[int(x) for x in statuses],
        error=[None if x is None else str(x) for x in errors],
    )
    return pa.table(columns, schema=segments.PREDICTIONS_SCHEMA)


def _repeated(values: Sequence[Any]) -> Any:
    """A column of one string repeated (a server's model, version or role, most flushes) as
    Arrow's own repetition of it, without converting each; other values as they are."""
    try:
        one = len(set(values)) == 1
    except TypeError:  # a value that is not hashable (a version given as a list, say)
        return values
    if one and type(values[0]) is str:
        return pa.repeat(values[0], len(values))
    return values


def _nulls(values: Sequence[Any]) -> Any:
    """A column of None only (no error, a server's answered requests) as Arrow's nulls."""
    if values.count(None) == len(values):
        return pa.nulls(len(values), pa.string())
    return values


def _floats(values: Sequence[Any]) -> Any:
    """A column of Python floats (a server's times and latencies) as one NumPy array, built
    in C; other values as they are."""
    if set(map(type, values)) == {float}:
        return np.fromiter(values, dtype=np.float64, count=len(values))
    return values


def _inputs_of(record: Any) -> Any:
    """What the log keeps of a record's inputs until it writes them: the JSON text when the
    request's body is it, the request's parsed arrays (:class:`ModelInput`) otherwise, or the
    record itself when it has no arrays (its ``inputs``, read in the writer thread)."""
    given = getattr(record, "input", None)
    if isinstance(given, ModelInput):
        return given if given.raw is None else given.raw
    return record


def _outputs_of(record: Any) -> Any:
    """What the log keeps of a record's outputs until it writes them: the predictions array,
    or the record itself (its ``outputs``, read in the writer thread)."""
    output = getattr(record, "output", None)
    return output if isinstance(output, np.ndarray) else record


def _inputs_json(kept: Sequence[Any]) -> pa.ChunkedArray:
    """Each record's inputs (as :func:`_inputs_of` kept them) as JSON text, as an Arrow
    column. The server's records carry their request's arrays: those are written from the
    arrays (:func:`log_json`).

    The column is built from the UTF-8 bytes (:func:`segments.string_column`): Arrow's
    conversion of Python strings held the GIL, and so the event loop, for ~0.5 s a flush of
    a second of 100-row requests; this takes a tenth of it, in pieces."""
    if set(map(type, kept)) == {bytes}:  # the server's records of JSON bodies
        return segments.string_column(kept, utf8_checked=True)
    texts: list[bytes] = [b""] * len(kept)
    arrays: list[ModelInput] = []
    where: list[int] = []
    for i, given in enumerate(kept):
        if isinstance(given, bytes):  # the request's body, as it came
            texts[i] = given
        elif isinstance(given, ModelInput):
            arrays.append(given)
            where.append(i)
        else:
            texts[i] = segments.to_json(given.inputs).encode()
    for i, text in zip(where, log_json(arrays), strict=True):
        texts[i] = text
    # Every text is orjson's output or a request body orjson parsed: UTF-8 already.
    return segments.string_column(texts, utf8_checked=True)


def _outputs_column(kept: Sequence[Any]) -> pa.ChunkedArray:
    """Each record's outputs (as :func:`_outputs_of` kept them) as JSON text, as an Arrow
    column: cut from one text of them all when they allow it (:func:`_joined_outputs`),
    else written one by one (:func:`_outputs_json`)."""
    joined = _joined_outputs(kept)
    if joined is not None:
        return pa.chunked_array([joined], type=pa.string())
    return segments.string_column([_outputs_json(output) for output in kept], utf8_checked=True)


_COMMA = ord(",")
_OPEN = ord("[")
_CLOSE = ord("]")


def _joined_outputs(kept: Sequence[Any]) -> pa.Array | None:
    """The texts :func:`_outputs_json` writes, when every output is a 1-D array of one
    numeric or boolean dtype with at least one value (a server's predictions, one array per
    request), else None.

    orjson writes all of them as one array, ``[a,b,c,d]``; the commas between two requests'
    values become ``][`` (``[a,b][c][d]``), by NumPy, and the offsets of the texts are where
    those ``[`` land. A number holds no comma, so the commas are exactly the separators;
    their count is checked. Writing them one by one cost 0.7-2.9 us a record in the writer
    thread, holding the GIL the event loop shares; this, 0.3 us (20,000 1-row answers)."""
    if not kept or set(map(type, kept)) != {np.ndarray}:
        return None
    kinds = {(array.dtype, array.ndim) for array in kept}
    if len(kinds) != 1:
        return None
    ((dtype, ndim),) = kinds
    lengths = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept)) if ndim == 1 else None
    if dtype not in EXACT_JSON or lengths is None or not lengths.min() >= 1:
        return None
    text = orjson.dumps(np.concatenate(kept), option=orjson.OPT_SERIALIZE_NUMPY)
    commas = np.flatnonzero(np.frombuffer(text, np.uint8) == _COMMA)
    if len(commas) != int(lengths.sum()) - 1 or len(text) + len(kept) >= 2**31:
        return None
    cuts = commas[np.cumsum(lengths[:-1]) - 1]  # the commas between two requests' values
    buffer = np.frombuffer(text, np.uint8).copy()
    buffer[cuts] = _CLOSE
    buffer = np.insert(buffer, cuts + 1, _OPEN)
    offsets = np.empty(len(kept) + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:-1] = cuts + 1 + np.arange(len(cuts))
    offsets[-1] = len(buffer)
    return pa.StringArray.from_buffers(
        len(kept), pa.py_buffer(offsets), pa.py_buffer(buffer.tobytes())
    )


def _outputs_json(kept: Any) -> bytes:
    """A record's outputs (as :func:`_outputs_of` kept them) as JSON text (UTF-8); an array
    of predictions is written as it is. Bytes, for :func:`segments.string_column`: Arrow's
    conversion of Python strings cost more than writing them."""
    if isinstance(kept, np.ndarray):
        if kept.ndim and kept.dtype in EXACT_JSON:
            return orjson.dumps(np.ascontiguousarray(kept), option=orjson.OPT_SERIALIZE_NUMPY)
        return segments.to_json(kept.tolist()).encode()
    return segments.to_json(kept.outputs).encode()


class FeedbackLog(SegmentLog[tuple[str, Any, float]]):
    """Labels for earlier predictions of ``model``, buffered and written like the predictions.

    Example:
        >>> feedback = FeedbackLog(settings().artifact_uri, "churn")
        >>> feedback.start()
        >>> feedback.append("9f2c…", label=1)
    """

    _kind = "feedback"
    _thread_name = "segue-feedback-log"

    def __init__(
        self,
        artifact_uri: str,
        model: str,
        *,
        flush_interval: float = 1.0,
        max_rows: int = 10_000,
        clock: Callable[[], float] = time.time,
        writer_id: str | None = None,
        max_backlog: int | None = None,
    ) -> None:
        super().__init__(
            artifact_uri,
            flush_interval=flush_interval,
            max_rows=max_rows,
            clock=clock,
            writer_id=writer_id,
            max_backlog=max_backlog,
        )
        self.model = segments.check_model(model)

    def append(self, request_id: str, label: Any, time: float | None = None) -> None:
        """Buffer the true ``label`` of request ``request_id`` (``time`` defaults to now)."""
        when = self._clock() if time is None else segments.check_time(time)
        self._put((request_id, label, when))

    def _model_of(self, item: tuple[str, Any, float]) -> str:
        return self.model

    def _time_of(self, item: tuple[str, Any, float]) -> float:
        return item[2]

    def _table(self, items: list[tuple[str, Any, float]]) -> pa.Table:
        columns = {
            "request_id": [str(request_id) for request_id, _, _ in items],
            "label": [segments.to_json(label) for _, label, _ in items],
            "time": [float(when) for _, _, when in items],
        }
        return pa.table(columns, schema=segments.FEEDBACK_SCHEMA)
