"""Pipeline runtime overhead: a 20-step pipeline of no-op steps vs calling the 20 functions.

One run of this script measures, on a fresh embedded SQLite store (or, with ``--postgres``, a
fresh database made on that server and dropped afterwards):

  floor    calling the 20 functions directly, each on the previous one's result
  cold     ``run_pipeline`` with nothing cached: a parent run, 20 child runs, 20 outputs stored
  cached   the same pipeline again: every step a cache hit (20 child runs with cached_from)
  ray      (with ``--ray``, when the Ray executor is installed) the cold and cached runs on a
           local Ray (``ray.init(num_cpus=2)``), started before timing

and prints the per-step overhead, ``(pipeline - floor) / 20``, against the targets (< 30 ms per
executed step, < 5 ms per cached step, locally on SQLite). The steps form a chain (each takes
the previous output), so the local executor runs every one in this process, as it does any
linear chain. A warm-up pipeline runs first, so imports and the store's first connection are
not counted.

    python benchmarks/pipelines.py
    python benchmarks/pipelines.py --reps 5 --ray
    python benchmarks/pipelines.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

STEPS = 20
TARGET_EXECUTED_MS = 30.0
TARGET_CACHED_MS = 5.0


def pipeline_source(steps: int, salt: str) -> str:
    """A module with ``steps`` distinct no-op steps chained by a pipeline ``chain``."""
    lines = ["import segue", ""]
    for i in range(steps):
        lines += [
            "@segue.step",
            f"def step_{i}(x: int) -> int:",
            f"    return x  # {salt}",
            "",
        ]
    lines += ["@segue.pipeline", "def chain(x: int = 0) -> int:"]
    lines += [f"    x = step_{i}(x)" for i in range(steps)]
    lines += ["    return x", ""]
    lines += ["def floor(x=0):"]
    lines += [f"    x = step_{i}(x)" for i in range(steps)]
    lines += ["    return x", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="fresh pipelines timed (default 3)")
    parser.add_argument("--ray", action="store_true", help="also time --executor ray")
    parser.add_argument("--postgres", help="a PostgreSQL server URI (without a database)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segue-pipeline-bench-"))
    os.environ["SEGUE_HOME"] = str(work / "home")
    os.environ["SEGUE_ARTIFACT_URI"] = str(work / "artifacts")
    database = None
    if args.postgres:
        database = _create_database(args.postgres)
        os.environ["SEGUE_STORE_URI"] = f"{args.postgres}/{database}"
    else:
        os.environ.pop("SEGUE_STORE_URI", None)
    try:
        run(work, args)
    finally:
        if database is not None:
            _drop_database(args.postgres, database)


def _create_database(server: str) -> str:
    import uuid

    import sqlalchemy as sa

    from segue.store.engine import create_engine, upgrade

    name = f"segue_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    engine = create_engine(f"{server}/{name}")
    upgrade(engine)
    engine.dispose()
    return name


def _drop_database(server: str, name: str) -> None:
    import sqlalchemy as sa

    from segue.tracking.client import close_client

    close_client()
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def run(work: Path, args: argparse.Namespace) -> None:
    results = {"local": measure(work, args.reps, "local")}
    if args.ray:
        try:
            import ray

            from segue.pipelines.executors import get_executor

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            get_executor("ray").close()
        except ImportError as exc:
            print(f"ray: not measured ({exc})")
        else:
            results["ray"] = measure(work, args.reps, "ray")
    report(results)


def measure(work: Path, reps: int, executor: str) -> dict[str, list[float]]:
    from segue.pipelines.runtime import run_pipeline

    warm = work / f"warm_{executor}.py"
    warm.write_text(pipeline_source(2, f"warm {executor}"))
    run_pipeline(f"{warm}:chain", executor=executor)
    times: dict[str, list[float]] = {"floor": [], "cold": [], "cached": []}
    for rep in range(reps):
        module = work / f"chain_{executor}_{rep}.py"
        # A salt in every step's source: a fresh code hash, so the first run misses every step.
        module.write_text(pipeline_source(STEPS, f"{executor} {rep} {time.time_ns()}"))
        target = f"{module}:chain"
        from segue.pipelines.targets import load_file

        floor = load_file(module).floor
        start = time.perf_counter()
        floor(0)
        times["floor"].append(time.perf_counter() - start)
        for phase in ("cold", "cached"):
            start = time.perf_counter()
            result = run_pipeline(target, executor=executor)
            times[phase].append(time.perf_counter() - start)
            hits = sum(s.cached_from is not None for s in result.steps)
            assert result.status == "FINISHED", result.error
            assert hits == (0 if phase == "cold" else STEPS), (phase, hits)
    return times


def report(results: dict[str, dict[str, list[float]]]) -> None:
    print(f"{STEPS}-step chain of no-op steps, median of {len(results['local']['cold'])} runs")
    print(f"{'executor':<9}{'phase':<8}{'total ms':>10}{'per step ms':>13}{'x floor':>12}  target")
    for executor, times in results.items():
        floor = statistics.median(times["floor"])
        print(f"{executor:<9}{'floor':<8}{floor * 1000:>10.3f}{floor * 1000 / STEPS:>13.4f}")
        for phase, target in (("cold", TARGET_EXECUTED_MS), ("cached", TARGET_CACHED_MS)):
            total = statistics.median(times[phase])
            per_step = (total - floor) * 1000 / STEPS
            verdict = (
                ""
                if executor != "local"
                else (f"< {target:g} ms: {'met' if per_step < target else 'MISSED'}")
            )
            print(
                f"{executor:<9}{phase:<8}{total * 1000:>10.1f}{per_step:>13.2f}"
                f"{total / floor:>12.0f}  {verdict}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
