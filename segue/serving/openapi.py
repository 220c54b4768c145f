"""The inference server's OpenAPI document, with the hot routes described from signatures.

``/openapi.json`` and ``/docs`` come from :func:`openapi`: FastAPI's document of the routes it
routes, plus ``POST /predict`` and each served name's ``infer`` routes (which skip FastAPI),
with request schemas and examples built from each served model's signature and input example
(:mod:`segue.serving.request_schemas`) and the response models of :mod:`segue.serving.schemas`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from segue.models.signature import TensorSpec
from segue.serving.deployment import Deployment, ServedModels
from segue.serving.metadata import oip_datatype
from segue.serving.protocol import PREDICT_FORMATS
from segue.serving.request_schemas import REF, component_prefix, request_schemas, served_signature
from segue.serving.schemas import ErrorBody, InferResponse, PredictResponse

__all__ = ["description", "openapi"]


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
