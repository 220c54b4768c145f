"""Shared fixtures: every store-touching test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

import segue
from segue.artifacts import ContentStore, FsspecBackend
from segue.config import Settings
from segue.store.engine import create_engine, upgrade
from segue.store.schema import Base
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient

PG_SERVER = os.environ.get("SEGUE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    admin = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    name = f"segue_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {PG_SERVER}: {exc.orig}")
    uri = f"{PG_SERVER}/{name}"
    _migrate(uri)
    yield uri
    from segue.store import engine as engine_module

    cached = engine_module._engines.pop(uri, None)
    if cached is not None:
        cached.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _truncate(uri: str) -> None:
    engine = create_engine(uri)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()


def _migrate(uri: str) -> None:
    engine = create_engine(uri)
    upgrade(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An empty SQLite database migrated once; tests get copies (migrating each costs ~0.2 s)."""
    path = tmp_path_factory.mktemp("template") / "segue.db"
    _migrate(f"sqlite:///{path}")
    return path


@contextmanager
def _sqlite_store(root: Path, *, template: Path) -> Iterator[dict[str, str]]:
    shutil.copyfile(template, root / "segue.db")
    env = {
        "SEGUE_HOME": str(root / "home"),
        "SEGUE_STORE_URI": f"sqlite:///{root / 'segue.db'}",
        "SEGUE_ARTIFACT_URI": str(root / "artifacts"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.fixture(scope="session")
def sqlite_store(sqlite_template: Path) -> Callable[[Path], AbstractContextManager[dict[str, str]]]:
    """``with sqlite_store(root) as env:`` a migrated SQLite store of its own under ``root``
    (for session-scoped fixtures that seed models once): its ``SEGUE_*`` variables, set in the
    environment inside the block."""
    return functools.partial(_sqlite_store, template=sqlite_template)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request, tmp_path: Path) -> str:
    """The URI of an empty, migrated metadata database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "segue.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    uri = request.getfixturevalue("pg_uri")
    _truncate(uri)
    return uri


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the module, as a cluster of two CPUs (``usefixtures("ray_cluster")``)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture
def ops(monkeypatch):
    """``tests/monitoring/opsdata.py``: the prediction and label logs the monitoring tests share."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "monitoring"))
    import opsdata

    return opsdata


@pytest.fixture
def segue_env(store_uri: str, tmp_path: Path, monkeypatch) -> Settings:
    """Point the ``SEGUE_*`` variables at a fresh store, for the fluent API and the CLI."""
    monkeypatch.setenv("SEGUE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGUE_STORE_URI", store_uri)
    monkeypatch.setenv("SEGUE_ARTIFACT_URI", str(tmp_path / "artifacts"))
    monkeypatch.chdir(tmp_path)
    from segue.config import settings

    return settings()


@pytest.fixture
def store(store_uri: str) -> SqlTrackingStore:
    from segue.store.engine import open_engine

    return SqlTrackingStore(open_engine(store_uri))


@pytest.fixture
def content_store(tmp_path: Path) -> ContentStore:
    return ContentStore(FsspecBackend(str(tmp_path / "artifacts")))


@pytest.fixture
def client(
    store: SqlTrackingStore, content_store: ContentStore, tmp_path: Path
) -> Iterator[TrackingClient]:
    config = Settings(
        home=tmp_path,
        store_uri="unused",
        artifact_uri=str(tmp_path / "artifacts"),
        flush_interval=0.05,
    )
    client = TrackingClient(store, content_store, config)
    yield client
    client.writer.close()


# -- a real `segue serve` process ----------------------------------------------------------

#: Where the tests' own ``segue`` is imported from, for the server processes they start.
SEGUE_PATH = str(Path(segue.__file__).resolve().parents[1])

Serve = Callable[..., AbstractContextManager[tuple[str, "subprocess.Popen[str]"]]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (also a fixture)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serving(
    env: dict[str, str], cwd: Path, *args: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    environ = {**os.environ, **env}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SEGUE_PATH, environ.get("PYTHONPATH")]))
    command = [sys.executable, "-c", "from segue.cli import main; main()", "serve", *args]
    command += ["--port", str(port)]
    process = subprocess.Popen(
        command, env=environ, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a latency check
        while True:
            if process.poll() is not None:
                pytest.fail(f"segue serve exited early: {process.communicate()[1]}")
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("segue serve did not become ready")
            time.sleep(0.05)
        yield base, process
    finally:
        if process.poll() is None:  # the test did not stop it: it failed on the way
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)  # also closes the pipes of a process already done
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture(name="free_port")
def _free_port_fixture() -> Callable[[], int]:
    """``free_port()``: a TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_port


@pytest.fixture
def segue_serve() -> Serve:
    """``with segue_serve(env, cwd, "models:/x/1", "--workers", "1") as (base, process):`` a
    ``segue serve`` process on a free port (``env`` over ``os.environ``), ready to answer;
    stopped at the end if the test left it running."""
    return _serving


# -- MLflow's own environment --------------------------------------------------------------


def environment_python(variable: str, folder: str, what: str) -> Path:
    """The interpreter of a separate environment a test drives: ``$variable``, by default
    ``folder/bin/python`` in the repository (``.ci/run`` builds it). Without it the test is
    skipped locally and fails under CI (``CI`` set), so that CI cannot pass by running none
    of the tests that need it."""
    path = Path(os.environ.get(variable) or Path(SEGUE_PATH, folder, "bin", "python"))
    if not path.is_file():
        message = f"no {what} environment at {path} (set {variable})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def mlflow_python() -> Path:
    """The interpreter of an environment with MLflow installed (also a fixture).

    MLflow needs ``pandas<3`` and Segue's environment has pandas 3, so MLflow runs in its own
    environment: ``$SEGUE_MLFLOW_PYTHON``, by default ``.venv-mlflow/bin/python`` (see
    :func:`environment_python`).
    """
    return environment_python("SEGUE_MLFLOW_PYTHON", ".venv-mlflow", "MLflow")


@pytest.fixture(name="mlflow_python", scope="session")
def _mlflow_python_fixture() -> Path:
    """The interpreter of an environment with MLflow installed: see :func:`mlflow_python`."""
    return mlflow_python()


class LiveServer:
    """A ``segue server`` app served by uvicorn in a thread of this process, over real HTTP.

    ``url`` is its address, ``state`` its :class:`~segue.server.state.ServerState`.
    """

    def __init__(self, state, port: int) -> None:
        import threading

        import uvicorn

        from segue.server.app import create_app

        self.state = state
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(state), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="segue-server", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("segue server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture(scope="session")
def live_server() -> Callable[..., LiveServer]:
    """``live_server(state)``: a :class:`LiveServer` over ``state`` on a free port, for
    fixtures wider than one test (the fixture that starts it stops it)."""
    return lambda state: LiveServer(state, free_port())


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``start_server(store_uri, artifact_uri=None, no_auth=False, local_only=False,
    clock=time.time)``: a
    server over that store (artifacts under ``tmp_path`` by default), stopped at the end."""
    from segue.config import settings
    from segue.server.state import ServerState
    from segue.store.engine import open_engine

    started: list[LiveServer] = []

    def start(
        store_uri: str,
        artifact_uri: str | None = None,
        *,
        no_auth: bool = False,
        local_only: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> LiveServer:
        env = {
            "SEGUE_HOME": str(tmp_path / "server-home"),
            "SEGUE_STORE_URI": store_uri,
            "SEGUE_ARTIFACT_URI": artifact_uri or str(tmp_path / "server-artifacts"),
        }
        engine = open_engine(store_uri)
        state = ServerState(
            settings(env), engine, no_auth=no_auth, local_only=local_only, clock=clock
        )
        server = LiveServer(state, free_port())
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
