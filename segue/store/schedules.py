"""The schedule store: schedules, and each firing a scheduler claimed, with its lease.

A firing is claimed by inserting its row: UNIQUE(schedule_id, key) lets exactly one of several
schedulers insert a trigger event's key (``cron:2026-12-06T03:00Z``, ``alert:17``,
``version:churn/4``), on SQLite and PostgreSQL alike, and the loser gets None. A claim also
locks the schedule's row and is refused while the schedule has a firing in flight, so a
schedule runs one firing at a time: an event that arrives meanwhile waits for the next tick.

The claim is a lease: its holder renews ``lease_until`` while the run goes on. When a holder
dies its lease runs out; :meth:`SqlScheduleStore.take_over` then marks that firing ``failed``
(``lease expired: ...``), honestly, and claims a retry of the same event under the key
``<key>~<attempt>`` in the same transaction, up to ``MAX_ATTEMPTS`` attempts. Of two schedulers
taking over at once, one wins (the UPDATE's condition on the status and the lease decides).
A finished firing is never changed again: a holder that comes back after losing its lease
gets :class:`~segue.errors.Conflict` and the firing keeps its ``failed``.

Example:
    >>> store = SqlScheduleStore(open_engine(settings().store_uri))
    >>> s = store.add(NewSchedule("nightly", "flows:retrain", "cron", "0 3 * * *"), "local:ada")
    >>> firing = store.claim(s.id, "cron:2026-12-06T03:00Z", {"kind": "schedule"},
    ...                      owner="box:41", lease_s=60, now_ms=1_796_526_000_000)
    >>> store.finish(firing.id, "succeeded", run_id="ab12", error=None, steps=None).status
    'succeeded'
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from segue.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from segue.store.entities import Firing, NewSchedule, Schedule
from segue.store.names import check_name
from segue.store.schema import FiringRow, ScheduleRow
from segue.store.sessions import Database, rowcount

__all__ = [
    "ACTIVE",
    "MAX_ATTEMPTS",
    "OUTCOMES",
    "TRIGGERS",
    "ScheduleStore",
    "SqlScheduleStore",
    "check_schedule_name",
]

#: What starts a schedule's pipeline: a cron time, an alert firing, a new model version.
TRIGGERS = ("cron", "alert", "version")
#: A firing in flight: its owner holds the lease.
ACTIVE = ("claimed", "running")
#: How a firing ends.
OUTCOMES = ("succeeded", "failed", "blocked")
#: Attempts of one trigger event: the first, and the retries after a lease expired.
MAX_ATTEMPTS = 3
#: The most firings one history call returns.
MAX_HISTORY = 10_000
#: How a removed schedule's name starts (``~<id>``): no schedule name can (check_name).
_REMOVED = "~"

# Aliases: inside the classes below, ``list`` names their method, not the builtin.
_Steps = list[dict[str, Any]]
_Firings = list[Firing]


def check_schedule_name(name: Any) -> str:
    """``name`` if it is a valid schedule name, else InvalidArgument saying what is allowed."""
    return check_name("schedule", name, 128)


class ScheduleStore(Protocol):
    """What schedules and the scheduler need from a metadata store."""

    def add(self, schedule: NewSchedule, actor: str) -> Schedule: ...
    def get(self, name: str) -> Schedule: ...
    def list(self) -> list[Schedule]: ...
    def set_paused(self, name: str, paused: bool, actor: str) -> Schedule: ...
    def remove(self, name: str, actor: str) -> Schedule: ...
    def advance(self, name: str, cursor: Mapping[str, Any]) -> None: ...
    def claim(
        self,
        schedule_id: int,
        key: str,
        cause: Mapping[str, Any],
        *,
        owner: str,
        lease_s: float,
        now_ms: int,
        cursor: Mapping[str, Any] | None = None,
    ) -> Firing | None: ...
    def renew(self, firing_id: int, *, owner: str, lease_s: float, now_ms: int) -> bool: ...
    def holds(self, firing_id: int, owner: str, now_ms: int) -> bool: ...
    def start(self, firing_id: int, run_id: str | None) -> None: ...
    def finish(
        self,
        firing_id: int,
        status: str,
        *,
        run_id: str | None,
        error: str | None,
        steps: _Steps | None,
    ) -> Firing: ...
    def record_steps(self, firing_id: int, steps: _Steps) -> None: ...
    def get_firing(self, firing_id: int) -> Firing: ...
    def history(self, name: str | None = None, limit: int = 50) -> _Firings: ...
    def expired(self, now_ms: int) -> _Firings: ...
    def take_over(
        self, firing_id: int, *, owner: str, lease_s: float, now_ms: int
    ) -> Firing | None: ...


class SqlScheduleStore:
    """:class:`ScheduleStore` over SQLAlchemy, for SQLite and PostgreSQL.

    Args:
        engine: an engine whose schema is migrated (``open_engine`` does that).
        clock: epoch seconds, for the times the caller does not give (creation, start, end).
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._db = Database(engine)
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock() * 1000)

    # -- schedules -------------------------------------------------------------------------

    def add(self, schedule: NewSchedule, actor: str) -> Schedule:
        """Store a new schedule; its trigger is read from now on (nothing earlier fires it).

        Raises:
            InvalidArgument: a malformed name, an unknown trigger, an empty spec or pipeline,
                params or options that are not JSON objects.
            AlreadyExists: a schedule of that name exists.
        """
        _check_new(schedule)
        now = self._now()
        with self._db.write() as s, s.begin():
            stmt = (
                self._db.insert(ScheduleRow)
                .values(
                    name=schedule.name,
                    pipeline=schedule.pipeline,
                    params=dict(schedule.params),
                    trigger=schedule.trigger,
                    spec=schedule.spec,
                    paused=schedule.paused,
                    created_at=now,
                    created_by=actor,
                    updated_at=now,
                    updated_by=actor,
                    cursor={"at": now},
                    options=dict(schedule.options),
                    loop=schedule.loop,
                )
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(ScheduleRow.id)
            )
            if s.scalar(stmt) is None:
                raise AlreadyExists(
                    f"schedule {schedule.name!r} already exists; see `segue schedule list`, "
                    f"or `segue schedule remove {schedule.name}` first"
                )
            return _schedule(_schedule_row(s, schedule.name))

    def get(self, name: str) -> Schedule:
        """The schedule ``name``; NotFound if there is none."""
        with self._db.read() as s:
            return _schedule(_schedule_row(s, name))

    def list(self) -> list[Schedule]:
        """Every schedule, by name."""
        stmt = sa.select(ScheduleRow).where(~ScheduleRow.name.startswith(_REMOVED))
        with self._db.read() as s:
            rows = s.scalars(stmt.order_by(ScheduleRow.name))
            return [_schedule(row) for row in rows]

    def set_paused(self, name: str, paused: bool, actor: str) -> Schedule:
        """Pause or resume ``name``. Resuming reads the trigger from now on: the cron times,
        alerts and versions that came while it was paused start nothing."""
        now = self._now()
        with self._db.write() as s, s.begin():
            row = _schedule_row(s, name, lock=True)
            if row.paused and not paused:
                row.cursor = {**row.cursor, "at": now}
            row.paused = paused
            row.updated_at = now
            row.updated_by = actor
            return _schedule(row)

    def remove(self, name: str, actor: str) -> Schedule:
        """Remove ``name``; returns the schedule as it was.

        The row stays, out of sight (a tombstone name, ``~<id>``, frees the name; who removed
        it and when go into its options under ``removed``), so its firings' history (a loop's
        cycles) is kept: :meth:`history` of every schedule still lists them, under the
        removed schedule's name. A firing in flight is failed, naming who removed it; its
        scheduler finds it ended (its run stays in the tracking store, tagged with its cause).
        """
        now = self._now()
        with self._db.write() as s, s.begin():
            row = _schedule_row(s, name, lock=True)
            gone = _schedule(row)
            s.execute(
                sa.update(FiringRow)
                .where(FiringRow.schedule_id == row.id, FiringRow.status.in_(ACTIVE))
                .values(status="failed", ended_at=now, error=f"schedule removed by {actor}")
            )
            row.options = {**row.options, "removed": {"name": name, "at": now, "by": actor}}
            row.name = f"{_REMOVED}{row.id}"
            row.paused = True  # claims and takeovers refuse a paused schedule
            row.updated_at = now
            row.updated_by = actor
            return gone

    def advance(self, name: str, cursor: Mapping[str, Any]) -> None:
        """Merge ``cursor`` into the schedule's cursor (how far its trigger has been read); a
        number in it never moves back (a slow scheduler cannot undo a faster one's progress).
        """
        with self._db.write() as s, s.begin():
            row = _schedule_row(s, name, lock=True)
            row.cursor = _merged(row.cursor, cursor)

    # -- firings ---------------------------------------------------------------------------

    def claim(
        self,
        schedule_id: int,
        key: str,
        cause: Mapping[str, Any],
        *,
        owner: str,
        lease_s: float,
        now_ms: int,
        cursor: Mapping[str, Any] | None = None,
    ) -> Firing | None:
        """Claim the trigger event ``key`` of a schedule for ``owner``, leased for ``lease_s``,
        and advance the schedule's cursor to ``cursor`` (if given) in the same transaction, so
        no scheduler can claim an event and die before its cursor moves past it.

        Returns the new firing (``claimed``), or None when the event is someone else's (its
        key is taken), the schedule is paused or removed, or it has a firing in flight (one at
        a time).

        Raises:
            NotFound: no schedule has that id.
        """
        _check_lease(lease_s)
        with self._db.write() as s, s.begin():
            # The lock serialises claims of one schedule on PostgreSQL (SQLite's BEGIN
            # IMMEDIATE already does), so the in-flight check below cannot race.
            schedule = s.get(ScheduleRow, schedule_id, with_for_update=True)
            if schedule is None:
                raise NotFound(f"schedule #{schedule_id} does not exist")
            if schedule.paused or _in_flight(s, schedule_id):
                return None
            values = _firing_values(schedule_id, key, cause, owner, lease_s, now_ms, attempt=1)
            firing = self._insert(s, schedule.name, values)
            if firing is not None and cursor is not None:
                schedule.cursor = _merged(schedule.cursor, cursor)
            return firing

    def _insert(self, s: Session, schedule: str, values: dict[str, Any]) -> Firing | None:
        stmt = (
            self._db.insert(FiringRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["schedule_id", "key"])
            .returning(FiringRow.id)
        )
        firing_id = s.scalar(stmt)
        if firing_id is None:
            return None
        return _firing(FiringRow(id=firing_id, **values), schedule)

    def renew(self, firing_id: int, *, owner: str, lease_s: float, now_ms: int) -> bool:
        """Extend ``owner``'s lease on a firing in flight to ``now_ms + lease_s``.

        Returns False when the lease is no longer ``owner``'s: the firing was taken over after
        the lease expired, was finished, or failed when its schedule was removed.
        """
        _check_lease(lease_s)
        stmt = (
            sa.update(FiringRow)
            .where(
                FiringRow.id == firing_id,
                FiringRow.owner == owner,
                FiringRow.status.in_(ACTIVE),
            )
            .values(lease_until=now_ms + int(lease_s * 1000))
        )
        with self._db.write() as s, s.begin():
            return rowcount(s.execute(stmt)) == 1

    def holds(self, firing_id: int, owner: str, now_ms: int) -> bool:
        """Whether ``owner`` still holds the lease on a firing in flight at ``now_ms``: False
        once it ran out (even before another scheduler took the firing over), or the firing
        ended, was taken over or removed. Checked before a step that cannot be undone."""
        stmt = sa.select(FiringRow.id).where(
            FiringRow.id == firing_id,
            FiringRow.owner == owner,
            FiringRow.status.in_(ACTIVE),
            FiringRow.lease_until >= now_ms,
        )
        with self._db.read() as s:
            return s.scalar(stmt) is not None

    def start(self, firing_id: int, run_id: str | None) -> None:
        """Mark a claimed firing running (again, to record ``run_id`` once it is known).

        Raises:
            NotFound: no such firing.
            Conflict: the firing has ended (finished, or failed when its lease expired).
        """
        now = self._now()
        values: dict[str, Any] = {
            "status": "running",
            "started_at": sa.func.coalesce(FiringRow.started_at, now),
        }
        if run_id is not None:
            values["run_id"] = run_id
        self._update_active(firing_id, values)

    def finish(
        self,
        firing_id: int,
        status: str,
        *,
        run_id: str | None,
        error: str | None,
        steps: _Steps | None,
    ) -> Firing:
        """End a firing in flight as ``succeeded``, ``failed`` or ``blocked``.

        ``run_id`` None keeps the one :meth:`start` recorded; ``steps`` None keeps the steps.

        Raises:
            InvalidArgument: an unknown status.
            NotFound: no such firing (its schedule was removed).
            Conflict: the firing has already ended: its recorded outcome is kept.
        """
        if status not in OUTCOMES:
            raise InvalidArgument(
                f"firing status {status!r}: expected one of {', '.join(OUTCOMES)}"
            )
        values: dict[str, Any] = {"status": status, "ended_at": self._now(), "error": error}
        if run_id is not None:
            values["run_id"] = run_id
        if steps is not None:
            values["steps"] = _steps(steps)
        self._update_active(firing_id, values)
        return self.get_firing(firing_id)

    def record_steps(self, firing_id: int, steps: _Steps) -> None:
        """Replace a firing's steps with ``steps`` (a loop cycle's steps so far), while it is
        in flight.

        Raises:
            NotFound: no such firing.
            Conflict: the firing has ended.
        """
        self._update_active(firing_id, {"steps": _steps(steps)})

    def _update_active(self, firing_id: int, values: dict[str, Any]) -> None:
        stmt = (
            sa.update(FiringRow)
            .where(FiringRow.id == firing_id, FiringRow.status.in_(ACTIVE))
            .values(**values)
        )
        with self._db.write() as s, s.begin():
            if rowcount(s.execute(stmt)) == 1:
                return
            row = s.get(FiringRow, firing_id)
            if row is None:
                raise NotFound(f"firing {firing_id} does not exist (its schedule was removed?)")
            raise Conflict(
                f"firing {firing_id} has already ended as {row.status}"
                + (f" ({row.error})" if row.error else "")
                + "; its recorded outcome is kept"
            )

    def get_firing(self, firing_id: int) -> Firing:
        """The firing ``firing_id``; NotFound if there is none."""
        with self._db.read() as s:
            found = s.execute(_with_name().where(FiringRow.id == firing_id)).first()
            if found is None:
                raise NotFound(f"firing {firing_id} does not exist")
            return _firing(found[0], found[1])

    def history(self, name: str | None = None, limit: int = 50) -> _Firings:
        """The last ``limit`` firings, newest first: of schedule ``name`` only, if given.

        Raises:
            NotFound: no schedule is called ``name``.
            InvalidArgument: a limit that is not a positive integer.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_HISTORY:
            raise InvalidArgument(
                f"limit must be an integer from 1 to {MAX_HISTORY}, got {limit!r}"
            )
        stmt = _with_name().order_by(FiringRow.id.desc()).limit(limit)
        with self._db.read() as s:
            if name is not None:
                stmt = stmt.where(FiringRow.schedule_id == _schedule_row(s, name).id)
            return [_firing(row, schedule) for row, schedule in s.execute(stmt)]

    def expired(self, now_ms: int) -> _Firings:
        """Firings in flight whose lease ended before ``now_ms``: their scheduler is gone."""
        stmt = (
            _with_name()
            .where(FiringRow.status.in_(ACTIVE), FiringRow.lease_until < now_ms)
            .order_by(FiringRow.id)
        )
        with self._db.read() as s:
            return [_firing(row, schedule) for row, schedule in s.execute(stmt)]

    def take_over(
        self, firing_id: int, *, owner: str, lease_s: float, now_ms: int
    ) -> Firing | None:
        """Fail a firing whose lease expired and claim its retry for ``owner``, atomically.

        The expired firing ends ``failed`` with ``lease expired: ...`` as its error. Its retry,
        keyed ``<key>~<attempt>`` with the same cause (plus ``retry_of``), is claimed when
        attempts remain (``MAX_ATTEMPTS``) and the schedule is not paused. Returns the retry,
        or None when there is none to run here: another scheduler took it over first, the
        lease is live again, or no retry is due.
        """
        _check_lease(lease_s)
        with self._db.write() as s, s.begin():
            schedule_id = s.scalar(
                sa.select(FiringRow.schedule_id).where(FiringRow.id == firing_id)
            )
            if schedule_id is None:
                return None
            # Locks in the order every write here takes them, the schedule's row first (claim,
            # advance, remove), so that a takeover and a removal cannot deadlock.
            schedule = s.get(ScheduleRow, schedule_id, with_for_update=True)
            old = s.get(FiringRow, firing_id, with_for_update=True, populate_existing=True)
            if old is None or old.status not in ACTIVE or old.lease_until >= now_ms:
                return None
            old.status = "failed"
            old.ended_at = now_ms
            old.error = (
                f"lease expired: scheduler {old.owner} stopped renewing it "
                f"(lease until {_iso(old.lease_until)}); taken over by {owner}"
            )
            if schedule is None or schedule.paused or old.attempt >= MAX_ATTEMPTS:
                return None
            attempt = old.attempt + 1
            key = f"{old.key.split('~')[0]}~{attempt}"
            cause = {**old.cause, "retry_of": old.id}
            values = _firing_values(
                old.schedule_id, key, cause, owner, lease_s, now_ms, attempt=attempt
            )
            s.flush()
            return self._insert(s, schedule.name, values)


# -- helpers -------------------------------------------------------------------------------


def _check_new(schedule: NewSchedule) -> None:
    check_schedule_name(schedule.name)
    if schedule.trigger not in TRIGGERS:
        raise InvalidArgument(
            f"schedule {schedule.name!r}: trigger {schedule.trigger!r} is not one of "
            f"{', '.join(TRIGGERS)}"
        )
    for field, value, longest in (
        ("pipeline", schedule.pipeline, 4096),
        ("spec", schedule.spec, 256),
    ):
        if not isinstance(value, str) or not value.strip() or len(value) > longest:
            raise InvalidArgument(
                f"schedule {schedule.name!r}: {field} must be a non-empty text of at most "
                f"{longest} characters"
            )
    if schedule.loop is not None and (not isinstance(schedule.loop, str) or not schedule.loop):
        raise InvalidArgument(f"schedule {schedule.name!r}: loop must be a name or None")
    _json_object(schedule.params, "params")
    _json_object(schedule.options, "options")


def _json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a dict if it is a JSON object of finite numbers, else InvalidArgument."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be an object of names and values, got {value!r}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must hold JSON values only: {exc}") from exc
    return dict(value)


def _merged(cursor: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(cursor)
    for key, value in _json_object(new, "cursor").items():
        old = merged.get(key)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, value))
        merged[key] = max(old, value) if numbers else value
    return merged


def _steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(steps, list) or not all(isinstance(step, Mapping) for step in steps):
        raise InvalidArgument(f"steps must be a list of objects, got {steps!r}")
    return [_json_object(step, "a step") for step in steps]


def _check_lease(lease_s: float) -> None:
    if not isinstance(lease_s, (int, float)) or not math.isfinite(lease_s) or lease_s <= 0:
        raise InvalidArgument(f"lease must be a positive number of seconds, got {lease_s!r}")


def _firing_values(
    schedule_id: int,
    key: str,
    cause: Mapping[str, Any],
    owner: str,
    lease_s: float,
    now_ms: int,
    *,
    attempt: int,
) -> dict[str, Any]:
    return {
        "schedule_id": schedule_id,
        "key": key,
        "cause": _json_object(cause, "cause"),
        "status": "claimed",
        "owner": owner,
        "attempt": attempt,
        "claimed_at": now_ms,
        "lease_until": now_ms + int(lease_s * 1000),
        "started_at": None,
        "ended_at": None,
        "run_id": None,
        "error": None,
        "steps": [],
    }


def _in_flight(s: Session, schedule_id: int) -> bool:
    stmt = sa.select(FiringRow.id).where(
        FiringRow.schedule_id == schedule_id, FiringRow.status.in_(ACTIVE)
    )
    return s.scalar(stmt.limit(1)) is not None


def _schedule_row(s: Session, name: str, *, lock: bool = False) -> ScheduleRow:
    stmt = sa.select(ScheduleRow).where(ScheduleRow.name == name)
    row = None if name.startswith(_REMOVED) else s.scalar(stmt.with_for_update() if lock else stmt)
    if row is None:
        raise NotFound(f"schedule {name!r} does not exist; see `segue schedule list`")
    return row


def _with_name() -> sa.Select[FiringRow, str]:
    # A removed schedule's firings are shown under the name it had.
    removed = sa.case(
        (
            ScheduleRow.name.startswith(_REMOVED),
            sa.func.coalesce(_removed_name(), ScheduleRow.name),
        ),
        else_=ScheduleRow.name,
    )
    return sa.select(FiringRow, removed).join(ScheduleRow, ScheduleRow.id == FiringRow.schedule_id)


def _removed_name() -> sa.ColumnElement[str]:
    name: sa.ColumnElement[str] = ScheduleRow.options[("removed", "name")].as_string()
    return name


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _schedule(row: ScheduleRow) -> Schedule:
    return Schedule(
        id=row.id,
        name=row.name,
        pipeline=row.pipeline,
        params=dict(row.params or {}),
        trigger=row.trigger,
        spec=row.spec,
        paused=bool(row.paused),
        created_at=row.created_at,
        created_by=row.created_by,
        cursor=dict(row.cursor or {}),
        options=dict(row.options or {}),
        loop=row.loop,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _firing(row: FiringRow, schedule: str) -> Firing:
    return Firing(
        id=row.id,
        schedule_id=row.schedule_id,
        schedule=schedule,
        key=row.key,
        cause=dict(row.cause or {}),
        status=row.status,
        owner=row.owner,
        claimed_at=row.claimed_at,
        lease_until=row.lease_until,
        started_at=row.started_at,
        ended_at=row.ended_at,
        run_id=row.run_id,
        error=row.error,
        steps=[dict(step) for step in row.steps or []],
        attempt=row.attempt,
    )
