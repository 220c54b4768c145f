"""Who is calling: the :class:`Principal` an authenticated request carries."""

from __future__ import annotations

from dataclasses import dataclass

from segue.identity import Actor


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Args:
        user: the user's name.
        role: the user's role everywhere (a per-model grant may raise it on one model).
        token_id: the public id of the token used, if a token was used.
        scope: the token's scope (``predict``), None for everything the role allows.
        kind: the audit log's kind: ``user`` for authenticated users, ``anonymous`` on a
            server started with ``--no-auth``.

    Example::

        >>> str(Principal("bob", "editor", "a1b2c3d4").actor)
        'user:bob'
    """

    user: str
    role: str
    token_id: str | None = None
    scope: str | None = None
    kind: str = "user"

    @property
    def actor(self) -> Actor:
        """What the audit log records for this caller's changes."""
        return Actor(self.kind, self.user)
