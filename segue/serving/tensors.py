"""Tensor inputs from nested JSON arrays, checked against a signature's TensorSpec (pure)."""

from __future__ import annotations

from typing import Any

import numpy as np

from segue.models.signature import TensorSpec
from segue.serving.errors import RequestError, json_type

__all__ = ["cast_tensor", "tensor_array"]


def tensor_array(data: Any, dtype: np.dtype | None, field: str) -> np.ndarray:
    if type(data) is not list:
        raise RequestError(400, f"{field}: expected an array", field)
    try:
        if dtype is None:  # strings: keep objects so numbers are not silently made text
            array = np.array(data, dtype=object)
        elif dtype.kind in "mM":
            array = np.array(data, dtype=dtype)
        else:
            array = np.array(data)
            if dtype.kind in "iu" and array.dtype.kind == "f":
                array = _integers(data, dtype, array, field)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(
            400,
            f"{field}: nested arrays must be rectangular (every row the same length) and "
            "hold numbers, booleans or strings",
            field,
        ) from None
    if array.ndim == 0:
        raise RequestError(400, f"{field}: expected an array", field)
    numeric = dtype is not None and dtype.kind in "iuf"
    if numeric and array.dtype.kind in "iuf" and _holds_bool(data):
        # NumPy would read true as 1; a numeric column refuses it, so a tensor does too.
        raise RequestError(422, f"{field}: expected {dtype} values, got boolean", field)
    return array


def _holds_bool(data: list) -> bool:
    pending = [data]
    while pending:
        for value in pending.pop():
            if type(value) is bool:
                return True
            if type(value) is list:
                pending.append(value)
    return False


def _integers(data: list, dtype: np.dtype, array: np.ndarray, field: str) -> np.ndarray:
    """The array of an integer tensor that NumPy guessed as floats: it does so for integers
    past int64 mixed with smaller ones (the top half of uint64), which must stay exact."""
    leaves = np.array(data, dtype=object)
    if leaves.shape != array.shape or not all(type(v) is int for v in leaves.ravel()):
        return array  # numbers with fractions: cast_tensor names them
    try:
        return np.array(data, dtype=dtype)
    except OverflowError:
        raise RequestError(422, f"{field}: values out of range for {dtype}", field) from None


def cast_tensor(array: np.ndarray, spec: TensorSpec, field: str) -> np.ndarray:
    want = spec.dtype
    kind = array.dtype.kind
    if want == "string":
        values = array.ravel()
        if all(type(v) is str for v in values):
            return array
        return _tensor_type_error(spec, values, field)
    dtype = np.dtype(want)
    if dtype.kind in "mM":
        return array
    if dtype.kind == "f" or dtype.kind == "c":
        if kind not in "iuf":
            return _tensor_type_error(spec, array.ravel(), field)
        with np.errstate(over="ignore", invalid="ignore"):
            cast = array.astype(dtype, copy=False)
        if dtype.kind == "f" and not np.isfinite(cast).all():
            raise RequestError(422, f"{field}: values out of range for {want}", field)
        return cast
    if dtype.kind in "iu":
        if kind == "f" and _whole_floats(array):
            array = array.astype(np.int64)  # 2.0 is an integer in JSON, as in a column
            kind = "i"
        if kind not in "iu":
            return _tensor_type_error(spec, array.ravel(), field)
        if array.dtype != dtype and not np.can_cast(array.dtype, dtype, "safe"):
            limits = np.iinfo(dtype)
            if array.min() < limits.min or array.max() > limits.max:
                raise RequestError(422, f"{field}: values out of range for {want}", field)
        return array.astype(dtype, copy=False)
    if dtype.kind == "b" and kind == "b":
        return array
    return _tensor_type_error(spec, array.ravel(), field)


def _whole_floats(array: np.ndarray) -> bool:
    """Every value integral and at most 2**53 (exact; larger may be rounded literals)."""
    with np.errstate(invalid="ignore"):
        return bool(np.all((np.mod(array, 1) == 0) & (np.abs(array) <= 2.0**53)))


def _tensor_type_error(spec: TensorSpec, values: np.ndarray, field: str) -> Any:
    kinds = sorted({json_type(v) for v in values.tolist()})
    raise RequestError(422, f"{field}: expected {spec.dtype} values, got {', '.join(kinds)}", field)
