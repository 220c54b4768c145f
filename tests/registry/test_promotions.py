"""Tests for promotion requests on SQLite and PostgreSQL: propose, approve, reject, and the
gates judged again at the moment of approval."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from segue.errors import Conflict, GateFailed, InvalidArgument, NotFound, PermissionDenied
from segue.identity import Actor
from segue.registry.promotions import Promotions
from segue.registry.service import Registry
from segue.store.entities import Metric
from segue.store.promotions import SqlPromotionStore
from segue.store.registry import SqlRegistryStore
from segue.tracking.client import TrackingClient


def score(X):
    """A python-flavor model: a plain function."""
    return np.asarray(X, dtype=float).sum(axis=1)


@pytest.fixture
def as_user(registry: Registry, client: TrackingClient):
    """``as_user("bob")``: the promotions service acting as ``user:bob``."""
    engine = registry.store.engine  # type: ignore[attr-defined]
    store = SqlPromotionStore(engine)

    def make(name: str) -> Promotions:
        return Promotions(store, Registry(SqlRegistryStore(engine), client, Actor("user", name)))

    return make


@pytest.fixture
def churn(registry: Registry, client: TrackingClient) -> dict[int, str]:
    """Versions 1..3 of 'churn' from runs with acc 0.9, 0.7 and 0.95; champion -> 1; a gate
    ``metrics.acc >= champion``: version -> run id."""
    runs = {}
    for acc in (0.9, 0.7, 0.95):
        run_id = client.create_run("registry").id
        client.log_metrics(run_id, [Metric("acc", acc, 0, 0)])
        runs[registry.log_model(run_id, score, register_as="churn").version.version] = run_id
    registry.set_alias("churn", "champion", 1)
    registry.add_gate("churn", "champion", "metrics.acc >= champion")
    return runs


def moves(registry: Registry) -> list[tuple[str, str, Any, Any]]:
    """The audit entries since the fixture's setup: (actor, action, target, reason)."""
    entries = registry.history("churn")
    start = max(i for i, e in enumerate(entries) if e.action == "add_gate") + 1
    return [(e.actor, e.action, e.target, e.reason) for e in entries[start:]]


def test_a_proposal_keeps_the_gate_report_of_that_moment(as_user, churn, registry):
    request = as_user("bob").propose("churn", 3, "champion", "0.95 beats 0.9")

    assert (request.model_name, request.version, request.alias) == ("churn", 3, "champion")
    assert (request.status, request.proposed_by, request.reason) == (
        "pending",
        "user:bob",
        "0.95 beats 0.9",
    )
    assert [
        (g["requirement"], g["value"], g["threshold"], g["passed"]) for g in request.gate_report
    ] == [("metrics.acc >= champion", 0.95, 0.9, True)]
    assert registry.get_model("churn").aliases == {"champion": 1}  # nothing moves yet


def test_a_proposal_that_fails_its_gates_is_kept_for_later(as_user, churn):
    request = as_user("bob").propose("churn", 2, "champion", "faster, if less accurate")

    assert request.status == "pending"
    assert request.gate_report[0]["passed"] is False
    assert request.gate_report[0]["note"] == "0.7 vs champion's 0.9"


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (("churn", 3, "champion", ""), InvalidArgument, "reason"),
        (("churn", 3, "champion", "   "), InvalidArgument, "reason"),
        (("churn", 9, "champion", "why"), NotFound, "no version 9"),
        (("nope", 1, "champion", "why"), NotFound, "'nope'"),
        (("churn", 3, "latest", "why"), InvalidArgument, "reserved"),
        (("churn", 1, "champion", "why"), Conflict, "already points at version 1"),
    ],
)
def test_a_bad_proposal_is_refused(as_user, churn, args, error, words):
    with pytest.raises(error, match=words):
        as_user("bob").propose(*args)


def test_approval_moves_the_alias_and_the_audit_log_tells_the_story(as_user, churn, registry):
    request = as_user("bob").propose("churn", 3, "champion", "0.95 beats 0.9")

    approved = as_user("carol").approve(request.id, "ship it")

    assert (approved.status, approved.decided_by, approved.comment) == (
        "approved",
        "user:carol",
        "ship it",
    )
    assert registry.get_model("churn").aliases == {"champion": 3}
    assert as_user("dan").get(request.id) == approved
    target = f"request {request.id}"
    assert moves(registry) == [
        ("user:bob", "propose", target, "0.95 beats 0.9"),
        ("user:carol", "approve", target, "ship it"),
        (
            "user:carol",
            "set_alias",
            "alias champion",
            f"approved promotion request {request.id}: 0.95 beats 0.9",
        ),
    ]
    move = registry.history("churn")[-1]
    assert (move.before, move.after["version"], move.after["forced"]) == ({"version": 1}, 3, False)


def test_a_proposal_approved_by_its_own_author_is_refused(as_user, churn, registry):
    bob = as_user("bob")
    request = bob.propose("churn", 3, "champion", "0.95 beats 0.9")

    with pytest.raises(PermissionDenied, match="proposed by user:bob: someone else must approve"):
        bob.approve(request.id, "looks fine to me")

    assert bob.get(request.id).status == "pending"
    assert registry.get_model("churn").aliases == {"champion": 1}
    assert [m[1] for m in moves(registry)] == ["propose"]


def test_an_approval_after_the_candidate_stopped_passing_does_not_move_the_alias(
    as_user, churn, registry, client
):
    request = as_user("bob").propose("churn", 3, "champion", "0.95 beats 0.9")
    # Since the proposal, a later evaluation of the candidate's run scored it lower.
    client.log_metrics(churn[3], [Metric("acc", 0.85, 1, 1)])

    with pytest.raises(
        GateFailed, match=f"request {request.id} failed: churn@champion not moved"
    ) as info:
        as_user("carol").approve(request.id, "ship it")

    assert info.value.report[0]["passed"] is False
    assert registry.get_model("churn").aliases == {"champion": 1}
    failed = as_user("carol").get(request.id)
    assert (failed.status, failed.decided_by, failed.comment) == ("failed", "user:carol", "ship it")
    assert [(g["value"], g["passed"]) for g in failed.gate_report] == [(0.85, False)]
    assert [m[1] for m in moves(registry)] == ["propose", "approval_failed"]
    with pytest.raises(Conflict, match="already failed by user:carol"):
        as_user("dan").approve(request.id)


def test_an_approval_after_a_new_gate_was_declared_does_not_move_the_alias(
    as_user, churn, registry
):
    request = as_user("bob").propose("churn", 3, "champion", "0.95 beats 0.9")
    registry.add_gate("churn", "champion", "metrics.latency_ms < 20")

    with pytest.raises(GateFailed, match="the candidate has no metric 'latency_ms'"):
        as_user("carol").approve(request.id)

    assert registry.get_model("churn").aliases == {"champion": 1}
    assert as_user("carol").get(request.id).status == "failed"


class MetricLandsAfterTheCheck(Registry):
    """A registry whose candidate's run logs a failing metric just after the gates are judged:
    the race between an approver's check and the move, made certain."""

    def __init__(self, *args: Any, run_id: str) -> None:
        super().__init__(*args)
        self.run_id = run_id

    def gate_report(self, name: str, alias: str, version: int) -> list[Any]:
        report = super().gate_report(name, alias, version)
        self.tracking.log_metrics(self.run_id, [Metric("acc", 0.5, 1, 1)])
        return report


def test_a_gate_that_fails_between_the_check_and_the_move_fails_the_request(
    as_user, churn, registry, client
):
    request = as_user("bob").propose("churn", 3, "champion", "0.95 beats 0.9")
    engine = registry.store.engine
    carol = Promotions(
        SqlPromotionStore(engine),
        MetricLandsAfterTheCheck(
            SqlRegistryStore(engine), client, Actor("user", "carol"), run_id=churn[3]
        ),
    )

    with pytest.raises(GateFailed):
        carol.approve(request.id)

    assert registry.get_model("churn").aliases == {"champion": 1}
    failed = carol.get(request.id)
    assert failed.status == "failed"
    assert [(g["value"], g["passed"]) for g in failed.gate_report] == [(0.5, False)]
    assert [m[1] for m in moves(registry)] == ["propose", "approve", "approval_failed"]


def test_an_approval_of_a_deleted_version_fails_the_request(as_user, churn, registry):
    request = as_user("bob").propose("churn", 3, "champion", "0.95 beats 0.9")
    registry.delete_version("churn", 3)

    with pytest.raises(NotFound, match="no version 3"):
        as_user("carol").approve(request.id)

    assert as_user("carol").get(request.id).status == "failed"
    assert registry.get_model("churn").aliases == {"champion": 1}


def test_two_approvers_at_once_move_the_alias_once(as_user, churn, registry):
    request = as_user("bob").propose("churn", 3, "champion", "0.95 beats 0.9")
    approvers = [as_user("carol"), as_user("dan")]
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def approve(i: int) -> None:
        barrier.wait()
        try:
            results[i] = approvers[i].approve(request.id)
        except Conflict as exc:
            results[i] = exc

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(type(r).__name__ for r in results) == ["Conflict", "PromotionRequest"]
    assert registry.get_model("churn").aliases == {"champion": 3}
    assert [m[1] for m in moves(registry)] == ["propose", "approve", "set_alias"]


def test_reject(as_user, churn, registry):
    request = as_user("bob").propose("churn", 3, "champion", "0.95 beats 0.9")

    with pytest.raises(InvalidArgument, match="comment"):
        as_user("carol").reject(request.id, " ")
    rejected = as_user("carol").reject(request.id, "wait for the April data")

    assert (rejected.status, rejected.decided_by, rejected.comment) == (
        "rejected",
        "user:carol",
        "wait for the April data",
    )
    assert rejected.gate_report == request.gate_report
    assert registry.get_model("churn").aliases == {"champion": 1}
    assert moves(registry)[-1] == (
        "user:carol",
        "reject",
        f"request {request.id}",
        "wait for the April data",
    )
    with pytest.raises(Conflict, match="already rejected by user:carol"):
        as_user("dan").approve(request.id)


def test_a_proposer_may_withdraw_by_rejecting(as_user, churn):
    bob = as_user("bob")
    request = bob.propose("churn", 3, "champion", "0.95 beats 0.9")

    assert bob.reject(request.id, "proposed the wrong version").status == "rejected"


def test_list_and_policy(as_user, churn, registry):
    bob = as_user("bob")
    first = bob.propose("churn", 3, "champion", "0.95 beats 0.9")
    second = bob.propose("churn", 2, "challenger", "try the fast one")
    as_user("carol").reject(first.id, "not now")

    assert [r.id for r in bob.list()] == [second.id, first.id]
    assert [r.id for r in bob.list(status="pending")] == [second.id]
    assert [r.id for r in bob.list(model="churn", status="rejected")] == [first.id]
    assert bob.policy("churn").require_approval is False
    policy = as_user("mia").set_policy("churn", True)
    assert (policy.require_approval, policy.updated_by) == (True, "user:mia")
    assert bob.policy("churn") == policy
    assert moves(registry)[-1] == ("user:mia", "set_policy", "policy", None)


def test_a_local_actor_is_compared_by_its_id(registry, churn):
    store = SqlPromotionStore(registry.store.engine)  # type: ignore[attr-defined]
    ada = Promotions(store, registry)  # local:ada (uid 1000)
    request = ada.propose("churn", 3, "champion", "0.95 beats 0.9")

    assert request.proposed_by == "local:ada (uid 1000)"
    with pytest.raises(PermissionDenied, match="proposed by local:ada"):
        ada.approve(request.id)
