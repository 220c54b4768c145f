"""Model signatures: what a model takes and gives, inferred from examples and enforced on input.

``run.log_model(model, input_example=X[:5])`` calls :func:`infer_signature`;
``segue.load_model(uri).predict(data)`` and the inference server call :func:`validate_input` on
every request. Its common case, a DataFrame that already matches, costs a few O(columns) checks
and one vectorised missing-value check, and returns the input object itself.

Column dtypes are canonical strings: ``"bool"``, ``"int8"`` .. ``"int64"``, ``"uint8"`` ..
``"uint64"``, ``"float16"`` .. ``"float64"``, ``"string"``, ``"category"``,
``"datetime64[<unit>]"``, ``"datetime64[<unit>, <tz>]"`` and ``"timedelta64[<unit>]"``. Tensor
dtypes are NumPy dtype names, or ``"string"`` for arrays of text.

The specs live in :mod:`segue.models.specs`, validation in :mod:`segue.models.validation` (with
:mod:`segue.models.conversion`); import them all from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from segue.data.frames import to_frame
from segue.errors import InvalidArgument
from segue.models.conversion import _is_column_dict
from segue.models.specs import (
    _OBJECT,
    _OBJECT_KINDS,
    ColumnSpec,
    Signature,
    TensorSpec,
    _canonical,
    _describe_objects,
)
from segue.models.validation import SchemaWarning, validate_input

# Internals that tests (and code written before the split) reach through this module.
from segue.models.validation import _column_blocks as _column_blocks
from segue.models.validation import _ColumnPlan as _ColumnPlan
from segue.models.validation import _frame_blocks as _frame_blocks
from segue.models.validation import _has_forbidden_values as _has_forbidden_values

__all__ = [
    "ColumnSpec",
    "SchemaWarning",
    "Signature",
    "TensorSpec",
    "infer_signature",
    "validate_input",
]


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
