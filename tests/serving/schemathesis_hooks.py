"""Schemathesis hooks for ``tests/serving/test_openapi.py`` (loaded via ``SCHEMATHESIS_HOOKS``).

JSON Schema cannot relate one value to another, so the OpenAPI document states two rules of
the inference API in words: an OIP tensor's ``shape[0]`` is the number of values in its
``data``, and the columns of one request have one length. Schemathesis' positive cases
(bodies it expects the server to accept) are made to keep those two rules; everything else
about them, and every negative case, is left as generated.

A label that does not fit the prediction it names is a conflict with what the server answered
(409), which Schemathesis accepts for a valid body, so no failure is filtered out.
"""

from __future__ import annotations

import math
from typing import Any

import schemathesis
from schemathesis.generation import GenerationMode


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    body = case.body
    if not isinstance(body, dict):
        return case
    if case.path.endswith("/infer") and isinstance(body.get("inputs"), list):
        tensors = [t for t in body["inputs"] if isinstance(t, dict)]
        if _takes_a_tensor(case):
            _fill_shape(tensors)
        else:
            _fit_tensors(tensors)
    elif case.path == "/predict" and isinstance(body.get("inputs"), dict):
        _same_length(body["inputs"])
    return case


def _takes_a_tensor(case: Any) -> bool:
    """Whether the model behind an infer route takes one tensor (not columns)."""
    raw = case.operation.schema.raw_schema
    body = raw["paths"][case.path]["post"]["requestBody"]["content"]["application/json"]
    name = body["schema"]["$ref"].rsplit("/", 1)[1].removesuffix("InferRequest")
    return "oneOf" not in raw["components"]["schemas"][f"{name}InputTensor"]


def _fill_shape(tensors: list[dict[str, Any]]) -> None:
    # A tensor model's one input: the shape's first dimension counts the rows of the data.
    for tensor in tensors:
        data, shape = tensor.get("data"), tensor.get("shape")
        if not (isinstance(data, list) and data and isinstance(shape, list) and shape):
            continue
        if isinstance(data[0], list) or len(shape) == 1:
            tensor["shape"] = [len(data), *shape[1:]]
            continue
        width = int(math.prod(shape[1:]))
        if width < 1:
            continue
        rows = max(len(data) // width, 1)
        tensor["data"] = (data * width)[: rows * width]  # repeated values are valid values
        tensor["shape"] = [rows, *shape[1:]]


def _fit_tensors(tensors: list[dict[str, Any]]) -> None:
    # The signature's columns have at least one value (minItems); a shorter tensor is one the
    # signature does not name, which the server ignores whatever its length.
    columns = [t for t in tensors if isinstance(t.get("data"), list) and t["data"]]
    if not columns:
        return
    n = min(len(t["data"]) for t in columns)
    for tensor in columns:
        data = tensor["data"][:n]
        shape = tensor.get("shape")
        two_d = isinstance(shape, list) and len(shape) == 2
        if two_d and any(isinstance(v, list) for v in data):
            data = [v if isinstance(v, list) else [v] for v in data]
        else:
            data = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
        tensor["data"] = data
        tensor["shape"] = [len(data), 1] if two_d else [len(data)]


def _same_length(columns: dict[str, Any]) -> None:
    # As above; here an ignored column must still be as long as the others (padded).
    arrays = [v for v in columns.values() if isinstance(v, list) and v]
    if arrays:
        n = min(len(v) for v in arrays)
        for name, values in columns.items():
            if isinstance(values, list):
                columns[name] = values[:n] + [None] * (n - len(values))
