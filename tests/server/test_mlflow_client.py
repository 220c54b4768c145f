"""The real MLflow client (3.17.2) against ``segue server``'s MLflow REST API.

MLflow needs ``pandas<3`` and Segue's environment has pandas 3, so the client runs in its own
environment: the interpreter the ``mlflow_python`` fixture finds (``tests/conftest.py``).
Without it the tests are skipped locally and fail under CI.

One server per database kind, with authentication on, serves one script of MLflow calls
(``mlflow_script.py``); the tests compare what the calls answered with what Segue stored.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segue.auth.service import AuthService
from segue.store.auth import SqlAuthStore
from segue.store.engine import open_engine
from segue.store.tracking import SqlTrackingStore

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("mlflow_script.py")


class Session:
    """What the script's MLflow calls answered, and the store the server wrote to."""

    def __init__(
        self, out: dict[str, Any], store: SqlTrackingStore, state: Any, env: dict[str, str]
    ) -> None:
        self.out = out
        self.store = store
        self.state = state
        self.env = env


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def session(request, tmp_path_factory, live_server, mlflow_python) -> Iterator[Session]:
    python = mlflow_python
    root = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), root / "segue.db")
        uri = f"sqlite:///{root / 'segue.db'}"
    else:
        uri = request.getfixturevalue("pg_uri")
        from tests.conftest import _truncate

        _truncate(uri)
    from segue.config import settings
    from segue.server.state import ServerState

    engine = open_engine(uri)
    auth = AuthService(SqlAuthStore(engine))
    auth.add_user("ada", "maintainer", "local:ops")
    auth.add_user("vic", "viewer", "local:ops")
    token, _ = auth.create_token("ada", "mlflow", "local:ops")
    viewer, _ = auth.create_token("vic", "mlflow", "local:ops")
    env = {
        "SEGUE_HOME": str(root / "home"),
        "SEGUE_STORE_URI": uri,
        "SEGUE_ARTIFACT_URI": str(root / "artifacts"),
    }
    # The model MLflow registers into exists already, with gates on two aliases.
    from segue.auth.principal import Principal

    state = ServerState(settings(env), engine)
    registry = state.registry(Principal("ops", "admin"))
    state.registry_store.create_model("churn", "user:ops")
    registry.add_gate("churn", "champion", "metrics.acc >= 0.9")
    registry.add_gate("churn", "strict", "metrics.acc >= 0.99")
    server = live_server(state)
    try:
        work = root / "work"
        work.mkdir()
        done = subprocess.run(
            [str(python), str(SCRIPT), str(work)],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
            env={
                **os.environ,
                "MLFLOW_TRACKING_URI": server.url,
                "MLFLOW_TRACKING_TOKEN": token,
                "VIEWER_TOKEN": viewer,
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "GIT_PYTHON_REFRESH": "quiet",
            },
        )
        if done.returncode != 0:
            raise AssertionError(f"the MLflow client failed:\n{done.stderr[-6000:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        yield Session(out, SqlTrackingStore(engine), server.state, env)
    finally:
        server.stop()


def test_experiments_created_and_found_by_id_and_name(session):
    out, store = session.out, session.store
    experiment = store.get_experiment("mlflow-exp")
    assert out["experiment_id"] == str(experiment.id)
    assert out["by_id"] == "mlflow-exp"
    assert out["by_name"] == str(experiment.id)
    assert out["missing_by_name"] is True
    assert store.get_experiment("mlflow-other").description == "notes"
    assert out["duplicate"]["code"] == "RESOURCE_ALREADY_EXISTS"
    assert out["search_experiments"] == ["mlflow-exp", "mlflow-other"]


def test_runs_params_metrics_and_tags_are_segue_runs(session):
    out, store = session.out, session.store
    run = store.get_run(out["parent"])
    assert run.info.name == "parent"
    assert run.info.status == "FINISHED"
    assert run.info.end_time is not None
    assert run.data.params == {"lr": "0.1", "depth": "3", "model": "rf", "batch": "64"}
    assert run.data.tags["team"] == "fraud"
    assert run.data.tags["stage"] == "dev"
    assert run.data.tags["segue.created_by"] == "user:ada"
    assert run.data.metrics["acc"].value == 0.8
    loss = store.get_metric_history(out["parent"], "loss")
    assert [(p.value, p.step) for p in loss] == [(0.9, 0), (0.5, 1), (0.25, 2)]
    assert loss[1].timestamp == 1_700_000_000_123
    f1 = store.get_metric_history(out["parent"], "f1")
    assert [(p.step, p.timestamp) for p in f1] == [(i, 1_700_000_000_000 + i) for i in range(5)]
    assert all(math.isclose(p.value, 0.1 * p.step) for p in f1)
    # What the client read back is what it sent.
    assert out["run"]["params"] == run.data.params
    assert out["run"]["metrics"] == {"loss": 0.25, "acc": 0.8, "f1": 0.4}
    assert out["run"]["tags"]["mlflow.runName"] == "parent"
    assert out["run"]["status"] == "FINISHED"
    expected = f"mlflow-artifacts:/{run.info.experiment_id}/{run.info.id}/artifacts"
    assert out["run"]["artifact_uri"] == expected
    assert out["history"] == [[p.value, p.step, p.timestamp] for p in loss]
    assert out["changed_param"]["code"] == "INVALID_PARAMETER_VALUE"
    assert "lr" in out["changed_param"]["message"]


def test_segue_runs_list_shows_what_mlflow_logged(session):
    import sys

    command = [sys.executable, "-c", "from segue.cli import main; main()"]
    command += ["runs", "list", "--experiment", "mlflow-exp", "--json"]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **session.env}, timeout=120
    )
    assert done.returncode == 0, done.stderr
    listed = {run["info"]["name"]: run for run in json.loads(done.stdout)}
    assert sorted(listed) == ["child", "failing", "parent"]
    assert listed["parent"]["params"]["lr"] == "0.1"
    assert listed["child"]["info"]["parent_run_id"] == session.out["parent"]


def test_dataset_inputs_are_the_runs_data_sets(session):
    out, store = session.out, session.store
    [found] = store.list_datasets(out["parent"])
    assert (found.name, found.context) == ("train", "training")
    dataset = found.dataset
    assert dataset.digest == f"mlflow-{out['input_digest']}"
    assert (dataset.n_rows, dataset.n_columns) == (3, 2)
    assert [c["name"] for c in dataset.schema] == ["a", "b"]
    assert dataset.profile["mlflow"]["source"] == '{"uri": "s3://bucket/train.csv"}'
    assert out["inputs"] == [["train", out["input_digest"], "training"]]


def test_nested_run_is_a_child_run(session):
    out, store = session.out, session.store
    child = store.get_run(out["child"])
    assert child.info.parent_run_id == out["parent"]
    assert child.info.name == "child"
    assert out["child_parent_tag"] == out["parent"]


def test_failed_run_deleted_and_restored(session):
    out, store = session.out, session.store
    assert out["failing_status"] == "FAILED"
    assert out["deleted_stage"] == "deleted"
    assert "failing" not in out["after_delete"]
    assert "failing" in out["after_restore"]
    assert store.get_run(out["failing"]).info.lifecycle_stage == "active"


def test_search_runs_with_filters_order_and_pages(session):
    out = session.out
    assert out["search_loss"] == ["parent", "child"]
    assert out["search_param"] == ["parent"]
    assert out["search_tag"] == ["child"]
    assert out["search_status"] == ["failing"]
    assert out["pages"] == [["child"], ["failing"], ["parent"]]
    assert out["frame"] == {"rows": 1, "lr": ["0.1"]}
    assert out["bad_filter"]["code"] == "INVALID_PARAMETER_VALUE"
    assert "filter" in out["bad_filter"]["message"]


def test_artifacts_uploaded_listed_and_downloaded(session):
    out, store = session.out, session.store
    paths = {e.path: e.size for e in store.list_artifacts(out["parent"])}
    assert paths == {"notes.txt": 5, "data/a.txt": 1, "data/sub/b.bin": 2560}
    assert out["listed"] == [["data", True], ["notes.txt", False]]
    assert out["listed_data"] == [["data/a.txt", False, 1], ["data/sub", True, None]]
    assert out["downloaded"] == ["data/a.txt", "data/sub/b.bin", "notes.txt"]
    assert out["downloaded_b"] is True


def test_refusals_in_mlflow_terms(session):
    out = session.out
    assert out["missing_run"]["code"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["unmapped"]["code"] == "NOT_IMPLEMENTED"
    assert "get-latest-versions" in out["unmapped"]["message"]
    assert out["viewer_reads"] == "mlflow-exp"
    assert out["viewer_writes"]["code"] == "PERMISSION_DENIED"
    assert out["bad_token"]["code"] == "UNAUTHENTICATED"


def test_log_model_registers_a_segue_version_that_mlflow_and_segue_load(session):
    import numpy as np
    import pandas as pd

    from segue.auth.principal import Principal

    out, store = session.out, session.store
    assert str(out["registered_version"]) == "1"
    assert out["logged_status"] == "READY"
    assert out["registered_name"] == "churn"
    assert out["by_alias"] == {"version": "1", "run_id": out["model_run"]}
    assert out["alias_after_set"] == {"champion": "1"}
    assert out["alias_after_delete"]["code"] == "RESOURCE_DOES_NOT_EXIST"
    # A gate refuses a move MLflow's client asks for, in MLflow's terms, naming the gate.
    assert out["strict"]["code"] == "INVALID_PARAMETER_VALUE"
    assert "metrics.acc >= 0.99" in out["strict"]["message"]
    assert session.state.registry_store.get_alias("churn", "strict") is None
    # The pickled model was refused with its reason, and registered nothing.
    assert out["pickled"]["code"] == "NOT_IMPLEMENTED"
    assert "serialization_format='skops'" in out["pickled"]["message"]
    registry = session.state.registry(Principal("ada", "maintainer"))
    versions = registry.list_versions("churn")
    assert [v.version for v in versions] == [1]
    version = versions[0]
    assert version.run_id == out["model_run"]
    assert version.artifact_path == f"segue-package/{out['model_id']}"
    assert version.flavor == "sklearn"
    manifest = registry.read_manifest(version)
    assert manifest.signature is not None
    assert [c["name"] for c in manifest.signature["inputs"]["columns"]] == ["a", "b", "c"]
    # Gates read the run's metrics: MLflow's copy of them for the model was not logged twice.
    assert [p.value for p in store.get_metric_history(out["model_run"], "acc")] == [0.93]
    # The model is found by its run and name, and registered again under another name from
    # MLflow 2's runs:/ URI: the same package, no second copy of it.
    assert out["logged_found"] == [[out["model_id"], out["model_run"]]]
    assert str(out["copy_version"]) == "1"
    copy = registry.get_version("churn-copy", 1)
    assert (copy.artifact_path, copy.manifest_digest) == (
        version.artifact_path,
        version.manifest_digest,
    )
    # MLflow sees the run's own artifacts: the Segue package (the model's files are at its
    # models:/ URI, not listed among the run's).
    assert out["run_listing"] == ["segue-package"]
    assert out["registered_search"] == ["churn", "churn-copy"]
    assert out["versions_search"] == [["churn", "1"], ["churn-copy", "1"]]
    # Segue loads the version it made; it predicts what MLflow's load of the same model does.
    loaded = registry.load_model("models:/churn/1")
    frame = pd.DataFrame(np.array(out["rows"]), columns=["a", "b", "c"])
    assert [int(p) for p in loaded.predict(frame)] == out["mlflow_predictions"]


def test_registered_model_served_by_segue_serve(session, segue_serve, tmp_path):
    """A real ``segue serve`` process on the same store serves the alias MLflow set, and its
    answers over HTTP are what the model the MLflow script trained predicts."""
    import httpx

    rows = session.out["rows"]
    columns = list(zip(*rows, strict=True))
    body = {
        "inputs": [
            {"name": name, "shape": [len(rows)], "datatype": "FP64", "data": list(column)}
            for name, column in zip(["a", "b", "c"], columns, strict=True)
        ]
    }
    with segue_serve(session.env, tmp_path, "models:/churn@live") as (base, _):
        answer = httpx.post(f"{base}/v2/models/churn/infer", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert (served["model_name"], served["model_version"]) == ("churn", "1")
    [output] = served["outputs"]
    assert [int(p) for p in output["data"]] == session.out["predictions"]
    assert session.out["predictions"] == session.out["mlflow_predictions"]
    assert 0 < sum(session.out["predictions"]) < len(rows)  # both classes: a real comparison
