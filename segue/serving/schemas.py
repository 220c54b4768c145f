"""The inference API's response bodies described for people, as pydantic models.

Pydantic models here exist only to write JSON Schema for ``/openapi.json`` and ``/docs``; the
hot routes never build them. The OpenAPI document that uses them is
:mod:`segue.serving.openapi`; the request schemas and examples of ``/predict`` and ``infer``
come from each served model's signature and input example, so ``/docs`` shows the real
column names and dtypes (:mod:`segue.serving.request_schemas`: plain JSON Schema, exact enough
that Schemathesis finds no request the document and the server judge differently).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from segue.serving.intake import MAX_REQUEST_ID
from segue.version import __version__

__all__ = [
    "ErrorBody",
    "InferResponse",
    "PredictResponse",
    "feedback_request",
    "feedback_responses",
    "metadata_responses",
]


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
                "maxLength": MAX_REQUEST_ID,
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
