"""JSON Schemas of the request bodies a deployment accepts, built from its signature.

Written as JSON Schema rather than pydantic models: they must say exactly what the hot routes
accept (value ranges, one body format, each column once), which the fuzzer in
``tests/serving/test_openapi.py`` holds them to. What JSON Schema cannot say (a tensor's shape
against its data, columns of one length) is in the descriptions. :mod:`segue.serving.openapi`
puts them in the OpenAPI document; the hot routes never use them.

Example::

    >>> schemas = request_schemas("churn", deployment)
    >>> sorted(schemas)[:2]
    ['ChurnDataframeSplit', 'ChurnInferRequest']
"""

from __future__ import annotations

import re
import sys
from typing import Any

import numpy as np

from segue.models.signature import ColumnSpec, Signature, TensorSpec
from segue.serving.deployment import Deployment
from segue.serving.protocol import DATATYPES, PREDICT_FORMATS, TENSOR_INPUT

__all__ = ["REF", "component_prefix", "request_schemas", "served_signature"]

#: How the OpenAPI document refers to a component schema.
REF = "#/components/schemas/{model}"

_FLOAT_MAX = {"float16": 65504.0, "float32": 3.4028234663852886e38, "float64": sys.float_info.max}
_SHAPE_RULE = "shape[0] is the number of values in data"
_LENGTH_RULE = "every column the same length"


def _value_schema(dtype: str) -> dict[str, Any]:
    """The JSON values a column of ``dtype`` accepts (the server's checks, ``inputs.py``)."""
    if dtype.startswith("float"):
        top = _FLOAT_MAX.get(dtype, sys.float_info.max)
        return {"type": "number", "minimum": -top, "maximum": top}
    if dtype.startswith(("int", "uint")):
        limits = np.iinfo(dtype)
        return {"type": "integer", "minimum": int(limits.min), "maximum": int(limits.max)}
    if dtype == "bool":
        return {"type": "boolean"}
    if dtype.startswith("datetime64"):
        return {"type": "string", "format": "date-time"}
    return {"type": "string"}  # string, category; timedelta64 as text ("1 days 02:00:00")


def _column_schema(spec: ColumnSpec) -> dict[str, Any]:
    value = _value_schema(spec.dtype)
    if spec.nullable:
        value = {"anyOf": [value, {"type": "null"}]}
    return {**value, "description": spec.dtype + (", nullable" if spec.nullable else "")}


def _fits(dtype: str) -> list[str]:
    """The OIP datatypes a column or tensor of ``dtype`` may be sent as."""
    if dtype.startswith("float"):
        return [d for d in DATATYPES if d.startswith(("FP", "INT", "UINT"))]
    if dtype.startswith(("int", "uint")):
        return [d for d in DATATYPES if d.startswith(("INT", "UINT"))]
    return ["BOOL"] if dtype == "bool" else ["BYTES"]


def _rows(items: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "items": items, "description": description}


def component_prefix(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def request_schemas(name: str, deployment: Deployment) -> dict[str, dict[str, Any]]:
    """JSON Schemas of the bodies this deployment accepts, by component name.

    ``<Prefix>PredictRequest`` (``/predict``) and ``<Prefix>InferRequest`` (OIP infer) refer to
    the others with ``#/components/schemas/...``.
    """
    prefix = component_prefix(name) or "Model"
    inputs = served_signature(deployment).inputs
    if isinstance(inputs, TensorSpec):
        components = _tensor_schemas(prefix, inputs)
    else:
        components = _column_schemas(prefix, inputs)
    ref = REF.format(model=f"{prefix}InputTensor")
    outputs = list(deployment.outputs)
    requested = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"enum": outputs},
            "parameters": {
                "type": ["object", "null"],
                "properties": {"binary_data": {"type": "boolean"}},
            },
        },
    }
    parameters = {
        "type": ["object", "null"],
        "properties": {
            "outputs": {"type": ["array", "null"], "items": {"enum": outputs}},
            "binary_data_output": {
                "type": "boolean",
                "description": "answer every output as binary tensor data "
                "(application/octet-stream: JSON, then the raw tensors)",
            },
        },
    }
    infer_inputs = components.pop("_inputs")
    components[f"{prefix}InferRequest"] = {
        "title": f"{prefix}InferRequest",
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": ["string", "null"], "description": "echoed in the response"},
            "model_name": {"enum": [name, None], "description": "as in the URL, if given"},
            "model_version": {
                "enum": [deployment.version, None],
                "description": "the version answering, if given",
            },
            "inputs": {"type": "array", "minItems": 1, "items": {"$ref": ref}, **infer_inputs},
            "parameters": parameters,
            "outputs": {"type": ["array", "null"], "items": requested},
        },
    }
    return components


def _column_schemas(prefix: str, specs: tuple[ColumnSpec, ...]) -> dict[str, dict[str, Any]]:
    names = [spec.name for spec in specs]
    columns = {spec.name: _column_schema(spec) for spec in specs}
    required = [spec.name for spec in specs if not spec.nullable]
    record = {
        "title": f"{prefix}Record",
        "type": "object",
        "properties": columns,
        "required": required,
        "description": "one row: column -> value; other keys are ignored",
    }
    record_ref = {"$ref": REF.format(model=f"{prefix}Record")}
    split = {
        "title": f"{prefix}DataframeSplit",
        "type": "object",
        "required": ["columns", "data"],
        "additionalProperties": False,
        "description": "MLflow's split format, columns in the signature's order (other "
        "orders and extra columns are accepted too, each row as wide as columns)",
        "properties": {
            "columns": {
                "type": "array",
                "prefixItems": [{"const": n} for n in names],
                "minItems": len(names),
                "maxItems": len(names),
            },
            "data": _rows(
                {
                    "type": "array",
                    "prefixItems": [columns[n] for n in names],
                    "minItems": len(names),
                    "maxItems": len(names),
                },
                "rows, values in the order of columns",
            ),
            "index": {"description": "row labels (ignored)"},
        },
    }
    by_column = {
        "type": "object",
        "properties": {n: _rows(columns[n], "the column's values") for n in names},
        "required": required,
        "minProperties": 1,
        "additionalProperties": {"type": "array", "description": "another column: ignored"},
        "description": f"columns: name -> values, {_LENGTH_RULE}",
    }
    formats = {
        "instances": _rows(record_ref, "rows as objects"),
        "dataframe_split": {"$ref": REF.format(model=f"{prefix}DataframeSplit")},
        "dataframe_records": _rows(record_ref, "rows as objects (as instances)"),
        "inputs": by_column,
    }
    predict = {
        "title": f"{prefix}PredictRequest",
        "description": f"exactly one of {', '.join(PREDICT_FORMATS)}",
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {key: formats[key]},
                "additionalProperties": False,
            }
            for key in PREDICT_FORMATS
        ],
    }
    variants = [_column_tensor(spec, columns[spec.name]) for spec in specs]
    variants.append(
        {
            "type": "object",
            "title": "other",
            "description": "a tensor the signature does not name: ignored",
            "required": ["name", "shape", "datatype", "data"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "not": {"enum": names}},
                "shape": {"type": "array", "items": _DIMENSION},
                "datatype": {"enum": list(DATATYPES)},
                "data": {"type": "array"},
                "parameters": _TENSOR_PARAMETERS,
            },
        }
    )
    tensor = {
        "title": f"{prefix}InputTensor",
        "description": f"one column of the signature, {_SHAPE_RULE}",
        "oneOf": variants,
    }
    once = [
        {
            "contains": {"properties": {"name": {"const": spec.name}}, "required": ["name"]},
            "minContains": 0 if spec.nullable else 1,
            "maxContains": 1,
        }
        for spec in specs
    ]
    return {
        f"{prefix}Record": record,
        f"{prefix}DataframeSplit": split,
        f"{prefix}PredictRequest": predict,
        f"{prefix}InputTensor": tensor,
        "_inputs": {
            "allOf": once,
            "description": f"one tensor per column, each column once, {_LENGTH_RULE}",
        },
    }


#: One dimension of a tensor's shape: a JSON integer that fits 64 bits.
_DIMENSION: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
#: A tensor's ``parameters``: binary tensor data needs the Inference-Header-Content-Length
#: header, which a plain JSON body does not have.
_TENSOR_PARAMETERS: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {"binary_data_size": False},
}


def _column_tensor(spec: ColumnSpec, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "title": spec.name,
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
        "properties": {
            "name": {"const": spec.name},
            "shape": {
                "type": "array",
                "prefixItems": [{"type": "integer", "minimum": 1}, {"const": 1}],
                "minItems": 1,
                "maxItems": 2,
                "description": f"[n] or [n, 1]; {_SHAPE_RULE}",
            },
            "datatype": {"enum": _fits(spec.dtype)},
            "data": {
                "type": "array",
                "minItems": 1,
                "items": value,
                "description": "the values (for shape [n, 1] also [[v], ...])",
            },
            "parameters": _TENSOR_PARAMETERS,
        },
    }


def _tensor_schemas(prefix: str, spec: TensorSpec) -> dict[str, dict[str, Any]]:
    value = _value_schema(spec.dtype)
    row: dict[str, Any] = value  # one row: nested to the shape past its first dimension
    for d in reversed(spec.shape[1:]):
        size = {} if d == -1 else {"minItems": d, "maxItems": d}
        row = {"type": "array", "items": row, **size}
    rows = {"type": "array", "minItems": 1, "items": row}
    shape = {
        "type": "array",
        "prefixItems": [
            {"type": "integer", "minimum": 1} if d == -1 else {"const": d} for d in spec.shape
        ],
        "minItems": len(spec.shape),
        "maxItems": len(spec.shape),
        "description": f"{list(spec.shape)} (-1: any); the data fills it",
    }
    flat = {"type": "array", "minItems": 1, "items": value}
    tensor = {
        "title": f"{prefix}InputTensor",
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
        "properties": {
            "name": {"const": TENSOR_INPUT},
            "shape": shape,
            "datatype": {"enum": _fits(spec.dtype)},
            "data": {
                "anyOf": [flat, rows],
                "description": "flat (row-major, as many values as the shape holds) or "
                "nested to the shape",
            },
            "parameters": _TENSOR_PARAMETERS,
        },
    }
    # MLflow's inputs: rows, or (for a 2-D signature) one flat row.
    accepted = [rows, row] if len(spec.shape) == 2 else [rows]
    predict = {
        "title": f"{prefix}PredictRequest",
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {
                    key: {"oneOf": accepted, "description": f"rows, shape {list(spec.shape)}"}
                },
                "additionalProperties": False,
            }
            for key in ("inputs", "instances")
        ],
    }
    return {
        f"{prefix}InputTensor": tensor,
        f"{prefix}PredictRequest": predict,
        "_inputs": {"maxItems": 1, "description": "the one input tensor"},
    }


def served_signature(deployment: Deployment) -> Signature:
    """The signature of a served model (the server refuses models without one)."""
    signature = deployment.model.signature
    assert signature is not None, "a served model has a signature (InputSchema refuses others)"
    return signature
