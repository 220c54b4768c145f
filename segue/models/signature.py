"""Model signatures: what a model takes and gives, inferred from examples and enforced on input.

``run.log_model(model, input_example=X[:5])`` calls :func:`infer_signature`;
``segue.load_model(uri).predict(data)`` and the inference server call :func:`validate_input` on
every request. Its common case, a DataFrame that already matches, costs a few O(columns) checks
and one vectorised missing-value check, and returns the input object itself.

Column dtypes are canonical strings: ``"bool"``, ``"int8"`` .. ``"int64"``, ``"uint8"`` ..
``"uint64"``, ``"float16"`` .. ``"float64"``, ``"string"``, ``"category"``,
``"datetime64[<unit>]"``, ``"datetime64[<unit>, <tz>]"`` and ``"timedelta64[<unit>]"``. Tensor
dtypes are NumPy dtype names, or ``"string"`` for arrays of text.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from segue.data.frames import to_frame
from segue.errors import InvalidArgument

__all__ = [
    "ColumnSpec",
    "SchemaWarning",
    "Signature",
    "TensorSpec",
    "infer_signature",
    "validate_input",
]

_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_NUMBERS = frozenset(("bool", *_INTS, "float16", "float32", "float64"))
_TIME = re.compile(r"(datetime64|timedelta64)\[(s|ms|us|ns)\]|datetime64\[(s|ms|us|ns), [^\]]+\]")
_INPUTS = (
    "a DataFrame, records (a list of dicts), a dict of columns, one record (a dict) "
    "or a 2-D NumPy array"
)
#: What ``infer_dtype`` says about a column of Python objects, as the dtype it amounts to.
_OBJECT_KINDS = {
    "integer": "int64",
    "floating": "float64",
    "mixed-integer-float": "float64",
    "boolean": "bool",
    "string": "string",
    "datetime": "datetime64[us]",
    "datetime64": "datetime64[us]",
    "date": "datetime64[us]",
    "timedelta": "timedelta64[us]",
    "timedelta64": "timedelta64[us]",
}
_MISSING_ROWS_SHOWN = 10
#: Marks a column whose dtype is a pandas one. Not None: ``np.dtype("float64") == None`` is True.
_PANDAS_DTYPE = object()
_OBJECT = np.dtype(object)
_NO_NA = ("int", "bool")
#: What infer_dtype may say about an object column of strings, by whether it is nullable.
_STRING_KINDS = {False: ("string",), True: ("string", "empty")}


class SchemaWarning(UserWarning):
    """The input differs from the signature in a way Segue could fix (e.g. extra columns)."""


@dataclass(frozen=True)
class ColumnSpec:
    """One named, typed column of a model's input or output.

    ``nullable`` is True when the example had missing values in the column; only then may
    inputs have missing values (NaN, None, NaT) there.
    """

    name: str
    dtype: str
    nullable: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InvalidArgument(f"signature: column name must be a string, got {self.name!r}")
        if not _is_column_dtype(self.dtype):
            raise InvalidArgument(
                f"signature: column {self.name!r} has unknown dtype {self.dtype!r}; expected "
                "bool, int8..int64, uint8..uint64, float16..float64, string, category, "
                "datetime64[unit] or timedelta64[unit]"
            )
        if not isinstance(self.nullable, bool):
            raise InvalidArgument(f"signature: column {self.name!r}: nullable must be a bool")


@dataclass(frozen=True)
class TensorSpec:
    """An array input or output: its NumPy dtype name and shape, ``-1`` for a free dimension."""

    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not _is_tensor_dtype(self.dtype):
            raise InvalidArgument(
                f"signature: tensor dtype {self.dtype!r} is not a NumPy dtype name "
                "(e.g. 'float32') or 'string'"
            )
        shape = self.shape
        if not isinstance(shape, (tuple, list)) or not all(
            type(dim) is int and dim >= -1 for dim in shape
        ):
            raise InvalidArgument(
                f"signature: tensor shape must be a tuple of ints (-1 for any), got {shape!r}"
            )
        object.__setattr__(self, "shape", tuple(shape))


@dataclass(frozen=True)
class Signature:
    """The inputs a model accepts, what it returns and, for a classifier, its class labels.

    Lists given for ``inputs``, ``outputs`` or ``classes`` are stored as tuples; NumPy class
    labels become plain Python scalars, so the signature is hashable and JSON-safe.

    Raises:
        InvalidArgument: for an empty or duplicated column list, or class labels that are not
            strings, ints, finite floats or bools.

    Example::

        >>> sig = Signature((ColumnSpec("age", "int64"),), TensorSpec("int64", (-1,)), (0, 1))
        >>> Signature.from_dict(sig.to_dict()) == sig
        True
    """

    inputs: tuple[ColumnSpec, ...] | TensorSpec
    outputs: tuple[ColumnSpec, ...] | TensorSpec | None = None
    classes: tuple[str | int | float | bool, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", _check_specs(self.inputs, "inputs"))
        if self.outputs is not None:
            object.__setattr__(self, "outputs", _check_specs(self.outputs, "outputs"))
        if self.classes is not None:
            object.__setattr__(self, "classes", _plain_classes(self.classes))

    @property
    def column_names(self) -> list[str] | None:
        """The input column names in order, or None for a tensor input."""
        if isinstance(self.inputs, TensorSpec):
            return None
        return [column.name for column in self.inputs]

    def to_dict(self) -> dict:
        """Return the signature as JSON-serializable plain data (see :meth:`from_dict`)."""
        return {
            "inputs": _specs_to_dict(self.inputs),
            "outputs": None if self.outputs is None else _specs_to_dict(self.outputs),
            "classes": None if self.classes is None else list(self.classes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Signature:
        """Rebuild a signature from :meth:`to_dict` output.

        Raises:
            InvalidArgument: if ``d`` is not a signature written by :meth:`to_dict`.
        """
        if not isinstance(d, Mapping) or "inputs" not in d:
            raise InvalidArgument("signature: expected a dict with an 'inputs' entry")
        outputs = d.get("outputs")
        classes = d.get("classes")
        if classes is not None and not isinstance(classes, list):
            raise InvalidArgument(f"signature: 'classes' must be a list, got {classes!r}")
        return cls(
            inputs=_specs_from_dict(d["inputs"], "inputs"),
            outputs=None if outputs is None else _specs_from_dict(outputs, "outputs"),
            classes=None if classes is None else tuple(classes),
        )


def infer_signature(input_example: Any, predictions: Any = None, classes: Any = None) -> Signature:
    """Describe a model from an example of its input and, optionally, of its output.

    Args:
        input_example: a DataFrame, a list of dicts, a dict of columns or one dict (giving
            column specs), or a NumPy array or nested list of numbers or strings (giving a
            :class:`TensorSpec` whose first dimension is ``-1``).
        predictions: the model's output on the example, described the same way (a 1-D array
            gives ``TensorSpec(dtype, (-1,))``); None leaves the outputs unknown.
        classes: a classifier's labels in order, e.g. ``estimator.classes_``.

    Returns:
        The :class:`Signature`. A column is ``nullable`` when the example has missing values
        in it.

    Raises:
        InvalidArgument: for an example with no rows, an unsupported type, or a column whose
            values have no signature dtype (lists, mixed types, only missing values).

    Example::

        >>> infer_signature(pd.DataFrame({"age": [31, 45]}), np.array([0, 1])).inputs
        (ColumnSpec(name='age', dtype='int64', nullable=False),)
    """
    inputs = _infer_specs(input_example, "input_example")
    outputs = None if predictions is None else _infer_specs(predictions, "predictions")
    return Signature(inputs, outputs, classes)


def validate_input(data: Any, signature: Signature) -> Any:
    """Check ``data`` against the signature's inputs and return what the model should receive.

    For column inputs: a DataFrame, records, a dict of columns, one record or a 2-D array
    (columns taken in the signature's order) becomes a DataFrame with exactly the signature's
    columns, in order. Extra columns are dropped with a :class:`SchemaWarning`. Safe widening
    is performed (int to float, small int to larger int, float32 to float64, and float64 to
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
        warnings.warn(SchemaWarning(f"input: ignoring extra column(s) {names}"), stacklevel=2)
    return frame


# --- dtypes --------------------------------------------------------------------------------


def _is_column_dtype(dtype: object) -> bool:
    return isinstance(dtype, str) and (
        dtype in _NUMBERS or dtype in ("string", "category") or bool(_TIME.fullmatch(dtype))
    )


def _is_tensor_dtype(dtype: object) -> bool:
    if dtype == "string":
        return True
    try:
        numpy_dtype = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        return False
    return numpy_dtype is not None and numpy_dtype.kind in "biufcmM" and numpy_dtype.name == dtype


def _family(dtype: str) -> str:
    if dtype.startswith(("int", "uint")):
        return "int"
    if dtype.startswith("float"):
        return "float"
    if dtype.startswith("datetime64"):
        return "datetime_tz" if "," in dtype else "datetime"
    if dtype.startswith("timedelta64"):
        return "timedelta"
    return dtype  # bool, string, category


def _canonical(dtype: Any) -> str | None:
    """The signature dtype of a NumPy or pandas dtype; None for object or unsupported ones."""
    if isinstance(dtype, np.dtype):
        name = "bool" if dtype.kind == "b" else dtype.name
        return name if _is_column_dtype(name) else None
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return str(dtype)
    # Nullable (Int64, boolean, Float64) and pyarrow-backed dtypes expose their NumPy twin.
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if isinstance(numpy_dtype, np.dtype) and numpy_dtype.kind != "O":
        return _canonical(numpy_dtype)
    return "string" if pd.api.types.is_string_dtype(dtype) else None


def _may_cast(got: str, want: str, *, narrow_ints: bool = False) -> bool:
    """Whether a column of dtype ``got`` may be given where the signature says ``want``."""
    if got == want:
        return True
    have, need = _family(got), _family(want)
    if need == "float":
        return have in ("int", "float")
    if need == "int":
        return have == "int" and (narrow_ints or np.can_cast(got, want, "safe"))
    if need == "category":
        return have in ("category", "string")
    if need in ("datetime", "datetime_tz"):
        return have in (need, "string")
    return have == need == "timedelta"


def _masked(dtype: str) -> str:
    """The pandas nullable dtype holding ``dtype`` values with missing ones (int64 -> Int64)."""
    if dtype == "bool":
        return "boolean"
    return dtype.replace("uint", "UInt") if dtype.startswith("u") else dtype.replace("int", "Int")


# --- the signature as data -----------------------------------------------------------------


def _check_specs(specs: Any, what: str) -> tuple[ColumnSpec, ...] | TensorSpec:
    if isinstance(specs, TensorSpec):
        return specs
    if not isinstance(specs, (tuple, list)) or not all(isinstance(s, ColumnSpec) for s in specs):
        raise InvalidArgument(
            f"signature: {what} must be a TensorSpec or a sequence of ColumnSpec, got {specs!r}"
        )
    if not specs:
        raise InvalidArgument(f"signature: {what} has no columns")
    names = [spec.name for spec in specs]
    if len(set(names)) < len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise InvalidArgument(f"signature: {what} repeat column name(s) {repeated}")
    return tuple(specs)


def _plain_classes(classes: Any) -> tuple[str | int | float | bool, ...]:
    values = classes.tolist() if isinstance(classes, (np.ndarray, pd.Index)) else classes
    if not isinstance(values, (list, tuple)) or not values:
        raise InvalidArgument(f"classes: expected a non-empty sequence of labels, got {classes!r}")
    plain = []
    for value in values:
        value = value.item() if isinstance(value, np.generic) else value
        if isinstance(value, str):
            value = str(value)
        elif not isinstance(value, (bool, int, float)) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise InvalidArgument(
                f"classes: label {value!r} is not a string, int, finite float or bool"
            )
        plain.append(value)
    return tuple(plain)


def _specs_to_dict(specs: tuple[ColumnSpec, ...] | TensorSpec) -> dict:
    if isinstance(specs, TensorSpec):
        return {"type": "tensor", "dtype": specs.dtype, "shape": list(specs.shape)}
    columns = [{"name": s.name, "dtype": s.dtype, "nullable": s.nullable} for s in specs]
    return {"type": "columns", "columns": columns}


def _specs_from_dict(d: Any, what: str) -> tuple[ColumnSpec, ...] | TensorSpec:
    kind = d.get("type") if isinstance(d, Mapping) else None
    if kind == "tensor" and isinstance(d.get("shape"), list):
        return TensorSpec(d.get("dtype"), tuple(d["shape"]))
    columns = d.get("columns") if kind == "columns" else None
    if isinstance(columns, list) and all(
        isinstance(c, Mapping) and {"name", "dtype"} <= c.keys() for c in columns
    ):
        return tuple(ColumnSpec(c["name"], c["dtype"], c.get("nullable", False)) for c in columns)
    raise InvalidArgument(
        f"signature: {what} must be {{'type': 'tensor', 'dtype': ..., 'shape': [...]}} or "
        f"{{'type': 'columns', 'columns': [{{'name': ..., 'dtype': ...}}, ...]}}, got {d!r}"
    )


# --- inference -----------------------------------------------------------------------------


def _infer_specs(data: Any, what: str) -> tuple[ColumnSpec, ...] | TensorSpec:
    if isinstance(data, np.ndarray) and data.dtype.names is None:
        return _infer_tensor(data, what)
    if isinstance(data, (list, tuple)) and not all(isinstance(item, Mapping) for item in data):
        try:
            array = np.asarray(data)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidArgument(
                f"{what}: a list must be rectangular and hold numbers or strings ({exc})"
            ) from exc
        return _infer_tensor(array, what)
    if isinstance(data, Mapping) and not _is_column_dict(data):
        data = [data]  # one record
    try:
        frame = to_frame(list(data) if isinstance(data, tuple) else data)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {str(exc).removeprefix('data: ')}") from exc
    if frame.empty:
        raise InvalidArgument(f"{what}: no rows; give at least one example row")
    return tuple(_infer_column(str(name), column, what) for name, column in frame.items())


def _infer_tensor(array: np.ndarray, what: str) -> TensorSpec:
    if array.ndim == 0 or array.shape[0] == 0:
        raise InvalidArgument(f"{what}: no rows; give an array of at least one example row")
    kind = array.dtype.kind
    if kind == "U" or (kind == "O" and infer_dtype(array.ravel(), skipna=False) == "string"):
        dtype = "string"
    elif kind in "biufcmM":
        dtype = array.dtype.name
    else:
        raise InvalidArgument(
            f"{what}: an array of {_describe_objects(array.ravel())} cannot be a tensor; "
            "give numbers or strings, or a DataFrame for mixed columns"
        )
    return TensorSpec(dtype, (-1, *array.shape[1:]))


def _infer_column(name: str, column: pd.Series, what: str) -> ColumnSpec:
    dtype = _canonical(column.dtype)
    if dtype is None and column.dtype == _OBJECT:
        kind = infer_dtype(column, skipna=True)
        if kind == "empty":
            raise InvalidArgument(
                f"{what}: column {name!r} has only missing values, so its type is unknown; "
                "give an example where it has at least one value"
            )
        dtype = _OBJECT_KINDS.get(kind)
    if dtype is None:
        raise InvalidArgument(
            f"{what}: column {name!r} holds {_describe(column)}; a signature column holds "
            "bools, numbers, strings, categories, datetimes or timedeltas"
        )
    return ColumnSpec(name, dtype, bool(column.isna().any()))


def _describe(column: pd.Series) -> str:
    if column.dtype != _OBJECT:
        return f"{column.dtype} values"
    return _describe_objects(column.to_numpy())


def _describe_objects(values: np.ndarray) -> str:
    kind = infer_dtype(values, skipna=True)
    if kind == "empty":
        return "missing values"
    if kind in _OBJECT_KINDS:
        return _OBJECT_KINDS[kind]
    types = sorted({type(v).__name__ for v in values})
    return "mixed values (" + ", ".join(types) + ")" if len(types) > 1 else f"{types[0]} values"


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
            spec.dtype == "string" or (not spec.nullable and _family(spec.dtype) not in _NO_NA)
            for spec in specs
        )


def _numpy_dtype(dtype: str) -> Any:
    if _family(dtype) in ("string", "category", "datetime_tz"):
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


def _column_blocks(df: pd.DataFrame) -> list[tuple[slice, Any]]:
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
    missing = [spec for spec in plan.specs if spec.name not in columns]
    if missing:
        listed = ", ".join(f"{spec.name!r} (expected {spec.dtype})" for spec in missing)
        raise InvalidArgument(f"input: missing column{'s' if len(missing) > 1 else ''} {listed}")
    arrays = [_conform_column(spec, columns[spec.name]) for spec in plan.specs]
    dtype = arrays[0].dtype
    if dtype != _OBJECT and all(type(a) is np.ndarray and a.dtype == dtype for a in arrays):
        # One 2-D block: cheaper to build than one block per column, and to_numpy() is a view.
        return pd.DataFrame(np.column_stack(arrays), columns=plan.index, index=index), extras
    return pd.DataFrame(dict(zip(plan.names, arrays, strict=True)), index=index), extras


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


def _conform_column(spec: ColumnSpec, values: Any) -> Any:
    """Return ``values`` as the column the model expects, or raise naming what is wrong."""
    if isinstance(values, pd.arrays.NumpyExtensionArray):
        values = values.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind in "OU":
        return _conform_objects(spec, values.astype(object, copy=False))
    got = _canonical(values.dtype)
    if got is None or not _may_cast(got, spec.dtype):
        raise _wrong_dtype(spec, got or str(values.dtype))
    mask = _missing_mask(values)
    if mask is not None:
        _check_missing(spec, mask)
    want, family = spec.dtype, _family(spec.dtype)
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
    # Python datetimes may carry a time zone or not; _to_time checks which.
    dates = got is not None and _family(got) == "datetime" and "datetime" in spec.dtype
    if got is None or not (dates or _may_cast(got, spec.dtype, narrow_ints=True)):
        raise _wrong_dtype(spec, got or _describe_objects(values))
    mask = pd.isna(values)
    _check_missing(spec, mask)
    want, family = spec.dtype, _family(spec.dtype)
    if family == "float":
        numbers = np.where(mask, np.nan, values) if mask.any() else values
        return _cast_numbers(numbers.astype, want, f"column {spec.name!r}")
    if family == "int":
        present = values[~mask]
        low, high, limits = min(present), max(present), np.iinfo(want)
        if low < limits.min or high > limits.max:
            raise InvalidArgument(
                f"input: column {spec.name!r} has values from {low} to {high}, out of range "
                f"for {want} ({limits.min} to {limits.max})"
            )
    if family in ("int", "bool"):
        if mask.any():
            return pd.array(np.where(mask, None, values), dtype=_masked(want))
        return values.astype(want)
    if family == "string":
        return values
    if family == "category":
        return pd.Categorical(values)
    return _to_time(spec, values, parse=got == "string")


def _cast_numbers(cast: Any, want: str, what: str, **kwargs: Any) -> np.ndarray:
    """``cast(want)``, failing rather than turning a number too large for ``want`` into inf."""
    try:
        with np.errstate(over="raise"):
            return cast(want, **kwargs)
    except (FloatingPointError, OverflowError) as exc:
        raise InvalidArgument(f"input: {what} has values out of range for {want}") from exc


def _masked_or_same(dtype: str) -> str:
    return _masked(dtype) if _family(dtype) in ("int", "bool") else dtype


def _to_time(spec: ColumnSpec, values: Any, *, parse: bool) -> Any:
    want, family = spec.dtype, _family(spec.dtype)
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
            if from_lists and _family(want) == "int" and not np.can_cast(got, want, "safe"):
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
