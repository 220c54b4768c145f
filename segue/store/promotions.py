"""The promotion store: proposed alias moves, their decisions, and each model's policy.

A promotion request is decided once: :meth:`SqlPromotionStore.decide` is a compare-and-set on
the request's status, so two maintainers deciding the same request at the same moment cannot
both win; the second gets :class:`~segue.errors.Conflict`. Every step writes its entry in the
registry's audit log in the same transaction (``propose``, ``approve``, ``reject``,
``approval_failed``, ``set_policy``). Judging gates and moving the alias is the registry's
work (:mod:`segue.registry.promotions`); this module only keeps the records.

Example:
    >>> store = SqlPromotionStore(open_engine(settings().store_uri))
    >>> request = store.create_request("churn", 5, "champion", "better recall", "user:bob", [])
    >>> store.decide(request.id, "approved", "user:carol", "looks good", []).status
    'approved'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from segue.errors import Conflict, InvalidArgument, NotFound
from segue.store import aliases, audit
from segue.store.aliases import check_alias
from segue.store.entities import ModelPolicy, PromotionRequest
from segue.store.registry import check_model_name
from segue.store.schema import (
    ModelPolicyRow,
    ModelVersionRow,
    PromotionRequestRow,
    RegisteredModelRow,
)
from segue.store.sessions import Database

#: A request's life: ``pending`` until a maintainer decides; ``failed`` is an approval that a
#: gate (or a vanished version) refused at the moment of the move.
STATUSES = ("pending", "approved", "rejected", "failed")
#: The audit log's action for each decision.
_ACTIONS = {"approved": "approve", "rejected": "reject", "failed": "approval_failed"}
#: Longest reason or comment kept (the REST API refuses longer ones at the door).
MAX_TEXT = 10_000
#: The largest request id or version number (the columns are 32-bit integers).
MAX_ID = 2**31 - 1


class PromotionStore(Protocol):
    """What promotion requests need from a metadata store."""

    def create_request(
        self,
        model: str,
        version: int,
        alias: str,
        reason: str,
        proposed_by: str,
        gate_report: Sequence[dict[str, Any]],
    ) -> PromotionRequest: ...
    def get_request(self, request_id: int) -> PromotionRequest: ...
    def list_requests(
        self, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[PromotionRequest]: ...
    def decide(
        self,
        request_id: int,
        status: str,
        decided_by: str,
        comment: str | None,
        gate_report: Sequence[dict[str, Any]],
        expected_status: str = "pending",
    ) -> PromotionRequest: ...
    def get_policy(self, model: str) -> ModelPolicy: ...
    def requires_approval(self, model: str) -> bool: ...
    def set_policy(self, model: str, require_approval: bool, actor: str) -> ModelPolicy: ...


class SqlPromotionStore:
    """:class:`PromotionStore` over SQLAlchemy, for SQLite and PostgreSQL.

    Args:
        engine: an engine whose schema is migrated (``open_engine`` does that).
    """

    def __init__(self, engine: Engine) -> None:
        self._db = Database(engine)

    # -- requests ------------------------------------------------------------------------

    def create_request(
        self,
        model: str,
        version: int,
        alias: str,
        reason: str,
        proposed_by: str,
        gate_report: Sequence[dict[str, Any]],
    ) -> PromotionRequest:
        """Record a proposal to point ``model@alias`` at ``version``, pending a decision.

        Raises:
            NotFound: no such model or version.
            InvalidArgument: an empty reason, a malformed alias.
            Conflict: the alias already points at ``version``, or a pending request already
                proposes the same move.
        """
        check_alias(alias)
        reason = _reason(reason)
        report = [dict(r) for r in gate_report]
        with self._db.write() as s, s.begin():
            row = _model_row(s, model)
            if s.get(ModelVersionRow, (row.id, _number(version, "version"))) is None:
                raise NotFound(
                    f"model {model!r} has no version {version}; see `segue models show {model}`"
                )
            _refuse_duplicate(s, row, version, alias)
            request = PromotionRequestRow(
                model_id=row.id,
                version=version,
                alias=alias,
                reason=reason,
                proposed_by=proposed_by,
                created_at=audit.now_ms(),
                status="pending",
                gate_report=audit.json_safe(report),
            )
            s.add(request)
            s.flush()
            after = {"request": request.id, "version": version, "alias": alias, "gates": report}
            audit.record(
                s, proposed_by, model, "propose", f"request {request.id}", None, after, reason
            )
            return _request(model, request)

    def get_request(self, request_id: int) -> PromotionRequest:
        """The request ``request_id``.

        Raises:
            NotFound: there is no such request.
        """
        _number(request_id, "request id")
        with self._db.read() as s:
            found = s.execute(_with_model().where(PromotionRequestRow.id == request_id)).first()
            if found is None:
                raise _no_request(request_id)
            return _request(found[1], found[0])

    def list_requests(
        self, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[PromotionRequest]:
        """Requests, newest first: of ``model`` only and in ``status`` only, if given.

        Raises:
            NotFound: ``model`` is not registered.
            InvalidArgument: an unknown status or a limit that is not a positive integer.
        """
        if status is not None:
            _status(status)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
        stmt = _with_model().order_by(PromotionRequestRow.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(PromotionRequestRow.status == status)
        with self._db.read() as s:
            if model is not None:
                stmt = stmt.where(PromotionRequestRow.model_id == _model_row(s, model).id)
            return [_request(name, row) for row, name in s.execute(stmt)]

    def decide(
        self,
        request_id: int,
        status: str,
        decided_by: str,
        comment: str | None,
        gate_report: Sequence[dict[str, Any]],
        expected_status: str = "pending",
    ) -> PromotionRequest:
        """Mark the request ``status`` if it is still ``expected_status``, with who decided,
        their comment and the gate report at that moment.

        Raises:
            NotFound: there is no such request.
            Conflict: the request is no longer ``expected_status`` (someone decided first).
            InvalidArgument: ``status`` is not approved, rejected or failed.
        """
        if _status(status) == "pending":
            raise InvalidArgument("status: a decision is approved, rejected or failed")
        _status(expected_status)
        _number(request_id, "request id")
        comment = _comment(comment)
        report = [dict(r) for r in gate_report]
        now = audit.now_ms()
        with self._db.write() as s, s.begin():
            # Compare-and-set: of two deciders racing, only the first matches the old status.
            decided = s.execute(
                sa.update(PromotionRequestRow)
                .where(
                    PromotionRequestRow.id == request_id,
                    PromotionRequestRow.status == expected_status,
                )
                .values(
                    status=status,
                    decided_by=decided_by,
                    decided_at=now,
                    comment=comment,
                    gate_report=audit.json_safe(report),
                )
                .returning(PromotionRequestRow.id)
            ).first()
            found = s.execute(_with_model().where(PromotionRequestRow.id == request_id)).first()
            if found is None:
                raise _no_request(request_id)
            row, name = found
            if decided is None:
                by = f" by {row.decided_by}" if row.decided_by else ""
                raise Conflict(
                    f"promotion request {request_id} is {row.status}{by}, not {expected_status}"
                )
            before = {"request": request_id, "status": expected_status}
            after = {
                "request": request_id,
                "status": status,
                "version": row.version,
                "alias": row.alias,
                "gates": report,
            }
            target = f"request {request_id}"
            audit.record(s, decided_by, name, _ACTIONS[status], target, before, after, comment)
            return _request(name, row)

    # -- policy --------------------------------------------------------------------------

    def get_policy(self, model: str) -> ModelPolicy:
        """``model``'s policy (``require_approval`` False until one is set).

        Raises:
            NotFound: ``model`` is not registered.
        """
        with self._db.read() as s:
            row = _model_row(s, model)
            policy = s.get(ModelPolicyRow, row.id)
            if policy is None:
                return ModelPolicy(model, False)
            return ModelPolicy(model, policy.require_approval, policy.updated_at, policy.updated_by)

    def requires_approval(self, model: str) -> bool:
        """Whether moving ``model``'s aliases needs an approved promotion request, even for
        its maintainers.

        Raises:
            NotFound: ``model`` is not registered.
        """
        return self.get_policy(model).require_approval

    def set_policy(self, model: str, require_approval: bool, actor: str) -> ModelPolicy:
        """Require (or stop requiring) an approved request for every move of ``model``'s
        aliases.

        Raises:
            NotFound: ``model`` is not registered.
        """
        if not isinstance(require_approval, bool):
            raise InvalidArgument(
                f"require_approval must be true or false, got {require_approval!r}"
            )
        now = audit.now_ms()
        with self._db.write() as s, s.begin():
            row = _model_row(s, model)
            policy = s.get(ModelPolicyRow, row.id)
            before = None if policy is None else {"require_approval": policy.require_approval}
            values = {"require_approval": require_approval, "updated_at": now, "updated_by": actor}
            s.execute(
                self._db.insert(ModelPolicyRow)
                .values(model_id=row.id, **values)
                .on_conflict_do_update(index_elements=["model_id"], set_=values)
            )
            after = {"require_approval": require_approval}
            audit.record(s, actor, model, "set_policy", "policy", before, after)
        return ModelPolicy(model, require_approval, now, actor)


def _model_row(s: Session, name: str) -> RegisteredModelRow:
    check_model_name(name)
    row = s.scalar(sa.select(RegisteredModelRow).where(RegisteredModelRow.name == name))
    if row is None:
        raise NotFound(f"model {name!r} is not registered; see `segue models list`")
    return row


def _refuse_duplicate(s: Session, model: RegisteredModelRow, version: int, alias: str) -> None:
    if aliases.version_of(s, model.id, alias) == version:
        raise Conflict(f"{model.name}@{alias} already points at version {version}")
    pending = s.scalar(
        sa.select(PromotionRequestRow.id).where(
            PromotionRequestRow.model_id == model.id,
            PromotionRequestRow.status == "pending",
            PromotionRequestRow.alias == alias,
            PromotionRequestRow.version == version,
        )
    )
    if pending is not None:
        raise Conflict(
            f"promotion request {pending} already proposes {model.name}@{alias} -> version "
            f"{version}; see `segue models requests list --model {model.name}`"
        )


def _with_model() -> sa.Select[PromotionRequestRow, str]:
    return sa.select(PromotionRequestRow, RegisteredModelRow.name).join(
        RegisteredModelRow, RegisteredModelRow.id == PromotionRequestRow.model_id
    )


def _request(model: str, row: PromotionRequestRow) -> PromotionRequest:
    return PromotionRequest(
        row.id,
        model,
        row.version,
        row.alias,
        row.reason,
        row.proposed_by,
        row.created_at,
        row.status,
        list(row.gate_report or []),
        row.decided_by,
        row.decided_at,
        row.comment,
    )


def _no_request(request_id: int) -> NotFound:
    return NotFound(f"there is no promotion request {request_id}; see `segue models requests list`")


def _status(status: Any) -> str:
    if status not in STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    return str(status)


def _number(value: Any, what: str) -> int:
    # Bounded as the INTEGER columns are: PostgreSQL refuses a larger number outright.
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise InvalidArgument(f"{what} must be an integer from 1 to {MAX_ID}, got {value!r}")
    return value


#: What a reason or comment is stripped of: the whitespace the REST API's schema names too.
_BLANK = " \t\n\r\f\v"


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip(_BLANK):
        raise InvalidArgument("reason: say why, in a few words (it is kept in the audit log)")
    return _storable(value.strip(_BLANK), "reason")


def _comment(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"comment must be text, got {type(value).__name__}")
    return _storable(value.strip(_BLANK), "comment") or None


def _storable(text: str, what: str) -> str:
    # PostgreSQL refuses NUL in text; a bound keeps one request from filling the audit log.
    if "\x00" in text or len(text) > MAX_TEXT:
        raise InvalidArgument(f"{what}: at most {MAX_TEXT} characters and no NUL characters")
    return text
