"""Builds an MLflow tracking store with the real MLflow client; run by MLflow's interpreter.

``python mlflow_store.py TRACKING_URI [ARTIFACT_LOCATION] [--more]``: logs two experiments,
runs (nested, failed, deleted) with params, metric histories (steps, timestamps, a NaN),
tags, artifacts (a file and a folder), a data set input, and registered models: two
scikit-learn versions with aliases, one of them in the stage Staging, and a custom
``PythonModel`` version (a flavor Segue cannot load without MLflow). ``--more`` adds a run
to an existing store, and a point and a tag to its run ``parent`` (what a second import must
pick up). Prints a JSON summary of the ids it made.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import mlflow
import pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

uri = sys.argv[1]
args = [a for a in sys.argv[2:] if not a.startswith("--")]
location = args[0] if args else None
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
client = MlflowClient()
out = {}


def experiment(name):
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(
        name, artifact_location=location and f"{location}/{name}", tags={"team": "churn"}
    )


if "--more" in sys.argv:
    mlflow.set_experiment(experiment_id=experiment("churn"))
    with mlflow.start_run(run_name="late") as run:
        mlflow.log_param("lr", "0.5")
        for step in range(3):
            mlflow.log_metric(
                "loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step
            )
    # The parent run goes on after it was imported: one more point, one more tag.
    [parent] = client.search_runs([experiment("churn")], "attributes.run_name = 'parent'")
    client.log_metric(parent.info.run_id, "loss", 0.1, step=5, timestamp=1_700_000_000_005)
    client.set_tag(parent.info.run_id, "reviewed", "yes")
    print(json.dumps({"late": run.info.run_id}))
    sys.exit(0)

churn = experiment("churn")
mlflow.set_experiment(experiment_id=churn)
frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "x2": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
labels = [0, 0, 0, 1, 1, 1]
with mlflow.start_run(run_name="parent", description="the sweep") as parent:
    mlflow.log_params({"C": "0.5", "penalty": "l2"})
    mlflow.set_tag("owner", "ana")
    mlflow.set_tag("notes", "long notes " * 700)  # 7,700 characters: more than an index row
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
    mlflow.log_metric("auc", 0.9, step=0, timestamp=1_700_000_000_100)
    mlflow.log_metric("auc", float("nan"), step=1, timestamp=1_700_000_000_200)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "notes.txt"), "w") as f:
            f.write("hello from mlflow\n")
        mlflow.log_artifact(os.path.join(tmp, "notes.txt"))
        os.makedirs(os.path.join(tmp, "plots", "deep"))
        with open(os.path.join(tmp, "plots", "a.csv"), "w") as f:
            f.write("a,b\n1,2\n")
        with open(os.path.join(tmp, "plots", "deep", "b.bin"), "wb") as f:
            f.write(bytes(range(256)))
        mlflow.log_artifacts(os.path.join(tmp, "plots"), artifact_path="plots")
    mlflow.log_input(mlflow.data.from_pandas(frame, name="train-set"), context="training")
    model = LogisticRegression().fit(frame, labels)
    first = mlflow.sklearn.log_model(
        model,
        name="model",
        input_example=frame.head(2),
        registered_model_name="churn-model",
        pip_requirements=["scikit-learn"],
    )
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_param("C", "1.0")
        mlflow.log_metric("loss", 0.25, step=0, timestamp=1_700_000_001_000)

with mlflow.start_run(run_name="second") as second:
    model = LogisticRegression(C=2.0).fit(frame, labels)
    mlflow.log_metric("auc", 0.95, step=0, timestamp=1_700_000_002_000)
    mlflow.sklearn.log_model(
        model,
        name="model",
        input_example=frame.head(2),
        registered_model_name="churn-model",
        pip_requirements=["scikit-learn"],
    )
client.set_registered_model_alias("churn-model", "champion", "1")
client.set_registered_model_alias("churn-model", "challenger", "2")
# MLflow 2's stages (deprecated in MLflow 3, still in stores): Segue makes them aliases.
client.transition_model_version_stage("churn-model", "2", "Staging")
client.update_registered_model("churn-model", description="who will leave")
client.set_registered_model_tag("churn-model", "team", "growth")


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input


with mlflow.start_run(run_name="custom") as custom:
    mlflow.pyfunc.log_model(
        name="echo", python_model=Echo(), registered_model_name="echo", pip_requirements=["pandas"]
    )

failed = client.create_run(churn, run_name="broken")
client.log_param(failed.info.run_id, "seed", "7")
client.set_terminated(failed.info.run_id, "FAILED", end_time=failed.info.start_time + 5)
gone = client.create_run(churn, run_name="gone")
client.set_terminated(gone.info.run_id, "FINISHED")
client.delete_run(gone.info.run_id)

other = experiment("other")
with mlflow.start_run(experiment_id=other, run_name="solo") as solo:
    mlflow.log_metric("rmse", 3.5, step=2, timestamp=1_700_000_003_000)

out.update(
    churn=churn,
    other=other,
    parent=parent.info.run_id,
    child=child.info.run_id,
    second=second.info.run_id,
    custom=custom.info.run_id,
    failed=failed.info.run_id,
    gone=gone.info.run_id,
    solo=solo.info.run_id,
    model_id=first.model_id,
)
print(json.dumps(out))
