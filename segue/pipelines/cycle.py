"""The steps of one cycle of a closed loop, each recorded in the firing as it ends: what
:func:`segue.pipelines.loop.run_cycle` is made of, and the one-line description of a
recorded step people read (``segue loop status``, the web UI).

Example:
    >>> describe_step({"step": "gate", "status": "ok", "detail": {"alias": "churn@champion",
    ...                "version": 4, "gates": [{"passed": True}]}})
    'churn@champion for version 4: all 1 gates passed'
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segue.errors import Conflict, InvalidArgument, NotFound, SegueError
from segue.identity import Actor
from segue.store.entities import Firing, Schedule

if TYPE_CHECKING:
    from segue.monitoring.sinks import Sink
    from segue.pipelines.loop import LoopPolicy
    from segue.registry.service import Registry
    from segue.store.alerts import AlertStore
    from segue.store.schedules import ScheduleStore

__all__ = ["BLOCKED_RULE", "CycleOutcome", "Steps", "describe_step", "pipeline_params"]

log = logging.getLogger("segue.loop")

#: The rule of the alert a cycle fires when the gates refuse its candidate.
BLOCKED_RULE = "loop.blocked"


@dataclass(frozen=True)
class CycleOutcome:
    """How a cycle ended: ``status`` ``succeeded``, ``failed`` or ``blocked``, the pipeline
    run (if one started), the error (if any) and every step recorded."""

    status: str
    run_id: str | None
    error: str | None
    steps: list[dict[str, Any]]


def pipeline_params(target: str) -> set[str]:
    """The params the pipeline ``target`` takes.

    Raises:
        NotFound, InvalidArgument: the target does not import or is not a pipeline.
    """
    from segue.pipelines.targets import load_target

    spec, _ = load_target(target)
    return set(inspect.signature(spec.fn).parameters)


class Steps:
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

    def lease_lost(self) -> str | None:
        """Why this cycle must not move the alias, if its scheduler no longer holds the
        firing's lease (it ran out: another scheduler may be retrying the firing); else None.

        The refused ``promote`` step is recorded while the store still takes it.
        """
        now_ms = int(self.clock() * 1000)
        if self.store.holds(self.firing.id, self.firing.owner, now_ms):
            return None
        error = (
            f"lease lost: scheduler {self.firing.owner} no longer holds firing "
            f"{self.firing.id} (its lease ran out), so this cycle moves nothing"
        )
        # The firing may already be failed by a takeover, or removed: nothing to record then.
        with contextlib.suppress(Conflict, NotFound):
            self.record("promote", "failed", {"error": error})
        return error


def loop_registry(registry: Registry | None, policy: LoopPolicy) -> Registry:
    from segue.registry.service import Registry, get_registry

    base = registry if registry is not None else get_registry()
    return Registry(base.store, base.tracking, Actor("loop", policy.name))


def alert_of(cause: Mapping[str, Any]) -> dict[str, Any]:
    """The alert that started a firing, from its cause (``rule``, ``alert`` (its id),
    ``model``, ``signal``, ``value``, ``threshold``, ``message``, ``at``)."""
    names = ("rule", "alert", "model", "signal", "value", "threshold", "message", "at")
    return {name: cause[name] for name in names if name in cause}


def retrain(
    policy: LoopPolicy,
    schedule: Schedule,
    firing: Firing,
    cause: Mapping[str, Any],
    steps: Steps,
    run: Callable[..., Any] | None,
    ray_address: str | None = None,
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
            address=ray_address,
            experiment=options.get("experiment"),
            cause=dict(cause),
        )
    except Exception as exc:  # the cycle's record must say why, whatever the pipeline raised
        log.exception("loop %s: the retraining pipeline %s failed", policy.name, policy.retrain)
        steps.record("retrain", "failed", {"pipeline": policy.retrain, "error": error_text(exc)})
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


def origin(run_id: str, cause: Mapping[str, Any]) -> str:
    """What a cycle's audit entries say caused them: ``pipeline run R, started by alert
    firing F of rule X``."""
    return (
        f"pipeline run {run_id}, started by alert firing {cause.get('alert')} of rule "
        f"{cause.get('rule')}"
    )


def candidate(
    policy: LoopPolicy,
    loop: Registry,
    result: Any,
    steps: Steps,
    cause: Mapping[str, Any] | None = None,
) -> int | None:
    """The candidate version (None if there is none), with the ``register`` step; its audit
    entry carries ``cause`` (the loop's, see :func:`origin`)."""
    why = {"cause": {**(cause or {}), "run": result.run_id}}
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
        # The pipeline's own register entry knows nothing of the loop: say why it is taken.
        loop.record_event(
            policy.model,
            "loop_candidate",
            f"version {newest.version}",
            reason=f"candidate for {policy.promote_to} from {origin(result.run_id, why['cause'])}",
            details=why,
        )
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
    made = result.step(result.returned)
    if made.cached_from is not None:
        # The package is one an earlier run made (and likely registered): no new candidate.
        error = (
            f"the retrain produced no new model: step {made.node!r} was cached from run "
            f"{made.cached_from}"
        )
        steps.record("register", "failed", {"model": policy.model, "uri": uri, "error": error})
        return None
    try:
        version = loop.register(
            uri,
            policy.model,
            reason=f"registered by {origin(result.run_id, why['cause'])}",
            details=why,
        )
    except Exception as exc:  # a package that fails verification: say so in the cycle
        steps.record(
            "register", "failed", {"model": policy.model, "uri": uri, "error": error_text(exc)}
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


def gate_detail(policy: LoopPolicy, version: int, report: list[Any]) -> dict[str, Any]:
    return {
        "alias": f"{policy.model}@{policy.promote_to}",
        "version": version,
        "passed": all(r.passed for r in report),
        "gates": [vars(r) for r in report],
    }


def move_detail(move: Any, reason: str) -> dict[str, Any]:
    return {
        "alias": f"{move.model}@{move.alias}",
        "version": move.version,
        "previous": move.previous,
        "reason": reason,
    }


def announced(loop: Registry, policy: LoopPolicy, version: int) -> dict[str, Any]:
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
class Blocked:
    policy: LoopPolicy
    version: int
    report: list[Any]
    cause: Mapping[str, Any]
    run_id: str


def block(
    blocked: Blocked,
    step: str,
    steps: Steps,
    loop: Registry,
    alerts: AlertStore | None,
    sinks: list[Sink] | None,
    clock: Callable[[], float],
) -> None:
    """Record the refused ``step``, fire ``loop.blocked`` and note it in the model's audit
    log (``loop_blocked``, with the gate report, the cause and the alert it fired)."""
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
        alerts = alert_store(loop)
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
    detail = gate_detail(policy, version, report)
    detail.update({"message": message, "alert": recorded.id, "cause": dict(blocked.cause)})
    loop.record_event(
        policy.model,
        "loop_blocked",
        f"alias {policy.promote_to}",
        reason=f"{message} (in {origin(blocked.run_id, blocked.cause)})",
        details={**detail, "cause": {**blocked.cause, "run": blocked.run_id}},
    )
    steps.record(step, "blocked", detail)


def alert_store(loop: Registry) -> AlertStore:
    from segue.store.alerts import SqlAlertStore

    engine = getattr(loop.store, "engine", None)
    if engine is None:
        raise InvalidArgument("a loop needs the metadata database itself (SEGUE_STORE_URI)")
    return SqlAlertStore(engine)


def error_text(exc: BaseException) -> str:
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
