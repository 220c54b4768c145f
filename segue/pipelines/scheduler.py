"""The scheduler: reads every schedule's trigger, claims what is due, and launches it.

:meth:`Scheduler.tick` does one round, at the instant it is given (tests pass a fake clock's
time and never sleep):

1. renew the leases of the firings this scheduler runs (a lease outlives several ticks);
2. take over firings whose scheduler died (their lease ran out): the store fails them and
   claims their retry (see :mod:`segue.store.schedules`);
3. for each schedule not paused, least recently launched first: evaluate its trigger
   (:mod:`segue.pipelines.triggers`), claim the first due event (the claim moves the cursor in
   the same transaction) and launch it.

Any number of schedulers may run against one store: a claim is won by one of them. Each
schedule runs one firing at a time; this scheduler runs at most ``workers`` firings at once,
each in a thread of its own, so a long pipeline occupies one slot and never stops the others'
claims. When every slot is taken, nothing more is claimed (what is due stays due for the next
tick or another scheduler). A launch's error fails its firing, and an error evaluating one
schedule is logged with its name: neither stops the scheduler (the store's transient errors
end the tick, retried by :meth:`Scheduler.run_forever`).

A firing is launched by ``launch(schedule, firing) -> LaunchOutcome`` (see
:mod:`segue.pipelines.launch`): by default :class:`PipelineLauncher` (the runtime with the
schedule's params, the trigger's params the pipeline declares, and the firing as the run's
cause). A schedule with ``loop`` set is launched by ``launchers["loop"]`` (``segue scheduler``
passes :func:`loop_launcher`, the closed loop's cycle).

:meth:`Scheduler.run_forever` ticks every ``interval`` seconds until its stop event is set,
then :meth:`Scheduler.close` waits ``grace`` seconds for the running firings and fails those
still running, saying why: nothing is left ``running`` in the store by a scheduler that left.
An outcome the store could not take (the database briefly away) is kept, with the lease, and
recorded on the next tick.

Example:
    >>> scheduler = Scheduler(SqlScheduleStore(engine), alerts=SqlAlertStore(engine),
    ...                       versions=SqlRegistryStore(engine))
    >>> stop = threading.Event()
    >>> scheduler.run_forever(stop, interval=10)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from segue.errors import Conflict, NotFound, SegueError

# The launches live in their own module; the scheduler's users import them from here too.
from segue.pipelines.launch import (
    Launch,
    LaunchOutcome,
    PipelineLauncher,
    loop_launcher,
    run_cause,
)
from segue.pipelines.triggers import (
    BATCH,
    AlertFeed,
    Evaluation,
    VersionFeed,
    alert_events,
    cron_events,
    version_events,
)
from segue.store.entities import Firing, Schedule
from segue.store.schedules import OUTCOMES, ScheduleStore
from segue.store.sessions import describe, is_transient

__all__ = [
    "Launch",
    "LaunchOutcome",
    "PipelineLauncher",
    "Scheduler",
    "default_owner",
    "loop_launcher",
    "run_cause",
]

log = logging.getLogger("segue.scheduler")


def default_owner() -> str:
    """This process as a lease holder: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Job:
    """A firing this scheduler runs, in its thread."""

    schedule: Schedule
    firing: Firing
    thread: threading.Thread | None = None
    #: The outcome, kept while the store could not be told (retried each tick).
    outcome: LaunchOutcome | None = None
    #: The lease went to another scheduler, or close() failed the firing: stop renewing.
    released: bool = False
    #: Set when the thread has ended (its outcome recorded, or kept in ``outcome``).
    done: threading.Event = field(default_factory=threading.Event)


class Scheduler:
    """Starts the pipelines of the schedules in ``store`` when their triggers fire.

    Args:
        store: the schedules and their firings.
        launch: starts a firing's pipeline and says how it ended (default
            :class:`PipelineLauncher`).
        launchers: launches by kind of schedule: ``"loop"`` for a schedule with ``loop`` set.
        alerts: where on-alert schedules read their rule's firings.
        versions: where on-new-version schedules read their model's versions.
        clock: epoch seconds, for :meth:`tick` without an instant.
        owner: this scheduler in the leases (default ``host:pid``).
        workers: firings run at once by this scheduler.
        lease_s: how long a claim holds without renewal (several ticks).
    """

    def __init__(
        self,
        store: ScheduleStore,
        *,
        launch: Launch | None = None,
        launchers: Mapping[str, Launch] | None = None,
        alerts: AlertFeed | None = None,
        versions: VersionFeed | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        workers: int = 4,
        lease_s: float = 60.0,
    ) -> None:
        self.store = store
        self.owner = owner or default_owner()
        self._launch: Launch = launch or PipelineLauncher()
        self._launchers = dict(launchers or {})
        self._alerts = alerts
        self._versions = versions
        self._clock = clock
        self._workers = max(1, workers)
        self._lease_s = lease_s
        self._jobs: dict[int, _Job] = {}
        self._lock = threading.Lock()
        self._last_launch: dict[int, int] = {}
        self._ticks = 0
        self._closed = False

    # -- one round -------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> list[Firing]:
        """One round at ``now`` (epoch seconds; default: the clock): renew, take over, claim
        and launch. Returns the firings launched."""
        if self._closed:
            return []
        now_ms = int((self._clock() if now is None else now) * 1000)
        self._ticks += 1
        self._renew(now_ms)
        launched = self._take_over(now_ms)
        schedules = [s for s in self.store.list() if not s.paused]
        # Least recently launched first: no schedule is starved when the slots are few.
        schedules.sort(key=lambda s: (self._last_launch.get(s.id, 0), s.name))
        for schedule in schedules:
            if self._full():
                break
            if self._running(schedule.id):
                continue
            try:
                firing = self._fire(schedule, now_ms)
            except Exception as exc:
                if is_transient(exc):
                    raise  # the store is away: run_forever retries the whole tick
                # One schedule that cannot be evaluated (a cron that never fires, stored
                # before add refused it) never stops the others.
                trace = None if isinstance(exc, SegueError) else exc
                log.error("schedule %s: %s", schedule.name, describe(exc), exc_info=trace)
                continue
            if firing is not None:
                launched.append(firing)
        return launched

    def _fire(self, schedule: Schedule, now_ms: int) -> Firing | None:
        evaluation = self._evaluate(schedule, now_ms)
        if evaluation.skip:
            self.store.advance(schedule.name, evaluation.skip)
        if not evaluation.events:
            return None
        # One firing per schedule at a time: the first event now, the next ones later.
        event = evaluation.events[0]
        firing = self.store.claim(
            schedule.id,
            event.key,
            event.cause,
            owner=self.owner,
            lease_s=self._lease_s,
            now_ms=now_ms,
            cursor=event.cursor,
        )
        if firing is not None:
            self._start(schedule, firing)
        return firing

    def _evaluate(self, schedule: Schedule, now_ms: int) -> Evaluation:
        if schedule.trigger == "cron":
            return cron_events(schedule, now_ms)
        if schedule.trigger == "alert":
            if self._alerts is None:
                raise SegueError("this scheduler was given no alert store to read alerts from")
            after = int(schedule.cursor.get("alert_id", 0))
            return alert_events(schedule, self._alerts.since(schedule.spec, after, BATCH))
        if schedule.trigger == "version":
            if self._versions is None:
                raise SegueError("this scheduler was given no registry to read versions from")
            try:
                versions = self._versions.list_versions(schedule.spec)
            except NotFound:  # not registered yet: its first version will fire it
                return Evaluation()
            return version_events(schedule, versions)
        raise SegueError(f"unknown trigger {schedule.trigger!r}")

    # -- leases ----------------------------------------------------------------------------

    def _renew(self, now_ms: int) -> None:
        for job in self._held():
            if not self.store.renew(
                job.firing.id, owner=self.owner, lease_s=self._lease_s, now_ms=now_ms
            ):
                job.released = True
                log.warning(
                    "firing %s of %s: lease lost (taken over after it expired, or the "
                    "schedule was removed); its outcome will not be recorded here",
                    job.firing.id,
                    job.schedule.name,
                )
            elif job.outcome is not None:
                self._finish(job, job.outcome)  # the store could not be told before

    def _take_over(self, now_ms: int) -> list[Firing]:
        launched: list[Firing] = []
        for old in self.store.expired(now_ms):
            if self._full():
                break
            if old.id in self._jobs:
                continue  # ours: renewed on this tick
            firing = self.store.take_over(
                old.id, owner=self.owner, lease_s=self._lease_s, now_ms=now_ms
            )
            log.warning(
                "firing %s of %s: the lease of %s expired; failed it%s",
                old.id,
                old.schedule,
                old.owner,
                f", retrying as firing {firing.id} (attempt {firing.attempt})" if firing else "",
            )
            if firing is None:
                continue
            try:
                schedule = self.store.get(firing.schedule)
            except NotFound:
                continue
            self._start(schedule, firing)
            launched.append(firing)
        return launched

    # -- running firings -------------------------------------------------------------------

    def _start(self, schedule: Schedule, firing: Firing) -> None:
        self._last_launch[schedule.id] = self._ticks
        job = _Job(schedule, firing)
        launch = self._launchers.get("loop") if schedule.loop else self._launch
        log.info(
            "firing %s of %s (%s): launching %s",
            firing.id,
            schedule.name,
            firing.key,
            f"loop {schedule.loop}" if schedule.loop else schedule.pipeline,
        )
        job.thread = threading.Thread(
            target=self._run,
            args=(job, launch),
            name=f"segue-firing-{firing.id}",
            daemon=True,
        )
        with self._lock:
            self._jobs[firing.id] = job
        job.thread.start()

    def _run(self, job: _Job, launch: Launch | None) -> None:
        try:
            self._work(job, launch)
        finally:
            job.done.set()

    def _work(self, job: _Job, launch: Launch | None) -> None:
        if launch is None:
            error = (
                f"schedule {job.schedule.name!r} belongs to loop {job.schedule.loop!r}, and "
                "this scheduler launches no loops"
            )
            self._finish(job, LaunchOutcome("failed", error=error))
            return
        try:
            self.store.start(job.firing.id, None)
        except Exception as exc:  # lost (taken over, removed) or unreachable: nothing ran
            log.warning("firing %s of %s: %s", job.firing.id, job.schedule.name, exc)
            self._forget(job)
            return
        try:
            outcome = launch(job.schedule, job.firing)
        except Exception as exc:
            log.error("firing %s of %s failed: %s", job.firing.id, job.schedule.name, exc)
            outcome = LaunchOutcome("failed", error=f"{type(exc).__name__}: {exc}")
        if outcome.status not in OUTCOMES:
            error = f"its launch ended as {outcome.status!r}"
            outcome = LaunchOutcome("failed", outcome.run_id, error)
        self._finish(job, outcome)

    def _finish(self, job: _Job, outcome: LaunchOutcome) -> None:
        if job.released:
            log.warning(
                "firing %s of %s ended %s after its lease was lost (run %s); not recorded",
                job.firing.id,
                job.schedule.name,
                outcome.status,
                outcome.run_id,
            )
            self._forget(job)
            return
        try:
            self._record(job, outcome)
        except Exception as exc:
            if is_transient(exc):
                # Keep the lease and the outcome: the next tick tells the store.
                job.outcome = outcome
                log.warning(
                    "firing %s of %s ended %s, but the store could not be told (%s); retrying",
                    job.firing.id,
                    job.schedule.name,
                    outcome.status,
                    describe(exc),
                )
                return
            log.error(
                "firing %s of %s ended %s, but the store refused it: %s",
                job.firing.id,
                job.schedule.name,
                outcome.status,
                describe(exc),
            )
            refused = LaunchOutcome(
                "failed", outcome.run_id, f"its outcome could not be recorded: {describe(exc)}"
            )
            try:
                self._record(job, refused)
            except Exception as again:
                # Stop renewing: the lease runs out and another scheduler fails the firing.
                log.error("firing %s: %s", job.firing.id, describe(again))
        self._forget(job)

    def _record(self, job: _Job, outcome: LaunchOutcome) -> None:
        try:
            self.store.finish(
                job.firing.id,
                outcome.status,
                run_id=outcome.run_id,
                error=outcome.error,
                steps=outcome.steps,
            )
        except (Conflict, NotFound) as exc:  # taken over, or removed with its schedule
            log.warning("firing %s of %s: %s", job.firing.id, job.schedule.name, exc)
            return
        log.info(
            "firing %s of %s %s%s%s",
            job.firing.id,
            job.schedule.name,
            outcome.status,
            f": run {outcome.run_id}" if outcome.run_id else "",
            f" ({outcome.error})" if outcome.error else "",
        )

    def _forget(self, job: _Job) -> None:
        with self._lock:
            self._jobs.pop(job.firing.id, None)

    def _held(self) -> list[_Job]:
        with self._lock:
            return [job for job in self._jobs.values() if not job.released]

    def _running(self, schedule_id: int) -> bool:
        with self._lock:
            return any(job.schedule.id == schedule_id for job in self._jobs.values())

    def _full(self) -> bool:
        with self._lock:
            return len(self._jobs) >= self._workers

    @property
    def running(self) -> list[Firing]:
        """The firings this scheduler runs now."""
        with self._lock:
            return [job.firing for job in self._jobs.values()]

    # -- the process -----------------------------------------------------------------------

    def wait(self, firing_id: int, timeout: float | None = None) -> bool:
        """Wait until the launch of this scheduler's firing ``firing_id`` has ended (at most
        ``timeout`` seconds); returns whether it has (True for a firing it does not run). Its
        outcome is recorded then, unless the store could not take it (the next tick retries).
        """
        with self._lock:
            job = self._jobs.get(firing_id)
        return job is None or job.done.wait(timeout)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the firings running now have ended (at most ``timeout`` seconds);
        returns whether they all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not job.done.wait(left):
                return False
        return True

    def close(self, grace: float | None = 30.0) -> None:
        """Stop: claim nothing more, wait ``grace`` seconds (None: as long as it takes) for
        the running firings, renewing their leases meanwhile, and fail those still running,
        saying the scheduler stopped."""
        self._closed = True
        self._drain_renewing(grace)
        for job in self._held():
            job.released = True
            outcome = job.outcome or LaunchOutcome(
                "failed",
                error=f"scheduler {self.owner} stopped before this firing ended; its run was "
                "abandoned",
            )
            try:
                self._record(job, outcome)
            except Exception as exc:
                log.error("firing %s of %s: %s", job.firing.id, job.schedule.name, describe(exc))

    def _drain_renewing(self, timeout: float | None) -> bool:
        # Still alive and still running its firings (segue scheduler --once waits here for
        # as long as they take): keep their leases, or a loop cycle finds its lease lost and
        # another scheduler may retry the firing.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            wait = self._lease_s / 3 if left is None else min(self._lease_s / 3, max(0.0, left))
            if self.drain(wait) or (left is not None and left <= wait):
                return self.drain(0)
            try:
                self._renew(int(self._clock() * 1000))
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("renewing leases failed, retrying: %s", describe(exc))

    def run_forever(
        self, stop: threading.Event, interval: float = 10.0, grace: float | None = 30.0
    ) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set, then :meth:`close`.

        A tick that fails for a transient reason (the database busy or unreachable) is logged
        and the next one tries again; any other error stops the scheduler after closing.
        """
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    log.warning("tick failed, retrying in %ss: %s", interval, describe(exc))
                stop.wait(interval)
        finally:
            self.close(grace)
