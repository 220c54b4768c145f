"""The scheduler on SQLite and PostgreSQL, its time given by a fake clock: cron times, alert
firings and new versions start runs once; schedulers racing for one firing run it once; a
dead scheduler's firing is taken over; a long run never stops the other schedules."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy

import segue
from segue.pipelines.scheduler import LaunchOutcome, PipelineLauncher, Scheduler
from segue.pipelines.spec import spec_of
from segue.store.alerts import SqlAlertStore
from segue.store.engine import create_engine, open_engine
from segue.store.entities import NewSchedule, RunInfo
from segue.store.registry import SqlRegistryStore
from segue.store.schedules import SqlScheduleStore
from segue.store.tracking import SqlTrackingStore

UTC = timezone.utc


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """Epoch seconds of December ``day``, 2026, UTC."""
    return datetime(2026, 12, day, hour, minute, second, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A launch that records what it was asked to run and succeeds with a run id per firing;
    ``hold()`` makes the next launches wait until ``release()``."""

    def __init__(self) -> None:
        self.launched: list[tuple[str, str, dict]] = []
        self._gate = threading.Event()
        self._gate.set()
        self.entered = threading.Semaphore(0)

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def __call__(self, schedule, firing) -> LaunchOutcome:
        self.launched.append((schedule.name, firing.key, dict(firing.cause)))
        self.entered.release()
        self._gate.wait(60)
        return LaunchOutcome("succeeded", f"run-{firing.id}")


@pytest.fixture
def clock() -> Clock:
    return Clock(at(6, 10))  # schedules are added at 10:00 on the 6th


@pytest.fixture
def store(store_uri, clock) -> SqlScheduleStore:
    return SqlScheduleStore(open_engine(store_uri), clock=clock)


@pytest.fixture
def launch() -> Recorder:
    return Recorder()


@pytest.fixture
def scheduler(store_uri, store, launch, clock):
    engine = open_engine(store_uri)
    made = Scheduler(
        store,
        launch=launch,
        alerts=SqlAlertStore(engine),
        versions=SqlRegistryStore(engine),
        clock=clock,
        owner="one",
    )
    yield made
    launch.release()
    made.close(grace=None)


def add(store, name="nightly", trigger="cron", spec="0 3 * * *", **fields):
    return store.add(NewSchedule(name, "flows:retrain", trigger, spec, **fields), "local:ada")


def fire(scheduler, now):
    """Tick at ``now`` and wait for what it launched to end."""
    launched = scheduler.tick(now)
    assert scheduler.drain(60)
    return launched


def outcomes(store, name=None):
    return [(f.key, f.status, f.run_id) for f in reversed(store.history(name))]


# -- cron ----------------------------------------------------------------------------------


def test_a_cron_schedule_fires_at_its_times_only(scheduler, store, launch):
    add(store)
    assert fire(scheduler, at(6, 10)) == []
    assert fire(scheduler, at(7, 2, 59, 59)) == []
    [firing] = fire(scheduler, at(7, 3, 0, 5))
    assert firing.key == "cron:2026-12-07T03:00Z" and firing.owner == "one"
    assert fire(scheduler, at(7, 3, 0, 30)) == []
    assert fire(scheduler, at(7, 23, 59)) == []
    fire(scheduler, at(8, 3))
    assert outcomes(store) == [
        ("cron:2026-12-07T03:00Z", "succeeded", f"run-{firing.id}"),
        ("cron:2026-12-08T03:00Z", "succeeded", f"run-{firing.id + 1}"),
    ]
    cause = launch.launched[0][2]
    assert cause == {"kind": "schedule", "schedule": "nightly", "at": "2026-12-07T03:00Z"}


def test_after_downtime_it_fires_once_for_the_latest_missed_time(scheduler, store):
    add(store)
    fire(scheduler, at(7, 3))
    # down from the 7th to the 10th at 05:30: the 8th, 9th and 10th at 03:00 were missed
    [firing] = fire(scheduler, at(10, 5, 30))
    assert firing.key == "cron:2026-12-10T03:00Z"
    assert firing.cause["missed"] == 2
    assert fire(scheduler, at(10, 5, 31)) == []
    assert [key for key, _, _ in outcomes(store)] == [
        "cron:2026-12-07T03:00Z",
        "cron:2026-12-10T03:00Z",
    ]


def test_a_paused_schedule_fires_nothing_and_resumes_from_its_resume(scheduler, store, clock):
    add(store)
    store.set_paused("nightly", True, "local:ada")
    assert fire(scheduler, at(7, 3)) == []
    clock.now = at(7, 12)
    store.set_paused("nightly", False, "local:ada")
    assert fire(scheduler, at(7, 12, 1)) == []  # 03:00 came while paused: skipped
    [firing] = fire(scheduler, at(8, 3))
    assert firing.key == "cron:2026-12-08T03:00Z"


# -- alerts and versions -------------------------------------------------------------------


def test_each_new_alert_firing_starts_one_run_with_its_details(store_uri, scheduler, store, launch):
    alerts = SqlAlertStore(open_engine(store_uri))
    add(store, "on-drift", "alert", "drift")
    before = alerts.record(
        "churn", "drift", "drift_share", 0.9, 0.3, "old", [], at=int(at(6, 9) * 1000)
    )
    assert fire(scheduler, at(6, 10, 1)) == []  # fired before the schedule existed
    first = alerts.record(
        "churn", "drift", "drift_share", 0.5, 0.3, "m", [], at=int(at(6, 11) * 1000)
    )
    alerts.record(
        "churn", "errors", "error_rate", 0.5, 0.1, "other rule", [], at=int(at(6, 11) * 1000)
    )
    second = alerts.record(
        "fraud", "drift", "drift_share", 0.4, 0.3, "m", [], at=int(at(6, 11) * 1000)
    )
    # one firing per schedule at a time: the second alert waits for the next tick
    assert [f.key for f in fire(scheduler, at(6, 11, 1))] == [f"alert:{first.id}"]
    assert [f.key for f in fire(scheduler, at(6, 11, 2))] == [f"alert:{second.id}"]
    assert fire(scheduler, at(6, 11, 3)) == []
    assert [key for _, key, _ in launch.launched] == [f"alert:{first.id}", f"alert:{second.id}"]
    cause = launch.launched[0][2]
    assert (cause["kind"], cause["rule"], cause["alert"], cause["model"], cause["value"]) == (
        "alert",
        "drift",
        first.id,
        "churn",
        0.5,
    )
    assert store.get("on-drift").cursor["alert_id"] == second.id
    assert before.id < first.id


def test_an_alert_run_gets_the_details_its_pipeline_declares_as_params(store_uri, store, clock):
    calls = []

    @segue.pipeline
    def retrain(model: str = "churn", alert_id: int = 0, alert_value: float = 0.0):
        raise AssertionError("the runtime runs it, not the launcher")

    class Result:
        status, run_id, error = "FINISHED", "r1", None

    def run(spec, target, params, **options):
        calls.append((spec, target, params, options))
        return Result()

    engine = open_engine(store_uri)
    alerts = SqlAlertStore(engine)
    scheduler = Scheduler(
        store,
        launch=PipelineLauncher(
            run=run,
            load=lambda target: (spec_of(retrain), target),
            ray_address="ray://trusted:10001",
        ),
        alerts=alerts,
        clock=clock,
        owner="one",
    )
    # A Ray address stored with the schedule (as older versions allowed) is never used: the
    # scheduler's own environment would go to that cluster.
    options = {"executor": "ray", "address": "ray://elsewhere:10001"}
    add(store, "on-drift", "alert", "drift", params={"model": "fraud"}, options=options)
    fired = alerts.record(
        "fraud", "drift", "drift_share", 0.5, 0.3, "m", [], at=int(at(6, 11) * 1000)
    )
    [firing] = fire(scheduler, at(6, 11, 1))
    [(spec, target, params, options)] = calls
    assert (spec, target) == (spec_of(retrain), "flows:retrain")
    assert params == {"model": "fraud", "alert_id": fired.id, "alert_value": 0.5}
    assert options["executor"] == "ray" and options["address"] == "ray://trusted:10001"
    assert options["cause"] == {**firing.cause, "firing": firing.id}
    assert options["cause"]["kind"] == "alert" and options["cause"]["signal"] == "drift_share"
    assert outcomes(store) == [(f"alert:{fired.id}", "succeeded", "r1")]


def _version(store_uri, registry, n_runs=1):
    tracking = SqlTrackingStore(open_engine(store_uri))
    experiment = tracking.create_experiment(f"exp-{uuid.uuid4().hex[:6]}")
    info = RunInfo(
        uuid.uuid4().hex,
        experiment.id,
        experiment.name,
        "train",
        "FINISHED",
        0,
        0,
        0,
        "ada",
        "box",
        "3.11",
    )
    run = tracking.create_run(info)
    return registry.create_version("churn", run.id, "model", "d" * 64, "sklearn", "local:ada")


def test_each_new_version_starts_one_run_with_model_and_version(
    store_uri, scheduler, store, launch, clock
):
    registry = SqlRegistryStore(open_engine(store_uri))
    clock.now = 0.0  # the registry dates versions by the wall clock: make them all later
    add(store, "on-churn", "version", "churn")
    assert fire(scheduler, at(6, 10, 1)) == []  # the model is not registered yet
    registry.create_model("churn", "local:ada")
    v1 = _version(store_uri, registry)
    v2 = _version(store_uri, registry)
    assert [f.key for f in fire(scheduler, at(6, 11))] == ["version:churn/1"]
    assert [f.key for f in fire(scheduler, at(6, 11, 1))] == ["version:churn/2"]
    assert fire(scheduler, at(6, 11, 2)) == []
    cause = launch.launched[1][2]
    assert (cause["kind"], cause["model"], cause["version"], cause["run"]) == (
        "version",
        "churn",
        2,
        v2.run_id,
    )
    assert v1.version == 1


# -- leases, races and concurrency ---------------------------------------------------------


def _other(store_uri, clock, launch, owner):
    """A second scheduler with engines of its own, as another process has."""
    engine = create_engine(store_uri)
    return Scheduler(
        SqlScheduleStore(engine, clock=clock),
        launch=launch,
        alerts=SqlAlertStore(engine),
        versions=SqlRegistryStore(engine),
        clock=clock,
        owner=owner,
    )


def _together(calls):
    """Run the ``calls`` in threads released at once; their results, in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def work(i):
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a racer is stuck"
    return results


def test_two_schedulers_racing_for_one_firing_run_it_once(store_uri, store, clock):
    add(store)
    launches = [Recorder() for _ in range(4)]
    schedulers = [_other(store_uri, clock, launches[i], f"s{i}") for i in range(4)]
    results = _together([lambda made=made: made.tick(at(7, 3)) for made in schedulers])
    for made in schedulers:
        made.close(grace=None)
    assert sorted(len(r) for r in results) == [0, 0, 0, 1], results
    assert sum(len(launch.launched) for launch in launches) == 1
    [(key, status, _)] = outcomes(store)
    assert (key, status) == ("cron:2026-12-07T03:00Z", "succeeded")


def test_a_dead_scheduler_s_firing_is_taken_over_once_its_lease_expires(store_uri, store, clock):
    add(store)
    stuck, alive = Recorder(), Recorder()
    stuck.hold()
    dead = _other(store_uri, clock, stuck, "dead")
    other = _other(store_uri, clock, alive, "alive")
    [first] = dead.tick(at(7, 3))
    assert stuck.entered.acquire(timeout=60)
    # the dead scheduler stops ticking, so stops renewing: within the lease nothing moves
    assert other.tick(at(7, 3, 0, 59)) == []
    [retry] = other.tick(at(7, 3, 1, 1))
    assert (retry.key, retry.attempt, retry.owner) == ("cron:2026-12-07T03:00Z~2", 2, "alive")
    assert other.drain(60)
    # the dead one comes back and ends: its outcome is refused, the failure is kept
    stuck.release()
    assert dead.drain(60)
    history = store.history()
    assert [(f.id, f.status) for f in history] == [(retry.id, "succeeded"), (first.id, "failed")]
    assert history[1].error.startswith("lease expired: scheduler dead stopped renewing it")
    assert history[0].cause["retry_of"] == first.id
    dead.close(grace=None)
    other.close(grace=None)


def test_a_running_firing_s_lease_is_renewed_by_each_tick(scheduler, store, launch):
    add(store)
    launch.hold()
    [firing] = scheduler.tick(at(7, 3))
    assert launch.entered.acquire(timeout=60)
    for minute in range(1, 6):
        scheduler.tick(at(7, 3, minute))
    assert store.get_firing(firing.id).lease_until == int(at(7, 3, 5) * 1000) + 60_000
    assert store.expired(int(at(7, 3, 5, 59) * 1000)) == []
    launch.release()
    assert scheduler.drain(60)
    assert store.get_firing(firing.id).status == "succeeded"


def test_a_long_run_never_stops_the_other_schedules(store_uri, store, clock):
    slow, quick = Recorder(), Recorder()
    slow.hold()
    launchers = {"a-slow": slow, "b-quick": quick}
    scheduler = Scheduler(
        store,
        launch=lambda schedule, firing: launchers[schedule.name](schedule, firing),
        clock=clock,
        owner="one",
        workers=2,
    )
    add(store, "a-slow", spec="0 3 * * *")
    add(store, "b-quick", spec="*/10 * * * *")
    first = {f.schedule: f for f in scheduler.tick(at(7, 3))}
    assert set(first) == {"a-slow", "b-quick"}
    assert scheduler.wait(first["b-quick"].id, 60)
    for minute in (10, 20, 30):
        [firing] = scheduler.tick(at(7, 3, minute))
        assert firing.schedule == "b-quick"
        assert scheduler.wait(firing.id, 60)
    assert [f.schedule for f in scheduler.running] == ["a-slow"]
    slow.release()
    assert scheduler.drain(60)
    assert len(quick.launched) == 4 and len(slow.launched) == 1
    scheduler.close(grace=None)


def test_no_more_than_workers_firings_run_at_once(store, clock):
    launch = Recorder()
    launch.hold()
    scheduler = Scheduler(store, launch=launch, clock=clock, owner="one", workers=1)
    add(store, "a")
    add(store, "b")
    assert [f.schedule for f in scheduler.tick(at(7, 3))] == ["a"]
    assert scheduler.tick(at(7, 3, 1)) == []  # the slot is taken: b stays due
    launch.release()
    assert scheduler.drain(60)
    assert [f.schedule for f in scheduler.tick(at(7, 3, 2))] == ["b"]
    assert scheduler.drain(60)
    # the least recently launched goes first when both are due
    launch.hold()
    assert [f.schedule for f in scheduler.tick(at(8, 3))] == ["a"]
    launch.release()
    scheduler.close(grace=None)


# -- outcomes ------------------------------------------------------------------------------


def test_a_launch_that_raises_fails_its_firing_with_the_error(store, clock):
    def broken(schedule, firing):
        raise RuntimeError("no such table: churn")

    scheduler = Scheduler(store, launch=broken, clock=clock, owner="one")
    add(store)
    fire(scheduler, at(7, 3))
    [firing] = store.history()
    assert (firing.status, firing.error) == ("failed", "RuntimeError: no such table: churn")
    fire(scheduler, at(8, 3))  # the schedule goes on
    assert len(store.history()) == 2


def test_a_schedule_that_cannot_be_evaluated_never_stops_the_others(
    scheduler, store, launch, caplog
):
    # Stored before add checked that a cron expression fires: the 31st of February.
    add(store, "impossible", spec="0 0 31 2 *")
    add(store, "nightly")
    with caplog.at_level("ERROR", logger="segue.scheduler"):
        launched = fire(scheduler, at(7, 3))
        assert [f.schedule for f in launched] == ["nightly"]
    assert [name for name, _, _ in launch.launched] == ["nightly"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(e.startswith("schedule impossible: ") for e in errors), errors
    assert [f.schedule for f in fire(scheduler, at(8, 3))] == ["nightly"]  # and it goes on


def test_a_loop_schedule_is_launched_by_the_loop_launcher(store, clock):
    pipeline, loop = Recorder(), Recorder()

    def cycle(schedule, firing):
        loop(schedule, firing)
        steps = [{"step": "retrain", "status": "ok", "at": 1, "detail": {}}]
        return LaunchOutcome("blocked", "r9", "gate refused", steps)

    add(store, "churn", loop="churn", options={"loop": {"model": "churn", "promote_to": "c"}})
    add(store, "plain", spec="0 3 * * *")
    without = Scheduler(store, launch=pipeline, clock=clock, owner="one")
    fire(without, at(7, 3))
    assert {f.schedule: (f.status, f.error) for f in store.history()}["churn"] == (
        "failed",
        "schedule 'churn' belongs to loop 'churn', and this scheduler launches no loops",
    )
    with_loop = Scheduler(store, launch=pipeline, launchers={"loop": cycle}, clock=clock)
    fire(with_loop, at(8, 3))
    latest = store.history("churn")[0]
    assert (latest.status, latest.run_id, latest.error) == ("blocked", "r9", "gate refused")
    assert latest.steps[0]["step"] == "retrain"
    assert [name for name, _, _ in pipeline.launched] == ["plain", "plain"]
    assert [name for name, _, _ in loop.launched] == ["churn"]


def test_closing_fails_the_firings_still_running_and_keeps_that(store, clock):
    launch = Recorder()
    launch.hold()
    scheduler = Scheduler(store, launch=launch, clock=clock, owner="one")
    add(store)
    [firing] = scheduler.tick(at(7, 3))
    assert launch.entered.acquire(timeout=60)
    scheduler.close(grace=0)
    failed = store.get_firing(firing.id)
    assert failed.status == "failed"
    assert failed.error == "scheduler one stopped before this firing ended; its run was abandoned"
    assert scheduler.tick(at(8, 3)) == []  # closed: claims nothing
    launch.release()
    assert scheduler.drain(60)
    assert store.get_firing(firing.id).status == "failed"


class _OneTick(threading.Event):
    """A stop event that is set the first time the scheduler waits on it."""

    def wait(self, timeout=None):
        self.set()
        return True


def test_close_keeps_the_leases_of_the_firings_it_waits_for(store_uri):
    # segue scheduler --once ticks once, then waits in close() for what it started: a run
    # longer than the lease must still hold it (a loop cycle checks before it promotes).
    store = SqlScheduleStore(open_engine(store_uri))  # the real clock, as the lease's
    held = []

    def slow(schedule, firing):
        time.sleep(1.0)  # three leases long
        held.append(store.holds(firing.id, firing.owner, int(time.time() * 1000)))
        return LaunchOutcome("succeeded", "r1")

    alerts = SqlAlertStore(open_engine(store_uri))
    scheduler = Scheduler(store, launch=slow, alerts=alerts, owner="one", lease_s=0.3)
    add(store, "on-drift", "alert", "drift")
    alerts.record("fraud", "drift", "drift_share", 0.5, 0.3, "m", [], at=int(time.time() * 1000))
    [launched] = scheduler.tick()
    scheduler.close(grace=None)
    assert held == [True]
    assert store.get_firing(launched.id).status == "succeeded"


def test_run_forever_ticks_until_stopped_then_waits_for_its_firings(store, clock, launch):
    scheduler = Scheduler(store, launch=launch, clock=clock, owner="one")
    add(store)
    clock.now = at(7, 3)
    scheduler.run_forever(_OneTick(), interval=10, grace=None)
    [firing] = store.history()
    assert (firing.key, firing.status) == ("cron:2026-12-07T03:00Z", "succeeded")
    assert scheduler.running == []


class _Flaky(SqlScheduleStore):
    """A store whose database is unreachable for the first ``finish``: an outage cannot be
    caused on demand in the middle of a firing otherwise."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outages = 1

    def finish(self, firing_id, status, **kwargs):
        if self.outages:
            self.outages -= 1
            raise sqlalchemy.exc.TimeoutError("QueuePool limit reached")
        return super().finish(firing_id, status, **kwargs)


def test_an_outcome_the_store_could_not_take_is_recorded_on_the_next_tick(store_uri, clock):
    flaky = _Flaky(open_engine(store_uri), clock=clock)
    scheduler = Scheduler(flaky, launch=Recorder(), clock=clock, owner="one")
    add(flaky)
    [firing] = scheduler.tick(at(7, 3))
    assert scheduler.wait(firing.id, 60) and flaky.outages == 0
    assert flaky.get_firing(firing.id).status == "running"  # held, its lease renewed
    assert [f.id for f in scheduler.running] == [firing.id]
    assert scheduler.tick(at(7, 3, 1)) == []
    assert flaky.get_firing(firing.id).status == "succeeded"
    assert scheduler.running == []
