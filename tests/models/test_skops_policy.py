"""What a skops file may name: classes and pure functions, never a function that writes files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from segue.errors import InvalidArgument
from segue.models import skops_policy
from segue.models.flavors import FLAVORS
from segue.models.mlflow_import import _load_skops

X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 3.0], [3.0, 2.0]])
Y = np.array([0, 0, 1, 1])


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("sklearn.pipeline.Pipeline", True),
        ("sklearn.tree._tree.Tree", True),
        ("numpy.dtype", True),
        ("numpy.log1p", True),  # a ufunc
        ("numpy.clip", True),
        ("sklearn.feature_selection.f_classif", True),
        ("scipy.special.expit", True),
        ("builtins.slice", True),
        ("numpy.savetxt", False),
        ("numpy.save", False),
        ("numpy.load", False),
        ("numpy.fromfile", False),
        ("numpy.memmap", False),
        ("numpy.lib._npyio_impl.savetxt", False),
        ("scipy.io.savemat", False),
        ("sklearn.datasets.dump_svmlight_file", False),
        ("builtins.open", False),
        ("builtins.eval", False),
        ("os.system", False),
        ("numpy.no_such_name", False),
    ],
)
def test_the_policy(name: str, safe: bool) -> None:
    assert skops_policy.safe(name) is safe


def _writer() -> Pipeline:
    """A model whose predict writes the file its input names (the text is the attacker's)."""
    return make_pipeline(
        FunctionTransformer(np.array_str),
        FunctionTransformer(np.savetxt, kw_args={"X": np.zeros(1), "header": "import os"}),
    )


def test_a_model_holding_a_file_writer_is_not_saved_as_skops(tmp_path: Path) -> None:
    saved = FLAVORS["sklearn"].save(_writer(), tmp_path)
    assert saved.details == {"format": "joblib"}
    assert saved.pickle_based is True


def test_a_package_whose_details_trust_a_file_writer_is_refused(tmp_path: Path) -> None:
    import skops.io

    skops.io.dump(_writer(), tmp_path / "model.skops")
    names = sorted(skops.io.get_untrusted_types(file=tmp_path / "model.skops"))
    assert "numpy.savetxt" in names
    with pytest.raises(InvalidArgument, match=r"numpy\.savetxt"):
        FLAVORS["sklearn"].load(tmp_path, {"format": "skops", "trusted": names})


def test_an_mlflow_skops_file_naming_a_file_writer_is_refused(tmp_path: Path) -> None:
    import skops.io

    skops.io.dump(_writer(), tmp_path / "model.skops")
    with pytest.raises(InvalidArgument, match=r"numpy\.savetxt"):
        _load_skops(tmp_path / "model.skops")


@pytest.mark.parametrize(
    "model",
    [
        make_pipeline(StandardScaler(), LogisticRegression()),
        make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()),
        make_pipeline(SelectKBest(f_classif, k=1), LogisticRegression()),
    ],
    ids=["scaler", "log1p", "select-k-best"],
)
def test_common_models_still_save_and_load_as_skops(model: Pipeline, tmp_path: Path) -> None:
    model.fit(X, Y)
    saved = FLAVORS["sklearn"].save(model, tmp_path)
    assert saved.details["format"] == "skops"
    loaded = FLAVORS["sklearn"].load(tmp_path, saved.details)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert _load_skops(tmp_path / "model.skops").predict(X).tolist() == model.predict(X).tolist()
