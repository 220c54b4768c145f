"""The registry's audit log: one entry per change to a registered model, written in the
transaction of the change itself, and the model's "updated" time that moves with it."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from segue.store.entities import AuditEntry
from segue.store.schema import AuditRow, RegisteredModelRow


def record(
    s: Session,
    actor: str,
    model_name: str,
    action: str,
    target: str | None,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str | None = None,
) -> None:
    """Add the audit entry of a change to ``model_name`` to the session's transaction."""
    s.add(
        AuditRow(
            at=now_ms(),
            actor=actor,
            model_name=model_name,
            action=action,
            target=target,
            before=json_safe(dict(before)) if before else None,
            after=json_safe(dict(after)) if after else None,
            reason=reason,
        )
    )


def touch(s: Session, model_id: int, now: int) -> None:
    """Mark the model changed: "updated" covers versions and alias moves, not only creation."""
    s.execute(
        sa.update(RegisteredModelRow)
        .where(RegisteredModelRow.id == model_id)
        .values(updated_at=now)
    )


def history(s: Session, name: str, limit: int) -> list[AuditEntry]:
    """The last ``limit`` audit entries of ``name``, oldest first."""
    stmt = (
        sa.select(AuditRow)
        .where(AuditRow.model_name == name)
        .order_by(AuditRow.id.desc())
        .limit(limit)
    )
    rows = list(s.scalars(stmt))
    return [
        AuditEntry(
            r.id, r.at, r.actor, r.model_name, r.action, r.target, r.before, r.after, r.reason
        )
        for r in reversed(rows)
    ]


def now_ms() -> int:
    """The wall clock in milliseconds, as the registry's tables record time."""
    return int(time.time() * 1000)


def json_safe(value: Any) -> Any:
    """``value`` with infinite and NaN floats as None: PostgreSQL's JSON type refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
