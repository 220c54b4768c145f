"""The parts of a model signature: column and tensor specs, the :class:`Signature` holding them,
the dtypes a spec may have and the signature's plain-data form (``to_dict`` / ``from_dict``).

Import these from :mod:`segue.models.signature`. Inference there and input validation
(:mod:`segue.models.validation`) share the dtype helpers below.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from segue.errors import InvalidArgument

__all__ = ["ColumnSpec", "Signature", "TensorSpec", "dtype_family"]

_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_NUMBERS = frozenset(("bool", *_INTS, "float16", "float32", "float64"))
_TIME = re.compile(r"(datetime64|timedelta64)\[(s|ms|us|ns)\]|datetime64\[(s|ms|us|ns), [^\]]+\]")
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
_OBJECT = np.dtype(object)


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


def dtype_family(dtype: str) -> str:
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


def _describe_objects(values: np.ndarray) -> str:
    kind = infer_dtype(values, skipna=True)
    if kind == "empty":
        return "missing values"
    if kind in _OBJECT_KINDS:
        return _OBJECT_KINDS[kind]
    types = sorted({type(v).__name__ for v in values})
    return "mixed values (" + ", ".join(types) + ")" if len(types) > 1 else f"{types[0]} values"


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
