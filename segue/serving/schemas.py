"""The inference API described for people: OIP metadata and OpenAPI built from signatures.

Pydantic models here exist only to write JSON Schema for ``/openapi.json`` and ``/docs``; the
hot routes never build them. The request schemas and examples of ``/predict`` and ``infer``
come from each served model's signature and input example, so ``/docs`` shows the real
column names and dtypes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from segue.models.signature import ColumnSpec, TensorSpec
from segue.serving.deployment import Deployment, ServedModels
from segue.serving.protocol import DATATYPES, PREDICT_FORMATS
from segue.version import __version__

__all__ = [
    "description",
    "feedback_request",
    "feedback_responses",
    "metadata_responses",
    "model_metadata",
    "openapi",
]

_REF = "#/components/schemas/{model}"
_TO_DATATYPE = {dtype: datatype for datatype, dtype in DATATYPES.items()}


# --- OIP metadata --------------------------------------------------------------------------


def oip_datatype(dtype: str) -> str:
    """The OIP datatype carrying a signature dtype (BYTES for text, categories and times)."""
    return _TO_DATATYPE.get(dtype, "BYTES")


def model_metadata(
    name: str, deployment: Deployment, versions: list[str] | None = None
) -> dict[str, Any]:
    """The OIP model metadata response: name, versions, platform, inputs and outputs.

    ``versions``: every version answering for ``name`` (one per route); default the
    deployment's. Inputs and outputs are ``deployment``'s.
    """
    model = deployment.model
    signature = model.signature
    inputs = signature.inputs
    if isinstance(inputs, TensorSpec):
        tensors = [_tensor("input", inputs)]
    else:
        tensors = [
            {"name": c.name, "datatype": oip_datatype(c.dtype), "shape": [-1]} for c in inputs
        ]
    outputs = signature.outputs
    if isinstance(outputs, TensorSpec):
        results = [_tensor("predict", outputs)]
    elif outputs is None:
        results = [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
    else:
        results = [
            {"name": c.name, "datatype": oip_datatype(c.dtype), "shape": [-1]} for c in outputs
        ]
    if "predict_proba" in deployment.outputs:
        classes = -1 if signature.classes is None else len(signature.classes)
        results.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, classes]})
    return {
        "name": name,
        "versions": versions or [deployment.version],
        "platform": f"segue-{model.flavor}",
        "inputs": tensors,
        "outputs": results,
    }


def _tensor(name: str, spec: TensorSpec) -> dict[str, Any]:
    return {"name": name, "datatype": oip_datatype(spec.dtype), "shape": list(spec.shape)}


# --- fixed response models -----------------------------------------------------------------


class ServerMetadata(BaseModel):
    name: str = Field(examples=["segue"])
    version: str = Field(examples=[__version__])
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool
    name: str | None = Field(None, description="the model, for a model readiness request")


class TensorMetadata(BaseModel):
    name: str
    datatype: str = Field(examples=["FP64"])
    shape: list[int] = Field(examples=[[-1]])


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str = Field(examples=["segue-sklearn"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ErrorBody(BaseModel):
    """Every error: what is wrong, the field at fault (if one) and the request id."""

    error: str
    field: str | None = None
    request_id: str | None = None


class OutputTensor(BaseModel):
    name: Literal["predict", "predict_proba"] | str
    datatype: str
    shape: list[int]
    data: list[Any] = Field(description="row-major, flattened")


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str = Field(description="the request's id, else the x-request-id")
    outputs: list[OutputTensor]


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="one prediction per input row")
    model: str
    version: str
    request_id: str
    route: str = Field(description="the route that answered (also the x-segue-route header)")


class FeedbackAccepted(BaseModel):
    accepted: int = Field(description="labels accepted; written to the feedback log")


def metadata_responses() -> dict[str, dict[int | str, Any]]:
    """``responses=`` arguments documenting the metadata routes (docs only)."""
    error = {"model": ErrorBody, "description": "error"}
    return {
        "server": {200: {"model": ServerMetadata}},
        "live": {200: {"model": Live}},
        "ready": {200: {"model": Ready}, 400: {"model": Ready, "description": "not ready"}},
        "model": {200: {"model": ModelMetadata}, 404: error},
    }


def feedback_responses() -> dict[int | str, Any]:
    """``responses=`` documenting ``POST /feedback`` (docs only)."""
    error = {"model": ErrorBody, "description": "error"}
    return {202: {"model": FeedbackAccepted}, 400: error, 404: error, 413: error}


def feedback_request() -> dict[str, Any]:
    """The request body of ``POST /feedback``, for ``openapi_extra`` (docs only)."""
    item = {
        "type": "object",
        "required": ["request_id", "label"],
        "additionalProperties": False,
        "properties": {
            "request_id": {
                "type": "string",
                "maxLength": 128,
                "description": "the x-request-id of the prediction",
            },
            "label": {"description": "the true label: any JSON value"},
            "model": {"type": "string", "description": "the served name (default: the first)"},
        },
    }
    schema = {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]}
    example = {"request_id": "3f1c9a0e5b7d4e21a8c6f0b2d4e6a8c0", "label": 1}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


# --- request schemas from a signature ------------------------------------------------------
#
# Written as JSON Schema rather than pydantic models: they must say exactly what the hot
# routes accept (value ranges, one body format, each column once), which the fuzzer in
# tests/serving/test_openapi.py holds them to. What JSON Schema cannot say (a tensor's shape
# against its data, columns of one length) is in the descriptions.

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


def request_schemas(name: str, deployment: Deployment) -> dict[str, dict[str, Any]]:
    """JSON Schemas of the bodies this deployment accepts, by component name.

    ``<Prefix>PredictRequest`` (``/predict``) and ``<Prefix>InferRequest`` (OIP infer) refer to
    the others with ``#/components/schemas/...``.
    """
    prefix = _prefix(name) or "Model"
    inputs = deployment.model.signature.inputs
    if isinstance(inputs, TensorSpec):
        components = _tensor_schemas(prefix, inputs)
    else:
        components = _column_schemas(prefix, inputs)
    ref = _REF.format(model=f"{prefix}InputTensor")
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
        "additionalProperties": False,
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
    record_ref = {"$ref": _REF.format(model=f"{prefix}Record")}
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
        "description": f"columns: name -> values, {_LENGTH_RULE}; other keys are ignored",
    }
    formats = {
        "instances": _rows(record_ref, "rows as objects"),
        "dataframe_split": {"$ref": _REF.format(model=f"{prefix}DataframeSplit")},
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
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
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
    nested: dict[str, Any] = value
    for _ in spec.shape:
        nested = {"anyOf": [value, {"type": "array", "items": nested}]}
    shape = {
        "type": "array",
        "prefixItems": [
            {"type": "integer", "minimum": 1} if d == -1 else {"const": d} for d in spec.shape
        ],
        "minItems": len(spec.shape),
        "maxItems": len(spec.shape),
        "description": f"{list(spec.shape)} (-1: any); the data fills it",
    }
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
                "type": "array",
                "minItems": 1,
                "items": nested,
                "description": "flat (row-major) or nested to the shape",
            },
            "parameters": _TENSOR_PARAMETERS,
        },
    }
    predict = {
        "title": f"{prefix}PredictRequest",
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "inputs": _rows(nested, f"rows, shape {list(spec.shape)} (one row may be flat)")
        },
    }
    return {
        f"{prefix}InputTensor": tensor,
        f"{prefix}PredictRequest": predict,
        "_inputs": {"maxItems": 1, "description": "the one input tensor"},
    }


# --- OpenAPI -------------------------------------------------------------------------------


def description(models: ServedModels) -> str:
    names = ", ".join(f"`{served.name}`" for served in models)
    return (
        f"Serving {names}. Open Inference Protocol v2 under `/v2`, plain JSON at `POST /predict` "
        f"(one of {', '.join(f'`{f}`' for f in PREDICT_FORMATS)}), Prometheus metrics at "
        '`/metrics`. Errors are `{"error", "field", "request_id"}` with a 4xx status; '
        "500 only when the model itself fails."
    )


def openapi(app: FastAPI, models: ServedModels) -> dict[str, Any]:
    """The app's OpenAPI document, with the hot routes described from the served signatures.

    Built on each call (cheap, and a swapped deployment may have another signature).
    """
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    per_model = [
        (served.name, served.current, request_models(served.name, served.current))
        for served in models
        if served.current is not None
    ]
    fixed = [ErrorBody, PredictResponse, InferResponse]
    listed = [(m, "validation") for m in fixed]
    for _, _, built in per_model:
        listed += [(built["predict"], "validation"), (built["infer"], "validation")]
    refs, definitions = models_json_schema(listed, ref_template=_REF)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions.get("$defs", {}))

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation")]

    errors = {
        str(status): {
            "description": text,
            "content": {"application/json": {"schema": ref(ErrorBody)}},
        }
        for status, text in (
            (400, "malformed body"),
            (404, "model or version not served"),
            (413, "body too large"),
            (422, "data does not fit the model's signature"),
            (500, "the model failed"),
        )
    }
    paths = spec.setdefault("paths", {})
    if per_model:
        name, deployment, built = per_model[0]
        paths["/predict"] = {
            "post": _operation(
                f"Predict with {name}",
                "Rows in, one prediction per row out.",
                ref(built["predict"]),
                _predict_examples(deployment),
                ref(PredictResponse),
                errors,
            )
        }
    for name, deployment, built in per_model:
        example = _infer_example(deployment)
        operation = _operation(
            f"Infer with {name} (Open Inference Protocol v2)",
            "Each input tensor is one column of the signature (or the whole tensor).",
            ref(built["infer"]),
            {"example": {"value": example}} if example else {},
            ref(InferResponse),
            errors,
        )
        operation["operationId"] = f"infer_{_prefix(name) or 'model'}"
        paths[f"/v2/models/{name}/infer"] = {"post": operation}
        versioned = dict(operation, operationId=operation["operationId"] + "_version")
        paths[f"/v2/models/{name}/versions/{deployment.version}/infer"] = {"post": versioned}
    return spec


def _operation(
    summary: str,
    text: str,
    request: dict[str, Any],
    examples: dict[str, Any],
    response: dict[str, Any],
    errors: dict[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": request}
    if examples:
        body["examples"] = examples
    return {
        "summary": summary,
        "description": text,
        "operationId": re.sub(r"\W+", "_", summary.lower()).strip("_"),
        "requestBody": {"required": True, "content": {"application/json": body}},
        "responses": {
            "200": {
                "description": "predictions",
                "content": {"application/json": {"schema": response}},
            },
            **errors,
        },
    }


def _predict_examples(deployment: Deployment) -> dict[str, Any]:
    example = deployment.input_example
    if not example:
        return {}
    examples = {"dataframe_split" if "dataframe_split" in example else "inputs": {"value": example}}
    split = example.get("dataframe_split")
    if split:
        records = [dict(zip(split["columns"], row, strict=True)) for row in split["data"]]
        examples["instances"] = {"value": {"instances": records[:2]}}
    return examples


def _infer_example(deployment: Deployment) -> dict[str, Any] | None:
    example = deployment.input_example
    if not example:
        return None
    split = example.get("dataframe_split")
    inputs = deployment.model.signature.inputs
    if split and not isinstance(inputs, TensorSpec):
        dtypes = {c.name: c.dtype for c in inputs}
        rows = split["data"][:2]
        tensors = [
            {
                "name": column,
                "shape": [len(rows)],
                "datatype": oip_datatype(dtypes.get(column, "string")),
                "data": [row[k] for row in rows],
            }
            for k, column in enumerate(split["columns"])
        ]
        return {"inputs": tensors}
    if "inputs" in example and isinstance(inputs, TensorSpec):
        rows = example["inputs"][:2]
        shape = [len(rows), *list(inputs.shape[1:])]
        return {
            "inputs": [
                {
                    "name": "input",
                    "shape": shape,
                    "datatype": oip_datatype(inputs.dtype),
                    "data": rows,
                }
            ]
        }
    return None
