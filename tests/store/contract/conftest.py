"""The one store contract suite: every test here runs on SQLite, PostgreSQL and REST.

``tracking_store``, ``registry_store`` and ``alert_store`` are the same kind of store over the
same database within one test: the SQL stores over a fresh SQLite or PostgreSQL database, or
the REST stores over a live ``segue server`` (uvicorn in a thread, real HTTP, ``--no-auth``:
access control is tested in ``tests/server``) that is itself backed by a fresh SQLite database.
``run_info``, ``exp`` and ``run_id`` (made through ``tracking_store``) come from
``tests/store/conftest.py``, which the SQL-only store tests share.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from segue.store.engine import create_engine, open_engine
from segue.store.schema import Base

KINDS = ("sqlite", "postgresql", "rest")


@dataclass
class Backend:
    """The store kind under test, the database behind it, and the server for ``rest``."""

    kind: str
    uri: str
    session: Any = None  # segue.remote.http.RemoteSession for "rest"


@pytest.fixture(params=KINDS)
def backend(request, tmp_path: Path) -> Iterator[Backend]:
    """One empty, migrated database per test; for ``rest``, a live server over it."""
    if request.param == "postgresql":
        uri = request.getfixturevalue("pg_uri")
        engine = create_engine(uri)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        engine.dispose()
        yield Backend("postgresql", uri)
        return
    path = tmp_path / "contract.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    uri = f"sqlite:///{path}"
    if request.param == "sqlite":
        yield Backend("sqlite", uri)
        return
    from segue.remote.http import RemoteSession

    server = request.getfixturevalue("start_server")(uri, no_auth=True)
    session = RemoteSession(server.url)
    try:
        yield Backend("rest", uri, session)
    finally:
        session.close()


@pytest.fixture
def tracking_store(backend: Backend) -> Any:
    """A :class:`~segue.store.tracking.TrackingStore` of each kind."""
    if backend.kind == "rest":
        from segue.remote.tracking import RestTrackingStore

        return RestTrackingStore(backend.session)
    from segue.store.tracking import SqlTrackingStore

    return SqlTrackingStore(open_engine(backend.uri))


@pytest.fixture
def registry_store(backend: Backend) -> Any:
    """A :class:`~segue.store.registry.RegistryStore` of each kind, over the same database
    as ``tracking_store``."""
    if backend.kind == "rest":
        from segue.remote.registry import RestRegistryStore

        return RestRegistryStore(backend.session)
    from segue.store.registry import SqlRegistryStore

    return SqlRegistryStore(open_engine(backend.uri))


@pytest.fixture
def alert_store(backend: Backend) -> Any:
    """An :class:`~segue.store.alerts.AlertStore` of each kind, over the same database."""
    if backend.kind == "rest":
        from segue.remote.alerts import RestAlertStore

        return RestAlertStore(backend.session)
    from segue.store.alerts import SqlAlertStore

    return SqlAlertStore(open_engine(backend.uri))
