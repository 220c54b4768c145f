"""Tracking speed: Segue vs MLflow vs the bare floor, measured in one run.

Measures
  1. logging N metric points one call at a time (the way training loops log), until they are
     durable in the store, at 5,000, 50,000 and 500,000 points;
  2. run creation: start a run with two params, log two metrics, end it, N times;
  3. a filtered, sorted search over 10,000 and 100,000 runs, on SQLite and PostgreSQL;
  4. with ``--contention``: readers' latency (``get_run``, ``search_runs``) on the embedded
     SQLite store while 4 writer processes each log 20,000 points (no MLflow needed). Run it
     with ``PYTHONPATH`` pointing at another checkout's ``segue`` to compare two versions.

Every tool uses a SQLite file in a fresh temporary folder (and Segue a fresh PostgreSQL
database too). The floor is plain sqlite3: an executemany of the same points into one table,
two transactions a run, and one query on an indexed flat table for search.

MLflow runs in its own interpreter (``--mlflow-python``, by default ``.venv-mlflow/bin/python``
next to this checkout: ``python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install
mlflow==3.17.2``), as a subprocess of this script. It logs a few hundred points and starts a
few dozen runs a second, so it measures fewer points and runs (``--mlflow-points``,
``--mlflow-runs``, ``--mlflow-search``) and its rates are compared with Segue's at every size.

Run:
    python benchmarks/tracking.py                      # everything (a few minutes)
    python benchmarks/tracking.py --only search --stores sqlite --search 10000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

QUERY = "metrics.acc > 0.5 and params.model = 'rf' and tags.team = 'a'"
ORDER = ["metrics.acc DESC"]
PG_SERVER = os.environ.get("SEGUE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _use_home(home: Path, store_uri: str | None = None) -> None:
    os.environ["SEGUE_HOME"] = str(home)
    os.environ.pop("SEGUE_ARTIFACT_URI", None)
    if store_uri is None:
        os.environ.pop("SEGUE_STORE_URI", None)
    else:
        os.environ["SEGUE_STORE_URI"] = store_uri


# -- 1. logging metric points ---------------------------------------------------------------


def segue_logging(root: Path, points: int) -> float:
    _use_home(root / "segue")
    import segue
    from segue.tracking.client import get_client

    with segue.start_run(experiment="warmup"):
        pass

    def work():
        with segue.start_run(experiment="bench") as run:
            for i in range(points):
                run.log_metric("loss", 1.0 / (i + 1), step=i)
        return run.id

    seconds, run_id = _timed(work)
    stored = len(get_client().metric_history(run_id, "loss"))
    assert stored == points, f"segue stored {stored} of {points} points"
    return seconds


def floor_logging(root: Path, points: int) -> float:
    db = sqlite3.connect(root / f"floor-{points}.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE metrics (run_id TEXT, key TEXT, value REAL, step INT, ts INT)")
    rows = [("r", "loss", 1.0 / (i + 1), i, i) for i in range(points)]

    def work():
        with db:
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", rows)

    seconds, _ = _timed(work)
    db.close()
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


# -- 2. run creation ------------------------------------------------------------------------


def segue_runs(root: Path, runs: int) -> float:
    _use_home(root / "segue-runs")
    import segue

    with segue.start_run(experiment="sweep"):
        pass

    def work():
        for i in range(runs):
            with segue.start_run(experiment="sweep", params={"lr": 0.1, "depth": i}) as run:
                run.log_metric("acc", 0.5)
                run.log_metric("loss", 0.25)

    seconds, _ = _timed(work)
    found = segue.search_runs("sweep", "params.depth >= 0", max_results=50_000)
    assert len(found) == runs, f"segue stored {len(found)} of {runs} runs"
    return seconds


def floor_runs(root: Path, runs: int) -> float:
    """Two transactions a run: the run row and its params, then its metrics and status."""
    db = sqlite3.connect(root / "floor-runs.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, status TEXT, start INT, end INT)")
    db.execute("CREATE TABLE params (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key))")
    db.execute("CREATE TABLE metrics (run_id TEXT, key TEXT, value REAL, step INT, ts INT)")

    def work():
        for i in range(runs):
            run_id = uuid.uuid4().hex
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO runs VALUES (?, 'RUNNING', ?, NULL)", (run_id, i))
            db.executemany(
                "INSERT INTO params VALUES (?, ?, ?)", [(run_id, "lr", "0.1"), (run_id, "d", "1")]
            )
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, 0, 0)",
                [(run_id, "acc", 0.5), (run_id, "loss", 0.25)],
            )
            db.execute("UPDATE runs SET status = 'FINISHED', end = ? WHERE id = ?", (i, run_id))
            db.execute("COMMIT")

    seconds, _ = _timed(work)
    db.close()
    return seconds


def mlflow_runs(root: Path, runs: int) -> float:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow-runs.db'}")
    mlflow.set_experiment("sweep")
    with mlflow.start_run():
        pass

    def work():
        for i in range(runs):
            with mlflow.start_run():
                mlflow.log_params({"lr": 0.1, "depth": i})
                mlflow.log_metric("acc", 0.5)
                mlflow.log_metric("loss", 0.25)

    seconds, _ = _timed(work)
    return seconds


# -- 3. search ------------------------------------------------------------------------------


def _search_data(runs: int):
    rng = random.Random(0)
    for i in range(runs):
        yield (
            {"model": rng.choice(["rf", "lr", "gb"]), "depth": str(rng.randint(2, 12))},
            {"acc": rng.random(), "loss": rng.random()},
            {"team": rng.choice(["a", "b"])},
            i,
        )


def _fresh_pg() -> tuple[str, object]:
    import sqlalchemy as sa

    admin = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    name = f"segue_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}", (admin, name)


def _drop_pg(handle) -> None:
    admin, name = handle
    from segue.store import engine as engine_module

    uri = f"{PG_SERVER}/{name}"
    cached = engine_module._engines.pop(uri, None)
    if cached is not None:
        cached.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def segue_search(root: Path, runs: int, store: str, repeat: int = 7) -> dict[str, float]:
    """Populate ``runs`` runs (in batches, not timed), then time the search ``repeat`` times:
    the store's records (``find_runs``) and the DataFrame (``segue.search_runs``)."""
    handle = None
    if store == "postgresql":
        uri, handle = _fresh_pg()
        from segue.store.engine import create_engine, upgrade

        engine = create_engine(uri)
        upgrade(engine)
        engine.dispose()
    else:
        uri = f"sqlite:///{root / f'search-{runs}.db'}"
    _use_home(root / f"search-{store}-{runs}", uri)
    import segue
    from segue.store.entities import Metric, RunInfo
    from segue.tracking.client import get_client

    try:
        client = get_client()
        exp = client.store.get_or_create_experiment("search")
        batch: list = []
        points: dict = {}
        start = time.perf_counter()
        for params, metrics, tags, i in _search_data(runs):
            info = RunInfo(
                id=uuid.uuid4().hex,
                experiment_id=exp.id,
                experiment_name=exp.name,
                name=f"run-{i}",
                status="FINISHED",
                start_time=1_700_000_000_000 + i,
                end_time=1_700_000_000_000 + i,
                heartbeat_at=1_700_000_000_000 + i,
                user="bench",
                host="bench",
                python_version="3",
            )
            batch.append((info, tags, params))
            points[info.id] = [Metric(k, v, 0, info.start_time) for k, v in metrics.items()]
            if len(batch) == 5000:
                client.store.create_runs(batch, metrics=points)
                batch, points = [], {}
        if batch:
            client.store.create_runs(batch, metrics=points)
        populated = time.perf_counter() - start
        if store == "postgresql":
            with client.store.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        found = {}
        for label, call in (
            ("find_runs", lambda: client.find_runs("search", QUERY, ORDER, 1000)),
            ("search_runs", lambda: segue.search_runs("search", QUERY, ORDER, 1000)),
        ):
            call()  # warm: statement caches, the database's pages
            times = []
            for _ in range(repeat):
                seconds, result = _timed(call)
                times.append(seconds)
            found[label] = statistics.median(times)
            found[f"{label}_min"] = min(times)
            found[f"{label}_rows"] = len(result)
        found["populate"] = populated
        return found
    finally:
        from segue.tracking.client import close_client

        close_client()
        if handle is not None:
            _drop_pg(handle)


def floor_search(root: Path, runs: int, repeat: int = 5) -> float:
    """One query on a flat table with an index on the sort metric."""
    db = sqlite3.connect(root / f"floor-search-{runs}.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, exp INT, model TEXT, depth TEXT, team TEXT, "
        "acc REAL, loss REAL, start INT)"
    )
    db.execute("CREATE INDEX runs_acc ON runs (exp, acc)")
    rows = [
        (uuid.uuid4().hex, 1, p["model"], p["depth"], t["team"], m["acc"], m["loss"], i)
        for p, m, t, i in _search_data(runs)
    ]
    with db:
        db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    sql = (
        "SELECT * FROM runs WHERE exp = 1 AND acc > 0.5 AND model = 'rf' AND team = 'a' "
        "ORDER BY acc DESC LIMIT 1000"
    )
    db.execute(sql).fetchall()
    times = [_timed(lambda: db.execute(sql).fetchall())[0] for _ in range(repeat)]
    db.close()
    return statistics.median(times)


def mlflow_search(root: Path, runs: int) -> dict[str, float]:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow-search.db'}")
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
    call = lambda: mlflow.search_runs([exp], QUERY, order_by=ORDER, max_results=1000)  # noqa: E731
    call()
    times = []
    for _ in range(3):
        seconds, frame = _timed(call)
        times.append(seconds)
    return {"search_runs": statistics.median(times), "search_runs_rows": len(frame)}


# -- MLflow, in its own interpreter ---------------------------------------------------------


def mlflow_part(points: int, runs: int, search: int) -> dict[str, object]:
    """What MLflow measures, run inside MLflow's interpreter (``--mlflow-part``)."""
    import mlflow

    out: dict[str, object] = {"version": mlflow.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if points:
            out["logging"] = points / mlflow_logging(root, points)
        if runs:
            out["runs"] = runs / mlflow_runs(root, runs)
        if search:
            out["search"] = mlflow_search(root, search)
    return out


def run_mlflow(python: str | None, points: int, runs: int, search: int) -> dict | None:
    if python is None:
        default = Path(__file__).resolve().parent.parent / ".venv-mlflow" / "bin" / "python"
        python = str(default) if default.exists() else None
    if python is None:
        print("  (no MLflow interpreter: create .venv-mlflow or pass --mlflow-python)")
        return None
    args = [python, __file__, "--mlflow-part"]
    args += ["--mlflow-points", str(points), "--mlflow-runs", str(runs)]
    args += ["--mlflow-search", str(search)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        print(f"  MLflow failed ({python}):\n{done.stderr[-2000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- 4. contention --------------------------------------------------------------------------


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


# -- the report -----------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--contention",
        action="store_true",
        help="only measure readers' latency against 4 writers (SQLite; no MLflow needed)",
    )
    parser.add_argument("--only", choices=["log", "runs", "search"], action="append")
    parser.add_argument("--points", default="5000,50000,500000", help="points to log, per case")
    parser.add_argument("--runs", type=int, default=2000, help="runs to create")
    parser.add_argument("--search", default="10000,100000", help="runs to search, per case")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--mlflow-python", help="an interpreter with mlflow installed")
    parser.add_argument("--mlflow-points", type=int, default=500)
    parser.add_argument("--mlflow-runs", type=int, default=200)
    parser.add_argument("--mlflow-search", type=int, default=1000)
    parser.add_argument("--mlflow-part", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mlflow_part:
        print(json.dumps(mlflow_part(args.mlflow_points, args.mlflow_runs, args.mlflow_search)))
        return
    if args.contention:
        with tempfile.TemporaryDirectory() as tmp:
            contention(Path(tmp))
        return
    only = set(args.only or ["log", "runs", "search"])
    print(f"MLflow ({_load()}) ...", flush=True)
    mlf = run_mlflow(
        args.mlflow_python,
        args.mlflow_points if "log" in only else 0,
        args.mlflow_runs if "runs" in only else 0,
        args.mlflow_search if "search" in only else 0,
    )
    if mlf:
        print(f"  mlflow {mlf['version']}, in its own interpreter")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "log" in only:
            print(f"\nlog metric points one call at a time, until durable ({_load()}):")
            for points in _sizes(args.points):
                floor = points / floor_logging(root, points)
                seg = points / segue_logging(root, points)
                line = (
                    f"  {points:>9,} points: segue {seg:>10,.0f}/s   floor {floor:>11,.0f}/s "
                    f"({floor / seg:.1f}x segue)"
                )
                if mlf and "logging" in mlf:
                    rate = float(mlf["logging"])
                    line += f"   mlflow {rate:,.0f}/s ({args.mlflow_points} points): "
                    line += f"segue {seg / rate:,.0f}x"
                print(line + f"   [{_load()}]", flush=True)
        if "runs" in only:
            print(f"\nrun creation: start, 2 params, 2 metrics, end ({_load()}):")
            floor = args.runs / floor_runs(root, args.runs)
            seg = args.runs / segue_runs(root, args.runs)
            print(f"  segue  {seg:>8,.0f} runs/s ({args.runs} runs)")
            print(f"  floor  {floor:>8,.0f} runs/s (sqlite3, 2 transactions a run)")
            if mlf and "runs" in mlf:
                rate = float(mlf["runs"])
                print(f"  mlflow {rate:>8,.0f} runs/s ({args.mlflow_runs} runs)")
                print(
                    f"  segue is {seg / rate:.1f}x mlflow, {floor / seg:.1f}x slower than the floor"
                )
            print(f"  [{_load()}]", flush=True)
        if "search" in only:
            print(f"\nsearch: {QUERY!r}, by {ORDER[0]}, max 1000 ({_load()}):")
            print("  (Segue: the median of 7 searches, and the best of them)")
            if mlf and "search" in mlf:
                found = mlf["search"]
                print(
                    f"  mlflow   sqlite   {args.mlflow_search:>7,} runs: "
                    f"{found['search_runs'] * 1000:8.1f} ms ({found['search_runs_rows']} rows)"
                )
            for runs in _sizes(args.search):
                floor = floor_search(root, runs)
                print(f"  floor    sqlite   {runs:>7,} runs: {floor * 1000:8.1f} ms (flat table)")
                for store in args.stores.split(","):
                    found = segue_search(root, runs, store)
                    print(
                        f"  segue    {store:8s} {runs:>7,} runs: "
                        f"{found['search_runs'] * 1000:6.1f} ms as a DataFrame "
                        f"(best {found['search_runs_min'] * 1000:.1f}), "
                        f"{found['find_runs'] * 1000:6.1f} ms as records "
                        f"(best {found['find_runs_min'] * 1000:.1f}); "
                        f"{found['search_runs_rows']} rows, populated in "
                        f"{found['populate']:.0f} s   [{_load()}]",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
