"""The client loops ``benchmarks/server.py`` times, one process per loop, for Segue and MLflow.

Each tool gets the same loop, side by side below, run by the Python of that tool's own
environment (MLflow 3.17.2 lives in a virtualenv of its own, so this file needs nothing but the
standard library until a loop imports its tool). Where the loop talks to comes from the
environment the caller sets: ``SEGUE_TRACKING_URI`` and ``SEGUE_TOKEN`` for a ``segue
server`` (remote mode), ``SEGUE_HOME`` alone for embedded Segue on SQLite (the floor),
``MLFLOW_TRACKING_URI`` for ``mlflow server``.

Every loop prints one JSON object on its last line of stdout: what it did, how long the timed
part took (``seconds``) and what the server holds afterwards (``stored``), read back through
the same client.

Example:
    python benchmarks/server_loops.py segue log --points 100000 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

TOOLS = ("segue", "mlflow")
LOOPS = ("log", "runs", "search", "upload", "seed")

#: The search every tool answers: a metric filter and a param filter, sorted by the metric.
SEARCH_EXPERIMENT = "search"
SEARCH_FILTER = "metrics.acc > 0.5 and params.model = 'lr'"
SEARCH_ORDER = ["metrics.acc DESC"]
SEARCH_MAX_RESULTS = 100


def search_data(runs: int) -> Iterator[tuple[dict[str, str], dict[str, float], dict[str, str]]]:
    """The seeded runs' (params, metrics, tags), the same for every tool (fixed seed)."""
    rng = random.Random(0)
    for _ in range(runs):
        yield (
            {"model": rng.choice(["rf", "lr", "gb"]), "depth": str(rng.randint(2, 12))},
            {"acc": rng.random(), "loss": rng.random()},
            {"team": rng.choice(["a", "b"])},
        )


def _until(count: int, seconds: float) -> Iterator[int]:
    """0, 1, 2, … until ``count`` items or ``seconds`` have passed, whichever comes first."""
    # A clock read is ~0.1 us, far below the cost of any call timed here.
    deadline = time.perf_counter() + seconds
    for i in range(count):
        if i and time.perf_counter() > deadline:
            return
        yield i


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# --- Segue ---------------------------------------------------------------------------------


def segue_log(points: int, seconds: float) -> dict[str, Any]:
    import segue
    from segue.tracking.client import get_client

    with segue.start_run(experiment="warmup") as warm:
        warm.log_metric("loss", 0.0, step=0)

    def work() -> tuple[str, int]:
        done = 0
        with segue.start_run(experiment="log") as run:
            for i in _until(points, seconds):
                segue.log_metric("loss", 1.0 / (i + 1), step=i)
                done += 1
        segue.flush()  # timed until the last point is stored on the server
        return run.id, done

    took, (run_id, done) = _timed(work)
    stored = len(get_client().metric_history(run_id, "loss"))
    return {"count": done, "seconds": took, "stored": stored}


def segue_runs(runs: int, seconds: float) -> dict[str, Any]:
    import segue
    from segue.tracking.client import get_client

    with segue.start_run(experiment="runs"):
        pass

    def work() -> int:
        done = 0
        for _ in _until(runs, seconds):
            with segue.start_run(experiment="runs"):
                pass
            done += 1
        segue.flush()  # timed until every run is stored on the server
        return done

    took, done = _timed(work)
    stored = len(get_client().find_runs("runs", max_results=50_000)) - 1
    return {"count": done, "seconds": took, "stored": stored}


def segue_search(reps: int) -> dict[str, Any]:
    import segue

    def once() -> int:
        frame = segue.search_runs(
            SEARCH_EXPERIMENT, SEARCH_FILTER, SEARCH_ORDER, max_results=SEARCH_MAX_RESULTS
        )
        return len(frame)

    return _search_times(once, reps)


def segue_upload(path: str) -> dict[str, Any]:
    import segue

    with segue.start_run(experiment="upload") as run:
        took, _ = _timed(lambda: run.log_artifact(path))
    from segue.tracking.client import get_client

    sizes = [entry.size for entry in get_client().list_artifacts(run.id)]
    return {"count": os.path.getsize(path), "seconds": took, "stored": sum(sizes)}


def segue_seed(runs: int) -> dict[str, Any]:
    """Write ``runs`` finished runs straight into the embedded store (``SEGUE_HOME``), through
    the SQL store's own calls, before a server opens that database."""
    import uuid

    import sqlalchemy as sa

    from segue.config import settings
    from segue.store.engine import open_engine
    from segue.store.entities import Metric, RunInfo
    from segue.store.tracking import SqlTrackingStore

    engine = open_engine(settings().store_uri)
    engine.dispose()  # the connections opened to migrate; new ones get the listener below
    sa.event.listen(engine, "connect", _no_sync)
    store = SqlTrackingStore(engine)

    def work() -> int:
        exp = store.get_or_create_experiment(SEARCH_EXPERIMENT)
        now = int(time.time() * 1000)
        for i, (params, metrics, tags) in enumerate(search_data(runs)):
            info = RunInfo(
                id=uuid.uuid4().hex,
                experiment_id=exp.id,
                experiment_name=exp.name,
                name=f"seed-{i}",
                status="RUNNING",
                start_time=now + i,
                end_time=None,
                heartbeat_at=now + i,
                user="bench",
                host="bench",
                python_version="3",
                parent_run_id=None,
                source_commit=None,
                source_dirty=None,
                entry_point=None,
                environment_digest=None,
            )
            store.create_run(info, tags)
            store.log_batch(
                info.id,
                metrics=[Metric(k, v, now + i, 0) for k, v in metrics.items()],
                params=params,
            )
            store.set_run_status(info.id, "FINISHED", now + i + 1)
        return runs

    took, done = _timed(work)
    how = "SqlTrackingStore, synchronous=OFF"
    return {"count": done, "seconds": took, "stored": done, "how": how}


# --- MLflow --------------------------------------------------------------------------------


def mlflow_log(points: int, seconds: float) -> dict[str, Any]:
    import mlflow

    mlflow.set_experiment("warmup")
    with mlflow.start_run():
        mlflow.log_metric("loss", 0.0, step=0)
    mlflow.set_experiment("log")

    def work() -> tuple[str, int]:
        done = 0
        with mlflow.start_run() as run:
            for i in _until(points, seconds):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
                done += 1
        return run.info.run_id, done

    took, (run_id, done) = _timed(work)
    stored = len(mlflow.MlflowClient().get_metric_history(run_id, "loss"))
    return {"count": done, "seconds": took, "stored": stored}


def mlflow_runs(runs: int, seconds: float) -> dict[str, Any]:
    import mlflow

    experiment = mlflow.set_experiment("runs")
    with mlflow.start_run():
        pass

    def work() -> int:
        done = 0
        for _ in _until(runs, seconds):
            with mlflow.start_run():
                pass
            done += 1
        return done

    took, done = _timed(work)
    found = mlflow.MlflowClient().search_runs([experiment.experiment_id], max_results=50_000)
    return {"count": done, "seconds": took, "stored": len(found) - 1}


def mlflow_search(reps: int) -> dict[str, Any]:
    import mlflow

    def once() -> int:
        frame = mlflow.search_runs(
            experiment_names=[SEARCH_EXPERIMENT],
            filter_string=SEARCH_FILTER,
            order_by=SEARCH_ORDER,
            max_results=SEARCH_MAX_RESULTS,
        )
        return len(frame)

    return _search_times(once, reps)


def mlflow_upload(path: str) -> dict[str, Any]:
    import mlflow

    mlflow.set_experiment("upload")
    with mlflow.start_run() as run:
        took, _ = _timed(lambda: mlflow.log_artifact(path))
    listed = mlflow.MlflowClient().list_artifacts(run.info.run_id)
    stored = sum(entry.file_size or 0 for entry in listed)
    return {"count": os.path.getsize(path), "seconds": took, "stored": stored}


def mlflow_seed(runs: int, db: str) -> dict[str, Any]:
    """Write ``runs`` finished runs into the SQLite database ``db`` through MLflow's own
    SqlAlchemyStore, in this process, before ``mlflow server`` opens it."""
    import sqlalchemy as sa
    from mlflow.entities import Metric, Param, RunStatus, RunTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    # Every engine of this process (the store makes its own).
    sa.event.listen(sa.engine.Engine, "connect", _no_sync)

    store = SqlAlchemyStore(f"sqlite:///{db}", os.path.join(os.path.dirname(db), "seed-art"))

    def work() -> int:
        exp = store.create_experiment(SEARCH_EXPERIMENT)
        now = int(time.time() * 1000)
        for i, (params, metrics, tags) in enumerate(search_data(runs)):
            run = store.create_run(
                exp, "bench", now + i, [RunTag(k, v) for k, v in tags.items()], f"seed-{i}"
            )
            store.log_batch(
                run.info.run_id,
                metrics=[Metric(k, v, now + i, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
                tags=[],
            )
            store.update_run_info(run.info.run_id, RunStatus.FINISHED, now + i + 1, None)
        return runs

    took, done = _timed(work)
    how = "SqlAlchemyStore, synchronous=OFF"
    return {"count": done, "seconds": took, "stored": done, "how": how}


# --- shared --------------------------------------------------------------------------------


def _no_sync(dbapi_connection: Any, _record: Any) -> None:
    # Seeding only: commits of this process skip fsync (the servers keep their own settings).
    dbapi_connection.execute("PRAGMA synchronous=OFF")


def _search_times(once: Callable[[], int], reps: int) -> dict[str, Any]:
    rows = once()  # warm-up: imports, the connection, the server's caches
    times = []
    for _ in range(reps):
        took, rows = _timed(once)
        times.append(took)
    return {
        "count": reps,
        "seconds": statistics.median(times),
        "stored": rows,
        "min": min(times),
        "max": max(times),
    }


def run(tool: str, loop: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one loop of one tool; return its result."""
    if loop == "log":
        return (segue_log if tool == "segue" else mlflow_log)(args.points, args.seconds)
    if loop == "runs":
        return (segue_runs if tool == "segue" else mlflow_runs)(args.runs, args.seconds)
    if loop == "search":
        return (segue_search if tool == "segue" else mlflow_search)(args.reps)
    if loop == "upload":
        return (segue_upload if tool == "segue" else mlflow_upload)(args.file)
    if tool == "segue":
        return segue_seed(args.runs)
    return mlflow_seed(args.runs, args.db)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="One client loop of benchmarks/server.py, printed as JSON.",
        epilog="Example: python benchmarks/server_loops.py mlflow log --points 1000 --seconds 5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tool", choices=TOOLS)
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("--points", type=int, default=100_000, help="log: points at most")
    parser.add_argument("--runs", type=int, default=1000, help="runs, seed: runs at most")
    parser.add_argument("--seconds", type=float, default=30.0, help="log, runs: time bound")
    parser.add_argument("--reps", type=int, default=20, help="search: timed calls")
    parser.add_argument("--file", help="upload: the file to log as an artifact")
    parser.add_argument("--db", help="seed (mlflow): the SQLite file to seed")
    args = parser.parse_args(argv)
    if args.loop == "upload" and not args.file:
        parser.error("upload needs --file")
    if args.loop == "seed" and args.tool == "mlflow" and not args.db:
        parser.error("seed with mlflow needs --db")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args.tool, args.loop, args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
