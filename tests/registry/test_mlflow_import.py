"""Importing MLflow model folders, written here by hand the way MLflow 3 writes them."""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import segue
from segue.errors import InvalidArgument
from segue.registry.mlflow_import import EXPERIMENT, import_mlflow_model

MLFLOW_RUN_ID = "f912ede2f0694a7cb2f3619acffab4b4"

# What mlflow.sklearn.save_model wrote (mlflow 3.17.2); the {placeholders} vary per test.
SKLEARN_MLMODEL = """\
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: {file}
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: {file}
    serialization_format: {fmt}
    sklearn_version: 1.9.1
    skops_trusted_types: null
is_signature_from_type_hint: false
mlflow_version: 3.17.2
model_id: m-9b4f63de28704523939f2557b24a74c0
model_size_bytes: 12973
model_uuid: m-9b4f63de28704523939f2557b24a74c0
prompts: null
run_id: {run_id}
type_hint_from_example: false
utc_time_created: '2026-11-27 02:15:22.223529'
"""

PYFUNC_SKLEARN_MLMODEL = """\
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    {key}: model.pkl
    predict_fn: predict
    python_version: 3.11.7
mlflow_version: 3.17.2
model_uuid: ac5fa6fec59641a5a0a2d0f74a23d780
utc_time_created: '2026-11-27 02:15:39.919279'
"""

PYTHON_MODEL_MLMODEL = """\
flavors:
  python_function:
    cloudpickle_version: 3.1.3
    code: null
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.11.7
    streamable: false
mlflow_version: 3.17.2
model_id: null
model_size_bytes: 1341
model_uuid: 8640f6475fd542ddb0d8450e04b68efb
prompts: null
utc_time_created: '2026-11-27 02:16:29.515209'
"""

# Appended to an MLmodel for a DataFrame input example (MLflow's YAML folds the JSON string).
DATAFRAME_EXAMPLE = """\
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: {orient}
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{{"type": "double", "name": "sepal length (cm)", "required": true}}, {{"type":
    "double", "name": "sepal width (cm)", "required": true}}, {{"type": "double", "name":
    "petal length (cm)", "required": true}}, {{"type": "double", "name": "petal width
    (cm)", "required": true}}, {{"type": "boolean", "name": "flag", "required": true}},
    {{"type": "long", "name": "n", "required": true}}, {{"type": "integer", "name": "i32",
    "required": true}}, {{"type": "float", "name": "f32", "required": true}}]'
  outputs: '[{{"type": "long", "required": true}}]'
  params: null
"""

NDARRAY_EXAMPLE = """\
saved_input_example_info:
  artifact_path: input_example.json
  serving_input_path: serving_input_example.json
  type: ndarray
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
"""


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    """Iris plus a bool, an int64, an int32 and a float32 column, as MLflow types them."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X["flag"] = X["sepal length (cm)"] > 5
    X["n"] = (X["petal width (cm)"] * 10).round().astype("int64")
    X["i32"] = (X["petal length (cm)"] * 10).round().astype("int32")
    X["f32"] = X["sepal width (cm)"].astype("float32")
    return X, y


@pytest.fixture(scope="module")
def estimator(iris) -> Pipeline:
    X, y = iris
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)


def write_model(folder: Path, mlmodel: str, files: dict[str, bytes]) -> Path:
    folder.mkdir()
    (folder / "MLmodel").write_text(mlmodel)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==1.9.1\n")
    return folder


def split_example(X: pd.DataFrame) -> bytes:
    return X.to_json(orient="split", index=False).encode()


def records_example(X: pd.DataFrame) -> bytes:
    return X.to_json(orient="records").encode()


def imported_run(version):
    return segue.get_registry().tracking.get_run(version.run_id)


# --- sklearn ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "dump"),
    [("cloudpickle", cloudpickle.dumps), ("pickle", pickle.dumps)],
)
def test_sklearn_pickle_formats_predict_like_the_original(
    segue_env, tmp_path, iris, estimator, fmt, dump
):
    X, _ = iris
    mlmodel = SKLEARN_MLMODEL.format(file="model.pkl", fmt=fmt, run_id=MLFLOW_RUN_ID)
    folder = write_model(
        tmp_path / "mlflow-model",
        mlmodel + DATAFRAME_EXAMPLE.format(orient="split"),
        {"model.pkl": dump(estimator), "input_example.json": split_example(X[:3])},
    )

    version = import_mlflow_model(str(folder), "iris", segue.get_registry()).version

    assert (version.model_name, version.version) == ("iris", 1)
    loaded = segue.load_model("models:/iris/1")
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
    run = imported_run(version)
    assert run.info.experiment_name == EXPERIMENT
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.source"] == str(folder)
    assert run.data.tags["mlflow.run_id"] == MLFLOW_RUN_ID


def test_signature_types_the_input_example_columns(segue_env, tmp_path, iris, estimator):
    X, _ = iris
    folder = write_model(
        tmp_path / "m",
        SKLEARN_MLMODEL.format(file="model.pkl", fmt="cloudpickle", run_id=MLFLOW_RUN_ID)
        + DATAFRAME_EXAMPLE.format(orient="records"),
        {"model.pkl": cloudpickle.dumps(estimator), "input_example.json": records_example(X[:3])},
    )

    import_mlflow_model(str(folder), "iris", segue.get_registry())

    loaded = segue.load_model("models:/iris/1")
    dtypes = {spec.name: spec.dtype for spec in loaded.signature.inputs}
    assert dtypes == {
        "sepal length (cm)": "float64",
        "sepal width (cm)": "float64",
        "petal length (cm)": "float64",
        "petal width (cm)": "float64",
        "flag": "bool",
        "n": "int64",
        "i32": "int32",
        "f32": "float32",
    }
    assert loaded.classes == [0, 1, 2]
    # JSON records (the serving format) are conformed to those dtypes before predicting.
    records = json.loads(records_example(X[:20]))
    np.testing.assert_array_equal(loaded.predict(records), estimator.predict(X[:20]))


def test_skops_format_loads_without_pickle(segue_env, tmp_path, iris, estimator):
    X, _ = iris
    folder = write_model(
        tmp_path / "m",
        SKLEARN_MLMODEL.format(file="model.skops", fmt="skops", run_id=MLFLOW_RUN_ID),
        {"model.skops": skops.io.dumps(estimator)},
    )

    version = import_mlflow_model(str(folder), "iris", segue.get_registry()).version

    loaded = segue.load_model(f"models:/iris/{version.version}")
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    assert loaded.signature is None  # no input example, so nothing to infer one from


class AddConstant(TransformerMixin, BaseEstimator):
    """Not a scikit-learn, NumPy or SciPy type: a skops file holding it is refused."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X + 1.0


def test_skops_file_with_other_types_is_refused(segue_env, tmp_path, iris):
    X, y = iris
    model = Pipeline([("add", AddConstant()), ("clf", LogisticRegression(max_iter=1000))])
    model.fit(X, y)
    folder = write_model(
        tmp_path / "m",
        SKLEARN_MLMODEL.format(file="model.skops", fmt="skops", run_id=MLFLOW_RUN_ID),
        {"model.skops": skops.io.dumps(model)},
    )

    with pytest.raises(InvalidArgument, match="AddConstant"):
        import_mlflow_model(str(folder), "iris", segue.get_registry())
    assert segue.get_registry().list_models() == []


@pytest.mark.parametrize("key", ["model_path", "data"])  # "data" is what MLflow 1.x wrote
def test_pyfunc_with_sklearn_loader(segue_env, tmp_path, iris, estimator, key):
    X, _ = iris
    folder = write_model(
        tmp_path / "m",
        PYFUNC_SKLEARN_MLMODEL.format(key=key),
        {"model.pkl": pickle.dumps(estimator)},
    )

    version = import_mlflow_model(str(folder), "iris", segue.get_registry()).version

    loaded = segue.load_model("models:/iris/1")
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    tags = imported_run(version).data.tags
    assert tags["mlflow.source"] == str(folder)
    assert "mlflow.run_id" not in tags  # a saved (not logged) model names no run


def test_ndarray_example_with_tensor_signature(segue_env, tmp_path):
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    folder = write_model(
        tmp_path / "m",
        SKLEARN_MLMODEL.format(file="model.pkl", fmt="cloudpickle", run_id=MLFLOW_RUN_ID)
        + NDARRAY_EXAMPLE,
        {
            "model.pkl": cloudpickle.dumps(model),
            "input_example.json": json.dumps(X[:3].tolist()).encode(),
        },
    )

    import_mlflow_model(str(folder), "iris", segue.get_registry())

    loaded = segue.load_model("models:/iris/1")
    assert loaded.signature.inputs == segue_tensor("float64", (-1, 4))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def segue_tensor(dtype: str, shape: tuple[int, ...]):
    from segue.models.signature import TensorSpec

    return TensorSpec(dtype, shape)


def test_relative_path_is_recorded_absolute(segue_env, tmp_path, estimator, monkeypatch):
    write_model(
        tmp_path / "m",
        SKLEARN_MLMODEL.format(file="model.pkl", fmt="pickle", run_id=MLFLOW_RUN_ID),
        {"model.pkl": pickle.dumps(estimator)},
    )
    monkeypatch.chdir(tmp_path)

    version = import_mlflow_model("m", "iris", segue.get_registry()).version

    assert imported_run(version).data.tags["mlflow.source"] == str(tmp_path / "m")


def test_second_import_is_the_next_version(segue_env, tmp_path, estimator):
    for folder in ("a", "b"):
        write_model(
            tmp_path / folder,
            SKLEARN_MLMODEL.format(file="model.pkl", fmt="pickle", run_id=MLFLOW_RUN_ID),
            {"model.pkl": pickle.dumps(estimator)},
        )
    registry = segue.get_registry()

    first = import_mlflow_model(str(tmp_path / "a"), "iris", registry).version
    second = import_mlflow_model(str(tmp_path / "b"), "iris", registry).version

    assert (first.version, second.version) == (1, 2)


def test_example_the_model_cannot_predict_on_fails_the_run(segue_env, tmp_path, iris, estimator):
    X, _ = iris
    folder = write_model(
        tmp_path / "m",
        SKLEARN_MLMODEL.format(file="model.pkl", fmt="pickle", run_id=MLFLOW_RUN_ID)
        + DATAFRAME_EXAMPLE.format(orient="split"),
        # Missing the columns the estimator was fitted on.
        {"model.pkl": pickle.dumps(estimator), "input_example.json": split_example(X.iloc[:3, :4])},
    )
    registry = segue.get_registry()

    with pytest.raises(InvalidArgument, match="could not predict"):
        import_mlflow_model(str(folder), "iris", registry)

    runs = segue.search_runs(experiment=EXPERIMENT)
    assert runs["status"].tolist() == ["FAILED"]
    assert registry.list_models() == []


# --- python_function with a custom PythonModel -------------------------------------------------


def test_python_model_without_mlflow_is_refused(segue_env, tmp_path, monkeypatch):
    folder = write_model(tmp_path / "m", PYTHON_MODEL_MLMODEL, {"python_model.pkl": b"not read"})
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError

    with pytest.raises(InvalidArgument, match="needs MLflow"):
        import_mlflow_model(str(folder), "custom", segue.get_registry())
    assert segue.get_registry().list_models() == []


def test_python_model_with_mlflow(segue_env, tmp_path):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")

    class Doubler(mlflow_pyfunc.PythonModel):  # local, so cloudpickle stores it by value
        def predict(self, context, model_input):
            return model_input * 2

    folder = write_model(
        tmp_path / "m", PYTHON_MODEL_MLMODEL, {"python_model.pkl": cloudpickle.dumps(Doubler())}
    )

    import_mlflow_model(str(folder), "custom", segue.get_registry())

    loaded = segue.load_model("models:/custom/1")
    np.testing.assert_array_equal(loaded.predict(np.arange(4.0)), np.arange(4.0) * 2)


# --- what cannot be imported -----------------------------------------------------------------


def test_not_a_directory(segue_env, tmp_path):
    file = tmp_path / "model.pkl"
    file.write_bytes(b"")

    with pytest.raises(InvalidArgument, match="not a directory"):
        import_mlflow_model(str(file), "m", segue.get_registry())
    with pytest.raises(InvalidArgument, match="not a directory"):
        import_mlflow_model(str(tmp_path / "nowhere"), "m", segue.get_registry())


def test_folder_without_mlmodel(segue_env, tmp_path):
    (tmp_path / "m").mkdir()

    with pytest.raises(InvalidArgument, match="no MLmodel file"):
        import_mlflow_model(str(tmp_path / "m"), "m", segue.get_registry())


@pytest.mark.parametrize(
    ("flavors", "named"),
    [
        (
            "  python_function:\n    loader_module: mlflow.xgboost\n    model_path: model.xgb\n"
            "  xgboost:\n    data: model.xgb\n    model_class: xgboost.sklearn.XGBClassifier\n",
            "python_function, xgboost; python_function loader_module mlflow.xgboost",
        ),
        ("  keras:\n    data: data\n", "found: keras"),
        ("  {}\n", "found: none"),
    ],
)
def test_unsupported_flavor_names_the_flavors_found(segue_env, tmp_path, flavors, named):
    mlmodel = "flavors:\n" + flavors + "mlflow_version: 3.17.2\n"
    folder = write_model(tmp_path / "m", mlmodel, {})

    with pytest.raises(InvalidArgument, match=named.replace("(", r"\(")):
        import_mlflow_model(str(folder), "m", segue.get_registry())
    assert segue.get_registry().list_models() == []


@pytest.mark.parametrize(
    ("mlmodel", "message"),
    [
        ("flavors: [\n", "not valid YAML"),
        ("flavors: !!python/object:os.system {}\n", "not valid YAML"),
        ("mlflow_version: 3.17.2\n", "no 'flavors'"),
        (SKLEARN_MLMODEL.format(file="../x.pkl", fmt="pickle", run_id="r"), "outside"),
        (SKLEARN_MLMODEL.format(file="gone.pkl", fmt="pickle", run_id="r"), "missing"),
        (SKLEARN_MLMODEL.format(file="model.pkl", fmt="joblib", run_id="r"), "joblib"),
    ],
)
def test_malformed_folders(segue_env, tmp_path, estimator, mlmodel, message):
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(estimator))
    folder = write_model(tmp_path / "m", mlmodel, {"model.pkl": pickle.dumps(estimator)})

    with pytest.raises(InvalidArgument, match=message):
        import_mlflow_model(str(folder), "m", segue.get_registry())


# -- real MLflow 3.17 stores (tests/models/fixtures, written by mlflow3_train.py) -------------

FIXTURES = Path(__file__).parents[1] / "models" / "fixtures"
#: The run and git commit mlflow3_train.py ran at, as MLflow 3.17.2 recorded them.
FILE_RUN, FILE_COMMIT = (
    "5cc710fb81c146c2809f21e61b80ce87",
    "13bd978f443608fd48098658cb45c17b162c0284",
)
SQLITE_RUN = "92a0d0e93eb4473c9c462ccc38f4814e"
CHURN = pd.DataFrame({"tenure": [1.0, 5.0, 2.0, 9.0], "calls": [4, 0, 3, 1]})


def mlflow3_store(tmp_path: Path, kind: str) -> Path:
    """A copy of a fixture store (MLflow writes into stores; tests never touch the originals)."""
    root = tmp_path / kind
    shutil.copytree(FIXTURES / f"mlflow3_{kind}", root)
    packed = root / "mlflow.db.gz"
    if packed.exists():
        (root / "mlflow.db").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    return root


def the_model(root: Path) -> Path:
    (artifacts,) = root.glob("mlruns/*/models/m-*/artifacts")
    return artifacts


def test_mlflow3_file_store_brings_params_metrics_and_the_mlflow_source(segue_env, tmp_path):
    root = mlflow3_store(tmp_path, "file")
    registry = segue.get_registry()

    done = import_mlflow_model(the_model(root), "churn", registry)

    assert done.mlflow_run_id == FILE_RUN
    lineage = registry.lineage("churn", 1)
    assert lineage["params"] == {"C": "0.5", "model": "logistic"}
    assert lineage["metrics"] == {"loss": 0.3, "roc_auc": 0.97}
    loss = segue.get_run(done.version.run_id)
    assert [m.value for m in registry.tracking.metric_history(loss.info.id, "loss")] == [
        0.69,
        0.41,
        0.30,
    ]
    # The code that trained it is MLflow's script and commit, not Segue's own binary.
    assert lineage["code"] == {"commit": FILE_COMMIT, "dirty": None, "entry_point": "train.py"}
    assert lineage["tags"]["mlflow.run_id"] == FILE_RUN
    assert lineage["tags"]["mlflow.model_id"].startswith("m-")
    # So the gates judge MLflow's metrics: the move passes.
    registry.add_gate("churn", "champion", "metrics.roc_auc >= 0.95")
    assert registry.set_alias("churn", "champion", 1).report[0].passed
    model = segue.load_model("models:/churn@champion")
    assert model.predict(CHURN).tolist() == [1, 0, 1, 0]


def test_mlflow3_default_sqlite_store_is_read_next_to_mlruns(segue_env, tmp_path):
    root = mlflow3_store(tmp_path, "sqlite")

    done = import_mlflow_model(the_model(root), "churn", segue.get_registry())

    assert done.mlflow_run is not None
    assert done.mlflow_run.location == f"sqlite:///{root / 'mlflow.db'}"
    lineage = segue.get_registry().lineage("churn", 1)
    assert lineage["params"] == {"C": "0.5", "model": "logistic"}
    assert lineage["metrics"] == {"loss": 0.3, "roc_auc": 0.97}
    assert lineage["code"]["entry_point"] == "train.py"
    assert lineage["code"]["commit"] is not None


@pytest.mark.parametrize(
    "where",
    [
        lambda root: the_model(root).parent,  # models/m-<id>
        lambda root: root / "mlruns" / the_model(root).parents[2].name / FILE_RUN,  # the run
    ],
    ids=["logged-model", "run"],
)
def test_the_folder_above_the_mlmodel_is_accepted(segue_env, tmp_path, where):
    root = mlflow3_store(tmp_path, "file")

    done = import_mlflow_model(where(root), "churn", segue.get_registry())

    assert done.mlflow_run is not None and done.mlflow_run.run_id == FILE_RUN


def test_mlflow2_layout_runs_folder_with_artifacts_model(segue_env, tmp_path):
    # MLflow 2 kept the model inside its run: mlruns/<exp>/<run>/artifacts/model.
    root = mlflow3_store(tmp_path, "file")
    model = the_model(root)
    run = model.parents[2] / FILE_RUN
    shutil.rmtree(run / "outputs")
    shutil.move(model, run / "artifacts" / "model")
    shutil.rmtree(model.parents[1])

    done = import_mlflow_model(run / "artifacts" / "model", "churn", segue.get_registry())
    again = import_mlflow_model(run, "churn", segue.get_registry())

    assert done.mlflow_run is not None and done.mlflow_run.params["C"] == "0.5"
    assert again.version.version == 2
    assert segue.get_registry().lineage("churn", 2)["metrics"]["roc_auc"] == 0.97


def test_tracking_uri_points_at_a_store_elsewhere(segue_env, tmp_path):
    root = mlflow3_store(tmp_path, "sqlite")
    shutil.move(root / "mlruns", tmp_path / "elsewhere")
    (moved,) = (tmp_path / "elsewhere").glob("*/models/m-*/artifacts")

    alone = import_mlflow_model(moved, "churn", segue.get_registry())
    told = import_mlflow_model(
        moved, "churn", segue.get_registry(), tracking_uri=f"sqlite:///{root / 'mlflow.db'}"
    )

    assert (alone.mlflow_run, alone.mlflow_run_id) == (None, SQLITE_RUN)
    assert told.mlflow_run is not None and told.mlflow_run.params["model"] == "logistic"
    with pytest.raises(InvalidArgument, match="no MLflow run"):
        import_mlflow_model(moved, "churn", segue.get_registry(), tracking_uri=str(tmp_path))
    with pytest.raises(InvalidArgument, match="no such SQLite file"):
        import_mlflow_model(moved, "c", segue.get_registry(), tracking_uri="sqlite:///nope.db")
    with pytest.raises(InvalidArgument, match="SQLite database"):
        import_mlflow_model(moved, "c", segue.get_registry(), tracking_uri="postgresql://db/x")
