"""Input validation: :func:`validate_input` checks data against a signature's inputs and returns
what the model should receive.

A DataFrame that already matches takes the fast path (:func:`_matches`): a few O(columns) checks
and one vectorised missing-value check per block of columns, returning the input object itself.
Any other input is read and converted column by column (:mod:`segue.models.conversion`). Import
the public names from :mod:`segue.models.signature`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from segue.errors import InvalidArgument
from segue.models.conversion import _cast_numbers, _conform_column, _may_cast, _read_columns
from segue.models.specs import (
    _OBJECT,
    ColumnSpec,
    Signature,
    TensorSpec,
    _canonical,
    _describe_objects,
    dtype_family,
)

__all__ = ["ColumnError", "SchemaWarning", "match_columns", "validate_input"]

#: Marks a column whose dtype is a pandas one. Not None: ``np.dtype("float64") == None`` is True.
_PANDAS_DTYPE = object()
_NO_NA = ("int", "bool")
#: What infer_dtype may say about an object column of strings, by whether it is nullable.
_STRING_KINDS = {False: ("string",), True: ("string", "empty")}


class SchemaWarning(UserWarning):
    """The input differs from the signature in a way Segue could fix (e.g. extra columns)."""


class ColumnError(InvalidArgument):
    """An input lacks a column the model needs; ``column`` names it (the field at fault)."""

    def __init__(self, message: str, column: str) -> None:
        super().__init__(message)
        self.column = column


def match_columns(names: Iterable[str], specs: Sequence[ColumnSpec]) -> list[str]:
    """Check the column names an input gives against a signature's columns.

    The one policy for columns, shared by ``load_model(...).predict`` and the inference
    server (as MLflow's pyfunc and its scoring server do): columns the signature does not
    name are ignored (returned, so the caller can say so), a column the model was trained
    with missing values in may be left out (it is then all missing), and any other column
    must be there.

    Returns the extra names, in the order given.

    Raises:
        ColumnError: naming the first signature column that is missing and not nullable.

    Example::

        >>> match_columns(["age", "id"], (ColumnSpec("age", "int64"),))
        ['id']
    """
    given = names if isinstance(names, (set, frozenset, dict)) else list(names)
    wanted = {spec.name for spec in specs}
    extras = [name for name in given if name not in wanted]
    for spec in specs:
        if not spec.nullable and spec.name not in given:
            raise ColumnError(f"missing column {spec.name!r} (expected {spec.dtype})", spec.name)
    return extras


def validate_input(data: Any, signature: Signature, *, stacklevel: int = 2) -> Any:
    """Check ``data`` against the signature's inputs and return what the model should receive.

    For column inputs: a DataFrame, records, a dict of columns, one record or a 2-D array
    (columns taken in the signature's order) becomes a DataFrame with exactly the signature's
    columns, in order. Columns are matched by :func:`match_columns`, the policy the inference
    server shares: extra columns are dropped with a :class:`SchemaWarning` (``stacklevel``
    as for :func:`warnings.warn`; 2, the default, points at the caller of this function), and
    a nullable column may be left out. A pandas ``category`` column is judged by its values,
    as the server sees them in JSON (strings for a string column). Safe widening is
    performed (int to float, small int to larger int, float32 to float64, and float64 to
    float32); ints in records or dicts may also narrow when every value fits. A DataFrame that
    already matches exactly is returned unchanged (the same object).

    Columns of Python objects (records, JSON) are typed by their values: ISO 8601 strings
    become datetimes and strings become categories where the signature says so.

    For tensor inputs: an array, nested list or DataFrame with the signature's shape (a 1-D
    input of length n for a ``(-1, n)`` signature is one row), cast as above.

    Raises:
        InvalidArgument: with a message starting ``"input: "`` for a missing column, a wrong
            dtype, missing values in a column trained without them, a wrong shape, no rows or
            an unsupported input type.

    Example::

        >>> sig = Signature((ColumnSpec("age", "float64"),))
        >>> validate_input([{"age": 31}], sig)["age"].tolist()
        [31.0]
    """
    plan = signature.__dict__.get("_plan")
    if plan is None:
        inputs = signature.inputs
        plan = _TensorPlan(inputs) if isinstance(inputs, TensorSpec) else _ColumnPlan(inputs)
        # Derived from immutable fields, so caching it on the frozen instance is safe.
        object.__setattr__(signature, "_plan", plan)
    if isinstance(plan, _TensorPlan):
        return _validate_tensor(data, plan)
    if isinstance(data, pd.DataFrame) and _matches(data, plan):
        return data
    frame, extras = _conform_columns(data, plan)
    if extras:
        names = ", ".join(repr(name) for name in extras)
        warnings.warn(
            SchemaWarning(f"input: ignoring extra column(s) {names}"), stacklevel=stacklevel
        )
    return frame


# --- column inputs -------------------------------------------------------------------------


class _ColumnPlan:
    """What the fast path compares a DataFrame against, computed once per signature."""

    def __init__(self, specs: tuple[ColumnSpec, ...]) -> None:
        self.specs = specs
        self.names = [spec.name for spec in specs]
        self.index = pd.Index(self.names)
        self.object_index = pd.Index(self.names, dtype=object)
        # Built-in NumPy dtypes are singletons, so comparing a matching frame's list is quick.
        self.dtypes = [_numpy_dtype(spec.dtype) for spec in specs]
        self.no_missing = np.array([not spec.nullable for spec in specs])
        # None when every column forbids missing values: no per-block mask to compute then.
        self.forbid = self.no_missing if not self.no_missing.all() else None
        # Ints and bools can hold no missing value in a frame that passed the dtype check, and
        # nullable columns may hold them; strings are checked for object columns of non-str.
        self.check_values = any(
            spec.dtype == "string" or (not spec.nullable and dtype_family(spec.dtype) not in _NO_NA)
            for spec in specs
        )


def _numpy_dtype(dtype: str) -> Any:
    if dtype_family(dtype) in ("string", "category", "datetime_tz"):
        return _PANDAS_DTYPE
    return np.dtype(dtype)


def _matches(df: pd.DataFrame, plan: _ColumnPlan) -> bool:
    """Whether ``df`` can go to the model as is: O(columns) checks plus vectorised NaN checks."""
    columns = df.columns
    if len(columns) != len(plan.names) or len(df.index) == 0:
        return False
    if isinstance(columns, pd.MultiIndex):
        return False
    expected = plan.object_index if columns.dtype is _OBJECT else plan.index
    # The arrays' equals is ~1 µs for pyarrow strings, Index.equals 4-13 µs; the latter is
    # only asked when the former says no (e.g. another string storage), before the slow path.
    if not (columns.array.equals(expected.array) or columns.equals(expected)):
        return False
    dtypes = _frame_dtypes(df)
    if dtypes != plan.dtypes:
        for dtype, want, spec in zip(dtypes, plan.dtypes, plan.specs, strict=True):
            if want is not _PANDAS_DTYPE:
                if dtype != want:
                    return False
            elif dtype == _OBJECT:
                if spec.dtype != "string":
                    return False  # the values are checked block by block below
            elif _canonical(dtype) != spec.dtype:
                return False
    return not plan.check_values or not _has_forbidden_values(_frame_blocks(df), plan)


def _has_forbidden_values(blocks: list, plan: _ColumnPlan) -> bool:
    """Missing values where the signature forbids them, or non-strings in an object column.

    One vectorised check per block of same-typed columns (see :func:`_frame_blocks`).
    """
    for positions, values in blocks:
        numpy = isinstance(values, np.ndarray)
        kind = values.dtype.kind
        if numpy and kind in "biu":
            continue
        forbid = None if plan.forbid is None else plan.forbid[positions]
        if numpy and kind == "O":  # only "string" columns get here
            rows = values if values.ndim == 2 else values[np.newaxis]
            for k, row in enumerate(rows):
                # skipna=False sees a missing value as a non-string: one pass checks both.
                nullable = forbid is not None and not forbid[k]
                if infer_dtype(row, skipna=nullable) not in _STRING_KINDS[nullable]:
                    return True
            continue
        if forbid is not None:
            if not forbid.any():
                continue
            if values.ndim == 2 and not forbid.all():
                values = values[forbid]
        if numpy:
            missing = np.isnan(values) if kind == "f" else np.isnat(values)
        else:
            missing = np.asarray(values.isna())
        if missing.any():
            return True
    return False


def _frame_dtypes(df: pd.DataFrame) -> list:
    # Private but stable pandas internals: DataFrame.dtypes builds a Series with an index and
    # costs 30-100 µs, most of the fast path's budget; the block manager answers in ~1 µs.
    try:
        return df._mgr.get_dtypes().tolist()
    except AttributeError:
        return df.dtypes.tolist()


def _frame_blocks(df: pd.DataFrame) -> list[tuple[slice | np.ndarray, Any]]:
    """``(column positions, 2-D values or 1-D extension array)`` for each block of ``df``.

    The positions are a slice or an integer array, either of which indexes a NumPy array.
    """
    # Same reason as _frame_dtypes: a Series per column costs ~10 µs; a block covers many.
    try:
        return [(block.mgr_locs.indexer, block.values) for block in df._mgr.blocks]
    except AttributeError:
        return _column_blocks(df)


def _column_blocks(df: pd.DataFrame) -> list[tuple[slice | np.ndarray, Any]]:
    """:func:`_frame_blocks` through public API only: one block per column."""
    columns = (df.iloc[:, i] for i in range(df.shape[1]))
    return [
        (slice(i, i + 1), c.to_numpy() if isinstance(c.dtype, np.dtype) else c.array)
        for i, c in enumerate(columns)
    ]


def _conform_columns(data: Any, plan: _ColumnPlan) -> tuple[pd.DataFrame, list[str]]:
    columns, extras, rows, index = _read_columns(data, plan.names)
    if rows == 0:
        raise InvalidArgument("input: no rows")
    try:
        match_columns(columns, plan.specs)
    except ColumnError as exc:
        raise ColumnError(f"input: {exc}", exc.column) from None
    for spec in plan.specs:
        if spec.name not in columns:  # nullable, so it may be left out: all missing
            columns[spec.name] = np.full(rows, None, dtype=object)
    arrays = [_conform_column(spec, columns[spec.name]) for spec in plan.specs]
    dtype = arrays[0].dtype
    if dtype != _OBJECT and all(type(a) is np.ndarray and a.dtype == dtype for a in arrays):
        # One 2-D block: cheaper to build than one block per column, and to_numpy() is a view.
        return pd.DataFrame(np.column_stack(arrays), columns=plan.index, index=index), extras
    return pd.DataFrame(dict(zip(plan.names, arrays, strict=True)), index=index), extras


# --- tensor inputs -------------------------------------------------------------------------


class _TensorPlan:
    def __init__(self, spec: TensorSpec) -> None:
        self.spec = spec
        self.dtype = None if spec.dtype == "string" else np.dtype(spec.dtype)
        self.shape = spec.shape


def _validate_tensor(data: Any, plan: _TensorPlan) -> np.ndarray:
    shape = plan.shape
    if (
        type(data) is np.ndarray
        and plan.dtype is not None
        and data.dtype == plan.dtype
        and data.ndim == len(shape)
        and data.size
        and all(want in (-1, got) for want, got in zip(shape, data.shape, strict=True))
    ):
        return data
    array, from_lists = _as_array(data, plan)
    if array.ndim == 1 and len(shape) == 2 and shape[1] == len(array):
        array = array.reshape(1, -1)  # one row
    if array.ndim and not array.size:
        raise InvalidArgument("input: no rows")
    if array.ndim != len(shape) or any(
        want not in (-1, got) for want, got in zip(shape, array.shape, strict=True)
    ):
        raise InvalidArgument(f"input: expected shape {shape}, got {array.shape}")
    return _cast_tensor(array, plan, from_lists)


def _as_array(data: Any, plan: _TensorPlan) -> tuple[np.ndarray, bool]:
    if isinstance(data, np.ndarray):
        return data, False
    if isinstance(data, (pd.DataFrame, pd.Series)):
        return data.to_numpy(), False
    if isinstance(data, (list, tuple)):
        try:
            # Text is kept as objects so numbers mixed into it are not turned into strings.
            return np.asarray(data, dtype=object if plan.dtype is None else None), True
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidArgument(
                "input: nested lists must be rectangular (every row the same length) and hold "
                f"{plan.spec.dtype} values"
            ) from exc
    raise InvalidArgument(
        f"input: expected a NumPy array, a (nested) list or a DataFrame of {plan.spec.dtype} "
        f"values, got {type(data).__name__}"
    )


def _cast_tensor(array: np.ndarray, plan: _TensorPlan, from_lists: bool) -> np.ndarray:
    want = plan.spec.dtype
    kind = array.dtype.kind
    if plan.dtype is None:  # strings
        if kind == "U" or (kind == "O" and infer_dtype(array.ravel(), skipna=False) == "string"):
            return array
        got = "string" if kind == "S" else _tensor_dtype_name(array)
    else:
        got = _tensor_dtype_name(array)
        if array.dtype == plan.dtype:
            return array
        if kind in "biufmM" and _may_cast(got, want, narrow_ints=from_lists):
            if from_lists and dtype_family(want) == "int" and not np.can_cast(got, want, "safe"):
                limits = np.iinfo(want)
                if array.min() < limits.min or array.max() > limits.max:
                    raise InvalidArgument(f"input: the array has values out of range for {want}")
            return _cast_numbers(array.astype, want, "the array")
        if kind == "c" and np.can_cast(array.dtype, plan.dtype, "same_kind"):
            return array.astype(want)
    raise InvalidArgument(f"input: expected {want} values, got {got}")


def _tensor_dtype_name(array: np.ndarray) -> str:
    kind = array.dtype.kind
    if kind in "US":
        return "string"
    if kind == "O":
        values = array.ravel()
        return "missing values" if pd.isna(values).any() else _describe_objects(values)
    return "bool" if kind == "b" else array.dtype.name
