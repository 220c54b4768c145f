"""A loop's cycle as the loop page shows it: each recorded step (alert, retrain, register,
gate, promote, swap) in words with links to what it touched, then the steps it never reached.

Pure: it reads the firing's ``steps`` (``[{"step", "status", "at", "detail"}]``, as
:mod:`segue.pipelines.loop` records them) and the loop's policy; no I/O.

Example::

    >>> [s.step for s in cycle_steps(policy, firing)]
    ['alert', 'retrain', 'register', 'gate', 'promote', 'swap']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from segue.pipelines.loop import BLOCKED_RULE, STEPS, LoopPolicy, describe_step
from segue.store.entities import Firing, Schedule

__all__ = ["CycleStep", "cycle_steps", "policy_of"]

Link = tuple[str, str]

#: A firing still going: the steps after the last recorded one are to come, not skipped.
_IN_FLIGHT = ("claimed", "running")


@dataclass(frozen=True)
class CycleStep:
    """One step of a cycle: ``status`` ``ok``, ``failed``, ``blocked``, ``pending`` (the cycle
    is still going) or ``not-reached``; ``at`` epoch ms (None when not recorded); ``text``
    what it did; ``links`` what it touched; ``gates`` the gate report (gate and a refused
    promote)."""

    step: str
    status: str
    at: int | None
    text: str
    links: list[Link] = field(default_factory=list)
    gates: list[Mapping[str, Any]] | None = None


def policy_of(schedule: Schedule) -> LoopPolicy | None:
    """The policy a loop's schedule holds, or None when its options do not hold one (a
    schedule changed by hand): the list still shows the loop, without its policy."""
    policy = schedule.options.get("loop")
    if schedule.loop is None or not isinstance(policy, Mapping):
        return None
    if not all(isinstance(policy.get(key), str) for key in ("model", "promote_to")):
        return None
    return LoopPolicy.of(schedule)


def cycle_steps(policy: LoopPolicy, firing: Firing) -> list[CycleStep]:
    """The steps of the cycle ``firing`` of the loop ``policy``, in the order they ran."""
    shown = [_step(policy, recorded) for recorded in firing.steps if isinstance(recorded, dict)]
    done = {s.step for s in shown}
    later = "pending" if firing.status in _IN_FLIGHT else "not-reached"
    for name in STEPS:
        if name not in done and _after(name, done):
            shown.append(CycleStep(name, later, None, _UNREACHED[later]))
    return shown


_UNREACHED = {"pending": "not yet", "not-reached": "not reached: the cycle stopped before"}


def _after(name: str, done: set[str]) -> bool:
    """Whether step ``name`` comes after every step recorded (never shown twice, never
    shown before a later step that ran)."""
    last = max((STEPS.index(s) for s in done if s in STEPS), default=-1)
    return STEPS.index(name) > last


def _step(policy: LoopPolicy, recorded: Mapping[str, Any]) -> CycleStep:
    name = str(recorded.get("step", "?"))
    status = str(recorded.get("status", "?"))
    detail = recorded.get("detail")
    detail = detail if isinstance(detail, Mapping) else {}
    at = recorded.get("at")
    gates = detail.get("gates") if name in ("gate", "promote") else None
    return CycleStep(
        step=name,
        status=status,
        at=at if isinstance(at, int) else None,
        text=describe_step({**recorded, "detail": detail}),
        links=_links(policy, name, detail),
        gates=[g for g in gates if isinstance(g, Mapping)] if isinstance(gates, list) else None,
    )


def _links(policy: LoopPolicy, name: str, d: Mapping[str, Any]) -> list[Link]:
    model = str(d.get("model") or policy.model)
    quoted = quote(model, safe="")
    links: list[Link] = []
    if name == "alert" and d.get("alert") is not None:
        links.append((f"alert {d['alert']} of {d.get('rule', policy.rule)}", _alerts(quoted)))
    run_id = d.get("run_id")
    if name == "retrain" and isinstance(run_id, str) and run_id:
        links.append((f"pipeline run {run_id[:8]}", f"/pipelines/{quote(run_id, safe='')}"))
    version = d.get("version")
    if name in ("register", "gate", "promote", "swap") and isinstance(version, int):
        links.append((f"{model} version {version}", f"/models/{quoted}?tab=card&version={version}"))
    if name == "register" and isinstance(run_id, str) and run_id:
        links.append((f"run {run_id[:8]}", f"/runs/{quote(run_id, safe='')}"))
    if name in ("gate", "promote") and d.get("alert") is not None:
        links.append((f"{BLOCKED_RULE} alert {d['alert']}", _alerts(quoted)))
    if name == "promote" and "alert" not in d:
        links.append(("audit log", f"/models/{quoted}?tab=history"))
    if name == "swap" and isinstance(d.get("audit"), int):
        links.append(
            (f"audit entry {d['audit']}", f"/models/{quoted}?tab=history#entry-{d['audit']}")
        )
    return links


def _alerts(quoted_model: str) -> str:
    return f"/monitoring/{quoted_model}#alerts"
