"""The registry store: registered models, versions, aliases, gates and the audit log.

:class:`SqlRegistryStore` opens the transactions and finds the model; the work on aliases
(compare-and-set moves, announced on PostgreSQL), gates and the audit log is in
:mod:`segue.store.aliases`, :mod:`segue.store.gates` and :mod:`segue.store.audit`. Every change
writes its audit entry in the same transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from segue.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from segue.store import aliases, audit, gates
from segue.store.aliases import AliasListener, check_alias
from segue.store.audit import now_ms as _now
from segue.store.entities import AuditEntry, Gate, ModelVersion, RegisteredModel
from segue.store.names import check_name
from segue.store.notify import listen_aliases, supports_notify
from segue.store.schema import (
    ModelTagRow,
    ModelVersionRow,
    RegisteredModelRow,
    RunDatasetRow,
    RunRow,
)
from segue.store.sessions import Database


def check_model_name(name: Any) -> str:
    """``name`` if it is a valid model name, else InvalidArgument saying what is allowed."""
    return check_name("model", name, 256)


def check_digest_prefix(digest: Any) -> str:
    """``digest`` if it is a data set's sha256 or at least its first 8 characters."""
    if not isinstance(digest, str) or not 8 <= len(digest) <= 64 or not digest.isalnum():
        raise InvalidArgument(
            f"data set digest {digest!r}: give the sha256 or at least its first 8 characters"
        )
    return digest


class RegistryStore(Protocol):
    """What the model registry needs from a metadata store."""

    def create_model(
        self,
        name: str,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel: ...
    def get_model(self, name: str) -> RegisteredModel: ...
    def list_models(self) -> list[RegisteredModel]: ...
    def create_version(
        self,
        name: str,
        run_id: str,
        artifact_path: str,
        manifest_digest: str,
        flavor: str,
        actor: str,
        description: str | None = None,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ModelVersion: ...
    def get_version(self, name: str, version: int) -> ModelVersion: ...
    def list_versions(self, name: str) -> list[ModelVersion]: ...
    def delete_version(self, name: str, version: int, actor: str) -> None: ...
    def get_alias(self, name: str, alias: str) -> int | None: ...
    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected: int | None,
        actor: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None: ...
    def delete_alias(self, name: str, alias: str, actor: str) -> None: ...
    def add_gate(self, name: str, alias: str, requirement: str, actor: str) -> Gate: ...
    def list_gates(self, name: str, alias: str | None = None) -> list[Gate]: ...
    def remove_gate(self, name: str, gate_id: int, actor: str) -> Gate: ...
    def history(self, name: str, limit: int = 1000) -> list[AuditEntry]: ...
    def versions_for_dataset(self, digest: str) -> list[ModelVersion]: ...
    def versions_for_run(self, run_id: str) -> list[ModelVersion]: ...


class SqlRegistryStore:
    """:class:`RegistryStore` over SQLAlchemy, for SQLite and PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._db = Database(engine)

    @property
    def engine(self) -> Engine:
        """The database engine, shared with the other stores of the same database."""
        return self._db.engine

    # -- models --------------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        check_model_name(name)
        now = _now()
        with self._db.write() as s, s.begin():
            stmt = (
                self._db.insert(RegisteredModelRow)
                .values(
                    name=name,
                    description=description,
                    last_version=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(RegisteredModelRow.id)
            )
            # RETURNING, not rowcount: SQLAlchemy reports no rowcount for an INSERT on
            # PostgreSQL (-1), so a rowcount check never sees the conflict there.
            model_id = s.scalar(stmt)
            if model_id is None:
                raise AlreadyExists(f"model {name!r} already exists")
            for key, value in (tags or {}).items():
                s.add(ModelTagRow(model_id=model_id, key=key, value=value))
            audit.record(
                s,
                actor,
                name,
                "create_model",
                None,
                None,
                {"description": description, "tags": dict(tags or {})},
            )
        return self.get_model(name)

    def _model_row(self, s: Session, name: str, *, lock: bool = False) -> RegisteredModelRow:
        stmt = sa.select(RegisteredModelRow).where(RegisteredModelRow.name == name)
        if lock and self._db.dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = s.scalar(stmt)
        if row is None:
            raise NotFound(f"model {name!r} is not registered; see `segue models list`")
        return row

    def get_model(self, name: str) -> RegisteredModel:
        with self._db.read() as s:
            return self._model(s, self._model_row(s, name))

    def _model(self, s: Session, row: RegisteredModelRow) -> RegisteredModel:
        tags = dict(
            s.execute(
                sa.select(ModelTagRow.key, ModelTagRow.value).where(ModelTagRow.model_id == row.id)
            ).all()
        )
        latest = s.scalar(
            sa.select(sa.func.max(ModelVersionRow.version)).where(
                ModelVersionRow.model_id == row.id
            )
        )
        return RegisteredModel(
            row.name,
            row.description,
            row.created_at,
            row.updated_at,
            tags,
            aliases.of_model(s, row.id),
            latest,
        )

    def list_models(self) -> list[RegisteredModel]:
        with self._db.read() as s:
            rows = s.scalars(sa.select(RegisteredModelRow).order_by(RegisteredModelRow.name))
            return [self._model(s, row) for row in rows]

    # -- versions ------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        run_id: str,
        artifact_path: str,
        manifest_digest: str,
        flavor: str,
        actor: str,
        description: str | None = None,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register the package at ``run_id``/``artifact_path`` as the next version of
        ``name``; ``reason`` and ``details`` (e.g. what caused an automated registration) go
        into its audit entry."""
        now = _now()
        with self._db.write() as s, s.begin():
            if s.get(RunRow, run_id) is None:
                raise NotFound(f"run {run_id!r} does not exist")
            model = self._model_row(s, name)
            number = s.scalars(
                sa.update(RegisteredModelRow)
                .where(RegisteredModelRow.id == model.id)
                .values(last_version=RegisteredModelRow.last_version + 1, updated_at=now)
                .returning(RegisteredModelRow.last_version)
            ).one()
            s.add(
                ModelVersionRow(
                    model_id=model.id,
                    version=number,
                    run_id=run_id,
                    artifact_path=artifact_path,
                    manifest_digest=manifest_digest,
                    flavor=flavor,
                    description=description,
                    created_by=actor,
                    created_at=now,
                )
            )
            audit.record(
                s,
                actor,
                name,
                "register",
                f"version {number}",
                None,
                {
                    **dict(details or {}),
                    "version": number,
                    "run_id": run_id,
                    "artifact_path": artifact_path,
                    "manifest_digest": manifest_digest,
                    "flavor": flavor,
                },
                reason,
            )
        return self.get_version(name, number)

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._db.read() as s:
            model = self._model_row(s, name)
            row = s.get(ModelVersionRow, (model.id, version))
            if row is None:
                raise NotFound(
                    f"model {name!r} has no version {version}; see `segue models show {name}`"
                )
            return self._version(s, name, row)

    def _version(self, s: Session, name: str, row: ModelVersionRow) -> ModelVersion:
        return ModelVersion(
            name,
            row.version,
            row.run_id,
            row.artifact_path,
            row.manifest_digest,
            row.flavor,
            row.created_by,
            row.created_at,
            row.description,
            tuple(aliases.of_version(s, row.model_id, row.version)),
        )

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._db.read() as s:
            model = self._model_row(s, name)
            rows = s.scalars(
                sa.select(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id)
                .order_by(ModelVersionRow.version)
            )
            return [self._version(s, name, row) for row in rows]

    def delete_version(self, name: str, version: int, actor: str) -> None:
        with self._db.write() as s, s.begin():
            model = self._model_row(s, name, lock=True)
            row = s.get(ModelVersionRow, (model.id, version))
            if row is None:
                raise NotFound(f"model {name!r} has no version {version}")
            held = aliases.of_version(s, model.id, version)
            if held:
                raise Conflict(
                    f"{name} version {version} is still aliased as {', '.join(held)}; "
                    "move or delete the alias first"
                )
            before = {
                "version": version,
                "run_id": row.run_id,
                "manifest_digest": row.manifest_digest,
            }
            s.delete(row)
            audit.touch(s, model.id, _now())
            audit.record(s, actor, name, "delete_version", f"version {version}", before, None)

    # -- aliases -------------------------------------------------------------------------

    def get_alias(self, name: str, alias: str) -> int | None:
        with self._db.read() as s:
            model = self._model_row(s, name)
            return aliases.version_of(s, model.id, alias)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected: int | None,
        actor: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Point ``alias`` at ``version`` if it still points at ``expected`` (None: unset)."""
        check_alias(alias)
        with self._db.write() as s, s.begin():
            # Locked like delete_version, so a version being deleted cannot gain an alias.
            model = self._model_row(s, name, lock=True)
            aliases.move(
                s,
                self._db,
                model,
                alias,
                version,
                expected=expected,
                actor=actor,
                reason=reason,
                details=details,
            )

    def alias_listener(self) -> AliasListener | None:
        """``listen(on_change, stop, on_connect=None)``, which blocks and calls
        ``on_change(model, alias)`` each time an alias moves or is deleted, until ``stop`` is
        set; None when the database cannot announce changes (SQLite: poll instead)."""
        if not supports_notify(self._db.engine):
            return None
        return partial(listen_aliases, self._db.engine)

    def delete_alias(self, name: str, alias: str, actor: str) -> None:
        with self._db.write() as s, s.begin():
            # Locked before the alias, as set_alias does, so the two cannot deadlock.
            aliases.delete(s, self._model_row(s, name, lock=True), alias, actor)

    # -- gates ---------------------------------------------------------------------------

    def add_gate(self, name: str, alias: str, requirement: str, actor: str) -> Gate:
        check_alias(alias)
        with self._db.write() as s, s.begin():
            return gates.add(s, self._model_row(s, name), alias, requirement, actor)

    def list_gates(self, name: str, alias: str | None = None) -> list[Gate]:
        with self._db.read() as s:
            return gates.of_model(s, self._model_row(s, name), alias)

    def remove_gate(self, name: str, gate_id: int, actor: str) -> Gate:
        with self._db.write() as s, s.begin():
            return gates.remove(s, self._model_row(s, name), gate_id, actor)

    # -- audit and lineage ---------------------------------------------------------------

    def history(self, name: str, limit: int = 1000) -> list[AuditEntry]:
        with self._db.read() as s:
            self._model_row(s, name)
            return audit.history(s, name, limit)

    def record_event(
        self,
        name: str,
        action: str,
        target: str | None,
        actor: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Add an audit entry to ``name``'s log for something that changed nothing, such as
        a loop the gates stopped (``loop_blocked``): the log then tells the whole story.

        Raises:
            NotFound: the model is not registered.
        """
        with self._db.write() as s, s.begin():
            self._model_row(s, name)
            audit.record(s, actor, name, action, target, None, details, reason)

    def versions_for_dataset(self, digest: str) -> list[ModelVersion]:
        """Every version whose run logged the data set ``digest`` (or a prefix of 8+ chars)."""
        check_digest_prefix(digest)
        match = (
            RunDatasetRow.digest == digest
            if len(digest) == 64
            else RunDatasetRow.digest.startswith(digest.lower(), autoescape=True)
        )
        runs = sa.select(RunDatasetRow.run_id).where(match)
        return self._versions_where(ModelVersionRow.run_id.in_(runs))

    def versions_for_run(self, run_id: str) -> list[ModelVersion]:
        return self._versions_where(ModelVersionRow.run_id == run_id)

    def _versions_where(self, condition: sa.ColumnElement[bool]) -> list[ModelVersion]:
        stmt = (
            sa.select(ModelVersionRow, RegisteredModelRow.name)
            .join(RegisteredModelRow, RegisteredModelRow.id == ModelVersionRow.model_id)
            .where(condition)
            .order_by(RegisteredModelRow.name, ModelVersionRow.version)
        )
        with self._db.read() as s:
            return [self._version(s, name, row) for row, name in s.execute(stmt)]
