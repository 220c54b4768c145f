"""The auth store on SQLite and PostgreSQL: users, token hashes, grants and their audit."""

from __future__ import annotations

import pytest

from segue.errors import AlreadyExists, Conflict, NotFound
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine
from segue.store.registry import SqlRegistryStore

T0 = 1_700_000_000_000


@pytest.fixture
def auth(store_uri: str) -> SqlAuthStore:
    return SqlAuthStore(open_engine(store_uri))


@pytest.fixture
def registry(store_uri: str) -> SqlRegistryStore:
    registry = SqlRegistryStore(open_engine(store_uri))
    registry.create_model("churn", "local:ada")
    registry.create_model("fraud", "local:ada")
    return registry


def test_users_are_added_listed_and_unique(auth):
    assert not auth.has_users()
    bob = auth.add_user("bob", "editor", None, "local:ada", at=T0)
    auth.add_user("alice", "admin", "$argon2id$x", "local:ada", at=T0 + 1)

    assert auth.has_users()
    assert (bob.name, bob.role, bob.disabled, bob.has_password) == ("bob", "editor", False, False)
    assert (bob.created_at, bob.created_by) == (T0, "local:ada")
    assert [u.name for u in auth.list_users()] == ["alice", "bob"]
    assert auth.get_user("alice").has_password
    assert auth.password_hash("alice") == "$argon2id$x"
    with pytest.raises(AlreadyExists, match="'bob' already exists"):
        auth.add_user("bob", "viewer", None, "local:ada", at=T0)
    with pytest.raises(NotFound, match="user 'carol' does not exist"):
        auth.get_user("carol")


def test_update_user_and_the_last_admin(auth):
    auth.add_user("alice", "admin", None, "local:ada", at=T0)
    auth.add_user("bob", "editor", None, "local:ada", at=T0)

    assert auth.update_user("bob", role="maintainer").role == "maintainer"
    assert auth.update_user("bob", disabled=True).disabled
    with pytest.raises(Conflict, match="alice is the last enabled admin"):
        auth.update_user("alice", role="editor")
    with pytest.raises(Conflict, match="last enabled admin"):
        auth.update_user("alice", disabled=True)
    assert auth.get_user("alice").role == "admin"  # rolled back

    auth.update_user("bob", role="admin", disabled=False)
    assert auth.update_user("alice", disabled=True).disabled  # bob stands
    with pytest.raises(NotFound):
        auth.update_user("carol", role="viewer")


def test_passwords_change(auth):
    auth.add_user("bob", "viewer", None, "local:ada", at=T0)
    auth.set_password_hash("bob", "$argon2id$y")
    assert auth.password_hash("bob") == "$argon2id$y"
    assert auth.get_user("bob").has_password
    with pytest.raises(NotFound):
        auth.set_password_hash("carol", "$argon2id$y")


def test_tokens_are_found_by_public_id_listed_revoked_and_touched(auth):
    auth.add_user("bob", "editor", None, "local:ada", at=T0)
    auth.add_user("carol", "viewer", None, "local:ada", at=T0)
    first = auth.add_token("bob", "0123abcd", "laptop", "f" * 64, None, at=T0, expires_at=None)
    auth.add_token("carol", "4567cdef", "ci", "e" * 64, "predict", at=T0, expires_at=T0 + 10)

    assert (first.public_id, first.user, first.name, first.scope) == (
        "0123abcd",
        "bob",
        "laptop",
        None,
    )
    assert [t.public_id for t in auth.list_tokens()] == ["0123abcd", "4567cdef"]
    assert [t.public_id for t in auth.list_tokens("carol")] == ["4567cdef"]
    record = auth.find_token("4567cdef")
    assert record is not None
    assert (record.secret_hash, record.user.name, record.token.expires_at) == (
        "e" * 64,
        "carol",
        T0 + 10,
    )
    assert auth.find_token("ffffffff") is None
    with pytest.raises(AlreadyExists):
        auth.add_token("carol", "0123abcd", "again", "d" * 64, None, at=T0, expires_at=None)
    with pytest.raises(NotFound, match="user 'dave'"):
        auth.add_token("dave", "89abcdef", "x", "d" * 64, None, at=T0, expires_at=None)

    auth.touch_token("0123abcd", at=T0 + 5)
    auth.touch_token("0123abcd", at=T0 + 3)  # never backwards
    assert auth.find_token("0123abcd").token.last_used_at == T0 + 5  # type: ignore[union-attr]

    assert auth.revoke_token("0123abcd", at=T0 + 7).revoked_at == T0 + 7
    assert auth.revoke_token("0123abcd", at=T0 + 9).revoked_at == T0 + 7  # the first time stays
    with pytest.raises(NotFound, match="public id 'ffffffff'"):
        auth.revoke_token("ffffffff", at=T0)


def test_grants_name_the_model_and_user_and_are_audited(auth, registry):
    auth.add_user("bob", "viewer", None, "local:ada", at=T0)

    grant = auth.set_grant("churn", "bob", "editor", "user:alice", at=T0)
    assert (grant.model_name, grant.user, grant.role, grant.created_by) == (
        "churn",
        "bob",
        "editor",
        "user:alice",
    )
    auth.set_grant("churn", "bob", "maintainer", "user:alice", at=T0 + 1)  # replaces it
    assert [(g.user, g.role) for g in auth.list_grants("churn")] == [("bob", "maintainer")]
    assert auth.grant_role("churn", "bob") == "maintainer"
    assert auth.grant_role("fraud", "bob") is None
    assert auth.grant_role("nope", "bob") is None
    assert auth.list_grants("fraud") == []

    with pytest.raises(NotFound, match="model 'nope' is not registered"):
        auth.set_grant("nope", "bob", "editor", "user:alice", at=T0)
    with pytest.raises(NotFound, match="user 'carol' does not exist"):
        auth.set_grant("churn", "carol", "editor", "user:alice", at=T0)
    with pytest.raises(NotFound, match="model 'nope'"):
        auth.list_grants("nope")

    auth.delete_grant("churn", "bob", "user:alice")
    assert auth.list_grants("churn") == []
    with pytest.raises(NotFound, match="'bob' has no grant on model 'churn'"):
        auth.delete_grant("churn", "bob", "user:alice")

    entries = [e for e in registry.history("churn") if e.action in ("grant", "revoke_grant")]
    assert [(e.action, e.actor, e.target, e.before, e.after) for e in entries] == [
        ("grant", "user:alice", "user:bob", None, {"role": "editor"}),
        ("grant", "user:alice", "user:bob", {"role": "editor"}, {"role": "maintainer"}),
        ("revoke_grant", "user:alice", "user:bob", {"role": "maintainer"}, None),
    ]
