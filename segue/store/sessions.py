"""What every SQL store shares: read and write sessions, upserts, chunked statements, errors.

On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock
up front, so concurrent writers queue on ``busy_timeout`` instead of failing when a read turns
into a write), while a read transaction starts with a plain deferred ``BEGIN``: in WAL mode it
reads a snapshot and never waits for a writer. Stores open :meth:`Database.read` sessions for
reads and :meth:`Database.write` sessions for everything that may write.

Example:
    >>> db = Database(engine)
    >>> with db.write() as s, s.begin():
    ...     s.execute(db.insert(TagRow).values(run_id=run_id, key="k", value="v"))
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import Session

from segue.errors import ServerError

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

#: Execution option marking a connection whose transactions only read.
READ_ONLY = "segue_read_only"

# Bound parameters one statement may carry: SQLite's SQLITE_MAX_VARIABLE_NUMBER (999 before
# 3.32, 32766 since) and PostgreSQL's wire protocol limit (65535), with room to spare.
_SQLITE_PARAMS = 32_000 if sqlite3.sqlite_version_info >= (3, 32) else 999
_POSTGRES_PARAMS = 65_000

_T = TypeVar("_T")


class Database:
    """Sessions and dialect-specific statements for one engine (SQLite or PostgreSQL).

    The constructor only keeps the engine; nothing connects until a session runs a statement.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    def read(self) -> Session:
        """A session for reads only: no write lock is taken on SQLite."""
        return Session(self._reader, expire_on_commit=False)

    def write(self) -> Session:
        """A session that may write: on SQLite its transaction holds the write lock."""
        return Session(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def insert(self, table: Any) -> sqlite.Insert | postgresql.Insert:
        """An INSERT with ``on_conflict_do_*`` in the engine's dialect."""
        if self.dialect == "postgresql":
            # Imported here: a SQLite store's process (a server's start) does without it.
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        return sqlite.insert(table)

    def rows_per_statement(self, columns: int) -> int:
        """How many rows of ``columns`` bound values one statement may carry.

        Multi-row data goes as executemany (a parameter set per row), which has no such limit;
        this bounds what one statement inlines, such as the values of an ``IN (...)`` list.
        """
        budget = _POSTGRES_PARAMS if self.dialect == "postgresql" else _SQLITE_PARAMS
        return max(1, budget // max(1, columns))

    def chunks(self, rows: Sequence[_T], columns: int) -> Iterator[Sequence[_T]]:
        """``rows`` in slices small enough for one statement each."""
        size = self.rows_per_statement(columns)
        for start in range(0, len(rows), size):
            yield rows[start : start + size]


class DriverCursor:
    """The driver's own cursor on a session's connection, inside its transaction: for the
    hot statements (a run starting or ending, metric points), which skip SQLAlchemy's
    per-statement work (about 40 µs each). Errors are wrapped as SQLAlchemy's would be, so
    :func:`is_transient` reads them the same.

    Statements are plain SQL in the driver's paramstyle (``?`` for SQLite, ``%s`` for
    psycopg).
    """

    def __init__(self, session: Session | sa.Connection) -> None:
        conn = session.connection() if isinstance(session, Session) else session
        self._dialect = conn.dialect
        self.mark = "%s" if conn.dialect.name == "postgresql" else "?"
        self.quote = conn.dialect.identifier_preparer.quote
        driver = conn.connection.driver_connection
        assert driver is not None  # a live connection inside the session's transaction
        self._cursor = driver.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run ``sql`` once; return the cursor (``fetchone``, ``rowcount``)."""
        try:
            self._cursor.execute(sql, params)
        except self._dialect.loaded_dbapi.Error as exc:
            raise self._wrap(sql, params, exc) from exc
        return self._cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._cursor.executemany(sql, rows)
        except self._dialect.loaded_dbapi.Error as exc:
            raise self._wrap(sql, rows, exc) from exc

    def _wrap(self, sql: str, params: Any, exc: Exception) -> BaseException:
        return sa.exc.DBAPIError.instance(
            sql, params, exc, self._dialect.loaded_dbapi.Error, dialect=self._dialect
        )

    def close(self) -> None:
        self._cursor.close()


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE (``Session.execute`` types them as a bare Result)."""
    return cast(CursorResult[Any], result).rowcount


def begin_sqlite(conn: sa.Connection) -> None:
    """The ``begin`` hook of SQLite engines: deferred for read-only connections."""
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same statement later may succeed.

    Transient: the database is locked or busy, the connection dropped or timed out, the pool
    is exhausted, a Segue server cannot be reached or answers 502-504. Permanent: everything
    else (a constraint, a type, a missing row or table), which fails the same way on every
    retry.
    """
    if isinstance(exc, (sa.exc.TimeoutError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, ServerError):  # a segue server unreachable, restarting or overloaded
        return exc.status_code in (None, 502, 503, 504)
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc.orig, sqlite3.OperationalError):
            text = str(exc.orig).lower()
            return any(word in text for word in ("locked", "busy", "disk i/o", "unable to open"))
        state = getattr(exc.orig, "sqlstate", None)
        if isinstance(state, str) and state[:2] in _PERMANENT_SQLSTATE_CLASSES:
            return False
        if _refused_at_login(str(exc.orig)):
            return False
        return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError))
    return False


#: SQLSTATE classes no retry can fix: bad data (22), constraints (23), authorization (28),
#: a missing database (3D), syntax or access rules (42).
_PERMANENT_SQLSTATE_CLASSES = frozenset({"22", "23", "28", "3D", "42"})

#: A server that answers the login FATAL is reachable; only these refusals pass with time.
_PASSING_FATALS = (
    "starting up",
    "shutting down",
    "in recovery mode",
    "too many clients",
    "remaining connection slots",
)


def _refused_at_login(text: str) -> bool:
    # libpq reports a refused login (unknown role or database, a wrong password, no pg_hba
    # entry) as text with no SQLSTATE: a FATAL from a server that is up.
    return "FATAL:" in text and not any(words in text for words in _PASSING_FATALS)


def describe(exc: BaseException) -> str:
    """A one-line account of a database error: the driver's message, without SQL or links."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else None
    shown = orig if orig is not None else exc
    lines = str(shown).splitlines()
    return f"{type(shown).__name__}: {lines[0] if lines else ''}"
