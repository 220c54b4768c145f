"""``/api/v1`` routes of schedules: list, add, pause, resume, remove, and their firings.

Viewers read; maintainers pause, resume and remove; only admins add, since a schedule's
pipeline is code the scheduler imports and runs on its host. The server checks a schedule's
trigger (a cron expression, an alert rule, a model name) and the shape of its pipeline
target; importing the pipeline is the client's part (``segue schedule add`` does it before
calling), since the code lives beside the scheduler, not in the server. Claiming and running
firings is ``segue scheduler``'s work, next to the database: it has no route.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, StrictBool, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema
from starlette.responses import Response

from segue.pipelines.targets import normalise_target
from segue.pipelines.triggers import check_trigger

# The module, not its names: segue.server.app imports the routers while it loads.
from segue.server import app
from segue.store.entities import NewSchedule
from segue.store.schedules import MAX_HISTORY, SqlScheduleStore

router = APIRouter(tags=["schedules"])

# The patterns check_schedule_name and the store accept; text without NUL.
_NAME = r"^[A-Za-z0-9][\w.\-]*$"
_TEXT = r"^[^\x00]*[^\x00 \t\n\r\f\v][^\x00]*$"

ScheduleName = Annotated[str, Path(max_length=128, pattern=_NAME, description="A schedule.")]
Limit = Annotated[int, Query(ge=1, le=MAX_HISTORY)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleOptions(_Body):
    """How the scheduler runs the pipeline: the executor and the experiment.

    No Ray address: the scheduler ships its environment (the database's password, a token) to
    the cluster it connects to, so the cluster is its host's choice (``segue scheduler
    --ray-address``), never a caller's.
    """

    executor: Literal["local", "ray"] = "local"
    experiment: Annotated[str, StringConstraints(max_length=256, pattern=_TEXT)] | None = None
    address: SkipJsonSchema[Any] = None

    @field_validator("address")
    @classmethod
    def _no_address(cls, value: Any) -> None:
        raise ValueError(
            "not accepted: the scheduler's host chooses the Ray cluster (segue scheduler "
            "--ray-address or SEGUE_RAY_ADDRESS)"
        )


class NewScheduleBody(_Body):
    """A schedule to add (``POST /schedules``): its pipeline (``module:fn`` or
    ``path/file.py:fn``, as the scheduler's machine finds it), its trigger and spec (a cron
    expression in UTC, an alert rule, a model), and the pipeline's params."""

    name: Annotated[str, StringConstraints(max_length=128, pattern=_NAME)]
    pipeline: Annotated[str, StringConstraints(max_length=4096, pattern=_TEXT)]
    trigger: Literal["cron", "alert", "version"]
    spec: Annotated[str, StringConstraints(max_length=256, pattern=_TEXT)]
    params: dict[str, Any] = {}
    options: ScheduleOptions = ScheduleOptions()
    paused: StrictBool = False


def _store(request: Request) -> SqlScheduleStore:
    state = app.server_state(request)
    return SqlScheduleStore(state.engine, clock=state.clock)


def _actor(request: Request) -> str:
    return str(app.caller(request).actor)


@router.get("/schedules")
def list_schedules(request: Request) -> Response:
    """Every schedule, by name."""
    return app.json_response(_store(request).list())


@router.post("/schedules", status_code=201)
def add_schedule(request: Request, body: NewScheduleBody) -> Response:
    """Add a schedule; its trigger is read from now on (409 if the name is taken)."""
    normalise_target(body.pipeline)
    options = {
        k: v for k, v in body.options.model_dump(exclude={"address"}).items() if v is not None
    }
    new = NewSchedule(
        body.name,
        body.pipeline,
        body.trigger,
        check_trigger(body.trigger, body.spec),
        params=body.params,
        options=options,
        paused=body.paused,
    )
    return app.json_response(_store(request).add(new, _actor(request)), 201)


@router.get("/schedules/{name}")
def get_schedule(request: Request, name: ScheduleName) -> Response:
    """One schedule."""
    return app.json_response(_store(request).get(name))


@router.post("/schedules/{name}/pause")
def pause_schedule(request: Request, name: ScheduleName) -> Response:
    """Pause: nothing starts the schedule until it is resumed."""
    return app.json_response(_store(request).set_paused(name, True, _actor(request)))


@router.post("/schedules/{name}/resume")
def resume_schedule(request: Request, name: ScheduleName) -> Response:
    """Resume: what came while it was paused is skipped."""
    return app.json_response(_store(request).set_paused(name, False, _actor(request)))


@router.delete("/schedules/{name}")
def remove_schedule(request: Request, name: ScheduleName) -> Response:
    """Remove the schedule (its firings' history stays); answers the schedule as it was."""
    return app.json_response(_store(request).remove(name, _actor(request)))


@router.get("/schedules/{name}/history")
def schedule_history(request: Request, name: ScheduleName, limit: Limit = 50) -> Response:
    """The schedule's firings, newest first."""
    return app.json_response(_store(request).history(name, limit))


@router.get("/firings")
def history(request: Request, limit: Limit = 50) -> Response:
    """Every schedule's firings, newest first."""
    return app.json_response(_store(request).history(None, limit))
