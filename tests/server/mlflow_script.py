"""Drive ``segue server`` with the real MLflow client (run by the MLflow environment's Python).

Usage: ``python mlflow_script.py WORKDIR`` with ``MLFLOW_TRACKING_URI`` and
``MLFLOW_TRACKING_TOKEN`` set (and ``VIEWER_TOKEN``: a viewer's token). Prints one JSON line:
what each call answered, for the test to compare with what Segue stored.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def refused(call: Any) -> dict[str, Any]:
    try:
        call()
    except MlflowException as exc:
        return {"code": exc.error_code, "message": exc.message}
    return {"code": None, "message": "accepted"}


def main(work: Path) -> dict[str, Any]:
    client = MlflowClient()
    out: dict[str, Any] = {}
    experiment = mlflow.set_experiment("mlflow-exp")
    out["experiment_id"] = experiment.experiment_id
    out["by_id"] = client.get_experiment(experiment.experiment_id).name
    out["by_name"] = client.get_experiment_by_name("mlflow-exp").experiment_id
    out["missing_by_name"] = client.get_experiment_by_name("no-such") is None
    other = client.create_experiment("mlflow-other", tags={"mlflow.note.content": "notes"})
    out["other_id"] = other
    out["duplicate"] = refused(lambda: client.create_experiment("mlflow-exp"))
    found = client.search_experiments(filter_string="name LIKE 'mlflow-%'", order_by=["name"])
    out["search_experiments"] = [e.name for e in found]

    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", "0.1")
        mlflow.log_params({"depth": 3, "model": "rf"})
        mlflow.set_tag("team", "fraud")
        mlflow.log_metric("loss", 0.9, step=0)
        client.log_metric(parent.info.run_id, "loss", 0.5, timestamp=1_700_000_000_123, step=1)
        mlflow.log_metrics({"loss": 0.25, "acc": 0.8}, step=2)
        client.log_batch(
            parent.info.run_id,
            metrics=[Metric("f1", 0.1 * i, 1_700_000_000_000 + i, i) for i in range(5)],
            params=[Param("batch", "64")],
            tags=[RunTag("stage", "dev")],
        )
        import pandas as pd

        table = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
        train = mlflow.data.from_pandas(table, source="s3://bucket/train.csv", name="train")
        mlflow.log_input(train, context="training")
        out["input_digest"] = train.digest
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("loss", 0.3)
        (work / "notes.txt").write_text("hello")
        mlflow.log_artifact(str(work / "notes.txt"))
        folder = work / "folder"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.txt").write_text("a")
        (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
        mlflow.log_artifacts(str(folder), artifact_path="data")
        out["changed_param"] = refused(lambda: mlflow.log_param("lr", "0.2"))
    out["parent"], out["child"] = parent.info.run_id, child.info.run_id
    out["listed"] = sorted((f.path, f.is_dir) for f in client.list_artifacts(parent.info.run_id))
    out["listed_data"] = sorted(
        (f.path, f.is_dir, f.file_size) for f in client.list_artifacts(parent.info.run_id, "data")
    )
    down = Path(
        mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, dst_path=str(work / "down"))
    )
    out["downloaded"] = sorted(str(p.relative_to(down)) for p in down.rglob("*") if p.is_file())
    out["downloaded_b"] = (down / "data" / "sub" / "b.bin").read_bytes() == (
        folder / "sub" / "b.bin"
    ).read_bytes()
    history = client.get_metric_history(parent.info.run_id, "loss")
    out["history"] = [(m.value, m.step, m.timestamp) for m in history]
    run = client.get_run(parent.info.run_id)
    out["run"] = {
        "name": run.info.run_name,
        "status": run.info.status,
        "params": run.data.params,
        "metrics": run.data.metrics,
        "tags": {k: v for k, v in run.data.tags.items()},
        "artifact_uri": run.info.artifact_uri,
        "end_time": run.info.end_time,
    }
    out["inputs"] = [
        (i.dataset.name, i.dataset.digest, i.tags[0].value) for i in run.inputs.dataset_inputs
    ]
    child_run = client.get_run(child.info.run_id)
    out["child_parent_tag"] = child_run.data.tags.get("mlflow.parentRunId")

    with mlflow.start_run(run_name="failing") as failing:
        mlflow.log_metric("loss", 2.0)
    client.set_terminated(failing.info.run_id, status="FAILED")
    out["failing"] = failing.info.run_id
    out["failing_status"] = client.get_run(failing.info.run_id).info.status

    ids = [experiment.experiment_id]
    out["search_loss"] = [
        r.info.run_name
        for r in client.search_runs(ids, "metrics.loss < 1", order_by=["metrics.loss ASC"])
    ]
    out["search_param"] = [r.info.run_name for r in client.search_runs(ids, "params.model = 'rf'")]
    out["search_tag"] = [
        r.info.run_name for r in client.search_runs(ids, "tags.`mlflow.runName` = 'child'")
    ]
    out["search_status"] = [
        r.info.run_name for r in client.search_runs(ids, "attributes.status = 'FAILED'")
    ]
    pages, token = [], None
    while True:
        page = client.search_runs(
            ids, order_by=["attributes.run_name"], max_results=1, page_token=token
        )
        pages.append([r.info.run_name for r in page])
        token = page.token
        if not token:
            break
    out["pages"] = pages
    frame = mlflow.search_runs(experiment_ids=ids, filter_string="params.lr = '0.1'")
    out["frame"] = {"rows": len(frame), "lr": list(frame["params.lr"])}
    out["bad_filter"] = refused(lambda: client.search_runs(ids, "metrics.loss >"))

    client.delete_run(failing.info.run_id)
    out["after_delete"] = sorted(r.info.run_name for r in client.search_runs(ids))
    out["deleted_stage"] = client.get_run(failing.info.run_id).info.lifecycle_stage
    client.restore_run(failing.info.run_id)
    out["after_restore"] = sorted(r.info.run_name for r in client.search_runs(ids))
    out.update(models(client, work))
    out["missing_run"] = refused(lambda: client.get_run("0" * 32))
    out["unmapped"] = refused(lambda: client.get_latest_versions("churn", stages=["Production"]))
    os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["VIEWER_TOKEN"]
    out["viewer_reads"] = client.get_experiment(experiment.experiment_id).name
    out["viewer_writes"] = refused(lambda: client.create_experiment("viewer-made"))
    os.environ["MLFLOW_TRACKING_TOKEN"] = "not-a-token"
    out["bad_token"] = refused(lambda: client.get_experiment(experiment.experiment_id))
    return out


def models(client: MlflowClient, work: Path) -> dict[str, Any]:
    """log_model with registered_model_name, aliases, and pyfunc loading by alias."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rows = np.random.default_rng(0).random((40, 3))
    frame = pd.DataFrame(rows, columns=["a", "b", "c"])
    model = LogisticRegression().fit(frame, (frame["a"] > 0.5).astype(int))
    # What the trained model itself predicts for its training rows, to compare serving with.
    out: dict[str, Any] = {"rows": rows.tolist(), "predictions": model.predict(frame).tolist()}
    mlflow.set_experiment("mlflow-models")
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_metric("acc", 0.93)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=frame[:3],
            registered_model_name="churn",
        )  # MLflow 3.17 saves scikit-learn models with skops by default
        out["pickled"] = refused(
            lambda: mlflow.sklearn.log_model(
                model,
                name="pickled",
                registered_model_name="churn",
                serialization_format="cloudpickle",
            )
        )
    out["model_run"] = run.info.run_id
    found = client.search_logged_models([run.info.experiment_id], filter_string="name = 'model'")
    out["logged_found"] = [(m.model_id, m.source_run_id) for m in found]
    copy = mlflow.register_model(f"runs:/{run.info.run_id}/model", "churn-copy")
    out["copy_version"] = copy.version
    out["run_listing"] = sorted(f.path for f in client.list_artifacts(run.info.run_id))
    out["registered_search"] = [
        m.name for m in client.search_registered_models("name LIKE 'churn%'")
    ]
    out["versions_search"] = [
        (v.name, v.version) for v in client.search_model_versions(f"run_id = '{run.info.run_id}'")
    ]
    out["model_id"] = info.model_id
    out["registered_version"] = info.registered_model_version
    out["logged_status"] = str(client.get_logged_model(info.model_id).status)
    out["registered_name"] = client.get_registered_model("churn").name
    client.set_registered_model_alias("churn", "champion", "1")
    out["strict"] = refused(lambda: client.set_registered_model_alias("churn", "strict", "1"))
    version = client.get_model_version_by_alias("churn", "champion")
    out["by_alias"] = {"version": version.version, "run_id": version.run_id}
    loaded = mlflow.pyfunc.load_model("models:/churn@champion")
    out["mlflow_predictions"] = [int(p) for p in loaded.predict(frame)]
    out["alias_after_set"] = client.get_registered_model("churn").aliases
    client.delete_registered_model_alias("churn", "champion")
    out["alias_after_delete"] = refused(
        lambda: client.get_model_version_by_alias("churn", "champion")
    )
    # An alias MLflow leaves in place: the test serves models:/churn@live with segue serve.
    client.set_registered_model_alias("churn", "live", "1")
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
