"""Changing a model from its page: moving an alias through its gates, and deciding promotion
requests. The same service calls as the API's routes (:mod:`segue.server.routes.registry`,
:mod:`segue.server.routes.promotions`), acting as the logged-in user.

- ``GET /models/{name}/gate-report?alias=&version=``: each gate's verdict for the version,
  judged now (nothing moves), as a fragment the move form shows before it is sent.
- ``POST /models/{name}/aliases``: move ``alias`` to ``version``. A failed gate answers 409
  with the report (the form shown again); ``force`` with a ``reason`` overrides it, recorded in
  the audit log. A model whose policy requires approval gets a promotion request instead.
- ``POST /models/{name}/requests/{id}/approve`` and ``/reject``, with a comment.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from starlette.responses import RedirectResponse, Response

from segue.errors import GateFailed, InvalidArgument, NotFound
from segue.registry.promotions import Promotions
from segue.server.app import caller, server_state
from segue.server.ui.pages.models import crumbs, model_url
from segue.server.ui.render import fragment, is_htmx, render
from segue.store.aliases import check_alias
from segue.store.entities import PromotionRequest
from segue.store.registry import check_model_name

router = APIRouter()

RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Text = Annotated[str, Form(max_length=10_000)]


@router.get("/models/{name}/gate-report")
def gate_report(request: Request, name: str, alias: str = "", version: str = "") -> Response:
    """The gate report of moving ``alias`` to ``version`` (a fragment for the move form)."""
    registry = server_state(request).registry(caller(request))
    number = _version(version)
    report = registry.gate_report(check_model_name(name), check_alias(alias.strip()), number)
    context = {"report": report, "alias": alias.strip(), "version": number, "outcome": "preview"}
    return fragment(request, "_gate_report.html", context)


@router.post("/models/{name}/aliases")
def move_alias(
    request: Request,
    name: str,
    alias: Annotated[str, Form(max_length=128)],
    version: Annotated[str, Form(max_length=12)],
    reason: Text = "",
    force: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Move the alias if its gates pass (or, forced, with a reason); under an approval
    policy, propose the move instead."""
    state = server_state(request)
    name, alias, number = check_model_name(name), check_alias(alias.strip()), _version(version)
    reason = reason.strip()
    if state.promotions.requires_approval(name):
        registry = state.registry(caller(request))
        Promotions(state.promotions, registry).propose(name, number, alias, reason)
        return _go(request, f"{model_url(name)}/requests")
    forced = force in ("on", "true", "1")
    if forced and not reason:
        raise InvalidArgument("forcing a move past failed gates needs a reason: say why")
    try:
        state.registry(caller(request)).set_alias(
            name, alias, number, force=forced, reason=reason or None
        )
    except GateFailed as failed:
        return _refused(request, name, alias, number, failed, reason)
    state.events.publish(name, alias)
    return _go(request, model_url(name, tab="history"))


@router.post("/models/{name}/requests/{request_id}/approve")
def approve(request: Request, name: str, request_id: RequestId, comment: Text = "") -> Response:
    """Approve the request: the alias moves if its gates pass now (409 with the report if not)."""
    found = _of_model(request, name, request_id)
    _promotions(request).approve(request_id, comment.strip() or None)
    server_state(request).events.publish(found.model_name, found.alias)
    return _go(request, f"{model_url(found.model_name)}/requests?status=all")


@router.post("/models/{name}/requests/{request_id}/reject")
def reject(request: Request, name: str, request_id: RequestId, comment: Text = "") -> Response:
    """Reject the request with a comment (required); nothing moves."""
    found = _of_model(request, name, request_id)
    _promotions(request).reject(request_id, comment.strip())
    return _go(request, f"{model_url(found.model_name)}/requests?status=all")


def _promotions(request: Request) -> Promotions:
    state = server_state(request)
    return Promotions(state.promotions, state.registry(caller(request)))


def _of_model(request: Request, name: str, request_id: int) -> PromotionRequest:
    found = server_state(request).promotions.get_request(request_id)
    if found.model_name != check_model_name(name):
        raise NotFound(f"model {name!r} has no promotion request {request_id}")
    return found


def _version(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()) or not 1 <= int(text) < 2**31:
        raise InvalidArgument(f"version {text!r}: choose one of the model's version numbers")
    return int(text)


def _go(request: Request, url: str) -> Response:
    """Where the browser goes after a change: htmx follows ``HX-Redirect``."""
    if is_htmx(request):
        return Response(status_code=200, headers={"hx-redirect": url})
    return RedirectResponse(url, 303)


def _refused(
    request: Request, name: str, alias: str, version: int, failed: GateFailed, reason: str
) -> Response:
    """The failed gates where the move was asked for (409), with the way to force it."""
    context = {
        "report": list(failed.report),
        "alias": alias,
        "version": version,
        "outcome": "refused",
        "message": str(failed),
    }
    if is_htmx(request):
        return fragment(request, "_gate_report.html", context, status=409)
    state = server_state(request)
    context.update(
        model=state.registry_store.get_model(name),
        versions=sorted(state.registry_store.list_versions(name), key=lambda v: -v.version),
        reason=reason,
        model_url=model_url,
    )
    return render(
        request,
        "model_move.html",
        context,
        title=f"{name} · {alias} not moved",
        crumbs=crumbs(name, f"Move {alias}"),
        status=409,
    )
