"""The Python client against a small stand-in server (Starlette under uvicorn, in a thread)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import segue
from segue.errors import InvalidArgument, ServerError
from segue.serving.client import Client, Prediction


class Stub:
    """What the stand-in server saw, and how it should behave."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []
        self.peers: list[tuple[str, int]] = []
        self.ready = True


def _json(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def build_app(stub: Stub) -> Starlette:
    async def predict(request: Request) -> Response:
        body = orjson.loads(await request.body())
        stub.bodies.append((request.url.path, body))
        stub.peers.append((request.client.host, request.client.port))
        if "dataframe_split" in body:
            split = body["dataframe_split"]
            rows = [dict(zip(split["columns"], row, strict=True)) for row in split["data"]]
        else:
            rows = body["instances"]
        n = len(stub.bodies)
        for row in rows:
            if "sleep" in row:
                await asyncio.sleep(row["sleep"])
            if row.get("explode"):
                return _json({"error": {"message": "model crashed", "request_id": f"req-{n}"}}, 500)
            if row.get("teapot"):
                return PlainTextResponse("upstream exploded", 503, {"x-request-id": f"req-{n}"})
            if not isinstance(row.get("age"), int):
                message = f"input: column 'age' expected int64, got {type(row.get('age')).__name__}"
                error = {"message": message, "field": "age", "request_id": f"req-{n}"}
                return _json({"error": error}, 422)
        return _json(
            {
                "predictions": [int(row["age"] > 40) for row in rows],
                "model": "churn",
                "version": "3",
                "request_id": f"req-{n}",
            }
        )

    async def feedback(request: Request) -> Response:
        body = orjson.loads(await request.body())
        stub.bodies.append((request.url.path, body))
        if body["request_id"] == "nope":
            detail = [{"loc": ["body", "request_id"], "msg": "unknown request id"}]
            return _json({"detail": detail}, 404)
        return _json({"ok": True})

    async def ready(request: Request) -> Response:
        return _json({"ready": stub.ready}, 200 if stub.ready else 503)

    async def metadata(request: Request) -> Response:
        name = request.path_params["name"]
        if name != "churn":
            return _json({"error": f"model {name!r} is not served here"}, 404)
        return _json({"name": "churn", "versions": ["3"], "platform": "segue"})

    async def infer(request: Request) -> Response:
        body = orjson.loads(await request.body())
        stub.bodies.append((request.url.path, body))
        rows = body["inputs"][0]["shape"][0]
        outputs = [{"name": "predict", "shape": [rows], "datatype": "INT64", "data": [0] * rows}]
        return _json({"model_name": request.path_params["name"], "id": "i1", "outputs": outputs})

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/feedback", feedback, methods=["POST"]),
            Route("/v2/health/ready", ready),
            Route("/v2/models/{name}", metadata),
            Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Stub]]:
    stub = Stub()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(build_app(stub), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the stand-in server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", stub
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def stub(served) -> Stub:
    served[1].__init__()
    return served[1]


@pytest.fixture
def client(served, stub) -> Iterator[Client]:
    with Client(served[0] + "/", model="churn") as client:
        yield client


def test_predict_a_dataframe(client, stub):
    frame = pd.DataFrame({"age": [31, 45], "plan": ["basic", "pro"], "score": [0.5, np.nan]})

    answer = client.predict(frame)

    assert answer == Prediction(predictions=[0, 1], version="3", model="churn", request_id="req-1")
    assert stub.bodies == [
        (
            "/predict",
            {
                "dataframe_split": {
                    "columns": ["age", "plan", "score"],
                    "data": [[31, "basic", 0.5], [45, "pro", None]],
                }
            },
        )
    ]


def test_a_numeric_dataframe_is_sent_as_one_block(client, stub):
    frame = pd.DataFrame({"age": np.array([50, 20], dtype=np.int64), "tenure": [3, 4]})

    assert client.predict(frame).predictions == [1, 0]
    assert stub.bodies[0][1] == {
        "dataframe_split": {"columns": ["age", "tenure"], "data": [[50, 3], [20, 4]]}
    }


@pytest.mark.parametrize(
    ("data", "sent"),
    [
        ([{"age": 41}, {"age": 12}], {"instances": [{"age": 41}, {"age": 12}]}),
        ({"age": 41, "plan": "pro"}, {"instances": [{"age": 41, "plan": "pro"}]}),
        (
            {"age": [41, 12], "plan": np.array(["a", "b"])},
            {"dataframe_split": {"columns": ["age", "plan"], "data": [[41, "a"], [12, "b"]]}},
        ),
        ([{"age": np.int64(41)}], {"instances": [{"age": 41}]}),
    ],
)
def test_predict_records_and_dicts(client, stub, data, sent):
    assert client.predict(data).request_id == "req-1"
    assert stub.bodies == [("/predict", sent)]


def test_connections_are_kept_alive(client, stub):
    for _ in range(5):
        client.predict([{"age": 50}])

    assert len(set(stub.peers)) == 1


def test_a_rejected_request_is_invalid_argument(client):
    with pytest.raises(InvalidArgument) as caught:
        client.predict([{"age": "old"}])

    error = caught.value
    assert str(error) == (
        "input: column 'age' expected int64, got str (HTTP 422 from POST /predict)"
    )
    assert (error.status_code, error.field, error.request_id) == (422, "age", "req-1")


def test_fastapi_style_errors_name_the_field(client, stub):
    with pytest.raises(InvalidArgument) as caught:
        client.feedback("nope", 1)

    assert str(caught.value) == "request_id: unknown request id (HTTP 404 from POST /feedback)"
    assert caught.value.field == "request_id"


def test_a_server_failure_carries_the_request_id(client):
    with pytest.raises(ServerError) as caught:
        client.predict([{"age": 1, "explode": True}])

    assert caught.value.request_id == "req-1"
    assert caught.value.status_code == 500
    assert str(caught.value) == (
        "the server failed on POST /predict (HTTP 500): model crashed (request id req-1)"
    )
    assert isinstance(caught.value, segue.SegueError)


def test_a_failure_without_a_json_body(client):
    with pytest.raises(ServerError, match=r"HTTP 503.*upstream exploded") as caught:
        client.predict([{"age": 1, "teapot": True}])

    assert caught.value.request_id == "req-1"  # from the x-request-id header


def test_feedback(client, stub):
    assert client.feedback("req-9", {"churned": True}) is None
    assert stub.bodies == [("/feedback", {"request_id": "req-9", "label": {"churned": True}})]


def test_health(client, stub):
    assert client.health() is True
    stub.ready = False
    assert client.health() is False


def test_metadata(client, served):
    assert client.metadata() == {"name": "churn", "versions": ["3"], "platform": "segue"}
    assert client.metadata("churn")["versions"] == ["3"]
    with pytest.raises(InvalidArgument, match="model 'fraud' is not served here"):
        client.metadata("fraud")
    with Client(served[0]) as anonymous, pytest.raises(InvalidArgument, match="no model name"):
        anonymous.metadata()


def test_infer(client, stub):
    frame = pd.DataFrame({"age": [31, 45], "plan": ["basic", "pro"], "score": [0.5, 1.5]})

    answer = client.infer(frame)

    assert answer["outputs"][0]["data"] == [0, 0]
    assert answer["model_name"] == "churn"
    assert stub.bodies[0] == (
        "/v2/models/churn/infer",
        {
            "inputs": [
                {"name": "age", "shape": [2], "datatype": "INT64", "data": [31, 45]},
                {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["basic", "pro"]},
                {"name": "score", "shape": [2], "datatype": "FP64", "data": [0.5, 1.5]},
            ]
        },
    )
    request = {"id": "x", "inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP32"}]}
    client.infer(request, model="other")
    client.infer(np.zeros((3, 2), dtype=np.float32))
    assert stub.bodies[1] == ("/v2/models/other/infer", request)
    assert stub.bodies[2][1]["inputs"] == [
        {"name": "input-0", "shape": [3, 2], "datatype": "FP32", "data": [0.0] * 6}
    ]


def test_bad_inputs_are_refused_before_sending(client, stub):
    with pytest.raises(InvalidArgument, match="got str"):
        client.predict("age=3")
    with pytest.raises(InvalidArgument, match="got int"):
        client.infer(3)
    assert stub.bodies == []


def test_an_unreachable_server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now

    with Client(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(ServerError, match=f"cannot reach the Segue server at .*:{port}"):
            client.predict([{"age": 1}])
        with pytest.raises(ServerError, match="cannot reach"):
            client.health()


def test_a_slow_answer_times_out(served):
    with (
        Client(served[0], timeout=0.2) as client,
        pytest.raises(ServerError, match=r"/predict: no answer within 0.2s"),
    ):
        client.predict([{"age": 1, "sleep": 2}])


def test_the_facade_exports_the_client():
    assert segue.Client is Client
    assert repr(Client("http://localhost:8000/")) == "<segue.Client http://localhost:8000>"
