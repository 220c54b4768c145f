"""Tests for engines and migrations: explicit upgrades, SQLite settings, concurrent first use."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from segue.errors import InvalidArgument, SegueError
from segue.store import engine as engine_module
from segue.store.engine import (
    create_engine,
    current_revision,
    ensure_schema,
    head_revision,
    open_engine,
    upgrade,
)
from segue.store.schema import Base
from segue.store.tracking import SqlTrackingStore


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_uri(request, tmp_path: Path) -> Iterator[str]:
    """The URI of a database with no tables at all (not even alembic_version)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    yield request.getfixturevalue("empty_pg_uri")


@pytest.fixture
def empty_pg_uri(pg_uri: str) -> Iterator[str]:
    """A PostgreSQL database of its own: the shared session database is already migrated."""
    admin = sa.create_engine(pg_uri, isolation_level="AUTOCOMMIT")
    name = f"segue_empty_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield sa.engine.make_url(pg_uri).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _tables(uri: str) -> set[str]:
    engine = create_engine(uri)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _alembic_versions(uri: str) -> list[str]:
    engine = create_engine(uri)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


# -- migrations ----------------------------------------------------------------------------


def test_head_revision_is_a_revision() -> None:
    assert isinstance(head_revision(), str)
    assert head_revision()


def test_upgrade_empty_database_reports_before_and_after(empty_uri: str) -> None:
    engine = create_engine(empty_uri)
    head = head_revision()

    assert current_revision(engine) is None
    assert upgrade(engine) == (None, head)
    assert current_revision(engine) == head
    assert upgrade(engine) == (head, head)

    assert set(Base.metadata.tables) <= _tables(empty_uri)
    assert _alembic_versions(empty_uri) == [head]
    engine.dispose()


def test_ensure_schema_migrates_an_empty_sqlite_database(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = create_engine(uri)

    ensure_schema(engine)

    assert current_revision(engine) == head_revision()
    assert set(Base.metadata.tables) <= _tables(uri)
    store = SqlTrackingStore(engine)
    assert store.create_experiment("after-ensure").name == "after-ensure"
    ensure_schema(engine)  # already current: a no-op, data kept
    assert [e.name for e in store.list_experiments()] == ["after-ensure"]
    engine.dispose()


def test_ensure_schema_migrates_an_older_sqlite_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0002")

    ensure_schema(engine)

    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_ensure_schema_refuses_an_older_shared_database(empty_pg_uri: str) -> None:
    """A newer client must not migrate a PostgreSQL schema under servers that are older."""
    engine = create_engine(empty_pg_uri)
    upgrade(engine, "0002")

    with pytest.raises(SegueError) as caught:
        ensure_schema(engine)

    message = str(caught.value)
    assert "run `segue db upgrade`" in message
    assert "0002" in message and head_revision() in message  # both schema versions
    assert current_revision(engine) == "0002"  # untouched
    engine.dispose()


def test_ensure_schema_refuses_an_empty_shared_database(empty_pg_uri: str) -> None:
    engine = create_engine(empty_pg_uri)

    with pytest.raises(SegueError, match=r"empty .* needs revision .*run `segue db upgrade`"):
        ensure_schema(engine)

    assert current_revision(engine) is None
    engine.dispose()


def test_store_constructor_does_not_migrate(empty_uri: str) -> None:
    engine = create_engine(empty_uri)

    SqlTrackingStore(engine)

    assert current_revision(engine) is None
    assert "experiments" not in _tables(empty_uri)
    engine.dispose()


def test_open_engine_migrates_once_and_caches_the_engine(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'segue.db'}"

    engine = open_engine(uri)

    assert open_engine(uri) is engine
    assert current_revision(engine) == head_revision()
    assert (tmp_path / "nested" / "dir" / "segue.db").is_file()


def test_concurrent_first_upgrade(empty_uri: str, in_threads) -> None:
    """Several processes opening a fresh database at once: one migrates, the others wait."""
    head = head_revision()
    engines = [create_engine(empty_uri) for _ in range(4)]
    calls = iter(engines)
    lock = threading.Lock()

    def first_use() -> tuple[str | None, str | None]:
        with lock:
            engine = next(calls)  # an engine (and connection) of its own, like a process
        return upgrade(engine)

    results = in_threads(len(engines), first_use)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert results.count((None, head)) == 1  # exactly one of them migrated
    assert results.count((head, head)) == len(engines) - 1
    assert _alembic_versions(empty_uri) == [head]
    for engine in engines:
        engine.dispose()


# -- SQLite settings -----------------------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'segue.db'}")
    upgrade(engine)

    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000

    # Foreign keys are enforced, not just declared.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tags (run_id, key, value) VALUES ('no-such-run', 'k', 'v')")
        )
    assert (tmp_path / "segue.db-wal").exists()
    engine.dispose()


def test_sqlite_enters_wal_while_another_process_holds_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh file opened while another connection holds its write lock (a process
    migrating it): SQLite refuses the WAL switch at once, without its busy handler; the
    connection waits for the lock instead of failing with "database is locked"."""
    path = tmp_path / "segue.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock, the file still in rollback mode
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # the first retry: the other process commits
        pauses.append(seconds)
        if len(pauses) == 1:
            other.execute("COMMIT")

    monkeypatch.setattr(engine_module, "_pause", pause, raising=False)
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert len(pauses) == 1
    engine.dispose()
    other.close()


def test_sqlite_wal_switch_gives_up_at_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "segue.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", busy_timeout=0.05)
    with pytest.raises(sa.exc.OperationalError, match="locked"):
        engine.connect()
    engine.dispose()
    other.close()


def test_sqlite_like_is_case_sensitive_like_postgresql(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'segue.db'}")

    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.literal("Vision").like("vision%"))) == 0
        assert conn.scalar(sa.select(sa.literal("Vision").ilike("vision%"))) == 1
    engine.dispose()


def test_create_engine_makes_the_sqlite_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "segue.db"

    create_engine(f"sqlite:///{path}").dispose()

    assert path.parent.is_dir()


def test_create_engine_uses_psycopg_for_plain_postgresql_urls() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1:5432/never_connected")

    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


@pytest.mark.parametrize(
    "uri",
    ["garbage", "", "::::", "nosuchdb://x/y", "postgresql+nodriver://h/db", "http://example.com/x"],
)
def test_create_engine_rejects_garbage(uri: str) -> None:
    with pytest.raises(InvalidArgument, match="SEGUE_STORE_URI"):
        create_engine(uri)
