"""MLflow stores built by the real MLflow client, for the import tests.

MLflow needs ``pandas<3`` and Segue's environment has pandas 3, so MLflow runs in its own
environment: the interpreter :func:`tests.conftest.mlflow_python` finds. Without it the tests
are skipped locally and fail under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import mlflow_python

BUILDER = Path(__file__).with_name("mlflow_store.py")


def build(uri: str, *args: str, cwd: Path) -> dict[str, Any]:
    """Run the store builder against ``uri``; its JSON summary of the ids it made."""
    done = subprocess.run(
        [str(mlflow_python()), str(BUILDER), uri, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GIT_PYTHON_REFRESH": "quiet"},
    )
    if done.returncode != 0:
        raise AssertionError(f"building the MLflow store failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="session")
def mlflow_sqlite(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """An MLflow SQLite store (``mlflow.db`` + ``art``) and the ids it holds."""
    root = tmp_path_factory.mktemp("mlflow-sqlite")
    ids = build(f"sqlite:///{root / 'mlflow.db'}", str(root / "art"), cwd=root)
    return root, ids


@pytest.fixture(scope="session")
def mlflow_files(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """An MLflow file store (``mlruns``) and the ids it holds."""
    root = tmp_path_factory.mktemp("mlflow-files")
    ids = build((root / "mlruns").as_uri(), cwd=root)
    return root, ids


def copy_sqlite(source: tuple[Path, dict[str, Any]], dest: Path) -> str:
    """A copy of the SQLite store's database (its artifacts stay where they are)."""
    shutil.copyfile(source[0] / "mlflow.db", dest / "mlflow.db")
    return f"sqlite:///{dest / 'mlflow.db'}"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[tuple[str, dict[str, Any]]]:
    """A running ``mlflow server`` (SQLite backend, artifacts served through the server)
    holding the store the builder makes: its URL and the ids."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    python = mlflow_python()
    server = subprocess.Popen(
        [
            str(python),
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "wb"),  # noqa: SIM115
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((root / "server.log").read_text()[-4000:])
            time.sleep(0.3)
        yield url, build(url, cwd=root)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="session")
def mlflow_postgres(tmp_path_factory) -> Iterator[tuple[str, dict[str, Any]]]:
    """An MLflow store in a PostgreSQL database of its own (MLflow's client there needs
    ``psycopg`` in MLflow's environment: SQLAlchemy 2.1's default PostgreSQL driver): its
    URI, as MLflow takes it, and the ids."""
    import sqlalchemy as sa

    python = mlflow_python()
    check = subprocess.run([str(python), "-c", "import psycopg"], capture_output=True)
    if check.returncode != 0:
        message = f"MLflow's environment ({python}) lacks psycopg: pip install 'psycopg[binary]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = os.environ.get("SEGUE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    name = f"mlflow_src_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {server}: {exc.orig}")
    root = tmp_path_factory.mktemp("mlflow-postgres")
    uri = sa.engine.make_url(f"{server}/{name}").set(drivername="postgresql")
    plain = uri.render_as_string(hide_password=False)
    try:
        yield plain, build(plain, str(root / "art"), cwd=root)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
