"""The MLflow routes refuse bad input in MLflow's own error shape, naming the field, over real
HTTP (no MLflow needed): ``{"error_code": ..., "message": ...}`` with MLflow's status."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from segue.auth.service import AuthService
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine

API = "/api/2.0/mlflow"


@pytest.fixture
def api(start_server, store_uri: str) -> Iterator[httpx.Client]:
    server = start_server(store_uri, no_auth=True)
    with httpx.Client(timeout=60, base_url=server.url) as client:
        yield client


@pytest.fixture
def run(api: httpx.Client) -> dict[str, str]:
    made = api.post(f"{API}/experiments/create", json={"name": "errors"})
    assert made.status_code == 200, made.text
    experiment = made.json()["experiment_id"]
    answer = api.post(f"{API}/runs/create", json={"experiment_id": experiment, "start_time": 1})
    assert answer.status_code == 200, answer.text
    return {"experiment": experiment, "run": answer.json()["run"]["info"]["run_id"]}


def _refused(answer: httpx.Response, status: int, code: str, *words: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    for word in words:
        assert word in body["message"], body


BAD = [
    ("/runs/log-metric", {"key": "m", "value": "x", "step": 0}, "value"),
    ("/runs/log-metric", {"key": "m", "value": 1, "step": "one"}, "step"),
    ("/runs/log-metric", {"key": "", "value": 1}, "key"),
    ("/runs/log-parameter", {"key": "p"}, "value"),
    ("/runs/log-batch", {"metrics": [{"key": "m", "value": None}]}, "metrics.0.value"),
    ("/runs/log-batch", {"params": [{"key": "a/../b", "value": "1"}]}, "params.0.key"),
    ("/runs/set-tag", {"key": "segue.step", "value": "x"}, "tags.segue.step"),
    ("/runs/update", {"status": "DONE"}, "status"),
    ("/runs/search", {"filter": "metrics.acc >"}, "filter"),
    ("/runs/search", {"order_by": ["metrics.acc DOWN"]}, "order_by"),
    ("/runs/search", {"max_results": 0}, "max_results"),
    ("/runs/search", {"page_token": "%%%"}, "page_token"),
    ("/runs/search", {"page_token": base64.urlsafe_b64encode(b"9" * 23).decode()}, "page_token"),
    ("/runs/search", {"experiment_ids": ["x"]}, "experiment_ids.0"),
]


def test_bad_input_is_invalid_parameter_value_naming_the_field(api, run):
    for path, body, field in BAD:
        answer = api.post(f"{API}{path}", json={"run_id": run["run"], **body})
        _refused(answer, 400, "INVALID_PARAMETER_VALUE", f"{field}:")


@pytest.mark.parametrize(
    "body, headers",
    [
        (b"not json", {"content-type": "application/json"}),
        (b"[1]", {"content-type": "application/json"}),
        (b'{"name": "x"}', {"content-type": "application/x-www-form-urlencoded"}),  # curl -d
    ],
)
def test_a_body_that_is_not_a_json_object_is_named(api, body, headers):
    answer = api.post(f"{API}/experiments/create", content=body, headers=headers)
    _refused(answer, 400, "INVALID_PARAMETER_VALUE", "body: must be a JSON object")


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/experiments/get", {"experiment_id": "\u00b2"}, "experiment_id"),
        ("/model-versions/get", {"name": "m", "version": "\u00b2"}, "version"),
        ("/model-versions/get", {"name": "m", "version": "9" * 23}, "version"),
    ],
)
def test_numbers_that_are_not_ascii_digits_or_too_big_are_named(api, path, params, field):
    _refused(api.get(f"{API}{path}", params=params), 400, "INVALID_PARAMETER_VALUE", field)


def test_a_model_the_server_does_not_register_names_the_command_that_does(api):
    answer = api.post(f"{API}/model-versions/create", json={"name": "m", "source": "s3://b/m"})
    _refused(answer, 501, "NOT_IMPLEMENTED", "'segue models import-mlflow'")


def test_what_the_store_refuses_keeps_its_meaning(api, run):
    _refused(
        api.get(f"{API}/runs/get", params={"run_id": "0" * 32}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    experiment = {"experiment_id": "999"}
    _refused(api.get(f"{API}/experiments/get", params=experiment), 404, "RESOURCE_DOES_NOT_EXIST")
    duplicate = api.post(f"{API}/experiments/create", json={"name": "errors"})
    _refused(duplicate, 400, "RESOURCE_ALREADY_EXISTS", "errors")
    log = {"run_id": run["run"], "key": "lr", "value": "0.1"}
    assert api.post(f"{API}/runs/log-parameter", json=log).status_code == 200
    changed = api.post(f"{API}/runs/log-parameter", json={**log, "value": "0.2"})
    _refused(changed, 400, "INVALID_PARAMETER_VALUE", "lr")


def test_unmapped_features_are_named(api, run):
    _refused(
        api.post(f"{API}/runs/delete-tag", json={"run_id": run["run"], "key": "k"}),
        501,
        "NOT_IMPLEMENTED",
        "POST /api/2.0/mlflow/runs/delete-tag",
    )
    _refused(
        api.post(f"{API}/experiments/create", json={"name": "x", "artifact_location": "s3://b"}),
        501,
        "NOT_IMPLEMENTED",
        "artifact_location",
    )
    rename = {"run_id": run["run"], "run_name": "other"}
    _refused(api.post(f"{API}/runs/update", json=rename), 501, "NOT_IMPLEMENTED", "renaming")
    outside = api.post(f"{API}/logged-models", json={"experiment_id": run["experiment"]})
    _refused(outside, 501, "NOT_IMPLEMENTED", "outside a run")
    deleted = api.delete(f"/api/2.0/mlflow-artifacts/artifacts/{run['experiment']}/x/artifacts/a")
    _refused(deleted, 501, "NOT_IMPLEMENTED", "deleting artifacts")
    multipart = api.post("/api/2.0/mlflow-artifacts/mpu/create/1/x/artifacts/big.bin", json={})
    _refused(multipart, 501, "NOT_IMPLEMENTED", "POST /api/2.0/mlflow-artifacts/mpu/create")


def test_artifact_paths_are_checked(api, run):
    base = f"/api/2.0/mlflow-artifacts/artifacts/{run['experiment']}/{run['run']}/artifacts"
    _refused(api.put(f"{base}/a%5Cb", content=b"x"), 400, "INVALID_PARAMETER_VALUE", "path")
    absolute = api.put(f"{base}//etc/passwd", content=b"x")  # not quietly made relative
    _refused(absolute, 400, "INVALID_PARAMETER_VALUE", "path", "relative")
    other = f"/api/2.0/mlflow-artifacts/artifacts/{int(run['experiment']) + 1}/{run['run']}"
    _refused(api.get(f"{other}/artifacts/a"), 404, "RESOURCE_DOES_NOT_EXIST", "not in experiment")
    _refused(api.get(f"{base}/missing.txt"), 404, "RESOURCE_DOES_NOT_EXIST", "missing.txt")
    _refused(
        api.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": "x"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "path",
    )
    assert api.put(f"{base}/dir/a.txt", content=b"abc").status_code == 200
    assert api.get(f"{base}/dir/a.txt").content == b"abc"


def test_authentication_failures_in_mlflow_terms(start_server, store_uri):
    engine = open_engine(store_uri)
    auth = AuthService(SqlAuthStore(engine))
    auth.add_user("vic", "viewer", "local:ops")
    token, _ = auth.create_token("vic", "t", "local:ops")
    server = start_server(store_uri)
    with httpx.Client(timeout=60, base_url=server.url) as client:
        missing = client.post(f"{API}/experiments/search", json={})
        _refused(missing, 401, "UNAUTHENTICATED", "Bearer")
        assert missing.headers["www-authenticate"] == "Bearer"
        headers = {"authorization": f"Bearer {token}"}
        weak = client.post(f"{API}/experiments/create", json={"name": "x"}, headers=headers)
        _refused(weak, 403, "PERMISSION_DENIED", "editor")
        found = client.post(f"{API}/experiments/search", json={}, headers=headers)
        assert found.status_code == 200 and found.json() == {"experiments": []}


def test_writes_keep_an_mlflow_run_alive(start_server, store_uri):
    """MLflow's client sends no heartbeats: each write counts as one (time is injected)."""
    now = [1_700_000_000.0]
    server = start_server(store_uri, no_auth=True, clock=lambda: now[0])
    store = server.state.tracking
    with httpx.Client(timeout=60, base_url=server.url) as api:
        experiment = api.post(f"{API}/experiments/create", json={"name": "alive"}).json()
        start = {"experiment_id": experiment["experiment_id"], "start_time": 1_700_000_000_000}
        busy, quiet = (
            api.post(f"{API}/runs/create", json=start).json()["run"]["info"]["run_id"]
            for _ in range(2)
        )
        now[0] += 60
        metric = {"run_id": busy, "key": "loss", "value": 0.5, "step": 1}
        assert api.post(f"{API}/runs/log-metric", json=metric).status_code == 200
        assert store.reap_stale_runs(int(now[0] * 1000), 30_000) == [quiet]
        # The quiet run's client ends it as it says.
        end = {"run_id": quiet, "status": "FINISHED", "end_time": int(now[0] * 1000)}
        assert api.post(f"{API}/runs/update", json=end).status_code == 200
    assert store.get_run(quiet).info.status == "FINISHED"
    assert store.get_run(busy).info.status == "RUNNING"
