"""Model inputs from parsed JSON, checked against the model's signature with NumPy (pure, no I/O).

The wire formats (``protocol.py``) hand over plain lists, and this module turns them into a
:class:`ModelInput` whose arrays already have the signature's dtypes: the numeric columns of one
dtype go into one 2-D array (for a typical scikit-learn model, the whole request is one
``np.array`` call), other columns into object arrays (:mod:`segue.serving.columns`). Every
problem raises :class:`RequestError` naming the column and the row. No DataFrame is built per
request: :func:`combine` builds one per batch, which the model's own ``validate_input`` then
accepts on its fast path.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd

from segue.errors import InvalidArgument
from segue.models.signature import ColumnSpec, Signature, TensorSpec
from segue.models.specs import dtype_family  # the signature's own dtype families
from segue.models.validation import ColumnError, match_columns
from segue.serving.columns import (
    NUMERIC,
    Block,
    block_array,
    finite_float64,
    other_column,
    split_float64,
)
from segue.serving.errors import RequestError
from segue.serving.tensors import cast_tensor, tensor_array

__all__ = ["InputSchema", "ModelInput", "batch_call", "combine", "log_json"]

#: Dtypes whose arrays orjson writes exactly as the Python values of ``tolist()`` (float16 and
#: float32 it writes shorter, as their own precision, so those go through ``records()``).
EXACT_JSON = frozenset(
    np.dtype(d) for d in ("bool", "float64", "int8", "int16", "int32", "int64")
) | frozenset(np.dtype(d) for d in ("uint8", "uint16", "uint32", "uint64"))
_NUMPY_JSON = orjson.OPT_SERIALIZE_NUMPY


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
        #: The JSON text before a request's rows in the prediction log, when they can be
        #: written straight from the one block's array (see :func:`log_json`), else None.
        self.split_json: bytes | None = None
        #: (loaded model, its estimator when it takes the block array directly, else None).
        self.direct: tuple[Any, Any] | None = None
        self.all_float64 = False
        self._name_brackets = 0
        self._names_json = b"[]"
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
            fast = spec.dtype in NUMERIC and (
                not spec.nullable or dtype_family(spec.dtype) == "float"
            )
            if fast:
                groups.setdefault(spec.dtype, []).append(i)
            else:
                self.others.append((i, spec))
        self.blocks = [Block(d, p, [inputs[i] for i in p]) for d, p in groups.items()]
        #: The usual case: one dtype for every column, so rows need no regrouping.
        self.single_block = len(self.blocks) == 1 and not self.others
        self.row_getter = itemgetter(*self.names) if len(self.names) > 1 else None
        #: One float64 block: a dataframe_split in the signature's column order, with no
        #: bools in the body, is one ``np.array`` call (see :meth:`from_split`).
        self.all_float64 = self.single_block and self.blocks[0].dtype == np.float64
        if self.single_block and self.blocks[0].dtype in EXACT_JSON:
            self.split_json = b'{"dataframe_split":{"columns":' + orjson.dumps(self.names)
            self.split_json += b',"data":'
        self._name_brackets = sum(name.count("[") for name in self.names)
        self._names_json = orjson.dumps(self.names)

    # -- building inputs -----------------------------------------------------------------

    def from_records(self, records: Any, field: str, *, no_bools: bool = False) -> ModelInput:
        """Rows given as JSON objects keyed by column name. ``no_bools``: see
        :meth:`from_rows`."""
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
        return self.from_rows(rows, no_bools=no_bools)

    def _complete(self, record: dict, where: str) -> dict:
        self._check_names(record, where)
        return {**dict.fromkeys(self.names), **record}

    def from_rows(self, rows: list, *, no_bools: bool = False) -> ModelInput:
        """Rows as sequences of values in the signature's column order, each already as wide
        as the signature (callers check).

        ``no_bools``: the caller knows no value is a JSON ``true`` or ``false`` (the body has
        neither word), so a float64 block's values need no type check of their own (see
        :func:`~segue.serving.columns.block_array`)."""
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
            blocks.append(block_array(block, values, no_bools=no_bools))
        others = tuple(other_column(spec, [row[i] for row in rows]) for i, spec in self.others)
        return ModelInput(self, len(rows), tuple(blocks), others)

    def from_split(
        self, split: Any, field: str, *, no_bools: bool = False, body: bytes | None = None
    ) -> ModelInput:
        """MLflow's ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}``.
        ``no_bools``: see :meth:`from_rows`. ``body``: the request's whole body, when it is
        ``{"dataframe_split": split}`` alone; kept as the input's ``raw`` when it is what the
        prediction log would write (the signature's columns, in order, and nothing else)."""
        if no_bools and self.all_float64 and type(split) is dict and len(split) == 2:
            # The usual request, checked by its result: the signature's columns in its order,
            # and rows that NumPy makes into an array of finite numbers as wide as those.
            # Anything else goes the checked way below, which names what is wrong.
            data = split.get("data")
            if split.get("columns") == self.names and type(data) is list:
                array = finite_float64(data, len(self.names))
                if array is not None:
                    kept = (
                        body if body is not None and len(body) <= self._raw_limit(array) else None
                    )
                    return ModelInput(self, len(data), (array,), raw=kept)
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
        return self.from_rows(data, no_bools=no_bools)

    def split_body(self, body: bytes) -> ModelInput | None:
        """A body that is ``{"dataframe_split": ...}`` alone, with this signature's float64
        columns in its order and finite numbers, as its input, read by simdjson
        (:func:`~segue.serving.columns.split_float64`); None for any other body, which is
        then read the usual way (:meth:`from_split`, which names what is wrong)."""
        if not self.all_float64:
            return None
        array = split_float64(body, self.names, self._name_brackets, self._names_json)
        if array is None:
            return None
        kept = body if len(body) <= self._raw_limit(array) else None
        return ModelInput(self, len(array), (array,), raw=kept)

    def _raw_limit(self, array: np.ndarray) -> int:
        """The most bytes a body of these rows may have to be kept as the log's text: what
        ``json.dumps`` writes for them at most (26 bytes a number, 4 a row, 2 a name), so a
        body padded with whitespace, or holding more than its rows, is written from the
        array instead."""
        rows, width = array.shape
        return len(self.split_json or b"") + 64 + 2 * width + 4 * rows + 26 * rows * width

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


@dataclass(slots=True)
class ModelInput:
    """One request's validated rows: typed NumPy arrays, ready to batch with others.

    Never changed once built, but not a frozen dataclass: its ``__init__`` would set each
    field through ``object.__setattr__``, 0.6 us more for every request the server parses.
    """

    schema: InputSchema
    n_rows: int
    #: One 2-D array per :attr:`InputSchema.blocks` entry (rows x the block's columns).
    blocks: tuple[np.ndarray, ...] = ()
    #: One 1-D object array per :attr:`InputSchema.others` entry.
    others: tuple[np.ndarray, ...] = ()
    tensor: np.ndarray | None = None
    #: The request's own body when it is, as it came, the text the prediction log keeps
    #: (see :func:`log_json`): a dataframe_split of exactly the signature's columns, in order.
    raw: bytes | None = None

    def rows(self, start: int, stop: int) -> ModelInput:
        """Rows ``start:stop`` (views of the arrays, no copy)."""
        return ModelInput(
            self.schema,
            len(range(start, min(stop, self.n_rows))),
            tuple(array[start:stop] for array in self.blocks),
            tuple(array[start:stop] for array in self.others),
            None if self.tensor is None else self.tensor[start:stop],
        )

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


def log_json(inputs: Sequence[ModelInput]) -> list[bytes]:
    """The JSON text (UTF-8) the prediction log keeps of each input.

    Inputs of one numeric block (the usual scikit-learn signature) are written as MLflow's
    ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``, by one orjson call
    on the request's array: no Python work per row or value, so a 100-row request costs the
    log writer (and the GIL it shares with the event loop) tens of microseconds. A request
    that came in that very form is kept as its body's bytes (``raw``), costing nothing: its
    numbers as the client wrote them (``1`` where the array holds ``1.0``). Readers give
    them back as records (:func:`segue.monitoring.segments.input_records`). Tensors are
    written as their array; anything else as :meth:`ModelInput.records`.
    """
    texts: list[bytes] = []
    for given in inputs:
        if given.raw is not None:  # the body as it came: the same JSON, not written again
            texts.append(given.raw)
            continue
        tensor = given.tensor
        if tensor is not None and tensor.dtype in EXACT_JSON:
            texts.append(orjson.dumps(np.ascontiguousarray(tensor), option=_NUMPY_JSON))
            continue
        prefix = given.schema.split_json
        if tensor is not None or prefix is None:
            texts.append(orjson.dumps(given.records(), option=_NUMPY_JSON))
            continue
        block = np.ascontiguousarray(given.blocks[0])
        texts.append(prefix + orjson.dumps(block, option=_NUMPY_JSON) + b"}}")
    return texts


#: What scikit-learn says when an estimator fitted on a DataFrame is given an array; on the
#: direct path (see :func:`batch_call`) the columns are the ones it was fitted on, in order.
_NO_NAMES = "X does not have valid feature names"
_quiet: list[bool] = []


def batch_call(
    model: Any, inputs: Sequence[ModelInput]
) -> tuple[Any, Callable[[Any], Any], Callable[[Any], Any]]:
    """What to predict on for a batch, and the model's ``predict`` and ``predict_proba``.

    Usually one DataFrame (:func:`combine`) for the loaded model, which checks it against the
    signature once more. A scikit-learn estimator whose columns are one numeric block, fitted
    on exactly the signature's columns in order (``feature_names_in_``), gets the block's 2-D
    array instead: the requests were checked against the signature already, and the
    estimator's DataFrame path costs more than the whole rest of a small batch's prediction.
    """
    schema = inputs[0].schema
    raw = _direct_estimator(model, schema)
    if raw is None:
        return combine(inputs), model.predict, model.predict_proba
    array = _stack([x.blocks[0] for x in inputs])
    # The loaded model's predict_proba says why, for an estimator without one.
    return array, raw.predict, getattr(raw, "predict_proba", model.predict_proba)


def _direct_estimator(model: Any, schema: InputSchema) -> Any:
    """The estimator that takes the block array directly (see :func:`batch_call`), or None."""
    cached = schema.direct
    if cached is not None and cached[0] is model:
        return cached[1]
    raw = getattr(model, "raw", None)
    names = getattr(raw, "feature_names_in_", None)
    fits = (
        getattr(model, "flavor", None) == "sklearn"
        and schema.single_block
        and names is not None
        and list(names) == schema.names
        and callable(getattr(raw, "predict", None))
    )
    if fits and not _quiet:
        warnings.filterwarnings("ignore", message=_NO_NAMES, category=UserWarning)
        _quiet.append(True)
    schema.direct = (model, raw if fits else None)
    return raw if fits else None


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
