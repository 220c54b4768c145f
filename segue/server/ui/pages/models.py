"""``/models``: the registered models; ``/models/{name}``: one model's versions with their
gate results, its audit history, its lineage graph and the model card of a version (tabs:
``?tab=versions|history|lineage|card``); ``/models/{name}/requests``: promotion requests.

Moving aliases and deciding requests are in :mod:`segue.server.ui.pages.models_actions`.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from starlette.responses import HTMLResponse, Response

from segue.registry.card import render_card
from segue.server.app import caller, server_state
from segue.server.ui import model_view
from segue.server.ui.pages import models_data
from segue.server.ui.render import PAGE_HEADERS, Crumb, render
from segue.store.registry import check_model_name

router = APIRouter()

TABS = ("versions", "history", "lineage", "card")
PAGE_SIZE = 50
STATUSES = ("pending", "approved", "rejected", "failed")
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
#: The card is a whole HTML page of its own, shown in a sandboxed frame: it may style itself
#: and nothing else (no scripts, no requests).
_CARD_HEADERS = {
    **PAGE_HEADERS,
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
}


def model_url(name: str, **query: object) -> str:
    """``/models/<name>`` with ``query`` (None values left out)."""
    url = f"/models/{quote(name, safe='')}"
    pairs = [f"{k}={quote(str(v), safe='')}" for k, v in query.items() if v is not None]
    return url + ("?" + "&".join(pairs) if pairs else "")


def crumbs(name: str, last: str | None = None) -> list[Crumb]:
    trail: list[Crumb] = [("Models", "/models"), (name, model_url(name) if last else None)]
    return trail + ([(last, None)] if last else [])


@router.get("/models")
def models_page(request: Request) -> Response:
    """Every registered model with its latest version, aliases, versions and last change."""
    rows = models_data.model_rows(server_state(request))
    return render(
        request, "models.html", {"models": rows}, title="Models", crumbs=[("Models", None)]
    )


@router.get("/models/{name}")
def model_page(
    request: Request,
    name: str,
    tab: str = "versions",
    page: str = "1",
    version: str | None = None,
) -> Response:
    """One model: versions and gates (default tab), history, lineage or a version's card."""
    state = server_state(request)
    registry = state.registry(caller(request))
    model = registry.get_model(check_model_name(name))
    tab = tab if tab in TABS else "versions"
    versions = sorted(registry.list_versions(name), key=lambda v: -v.version)
    gates = registry.list_gates(name)
    context: dict[str, object] = {
        "model": model,
        "tab": tab,
        "versions": versions,
        "gates": model_view.gates_by_alias(gates),
        "policy": state.promotions.get_policy(name),
        "pending": state.promotions.list_requests(name, "pending", 100),
        "maintainer": models_data.can_maintain(state, caller(request), name),
        "me": str(caller(request).actor),
        "model_url": model_url,
    }
    if tab == "versions":
        number = _whole(page, 1)
        shown = versions[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
        runs = models_data.runs_of(registry, shown)
        context.update(
            page=number,
            page_size=PAGE_SIZE,
            shown=shown,
            runs=runs,
            results=models_data.version_gates(registry, model, runs, gates),
        )
    elif tab == "history":
        context["history"] = model_view.history_rows(registry.history(name))
    elif tab == "lineage":
        context["graph"], context["left_out"] = models_data.lineage_graph(state, model)
    else:
        numbers = [v.version for v in versions]
        default = model.aliases.get("champion", numbers[0] if numbers else None)
        chosen = _whole(version, default or 0)
        context["card_version"] = chosen if chosen in numbers else default
    title = f"{name} · {tab}" if tab != "versions" else name
    return render(request, "model.html", context, title=title, crumbs=crumbs(name))


@router.get("/models/{name}/requests")
def requests_page(request: Request, name: str, status: str = "pending") -> Response:
    """The model's promotion requests (``?status=pending|approved|rejected|failed|all``)."""
    state = server_state(request)
    model = state.registry_store.get_model(check_model_name(name))
    status = status if status in (*STATUSES, "all") else "pending"
    found = state.promotions.list_requests(name, None if status == "all" else status, 500)
    context = {
        "model": model,
        "tab": "requests",
        "status": status,
        "statuses": (*STATUSES, "all"),
        "requests": found,
        "policy": state.promotions.get_policy(name),
        "maintainer": models_data.can_maintain(state, caller(request), name),
        "me": str(caller(request).actor),
        "model_url": model_url,
    }
    return render(
        request,
        "model_requests.html",
        context,
        title=f"{name} · requests",
        crumbs=crumbs(name, "Promotion requests"),
    )


@router.get("/models/{name}/versions/{version}/card")
def card(request: Request, name: str, version: Version, format: str = "html") -> Response:
    """The model card of a version: an HTML page (for a sandboxed frame), or Markdown to save
    (``?format=md``)."""
    registry = server_state(request).registry(caller(request))
    lineage = registry.lineage(check_model_name(name), version)
    if format == "md":
        text = render_card(lineage, "md")
        # Model names may hold any letter; a header holds only ASCII safely.
        plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        saved = {"content-disposition": f'attachment; filename="{plain}-{version}-card.md"'}
        return Response(text, 200, {**_CARD_HEADERS, **saved}, media_type="text/markdown")
    return HTMLResponse(render_card(lineage, "html"), 200, _CARD_HEADERS)


def _whole(text: str | None, default: int) -> int:
    """A positive whole number from the query string, or ``default`` for anything else."""
    if text is None or not (text.isascii() and text.isdigit()):
        return default
    return max(1, min(int(text), 2**31 - 1))
