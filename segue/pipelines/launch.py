"""Launching a firing: what a scheduler runs when a schedule's trigger fires.

A launch is ``launch(schedule, firing) -> LaunchOutcome``, called in the scheduler's worker
thread; the scheduler records the outcome on the firing. :class:`PipelineLauncher` runs the
schedule's pipeline with the runtime; :func:`loop_launcher` runs one cycle of a closed loop.

Example:
    >>> outcome = PipelineLauncher()(schedule, firing)
    >>> outcome.status, outcome.run_id
    ('succeeded', '6c1f…')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segue.pipelines.triggers import accepted_params, trigger_params
from segue.store.entities import Firing, Schedule

if TYPE_CHECKING:
    from segue.monitoring.sinks import Sink
    from segue.pipelines.spec import PipelineSpec
    from segue.store.alerts import AlertStore
    from segue.store.schedules import ScheduleStore

__all__ = ["Launch", "LaunchOutcome", "PipelineLauncher", "loop_launcher", "run_cause"]

# The scheduler's logger: a firing's steps are logged with the firing.
log = logging.getLogger("segue.scheduler")


@dataclass(frozen=True)
class LaunchOutcome:
    """How a launched firing ended: ``status`` ``succeeded``, ``failed`` or ``blocked``, the
    pipeline run (if one started), the error, and a loop cycle's steps (None: keep those
    recorded on the way)."""

    status: str
    run_id: str | None = None
    error: str | None = None
    steps: list[dict[str, Any]] | None = None


#: What starts a firing's work and says how it ended.
Launch = Callable[[Schedule, Firing], LaunchOutcome]


def run_cause(schedule: Schedule, firing: Firing) -> dict[str, Any]:
    """The cause a firing's run records (``segue.cause``): the trigger event with the schedule
    and the firing (and ``attempt`` for a retry after a lease expired)."""
    cause = {**firing.cause, "schedule": schedule.name, "firing": firing.id}
    if firing.attempt > 1:
        cause["attempt"] = firing.attempt
    return cause


class PipelineLauncher:
    """The default launch: runs ``schedule``'s pipeline for a firing with the runtime, in the
    calling thread, logging each step as it ends.

    Params: the schedule's, then the trigger's (``alert_*``, or ``model`` and ``version``) that
    the pipeline declares; the others stay in the cause. Options: ``executor``,
    ``experiment``. The Ray cluster is this scheduler's ``ray_address``, never the schedule's:
    the workers get the scheduler's ``SEGUE_*`` variables, its secrets included.

    Args:
        run: :func:`segue.pipelines.runtime.run_loaded` (injectable for tests).
        load: the pipeline of a target and the target as recorded (default
            :func:`segue.pipelines.targets.load_target`).
        ray_address: the Ray cluster of the schedules whose executor is ``ray`` (None: the
            Ray this process is connected to, or a local one).
    """

    def __init__(
        self,
        run: Callable[..., Any] | None = None,
        load: Callable[[str], tuple[PipelineSpec, str]] | None = None,
        ray_address: str | None = None,
    ) -> None:
        self._run = run
        self._load = load
        self._ray_address = ray_address

    def __call__(self, schedule: Schedule, firing: Firing) -> LaunchOutcome:
        from segue.pipelines.runtime import run_loaded
        from segue.pipelines.targets import load_target

        spec, target = (self._load or load_target)(schedule.pipeline)
        params = {**schedule.params, **accepted_params(spec.fn, trigger_params(firing.cause))}
        options = schedule.options

        def on_step(step: Any) -> None:
            log.info(
                "firing %s of %s: step %s %s%s",
                firing.id,
                schedule.name,
                step.node,
                step.status,
                " (cached)" if step.cached_from else "",
            )

        result = (self._run or run_loaded)(
            spec,
            target,
            params,
            executor=str(options.get("executor") or "local"),
            address=self._ray_address,
            experiment=options.get("experiment"),
            cause=run_cause(schedule, firing),
            on_step=on_step,
        )
        status = "succeeded" if result.status == "FINISHED" else "failed"
        return LaunchOutcome(status, result.run_id, result.error)


def loop_launcher(
    store: ScheduleStore,
    alerts: AlertStore,
    clock: Callable[[], float] = time.time,
    ray_address: str | None = None,
    sinks: list[Sink] | None = None,
) -> Launch:
    """The launch of a loop's firing: one cycle of :func:`segue.pipelines.loop.run_cycle`
    (on the Ray cluster ``ray_address`` for a loop whose executor is ``ray``), delivering a
    ``loop.blocked`` alert to ``sinks`` (default: the log)."""

    def launch(schedule: Schedule, firing: Firing) -> LaunchOutcome:
        from segue.pipelines.loop import run_cycle

        outcome = run_cycle(
            schedule,
            firing,
            store=store,
            alerts=alerts,
            sinks=sinks,
            clock=clock,
            ray_address=ray_address,
        )
        return LaunchOutcome(outcome.status, outcome.run_id, outcome.error, outcome.steps)

    return launch
