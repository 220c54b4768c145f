"""The stores ``benchmarks/ui.py`` measures, built once and cached in a data folder.

``build_segue_store`` bulk-loads a migrated Segue store (``segue.store.engine.upgrade``, the
tables of ``segue/store/schema.py``) straight through SQLAlchemy: runs, params, tags and the
``latest_metrics`` rows go as executemany batches of plain tuples; the metric histories are
generated inside SQLite by one ``INSERT ... SELECT`` per batch of runs (runs x keys x steps, the
values from a per-run seed), in run-id order so the ``(run_id, key, step)`` index only grows at
its right edge. The load runs with the journal off and no fsync (a finished store is switched
back to WAL, as Segue opens it); it is never used half-built: a ``done`` marker is written last.

The data: one experiment ``bench`` of N runs, each with 20 params (numbers and words), 10
metrics of S steps and 2 tags; start times spread over 30 days; and, in its own experiment
``long-metric``, one run whose ``loss`` has a 100,000-point history.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

PARAMS = (
    "lr",
    "batch_size",
    "optimizer",
    "depth",
    "dropout",
    "seed",
    "layers",
    "activation",
    "weight_decay",
    "momentum",
    "warmup_steps",
    "epochs",
    "hidden_size",
    "heads",
    "model",
    "dataset",
    "augment",
    "scheduler",
    "grad_clip",
    "label_smoothing",
)
METRICS = (
    "accuracy",
    "auc",
    "f1",
    "grad_norm",
    "loss",
    "precision",
    "recall",
    "train_time",
    "val_accuracy",
    "val_loss",
)
_WORDS = {
    "optimizer": ("adam", "adamw", "sgd", "rmsprop", "lion"),
    "activation": ("relu", "gelu", "silu", "tanh"),
    "model": ("resnet18", "resnet50", "vit-s", "vit-b", "convnext-t", "mlp"),
    "dataset": ("cifar10", "cifar100", "imagenet-1k-subset", "tiny-imagenet"),
    "augment": ("none", "flip", "flip+crop", "randaugment", "mixup"),
    "scheduler": ("cosine", "step", "linear", "onecycle"),
}
LONG_POINTS = 100_000
DAY_MS = 86_400_000
EPOCH_MS = 1_796_000_000_000  # 2026-11-30, so runs look recent next to today's ones
DONE = "done.json"


def param_values(rng: random.Random, i: int) -> dict[str, str]:
    """The 20 params of run ``i``: what a hyper-parameter sweep records."""
    values = {
        "lr": f"{10 ** rng.uniform(-5, -1):.6g}",
        "batch_size": str(rng.choice((16, 32, 64, 128, 256, 512))),
        "depth": str(rng.randint(2, 48)),
        "dropout": f"{rng.uniform(0, 0.6):.3f}",
        "seed": str(i),
        "layers": str(rng.randint(1, 24)),
        "weight_decay": f"{10 ** rng.uniform(-6, -2):.6g}",
        "momentum": f"{rng.uniform(0.8, 0.99):.3f}",
        "warmup_steps": str(rng.choice((0, 100, 500, 1000, 2000))),
        "epochs": str(rng.randint(5, 300)),
        "hidden_size": str(rng.choice((128, 256, 512, 768, 1024, 2048))),
        "heads": str(rng.choice((1, 2, 4, 8, 12, 16))),
        "grad_clip": f"{rng.uniform(0.1, 5):.2f}",
        "label_smoothing": f"{rng.uniform(0, 0.2):.3f}",
    }
    values.update((key, rng.choice(words)) for key, words in _WORDS.items())
    return {key: values[key] for key in PARAMS}


def metric_value(seed: float, k: int, step: int, steps: int) -> float:
    """Point ``step`` of metric ``METRICS[k]`` of a run whose seed is ``seed`` (in [0, 1)):
    the formula the SQL generator uses, for clients that log the same kind of curve."""
    base = (seed * (k + 1) * 7.31) % 1.0
    progress = step / max(steps - 1, 1)
    return base + (1.0 - base) * progress * 0.5


# -- the Segue store -------------------------------------------------------------------------


def progress_bar():  # type: ignore[no-untyped-def]
    """A progress bar on stderr (rich is imported here: MLflow's virtualenv has none)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def _migrate(db: Path) -> None:
    from segue.store.engine import create_engine, current_revision, head_revision, upgrade

    engine = create_engine(f"sqlite:///{db}")
    try:
        before = current_revision(engine)
        if before != head_revision():
            if before is not None:
                print(f"migrating {db} from {before} to {head_revision()}", file=sys.stderr)
            started = time.perf_counter()
            upgrade(engine)
            if before is not None:
                took = time.perf_counter() - started
                print(f"migrated {db} in {took:.0f} s", file=sys.stderr, flush=True)
    finally:
        engine.dispose()


def _bulk_engine(db: Path) -> sa.Engine:
    """An engine for loading only: no journal, no fsync, a big page cache."""
    engine = sa.create_engine(f"sqlite:///{db}")

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=OFF")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-1000000")  # 1 GB
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    return engine


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _experiment(conn: sa.Connection, name: str, now: int) -> int:
    conn.exec_driver_sql(
        "INSERT INTO experiments (name, description, lifecycle_stage, created_at) "
        "VALUES (?, ?, 'active', ?)",
        (name, f"{name}: generated by benchmarks/ui.py", now),
    )
    return int(conn.exec_driver_sql("SELECT id FROM experiments WHERE name = ?", (name,)).scalar())


def _run_rows(ids: list[str], first: int, experiment_id: int, rng: random.Random) -> list[tuple]:
    rows = []
    for offset, run_id in enumerate(ids):
        i = first + offset
        start = EPOCH_MS - rng.randint(0, 30 * DAY_MS)
        end = start + rng.randint(60_000, 3 * 3_600_000)
        failed = rng.random() < 0.03
        rows.append(
            (
                run_id,
                experiment_id,
                f"sweep-{i:06d}",
                "FAILED" if failed else "FINISHED",
                "RuntimeError: CUDA out of memory" if failed else None,
                start,
                end,
                end,
                "bench",
                "gpu-node-07",
                "3.11.2",
                "3f2c9a1d0b7e4f6a8c5d2e1f0a9b8c7d6e5f4a3b",
                False,
                "train.py",
                "active",
            )
        )
    return rows


_INSERT_RUN = (
    "INSERT INTO runs (id, experiment_id, name, status, error, start_time, end_time, "
    "heartbeat_at, user, host, python_version, source_commit, source_dirty, entry_point, "
    "lifecycle_stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# The history of every run of a batch, generated in SQLite: (runs x keys x steps), in the
# order of the (run_id, key, step) index. The value is metric_value() plus a little noise.
_INSERT_HISTORY = """
INSERT INTO metrics (run_id, key, value, step, timestamp)
SELECT s.run_id, k.key,
       (s.seed * (k.k + 1) * 7.31 - CAST(s.seed * (k.k + 1) * 7.31 AS INTEGER))
         * (1.0 - t.step * 0.5 / :last)
         + t.step * 0.5 / :last + (abs(random()) % 1000) / 1e6,
       t.step, s.start_time + t.step * 1000
FROM temp.bench_seed AS s CROSS JOIN temp.bench_key AS k CROSS JOIN temp.bench_step AS t
ORDER BY s.run_id, k.key, t.step
"""
_INSERT_LATEST = """
INSERT INTO latest_metrics (run_id, key, value, step, timestamp)
SELECT m.run_id, m.key, m.value, m.step, m.timestamp
FROM temp.bench_seed AS s CROSS JOIN temp.bench_key AS k
JOIN metrics AS m ON m.run_id = s.run_id AND m.key = k.key AND m.step = :last
ORDER BY s.run_id, k.key
"""


def _load_runs(
    conn: sa.Connection,
    ids: list[str],
    first: int,
    experiment_id: int,
    steps: int,
    rng: random.Random,
) -> None:
    """One batch: runs, params, tags in executemany; histories and latest points in SQL."""
    runs = _run_rows(ids, first, experiment_id, rng)
    conn.exec_driver_sql(_INSERT_RUN, runs)
    params = []
    for offset, run_id in enumerate(ids):
        for key, value in param_values(rng, first + offset).items():
            params.append((run_id, key, value, _number(value)))
    conn.exec_driver_sql(
        "INSERT INTO params (run_id, key, value, value_num) VALUES (?, ?, ?, ?)", params
    )
    tags = []
    for offset, run_id in enumerate(ids):
        tags.append((run_id, "team", ("vision", "nlp", "tabular")[(first + offset) % 3]))
        tags.append((run_id, "stage", "sweep"))
    conn.exec_driver_sql("INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)", tags)
    if steps:
        conn.exec_driver_sql("DELETE FROM temp.bench_seed")
        seeds = [(run_id, rng.random(), row[5]) for run_id, row in zip(ids, runs, strict=True)]
        conn.exec_driver_sql(
            "INSERT INTO temp.bench_seed (run_id, seed, start_time) VALUES (?, ?, ?)", seeds
        )
        last = {"last": max(steps - 1, 1)}
        conn.execute(sa.text(_INSERT_HISTORY), last)
        conn.execute(sa.text(_INSERT_LATEST), {"last": steps - 1})


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _load_long_run(conn: sa.Connection, experiment_id: int, rng: random.Random) -> str:
    run_id = uuid.UUID(int=rng.getrandbits(128)).hex
    row = _run_rows([run_id], 0, experiment_id, rng)[0]
    conn.exec_driver_sql(_INSERT_RUN, [(*row[:2], "long-loss-100k", *row[3:])])
    start = row[5]
    points = [
        (run_id, "loss", 2.0 / (1 + step / 500) + rng.random() * 0.05, step, start + step * 50)
        for step in range(LONG_POINTS)
    ]
    conn.exec_driver_sql(
        "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)", points
    )
    conn.exec_driver_sql(
        "INSERT INTO latest_metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)",
        points[-1],
    )
    return run_id


def build_segue_store(home: Path, runs: int, steps: int, batch: int = 500) -> dict:
    """Build (once) a Segue store of ``runs`` runs with ``steps`` steps per metric under
    ``home`` (its ``segue.db``); return what was generated (cached in ``done.json``).

    A store cached by an older Segue is migrated to this one's schema first (``segue ui``
    would do it at start, with no progress shown: a new index over 100M metric rows takes
    minutes)."""
    done = home / DONE
    if done.exists():
        _migrate(home / "segue.db")
        return json.loads(done.read_text())
    if home.exists():
        for leftover in home.iterdir():  # a build that was interrupted
            leftover.unlink()
    home.mkdir(parents=True, exist_ok=True)
    db = home / "segue.db"
    started = time.perf_counter()
    _migrate(db)
    rng = random.Random(20261206)
    ids = sorted(uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(runs))
    engine = _bulk_engine(db)
    now = int(time.time() * 1000)
    with engine.connect() as conn:
        conn.exec_driver_sql(
            "CREATE TEMP TABLE bench_seed (run_id TEXT PRIMARY KEY, seed REAL, start_time INT)"
        )
        conn.exec_driver_sql("CREATE TEMP TABLE bench_key (k INT, key TEXT)")
        conn.exec_driver_sql("INSERT INTO temp.bench_key VALUES (?, ?)", list(enumerate(METRICS)))
        conn.exec_driver_sql("CREATE TEMP TABLE bench_step (step INT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO temp.bench_step VALUES (?)", [(s,) for s in range(steps)])
        conn.commit()
        with conn.begin():
            experiment_id = _experiment(conn, "bench", now)
            long_experiment = _experiment(conn, "long-metric", now)
            long_run = _load_long_run(conn, long_experiment, rng)
        with progress_bar() as progress:
            task = progress.add_task(f"{runs:,} runs, {steps} steps x 10 metrics", total=runs)
            # A transaction per ~20 batches: big, and a crash loses little.
            done_runs = 0
            for group in _chunks(ids, batch * 20):
                with conn.begin():
                    for part in _chunks(group, batch):
                        _load_runs(conn, part, done_runs, experiment_id, steps, rng)
                        done_runs += len(part)
                        progress.update(task, completed=done_runs)
    engine.dispose()
    _set_wal(db)
    facts = {
        "runs": runs,
        "params_per_run": len(PARAMS),
        "metrics_per_run": len(METRICS),
        "steps": steps,
        "metric_points": runs * len(METRICS) * steps,
        "long_run": long_run,
        "long_points": LONG_POINTS,
        "experiment": "bench",
        "seconds": round(time.perf_counter() - started, 1),
        "bytes": db.stat().st_size,
    }
    done.write_text(json.dumps(facts, indent=1))
    return facts


def _set_wal(db: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Build (once) a Segue store for benchmarks/ui.py")
    parser.add_argument("home", type=Path, help="the store's folder (its segue.db)")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(build_segue_store(args.home, args.runs, args.steps)))


if __name__ == "__main__":
    main()
