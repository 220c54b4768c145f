"""``segue server``'s registry routes over real HTTP on SQLite and PostgreSQL: the server
decides alias moves itself (gates, ``force`` with a reason), records its authenticated caller
in the audit log, and pushes every alias change to ``/events/aliases`` streams."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from segue.artifacts import ContentStore, FsspecBackend
from segue.auth.service import AuthService
from segue.config import Settings
from segue.identity import Actor
from segue.registry.service import Registry
from segue.remote.http import RemoteSession
from segue.remote.registry import RestRegistryStore
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
    """A server over ``churn`` (versions 1 and 2 with acc 0.9 and 0.7; champion -> 1; gate
    ``metrics.acc >= champion``), the store's own registry (another process, as it were),
    and a token each for max (maintainer), ed (editor) and vic (viewer)."""

    url: str
    tokens: dict[str, str]
    registry: Registry

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.tokens[who]}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, **kwargs)

    def move(self, who: str, version: int, **body: Any) -> httpx.Response:
        return self.call(
            who, "PUT", "/models/churn/aliases/champion", json={"version": version, **body}
        )

    def champion(self) -> int:
        return self.call("vic", "GET", "/models/churn/aliases/champion").json()["version"]

    def history(self) -> list[dict[str, Any]]:
        return self.call("vic", "GET", "/models/churn/history").json()


@pytest.fixture
def team(store_uri: str, start_server, tmp_path: Path) -> Iterator[Team]:
    engine = open_engine(store_uri)
    artifacts = str(tmp_path / "artifacts")
    config = Settings(home=tmp_path, store_uri=store_uri, artifact_uri=artifacts)
    client = TrackingClient(
        SqlTrackingStore(engine), ContentStore(FsspecBackend(artifacts)), config
    )
    registry = Registry(SqlRegistryStore(engine), client, Actor("local", "ops"))
    for acc in (0.9, 0.7):
        run_id = client.create_run("registry").id
        client.log_metrics(run_id, [Metric("acc", acc, 0, 0)])
        registry.log_model(run_id, score, register_as="churn")
    client.flush()
    registry.set_alias("churn", "champion", 1)
    registry.add_gate("churn", "champion", "metrics.acc >= champion")
    auth = AuthService(SqlAuthStore(engine))
    tokens = {}
    for user, role in (("max", "maintainer"), ("ed", "editor"), ("vic", "viewer")):
        auth.add_user(user, role, "local:ops")
        tokens[user], _ = auth.create_token(user, "laptop", "local:ops")
    server = start_server(store_uri, artifacts)
    yield Team(server.url, tokens, registry)
    client.writer.close()


def test_a_failing_gate_refuses_the_move_with_its_report(team):
    before = team.history()

    refused = team.move("max", 2)

    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["type"] == "GateFailed"
    assert [
        (g["requirement"], g["value"], g["threshold"], g["passed"]) for g in body["report"]
    ] == [("metrics.acc >= champion", 0.7, 0.9, False)]
    assert team.champion() == 1
    assert team.history() == before


def test_force_needs_a_reason(team):
    refused = team.move("max", 2, force=True)
    assert refused.status_code == 422, refused.text
    assert "--force needs --reason" in refused.json()["error"]
    for reason in ("", "   "):
        refused = team.move("max", 2, force=True, reason=reason)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "reason"
    assert team.champion() == 1


def test_a_forced_move_records_the_authenticated_user_and_the_reason(team):
    moved = team.move("max", 2, force=True, reason="rollback: v1 leaks PII")

    assert moved.status_code == 200, moved.text
    assert (moved.json()["version"], moved.json()["previous"], moved.json()["forced"]) == (
        2,
        1,
        True,
    )
    assert team.champion() == 2
    last = team.history()[-1]
    assert (last["actor"], last["action"], last["reason"]) == (
        "user:max",
        "set_alias",
        "rollback: v1 leaks PII",
    )
    assert (last["before"], last["after"]["version"], last["after"]["forced"]) == (
        {"version": 1},
        2,
        True,
    )


def test_the_client_cannot_choose_the_actor(team):
    claimed = team.move("max", 2, force=True, reason="r", actor="local:someone-else")

    assert claimed.status_code == 422, claimed.text
    assert claimed.json()["field"] == "actor"
    assert team.champion() == 1


def test_a_stale_expected_version_is_a_conflict(team):
    stale = team.move("max", 1, expected=2)

    assert stale.status_code == 409, stale.text
    assert stale.json()["type"] == "Conflict"
    unset = team.move("max", 1, expected=None)  # null: "I saw it unset"
    assert unset.status_code == 409, unset.text


def test_an_editor_cannot_move_an_alias(team):
    refused = team.move("ed", 2, force=True, reason="r")

    assert refused.status_code == 403, refused.text
    assert team.champion() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": 0}, "version"),
        ({"version": 2**40}, "version"),
        ({"version": "two"}, "version"),
        ({"version": 2, "reason": "x" * 10_001}, "reason"),
        ({"version": 2, "reason": "a\x00b"}, "reason"),
        ({}, "version"),
    ],
)
def test_a_malformed_move_is_a_422_naming_the_field(team, body, field):
    refused = team.call("max", "PUT", "/models/churn/aliases/champion", json=body)

    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field


def test_an_alias_is_read_as_a_version_or_null(team):
    assert team.call("vic", "GET", "/models/churn/aliases/champion").json() == {
        "model": "churn",
        "alias": "champion",
        "version": 1,
    }
    assert team.call("vic", "GET", "/models/churn/aliases/canary").json()["version"] is None
    assert team.call("vic", "GET", "/models/ghost/aliases/canary").status_code == 404


def test_lineage_names_the_run_and_its_metrics(team):
    found = team.call("vic", "GET", "/models/churn/versions/2/lineage")

    assert found.status_code == 200, found.text
    assert found.json()["metrics"] == {"acc": 0.7}
    assert found.json()["version"]["version"] == 2


def test_alerts_are_recorded_and_listed(team):
    body = {
        "rule": "drift",
        "signal": "drift_share",
        "value": 0.5,
        "threshold": 0.3,
        "message": "drift_share 0.5 > 0.3",
        "delivered": [{"sink": "log", "ok": True, "attempts": 1, "error": None}],
    }
    assert team.call("vic", "POST", "/models/churn/alerts", json=body).status_code == 403
    recorded = team.call("ed", "POST", "/models/churn/alerts", json=body)
    assert recorded.status_code == 201, recorded.text
    assert team.call("vic", "GET", "/models/churn/alerts").json() == [recorded.json()]
    bad = team.call("ed", "POST", "/models/churn/alerts", json={**body, "delivered": [{}]})
    assert bad.status_code == 422 and bad.json()["field"].startswith("delivered")


# -- the stream of alias changes ------------------------------------------------------------


def _read_events(response: httpx.Response, found: list[str], connected: threading.Event) -> None:
    try:
        for line in response.iter_lines():
            if line.startswith(": connected"):
                connected.set()
            elif line.startswith("data:"):
                found.append(line)
    except (httpx.HTTPError, httpx.StreamClosed):  # the test closed the stream: done
        return


def test_every_alias_change_is_pushed_to_the_stream(team):
    found: list[str] = []
    connected = threading.Event()
    headers = {"authorization": f"Bearer {team.tokens['vic']}"}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("GET", f"{team.url}/api/v1/events/aliases", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = threading.Thread(target=_read_events, args=(response, found, connected))
        reader.start()
        assert connected.wait(30)

        assert team.move("max", 2, force=True, reason="through the server").status_code == 200
        # ...and moves made beside the server, straight in the store (another process).
        team.registry.delete_alias("churn", "champion")
        team.registry.set_alias("churn", "canary", 1)

        wanted = [("churn", "champion"), ("churn", "champion"), ("churn", "canary")]
        guard = threading.Event()
        for _ in range(300):  # a guard against a hang, not a latency check
            changes = [tuple(orjson.loads(x.removeprefix("data:")).values()) for x in found]
            if all(changes.count(w) >= wanted.count(w) for w in set(wanted)):
                break
            guard.wait(0.1)
        response.close()
        reader.join(10)
    assert set(changes) == {("churn", "champion"), ("churn", "canary")}
    assert changes.count(("churn", "champion")) >= 2


def test_the_rest_listener_hears_moves_and_stops_at_once(team):
    store = RestRegistryStore(RemoteSession(team.url, team.tokens["vic"]))
    listen = store.alias_listener()
    heard: list[tuple[str, str]] = []
    connects: list[int] = []
    stop = threading.Event()
    listener = threading.Thread(
        target=listen,
        args=(lambda m, a: heard.append((m, a)), stop),
        kwargs={"on_connect": lambda: connects.append(1)},
    )
    listener.start()
    guard = threading.Event()
    for _ in range(300):
        if connects:
            break
        guard.wait(0.1)
    assert connects == [1]

    assert team.move("max", 2, force=True, reason="push it").status_code == 200
    for _ in range(300):
        if heard:
            break
        guard.wait(0.1)
    assert heard[0] == ("churn", "champion")

    stop.set()  # the stream is quiet now (its next ping is 15 s away): it must not wait for it
    listener.join(5)
    assert not listener.is_alive()
