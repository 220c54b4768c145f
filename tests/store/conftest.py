"""Fixtures for the store tests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from segue.store.entities import Experiment, RunInfo
from segue.store.tracking import SqlTrackingStore

T0 = 1_700_000_000_000  # epoch ms: when the runs of ``run_info`` start


def _in_threads(n: int, target: Callable[[], object]) -> list[object]:
    """Run ``target`` in ``n`` threads released together; return results or raised errors."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    return results


@pytest.fixture
def in_threads() -> Callable[[int, Callable[[], object]], list[object]]:
    """``in_threads(n, target)``: run ``target`` in ``n`` threads started at once."""
    return _in_threads


def _run_info(experiment: Experiment, run_id: str | None = None, **fields: object) -> RunInfo:
    values: dict[str, object] = {
        "id": run_id or uuid.uuid4().hex,
        "experiment_id": experiment.id,
        "experiment_name": experiment.name,
        "name": "run",
        "status": "RUNNING",
        "start_time": T0,
        "end_time": None,
        "heartbeat_at": T0,
        "user": "ada",
        "host": "box",
        "python_version": "3.11.9",
    }
    return RunInfo(**(values | fields))  # type: ignore[arg-type]


@pytest.fixture
def run_info() -> Callable[..., RunInfo]:
    """``run_info(experiment, run_id=None, **fields)``: a run of ``experiment`` by ``ada``,
    RUNNING since ``T0`` (epoch ms 1_700_000_000_000), with a fresh id unless given; ``fields``
    override any other field."""
    return _run_info


@pytest.fixture
def tracking_store(store: SqlTrackingStore) -> Any:
    """The tracking store ``exp`` and ``run_id`` are made in: here ``store`` (SQLite and
    PostgreSQL); the contract suite's ``tracking_store`` of every kind in ``contract/``."""
    return store


@pytest.fixture
def exp(tracking_store: Any) -> Experiment:
    """Experiment ``exp`` in ``tracking_store``."""
    return tracking_store.create_experiment("exp")


@pytest.fixture
def run_id(tracking_store: Any, exp: Experiment, run_info: Callable[..., RunInfo]) -> str:
    """The id of a running run of ``exp``."""
    return tracking_store.create_run(run_info(exp)).id
