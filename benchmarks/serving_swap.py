"""How soon after an alias move every worker of ``segue serve --workers N`` answers with the new
version, on SQLite and on PostgreSQL, against the floor (loading and warming the version).

Registers two versions of a Pipeline(StandardScaler, LogisticRegression) on the
breast-cancer data (different ``C``), points ``bench@champion`` at version 1 and starts

  segue serve bench@champion --workers N --poll-s 86400 --no-log

(the registry is never polled during the run: a move is heard from the audit log on SQLite,
from NOTIFY on PostgreSQL). ``--clients`` threads then ask it without pause, each request on
a new connection (the kernel hands each to any worker), while the alias is moved back and
forth ``--moves`` times. For each move it prints when the first answer of the new version
came and when the last answer of the old one did (answers sent after the move), both in
seconds after the move committed: the second is when every worker serves the new version.
The target is < 1 s. The floor is the time to load and warm up one version in this
process (no server can answer with a version before it has it); ``mlflow models serve``
serves one model folder and cannot follow an alias at all (a move means a restart: see
``benchmarks/serving_startup.py`` for its time to ready).

PostgreSQL is used when reachable at ``--pg`` (default ``$SEGUE_TEST_PG`` or
``postgresql+psycopg://postgres@127.0.0.1:5432``): a database is created and dropped.

    python benchmarks/serving_swap.py --workers 2 --moves 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

MAX_FOLLOW_S = 1.0
BODY_ROWS = 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ask(port: int, body: bytes) -> str | None:
    """The version that answered one request on a new connection (None if it failed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v2/models/bench/infer", body, {"content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            return None
        return str(json.loads(data)["model_version"])
    except OSError:
        return None
    finally:
        conn.close()


class Askers:
    """Threads asking the server without pause; each answer as (sent, answered, version)."""

    def __init__(self, port: int, body: bytes, clients: int) -> None:
        self.answers: list[tuple[float, float, str | None]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(port, body), daemon=True)
            for _ in range(clients)
        ]

    def _run(self, port: int, body: bytes) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            version = _ask(port, body)
            self.answers.append((sent, time.monotonic(), version))

    def __enter__(self) -> Askers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _register(env: dict[str, str]) -> tuple[bytes, float]:
    """Two versions in the store of ``env``; a 1-row body; the floor (load + warm-up, s)."""
    os.environ.update(env)
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    import segue
    from segue.config import settings
    from segue.registry.service import get_registry
    from segue.store.engine import create_engine, upgrade

    engine = create_engine(settings().store_uri)
    upgrade(engine)
    engine.dispose()
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with segue.start_run(experiment="bench") as run:
        for k, c in enumerate((1.0, 0.1), start=1):
            model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=c))])
            fitted = model.fit(X, y)
            run.log_model(fitted, name=f"v{k}", input_example=X[:5], register_as="bench")
    get_registry().set_alias("bench", "champion", 1)
    started = time.perf_counter()
    loaded = segue.load_model("models:/bench/2")
    loaded.predict(X[:1])
    floor = time.perf_counter() - started
    body = {
        "inputs": [
            {"name": col, "shape": [BODY_ROWS], "datatype": "FP64", "data": [float(X[col][0])]}
            for col in X.columns
        ]
    }
    return json.dumps(body).encode(), floor


def _serve(env: dict[str, str], workers: int, root: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    segue_cli = str(Path(sys.executable).with_name("segue"))
    argv = [segue_cli, "serve", "bench@champion", "--port", str(port)]
    argv += ["--workers", str(workers), "--poll-s", "86400", "--no-log"]
    process = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("segue serve did not become ready")
        time.sleep(0.05)
    return process, port


def _run_store(
    name: str, env: dict[str, str], args: argparse.Namespace, root: Path
) -> tuple[list[float], float]:
    from segue.registry.service import get_registry

    body, floor = _register(env)
    registry = get_registry()
    process, port = _serve(env, args.workers, root)
    follows: list[float] = []
    try:
        for _ in range(20):  # every worker has answered once (warm connections, warm caches)
            _ask(port, body)
        with Askers(port, body, args.clients) as askers:
            current = 1
            for move in range(args.moves):
                time.sleep(args.pause_s)
                target = 2 if current == 1 else 1
                moved_at = time.monotonic()
                registry.set_alias("bench", "champion", target)
                committed = time.monotonic()
                time.sleep(args.pause_s)
                after = [a for a in askers.answers if a[0] >= committed]
                failed = sum(1 for a in after if a[2] is None)
                new = [a[1] - committed for a in after if a[2] == str(target)]
                old = [a[1] - committed for a in after if a[2] == str(current)]
                first_new = min(new) if new else float("nan")
                last_old = max(old) if old else 0.0
                follows.append(last_old)
                print(
                    f"{name:10s} move {move + 1}: {current} -> {target} (commit took "
                    f"{committed - moved_at:.3f} s): first new answer {first_new:.3f} s, "
                    f"last old answer {last_old:.3f} s after it; {len(after)} answers, "
                    f"{failed} failed",
                    flush=True,
                )
                current = target
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    print(f"{name:10s} floor (load and warm up one version here): {floor:.3f} s")
    return follows, floor


def _pg_database(server: str) -> tuple[str, object] | None:
    import sqlalchemy as sa

    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    name = f"segue_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL not reachable at {server} ({exc.orig}); left out")
        return None
    return f"{server}/{name}", (admin, name)


def _drop(handle: object) -> None:
    admin, name = handle  # type: ignore[misc]
    from segue.store import engine as engine_module

    for engine in engine_module._engines.values():
        engine.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4, help="threads asking at once")
    parser.add_argument("--pause-s", type=float, default=2.0, help="between moves")
    parser.add_argument(
        "--pg",
        default=os.environ.get("SEGUE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}  (2-core machine is shared)")
    results: dict[str, tuple[list[float], float]] = {}
    with tempfile.TemporaryDirectory(prefix="segue-swap-") as tmp:
        root = Path(tmp)
        env = {
            "SEGUE_HOME": str(root / "home"),
            "SEGUE_STORE_URI": f"sqlite:///{root / 'segue.db'}",
            "SEGUE_ARTIFACT_URI": str(root / "artifacts"),
        }
        results["sqlite"] = _run_store("sqlite", env, args, root)
        pg = _pg_database(args.pg)
        if pg is not None:
            uri, handle = pg
            pg_env = {**env, "SEGUE_STORE_URI": uri, "SEGUE_ARTIFACT_URI": str(root / "pg-art")}
            try:
                results["postgresql"] = _run_store("postgresql", pg_env, args, root)
            finally:
                _drop(handle)
    print(f"load average after: {os.getloadavg()}")
    for name, (follows, floor) in results.items():
        worst = max(follows)
        verdict = "met" if worst < MAX_FOLLOW_S else "MISSED"
        print(
            f"{name}: every worker on the new version {statistics.median(follows):.3f} s after "
            f"a move (median of {len(follows)}), worst {worst:.3f} s, floor {floor:.3f} s "
            f"(segue - floor: {statistics.median(follows) - floor:.3f} s); "
            f"target < {MAX_FOLLOW_S:g} s: {verdict}; mlflow models serve: never (a restart)"
        )


if __name__ == "__main__":
    main()
