"""``segue serve --auth`` / ``--api-key-file``: every route walked over real HTTP, the key file,
store tokens through the cache, the failure limit, and the CLI end to end."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount, Route

from segue.auth.ratelimit import FailureLimiter
from segue.errors import InvalidArgument
from segue.serving import access
from segue.serving.auth import TOKEN_TTL_S, Guard, KeyFile, TokenCache
from segue.serving.config import Feedback, ServeConfig

KEY = "k3y-0f-the-test-server-0123456789"
OTHER_KEY = "an0ther-key-of-the-test-server-xyz"


class Clock:
    """Seconds that move only when a test says so."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn in a thread: its base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="serving-auth", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the test server did not start")
        thread.join(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text(f"# keys of the test server\n\n  {KEY}  \n")
    return path


def _serve(app_serving: Callable[..., FastAPI], guard: Guard | None) -> FastAPI:
    feedback: list[Feedback] = []
    return app_serving(ServeConfig(on_feedback=feedback.append, auth=guard))


# --- the route table ------------------------------------------------------------------------


def _walk(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, template, URL path) of every route, path parameters filled in."""
    calls = []
    for route in app.routes:
        if isinstance(route, Route):
            url = route.path.replace("{name}", "cancer").replace("{version}", "1")
            calls += [(method, route.path, url) for method in sorted(route.methods or ())]
    return calls


def _body(template: str, example: dict[str, Any]) -> dict[str, Any] | list[Any]:
    if template == "/predict":
        return example
    if template == "/feedback":
        return []  # refused by its content (422), after the token let it through
    return {"inputs": []}


def test_every_route_is_classified_and_the_table_lists_no_other(app_serving) -> None:
    app = _serve(app_serving, None)
    served = {(method, template) for method, template, _ in _walk(app)}
    assert served == set(access.ACCESS)
    mounts = {route.path for route in app.routes if isinstance(route, Mount)}
    assert mounts == access.PUBLIC_MOUNTS


def test_an_unclassified_route_stops_the_app_from_being_built(app_serving) -> None:
    app = _serve(app_serving, None)

    @app.get("/v2/secret")
    async def secret() -> dict[str, str]:
        return {}

    with pytest.raises(InvalidArgument, match=r"GET /v2/secret is not in serving access\.ACCESS"):
        access.check_routes(app)


def test_walk_with_an_api_key_file(app_serving, served_cancer, key_file: Path) -> None:
    app = _serve(app_serving, Guard(keys=KeyFile(key_file), limiter=FailureLimiter(1_000)))
    with _served(app) as base, httpx.Client(timeout=60, base_url=base) as http:
        for method, template, url in _walk(app):
            body = _body(template, served_cancer.example) if method == "POST" else None
            what = f"{method} {template}"
            if access.ACCESS[(method, template)] == access.PUBLIC:
                answer = http.request(method, url, json=body)
                assert answer.status_code < 400, what
                continue
            bare = http.request(method, url, json=body)
            assert bare.status_code == 401, what
            assert "needs a token" in bare.json()["error"], what
            assert bare.headers["www-authenticate"] == "Bearer"
            wrong = http.request(method, url, json=body, headers=_bearer(OTHER_KEY))
            assert wrong.status_code == 401, what
            assert wrong.json()["error"] == "unknown, revoked or expired token"
            good = http.request(method, url, json=body, headers=_bearer(KEY))
            assert good.status_code != 401 and good.status_code < 500, (what, good.text)
            if template == "/predict":
                assert good.status_code == 200
                assert len(good.json()["predictions"]) == 5  # the input example's rows


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_without_a_guard_every_route_is_open(app_serving, served_cancer) -> None:
    with _served(_serve(app_serving, None)) as base:
        assert httpx.post(f"{base}/predict", json=served_cancer.example).status_code == 200
        assert httpx.post(f"{base}/feedback", json=[]).status_code == 400  # empty, not 401


def test_the_authorization_header_must_say_bearer(app_serving, served_cancer, key_file) -> None:
    app = _serve(app_serving, Guard(keys=KeyFile(key_file)))
    with _served(app) as base:
        answer = httpx.post(
            f"{base}/predict", json=served_cancer.example, headers={"authorization": f"Basic {KEY}"}
        )
        assert answer.status_code == 401
        lower = httpx.post(
            f"{base}/predict",
            json=served_cancer.example,
            headers={"authorization": f"bearer {KEY}"},
        )
        assert lower.status_code == 200


def test_the_client_sends_its_token(app_serving, served_cancer, key_file: Path) -> None:
    from segue.errors import Unauthenticated
    from segue.serving.client import Client

    rows = served_cancer.X[:3]
    with _served(_serve(app_serving, Guard(keys=KeyFile(key_file)))) as base:
        with Client(base) as anonymous, pytest.raises(Unauthenticated, match="needs a token"):
            anonymous.predict(rows)
        with Client(base, token=KEY) as client:
            assert len(client.predict(rows).predictions) == 3


# --- the failure limit ----------------------------------------------------------------------


def test_ten_failures_in_a_minute_get_429_until_the_minute_has_passed(
    app_serving, served_cancer, key_file: Path
) -> None:
    clock = Clock()
    guard = Guard(keys=KeyFile(key_file), limiter=FailureLimiter(clock=clock))
    app = _serve(app_serving, guard)
    with _served(app) as base, httpx.Client(timeout=60, base_url=base) as http:
        for _ in range(10):
            assert http.post("/predict", json={}, headers=_bearer(OTHER_KEY)).status_code == 401
        refused = http.post("/predict", json=served_cancer.example, headers=_bearer(KEY))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "60"
        assert "too many failed authentications" in refused.json()["error"]
        assert http.get("/v2/health/ready").status_code == 200  # public routes stay open
        clock.now += 61
        answer = http.post("/predict", json=served_cancer.example, headers=_bearer(KEY))
        assert answer.status_code == 200


# --- the key file -----------------------------------------------------------------------------


def _accepts(keys: KeyFile, key: str) -> bool:
    import hashlib

    return keys.accepts(hashlib.sha256(key.encode()).digest())


def test_the_key_file_is_read_again_when_it_changes(key_file: Path) -> None:
    clock = Clock()
    keys = KeyFile(key_file, clock=clock)
    assert _accepts(keys, KEY) and not _accepts(keys, OTHER_KEY)
    key_file.write_text(f"{OTHER_KEY}\n# {KEY} retired\n")
    os.utime(key_file, ns=(1, 1))  # a different mtime, whatever the file system's resolution
    assert _accepts(keys, KEY)  # looked at again only after recheck_s
    clock.now += 1.0
    assert _accepts(keys, OTHER_KEY) and not _accepts(keys, KEY)
    key_file.unlink()
    clock.now += 1.0
    assert not _accepts(keys, OTHER_KEY)  # a file gone accepts no key
    key_file.write_text(f"{KEY}\n")
    clock.now += 1.0
    assert _accepts(keys, KEY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read it"),
        ("", "no key in it"),
        ("# only a comment\n\n", "no key in it"),
        (f"{KEY}\nshort\n", "the key on line 2 is shorter than 16 characters"),
    ],
)
def test_a_key_file_without_good_keys_is_refused(tmp_path: Path, text, message) -> None:
    path = tmp_path / "keys.txt"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InvalidArgument, match=message):
        KeyFile(path)


def test_serve_options_refuse_a_bad_key_file(tmp_path: Path, monkeypatch) -> None:
    from segue.serving.options import ServeOptions

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgument, match=r"--api-key-file .*cannot read it"):
        ServeOptions(model_uri="models:/x/1", api_key_file=str(tmp_path / "missing"))
    (tmp_path / "keys").write_text(KEY)
    options = ServeOptions(model_uri="models:/x/1", api_key_file="keys", auth=True)
    assert options.api_key_file == os.path.abspath("keys")
    assert ServeOptions.from_env(options.to_env()) == options


# --- store tokens (--auth) ------------------------------------------------------------------


@pytest.fixture
def auth_service(store_uri: str):
    from segue.auth.service import AuthService
    from segue.store.auth import SqlAuthStore
    from segue.store.engine import open_engine

    return AuthService(SqlAuthStore(open_engine(store_uri)))


def test_walk_with_store_tokens(app_serving, served_cancer, auth_service) -> None:
    auth_service.add_user("scorer", "viewer", actor="user:admin")
    token, _ = auth_service.create_token("scorer", "predict", actor="user:admin", scope="predict")
    guard = Guard(tokens=TokenCache(auth_service.authenticate), limiter=FailureLimiter(1_000))
    app = _serve(app_serving, guard)
    with _served(app) as base, httpx.Client(timeout=60, base_url=base) as http:
        for method, template, url in _walk(app):
            body = _body(template, served_cancer.example) if method == "POST" else None
            what = f"{method} {template}"
            if access.ACCESS[(method, template)] == access.PUBLIC:
                assert http.request(method, url, json=body).status_code < 400, what
                continue
            assert http.request(method, url, json=body).status_code == 401, what
            forged = token[:-4] + "AAAA"
            assert http.request(method, url, json=body, headers=_bearer(forged)).status_code == 401
            good = http.request(method, url, json=body, headers=_bearer(token))
            assert good.status_code != 401 and good.status_code < 500, (what, good.text)


def test_a_revoked_token_is_refused_once_the_cache_forgets_it(
    app_serving, served_cancer, auth_service
) -> None:
    auth_service.add_user("scorer", "viewer", actor="user:admin")
    token, entity = auth_service.create_token("scorer", "p", actor="user:admin", scope="predict")
    clock = Clock()
    guard = Guard(tokens=TokenCache(auth_service.authenticate, clock=clock))
    app = _serve(app_serving, guard)
    with _served(app) as base, httpx.Client(timeout=60, base_url=base) as http:

        def status() -> int:
            return http.post(
                "/predict", json=served_cancer.example, headers=_bearer(token)
            ).status_code

        assert status() == 200
        auth_service.revoke_token(entity.public_id, actor="user:admin")
        assert status() == 200  # remembered: a running server learns within the TTL
        clock.now += TOKEN_TTL_S
        assert status() == 401


def test_a_disabled_user_s_tokens_are_refused(app_serving, served_cancer, auth_service) -> None:
    auth_service.add_user("scorer", "editor", actor="user:admin")
    token, _ = auth_service.create_token("scorer", "full", actor="user:admin")
    clock = Clock()
    app = _serve(app_serving, Guard(tokens=TokenCache(auth_service.authenticate, clock=clock)))
    with _served(app) as base:
        headers = _bearer(token)
        assert httpx.post(f"{base}/predict", json=served_cancer.example, headers=headers).is_success
        auth_service.set_disabled("scorer", True, actor="user:admin")
        clock.now += TOKEN_TTL_S
        answer = httpx.post(f"{base}/predict", json=served_cancer.example, headers=headers)
        assert answer.status_code == 401


@pytest.mark.anyio
async def test_the_cache_asks_once_per_token_and_ttl() -> None:
    import asyncio

    from segue.errors import Unauthenticated

    asked: list[str] = []

    def authenticate(token: str) -> str:
        asked.append(token)
        if token != "good":
            raise Unauthenticated("unknown token")
        return token

    clock = Clock()
    cache = TokenCache(authenticate, clock=clock)
    results = await asyncio.gather(*(cache.check("good", b"g") for _ in range(20)))
    assert all(results) and asked == ["good"]
    assert not await cache.check("bad", b"b") and not await cache.check("bad", b"b")
    assert asked == ["good", "bad"]
    clock.now += TOKEN_TTL_S
    assert await cache.check("good", b"g") and asked == ["good", "bad", "good"]


@pytest.mark.anyio
async def test_a_source_that_fails_is_not_remembered() -> None:
    from segue.errors import ServerError

    calls = []

    def authenticate(token: str) -> None:
        calls.append(token)
        raise ServerError("the store is down")

    cache = TokenCache(authenticate)
    for _ in range(2):
        with pytest.raises(ServerError):
            await cache.check("t", b"t")
    assert len(calls) == 2


def test_a_store_that_cannot_answer_is_a_503_not_a_failure(app_serving, served_cancer) -> None:
    def authenticate(token: str) -> None:
        raise OSError("connection refused")

    guard = Guard(tokens=TokenCache(authenticate), limiter=FailureLimiter(max_failures=1))
    with _served(_serve(app_serving, guard)) as base:
        for _ in range(3):  # not counted against the client: never a 429
            answer = httpx.post(f"{base}/predict", json={}, headers=_bearer("sgt_x"))
            assert answer.status_code == 503
            assert answer.json()["error"].startswith("cannot check the token now (OSError")


# --- the CLI --------------------------------------------------------------------------------


@pytest.mark.slow
def test_segue_serve_with_an_api_key_file(segue_serve, echo_store, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the scorers\n{KEY}\n")
    body = {"inputs": [{"x": 2.0}]}
    args = ("models:/echo/1", "--api-key-file", str(keys))
    with segue_serve(echo_store, tmp_path, *args) as (base, _):
        assert httpx.get(f"{base}/v2/health/ready").status_code == 200
        assert httpx.get(f"{base}/metrics").status_code == 200
        refused = httpx.post(f"{base}/predict", json=body)
        assert refused.status_code == 401 and "needs a token" in refused.json()["error"]
        answer = httpx.post(f"{base}/predict", json=body, headers=_bearer(KEY))
        assert answer.status_code == 200 and answer.json()["predictions"] == [2.0]
        infer = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [2.0]}]}
        oip = httpx.post(f"{base}/v2/models/echo/infer", json=infer, headers=_bearer(KEY))
        assert oip.status_code == 200
        assert httpx.post(f"{base}/v2/models/echo/infer", json=infer).status_code == 401


# --- remote mode: tokens checked by the team server -----------------------------------------


def test_remote_tokens_ask_the_team_server(start_server, store_uri: str) -> None:
    from segue.errors import Unauthenticated
    from segue.serving.auth import remote_tokens

    server = start_server(store_uri)
    service = server.state.auth
    service.add_user("scorer", "viewer", actor="user:admin")
    service.add_user("inference", "viewer", actor="user:admin")
    own, _ = service.create_token("inference", "serve", actor="user:admin")
    predict, listed = service.create_token("scorer", "p", actor="user:admin", scope="predict")
    full, _ = service.create_token("scorer", "full", actor="user:admin")
    authenticate = remote_tokens(server.url, own)
    assert authenticate(full)["user"] == "scorer"
    assert authenticate(predict)["scope"] == "predict"
    # More bad tokens than the team server's failure limit: each is an answer about the
    # presented token, never a failure of this server's own, so good tokens still pass.
    for _ in range(15):
        with pytest.raises(Unauthenticated):
            authenticate(predict[:-4] + "AAAA")
    assert authenticate(full)["user"] == "scorer"
    service.revoke_token(listed.public_id, actor="user:admin")
    with pytest.raises(Unauthenticated):
        authenticate(predict)
