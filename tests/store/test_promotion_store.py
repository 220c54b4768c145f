"""Tests for SqlPromotionStore on SQLite and PostgreSQL: requests, decisions, policies, audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from segue.errors import Conflict, InvalidArgument, NotFound
from segue.store.entities import Experiment, ModelPolicy, PromotionRequest, RunInfo
from segue.store.promotions import SqlPromotionStore
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore

T0 = 1_700_000_000_000
REPORT = [
    {
        "requirement": "metrics.acc >= 0.9",
        "value": 0.93,
        "threshold": 0.9,
        "passed": True,
        "note": "",
    }
]


@pytest.fixture
def registry_store(
    store: SqlTrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> SqlRegistryStore:
    """``churn`` with versions 1 and 2, ``fraud`` with version 1; churn@champion -> 1."""
    registry = SqlRegistryStore(store.engine)
    run_id = store.create_run(run_info(exp, status="FINISHED", end_time=T0)).id
    for name, count in (("churn", 2), ("fraud", 1)):
        registry.create_model(name, "user:ada")
        for _ in range(count):
            registry.create_version(name, run_id, "model", "d" * 64, "sklearn", "user:ada")
    registry.set_alias("churn", "champion", 1, expected=None, actor="user:ada")
    return registry


@pytest.fixture
def promotions(registry_store: SqlRegistryStore) -> SqlPromotionStore:
    return SqlPromotionStore(registry_store.engine)


def propose(promotions: SqlPromotionStore, version: int = 2, **kwargs: Any) -> PromotionRequest:
    args: dict[str, Any] = {
        "model": "churn",
        "version": version,
        "alias": "champion",
        "reason": "better recall on the March data",
        "proposed_by": "user:bob",
        "gate_report": REPORT,
    }
    return promotions.create_request(**{**args, **kwargs})


def actions(registry_store: SqlRegistryStore, name: str = "churn") -> list[tuple[Any, ...]]:
    return [
        (e.actor, e.action, e.target, e.reason)
        for e in registry_store.history(name)
        if e.action not in ("create_model", "register", "set_alias")
    ]


# -- requests ------------------------------------------------------------------------------


def test_a_request_is_stored_pending_with_its_gate_report(promotions, registry_store):
    request = propose(promotions)

    assert request.model_name == "churn"
    assert (request.version, request.alias, request.status) == (2, "champion", "pending")
    assert request.proposed_by == "user:bob"
    assert request.gate_report == REPORT
    assert request.decided_by is request.decided_at is request.comment is None
    assert promotions.get_request(request.id) == request
    entry = registry_store.history("churn")[-1]
    assert (entry.actor, entry.action, entry.target) == (
        "user:bob",
        "propose",
        f"request {request.id}",
    )
    assert entry.reason == "better recall on the March data"
    assert entry.after == {
        "request": request.id,
        "version": 2,
        "alias": "champion",
        "gates": REPORT,
    }


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"model": "nope"}, NotFound, "model 'nope' is not registered"),
        ({"model": "bad name"}, InvalidArgument, "model name"),
        ({"version": 9}, NotFound, "has no version 9"),
        ({"version": 0}, InvalidArgument, "version must be an integer"),
        ({"version": 2**40}, InvalidArgument, "version must be an integer"),
        ({"alias": "latest"}, InvalidArgument, "reserved"),
        ({"alias": "1st"}, InvalidArgument, "alias"),
        ({"reason": "  "}, InvalidArgument, "reason"),
        ({"reason": None}, InvalidArgument, "reason"),
        ({"reason": "a\x00b"}, InvalidArgument, "NUL"),
        ({"reason": "x" * 10_001}, InvalidArgument, "at most 10000"),
        ({"version": 1}, Conflict, "churn@champion already points at version 1"),
    ],
)
def test_a_bad_request_is_refused(promotions, change, error, words):
    with pytest.raises(error, match=words):
        propose(promotions, **change)

    assert promotions.list_requests() == []


def test_the_same_move_cannot_be_pending_twice(promotions):
    first = propose(promotions)

    with pytest.raises(Conflict, match=f"request {first.id} already proposes"):
        propose(promotions, proposed_by="user:dan")
    propose(promotions, alias="challenger")  # another alias is another move
    promotions.decide(first.id, "rejected", "user:carol", "not yet", REPORT)
    propose(promotions)  # once decided, the move may be proposed again


def test_requests_list_newest_first_filtered_by_model_and_status(promotions):
    a = propose(promotions)
    b = propose(promotions, model="fraud", version=1)
    c = propose(promotions, alias="challenger")
    promotions.decide(a.id, "rejected", "user:carol", "no", [])

    assert [r.id for r in promotions.list_requests()] == [c.id, b.id, a.id]
    assert [r.id for r in promotions.list_requests(model="churn")] == [c.id, a.id]
    assert [r.id for r in promotions.list_requests(status="pending")] == [c.id, b.id]
    assert [r.id for r in promotions.list_requests("churn", "rejected")] == [a.id]
    assert [r.id for r in promotions.list_requests(limit=1)] == [c.id]
    with pytest.raises(NotFound, match="'nope'"):
        promotions.list_requests(model="nope")
    with pytest.raises(InvalidArgument, match="status must be one of"):
        promotions.list_requests(status="done")
    with pytest.raises(InvalidArgument, match="limit"):
        promotions.list_requests(limit=0)


def test_an_unknown_request_is_not_found(promotions):
    with pytest.raises(NotFound, match="no promotion request 42"):
        promotions.get_request(42)
    with pytest.raises(NotFound, match="no promotion request 42"):
        promotions.decide(42, "approved", "user:carol", None, [])
    with pytest.raises(InvalidArgument, match="request id"):
        promotions.get_request(2**40)


# -- decisions -----------------------------------------------------------------------------


def test_a_decision_records_who_when_why_and_the_gates_then(promotions, registry_store):
    request = propose(promotions)
    later = [{**REPORT[0], "value": 0.95}]

    decided = promotions.decide(request.id, "approved", "user:carol", " ship it ", later)

    assert decided.status == "approved"
    assert (decided.decided_by, decided.comment, decided.gate_report) == (
        "user:carol",
        "ship it",
        later,
    )
    assert decided.decided_at is not None and decided.decided_at >= request.created_at
    assert promotions.get_request(request.id) == decided
    entry = registry_store.history("churn")[-1]
    assert (entry.actor, entry.action, entry.reason) == ("user:carol", "approve", "ship it")
    assert entry.before == {"request": request.id, "status": "pending"}
    assert entry.after == {
        "request": request.id,
        "status": "approved",
        "version": 2,
        "alias": "champion",
        "gates": later,
    }


def test_a_request_is_decided_once(promotions):
    request = propose(promotions)
    promotions.decide(request.id, "rejected", "user:carol", "no", [])

    with pytest.raises(
        Conflict, match=f"request {request.id} is rejected by user:carol, not pending"
    ):
        promotions.decide(request.id, "approved", "user:dan", None, [])
    assert promotions.get_request(request.id).decided_by == "user:carol"


def test_an_approval_can_fail_afterwards(promotions, registry_store):
    request = propose(promotions)
    promotions.decide(request.id, "approved", "user:carol", None, REPORT)
    failing = [{**REPORT[0], "value": 0.5, "passed": False}]

    failed = promotions.decide(
        request.id, "failed", "user:carol", None, failing, expected_status="approved"
    )

    assert (failed.status, failed.gate_report) == ("failed", failing)
    assert [a[1] for a in actions(registry_store)] == ["propose", "approve", "approval_failed"]


@pytest.mark.parametrize("status", ["pending", "done", None])
def test_a_decision_names_a_final_status(promotions, status):
    request = propose(promotions)

    with pytest.raises(InvalidArgument, match="status"):
        promotions.decide(request.id, status, "user:carol", None, [])


def test_two_concurrent_decisions_one_wins(promotions, registry_store, in_threads):
    request = propose(promotions)
    deciders = iter(f"user:m{i}" for i in range(8))

    def decide() -> PromotionRequest:
        return promotions.decide(request.id, "approved", next(deciders), None, [])

    results = in_threads(8, decide)

    won = [r for r in results if isinstance(r, PromotionRequest)]
    assert len(won) == 1, results
    assert all(isinstance(r, Conflict) for r in results if r not in won), results
    assert promotions.get_request(request.id) == won[0]
    assert [a[1] for a in actions(registry_store)] == ["propose", "approve"]


# -- policy --------------------------------------------------------------------------------


def test_a_policy_is_off_until_set(promotions, registry_store):
    assert promotions.get_policy("churn") == ModelPolicy("churn", False)
    assert promotions.requires_approval("churn") is False

    on = promotions.set_policy("churn", True, "user:mia")

    assert (on.model_name, on.require_approval, on.updated_by) == ("churn", True, "user:mia")
    assert promotions.get_policy("churn") == on
    assert promotions.requires_approval("churn") is True
    assert promotions.requires_approval("fraud") is False
    promotions.set_policy("churn", False, "user:ada")
    assert promotions.requires_approval("churn") is False
    policy_entries = [e for e in registry_store.history("churn") if e.action == "set_policy"]
    assert [(e.actor, e.before, e.after) for e in policy_entries] == [
        ("user:mia", None, {"require_approval": True}),
        ("user:ada", {"require_approval": True}, {"require_approval": False}),
    ]


def test_a_policy_needs_a_registered_model_and_a_boolean(promotions):
    with pytest.raises(NotFound, match="'nope'"):
        promotions.requires_approval("nope")
    with pytest.raises(NotFound, match="'nope'"):
        promotions.set_policy("nope", True, "user:mia")
    with pytest.raises(InvalidArgument, match="require_approval"):
        promotions.set_policy("churn", "yes", "user:mia")  # type: ignore[arg-type]
