"""Logging in and out of the web UI.

A login checks the user's password (Argon2id) and sets the session cookie: the token of a
session (scope ``session``, 12 hours; ``segue tokens list`` shows it, ``segue tokens revoke``
ends it). HttpOnly and SameSite=Lax, Secure over HTTPS. Failed logins count against the
client like failed tokens do (429 after ten a minute).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from segue.auth.service import SESSION_SECONDS
from segue.errors import TooManyRequests, Unauthenticated
from segue.server.app import client_address, server_state
from segue.server.ui.render import SESSION_COOKIE, render, set_cookie

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (never ``//elsewhere``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if target.startswith(("/login", "/logout")):
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    """The login form."""
    state = server_state(request)
    if state.no_auth:
        return RedirectResponse(safe_next(next), 303)
    return render(
        request, "login.html", {"next": safe_next(next), "error": None, "name": ""}, title="Log in"
    )


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the password; set the session cookie and go on to ``next``."""
    state = server_state(request)
    if state.no_auth:
        return RedirectResponse(safe_next(next), 303)
    client = client_address(request)
    try:
        state.limiter.check(client)
        token, _ = state.auth.start_session(name, password)
    except (Unauthenticated, TooManyRequests) as exc:
        if isinstance(exc, Unauthenticated):
            state.limiter.failed(client)
        status = 429 if isinstance(exc, TooManyRequests) else 401
        context = {"next": safe_next(next), "error": str(exc), "name": name}
        return render(request, "login.html", context, title="Log in", status=status)
    response = RedirectResponse(safe_next(next), 303)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=SESSION_SECONDS)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session (its token is revoked) and go back to the login form."""
    state = server_state(request)
    principal = request.state.principal
    if principal is not None and principal.scope == "session" and principal.token_id:
        state.auth.revoke_token(principal.token_id, str(principal.actor))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
