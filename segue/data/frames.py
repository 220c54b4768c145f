"""Turn what users log as a data set into a DataFrame, and fingerprint it.

``run.log_dataset(data, ...)`` accepts the shapes data usually has in a training script; this
module normalises them to one ``pandas.DataFrame`` with string column names, then gives its
content hash (:func:`dataset_digest`) and its schema (:func:`dataset_schema`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument

_EXPECTED = "expected a pandas DataFrame, a NumPy array, a list of dicts or a dict of columns"
#: Bumped whenever the byte layout fed to the hash changes, so old and new digests never match.
_DIGEST_VERSION = b"segue.dataset.v1\n"
#: NumPy dtype kinds whose raw bytes are the values: bool, ints, floats, complex, datetimes.
_RAW_KINDS = frozenset("biufcmM")


def to_frame(data: Any) -> pd.DataFrame:
    """Return ``data`` as a DataFrame whose column names are strings.

    Accepted: a ``pandas.DataFrame`` (returned as is when its column names are already strings,
    otherwise relabelled without copying the data); a ``Series`` (one column, named after the
    series or ``"0"``); a NumPy array, 1-D (one column ``"0"``), 2-D (columns ``"0"``, ``"1"``,
    ...) or structured (one column per field); a list of dicts (records; missing keys become
    missing values); a list of lists or tuples (rows of equal length); a dict of columns
    (lists, tuples, 1-D arrays or Series of equal length; Series are taken by position, not
    aligned on their index).

    Raises:
        InvalidArgument: for any other type, arrays with more than 2 dimensions, rows or columns
            of unequal length, or two columns whose names are equal as strings.

    Example::

        >>> to_frame({"age": [31, 45], "city": ["Oslo", "Lima"]}).columns.tolist()
        ['age', 'city']
    """
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, pd.Series):
        frame = data.to_frame(name="0" if data.name is None else str(data.name))
    elif isinstance(data, np.ndarray):
        frame = _from_array(data)
    elif isinstance(data, list):
        frame = _from_list(data)
    elif isinstance(data, Mapping):
        frame = _from_columns(data)
    else:
        raise InvalidArgument(f"data: {_EXPECTED}, got {type(data).__name__}")
    return _with_str_columns(frame)


def dataset_digest(df: pd.DataFrame) -> str:
    """Return the sha256 hex digest of the content of ``df``.

    The digest covers the shape, the column names, the dtypes and every value, in order; it
    ignores the index. Equal frames (``df.equals``) with equal dtypes and column names give equal
    digests, whatever bit pattern their NaNs have and whether their zeros are signed; changing a
    value, a column name, a dtype, the row order or the column order changes it. Numeric, bool
    and datetime columns are hashed from their raw bytes; other columns (strings, objects,
    categories, nullable dtypes) through ``pandas.util.hash_pandas_object``.

    Example::

        >>> a = pd.DataFrame({"x": [1.0, 2.0]})
        >>> dataset_digest(a) == dataset_digest(a.set_axis([10, 20]))
        True
    """
    digest = hashlib.sha256(_DIGEST_VERSION)
    digest.update(json.dumps(list(df.shape)).encode())
    for name, column in df.items():
        header = json.dumps([str(name), str(column.dtype)]).encode()
        digest.update(len(header).to_bytes(8, "little"))
        digest.update(header)
        digest.update(_column_bytes(column).data)
    return digest.hexdigest()


def dataset_schema(df: pd.DataFrame) -> list[dict[str, str]]:
    """Return the columns of ``df`` as ``[{"name": ..., "dtype": ...}, ...]``, in order.

    Example::

        >>> dataset_schema(pd.DataFrame({"age": [31]}))
        [{'name': 'age', 'dtype': 'int64'}]
    """
    return [{"name": str(name), "dtype": str(dtype)} for name, dtype in df.dtypes.items()]


def _from_array(array: np.ndarray) -> pd.DataFrame:
    if array.dtype.names is not None and array.ndim == 1:
        return pd.DataFrame(array)
    if array.ndim not in (1, 2):
        raise InvalidArgument(
            f"data: expected a 1-D or 2-D NumPy array, got a {array.ndim}-D array of shape "
            f"{array.shape}; reshape it to (rows, columns)"
        )
    return pd.DataFrame(array[:, np.newaxis] if array.ndim == 1 else array)


def _from_list(items: list) -> pd.DataFrame:
    if not items:
        return pd.DataFrame()
    if all(isinstance(item, Mapping) for item in items):
        return pd.DataFrame(items)
    for position, item in enumerate(items):
        if not _is_row(item):
            raise InvalidArgument(
                f"data: a list must hold only dicts (records) or only rows (lists or tuples); "
                f"item {position} is {type(item).__name__}"
            )
    lengths = {len(row) for row in items}
    if len(lengths) > 1:
        raise InvalidArgument(
            f"data: rows have different lengths ({', '.join(map(str, sorted(lengths)))}); "
            "every row needs one value per column"
        )
    return pd.DataFrame(items)


def _is_row(item: object) -> bool:
    if isinstance(item, np.ndarray):
        return item.ndim == 1
    return isinstance(item, (list, tuple))


def _from_columns(columns: Mapping) -> pd.DataFrame:
    values: dict[str, Any] = {}
    for name, column in columns.items():
        if isinstance(column, pd.Series):
            column = column.reset_index(drop=True)
        elif not isinstance(column, (list, tuple, np.ndarray)):
            raise InvalidArgument(
                f"data: column {str(name)!r} is {type(column).__name__}; "
                "expected a list, a tuple, a 1-D array or a Series"
            )
        elif isinstance(column, np.ndarray) and column.ndim != 1:
            raise InvalidArgument(
                f"data: column {str(name)!r} is a {column.ndim}-D array; expected 1-D"
            )
        values[str(name)] = column
    lengths = {name: len(column) for name, column in values.items()}
    if len(set(lengths.values())) > 1:
        found = ", ".join(f"{name!r} has {length}" for name, length in lengths.items())
        raise InvalidArgument(f"data: columns have different lengths: {found}")
    if len(values) < len(columns):
        raise _duplicates([str(name) for name in columns])
    return pd.DataFrame(values)


def _with_str_columns(frame: pd.DataFrame) -> pd.DataFrame:
    names = [str(name) for name in frame.columns]
    if len(set(names)) < len(names):
        raise _duplicates(names)
    if all(isinstance(name, str) for name in frame.columns):
        return frame
    return frame.set_axis(names, axis="columns")


def _duplicates(names: list[str]) -> InvalidArgument:
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in names:
        (repeated if name in seen else seen).add(name)
    return InvalidArgument(
        f"data: duplicate column names {sorted(repeated)}; give every column a distinct name"
    )


def _column_bytes(column: pd.Series) -> np.ndarray:
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in _RAW_KINDS:
        values = column.to_numpy()
        if dtype.kind in "fc":
            # Equal frames must hash equally: one NaN bit pattern, and -0.0 folded into 0.0.
            values = np.where(np.isnan(values), np.nan, values + 0.0).astype(dtype, copy=False)
        values = np.ascontiguousarray(values, dtype=dtype.newbyteorder("<"))
        return values.view(np.uint8)
    try:
        hashes = pd.util.hash_pandas_object(column, index=False).to_numpy()
    except (TypeError, ValueError):
        # Unhashable cells (lists, dicts, arrays) are hashed by their repr, cell by cell.
        texts = pd.Series([repr(value) for value in column], dtype=object)
        hashes = pd.util.hash_pandas_object(texts, index=False).to_numpy()
    return np.ascontiguousarray(hashes, dtype="<u8").view(np.uint8)
