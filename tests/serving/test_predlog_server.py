"""The server's prediction and feedback logs: POST /feedback, and real `segue serve` processes
stopped with SIGTERM (nothing lost) and SIGKILL (at most one flush interval lost)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import segue
from segue.monitoring.readers import read_feedback, read_predictions
from segue.serving.config import Feedback, ServeConfig
from segue.serving.recorder import RecentRequests, Recorder

ROOT = Path(segue.__file__).resolve().parents[1]


# --- POST /feedback (in-process) ------------------------------------------------------------


@pytest.fixture
def feedback_app(app_serving):
    received: list[Feedback] = []
    return app_serving(ServeConfig(on_feedback=received.append)), received


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_feedback_is_accepted_one_or_many(feedback_app):
    app, received = feedback_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        one = await c.post("/feedback", json={"request_id": "r1", "label": 1})
        many = await c.post(
            "/feedback",
            json=[
                {"request_id": "r2", "label": {"churned": True}},
                {"request_id": "r3", "label": None, "model": "cancer"},
            ],
        )

    assert (one.status_code, one.json()) == (202, {"accepted": 1})
    assert (many.status_code, many.json()) == (202, {"accepted": 2})
    assert [(f.model, f.request_id, f.label) for f in received] == [
        ("cancer", "r1", 1),
        ("cancer", "r2", {"churned": True}),
        ("cancer", "r3", None),
    ]
    assert all(f.time > 1e9 for f in received)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "status", "field", "says"),
    [
        (b"{", 400, None, "not valid JSON"),
        (b"", 400, None, "empty"),
        (b"[]", 400, None, "non-empty array"),
        (b"3", 400, None, "non-empty array"),
        (b'{"label": 1}', 400, "request_id", "request_id: expected"),
        (b'{"request_id": 5, "label": 1}', 400, "request_id", "got an integer"),
        (b'{"request_id": "", "label": 1}', 400, "request_id", "1 to 128"),
        (b'{"request_id": "r1"}', 400, "label", "label: missing"),
        (b'{"request_id": "r1", "label": 1, "score": 2}', 400, "score", "unknown key"),
        (b'[{"request_id": "r1", "label": 1}, {"request_id": "r2"}]', 400, "label", "[1].label"),
        (b'[{"request_id": "r1", "label": 1}, 7]', 400, None, "[1].: expected an object"),
        (b'{"request_id": "r1", "label": 1, "model": 3}', 400, "model", "model: expected"),
        (b'{"request_id": "r1", "label": 1, "model": "nope"}', 404, "model", "'nope'"),
    ],
)
async def test_malformed_feedback_is_refused_naming_the_field(
    feedback_app, body, status, field, says
):
    app, received = feedback_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        response = await c.post("/feedback", content=body)

    assert response.status_code == status, response.text
    error = response.json()
    assert error["field"] == field and says in error["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert received == []  # nothing from a refused request, not even its good items


@pytest.mark.anyio
async def test_without_a_feedback_log_there_is_no_feedback_route(app_serving):
    app = app_serving(ServeConfig())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        response = await c.post("/feedback", json={"request_id": "r1", "label": 1})
        docs = (await c.get("/openapi.json")).json()

    assert response.status_code == 404
    assert "/feedback" not in docs["paths"]


@pytest.mark.anyio
async def test_feedback_is_in_the_docs(feedback_app):
    app, _ = feedback_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        docs = (await c.get("/openapi.json")).json()

    operation = docs["paths"]["/feedback"]["post"]
    assert "202" in operation["responses"]
    assert "oneOf" in operation["requestBody"]["content"]["application/json"]["schema"]


# --- POST /feedback checked against the predictions it labels ------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def recorded(app_serving, served_cancer, tmp_path):
    """An app whose Recorder logs predictions and checks labels; a short memory of 3."""
    clock = Clock(time.time())
    recorder = Recorder(str(tmp_path / "artifacts"), ["cancer"], recent=3, clock=clock)
    config = ServeConfig(
        on_prediction=recorder.record_prediction,
        on_feedback=recorder.record_feedback,
        check_feedback=recorder.check_feedback,
    )
    rows = served_cancer.X.to_dict(orient="records")
    return app_serving(config), recorder, rows, clock


async def _predict(c: httpx.AsyncClient, rows: list[dict[str, Any]]) -> str:
    response = await c.post("/predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


@pytest.mark.anyio
async def test_labels_must_fit_the_rows_of_their_prediction(recorded):
    app, recorder, rows, _ = recorded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        three = await _predict(c, rows[:3])
        one = await _predict(c, rows[3:4])
        single = await c.post("/feedback", json={"request_id": three, "label": 1})
        short = await c.post("/feedback", json={"request_id": three, "label": [1, 0]})
        per_row = await c.post("/feedback", json={"request_id": three, "label": [1, 0, 1]})
        scalar = await c.post("/feedback", json={"request_id": one, "label": 0})
        listed = await c.post("/feedback", json={"request_id": one, "label": [0]})
        batch = await c.post(
            "/feedback",
            json=[{"request_id": one, "label": 1}, {"request_id": three, "label": 1}],
        )
        await app.state.models.drain()

    assert single.status_code == 409 and single.json()["field"] == "label"
    assert f"request {three!r} predicted 3 rows; send a list of 3 labels" in single.json()["error"]
    assert "got an integer" in single.json()["error"]
    assert short.status_code == 409 and "got 2" in short.json()["error"]
    assert batch.status_code == 409 and batch.json()["error"].startswith("[1].label: ")
    assert [r.status_code for r in (per_row, scalar, listed)] == [202, 202, 202]
    recorder.close()
    labels = read_feedback(recorder.artifact_uri, "cancer")
    assert labels["label"].tolist() == [[1, 0, 1], 0, [0]]  # the refused batch wrote nothing


@pytest.mark.anyio
async def test_unknown_and_failed_request_ids_are_refused(recorded):
    app, recorder, _, _ = recorded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        failed = await c.post("/predict", json={"instances": [{"nope": 1}]})
        unknown = await c.post("/feedback", json={"request_id": "never-answered", "label": 1})
        of_failed = await c.post(
            "/feedback", json={"request_id": failed.headers["x-request-id"], "label": 1}
        )
        await app.state.models.drain()

    assert failed.status_code == 422
    assert unknown.status_code == 404 and unknown.json()["field"] == "request_id"
    assert "no prediction of cancer has the id 'never-answered'" in unknown.json()["error"]
    assert of_failed.status_code == 409 and "there is no prediction to label" in of_failed.text
    recorder.close()
    assert read_feedback(recorder.artifact_uri, "cancer").empty


@pytest.mark.anyio
async def test_ids_beyond_the_recent_map_are_found_in_the_prediction_log(recorded):
    app, recorder, rows, clock = recorded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        ids = [await _predict(c, rows[i : i + 2]) for i in range(0, 10, 2)]
        recorder.predictions.flush()  # what another worker, or this one before, logged
        assert len(recorder.recent) == 3 and recorder.recent.get(ids[0]) is None
        old = await c.post("/feedback", json={"request_id": ids[0], "label": [1, 0]})
        old_single = await c.post("/feedback", json={"request_id": ids[0], "label": 1})
        clock.now += 31 * 86_400  # past the 30-day lookback
        expired = await c.post("/feedback", json={"request_id": ids[0], "label": [1, 0]})
        await app.state.models.drain()

    assert old.status_code == 202, old.text
    assert old_single.status_code == 409 and "predicted 2 rows" in old_single.json()["error"]
    assert expired.status_code == 404 and "last 30 days" in expired.json()["error"]


@pytest.mark.anyio
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_feedback_that_is_not_json_is_refused(feedback_app, content_type):
    app, received = feedback_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        response = await c.post(
            "/feedback",
            content=b'{"request_id": "r1", "label": 1}',
            headers={"content-type": content_type},
        )
        typed = await c.post(
            "/feedback",
            content=b'{"request_id": "r1", "label": 1}',
            headers={"content-type": "application/json; charset=utf-8"},
        )

    assert response.status_code == 415
    assert response.json()["field"] == "content-type"
    assert f"content-type {content_type!r} is not JSON" in response.json()["error"]
    assert typed.status_code == 202 and len(received) == 1


def test_the_recent_map_forgets_the_oldest_first():
    recent = RecentRequests(2)
    for request_id in ("a", "b", "c"):
        recent.add(request_id, "churn", 1, 200)
    assert recent.get("a") is None and recent.get("c") == ("churn", 1, 200) and len(recent) == 2


# --- real servers ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(env: dict[str, str], cwd: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A `segue serve` process, ready; killed at the end if the test left it running."""
    port = _free_port()
    environ = {**os.environ, **env}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    command = [sys.executable, "-c", "from segue.cli import main; main()", "serve", *args]
    command += ["--port", str(port)]
    process = subprocess.Popen(
        command, env=environ, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"segue serve exited early: {process.communicate()[1]}")
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "segue serve did not become ready"
            time.sleep(0.05)
        yield base, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def _row(k: int) -> list[dict[str, Any]]:
    return [{"x": float(k)}]


@pytest.mark.slow
def test_sigterm_writes_every_answered_request_and_feedback(echo_store, tmp_path):
    # A flush interval longer than the test: only the shutdown can have written the records.
    with serving(echo_store, tmp_path, "models:/echo/1", "--log-flush-s", "60") as (base, server):
        with segue.Client(base) as client:
            answers = [client.predict(_row(k)) for k in range(40)]
            client.feedback(answers[0].request_id, label=1)
            client.feedback(answers[1].request_id, label={"churned": True})
        with httpx.Client(base_url=base) as http:
            refused = http.post("/predict", json={"instances": [{"y": 1}]})
            many = http.post(
                "/feedback", json=[{"request_id": a.request_id, "label": 0} for a in answers[2:5]]
            )
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)

    assert server.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
    assert refused.status_code == 422 and many.status_code == 202
    logged = read_predictions(echo_store["SEGUE_ARTIFACT_URI"], "echo").set_index("request_id")
    ids = [a.request_id for a in answers]
    assert set(ids) | {refused.headers["x-request-id"]} <= set(logged.index)
    mine = logged.loc[ids]
    assert set(mine["role"]) == {"primary"} and set(mine["version"]) == {"1"}
    assert mine["outputs"].tolist() == [[float(k)] for k in range(40)]
    assert mine["inputs"].tolist() == [_row(k) for k in range(40)]
    assert logged.loc[refused.headers["x-request-id"], "status"] == 422
    labels = read_feedback(echo_store["SEGUE_ARTIFACT_URI"], "echo").set_index("request_id")
    assert labels.loc[ids[0], "label"] == 1
    assert labels.loc[ids[1], "label"] == {"churned": True}
    assert labels.loc[ids[2:5], "label"].tolist() == [0, 0, 0]
    assert all(a.route == "echo/1" for a in answers)


@pytest.mark.slow
def test_sigkill_loses_nothing_the_flush_interval_has_written(echo_store, tmp_path):
    def logged() -> set[str]:
        return set(read_predictions(echo_store["SEGUE_ARTIFACT_URI"], "echo")["request_id"])

    with serving(echo_store, tmp_path, "models:/echo/1", "--log-flush-s", "0.2") as (
        base,
        server,
    ):
        with httpx.Client(base_url=base) as http:

            def answer() -> str:
                response = http.post("/predict", json={"instances": _row(1)})
                assert response.status_code == 200
                return response.headers["x-request-id"]

            first = {answer() for _ in range(40)}
            # Nothing but the interval's timer writes while the server runs: wait for it (the
            # deadline only turns a hang into a failure).
            deadline = time.monotonic() + 120
            while not first <= logged():
                assert time.monotonic() < deadline, "the prediction log was never flushed"
                time.sleep(0.05)
            for _ in range(40):  # killed with these in memory, or being written
                answer()
        server.kill()
        server.wait(timeout=30)

    after = logged()  # no half-written segment to trip on
    assert first <= after  # what a flush wrote survives the kill
