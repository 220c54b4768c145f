"""The Open Inference Protocol's model metadata, from a deployment's signature.

``GET /v2/models/{name}[/versions/{version}]`` answers :func:`model_metadata`: the served name,
its versions, the platform, and one tensor per input column (or the one ``input`` tensor) and
per output, each with the OIP datatype carrying its dtype (:func:`oip_datatype`).
"""

from __future__ import annotations

from typing import Any

from segue.models.signature import TensorSpec
from segue.serving.deployment import Deployment
from segue.serving.protocol import DATATYPES
from segue.serving.request_schemas import served_signature

__all__ = ["model_metadata", "oip_datatype"]

_TO_DATATYPE = {dtype: datatype for datatype, dtype in DATATYPES.items()}


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
