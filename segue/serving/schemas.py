"""The inference API described for people: OIP metadata and OpenAPI built from signatures.

Pydantic models here exist only to write JSON Schema for ``/openapi.json`` and ``/docs``; the
hot routes never build them. The request schemas and examples of ``/predict`` and ``infer``
come from each served model's signature and input example, so ``/docs`` shows the real
column names and dtypes (:mod:`segue.serving.request_schemas`: plain JSON Schema, exact enough
that Schemathesis finds no request the document and the server judge differently).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from segue.models.signature import TensorSpec
from segue.serving.deployment import Deployment, ServedModels
from segue.serving.protocol import DATATYPES, PREDICT_FORMATS
from segue.serving.request_schemas import (
    REF,
    component_prefix,
    request_schemas,
    served_signature,
)
from segue.version import __version__

__all__ = [
    "description",
    "feedback_request",
    "feedback_responses",
    "metadata_responses",
    "model_metadata",
    "openapi",
]

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
    signature = served_signature(deployment)
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


class RouteStatus(BaseModel):
    """One route of a served name: the version serving it, and the one its alias points at
    while that one is not serving yet (loading, or failing to load: ``error`` says why)."""

    route: str = Field(examples=["churn@champion"])
    role: str = Field(examples=["primary"])
    serving: str | None = Field(examples=["2"])
    wanted: str | None = Field(None, examples=["3"])
    error: str | None = None


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str = Field(examples=["segue-sklearn"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    routes: list[RouteStatus] | None = Field(
        None, description="Segue's extension (/v2/models/{name} only): each route's versions"
    )


class ErrorBody(BaseModel):
    """Every error: what is wrong, the field at fault (if one) and the request id."""

    error: str
    field: str | None = None
    request_id: str | None = None


class OutputTensor(BaseModel):
    name: Literal["predict", "predict_proba"] | str
    datatype: str
    shape: list[int]
    data: list[Any] | None = Field(None, description="row-major, flattened")
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size, for an output sent as binary tensor data"
    )


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
        "ready": {
            200: {"model": Ready},
            400: {"model": Ready, "description": "not ready"},
            404: {**error, "description": "model or version not served"},
        },
        "model": {200: {"model": ModelMetadata}, 404: error},
    }


def feedback_responses() -> dict[int | str, Any]:
    """``responses=`` documenting ``POST /feedback`` (docs only)."""
    error = {"model": ErrorBody, "description": "error"}
    return {
        202: {"model": FeedbackAccepted},
        **{status: error for status in (400, 404, 409, 413, 415, 422)},
    }


def feedback_request() -> dict[str, Any]:
    """The request body of ``POST /feedback``, for ``openapi_extra`` (docs only)."""
    item = {
        "type": "object",
        "required": ["request_id", "label"],
        "additionalProperties": False,
        "properties": {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": "^[ -~]+$",
                "description": "the x-request-id of the prediction (printable ASCII)",
            },
            "label": {
                "oneOf": [
                    {"type": ["string", "number", "boolean"]},
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": ["string", "number", "boolean"]},
                    },
                ],
                "description": "the true label, a value the version that answered can "
                "predict: one of a classifier's classes, a finite number for a regressor "
                "(409 otherwise); a list of one per row for a prediction of several rows",
            },
            "model": {
                "type": ["string", "null"],
                "description": "the served name (default: the first)",
            },
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
    paths = spec.setdefault("paths", {})
    _drop_unused_validation_errors(spec)
    versions = [v for served in models for v in served.versions]
    _list_path_values(paths, {"name": [s.name for s in models], "version": versions})
    metrics = paths.get("/metrics", {}).get("get")
    if metrics is not None:
        text = {"text/plain": {"schema": {"type": "string"}}}
        metrics["responses"]["200"] = {"description": "Prometheus text format", "content": text}
    refs, definitions = models_json_schema(
        [(m, "validation") for m in (ErrorBody, PredictResponse, InferResponse)],
        ref_template=REF,
    )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions.get("$defs", {}))
    error, predicted, inferred = (
        refs[(m, "validation")] for m in (ErrorBody, PredictResponse, InferResponse)
    )
    errors = {
        str(status): {"description": text, "content": {_JSON: {"schema": error}}}
        for status, text in _HOT_ERRORS
    }
    served = [(s.name, s.current) for s in models if s.current is not None]
    for k, (name, deployment) in enumerate(served):
        built = request_schemas(name, deployment)
        schemas.update(built)
        prefix = component_prefix(name) or "Model"
        if k == 0:
            paths["/predict"] = {
                "post": _operation(
                    f"Predict with {name}",
                    "Rows in, one prediction per row out.",
                    {"$ref": REF.format(model=f"{prefix}PredictRequest")},
                    _predict_examples(deployment),
                    {_JSON: {"schema": predicted}},
                    errors,
                )
            }
        example = _infer_example(deployment)
        operation = _operation(
            f"Infer with {name} (Open Inference Protocol v2)",
            "Each input tensor is one column of the signature (or the whole tensor). Binary "
            "tensor data (the Inference-Header-Content-Length header, raw tensors after the "
            "JSON) is accepted too.",
            {"$ref": REF.format(model=f"{prefix}InferRequest")},
            {"example": {"value": example}} if example else {},
            {
                _JSON: {"schema": inferred},
                "application/octet-stream": {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": "binary outputs asked for: the JSON response (its size "
                        "in the Inference-Header-Content-Length header), then the raw tensors",
                    }
                },
            },
            errors,
        )
        operation["operationId"] = f"infer_{component_prefix(name) or 'model'}"
        paths[f"/v2/models/{name}/infer"] = {"post": operation}
        versioned = dict(operation, operationId=operation["operationId"] + "_version")
        paths[f"/v2/models/{name}/versions/{deployment.version}/infer"] = {"post": versioned}
    return spec


_JSON = "application/json"
#: What the hot routes answer besides 200 (errors are ErrorBody JSON).
_HOT_ERRORS = (
    (400, "malformed body"),
    (404, "model or version not served"),
    (408, "the body did not arrive in time"),
    (413, "body too large"),
    (422, "data does not fit the model's signature"),
    (500, "the model failed"),
    (503, "the model is still loading, or the server is stopping"),
)


def _list_path_values(paths: dict[str, Any], values: dict[str, list[str]]) -> None:
    """Give the ``{name}`` and ``{version}`` path parameters the served names and versions
    (a menu in ``/docs``; any other value is answered 404)."""
    for operations in paths.values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                known = values.get(parameter["name"]) if parameter["in"] == "path" else None
                if known:
                    parameter["schema"] = {**parameter["schema"], "enum": sorted(set(known))}


def _drop_unused_validation_errors(spec: dict[str, Any]) -> None:
    """Remove FastAPI's automatic 422 ``HTTPValidationError`` answers: the routes take plain
    string path parameters only, so FastAPI never validates anything and never sends one."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            content = answer.get("content", {}).get(_JSON, {}).get("schema", {})
            if content.get("$ref", "").endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _operation(
    summary: str,
    text: str,
    request: dict[str, Any],
    examples: dict[str, Any],
    content: dict[str, Any],
    errors: dict[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": request}
    if examples:
        body["examples"] = examples
    return {
        "summary": summary,
        "description": text,
        "operationId": re.sub(r"\W+", "_", summary.lower()).strip("_"),
        "requestBody": {"required": True, "content": {_JSON: body}},
        "responses": {"200": {"description": "predictions", "content": content}, **errors},
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
    inputs = served_signature(deployment).inputs
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
