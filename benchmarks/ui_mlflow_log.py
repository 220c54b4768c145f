"""Log the UI benchmark's runs into MLflow through MLflow's own client (``MlflowClient``).

Run by ``benchmarks/ui.py`` with the Python of the MLflow 3.17.2 virtualenv:
    python ui_mlflow_log.py --uri sqlite:///PATH/mlflow.db --runs 10000 --steps 10
``--uri`` is a server (``http://...``) or, faster, the SQLite file the server then serves: the
client then writes through MLflow's own SQL store in this process (fsync skipped). Each run is
what a training script records: created, its 20 params and its 10 metrics' histories in
``log_batch`` calls (at most 1,000 entries each, MLflow's limit), then ended. ``--threads``
clients log at once. Prints progress to stderr and one JSON line (runs logged, seconds, the run
ids of the first 20 runs) to stdout. Param values and metric curves are those of ``ui_data``
(imported by path: this process has MLflow, not Segue).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui_data import DAY_MS, EPOCH_MS, METRICS, metric_value, param_values


def log_one(client, experiment_id: str, i: int, steps: int) -> str:  # type: ignore[no-untyped-def]
    from mlflow.entities import Metric, Param

    rng = random.Random(i)
    start = EPOCH_MS - rng.randint(0, 30 * DAY_MS)
    run = client.create_run(experiment_id, start_time=start, run_name=f"sweep-{i:06d}")
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in param_values(rng, i).items()]
    seed = rng.random()
    points = [
        Metric(key, metric_value(seed, k, step, steps), start + step * 1000, step)
        for k, key in enumerate(METRICS)
        for step in range(steps)
    ]
    if len(params) + len(points) <= 1000:  # MLflow's limit of one batch
        client.log_batch(run_id, params=params, metrics=points)
    else:
        client.log_batch(run_id, params=params)
        for first in range(0, len(points), 1000):
            client.log_batch(run_id, metrics=points[first : first + 1000])
    failed = rng.random() < 0.03
    client.set_terminated(
        run_id, "FAILED" if failed else "FINISHED", end_time=start + rng.randint(60_000, 10**7)
    )
    return run_id


def _no_fsync() -> None:
    """Logging straight into a SQLite file: skip fsync in this process (as a seed, not as a
    server would run), so the load takes minutes, not an hour of waiting for the disk."""
    import sqlalchemy

    def pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", pragmas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=0, help="index of the first run to log")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    import mlflow
    from mlflow.tracking import MlflowClient

    if args.uri.startswith("sqlite:"):
        _no_fsync()
    mlflow.set_tracking_uri(args.uri)
    client = MlflowClient(args.uri)
    found = client.get_experiment_by_name("bench")
    experiment_id = found.experiment_id if found else client.create_experiment("bench")
    started = time.perf_counter()
    done = 0
    lock = threading.Lock()
    ids: dict[int, str] = {}

    def work(i: int) -> None:
        nonlocal done
        ids[i] = log_one(client, experiment_id, i, args.steps)
        with lock:
            done += 1
            if done % 100 == 0:
                rate = done / (time.perf_counter() - started)
                print(f"mlflow: {done:,}/{args.runs:,} runs, {rate:.1f}/s", file=sys.stderr)

    with ThreadPoolExecutor(args.threads) as pool:
        for future in [pool.submit(work, i) for i in range(args.first, args.first + args.runs)]:
            future.result()
    seconds = time.perf_counter() - started
    first_ids = [ids[i] for i in sorted(ids)[:20]]
    print(
        json.dumps(
            {"runs": done, "seconds": seconds, "experiment_id": experiment_id, "run_ids": first_ids}
        )
    )


if __name__ == "__main__":
    main()
