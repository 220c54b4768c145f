"""Swagger UI for any Segue app's OpenAPI document, from the package's vendored assets.

The inference server (``segue serve``) and the team server share this page: each calls
:func:`add_docs` once. FastAPI's own ``/docs`` loads Swagger UI from a CDN, which leaves the
page blank on an offline machine or behind a strict firewall; this one loads it from
``/static/vendor``.

Example::

    >>> app = FastAPI(docs_url=None)
    >>> add_docs(app)  # GET /docs, assets under /static/vendor
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from segue.errors import InvalidArgument

__all__ = ["ASSETS_URL", "VENDOR", "add_docs", "mount_assets", "swagger_ui_html"]

#: The folder of vendored third-party assets inside the package.
VENDOR = Path(__file__).with_name("vendor")
#: Where :func:`mount_assets` serves :data:`VENDOR` by default.
ASSETS_URL = "/static/vendor"
_SWAGGER_UI = "swagger-ui"


def mount_assets(app: Starlette, url: str = ASSETS_URL) -> str:
    """Serve the vendored assets under ``url`` (once per app) and return ``url``.

    Example::

        >>> mount_assets(app)
        '/static/vendor'
        >>> # GET /static/vendor/swagger-ui/swagger-ui.css
    """
    url = url.rstrip("/")
    if not any(isinstance(route, Mount) and route.path == url for route in app.router.routes):
        app.mount(url, StaticFiles(directory=VENDOR), name="vendor")
    return url


def swagger_ui_html(openapi_url: str, *, title: str, assets_url: str = ASSETS_URL) -> HTMLResponse:
    """The Swagger UI page for the OpenAPI document at ``openapi_url``.

    The page loads its script, style sheet and icon from ``assets_url`` (where
    :func:`mount_assets` serves them) and nothing from elsewhere: the online spec validator
    Swagger UI would call is turned off too.

    Example::

        >>> swagger_ui_html("/openapi.json", title="Segue").status_code
        200
    """
    base = f"{assets_url.rstrip('/')}/{_SWAGGER_UI}"
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{base}/swagger-ui-bundle.js",
        swagger_css_url=f"{base}/swagger-ui.css",
        swagger_favicon_url=f"{base}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )


def add_docs(
    app: FastAPI,
    *,
    docs_url: str = "/docs",
    openapi_url: str | None = None,
    title: str | None = None,
    assets_url: str = ASSETS_URL,
) -> None:
    """Add ``GET docs_url``: Swagger UI for ``app``'s OpenAPI document, assets included.

    Create ``app`` with ``docs_url=None`` so FastAPI does not add its CDN page. URLs in the
    page carry the request's ``root_path``, so the page also works behind a path prefix.

    Args:
        openapi_url: the document to show; default ``app.openapi_url``.
        title: the page title; default ``"<app.title> - docs"``.
    """
    document = openapi_url or app.openapi_url
    if document is None:
        raise InvalidArgument("add_docs: the app has no OpenAPI document (openapi_url=None)")
    assets = mount_assets(app, assets_url)
    page_title = title or f"{app.title} - docs"

    @app.get(docs_url, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return swagger_ui_html(root + document, title=page_title, assets_url=root + assets)
