"""Token and password secrets: how they are made, recognised and hashed (no storage here).

A token reads ``sgt_<public id>_<secret>``: the public id (8 hex characters) is what listings
show and what finds the token in the store; the secret is 32 random bytes (256 bits) in
URL-safe base64. The store keeps only the sha256 of the whole token, so a copy of the
database gives nobody a working token. Passwords (for people, in the web UI) are hashed with
Argon2id; the PHC string keeps its own salt and costs.

Example::

    >>> token, public_id = new_token()
    >>> parse_token(token) == public_id
    True
    >>> token_matches(token, hash_token(token))
    True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from segue.errors import InvalidArgument, Unauthenticated

__all__ = [
    "PREFIX",
    "check_password",
    "hash_password",
    "hash_token",
    "needs_rehash",
    "new_public_id",
    "new_token",
    "parse_token",
    "token_matches",
    "verify_password",
]

PREFIX = "sgt_"
#: ``sgt_`` + 8 hex + ``_`` + 43 URL-safe base64 characters (32 bytes, unpadded).
_TOKEN = re.compile(r"sgt_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
#: Bytes of randomness in a token's secret.
SECRET_BYTES = 32
#: Passwords shorter than this are refused; longer than the maximum, too (hashing cost).
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


def new_public_id() -> str:
    """A fresh public id: 8 lowercase hex characters."""
    return secrets.token_hex(4)


def new_token(public_id: str | None = None) -> tuple[str, str]:
    """A fresh token and its public id (a new one unless ``public_id`` is given)."""
    public_id = public_id or new_public_id()
    return f"{PREFIX}{public_id}_{secrets.token_urlsafe(SECRET_BYTES)}", public_id


def parse_token(token: str) -> str:
    """The public id of ``token``.

    Raises:
        Unauthenticated: ``token`` does not have the shape of a Segue token (the message never
            repeats the token).
    """
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise Unauthenticated(
            "the token is not a Segue token (expected sgt_<id>_<secret>, "
            "as printed by 'segue tokens create')"
        )
    return match.group(1)


def hash_token(token: str) -> str:
    """The sha256 hex digest of the whole token: what the store keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` hashes to ``stored_hash`` (compared in constant time)."""
    return hmac.compare_digest(hash_token(token), stored_hash)


@cache
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults are RFC 9106's low-memory profile of Argon2id (t=3, 64 MiB, p=4).
    return PasswordHasher()


def check_password(password: object) -> str:
    """``password`` if it is acceptable, else an InvalidArgument saying what is wrong."""
    if not isinstance(password, str):
        raise InvalidArgument("password must be text")
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument(f"password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidArgument(f"password must have at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    """The Argon2id hash (a PHC string with its salt and costs) of an acceptable password.

    Raises:
        InvalidArgument: a password too short or too long (see :func:`check_password`).
    """
    return _hasher().hash(check_password(password))


def verify_password(password: str, stored_hash: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (False for a malformed hash)."""
    try:
        return _hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with other costs than today's (hash it anew)."""
    try:
        return _hasher().check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


#: A real hash to verify against when a user is unknown or has no password, so that the
#: answer takes as long as for a wrong password and does not reveal which names exist.
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$WXrPBJJEKcdOlyD1myH77g"
    "$UavkwHSLl9/YfPSDFcb7vjH+Yl58YUsph4KJRc+DBrA"
)
