"""``/api/v1`` routes of promotion requests and each model's approval policy.

An editor of a model proposes an alias move; a maintainer of the model (someone else)
approves or rejects it. The server judges the gates itself, when the request is made and again
when it is approved, and moves the alias only then, acting as the approver (``user:carol``
in the audit log); a gate that fails at approval is a 409 whose ``report`` lists every gate,
and the request is ``failed``. With a model's policy ``require_approval``, this is the only
way its aliases move: ``PUT /models/{name}/aliases/{alias}`` is refused, maintainers included.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from starlette.responses import Response

from segue.errors import NotFound, PermissionDenied
from segue.registry.promotions import Promotions

# The module, not its names: segue.server.app imports the routers while it loads.
from segue.server import app
from segue.store.entities import PromotionRequest
from segue.store.promotions import MAX_ID, MAX_TEXT
from segue.store.registry import check_model_name

router: APIRouter = APIRouter(tags=["promotions"])

# The schema says what the store accepts, so that a request the document calls valid is not
# refused (and one it calls invalid is): the patterns of check_model_name and check_alias;
# text without NUL (PostgreSQL cannot hold it), and a reason that is not blank.
# (Lengths apart: a bounded repetition of Unicode \w compiles too large.)
_MODEL = r"^[A-Za-z0-9][\w.\-]*$"
_ALIAS = r"^[A-Za-z][\w\-]*$"
_NO_NUL = r"^[^\x00]*$"
_SAID = r"^[^\x00]*[^\x00 \t\n\r\f\v][^\x00]*$"

ModelName = Annotated[str, Path(max_length=256, pattern=_MODEL)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=_NO_NUL)]
Said = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT, pattern=_SAID)]
RequestId = Annotated[int, Path(ge=1, le=MAX_ID)]
Status = Literal["pending", "approved", "rejected", "failed"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewRequest(_Body):
    """Propose pointing ``alias`` at ``version``, saying why (``POST .../requests``)."""

    version: Annotated[int, Field(ge=1, le=MAX_ID)]
    alias: Annotated[str, StringConstraints(max_length=128, pattern=_ALIAS)]
    reason: Said


class Approval(_Body):
    """An approver's comment, if any."""

    comment: Text | None = None


class Rejection(_Body):
    """Why the request is rejected."""

    comment: Said


class PolicyBody(_Body):
    """Whether every move of the model's aliases needs an approved promotion request."""

    require_approval: StrictBool  # JSON 0 is not false (as the schema says)


def _promotions(request: Request) -> Promotions:
    state = app.server_state(request)
    return Promotions(state.promotions, state.registry(app.caller(request)))


def _of_model(request: Request, name: str, request_id: int) -> PromotionRequest:
    """The request, if it is one of ``name``'s: the caller's grant on ``name`` was checked,
    so a request of another model is not found here."""
    found = app.server_state(request).promotions.get_request(request_id)
    if found.model_name != check_model_name(name):
        raise NotFound(f"model {name!r} has no promotion request {request_id}")
    return found


# -- policy ---------------------------------------------------------------------------------


@router.get("/models/{name}/policy")
def get_policy(request: Request, name: ModelName) -> Response:
    """``{"model_name", "require_approval", "updated_at", "updated_by"}``."""
    return app.json_response(app.server_state(request).promotions.get_policy(name))


@router.put("/models/{name}/policy")
def set_policy(request: Request, name: ModelName, body: PolicyBody) -> Response:
    """Require (or stop requiring) an approved promotion request for every alias move: a
    maintainer of the model may turn it on, only an admin may lift it."""
    principal = app.caller(request)
    if not body.require_approval and principal.role != "admin":
        # The policy binds the model's maintainers: only an admin lifts it.
        raise PermissionDenied(
            f"lifting {name}'s approval policy needs role admin; {principal.actor} is "
            f"{principal.role}"
        )
    return app.json_response(_promotions(request).set_policy(name, body.require_approval))


# -- requests -------------------------------------------------------------------------------


@router.get("/requests")
def list_requests(
    request: Request,
    status: Status | None = None,
    model: Annotated[str, Query(max_length=256, pattern=_MODEL)] | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    """Promotion requests, newest first, of one ``model`` and in one ``status`` if given."""
    found = app.server_state(request).promotions.list_requests(model, status, limit)
    return app.json_response(found)


@router.get("/requests/{request_id}")
def get_request(request: Request, request_id: RequestId) -> Response:
    """One promotion request, whatever its model (clients that know only its id)."""
    return app.json_response(app.server_state(request).promotions.get_request(request_id))


@router.post("/models/{name}/requests", status_code=201)
def propose(request: Request, name: ModelName, body: NewRequest) -> Response:
    """Propose a move of one of the model's aliases; the gates are judged now and kept on
    the request."""
    created = _promotions(request).propose(name, body.version, body.alias, body.reason)
    return app.json_response(created, 201)


@router.get("/models/{name}/requests/{request_id}")
def get_model_request(request: Request, name: ModelName, request_id: RequestId) -> Response:
    """One promotion request of the model."""
    return app.json_response(_of_model(request, name, request_id))


@router.post("/models/{name}/requests/{request_id}/approve")
def approve(
    request: Request, name: ModelName, request_id: RequestId, body: Approval | None = None
) -> Response:
    """Approve and move the alias if the gates pass now (403 for the proposer; 409 with the
    ``report`` if a gate fails, and the request is then ``failed``). The body is optional."""
    found = _of_model(request, name, request_id)
    approved = _promotions(request).approve(request_id, body.comment if body else None)
    app.server_state(request).events.publish(found.model_name, found.alias)
    return app.json_response(approved)


@router.post("/models/{name}/requests/{request_id}/reject")
def reject(request: Request, name: ModelName, request_id: RequestId, body: Rejection) -> Response:
    """Reject the request with a comment (required); nothing moves."""
    _of_model(request, name, request_id)
    return app.json_response(_promotions(request).reject(request_id, body.comment))
