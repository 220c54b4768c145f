"""MLflow's REST API on ``segue server``: an unmodified MLflow client with
``MLFLOW_TRACKING_URI=http://host:port`` (and ``MLFLOW_TRACKING_TOKEN`` set to a Segue token)
tracks into Segue's store. :data:`ROUTER` is what the app includes; any other
``/api/2.0/mlflow`` call answers ``NOT_IMPLEMENTED`` in MLflow's error shape, naming it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from segue.server.mlflow import artifacts, models, tracking
from segue.server.mlflow.errors import MlflowRoute, unsupported

__all__ = ["ROUTER"]

# MLflow documents these routes; /api/v1/openapi.json describes Segue's own API only.
_rest = APIRouter(route_class=MlflowRoute, tags=["mlflow"])
_METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]


@_rest.api_route("/api/2.0/mlflow/{rest:path}", methods=_METHODS, include_in_schema=False)
@_rest.api_route("/api/3.0/mlflow/{rest:path}", methods=_METHODS, include_in_schema=False)
@_rest.api_route("/api/2.0/mlflow-artifacts/{rest:path}", methods=_METHODS, include_in_schema=False)
def not_mapped(request: Request, rest: str) -> Response:
    """Any MLflow call Segue does not map: MLflow's error shape naming it."""
    raise unsupported(f"{request.method} {request.url.path}")


ROUTER = APIRouter()
for _router in (tracking.router, models.router, artifacts.router, _rest):
    ROUTER.include_router(_router)
