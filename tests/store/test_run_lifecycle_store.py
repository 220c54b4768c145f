"""SqlTrackingStore.open_run and finish_run on SQLite and PostgreSQL: a run starts in one
transaction and ends in one."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from segue.errors import AlreadyExists, NotFound
from segue.store.entities import Metric, RunInfo
from segue.store.sessions import DriverCursor, is_transient
from segue.store.tracking import SqlTrackingStore

T0 = 1_700_000_000_000  # epoch ms; every time in these tests is explicit
DIGEST = "e" * 64


def info(run_id: str, **changes) -> RunInfo:
    values = {
        "id": run_id,
        "experiment_id": 0,  # open_run fills in the experiment
        "experiment_name": "",
        "name": "sweep-1",
        "status": "RUNNING",
        "start_time": T0,
        "end_time": None,
        "heartbeat_at": T0,
        "user": "u",
        "host": "h",
        "python_version": "3.11",
        "source_commit": "abc",
        "source_dirty": True,
        "entry_point": "train.py",
        "environment_digest": DIGEST,
        **changes,
    }
    return RunInfo(**values)


def test_open_run_creates_the_experiment_and_environment_with_the_run(store: SqlTrackingStore):
    opened = store.open_run(
        "sweep", info("a" * 32), {"team": "x"}, {"lr": "0.1", "model": "rf"}, {"numpy": "2.0"}
    )
    exp = store.get_experiment("sweep")
    assert (opened.experiment_id, opened.experiment_name) == (exp.id, "sweep")
    run = store.get_run("a" * 32)
    assert run.info == opened
    assert run.info.source_dirty is True
    assert run.data.params == {"lr": "0.1", "model": "rf"}
    assert run.data.tags == {"team": "x"}
    assert store.get_environment(DIGEST) == {"numpy": "2.0"}
    # A second run finds both; its packages are not needed any more.
    again = store.open_run("sweep", info("b" * 32, parent_run_id="a" * 32), None, None, None)
    assert again.experiment_id == exp.id
    assert store.get_run("b" * 32).info.parent_run_id == "a" * 32
    assert len(store.list_experiments()) == 1


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"id": "a" * 32}, AlreadyExists),
        ({"parent_run_id": "f" * 32}, NotFound),
        ({"environment_digest": "0" * 64}, NotFound),  # unknown, and no packages given
    ],
)
def test_a_refused_run_leaves_nothing_behind(store: SqlTrackingStore, changes, error):
    store.open_run("first", info("a" * 32), None, None, {"numpy": "2.0"})
    run = info("c" * 32, **changes)
    with pytest.raises(error):
        store.open_run("second", run, {"team": "x"}, {"lr": "1"}, None)
    assert [e.name for e in store.list_experiments()] == ["first"]
    if run.id != "a" * 32:
        with pytest.raises(NotFound):
            store.get_run(run.id)


def test_finish_run_writes_the_last_points_and_the_status_together(store: SqlTrackingStore):
    store.open_run("sweep", info("a" * 32), None, None, {"numpy": "2.0"})
    points = [
        Metric("loss", 0.5, 0, T0),
        Metric("loss", 0.25, 1, T0 + 1),
        Metric("acc", math.nan, 0, T0),
    ]
    store.finish_run("a" * 32, points, "FAILED", T0 + 9, error="boom")
    run = store.get_run("a" * 32)
    assert (run.info.status, run.info.end_time, run.info.error) == ("FAILED", T0 + 9, "boom")
    assert run.data.metrics["loss"] == Metric("loss", 0.25, 1, T0 + 1)
    assert math.isnan(run.data.metrics["acc"].value)
    assert [m.value for m in store.get_metric_history("a" * 32, "loss")] == [0.5, 0.25]
    # No error given: the recorded one stays (as set_run_status keeps it).
    store.finish_run("a" * 32, [], "FINISHED", T0 + 10)
    assert store.get_run("a" * 32).info.error == "boom"


def test_finish_run_of_an_unknown_run_writes_nothing(store: SqlTrackingStore):
    with pytest.raises(NotFound):
        store.finish_run("9" * 32, [Metric("loss", 1.0, 0, T0)], "FINISHED", T0)


def test_driver_errors_read_as_sqlalchemys(store: SqlTrackingStore):
    """The driver-level statements fail with SQLAlchemy's errors, so retries judge them alike."""
    with store.engine.connect() as conn, conn.begin():
        cursor = DriverCursor(conn)
        with pytest.raises(sa.exc.DBAPIError) as caught:
            cursor.execute("SELECT no_such_column FROM runs")
        cursor.close()
    assert not is_transient(caught.value)
