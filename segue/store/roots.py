"""How the artifact root is written into, and read back from, the metadata store.

A shared database (PostgreSQL) records the root as given: an absolute folder or a URL, the
same for every client. The embedded SQLite database records a local root that lies in its own
folder (the default ``$SEGUE_HOME/artifacts`` next to ``$SEGUE_HOME/segue.db``) relative to
that folder, and resolves it against the database file's location when read: so a copied or
moved ``$SEGUE_HOME`` keeps its artifacts, as a moved MLflow ``mlruns`` folder does.

Example:
    >>> folder = database_folder(engine)            # /home/ana/.segue
    >>> stored_form("/home/ana/.segue/artifacts", folder)
    'artifacts'
    >>> resolved_form("artifacts", Path("/mnt/copy/.segue"))
    '/mnt/copy/.segue/artifacts'
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from sqlalchemy.engine import Engine


def database_folder(engine: Engine) -> Path | None:
    """The folder of ``engine``'s SQLite database file; ``None`` for any other database."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):  # a URI filename: leave its root as given
        return None
    return Path(os.path.abspath(url.database)).parent


def stored_form(root: str, folder: Path | None) -> str:
    """What to record for ``root``: relative to ``folder`` when it is a local folder inside it."""
    if folder is None or not _is_local_path(root) or not os.path.isabs(root):
        return root
    try:
        inside = Path(os.path.abspath(root)).relative_to(folder)
    except ValueError:  # elsewhere on the disk: record it as given
        return root
    return inside.as_posix()


def resolved_form(recorded: str, folder: Path | None) -> str:
    """The root a client uses for ``recorded``: a relative one is joined to ``folder``."""
    if folder is None or not _is_local_path(recorded) or os.path.isabs(recorded):
        return recorded
    return os.path.normpath(folder / PurePosixPath(recorded))


def _is_local_path(root: str) -> bool:
    return "://" not in root
