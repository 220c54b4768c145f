"""The server's prediction and feedback logs: POST /feedback, and real `segue serve` processes
stopped with SIGTERM (nothing lost) and SIGKILL (at most one flush interval lost)."""

from __future__ import annotations

import gc
import signal
import time
from typing import Any

import httpx
import pytest

import segue
from segue.models.specs import Signature, TensorSpec
from segue.monitoring.readers import read_feedback, read_predictions
from segue.registry.service import get_registry
from segue.serving.config import Feedback, ServeConfig
from segue.serving.deployment import Route
from segue.serving.predlog import PredictionRecord
from segue.serving.recorder import Answered, RecentRequests, Recorder, served_signatures

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
                {"request_id": "r2", "label": [1, 0.5]},
                {"request_id": "r3", "label": "churned", "model": "cancer"},
            ],
        )

    assert (one.status_code, one.json()) == (202, {"accepted": 1})
    assert (many.status_code, many.json()) == (202, {"accepted": 2})
    assert [(f.model, f.request_id, f.label) for f in received] == [
        ("cancer", "r1", 1),
        ("cancer", "r2", [1, 0.5]),
        ("cancer", "r3", "churned"),
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
        (b'{"request_id": "r1", "label": null}', 422, "label", "got null"),
        (b'{"request_id": "r1", "label": {}}', 422, "label", "got an object"),
        (b'{"request_id": "r1", "label": []}', 422, "label", "an empty list"),
        (b'{"request_id": "r1", "label": [1, [1]]}', 422, "label[1]", "got an array"),
        (
            b'[{"request_id": "r1", "label": 1}, {"request_id": "r2", "label": [null]}]',
            422,
            "label[0]",
            "[1].label[0]: expected a string, a number or a boolean",
        ),
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


@pytest.fixture(params=["on_answer", "on_prediction"])
def recorded(request, app_serving, served_cancer, tmp_path):
    """An app whose Recorder logs predictions and checks labels against the signature of the
    served version (the cancer classifier, classes 0 and 1); a short memory of 3. Answered
    requests reach it as the server wires it (``on_answer``), or as records."""
    clock = Clock(time.time())
    routes: list[Route] = []  # the app's, once it exists: the recorder is part of its config
    recorder = Recorder(
        str(tmp_path / "artifacts"),
        ["cancer"],
        recent=3,
        clock=clock,
        signatures=served_signatures(routes),
    )
    config = ServeConfig(
        on_prediction=recorder.record_prediction,
        on_answer=recorder.record_answer if request.param == "on_answer" else None,
        on_feedback=recorder.record_feedback,
        check_feedback=recorder.check_feedback,
    )
    rows = served_cancer.X.to_dict(orient="records")
    app = app_serving(config)
    routes.extend(app.state.models.default.routes)
    return app, recorder, rows, clock


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
        ids = [await _predict(c, rows[i : i + 2]) for i in range(0, 14, 2)]
        recorder.predictions.flush()  # what another worker, or this one before, logged
        # 3 a generation: the newer holds the 7th, the older the 4th to the 6th
        assert len(recorder.recent) == 4 and recorder.recent.get(ids[2]) is None
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


def test_the_recent_map_holds_at_least_the_last_capacity_and_forgets_the_oldest_first():
    recent = RecentRequests(3)
    ids = [f"r{i}" for i in range(10)]
    for i, request_id in enumerate(ids):
        recent.add(request_id, Answered("churn", 1, 200, str(i)))
        held = [known for known in ids[: i + 1] if recent.get(known) is not None]
        # never fewer than the last 3, never more than 6, and always the newest ones
        assert held == ids[i + 1 - len(held) : i + 1] and min(i + 1, 3) <= len(held) <= 6
        assert len(recent) == len(held)
    assert recent.get("r9") == Answered("churn", 1, 200, "9") and recent.get("r2") is None


def test_the_recent_map_keeps_a_repeated_id_with_its_newest_answer():
    recent = RecentRequests(3)
    for request_id in ("a", "b", "a", "c", "d"):
        recent.add(request_id, Answered("churn", len(request_id), 200, request_id))
    recent.add("a", Answered("churn", 9, 200, "newest"))

    assert recent.get("a") == Answered("churn", 9, 200, "newest")
    assert len(recent) == 4  # a, b, c, d: "a" counted once in both generations


def test_the_recent_map_holds_answers_the_collector_stops_tracking():
    recent = RecentRequests(3)
    recent.add("a", Answered("churn", 2, 200, "3"))
    recent.add("b", ("churn", 1, 422, "3"))  # as the recorder adds: a plain tuple
    gc.collect()

    assert not any(
        gc.is_tracked(held) for held in (*recent._newer.values(), *recent._older.values())
    )
    assert recent.get("a") == Answered("churn", 2, 200, "3")
    assert type(recent.get("b")) is Answered and recent.get("b").status == 422


# --- POST /feedback: label values against the signature of the version that answered -------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("of", "label", "field", "says", "status"),
    [
        ("one", {}, "label", "label: expected a string, a number or a boolean", 422),
        ("one", None, "label", "got null", 422),
        (
            "one",
            "cat",
            "label",
            "label: expected one of the model's classes (0, 1), got 'cat'",
            409,
        ),
        ("one", True, "label", "got true", 409),  # a bool is not an int class in JSON
        ("one", 2, "label", "got 2", 409),  # well-typed, but not a class: an encoding mistake
        ("one", 0.5, "label", "got 0.5", 409),
        ("one", [[1]], "label[0]", "label[0]: expected a string, a number or a boolean", 422),
        ("one", [None], "label[0]", "got null", 422),
        (
            "three",
            [1, {}, 0],
            "label[1]",
            "label[1]: expected a string, a number or a boolean",
            422,
        ),
        ("three", [1, 0, [1]], "label[2]", "got an array", 422),
        ("three", [1, 0, "1"], "label[2]", "got '1'", 409),  # a string is not an int class
    ],
)
async def test_label_values_must_be_classes_of_the_model(recorded, of, label, field, says, status):
    # A label of the wrong shape is malformed whatever the model (422); a well-shaped value the
    # version that answered cannot predict conflicts with that prediction (409).
    app, recorder, rows, _ = recorded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        ids = {"one": await _predict(c, rows[:1]), "three": await _predict(c, rows[1:4])}
        response = await c.post("/feedback", json={"request_id": ids[of], "label": label})
        await app.state.models.drain()

    assert response.status_code == status, response.text
    error = response.json()
    assert error["field"] == field and error["error"].startswith(f"{field}: ")
    assert says in error["error"]
    recorder.close()
    assert read_feedback(recorder.artifact_uri, "cancer").empty


@pytest.mark.anyio
async def test_a_bad_label_value_in_a_batch_names_the_item_and_the_row(recorded):
    app, recorder, rows, _ = recorded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        one, three = await _predict(c, rows[:1]), await _predict(c, rows[1:4])
        batch = [
            {"request_id": one, "label": 1},
            {"request_id": one, "label": 0},
            {"request_id": three, "label": [1, "cat", 0]},
        ]
        refused = await c.post("/feedback", json=batch)
        # Labels as JSON carries an int class: 1 and 1.0 alike; each row's label its own.
        good = [{"request_id": one, "label": 1.0}, {"request_id": three, "label": [1, 0.0, 1]}]
        accepted = await c.post("/feedback", json=good)
        await app.state.models.drain()

    assert refused.status_code == 409 and refused.json()["field"] == "label[1]"
    assert refused.json()["error"] == (
        "[2].label[1]: expected one of the model's classes (0, 1), got 'cat'"
    )
    assert accepted.status_code == 202, accepted.text
    recorder.close()
    assert read_feedback(recorder.artifact_uri, "cancer")["label"].tolist() == [1.0, [1, 0.0, 1]]


@pytest.mark.anyio
async def test_labels_are_checked_against_the_version_that_answered(
    app_serving, served_cancer, tmp_path
):
    """A request answered by version 2, a regressor (by another worker: found in the log),
    takes a number; one answered by version 1, the classifier serving here, a class. Each
    version's signature is looked up once."""
    classifier = served_cancer.model.signature
    regressor = Signature(classifier.inputs, TensorSpec("float64", (-1,)))
    asked: list[tuple[str, str]] = []

    def signatures(model: str, version: str) -> Signature | None:
        asked.append((model, version))
        return {"1": classifier, "2": regressor}.get(version)

    recorder = Recorder(str(tmp_path / "artifacts"), ["cancer"], signatures=signatures)
    config = ServeConfig(
        on_prediction=recorder.record_prediction,
        on_feedback=recorder.record_feedback,
        check_feedback=recorder.check_feedback,
    )
    app = app_serving(config)
    row = served_cancer.X.iloc[:1].to_dict(orient="records")
    recorder.predictions.append(
        PredictionRecord("by-v2", time.time(), "cancer", "2", "primary", row, [3.5], 1.0, 200)
    )
    recorder.predictions.flush()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        by_v1 = await _predict(c, row)
        number_for_v2 = await c.post("/feedback", json={"request_id": "by-v2", "label": 2.5})
        class_for_v2 = await c.post("/feedback", json={"request_id": "by-v2", "label": "1"})
        number_for_v1 = await c.post("/feedback", json={"request_id": by_v1, "label": 2.5})
        class_for_v1 = await c.post("/feedback", json={"request_id": by_v1, "label": 1})
        await app.state.models.drain()

    assert number_for_v2.status_code == 202, number_for_v2.text
    assert class_for_v2.status_code == 409
    assert "expected a finite number (the model is a regressor), got '1'" in class_for_v2.text
    assert number_for_v1.status_code == 409 and "got 2.5" in number_for_v1.json()["error"]
    assert class_for_v1.status_code == 202
    assert sorted(asked) == [("cancer", "1"), ("cancer", "2")]


def test_served_signatures_come_from_the_routes_then_the_registry(served_cancer, monkeypatch):
    for key, value in served_cancer.env.items():
        monkeypatch.setenv(key, value)
    # Loading, so not serving version 1 now (as after a swap to another version).
    loading = Route("cancer@champion", None, uri="models:/cancer@champion")
    folder = Route("local", None, uri="/no/such/folder")
    signature = served_signatures([loading, folder], get_registry())

    assert signature("cancer", "1") == served_cancer.model.signature
    assert signature("cancer", "7") is None  # never registered
    assert signature("cancer", "3f2a9c1") is None  # a run's short id: only its route knows it
    assert served_signatures([folder], get_registry())("cancer", "1") is None


# --- real servers ---------------------------------------------------------------------------


def _row(k: int) -> list[dict[str, Any]]:
    return [{"x": float(k)}]


@pytest.mark.slow
def test_sigterm_writes_every_answered_request_and_feedback(echo_store, tmp_path, segue_serve):
    # A flush interval longer than the test: only the shutdown can have written the records.
    serve = segue_serve(echo_store, tmp_path, "models:/echo/1", "--log-flush-s", "60")
    with serve as (base, server):
        with segue.Client(base) as client:
            answers = [client.predict(_row(k)) for k in range(40)]
            client.feedback(answers[0].request_id, label=1)
            client.feedback(answers[1].request_id, label=2.5)  # echo is a regressor
        with httpx.Client(timeout=60, base_url=base) as http:
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
    assert labels.loc[ids[1], "label"] == 2.5
    assert labels.loc[ids[2:5], "label"].tolist() == [0, 0, 0]
    assert all(a.route == "echo/1" for a in answers)


@pytest.mark.slow
def test_sigkill_loses_nothing_the_flush_interval_has_written(echo_store, tmp_path, segue_serve):
    def logged() -> set[str]:
        return set(read_predictions(echo_store["SEGUE_ARTIFACT_URI"], "echo")["request_id"])

    serve = segue_serve(echo_store, tmp_path, "models:/echo/1", "--log-flush-s", "0.2")
    with serve as (base, server):
        with httpx.Client(timeout=60, base_url=base) as http:

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
