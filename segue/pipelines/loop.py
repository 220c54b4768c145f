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
   (``promote``);
6. notes how the move reaches every ``segue serve`` following the alias, which swaps the
   new version in by itself (``swap``).

Each step is recorded in the firing's ``steps`` as it ends (``segue loop status`` shows them).

Example:
    >>> policy = LoopPolicy("churn", "churn", "pipelines/churn.py:retrain", "churn-drift",
    ...                     "champion")
    >>> add_loop(ScheduleStore(engine), policy, registry, Actor("local", "ada"))
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segue.errors import GateFailed, InvalidArgument, NotFound, SegueError
from segue.identity import Actor
from segue.store.aliases import check_alias
from segue.store.entities import Firing, NewSchedule, Schedule
from segue.store.registry import check_model_name
from segue.store.schedules import check_schedule_name

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

#: The rule of the alert a cycle fires when the gates refuse its candidate.
BLOCKED_RULE = "loop.blocked"
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
                f"schedule {schedule.name!r} is not a loop; see `segue schedule show`"
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


@dataclass(frozen=True)
class CycleOutcome:
    """How a cycle ended: ``status`` ``succeeded``, ``failed`` or ``blocked``, the pipeline
    run (if one started), the error (if any) and every step recorded."""

    status: str
    run_id: str | None
    error: str | None
    steps: list[dict[str, Any]]


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
    check_schedule_name(policy.name)
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
    accepted = _pipeline_params(policy.retrain)
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


def _pipeline_params(target: str) -> set[str]:
    from segue.pipelines.targets import load_target

    spec, _ = load_target(target)
    return set(inspect.signature(spec.fn).parameters)


# --- one cycle ----------------------------------------------------------------------------


class _Steps:
    """The steps of one cycle, written to the firing's record as each one ends."""

    def __init__(self, store: ScheduleStore, firing: Firing, clock: Callable[[], float]) -> None:
        self.store = store
        self.firing = firing
        self.clock = clock
        self.done: list[dict[str, Any]] = []

    def record(self, step: str, status: str, detail: Mapping[str, Any]) -> None:
        at = int(self.clock() * 1000)
        self.done.append({"step": step, "status": status, "at": at, "detail": dict(detail)})
        self.store.record_steps(self.firing.id, self.done)

    def end(self, status: str, run_id: str | None, error: str | None = None) -> CycleOutcome:
        return CycleOutcome(status, run_id, error, list(self.done))


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

    Returns:
        The outcome, for the scheduler to finish the firing with.
    """
    policy = LoopPolicy.of(schedule)
    steps = _Steps(store, firing, clock)
    loop = _loop_registry(registry, policy)
    alert = _alert_of(firing.cause)
    steps.record("alert", "ok", alert)
    cause = {
        "kind": "loop",
        "loop": policy.name,
        "rule": alert.get("rule", policy.rule),
        "alert": alert.get("alert"),
        "schedule": schedule.name,
        "firing": firing.id,
    }
    result = _retrain(policy, schedule, firing, cause, steps, run)
    if result is None or result.status != "FINISHED":
        run_id = None if result is None else result.run_id
        return steps.end("failed", run_id, steps.done[-1]["detail"].get("error"))
    store.start(firing.id, result.run_id)
    version = _candidate(policy, loop, result, steps)
    if version is None:
        return steps.end("failed", result.run_id, steps.done[-1]["detail"]["error"])
    reason = (
        f"moved by pipeline run {result.run_id}, started by alert firing "
        f"{cause['alert']} of rule {cause['rule']}"
    )
    report = loop.gate_report(policy.model, policy.promote_to, version)
    if all(r.passed for r in report):
        steps.record("gate", "ok", _gate_detail(policy, version, report))
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
            steps.record("promote", "ok", _move_detail(move, reason))
            steps.record("swap", "ok", _announced(loop, policy, move.version))
            return steps.end("succeeded", result.run_id)
    else:
        step = "gate"
    blocked = _Blocked(policy, version, report, cause)
    _block(blocked, step, steps, loop, alerts, sinks, clock)
    return steps.end("blocked", result.run_id, steps.done[-1]["detail"]["message"])


def _loop_registry(registry: Registry | None, policy: LoopPolicy) -> Registry:
    from segue.registry.service import Registry, get_registry

    base = registry if registry is not None else get_registry()
    return Registry(base.store, base.tracking, Actor("loop", policy.name))


def _alert_of(cause: Mapping[str, Any]) -> dict[str, Any]:
    """The alert that started a firing, from its cause (``rule``, ``alert`` (its id),
    ``model``, ``signal``, ``value``, ``threshold``, ``message``, ``at``)."""
    names = ("rule", "alert", "model", "signal", "value", "threshold", "message", "at")
    return {name: cause[name] for name in names if name in cause}


def _retrain(
    policy: LoopPolicy,
    schedule: Schedule,
    firing: Firing,
    cause: Mapping[str, Any],
    steps: _Steps,
    run: Callable[..., Any] | None,
) -> Any:
    """The pipeline's result (None if it could not start), with the ``retrain`` step."""
    if run is None:
        from segue.pipelines.runtime import run_pipeline

        run = run_pipeline
    from segue.pipelines.targets import load_target
    from segue.pipelines.triggers import accepted_params, trigger_params

    options = schedule.options
    params: dict[str, Any] = {}
    try:
        spec, _ = load_target(policy.retrain)
        offered = {"model": policy.model, **trigger_params(firing.cause), **policy.params}
        params = accepted_params(spec.fn, offered)
        result = run(
            policy.retrain,
            params,
            executor=options.get("executor", "local"),
            address=options.get("address"),
            experiment=options.get("experiment"),
            cause=dict(cause),
        )
    except Exception as exc:  # the cycle's record must say why, whatever the pipeline raised
        log.exception("loop %s: the retraining pipeline %s failed", policy.name, policy.retrain)
        steps.record("retrain", "failed", {"pipeline": policy.retrain, "error": _error(exc)})
        return None
    detail = {
        "pipeline": policy.retrain,
        "params": params,
        "run_id": result.run_id,
        "status": result.status,
        "steps": [
            {"node": s.node, "status": s.status, "cached_from": s.cached_from} for s in result.steps
        ],
    }
    if result.status != "FINISHED":
        detail["error"] = result.error or f"pipeline run {result.run_id} ended {result.status}"
        steps.record("retrain", "failed", detail)
    else:
        steps.record("retrain", "ok", detail)
    return result


def _candidate(policy: LoopPolicy, loop: Registry, result: Any, steps: _Steps) -> int | None:
    """The candidate version (None if there is none), with the ``register`` step."""
    runs = [result.run_id, *(s.run_id for s in result.steps if s.run_id)]
    registered = [
        v
        for run_id in runs
        for v in loop.store.versions_for_run(run_id)
        if v.model_name == policy.model
    ]
    if registered:
        newest = max(registered, key=lambda v: v.version)
        detail = {"model": policy.model, "version": newest.version, "run_id": newest.run_id}
        steps.record("register", "ok", {**detail, "registered_by": "the pipeline"})
        return int(newest.version)
    uri = result.model_uri()
    if uri is None:
        error = (
            f"pipeline run {result.run_id} registered no version of {policy.model} and "
            "returned no model"
        )
        steps.record("register", "failed", {"model": policy.model, "error": error})
        return None
    try:
        version = loop.register(uri, policy.model)
    except Exception as exc:  # a package that fails verification: say so in the cycle
        steps.record(
            "register", "failed", {"model": policy.model, "uri": uri, "error": _error(exc)}
        )
        return None
    steps.record(
        "register",
        "ok",
        {
            "model": policy.model,
            "version": version.version,
            "run_id": version.run_id,
            "uri": uri,
            "registered_by": "the loop",
        },
    )
    return int(version.version)


def _gate_detail(policy: LoopPolicy, version: int, report: list[Any]) -> dict[str, Any]:
    return {
        "alias": f"{policy.model}@{policy.promote_to}",
        "version": version,
        "passed": all(r.passed for r in report),
        "gates": [vars(r) for r in report],
    }


def _move_detail(move: Any, reason: str) -> dict[str, Any]:
    return {
        "alias": f"{move.model}@{move.alias}",
        "version": move.version,
        "previous": move.previous,
        "reason": reason,
    }


def _announced(loop: Registry, policy: LoopPolicy, version: int) -> dict[str, Any]:
    """How the move reaches the servers following the alias: the audit entry they read and,
    on PostgreSQL, the notification they listen for."""
    target = f"alias {policy.promote_to}"
    entry = next(
        e
        for e in loop.history(policy.model)
        if e.action == "set_alias"
        and e.target == target
        and (e.after or {}).get("version") == version
    )
    pushed = loop.alias_listener() is not None
    return {
        "alias": f"{policy.model}@{policy.promote_to}",
        "version": version,
        "audit": entry.id,
        "announced": (
            "notified at once (PostgreSQL NOTIFY)" if pushed else "in the audit log servers poll"
        ),
    }


@dataclass(frozen=True)
class _Blocked:
    policy: LoopPolicy
    version: int
    report: list[Any]
    cause: Mapping[str, Any]


def _block(
    blocked: _Blocked,
    step: str,
    steps: _Steps,
    loop: Registry,
    alerts: AlertStore | None,
    sinks: list[Sink] | None,
    clock: Callable[[], float],
) -> None:
    """Record the refused ``step`` and fire ``loop.blocked``."""
    from segue.monitoring.alerts import Firing as AlertFiring
    from segue.monitoring.alerts import deliver
    from segue.monitoring.sinks import LogSink

    policy, version, report = blocked.policy, blocked.version, blocked.report
    failed = [r for r in report if not r.passed]
    message = (
        f"{BLOCKED_RULE}: loop {policy.name} did not promote {policy.model} v{version} to "
        f"{policy.promote_to}: " + "; ".join(r.describe() for r in failed)
    )
    if alerts is None:
        alerts = _alert_store(loop)
    now = clock()
    firing = AlertFiring(BLOCKED_RULE, "gates_failed", ">", float(len(failed)), 0.0, message)
    (recorded,) = deliver(
        policy.model,
        [firing],
        sinks if sinks is not None else [LogSink()],
        alerts,
        at=now,
        window=(now, now),
    )
    detail = _gate_detail(policy, version, report)
    detail.update({"message": message, "alert": recorded.id, "cause": dict(blocked.cause)})
    steps.record(step, "blocked", detail)


def _alert_store(loop: Registry) -> AlertStore:
    from segue.store.alerts import SqlAlertStore

    engine = getattr(loop.store, "engine", None)
    if engine is None:
        raise InvalidArgument("a loop needs the metadata database itself (SEGUE_STORE_URI)")
    return SqlAlertStore(engine)


def _error(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SegueError) else f"{type(exc).__name__}: {exc}"


def describe_step(step: Mapping[str, Any]) -> str:
    """One line saying what a recorded step did, for people (``segue loop status``, the UI).

    Example:
        >>> describe_step({"step": "promote", "status": "ok", "detail": {"alias": "churn@champion",
        ...                "version": 4, "previous": 3, "reason": "moved by pipeline run ab12…"}})
        'churn@champion 3 -> 4: moved by pipeline run ab12…'
    """
    d = step.get("detail", {})
    if "error" in d and step.get("status") == "failed":
        return str(d["error"])
    kind = step.get("step")
    if kind == "alert":
        what = d.get("message") or f"rule {d.get('rule', '?')} fired"
        return f"{what} (alert {d.get('alert', '?')} on {d.get('model', '?')})"
    if kind == "retrain":
        nodes = d.get("steps", [])
        cached = sum(1 for n in nodes if n.get("cached_from"))
        return (
            f"{d.get('pipeline')}: run {d.get('run_id')} {d.get('status')} "
            f"({len(nodes)} steps, {cached} cached)"
        )
    if kind == "register":
        by = d.get("registered_by", "")
        return f"candidate {d.get('model')} v{d.get('version')} from run {d.get('run_id')} ({by})"
    if kind in ("gate", "promote") and step.get("status") == "blocked":
        return f"{d.get('message')} (alert {d.get('alert')})"
    if kind == "gate":
        n = len(d.get("gates", []))
        passed = f"all {n} gates passed" if n else "no gates declared"
        return f"{d.get('alias')} for version {d.get('version')}: {passed}"
    if kind == "promote":
        held = "unset" if d.get("previous") is None else d["previous"]
        return f"{d.get('alias')} {held} -> {d.get('version')}: {d.get('reason')}"
    if kind == "swap":
        return (
            f"every server following {d.get('alias')} swaps to version {d.get('version')}: "
            f"{d.get('announced')} (audit entry {d.get('audit')})"
        )
    return str(d)
