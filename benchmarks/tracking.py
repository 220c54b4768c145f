"""Tracking speed: Segue vs MLflow vs the bare floor, measured in one run.

Measures
  1. logging N metric points one call at a time (the way training loops log), until they are
     durable in the store;
  2. a filtered, sorted search over R runs;
  3. with ``--contention``: readers' latency (``get_run``, ``search_runs``) on the embedded
     SQLite store while 4 writer processes each log 20,000 points (no MLflow needed). Run it
     with ``PYTHONPATH`` pointing at another checkout's ``segue`` to compare two versions.

Both tools use a SQLite file in a fresh temporary folder. The floor is a plain executemany of
the same points into one SQLite table (for logging) and one indexed SQL query (for search).

Run in an environment with the bench extra:
    pip install -e '.[bench]' && python benchmarks/tracking.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def segue_logging(root: Path, points: int) -> float:
    os.environ["SEGUE_HOME"] = str(root / "segue")
    os.environ.pop("SEGUE_STORE_URI", None)
    os.environ.pop("SEGUE_ARTIFACT_URI", None)
    import segue

    with segue.start_run(experiment="warmup"):
        pass

    def work():
        with segue.start_run(experiment="bench") as run:
            for i in range(points):
                run.log_metric("loss", 1.0 / (i + 1), step=i)
        return run.id

    seconds, run_id = _timed(work)
    from segue.tracking.client import get_client

    stored = len(get_client().metric_history(run_id, "loss"))
    assert stored == points, f"segue stored {stored} of {points} points"
    return seconds


def mlflow_logging(root: Path, points: int) -> float:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        pass

    def work():
        with mlflow.start_run() as run:
            for i in range(points):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        return run.info.run_id

    seconds, run_id = _timed(work)
    stored = len(mlflow.MlflowClient().get_metric_history(run_id, "loss"))
    assert stored == points, f"mlflow stored {stored} of {points} points"
    return seconds


def floor_logging(root: Path, points: int) -> float:
    db = sqlite3.connect(root / "floor.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE metrics (run_id TEXT, key TEXT, value REAL, step INT, ts INT)")
    rows = [("r", "loss", 1.0 / (i + 1), i, i) for i in range(points)]

    def work():
        with db:
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", rows)

    seconds, _ = _timed(work)
    db.close()
    return seconds


def _search_data(runs: int):
    rng = random.Random(0)
    for i in range(runs):
        yield (
            {"model": rng.choice(["rf", "lr", "gb"]), "depth": str(rng.randint(2, 12))},
            {"acc": rng.random(), "loss": rng.random()},
            {"team": rng.choice(["a", "b"])},
            i,
        )


def segue_search(runs: int) -> tuple[float, int]:
    import segue
    from segue.store.entities import Metric
    from segue.tracking.client import get_client

    client = get_client()
    for params, metrics, tags, _ in _search_data(runs):
        info = client.create_run("search", params=params, tags=tags)
        client.store.log_batch(info.id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        client.writer.unwatch(info.id)
        client.store.set_run_status(info.id, "FINISHED", 0)
    query = "metrics.acc > 0.5 and params.model = 'rf' and tags.team = 'a'"
    seconds, frame = _timed(
        lambda: segue.search_runs("search", query, order_by=["metrics.acc DESC"], max_results=1000)
    )
    return seconds, len(frame)


def mlflow_search(root: Path, runs: int) -> tuple[float, int]:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    client = mlflow.MlflowClient()
    exp = client.create_experiment("search")
    for params, metrics, tags, _ in _search_data(runs):
        run = client.create_run(exp)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id)
    query = "metrics.acc > 0.5 and params.model = 'rf' and tags.team = 'a'"
    seconds, frame = _timed(
        lambda: mlflow.search_runs([exp], query, order_by=["metrics.acc DESC"], max_results=1000)
    )
    return seconds, len(frame)


def _contention_writer(home: str, points: int, started) -> None:
    os.environ["SEGUE_HOME"] = home
    import segue

    with segue.start_run(experiment="contention") as run:
        started.release()
        for i in range(points):
            run.log_metric("loss", 1.0 / (i + 1), step=i)


def _contention_reader(home: str, run_id: str, go, stop, results, ready) -> None:
    os.environ["SEGUE_HOME"] = home
    from segue.tracking.client import get_client

    client = get_client()
    client.get_run(run_id)
    ready.release()
    go.wait()
    get_ms, search_ms = [], []
    query = "metrics.loss < 0.5 and params.role = 'target'"
    while not stop.is_set():
        start = time.perf_counter()
        client.get_run(run_id)
        get_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        client.find_runs("contention", query, max_results=100)
        search_ms.append((time.perf_counter() - start) * 1000)
    results.put((get_ms, search_ms))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def contention(root: Path, writers: int = 4, points: int = 20_000, readers: int = 2) -> None:
    """Readers' latency on the embedded SQLite store while ``writers`` processes log metrics."""
    home = str(root / "contention")
    os.environ["SEGUE_HOME"] = home
    import segue
    from segue.tracking.client import get_client

    with segue.start_run(experiment="contention", params={"role": "target"}) as target:
        target.log_metric("loss", 0.25)
    get_client().writer.close()
    ctx = mp.get_context("spawn")
    stop, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    started, ready = ctx.Semaphore(0), ctx.Semaphore(0)
    reading = [
        ctx.Process(target=_contention_reader, args=(home, target.id, go, stop, results, ready))
        for _ in range(readers)
    ]
    writing = [
        ctx.Process(target=_contention_writer, args=(home, points, started)) for _ in range(writers)
    ]
    for process in reading:
        process.start()
    for _ in reading:
        ready.acquire()  # readers have imported Segue and opened the store
    begun = time.perf_counter()
    for process in writing:
        process.start()
    for _ in writing:
        started.acquire()  # every writer has its run open before readers start measuring
    go.set()
    for process in writing:
        process.join()
    seconds = time.perf_counter() - begun
    stop.set()
    get_ms: list[float] = []
    search_ms: list[float] = []
    for _ in reading:
        got, searched = results.get()
        get_ms += got
        search_ms += searched
    for process in reading:
        process.join()
    runs = segue.search_runs("contention", "params.role IS NULL")
    stored = sum(len(get_client().metric_history(r, "loss")) for r in runs["run_id"])
    print(
        f"{writers} writers x {points} points (stored {stored:,} of {writers * points:,} in "
        f"{seconds:.1f} s), {readers} reader processes:"
    )
    for label, values in (("get_run", get_ms), ("search_runs", search_ms)):
        print(
            f"  {label:12s} n={len(values):6d}  p50 {statistics.median(values):7.1f} ms  "
            f"p99 {_percentile(values, 0.99):7.1f} ms  max {max(values):7.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--contention",
        action="store_true",
        help="only measure readers' latency against 4 writers (SQLite; no MLflow needed)",
    )
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument(
        "--mlflow-points", type=int, default=500, help="MLflow logs ~40-300 points/s one at a time"
    )
    args = parser.parse_args()
    if args.contention:
        with tempfile.TemporaryDirectory() as tmp:
            contention(Path(tmp))
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        sys.exit("mlflow is not installed: pip install -e '.[bench]' in a separate environment")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        floor = floor_logging(root, args.points)
        seg = segue_logging(root, args.points)
        mlf = mlflow_logging(root, args.mlflow_points)
        rates = {
            "floor (executemany)": args.points / floor,
            "segue": args.points / seg,
            f"mlflow ({args.mlflow_points} points)": args.mlflow_points / mlf,
        }
        print(f"log {args.points} metric points one call at a time (until durable):")
        for label, rate in rates.items():
            print(f"  {label:24s} {rate:12,.0f} points/s")
        segue_rate, mlflow_rate = rates["segue"], args.mlflow_points / mlf
        print(
            f"  segue is {segue_rate / mlflow_rate:.1f}x mlflow's rate, "
            f"{rates['floor (executemany)'] / segue_rate:.1f}x slower than the floor"
        )
        seg_s, seg_n = segue_search(args.runs)
        mlf_s, mlf_n = mlflow_search(root, args.runs)
        print(f"search {args.runs} runs (filter on a metric, a param and a tag, sorted):")
        print(f"  segue   {seg_s:8.3f} s  ({seg_n} rows)")
        print(f"  mlflow  {mlf_s:8.3f} s  ({mlf_n} rows)")
        print(f"  segue is {mlf_s / seg_s:.1f}x faster than mlflow")


if __name__ == "__main__":
    main()
