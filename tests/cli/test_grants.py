"""``segue models grant|revoke-grant|grants``: a team owns its model."""

from __future__ import annotations

import pytest

from segue.auth.principal import Principal
from segue.auth.service import AuthService
from segue.errors import PermissionDenied
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine
from segue.store.registry import SqlRegistryStore

sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture
def auth(segue_env) -> AuthService:
    engine = open_engine(segue_env.store_uri)
    registry = SqlRegistryStore(engine)
    registry.create_model("churn", "local:ops")
    registry.create_model("fraud", "local:ops")
    auth = AuthService(SqlAuthStore(engine))
    auth.add_user("alice", "admin", "local:ops")
    auth.add_user("bob", "viewer", "local:ops")
    return auth


def test_grant_list_and_revoke(cli, auth, monkeypatch):
    monkeypatch.setenv("LOGNAME", "ops")
    bob = Principal("bob", "viewer")

    granted = cli("models", "grant", "churn", "bob", "--role", "maintainer")
    assert granted.code == 0, granted.err
    assert "bob is maintainer of model churn" in granted.out
    auth.authorize(bob, "maintainer", "churn")
    with pytest.raises(PermissionDenied):
        auth.authorize(bob, "maintainer", "fraud")

    listed = cli("models", "grants", "churn", "--json").json()
    assert [(g["user"], g["role"]) for g in listed] == [("bob", "maintainer")]
    assert listed[0]["created_by"].startswith("local:ops")
    table = cli("models", "grants", "churn").out
    assert "Grants on churn (1)" in table
    assert "maintainer" in table

    history = cli("models", "history", "churn", "--json").json()
    assert [e["action"] for e in history][-1] == "grant"

    assert cli("models", "revoke-grant", "churn", "bob").code == 0
    assert cli("models", "grants", "churn", "--json").json() == []
    with pytest.raises(PermissionDenied):
        auth.authorize(bob, "maintainer", "churn")


@sqlite_only
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("models", "grant", "churn", "bob", "--role", "admin"), "viewer, editor, maintainer"),
        (("models", "grant", "nope", "bob", "--role", "editor"), "model 'nope' is not registered"),
        (("models", "grant", "churn", "carol", "--role", "editor"), "user 'carol'"),
        (("models", "revoke-grant", "churn", "bob"), "no grant on model 'churn'"),
        (("models", "grants", "nope"), "model 'nope'"),
    ],
)
def test_errors_are_one_line(cli, auth, args, words):
    assert words in cli(*args).error_line()


@sqlite_only
def test_grants_through_a_server(cli, auth, segue_env, start_server, monkeypatch):
    bob_token, _ = auth.create_token("bob", "laptop", "local:ops")
    alice, _ = auth.create_token("alice", "admin", "local:ops")
    server = start_server(segue_env.store_uri)
    monkeypatch.setenv("SEGUE_TRACKING_URI", server.url)
    monkeypatch.setenv("SEGUE_STORE_URI", "postgresql+psycopg://nobody@127.0.0.1:1/none")

    monkeypatch.setenv("SEGUE_TOKEN", bob_token)
    refused = cli("models", "grant", "churn", "bob", "--role", "editor").error_line()
    assert "this needs role maintainer on model 'churn'; user:bob is viewer" in refused

    monkeypatch.setenv("SEGUE_TOKEN", alice)
    assert cli("models", "grant", "churn", "bob", "--role", "maintainer").code == 0
    listed = cli("models", "grants", "churn", "--json").json()
    assert [(g["user"], g["created_by"]) for g in listed] == [("bob", "user:alice")]
    assert cli("models", "revoke-grant", "churn", "bob").code == 0
    assert cli("models", "grants", "churn", "--json").json() == []
