"""``segue users …`` against the store, and through a server in remote mode."""

from __future__ import annotations

import io
import sys

import pytest
import sqlalchemy as sa

from segue.auth.service import AuthService
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine

#: For what does not depend on the database: argument errors.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture
def auth(segue_env) -> AuthService:
    return AuthService(SqlAuthStore(open_engine(segue_env.store_uri)))


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def test_add_and_list_users(cli, auth, monkeypatch):
    monkeypatch.setenv("LOGNAME", "ops")
    added = cli("users", "add", "alice", "--role", "admin")
    assert added.code == 0, added.err
    assert "added user alice (admin)" in added.out
    assert "segue tokens create alice" in added.out
    assert cli("users", "add", "bob", "--role", "viewer").code == 0

    listed = cli("users", "list", "--json").json()
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("alice", "admin", False),
        ("bob", "viewer", False),
    ]
    assert listed[0]["created_by"].startswith("local:ops")
    table = cli("users", "list")
    assert table.code == 0
    assert "Users (2)" in table.out
    for word in ("alice", "admin", "bob", "viewer", "enabled", "local:ops"):
        assert word in table.out


def test_a_password_is_read_from_stdin_and_stored_hashed(cli, auth, segue_env, monkeypatch):
    _stdin(monkeypatch, "a long passphrase\n")
    added = cli("users", "add", "alice", "--role", "admin", "--password-stdin", "--json")
    assert added.json()["has_password"] is True
    assert auth.verify_password("alice", "a long passphrase").user == "alice"

    _stdin(monkeypatch, "another passphrase\n")
    assert cli("users", "set-password", "alice", "--password-stdin").code == 0
    assert auth.verify_password("alice", "another passphrase").user == "alice"
    with open_engine(segue_env.store_uri).connect() as conn:
        stored = repr(conn.execute(sa.text("SELECT * FROM users")).all())
    assert "passphrase" not in stored
    assert "$argon2id$" in stored


@sqlite_only
@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (("users", "add", "bob", "--role", "owner"), "", "role must be one of viewer"),
        (("users", "add", "bob smith", "--role", "viewer"), "", "letters, digits"),
        (("users", "add", "bob", "--role", "viewer", "--password-stdin"), "", "held no password"),
        (("users", "add", "bob", "--role", "viewer", "--password-stdin"), "short\n", "at least 8"),
        (("users", "set-password", "bob"), "a long passphrase\n", "--password-stdin"),
        (("users", "set-role", "carol", "editor"), "", "user 'carol' does not exist"),
        (("users", "disable", "carol"), "", "user 'carol' does not exist"),
    ],
)
def test_errors_are_one_line(cli, auth, monkeypatch, args, stdin, words):
    _stdin(monkeypatch, stdin)
    assert words in cli(*args).error_line()


def test_set_role_disable_and_enable(cli, auth):
    cli("users", "add", "alice", "--role", "admin")
    cli("users", "add", "bob", "--role", "viewer")
    token, _ = auth.create_token("bob", "laptop", "local:ops")

    assert "bob is now maintainer" in cli("users", "set-role", "bob", "maintainer").out
    assert auth.authenticate(token).role == "maintainer"
    disabled = cli("users", "disable", "bob")
    assert "tokens and password no longer work" in disabled.out
    assert cli("users", "list", "--json").json()[1]["disabled"] is True
    assert "disabled" in cli("users", "list").out
    assert cli("users", "enable", "bob").code == 0
    assert auth.authenticate(token).user == "bob"

    assert "last enabled admin" in cli("users", "set-role", "alice", "editor").error_line()
    assert "already exists" in cli("users", "add", "bob", "--role", "viewer").error_line()


@sqlite_only
def test_users_through_a_server(cli, auth, segue_env, start_server, monkeypatch):
    auth.add_user("alice", "admin", "local:ops")
    auth.add_user("bob", "viewer", "local:ops")
    alice, _ = auth.create_token("alice", "admin", "local:ops")
    bob, _ = auth.create_token("bob", "laptop", "local:ops")
    server = start_server(segue_env.store_uri)
    monkeypatch.setenv("SEGUE_TRACKING_URI", server.url)
    monkeypatch.setenv("SEGUE_TOKEN", alice)
    # In remote mode the CLI never opens the store: point it at one that does not exist.
    monkeypatch.setenv("SEGUE_STORE_URI", "postgresql+psycopg://nobody@127.0.0.1:1/none")

    _stdin(monkeypatch, "carols passphrase\n")
    added = cli("users", "add", "carol", "--role", "editor", "--password-stdin", "--json").json()
    assert (added["name"], added["created_by"], added["has_password"]) == (
        "carol",
        "user:alice",
        True,
    )
    assert cli("users", "set-role", "carol", "maintainer").code == 0
    assert cli("users", "disable", "carol").code == 0
    listed = cli("users", "list", "--json").json()
    assert [(u["name"], u["role"], u["disabled"]) for u in listed][-1] == (
        "carol",
        "maintainer",
        True,
    )
    _stdin(monkeypatch, "carols new passphrase\n")
    assert cli("users", "set-password", "carol", "--password-stdin").code == 0

    monkeypatch.setenv("SEGUE_TOKEN", bob)
    refused = cli("users", "list").error_line()
    assert "this needs role admin; user:bob is viewer" in refused
