"""The inference server's response bodies, written with orjson (pure, no I/O).

``/predict`` answers ``{"predictions", "model", "version", "request_id", "route"?}``; an OIP
infer call answers ``{"model_name", "model_version", "id", "outputs"}``, with the outputs a
client asked for as bytes after the JSON (the binary tensor data extension,
:mod:`segue.serving.binary`); every error is ``{"error", "field", "request_id"}``.

Example::

    >>> error_body("inputs: expected an array", "inputs", "9f2c")
    b'{"error":"inputs: expected an array","field":"inputs","request_id":"9f2c"}'
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import orjson
import pandas as pd

from segue.serving import binary

__all__ = ["datatype_of", "error_body", "infer_response", "predict_response"]

_DUMPS = orjson.OPT_SERIALIZE_NUMPY


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype naming a NumPy array's dtype (BYTES for text and objects)."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{array.dtype.itemsize * 8}"
    if kind == "f":
        return f"FP{array.dtype.itemsize * 8}"
    return "BYTES"


def predict_response(
    predictions: Any, *, model: str, version: str, request_id: str, route: str | None = None
) -> bytes:
    """``{"predictions": [...], "model", "version", "request_id"}`` (and ``"route"``: the
    label of the route that answered, when given)."""
    if isinstance(predictions, pd.DataFrame):
        predictions = predictions.to_dict(orient="records")
    body = {"predictions": predictions, "model": model, "version": version}
    body["request_id"] = request_id
    if route is not None:
        body["route"] = route
    return orjson.dumps(body, option=_DUMPS, default=_plain)


def infer_response(
    outputs: Mapping[str, Any],
    *,
    model: str,
    version: str,
    request_id: str,
    binary_outputs: Collection[str] = (),
) -> tuple[bytes, int | None]:
    """An OIP infer response: one output tensor per entry (a DataFrame gives one per column).

    Outputs named in ``binary_outputs`` go as raw bytes after the JSON (the binary tensor data
    extension). Returns the body and the size of its JSON part when some output is binary
    (the ``Inference-Header-Content-Length`` to send), else None.
    """
    tensors = []
    raw: list[bytes] = []
    for name, value in outputs.items():
        as_bytes = name in binary_outputs
        if isinstance(value, pd.DataFrame):
            tensors += [_output(str(c), value[c].to_numpy(), raw, as_bytes) for c in value.columns]
        else:
            tensors.append(_output(name, value, raw, as_bytes))
    body = {"model_name": model, "model_version": version, "id": request_id, "outputs": tensors}
    header = orjson.dumps(body, option=_DUMPS, default=_plain)
    if not raw:
        return header, None
    return b"".join((header, *raw)), len(header)


def _output(name: str, value: Any, raw: list[bytes], as_bytes: bool) -> dict[str, Any]:
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    datatype = datatype_of(array)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if as_bytes:
        data = binary.encode(array, datatype)
        tensor["parameters"] = {"binary_data_size": len(data)}
        raw.append(data)
        return tensor
    flat = array.reshape(-1)
    tensor["data"] = flat if array.dtype.kind in "biuf" else [_scalar(v) for v in flat.tolist()]
    return tensor


def _scalar(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def error_body(message: str, field: str | None, request_id: str | None) -> bytes:
    """``{"error": message, "field": ..., "request_id": ...}``."""
    return orjson.dumps({"error": message, "field": field, "request_id": request_id})


def _plain(value: Any) -> Any:
    """orjson's fallback for what it cannot write natively."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Series, pd.Index)):
        return value.tolist()
    return str(value)
