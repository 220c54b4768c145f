"""Triggers as pure functions: due cron times, new alert firings, new model versions, and
the params a run takes from them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from croniter import croniter
from hypothesis import given
from hypothesis import strategies as st

from segue.errors import InvalidArgument
from segue.pipelines.triggers import (
    accepted_params,
    alert_events,
    check_cron,
    check_trigger,
    cron_events,
    due_cron,
    next_cron,
    trigger_params,
    version_events,
)
from segue.store.entities import Alert, ModelVersion, Schedule

UTC = timezone.utc
CREATED = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)  # a schedule added at 10:00


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def schedule(trigger="cron", spec="0 3 * * *", cursor=None, **fields) -> Schedule:
    values = {
        "id": 1,
        "name": "nightly",
        "pipeline": "flows:retrain",
        "params": {},
        "trigger": trigger,
        "spec": spec,
        "paused": False,
        "created_at": ms(CREATED),
        "created_by": "local:ada",
        "cursor": cursor if cursor is not None else {"at": ms(CREATED)},
        "options": {},
    }
    return Schedule(**(values | fields))


# -- cron ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0 3 * * *", "*/15 * * * 1-5", "@daily", " 0 3 * * * "])
def test_valid_cron_expressions_pass(text):
    assert check_cron(text) == text.strip()


@pytest.mark.parametrize(
    "text", ["", "0 3 * *", "61 * * * *", "0 3 * * * *", "@reboot", "every day", None]
)
def test_bad_cron_expressions_are_refused_with_the_form_expected(text):
    with pytest.raises(InvalidArgument, match="five fields"):
        check_cron(text)


@pytest.mark.parametrize("text", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6 *"])
def test_a_cron_expression_that_never_fires_is_refused(text):
    with pytest.raises(InvalidArgument, match=r"never fires"):
        check_cron(text)
    with pytest.raises(InvalidArgument, match=r"never fires"):
        check_trigger("cron", text)


def test_a_cron_expression_of_leap_days_fires_and_passes():
    assert check_cron("0 0 29 2 *") == "0 0 29 2 *"


def test_a_schedule_created_at_10_fires_at_the_next_3_not_for_the_past():
    nightly = schedule()
    assert cron_events(nightly, ms(CREATED)).events == []
    assert cron_events(nightly, ms(CREATED + timedelta(hours=16, minutes=59))).events == []
    at_three = ms(datetime(2026, 12, 7, 3, 0, tzinfo=UTC))
    [event] = cron_events(nightly, at_three).events
    assert event.key == "cron:2026-12-07T03:00Z"
    assert event.cause == {"kind": "schedule", "schedule": "nightly", "at": "2026-12-07T03:00Z"}
    assert event.cursor == {"fired": at_three}
    # once fired, the same time is not due again
    fired = schedule(cursor={"at": ms(CREATED), "fired": at_three})
    assert cron_events(fired, at_three + 59_000).events == []
    assert next_cron("0 3 * * *", after_ms=at_three) == datetime(2026, 12, 8, 3, 0, tzinfo=UTC)


def test_after_downtime_a_schedule_fires_once_for_the_latest_missed_time():
    last = ms(datetime(2026, 12, 7, 3, 0, tzinfo=UTC))
    down = schedule(cursor={"at": ms(CREATED), "fired": last})
    back = ms(datetime(2026, 12, 10, 5, 30, tzinfo=UTC))  # 8th, 9th, 10th at 03:00 missed
    [event] = cron_events(down, back).events
    assert event.key == "cron:2026-12-10T03:00Z"
    assert event.cause["missed"] == 2  # the 8th and the 9th were skipped
    assert event.cursor == {"fired": ms(datetime(2026, 12, 10, 3, 0, tzinfo=UTC))}


def test_a_resumed_schedule_does_not_fire_for_times_before_its_resume():
    resumed = ms(datetime(2026, 12, 9, 12, 0, tzinfo=UTC))
    nightly = schedule(cursor={"at": resumed, "fired": ms(datetime(2026, 12, 7, 3, tzinfo=UTC))})
    assert cron_events(nightly, resumed + 3_600_000).events == []


_instants = st.integers(min_value=ms(CREATED), max_value=ms(CREATED) + 10 * 86_400_000)
_expressions = st.sampled_from(["0 3 * * *", "*/7 * * * *", "30 */5 * * 1-5", "@hourly"])


@given(expression=_expressions, after=_instants, span=st.integers(0, 3 * 86_400_000))
def test_due_cron_is_the_latest_time_in_the_window(expression, after, span):
    now = after + span
    due = due_cron(expression, after_ms=after, now_ms=now)
    first = next_cron(expression, after_ms=after)
    if due is None:
        assert ms(first) > now  # nothing in (after, now]
        return
    assert after < ms(due) <= now
    assert croniter.match(expression, due.replace(tzinfo=None))
    assert ms(next_cron(expression, after_ms=ms(due))) > now  # none later in the window


# -- alerts --------------------------------------------------------------------------------


def alert(id, rule="drift", model="churn", at=None) -> Alert:
    at = ms(CREATED) + id if at is None else at
    return Alert(id, at, model, rule, "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", [])


def test_each_new_firing_of_the_rule_is_an_event_with_its_details():
    on_drift = schedule("alert", "drift", cursor={"at": ms(CREATED), "alert_id": 1})
    evaluation = alert_events(on_drift, [alert(3), alert(2)])
    assert [e.key for e in evaluation.events] == ["alert:2", "alert:3"]
    assert evaluation.events[0].cause == {
        "kind": "alert",
        "schedule": "nightly",
        "rule": "drift",
        "alert": 2,
        "model": "churn",
        "signal": "drift_share",
        "value": 0.5,
        "threshold": 0.3,
        "message": "drift_share 0.5 > 0.3",
        "at": ms(CREATED) + 2,
    }
    assert [e.cursor for e in evaluation.events] == [{"alert_id": 2}, {"alert_id": 3}]
    assert evaluation.skip is None


def test_firings_before_the_schedule_or_of_another_loop_model_are_skipped():
    on_drift = schedule("alert", "drift")
    old = alert(1, at=ms(CREATED) - 1)
    evaluation = alert_events(on_drift, [old, alert(2), alert(3, at=ms(CREATED) - 5)])
    assert [e.key for e in evaluation.events] == ["alert:2"]
    assert evaluation.skip == {"alert_id": 1}  # only what comes before the first event
    loop = schedule(
        "alert", "drift", loop="churn", options={"loop": {"model": "churn", "promote_to": "c"}}
    )
    evaluation = alert_events(loop, [alert(4, model="fraud"), alert(5), alert(6, model="x")])
    assert [e.key for e in evaluation.events] == ["alert:5"]
    assert evaluation.skip == {"alert_id": 4}


def test_an_alert_firing_offers_its_details_as_params():
    cause = alert_events(schedule("alert", "drift"), [alert(7)]).events[0].cause
    assert trigger_params(cause) == {
        "alert_id": 7,
        "alert_rule": "drift",
        "alert_model": "churn",
        "alert_signal": "drift_share",
        "alert_value": 0.5,
        "alert_threshold": 0.3,
        "alert_at": ms(CREATED) + 7,
    }


# -- versions ------------------------------------------------------------------------------


def version(n, created=None) -> ModelVersion:
    created = ms(CREATED) + n if created is None else created
    return ModelVersion("churn", n, f"run{n}", "model", "d" * 64, "sklearn", "local:ada", created)


def test_each_new_version_is_an_event_offering_model_and_version():
    on_churn = schedule("version", "churn", cursor={"at": ms(CREATED), "version": 2})
    older = version(1, created=ms(CREATED) - 10)
    evaluation = version_events(on_churn, [version(4), older, version(3), version(2)])
    assert [e.key for e in evaluation.events] == ["version:churn/3", "version:churn/4"]
    assert evaluation.events[0].cursor == {"version": 3}
    assert trigger_params(evaluation.events[1].cause) == {"model": "churn", "version": 4}
    assert evaluation.events[1].cause["run"] == "run4"


def test_versions_registered_before_the_schedule_start_nothing():
    on_churn = schedule("version", "churn")
    evaluation = version_events(on_churn, [version(1, created=ms(CREATED) - 1), version(2)])
    assert [e.key for e in evaluation.events] == ["version:churn/2"]
    assert evaluation.skip == {"version": 1}


# -- params --------------------------------------------------------------------------------


def test_only_the_params_a_pipeline_declares_are_passed():
    def retrain(model: str, alert_value: float = 0.0, *, alert_id: int = 0): ...

    def anything(model: str, **extra): ...

    offered = {"model": "churn", "alert_value": 0.5, "alert_id": 7, "alert_rule": "drift"}
    assert accepted_params(retrain, offered) == {
        "model": "churn",
        "alert_value": 0.5,
        "alert_id": 7,
    }
    assert accepted_params(anything, offered) == offered
    assert trigger_params({"kind": "schedule", "at": "2026-12-07T03:00Z"}) == {}
