"""The ``POST /feedback`` body: true labels for earlier predictions, checked (pure, no I/O).

The body is ``{"request_id", "label", "model"?}`` or a non-empty array of them
(:func:`parse_feedback`); anything else raises :class:`RequestError` (400 malformed, 413 too
large, 415 not JSON, 422 a label of the wrong shape) and nothing else, whatever the bytes.
Inference request bodies are in :mod:`segue.serving.protocol`.

Example::

    >>> parse_feedback(b'{"request_id": "9f2c", "label": 1}')
    [(None, '9f2c', 1)]
"""

from __future__ import annotations

from typing import Any

from segue.serving.errors import RequestError, json_type
from segue.serving.intake import MAX_REQUEST_ID
from segue.serving.protocol import DEFAULT_MAX_BYTES, decode_body

__all__ = ["MAX_FEEDBACK_ITEMS", "check_json_content", "parse_feedback"]

_FEEDBACK_KEYS = frozenset(("request_id", "label", "model"))
#: Most labels one ``POST /feedback`` may carry.
MAX_FEEDBACK_ITEMS = 10_000


def check_json_content(content_type: str | None) -> None:
    """Refuse (415) a ``POST /feedback`` body declared as anything but JSON
    (``application/json`` or ``application/*+json``); a body without a content type is read
    as JSON.

    Raises:
        RequestError: 415 naming the content type sent.
    """
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise RequestError(
        415,
        f"content-type {content_type!r} is not JSON; send the labels as application/json",
        "content-type",
    )


def parse_feedback(
    body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[tuple[str | None, str, Any]]:
    """Parse a ``POST /feedback`` body into ``(model or None, request_id, label)`` items.

    The body is one object ``{"request_id": str, "label": any JSON, "model"?: str}`` or a
    non-empty array of them. ``label`` is a string, a number or a boolean, or a non-empty list
    of them (one per row; 422 otherwise); the server's ``check_feedback`` then refuses a value
    the version that answered cannot predict (409).

    Example::

        >>> parse_feedback(b'{"request_id": "9f2c", "label": 1}')
        [(None, '9f2c', 1)]
    """
    data = decode_body(body, max_bytes)
    if type(data) is dict:
        return [_feedback_item(data, "")]
    if type(data) is not list or not data:
        raise RequestError(
            400, 'send {"request_id": ..., "label": ...} or a non-empty array of them', None
        )
    if len(data) > MAX_FEEDBACK_ITEMS:
        raise RequestError(
            413, f"{len(data)} labels in one request; send at most {MAX_FEEDBACK_ITEMS}", None
        )
    return [_feedback_item(item, f"[{i}].") for i, item in enumerate(data)]


def _feedback_item(item: Any, where: str) -> tuple[str | None, str, Any]:
    if type(item) is not dict:
        raise RequestError(400, f"{where or 'body'}: expected an object, got {json_type(item)}")
    extra = sorted(key for key in item if key not in _FEEDBACK_KEYS)
    if extra:
        raise RequestError(
            400, f"{where}{extra[0]}: unknown key; send request_id, label and model", extra[0]
        )
    request_id = item.get("request_id")
    if not (
        type(request_id) is str
        and 0 < len(request_id) <= MAX_REQUEST_ID
        and request_id.isascii()
        and request_id.isprintable()
    ):
        got = "missing" if "request_id" not in item else f"got {json_type(request_id)}"
        raise RequestError(
            400,
            f"{where}request_id: expected the x-request-id of a prediction (a string of 1 to "
            f"{MAX_REQUEST_ID} printable ASCII characters); {got}",
            "request_id",
        )
    if "label" not in item:
        raise RequestError(400, f"{where}label: missing; send the true label", "label")
    _check_label_shape(item["label"], where)
    model = item.get("model")
    if model is not None and type(model) is not str:
        raise RequestError(
            400, f"{where}model: expected a served model name, got {json_type(model)}", "model"
        )
    return model, request_id, item["label"]


def _check_label_shape(label: Any, where: str) -> None:
    """A label is a scalar, or a non-empty list of them (one per row): anything else is
    refused whatever the model (422). Whether a well-shaped value fits the version that
    answered is the server's ``check_feedback`` (409)."""
    if type(label) is list:
        if not label:
            raise RequestError(422, f"{where}label: an empty list; send one label per row", "label")
        for j, value in enumerate(label):
            if type(value) not in _LABEL_SCALARS:
                raise RequestError(
                    422,
                    f"{where}label[{j}]: expected a string, a number or a boolean, got "
                    f"{json_type(value)}",
                    f"label[{j}]",
                )
    elif type(label) not in _LABEL_SCALARS:
        raise RequestError(
            422,
            f"{where}label: expected a string, a number or a boolean (or a list of them, one "
            f"per row), got {json_type(label)}",
            "label",
        )


_LABEL_SCALARS = frozenset((str, int, float, bool))
