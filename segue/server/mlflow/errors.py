"""MLflow's error shape for the MLflow routes: ``{"error_code": ..., "message": ...}``.

MLflow's client reads ``error_code`` and ``message`` from a failed call (and retries on 429 and
5xx), so the MLflow routes answer every refusal, Segue's own included (a missing token, a role
too weak), in that shape, with the HTTP status MLflow's server gives that code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from segue.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SegueError,
    TooManyRequests,
    Unauthenticated,
)

log = logging.getLogger("segue.server.mlflow")

#: MLflow's error codes and the status its server answers each with.
STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "NOT_IMPLEMENTED": 501,
}


class MlflowError(Exception):
    """A refusal in MLflow's terms: ``code`` is one of :data:`STATUS`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(field: str, message: str) -> MlflowError:
    """A bad value: the message names the field."""
    return MlflowError("INVALID_PARAMETER_VALUE", f"{field}: {message}")


def unsupported(feature: str) -> MlflowError:
    """An MLflow feature Segue does not map (yet)."""
    return MlflowError(
        "NOT_IMPLEMENTED",
        f"Segue's MLflow API does not support {feature}; see 'Coming from MLflow' in Segue's "
        "README for what maps",
    )


def error_body(code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error_code": code, "message": message})
    return Response(body, STATUS.get(code, 400), headers, media_type="application/json")


def _segue_code(exc: SegueError) -> str:
    if isinstance(exc, NotFound):
        return "RESOURCE_DOES_NOT_EXIST"
    if isinstance(exc, AlreadyExists):
        return "RESOURCE_ALREADY_EXISTS"
    if isinstance(exc, Unauthenticated):
        return "UNAUTHENTICATED"
    if isinstance(exc, PermissionDenied):
        return "PERMISSION_DENIED"
    if isinstance(exc, TooManyRequests):
        return "REQUEST_LIMIT_EXCEEDED"
    if isinstance(exc, InvalidArgument | Conflict):
        return "INVALID_PARAMETER_VALUE"
    return "INTERNAL_ERROR" if exc.http_status >= 500 else "BAD_REQUEST"


def to_response(request: Request, exc: Exception) -> Response:
    """``exc`` in MLflow's error shape."""
    if isinstance(exc, MlflowError):
        return error_body(exc.code, str(exc))
    if isinstance(exc, SegueError):
        headers: dict[str, str] = {}
        if isinstance(exc, TooManyRequests):
            headers["retry-after"] = str(exc.retry_after)
        if isinstance(exc, Unauthenticated):
            headers["www-authenticate"] = "Bearer"
        field = getattr(exc, "field", None)
        message = f"{field}: {exc}" if field else str(exc)
        return error_body(_segue_code(exc), message, headers)
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", "invalid"))
        if first.get("type") == "json_invalid" or not where:
            # The body as a whole: not JSON ("0" would be the position), or not an object.
            where, message = "body", "must be a JSON object (Content-Type: application/json)"
        return error_body("INVALID_PARAMETER_VALUE", f"{where}: {message}")
    if isinstance(exc, HTTPException):
        code = {404: "RESOURCE_DOES_NOT_EXIST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
        return error_body(code.get(exc.status_code, "BAD_REQUEST"), str(exc.detail))
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_body("INTERNAL_ERROR", f"internal error ({type(exc).__name__}); see the log")


class MlflowRoute(APIRoute):
    """A route whose failures (its dependencies' included: authentication, roles) answer in
    MLflow's error shape instead of Segue's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def in_mlflow_terms(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return to_response(request, exc)

        return in_mlflow_terms
