"""Promotion requests: an alias moves once someone other than its proposer approves it.

An editor proposes a move (``churn@champion -> version 5``) with a reason; the alias's gates
are judged at once and kept on the request, so the approver sees them. A maintainer of the
model approves or rejects it with a comment. On approval the gates are judged again, at that
moment: the alias moves (through :meth:`Registry.set_alias`, never forced) only if they still
pass; otherwise the request becomes ``failed`` with the new report. Nobody approves their own
request. Every step is in the model's audit log.

Example:
    >>> promotions = Promotions(SqlPromotionStore(engine), registry)
    >>> request = promotions.propose("churn", 5, "champion", "better recall in March")
    >>> Promotions(store, carols_registry).approve(request.id, "ship it").status
    'approved'
"""

from __future__ import annotations

from typing import Any, Protocol

from segue.errors import (
    Conflict,
    GateFailed,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SegueError,
)
from segue.registry.service import Registry
from segue.store.aliases import check_alias
from segue.store.entities import ModelPolicy, PromotionRequest
from segue.store.promotions import PromotionStore


class PromotionService(Protocol):
    """What the edges use, embedded (:class:`Promotions`) or through a server
    (``segue.remote.promotions.RestPromotions``)."""

    def propose(self, name: str, version: int, alias: str, reason: str) -> PromotionRequest: ...
    def approve(self, request_id: int, comment: str | None = None) -> PromotionRequest: ...
    def reject(self, request_id: int, comment: str) -> PromotionRequest: ...
    def get(self, request_id: int) -> PromotionRequest: ...
    def list(
        self, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[PromotionRequest]: ...
    def policy(self, name: str) -> ModelPolicy: ...
    def set_policy(self, name: str, require_approval: bool) -> ModelPolicy: ...


class Promotions:
    """Propose, approve and reject alias moves, acting as the registry's actor.

    Args:
        store: where requests and policies are kept.
        registry: the registry that judges gates and moves aliases; its ``actor`` is who
            proposes, approves or rejects (``user:bob`` on a server, ``local:ada`` embedded).
    """

    def __init__(self, store: PromotionStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    @property
    def _actor(self) -> str:
        return str(self.registry.actor)

    def propose(self, name: str, version: int, alias: str, reason: str) -> PromotionRequest:
        """Ask for ``name@alias`` to point at ``version``; the gates are judged now and kept
        on the request (a proposal whose gates fail is kept too: they may pass later).

        Raises:
            InvalidArgument: no reason given.
            NotFound: no such model or version.
            Conflict: the alias already points there, or the same move is pending.
        """
        check_alias(alias)
        if not isinstance(reason, str) or not reason.strip(" \t\n\r\f\v"):
            raise InvalidArgument("reason: say why this version should be promoted (--reason)")
        report = [_result(r) for r in self.registry.gate_report(name, alias, version)]
        return self.store.create_request(name, version, alias, reason, self._actor, report)

    def approve(self, request_id: int, comment: str | None = None) -> PromotionRequest:
        """Approve a pending request and move the alias, if its gates pass now.

        Returns the request, ``approved``.

        Raises:
            PermissionDenied: the approver proposed it.
            Conflict: the request is no longer pending.
            GateFailed: a gate fails now; the request is ``failed`` with this report and the
                alias has not moved.
            NotFound: the version is gone; the request is ``failed``.
        """
        request = self._pending(request_id)
        if _actor_id(request.proposed_by) == self.registry.actor.id:
            raise PermissionDenied(
                f"promotion request {request_id} was proposed by {self.registry.actor.id}: "
                "someone else must approve it"
            )
        name, alias, version = request.model_name, request.alias, request.version
        try:
            report = [_result(r) for r in self.registry.gate_report(name, alias, version)]
        except NotFound:  # the version was deleted since: this request can never pass
            self.store.decide(request_id, "failed", self._actor, comment, request.gate_report)
            raise
        if not all(r["passed"] for r in report):
            self.store.decide(request_id, "failed", self._actor, comment, report)
            raise _gate_failed(request, report)
        # Claimed first, so that of two approvers racing only one moves the alias.
        approved = self.store.decide(request_id, "approved", self._actor, comment, report)
        try:
            self.registry.set_alias(
                name,
                alias,
                version,
                reason=f"approved promotion request {request_id}: {request.reason}",
            )
        except SegueError as exc:
            # The gates changed (or the version went) between the check and the move.
            now = getattr(exc, "report", None)
            failed = report if now is None else [_result(r) for r in now]
            self.store.decide(
                request_id, "failed", self._actor, comment, failed, expected_status="approved"
            )
            raise
        return approved

    def reject(self, request_id: int, comment: str) -> PromotionRequest:
        """Reject a pending request (its proposer may withdraw it this way too).

        Raises:
            InvalidArgument: no comment given.
            Conflict: the request is no longer pending.
        """
        if not isinstance(comment, str) or not comment.strip(" \t\n\r\f\v"):
            raise InvalidArgument("comment: say why the request is rejected (--comment)")
        request = self._pending(request_id)
        return self.store.decide(request_id, "rejected", self._actor, comment, request.gate_report)

    def get(self, request_id: int) -> PromotionRequest:
        return self.store.get_request(request_id)

    def list(
        self, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[PromotionRequest]:
        """Requests, newest first (of ``model`` and in ``status`` only, if given)."""
        return self.store.list_requests(model, status, limit)

    def policy(self, name: str) -> ModelPolicy:
        return self.store.get_policy(name)

    def set_policy(self, name: str, require_approval: bool) -> ModelPolicy:
        """Require an approved request for every move of ``name``'s aliases (or stop)."""
        return self.store.set_policy(name, require_approval, self._actor)

    def _pending(self, request_id: int) -> PromotionRequest:
        request = self.store.get_request(request_id)
        if request.status != "pending":
            by = f" by {request.decided_by}" if request.decided_by else ""
            raise Conflict(f"promotion request {request_id} is already {request.status}{by}")
        return request


def _actor_id(actor: str) -> str:
    """``user:bob`` of an audit log actor (``local:ada (uid 1000)`` -> ``local:ada``)."""
    return actor.split(" ", 1)[0]  # actor names have no spaces


def _result(result: Any) -> dict[str, Any]:
    """A gate result as the JSON a request keeps (a dict already, from a server)."""
    return dict(result) if isinstance(result, dict) else dict(vars(result))


def _gate_failed(request: PromotionRequest, report: list[dict[str, Any]]) -> GateFailed:
    failed = "; ".join(
        f"gate '{r['requirement']}' failed ({r['note']})" for r in report if not r["passed"]
    )
    return GateFailed(
        f"promotion request {request.id} failed: {request.model_name}@{request.alias} not "
        f"moved to version {request.version}: {failed}",
        report,
    )
