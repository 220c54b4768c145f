"""``segue tokens …`` against the store, and through a server in remote mode."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from segue.auth.service import AuthService
from segue.errors import Unauthenticated
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine

sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture
def auth(segue_env) -> AuthService:
    auth = AuthService(SqlAuthStore(open_engine(segue_env.store_uri)))
    auth.add_user("alice", "admin", "local:ops")
    auth.add_user("bob", "editor", "local:ops")
    return auth


def test_create_prints_the_token_once(cli, auth, segue_env):
    created = cli("tokens", "create", "bob", "--name", "laptop")

    assert created.code == 0, created.err
    token = created.out.strip()
    assert token.startswith("sgt_") and "\n" not in token  # alone: TOKEN=$(segue tokens …)
    public_id = token[4:12]
    assert f"token {public_id} for bob (never expires)" in created.err
    assert "cannot be shown again" in created.err
    principal = auth.authenticate(token)
    assert (principal.user, principal.token_id) == ("bob", public_id)

    listed = cli("tokens", "list")
    assert public_id in listed.out
    assert token not in listed.out + cli("tokens", "list", "--json").out
    with open_engine(segue_env.store_uri).connect() as conn:
        stored = repr(conn.execute(sa.text("SELECT * FROM api_tokens")).all())
    assert token not in stored
    assert token[13:] not in stored


def test_create_with_expiry_and_scope(cli, auth):
    before = time.time()
    created = cli(
        "tokens", "create", "bob", "--expires", "90d", "--scope", "predict", "--json"
    ).json()
    listed = created["api_token"]
    assert listed["scope"] == "predict"
    expected = (before + 90 * 86400) * 1000
    assert expected - 1000 <= listed["expires_at"] <= expected + 60_000
    assert auth.authenticate(created["token"]).scope == "predict"

    text = cli("tokens", "create", "bob", "--expires", "12h", "--scope", "predict")
    assert "expires 20" in text.err
    assert ", scope predict)" in text.err


def test_list_and_revoke(cli, auth):
    token, first = auth.create_token("bob", "laptop", "local:ops")
    auth.create_token("alice", "admin", "local:ops")
    auth.authenticate(token)

    everyone = cli("tokens", "list", "--json").json()
    assert [(t["user"], t["name"]) for t in everyone] == [("bob", "laptop"), ("alice", "admin")]
    assert everyone[0]["last_used_at"] is not None
    bobs = cli("tokens", "list", "--user", "bob", "--json").json()
    assert [t["public_id"] for t in bobs] == [first.public_id]
    table = cli("tokens", "list").out
    for header in ("id", "user", "name", "scope", "created", "expires", "last used", "revoked"):
        assert header in table
    assert "never" in table

    revoked = cli("tokens", "revoke", first.public_id)
    assert revoked.code == 0, revoked.err
    assert f"revoked token {first.public_id} of bob" in revoked.out
    listed = cli("tokens", "list", "--user", "bob", "--json").json()
    assert listed[0]["revoked_at"] is not None
    with pytest.raises(Unauthenticated, match="was revoked"):
        auth.authenticate(token)


@sqlite_only
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("tokens", "create", "bob", "--expires", "soon"), "90d, 12h, 30m"),
        (("tokens", "create", "bob", "--scope", "admin"), "scope must be one of predict"),
        (("tokens", "create", "carol"), "user 'carol' does not exist"),
        (("tokens", "create", "bob", "--name", ""), "token name"),
        (("tokens", "list", "--user", "carol"), "user 'carol' does not exist"),
        (("tokens", "revoke", "ffffffff"), "no token has the public id 'ffffffff'"),
        (("tokens", "revoke", "laptop"), "8 hex characters"),
    ],
)
def test_errors_are_one_line(cli, auth, args, words):
    assert words in cli(*args).error_line()


@sqlite_only
def test_tokens_through_a_server(cli, auth, segue_env, start_server, monkeypatch):
    alice, _ = auth.create_token("alice", "admin", "local:ops")
    server = start_server(segue_env.store_uri)
    monkeypatch.setenv("SEGUE_TRACKING_URI", server.url)
    monkeypatch.setenv("SEGUE_TOKEN", alice)
    monkeypatch.setenv("SEGUE_STORE_URI", "postgresql+psycopg://nobody@127.0.0.1:1/none")

    created = cli("tokens", "create", "bob", "--name", "ci", "--expires", "30m")
    assert created.code == 0, created.err
    token = created.out.strip()
    public_id = token[4:12]
    assert auth.authenticate(token).user == "bob"
    listed = cli("tokens", "list", "--user", "bob", "--json").json()
    assert [(t["public_id"], t["name"]) for t in listed] == [(public_id, "ci")]

    assert cli("tokens", "revoke", token).code == 0  # the token itself names it too
    with pytest.raises(Unauthenticated, match="was revoked"):
        auth.authenticate(token)

    monkeypatch.setenv("SEGUE_TOKEN", token)
    assert "was revoked" in cli("tokens", "list").error_line()
