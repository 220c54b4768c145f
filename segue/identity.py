"""Who is acting: the :class:`Actor` an edge (the CLI, the Python SDK, later a server's
authentication) builds once and passes down into the services, which record it in the audit
log. Nothing below the edge reads the environment to learn who acts.

Until authenticated identities exist, the edges use :func:`local_actor`: the login name from
``$LOGNAME``/``$USER`` (which anyone can set, hence the ``local:`` kind) with the operating
system's user id beside it (which they cannot).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from segue.errors import InvalidArgument

__all__ = ["Actor", "local_actor"]

_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
#: Longest name kept: the audit log's actor column holds 256 characters.
_MAX_NAME = 200
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f]+")


@dataclass(frozen=True)
class Actor:
    """Someone (or something) making a change, as recorded in the audit log.

    Args:
        kind: where the identity comes from: ``"local"`` (an unauthenticated login name).
            An authentication layer adds its own kinds (``"user"``, ``"token"``).
        name: the name within that kind.
        uid: the operating system's user id, for a local actor.

    Raises:
        InvalidArgument: an empty or malformed kind or name.

    Example::

        >>> str(Actor("local", "ada", uid=1000))
        'local:ada (uid 1000)'
    """

    kind: str
    name: str
    uid: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not _KIND.fullmatch(self.kind):
            raise InvalidArgument(f"actor kind {self.kind!r}: expected a lowercase word")
        if not isinstance(self.name, str) or not self.name or len(self.name) > _MAX_NAME:
            raise InvalidArgument(f"actor name {self.name!r}: expected 1 to {_MAX_NAME} characters")
        if _UNSAFE.search(self.name):
            raise InvalidArgument(
                f"actor name {self.name!r}: spaces and control characters are not allowed"
            )
        if self.uid is not None and (type(self.uid) is not int or self.uid < 0):
            raise InvalidArgument(f"actor uid {self.uid!r}: expected a non-negative int")

    @property
    def id(self) -> str:
        """``kind:name``, e.g. ``local:ada``."""
        return f"{self.kind}:{self.name}"

    def __str__(self) -> str:
        return self.id if self.uid is None else f"{self.id} (uid {self.uid})"


def local_actor(environ: Mapping[str, str] | None = None, uid: int | None = None) -> Actor:
    """The unauthenticated local user, for an edge to pass into the services.

    The name is the first of ``$LOGNAME``, ``$USER``, ``$LNAME`` and ``$USERNAME`` that is set
    (as :func:`getpass.getuser` reads them), with spaces and control characters replaced by
    ``?``; without one, the account name of the user id; else ``unknown``.

    Args:
        environ: the environment to read (default :data:`os.environ`).
        uid: the user id to record (default: :func:`os.getuid`, where there is one).

    Example::

        >>> local_actor({"LOGNAME": "ada"}, uid=1000).id
        'local:ada'
    """
    env = os.environ if environ is None else environ
    if uid is None and hasattr(os, "getuid"):
        uid = os.getuid()
    name = next((env[k] for k in ("LOGNAME", "USER", "LNAME", "USERNAME") if env.get(k)), "")
    if not name and uid is not None:
        name = _account_name(uid)
    name = _UNSAFE.sub("?", name)[:_MAX_NAME] or "unknown"
    return Actor("local", name, uid)


def _account_name(uid: int) -> str:
    try:
        import pwd
    except ImportError:  # Windows
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""
