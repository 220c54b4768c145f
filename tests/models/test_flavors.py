"""Flavors: each kind of model saved into a directory and loaded back, predicting the same."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from segue.errors import InvalidArgument
from segue.models.flavors import FLAVORS, Saved, detect_flavor, get_flavor

# TorchScript is deprecated in recent torch releases; the flavor still uses it on purpose.
torch_jit_deprecated = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    # Standardised, so LogisticRegression converges in milliseconds rather than seconds.
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    return load_diabetes(return_X_y=True)


def files_in(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def check_saved(saved: Saved, path: Path) -> None:
    """What every flavor promises about its Saved record."""
    assert sorted(saved.files) == files_in(path)
    assert saved.requirements
    for requirement in saved.requirements:
        name, sep, version = requirement.partition("==")
        assert name and sep and version and "+" not in version, requirement
    assert json.loads(json.dumps(saved.details)) == saved.details
    assert saved.framework_version


def round_trip(model: object, path: Path) -> tuple[Saved, object]:
    flavor = detect_flavor(model)
    saved = flavor.save(model, path)
    check_saved(saved, path)
    return saved, get_flavor(flavor.name).load(path, saved.details)


# --- sklearn ---------------------------------------------------------------------------------


class AddConstant(TransformerMixin, BaseEstimator):
    """A custom transformer: skops cannot vouch for it, so the pipeline falls back to joblib."""

    def __init__(self, constant: float = 1.0) -> None:
        self.constant = constant

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X + self.constant


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogisticRegression(),
        lambda: RandomForestClassifier(n_estimators=10, random_state=0),
        lambda: Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]),
    ],
    ids=["logistic", "forest", "pipeline"],
)
def test_sklearn_classifier_round_trip_with_skops(make, cancer, tmp_path: Path) -> None:
    X, y = cancer
    model = make().fit(X, y)
    saved, loaded = round_trip(model, tmp_path)
    assert saved.files == ("model.skops",)
    assert saved.pickle_based is False
    assert saved.framework == "scikit-learn"
    assert saved.details["format"] == "skops"
    assert {r.split("==")[0] for r in saved.requirements} == {"scikit-learn", "skops", "numpy"}
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_sklearn_regressor_round_trip(diabetes, tmp_path: Path) -> None:
    X, y = diabetes
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    saved, loaded = round_trip(model, tmp_path)
    assert saved.details == {"format": "skops", "trusted": ["sklearn.tree._tree.Tree"]}
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_skops_load_trusts_only_the_recorded_types(cancer, tmp_path: Path) -> None:
    X, y = cancer
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    saved = FLAVORS["sklearn"].save(model, tmp_path)
    assert saved.details["trusted"] == ["sklearn.tree._tree.Tree"]
    with pytest.raises(Exception, match="Untrusted types"):
        FLAVORS["sklearn"].load(tmp_path, {"format": "skops", "trusted": []})


def test_sklearn_pipeline_with_custom_class_falls_back_to_joblib(cancer, tmp_path: Path) -> None:
    X, y = cancer
    model = Pipeline([("add", AddConstant(2.0)), ("clf", LogisticRegression())])
    model.fit(X, y)
    saved, loaded = round_trip(model, tmp_path)
    assert saved.files == ("model.joblib",)
    assert saved.pickle_based is True
    assert saved.details == {"format": "joblib"}
    assert {r.split("==")[0] for r in saved.requirements} == {"scikit-learn", "joblib", "numpy"}
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_sklearn_holding_builtin_eval_is_not_trusted(tmp_path: Path) -> None:
    model = FunctionTransformer(eval, validate=False)
    saved = FLAVORS["sklearn"].save(model, tmp_path)
    assert saved.details == {"format": "joblib"}
    assert saved.pickle_based is True


@pytest.mark.parametrize(
    "details",
    [{}, {"format": "pickle"}, {"format": "skops"}],
    ids=["no-format", "unknown-format", "no-trusted-list"],
)
def test_sklearn_load_rejects_bad_details(details, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="details"):
        FLAVORS["sklearn"].load(tmp_path, details)


# --- python ----------------------------------------------------------------------------------


class ScaledSum:
    """Not an estimator, but it has predict."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def predict(self, X):
        return np.asarray(X).sum(axis=1) * self.scale


def row_max(X):
    return np.asarray(X).max(axis=1)


def test_python_object_round_trip(cancer, tmp_path: Path) -> None:
    X, _ = cancer
    model = ScaledSum(0.5)
    saved, loaded = round_trip(model, tmp_path)
    assert saved.files == ("model.pkl",)
    assert saved.pickle_based is True
    assert saved.framework == "python"
    assert saved.details == {"kind": "object"}
    assert [r.split("==")[0] for r in saved.requirements] == ["cloudpickle"]
    assert isinstance(loaded, ScaledSum)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("function", [row_max, lambda X: np.asarray(X).min(axis=1)])
def test_python_function_round_trip(function, cancer, tmp_path: Path) -> None:
    X, _ = cancer
    saved, loaded = round_trip(function, tmp_path)
    assert saved.details == {"kind": "function"}
    np.testing.assert_array_equal(loaded.predict(X), function(X))
    np.testing.assert_array_equal(loaded.predict(pd.DataFrame(X)), function(X))


def test_python_load_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="kind"):
        FLAVORS["python"].load(tmp_path, {"kind": "module"})


# --- onnx ------------------------------------------------------------------------------------


def to_onnx(model, n_features: int, **options):
    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import FloatTensorType

    return convert(
        model,
        initial_types=[("X", FloatTensorType([None, n_features]))],
        options={id(model): options} if options else None,
    )


def test_onnx_classifier_round_trip(cancer, tmp_path: Path) -> None:
    X, y = cancer
    model = LogisticRegression().fit(X, y)
    proto = to_onnx(model, X.shape[1], zipmap=False)
    saved, loaded = round_trip(proto, tmp_path)
    assert saved.files == ("model.onnx",)
    assert saved.pickle_based is False
    assert saved.framework == "onnxruntime"
    assert saved.details == {
        "format": "onnx",
        "inputs": ["X"],
        "outputs": ["label", "probabilities"],
    }
    assert {r.split("==")[0] for r in saved.requirements} == {"onnxruntime", "numpy"}
    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(X32), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X32), model.predict_proba(X), atol=1e-5)
    # A DataFrame is converted to the float32 the graph declares.
    frame = pd.DataFrame(X)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(X), atol=1e-5)


def test_onnx_zipmap_probabilities_become_a_2d_array(cancer, tmp_path: Path) -> None:
    X, y = cancer
    model = LogisticRegression().fit(X, y)
    _, loaded = round_trip(to_onnx(model, X.shape[1]), tmp_path)
    proba = loaded.predict_proba(pd.DataFrame(X))
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)


def test_onnx_regressor_has_no_predict_proba(diabetes, tmp_path: Path) -> None:
    X, y = diabetes
    model = LinearRegression().fit(X, y)
    _, loaded = round_trip(to_onnx(model, X.shape[1]), tmp_path)
    assert not hasattr(loaded, "predict_proba")
    prediction = loaded.predict(X.astype(np.float32)).ravel()
    np.testing.assert_allclose(prediction, model.predict(X), rtol=1e-4)


# --- torch -----------------------------------------------------------------------------------


@pytest.fixture
def torch_modules():
    pytest.importorskip("torch")
    # State dicts load their class by import path, so the test modules live in a real module.
    here = str(Path(__file__).parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import torch_modules

    return torch_modules


def torch_outputs(module, X: np.ndarray) -> np.ndarray:
    import torch

    module.eval()
    with torch.no_grad():
        return module(torch.as_tensor(X, dtype=torch.float32)).numpy()


@torch_jit_deprecated
def test_torch_scriptable_module_saves_torchscript(torch_modules, cancer, tmp_path: Path) -> None:
    import torch

    X, _ = cancer
    torch.manual_seed(0)
    module = torch_modules.Scriptable()
    saved, loaded = round_trip(module, tmp_path)
    assert saved.files == ("model.pt",)
    assert saved.pickle_based is False
    assert saved.framework == "torch"
    assert saved.details == {"format": "torchscript"}
    assert {r.split("==")[0] for r in saved.requirements} == {"torch", "numpy"}
    expected = torch_outputs(module, X)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    np.testing.assert_array_equal(loaded.predict(pd.DataFrame(X)), expected)
    proba = loaded.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), expected.argmax(axis=1))


@torch_jit_deprecated
def test_torch_script_module_is_saved_as_is(torch_modules, cancer, tmp_path: Path) -> None:
    import torch

    X, _ = cancer
    script = torch.jit.script(torch_modules.Scriptable())
    saved, loaded = round_trip(script, tmp_path)
    assert saved.details == {"format": "torchscript"}
    np.testing.assert_array_equal(loaded.predict(X), torch_outputs(script, X))


@torch_jit_deprecated
def test_torch_unscriptable_module_saves_state_dict(torch_modules, cancer, tmp_path: Path) -> None:
    X, _ = cancer
    module = torch_modules.NotScriptable(width=6)
    saved, loaded = round_trip(module, tmp_path)
    assert saved.files == ("weights.pt",)
    assert saved.pickle_based is False
    assert saved.details == {
        "format": "state_dict",
        "class": "torch_modules:NotScriptable",
        "init_kwargs": {"width": 6},
    }
    expected = torch_outputs(module, X)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    assert loaded.predict_proba(X).shape == (len(X), 3)


@torch_jit_deprecated
def test_torch_unscriptable_local_class_is_refused(torch_modules, tmp_path: Path) -> None:
    class Local(torch_modules.NotScriptable):
        pass

    with pytest.raises(InvalidArgument, match="importable module, or make it scriptable"):
        FLAVORS["torch"].save(Local(), tmp_path)


def test_torch_load_refuses_a_class_that_is_not_a_module(torch_modules, tmp_path: Path) -> None:
    details = {"format": "state_dict", "class": "subprocess:Popen", "init_kwargs": {"args": "x"}}
    with pytest.raises(InvalidArgument, match=r"not a torch\.nn\.Module"):
        FLAVORS["torch"].load(tmp_path, details)


def test_torch_predict_proba_needs_class_columns(torch_modules) -> None:
    import torch

    from segue.models.flavors.torch import TorchModel

    model = TorchModel(torch.nn.Linear(3, 1))
    with pytest.raises(InvalidArgument, match="more than one column"):
        model.predict_proba(np.zeros((2, 3)))


# --- detection -------------------------------------------------------------------------------


def test_detect_flavor_for_each_kind(cancer) -> None:
    X, y = cancer
    estimator = LogisticRegression().fit(X, y)
    assert detect_flavor(estimator).name == "sklearn"
    assert detect_flavor(Pipeline([("clf", LogisticRegression())])).name == "sklearn"
    assert detect_flavor(to_onnx(estimator, X.shape[1])).name == "onnx"
    assert detect_flavor(ScaledSum(1.0)).name == "python"
    assert detect_flavor(row_max).name == "python"


def test_detect_flavor_for_torch(torch_modules) -> None:
    assert detect_flavor(torch_modules.Scriptable()).name == "torch"


@pytest.mark.parametrize("model", [42, "model", {"predict": 1}, ScaledSum], ids=repr)
def test_detect_flavor_refuses_unsupported_objects(model) -> None:
    with pytest.raises(InvalidArgument, match=r"^model: cannot save a .*: it is not a scikit"):
        detect_flavor(model)


def test_get_flavor() -> None:
    assert list(FLAVORS) == ["torch", "onnx", "sklearn", "python"]
    for name, flavor in FLAVORS.items():
        assert get_flavor(name) is flavor
        assert flavor.name == name
    with pytest.raises(InvalidArgument, match="unknown flavor 'keras'"):
        get_flavor("keras")


@pytest.mark.parametrize("name", ["sklearn", "python", "onnx"])
def test_save_needs_an_empty_directory(name, tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(InvalidArgument, match="not empty"):
        FLAVORS[name].save(ScaledSum(1.0), tmp_path)
    with pytest.raises(InvalidArgument, match="not a directory"):
        FLAVORS[name].save(ScaledSum(1.0), tmp_path / "missing")
