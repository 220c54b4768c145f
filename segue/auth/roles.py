"""The four roles, weakest first, and how they compare.

- ``viewer``: read everything.
- ``editor``: also log runs and register versions.
- ``maintainer``: also move aliases, add and remove gates, delete.
- ``admin``: also manage users and tokens.

A per-model grant raises a user's role on that one model (never lowers it).
"""

from __future__ import annotations

from segue.errors import InvalidArgument

ROLES: tuple[str, ...] = ("viewer", "editor", "maintainer", "admin")
#: Token scopes narrower than the user's role: ``predict`` only reaches inference routes.
SCOPES: tuple[str, ...] = ("predict",)


def check_role(role: object, what: str = "role") -> str:
    """``role`` if it is one of :data:`ROLES`, else an error naming the choices."""
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidArgument(f"{what} must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def rank(role: str) -> int:
    """0 for viewer … 3 for admin."""
    return ROLES.index(check_role(role))


def at_least(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may."""
    return rank(role) >= rank(needed)


def strongest(*roles: str | None) -> str:
    """The strongest of ``roles`` (None ignored); ``viewer`` when none is given."""
    given = [r for r in roles if r is not None]
    return max(given, key=rank) if given else "viewer"
