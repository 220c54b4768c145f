"""``segue server``'s promotion requests and approval policy, over real HTTP on SQLite and
PostgreSQL: an editor proposes, a maintainer of the model (someone else) approves, and the
alias moves only if its gates pass at that moment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from segue.artifacts import ContentStore, FsspecBackend
from segue.auth.service import AuthService
from segue.config import Settings
from segue.identity import Actor
from segue.registry.service import Registry
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine
from segue.store.entities import Metric
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient


def score(X):
    """A python-flavor model: a plain function."""
    return np.asarray(X, dtype=float).sum(axis=1)


@dataclass
class Team:
    """A server over ``churn`` (versions 1..3 with acc 0.9, 0.7, 0.95; champion -> 1; gate
    ``metrics.acc >= champion``) and ``fraud`` (version 1), and a token per person:

    ed (editor), carol (viewer, maintainer of churn), max (maintainer), fay (viewer,
    maintainer of fraud), vic (viewer)."""

    url: str
    tokens: dict[str, str]
    client: TrackingClient
    runs: dict[int, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.tokens[who]}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, **kwargs)

    def propose(self, who: str, version: int = 3, alias: str = "champion") -> httpx.Response:
        body = {"version": version, "alias": alias, "reason": f"{who} thinks {version} is better"}
        return self.call(who, "POST", "/models/churn/requests", json=body)

    def decide(self, who: str, request_id: int, verb: str, **body: Any) -> httpx.Response:
        return self.call(who, "POST", f"/models/churn/requests/{request_id}/{verb}", json=body)

    def champion(self) -> int:
        return self.call("vic", "GET", "/models/churn").json()["aliases"]["champion"]


@pytest.fixture
def team(store_uri: str, start_server, tmp_path: Path) -> Team:
    engine = open_engine(store_uri)
    artifacts = str(tmp_path / "artifacts")
    config = Settings(home=tmp_path, store_uri=store_uri, artifact_uri=artifacts)
    client = TrackingClient(
        SqlTrackingStore(engine), ContentStore(FsspecBackend(artifacts)), config
    )
    registry = Registry(SqlRegistryStore(engine), client, Actor("local", "ops"))
    runs = {}
    for model, scores in (("churn", (0.9, 0.7, 0.95)), ("fraud", (0.8,))):
        for acc in scores:
            run_id = client.create_run("promotions").id
            client.log_metrics(run_id, [Metric("acc", acc, 0, 0)])
            version = registry.log_model(run_id, score, register_as=model).version
            if model == "churn":
                runs[version.version] = run_id
    client.flush()
    registry.set_alias("churn", "champion", 1)
    registry.add_gate("churn", "champion", "metrics.acc >= champion")
    auth = AuthService(SqlAuthStore(engine))
    tokens = {}
    for user, role in (
        ("ed", "editor"),
        ("carol", "viewer"),
        ("max", "maintainer"),
        ("ada", "admin"),
    ):
        auth.add_user(user, role, "local:ops")
    for user in ("fay", "vic"):
        auth.add_user(user, "viewer", "local:ops")
    auth.grant("churn", "carol", "maintainer", "local:ops")
    auth.grant("fraud", "fay", "maintainer", "local:ops")
    for user in ("ed", "carol", "max", "fay", "vic", "ada"):
        tokens[user], _ = auth.create_token(user, "laptop", "local:ops")
    server = start_server(store_uri, artifacts)
    yield Team(server.url, tokens, client, runs)
    client.writer.close()


def test_an_editor_proposes_and_a_maintainer_of_the_model_approves(team):
    proposed = team.propose("ed")
    assert proposed.status_code == 201, proposed.text
    request = proposed.json()
    assert (request["status"], request["proposed_by"], request["version"]) == (
        "pending",
        "user:ed",
        3,
    )
    assert [
        (g["requirement"], g["value"], g["threshold"], g["passed"]) for g in request["gate_report"]
    ] == [("metrics.acc >= champion", 0.95, 0.9, True)]
    assert team.champion() == 1

    approved = team.decide("carol", request["id"], "approve", comment="ship it")

    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "user:carol")
    assert team.champion() == 3
    history = team.call("vic", "GET", "/models/churn/history").json()
    assert [(e["actor"], e["action"], e["reason"]) for e in history[-3:]] == [
        ("user:ed", "propose", "ed thinks 3 is better"),
        ("user:carol", "approve", "ship it"),
        (
            "user:carol",
            "set_alias",
            f"approved promotion request {request['id']}: ed thinks 3 is better",
        ),
    ]


def test_nobody_approves_their_own_request(team):
    request = team.propose("carol").json()

    own = team.decide("carol", request["id"], "approve", comment="mine is good")

    assert own.status_code == 403, own.text
    assert own.json()["type"] == "PermissionDenied"
    assert "someone else must approve it" in own.json()["error"]
    assert team.champion() == 1
    # No body at all: an approval without a comment.
    assert (
        team.call("max", "POST", f"/models/churn/requests/{request['id']}/approve").status_code
        == 200
    )
    assert team.champion() == 3


def test_only_a_maintainer_of_the_model_decides(team):
    request = team.propose("ed").json()

    for who, verb in [("ed", "approve"), ("vic", "approve"), ("fay", "approve"), ("fay", "reject")]:
        refused = team.decide(who, request["id"], verb, comment="no")
        assert refused.status_code == 403, (who, verb, refused.text)
        assert "maintainer" in refused.json()["error"]

    assert team.call("vic", "GET", f"/requests/{request['id']}").json()["status"] == "pending"


def test_only_an_editor_of_the_model_proposes(team):
    refused = team.propose("vic")

    assert refused.status_code == 403
    assert team.call("vic", "GET", "/requests").json() == []


def test_a_request_is_decided_under_its_own_model_only(team):
    request = team.propose("ed").json()

    # fay maintains fraud: naming fraud in the path must not reach churn's request.
    crossed = team.call("fay", "POST", f"/models/fraud/requests/{request['id']}/approve", json={})

    assert crossed.status_code == 404, crossed.text
    assert team.champion() == 1
    assert team.call("vic", "GET", f"/models/fraud/requests/{request['id']}").status_code == 404
    assert team.call("vic", "GET", f"/models/churn/requests/{request['id']}").json() == request


def test_a_policy_refuses_direct_moves_even_for_maintainers_while_requests_work(team):
    assert team.call("vic", "GET", "/models/churn/policy").json()["require_approval"] is False
    assert (
        team.call("ed", "PUT", "/models/churn/policy", json={"require_approval": True}).status_code
        == 403
    )

    set_ = team.call("carol", "PUT", "/models/churn/policy", json={"require_approval": True})

    assert set_.status_code == 200, set_.text
    assert (set_.json()["require_approval"], set_.json()["updated_by"]) == (True, "user:carol")
    direct = team.call("max", "PUT", "/models/churn/aliases/champion", json={"version": 3})
    assert direct.status_code == 403, direct.text
    assert "segue models propose churn/3 --alias champion" in direct.json()["error"]
    assert team.champion() == 1
    request = team.propose("max").json()
    assert team.decide("carol", request["id"], "approve").status_code == 200
    assert team.champion() == 3
    # Another model keeps its own (default) policy.
    assert (
        team.call("fay", "PUT", "/models/fraud/aliases/champion", json={"version": 1}).status_code
        == 200
    )


def test_only_an_admin_lifts_the_policy_and_unsetting_the_alias_is_held_by_it_too(team):
    on = team.call("carol", "PUT", "/models/churn/policy", json={"require_approval": True})
    assert on.status_code == 200, on.text

    lift = team.call("carol", "PUT", "/models/churn/policy", json={"require_approval": False})
    unset = team.call("max", "DELETE", "/models/churn/aliases/champion")

    assert lift.status_code == 403 and "needs role admin" in lift.json()["error"]
    assert unset.status_code == 403 and "requires approved promotion" in unset.json()["error"]
    assert team.champion() == 1
    lifted = team.call("ada", "PUT", "/models/churn/policy", json={"require_approval": False})
    assert lifted.status_code == 200 and lifted.json()["require_approval"] is False
    assert team.call("max", "DELETE", "/models/churn/aliases/champion").status_code == 204


def test_an_approval_after_the_candidate_stopped_passing_does_not_move_the_alias(team):
    request = team.propose("ed").json()
    team.client.log_metrics(team.runs[3], [Metric("acc", 0.85, 1, 1)])
    team.client.flush()

    approved = team.decide("carol", request["id"], "approve", comment="ship it")

    assert approved.status_code == 409, approved.text
    body = approved.json()
    assert body["type"] == "GateFailed"
    assert [(g["value"], g["passed"]) for g in body["report"]] == [(0.85, False)]
    assert team.champion() == 1
    failed = team.call("vic", "GET", f"/requests/{request['id']}").json()
    assert (failed["status"], failed["decided_by"]) == ("failed", "user:carol")
    assert [g["value"] for g in failed["gate_report"]] == [0.85]
    again = team.decide("max", request["id"], "approve")
    assert again.status_code == 409 and "already failed" in again.json()["error"]


def test_reject_needs_a_comment_and_moves_nothing(team):
    request = team.propose("ed").json()

    assert team.decide("carol", request["id"], "reject").status_code == 422
    rejected = team.decide("carol", request["id"], "reject", comment="wait for April")

    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["comment"]) == ("rejected", "wait for April")
    assert team.champion() == 1


def test_requests_list_filtered(team):
    first = team.propose("ed").json()
    second = team.propose("ed", version=2, alias="challenger").json()
    team.decide("carol", first["id"], "reject", comment="no")

    def ids(**params: Any) -> list[int]:
        found = team.call("vic", "GET", "/requests", params=params)
        assert found.status_code == 200, found.text
        return [r["id"] for r in found.json()]

    assert ids() == [second["id"], first["id"]]
    assert ids(status="pending") == [second["id"]]
    assert ids(model="churn", status="rejected") == [first["id"]]
    assert ids(model="fraud") == []
    assert ids(limit=1) == [second["id"]]


#: (method, path, body, status, the field the error names or None)
BAD_INPUT = [
    (
        "POST",
        "/models/churn/requests",
        {"version": 0, "alias": "champion", "reason": "x"},
        422,
        "version",
    ),
    ("POST", "/models/churn/requests", {"version": 3, "alias": "champion"}, 422, "reason"),
    (
        "POST",
        "/models/churn/requests",
        {"version": 3, "alias": "champion", "reason": ""},
        422,
        "reason",
    ),
    (
        "POST",
        "/models/churn/requests",
        {"version": 3, "alias": "c", "reason": "x", "by": "me"},
        422,
        "by",
    ),
    (
        "POST",
        "/models/churn/requests",
        {"version": 3, "alias": "a\x00", "reason": "x"},
        422,
        "alias",
    ),
    ("POST", "/models/churn/requests", {"version": 3, "alias": "latest", "reason": "x"}, 422, None),
    (
        "POST",
        "/models/churn/requests",
        {"version": 9, "alias": "champion", "reason": "x"},
        404,
        None,
    ),
    (
        "POST",
        "/models/nope/requests",
        {"version": 1, "alias": "champion", "reason": "x"},
        404,
        None,
    ),
    ("POST", "/models/churn/requests/99/approve", {}, 404, None),
    ("POST", "/models/churn/requests/99999999999/approve", {}, 422, "request_id"),
    ("POST", "/models/churn/requests/1/approve", {"comment": 5}, 422, "comment"),
    ("GET", "/requests?status=done", None, 422, "status"),
    ("GET", "/requests?model=nope", None, 404, None),
    ("GET", "/requests?model=bad%20name", None, 422, None),
    ("GET", "/requests?limit=0", None, 422, "limit"),
    ("GET", "/requests/0", None, 422, "request_id"),
    ("PUT", "/models/churn/policy", {"require_approval": "maybe"}, 422, "require_approval"),
    ("PUT", "/models/nope/policy", {"require_approval": True}, 404, None),
    ("GET", "/models/nope/policy", None, 404, None),
]


def test_bad_input_is_a_4xx_naming_the_field(team):
    for method, path, body, status, field in BAD_INPUT:
        answer = team.call("max", method, path, json=body)

        assert answer.status_code == status, (method, path, answer.text)
        if field is not None:
            assert field in (answer.json()["field"] or ""), (method, path, answer.json())
