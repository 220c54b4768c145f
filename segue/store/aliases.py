"""A registered model's aliases in SQL: names, compare-and-set moves and their announcement.

Alias moves are compare-and-set on the alias row, so two clients racing to move one alias
cannot both win on a stale view: the loser gets :class:`~segue.errors.Conflict` and may
re-evaluate. On PostgreSQL a move or deletion also NOTIFYs ``segue_registry`` in its
transaction (:mod:`segue.store.notify`), so inference servers hear of it when it commits.
The functions here run inside a transaction that :class:`segue.store.registry.SqlRegistryStore`
opens, with the model's row already locked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from segue.errors import Conflict, InvalidArgument, NotFound
from segue.store import audit
from segue.store.notify import notify_alias
from segue.store.schema import AliasRow, ModelVersionRow, RegisteredModelRow
from segue.store.sessions import Database

_ALIAS = re.compile(r"^[A-Za-z][\w\-]{0,127}$")
RESERVED_ALIASES = frozenset({"latest"})

#: ``listen(on_change, stop, on_connect=None)``: see :meth:`SqlRegistryStore.alias_listener`.
AliasListener = Callable[..., None]


def check_alias(alias: Any) -> str:
    """``alias`` if it is a valid alias name, else :class:`~segue.errors.InvalidArgument`."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidArgument(
            f"alias {alias!r} must start with a letter and contain only letters, digits, "
            "'_' and '-' (at most 128 characters)"
        )
    if alias in RESERVED_ALIASES:
        raise InvalidArgument(f"alias {alias!r} is reserved")
    return alias


def move(
    s: Session,
    db: Database,
    model: RegisteredModelRow,
    alias: str,
    version: int,
    *,
    expected: int | None,
    actor: str,
    reason: str | None,
    details: Mapping[str, Any] | None,
) -> None:
    """Point ``alias`` of ``model`` at ``version`` if it still points at ``expected``
    (None: unset), with its audit entry and announcement.

    Raises:
        NotFound: no such version.
        Conflict: the alias no longer points at ``expected``.
    """
    name = model.name
    now = audit.now_ms()
    if s.get(ModelVersionRow, (model.id, version)) is None:
        raise NotFound(f"model {name!r} has no version {version}")
    stmt: ReturningInsert[int] | ReturningUpdate[int]
    if expected is None:
        stmt = (
            db.insert(AliasRow)
            .values(model_id=model.id, alias=alias, version=version, updated_at=now)
            .on_conflict_do_nothing()
            .returning(AliasRow.version)
        )
    else:
        stmt = (
            sa.update(AliasRow)
            .where(
                AliasRow.model_id == model.id,
                AliasRow.alias == alias,
                AliasRow.version == expected,
            )
            .values(version=version, updated_at=now)
            .returning(AliasRow.version)
        )
    # RETURNING, not rowcount: SQLAlchemy reports no rowcount for an INSERT on PostgreSQL.
    if s.execute(stmt).first() is None:
        raise Conflict(f"alias {name}@{alias} moved while this change was being decided; try again")
    audit.touch(s, model.id, now)
    before = None if expected is None else {"version": expected}
    after = {"version": version, **dict(details or {})}
    audit.record(s, actor, name, "set_alias", f"alias {alias}", before, after, reason)
    notify_alias(s, name, alias)  # sent on commit (PostgreSQL): servers swap at once


def delete(s: Session, model: RegisteredModelRow, alias: str, actor: str) -> None:
    """Remove ``alias`` of ``model``, with its audit entry and announcement.

    Raises:
        NotFound: the model has no such alias.
    """
    row = s.get(AliasRow, (model.id, alias))
    if row is None:
        raise NotFound(f"model {model.name!r} has no alias {alias!r}")
    before = {"version": row.version}
    s.delete(row)
    audit.touch(s, model.id, audit.now_ms())
    audit.record(s, actor, model.name, "delete_alias", f"alias {alias}", before, None)
    notify_alias(s, model.name, alias)


def version_of(s: Session, model_id: int, alias: str) -> int | None:
    """The version ``alias`` points at, or None."""
    row = s.get(AliasRow, (model_id, alias))
    return None if row is None else row.version


def of_model(s: Session, model_id: int) -> dict[str, int]:
    """Every alias of a model and the version it points at."""
    stmt = sa.select(AliasRow.alias, AliasRow.version).where(AliasRow.model_id == model_id)
    return {alias: version for alias, version in s.execute(stmt)}


def of_version(s: Session, model_id: int, version: int) -> list[str]:
    """The aliases pointing at ``version``, sorted."""
    stmt = sa.select(AliasRow.alias).where(
        AliasRow.model_id == model_id, AliasRow.version == version
    )
    return sorted(s.scalars(stmt))
