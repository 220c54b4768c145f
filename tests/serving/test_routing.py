"""Traffic routing: route specs, weighted and sticky picks, shadows, OIP through routes."""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from segue.cli import main
from segue.errors import InvalidArgument
from segue.monitoring.readers import read_predictions
from segue.registry.service import get_registry
from segue.serving.app import create_app
from segue.serving.assembly import build_app
from segue.serving.config import InferenceRecord, ServeConfig
from segue.serving.deployment import Route, ServedModel, ServedModels, deploy
from segue.serving.options import ServeOptions
from segue.serving.routing import Router, key_point, parse_route, parse_routes, role_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def split_body(X) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(X.columns), "data": X.to_numpy().tolist()}}


# --- specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "uri", "weight", "label"),
    [
        ("churn@champion=90", "models:/churn@champion", 90.0, "churn@champion"),
        ("models:/churn@challenger=10", "models:/churn@challenger", 10.0, "churn@challenger"),
        ("models:/churn/3=0.5", "models:/churn/3", 0.5, "churn/3"),
        ("runs:/0123abcd/model=1", "runs:/0123abcd/model", 1.0, "runs:/0123abcd/model"),
        ("/tmp/a=b/model=2", "/tmp/a=b/model", 2.0, "/tmp/a=b/model"),
    ],
)
def test_parse_route(text, uri, weight, label):
    spec = parse_route(text)
    assert (spec.uri, spec.weight, spec.label) == (uri, weight, label)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["churn@champion=0"], "weight must be a number > 0"),
        (["churn@champion=-1"], "weight must be a number > 0"),
        (["churn@champion=nan"], "weight must be a number > 0"),
        (["churn@champion=90", "churn@challenger"], "give every route a weight"),
        (["churn@champion=90", "models:/churn@champion=10"], "given twice"),
        (["ftp:/churn=1"], "unknown scheme"),
        (["=5"], "model URI"),
    ],
)
def test_bad_routes_are_refused_naming_the_route(texts, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_routes(texts)


def test_routes_without_weights_share_equally():
    assert [s.weight for s in parse_routes(["churn@a", "churn@b"])] == [1.0, 1.0]


def test_the_heaviest_route_is_primary_the_others_canaries():
    assert [role_of(k, [10, 90]) for k in range(2)] == ["canary", "primary"]
    assert [role_of(k, [50, 50, 1]) for k in range(3)] == ["primary", "canary", "canary"]


def test_options_take_a_model_uri_or_routes_not_both():
    assert ServeOptions("models:/churn/1").route_specs()[0].weight == 100.0
    options = ServeOptions(routes=("churn@champion=90", "churn@challenger=10"), shadows=("c@x",))
    assert options.served_name() == "churn"
    assert [s.label for s in options.shadow_specs()] == ["c@x"]
    back = ServeOptions.from_env(options.to_env())
    assert (back.routes, back.shadows, back.model_uri) == (options.routes, ("c@x",), None)
    with pytest.raises(InvalidArgument, match="not both"):
        ServeOptions("models:/churn/1", routes=("churn@a=1",))
    with pytest.raises(InvalidArgument, match="MODEL_URI"):
        ServeOptions()
    with pytest.raises(InvalidArgument, match="--no-log"):
        ServeOptions("models:/churn/1", shadows=("churn@shadow",), log=False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "models:/churn/1", "--route", "churn@a=1"], "not both"),
        (["serve"], "give a MODEL_URI"),
        (["serve", "--route", "churn@a=0"], "weight must be a number > 0"),
        (["serve", "--route", "churn@a=1", "--shadow", "ftp:/x"], "--shadow"),
    ],
)
def test_serve_refuses_bad_routing_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and message in err


# --- the router (pure) ----------------------------------------------------------------------


def test_weighted_shares_are_within_four_sigma():
    router = Router([90, 10], rng=random.Random(1234))
    n = 2_000

    challenger = sum(router.pick() for _ in range(n))

    sigma = math.sqrt(n * 0.1 * 0.9)
    assert abs(challenger - n * 0.1) < 4 * sigma


def test_one_route_takes_everything():
    router = Router([3.0])
    assert {router.pick(), router.pick("k")} == {0}


@settings(max_examples=50)
@given(key=st.text(max_size=40), weights=st.lists(st.floats(0.01, 100), min_size=1, max_size=5))
def test_a_routing_key_always_picks_the_same_route(key, weights):
    first = Router(weights, rng=random.Random(1)).pick(key)
    again = Router(weights, rng=random.Random(2))
    assert 0 <= first < len(weights)
    assert all(again.pick(key) == first for _ in range(3))


def test_key_points_do_not_depend_on_the_process():
    # Python's hash() is salted per process; workers and restarts must agree on a key's route.
    assert key_point("customer-42") == pytest.approx(0.20265168573428766)


def test_bad_weights_are_refused():
    for weights in ([], [0], [1, math.inf]):
        with pytest.raises(InvalidArgument):
            Router(weights)


# --- over HTTP ------------------------------------------------------------------------------


def routed_app(
    served_cancer, config: ServeConfig, *, shadow: bool = False, seed: int = 7
) -> FastAPI:
    """``cancer`` with routes champion (version 1, weight 90) and challenger (version 2,
    weight 10), and optionally a shadow (version 3): one loaded model, three deployments."""

    def version(v: str):
        return deploy(
            "cancer", served_cancer.model, config, version=v, input_example=served_cancer.example
        )

    routes = [
        Route("cancer@champion", version("1"), weight=90, role="primary"),
        Route("cancer@challenger", version("2"), weight=10, role="canary"),
    ]
    shadows = [Route("cancer@shadow", version("3"), role="shadow")] if shadow else []
    served = ServedModel("cancer", routes=routes, shadows=shadows, rng=random.Random(seed))
    return create_app(ServedModels([served]), config)


async def _post_many(client: httpx.AsyncClient, bodies: list[tuple[str, dict, dict]], limit=32):
    gate = asyncio.Semaphore(limit)

    async def one(path: str, body: dict, headers: dict) -> httpx.Response:
        async with gate:
            return await client.post(path, json=body, headers=headers)

    return await asyncio.gather(*(one(*b) for b in bodies))


async def asgi_post(app: FastAPI, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One POST straight through the ASGI app: the whole server path, without a client's
    cost (2,000 requests through httpx take seconds)."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-length", str(len(body)).encode())],
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, content = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, content["body"]


async def test_two_thousand_requests_split_by_weight(served_cancer):
    app = routed_app(served_cancer, ServeConfig())
    body = orjson.dumps(split_body(served_cancer.X.iloc[:1]))
    n = 2_000

    answers = await asyncio.gather(*(asgi_post(app, "/predict", body) for _ in range(n)))
    await app.state.models.drain()

    assert all(status == 200 for status, _, _ in answers)
    for _, headers, content in answers:
        answer = orjson.loads(content)
        assert answer["route"] == headers["x-segue-route"]
        expected = "1" if answer["route"] == "cancer@champion" else "2"
        assert answer["version"] == headers["x-model-version"] == expected
    challenger = sum(headers["x-segue-route"] == "cancer@challenger" for _, headers, _ in answers)
    assert abs(challenger - n * 0.1) < 4 * math.sqrt(n * 0.1 * 0.9)


async def test_a_routing_key_sticks_to_one_route(served_cancer):
    app = routed_app(served_cancer, ServeConfig())
    body = split_body(served_cancer.X.iloc[:1])
    keys = [f"customer-{k}" for k in range(100)]
    requests = [("/predict", body, {"x-routing-key": key}) for key in keys * 3]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        responses = await _post_many(c, requests)
    await app.state.models.drain()

    seen: dict[str, set[str]] = {}
    for (_, _, headers), response in zip(requests, responses, strict=True):
        seen.setdefault(headers["x-routing-key"], set()).add(response.headers["x-segue-route"])
    assert all(len(routes) == 1 for routes in seen.values())
    assert {next(iter(routes)) for routes in seen.values()} == {
        "cancer@champion",
        "cancer@challenger",
    }


async def test_shadow_answers_go_to_the_log_only(served_cancer):
    records: list[InferenceRecord] = []
    app = routed_app(served_cancer, ServeConfig(on_prediction=records.append), shadow=True)
    X = served_cancer.X.iloc[:2]
    transport = httpx.ASGITransport(app=app)

    async with (
        app.router.lifespan_context(app),  # its shutdown waits for the shadow requests
        httpx.AsyncClient(transport=transport, base_url="http://s") as c,
    ):
        responses = await _post_many(c, [("/predict", split_body(X), {})] * 40)
        infer = await c.post("/v2/models/cancer/infer", json=oip_body(X))

    answered = [*responses, infer]
    assert all(r.status_code == 200 for r in answered)
    assert all(r.headers["x-model-version"] in ("1", "2") for r in answered)
    assert all(r.json().get("version", r.json().get("model_version")) != "3" for r in answered)
    ids = [r.headers["x-request-id"] for r in answered]
    primary = {r.request_id: r for r in records if r.role != "shadow"}
    shadows = {r.request_id: r for r in records if r.role == "shadow"}
    assert set(primary) == set(ids) == set(shadows)
    for request_id, shadow in shadows.items():
        assert (shadow.version, shadow.route, shadow.status) == ("3", "cancer@shadow", 200)
        assert shadow.time == primary[request_id].time  # the same request
        assert shadow.outputs == primary[request_id].outputs  # (the same model here)
    assert {r.role for r in primary.values()} == {"primary", "canary"}


async def test_the_version_that_answered_is_not_shadowed_again(served_cancer):
    records: list[InferenceRecord] = []
    config = ServeConfig(on_prediction=records.append)
    champion = deploy("cancer", served_cancer.model, config, version="1")
    mirror = deploy("cancer", served_cancer.model, config, version="1")
    served = ServedModel(
        "cancer",
        routes=[Route("cancer@champion", champion)],
        shadows=[Route("cancer@champion", mirror, role="shadow")],
    )
    app = create_app(ServedModels([served]), config)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c,
    ):
        assert (await c.post("/predict", json=split_body(served_cancer.X.iloc[:1]))).is_success

    assert [r.role for r in records] == ["primary"]


def oip_body(X) -> dict[str, Any]:
    inputs = [
        {"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns
    ]
    return {"inputs": inputs}


async def test_oip_endpoints_work_through_routes(served_cancer):
    app = routed_app(served_cancer, ServeConfig())
    X = served_cancer.X.iloc[:3]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        meta = (await c.get("/v2/models/cancer")).json()
        ready = await c.get("/v2/models/cancer/ready")
        v2_ready = await c.get("/v2/models/cancer/versions/2/ready")
        infer = await c.post("/v2/models/cancer/infer", json=oip_body(X))
        pinned = await c.post("/v2/models/cancer/versions/2/infer", json=oip_body(X))
        missing = await c.post("/v2/models/cancer/versions/9/infer", json=oip_body(X))
        keyed = [
            await c.post("/v2/models/cancer/infer", json=oip_body(X), headers={"x-routing-key": k})
            for k in ("a", "a", "a")
        ]
    await app.state.models.drain()

    assert meta["versions"] == ["1", "2"]
    assert ready.status_code == v2_ready.status_code == 200
    assert infer.status_code == 200, infer.text
    assert infer.json()["model_version"] == infer.headers["x-model-version"]
    assert infer.headers["x-segue-route"] in ("cancer@champion", "cancer@challenger")
    assert infer.json()["outputs"][0]["data"] == served_cancer.model.predict(X).tolist()
    assert pinned.json()["model_version"] == "2"
    assert pinned.headers["x-segue-route"] == "cancer@challenger"
    assert missing.status_code == 404 and missing.json()["field"] == "version"
    assert "versions 1, 2 are" in missing.json()["error"]
    assert len({r.headers["x-segue-route"] for r in keyed}) == 1


# --- segue serve --route ... --shadow ... (build_app against the registry) ------------------


async def test_routes_and_shadows_from_the_registry_are_logged_and_swapped_apart(segue_env, tiny):
    tiny.register("churn", tiny.scaled(1), tiny.scaled(2), tiny.scaled(3))
    registry = get_registry()
    for alias, version in (("champion", 1), ("challenger", 2), ("shadow", 3)):
        registry.set_alias("churn", alias, version)
    options = ServeOptions(
        routes=("churn@champion=70", "churn@challenger=30"),
        shadows=("churn@shadow",),
        poll_s=0.1,
        log_flush_s=60,
    )
    app = build_app(options, rng=random.Random(3))
    body = {"instances": [{"x": 2.0}]}
    transport = httpx.ASGITransport(app=app)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://s") as c,
    ):
        before = [await c.post("/predict", json=body) for _ in range(30)]
        await asyncio.to_thread(registry.set_alias, "churn", "challenger", 1)
        deadline = time.monotonic() + 120  # turns a hang into a failure; not a latency check
        while app.state.models.default.routes[1].current.version != "1":
            assert time.monotonic() < deadline, "the challenger route did not follow its alias"
            await asyncio.sleep(0.02)
        after = [await c.post("/predict", json=body) for _ in range(20)]
    # The shutdown waited for the shadows, drained, then wrote the log.

    seen = {(r.json()["route"], r.json()["version"], r.json()["predictions"][0]) for r in before}
    assert seen == {("churn@champion", "1", 2.0), ("churn@challenger", "2", 4.0)}
    assert {(r.json()["route"], r.json()["version"]) for r in after} <= {
        ("churn@champion", "1"),
        ("churn@challenger", "1"),
    }
    logged = read_predictions(segue_env.artifact_uri, "churn")
    ids = {r.headers["x-request-id"] for r in before + after}
    answers = logged[logged["role"] != "shadow"]
    assert set(answers["request_id"]) == ids
    assert set(answers["role"]) == {"primary", "canary"}
    assert set(answers[answers["role"] == "canary"]["version"]) <= {"2", "1"}
    shadow = logged[logged["role"] == "shadow"]
    # Every request is shadowed by version 3, which never answered a caller.
    assert set(shadow["request_id"]) == ids
    assert set(shadow["version"]) == {"3"}
    assert all(outputs == [6.0] for outputs in shadow["outputs"])
