"""Rendering the web UI's pages: one Jinja2 environment, the CSRF token, shared filters.

Autoescape is on for every template; nothing user-supplied is ever marked ``|safe``. Data for
charts goes into pages as ``<script type="application/json">{{ data|tojson }}</script>``
(``tojson`` escapes ``<``, ``>``, ``&`` and ``'``), read by ``/static/ui/segue.js``.

Example::

    >>> return render(request, "experiments.html", {"experiments": rows}, title="Experiments")
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from segue.auth.principal import Principal
from segue.version import __version__

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Crumb",
    "csrf_matches",
    "csrf_token",
    "fragment",
    "is_htmx",
    "render",
    "templates",
]

TEMPLATES = Path(__file__).with_name("templates")
#: The session cookie: the session token itself (HttpOnly, SameSite=Lax).
SESSION_COOKIE = "segue_session"
#: A random value the CSRF token of every form is derived from (double submit, HMAC'd).
CSRF_COOKIE = "segue_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: Security headers of every page: scripts only from this server, no framing by others.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; frame-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

Crumb = tuple[str, str | None]
"""A breadcrumb: its label and link (None for the current page)."""


@cache
def templates() -> jinja2.Environment:
    """The UI's template environment (built once)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, ago=ago, num=num, duration=duration, bytes=size, iso=iso, pct=pct)
    env.globals.update(version=__version__, static=static, user_label=principal_label)
    return env


def static(path: str) -> str:
    """The URL of a file under ``/static`` with the version as a cache buster."""
    return f"/static/{path}?v={__version__}"


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then wants a fragment, not a whole page)."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    title: str,
    crumbs: Sequence[Crumb] = (),
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A whole page: ``template`` (which extends ``base.html``) with ``context``.

    Every template also gets ``request``, ``user`` (the :class:`Principal`, None on the login
    page), ``csrf_token``, ``title``, ``crumbs`` (shown as the breadcrumbs), and the helpers
    ``url`` (this page's URL with some query parameters changed) and ``query`` (the current
    query parameters).
    """
    values = _context(request, context, title=title, crumbs=crumbs)
    body = templates().get_template(template).render(values)
    return _respond(request, body, status, headers)


def fragment(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Part of a page, for htmx to swap in (a template that does not extend ``base.html``)."""
    values = _context(request, context, title="", crumbs=())
    body = templates().get_template(template).render(values)
    return _respond(request, body, status, headers)


def _context(
    request: Request, context: Mapping[str, Any] | None, *, title: str, crumbs: Sequence[Crumb]
) -> dict[str, Any]:
    return {
        "request": request,
        "user": getattr(request.state, "principal", None),
        "csrf_token": csrf_token(request),
        "title": title,
        "crumbs": list(crumbs),
        "url": lambda **changes: url_with(request, **changes),
        "query": request.query_params,
        **(context or {}),
    }


def _respond(
    request: Request, body: str, status: int, headers: Mapping[str, str] | None
) -> HTMLResponse:
    response = HTMLResponse(body, status, {**PAGE_HEADERS, **(headers or {})})
    seed = getattr(request.state, "csrf_seed", None)
    if seed is not None and request.cookies.get(CSRF_COOKIE) != seed:
        # Lax, not Strict: a link from another site must still send it, or the page it opens
        # would draw a new one and refuse every form already open in other tabs. The token is
        # an HMAC of the cookie, which no other site can read, so Lax costs nothing.
        set_cookie(request, response, CSRF_COOKIE, seed, max_age=None, samesite="lax")
    return response


def set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None,
    samesite: str = "lax",
) -> None:
    """An HttpOnly cookie for the whole site, Secure when the page came over HTTPS."""
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=secure,
        samesite=samesite,  # type: ignore[arg-type]
    )


# -- CSRF ------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser: an HMAC of its ``segue_csrf`` cookie (a fresh cookie
    is drawn, and set by :func:`render`, when it has none)."""
    seed = request.cookies.get(CSRF_COOKIE)
    if not seed or len(seed) != 43:
        seed = getattr(request.state, "csrf_seed", None) or secrets.token_urlsafe(32)
        request.state.csrf_seed = seed
    return _derive(seed)


def csrf_matches(request: Request, sent: str | None) -> bool:
    """Whether ``sent`` is the CSRF token of the browser's cookie."""
    seed = request.cookies.get(CSRF_COOKIE)
    if not seed or not sent:
        return False
    return hmac.compare_digest(_derive(seed), sent)


def _derive(seed: str) -> str:
    return hmac.new(seed.encode(), b"segue-csrf", hashlib.sha256).hexdigest()


# -- URLs ------------------------------------------------------------------------------------


def url_with(request: Request, **changes: Any) -> str:
    """This page's path and query with some parameters changed.

    A value of None removes the parameter; a list sets it several times
    (``?run=a&run=b``). Changing anything but ``page`` resets ``page``.
    """
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    if "page" not in changes:
        items = [(k, v) for k, v in items if k != "page"]
    for key, value in changes.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        items.extend((key, str(v)) for v in values)
    query = urlencode(items)
    return f"{request.url.path}?{query}" if query else request.url.path


# -- filters ---------------------------------------------------------------------------------


def _moment(value: float | int | None) -> dt.datetime | None:
    if value is None:
        return None
    seconds = value / 1000 if value > 1e11 else value  # epoch ms or epoch s
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def iso(value: float | int | None) -> str:
    """Epoch ms (or s) as ISO 8601 UTC, for ``<time datetime=…>``."""
    moment = _moment(value)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else ""


def when(value: float | int | None) -> str:
    """Epoch ms (or s) as ``2026-12-06 05:55:01 UTC``."""
    moment = _moment(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def ago(value: float | int | None, now: float | None = None) -> str:
    """Epoch ms (or s) as ``3 min ago``."""
    moment = _moment(value)
    if moment is None:
        return "—"
    current = dt.datetime.now(dt.UTC) if now is None else _moment(now)
    assert current is not None
    seconds = (current - moment).total_seconds()
    if seconds < 0:
        return "just now" if seconds > -60 else when(value)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{int(seconds // length)} {unit} ago"
    return f"{int(seconds)} s ago"


def num(value: Any) -> str:
    """A number as people read it: ``100,000``; ``0.9731``; ``1.2e-05``; text unchanged."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        if 1e-3 <= abs(value) < 1e6:
            return f"{value:,.6g}" if abs(value) >= 1e3 else f"{value:.4g}"
        return f"{value:.4g}"
    return str(value)


def pct(value: float | None) -> str:
    """A fraction as a percentage: ``0.0421`` -> ``4.21%``."""
    return "—" if value is None else f"{value * 100:.3g}%"


def duration(ms: float | int | None) -> str:
    """Milliseconds as ``1 h 02 min``, ``3.2 s`` or ``41 ms``."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def size(value: int | None) -> str:
    """Bytes as ``1.5 MiB``."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def principal_label(principal: Principal | None) -> str:
    """How the navigation bar names the signed-in user."""
    if principal is None:
        return ""
    if principal.kind == "anonymous":
        return "anonymous (no login)"
    return f"{principal.user} (no login)" if principal.kind == "local" else principal.user
