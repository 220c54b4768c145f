"""The schedule store on SQLite and PostgreSQL: schedules, claims that only one scheduler
wins, leases that expire and are taken over, and outcomes that are never rewritten."""

from __future__ import annotations

import pytest

from segue.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from segue.store.engine import create_engine, open_engine
from segue.store.entities import NewSchedule
from segue.store.schedules import MAX_ATTEMPTS, SqlScheduleStore

T0 = 1_796_526_000_000  # epoch ms: 2026-12-06T03:00:00Z
KEY = "cron:2026-12-06T03:00Z"
CAUSE = {"kind": "schedule", "schedule": "nightly"}


class Clock:
    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(store_uri: str, clock: Clock) -> SqlScheduleStore:
    return SqlScheduleStore(open_engine(store_uri), clock=clock)


def nightly(**fields) -> NewSchedule:
    values = {
        "name": "nightly",
        "pipeline": "flows:retrain",
        "trigger": "cron",
        "spec": "0 3 * * *",
        "params": {"model": "churn", "C": 0.5},
        "options": {"executor": "local"},
    }
    return NewSchedule(**(values | fields))


def test_a_schedule_comes_back_as_added(store, clock):
    added = store.add(nightly(), "local:ada")
    assert (added.name, added.pipeline, added.trigger, added.spec) == (
        "nightly",
        "flows:retrain",
        "cron",
        "0 3 * * *",
    )
    assert added.params == {"model": "churn", "C": 0.5}
    assert added.options == {"executor": "local"}
    assert (added.paused, added.loop, added.created_by, added.created_at) == (
        False,
        None,
        "local:ada",
        T0,
    )
    assert added.cursor == {"at": T0}  # nothing before the creation fires it
    assert store.get("nightly") == added
    assert store.list() == [added]


def test_schedules_are_listed_by_name(store):
    for name in ("b", "a", "c"):
        store.add(nightly(name=name), "local:ada")
    assert [s.name for s in store.list()] == ["a", "b", "c"]


def test_a_duplicate_name_is_refused_and_the_first_kept(store):
    first = store.add(nightly(), "local:ada")
    with pytest.raises(AlreadyExists, match="nightly"):
        store.add(nightly(pipeline="other:fn"), "local:bob")
    assert store.get("nightly") == first


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"name": "bad name"}, "schedule name"),
        ({"name": "x\n"}, "schedule name"),
        ({"trigger": "weekly"}, "trigger"),
        ({"spec": " "}, "spec"),
        ({"pipeline": ""}, "pipeline"),
        ({"params": {"x": float("nan")}}, "params"),
        ({"params": {"x": object()}}, "params"),
        ({"options": ["executor"]}, "options"),
    ],
)
def test_malformed_schedules_are_refused(store, fields, word):
    with pytest.raises(InvalidArgument, match=word):
        store.add(nightly(**fields), "local:ada")
    assert store.list() == []


def test_unknown_names_are_not_found(store):
    for call in (
        lambda: store.get("nope"),
        lambda: store.set_paused("nope", True, "local:ada"),
        lambda: store.remove("nope", "local:ada"),
        lambda: store.advance("nope", {"fired": T0}),
        lambda: store.history("nope"),
        lambda: store.get_firing(12345),
    ):
        with pytest.raises(NotFound):
            call()


def test_pause_records_who_and_resume_reads_the_trigger_from_then_on(store, clock):
    store.add(nightly(), "local:ada")
    store.advance("nightly", {"fired": T0})
    clock.ms = T0 + 1000
    paused = store.set_paused("nightly", True, "local:bob")
    assert (paused.paused, paused.updated_by, paused.updated_at) == (True, "local:bob", T0 + 1000)
    assert paused.cursor == {"at": T0, "fired": T0}
    clock.ms = T0 + 5000
    resumed = store.set_paused("nightly", False, "local:carol")
    assert not resumed.paused
    assert resumed.cursor == {"at": T0 + 5000, "fired": T0}
    # resuming a running schedule moves nothing
    assert store.set_paused("nightly", False, "local:carol").cursor == resumed.cursor


def test_advance_merges_into_the_cursor_and_never_moves_a_number_back(store):
    store.add(nightly(trigger="alert", spec="drift"), "local:ada")
    store.advance("nightly", {"alert_id": 7})
    store.advance("nightly", {"alert_id": 9, "note": "a"})
    store.advance("nightly", {"alert_id": 8, "note": "b"})  # a slower scheduler
    assert store.get("nightly").cursor == {"at": T0, "alert_id": 9, "note": "b"}


def test_a_claim_advances_the_cursor_in_its_transaction_only_when_it_wins(store):
    schedule = store.add(nightly(trigger="alert", spec="drift"), "local:ada")
    first = store.claim(
        schedule.id, "alert:3", CAUSE, owner="a", lease_s=60, now_ms=T0, cursor={"alert_id": 3}
    )
    assert store.get("nightly").cursor == {"at": T0, "alert_id": 3}
    lost = store.claim(
        schedule.id, "alert:4", CAUSE, owner="b", lease_s=60, now_ms=T0, cursor={"alert_id": 4}
    )
    assert lost is None  # the schedule has a firing in flight: alert 4 waits
    assert store.get("nightly").cursor == {"at": T0, "alert_id": 3}
    store.finish(first.id, "succeeded", run_id=None, error=None, steps=None)


def test_a_claimed_firing_runs_and_finishes_with_its_run(store, clock):
    schedule = store.add(nightly(), "local:ada")
    firing = store.claim(schedule.id, KEY, CAUSE, owner="box:1", lease_s=60, now_ms=T0)
    assert firing is not None
    assert (firing.schedule, firing.key, firing.cause, firing.status, firing.owner) == (
        "nightly",
        KEY,
        CAUSE,
        "claimed",
        "box:1",
    )
    assert (firing.claimed_at, firing.lease_until, firing.attempt) == (T0, T0 + 60_000, 1)
    clock.ms = T0 + 10
    store.start(firing.id, None)
    running = store.get_firing(firing.id)
    assert (running.status, running.started_at, running.run_id) == ("running", T0 + 10, None)
    clock.ms = T0 + 20
    store.start(firing.id, "run1")  # the run id once known; the start time stays
    assert store.get_firing(firing.id).started_at == T0 + 10
    clock.ms = T0 + 99
    steps = [{"step": "retrain", "status": "ok", "at": T0 + 50, "detail": {}}]
    done = store.finish(firing.id, "succeeded", run_id=None, error=None, steps=steps)
    assert (done.status, done.run_id, done.ended_at, done.steps) == (
        "succeeded",
        "run1",
        T0 + 99,
        steps,
    )
    assert store.history("nightly") == [done]


def test_one_key_is_claimed_once(store):
    schedule = store.add(nightly(), "local:ada")
    first = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0)
    store.finish(first.id, "succeeded", run_id="r1", error=None, steps=None)
    # finished, the same event is still taken: it ran once
    assert store.claim(schedule.id, KEY, CAUSE, owner="b", lease_s=60, now_ms=T0 + 1) is None
    assert [f.id for f in store.history()] == [first.id]


def test_a_schedule_runs_one_firing_at_a_time(store):
    schedule = store.add(nightly(trigger="alert", spec="drift"), "local:ada")
    first = store.claim(schedule.id, "alert:1", CAUSE, owner="a", lease_s=60, now_ms=T0)
    assert first is not None
    assert store.claim(schedule.id, "alert:2", CAUSE, owner="a", lease_s=60, now_ms=T0) is None
    store.finish(first.id, "failed", run_id=None, error="boom", steps=None)
    second = store.claim(schedule.id, "alert:2", CAUSE, owner="a", lease_s=60, now_ms=T0)
    assert second is not None and second.key == "alert:2"


def test_a_paused_schedule_claims_nothing(store):
    schedule = store.add(nightly(), "local:ada")
    store.set_paused("nightly", True, "local:ada")
    assert store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0) is None
    with pytest.raises(NotFound):
        store.claim(schedule.id + 1, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0)


def test_an_ended_firing_is_never_rewritten(store):
    schedule = store.add(nightly(), "local:ada")
    firing = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0)
    store.finish(firing.id, "blocked", run_id="r1", error="gate refused", steps=None)
    for call in (
        lambda: store.finish(firing.id, "succeeded", run_id="r2", error=None, steps=None),
        lambda: store.start(firing.id, "r2"),
        lambda: store.record_steps(firing.id, []),
    ):
        with pytest.raises(Conflict, match="blocked"):
            call()
    kept = store.get_firing(firing.id)
    assert (kept.status, kept.run_id, kept.error) == ("blocked", "r1", "gate refused")
    with pytest.raises(InvalidArgument, match="status"):
        store.finish(firing.id, "done", run_id=None, error=None, steps=None)


def test_steps_are_recorded_while_in_flight(store):
    schedule = store.add(nightly(), "local:ada")
    firing = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0)
    one = [{"step": "alert", "status": "ok", "at": T0, "detail": {"alert": 3}}]
    store.record_steps(firing.id, one)
    two = [*one, {"step": "retrain", "status": "ok", "at": T0 + 1, "detail": {}}]
    store.record_steps(firing.id, two)
    assert store.get_firing(firing.id).steps == two
    with pytest.raises(InvalidArgument, match="steps"):
        store.record_steps(firing.id, ["retrain"])


def test_history_is_newest_first_per_schedule_up_to_the_limit(store):
    a = store.add(nightly(name="a", trigger="alert", spec="drift"), "local:ada")
    b = store.add(nightly(name="b", trigger="alert", spec="drift"), "local:ada")
    fired = []
    for n in range(3):
        for schedule in (a, b):
            f = store.claim(schedule.id, f"alert:{n}", CAUSE, owner="x", lease_s=60, now_ms=T0)
            fired.append(store.finish(f.id, "succeeded", run_id=None, error=None, steps=None))
    assert store.history() == fired[::-1]
    assert store.history("a") == [f for f in fired[::-1] if f.schedule == "a"]
    assert store.history("a", limit=2) == [f for f in fired[::-1] if f.schedule == "a"][:2]
    with pytest.raises(InvalidArgument, match="limit"):
        store.history(limit=0)


def test_removing_a_schedule_keeps_its_history_and_says_who_removed_it(store):
    schedule = store.add(nightly(), "local:ada")
    done = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0)
    done = store.finish(done.id, "succeeded", run_id="r1", error=None, steps=[{"step": "x"}])
    firing = store.claim(schedule.id, f"{KEY}b", CAUSE, owner="a", lease_s=60, now_ms=T0)
    assert store.remove("nightly", "local:bob").name == "nightly"
    assert store.list() == []
    with pytest.raises(NotFound, match="schedule 'nightly' does not exist"):
        store.get("nightly")
    with pytest.raises(NotFound):
        store.history("nightly")
    # the firings stay, under the name the schedule had; the one in flight is failed
    kept, failed = store.history()
    assert kept == store.get_firing(firing.id) and done == failed
    assert (kept.schedule, kept.status, kept.error) == (
        "nightly",
        "failed",
        "schedule removed by local:bob",
    )
    assert (failed.run_id, failed.steps) == ("r1", [{"step": "x"}])
    with pytest.raises(Conflict, match="schedule removed by local:bob"):
        store.finish(firing.id, "succeeded", run_id=None, error=None, steps=None)
    assert not store.renew(firing.id, owner="a", lease_s=60, now_ms=T0)
    # nothing claims it, nothing retries it
    assert store.claim(schedule.id, "cron:later", CAUSE, owner="a", lease_s=60, now_ms=T0) is None
    assert store.expired(T0 + 10**9) == []
    # the name is free again, and the new schedule's history starts empty
    again = store.add(nightly(), "local:ada")
    assert again.name == "nightly" and again.id != schedule.id
    assert store.history("nightly") == [] and len(store.history()) == 2
    assert [s.name for s in store.list()] == ["nightly"]
    with pytest.raises(NotFound):
        store.get(f"~{schedule.id}")  # a removed schedule's row is out of reach
    # removed twice under the same name: both histories kept
    store.remove("nightly", "local:bob")
    assert store.list() == [] and len(store.history()) == 2


def test_a_lease_is_renewed_only_by_its_owner_while_in_flight(store):
    schedule = store.add(nightly(), "local:ada")
    firing = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0)
    assert store.renew(firing.id, owner="a", lease_s=60, now_ms=T0 + 30_000)
    assert store.get_firing(firing.id).lease_until == T0 + 90_000
    assert not store.renew(firing.id, owner="b", lease_s=60, now_ms=T0 + 30_000)
    assert store.expired(T0 + 90_000) == []
    assert [f.id for f in store.expired(T0 + 90_001)] == [firing.id]
    store.finish(firing.id, "succeeded", run_id=None, error=None, steps=None)
    assert not store.renew(firing.id, owner="a", lease_s=60, now_ms=T0 + 40_000)
    assert store.expired(T0 + 10**9) == []
    with pytest.raises(InvalidArgument, match="lease"):
        store.renew(firing.id, owner="a", lease_s=0, now_ms=T0)


def test_a_lease_is_held_by_its_owner_until_it_runs_out_or_the_firing_ends(store):
    schedule = store.add(nightly(), "local:ada")
    firing = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0)
    assert store.holds(firing.id, "a", T0 + 60_000)
    assert not store.holds(firing.id, "b", T0 + 30_000)
    # ran out, though nobody has taken it over yet
    assert not store.holds(firing.id, "a", T0 + 60_001)
    retry = store.take_over(firing.id, owner="b", lease_s=60, now_ms=T0 + 60_001)
    assert not store.holds(firing.id, "a", T0 + 30_000)  # failed by the takeover
    assert store.holds(retry.id, "b", T0 + 61_000)
    store.finish(retry.id, "succeeded", run_id=None, error=None, steps=None)
    assert not store.holds(retry.id, "b", T0 + 61_000)
    assert not store.holds(10**9, "b", T0)


def test_an_expired_lease_is_failed_and_retried_under_a_new_attempt(store):
    schedule = store.add(nightly(), "local:ada")
    dead = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=60, now_ms=T0)
    store.start(dead.id, "run-a")
    # the lease is live: nothing to take over
    assert store.take_over(dead.id, owner="b", lease_s=60, now_ms=T0 + 60_000) is None
    retry = store.take_over(dead.id, owner="b", lease_s=60, now_ms=T0 + 60_001)
    assert retry is not None
    assert (retry.key, retry.attempt, retry.owner, retry.status) == (
        f"{KEY}~2",
        2,
        "b",
        "claimed",
    )
    assert retry.cause == {**CAUSE, "retry_of": dead.id}
    failed = store.get_firing(dead.id)
    assert failed.status == "failed" and failed.run_id == "run-a"
    assert failed.error.startswith("lease expired: scheduler a stopped renewing it")
    # the old holder comes back: its outcome is refused, the failure is kept
    assert not store.renew(dead.id, owner="a", lease_s=60, now_ms=T0 + 70_000)
    with pytest.raises(Conflict, match="lease expired"):
        store.finish(dead.id, "succeeded", run_id="run-a", error=None, steps=None)
    # a second takeover of the same firing finds nothing to do
    assert store.take_over(dead.id, owner="c", lease_s=60, now_ms=T0 + 70_000) is None


def test_retries_stop_after_the_last_attempt(store):
    schedule = store.add(nightly(), "local:ada")
    firing = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=1, now_ms=T0)
    now = T0
    for attempt in range(2, MAX_ATTEMPTS + 1):
        now += 10_000
        firing = store.take_over(firing.id, owner=f"s{attempt}", lease_s=1, now_ms=now)
        assert firing.attempt == attempt and firing.key == f"{KEY}~{attempt}"
    now += 10_000
    assert store.take_over(firing.id, owner="last", lease_s=1, now_ms=now) is None
    assert [f.status for f in store.history()] == ["failed"] * MAX_ATTEMPTS
    assert store.expired(now) == []


def test_a_paused_schedule_s_expired_firing_is_failed_not_retried(store):
    schedule = store.add(nightly(), "local:ada")
    firing = store.claim(schedule.id, KEY, CAUSE, owner="a", lease_s=1, now_ms=T0)
    store.set_paused("nightly", True, "local:ada")
    assert store.take_over(firing.id, owner="b", lease_s=1, now_ms=T0 + 5000) is None
    assert store.get_firing(firing.id).status == "failed"


# -- two schedulers racing -----------------------------------------------------------------


def _two_stores(store_uri: str) -> tuple[SqlScheduleStore, SqlScheduleStore]:
    """Two stores over two engines: as two scheduler processes have."""
    return SqlScheduleStore(create_engine(store_uri)), SqlScheduleStore(create_engine(store_uri))


def test_schedulers_racing_for_one_firing_claim_it_once(store_uri, store, in_threads):
    schedule = store.add(nightly(), "local:ada")
    stores = [*_two_stores(store_uri), *_two_stores(store_uri)]
    racers = iter(range(len(stores)))

    def claim():
        i = next(racers)
        return stores[i].claim(schedule.id, KEY, CAUSE, owner=f"s{i}", lease_s=60, now_ms=T0)

    results = in_threads(len(stores), claim)
    won = [r for r in results if r is not None]
    assert len(won) == 1, results
    assert [f.id for f in store.history()] == [won[0].id]


def test_schedulers_racing_for_different_events_of_one_schedule_claim_one(
    store_uri, store, in_threads
):
    schedule = store.add(nightly(trigger="alert", spec="drift"), "local:ada")
    stores = [*_two_stores(store_uri), *_two_stores(store_uri)]
    racers = iter(range(len(stores)))

    def claim():
        i = next(racers)
        key = f"alert:{i}"
        return stores[i].claim(schedule.id, key, CAUSE, owner=f"s{i}", lease_s=60, now_ms=T0)

    results = in_threads(len(stores), claim)
    assert len([r for r in results if r is not None]) == 1, results


def test_schedulers_racing_to_take_over_one_expired_lease_retry_it_once(
    store_uri, store, in_threads
):
    schedule = store.add(nightly(), "local:ada")
    dead = store.claim(schedule.id, KEY, CAUSE, owner="dead", lease_s=1, now_ms=T0)
    stores = [*_two_stores(store_uri), *_two_stores(store_uri)]
    racers = iter(range(len(stores)))

    def take_over():
        i = next(racers)
        return stores[i].take_over(dead.id, owner=f"s{i}", lease_s=60, now_ms=T0 + 5000)

    results = in_threads(len(stores), take_over)
    won = [r for r in results if r is not None]
    assert len(won) == 1, results
    history = store.history()
    assert [(f.key, f.status) for f in history] == [(f"{KEY}~2", "claimed"), (KEY, "failed")]


# -- what on-alert schedules read ----------------------------------------------------------


def test_alerts_since_a_cursor_are_a_rule_s_newer_firings_oldest_first(store_uri):
    from segue.store.alerts import SqlAlertStore

    alerts = SqlAlertStore(open_engine(store_uri))
    fired = [
        alerts.record(model, rule, "drift_share", 0.5, 0.3, "m", [], at=T0 + n)
        for n, (model, rule) in enumerate(
            [("churn", "drift"), ("fraud", "drift"), ("churn", "errors"), ("churn", "drift")]
        )
    ]
    drift = [fired[0], fired[1], fired[3]]
    assert alerts.since("drift", 0) == drift
    assert alerts.since("drift", fired[0].id) == drift[1:]
    assert alerts.since("drift", 0, limit=2) == drift[:2]
    assert alerts.since("drift", fired[3].id) == []
    with pytest.raises(InvalidArgument, match="limit"):
        alerts.since("drift", 0, limit=0)
