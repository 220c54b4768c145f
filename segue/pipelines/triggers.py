"""Triggers: which events of a schedule's trigger are due, as pure functions over plain data.

A schedule's cursor says how far its trigger has been read (see
:class:`~segue.store.entities.Schedule`): ``at`` (its creation or last resume: nothing earlier
starts a run) and the last event fired (``fired`` for cron, ``alert_id``, ``version``). Given
the cursor and what happened since, each function here returns the events to claim, each with
its claim key, its cause and the cursor to advance to once claimed.

- **cron** (UTC, five fields or ``@hourly``-style): the times in ``(cursor, now]``. A schedule
  that missed several (the scheduler was down) fires **once, for the latest missed time**
  (Airflow's ``catchup=False``); the cause counts the times it skipped (``missed``).
- **alert**: each firing of the rule recorded since the cursor, oldest first (for a loop, only
  those of the loop's model); the run gets the firing's details as params.
- **version**: each version of the model registered since the cursor, oldest first; the run
  gets ``model`` and ``version``.

Example:
    >>> due_cron("0 3 * * *", after_ms=created, now_ms=now)
    datetime.datetime(2026, 12, 6, 3, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from segue.errors import InvalidArgument
from segue.store.entities import Alert, ModelVersion, Schedule

__all__ = [
    "ALERT_PARAMS",
    "VERSION_PARAMS",
    "AlertFeed",
    "Evaluation",
    "Event",
    "VersionFeed",
    "accepted_params",
    "alert_events",
    "check_cron",
    "check_trigger",
    "cron_events",
    "due_cron",
    "next_cron",
    "trigger_params",
    "version_events",
]

#: The params an on-alert run may take (those its pipeline declares), from the alert firing.
ALERT_PARAMS = (
    "alert_id",
    "alert_rule",
    "alert_model",
    "alert_signal",
    "alert_value",
    "alert_threshold",
    "alert_at",
)
#: The params an on-new-version run may take.
VERSION_PARAMS = ("model", "version")
#: The most alerts or versions read per schedule and tick; the rest wait for the next tick.
BATCH = 100


class AlertFeed(Protocol):
    """Where on-alert triggers read new firings (``SqlAlertStore`` is one)."""

    def since(self, rule: str, after_id: int, limit: int = 100) -> list[Alert]: ...


class VersionFeed(Protocol):
    """Where on-new-version triggers read a model's versions (any ``RegistryStore``)."""

    def list_versions(self, name: str) -> list[ModelVersion]: ...


@dataclass(frozen=True)
class Event:
    """A trigger event to claim: its key (unique per schedule), its cause, and the cursor
    the schedule advances to once it is claimed."""

    key: str
    cause: dict[str, Any]
    cursor: dict[str, Any]


@dataclass(frozen=True)
class Evaluation:
    """What a trigger has for a schedule now: ``events`` to claim in order, and ``skip``, a
    cursor past the events read that start nothing (older than the schedule, another model)
    and come before the first event, to advance to whatever happens to the events."""

    events: list[Event] = field(default_factory=list)
    skip: dict[str, Any] | None = None


# -- cron ----------------------------------------------------------------------------------


#: Where check_cron looks for a first time: any fixed instant works (five fields name no year).
_CRON_PROBE = datetime(2000, 1, 1, tzinfo=timezone.utc)


def check_cron(expression: str) -> str:
    """``expression`` if it is a valid cron expression (five fields, UTC, or ``@daily``...)
    that fires at some time (``0 0 31 2 *``, the 31st of February, never does).

    Raises:
        InvalidArgument: naming the expression and the expected form, or saying it never
            fires.
    """
    from croniter import CroniterError, croniter

    text = expression.strip() if isinstance(expression, str) else ""
    fields = text.split()
    if not (len(fields) == 5 or (len(fields) == 1 and text.startswith("@"))) or not (
        croniter.is_valid(text)
    ):
        raise InvalidArgument(
            f"cron expression {expression!r} is not valid: give five fields, minute hour "
            "day-of-month month day-of-week, in UTC (such as '0 3 * * *'), or @hourly, "
            "@daily, @weekly, @monthly, @yearly"
        )
    try:
        croniter(text, _CRON_PROBE).get_next(datetime)
    except CroniterError:
        raise InvalidArgument(
            f"cron expression {expression!r} never fires: no date matches its day of the "
            "month and month (such as the 31st of February)"
        ) from None
    return text


def check_trigger(trigger: str, spec: str) -> str:
    """``spec`` (stripped) if it suits ``trigger``: a cron expression, an alert rule's name, a
    model's name.

    Raises:
        InvalidArgument: an unknown trigger, a bad cron expression, an empty rule, a malformed
            model name.
    """
    from segue.store.registry import check_model_name

    if trigger == "cron":
        return check_cron(spec)
    text = spec.strip() if isinstance(spec, str) else ""
    if trigger == "alert":
        if not text or len(text) > 256:
            raise InvalidArgument("an on-alert schedule needs the alert rule's name")
        return text
    if trigger == "version":
        return check_model_name(text)
    raise InvalidArgument(f"trigger {trigger!r}: expected cron, alert or version")


def due_cron(expression: str, *, after_ms: int, now_ms: int) -> datetime | None:
    """The latest time of ``expression`` in ``(after_ms, now_ms]``, or None."""
    from croniter import croniter

    # get_prev excludes its start, so start just after now to include a time equal to it.
    start = _utc(now_ms) + timedelta(milliseconds=1)
    latest: datetime = croniter(check_cron(expression), start).get_prev(datetime)
    return latest if _ms(latest) > after_ms else None


def next_cron(expression: str, *, after_ms: int) -> datetime:
    """The first time of ``expression`` strictly after ``after_ms``."""
    from croniter import croniter

    result: datetime = croniter(check_cron(expression), _utc(after_ms)).get_next(datetime)
    return result


def _missed(expression: str, after_ms: int, due: datetime, limit: int = 1000) -> int:
    """How many times of ``expression`` in ``(after_ms, due)`` are skipped (up to ``limit``)."""
    from croniter import croniter

    times = croniter(check_cron(expression), due)
    count = 0
    while count < limit and _ms(times.get_prev(datetime)) > after_ms:
        count += 1
    return count


def cron_events(schedule: Schedule, now_ms: int) -> Evaluation:
    """The cron firing due for ``schedule`` at ``now_ms``: at most one, the latest time."""
    after = max(int(schedule.cursor.get("at", 0)), int(schedule.cursor.get("fired", 0)))
    due = due_cron(schedule.spec, after_ms=after, now_ms=now_ms)
    if due is None:
        return Evaluation()
    at = due.strftime("%Y-%m-%dT%H:%MZ")
    cause: dict[str, Any] = {"kind": "schedule", "schedule": schedule.name, "at": at}
    missed = _missed(schedule.spec, after, due)
    if missed:
        cause["missed"] = missed
    return Evaluation([Event(f"cron:{at}", cause, {"fired": _ms(due)})])


# -- alerts --------------------------------------------------------------------------------


def alert_events(schedule: Schedule, alerts: Sequence[Alert]) -> Evaluation:
    """The firings of ``schedule``'s rule among ``alerts`` (read since its cursor) that start
    a run: recorded at or after the schedule's ``at``, and of the loop's model for a loop."""
    since = int(schedule.cursor.get("at", 0))
    model = _loop_model(schedule)
    events: list[Event] = []
    skip: dict[str, Any] | None = None
    for alert in sorted(alerts, key=lambda a: a.id):
        if alert.rule != schedule.spec or alert.at < since or model not in (None, alert.model):
            if not events:
                skip = {"alert_id": alert.id}
            continue
        cause = {
            "kind": "alert",
            "schedule": schedule.name,
            "rule": alert.rule,
            "alert": alert.id,
            "model": alert.model,
            "signal": alert.signal,
            "value": alert.value,
            "threshold": alert.threshold,
            "message": alert.message,
            "at": alert.at,
        }
        events.append(Event(f"alert:{alert.id}", cause, {"alert_id": alert.id}))
    return Evaluation(events, skip)


def _loop_model(schedule: Schedule) -> str | None:
    policy = schedule.options.get("loop")
    if schedule.loop is None or not isinstance(policy, Mapping):
        return None
    model = policy.get("model")
    return str(model) if model else None


# -- model versions ------------------------------------------------------------------------


def version_events(schedule: Schedule, versions: Iterable[ModelVersion]) -> Evaluation:
    """The versions of ``schedule``'s model newer than its cursor and registered at or after
    its ``at``, oldest first."""
    since = int(schedule.cursor.get("at", 0))
    seen = int(schedule.cursor.get("version", 0))
    events: list[Event] = []
    skip: dict[str, Any] | None = None
    for version in sorted(versions, key=lambda v: v.version):
        if version.version <= seen:
            continue
        if version.created_at < since:
            if not events:
                skip = {"version": version.version}
            continue
        cause = {
            "kind": "version",
            "schedule": schedule.name,
            "model": version.model_name,
            "version": version.version,
            "run": version.run_id,
        }
        key = f"version:{version.model_name}/{version.version}"
        events.append(Event(key, cause, {"version": version.version}))
    return Evaluation(events, skip)


# -- params of a run -----------------------------------------------------------------------


def trigger_params(cause: Mapping[str, Any]) -> dict[str, Any]:
    """The params a trigger event offers its run: the alert's details (``alert_*``) for an
    alert firing, ``model`` and ``version`` for a new version, none for a cron time."""
    kind = cause.get("kind")
    if kind == "alert":
        names = ("alert", "rule", "model", "signal", "value", "threshold", "at")
        return {param: cause.get(name) for param, name in zip(ALERT_PARAMS, names, strict=True)}
    if kind == "version":
        return {"model": cause.get("model"), "version": cause.get("version")}
    return {}


def accepted_params(fn: Callable[..., Any], offered: Mapping[str, Any]) -> dict[str, Any]:
    """The params of ``offered`` that ``fn`` declares (all of them if it takes ``**kwargs``)."""
    parameters = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(offered)
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {name: value for name, value in offered.items() if name in names}


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
