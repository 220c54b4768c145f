"""Errors raised by Segue.

Every error a user can cause derives from :class:`SegueError`. The CLI turns them into one
line on stderr with exit code 2; the HTTP edges turn them into 4xx JSON bodies. Messages name
the thing that is wrong and, where there is one, the fix.
"""

from __future__ import annotations


class SegueError(Exception):
    """Base class for every error Segue raises on purpose."""

    #: HTTP status an edge should answer with.
    http_status = 400


class InvalidArgument(SegueError):
    """A value given by the user is malformed or out of range."""

    http_status = 422


class NotFound(SegueError):
    """The named experiment, run, artifact, model or version does not exist."""

    http_status = 404


class AlreadyExists(SegueError):
    """Something with that name already exists."""

    http_status = 409


class Unauthenticated(SegueError):
    """No credentials, or credentials that are unknown, revoked or expired (HTTP 401)."""

    http_status = 401


class PermissionDenied(SegueError):
    """The caller is known but its role is too weak for what it asked (HTTP 403)."""

    http_status = 403


class TooManyRequests(SegueError):
    """Too many failed attempts from one client: wait before trying again (HTTP 429)."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(SegueError):
    """The request contradicts what is already stored (e.g. changing a logged param)."""

    http_status = 409


class IntegrityError(SegueError):
    """Stored bytes do not match the hash recorded for them (tampered or truncated)."""

    http_status = 500


class GateFailed(Conflict):
    """A promotion gate refused an alias move; ``report`` holds every gate's result."""

    def __init__(self, message: str, report: list | None = None) -> None:
        super().__init__(message)
        self.report = report or []


class ServerError(SegueError):
    """A Segue server failed to answer (HTTP 5xx) or could not be reached.

    ``request_id`` is the id the server gave the failed request, for finding it in its logs.
    """

    http_status = 502

    def __init__(
        self, message: str, *, request_id: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.status_code = status_code
