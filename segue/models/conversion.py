"""Turning an accepted input into the columns a model expects, when validation's fast path does
not apply: records, a dict of columns, rows or a 2-D array are read into columns, and each column
is converted to its signature dtype (safe widening, ISO 8601 strings to datetimes, ...) or
refused with a message naming the column and what is wrong.

Used by :func:`segue.models.validation.validate_input`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from segue.errors import InvalidArgument
from segue.models.specs import (
    _OBJECT,
    _OBJECT_KINDS,
    ColumnSpec,
    _canonical,
    _describe_objects,
    dtype_family,
)

_INPUTS = (
    "a DataFrame, records (a list of dicts), a dict of columns, one record (a dict) "
    "or a 2-D NumPy array"
)
_MISSING_ROWS_SHOWN = 10


# --- casting rules -------------------------------------------------------------------------


def _may_cast(got: str, want: str, *, narrow_ints: bool = False) -> bool:
    """Whether a column of dtype ``got`` may be given where the signature says ``want``."""
    if got == want:
        return True
    have, need = dtype_family(got), dtype_family(want)
    if need == "float":
        return have in ("int", "float")
    if need == "int":
        return have == "int" and (narrow_ints or np.can_cast(got, want, "safe"))
    if need == "category":
        # Categories are labels: strings, or ints and bools as JSON carries them.
        return have in ("category", "string", "int", "bool")
    if need in ("datetime", "datetime_tz"):
        return have in (need, "string")
    return have == need == "timedelta"


def _masked(dtype: str) -> str:
    """The pandas nullable dtype holding ``dtype`` values with missing ones (int64 -> Int64)."""
    if dtype == "bool":
        return "boolean"
    return dtype.replace("uint", "UInt") if dtype.startswith("u") else dtype.replace("int", "Int")


# --- reading inputs ------------------------------------------------------------------------


def _read_columns(data: Any, names: list[str]) -> tuple[dict, list[str], int, pd.Index | None]:
    """Split any accepted input into ``(arrays by name, extra names, row count, index)``."""
    if isinstance(data, pd.DataFrame):
        return _frame_columns(data, names)
    if isinstance(data, np.ndarray):
        if data.dtype.names is not None and data.ndim == 1:
            return _frame_columns(pd.DataFrame(data), names)
        if data.ndim != 2 or data.dtype.names is not None:
            raise InvalidArgument(
                f"input: expected a 2-D array with {len(names)} columns, got a {data.ndim}-D "
                f"{'structured ' if data.dtype.names else ''}array of shape {data.shape}; "
                "for one row use x.reshape(1, -1)"
            )
        if data.shape[1] != len(names):
            raise InvalidArgument(
                f"input: the array has {data.shape[1]} columns, the model takes {len(names)} "
                f"({', '.join(map(repr, names))})"
            )
        return {name: data[:, i] for i, name in enumerate(names)}, [], data.shape[0], None
    if isinstance(data, Mapping):
        if _is_column_dict(data):
            return _dict_columns(data, names)
        return _record_columns([data], names)
    if isinstance(data, list):
        if all(isinstance(item, Mapping) for item in data):
            return _record_columns(data, names)
        if all(isinstance(item, (list, tuple)) for item in data):
            return _row_columns(data, names)
        raise InvalidArgument(
            f"input: a list must hold records (dicts) or rows (lists of {len(names)} values)"
        )
    raise InvalidArgument(f"input: expected {_INPUTS}, got {type(data).__name__}")


def _is_column_dict(data: Mapping) -> bool:
    return bool(data) and all(
        isinstance(value, (list, tuple, np.ndarray, pd.Series)) for value in data.values()
    )


def _frame_columns(df: pd.DataFrame, names: list[str]) -> tuple[dict, list[str], int, pd.Index]:
    wanted = set(names)
    columns: dict[str, Any] = {}
    extras = []
    for label, column in df.items():
        name = str(label)
        if name in columns:
            raise InvalidArgument(f"input: column {name!r} appears more than once")
        if name in wanted:
            columns[name] = column.array
        else:
            extras.append(name)
    return columns, extras, len(df), df.index


def _dict_columns(data: Mapping, names: list[str]) -> tuple[dict, list[str], int, None]:
    wanted = set(names)
    columns: dict[str, Any] = {}
    extras = []
    lengths = set()
    for key, value in data.items():
        name = str(key)
        if isinstance(value, np.ndarray) and value.ndim != 1:
            raise InvalidArgument(f"input: column {name!r} is a {value.ndim}-D array; expected 1-D")
        lengths.add(len(value))
        if name not in wanted:
            extras.append(name)
        elif isinstance(value, pd.Series):
            columns[name] = value.array
        else:
            columns[name] = value if isinstance(value, np.ndarray) else _objects(value)
    if len(lengths) > 1:
        raise InvalidArgument(f"input: columns have different lengths {sorted(lengths)}")
    return columns, extras, lengths.pop(), None


def _record_columns(records: list, names: list[str]) -> tuple[dict, list[str], int, None]:
    keys: dict = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    wanted = set(names)
    extras = [str(key) for key in keys if key not in wanted]
    columns = {
        name: _objects([record.get(name) for record in records]) for name in names if name in keys
    }
    return columns, extras, len(records), None


def _row_columns(rows: list, names: list[str]) -> tuple[dict, list[str], int, None]:
    widths = sorted({len(row) for row in rows})
    if widths != [len(names)]:
        raise InvalidArgument(
            f"input: each row must hold {len(names)} values (one per column: "
            f"{', '.join(map(repr, names))}), got rows of length {', '.join(map(str, widths))}"
        )
    columns = zip(names, zip(*rows, strict=True), strict=True)
    return {name: _objects(values) for name, values in columns}, [], len(rows), None


def _objects(values: Any) -> np.ndarray:
    # fromiter stores each value as is; np.array would unpack nested lists into dimensions.
    return np.fromiter(values, dtype=object, count=len(values))


# --- converting columns --------------------------------------------------------------------


def _conform_column(spec: ColumnSpec, values: Any) -> Any:
    """Return ``values`` as the column the model expects, or raise naming what is wrong."""
    if isinstance(values, pd.arrays.NumpyExtensionArray):
        values = values.to_numpy()
    if isinstance(values, pd.Categorical) and dtype_family(spec.dtype) != "category":
        # Judged by its values, as the server sees the same frame sent as JSON.
        values = np.asarray(values)
    if isinstance(values, np.ndarray) and values.dtype.kind in "OU":
        return _conform_objects(spec, values.astype(object, copy=False))
    got = _canonical(values.dtype)
    if got is not None and dtype_family(got) == "float" and dtype_family(spec.dtype) == "int":
        values, got = _whole_numbers(values, got)
    # Ints narrow when every value fits, as they do in JSON and records: one rule for both.
    if got is None or not _may_cast(got, spec.dtype, narrow_ints=True):
        raise _wrong_dtype(spec, got or str(values.dtype))
    mask = _missing_mask(values)
    if mask is not None:
        _check_missing(spec, mask)
    want, family = spec.dtype, dtype_family(spec.dtype)
    if family == "int" and not np.can_cast(got, want, "safe"):
        present = values if mask is None or not mask.any() else values[~mask]
        if len(present):
            _check_range(spec, present.min(), present.max())
    what = f"column {spec.name!r}"
    if family in ("int", "float", "bool"):
        if isinstance(values, np.ndarray):
            return values if got == want else _cast_numbers(values.astype, want, what)
        # Nullable (Int64, boolean, ...) or pyarrow arrays: plain NumPy unless values are missing.
        if mask is None or not mask.any():
            return _cast_numbers(values.to_numpy, want, what)
        if family == "float":
            return _cast_numbers(values.to_numpy, want, what, na_value=np.nan)
        return values.astype(_masked(want))
    if got == want:
        return values
    if family == "category":
        return pd.Categorical(values)
    return _to_time(spec, values, parse=got == "string")


def _conform_objects(spec: ColumnSpec, values: np.ndarray) -> Any:
    """Columns of Python objects (records, JSON, object DataFrames) are typed by their values."""
    kind = infer_dtype(values, skipna=True)
    if kind == "empty":  # every value is missing
        _check_missing(spec, np.ones(len(values), dtype=bool))
        dtype = object if spec.dtype == "string" else _masked_or_same(spec.dtype)
        return pd.array([None] * len(values), dtype=dtype)
    got = _OBJECT_KINDS.get(kind)
    if got == "float64" and dtype_family(spec.dtype) == "int":  # 3.0 in JSON or records
        return _conform_column(
            spec, pd.array(values, dtype="Float64").to_numpy(np.float64, na_value=np.nan)
        )
    # Python datetimes may carry a time zone or not; _to_time checks which.
    dates = got is not None and dtype_family(got) == "datetime" and "datetime" in spec.dtype
    if got is None or not (dates or _may_cast(got, spec.dtype, narrow_ints=True)):
        raise _wrong_dtype(spec, got or _describe_objects(values))
    mask = pd.isna(values)
    _check_missing(spec, mask)
    want, family = spec.dtype, dtype_family(spec.dtype)
    if family == "float":
        numbers = np.where(mask, np.nan, values) if mask.any() else values
        return _cast_numbers(numbers.astype, want, f"column {spec.name!r}")
    if family == "int":
        present = values[~mask]
        _check_range(spec, min(present), max(present))
    if family in ("int", "bool"):
        if mask.any():
            return pd.array(np.where(mask, np.array(None), values), dtype=_masked(want))
        return values.astype(want)
    if family == "string":
        return values
    if family == "category":
        return pd.Categorical(values)
    return _to_time(spec, values, parse=got == "string")


#: Floats are exact integers up to here; past it a float may be a rounded integer literal.
_SAFE_INTEGER = 2**53


def _whole_numbers(values: Any, got: str) -> tuple[Any, str]:
    """Whole floats as ints, the way the server reads 3.0 in JSON for an int column
    (``segue.serving.columns.whole``): ``(int64 values, "int64")`` when every present value is
    whole and within 2**53, else ``values`` unchanged (refused by the caller)."""
    numbers = (
        values if isinstance(values, np.ndarray) else values.to_numpy(np.float64, na_value=np.nan)
    )
    missing = np.isnan(numbers)
    present = numbers[~missing]
    # Bounds first: np.mod of an infinity warns, and an infinity is no whole number anyway.
    if not (np.all(np.abs(present) <= _SAFE_INTEGER) and np.all(np.mod(present, 1) == 0)):
        return values, got
    if missing.any():
        return pd.array(numbers, dtype="Float64").astype("Int64"), "int64"  # NaN -> NA
    return numbers.astype(np.int64), "int64"


def _check_range(spec: ColumnSpec, low: Any, high: Any) -> None:
    limits = np.iinfo(spec.dtype)
    if low < limits.min or high > limits.max:
        raise InvalidArgument(
            f"input: column {spec.name!r} has values from {low} to {high}, out of range "
            f"for {spec.dtype} ({limits.min} to {limits.max})"
        )


def _cast_numbers(cast: Any, want: str, what: str, **kwargs: Any) -> np.ndarray:
    """``cast(want)``, failing rather than turning a number too large for ``want`` into inf."""
    try:
        with np.errstate(over="raise"):
            return cast(want, **kwargs)
    except (FloatingPointError, OverflowError) as exc:
        raise InvalidArgument(f"input: {what} has values out of range for {want}") from exc


def _masked_or_same(dtype: str) -> str:
    return _masked(dtype) if dtype_family(dtype) in ("int", "bool") else dtype


def _to_time(spec: ColumnSpec, values: Any, *, parse: bool) -> Any:
    want, family = spec.dtype, dtype_family(spec.dtype)
    try:
        series = pd.Series(values, copy=False)
        if family == "timedelta":
            series = pd.to_timedelta(series)
        elif parse:
            series = pd.to_datetime(series, format="ISO8601")
        elif series.dtype == _OBJECT:
            series = pd.to_datetime(series)
        dtype = series.dtype
        aware = isinstance(dtype, pd.DatetimeTZDtype)
        naive = isinstance(dtype, np.dtype) and dtype.kind == "M"
        if (family == "datetime" and not naive) or (family == "datetime_tz" and not aware):
            raise _wrong_dtype(spec, str(dtype))
        return series.astype(want).array
    except (ValueError, TypeError, OverflowError) as exc:
        # pandas appends advice about its own arguments; the first line names the bad value.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "" if family == "timedelta" else "; give ISO 8601 strings like '2024-01-31T12:00'"
        raise InvalidArgument(
            f"input: column {spec.name!r} expected {want}, got values that do not convert "
            f"({reason}){hint}"
        ) from exc


def _missing_mask(values: Any) -> np.ndarray | None:
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind == "f":
            return np.isnan(values)
        return np.isnat(values) if kind in "mM" else None
    return np.asarray(values.isna())


def _check_missing(spec: ColumnSpec, mask: np.ndarray) -> None:
    if spec.nullable or not mask.any():
        return
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(row) for row in rows[:_MISSING_ROWS_SHOWN])
    more = len(rows) - _MISSING_ROWS_SHOWN
    shown += f" and {more} more" if more > 0 else ""
    raise InvalidArgument(
        f"input: column {spec.name!r} has missing values at row(s) {shown}; "
        "the model was trained without missing values"
    )


def _wrong_dtype(spec: ColumnSpec, got: str) -> InvalidArgument:
    return InvalidArgument(f"input: column {spec.name!r} expected {spec.dtype}, got {got}")
