"""The auth store: users, their API tokens (as hashes only) and per-model grants.

It keeps what :class:`~segue.auth.service.AuthService` decides: names and roles are checked
there, secrets are hashed there, and times come from its clock (epoch milliseconds), so the
store holds no policy beyond the database's own constraints and one rule that must be
atomic: a change never leaves the users without an enabled admin when they had one.
A grant's change writes the model's audit entry in the same transaction.

Example:
    >>> auth = SqlAuthStore(open_engine(settings().store_uri))
    >>> auth.add_user("bob", "editor", None, "local:ada", at=1700000000000).name
    'bob'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from segue.errors import AlreadyExists, Conflict, NotFound
from segue.store import audit
from segue.store.entities import ApiToken, ModelGrant, User
from segue.store.schema import ApiTokenRow, ModelGrantRow, RegisteredModelRow, UserRow
from segue.store.sessions import Database

__all__ = ["AuthStore", "SqlAuthStore", "TokenRecord"]


@dataclass(frozen=True)
class TokenRecord:
    """A token as authentication needs it: its listing, the stored hash, and its user."""

    token: ApiToken
    secret_hash: str
    user: User


class AuthStore(Protocol):
    """What identities and access need from a metadata store."""

    def add_user(
        self, name: str, role: str, password_hash: str | None, actor: str, *, at: int
    ) -> User: ...
    def get_user(self, name: str) -> User: ...
    def list_users(self) -> list[User]: ...
    def has_users(self) -> bool: ...
    def update_user(
        self, name: str, *, role: str | None = None, disabled: bool | None = None
    ) -> User: ...
    def password_hash(self, name: str) -> str | None: ...
    def set_password_hash(self, name: str, password_hash: str | None) -> None: ...
    def add_token(
        self,
        user: str,
        public_id: str,
        name: str,
        secret_hash: str,
        scope: str | None,
        *,
        at: int,
        expires_at: int | None,
    ) -> ApiToken: ...
    def find_token(self, public_id: str) -> TokenRecord | None: ...
    def list_tokens(self, user: str | None = None) -> list[ApiToken]: ...
    def revoke_token(self, public_id: str, *, at: int) -> ApiToken: ...
    def touch_token(self, public_id: str, *, at: int) -> None: ...
    def set_grant(self, model: str, user: str, role: str, actor: str, *, at: int) -> ModelGrant: ...
    def delete_grant(self, model: str, user: str, actor: str) -> None: ...
    def list_grants(self, model: str) -> list[ModelGrant]: ...
    def grant_role(self, model: str, user: str) -> str | None: ...


class SqlAuthStore:
    """:class:`AuthStore` over SQLAlchemy, for SQLite and PostgreSQL.

    Args:
        engine: an engine whose schema is migrated (``open_engine`` does that).
    """

    def __init__(self, engine: Engine) -> None:
        self._db = Database(engine)

    # -- users -----------------------------------------------------------------------------

    def add_user(
        self, name: str, role: str, password_hash: str | None, actor: str, *, at: int
    ) -> User:
        """Store a new user; AlreadyExists if the name is taken."""
        with self._db.write() as s, s.begin():
            stmt = (
                self._db.insert(UserRow)
                .values(
                    name=name,
                    role=role,
                    password_hash=password_hash,
                    disabled=False,
                    created_at=at,
                    created_by=actor,
                )
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(UserRow.id)
            )
            if s.scalar(stmt) is None:
                raise AlreadyExists(f"user {name!r} already exists; see `segue users list`")
            return _user(_user_row(s, name))

    def get_user(self, name: str) -> User:
        with self._db.read() as s:
            return _user(_user_row(s, name))

    def list_users(self) -> list[User]:
        """Every user, by name."""
        with self._db.read() as s:
            return [_user(row) for row in s.scalars(sa.select(UserRow).order_by(UserRow.name))]

    def has_users(self) -> bool:
        with self._db.read() as s:
            return s.scalar(sa.select(UserRow.id).limit(1)) is not None

    def update_user(
        self, name: str, *, role: str | None = None, disabled: bool | None = None
    ) -> User:
        """Change a user's role and/or disabled flag.

        Raises:
            NotFound: no such user.
            Conflict: the change would leave no enabled admin where there was one.
        """
        with self._db.write() as s, s.begin():
            admins = self._enabled_admins(s)
            row = _user_row(s, name)
            if role is not None:
                row.role = role
            if disabled is not None:
                row.disabled = disabled
            s.flush()
            if admins and not self._enabled_admins(s):
                raise Conflict(
                    f"{name} is the last enabled admin: add or enable another admin first"
                )
            return _user(row)

    def _enabled_admins(self, s: Session) -> list[int]:
        stmt = sa.select(UserRow.id).where(UserRow.role == "admin", UserRow.disabled.is_(False))
        if self._db.dialect == "postgresql":
            # Two demotions at once must not both see the other admin still standing.
            stmt = stmt.with_for_update()
        return list(s.scalars(stmt))

    def password_hash(self, name: str) -> str | None:
        """The stored Argon2id hash of ``name``'s password, None without one."""
        with self._db.read() as s:
            return _user_row(s, name).password_hash

    def set_password_hash(self, name: str, password_hash: str | None) -> None:
        with self._db.write() as s, s.begin():
            _user_row(s, name).password_hash = password_hash

    # -- tokens ----------------------------------------------------------------------------

    def add_token(
        self,
        user: str,
        public_id: str,
        name: str,
        secret_hash: str,
        scope: str | None,
        *,
        at: int,
        expires_at: int | None,
    ) -> ApiToken:
        """Store a token of ``user`` by its hash; AlreadyExists if ``public_id`` is taken."""
        with self._db.write() as s, s.begin():
            owner = _user_row(s, user)
            stmt = (
                self._db.insert(ApiTokenRow)
                .values(
                    public_id=public_id,
                    user_id=owner.id,
                    name=name,
                    secret_hash=secret_hash,
                    scope=scope,
                    created_at=at,
                    expires_at=expires_at,
                )
                .on_conflict_do_nothing(index_elements=["public_id"])
                .returning(ApiTokenRow.id)
            )
            if s.scalar(stmt) is None:
                raise AlreadyExists(f"a token with public id {public_id} already exists")
            return _token(_token_row(s, public_id), owner.name)

    def find_token(self, public_id: str) -> TokenRecord | None:
        """The token with ``public_id``, its hash and its user; None if there is none."""
        stmt = (
            sa.select(ApiTokenRow, UserRow)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .where(ApiTokenRow.public_id == public_id)
        )
        with self._db.read() as s:
            found = s.execute(stmt).one_or_none()
            if found is None:
                return None
            token, owner = found
            return TokenRecord(_token(token, owner.name), token.secret_hash, _user(owner))

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """Every token (of ``user``), oldest first."""
        stmt = sa.select(ApiTokenRow, UserRow.name).join(UserRow, UserRow.id == ApiTokenRow.user_id)
        with self._db.read() as s:
            if user is not None:
                stmt = stmt.where(ApiTokenRow.user_id == _user_row(s, user).id)
            rows = s.execute(stmt.order_by(ApiTokenRow.id))
            return [_token(token, name) for token, name in rows]

    def revoke_token(self, public_id: str, *, at: int) -> ApiToken:
        """Mark the token revoked at ``at`` (a token revoked already keeps its first time)."""
        with self._db.write() as s, s.begin():
            row = _token_row(s, public_id)
            if row.revoked_at is None:
                row.revoked_at = at
            owner = s.get(UserRow, row.user_id)
            assert owner is not None  # a foreign key
            return _token(row, owner.name)

    def touch_token(self, public_id: str, *, at: int) -> None:
        """Record that the token was used at ``at`` (never moving the time backwards)."""
        with self._db.write() as s, s.begin():
            s.execute(
                sa.update(ApiTokenRow)
                .where(ApiTokenRow.public_id == public_id)
                .where(sa.or_(ApiTokenRow.last_used_at.is_(None), ApiTokenRow.last_used_at < at))
                .values(last_used_at=at)
            )

    # -- grants ----------------------------------------------------------------------------

    def set_grant(self, model: str, user: str, role: str, actor: str, *, at: int) -> ModelGrant:
        """Give ``user`` ``role`` on ``model`` (replacing a grant they had on it)."""
        with self._db.write() as s, s.begin():
            model_id = _model_id(s, model)
            owner = _user_row(s, user)
            row = s.get(ModelGrantRow, (model_id, owner.id))
            before = None if row is None else {"role": row.role}
            if row is None:
                row = ModelGrantRow(model_id=model_id, user_id=owner.id)
                s.add(row)
            row.role, row.created_at, row.created_by = role, at, actor
            audit.record(s, actor, model, "grant", f"user:{user}", before, {"role": role})
            return ModelGrant(model, user, role, at, actor)

    def delete_grant(self, model: str, user: str, actor: str) -> None:
        """Take back ``user``'s grant on ``model``; NotFound if they have none."""
        with self._db.write() as s, s.begin():
            model_id = _model_id(s, model)
            owner = _user_row(s, user)
            row = s.get(ModelGrantRow, (model_id, owner.id))
            if row is None:
                raise NotFound(f"user {user!r} has no grant on model {model!r}")
            before = {"role": row.role}
            s.delete(row)
            audit.record(s, actor, model, "revoke_grant", f"user:{user}", before, None)

    def list_grants(self, model: str) -> list[ModelGrant]:
        """The grants on ``model``, by user name."""
        stmt = (
            sa.select(ModelGrantRow, UserRow.name)
            .join(UserRow, UserRow.id == ModelGrantRow.user_id)
            .order_by(UserRow.name)
        )
        with self._db.read() as s:
            rows = s.execute(stmt.where(ModelGrantRow.model_id == _model_id(s, model)))
            return [ModelGrant(model, name, g.role, g.created_at, g.created_by) for g, name in rows]

    def grant_role(self, model: str, user: str) -> str | None:
        """``user``'s granted role on ``model``; None without a grant (or such a model)."""
        stmt = (
            sa.select(ModelGrantRow.role)
            .join(RegisteredModelRow, RegisteredModelRow.id == ModelGrantRow.model_id)
            .join(UserRow, UserRow.id == ModelGrantRow.user_id)
            .where(RegisteredModelRow.name == model, UserRow.name == user)
        )
        with self._db.read() as s:
            return s.scalar(stmt)


def _user_row(s: Session, name: str) -> UserRow:
    row = s.scalar(sa.select(UserRow).where(UserRow.name == name))
    if row is None:
        raise NotFound(f"user {name!r} does not exist; see `segue users list`")
    return row


def _token_row(s: Session, public_id: str) -> ApiTokenRow:
    row = s.scalar(sa.select(ApiTokenRow).where(ApiTokenRow.public_id == public_id))
    if row is None:
        raise NotFound(f"no token has the public id {public_id!r}; see `segue tokens list`")
    return row


def _model_id(s: Session, name: str) -> int:
    model_id = s.scalar(sa.select(RegisteredModelRow.id).where(RegisteredModelRow.name == name))
    if model_id is None:
        raise NotFound(f"model {name!r} is not registered; see `segue models list`")
    return model_id


def _user(row: UserRow) -> User:
    return User(
        row.id,
        row.name,
        row.role,
        bool(row.disabled),
        row.password_hash is not None,
        row.created_at,
        row.created_by,
    )


def _token(row: ApiTokenRow, user: str) -> ApiToken:
    return ApiToken(
        row.id,
        row.public_id,
        user,
        row.name,
        row.scope,
        row.created_at,
        row.expires_at,
        row.revoked_at,
        row.last_used_at,
    )
