"""Alert firings through ``segue server``: :class:`RestAlertStore`.

Example:
    >>> alerts = RestAlertStore(RemoteSession("http://127.0.0.1:5000", token="sgt_…"))
    >>> alerts.record("churn", "drift", "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", [])
    >>> [a.rule for a in alerts.list("churn")]
    ['drift']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from segue.errors import InvalidArgument
from segue.remote.http import RemoteSession
from segue.store import codec
from segue.store.entities import Alert

__all__ = ["RestAlertStore"]


class RestAlertStore:
    """:class:`~segue.store.alerts.AlertStore` over a ``segue server``.

    Args:
        session: the connection to the server.
    """

    def __init__(self, session: RemoteSession) -> None:
        self.session = session

    def record(
        self,
        model: str,
        rule: str,
        signal: str,
        value: float,
        threshold: float,
        message: str,
        delivered: Sequence[dict[str, Any]],
        *,
        at: int | None = None,
    ) -> Alert:
        """Store one firing; returns it with its id."""
        if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise InvalidArgument(f"alert {rule!r}: threshold must be a finite number")
        body = {
            "rule": rule,
            "signal": signal,
            # A value that is not a number (no data, a failed statistic) is recorded as none.
            "value": None if value is None or not math.isfinite(value) else float(value),
            "threshold": float(threshold),
            "message": message,
            "delivered": [dict(d) for d in delivered],
            "at": None if at is None else int(at),
        }
        found = self.session.call("POST", f"/models/{quote(model, safe='')}/alerts", json=body)
        return codec.load(Alert, found)

    def list(self, model: str, limit: int = 100) -> list[Alert]:
        """The most recent firings for ``model``, newest first."""
        if not isinstance(limit, int) or limit < 1:
            raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
        found = self.session.call(
            "GET", f"/models/{quote(model, safe='')}/alerts", params={"limit": limit}
        )
        return codec.load(list[Alert], found)
