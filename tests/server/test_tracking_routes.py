"""``segue server``'s tracking routes over real HTTP: bad bodies are a 422 naming the field,
what the store refuses keeps its status, and metric points travel as columns."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

RUN = {
    "experiment_name": "exp",
    "name": "run",
    "status": "RUNNING",
    "start_time": 1,
    "end_time": None,
    "heartbeat_at": 1,
    "user": "ada",
    "host": "box",
    "python_version": "3.11.9",
}


@pytest.fixture
def api(start_server, sqlite_template: Path, tmp_path: Path) -> Iterator[httpx.Client]:
    """A client of a ``--no-auth`` server over a fresh SQLite store, at ``/api/v1``."""
    db = tmp_path / "segue.db"
    shutil.copyfile(sqlite_template, db)
    server = start_server(f"sqlite:///{db}", no_auth=True)
    with httpx.Client(timeout=60, base_url=f"{server.url}/api/v1") as client:
        yield client


@pytest.fixture
def run_id(api: httpx.Client) -> str:
    exp = api.post("/experiments", json={"name": "exp", "get_or_create": True}).json()
    run_id = uuid.uuid4().hex
    answer = api.post("/runs", json={"info": {**RUN, "id": run_id, "experiment_id": exp["id"]}})
    assert answer.status_code == 201, answer.text
    return run_id


POINT = "metrics.0.points.0"  # the first point of the first key


def _points(key: str, n: int, value: Any = 0.5, step: Any = None) -> dict[str, Any]:
    return {"key": key, "points": [[value, i if step is None else step, 1] for i in range(n)]}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/experiments", {"name": ""}, "name"),
        ("POST", "/experiments", {"name": "x" * 257}, "name"),
        ("POST", "/experiments", {"name": " \t "}, "name"),
        ("POST", "/experiments", {"name": "x", "owner": "me"}, "owner"),
        ("POST", "/experiments", {"name": 42}, "name"),
        ("POST", "/experiments", {"name": "a\x00b"}, "name"),  # no database stores a NUL
        ("POST", "/experiments", {"name": "\ud800"}, "name"),  # nor a lone surrogate
        ("POST", "/runs/{run}/batch", {"tags": {"t": "\x00"}}, "tags.t"),
        ("POST", "/runs/search", {"filter": "metrics.acc >"}, "filter"),
        ("POST", "/runs/search", {"order_by": ["metrics.acc DOWN"]}, "order_by"),
        ("POST", "/runs/search", {"max_results": 0}, "max_results"),
        ("POST", "/runs/search", {"max_results": 50_001}, "max_results"),
        ("POST", "/runs/heartbeat", {"run_ids": ["a/b"], "now": 1}, "run_ids.0"),
        ("POST", "/runs/reap", {"now": 1, "timeout_ms": -1}, "timeout_ms"),
        ("POST", "/runs/{run}/status", {"status": "DONE", "end_time": 1}, "status"),
        ("POST", "/runs/{run}/lifecycle", {"stage": "gone"}, "stage"),
        ("POST", "/runs/{run}/batch", {"params": {"": "1"}}, "params."),
        ("POST", "/runs/{run}/batch", {"params": {"p": "v" * 6001}}, "params.p"),
        ("POST", "/runs/{run}/batch", {"metrics": [{"key": "m", "points": [[0.5, 1]]}]}, POINT),
        ("POST", "/runs/{run}/batch", {"metrics": [_points("m", 1, step=2**63)]}, POINT + ".1"),
        ("POST", "/runs/{run}/batch", {"metrics": [_points("m", 1, value="x")]}, POINT + ".0"),
        ("POST", "/runs/{run}/artifacts", {"entries": [{"path": "a", "digest": "d"}]}, None),
        ("POST", "/runs/{run}/datasets", {"name": "d", "context": "train"}, "dataset"),
        (
            "POST",
            "/runs/{run}/datasets",
            {
                "name": "d",
                "context": "train",
                "dataset": {
                    "digest": "1",
                    "n_rows": 1,
                    "n_columns": 1,
                    "schema": [{"name": "\ud800"}],
                    "profile": {},
                },
            },
            "dataset",
        ),
        ("POST", "/run-batches", {"ops": []}, "ops"),
        ("POST", "/run-batches", {"ops": [{"op": "close", "run_id": "a"}]}, "ops.0"),
        (
            "POST",
            "/run-batches",
            {"ops": [{"op": "end", "run_id": "a", "status": "RUNNING", "end_time": 1}]},
            "ops.0.end.status",
        ),
        ("PUT", "/environments/abc", {"packages": {"numpy": 2}}, "packages.numpy"),
        ("PUT", "/environments/a-b", {"packages": {}}, "path.digest"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    api: httpx.Client, run_id: str, method: str, path: str, body: Any, field: str | None
) -> None:
    # Escaped JSON text, as a client may send lone surrogates that way.
    content = json.dumps(body)
    headers = {"content-type": "application/json"}
    answer = api.request(method, path.format(run=run_id), content=content, headers=headers)

    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["type"] == "InvalidArgument"
    assert error["field"], error
    assert error["field"].startswith(field or ""), error


def test_store_refusals_keep_their_status(api: httpx.Client, run_id: str) -> None:
    assert api.post("/experiments", json={"name": "exp"}).status_code == 409
    assert api.get("/experiments/nope").json()["type"] == "NotFound"
    assert api.get(f"/runs/{'f' * 32}").status_code == 404
    assert api.get("/run-prefixes/abc").status_code == 422  # too short
    assert api.post(f"/runs/{run_id}/batch", json={"params": {"lr": "0.1"}}).status_code == 204
    changed = api.post(f"/runs/{run_id}/batch", json={"params": {"lr": "0.2"}})
    assert (changed.status_code, changed.json()["type"]) == (409, "Conflict")


def test_metric_points_travel_grouped_by_key(api: httpx.Client, run_id: str) -> None:
    body = {
        "metrics": [
            {"key": "loss", "points": [[1.0, 0, 1], ["NaN", 1, 1], ["-Infinity", 2, 1]]},
            {"key": "acc", "points": [[0.5, 7, 1]]},
        ]
    }
    assert api.post(f"/runs/{run_id}/batch", json=body).status_code == 204

    history = api.get(f"/runs/{run_id}/metric-history", params={"key": "loss"}).json()
    run = api.get(f"/runs/{run_id}").json()

    assert history == {
        "key": "loss",
        "value": [1.0, "NaN", "-Infinity"],
        "step": [0, 1, 2],
        "timestamp": [1, 1, 1],
    }
    assert run["data"]["metrics"]["acc"] == {"key": "acc", "value": 0.5, "step": 7, "timestamp": 1}


def test_an_experiment_is_created_once(api: httpx.Client) -> None:
    created = api.post("/experiments", json={"name": "churn", "description": "who leaves"})
    again = api.post("/experiments", json={"name": "churn", "get_or_create": True})

    assert created.status_code == 201
    assert again.status_code == 200
    assert again.json() == created.json()
    assert [e["name"] for e in api.get("/experiments").json()] == ["churn"]


def test_a_batch_body_takes_what_the_standard_json_parser_takes(
    api: httpx.Client, run_id: str
) -> None:
    # Batches are parsed by orjson, which refuses a NaN literal and a number too big for a
    # double; the standard library, which the other routes use, takes them, and so does this one.
    body = b'{"metrics": [{"key": "m", "points": [[NaN, 0, 1], [1e400, 1, 1]]}]}'
    headers = {"content-type": "application/json"}
    assert api.post(f"/runs/{run_id}/batch", content=body, headers=headers).status_code == 204
    history = api.get(f"/runs/{run_id}/metric-history", params={"key": "m"}).json()
    assert history["value"] == ["NaN", "Infinity"]

    broken = api.post(f"/runs/{run_id}/batch", content=b'{"metrics": [', headers=headers)
    assert broken.status_code == 422 and broken.json()["type"] == "InvalidArgument"


def test_the_created_by_tag_is_the_servers_to_write(api: httpx.Client, run_id: str) -> None:
    forged = {"tags": {"segue.created_by": "user:admin"}}

    later = api.post(f"/runs/{run_id}/batch", json=forged)
    experiment = api.get("/experiments/exp").json()["id"]
    info = {**RUN, "id": "f" * 32, "experiment_id": experiment}
    at_creation = api.post("/runs", json={"info": info, **forged})

    for answer in (later, at_creation):
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "tags.segue.created_by"
    assert "segue.created_by" not in api.get(f"/runs/{run_id}").json()["data"]["tags"]


@pytest.mark.parametrize(
    ("tags", "system", "field"),
    [
        ({"segue.step.key": "k"}, False, "tags.segue.step.key"),  # a user's write
        ({"segue.kind": "pipeline"}, False, "tags.segue.kind"),
        ({"segue.anything": "x"}, True, "tags.segue.anything"),  # not a runtime tag
        ({"segue.created_by": "user:admin"}, True, "tags.segue.created_by"),
    ],
)
def test_segue_tags_are_reserved(
    api: httpx.Client, run_id: str, tags: dict[str, str], system: bool, field: str
) -> None:
    later = api.post(f"/runs/{run_id}/batch", json={"tags": tags, "system": system})
    experiment = api.get("/experiments/exp").json()["id"]
    info = {**RUN, "id": "e" * 32, "experiment_id": experiment}
    at_creation = api.post("/runs", json={"info": info, "tags": tags, "system": system})
    for answer in (later, at_creation):
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == field
        assert answer.json()["type"] == "InvalidArgument"
    assert not set(tags) & set(api.get(f"/runs/{run_id}").json()["data"]["tags"])


def test_the_pipeline_runtime_writes_its_tags_with_the_system_flag(
    api: httpx.Client, run_id: str
) -> None:
    tags = {"segue.attempts": "1", "segue.output.model": "abc", "team": "fraud"}
    answer = api.post(f"/runs/{run_id}/batch", json={"tags": tags, "system": True})
    assert answer.status_code == 204, answer.text
    assert api.get(f"/runs/{run_id}").json()["data"]["tags"].items() >= tags.items()


def test_a_run_batch_applies_each_operation_and_answers_each_refusal(
    api: httpx.Client, run_id: str
) -> None:
    new, orphan = uuid.uuid4().hex, uuid.uuid4().hex
    info = {**RUN, "experiment_id": 0, "experiment_name": "batched"}
    ops = [
        {"op": "open", "info": {**info, "id": new}, "params": {"lr": "0.1"}, "tags": {"t": "v"}},
        {"op": "open", "info": {**info, "id": orphan, "parent_run_id": "f" * 32}},
        {"op": "open", "info": {**info, "id": run_id}},  # taken
        {
            "op": "end",
            "run_id": new,
            "metrics": [{"key": "loss", "points": [[0.5, 0, 2], ["NaN", 1, 3]]}],
            "status": "FAILED",
            "end_time": 9,
            "error": "boom",
        },
        {"op": "end", "run_id": orphan, "status": "FINISHED", "end_time": 9},
    ]
    answer = api.post("/run-batches", json={"ops": ops})

    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[0] is None and results[3] is None
    assert results[1]["type"] == "NotFound" and "parent run" in results[1]["error"]
    assert results[2]["type"] == "AlreadyExists"
    assert results[4]["type"] == "NotFound"
    run = api.get(f"/runs/{new}").json()
    assert (run["info"]["status"], run["info"]["end_time"], run["info"]["error"]) == (
        "FAILED",
        9,
        "boom",
    )
    assert run["info"]["experiment_name"] == "batched"
    assert (run["data"]["params"], run["data"]["tags"]) == ({"lr": "0.1"}, {"t": "v"})
    history = api.get(f"/runs/{new}/metric-history", params={"key": "loss"}).json()
    assert history["value"] == [0.5, "NaN"]
    assert api.get(f"/runs/{orphan}").status_code == 404


def test_a_run_batch_keeps_segue_tags_for_the_runtime(api: httpx.Client) -> None:
    def op(tags: dict[str, str], system: bool = False) -> dict[str, Any]:
        info = {**RUN, "experiment_id": 0, "id": uuid.uuid4().hex}
        return {"op": "open", "info": info, "tags": tags, "system": system}

    ops = [
        op({"segue.x": "1"}),
        op({"segue.created_by": "user:someone-else"}, system=True),
        op({"segue.kind": "step"}),
        op({"segue.kind": "step"}, system=True),  # what the pipeline runtime writes
    ]
    results = api.post("/run-batches", json={"ops": ops}).json()["results"]
    assert results[0]["type"] == "InvalidArgument" and results[0]["field"] == "ops.0.tags.segue.x"
    assert results[1]["field"] == "ops.1.tags.segue.created_by"  # the server's to write
    assert results[2]["field"] == "ops.2.tags.segue.kind"
    assert results[3] is None
    stored = api.get(f"/runs/{ops[3]['info']['id']}").json()
    assert stored["data"]["tags"] == {"segue.kind": "step"}


def test_a_retried_run_batch_takes_what_was_applied_as_done(api: httpx.Client) -> None:
    run = uuid.uuid4().hex
    ops = [
        {"op": "open", "info": {**RUN, "experiment_id": 0, "id": run}, "params": {"a": "1"}},
        {
            "op": "end",
            "run_id": run,
            "metrics": [{"key": "loss", "points": [[0.5, 0, 2]]}],
            "status": "FINISHED",
            "end_time": 9,
        },
    ]
    assert api.post("/run-batches", json={"ops": ops}).json()["results"] == [None, None]

    again = api.post("/run-batches", json={"ops": ops, "retry": True}).json()["results"]
    assert again == [None, None]  # applied before the failure the client saw: done
    history = api.get(f"/runs/{run}/metric-history", params={"key": "loss"}).json()
    assert history["value"] == [0.5]  # not written twice
    # Not marked as a retry, a start of a run that exists is refused.
    (first, _) = api.post("/run-batches", json={"ops": ops}).json()["results"]
    assert first["type"] == "AlreadyExists"
    # A retried start of another run with that id (another start time) is still refused.
    other = {**ops[0], "info": {**ops[0]["info"], "start_time": 5}}
    (refused,) = api.post("/run-batches", json={"ops": [other], "retry": True}).json()["results"]
    assert refused["type"] == "AlreadyExists"


def test_a_run_batch_holds_at_most_max_points(api: httpx.Client, run_id: str) -> None:
    end = {"op": "end", "run_id": run_id, "status": "FINISHED", "end_time": 9}
    many = [{**end, "metrics": [_points("m", 150_000)]}, {**end, "metrics": [_points("n", 60_000)]}]
    answer = api.post("/run-batches", json={"ops": many})
    assert answer.status_code == 422 and answer.json()["field"] == "ops"
    assert api.get(f"/runs/{run_id}").json()["info"]["status"] == "RUNNING"  # none applied
