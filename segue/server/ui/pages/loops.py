"""``/loops``: every closed loop (its model, alias, rule, retraining pipeline, whether it is
paused, and how its last cycle ended); ``/loops/{name}``: a loop's cycles, newest first, each
step by step (alert -> retrain -> register -> gate -> promote -> swap) with its time, what it
did and links to what it touched; ``/schedules``: every schedule and its recent firings
(``?schedule=NAME`` keeps one schedule's).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from segue.errors import InvalidArgument
from segue.pipelines.loop import get_loop, list_loops
from segue.server.app import server_state
from segue.server.ui import runs_table as rt
from segue.server.ui.cycle_view import cycle_steps, policy_of
from segue.server.ui.render import Crumb, render
from segue.store.entities import Firing, Schedule
from segue.store.schedules import SqlScheduleStore

router = APIRouter()

#: Cycles a loop page shows unless ``?cycles=`` asks for more (at most :data:`MOST_CYCLES`).
CYCLES = 20
MOST_CYCLES = 500
#: Firings the schedules page shows unless ``?firings=`` asks for more.
FIRINGS = 50


def _store(request: Request) -> SqlScheduleStore:
    return SqlScheduleStore(server_state(request).engine)


@router.get("/loops")
def loops_page(request: Request) -> Response:
    """Every loop with its policy and its last cycle."""
    store = _store(request)
    rows = [
        {"schedule": s, "policy": policy_of(s), "last": _last(store, s)} for s in list_loops(store)
    ]
    return render(request, "loops.html", {"rows": rows}, title="Loops", crumbs=[("Loops", None)])


@router.get("/loops/{name}")
def loop_page(request: Request, name: str, cycles: str | None = None) -> Response:
    """One loop: its policy and its cycles, newest first, step by step."""
    store = _store(request)
    schedule = get_loop(store, name)
    policy = policy_of(schedule)
    if policy is None:
        raise InvalidArgument(
            f"loop {name!r} holds no policy (model and alias) in its schedule's options; "
            f"declare it again: segue loop remove {name} && segue loop add {name} ..."
        )
    limit = rt.positive("cycles", cycles, CYCLES, MOST_CYCLES)
    firings = store.history(name, limit + 1)
    shown = [{"firing": f, "steps": cycle_steps(policy, f)} for f in firings[:limit]]
    context: dict[str, Any] = {
        "schedule": schedule,
        "policy": policy,
        "cycles": shown,
        "more": len(firings) > limit,
        "limit": limit,
    }
    crumbs: list[Crumb] = [("Loops", "/loops"), (name, None)]
    return render(request, "loop.html", context, title=f"Loop {name}", crumbs=crumbs)


@router.get("/schedules")
def schedules_page(request: Request, schedule: str = "", firings: str | None = None) -> Response:
    """Every schedule, and the recent firings (of ``schedule`` only, when given)."""
    store = _store(request)
    limit = rt.positive("firings", firings, FIRINGS, MOST_CYCLES)
    schedules = store.list()
    chosen = store.get(schedule) if schedule else None
    recent = store.history(chosen.name if chosen else None, limit + 1)
    context: dict[str, Any] = {
        "schedules": schedules,
        "chosen": chosen,
        "firings": recent[:limit],
        "more": len(recent) > limit,
        "limit": limit,
    }
    crumbs: list[Crumb] = [("Schedules", "/schedules" if chosen else None)]
    if chosen:
        crumbs.append((chosen.name, None))
    return render(request, "schedules.html", context, title="Schedules", crumbs=crumbs)


def _last(store: SqlScheduleStore, schedule: Schedule) -> Firing | None:
    found = store.history(schedule.name, 1)
    return found[0] if found else None
