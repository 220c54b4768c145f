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
    return {
        202: {"model": FeedbackAccepted},
        **{status: error for status in (400, 404, 413, 415, 422)},
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


# --- request models from a signature -------------------------------------------------------


_PY_TYPES: dict[str, Any] = {"bool": bool, "string": str, "category": str}


def _py_type(dtype: str) -> Any:
    if dtype in _PY_TYPES:
        return _PY_TYPES[dtype]
    if dtype.startswith(("int", "uint")):
        return int
    if dtype.startswith("float"):
        return float
    if dtype.startswith("datetime64"):
        return dt.datetime
    return str  # timedelta64: pandas-parsable text such as "1 days 02:00:00"


def _prefix(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def request_models(name: str, deployment: Deployment) -> dict[str, type[BaseModel]]:
    """Pydantic models of the ``/predict`` and ``infer`` bodies this deployment accepts."""
    prefix = _prefix(name) or "Model"
    inputs = deployment.model.signature.inputs
    outputs = Literal[deployment.outputs]  # type: ignore[valid-type]
    requested = create_model(f"{prefix}RequestedOutput", name=(outputs, ...))
    oip_parameters = create_model(
        f"{prefix}InferParameters",
        outputs=(list[outputs] | None, None),  # type: ignore[valid-type]
    )
    datatypes = Literal[tuple(DATATYPES)]  # type: ignore[valid-type]
    if isinstance(inputs, TensorSpec):
        tensor = create_model(
            f"{prefix}InputTensor",
            name=(str, Field("input")),
            shape=(list[int], Field(examples=[[1, *[max(d, 1) for d in inputs.shape[1:]]]])),
            datatype=(datatypes, Field(oip_datatype(inputs.dtype))),
            data=(list[Any], Field(description="flat (row-major) or nested to the shape")),
        )
        predict = create_model(
            f"{prefix}PredictRequest",
            inputs=(list[Any], Field(description=f"rows, shape {list(inputs.shape)}")),
        )
        predict_schema = predict
    else:
        columns = Literal[tuple(c.name for c in inputs)]  # type: ignore[valid-type]
        tensor = create_model(
            f"{prefix}InputTensor",
            name=(columns, Field(description="a column of the model's signature")),
            shape=(list[int], Field(examples=[[1]], description="[n] or [n, 1]")),
            datatype=(datatypes, ...),
            data=(list[Any], ...),
        )
        record = _record_model(f"{prefix}Record", inputs)
        split = create_model(
            f"{prefix}DataframeSplit",
            columns=(list[columns], ...),
            data=(list[list[Any]], Field(description="rows, values in the order of columns")),
        )
        predict_schema = create_model(
            f"{prefix}PredictRequest",
            __config__=ConfigDict(extra="forbid"),
            instances=(list[record] | None, Field(None, description="rows as objects")),
            dataframe_split=(split | None, Field(None, description="MLflow's split format")),
            dataframe_records=(list[record] | None, Field(None, description="as instances")),
            inputs=(
                dict[columns, list[Any]] | None,
                Field(None, description="columns: name -> values"),
            ),
        )
    infer = create_model(
        f"{prefix}InferRequest",
        __config__=ConfigDict(extra="forbid"),
        id=(str | None, None),
        inputs=(list[tensor], ...),
        parameters=(oip_parameters | None, None),
        outputs=(list[requested] | None, None),
    )
    return {"predict": predict_schema, "infer": infer}


def _record_model(title: str, columns: tuple[ColumnSpec, ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for i, spec in enumerate(columns):
        kind = _py_type(spec.dtype)
        if spec.nullable:
            fields[f"c{i}"] = (kind | None, Field(None, alias=spec.name, description=spec.dtype))
        else:
            fields[f"c{i}"] = (kind, Field(..., alias=spec.name, description=spec.dtype))
    return create_model(title, __config__=ConfigDict(extra="forbid"), **fields)


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
