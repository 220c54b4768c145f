"""``segue server``'s users, tokens and grants routes, over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa

from segue.auth.service import AuthService
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine
from segue.store.registry import SqlRegistryStore

T0 = 1_700_000_000.0


class Clock:
    """Epoch seconds that move only when a test says so (the server's and the service's)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Team:
    """A server with an admin (alice) and a viewer (bob), each with a token, and two models."""

    url: str
    auth: AuthService
    engine: sa.Engine
    clock: Clock
    alice: str
    bob: str

    def call(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, **kwargs)


@pytest.fixture
def team(store_uri, start_server) -> Team:
    engine = open_engine(store_uri)
    clock = Clock()
    auth = AuthService(SqlAuthStore(engine), clock=clock)
    auth.add_user("alice", "admin", "local:ops")
    auth.add_user("bob", "viewer", "local:ops")
    alice, _ = auth.create_token("alice", "admin", "local:ops")
    bob, _ = auth.create_token("bob", "laptop", "local:ops")
    registry = SqlRegistryStore(engine)
    registry.create_model("churn", "local:ops")
    registry.create_model("fraud", "local:ops")
    server = start_server(store_uri, clock=clock)
    return Team(server.url, auth, engine, clock, alice, bob)


def _everything_stored(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        rows = [
            *conn.execute(sa.text("SELECT * FROM users")),
            *conn.execute(sa.text("SELECT * FROM api_tokens")),
        ]
    return "\n".join(repr(tuple(row)) for row in rows)


def test_an_admin_adds_and_changes_users(team):
    added = team.call(
        "POST",
        "/users",
        team.alice,
        json={"name": "carol", "role": "editor", "password": "carols-passphrase"},
    )
    assert added.status_code == 201, added.text
    carol = added.json()
    assert (carol["name"], carol["role"], carol["has_password"], carol["created_by"]) == (
        "carol",
        "editor",
        True,
        "user:alice",
    )
    listed = team.call("GET", "/users", team.alice).json()
    assert [u["name"] for u in listed] == ["alice", "bob", "carol"]

    unchanged = team.call("PATCH", "/users/carol", team.alice, json={})
    assert unchanged.json() == carol  # nothing to change: the user as they are
    changed = team.call("PATCH", "/users/carol", team.alice, json={"role": "maintainer"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "maintainer"
    team.call("PATCH", "/users/carol", team.alice, json={"password": "a-new-passphrase"})
    assert team.auth.verify_password("carol", "a-new-passphrase").role == "maintainer"
    stored = _everything_stored(team.engine)
    assert "carols-passphrase" not in stored
    assert "a-new-passphrase" not in stored

    disabled = team.call("PATCH", "/users/carol", team.alice, json={"disabled": True})
    assert disabled.json()["disabled"]
    again = team.call("POST", "/users", team.alice, json={"name": "carol", "role": "viewer"})
    assert again.status_code == 409
    assert "'carol' already exists" in again.json()["error"]


#: Bodies a pydantic model refuses: (method, path, body, the field the 422 names).
MALFORMED = [
    ("POST", "/users", {"name": "dave", "role": "owner"}, "role"),
    ("POST", "/users", {"name": "dave", "role": "viewer", "password": "short"}, "password"),
    ("POST", "/users", {"name": "d" * 65, "role": "viewer"}, "name"),
    ("POST", "/users", {"name": "dave", "role": "viewer", "admin": True}, "admin"),
    ("PATCH", "/users/bob", {"role": "root"}, "role"),
    ("POST", "/tokens", {"user": "bob", "expires_in": -1}, "expires_in"),
    ("POST", "/tokens", {"user": "bob", "scope": "admin"}, "scope"),
    ("PUT", "/models/churn/grants/bob", {"role": "admin"}, "role"),
    ("POST", "/users", {"name": "bad name", "role": "viewer"}, "name"),
    ("PATCH", "/users/bob", {"disabled": 0}, "disabled"),
    ("PATCH", "/users/bad%20name", {"role": "editor"}, "path.user"),
    ("POST", "/tokens", {"user": "bob", "name": " "}, "name"),
    ("POST", "/tokens", {"user": "bob", "name": "a\nb"}, "name"),
    ("DELETE", "/tokens/nothex", None, "path.public_id"),
    ("GET", "/tokens?user=bad%20name", None, "query.user"),
    ("GET", "/models/bad%00name/grants", None, "path.name"),
    ("PUT", "/models/churn/grants/bad%00name", {"role": "editor"}, "path.user"),
]

#: Requests the service refuses: (method, path, body, status, words of the message).
REFUSED = [
    ("PATCH", "/users/dave", {"role": "editor"}, 404, "user 'dave' does not exist"),
    ("PATCH", "/users/alice", {"role": "editor"}, 409, "last enabled admin"),
    ("POST", "/tokens", {"user": "dave"}, 404, "user 'dave'"),
    ("DELETE", "/tokens/ffffffff", None, 404, "public id 'ffffffff'"),
    ("GET", "/models/nope/grants", None, 404, "model 'nope' is not registered"),
    ("PUT", "/models/churn/grants/dave", {"role": "editor"}, 404, "user 'dave'"),
    ("DELETE", "/models/churn/grants/bob", None, 404, "no grant"),
]


def test_bad_input_is_a_4xx_naming_the_field_or_the_thing(team):
    for method, path, body, field in MALFORMED:
        answer = team.call(method, path, team.alice, json=body)
        assert (answer.status_code, answer.json()["field"]) == (422, field), (method, path, body)
    for method, path, body, status, words in REFUSED:
        answer = team.call(method, path, team.alice, json=body)
        assert answer.status_code == status, (method, path, answer.text)
        assert words in answer.json()["error"], (method, path, answer.text)


def test_a_token_is_shown_once_and_works_until_revoked(team):
    created = team.call(
        "POST", "/tokens", team.alice, json={"user": "bob", "name": "ci", "expires_in": 3600}
    )
    assert created.status_code == 201, created.text
    token, listed = created.json()["token"], created.json()["api_token"]
    assert token.startswith(f"sgt_{listed['public_id']}_")
    assert (listed["user"], listed["name"], listed["scope"]) == ("bob", "ci", None)
    assert listed["expires_at"] == int((T0 + 3600) * 1000)

    whoami = team.call("GET", "/whoami", token).json()
    assert (whoami["user"], whoami["token_id"], whoami["actor"]) == (
        "bob",
        listed["public_id"],
        "user:bob",
    )
    tokens = team.call("GET", "/tokens", team.alice, params={"user": "bob"})
    assert [t["name"] for t in tokens.json()] == ["laptop", "ci"]
    assert token not in tokens.text
    assert token not in _everything_stored(team.engine)
    assert token[13:] not in _everything_stored(team.engine)

    revoked = team.call("DELETE", f"/tokens/{listed['public_id']}", team.alice)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] == int(T0 * 1000)
    refused = team.call("GET", "/whoami", token)
    assert refused.status_code == 401
    assert "was revoked" in refused.json()["error"]
    assert refused.headers["www-authenticate"] == "Bearer"


def test_an_expired_token_fails_at_once(team):
    token, _ = team.auth.create_token("bob", "short-lived", "local:ops", expires_in=60)
    assert team.call("GET", "/whoami", token).status_code == 200
    team.clock.now += 60
    refused = team.call("GET", "/whoami", token)
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]


def test_a_disabled_user_fails_at_once(team):
    assert team.call("GET", "/whoami", team.bob).status_code == 200
    team.call("PATCH", "/users/bob", team.alice, json={"disabled": True})
    refused = team.call("GET", "/whoami", team.bob)
    assert refused.status_code == 401
    assert "bob is disabled" in refused.json()["error"]
    team.call("PATCH", "/users/bob", team.alice, json={"disabled": False})
    assert team.call("GET", "/whoami", team.bob).status_code == 200


def test_last_use_is_recorded(team):
    def last_used() -> int | None:
        (bob,) = team.call("GET", "/tokens", team.alice, params={"user": "bob"}).json()
        return bob["last_used_at"]

    assert last_used() is None
    team.call("GET", "/whoami", team.bob)
    assert last_used() == int(T0 * 1000)
    team.clock.now += 90
    team.call("GET", "/whoami", team.bob)
    assert last_used() == int((T0 + 90) * 1000)


def test_a_grant_lets_a_viewer_maintain_one_model_but_not_another(team):
    team.call("POST", "/users", team.alice, json={"name": "carol", "role": "viewer"})
    assert team.call("GET", "/models/churn/grants", team.bob).json() == []
    refused = team.call("PUT", "/models/churn/grants/carol", team.bob, json={"role": "editor"})
    assert refused.status_code == 403
    assert refused.json()["error"] == (
        "this needs role maintainer on model 'churn'; user:bob is viewer"
    )

    granted = team.call("PUT", "/models/churn/grants/bob", team.alice, json={"role": "maintainer"})
    assert granted.status_code == 200, granted.text
    assert (granted.json()["user"], granted.json()["created_by"]) == ("bob", "user:alice")

    # bob now maintains churn: he may hand out roles on it, up to maintainer, and no further.
    ok = team.call("PUT", "/models/churn/grants/carol", team.bob, json={"role": "editor"})
    assert ok.status_code == 200, ok.text
    above = team.call("PUT", "/models/churn/grants/carol", team.bob, json={"role": "admin"})
    assert above.status_code == 422
    other = team.call("PUT", "/models/fraud/grants/carol", team.bob, json={"role": "editor"})
    assert other.status_code == 403
    assert "on model 'fraud'; user:bob is viewer" in other.json()["error"]
    assert team.call("GET", "/users", team.bob).status_code == 403  # users stay the admins'
    # No grant can name what is not a model name: refused for the role, never a 500.
    assert team.call("DELETE", "/models/bad%00name/grants/carol", team.bob).status_code == 403
    grants = team.call("GET", "/models/churn/grants", team.bob).json()
    assert [(g["user"], g["role"]) for g in grants] == [("bob", "maintainer"), ("carol", "editor")]

    assert team.call("DELETE", "/models/churn/grants/carol", team.bob).status_code == 204
    history = SqlRegistryStore(team.engine).history("churn")
    assert [(e.action, e.actor, e.target) for e in history if "grant" in e.action] == [
        ("grant", "user:alice", "user:bob"),
        ("grant", "user:bob", "user:carol"),
        ("revoke_grant", "user:bob", "user:carol"),
    ]


def test_a_predict_token_is_refused_even_for_an_admin(team):
    created = team.call("POST", "/tokens", team.alice, json={"user": "alice", "scope": "predict"})
    token = created.json()["token"]
    refused = team.call("GET", "/whoami", token)
    assert refused.status_code == 403
    assert "inference servers" in refused.json()["error"]
