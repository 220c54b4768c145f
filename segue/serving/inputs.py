"""Model inputs from parsed JSON, checked against the model's signature with NumPy (pure, no I/O).

The wire formats (``protocol.py``) hand over plain lists, and this module turns them into a
:class:`ModelInput` whose arrays already have the signature's dtypes: the numeric columns of one
dtype go into one 2-D array (for a typical scikit-learn model, the whole request is one
``np.array`` call), other columns into object arrays. Every problem raises :class:`RequestError`
naming the column and the row. No DataFrame is built per request: :func:`combine` builds one
per batch, which the model's own ``validate_input`` then accepts on its fast path.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument
from segue.models.signature import ColumnSpec, Signature, TensorSpec, validate_input
from segue.models.specs import _family  # the signature's own dtype families
from segue.models.validation import ColumnError, match_columns
from segue.serving.errors import RequestError, json_type
from segue.serving.tensors import cast_tensor, tensor_array

__all__ = ["InputSchema", "ModelInput", "combine", "whole"]

_NONE = type(None)
#: The largest integer a float holds exactly (JavaScript's Number.MAX_SAFE_INTEGER + 1).
_SAFE_INTEGER = 2.0**53
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_NUMERIC = frozenset(("bool", *_INTS, "float16", "float32", "float64"))
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


class _Block:
    """Numeric columns of one NumPy dtype, parsed together into one 2-D array."""

    def __init__(self, dtype: str, positions: list[int], specs: list[ColumnSpec]) -> None:
        self.dtype = np.dtype(dtype)
        self.family = _family(dtype)
        self.positions = positions
        self.specs = specs
        self.names = [spec.name for spec in specs]
        nullable = [spec.nullable for spec in specs]
        # Only float columns stay here when nullable: NaN is their missing value.
        self.nullable = np.array(nullable) if any(nullable) else None
        self.allowed = _ALLOWED[self.family] | ({_NONE} if any(nullable) else set())
        self.getter = itemgetter(*positions) if len(positions) > 1 else None


class InputSchema:
    """A signature's inputs, compiled once per deployed model for the per-request checks.

    Raises:
        InvalidArgument: for a model without a signature (the server has nothing to check
            requests against).
    """

    def __init__(self, signature: Signature | None) -> None:
        if signature is None:
            raise InvalidArgument(
                "the model has no signature, so requests cannot be checked; log it with "
                "run.log_model(model, input_example=X[:5]) to serve it"
            )
        self.signature = signature
        inputs = signature.inputs
        self.tensor: TensorSpec | None = None
        self.specs: tuple[ColumnSpec, ...] = ()
        self.names: list[str] = []
        if isinstance(inputs, TensorSpec):
            self.tensor = inputs
            self.tensor_dtype = None if inputs.dtype == "string" else np.dtype(inputs.dtype)
            return
        self.specs = inputs
        self.names = [spec.name for spec in inputs]
        self.name_set = frozenset(self.names)
        self.positions = {name: i for i, name in enumerate(self.names)}
        # Object labels: scikit-learn checks feature names ~10% faster than on str ones.
        self.index = pd.Index(self.names, dtype=object)
        groups: dict[str, list[int]] = {}
        self.others: list[tuple[int, ColumnSpec]] = []
        for i, spec in enumerate(inputs):
            fast = spec.dtype in _NUMERIC and (not spec.nullable or _family(spec.dtype) == "float")
            if fast:
                groups.setdefault(spec.dtype, []).append(i)
            else:
                self.others.append((i, spec))
        self.blocks = [_Block(d, p, [inputs[i] for i in p]) for d, p in groups.items()]
        #: The usual case: one dtype for every column, so rows need no regrouping.
        self.single_block = len(self.blocks) == 1 and not self.others
        self.row_getter = itemgetter(*self.names) if len(self.names) > 1 else None

    # -- building inputs -----------------------------------------------------------------

    def from_records(self, records: Any, field: str) -> ModelInput:
        """Rows given as JSON objects keyed by column name."""
        if type(records) is not list:
            raise RequestError(400, f"{field}: expected an array of objects", field)
        rows = []
        names, keys, getter = self.names, self.name_set, self.row_getter
        for i, record in enumerate(records):
            if type(record) is not dict:
                raise RequestError(
                    400, f"{field}[{i}]: expected an object of column -> value", field
                )
            if record.keys() != keys:
                record = self._complete(record, f"{field}[{i}]")
            rows.append(getter(record) if getter is not None else (record[names[0]],))
        return self.from_rows(rows)

    def _complete(self, record: dict, where: str) -> dict:
        self._check_names(record, where)
        return {**dict.fromkeys(self.names), **record}

    def from_rows(self, rows: list) -> ModelInput:
        """Rows as sequences of values in the signature's column order, each already as wide
        as the signature (callers check)."""
        if not rows:
            raise RequestError(422, "input: no rows; send at least one", None)
        blocks = []
        for block in self.blocks:
            if self.single_block:
                values = rows
            elif block.getter is not None:
                values = [block.getter(row) for row in rows]
            else:
                values = [(row[block.positions[0]],) for row in rows]
            blocks.append(_block_array(block, values))
        others = tuple(_other_column(spec, [row[i] for row in rows]) for i, spec in self.others)
        return ModelInput(self, len(rows), tuple(blocks), others)

    def from_split(self, split: Any, field: str) -> ModelInput:
        """MLflow's ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}``."""
        if type(split) is not dict:
            raise RequestError(400, f"{field}: expected an object with columns and data", field)
        extra = split.keys() - {"columns", "data", "index"}
        if extra:
            raise RequestError(400, f"{field}: unknown key {sorted(extra)[0]!r}", field)
        columns, data = split.get("columns"), split.get("data")
        if type(columns) is not list or not all(type(c) is str for c in columns):
            raise RequestError(
                400, f"{field}.columns: expected an array of column names", f"{field}.columns"
            )
        if len(set(columns)) != len(columns):
            raise RequestError(400, f"{field}.columns: a column name repeats", f"{field}.columns")
        if type(data) is not list:
            raise RequestError(400, f"{field}.data: expected an array of rows", f"{field}.data")
        width = len(columns)
        if not all(type(row) is list and len(row) == width for row in data):
            i = next(i for i, r in enumerate(data) if type(r) is not list or len(r) != width)
            raise RequestError(
                400,
                f"{field}.data[{i}]: expected an array of {width} values, one per column",
                f"{field}.data",
            )
        if columns != self.names:
            self._check_names(columns, field)
            where = {name: k for k, name in enumerate(columns)}
            order = [where.get(name) for name in self.names]
            data = [tuple(None if k is None else row[k] for k in order) for row in data]
        return self.from_rows(data)

    def _check_names(self, names: Any, where: str) -> None:
        # The column policy load_model(...).predict applies too: extra columns are ignored
        # (the callers pick the signature's columns only), nullable ones may be left out.
        try:
            match_columns(names, self.specs)
        except ColumnError as exc:
            raise RequestError(422, f"{where}: {exc}", exc.column) from None

    def from_columns(self, columns: dict[str, Any], where: str) -> ModelInput:
        """Columns as JSON arrays keyed by column name, all of one length."""
        self._check_names(columns, where)
        lengths = set()
        for name, values in columns.items():
            if type(values) is not list:
                raise RequestError(400, f"{where}: column {name!r} must be an array", name)
            lengths.add(len(values))
        if len(lengths) > 1:
            raise RequestError(
                400, f"{where}: columns have different lengths {sorted(lengths)}", where
            )
        n = lengths.pop() if lengths else 0
        if n == 0:
            raise RequestError(422, "input: no rows; send at least one", None)
        ordered = [columns[name] if name in columns else [None] * n for name in self.names]
        return self.from_rows(list(zip(*ordered, strict=True)))

    def from_tensor(
        self, data: Any, field: str, *, shape: list[int] | None = None, one_row: bool = False
    ) -> ModelInput:
        """A tensor as nested JSON arrays, or flat ones with an explicit ``shape`` (OIP).

        ``one_row``: a 1-D array for a 2-D signature is one row (MLflow's ``inputs`` allow it).
        """
        spec = self.tensor
        assert spec is not None
        array = tensor_array(data, self.tensor_dtype, field)
        if shape is not None:
            if array.ndim == 1 and len(shape) != 1:
                if array.size != math.prod(shape):
                    raise RequestError(
                        400, f"{field}: {array.size} values do not fill shape {shape}", field
                    )
                try:
                    array = array.reshape(shape)
                except ValueError:  # no rows, but a dimension past NumPy's limits
                    raise RequestError(
                        400, f"{field}: shape {shape} is larger than an array can be", field
                    ) from None
            elif list(array.shape) != shape:
                raise RequestError(
                    400,
                    f"{field}: data of shape {list(array.shape)} but shape says {shape}",
                    field,
                )
        if one_row and array.ndim == 1 and len(spec.shape) == 2:
            array = array.reshape(1, -1)
        want = list(spec.shape)
        if array.ndim != len(want) or any(
            w not in (-1, g) for w, g in zip(want, array.shape, strict=True)
        ):
            raise RequestError(
                422, f"{field}: expected shape {want} (-1: any), got {list(array.shape)}", field
            )
        if array.shape[0] == 0:
            raise RequestError(422, "input: no rows; send at least one", field)
        return ModelInput(self, array.shape[0], tensor=cast_tensor(array, spec, field))


@dataclass(frozen=True, slots=True)
class ModelInput:
    """One request's validated rows: typed NumPy arrays, ready to batch with others."""

    schema: InputSchema
    n_rows: int
    #: One 2-D array per :attr:`InputSchema.blocks` entry (rows x the block's columns).
    blocks: tuple[np.ndarray, ...] = ()
    #: One 1-D object array per :attr:`InputSchema.others` entry.
    others: tuple[np.ndarray, ...] = ()
    tensor: np.ndarray | None = None

    def columns(self) -> dict[str, np.ndarray]:
        """Column name -> 1-D array, in the signature's order (column signatures only)."""
        found: dict[str, np.ndarray] = {}
        for block, array in zip(self.schema.blocks, self.blocks, strict=True):
            for j, name in enumerate(block.names):
                found[name] = array[:, j]
        for (_, spec), array in zip(self.schema.others, self.others, strict=True):
            found[spec.name] = array
        return {name: found[name] for name in self.schema.names}

    def records(self) -> list[Any]:
        """The rows as plain Python: dicts for column signatures, nested lists for tensors."""
        if self.tensor is not None:
            return self.tensor.tolist()
        columns = {name: values.tolist() for name, values in self.columns().items()}
        names = list(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def combine(inputs: Sequence[ModelInput]) -> pd.DataFrame | np.ndarray:
    """Stack requests' inputs into what the model predicts on: one DataFrame (or array)."""
    schema = inputs[0].schema
    if schema.tensor is not None:
        if len(inputs) == 1:
            return inputs[0].tensor
        return np.concatenate([x.tensor for x in inputs])
    blocks = [_stack([x.blocks[b] for x in inputs]) for b in range(len(schema.blocks))]
    if schema.single_block:
        # One 2-D block in signature order: the cheapest frame to build, and a view of it.
        return pd.DataFrame(blocks[0], columns=schema.index, copy=False)
    columns: dict[str, Any] = {}
    for block, array in zip(schema.blocks, blocks, strict=True):
        for j, name in enumerate(block.names):
            columns[name] = array[:, j]
    for k, (_, spec) in enumerate(schema.others):
        columns[spec.name] = _stack([x.others[k] for x in inputs])
    return pd.DataFrame({name: columns[name] for name in schema.names}, copy=False)


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


# --- columns -------------------------------------------------------------------------------


def _block_array(block: _Block, rows: list) -> np.ndarray:
    types = set(map(type, itertools.chain.from_iterable(rows)))
    if float in types and block.family == "int":
        rows = [[whole(v) for v in row] for row in rows]
        types = set(map(type, itertools.chain.from_iterable(rows)))
    if not types <= block.allowed:
        raise _find_bad_value(block, rows)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
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


def _find_bad_value(block: _Block, rows: list) -> RequestError:
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


def _other_column(spec: ColumnSpec, values: list) -> np.ndarray:
    family = _family(spec.dtype)
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
