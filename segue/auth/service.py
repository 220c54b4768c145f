"""Identities and access: users, their tokens and passwords, per-model grants, and the
decision whether a caller may do what they ask.

The service reads the store on every call (no cache), so a revoked token, an expired one or a
disabled user is refused from the next request on. Times come from the injected clock.

Example::

    >>> auth = AuthService(SqlAuthStore(engine))
    >>> auth.add_user("bob", "editor", actor="local:ada")
    >>> token, listed = auth.create_token("bob", "laptop", actor="local:ada", expires_in=86400)
    >>> auth.authenticate(token).user
    'bob'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import re
import threading
import time
from collections.abc import Callable

from segue.auth import secrets
from segue.auth.principal import Principal
from segue.auth.roles import SCOPES, at_least, check_role, strongest
from segue.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from segue.store.auth import AuthStore
from segue.store.entities import ApiToken, ModelGrant, User
from segue.store.registry import check_model_name

__all__ = [
    "GRANT_ROLES",
    "MAX_EXPIRES_IN",
    "SESSION_SCOPE",
    "SESSION_SECONDS",
    "TOKEN_NAME_PATTERN",
    "USER_NAME_PATTERN",
    "AuthService",
    "check_token_name",
    "check_user_name",
    "parse_expires",
]

log = logging.getLogger("segue.auth")

#: Roles a per-model grant may give: admin is a role of the whole server, never of one model.
GRANT_ROLES: tuple[str, ...] = ("viewer", "editor", "maintainer")
#: The longest lifetime a token may be given, in seconds (100 years); else create it without.
MAX_EXPIRES_IN = 100 * 365 * 86400
#: The scope of a web UI session's token (taken only from the session cookie).
SESSION_SCOPE = "session"
#: How long a web UI login lasts.
SESSION_SECONDS = 12 * 3600
#: A token's last use is written at most this often (milliseconds).
LAST_USE_EVERY_MS = 60_000

#: What a user name may be (also the HTTP API's schema for it).
USER_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
#: What a token name may be: no control characters, not only blanks (1 to 128 characters).
TOKEN_NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_USER_NAME = re.compile(USER_NAME_PATTERN[1:-1])
_TOKEN_NAME = re.compile(TOKEN_NAME_PATTERN[1:-1])
_PUBLIC_ID = re.compile(r"[0-9a-f]{8}")
_EXPIRES = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def check_user_name(name: object) -> str:
    """``name`` if it is a valid user name: 1 to 64 letters, digits, ``.``, ``_`` or ``-``."""
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise InvalidArgument(
            f"user name {name!r} must be 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name


def check_token_name(name: object) -> str:
    """``name`` if it is a valid token name: 1 to 128 printable characters."""
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise InvalidArgument(f"token name {name!r} must be 1 to 128 characters")
    if not _TOKEN_NAME.fullmatch(name):
        raise InvalidArgument(f"token name {name!r} must not contain control characters")
    return name


def parse_expires(text: str) -> float | None:
    """Seconds until a token expires, from ``90d``, ``12h``, ``30m`` (also ``s`` and ``w``);
    None for ``none`` (the token never expires).

    Example::

        >>> parse_expires("90d")
        7776000.0
    """
    value = text.strip().lower() if isinstance(text, str) else ""
    if value in ("none", "never"):
        return None
    match = _EXPIRES.fullmatch(value)
    if match is None or int(match.group(1)) == 0:
        raise InvalidArgument(
            f"expires must be a positive number of days, hours or minutes (90d, 12h, 30m) "
            f"or 'none', got {text!r}"
        )
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class AuthService:
    """Users, tokens, grants and authorization over an :class:`~segue.store.auth.AuthStore`.

    Args:
        store: where users, token hashes and grants live.
        clock: epoch seconds (injectable: expiry and last use are judged by it).
    """

    def __init__(self, store: AuthStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self._last_use: dict[str, int] = {}
        self._lock = threading.Lock()

    def _now(self) -> int:
        return int(self._clock() * 1000)

    # -- users -----------------------------------------------------------------------------

    def add_user(self, name: str, role: str, actor: str, password: str | None = None) -> User:
        """Add a user with ``role`` (and a password for the web UI, hashed with Argon2id).

        Raises:
            InvalidArgument: a malformed name, an unknown role, a password too short or long.
            AlreadyExists: the name is taken.
        """
        check_user_name(name)
        check_role(role)
        hashed = None if password is None else secrets.hash_password(password)
        user = self.store.add_user(name, role, hashed, actor, at=self._now())
        log.info("%s added user %s (%s)", actor, name, role)
        return user

    def get_user(self, name: str) -> User:
        return self.store.get_user(check_user_name(name))

    def list_users(self) -> list[User]:
        return self.store.list_users()

    def has_users(self) -> bool:
        """Whether any user exists (a server refuses to start openly without one)."""
        return self.store.has_users()

    def set_role(self, name: str, role: str, actor: str) -> User:
        """Give ``name`` the role ``role`` everywhere.

        Raises:
            Conflict: ``name`` is the last enabled admin and ``role`` is not admin.
        """
        user = self.store.update_user(check_user_name(name), role=check_role(role))
        log.info("%s set the role of %s to %s", actor, name, role)
        return user

    def set_disabled(self, name: str, disabled: bool, actor: str) -> User:
        """Disable (or enable again) ``name``: a disabled user's tokens and password fail.

        Raises:
            Conflict: ``name`` is the last enabled admin.
        """
        if not isinstance(disabled, bool):
            raise InvalidArgument(f"disabled must be true or false, got {disabled!r}")
        user = self.store.update_user(check_user_name(name), disabled=disabled)
        log.info("%s %s user %s", actor, "disabled" if disabled else "enabled", name)
        return user

    def set_password(self, name: str, password: str, actor: str) -> None:
        """Set ``name``'s password (Argon2id; only its hash is stored)."""
        check_user_name(name)
        self.store.set_password_hash(name, secrets.hash_password(password))
        log.info("%s set the password of %s", actor, name)

    def verify_password(self, name: str, password: str) -> Principal:
        """The user ``name`` if ``password`` is theirs.

        Raises:
            Unauthenticated: an unknown user, a user without a password, a wrong password
                (one message for the three, and the same time taken), or a disabled user.
        """
        user: User | None = None
        stored: str | None = None
        if isinstance(name, str) and _USER_NAME.fullmatch(name):
            with contextlib.suppress(NotFound):
                user, stored = self.store.get_user(name), self.store.password_hash(name)
        acceptable = isinstance(password, str) and len(password) <= secrets.MAX_PASSWORD
        # Verify even without a stored hash, so a missing user costs what a wrong password does.
        matched = acceptable and secrets.verify_password(password, stored or secrets.DUMMY_HASH)
        if user is None or stored is None or not matched:
            raise Unauthenticated("wrong user name or password")
        if user.disabled:
            raise Unauthenticated(f"user {name} is disabled; an admin can enable them again")
        if secrets.needs_rehash(stored):
            self.store.set_password_hash(name, secrets.hash_password(password))
        return Principal(user.name, user.role)

    # -- web sessions ----------------------------------------------------------------------

    def start_session(self, name: str, password: str) -> tuple[str, Principal]:
        """Log ``name`` in to the web UI: a session token for the cookie, and who they are.

        A session is a token of scope ``session`` named ``web session`` that expires after
        :data:`SESSION_SECONDS`: ``segue tokens list`` shows it and ``segue tokens revoke``
        ends it. The server takes it only from the session cookie, never as a bearer token.

        Raises:
            Unauthenticated: a wrong name or password, or a disabled user.
        """
        principal = self.verify_password(name, password)
        now = self._now()
        for _ in range(5):
            token, public_id = secrets.new_token()
            try:
                self.store.add_token(
                    principal.user,
                    public_id,
                    "web session",
                    secrets.hash_token(token),
                    SESSION_SCOPE,
                    at=now,
                    expires_at=now + SESSION_SECONDS * 1000,
                )
            except AlreadyExists:
                continue
            log.info("%s logged in to the web UI (session %s)", principal.actor, public_id)
            return token, Principal(principal.user, principal.role, public_id, SESSION_SCOPE)
        raise Conflict("could not draw an unused session id; try again")

    # -- tokens ----------------------------------------------------------------------------

    def create_token(
        self,
        user: str,
        name: str,
        actor: str,
        expires_in: float | None = None,
        scope: str | None = None,
    ) -> tuple[str, ApiToken]:
        """A new token for ``user``: the token itself (shown once, never stored) and its
        listing.

        Args:
            expires_in: seconds until it stops working; None: it never expires.
            scope: ``predict`` for a token that only reaches inference servers; None for
                everything the user's role allows.

        Raises:
            NotFound: no such user.
            Conflict: the user is disabled.
            InvalidArgument: a bad name, expiry or scope.
        """
        check_user_name(user)
        check_token_name(name)
        if scope is not None and scope not in SCOPES:
            raise InvalidArgument(
                f"scope must be one of {', '.join(SCOPES)} or none, got {scope!r}"
            )
        if expires_in is not None and (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, (int, float))
            or not math.isfinite(expires_in)
            or not 0 < expires_in <= MAX_EXPIRES_IN
        ):
            raise InvalidArgument(
                f"expires_in must be a positive number of seconds up to {MAX_EXPIRES_IN} "
                f"(100 years), got {expires_in!r}"
            )
        if self.store.get_user(user).disabled:
            raise Conflict(
                f"user {user} is disabled; enable them first (segue users enable {user})"
            )
        now = self._now()
        expires_at = None if expires_in is None else now + int(expires_in * 1000)
        for _ in range(5):  # a clash of 32-bit public ids is rare; a second draw settles it
            token, public_id = secrets.new_token()
            try:
                listed = self.store.add_token(
                    user,
                    public_id,
                    name,
                    secrets.hash_token(token),
                    scope,
                    at=now,
                    expires_at=expires_at,
                )
            except AlreadyExists:
                continue
            log.info("%s created token %s for %s", actor, public_id, user)
            return token, listed
        raise Conflict("could not draw an unused token id; try again")

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        """Every token (of ``user``): public ids and dates, never the secrets."""
        return self.store.list_tokens(None if user is None else check_user_name(user))

    def revoke_token(self, public_id: str, actor: str) -> ApiToken:
        """Revoke the token ``public_id`` (or the token itself): it fails from now on."""
        if isinstance(public_id, str) and public_id.startswith(secrets.PREFIX):
            public_id = secrets.parse_token(public_id)
        if not isinstance(public_id, str) or not _PUBLIC_ID.fullmatch(public_id):
            raise InvalidArgument(
                f"token id {public_id!r} must be the 8 hex characters `segue tokens list` shows"
            )
        token = self.store.revoke_token(public_id, at=self._now())
        log.info("%s revoked token %s of %s", actor, public_id, token.user)
        return token

    def authenticate(self, token: str) -> Principal:
        """The caller a bearer token belongs to.

        Raises:
            Unauthenticated: the token is malformed, unknown, revoked or expired, or its user
                is disabled.
        """
        public_id = secrets.parse_token(token)
        record = self.store.find_token(public_id)
        if record is None or not secrets.token_matches(token, record.secret_hash):
            raise Unauthenticated("unknown token; create one with 'segue tokens create USER'")
        listed, now = record.token, self._now()
        if listed.revoked_at is not None:
            raise Unauthenticated(f"token {public_id} was revoked at {_utc(listed.revoked_at)}")
        if listed.expires_at is not None and now >= listed.expires_at:
            raise Unauthenticated(f"token {public_id} expired at {_utc(listed.expires_at)}")
        if record.user.disabled:
            raise Unauthenticated(f"user {record.user.name} is disabled")
        self._record_use(listed, now)
        return Principal(record.user.name, record.user.role, public_id, listed.scope)

    def _record_use(self, token: ApiToken, now: int) -> None:
        # At most one write a minute per token: this process remembers its own writes, and
        # the stored time covers the other processes of the same store.
        with self._lock:
            last = max(self._last_use.get(token.public_id, 0), token.last_used_at or 0)
            if now - last < LAST_USE_EVERY_MS:
                return
            self._last_use[token.public_id] = now
        self.store.touch_token(token.public_id, at=now)

    # -- grants and decisions --------------------------------------------------------------

    def grant(self, model: str, user: str, role: str, actor: str) -> ModelGrant:
        """Give ``user`` ``role`` on ``model`` (raising, never lowering, their role there).

        Raises:
            InvalidArgument: ``role`` is not viewer, editor or maintainer.
            NotFound: no such model or user.
        """
        check_model_name(model)
        check_user_name(user)
        if role not in GRANT_ROLES:
            raise InvalidArgument(
                f"a model grant's role must be one of {', '.join(GRANT_ROLES)}, got {role!r} "
                "(admin is a role of the whole server: segue users set-role)"
            )
        return self.store.set_grant(model, user, role, actor, at=self._now())

    def revoke_grant(self, model: str, user: str, actor: str) -> None:
        """Take back ``user``'s grant on ``model``; NotFound if they have none."""
        self.store.delete_grant(check_model_name(model), check_user_name(user), actor)

    def list_grants(self, model: str) -> list[ModelGrant]:
        """The grants on ``model``, by user name."""
        return self.store.list_grants(check_model_name(model))

    def model_role(self, principal: Principal, model: str | None) -> str:
        """The strongest of ``principal``'s role and their grant on ``model``."""
        if model is None or not _is_model_name(model):
            return principal.role  # no grant can name what is not a model name
        return strongest(principal.role, self.store.grant_role(model, principal.user))

    def authorize(self, principal: Principal, needed: str, model: str | None) -> None:
        """Refuse ``principal`` unless their role (on ``model``) is at least ``needed``.

        Raises:
            PermissionDenied: a ``predict`` token (for inference servers only), or a role
                too weak: the message names the role needed and the caller's.
        """
        if principal.scope == "predict":
            raise PermissionDenied(
                f"token {principal.token_id} has scope 'predict': it is for inference servers "
                "(segue serve --auth) only; create a token without --scope for this server"
            )
        if at_least(principal.role, needed):
            return  # a grant only raises a role: no need to look one up
        role = self.model_role(principal, model)
        if not at_least(role, needed):
            where = f" on model {model!r}" if model is not None else ""
            raise PermissionDenied(f"this needs role {needed}{where}; {principal.actor} is {role}")


def _is_model_name(name: str) -> bool:
    try:
        check_model_name(name)
    except InvalidArgument:
        return False
    return True


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
