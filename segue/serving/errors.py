"""The error every malformed or invalid inference request raises (pure)."""

from __future__ import annotations

from typing import Any

from segue.errors import SegueError

__all__ = ["RequestError", "json_type"]

_JSON_NAMES = {float: "a number", int: "an integer", bool: "a boolean", str: "a string"}
_JSON_NAMES.update({type(None): "null", list: "an array", dict: "an object"})


class RequestError(SegueError):
    """A request the server cannot answer as sent: ``status`` is the HTTP status to reply with.

    400 for a body that is not the JSON structure expected, 413 for one that is too large, 422
    for data that breaks the model's signature; ``field`` names the part at fault.
    """

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.http_status = status
        self.message = message
        self.field = field


def json_type(value: Any) -> str:
    """How a parsed JSON value is described in errors: "a number", "null", "an array", …"""
    return _JSON_NAMES.get(type(value), type(value).__name__)
