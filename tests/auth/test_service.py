"""AuthService on SQLite and PostgreSQL: users, tokens, passwords, grants, decisions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from segue.auth.principal import Principal
from segue.auth.service import AuthService, parse_expires
from segue.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine
from segue.store.registry import SqlRegistryStore

ADA = "local:ada"


class Clock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(store_uri: str) -> sa.Engine:
    return open_engine(store_uri)


@pytest.fixture
def auth(engine, clock) -> AuthService:
    return AuthService(SqlAuthStore(engine), clock=clock)


@pytest.fixture
def models(engine) -> SqlRegistryStore:
    registry = SqlRegistryStore(engine)
    registry.create_model("churn", ADA)
    registry.create_model("fraud", ADA)
    return registry


def _dump(engine: sa.Engine) -> str:
    """Every value of the users and api_tokens tables, as one text."""
    with engine.connect() as conn:
        rows = [
            *conn.execute(sa.text("SELECT * FROM users")),
            *conn.execute(sa.text("SELECT * FROM api_tokens")),
        ]
    return "\n".join(repr(tuple(row)) for row in rows)


# -- users and passwords -----------------------------------------------------------------------


def test_users_are_added_with_a_valid_name_and_role(auth):
    assert not auth.has_users()
    user = auth.add_user("bob.smith-2_", "editor", ADA)

    assert (user.name, user.role, user.created_by, user.created_at) == (
        "bob.smith-2_",
        "editor",
        ADA,
        1_700_000_000_000,
    )
    assert auth.has_users()
    assert [u.name for u in auth.list_users()] == ["bob.smith-2_"]
    with pytest.raises(AlreadyExists):
        auth.add_user("bob.smith-2_", "viewer", ADA)


@pytest.mark.parametrize("name", ["", "bob smith", "bob/x", "x" * 65, "bob\n", "ü", None])
def test_bad_user_names_are_refused(auth, name):
    with pytest.raises(InvalidArgument, match="letters, digits"):
        auth.add_user(name, "viewer", ADA)


def test_bad_roles_are_refused(auth):
    with pytest.raises(InvalidArgument, match="role must be one of viewer, editor"):
        auth.add_user("bob", "owner", ADA)
    auth.add_user("bob", "viewer", ADA)
    with pytest.raises(InvalidArgument, match="role must be one of"):
        auth.set_role("bob", "root", ADA)


def test_passwords_are_stored_as_argon2id_only_and_verified(auth, engine):
    auth.add_user("alice", "admin", ADA, password="s3cret-passphrase")
    auth.add_user("bob", "viewer", ADA)

    dump = _dump(engine)
    assert "s3cret-passphrase" not in dump
    assert "$argon2id$" in dump
    principal = auth.verify_password("alice", "s3cret-passphrase")
    assert (principal.user, principal.role, principal.token_id) == ("alice", "admin", None)
    for name, password in [
        ("alice", "wrong-passphrase"),
        ("bob", "s3cret-passphrase"),  # no password at all
        ("carol", "s3cret-passphrase"),  # no such user
        ("bad name", "s3cret-passphrase"),
    ]:
        with pytest.raises(Unauthenticated, match="wrong user name or password"):
            auth.verify_password(name, password)

    auth.set_password("bob", "another-passphrase", ADA)
    assert auth.verify_password("bob", "another-passphrase").user == "bob"
    assert "another-passphrase" not in _dump(engine)
    with pytest.raises(InvalidArgument, match="at least 8"):
        auth.set_password("bob", "short", ADA)


def test_a_disabled_user_cannot_log_in(auth):
    auth.add_user("alice", "admin", ADA)
    auth.add_user("bob", "editor", ADA, password="s3cret-passphrase")
    auth.set_disabled("bob", True, ADA)
    with pytest.raises(Unauthenticated, match="bob is disabled"):
        auth.verify_password("bob", "s3cret-passphrase")
    auth.set_disabled("bob", False, ADA)
    assert auth.verify_password("bob", "s3cret-passphrase").user == "bob"


def test_the_last_enabled_admin_stays(auth):
    auth.add_user("alice", "admin", ADA)
    with pytest.raises(Conflict, match="last enabled admin"):
        auth.set_role("alice", "viewer", ADA)
    with pytest.raises(Conflict, match="last enabled admin"):
        auth.set_disabled("alice", True, ADA)


# -- tokens ------------------------------------------------------------------------------------


def test_tokens_are_stored_only_as_hashes(auth, engine):
    auth.add_user("bob", "editor", ADA)
    token, listed = auth.create_token("bob", "laptop", ADA)

    secret = token[13:]  # after sgt_<8 hex>_
    dump = _dump(engine)
    assert token not in dump
    assert secret not in dump
    assert listed.public_id in dump  # the public id is what listings show
    principal = auth.authenticate(token)
    assert principal == Principal("bob", "editor", listed.public_id, None)
    assert str(principal.actor) == "user:bob"


def test_unknown_and_malformed_tokens_fail(auth):
    auth.add_user("bob", "editor", ADA)
    token, _ = auth.create_token("bob", "laptop", ADA)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    for bad in [forged, "sgt_ffffffff_" + "A" * 43, "Bearer x", ""]:
        with pytest.raises(Unauthenticated):
            auth.authenticate(bad)


def test_a_revoked_token_fails_at_once(auth):
    auth.add_user("bob", "editor", ADA)
    token, listed = auth.create_token("bob", "laptop", ADA)
    kept, _ = auth.create_token("bob", "ci", ADA)
    assert auth.authenticate(token).user == "bob"

    revoked = auth.revoke_token(listed.public_id, ADA)

    assert revoked.revoked_at == 1_700_000_000_000
    with pytest.raises(Unauthenticated, match=f"token {listed.public_id} was revoked"):
        auth.authenticate(token)
    assert auth.authenticate(kept).user == "bob"  # only that one
    with pytest.raises(InvalidArgument, match="8 hex characters"):
        auth.revoke_token("laptop", ADA)
    with pytest.raises(NotFound):
        auth.revoke_token("ffffffff", ADA)
    # The token itself names the token to revoke as well as its public id.
    assert auth.revoke_token(kept, ADA).revoked_at is not None


def test_an_expired_token_fails_at_once(auth, clock):
    auth.add_user("bob", "editor", ADA)
    token, listed = auth.create_token("bob", "laptop", ADA, expires_in=3600)
    assert listed.expires_at == 1_700_000_000_000 + 3_600_000

    clock.now += 3599.999
    assert auth.authenticate(token).user == "bob"
    clock.now += 0.001
    with pytest.raises(Unauthenticated, match=f"token {listed.public_id} expired at"):
        auth.authenticate(token)


def test_a_disabled_users_tokens_fail(auth):
    auth.add_user("alice", "admin", ADA)
    auth.add_user("bob", "editor", ADA)
    token, _ = auth.create_token("bob", "laptop", ADA)

    auth.set_disabled("bob", True, ADA)
    with pytest.raises(Unauthenticated, match="user bob is disabled"):
        auth.authenticate(token)
    with pytest.raises(Conflict, match="enable them first"):
        auth.create_token("bob", "another", ADA)
    auth.set_disabled("bob", False, ADA)
    assert auth.authenticate(token).user == "bob"


def test_a_role_change_counts_from_the_next_call(auth):
    auth.add_user("bob", "viewer", ADA)
    token, _ = auth.create_token("bob", "laptop", ADA)
    auth.set_role("bob", "maintainer", ADA)
    assert auth.authenticate(token).role == "maintainer"


def test_last_use_is_recorded_at_most_once_a_minute(auth, engine, clock):
    auth.add_user("bob", "editor", ADA)
    token, listed = auth.create_token("bob", "laptop", ADA)
    assert listed.last_used_at is None

    def last_used() -> int | None:
        (found,) = auth.list_tokens("bob")
        return found.last_used_at

    auth.authenticate(token)
    first = last_used()
    assert first == 1_700_000_000_000
    clock.now += 59
    auth.authenticate(token)
    assert last_used() == first
    clock.now += 1
    auth.authenticate(token)
    assert last_used() == 1_700_000_060_000

    # Another process of the same store (its own memory) trusts the stored time.
    other = AuthService(SqlAuthStore(engine), clock=clock)
    clock.now += 30
    other.authenticate(token)
    assert last_used() == 1_700_000_060_000


def test_token_options_are_checked(auth):
    auth.add_user("bob", "editor", ADA)
    token, listed = auth.create_token("bob", "edge", ADA, scope="predict")
    assert listed.scope == "predict"
    assert auth.authenticate(token).scope == "predict"
    with pytest.raises(InvalidArgument, match="scope must be one of predict"):
        auth.create_token("bob", "x", ADA, scope="admin")
    for expires_in in (0, -1, float("nan"), float("inf"), True, 1e300, 101 * 365 * 86400):
        with pytest.raises(InvalidArgument, match="expires_in"):
            auth.create_token("bob", "x", ADA, expires_in=expires_in)
    for name in ("", " ", "x" * 129, "a\nb"):
        with pytest.raises(InvalidArgument, match="token name"):
            auth.create_token("bob", name, ADA)
    with pytest.raises(NotFound, match="user 'carol'"):
        auth.create_token("carol", "x", ADA)
    assert [t.name for t in auth.list_tokens()] == ["edge"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400.0), ("12h", 43200.0), ("30m", 1800.0), ("2w", 14 * 86400.0)],
)
def test_parse_expires(text, seconds):
    assert parse_expires(text) == seconds


@pytest.mark.parametrize("text", ["none", "None", "never"])
def test_parse_expires_none(text):
    assert parse_expires(text) is None


@pytest.mark.parametrize("text", ["", "0d", "90", "d", "1.5h", "-3d", "3y", "forever"])
def test_parse_expires_refuses(text):
    with pytest.raises(InvalidArgument, match=r"90d, 12h, 30m"):
        parse_expires(text)


# -- grants and decisions ----------------------------------------------------------------------


def test_a_grant_lets_a_viewer_maintain_one_model_but_not_another(auth, models):
    auth.add_user("bob", "viewer", ADA)
    token, _ = auth.create_token("bob", "laptop", ADA)
    bob = auth.authenticate(token)

    with pytest.raises(PermissionDenied) as refused:
        auth.authorize(bob, "maintainer", "churn")
    assert str(refused.value) == "this needs role maintainer on model 'churn'; user:bob is viewer"

    grant = auth.grant("churn", "bob", "maintainer", "user:alice")
    assert (grant.model_name, grant.user, grant.role) == ("churn", "bob", "maintainer")
    auth.authorize(bob, "maintainer", "churn")
    assert auth.model_role(bob, "churn") == "maintainer"
    with pytest.raises(PermissionDenied, match="on model 'fraud'; user:bob is viewer"):
        auth.authorize(bob, "maintainer", "fraud")
    with pytest.raises(PermissionDenied, match="this needs role editor; user:bob is viewer"):
        auth.authorize(bob, "editor", None)  # a grant counts only on its model
    assert [g.user for g in auth.list_grants("churn")] == ["bob"]

    auth.revoke_grant("churn", "bob", "user:alice")
    with pytest.raises(PermissionDenied):
        auth.authorize(bob, "maintainer", "churn")


def test_a_grant_never_lowers_a_role(auth, models):
    auth.add_user("carol", "maintainer", ADA)
    auth.grant("churn", "carol", "viewer", ADA)
    carol = Principal("carol", "maintainer")
    assert auth.model_role(carol, "churn") == "maintainer"
    auth.authorize(carol, "maintainer", "churn")


def test_grants_are_checked(auth, models):
    auth.add_user("bob", "viewer", ADA)
    with pytest.raises(InvalidArgument, match="must be one of viewer, editor, maintainer"):
        auth.grant("churn", "bob", "admin", ADA)
    with pytest.raises(InvalidArgument):
        auth.grant("churn", "bob", "owner", ADA)
    with pytest.raises(NotFound, match="model 'nope'"):
        auth.grant("nope", "bob", "editor", ADA)
    with pytest.raises(NotFound, match="user 'carol'"):
        auth.grant("churn", "carol", "editor", ADA)
    with pytest.raises(NotFound, match="no grant"):
        auth.revoke_grant("churn", "bob", ADA)
    for bad in ("bad\x00name", "", "a/b"):
        with pytest.raises(InvalidArgument, match="model name"):
            auth.grant(bad, "bob", "editor", ADA)
        with pytest.raises(InvalidArgument, match="model name"):
            auth.list_grants(bad)
        # Deciding about a route that names no real model is a refusal, never a store error.
        assert auth.model_role(Principal("bob", "viewer"), bad) == "viewer"
        with pytest.raises(PermissionDenied):
            auth.authorize(Principal("bob", "viewer"), "editor", bad)


def test_predict_tokens_are_refused_on_the_team_server(auth):
    auth.add_user("alice", "admin", ADA)
    token, _ = auth.create_token("alice", "edge", ADA, scope="predict")
    alice = auth.authenticate(token)
    with pytest.raises(PermissionDenied, match="inference servers"):
        auth.authorize(alice, "viewer", None)
    auth.authorize(auth.authenticate(auth.create_token("alice", "all", ADA)[0]), "admin", None)
