"""Errors on web pages: an HTML page (or, for htmx, a fragment) instead of JSON.

A page that needs a login redirects to it (htmx: ``HX-Redirect``). Other errors render
``error.html`` with the message; an htmx request gets the ``_error.html`` fragment, which
htmx swaps where the request's result would have gone, so the error shows where it happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from segue.errors import GateFailed, SegueError, TooManyRequests, Unauthenticated
from segue.server.ui.render import fragment, is_htmx, render

_TITLES = {
    400: "Bad request",
    401: "Log in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Something went wrong",
}


def page_error(request: Request, exc: SegueError) -> Response:
    """The page (or fragment) for a :class:`SegueError` raised by a page's route."""
    if isinstance(exc, Unauthenticated):
        login = f"/login?next={quote(_back_to(request), safe='')}"
        if is_htmx(request):
            return Response(status_code=401, headers={"hx-redirect": login})
        return RedirectResponse(login, 303)
    headers = {"retry-after": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else {}
    status = exc.http_status if exc.http_status < 500 else 500
    report = list(exc.report) if isinstance(exc, GateFailed) else None
    return status_page(request, status, str(exc), headers=headers, report=report)


def _back_to(request: Request) -> str:
    """Where a login should lead back to: the page itself, or for htmx the page the fragment
    was asked from (``HX-Current-URL``), not the bare fragment."""
    url = urlsplit(request.headers.get("hx-current-url", "")) if is_htmx(request) else None
    if url is not None and url.netloc == request.url.netloc and url.path.startswith("/"):
        return url.path + (f"?{url.query}" if url.query else "")
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def status_page(
    request: Request,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    report: list | None = None,
) -> Response:
    """An error page with ``status`` and ``message``."""
    title = _TITLES.get(status, "Error")
    context = {"status": status, "message": message, "report": report, "heading": title}
    if is_htmx(request):
        return fragment(request, "_error.html", context, status=status, headers=headers)
    return render(
        request,
        "error.html",
        context,
        title=title,
        crumbs=[(title, None)],
        status=status,
        headers=headers,
    )
