"""Importing an MLflow store: 1,000 runs x 10 metrics x 1,000 steps (10 million points), with
params and tags, from MLflow's SQLite database into a fresh Segue store. Target: < 60 s.

MLflow's own client makes the empty database (its schema, at the version installed); the runs
are written into it with plain SQL, as MLflow's store would hold them (logging 10 million
points through MLflow's client takes far longer than the import measured here). The built
database is kept with ``--keep PATH`` and reused when it exists.

    python benchmarks/import.py [--runs 1000 --metrics 10 --steps 1000] [--keep /tmp/mlflow.db]

MLflow runs in its own environment: ``$SEGUE_MLFLOW_PYTHON`` (default .venv-mlflow/bin/python).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_schema(db: Path) -> None:
    python = os.environ.get("SEGUE_MLFLOW_PYTHON") or str(ROOT / ".venv-mlflow/bin/python")
    if not Path(python).is_file():
        sys.exit(f"no MLflow environment at {python} (set SEGUE_MLFLOW_PYTHON)")
    script = (
        "import sys, mlflow; c = mlflow.MlflowClient(sys.argv[1]); c.create_experiment('bench')"
    )
    subprocess.run([python, "-c", script, f"sqlite:///{db}"], check=True, capture_output=True)


def fill(db: Path, runs: int, metrics: int, steps: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    (exp,) = conn.execute("SELECT experiment_id FROM experiments WHERE name='bench'").fetchone()
    base = 1_700_000_000_000
    for r in range(runs):
        run_id = uuid.uuid4().hex
        start = base + r * 10_000
        conn.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED', "
            "?, ?, '', 'active', ?, ?)",
            (run_id, f"run-{r}", start, start + 9_000, f"/nonexistent/{run_id}", exp),
        )
        conn.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            [(f"p{i}", str(i * r), run_id) for i in range(5)],
        )
        conn.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
            [("mlflow.runName", f"run-{r}", run_id), ("mlflow.user", "bench", run_id)],
        )
        rows = [
            (f"m{k}", 1.0 / (s + 1) + k, start + s, run_id, s, False)
            for k in range(metrics)
            for s in range(steps)
        ]
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [rows[k * steps + steps - 1] for k in range(metrics)],
        )
    conn.commit()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the MLflow database here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="segue-import-bench-") as tmp:
        db = args.keep or Path(tmp) / "mlflow.db"
        if not db.exists():
            started = time.perf_counter()
            make_schema(db)
            fill(db, args.runs, args.metrics, args.steps)
            print(f"built the MLflow store in {time.perf_counter() - started:.1f}s")
        os.environ["SEGUE_HOME"] = str(Path(tmp) / "segue")
        os.environ.pop("SEGUE_STORE_URI", None)
        os.environ.pop("SEGUE_ARTIFACT_URI", None)
        os.environ.pop("SEGUE_TRACKING_URI", None)
        from segue.importers.mlflow import import_store, open_source
        from segue.registry.service import get_registry

        registry = get_registry()
        source = open_source(f"sqlite:///{db}")
        started, cpu = time.perf_counter(), time.process_time()
        summary = import_store(source, registry)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        source.close()
        points = summary.metric_points
        # CPU seconds beside the wall clock: on a shared machine the wall clock also counts
        # the time other processes held the cores.
        print(
            f"imported {summary.runs_new:,} runs, {points:,} metric points in {seconds:.1f}s "
            f"({points / seconds:,.0f} points/s; {cpu:.1f} CPU s, load average "
            f"{os.getloadavg()[0]:.1f}); target < 60 s: {'met' if seconds < 60 else 'NOT met'}"
        )
        started = time.perf_counter()
        again = import_store(open_source(f"sqlite:///{db}"), registry)
        print(
            f"second import (nothing new): {again.runs_present:,} runs found imported in "
            f"{time.perf_counter() - started:.1f}s"
        )


if __name__ == "__main__":
    main()
