"""``segue import mlflow``: a whole MLflow store, built by the real MLflow client, copied into
Segue from its database and from its file store; twice (the second adds nothing) and after an
interruption (the rerun finishes what was started)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import segue
from segue.importers.mlflow import import_store, open_source
from segue.importers.mlflow.copy import STATE_TAG
from segue.registry.service import get_registry
from segue.tracking.client import get_client

from .conftest import build, copy_sqlite

pytestmark = pytest.mark.slow  # the stores are built by MLflow in a subprocess

#: The parent run's three files, and the files of the three models MLflow 3 logged (two
#: scikit-learn models of seven files, a custom PythonModel of five).
ARTIFACTS = 3 + 7 + 7 + 5

FRAME = pd.DataFrame({"x1": [0.0, 5.0], "x2": [1.0, 0.0]})


def _import(uri: str, **kwargs: Any):
    source = open_source(uri)
    try:
        return import_store(source, get_registry(), **kwargs)
    finally:
        source.close()


def _check_store(ids: dict[str, Any]) -> None:
    """What MLflow logged (see mlflow_store.py) is what Segue now holds."""
    client = get_client()
    experiments = {e.name for e in client.list_experiments()}
    assert {"churn", "other", "Default"} <= experiments
    parent = client.get_run(ids["parent"])
    assert parent.info.experiment_name == "churn"
    assert parent.info.name == "parent"
    assert parent.info.status == "FINISHED"
    assert parent.info.end_time is not None and parent.info.end_time >= parent.info.start_time
    assert parent.data.params == {"C": "0.5", "penalty": "l2"}
    tags = parent.data.tags
    assert tags["owner"] == "ana"
    # 7,700 characters, kept whole: on PostgreSQL too (segue_env runs on both), whose
    # (key, value) btree refused values past ~2,700 bytes before store migration 0009.
    assert tags["notes"] == "long notes " * 700
    assert tags["mlflow.note.content"] == "the sweep"
    assert tags["mlflow.run_id"] == ids["parent"]
    assert tags["mlflow.experiment_id"] == str(ids["churn"])
    assert tags[STATE_TAG] == "done"
    loss = client.metric_history(ids["parent"], "loss")
    assert [(m.step, m.value, m.timestamp) for m in loss] == [
        (s, 1.0 / (s + 1), 1_700_000_000_000 + s) for s in range(5)
    ]
    auc = client.metric_history(ids["parent"], "auc")
    assert auc[0].value == 0.9 and math.isnan(auc[1].value)
    # Artifacts: bytes hashed into Segue's content store, read back verified.
    assert client.read_artifact(ids["parent"], "notes.txt") == b"hello from mlflow\n"
    assert client.read_artifact(ids["parent"], "plots/deep/b.bin") == bytes(range(256))
    assert client.read_artifact(ids["parent"], "plots/a.csv") == b"a,b\n1,2\n"
    # MLflow 3 keeps a run's logged models apart from its artifacts: they come along too.
    mlmodel = client.read_artifact(ids["parent"], f"mlflow-models/{ids['model_id']}/MLmodel")
    assert f"model_id: {ids['model_id']}" in mlmodel.decode()
    [data] = client.list_datasets(ids["parent"])
    assert (data.name, data.context) == ("train-set", "training")
    assert (data.dataset.n_rows, data.dataset.n_columns) == (6, 2)
    assert [c["name"] for c in data.dataset.schema] == ["x1", "x2"]
    child = client.get_run(ids["child"])
    assert child.info.parent_run_id == ids["parent"]
    assert client.get_run(ids["failed"]).info.status == "FAILED"
    assert client.get_run(ids["failed"]).data.params == {"seed": "7"}
    assert client.get_run(ids["gone"]).info.lifecycle_stage == "deleted"
    assert client.get_run(ids["solo"]).info.experiment_name == "other"
    # Registered models: scikit-learn versions as Segue packages, aliases moved along.
    registry = get_registry()
    model = registry.get_model("churn-model")
    assert model.aliases == {"champion": 1, "challenger": 2, "staging": 2}
    assert (model.description, model.tags) == ("who will leave", {"team": "growth"})
    # A model none of whose versions Segue can load is recorded, its versions skipped.
    assert registry.get_model("echo").latest_version is None
    versions = {v.version: v for v in registry.list_versions("churn-model")}
    assert versions[1].run_id == ids["parent"] and versions[2].run_id == ids["second"]
    assert versions[1].flavor == "sklearn"
    champion = segue.load_model("models:/churn-model@champion")
    assert list(champion.predict(FRAME)) == [0, 1]


def test_sqlite_store_imported_whole_then_nothing_new(mlflow_sqlite, segue_env) -> None:
    root, ids = mlflow_sqlite
    first = _import(f"sqlite:///{root / 'mlflow.db'}")
    assert (first.experiments_new, first.runs_new, first.runs_present) == (3, 7, 0)
    assert first.metric_points == 10
    assert (first.artifacts, first.datasets) == (ARTIFACTS, 1)
    assert (first.versions_new, first.aliases_new) == (2, 3)
    [echo] = first.skipped
    assert echo.what == "echo version 1"
    assert "PythonModel" in echo.reason and "needs MLflow" in echo.reason
    _check_store(ids)

    again = _import(f"sqlite:///{root / 'mlflow.db'}")
    assert (again.experiments_new, again.runs_new, again.runs_resumed) == (0, 0, 0)
    assert (again.runs_present, again.metric_points, again.artifacts) == (7, 0, 0)
    assert (again.versions_new, again.versions_present) == (0, 2)
    assert (again.aliases_new, again.aliases_present) == (0, 3)
    _check_store(ids)
    assert len(get_client().metric_history(ids["parent"], "loss")) == 5  # not written twice


def test_file_store_imported_whole(mlflow_files, segue_env) -> None:
    root, ids = mlflow_files
    summary = _import(str(root / "mlruns"))
    assert (summary.runs_new, summary.metric_points, summary.artifacts) == (7, 10, ARTIFACTS)
    assert (summary.versions_new, summary.aliases_new) == (2, 3)
    _check_store(ids)
    assert _import((root / "mlruns").as_uri()).runs_present == 7


class Interrupt(Exception):
    pass


def _stop_at(phase: str, after: int):
    def progress(name: str, done: int, total: int) -> None:
        if name == phase and done >= after:
            raise Interrupt

    return progress


def test_interrupted_import_resumes(mlflow_sqlite, segue_env, tmp_path: Path) -> None:
    ids = mlflow_sqlite[1]
    uri = copy_sqlite(mlflow_sqlite, tmp_path)
    # Stopped once the first runs exist but before their metrics were copied.
    with pytest.raises(Interrupt):
        _import(uri, batch=3, progress=_stop_at("created", 1))
    client = get_client()
    started = client.find_runs("churn", max_results=100, include_deleted=True)
    assert started and {r.data.tags[STATE_TAG] for r in started} == {"created"}
    # Stopped again when four runs were done (groups of 1 and 3), three still to fill.
    with pytest.raises(Interrupt):
        _import(uri, batch=3, progress=_stop_at("runs", 4))
    states = [
        r.data.tags[STATE_TAG]
        for r in client.find_runs(["churn", "other"], max_results=100, include_deleted=True)
    ]
    assert sorted(states) == ["created"] * 3 + ["done"] * 4
    resumed = _import(uri, batch=3)
    assert resumed.runs_present + resumed.runs_resumed + resumed.runs_new == 7
    _check_store(ids)
    loss = client.metric_history(ids["parent"], "loss")
    assert len(loss) == 5  # each point once, however often the import was started


def test_second_import_adds_what_is_new(mlflow_sqlite, segue_env, tmp_path: Path) -> None:
    ids = mlflow_sqlite[1]
    uri = copy_sqlite(mlflow_sqlite, tmp_path)
    assert _import(uri, models=False).runs_new == 7
    late = build(uri, str(mlflow_sqlite[0] / "art"), "--more", cwd=tmp_path)["late"]
    again = _import(uri, models=False)
    # The new run, and the point and tag logged to an imported run since.
    assert (again.runs_new, again.runs_updated, again.runs_present) == (1, 1, 6)
    assert again.metric_points == 3 + 1
    client = get_client()
    run = client.get_run(late)
    assert run.data.params == {"lr": "0.5"}
    assert run.data.tags["mlflow.run_id"] == late
    parent = client.get_run(ids["parent"])
    assert parent.data.tags["reviewed"] == "yes"
    loss = client.metric_history(ids["parent"], "loss")
    assert [(m.step, m.value) for m in loss] == [(s, 1.0 / (s + 1)) for s in range(5)] + [(5, 0.1)]
    assert _import(uri, models=False).runs_present == 8  # and then nothing more


def test_server_imported_over_http(mlflow_server, segue_env) -> None:
    url, ids = mlflow_server
    summary = _import(url)
    assert (summary.runs_new, summary.metric_points, summary.artifacts) == (7, 10, ARTIFACTS)
    assert (summary.versions_new, summary.aliases_new) == (2, 3)
    _check_store(ids)
    again = _import(url)
    assert (again.runs_new, again.runs_present, again.versions_present) == (0, 7, 2)


def test_postgres_store_imported_whole(mlflow_postgres, segue_env) -> None:
    uri, ids = mlflow_postgres
    summary = _import(uri)
    assert (summary.runs_new, summary.metric_points, summary.artifacts) == (7, 10, ARTIFACTS)
    assert (summary.versions_new, summary.aliases_new, summary.datasets) == (2, 3, 1)
    _check_store(ids)
    assert _import(uri).runs_present == 7
