"""The inference server over HTTP (in-process): OIP v2, /predict, errors, metrics, docs, hooks."""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segue.models.package import LoadedModel
from segue.serving.app import create_app
from segue.serving.config import InferenceRecord, ServeConfig
from segue.serving.deployment import Deployment, Route, ServedModel, ServedModels, deploy

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def split_body(X) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(X.columns), "data": X.to_numpy().tolist()}}


def oip_body(X, **extra: Any) -> dict[str, Any]:
    inputs = [
        {"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns
    ]
    return {"inputs": inputs, **extra}


def expect_error(response: httpx.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "field", "request_id"}
    assert body["error"] and body["field"] == field
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# --- Open Inference Protocol v2 -------------------------------------------------------------


async def test_server_metadata_and_health(client):
    meta = (await client.get("/v2")).json()
    live = await client.get("/v2/health/live")
    ready = await client.get("/v2/health/ready")

    assert meta["name"] == "segue" and meta["version"] and isinstance(meta["extensions"], list)
    assert (live.status_code, live.json()) == (200, {"live": True})
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


async def test_model_metadata_describes_the_signature(client, served_cancer):
    meta = (await client.get("/v2/models/cancer")).json()

    assert meta["name"] == "cancer" and meta["versions"] == ["1"]
    assert meta["platform"] == "segue-sklearn"
    assert meta["inputs"] == [
        {"name": c, "datatype": "FP64", "shape": [-1]} for c in served_cancer.X.columns
    ]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]


async def test_model_and_version_readiness(client):
    assert (await client.get("/v2/models/cancer/ready")).json() == {"name": "cancer", "ready": True}
    assert (await client.get("/v2/models/cancer/versions/1/ready")).status_code == 200
    assert (await client.get("/v2/models/cancer/versions/1")).json()["versions"] == ["1"]
    expect_error(await client.get("/v2/models/cancer/versions/2/ready"), 404, "version")
    expect_error(await client.get("/v2/models/cancer/versions/2"), 404, "version")
    expect_error(await client.get("/v2/models/other"), 404, "model")
    expect_error(await client.get("/v2/models/other/ready"), 404, "model")


async def test_not_ready_until_a_deployment_is_set(app, client):
    served = app.state.models.get("cancer")
    deployment, served.current = served.current, None
    try:
        # The OIP health API: 200 means true and a 4xx false (Triton answers 400).
        ready = await client.get("/v2/health/ready")
        model_ready = await client.get("/v2/models/cancer/ready")
        assert (ready.status_code, ready.json()) == (400, {"ready": False})
        assert (model_ready.status_code, model_ready.json()["ready"]) == (400, False)
        assert (await client.head("/v2/models/cancer/versions/1/ready")).status_code == 400
        # Inference before the model is loaded is the server's state, not the caller's fault.
        expect_error(await client.post("/v2/models/cancer/infer", json={}), 503)
        assert (await client.get("/v2/health/live")).status_code == 200
    finally:
        served.current = deployment


@pytest.mark.parametrize(
    "path",
    [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/cancer/ready",
        "/v2/models/cancer/versions/1/ready",
    ],
)
async def test_health_routes_answer_head_as_get(client, path):
    head = await client.head(path)
    get = await client.get(path)

    assert head.status_code == get.status_code == 200
    assert head.headers["content-type"] == "application/json"


async def test_head_is_undocumented_and_not_offered_elsewhere(client):
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert set(paths["/v2/health/ready"]) == {"get"}
    assert (await client.head("/v2/models/cancer/versions/7/ready")).status_code == 404
    assert (await client.head("/v2/models/cancer/infer")).status_code == 405


async def test_infer_round_trip(client, served_cancer):
    X = served_cancer.X.iloc[:3]
    body = oip_body(X, id="req-1", parameters={"outputs": ["predict", "predict_proba"]})

    response = await client.post(
        "/v2/models/cancer/infer", json=body, headers={"x-request-id": "trace-9"}
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "trace-9"
    assert response.headers["x-model-version"] == "1"
    answer = response.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("cancer", "1", "req-1")
    predict, proba = answer["outputs"]
    assert predict == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [3],
        "data": served_cancer.model.predict(X).tolist(),
    }
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("predict_proba", "FP64", [3, 2])
    np.testing.assert_allclose(
        np.reshape(proba["data"], (3, 2)), served_cancer.model.predict_proba(X), rtol=1e-12
    )


async def test_infer_under_the_served_version_and_only_it(client, served_cancer):
    body = oip_body(served_cancer.X.iloc[:1], outputs=[{"name": "predict_proba"}])

    ok = await client.post("/v2/models/cancer/versions/1/infer", json=body)
    wrong = await client.post("/v2/models/cancer/versions/7/infer", json=body)
    unknown = await client.post("/v2/models/dogs/infer", json=body)

    assert [o["name"] for o in ok.json()["outputs"]] == ["predict_proba"]
    assert ok.json()["id"] == ok.headers["x-request-id"]  # no id given: the request id
    expect_error(wrong, 404, "version")
    assert "version 1 is" in wrong.json()["error"]
    expect_error(unknown, 404, "model")


async def test_binary_tensors_in_and_out(client, served_cancer):
    X = served_cancer.X.iloc[:3]
    inputs = [
        {"name": c, "shape": [3], "datatype": "FP64", "parameters": {"binary_data_size": 24}}
        for c in X.columns
    ]
    header = orjson.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}})
    raw = b"".join(X[c].to_numpy("<f8").tobytes() for c in X.columns)

    response = await client.post(
        "/v2/models/cancer/infer",
        content=header + raw,
        headers={"inference-header-content-length": str(len(header))},
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    (output,) = orjson.loads(response.content[:length])["outputs"]
    assert output == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [3],
        "parameters": {"binary_data_size": 24},
    }
    predicted = np.frombuffer(response.content[length:], "<i8")
    np.testing.assert_array_equal(predicted, served_cancer.model.predict(X))


async def test_a_body_naming_another_model_is_400_naming_both(client, served_cancer):
    body = oip_body(served_cancer.X.iloc[:1], model_name="dogs", model_version="1")

    response = await client.post("/v2/models/cancer/versions/1/infer", json=body)
    same = await client.post(
        "/v2/models/cancer/versions/1/infer", json=body | {"model_name": "cancer"}
    )

    error = expect_error(response, 400, "model_name")
    assert "'dogs'" in error["error"] and "'cancer'" in error["error"]
    assert same.status_code == 200, same.text


async def test_a_shadow_of_another_version_answers_a_body_naming_the_primarys(served_cancer):
    records: list[InferenceRecord] = []
    config = ServeConfig(on_prediction=records.append)

    def version(v: str) -> Deployment:
        return deploy("cancer", served_cancer.model, config, version=v)

    shadow = Route("cancer@shadow", version("3"), role="shadow")
    served = ServedModel("cancer", routes=[Route("cancer", version("1"))], shadows=[shadow])
    app = create_app(ServedModels([served]), config)
    body = oip_body(served_cancer.X.iloc[:1], model_version="1")

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),  # its shutdown waits for the shadow request
        httpx.AsyncClient(transport=transport, base_url="http://s") as c,
    ):
        response = await c.post("/v2/models/cancer/infer", json=body)

    assert response.status_code == 200, response.text
    assert sorted((r.role, r.version, r.status) for r in records) == [
        ("primary", "1", 200),
        ("shadow", "3", 200),
    ]


# --- /predict -------------------------------------------------------------------------------


async def test_predict_accepts_the_mlflow_formats_and_instances(client, served_cancer):
    X = served_cancer.X.iloc[:4]
    expected = served_cancer.model.predict(X).tolist()
    rows = X.to_dict(orient="records")
    bodies = [
        split_body(X),
        {"instances": rows},
        {"dataframe_records": rows},
        {"inputs": {c: X[c].tolist() for c in X.columns}},
    ]

    for body in bodies:
        response = await client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["predictions"] == expected
        assert (answer["model"], answer["version"]) == ("cancer", "1")
        assert answer["request_id"] == response.headers["x-request-id"]
        assert len(answer["request_id"]) == 32


async def test_64_concurrent_http_requests_give_the_unbatched_predictions(client, served_cancer):
    X = served_cancer.X.iloc[:64]
    rows = X.to_dict(orient="records")

    responses = await asyncio.gather(
        *(client.post("/predict", json={"instances": [row]}) for row in rows)
    )

    got = [r.json()["predictions"][0] for r in responses]
    assert got == [served_cancer.model.predict(X.iloc[[i]])[0] for i in range(64)]
    metrics = (await client.get("/metrics")).text
    assert 'segue_batch_rows_count{model="cancer",version="1"}' in metrics


HTTP_ERRORS = [
    # (case, body bytes, status, field)
    ("empty", b"", 400, None),
    ("not json", b"{nope", 400, None),
    ("not an object", b"[]", 400, None),
    ("no format", b'{"rows": []}', 400, "rows"),
    ("only unknown columns", json.dumps({"instances": [{"color": 1}]}).encode(), 422,
     "mean radius"),
    ("missing column", json.dumps({"instances": [{"mean radius": 1.0}]}).encode(), 422,
     "mean texture"),
    ("wrong type", None, 422, "mean radius"),
    ("null", None, 422, "mean area"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "payload", "status", "field"), HTTP_ERRORS)
async def test_predict_errors_are_json_4xx_naming_the_field(
    client, served_cancer, case, payload, status, field
):
    if payload is None:
        row = served_cancer.X.iloc[0].to_dict()
        row[field] = "big" if case == "wrong type" else None
        payload = json.dumps({"instances": [row]}).encode()

    response = await client.post("/predict", content=payload)

    expect_error(response, status, field)


async def test_oip_errors_are_json_4xx(client, served_cancer):
    body = oip_body(served_cancer.X.iloc[:1])
    body["inputs"][0]["data"] = ["big"]

    expect_error(await client.post("/v2/models/cancer/infer", json=body), 422, "mean radius")
    expect_error(await client.post("/v2/models/cancer/infer", content=b"{"), 400)


@pytest.mark.parametrize("serve_config", [ServeConfig(max_body_bytes=1000)])
async def test_too_large_bodies_get_413(client, served_cancer):
    body = split_body(served_cancer.X.iloc[:50])

    response = await client.post("/predict", json=body)

    expect_error(response, 413)


async def test_unknown_routes_and_methods_answer_json(client):
    expect_error(await client.get("/nowhere"), 404)
    expect_error(await client.get("/predict"), 405)


# --- a failing model ------------------------------------------------------------------------


class Broken:
    def predict(self, data):
        raise ValueError("weights are corrupt")

    def predict_proba(self, data):
        raise ValueError("weights are corrupt")


async def test_a_failing_model_gives_500_with_the_request_id_and_counts_it(
    app_serving, served_cancer, caplog
):
    config = ServeConfig()
    model = served_cancer.model
    broken = LoadedModel(Broken(), model.manifest, "broken", model.version)
    app = app_serving(config, broken)
    transport = httpx.ASGITransport(app=app)
    caplog.set_level(logging.ERROR, logger="segue.serving")

    async with httpx.AsyncClient(transport=transport, base_url="http://segue") as client:
        response = await client.post(
            "/predict", json=split_body(served_cancer.X.iloc[:2]), headers={"x-request-id": "r-1"}
        )
        metrics = (await client.get("/metrics")).text
    await app.state.models.drain()

    body = expect_error(response, 500)
    assert body["request_id"] == "r-1"
    assert "ValueError: weights are corrupt" in body["error"]
    assert 'segue_model_errors_total{model="cancer",version="1"} 1.0' in metrics
    assert 'segue_requests_total{model="cancer",status="500",version="1"} 1.0' in metrics
    assert any("r-1" in r.getMessage() for r in caplog.records)


# --- metrics, docs ----------------------------------------------------------------------------


async def test_metrics_count_requests_by_model_version_and_status(client, served_cancer):
    await client.post("/predict", json=split_body(served_cancer.X.iloc[:3]))
    await client.post("/predict", content=b"{")
    await client.post("/v2/models/nope/infer", json={})

    response = await client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'segue_requests_total{model="cancer",status="200",version="1"} 1.0' in text
    assert 'segue_requests_total{model="cancer",status="400",version="1"} 1.0' in text
    assert 'segue_requests_total{model="",status="404",version=""} 1.0' in text
    assert 'segue_request_duration_seconds_bucket{le="0.5",model="cancer",status="200"' in text
    assert 'segue_batch_rows_sum{model="cancer",version="1"} 3.0' in text
    assert 'segue_requests_in_flight{model="cancer"} 0.0' in text
    assert 'segue_model_load_seconds{model="cancer",version="1"}' in text


async def test_openapi_and_docs_show_the_signature(client, served_cancer):
    spec = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    predict = spec["paths"]["/predict"]["post"]
    content = predict["requestBody"]["content"]["application/json"]
    record = spec["components"]["schemas"]["CancerRecord"]
    assert set(record["properties"]) == set(served_cancer.X.columns)
    assert record["properties"]["mean radius"]["type"] == "number"
    assert content["examples"]["dataframe_split"]["value"]["dataframe_split"]["columns"][0] == (
        "mean radius"
    )
    infer = spec["paths"]["/v2/models/cancer/infer"]["post"]
    assert "example" in infer["requestBody"]["content"]["application/json"]["examples"]
    tensor = spec["components"]["schemas"]["CancerInputTensor"]
    named = [variant["properties"]["name"].get("const") for variant in tensor["oneOf"]]
    assert "mean radius" in named
    for path in ("/v2/health/ready", "/v2/models/{name}", "/metrics"):
        assert path in spec["paths"]


# --- hooks and shutdown ---------------------------------------------------------------------


async def test_on_prediction_gets_each_request(app_serving, served_cancer):
    seen: list[InferenceRecord] = []
    app = app_serving(ServeConfig(on_prediction=seen.append))
    X = served_cancer.X.iloc[:2]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        ok = await c.post("/predict", json=split_body(X))
        bad = await c.post("/predict", content=b"{")
    await app.state.models.drain()

    first, second = seen
    assert first.request_id == ok.headers["x-request-id"]
    assert (first.model, first.version, first.status, first.n_rows) == ("cancer", "1", 200, 2)
    assert first.inputs == X.to_dict(orient="records")
    assert first.outputs == served_cancer.model.predict(X).tolist()
    assert first.latency_ms > 0 and first.time > 1e9 and first.error is None
    assert (second.status, second.inputs, second.outputs) == (400, [], [])
    assert second.request_id == bad.headers["x-request-id"] and "JSON" in second.error


async def test_on_answer_gets_the_answered_requests_and_on_prediction_the_others(
    app_serving, served_cancer, caplog
):
    answered: list[tuple] = []
    seen: list[InferenceRecord] = []
    app = app_serving(
        ServeConfig(on_prediction=seen.append, on_answer=lambda *a: answered.append(a))
    )
    X = served_cancer.X.iloc[:3]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        ok = await c.post("/predict", json=split_body(X))
        bad = await c.post("/predict", content=b"{")
    await app.state.models.drain()

    ((request_id, arrived, model, version, role, given, output, latency_ms),) = answered
    assert request_id == ok.headers["x-request-id"] and arrived > 1e9 and latency_ms > 0
    assert (model, version, role, given.n_rows) == ("cancer", "1", "primary", 3)
    assert given.records() == X.to_dict(orient="records")
    assert output.tolist() == ok.json()["predictions"] == served_cancer.model.predict(X).tolist()
    (refused,) = seen  # the request that failed, as a record
    assert refused.request_id == bad.headers["x-request-id"] and refused.status == 400


async def test_a_request_larger_than_max_batch_size_is_answered_whole_in_order(
    app_serving, served_cancer
):
    seen: list[InferenceRecord] = []
    app = app_serving(ServeConfig(max_batch_size=4, on_prediction=seen.append))
    X = served_cancer.X.iloc[:10]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        response = await c.post("/predict", json=split_body(X))
    await app.state.models.drain()

    assert response.status_code == 200
    assert response.json()["predictions"] == served_cancer.model.predict(X).tolist()
    (record,) = seen  # one request, one record of all its rows
    assert record.inputs == X.to_dict(orient="records") and len(record.outputs) == 10


@pytest.mark.parametrize("hook", ["on_prediction", "on_answer"])
async def test_a_failing_hook_does_not_fail_the_request(app_serving, served_cancer, caplog, hook):
    def failing(*values: object) -> None:
        raise RuntimeError("disk full")

    app = app_serving(ServeConfig(**{hook: failing}))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        response = await c.post("/predict", json=split_body(served_cancer.X.iloc[:1]))
    await app.state.models.drain()

    assert response.status_code == 200
    assert f"{hook} hook failed" in caplog.text


async def test_shutdown_drains_and_runs_the_hooks(app_serving, served_cancer):
    calls: list[str] = []

    async def flush() -> None:
        calls.append("async")

    app = app_serving(ServeConfig(on_shutdown=(lambda: calls.append("sync"), flush)))
    transport = httpx.ASGITransport(app=app)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://s") as c,
    ):
        assert (await c.post("/predict", json=split_body(served_cancer.X.iloc[:1]))).is_success
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as c:
        after = await c.post("/predict", json=split_body(served_cancer.X.iloc[:1]))

    assert calls == ["sync", "async"]
    expect_error(after, 503)


# --- no input gives a 5xx -------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def test_no_body_gives_a_5xx(app_serving, served_cancer):
    columns = list(served_cancer.X.columns[:3])
    near = st.fixed_dictionaries(
        {
            "instances": st.lists(
                st.dictionaries(st.sampled_from([*columns, "x"]), JSON, max_size=3), max_size=2
            )
        }
    )
    tensor = st.fixed_dictionaries(
        {"name": st.sampled_from(columns), "shape": JSON, "datatype": JSON},
        optional={"data": JSON, "parameters": JSON},
    )
    infer = st.fixed_dictionaries(
        {"inputs": st.lists(tensor, max_size=2)},
        optional={"model_name": JSON, "model_version": JSON, "outputs": JSON, "parameters": JSON},
    )
    bodies = st.one_of(
        st.binary(max_size=100),
        JSON.map(lambda v: json.dumps(v).encode()),
        near.map(lambda v: json.dumps(v).encode()),
        infer.map(lambda v: json.dumps(v).encode()),
    )
    paths = st.sampled_from(["/predict", "/v2/models/cancer/infer"])
    # The binary tensor data extension's header, with and without bytes after the JSON.
    headers = st.one_of(
        st.just({}),
        st.integers(-1, 120).map(lambda n: {"inference-header-content-length": str(n)}),
    )
    app = app_serving(ServeConfig(max_body_bytes=512))

    with start_blocking_portal(backend="asyncio") as portal:
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://segue")

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(payload=bodies, path=paths, headers=headers)
        def check(payload: bytes, path: str, headers: dict[str, str]) -> None:
            response = portal.call(partial(client.post, path, content=payload, headers=headers))
            assert 400 <= response.status_code < 500, response.text
            assert response.json()["request_id"] == response.headers["x-request-id"]

        check()
        portal.call(client.aclose)
        portal.call(app.state.models.drain)
