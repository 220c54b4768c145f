"""The alert store: every firing of a monitoring rule, with where it was delivered.

Example:
    >>> alerts = SqlAlertStore(open_engine(settings().store_uri))
    >>> alerts.record("churn", "drift", "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", [])
    >>> [a.rule for a in alerts.list("churn")]
    ['drift']
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from segue.errors import InvalidArgument
from segue.store.entities import Alert
from segue.store.schema import AlertRow
from segue.store.sessions import Database

# Inside SqlAlertStore, ``list`` names its method, not the builtin.
_Alerts = list[Alert]


class AlertStore(Protocol):
    """What monitoring needs to keep a history of alert firings."""

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
    ) -> Alert: ...
    def list(self, model: str, limit: int = 100) -> list[Alert]: ...


class SqlAlertStore:
    """:class:`AlertStore` over SQLAlchemy, for SQLite and PostgreSQL.

    Args:
        engine: an engine whose schema is migrated (``open_engine`` does that).
        clock: epoch seconds, for ``at`` when the caller gives none.
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._db = Database(engine)
        self._clock = clock

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
        row = AlertRow(
            at=int(self._clock() * 1000) if at is None else int(at),
            model=model,
            rule=rule,
            signal=signal,
            value=None if value is None or not math.isfinite(value) else float(value),
            threshold=float(threshold),
            message=message,
            delivered=[dict(d) for d in delivered],
        )
        with self._db.write() as s, s.begin():
            s.add(row)
        return _alert(row)

    def list(self, model: str, limit: int = 100) -> list[Alert]:
        """The most recent firings for ``model``, newest first."""
        if not isinstance(limit, int) or limit < 1:
            raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
        stmt = (
            sa.select(AlertRow)
            .where(AlertRow.model == model)
            .order_by(AlertRow.id.desc())
            .limit(limit)
        )
        with self._db.read() as s:
            return [_alert(row) for row in s.scalars(stmt)]

    def since(self, rule: str, after_id: int, limit: int = 100) -> _Alerts:
        """The firings of ``rule`` (any model) with an id above ``after_id``, oldest first, at
        most ``limit``: what an on-alert schedule has not read yet."""
        if not isinstance(limit, int) or limit < 1:
            raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
        stmt = (
            sa.select(AlertRow)
            .where(AlertRow.rule == rule, AlertRow.id > after_id)
            .order_by(AlertRow.id)
            .limit(limit)
        )
        with self._db.read() as s:
            return [_alert(row) for row in s.scalars(stmt)]


def _alert(row: AlertRow) -> Alert:
    return Alert(
        row.id,
        row.at,
        row.model,
        row.rule,
        row.signal,
        row.value,
        row.threshold,
        row.message,
        list(row.delivered or []),
    )
