"""Tests for the background metric writer: batching, flushing, retries and heartbeats."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from segue.config import Settings
from segue.errors import InvalidArgument, NotFound
from segue.store.entities import Metric
from segue.tracking.client import TrackingClient
from segue.tracking.runs import ActiveRun
from segue.tracking.writer import MetricsLost, MetricWriter


def locked() -> sa.exc.OperationalError:
    """A transient error, as SQLAlchemy raises it when SQLite stays locked."""
    return sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))


def refused() -> sa.exc.IntegrityError:
    """A permanent error: the same batch fails the same way on every retry."""
    return sa.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("CHECK constraint failed"))


class FakeStore:
    """The two store calls the writer makes, recorded; ``failures`` are raised first, in order."""

    def __init__(self, failures: Sequence[Exception] = ()) -> None:
        self.batches: list[tuple[str, list[Metric]]] = []
        self.heartbeats: list[tuple[list[str], int]] = []
        self.failures = list(failures)
        self.heartbeat_failures: list[Exception] = []
        self._lock = threading.Lock()

    def log_batch(self, run_id: str, *, metrics: Sequence[Metric] = (), **_: Any) -> None:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)
            self.batches.append((run_id, list(metrics)))

    def heartbeat(self, run_ids: Sequence[str], now: int) -> None:
        with self._lock:
            if self.heartbeat_failures:
                raise self.heartbeat_failures.pop(0)
            self.heartbeats.append((sorted(run_ids), now))

    def points(self, run_id: str) -> list[Metric]:
        with self._lock:
            return [p for rid, batch in self.batches if rid == run_id for p in batch]


class CountingStore:
    """A real store whose writes of metric points are counted."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.metric_batches = 0

    def log_batch(self, run_id: str, **kwargs: Any) -> None:
        if kwargs.get("metrics"):
            self.metric_batches += 1
        self._inner.log_batch(run_id, **kwargs)

    def log_metric_columns(self, run_id: str, metrics: Any, **kwargs: Any) -> None:
        if metrics:
            self.metric_batches += 1
        self._inner.log_metric_columns(run_id, metrics, **kwargs)

    def finish_run(self, run_id: str, metrics: Any, *args: Any, **kwargs: Any) -> None:
        """A run's last points, written with its status in one transaction."""
        if metrics:
            self.metric_batches += 1
        self._inner.finish_run(run_id, metrics, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FakeClock:
    """Wall-clock seconds that only move when told; counts how often it was read."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def wait_for(condition: Callable[[], object], timeout: float = 120.0) -> None:  # a hang guard
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.005)


def points(n: int, key: str = "x", start: int = 0) -> list[Metric]:
    return [Metric(key, float(i), i, 0) for i in range(start, start + n)]


@pytest.fixture
def writers() -> Iterator[Callable[..., MetricWriter]]:
    """Make writers that are closed after the test, so no thread outlives it."""
    made: list[MetricWriter] = []

    def make(store: Any, **kwargs: Any) -> MetricWriter:
        kwargs.setdefault("heartbeat_interval", 3600)
        made.append(MetricWriter(store, **kwargs))
        return made[-1]

    yield make
    for writer in made:
        with contextlib.suppress(Exception):  # a test may leave a failure queued on purpose
            writer.close()


def make_client(store: Any, content_store: Any, tmp_path: Path, **config: Any) -> TrackingClient:
    settings = Settings(
        home=tmp_path, store_uri="unused", artifact_uri=str(tmp_path / "artifacts"), **config
    )
    return TrackingClient(store, content_store, settings)


# -- batching -------------------------------------------------------------------------------


def test_points_are_batched(writers):
    fake = FakeStore()
    writer = writers(fake, flush_interval=3600)  # only the flush below writes
    for p in points(1000):
        writer.add("r1", [p])
    writer.flush()
    assert fake.points("r1") == points(1000)  # in order, each once
    assert len(fake.batches) == 1


def test_log_metric_reaches_a_real_store_in_a_handful_of_batches(store, content_store, tmp_path):
    counting = CountingStore(store)
    client = make_client(counting, content_store, tmp_path, flush_interval=3600)
    try:
        run = ActiveRun(client, client.create_run("batching"))
        for i in range(1000):
            run.log_metric("loss", 1.0 / (i + 1))
        run.end()  # the only write: no timer fires within the test
    finally:
        client.writer.close()
    history = store.get_metric_history(run.id, "loss")
    assert [m.step for m in history] == list(range(1000))
    assert counting.metric_batches == 1


def test_a_full_buffer_wakes_the_writer_early(writers):
    fake = FakeStore()
    writer = writers(fake, flush_interval=3600)
    writer.add("r1", points(5_000))
    wait_for(lambda: len(fake.points("r1")) == 5_000)


# -- when points are written ----------------------------------------------------------------


def test_ending_a_run_flushes_its_points(store, content_store, tmp_path):
    client = make_client(store, content_store, tmp_path, flush_interval=3600)
    try:
        run = ActiveRun(client, client.create_run("flush"))
        for i in range(10):
            run.log_metric("acc", i / 10)
        assert store.get_metric_history(run.id, "acc") == []  # still buffered
        run.end()
        assert [m.step for m in store.get_metric_history(run.id, "acc")] == list(range(10))
    finally:
        client.writer.close()


def test_the_background_thread_flushes_within_the_interval(writers):
    fake = FakeStore()
    writer = writers(fake, flush_interval=0.1)
    writer.add("r1", points(3))  # too few to wake the writer early, and nobody flushes:
    wait_for(lambda: fake.points("r1"), timeout=60)  # only the interval's timer can write
    assert fake.points("r1") == points(3)


def test_the_background_thread_flushes_to_a_real_store(client, store):
    # The ``client`` fixture flushes every 0.05 s; read the store directly, not through the
    # client, which would flush first.
    run = ActiveRun(client, client.create_run("background"))
    run.log_metric("acc", 0.5)
    run.log_metric("acc", 0.75)
    wait_for(lambda: len(store.get_metric_history(run.id, "acc")) == 2)
    assert store.get_run(run.id).data.metrics["acc"].value == 0.75


def test_flush_of_one_run_leaves_the_others_buffered(writers):
    fake = FakeStore()
    writer = writers(fake, flush_interval=3600)
    writer.add("r1", points(2))
    writer.add("r2", points(3))
    writer.flush("r1")
    assert fake.batches == [("r1", points(2))]
    writer.flush()
    assert fake.batches == [("r1", points(2)), ("r2", points(3))]


def test_close_flushes_and_stops_the_thread(writers):
    fake = FakeStore()
    before = set(threading.enumerate())
    writer = writers(fake, flush_interval=3600)
    writer.add("r1", points(4))
    started = [t for t in threading.enumerate() if t not in before]
    assert [t.name for t in started] == ["segue-metric-writer"]
    writer.close()
    assert fake.points("r1") == points(4)
    assert not started[0].is_alive()
    writer.add("r1", points(1, start=4))  # a closed writer still accepts points
    writer.close()
    assert fake.points("r1") == points(5)


# -- failures -------------------------------------------------------------------------------


def test_a_transient_failure_requeues_the_points(writers):
    fake = FakeStore(failures=[locked()])
    writer = writers(fake, flush_interval=3600)
    writer.add("r1", points(3))
    with pytest.raises(sa.exc.OperationalError, match="locked"):
        writer.flush()
    assert fake.batches == []
    writer.add("r1", points(2, start=3))
    writer.flush()
    assert fake.batches == [("r1", points(5))]  # the old points first, none lost or doubled


class ColumnStore(FakeStore):
    """A store that takes points as columns per key, as the SQL store does."""

    def __init__(self, failures: Sequence[Exception] = ()) -> None:
        super().__init__(failures)
        self.column_batches: list[tuple[str, dict[str, Any]]] = []

    def log_batch(self, run_id: str, **_: Any) -> None:
        raise AssertionError("a store taking columns gets columns")

    def log_metric_columns(self, run_id: str, metrics: Any, **_: Any) -> None:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)
            copied = {k: tuple(list(c) for c in cols) for k, cols in metrics.items()}
            self.column_batches.append((run_id, copied))


def test_a_store_taking_columns_gets_each_keys_points_as_logged_after_a_retry(writers):
    store = ColumnStore(failures=[locked()])
    writer = writers(store, flush_interval=3600)
    writer.add_one("r1", "loss", 0.5, 0, 10)
    writer.add("r1", [Metric("acc", 0.1, 0, 10), Metric("loss", 0.4, 1, 11)])
    with pytest.raises(sa.exc.OperationalError, match="locked"):
        writer.flush()
    assert writer.backlog == 3
    writer.add_one("r1", "loss", 0.3, 2, 12)  # logged after the failed write: after its points
    writer.add_one("r1", "f1", 0.9, 0, 12)
    writer.flush()
    assert store.column_batches == [
        (
            "r1",
            {
                "loss": ([0.5, 0.4, 0.3], [0, 1, 2], [10, 11, 12]),
                "acc": ([0.1], [0], [10]),
                "f1": ([0.9], [0], [12]),
            },
        )
    ]
    assert writer.backlog == 0


class LoggingWhileFailing(ColumnStore):
    """A store whose failing writes take long enough for the run to log more points."""

    def __init__(self, failures: Sequence[Exception], during: Any) -> None:
        super().__init__(failures)
        self.during = during

    def log_metric_columns(self, run_id: str, metrics: Any, **kwargs: Any) -> None:
        if self.failures:
            self.during()
        super().log_metric_columns(run_id, metrics, **kwargs)


def test_points_logged_during_a_failed_write_are_counted_once(writers):
    # The backlog counts each point once after a retry merges the taken points with the ones
    # logged meanwhile: a count too high would fill the backlog with phantoms and block.
    holder: list[Any] = []
    logged = iter(range(2, 100))

    def log_two_more() -> None:
        for _ in range(2):
            step = next(logged)
            holder[0].add_one("r1", "loss", float(step), step, step)

    store = LoggingWhileFailing([locked(), locked(), locked()], log_two_more)
    writer = writers(store, flush_interval=3600, max_backlog=10)
    holder.append(writer)
    writer.add_one("r1", "loss", 0.0, 0, 0)
    writer.add_one("r1", "loss", 1.0, 1, 1)
    for round_ in range(3):
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            writer.flush()
        assert writer.backlog == 2 + 2 * (round_ + 1)
    writer.add_one("r1", "loss", 8.0, 8, 8)  # room left: the count is not inflated
    writer.flush()
    assert writer.backlog == 0
    assert store.column_batches[0][0] == "r1"
    columns = store.column_batches[0][1]
    assert columns["loss"][1] == list(range(9))  # in the order logged, none lost or doubled


def test_the_background_thread_retries_transient_failures(writers):
    fake = FakeStore(failures=[locked(), locked()])
    writer = writers(fake, flush_interval=0.02)
    writer.add("r1", points(50))
    wait_for(lambda: fake.points("r1"))
    assert fake.points("r1") == points(50)
    assert fake.failures == []


def test_points_of_a_missing_run_are_dropped(writers):
    fake = FakeStore(failures=[NotFound("run 'gone' does not exist")])
    writer = writers(fake, flush_interval=3600)
    writer.add("gone", points(3))
    writer.add("live", points(2))
    with pytest.raises(NotFound, match="gone"):
        writer.flush()
    assert fake.batches == [("live", points(2))]  # the other run was still written
    writer.flush()
    assert fake.batches == [("live", points(2))]  # and 'gone' is not retried


def test_a_background_flush_does_not_raise(writers):
    fake = FakeStore(failures=[locked()])
    writer = writers(fake, flush_interval=3600)
    writer.add("r1", points(1))
    writer.flush(background=True)
    writer.flush()
    assert fake.points("r1") == points(1)


def test_a_permanent_failure_drops_the_batch_and_is_reported_not_retried(writers):
    fake = FakeStore(failures=[refused()])
    writer = writers(fake, flush_interval=3600)
    writer.add("bad", points(3))
    writer.add("good", points(2))
    with pytest.raises(MetricsLost, match=r"3 metric points of run bad .*CHECK constraint") as lost:
        writer.flush()
    assert lost.value.count == 3
    assert fake.batches == [("good", points(2))]  # the other run was written
    writer.add("bad", points(1, start=3))
    writer.flush()  # no poison pill: later points of the same run go through
    assert fake.points("bad") == points(1, start=3)


def test_a_permanent_failure_in_the_background_is_raised_by_the_runs_next_flush(writers, caplog):
    fake = FakeStore(failures=[refused()])
    writer = writers(fake, flush_interval=3600)
    writer.add("bad", points(4))
    with caplog.at_level(logging.ERROR, "segue.tracking.writer"):
        writer.flush(background=True)
    assert "4 metric points of run bad could not be written" in caplog.text
    writer.flush("other")  # another run's flush does not report it
    with pytest.raises(MetricsLost, match="4 metric points of run bad"):
        writer.flush("bad")
    writer.flush("bad")  # reported once


class GatedStore(FakeStore):
    """A store whose writes wait until ``gate`` is set; ``entered`` is set on the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def log_batch(self, run_id: str, *, metrics: Sequence[Metric] = (), **_: Any) -> None:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        super().log_batch(run_id, metrics=metrics)


def _fill(writer: MetricWriter, store: GatedStore) -> None:
    """Leave 10 points in flight (the writer is stuck writing them) and 10 in the backlog."""
    writer.add("r1", points(10))  # a full backlog wakes the writer, which takes them out
    assert store.entered.wait(30)
    writer.add("r1", points(10, start=10))
    assert writer.backlog == 10


def test_a_full_backlog_blocks_logging_until_the_writer_makes_room(writers):
    store = GatedStore()
    writer = writers(store, flush_interval=3600, max_backlog=10, when_full="block")
    _fill(writer, store)
    blocked = threading.Thread(target=writer.add, args=("r1", points(3, start=20)))
    blocked.start()
    wait_for(lambda: writer.waiting == 1)  # the call waits instead of growing the backlog
    assert writer.backlog == 10
    store.gate.set()
    blocked.join(30)
    assert not blocked.is_alive()
    writer.flush()
    assert store.points("r1") == points(23)  # nothing lost, in order


def test_a_full_backlog_drops_new_points_with_a_counted_warning(writers, caplog):
    store = GatedStore()
    writer = writers(store, flush_interval=3600, max_backlog=10, when_full="drop")
    _fill(writer, store)
    with caplog.at_level(logging.WARNING, "segue.tracking.writer"):
        writer.add("r1", points(3, start=20))
        writer.add("r2", points(2))
    assert writer.dropped == {"r1": 3, "r2": 2}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once per episode of a full backlog, not once per call
    assert "backlog is full (10 points)" in warnings[0] and "3 dropped so far" in warnings[0]
    store.gate.set()
    writer.flush()
    assert store.points("r1") == points(20)
    assert writer.waiting == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [({"when_full": "wait"}, "when_full"), ({"max_backlog": 0}, "max_backlog")],
)
def test_bad_backlog_options_are_refused(options, field):
    with pytest.raises(InvalidArgument, match=field):
        MetricWriter(FakeStore(), **options)


# -- heartbeats -----------------------------------------------------------------------------


def test_heartbeats_are_sent_for_watched_runs_on_the_injected_clock(writers):
    fake, clock = FakeStore(), FakeClock(1_000.0)
    writer = writers(fake, flush_interval=0.005, heartbeat_interval=10, clock=clock)
    writer.watch("r1")
    writer.watch("r2")
    wait_for(lambda: fake.heartbeats)
    assert fake.heartbeats == [(["r1", "r2"], 1_000_000)]

    clock.now += 5  # less than the interval: the loop keeps running but sends nothing
    reads = clock.reads
    wait_for(lambda: clock.reads >= reads + 3)
    assert len(fake.heartbeats) == 1

    writer.unwatch("r2")
    clock.now += 6
    wait_for(lambda: len(fake.heartbeats) == 2)
    assert fake.heartbeats[1] == (["r1"], 1_011_000)

    writer.unwatch("r1")
    clock.now += 60
    reads = clock.reads
    wait_for(lambda: clock.reads >= reads + 3)
    assert len(fake.heartbeats) == 2  # nothing to watch, nothing sent


def test_a_failed_heartbeat_is_retried_on_the_next_tick(writers):
    fake, clock = FakeStore(), FakeClock()
    fake.heartbeat_failures = [RuntimeError("down")]
    writer = writers(fake, flush_interval=0.005, heartbeat_interval=10, clock=clock)
    writer.watch("r1")
    wait_for(lambda: fake.heartbeats)
    assert fake.heartbeats == [(["r1"], 1_000_000)]  # without waiting another interval


def test_a_live_run_keeps_its_heartbeat_fresh(store, content_store, tmp_path):
    clock = FakeClock(1_000.0)
    client = TrackingClient(
        store,
        content_store,
        Settings(
            home=tmp_path,
            store_uri="unused",
            artifact_uri=str(tmp_path / "artifacts"),
            heartbeat_interval=1.0,
            flush_interval=0.005,
        ),
        clock=clock,
    )
    try:
        info = client.create_run("alive")
        assert store.get_run(info.id).info.heartbeat_at == 1_000_000
        clock.now = 1_100.0
        wait_for(lambda: store.get_run(info.id).info.heartbeat_at == 1_100_000)
        client.end_run(info.id)
        clock.now = 1_200.0
        reads = clock.reads
        wait_for(lambda: clock.reads >= reads + 3)
        assert store.get_run(info.id).info.heartbeat_at == 1_100_000  # ended: not watched
    finally:
        client.writer.close()


@pytest.mark.parametrize("when_full", ["block", "drop"])
def test_one_point_at_a_time_follows_the_backlog_policy(writers, when_full):
    """add_one (what log_metric calls) waits or drops on a full backlog as add does."""
    store = GatedStore()
    writer = writers(store, flush_interval=3600, max_backlog=10, when_full=when_full)
    _fill(writer, store)
    extra = points(2, start=20)
    adding = threading.Thread(
        target=lambda: [writer.add_one("r1", p.key, p.value, p.step, p.timestamp) for p in extra]
    )
    adding.start()
    if when_full == "block":
        wait_for(lambda: writer.waiting == 1)
        assert writer.backlog == 10
    else:
        adding.join(30)
        assert writer.dropped == {"r1": 2}
    store.gate.set()
    adding.join(30)
    assert not adding.is_alive()
    writer.flush()
    assert store.points("r1") == points(22 if when_full == "block" else 20)
