"""Who may call each route of ``segue server``, proven by walking the route table.

Every API route that is not public answers 401 without a token, 403 to a token of each role
weaker than its rule (on a model without grants) and 403 to a ``predict`` token whatever its
user's role. Every web page that is not public sends a browser without a session to the login
and answers 403 to a session of each weaker role. Failed authentications are limited per
client (429 with Retry-After).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Route

from segue.auth.roles import ROLES, rank
from segue.auth.service import AuthService
from segue.errors import InvalidArgument
from segue.server import access
from segue.server.app import check_routes, create_app
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine
from segue.store.registry import SqlRegistryStore

#: A plausible value for each path parameter (the model exists; nobody holds a grant on it).
PARAMS = {
    "name": "churn",
    "version": "1",
    "alias": "champion",
    "gate_id": "1",
    "request_id": "1",
    "run_id": "0" * 32,
    "prefix": "0000",
    "digest": "0" * 64,
    "path": "predictions/x",
    "user": "viewer",
    "public_id": "0123abcd",
    "key": "loss",
    "rest": "unmapped/call",
    "model_id": "m-0123abcd",
}
PASSWORD = "walk the table"
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


class Clock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Walk:
    """A server with a user and a token for each role, a ``predict`` token of an admin, and
    the model ``churn``."""

    url: str
    app: FastAPI
    clock: Clock
    tokens: dict[str, str]
    predict: str

    def session(self, role: str) -> tuple[httpx.Client, str]:
        """A browser-like client logged in as the user of ``role``, and its CSRF token."""
        client = httpx.Client(base_url=self.url, timeout=30)
        form = client.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', form)
        assert csrf
        fields = {"name": role, "password": PASSWORD, "csrf_token": csrf.group(1)}
        assert client.post("/login", data=fields).status_code == 303
        return client, csrf.group(1)


@pytest.fixture
def store_uri(sqlite_template: Path, tmp_path: Path) -> str:
    """A SQLite store of its own: the walk checks the app, not the database."""
    path = tmp_path / "segue.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def walk(store_uri, start_server) -> Walk:
    engine = open_engine(store_uri)
    SqlRegistryStore(engine).create_model("churn", "local:ops")
    clock = Clock()
    auth = AuthService(SqlAuthStore(engine), clock=clock)
    tokens = {}
    for role in ROLES:
        auth.add_user(role, role, "local:ops", password=PASSWORD)
        tokens[role], _ = auth.create_token(role, "walk", "local:ops")
    predict, _ = auth.create_token("admin", "edge", "local:ops", scope="predict")
    server = start_server(store_uri, clock=clock)
    return Walk(server.url, create_app(server.state), clock, tokens, predict)


def routes(app: FastAPI, *, api_only: bool = True) -> Iterator[tuple[str, str]]:
    """Every ``(METHOD, full path template)`` of the app's API routes (included routers'
    too), and with ``api_only=False`` of its plain routes as well (the OpenAPI document)."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) or (not api_only and isinstance(route, Route)):
            for method in sorted(context.methods or route.methods or ()):
                yield method, str(context.path)


def _fill(template: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in PARAMS, f"add a plausible value for the path parameter {{{name}}}"
        return PARAMS[name]

    return _PARAM.sub(value, template)


def _message(answer: httpx.Response) -> str:
    """The error's text: Segue's shape, or MLflow's on the MLflow routes."""
    body = answer.json()
    return str(body["error"] if "error" in body else body["message"])


def test_every_route_refuses_a_missing_token_and_every_weaker_role(walk):
    checked = 0
    with httpx.Client(base_url=walk.url, timeout=30) as client:
        for method, template in sorted(set(routes(walk.app))):
            rule = access.ACCESS[(method, template)]
            if rule.role == access.PUBLIC or not template.startswith("/api/"):
                continue
            path = _fill(template)
            sends = method in ("POST", "PUT", "PATCH")
            content = b"{}" if sends else None
            json_type = {"content-type": "application/json"} if sends else {}
            where = f"{method} {template}"

            answer = client.request(method, path, content=content, headers=json_type)
            assert answer.status_code == 401, (where, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer", where
            # Failures count against this client: let them leave the limiter's minute.
            walk.clock.now += 61

            for role in ROLES[: rank(rule.role)]:
                headers = {"authorization": f"Bearer {walk.tokens[role]}", **json_type}
                answer = client.request(method, path, content=content, headers=headers)
                assert answer.status_code == 403, (where, role, answer.text)
                if method != "HEAD":  # a HEAD answer has no body
                    needed = f"this needs role {rule.role}"
                    needed += " on model 'churn'" if rule.model else ""
                    assert _message(answer) == f"{needed}; user:{role} is {role}", where

            headers = {"authorization": f"Bearer {walk.predict}", **json_type}
            answer = client.request(method, path, content=content, headers=headers)
            assert answer.status_code == 403, (where, "predict", answer.text)
            assert method == "HEAD" or "inference servers" in _message(answer), where
            checked += 1
    assert checked >= 10


def test_every_page_sends_a_stranger_to_the_login_and_refuses_every_weaker_role(walk):
    sessions = {role: walk.session(role) for role in ROLES}
    checked = 0
    with httpx.Client(base_url=walk.url, timeout=30) as stranger:
        for method, template in sorted(set(routes(walk.app))):
            rule = access.ACCESS[(method, template)]
            if rule.role == access.PUBLIC or template.startswith("/api/") or template == "/docs":
                continue
            path, where = _fill(template), f"{method} {template}"
            answer = stranger.request(method, path)
            assert answer.status_code == 303, (where, answer.text)
            assert answer.headers["location"].startswith("/login?next="), where
            for role in ROLES[: rank(rule.role)]:
                client, csrf = sessions[role]
                form = {"csrf_token": csrf} if method != "GET" else None
                answer = client.request(method, path, data=form)
                assert answer.status_code == 403, (where, role, answer.text)
                assert f"this needs role {rule.role}" in answer.text, where
                assert "text/html" in answer.headers["content-type"], where
            checked += 1
    assert checked >= 1


def test_public_routes_are_an_explicit_short_list():
    public = sorted(key for key, rule in access.ACCESS.items() if rule.role == access.PUBLIC)
    assert public == [
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/login"),
        ("POST", "/login"),
    ]


def test_public_routes_answer_without_a_token(walk):
    assert httpx.get(f"{walk.url}/api/v1/health").status_code == 200
    assert httpx.get(f"{walk.url}/api/v1/openapi.json").status_code == 200
    assert httpx.get(f"{walk.url}/docs").status_code == 200


def test_check_routes_refuses_an_undeclared_route(walk):
    app = create_app(walk.app.state.segue)
    app.add_api_route("/api/v1/undeclared", lambda: None, methods=["GET"])
    with pytest.raises(InvalidArgument, match=r"route GET /api/v1/undeclared is not in"):
        check_routes(app)

    app = create_app(walk.app.state.segue)
    app.add_api_route("/api/v1/health", lambda: None, methods=["DELETE"])
    with pytest.raises(InvalidArgument, match=r"route DELETE /api/v1/health is not in"):
        check_routes(app)


def test_every_rule_names_a_real_route(walk):
    """No stale entries: every key of ACCESS is a route the app has.

    This holds once every area's router is registered (tracking, registry, artifacts,
    users and tokens, promotions); a route missing here is named in the failure.
    """
    present = set(routes(walk.app, api_only=False))
    missing = [f"{m} {p}" for m, p in sorted(access.ACCESS) if (m, p) not in present]
    assert not missing, f"{len(missing)} ACCESS entries have no route: {', '.join(missing)}"


def test_only_admins_add_schedules_whose_code_the_scheduler_runs():
    # A schedule's pipeline is code the scheduler imports on its host, beside the database.
    schedules = {key: rule.role for key, rule in access.ACCESS.items() if "schedules" in key[1]}
    assert schedules == {
        ("GET", "/api/v1/schedules"): "viewer",
        ("POST", "/api/v1/schedules"): "admin",
        ("GET", "/api/v1/schedules/{name}"): "viewer",
        ("POST", "/api/v1/schedules/{name}/pause"): "maintainer",
        ("POST", "/api/v1/schedules/{name}/resume"): "maintainer",
        ("DELETE", "/api/v1/schedules/{name}"): "maintainer",
        ("GET", "/api/v1/schedules/{name}/history"): "viewer",
        ("GET", "/schedules"): "viewer",
    }


def test_rules_name_roles_and_model_parameters_that_exist():
    for (method, path), rule in access.ACCESS.items():
        assert rule.role in (*ROLES, access.PUBLIC), (method, path)
        if rule.model is not None:
            assert f"{{{rule.model}}}" in path, (method, path)


# -- the failure limit ------------------------------------------------------------------------


def test_ten_failures_in_a_minute_refuse_the_client_until_the_minute_passes(walk):
    good = {"authorization": f"Bearer {walk.tokens['viewer']}"}
    bad = {"authorization": "Bearer sgt_ffffffff_" + "A" * 43}
    with httpx.Client(base_url=f"{walk.url}/api/v1", timeout=30) as client:
        # Refusals of a valid token for its role are not failed authentications.
        for _ in range(15):
            assert client.get("/users", headers=good).status_code == 403
        for _ in range(10):
            assert client.get("/whoami", headers=bad).status_code == 401
            walk.clock.now += 1

        refused = client.get("/whoami", headers=good)
        assert refused.status_code == 429, refused.text
        assert refused.json()["type"] == "TooManyRequests"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert client.get("/whoami").status_code == 429  # nor without a token
        assert client.get("/health").status_code == 200  # public routes stay open

        walk.clock.now += 50  # the first failure was 60 s ago: one slot is free
        assert client.get("/whoami", headers=good).status_code == 200
        walk.clock.now += 10
        assert client.get("/whoami", headers=good).json()["user"] == "viewer"
