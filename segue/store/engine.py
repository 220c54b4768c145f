"""Database engines and schema migrations.

Opening a store never migrates by itself. :func:`ensure_schema` (called by :func:`open_engine`)
migrates only the embedded SQLite database, which belongs to the processes of one machine; a
shared database (PostgreSQL) with an older schema is refused, because migrating it under
servers that still run an older Segue would break them: ``segue db upgrade`` (which calls
:func:`upgrade`) migrates it, explicitly.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from segue.errors import InvalidArgument, SegueError
from segue.store.sessions import READ_ONLY, begin_sqlite

# Alembic (0.1 s to import) is needed only to migrate or when the schema is not at
# HEAD_REVISION, so opening an up-to-date store (every start of a server) goes without it.
if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration under ``migrations/`` (a test holds it to Alembic's own answer).
HEAD_REVISION = "0009"
_ADVISORY_LOCK_KEY = 0x5E6E  # serialises concurrent migrations on PostgreSQL
_checked: set[str] = set()
_lock = threading.Lock()


def create_engine(uri: str, *, busy_timeout: float = 60.0) -> Engine:
    """Create an engine for ``uri`` with the settings Segue relies on.

    SQLite runs in WAL mode with foreign keys on and a case-sensitive LIKE (as on
    PostgreSQL). A write transaction starts with ``BEGIN IMMEDIATE`` so that concurrent
    writers queue on ``busy_timeout`` (seconds) instead of failing when a read transaction
    tries to become a write; a read-only one (see :mod:`segue.store.sessions`) starts with a
    deferred ``BEGIN`` and never waits for a writer.
    """
    try:
        url = sa.engine.make_url(uri)
    except sa.exc.ArgumentError as exc:
        raise InvalidArgument(f"SEGUE_STORE_URI: cannot parse {uri!r} as a database URL") from exc
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}
        )
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", begin_sqlite)
        return engine
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise InvalidArgument(f"SEGUE_STORE_URI: unsupported database URL {uri!r}: {exc}") from exc


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit BEGIN is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # busy_timeout is already set from connect_args' timeout; WAL lets readers skip the lock.
    _enter_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # LIKE in run filters must match case as it does on PostgreSQL (ILIKE is the other one).
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()


#: How long :func:`_enter_wal` waits between tries (doubling up to the last); a test swaps
#: ``_pause`` for an event.
_WAL_RETRY_S = (0.001, 0.05)
_pause = time.sleep


def _enter_wal(cursor: Any) -> None:
    """Switch the database to WAL, waiting up to the connection's busy timeout.

    Only a fresh file needs the switch (WAL mode is kept in the file). While another
    connection holds the write lock (one migrating the new file), SQLite refuses the switch at
    once, without calling the busy handler, so processes opening a new database together
    failed with "database is locked"; here the switch is tried again until the busy timeout.
    """
    timeout_s = cursor.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
    deadline = time.monotonic() + timeout_s
    delay, longest = _WAL_RETRY_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        _pause(delay)
        delay = min(delay * 2, longest)


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this version of Segue."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "segue/store/migrations has no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.execution_options(**{READ_ONLY: True}).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to ``revision``; return (before, after) revisions."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if after == head_revision():
        _checked.add(str(engine.url))
    return before, after


def ensure_schema(engine: Engine) -> None:
    """Make sure ``engine``'s database has the newest schema.

    The embedded SQLite database is migrated here. Any other database at an older schema is
    refused with a :class:`~segue.errors.SegueError` naming both revisions and the fix
    (``segue db upgrade``); a newer one is refused with ``pip install -U segue``.
    """
    key = str(engine.url)
    if key in _checked:
        return
    with _lock:
        if key in _checked:
            return
        if _at_head(engine):
            _checked.add(key)
            return
        current = current_revision(engine)
        head = head_revision()
        if current != head:
            _check_known(engine, current)
            if engine.dialect.name != "sqlite":
                url = engine.url.render_as_string(hide_password=True)
                at = f"at schema revision {current}" if current else "empty (no schema yet)"
                raise SegueError(
                    f"the database {url} is {at}, and this Segue needs revision {head}: "
                    "run `segue db upgrade` to migrate it (a shared database is never "
                    "migrated implicitly, so servers running an older Segue keep working "
                    "until you choose to)"
                )
            upgrade(engine)
        _checked.add(key)


def _at_head(engine: Engine) -> bool:
    """Whether the database is at :data:`HEAD_REVISION`, asked without Alembic; False when
    a newer migration file ships than the constant names (then Alembic decides)."""
    if _newest_migration_file() != HEAD_REVISION:
        return False
    try:
        with engine.execution_options(**{READ_ONLY: True}).connect() as conn:
            found = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except sa.exc.DBAPIError:  # no such table yet: an empty database
        return False
    return [row[0] for row in found] == [HEAD_REVISION]


@functools.cache
def _newest_migration_file() -> str | None:
    names = (path.name for path in (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return max((name[:4] for name in names), default=None)


def _check_known(engine: Engine, revision: str | None) -> None:
    """Refuse a database migrated by a newer Segue instead of failing inside Alembic."""
    if revision is None:
        return
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    if revision not in {s.revision for s in scripts.walk_revisions()}:
        url = engine.url.render_as_string(hide_password=True)
        raise SegueError(
            f"the database {url} is at schema revision {revision!r}, newer than this Segue "
            "knows; upgrade Segue (pip install -U segue)"
        )


_engines: dict[str, Engine] = {}


def open_engine(uri: str) -> Engine:
    """The process-wide engine for ``uri``, its schema migrated to the newest revision."""
    engine = _engines.get(uri)
    if engine is None:
        with _lock:
            engine = _engines.get(uri) or create_engine(uri)
            _engines[uri] = engine
    ensure_schema(engine)
    return engine
