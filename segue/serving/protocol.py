"""The inference server's wire formats: request bodies in, checked (pure, no I/O).

Request bodies only; the responses are in :mod:`segue.serving.responses`. Two request
formats, both parsed with orjson and checked against the model's signature
(:mod:`segue.serving.inputs`) into a :class:`InferRequest`:

- Open Inference Protocol v2 (KServe, Triton): ``{"id"?, "model_name"?, "model_version"?,
  "inputs": [{"name", "shape", "datatype", "data"}], "parameters"?, "outputs"?}``. For a model
  taking columns, each input tensor is one column (shape ``[n]`` or ``[n, 1]``); for a model
  taking a tensor, one input named ``input`` with the full shape. ``"predict_proba"`` is
  returned when asked for in ``outputs`` or in ``parameters.outputs``. ``model_name`` and
  ``model_version`` (the KServe SDK sends them) must agree with the URL. Tensors may travel
  as raw bytes after the JSON (the binary tensor data extension, :mod:`segue.serving.binary`),
  and outputs go back that way when asked for.
- ``/predict``: ``{"instances": [{column: value}, ...]}``, MLflow's ``{"dataframe_split":
  {"columns", "data"}}``, ``{"dataframe_records": [...]}`` or ``{"inputs": ...}`` (a dict of
  columns, or a nested array for a tensor model).

``POST /feedback`` bodies are parsed in :mod:`segue.serving.feedback`.

Anything else raises :class:`RequestError` (400 malformed, 413 too large, 422 against the
signature) and nothing else, whatever the bytes.

Example::

    >>> request = parse_predict(b'{"instances": [{"age": 31}]}', schema)
    >>> request.input.n_rows
    1
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd

from segue.serving import binary
from segue.serving.columns import whole
from segue.serving.errors import RequestError, json_type
from segue.serving.inputs import InputSchema, ModelInput

__all__ = [
    "DATATYPES",
    "InferRequest",
    "RequestError",
    "decode_body",
    "join_answers",
    "parse_infer",
    "parse_predict",
    "split_request",
]

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
PREDICT_FORMATS = ("instances", "dataframe_split", "dataframe_records", "inputs")
OUTPUTS = ("predict", "predict_proba")
#: OIP datatype -> the signature dtype it carries.
DATATYPES = {
    "BOOL": "bool",
    **{f"INT{b}": f"int{b}" for b in (8, 16, 32, 64)},
    **{f"UINT{b}": f"uint{b}" for b in (8, 16, 32, 64)},
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "string",
}
#: Which OIP datatypes may carry a column or tensor of each dtype family.
_FITS = {
    "float": frozenset(d for d in DATATYPES if d.startswith(("FP", "INT", "UINT"))),
    "int": frozenset(d for d in DATATYPES if d.startswith(("INT", "UINT"))),
    "bool": frozenset(("BOOL",)),
}
_INFER_KEYS = frozenset(("id", "model_name", "model_version", "inputs", "outputs", "parameters"))
#: The name of a tensor model's one input (as its metadata says).
TENSOR_INPUT = "input"
_TENSOR_KEYS = frozenset(("name", "shape", "datatype", "data", "parameters"))


@dataclass(slots=True)
class InferRequest:
    """A parsed, validated request: the rows, which outputs to return, the client's id, and
    which outputs go back as binary tensor data. Never changed once built (not frozen, for
    the cost of a frozen ``__init__``: see :class:`~segue.serving.inputs.ModelInput`)."""

    input: ModelInput
    outputs: tuple[str, ...] = ("predict",)
    id: str | None = None
    binary: frozenset[str] = frozenset()


def split_request(request: InferRequest, start: int, stop: int) -> InferRequest:
    """The request's rows ``start:stop`` as a request of their own (a piece of a request
    larger than one batch; see :class:`~segue.serving.batching.Batcher`)."""
    return replace(request, input=request.input.rows(start, stop))


def join_answers(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One request's answer from its pieces' answers, rows in order."""
    joined = {}
    for name, first in answers[0].items():
        parts = [answer[name] for answer in answers]
        if isinstance(first, pd.DataFrame):
            joined[name] = pd.concat(parts, ignore_index=True)
        else:
            joined[name] = np.concatenate(parts)
    return joined


# --- requests ------------------------------------------------------------------------------


def decode_body(body: bytes, max_bytes: int) -> Any:
    """The JSON value of a request body within the size limit, or raise :class:`RequestError`."""
    if len(body) > max_bytes:
        raise RequestError(
            413, f"request body of {len(body)} bytes is over the limit of {max_bytes}", None
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = "the request body is empty" if not body.strip() else f"not valid JSON ({exc})"
        raise RequestError(400, problem, None) from None


def load_body(body: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Parse a request body into a JSON object, or raise :class:`RequestError`."""
    data = decode_body(body, max_bytes)
    if type(data) is not dict:
        raise RequestError(400, "the request body must be a JSON object", None)
    return data


#: The bytes of JSON numbers and structure, but for the exponent's e: deleting them leaves a
#: body's strings and its true, false and null whole (each is a run of letters no deleted
#: byte splits), in a few hundred bytes to search instead of the whole body.
_NUMBERS_AND_STRUCTURE = b"0123456789.,-+[]{}: \t\r\n"


def _words(body: bytes) -> bytes:
    """What of ``body`` is not numbers or structure: its strings, true, false and null (and
    exponents' e). A small body is searched as it is."""
    return body if len(body) < 4096 else body.translate(None, _NUMBERS_AND_STRUCTURE)


def _no_bools(words: bytes) -> bool:
    """Whether no value can be a bool: neither ``true`` nor ``false`` is in the body's
    :func:`_words`, which a float column's fast path needs to know (a string holding one of
    the words only costs that request the fast path)."""
    return b"true" not in words and b"false" not in words


def _plain_split(words: bytes) -> bool:
    """Whether the body's text names each key of ``{"dataframe_split": {"columns": ...,
    "data": ...}}`` once and escapes nothing, so that the JSON orjson read is the one any
    reader would (no key given twice, even spelled with escapes): only then is the body
    kept as the prediction log's text."""
    return (
        b"\\" not in words
        and words.count(b'"data"') == 1
        and words.count(b'"columns"') == 1
        and words.count(b'"dataframe_split"') == 1
    )


#: Where a dataframe_split body names its one key: bodies that do not there (instances,
#: records) are not read twice.
_SPLIT_KEY_WITHIN = 256


def parse_predict(
    body: bytes, schema: InputSchema, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> InferRequest:
    """Parse a ``/predict`` body (instances, dataframe_split, dataframe_records or inputs)."""
    if len(body) <= max_bytes and body.find(b'"dataframe_split"', 0, _SPLIT_KEY_WITHIN) >= 0:
        split = schema.split_body(body)  # the usual request, read without Python floats
        if split is not None:
            return InferRequest(split)
    data = load_body(body, max_bytes)
    given = [key for key in PREDICT_FORMATS if key in data]
    if len(given) != 1 or len(data) != 1:
        extra = [key for key in data if key not in PREDICT_FORMATS]
        problem = f"unknown key {extra[0]!r}; " if extra else ""
        raise RequestError(
            400,
            f"{problem}send exactly one of {', '.join(PREDICT_FORMATS)}",
            extra[0] if extra else None,
        )
    key = given[0]
    value = data[key]
    words = _words(body)
    no_bools = _no_bools(words)
    if schema.tensor is not None:
        if key not in ("inputs", "instances"):
            raise RequestError(
                400,
                f"{key}: this model takes a tensor of shape {list(schema.tensor.shape)}; "
                'send {"inputs": [[...], ...]}',
                key,
            )
        return InferRequest(schema.from_tensor(value, key, one_row=True))
    if key == "dataframe_split":
        kept = body if _plain_split(words) else None
        return InferRequest(schema.from_split(value, key, no_bools=no_bools, body=kept))
    if key == "inputs" and type(value) is dict:
        return InferRequest(schema.from_columns(value, key))
    return InferRequest(schema.from_records(value, key, no_bools=no_bools))


def parse_infer(
    body: bytes,
    schema: InputSchema,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    outputs: tuple[str, ...] = OUTPUTS,
    model: str | None = None,
    version: str | None = None,
    url_version: str | None = None,
    header_length: str | None = None,
) -> InferRequest:
    """Parse an Open Inference Protocol v2 infer request.

    Args:
        outputs: the output names this model can give (``predict_proba`` only if it has one).
        model: the model name in the URL; a ``model_name`` in the body must be the same.
        version: the version answering; a ``model_version`` in the body must be the same.
        url_version: the version the URL names, if any (for the error message).
        header_length: the ``Inference-Header-Content-Length`` header: the body is that many
            bytes of JSON followed by binary tensor data.
    """
    if len(body) > max_bytes:
        raise RequestError(
            413, f"request body of {len(body)} bytes is over the limit of {max_bytes}", None
        )
    header, raw = binary.split_body(body, header_length)
    data = load_body(header, max_bytes)
    extra = data.keys() - _INFER_KEYS
    if extra:
        key = sorted(extra)[0]
        raise RequestError(400, f"unknown key {key!r}; an infer request has {_keys()}", key)
    request_id = data.get("id")
    if request_id is not None and type(request_id) is not str:
        raise RequestError(400, "id: must be a string", "id")
    _check_target(data, model, version, url_version)
    inputs = data.get("inputs")
    if type(inputs) is not list or not inputs:
        raise RequestError(400, "inputs: expected a non-empty array of input tensors", "inputs")
    sections = binary.Sections(raw, header_length is not None)
    tensors = [_tensor(t, f"inputs[{i}]", sections) for i, t in enumerate(inputs)]
    sections.finish()
    wanted, binary_outputs = _requested_outputs(data, outputs)
    if schema.tensor is not None:
        if len(tensors) != 1:
            raise RequestError(
                422, f"inputs: this model takes one input tensor, got {len(tensors)}", "inputs"
            )
        name, shape, datatype, values = tensors[0]
        if name != TENSOR_INPUT:
            raise RequestError(
                422,
                f"inputs[0].name: this model's input tensor is named {TENSOR_INPUT!r}, "
                f"got {name!r}",
                name,
            )
        _check_datatype(datatype, schema.tensor.dtype, name)
        parsed = schema.from_tensor(values, name, shape=shape)
        return InferRequest(parsed, wanted, request_id, binary_outputs)
    columns: dict[str, list] = {}
    for name, shape, datatype, values in tensors:
        if name not in schema.name_set:
            continue  # an extra column: ignored, as load_model(...).predict does (inputs.py)
        if name in columns:
            raise RequestError(400, f"inputs: column {name!r} is given twice", name)
        _check_datatype(datatype, schema.specs[schema.positions[name]].dtype, name)
        columns[name] = _column_values(name, shape, values)
    parsed = schema.from_columns(columns, "inputs")
    return InferRequest(parsed, wanted, request_id, binary_outputs)


def _keys() -> str:
    return ", ".join(sorted(_INFER_KEYS))


def _check_target(
    data: dict, model: str | None, version: str | None, url_version: str | None
) -> None:
    """Refuse a body whose ``model_name`` or ``model_version`` is not what answers."""
    for key in ("model_name", "model_version"):
        given = data.get(key)
        if given is not None and type(given) is not str:
            raise RequestError(400, f"{key}: expected a string, got {json_type(given)}", key)
    named = data.get("model_name")
    if named is not None and model is not None and named != model:
        raise RequestError(
            400,
            f"model_name: the body names model {named!r} but the URL names {model!r}; "
            "send the request to that model's URL or drop model_name",
            "model_name",
        )
    asked = data.get("model_version")
    if asked is None or version is None or asked == version:
        return
    if url_version is not None:
        where = f"the URL names version {url_version!r}"
    else:
        where = (
            f"version {version!r} answers this URL; ask that version at "
            f"/v2/models/{model}/versions/{asked}/infer"
        )
    raise RequestError(
        400, f"model_version: the body asks for version {asked!r} but {where}", "model_version"
    )


def _tensor(tensor: Any, where: str, sections: binary.Sections) -> tuple[str, list[int], str, list]:
    if type(tensor) is not dict:
        raise RequestError(400, f"{where}: expected an object (name, shape, datatype, data)", where)
    extra = tensor.keys() - _TENSOR_KEYS
    if extra:
        raise RequestError(400, f"{where}: unknown key {sorted(extra)[0]!r}", where)
    name, shape = tensor.get("name"), tensor.get("shape")
    if type(shape) is list and float in set(map(type, shape)):
        shape = [whole(d) for d in shape]  # [2.0, 3.0] is [2, 3], as for int columns
    datatype, data = tensor.get("datatype"), tensor.get("data")
    if type(name) is not str:
        raise RequestError(400, f"{where}.name: expected a string", f"{where}.name")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(400, f"{where}.shape: expected an array of non-negative integers", name)
    if type(datatype) is not str or datatype not in DATATYPES:
        got = repr(datatype) if type(datatype) is str else json_type(datatype)
        raise RequestError(
            400, f"{where}.datatype: expected one of {', '.join(DATATYPES)}, got {got}", name
        )
    parameters = tensor.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise RequestError(400, f"{where}.parameters: expected an object", name)
    if parameters is not None and "binary_data_size" in parameters:
        if "data" in tensor:
            raise RequestError(
                400, f"{where}: give data or parameters.binary_data_size, not both", name
            )
        chunk = sections.take(parameters["binary_data_size"], where)
        return name, shape, datatype, binary.decode(chunk, datatype, shape, name)
    if type(data) is not list:
        raise RequestError(400, f"{where}.data: expected an array", name)
    return name, shape, datatype, data


def _check_datatype(datatype: str, dtype: str, name: str) -> None:
    family = "float" if dtype.startswith("float") else dtype.rstrip("0123456789")
    family = "int" if family in ("int", "uint") else family
    fits = _FITS.get(family, frozenset(("BYTES",)))
    if datatype not in fits:
        raise RequestError(
            422, f"input {name!r}: datatype {datatype} cannot carry the model's {dtype}", name
        )


def _column_values(name: str, shape: list[int], values: list) -> list:
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise RequestError(
            422, f"input {name!r}: a column has shape [n] or [n, 1], got {shape}", name
        )
    if len(shape) == 2 and values and type(values[0]) is list:
        if not all(type(v) is list and len(v) == 1 for v in values):
            raise RequestError(400, f"input {name!r}: data rows must hold one value each", name)
        values = [v[0] for v in values]
    if len(values) != shape[0]:
        raise RequestError(
            400, f"input {name!r}: shape says {shape[0]} values, data has {len(values)}", name
        )
    return values


def _requested_outputs(
    data: dict, available: tuple[str, ...]
) -> tuple[tuple[str, ...], frozenset[str]]:
    """The outputs asked for, and those of them to send as binary tensor data: each output's
    own ``parameters.binary_data``, else the request's ``parameters.binary_data_output``."""
    names: list[Any] = []
    explicit: dict[Any, bool] = {}
    all_binary = False
    parameters = data.get("parameters")
    if parameters is not None:
        if type(parameters) is not dict:
            raise RequestError(400, "parameters: expected an object", "parameters")
        listed = parameters.get("outputs")
        if listed is not None:
            if type(listed) is not list:
                raise RequestError(400, "parameters.outputs: expected an array", "outputs")
            names += listed
        all_binary = _flag(parameters, "binary_data_output", "parameters")
    outputs = data.get("outputs")
    if outputs is not None:
        if type(outputs) is not list or not all(type(o) is dict for o in outputs):
            raise RequestError(400, 'outputs: expected an array of {"name": ...}', "outputs")
        for i, output in enumerate(outputs):
            name = output.get("name")
            names.append(name)
            options = output.get("parameters")
            if options is None:
                continue
            if type(options) is not dict:
                raise RequestError(400, f"outputs[{i}].parameters: expected an object", "outputs")
            if "binary_data" in options and type(name) is str:
                explicit[name] = _flag(options, "binary_data", f"outputs[{i}].parameters")
    for name in names:
        if type(name) is not str or name not in available:
            raise RequestError(
                422,
                f"outputs: unknown output {name!r}; this model gives {list(available)}",
                "outputs",
            )
    wanted = tuple(dict.fromkeys(names)) or ("predict",)
    return wanted, frozenset(name for name in wanted if explicit.get(name, all_binary))


def _flag(options: dict, key: str, where: str) -> bool:
    value = options.get(key, False)
    if type(value) is not bool:
        raise RequestError(400, f"{where}.{key}: expected true or false", key)
    return value
