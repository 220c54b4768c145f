"""``/api/v1`` routes of the model registry: models, versions, aliases, gates, the audit log,
lineage, alert firings, and the stream of alias changes.

Changes act as the authenticated caller (``user:bob`` in the audit log). An alias move is
decided here, whatever the client decided: the gates are evaluated and the package verified
on the server (:meth:`segue.registry.service.Registry.set_alias`); a failed gate is a 409
whose ``report`` lists every gate's value and threshold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.responses import Response

from segue.errors import InvalidArgument, PermissionDenied

# The module, not its names: segue.server.app imports the routers while it loads.
from segue.server import app
from segue.server.state import ServerState
from segue.store.aliases import check_alias
from segue.store.registry import check_model_name

router = APIRouter(tags=["registry"])

# The schema says what the store accepts, so that a request the document calls valid is not
# refused (and one it calls invalid is): the patterns of check_model_name, check_alias and
# parse_requirement, and text without NUL (PostgreSQL cannot hold it). Lengths apart: a
# bounded repetition of Unicode \w compiles too large.
_MODEL = r"^[A-Za-z0-9][\w.\-]*$"
_ALIAS = r"^[A-Za-z][\w\-]*$"
# A finite number: at most 100 digits before the point and a two-digit exponent.
_NUMBER = r"[-+]?([0-9]{1,100}\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,2})?"
_REQUIREMENT = rf"^\s*metrics\.[\w\-./:]+\s*(>=|<=|==|!=|>|<)\s*([A-Za-z][\w\-]*|{_NUMBER})\s*$"
_NO_NUL = r"^[^\x00]*$"
_SAID = r"^[^\x00]*[^\x00 \t\n\r\f\v][^\x00]*$"  # not blank
_INT32 = 2**31 - 1

ModelName = Annotated[str, Path(max_length=256, pattern=_MODEL)]
AliasParam = Annotated[str, Path(max_length=128, pattern=_ALIAS)]
RunId = Annotated[str, Path(max_length=64, pattern=_NO_NUL)]
DatasetDigest = Annotated[str, Path(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9]+$")]
Name = Annotated[str, StringConstraints(max_length=256, pattern=_MODEL)]
TagKey = Annotated[str, StringConstraints(max_length=250, pattern=_NO_NUL)]
TagValue = Annotated[str, StringConstraints(max_length=5_000, pattern=_NO_NUL)]
AliasName = Annotated[str, StringConstraints(max_length=128, pattern=_ALIAS)]
Requirement = Annotated[str, StringConstraints(max_length=1_000, pattern=_REQUIREMENT)]
Said = Annotated[str, StringConstraints(max_length=10_000, pattern=_SAID)]
LongText = Annotated[str, StringConstraints(max_length=100_000, pattern=_NO_NUL)]
Version = Annotated[int, Field(ge=1, le=_INT32)]
GateId = Annotated[int, Field(ge=1, le=_INT32)]
Limit = Annotated[int, Field(ge=1, le=100_000)]


def _whole(value: Any) -> Any:
    # JSON's integers, as the schema says: 3 or 3.0, not true or "3".
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    return value


# In bodies (path and query values arrive as text and are read as numbers there).
BodyVersion = Annotated[int, Field(ge=1, le=_INT32), BeforeValidator(_whole)]
Flag = Annotated[bool, Field(strict=True)]
Number = Annotated[float, Field(strict=True)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _every_key(schema: dict[str, Any]) -> None:
    # pydantic states a key pattern as patternProperties, which leaves other keys (and their
    # values) unchecked: say instead that every key matches it and every value is a tag value.
    for pattern, values in schema.pop("patternProperties", {}).items():
        schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern}
        schema["additionalProperties"] = values


class NewModel(_Body):
    """A model to register (``POST /models``)."""

    name: Name
    description: LongText | None = None
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict, max_length=1_000, json_schema_extra=_every_key
    )


class NewVersion(_Body):
    """The next version of a model: the package logged in a run (``POST .../versions``), and
    why (``reason``, e.g. what caused an automated registration), which the audit log records."""

    run_id: Annotated[str, StringConstraints(max_length=64, pattern=_NO_NUL)]
    artifact_path: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=_NO_NUL)]
    manifest_digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    flavor: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=_NO_NUL)]
    description: LongText | None = None
    reason: Said | None = None


class AliasMoveBody(_Body):
    """Point an alias at a version (``PUT .../aliases/{alias}``).

    ``expected``: the version the alias must still point at (null: unset), as the client saw
    it; left out, whatever it points at now. ``force`` overrides failed gates and needs a
    ``reason``, which the audit log records.
    """

    # A forced move without a reason is refused: the schema says so too.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"force": {"const": True}}, "required": ["force"]},
            "then": {"properties": {"reason": {"type": "string"}}, "required": ["reason"]},
        },
    )

    version: BodyVersion
    expected: BodyVersion | None = None
    force: Flag = False
    reason: Said | None = None


class NewGate(_Body):
    """A requirement an alias's candidates must meet, e.g. ``metrics.roc_auc >= 0.9``."""

    alias: AliasName
    requirement: Requirement


class Delivery(_Body):
    """How one firing went to one sink."""

    sink: Name
    ok: Flag
    attempts: Annotated[int, Field(ge=0, le=1_000_000), BeforeValidator(_whole)] = 1
    error: LongText | None = None


class NewAlert(_Body):
    """One firing of a monitoring rule (``POST /models/{name}/alerts``)."""

    rule: Name
    signal: Name
    value: Number | None = None
    threshold: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    message: LongText
    delivered: list[Delivery] = Field(default_factory=list, max_length=100)
    at: Annotated[int, Field(ge=0, le=2**53), BeforeValidator(_whole)] | None = None


def _name(name: str) -> str:
    return check_model_name(name)


# -- models and versions --------------------------------------------------------------------


@router.get("/models")
def list_models(request: Request) -> Response:
    """Every registered model with its aliases and latest version, by name."""
    return app.json_response(app.server_state(request).registry_store.list_models())


@router.post("/models", status_code=201)
def create_model(request: Request, body: NewModel) -> Response:
    """Register a model name (409 if it is taken)."""
    store = app.server_state(request).registry_store
    actor = str(app.caller(request).actor)
    created = store.create_model(body.name, actor, body.description, body.tags)
    return app.json_response(created, 201)


@router.get("/models/{name}")
def get_model(request: Request, name: ModelName) -> Response:
    """One registered model."""
    return app.json_response(app.server_state(request).registry_store.get_model(_name(name)))


@router.get("/models/{name}/versions")
def list_versions(request: Request, name: ModelName) -> Response:
    """The versions of a model, oldest first."""
    return app.json_response(app.server_state(request).registry_store.list_versions(_name(name)))


@router.post("/models/{name}/versions", status_code=201)
def create_version(request: Request, name: ModelName, body: NewVersion) -> Response:
    """Register the package at ``runs:/<run_id>/<artifact_path>`` as the next version."""
    store = app.server_state(request).registry_store
    created = store.create_version(
        _name(name),
        body.run_id,
        body.artifact_path,
        body.manifest_digest,
        body.flavor,
        str(app.caller(request).actor),
        body.description,
        reason=body.reason,
    )
    return app.json_response(created, 201)


@router.get("/models/{name}/versions/{version}")
def get_version(request: Request, name: ModelName, version: Version) -> Response:
    """One version: its run, package, flavor and aliases."""
    return app.json_response(
        app.server_state(request).registry_store.get_version(_name(name), version)
    )


@router.delete("/models/{name}/versions/{version}", status_code=204)
def delete_version(request: Request, name: ModelName, version: Version) -> Response:
    """Delete a version (409 while an alias points at it)."""
    state = app.server_state(request)
    state.registry(app.caller(request)).delete_version(_name(name), version)
    return Response(status_code=204)


@router.get("/models/{name}/versions/{version}/lineage")
def lineage(request: Request, name: ModelName, version: Version) -> Response:
    """Everything a version came from: run, params, metrics, data sets, code, promotions."""
    state = app.server_state(request)
    return app.json_response(state.registry(app.caller(request)).lineage(_name(name), version))


# -- aliases ----------------------------------------------------------------------------


@router.get("/models/{name}/aliases/{alias}")
def get_alias(request: Request, name: ModelName, alias: AliasParam) -> Response:
    """``{"model", "alias", "version"}``: the version the alias points at (null: unset)."""
    store = app.server_state(request).registry_store
    try:
        check_alias(alias)
    except InvalidArgument:  # a name no alias can have: unset, as for any unset alias
        store.get_model(_name(name))
        return app.json_response({"model": name, "alias": alias[:200], "version": None})
    version = store.get_alias(_name(name), alias)
    return app.json_response({"model": name, "alias": alias, "version": version})


@router.put("/models/{name}/aliases/{alias}")
def set_alias(
    request: Request, name: ModelName, alias: AliasParam, body: AliasMoveBody
) -> Response:
    """Point the alias at a version if every gate declared for it passes (409 with the
    gates' ``report`` if one fails; ``force`` with a ``reason`` overrides them)."""
    state = app.server_state(request)
    _check_policy(state, _name(name), alias, body.version)
    expected = body.expected if "expected" in body.model_fields_set else ...
    move = state.registry(app.caller(request)).set_alias(
        name, alias, body.version, force=body.force, reason=body.reason, expected=expected
    )
    state.events.publish(name, alias)
    return app.json_response(move)


def _check_policy(state: ServerState, name: str, alias: str, version: int | None) -> None:
    if state.promotions.requires_approval(name):
        if version is None:
            raise PermissionDenied(
                f"{name} requires approved promotion requests to change its aliases: "
                f"an admin can lift the policy (segue models policy {name} --no-require-approval)"
            )
        raise PermissionDenied(
            f"{name} requires an approved promotion request to move an alias: "
            f'segue models propose {name}/{version} --alias {alias} --reason "..."'
        )


@router.delete("/models/{name}/aliases/{alias}", status_code=204)
def delete_alias(request: Request, name: ModelName, alias: AliasParam) -> Response:
    """Remove the alias (servers following it keep serving what they have)."""
    state = app.server_state(request)
    _check_policy(state, _name(name), alias, None)  # unsetting is a move too
    state.registry(app.caller(request)).delete_alias(_name(name), alias)
    state.events.publish(name, alias)
    return Response(status_code=204)


@router.get("/events/aliases", response_class=EventSourceResponse)
async def alias_events(request: Request) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: ``event: alias`` with ``data: {"model", "alias"}`` each time an
    alias moves or is deleted (then read it again), and a ``: ping`` comment every 15 s.

    The stream opens with a ``: connected`` comment once every change is being heard: a
    client reads the aliases it follows then, and after every reconnection.
    """
    events = app.server_state(request).events
    with events.subscribe() as queue:
        await events.ready()
        yield ServerSentEvent(comment="connected")
        while (change := await queue.get()) is not None:
            model, alias = change
            yield ServerSentEvent(event="alias", data={"model": model, "alias": alias})


# -- gates ------------------------------------------------------------------------------


@router.get("/models/{name}/gates")
def list_gates(
    request: Request,
    name: ModelName,
    alias: Annotated[str | None, Query(max_length=128, pattern=_ALIAS)] = None,
) -> Response:
    """The gates of a model, or of one of its aliases, in the order they were added."""
    store = app.server_state(request).registry_store
    return app.json_response(store.list_gates(_name(name), alias))


@router.post("/models/{name}/gates", status_code=201)
def add_gate(request: Request, name: ModelName, body: NewGate) -> Response:
    """Declare a gate: ``metrics.<name> <op> <number or alias>``."""
    registry = app.server_state(request).registry(app.caller(request))
    return app.json_response(registry.add_gate(_name(name), body.alias, body.requirement), 201)


@router.delete("/models/{name}/gates/{gate_id}")
def remove_gate(request: Request, name: ModelName, gate_id: GateId) -> Response:
    """Remove a gate; answers the gate removed."""
    registry = app.server_state(request).registry(app.caller(request))
    return app.json_response(registry.remove_gate(_name(name), gate_id))


# -- audit log and lineage ----------------------------------------------------------------


@router.get("/models/{name}/history")
def history(request: Request, name: ModelName, limit: Annotated[Limit, Query()] = 1000) -> Response:
    """The model's audit log, oldest first: who changed what, when and why."""
    return app.json_response(app.server_state(request).registry_store.history(_name(name), limit))


@router.get("/runs/{run_id}/versions")
def versions_for_run(request: Request, run_id: RunId) -> Response:
    """The registered versions made from a run."""
    return app.json_response(app.server_state(request).registry_store.versions_for_run(run_id))


@router.get("/datasets/{digest}/versions")
def versions_for_dataset(request: Request, digest: DatasetDigest) -> Response:
    """The versions whose runs used a data set (its sha256, or 8+ of its first characters)."""
    return app.json_response(app.server_state(request).registry_store.versions_for_dataset(digest))


# -- alert firings ------------------------------------------------------------------------


@router.get("/models/{name}/alerts")
def list_alerts(
    request: Request, name: ModelName, limit: Annotated[Limit, Query()] = 100
) -> Response:
    """The model's most recent alert firings, newest first."""
    return app.json_response(app.server_state(request).alerts.list(_name(name), limit))


@router.post("/models/{name}/alerts", status_code=201)
def record_alert(request: Request, name: ModelName, body: NewAlert) -> Response:
    """Record one firing of a monitoring rule, with where it was delivered."""
    alert = app.server_state(request).alerts.record(
        _name(name),
        body.rule,
        body.signal,
        float("nan") if body.value is None else body.value,
        body.threshold,
        body.message,
        [d.model_dump() for d in body.delivered],
        at=body.at,
    )
    return app.json_response(alert, 201)
