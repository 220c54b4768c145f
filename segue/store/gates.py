"""A registered model's gates in SQL: the requirements an alias move must pass.

The functions here run inside a session that :class:`segue.store.registry.SqlRegistryStore`
opens, given the model's row; parsing and judging requirements is :mod:`segue.registry.gates`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from segue.errors import NotFound
from segue.store import audit
from segue.store.entities import Gate
from segue.store.schema import GateRow, RegisteredModelRow


def add(s: Session, model: RegisteredModelRow, alias: str, requirement: str, actor: str) -> Gate:
    """Declare ``requirement`` for moves of ``alias``, with its audit entry."""
    row = GateRow(
        model_id=model.id,
        alias=alias,
        requirement=requirement,
        created_by=actor,
        created_at=audit.now_ms(),
    )
    s.add(row)
    s.flush()
    after = {"gate": row.id, "requirement": requirement}
    audit.record(s, actor, model.name, "add_gate", f"alias {alias}", None, after)
    return _gate(model.name, row)


def of_model(s: Session, model: RegisteredModelRow, alias: str | None) -> list[Gate]:
    """The model's gates (those of ``alias`` only, if given), oldest first."""
    stmt = sa.select(GateRow).where(GateRow.model_id == model.id).order_by(GateRow.id)
    if alias is not None:
        stmt = stmt.where(GateRow.alias == alias)
    return [_gate(model.name, row) for row in s.scalars(stmt)]


def remove(s: Session, model: RegisteredModelRow, gate_id: int, actor: str) -> Gate:
    """Remove gate ``gate_id`` of the model, with its audit entry.

    Raises:
        NotFound: the model has no such gate.
    """
    row = s.get(GateRow, gate_id)
    if row is None or row.model_id != model.id:
        raise NotFound(f"model {model.name!r} has no gate {gate_id}; see `segue models gate list`")
    gate = _gate(model.name, row)
    s.delete(row)
    before = {"gate": gate_id, "requirement": gate.requirement}
    audit.record(s, actor, model.name, "remove_gate", f"alias {gate.alias}", before, None)
    return gate


def _gate(name: str, row: GateRow) -> Gate:
    return Gate(row.id, name, row.alias, row.requirement, row.created_by, row.created_at)
