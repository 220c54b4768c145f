"""Database engines and schema migrations.

Opening a store never migrates by itself; :func:`ensure_schema` (called by the factories in
``segue.store``) and ``segue db upgrade`` (which calls :func:`upgrade`) do, explicitly.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from segue.errors import InvalidArgument, SegueError

_MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_KEY = 0x5E6E  # serialises concurrent migrations on PostgreSQL
_checked: set[str] = set()
_lock = threading.Lock()


def create_engine(uri: str) -> Engine:
    """Create an engine for ``uri`` with the settings Segue relies on.

    SQLite runs in WAL mode with foreign keys on and a case-sensitive LIKE (as on
    PostgreSQL), and every transaction starts with ``BEGIN IMMEDIATE`` so that concurrent
    writers queue on ``busy_timeout`` instead of failing when a read transaction tries to
    become a write.
    """
    try:
        url = sa.engine.make_url(uri)
    except sa.exc.ArgumentError as exc:
        raise InvalidArgument(f"SEGUE_STORE_URI: cannot parse {uri!r} as a database URL") from exc
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise InvalidArgument(f"SEGUE_STORE_URI: unsupported database URL {uri!r}: {exc}") from exc


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit BEGIN is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # LIKE in run filters must match case as it does on PostgreSQL (ILIKE is the other one).
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this version of Segue."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to ``revision``; return (before, after) revisions."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    _checked.add(str(engine.url))
    return before, after


def ensure_schema(engine: Engine) -> None:
    """Migrate ``engine``'s database to the newest schema unless it is known to be there."""
    key = str(engine.url)
    if key in _checked:
        return
    with _lock:
        if key in _checked:
            return
        current = current_revision(engine)
        if current != head_revision():
            _check_known(engine, current)
            upgrade(engine)
        _checked.add(key)


def _check_known(engine: Engine, revision: str | None) -> None:
    """Refuse a database migrated by a newer Segue instead of failing inside Alembic."""
    if revision is None:
        return
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
