"""Where a run comes from: user, host, Python, code version and installed packages."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Source:
    commit: str | None
    dirty: bool | None
    entry_point: str | None


@cache
def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


@cache
def host() -> str:
    return socket.gethostname()


@cache
def python_version() -> str:
    return platform.python_version()


def entry_point() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path:
        return str(Path(path).resolve())
    return sys.argv[0] or None


@cache
def source(cwd: str | os.PathLike[str] | None = None) -> Source:
    """The git commit and dirty flag of the working tree at ``cwd``, if it is a repository.

    Cached per process: the code a process runs is the code it started with.
    """
    entry = entry_point()
    where = Path(cwd) if cwd else Path(entry).parent if entry and Path(entry).exists() else None
    commit = _git(["rev-parse", "HEAD"], where)
    if commit is None:
        return Source(None, None, entry)
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return Source(commit, bool(status), entry)


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@cache
def packages() -> tuple[str, dict[str, str]]:
    """(digest, {distribution: version}) of the packages installed in this interpreter."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[name.lower()] = dist.version
    snapshot = dict(sorted(found.items()))
    digest = hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()
    return digest, snapshot
