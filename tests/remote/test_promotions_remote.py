"""RestPromotions against a live ``segue server`` on SQLite and PostgreSQL: the same calls and
the same errors as the embedded :class:`~segue.registry.promotions.Promotions`, decided on the
server as each token's user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from segue.artifacts import ContentStore, FsspecBackend
from segue.auth.service import AuthService
from segue.config import Settings
from segue.errors import Conflict, GateFailed, InvalidArgument, NotFound, PermissionDenied
from segue.identity import Actor
from segue.registry.service import Registry
from segue.remote.http import RemoteSession
from segue.remote.promotions import RestPromotions
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine
from segue.store.entities import Metric, ModelPolicy
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient


def score(X):
    """A python-flavor model: a plain function."""
    return np.asarray(X, dtype=float).sum(axis=1)


@pytest.fixture
def seeded(store_uri: str, tmp_path: Path) -> Iterator[tuple[Registry, dict[int, str]]]:
    """``churn`` versions 1..3 (acc 0.9, 0.7, 0.95), champion -> 1, gate ``acc >= champion``:
    the registry acting as ``local:ops`` and version -> run id."""
    engine = open_engine(store_uri)
    artifacts = str(tmp_path / "artifacts")
    config = Settings(home=tmp_path, store_uri=store_uri, artifact_uri=artifacts)
    client = TrackingClient(
        SqlTrackingStore(engine), ContentStore(FsspecBackend(artifacts)), config
    )
    registry = Registry(SqlRegistryStore(engine), client, Actor("local", "ops"))
    runs = {}
    for acc in (0.9, 0.7, 0.95):
        run_id = client.create_run("promotions").id
        client.log_metrics(run_id, [Metric("acc", acc, 0, 0)])
        runs[registry.log_model(run_id, score, register_as="churn").version.version] = run_id
    client.flush()
    registry.set_alias("churn", "champion", 1)
    registry.add_gate("churn", "champion", "metrics.acc >= champion")
    yield registry, runs
    client.writer.close()


@pytest.fixture
def as_user(
    seeded, store_uri: str, start_server, tmp_path: Path
) -> Iterator[Callable[[str], RestPromotions]]:
    """``as_user("ed")``: RestPromotions with ed's token (ed: editor; carol and max:
    maintainers)."""
    auth = AuthService(SqlAuthStore(open_engine(store_uri)))
    tokens = {}
    for user, role in (("ed", "editor"), ("carol", "maintainer"), ("max", "maintainer")):
        auth.add_user(user, role, "local:ops")
        tokens[user], _ = auth.create_token(user, "laptop", "local:ops")
    server = start_server(store_uri, str(tmp_path / "artifacts"))
    sessions = []

    def make(user: str) -> RestPromotions:
        sessions.append(RemoteSession(server.url, tokens[user]))
        return RestPromotions(sessions[-1])

    yield make
    for session in sessions:
        session.close()


def test_propose_approve_list_through_the_server(as_user, seeded):
    registry, _ = seeded
    ed, carol = as_user("ed"), as_user("carol")

    request = ed.propose("churn", 3, "champion", "0.95 beats 0.9")
    assert (request.status, request.proposed_by, request.gate_report[0]["passed"]) == (
        "pending",
        "user:ed",
        True,
    )
    assert ed.get(request.id) == request
    approved = carol.approve(request.id, "ship it")

    assert (approved.status, approved.decided_by, approved.comment) == (
        "approved",
        "user:carol",
        "ship it",
    )
    assert registry.get_model("churn").aliases == {"champion": 3}
    assert ed.list(model="churn") == [approved]
    assert ed.list(status="pending") == []


def test_errors_come_back_as_the_same_classes(as_user, seeded):
    registry, runs = seeded
    ed, carol = as_user("ed"), as_user("carol")
    mine = carol.propose("churn", 3, "champion", "0.95 beats 0.9")

    with pytest.raises(PermissionDenied, match="someone else must approve it"):
        carol.approve(mine.id)
    with pytest.raises(PermissionDenied, match="maintainer"):
        ed.approve(mine.id)
    with pytest.raises(Conflict, match=f"request {mine.id} already proposes"):
        ed.propose("churn", 3, "champion", "me too")
    with pytest.raises(NotFound, match="no version 9"):
        ed.propose("churn", 9, "champion", "why")
    with pytest.raises(NotFound, match="no promotion request 99"):
        carol.approve(99)
    with pytest.raises(InvalidArgument):
        ed.propose("churn", 2, "champion", "   ")
    with pytest.raises(InvalidArgument):
        carol.reject(mine.id, "")

    registry.tracking.log_metrics(runs[3], [Metric("acc", 0.5, 1, 1)])
    registry.tracking.flush()
    ed_request = ed.propose("churn", 2, "challenger", "try the fast one")
    with pytest.raises(GateFailed, match=f"request {mine.id} failed") as info:
        as_user("max").approve(mine.id)
    assert [(g["value"], g["passed"]) for g in info.value.report] == [(0.5, False)]
    assert (carol.get(mine.id).status, carol.get(mine.id).decided_by) == ("failed", "user:max")
    assert registry.get_model("churn").aliases == {"champion": 1}
    rejected = carol.reject(ed_request.id, "not now")
    assert (rejected.status, rejected.comment) == ("rejected", "not now")


def test_policy_through_the_server(as_user):
    ed, carol = as_user("ed"), as_user("carol")

    assert ed.policy("churn") == ModelPolicy("churn", False)
    with pytest.raises(PermissionDenied):
        ed.set_policy("churn", True)
    policy = carol.set_policy("churn", True)

    assert (policy.require_approval, policy.updated_by) == (True, "user:carol")
    assert ed.policy("churn") == policy
    with pytest.raises(NotFound, match="'nope'"):
        ed.policy("nope")
