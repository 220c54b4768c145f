"""Logging in and out of the web UI, the session cookie and CSRF."""

from __future__ import annotations

import httpx

from tests.server.ui.conftest import PASSWORD, csrf_of


def test_a_page_sends_a_stranger_to_the_login_and_back(ui):
    with httpx.Client(timeout=60, base_url=ui.url) as client:
        answer = client.get("/?filter=x")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2F%3Ffilter%3Dx"
        form = client.get("/login?next=/experiments")
        token = csrf_of(form.text)
        logged = client.post(
            "/login",
            data={"name": "vic", "password": PASSWORD, "next": "/runs?x=1", "csrf_token": token},
        )
        assert logged.status_code == 303
        assert logged.headers["location"] == "/runs?x=1"
        cookie = logged.headers["set-cookie"]
        assert "segue_session=sgt_" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie


def test_a_wrong_password_is_refused_on_the_form(ui):
    client = ui.client()
    answer = client.post(
        "/login", data={"name": "vic", "password": "nope-nope", "csrf_token": client.csrf}
    )
    assert answer.status_code == 401
    assert "wrong user name or password" in answer.text
    assert 'value="vic"' in answer.text  # the name is kept, the password is not
    assert "segue_session" not in answer.headers.get("set-cookie", "")


def test_login_and_every_form_need_the_csrf_token(ui):
    client = ui.client()
    answer = client.post("/login", data={"name": "vic", "password": PASSWORD})
    assert answer.status_code == 403
    assert "CSRF token is missing or stale" in answer.text
    forged = client.post(
        "/login", data={"name": "vic", "password": PASSWORD, "csrf_token": "0" * 64}
    )
    assert forged.status_code == 403
    logged_in = ui.client("viewer")
    assert logged_in.post("/logout").status_code == 403  # no token: still logged in
    assert logged_in.get("/").status_code == 303
    assert logged_in.get("/").headers["location"] == "/experiments"


def test_logout_revokes_the_session(ui):
    client = ui.client("viewer")
    session = client.cookies["segue_session"]
    out = client.post("/logout", data={"csrf_token": client.csrf})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    # The old cookie no longer opens a page, even if a browser kept it.
    with httpx.Client(timeout=60, base_url=ui.url, cookies={"segue_session": session}) as stale:
        again = stale.get("/")
        assert again.status_code == 303 and again.headers["location"].startswith("/login")
    listed = [t for t in ui.state.auth.list_tokens("vic") if t.name == "web session"]
    assert listed and all(t.revoked_at is not None for t in listed)


def test_a_session_is_not_an_api_token_and_a_bearer_is_not_a_session(ui):
    client = ui.client("admin")
    session = client.cookies["segue_session"]
    api = httpx.get(f"{ui.url}/api/v1/whoami", headers={"authorization": f"Bearer {session}"})
    assert api.status_code == 401
    assert "web session is not an API token" in api.json()["error"]
    token, _ = ui.state.auth.create_token("ada", "laptop", "local:test")
    with httpx.Client(timeout=60, base_url=ui.url, cookies={"segue_session": token}) as client:
        assert client.get("/").headers["location"].startswith("/login")


def test_a_disabled_user_loses_their_session(ui):
    client = ui.client("editor")
    assert client.get("/").headers["location"] == "/experiments"
    ui.state.auth.set_disabled("eddie", True, "local:test")
    assert client.get("/").headers["location"].startswith("/login")


def test_next_never_leaves_the_server(ui):
    client = ui.client()
    for target in ("//evil.example/x", "https://evil.example", "/\\evil", "javascript:alert(1)"):
        answer = client.post(
            "/login",
            data={"name": "vic", "password": PASSWORD, "next": target, "csrf_token": client.csrf},
        )
        assert answer.headers["location"] == "/"


def test_the_local_ui_needs_no_login(local_ui):
    with httpx.Client(timeout=60, base_url=local_ui.url) as client:
        assert client.get("/").headers["location"] == "/experiments"
        assert client.get("/login").headers["location"] == "/"
        assert client.get("/", headers={"host": "localhost:5000"}).status_code == 303


def test_the_local_ui_answers_only_to_loopback_names(local_ui):
    # A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) reaches nothing.
    with httpx.Client(timeout=60, base_url=local_ui.url) as client:
        page = client.get("/", headers={"host": "evil.example:5000"})
        assert page.status_code == 403
        assert "answers only at 127.0.0.1" in page.text
        api = client.get("/api/v1/experiments", headers={"host": "evil.example"})
        assert api.status_code == 403


def test_the_login_page_in_a_browser(ui, page, login):
    page.goto(f"{ui.url}/login")
    assert page.title() == "Log in · Segue"
    page.fill("input[name=name]", "mia")
    page.fill("input[name=password]", "wrong password")
    page.problems.allow(r"HTTP 401: POST .*/login|status of 401")
    page.click("button[type=submit]")
    assert "wrong user name or password" in page.inner_text(".error")
    login(page, ui, "maintainer")
    assert page.url == f"{ui.url}/experiments"
    assert page.inner_text(".who").startswith("mia")
    cookie = next(c for c in page.context.cookies() if c["name"] == "segue_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_the_local_ui_acts_as_the_person_at_this_machine(local_ui, monkeypatch):
    from segue.identity import local_actor

    me = local_actor().name
    with httpx.Client(timeout=60, base_url=local_ui.url) as client:
        page = client.get("/experiments")
        assert f"{me} (no login)" in page.text
        assert "Log out" not in page.text
        moved = client.post(
            "/models/breast-cancer/aliases",
            data={
                "alias": "staging",
                "version": "1",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert moved.status_code in (200, 303), moved.text
    history = local_ui.state.registry_store.history("breast-cancer")
    assert history[-1].actor == f"local:{me}"
