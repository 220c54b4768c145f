"""The closed loop: drift -> retrain -> gate -> promote -> hot swap, as one declared policy.

A loop is a schedule triggered by an alert rule (``trigger="alert"``, ``loop=NAME``) whose
options hold the policy: the model it retrains and the alias it promotes to. When the rule
fires, the scheduler launches :func:`run_cycle`, which

1. reads the alert that started it (``alert``);
2. runs the retraining pipeline with the alert's details as params, the alert as its cause
   (``retrain``);
3. takes the candidate: the version of the model the pipeline registered from one of its
   runs, else registers the model the pipeline returned (``register``);
4. has the alias's gates judge it (``gate``): a failing gate stops the cycle (status
   ``blocked``) and fires a ``loop.blocked`` alert instead;
5. moves the alias as the loop itself (actor ``loop:NAME``), the cause in the audit log
   (``promote``), if this scheduler still holds the firing's lease (else it ends ``failed``,
   "lease lost", moving nothing);
6. notes how the move reaches every ``segue serve`` following the alias, which swaps the
   new version in by itself (``swap``).

Each step is recorded in the firing's ``steps`` as it ends (``segue loop status`` shows them).

Example:
    >>> policy = LoopPolicy("churn", "churn", "pipelines/churn.py:retrain", "churn-drift",
    ...                     "champion")
    >>> add_loop(ScheduleStore(engine), policy, registry, Actor("local", "ada"))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segue.errors import GateFailed, InvalidArgument, NotFound
from segue.identity import Actor
from segue.pipelines.cycle import (
    BLOCKED_RULE,
    Blocked,
    CycleOutcome,
    Steps,
    alert_of,
    announced,
    block,
    candidate,
    describe_step,
    gate_detail,
    loop_registry,
    move_detail,
    origin,
    pipeline_params,
    retrain,
)
from segue.store.aliases import check_alias
from segue.store.entities import Firing, NewSchedule, Schedule
from segue.store.names import check_name
from segue.store.registry import check_model_name

if TYPE_CHECKING:
    from segue.monitoring.sinks import Sink
    from segue.registry.service import Registry
    from segue.store.alerts import AlertStore
    from segue.store.schedules import ScheduleStore

__all__ = [
    "BLOCKED_RULE",
    "STEPS",
    "CycleOutcome",
    "LoopPolicy",
    "add_loop",
    "describe_step",
    "get_loop",
    "list_loops",
    "run_cycle",
]

log = logging.getLogger("segue.loop")

#: A cycle's steps, in order.
STEPS = ("alert", "retrain", "register", "gate", "promote", "swap")


@dataclass(frozen=True)
class LoopPolicy:
    """What a loop does: when alert ``rule`` fires for ``model``, run the pipeline ``retrain``
    (``module:fn`` or ``path/file.py:fn``) with ``params`` and promote its candidate to
    ``promote_to`` if that alias's gates pass."""

    name: str
    model: str
    retrain: str
    rule: str
    promote_to: str
    params: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"

    def new_schedule(self) -> NewSchedule:
        """The schedule that stores this policy."""
        return NewSchedule(
            name=self.name,
            pipeline=self.retrain,
            trigger="alert",
            spec=self.rule,
            params=dict(self.params),
            options={
                "executor": self.executor,
                "loop": {"model": self.model, "promote_to": self.promote_to},
            },
            loop=self.name,
        )

    @classmethod
    def of(cls, schedule: Schedule) -> LoopPolicy:
        """The policy a loop's schedule holds.

        Raises:
            InvalidArgument: the schedule is not a loop.
        """
        policy = schedule.options.get("loop")
        if schedule.loop is None or not isinstance(policy, Mapping):
            raise InvalidArgument(
                f"schedule {schedule.name!r} is not a loop; see `segue loop list`"
            )
        return cls(
            schedule.loop,
            str(policy["model"]),
            schedule.pipeline,
            schedule.spec,
            str(policy["promote_to"]),
            dict(schedule.params),
            str(schedule.options.get("executor", "local")),
        )


# --- declaring loops ----------------------------------------------------------------------


def add_loop(
    store: ScheduleStore, policy: LoopPolicy, registry: Registry, actor: Actor
) -> Schedule:
    """Check ``policy`` and store it as a schedule.

    Raises:
        InvalidArgument: a malformed name; an alias the model does not have; a retraining
            target that does not import or is not a ``@segue.pipeline``; a param the
            pipeline does not take; ``loop.blocked`` as the rule (a loop cannot be started
            by its own refusals).
        NotFound: the model is not registered.
        AlreadyExists: a schedule or loop of that name exists.
    """
    check_name("loop", policy.name, 128)  # the schedule's name too: the same rule
    check_model_name(policy.model)
    check_alias(policy.promote_to)
    if not policy.rule.strip() or policy.rule == BLOCKED_RULE:
        raise InvalidArgument(f"--on-alert: {policy.rule!r} is not a rule a loop can follow")
    registry.get_model(policy.model)
    if registry.store.get_alias(policy.model, policy.promote_to) is None:
        raise InvalidArgument(
            f"model {policy.model!r} has no alias {policy.promote_to!r}: point it at the "
            f"version serving now first (segue models alias {policy.model} "
            f"{policy.promote_to} VERSION)"
        )
    accepted = pipeline_params(policy.retrain)
    unknown = sorted(set(policy.params) - accepted)
    if unknown:
        raise InvalidArgument(
            f"--param {unknown[0]}: {policy.retrain} takes no such param "
            f"(it takes {', '.join(sorted(accepted)) or 'none'})"
        )
    return store.add(policy.new_schedule(), str(actor))


def list_loops(store: ScheduleStore) -> list[Schedule]:
    """Every loop's schedule, by name."""
    return [s for s in store.list() if s.loop is not None]


def get_loop(store: ScheduleStore, name: str) -> Schedule:
    """The schedule of loop ``name``.

    Raises:
        NotFound: no loop of that name.
    """
    try:
        schedule = store.get(name)
    except NotFound:
        schedule = None
    if schedule is None or schedule.loop is None:
        raise NotFound(f"loop {name!r} does not exist; see `segue loop list`")
    return schedule


# --- one cycle ----------------------------------------------------------------------------


def run_cycle(
    schedule: Schedule,
    firing: Firing,
    *,
    store: ScheduleStore,
    alerts: AlertStore | None = None,
    registry: Registry | None = None,
    sinks: list[Sink] | None = None,
    run: Callable[..., Any] | None = None,
    clock: Callable[[], float] = time.time,
    ray_address: str | None = None,
) -> CycleOutcome:
    """Run one cycle of the loop ``schedule`` for the alert firing ``firing`` (what the
    scheduler launches for a loop), recording each step in the firing.

    Args:
        store: the schedule store the firing is in.
        alerts: where a ``loop.blocked`` alert is recorded (default: the registry's database).
        registry: the registry to act through (default :func:`segue.get_registry`); the
            loop acts as ``Actor("loop", NAME)`` whoever the given registry's actor is.
        sinks: where a ``loop.blocked`` alert is delivered (default: the log).
        run: :func:`segue.pipelines.runtime.run_pipeline` (injectable for tests).
        clock: epoch seconds, for the steps' times.
        ray_address: the Ray cluster, for a loop whose executor is ``ray`` (the scheduler's
            choice, never the schedule's).

    Returns:
        The outcome, for the scheduler to finish the firing with.
    """
    policy = LoopPolicy.of(schedule)
    steps = Steps(store, firing, clock)
    loop = loop_registry(registry, policy)
    alert = alert_of(firing.cause)
    steps.record("alert", "ok", alert)
    cause = {
        "kind": "loop",
        "loop": policy.name,
        "rule": alert.get("rule", policy.rule),
        "alert": alert.get("alert"),
        "schedule": schedule.name,
        "firing": firing.id,
    }
    result = retrain(policy, schedule, firing, cause, steps, run, ray_address)
    if result is None or result.status != "FINISHED":
        run_id = None if result is None else result.run_id
        return steps.end("failed", run_id, steps.done[-1]["detail"].get("error"))
    store.start(firing.id, result.run_id)
    version = candidate(policy, loop, result, steps, cause)
    if version is None:
        return steps.end("failed", result.run_id, steps.done[-1]["detail"]["error"])
    reason = f"moved by {origin(result.run_id, cause)}"
    report = loop.gate_report(policy.model, policy.promote_to, version)
    if all(r.passed for r in report):
        steps.record("gate", "ok", gate_detail(policy, version, report))
        lost = steps.lease_lost()
        if lost is not None:  # another scheduler's retry of this firing may move it
            return steps.end("failed", result.run_id, lost)
        try:
            move = loop.set_alias(
                policy.model,
                policy.promote_to,
                version,
                reason=reason,
                details={"cause": {**cause, "run": result.run_id}},
            )
        except GateFailed as exc:  # the holder changed between the report and the move
            report, step = list(exc.report), "promote"
        else:
            steps.record("promote", "ok", move_detail(move, reason))
            steps.record("swap", "ok", announced(loop, policy, move.version))
            return steps.end("succeeded", result.run_id)
    else:
        step = "gate"
    blocked = Blocked(policy, version, report, cause, result.run_id)
    block(blocked, step, steps, loop, alerts, sinks, clock)
    return steps.end("blocked", result.run_id, steps.done[-1]["detail"]["message"])
