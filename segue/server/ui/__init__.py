"""The web UI of ``segue server``: server-rendered pages (Jinja2, htmx, uPlot) at ``/``.

Pages live in :mod:`segue.server.ui.pages`, one module per noun, each a router whose routes
are listed in :data:`segue.server.access.ACCESS` like the API's. A page authenticates by the
session cookie a login sets (or, with ``--no-auth`` and under ``segue ui``, not at all), and
every form and htmx request that changes something carries the CSRF token.

Example::

    >>> app = create_app(state)      # add_ui(app) is part of it
    >>> # GET /experiments, /runs?experiment=quickstart&filter=metrics.acc>0.9, /models/churn
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_URL", "add_ui", "is_page"]

#: Segue's own style sheet and scripts (``segue/static/ui``).
STATIC_URL = "/static/ui"
_STATIC = Path(__file__).parents[2] / "static" / "ui"


def is_page(request: Request) -> bool:
    """Whether ``request`` is for a web page (not the API, not the API's docs)."""
    path = request.url.path
    return not (path.startswith("/api/") or path == "/docs" or path.startswith("/static/"))


def add_ui(app: FastAPI) -> None:
    """Add the login, the pages and the UI's static files to ``app``."""
    from segue.server.ui import login
    from segue.server.ui.pages import ROUTERS

    app.include_router(login.router, include_in_schema=False)
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)
    app.mount(STATIC_URL, StaticFiles(directory=_STATIC), name="ui-static")
