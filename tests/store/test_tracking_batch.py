"""SqlTrackingStore.create_runs on SQLite and PostgreSQL: many runs in one transaction."""

from __future__ import annotations

import pytest

from segue.errors import AlreadyExists, NotFound
from segue.store.entities import Metric, RunInfo
from segue.store.tracking import SqlTrackingStore

T0 = 1_700_000_000_000  # epoch ms; every time in these tests is explicit


def info(run_id: str, experiment_id: int, **changes) -> RunInfo:
    values = {
        "id": run_id,
        "experiment_id": experiment_id,
        "experiment_name": "batch",
        "name": run_id,
        "status": "FINISHED",
        "start_time": T0,
        "end_time": T0,
        "heartbeat_at": T0,
        "user": "u",
        "host": "h",
        "python_version": "3.11",
        **changes,
    }
    return RunInfo(**values)


def test_create_runs_writes_every_run_with_its_tags_and_params(store: SqlTrackingStore):
    exp = store.get_or_create_experiment("batch")
    parent = store.create_run(info("p" * 32, exp.id, status="RUNNING", end_time=None))

    store.create_runs(
        [
            (info(f"{i}" * 32, exp.id, parent_run_id=parent.id), {"n": str(i)}, {"i": str(i)})
            for i in range(3)
        ]
        + [(info("9" * 32, exp.id), {}, {})]
    )

    for i in range(3):
        run = store.get_run(f"{i}" * 32)
        assert run.info.parent_run_id == parent.id
        assert run.info.status == "FINISHED"
        assert run.data.tags == {"n": str(i)}
        assert run.data.params == {"i": str(i)}
    assert store.get_run("9" * 32).data.params == {}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"id": "0" * 32}, AlreadyExists),
        ({"parent_run_id": "f" * 32}, NotFound),
        ({"environment_digest": "e" * 64}, NotFound),
    ],
)
def test_one_refused_run_writes_none(store: SqlTrackingStore, bad, error):
    exp = store.get_or_create_experiment("batch")
    store.create_run(info("0" * 32, exp.id))

    with pytest.raises(error):
        store.create_runs(
            [(info("1" * 32, exp.id), {}, {}), (info("2" * 32, exp.id, **bad), {}, {})]
        )

    with pytest.raises(NotFound):
        store.get_run("1" * 32)


def test_create_runs_writes_their_metrics_and_children_of_runs_in_the_batch(
    store: SqlTrackingStore,
):
    exp = store.get_or_create_experiment("batch")
    parent, child = info("p" * 32, exp.id), info("c" * 32, exp.id, parent_run_id="p" * 32)
    points = [Metric("acc", 0.5, 0, T0), Metric("acc", 0.75, 1, T0 + 1)]

    store.create_runs([(parent, {}, {}), (child, {}, {})], metrics={"c" * 32: points})

    assert store.get_run("c" * 32).info.parent_run_id == "p" * 32
    assert store.get_run("c" * 32).data.metrics == {"acc": points[1]}
    assert store.get_metric_history("c" * 32, "acc") == points
    assert store.get_run("p" * 32).data.metrics == {}


def test_create_runs_refuses_an_id_twice_in_one_batch(store: SqlTrackingStore):
    exp = store.get_or_create_experiment("batch")
    with pytest.raises(AlreadyExists):
        store.create_runs([(info("1" * 32, exp.id), {}, {}), (info("1" * 32, exp.id), {}, {})])
    with pytest.raises(NotFound):
        store.get_run("1" * 32)
