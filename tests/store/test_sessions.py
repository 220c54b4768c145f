"""Tests for the sessions shared by the SQL stores: read vs write locks, chunking, errors."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from segue.store.engine import create_engine
from segue.store.entities import ArtifactEntry, Metric, RunInfo
from segue.store.filters import parse_filter
from segue.store.sessions import Database, is_transient
from segue.store.tracking import SqlTrackingStore

T0 = 1_700_000_000_000


@pytest.fixture
def sqlite_uri(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "segue.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def impatient(sqlite_uri: str) -> Iterator[SqlTrackingStore]:
    """A store whose engine gives up on a locked SQLite database after 0.2 s."""
    engine = create_engine(sqlite_uri, busy_timeout=0.2)
    yield SqlTrackingStore(engine)
    engine.dispose()


# -- read and write transactions on SQLite -------------------------------------------------


def test_reads_do_not_wait_for_a_writer_on_sqlite(
    sqlite_uri: str, impatient: SqlTrackingStore, run_info: Callable[..., RunInfo]
) -> None:
    run_id = impatient.create_run(run_info(impatient.create_experiment("exp"))).id
    impatient.log_batch(run_id, metrics=[Metric("acc", 0.5, 0, T0)], params={"C": "1"})
    impatient.record_artifacts(run_id, [ArtifactEntry("a.txt", "0" * 64, 1)])
    writer = create_engine(sqlite_uri)
    with writer.begin() as conn:  # BEGIN IMMEDIATE: holds the write lock until the end
        conn.execute(sa.text("UPDATE runs SET name = 'renamed'"))

        # Every read answers from its snapshot instead of queueing behind the writer.
        assert impatient.get_run(run_id).info.name == "run"
        where = parse_filter("metrics.acc > 0.1")
        assert [r.id for r in impatient.search_runs(None, where, [], 10)] == [run_id]
        assert [e.name for e in impatient.list_experiments()] == ["exp"]
        assert impatient.get_metric_history(run_id, "acc")[0].value == 0.5
        assert [a.path for a in impatient.list_artifacts(run_id)] == ["a.txt"]
        assert impatient.resolve_run_id(run_id[:8]) == run_id

        # A write still queues for the lock (and here gives up after 0.2 s).
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            impatient.log_batch(run_id, tags={"k": "v"})
    writer.dispose()
    assert impatient.get_run(run_id).info.name == "renamed"


def test_sqlite_read_sessions_begin_deferred_and_write_sessions_immediate(
    sqlite_uri: str,
) -> None:
    engine = create_engine(sqlite_uri)
    begins: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if statement.startswith("BEGIN"):
            begins.append(statement)

    db = Database(engine)
    with db.read() as s:
        s.execute(sa.text("SELECT 1"))
    with db.write() as s, s.begin():
        s.execute(sa.text("SELECT 1"))
    assert begins == ["BEGIN", "BEGIN IMMEDIATE"]
    engine.dispose()


# -- statements under the databases' parameter limits --------------------------------------


def test_big_batches_stay_under_the_parameter_limits(store: SqlTrackingStore, run_id: str) -> None:
    # Enough rows that one multi-row statement would need more than 65,535 bound values
    # (PostgreSQL's limit) and more than 32,766 (SQLite's).
    params = {f"p{i}": str(i) for i in range(17_000)}
    tags = {f"t{i}": "x" for i in range(22_000)}
    metrics = [Metric(f"m{i}", float(i), 0, T0) for i in range(14_000)]

    store.log_batch(run_id, params=params, tags=tags, metrics=metrics)

    data = store.get_run(run_id).data
    assert data.params == params
    assert data.tags == tags
    assert len(data.metrics) == 14_000 and data.metrics["m13999"].value == 13_999.0
    entries = [ArtifactEntry(f"f/{i}.txt", f"{i:064x}", i) for i in range(14_000)]
    store.record_artifacts(run_id, entries)
    assert len(store.list_artifacts(run_id)) == 14_000


def test_rows_per_statement_respects_each_dialect(sqlite_uri: str) -> None:
    sqlite_db = Database(create_engine(sqlite_uri))
    pg_db = Database(create_engine("postgresql://postgres@127.0.0.1:5432/never_connected"))
    sqlite_limit = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
    for db, limit in ((sqlite_db, sqlite_limit), (pg_db, 65_535)):
        for columns in (1, 3, 5):
            assert 0 < db.rows_per_statement(columns) * columns <= limit
    assert [len(c) for c in sqlite_db.chunks(list(range(10)), sqlite_limit)] == [1] * 10


# -- transient and permanent errors --------------------------------------------------------


def _dbapi(error_type: type[sa.exc.DBAPIError], orig: Exception) -> sa.exc.DBAPIError:
    return error_type("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_dbapi(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")), True),
        (_dbapi(sa.exc.OperationalError, sqlite3.OperationalError("disk I/O error")), True),
        (_dbapi(sa.exc.OperationalError, sqlite3.OperationalError("no such table: x")), False),
        (_dbapi(sa.exc.OperationalError, OSError("server closed the connection")), True),
        (_dbapi(sa.exc.InterfaceError, OSError("connection already closed")), True),
        (_dbapi(sa.exc.IntegrityError, sqlite3.IntegrityError("UNIQUE failed")), False),
        (_dbapi(sa.exc.DataError, ValueError("value too long")), False),
        (_dbapi(sa.exc.ProgrammingError, ValueError("column does not exist")), False),
        (sa.exc.TimeoutError("QueuePool limit reached"), True),
        (ConnectionRefusedError("refused"), True),
        (TimeoutError("timed out"), True),
        (ValueError("bad value"), False),
        (KeyError("x"), False),
    ],
)
def test_is_transient_tells_retryable_errors_from_permanent_ones(
    error: BaseException, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_a_refused_login_is_permanent_and_an_unreachable_server_transient(pg_uri: str) -> None:
    # The real PostgreSQL: a database or role that does not exist fails every retry alike.
    server = pg_uri.rsplit("/", 1)[0]
    for uri in (f"{server}/no_such_database", server.replace("postgres@", "no_such_role@") + "/x"):
        engine = sa.create_engine(uri)
        with pytest.raises(sa.exc.OperationalError) as refused:
            engine.connect()
        engine.dispose()
        assert not is_transient(refused.value), refused.value
    unreachable = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    with pytest.raises(sa.exc.OperationalError) as down:
        unreachable.connect()
    assert is_transient(down.value)
    starting = "FATAL:  the database system is starting up"
    assert is_transient(_dbapi(sa.exc.OperationalError, OSError(starting)))


def test_an_invalidated_connection_is_transient() -> None:
    error = _dbapi(sa.exc.DBAPIError, ValueError("whatever"))
    error.connection_invalidated = True
    assert is_transient(error)
