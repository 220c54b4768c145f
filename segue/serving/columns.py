"""JSON values into typed NumPy columns, checked value by value (pure, no I/O).

:class:`~segue.serving.inputs.InputSchema` groups a signature's numeric columns by dtype into
:class:`Block` s, and :func:`block_array` turns one block's rows into one 2-D array in a single
``np.array`` call, looking for the bad value only when that fails; :func:`other_column` checks
and converts a column of any other dtype (nullable integers, strings, categories, times). Every
problem raises :class:`RequestError` (422) naming the column and the row.
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
import threading
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import numpy as np

from segue.errors import InvalidArgument
from segue.models.signature import ColumnSpec, Signature, validate_input
from segue.models.specs import dtype_family  # the signature's own dtype families
from segue.serving.errors import RequestError, json_type

try:  # reads a body's numbers straight into C doubles; without it orjson reads every body
    import simdjson as _simdjson
except ImportError:  # pragma: no cover - a platform without its wheel
    _simdjson = None  # type: ignore[assignment]

__all__ = [
    "NUMERIC",
    "Block",
    "block_array",
    "finite_float64",
    "other_column",
    "split_float64",
    "whole",
]

_NONE = type(None)
#: The largest integer a float holds exactly (JavaScript's Number.MAX_SAFE_INTEGER + 1).
_SAFE_INTEGER = 2.0**53
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
#: Dtypes a :class:`Block` holds (with nullable columns only when float: NaN is missing).
NUMERIC = frozenset(("bool", *_INTS, "float16", "float32", "float64"))
#: Python types a JSON value may have in a column of each family (None only where nullable).
_ALLOWED = {
    "float": frozenset((float, int)),
    "int": frozenset((int,)),
    "bool": frozenset((bool,)),
    "string": frozenset((str,)),
    "category": frozenset((str, int, bool)),  # labels, as load_model(...).predict takes
    "datetime": frozenset((str,)),
    "datetime_tz": frozenset((str,)),
    "timedelta": frozenset((str,)),
}


class Block:
    """Numeric columns of one NumPy dtype, parsed together into one 2-D array."""

    def __init__(self, dtype: str, positions: list[int], specs: list[ColumnSpec]) -> None:
        self.dtype = np.dtype(dtype)
        self.family = dtype_family(dtype)
        self.positions = positions
        self.specs = specs
        self.names = [spec.name for spec in specs]
        nullable = [spec.nullable for spec in specs]
        # Only float columns stay here when nullable: NaN is their missing value.
        self.nullable = np.array(nullable) if any(nullable) else None
        self.allowed = _ALLOWED[self.family] | ({_NONE} if any(nullable) else set())
        self.getter = itemgetter(*positions) if len(positions) > 1 else None
        # Only a narrower float warns when a value overflows it (to inf, refused below);
        # ints raise OverflowError and float64 takes any JSON number. np.errstate costs
        # more than the conversion of a small request, so it is entered only when needed.
        self.quiet_overflow = self.dtype in (np.dtype("float16"), np.dtype("float32"))


_FLOAT64 = np.dtype("float64")


def block_array(block: Block, rows: list, *, no_bools: bool = False) -> np.ndarray:
    """``rows`` (one list of values per row, in the block's column order) as one 2-D array.

    ``no_bools``: no value is a bool (the caller read the body). A float64 block then skips
    the type scan of every value (as costly as the conversion itself): the rows are packed
    as doubles (:func:`finite_float64`), which takes numbers only; anything else (None, a
    string, a row of another length) takes the checked path below, which names the value.
    """
    if no_bools and block.dtype == _FLOAT64:
        fast = finite_float64(rows, len(block.positions))
        if fast is not None:
            return fast
    types = set(map(type, itertools.chain.from_iterable(rows)))
    if float in types and block.family == "int":
        rows = [[whole(v) for v in row] for row in rows]
        types = set(map(type, itertools.chain.from_iterable(rows)))
    if not types <= block.allowed:
        raise _find_bad_value(block, rows)
    try:
        if block.quiet_overflow:
            with np.errstate(over="ignore", invalid="ignore"):
                array = np.array(rows, dtype=block.dtype)
        else:
            array = np.array(rows, dtype=block.dtype)
    except (OverflowError, ValueError, TypeError):
        raise _find_bad_value(block, rows) from None
    if block.family == "float" and not np.isfinite(array).all():
        bad = ~np.isfinite(array)
        if block.nullable is not None:
            bad &= ~(np.isnan(array) & block.nullable)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            spec, value = block.specs[col], rows[row][col]
            if value is None:
                raise _null(spec, row)
            raise _out_of_range(spec, row, value)
    return array


def finite_float64(rows: list, width: int) -> np.ndarray | None:
    """``rows`` as a float64 array of ``width`` columns when they are all finite numbers,
    else None (the caller then takes the checked path, which names the bad value). JSON
    bools must be ruled out first: they would become 1.0 and 0.0.

    Each row is packed as ``width`` C doubles by one :class:`struct.Struct` call, which
    takes ints and floats only (a string, None, a list or a row of another length raise):
    33 us for 100 rows of 30, where ``np.array`` takes 90 and checks no more.
    """
    if not rows:
        return None
    try:
        packed = bytearray().join(_STARMAP(_row_packer(width), rows))
    except (struct.error, TypeError, OverflowError):  # not a number, or not `width` of them
        return None
    # The array's base is the bytearray itself (frombuffer().reshape() made a memoryview
    # the collector tracks, and took twice as long).
    array = np.ndarray((len(rows), width), _FLOAT64, packed)
    # 1e400 parses as inf. The sum of squares is finite only if every value is (an inf or a
    # NaN makes it inf or NaN), in one BLAS call: half the time of isfinite().all(). A
    # finite value past 1e154 overflows it too, and that rare request goes the checked way.
    if not _ISFINITE_SCALAR(_VDOT(array, array)):
        return None
    return array


@functools.lru_cache(maxsize=64)  # a signature's width: a few per server
def _row_packer(width: int) -> Callable[..., bytes]:
    """Packs ``width`` numbers as native doubles (joined into a bytearray, a writable
    buffer NumPy reads as float64 without a copy)."""
    return struct.Struct(f"={width}d").pack


_VDOT = np.vdot
_ISFINITE_SCALAR = math.isfinite
_STARMAP = itertools.starmap


#: simdjson's parsers, one per thread: a parser holds one document at a time, and keeps the
#: memory its largest one took.
_PARSERS = threading.local()
#: Larger bodies (up to ``--max-body-mb``) get a parser of their own, so that a thread's
#: parser never holds more than what a body this size takes.
_KEEP_PARSER_UP_TO = 1 << 20
#: Bodies this large count their brackets with NumPy (bytes.count took 7 us for 25 KB).
_COUNT_WITH_NUMPY = 4096
_ARRAY_OPEN = ord("[")


def split_float64(
    body: bytes, names: list[str], brackets: int, names_json: bytes = b""
) -> np.ndarray | None:
    """The rows of ``{"dataframe_split": {"columns": names, "data": [[...], ...]}}``, the
    whole body, as a float64 array read by simdjson straight into C doubles; None for any
    other body, or when simdjson is not installed: the caller then reads it with orjson
    and :func:`finite_float64`, which name what is wrong.

    orjson made a Python float of every number, :func:`finite_float64` packed them back into
    doubles, and the floats were freed after the request: together about 90 us of a 100-row
    body of 30 columns, holding the GIL. This takes about 40 us, and gives the same array:
    both parsers round each decimal to the nearest double, and an integer becomes the
    double ``float()`` makes of it. Taken only when the answer cannot differ:

    - no backslash in the body (no escaped key), and exactly one key at the top and two in
      the split (no key given twice, which orjson reads as the last and simdjson as the
      first), the columns being the signature's in its order;
    - every value a number that fits 64 bits (simdjson refuses ``true``, ``null``, strings,
      ``1e400`` and larger integers, which orjson's way turns into the error or the value
      it always did);
    - every row an array of ``len(names)`` values, none of them an array (simdjson flattens
      nested arrays: the body must hold exactly one ``[`` for each row, the data, the
      columns and those within the column names);
    - at least one row, and all values finite.

    ``names_json``: ``names`` as orjson writes them, if known: the columns are then compared
    as simdjson writes them back, one bytes object (0.7 us faster for 30 columns than a list
    of 30 strings), and as a list only when that differs (spaces after the commas, say).
    """
    if _simdjson is None or b"\\" in body:
        return None
    parser: Any
    if len(body) > _KEEP_PARSER_UP_TO:  # parsed by a parser of its own, freed with it
        parser = _simdjson.Parser()
    else:
        parser = getattr(_PARSERS, "parser", None)
        if parser is None:
            parser = _PARSERS.parser = _simdjson.Parser(max_capacity=_KEEP_PARSER_UP_TO)
    width = len(names)
    try:
        top = parser.parse(body)
        if type(top) is not _simdjson.Object or len(top) != 1:
            return None
        split = top["dataframe_split"]
        if type(split) is not _simdjson.Object or len(split) != 2:
            return None
        columns, data = split["columns"], split["data"]
        if type(data) is not _simdjson.Array or type(columns) is not _simdjson.Array:
            return None
        rows = len(data)
        if not rows or (columns.mini != names_json and columns.as_list() != names):
            return None
        values = data.as_buffer(of_type="d")  # its own memory, writable
        if memoryview(values).nbytes != 8 * rows * width:
            return None
        # One row holds all the values, as counted, and is an array, as the count of
        # brackets below says: only rows of several can be ragged.
        array_type = _simdjson.Array
        if rows > 1 and not all(isinstance(row, array_type) and len(row) == width for row in data):
            return None
    except RuntimeError:
        # A parser whose last document is still referenced (an exception's traceback, say)
        # cannot parse: the next request gets a new one. Also simdjson's BIGINT_ERROR.
        _PARSERS.parser = None
        return None
    except (ValueError, TypeError, KeyError, IndexError):  # not JSON, or not such a body
        return None
    found = (
        body.count(b"[")
        if len(body) < _COUNT_WITH_NUMPY
        else int(np.count_nonzero(np.frombuffer(body, np.uint8) == _ARRAY_OPEN))
    )
    if found != 2 + rows + brackets:
        return None
    # On the buffer itself, as its base (np.frombuffer left a memoryview, which the
    # collector tracks, for each request).
    array = np.ndarray((rows, width), _FLOAT64, values)
    if not _ISFINITE_SCALAR(_VDOT(array, array)):
        return None
    return array


def _find_bad_value(block: Block, rows: list) -> RequestError:
    """The error for the first value of ``rows`` that cannot go into ``block`` (slow path)."""
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            spec = block.specs[j]
            if value is None:
                if not spec.nullable:
                    return _null(spec, i)
                continue
            if type(value) not in _ALLOWED[block.family]:
                return _wrong_type(spec, i, value)
            try:
                np.array([value], dtype=block.dtype)
            except (OverflowError, ValueError, TypeError):
                return _out_of_range(spec, i, value)
    return RequestError(422, f"columns {block.names}: values do not fit {block.dtype}", None)


def _null(spec: ColumnSpec, row: int) -> RequestError:
    return RequestError(
        422,
        f"column {spec.name!r}, row {row}: null, but the model was trained without missing values",
        spec.name,
    )


def _out_of_range(spec: ColumnSpec, row: int, value: Any) -> RequestError:
    return RequestError(
        422,
        f"column {spec.name!r}, row {row}: {value!r} is out of range for {spec.dtype}",
        spec.name,
    )


def _wrong_type(spec: ColumnSpec, row: int, value: Any) -> RequestError:
    got = json_type(value)
    return RequestError(
        422, f"column {spec.name!r}, row {row}: expected {spec.dtype}, got {got}", spec.name
    )


def whole(value: Any) -> Any:
    """An integral float as an int: JSON has one number type, so 3.0 is a fine int64 value
    (as JSON Schema's "integer" says; NumPy's ``tolist()`` of a float array sends it). Only
    up to 2**53, where floats are exact: a larger one may be a rounded integer literal (the
    parser turns an integer past 64 bits into a float), so it stays a float and is refused."""
    if type(value) is float and value.is_integer() and abs(value) <= _SAFE_INTEGER:
        return int(value)
    return value


def other_column(spec: ColumnSpec, values: list) -> np.ndarray:
    """One column that is not in a block, as an object array of checked values."""
    family = dtype_family(spec.dtype)
    allowed = _ALLOWED[family] | ({_NONE} if spec.nullable else set())
    if family == "int" and float in set(map(type, values)):
        values = [whole(v) for v in values]
    if not set(map(type, values)) <= allowed:
        for i, value in enumerate(values):
            if value is None and not spec.nullable:
                raise _null(spec, i)
            if type(value) not in allowed:
                raise _wrong_type(spec, i, value)
    if family == "category" and len(set(map(type, values)) - {_NONE}) > 1:
        # One type of label per column, as load_model(...).predict requires.
        kinds = sorted({json_type(value) for value in values if value is not None})
        raise RequestError(
            422,
            f"column {spec.name!r}: labels of one type expected, got {', '.join(kinds)}",
            spec.name,
        )
    array = np.fromiter(values, dtype=object, count=len(values))
    if family == "int":
        present = [v for v in values if v is not None]
        if present:
            low, high, limits = min(present), max(present), np.iinfo(spec.dtype)
            if low < limits.min or high > limits.max:
                value = low if low < limits.min else high
                raise RequestError(
                    422,
                    f"column {spec.name!r}: {value} is out of range for {spec.dtype}",
                    spec.name,
                )
    elif family in ("datetime", "datetime_tz", "timedelta"):
        # Rare in served models: let the signature's own parser judge the text, per request.
        try:
            validate_input({spec.name: array}, Signature((spec,)))
        except InvalidArgument as exc:
            raise RequestError(422, str(exc).removeprefix("input: "), spec.name) from None
    return array
