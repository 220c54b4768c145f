"""A Python client for a Segue inference server (``segue serve``).

One kept-alive HTTP connection pool per :class:`Client`; bodies are encoded and decoded with
orjson. Errors come back as Segue errors: a request the server rejects (4xx) raises
:class:`~segue.errors.InvalidArgument` with the server's message, a server failure (5xx) or an
unreachable server raises :class:`~segue.errors.ServerError` carrying the request id.

What it expects of the server:

- ``POST /predict`` takes ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``
  or ``{"instances": [{column: value, ...}, ...]}`` and answers ``{"predictions": [...],
  "model": ..., "version": ..., "request_id": ...}`` (the request id may instead come in an
  ``x-request-id`` header), and ``"route"`` when the server routes traffic.
- ``POST /feedback`` takes ``{"request_id": ..., "label": ...}``.
- Open Inference Protocol v2: ``/v2/health/ready``, ``/v2/models/{name}``,
  ``POST /v2/models/{name}/infer``.
- Error bodies: ``{"error": {"message": ..., "field": ..., "request_id": ...}}``, or
  ``{"error": "...", ...}`` / ``{"message": ...}`` / FastAPI's ``{"detail": ...}``.

Example:
    >>> with segue.Client("http://localhost:8000") as client:
    ...     answer = client.predict(df)
    ...     client.feedback(answer.request_id, label=1)
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from segue.errors import (
    InvalidArgument,
    SegueError,
    ServerError,
    TooManyRequests,
    Unauthenticated,
)

_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
#: NumPy dtype kind -> Open Inference Protocol datatype.
_OIP_TYPES = {
    "b": "BOOL",
    "i1": "INT8",
    "i2": "INT16",
    "i4": "INT32",
    "i8": "INT64",
    "u1": "UINT8",
    "u2": "UINT16",
    "u4": "UINT32",
    "u8": "UINT64",
    "f2": "FP16",
    "f4": "FP32",
    "f8": "FP64",
}


@dataclass(frozen=True)
class Prediction:
    """The server's answer: one prediction per row, and who made them (``route``: the
    server's route that answered, e.g. ``churn@champion``; "" if the server does not say)."""

    predictions: list
    version: str
    model: str
    request_id: str
    route: str = ""


class Client:
    """Talk to a Segue inference server.

    Args:
        base_url: e.g. ``"http://localhost:8000"``.
        timeout: seconds to wait for a connection and for each answer.
        model: the model name for the Open Inference Protocol calls (:meth:`infer`,
            :meth:`metadata`) when they are not given one.
        transport: an httpx transport, for tests or custom networking.
        token: sent as ``Authorization: Bearer <token>``, for a server started with
            ``--auth`` (a token from ``segue tokens create``) or ``--api-key-file`` (a key).

    Example:
        >>> client = segue.Client("http://localhost:8000")
        >>> client.predict([{"age": 31, "plan": "pro"}]).predictions
        [0]
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        *,
        model: str | None = None,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.model = model
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    def predict(self, data: Any) -> Prediction:
        """Predict for ``data``: a DataFrame, a list of records (dicts), one record, or a dict
        of columns.

        Raises:
            InvalidArgument: the server rejected the input (its message names the field).
            Unauthenticated: the server needs a token (``token=``) and got none or a wrong one.
            ServerError: the server failed (``request_id`` identifies the request) or is down.
        """
        response = self._request("POST", "/predict", _predict_body(data))
        body = _json(response)
        if not isinstance(body, Mapping) or "predictions" not in body:
            raise ServerError(
                f"{self.base_url}/predict answered without 'predictions': {response.text[:200]}",
                request_id=response.headers.get("x-request-id"),
                status_code=response.status_code,
            )
        return Prediction(
            predictions=list(body["predictions"]),
            version=str(body.get("version") or response.headers.get("x-model-version") or ""),
            model=str(body.get("model") or response.headers.get("x-model-name") or ""),
            request_id=str(body.get("request_id") or response.headers.get("x-request-id") or ""),
            route=str(body.get("route") or response.headers.get("x-segue-route") or ""),
        )

    def infer(self, inputs: Any, model: str | None = None) -> dict[str, Any]:
        """Call ``POST /v2/models/{model}/infer`` (Open Inference Protocol v2).

        Args:
            inputs: a whole request (``{"inputs": [...], ...}``), a list of tensors
                (``{"name", "shape", "datatype", "data"}``), a DataFrame (one tensor per
                column) or a NumPy array (one tensor ``input-0``).
            model: the model name (default: the client's ``model``).

        Returns:
            The response: ``{"model_name", "model_version", "id", "outputs": [...]}``.
        """
        name = self._model(model)
        return _json(self._request("POST", f"/v2/models/{name}/infer", _infer_body(inputs)))

    def feedback(self, request_id: str, label: Any) -> None:
        """Tell the server the true ``label`` for an earlier prediction (for monitoring)."""
        self._request("POST", "/feedback", {"request_id": request_id, "label": label})

    def health(self) -> bool:
        """Whether the server is ready to predict (``GET /v2/health/ready``).

        Raises:
            ServerError: the server cannot be reached.
        """
        try:
            response = self._http.get("/v2/health/ready")
        except httpx.HTTPError as exc:
            raise self._unreachable("/v2/health/ready", exc) from exc
        return response.is_success

    def metadata(self, name: str | None = None) -> dict[str, Any]:
        """The model's metadata (``GET /v2/models/{name}``): versions, platform, inputs,
        outputs."""
        return _json(self._request("GET", f"/v2/models/{self._model(name)}"))

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<segue.Client {self.base_url}>"

    def _model(self, name: str | None) -> str:
        name = name or self.model
        if not name:
            raise InvalidArgument(
                "no model name: pass one, or create the client with Client(url, model='churn')"
            )
        return name

    def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        content = None if body is None else orjson.dumps(body, default=_plain, option=_JSON)
        headers = None if body is None else {"content-type": "application/json"}
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise self._unreachable(path, exc) from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _unreachable(self, path: str, exc: httpx.HTTPError) -> ServerError:
        if isinstance(exc, httpx.TimeoutException):
            return ServerError(f"{self.base_url}{path}: no answer within {self.timeout}s")
        return ServerError(f"cannot reach the Segue server at {self.base_url}: {exc}")


def _predict_body(data: Any) -> dict[str, Any]:
    pd = sys.modules.get("pandas")  # a DataFrame means pandas is imported already
    if pd is not None and isinstance(data, pd.DataFrame):
        return {"dataframe_split": _split(data)}
    if isinstance(data, Mapping):
        if data and all(_is_sequence(v) for v in data.values()):
            columns = [str(k) for k in data]
            rows = list(zip(*(_list(v) for v in data.values()), strict=True))
            return {"dataframe_split": {"columns": columns, "data": rows}}
        return {"instances": [dict(data)]}
    if isinstance(data, (list, tuple)):
        return {"instances": list(data)}
    np = sys.modules.get("numpy")
    if np is not None and isinstance(data, np.ndarray):
        return {"instances": data}
    raise InvalidArgument(
        "predict takes a DataFrame, a list of records (dicts), one record or a dict of "
        f"columns; got {type(data).__name__}"
    )


def _split(frame: Any) -> dict[str, Any]:
    columns = [str(c) for c in frame.columns]
    dtypes = set(frame.dtypes)
    if len(dtypes) == 1 and getattr(next(iter(dtypes)), "kind", "O") in "biuf":
        # One NumPy block: orjson writes it straight from memory.
        import numpy as np

        return {"columns": columns, "data": np.ascontiguousarray(frame.to_numpy())}
    data = list(zip(*(frame[c].tolist() for c in frame.columns), strict=True))
    return {"columns": columns, "data": data}


def _infer_body(inputs: Any) -> dict[str, Any]:
    if isinstance(inputs, Mapping) and "inputs" in inputs:
        return dict(inputs)
    if isinstance(inputs, (list, tuple)) and all(isinstance(t, Mapping) for t in inputs):
        return {"inputs": list(inputs)}
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(inputs, pd.DataFrame):
        return {"inputs": [_tensor(str(c), inputs[c].to_numpy()) for c in inputs.columns]}
    np = sys.modules.get("numpy")
    if np is not None and isinstance(inputs, np.ndarray):
        return {"inputs": [_tensor("input-0", inputs)]}
    raise InvalidArgument(
        "infer takes an inference request ({'inputs': [...]}), a list of tensors, a DataFrame "
        f"or a NumPy array; got {type(inputs).__name__}"
    )


def _tensor(name: str, array: Any) -> dict[str, Any]:
    kind = array.dtype.kind
    datatype = _OIP_TYPES.get("b" if kind == "b" else f"{kind}{array.dtype.itemsize}", "BYTES")
    data = array.ravel().tolist()
    if datatype == "BYTES":
        data = [None if v is None else str(v) for v in data]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (
        hasattr(value, "tolist") and hasattr(value, "__len__")
    )


def _list(value: Any) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _plain(value: Any) -> Any:
    """What orjson cannot write by itself: NumPy leftovers, timestamps, sets, pandas.NA."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if type(value).__name__ == "NAType":
        return None
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ServerError(
            f"{response.request.url} answered {response.status_code} with a body that is not "
            f"JSON: {response.text[:200]!r}",
            request_id=response.headers.get("x-request-id"),
            status_code=response.status_code,
        ) from None


def _error(response: httpx.Response) -> SegueError:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    message, field, request_id = _error_fields(body)
    message = message or response.text.strip()[:200] or response.reason_phrase
    request_id = request_id or response.headers.get("x-request-id")
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    if status >= 500:
        suffix = f" (request id {request_id})" if request_id else ""
        return ServerError(
            f"the server failed on {where} (HTTP {status}): {message}{suffix}",
            request_id=request_id,
            status_code=status,
        )
    if field and field not in message:
        message = f"{field}: {message}"
    kind = {401: Unauthenticated, 429: TooManyRequests}.get(status, InvalidArgument)
    error = kind(f"{message} (HTTP {status} from {where})")
    error.status_code = status
    error.field = field
    error.request_id = request_id
    return error


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """``(message, field, request_id)`` from the error body shapes a server may send."""
    if not isinstance(body, Mapping):
        return None, None, None
    request_id = body.get("request_id")
    error = body.get("error")
    if isinstance(error, Mapping):
        request_id = error.get("request_id") or request_id
        return _text(error.get("message")), _text(error.get("field")), _text(request_id)
    if isinstance(error, str):
        return error, _text(body.get("field")), _text(request_id)
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], Mapping):
        # FastAPI's validation errors: [{"loc": ["body", "instances", 0], "msg": ...}, ...]
        loc = [str(part) for part in detail[0].get("loc", ()) if part != "body"]
        return _text(detail[0].get("msg")), ".".join(loc) or None, _text(request_id)
    message = body.get("message") or detail
    return _text(message), _text(body.get("field")), _text(request_id)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
