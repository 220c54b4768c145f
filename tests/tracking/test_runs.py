"""Tests for ActiveRun and the fluent API: run lifecycle, the active-run stack, validation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import segue
from segue.config import Settings
from segue.errors import Conflict, InvalidArgument
from segue.store.entities import RunData
from segue.tracking.client import TrackingClient, get_client
from segue.tracking.runs import ActiveRun
from segue.tracking.writer import MetricsLost


@pytest.fixture(autouse=True)
def _no_leftover_runs() -> Iterator[None]:
    """A failing test must not leave its run active for the next one."""
    yield
    while (run := segue.active_run()) is not None:
        run.end("KILLED")


def history(run_id: str, key: str) -> list[tuple[float, int]]:
    return [(m.value, m.step) for m in get_client().metric_history(run_id, key)]


# -- lifecycle ----------------------------------------------------------------------------


def test_clean_exit_finishes_the_run(segue_env):
    with segue.start_run(experiment="life", name="ok") as run:
        assert segue.get_run(run.id).info.status == "RUNNING"
    info = segue.get_run(run.id).info
    assert info.status == "FINISHED"
    assert info.end_time is not None and info.end_time >= info.start_time
    assert info.error is None
    assert (info.experiment_name, info.name) == ("life", "ok")


def test_exception_fails_the_run_records_the_error_and_propagates(segue_env):
    with pytest.raises(ValueError, match="bad batch size"), segue.start_run() as run:
        raise ValueError("bad batch size")
    info = segue.get_run(run.id).info
    assert info.status == "FAILED"
    assert info.end_time is not None
    assert "ValueError" in info.error
    assert "bad batch size" in info.error
    assert "Traceback" in info.error
    assert "test_exception_fails_the_run" in info.error  # the frame that raised
    assert segue.active_run() is None


def test_keyboard_interrupt_kills_the_run(segue_env):
    with pytest.raises(KeyboardInterrupt), segue.start_run() as run:
        raise KeyboardInterrupt
    info = segue.get_run(run.id).info
    assert info.status == "KILLED"
    assert info.end_time is not None
    assert info.error == "KeyboardInterrupt"


def test_plain_call_and_end(segue_env):
    run = segue.start_run(experiment="plain")
    assert segue.active_run() is run
    run.log_metric("loss", 0.5)
    run.end()
    assert segue.active_run() is None
    stored = segue.get_run(run.id)
    assert stored.info.status == "FINISHED"
    assert stored.data.metrics["loss"].value == 0.5


def test_end_twice_is_harmless(segue_env):
    run = segue.start_run()
    run.end()
    first = segue.get_run(run.id).info
    run.end("FAILED")
    with run:  # leaving the block ends again: still a no-op
        pass
    again = segue.get_run(run.id).info
    assert (again.status, again.end_time) == ("FINISHED", first.end_time)


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_end_with_a_status(segue_env, status):
    run = segue.start_run()
    segue.end_run(status)
    assert segue.get_run(run.id).info.status == status


def test_end_with_a_bad_status_is_refused(segue_env):
    run = segue.start_run()
    for status in ("RUNNING", "DONE", ""):
        with pytest.raises(InvalidArgument, match="status"):
            run.end(status)
    assert segue.get_run(run.id).info.status == "RUNNING"
    assert segue.active_run() is run


# -- failures while ending ---------------------------------------------------------------


#: Tests that drop a table: the PostgreSQL database is shared by the whole session.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture
def broken_metrics(segue_env):
    """Make every metric write fail for good (a real fault: the table is gone)."""
    with get_client().store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE metrics")


@sqlite_only
def test_a_failure_while_ending_never_masks_the_users_exception(broken_metrics):
    with (
        pytest.raises(ValueError, match="the user's own bug") as caught,
        segue.start_run(experiment="masking") as run,
    ):
        run.log_metric("acc", 0.5)
        raise ValueError("the user's own bug")
    assert any("could not be ended cleanly" in note for note in caught.value.__notes__)
    assert segue.active_run() is None  # cleared, so the next start_run is not refused
    info = segue.get_run(run.id).info
    assert info.status == "FAILED"  # written, so the reaper will not call it KILLED later
    assert "the user's own bug" in info.error
    assert "1 metric points of run" in info.error
    segue.start_run(experiment="masking").end()


@sqlite_only
def test_points_lost_while_ending_fail_the_run_loudly(broken_metrics):
    with (
        pytest.raises(MetricsLost, match="could not be written"),
        segue.start_run(experiment="lost") as run,
    ):
        run.log_metric("acc", 0.5)
    assert segue.active_run() is None
    info = segue.get_run(run.id).info
    assert info.status == "FAILED" and "could not be written" in info.error


def test_the_final_status_is_written_before_heartbeats_stop(store, content_store, tmp_path):
    config = Settings(home=tmp_path, store_uri="unused", artifact_uri=str(tmp_path / "a"))

    class Spy:
        """The real store; records whether the run was still watched when it ended."""

        def __init__(self) -> None:
            self.watched_at_end: list[bool] = []

        def set_run_status(self, run_id: str, *args: Any, **kwargs: Any) -> None:
            self.watched_at_end.append(run_id in client.writer.watched)
            store.set_run_status(run_id, *args, **kwargs)

        def finish_run(self, run_id: str, *args: Any, **kwargs: Any) -> None:
            # The points and the status in one transaction: how a run usually ends.
            self.watched_at_end.append(run_id in client.writer.watched)
            store.finish_run(run_id, *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

    spy = Spy()
    client = TrackingClient(spy, content_store, config)  # type: ignore[arg-type]
    try:
        run = ActiveRun(client, client.create_run("order"))
        run.end()
    finally:
        client.writer.close()
    assert spy.watched_at_end == [True]
    assert run.id not in client.writer.watched


# -- what MLflow users read -----------------------------------------------------------------


def test_run_info_reads_like_mlflows(segue_env):
    with segue.start_run(experiment="mlflow-like") as run:
        assert run.info.run_id == run.id
        assert run.info.status == "RUNNING" and run.info.end_time is None
    info = run.info
    stored = segue.get_run(run.id).info
    assert (info.run_id, info.experiment_id, info.start_time) == (
        stored.run_id,
        stored.experiment_id,
        stored.start_time,
    )
    assert info.status == stored.status == "FINISHED"
    assert info.end_time == stored.end_time
    assert isinstance(info.end_time, int) and info.end_time >= info.start_time


# -- the active-run stack -------------------------------------------------------------------


def test_second_run_while_one_is_active_is_refused(segue_env):
    with segue.start_run() as outer:
        with pytest.raises(InvalidArgument, match="nested=True") as err:
            segue.start_run()
        assert outer.id in str(err.value)
        assert segue.active_run() is outer
    assert len(segue.search_runs()) == 1


def test_nested_runs_record_their_parent_and_the_stack(segue_env):
    assert segue.active_run() is None
    with segue.start_run(experiment="tune") as parent:
        assert segue.active_run() is parent
        with segue.start_run(nested=True) as child:
            assert segue.active_run() is child
            with segue.start_run(nested=True) as grandchild:
                assert segue.active_run() is grandchild
            assert segue.active_run() is child
        assert segue.active_run() is parent
    assert segue.active_run() is None
    assert parent.info.parent_run_id is None
    assert segue.get_run(child.id).info.parent_run_id == parent.id
    assert segue.get_run(grandchild.id).info.parent_run_id == child.id
    frame = segue.search_runs("tune").set_index("run_id")
    assert frame.loc[child.id, "parent_run_id"] == parent.id
    assert set(frame["status"]) == {"FINISHED"}


def test_the_active_run_is_per_thread(segue_env):
    seen = []
    with segue.start_run():
        worker = threading.Thread(target=lambda: seen.append(segue.active_run()))
        worker.start()
        worker.join()
    assert seen == [None]


def test_shortcuts_act_on_the_active_run(segue_env):
    with segue.start_run() as run:
        segue.log_param("lr", 0.1)
        segue.log_params({"depth": 3, "model": "rf"})
        segue.log_metric("acc", 0.5)
        segue.log_metric("acc", 0.75)
        segue.log_metrics({"loss": 1.5, "f1": 0.25}, step=7)
        segue.set_tag("team", "growth")
        segue.set_tags({"stage": "dev", "priority": 1})
        assert segue.log_text("hello", "notes/readme.txt") == "notes/readme.txt"
        assert segue.log_dict({"a": [1, 2]}, "config.json") == "config.json"
    data = segue.get_run(run.id).data
    assert data.params == {"lr": "0.1", "depth": "3", "model": "rf"}
    assert {k: (m.value, m.step) for k, m in data.metrics.items()} == {
        "acc": (0.75, 1),
        "loss": (1.5, 7),
        "f1": (0.25, 7),
    }
    assert data.tags == {"team": "growth", "stage": "dev", "priority": "1"}
    client = get_client()
    assert client.read_artifact(run.id, "notes/readme.txt") == b"hello"
    assert client.read_artifact(run.id, "config.json").startswith(b"{")


@pytest.mark.parametrize(
    "call",
    [
        lambda: segue.log_param("lr", 0.1),
        lambda: segue.log_params({"lr": 0.1}),
        lambda: segue.log_metric("acc", 0.9),
        lambda: segue.log_metrics({"acc": 0.9}),
        lambda: segue.set_tag("team", "x"),
        lambda: segue.set_tags({"team": "x"}),
        lambda: segue.log_text("hello", "a.txt"),
        lambda: segue.log_dict({"a": 1}, "a.json"),
        lambda: segue.log_artifact(__file__),
        lambda: segue.log_artifacts("."),
        lambda: segue.log_figure(object(), "f.png"),
        lambda: segue.log_dataset({"x": [1]}, "d"),
        lambda: segue.end_run(),
    ],
)
def test_shortcuts_without_an_active_run_raise(tmp_path, monkeypatch, call):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgument, match="no active run"):
        call()
    assert list(tmp_path.iterdir()) == []  # refused before anything was opened


def test_start_run_sets_params_and_tags(segue_env):
    with segue.start_run(params={"C": 1.0, "kernel": "rbf"}, tags={"owner": "ana"}) as run:
        pass
    data = segue.get_run(run.id).data
    assert data.params == {"C": "1.0", "kernel": "rbf"}
    assert data.tags == {"owner": "ana"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"params": {"": 1}}, "param name"),
        ({"params": {"a/../b": 1}}, "param name"),
        ({"tags": {"..": "x"}}, "tag name"),
        ({"name": "  "}, "run name"),
    ],
)
def test_start_run_with_bad_values_stores_nothing(segue_env, kwargs, field):
    with pytest.raises(InvalidArgument, match=field):
        segue.start_run(experiment="never", **kwargs)
    assert segue.active_run() is None
    assert len(segue.search_runs()) == 0
    assert "never" not in [e.name for e in get_client().list_experiments()]


# -- params ---------------------------------------------------------------------------------


def test_params_are_immutable(segue_env):
    with segue.start_run() as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(Conflict, match="'lr'"):
            run.log_param("lr", 0.2)
        with pytest.raises(Conflict, match="'lr'"):
            run.log_params({"fresh": 1, "lr": 0.2})
    # The refused batch is all-or-nothing: 'fresh' was not stored either.
    assert segue.get_run(run.id).data.params == {"lr": "0.1"}


# -- metrics --------------------------------------------------------------------------------


def test_auto_step_counts_from_zero_per_key(segue_env):
    with segue.start_run() as run:
        for value in (0.9, 0.7, 0.5):
            run.log_metric("loss", value)
        run.log_metric("acc", 0.6)
        run.log_metrics({"acc": 0.7, "lr": 0.01})
    assert history(run.id, "loss") == [(0.9, 0), (0.7, 1), (0.5, 2)]
    assert history(run.id, "acc") == [(0.6, 0), (0.7, 1)]
    assert history(run.id, "lr") == [(0.01, 0)]


def test_explicit_steps_and_auto_step_after_them(segue_env):
    with segue.start_run() as run:
        run.log_metric("loss", 1.0, step=10)
        run.log_metric("loss", 0.8, step=5)  # explicit steps need not increase
        run.log_metric("loss", 0.6)  # continues after the highest step seen
    assert history(run.id, "loss") == [(0.8, 5), (1.0, 10), (0.6, 11)]
    assert segue.get_run(run.id).data.metrics["loss"].step == 11


def test_numpy_numbers_are_accepted(segue_env):
    with segue.start_run() as run:
        run.log_metric("acc", np.float32(0.5), step=np.int64(3))
        run.log_metric("n", np.int64(7))
        run.log_metric("x", np.array(2.5))
    metrics = segue.get_run(run.id).data.metrics
    assert (metrics["acc"].value, metrics["acc"].step) == (0.5, 3)
    assert (metrics["n"].value, metrics["x"].value) == (7.0, 2.5)


#: (call, what the message must say): each is refused before anything reaches the store.
INVALID = [
    (lambda r: r.log_param("", 1), "param name"),
    (lambda r: r.log_param("..", 1), "param name"),
    (lambda r: r.log_param("a/../b", 1), "param name"),
    (lambda r: r.log_param("/abs", 1), "param name"),
    (lambda r: r.log_param(3, 1), "param name"),
    (lambda r: r.log_param("x" * 251, 1), "param name"),
    (lambda r: r.log_param("long", "v" * 6001), "param 'long'"),
    (lambda r: r.log_params({"ok": 1, "..": 2}), "param name"),
    (lambda r: r.log_metric("", 1.0), "metric name"),
    (lambda r: r.log_metric("..", 1.0), "metric name"),
    (lambda r: r.log_metric("bad\nkey", 1.0), "metric name"),
    (lambda r: r.log_metric("acc", True), "metric 'acc'.*number"),
    (lambda r: r.log_metric("acc", "0.9"), "metric 'acc'.*number"),
    (lambda r: r.log_metric("acc", None), "metric 'acc'.*number"),
    (lambda r: r.log_metric("acc", b"1"), "metric 'acc'.*number"),
    (lambda r: r.log_metric("acc", np.True_), "metric 'acc'.*number"),
    (lambda r: r.log_metric("acc", np.array(False)), "metric 'acc'.*number"),
    (lambda r: r.log_metric("acc", 1 + 2j), "metric 'acc'.*number"),
    (lambda r: r.log_metric("acc", 0.9, step=1.5), "metric 'acc'.*step"),
    (lambda r: r.log_metric("acc", 0.9, step="1"), "metric 'acc'.*step"),
    (lambda r: r.log_metric("acc", 0.9, step=True), "metric 'acc'.*step"),
    (lambda r: r.log_metrics({"acc": 0.9, "f1": "high"}), "metric 'f1'"),
    (lambda r: r.set_tag("", "x"), "tag name"),
    (lambda r: r.set_tag("..", "x"), "tag name"),
    (lambda r: r.set_tags({"ok": "x", "": "y"}), "tag name"),
]


def test_invalid_keys_and_values_are_refused_and_nothing_is_stored(segue_env):
    # One run for the whole table: a run per case would cost a store setup each.
    with segue.start_run() as run:
        for case, (call, message) in enumerate(INVALID):
            with pytest.raises(InvalidArgument, match=message):
                call(run)
            assert run.get().data == RunData(), f"case {case} stored something"
    assert segue.get_run(run.id).info.status == "FINISHED"


def test_a_refused_metric_batch_does_not_advance_the_auto_step(segue_env):
    with segue.start_run() as run:
        with pytest.raises(InvalidArgument, match="metric 'f1'"):
            run.log_metrics({"acc": 0.5, "f1": "high"})
        run.log_metric("acc", 0.6)
    assert history(run.id, "acc") == [(0.6, 0)]


def test_get_flushes_buffered_metrics(segue_env):
    with segue.start_run() as run:
        run.log_metric("acc", 0.25)
        assert run.get().data.metrics["acc"].value == 0.25


def test_users_may_not_set_segue_tags(segue_env):
    # Segue reads segue.* tags to decide what a run is (a pipeline's step, a cache entry).

    reserved = "tags starting with 'segue.' are written by Segue itself"
    with pytest.raises(InvalidArgument, match=reserved):
        segue.start_run(tags={"segue.step.key": "k"})
    with segue.start_run() as run:
        with pytest.raises(InvalidArgument, match=reserved):
            segue.set_tag("segue.step.key", "k")
        with pytest.raises(InvalidArgument, match=reserved):
            segue.set_tags({"team": "fraud", "segue.step.outputs": "{}"})
        with pytest.raises(InvalidArgument, match=reserved):
            run.set_tag("segue.kind", "pipeline")
        client = get_client()
        with pytest.raises(InvalidArgument, match=reserved):
            client.set_tags(run.id, {"segue.pipeline.run": run.id})
        with pytest.raises(InvalidArgument, match=reserved):
            client.create_run(tags={"segue.kind": "step"})
        segue.set_tag("segue_team", "fraud")  # only the prefix with its dot is reserved
    tags = get_client().get_run(run.id).data.tags
    assert not [key for key in tags if key.startswith("segue.")]
