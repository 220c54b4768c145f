"""scikit-learn autologging on the iris and diabetes data sets that scikit-learn ships."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import segue
from segue import autologging
from segue.autologging import AutologWarning, autolog, enabled
from segue.errors import InvalidArgument
from segue.models.package import Manifest
from segue.models.signature import Signature
from segue.tracking.client import get_client


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def runs() -> pd.DataFrame:
    return segue.search_runs(order_by=["start_time"])


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in get_client().metric_history(run_id, key)]


def artifacts(run_id: str) -> set[str]:
    return {entry.path for entry in get_client().list_artifacts(run_id)}


def signature_of(run_id: str, path: str = "model") -> Signature:
    """The signature in the manifest of the package logged at ``path``."""
    raw = get_client().read_artifact(run_id, f"{path}/segue-model.json")
    signature = Manifest.from_json(raw, path).get_signature()
    assert signature is not None
    return signature


def test_a_fit_outside_a_run_gets_a_run_with_params_metrics_and_a_signed_model(segue_env, iris):
    X, y = iris
    assert autolog(["sklearn"]) == ["sklearn"]
    model = LogisticRegression(C=0.5, max_iter=500).fit(X, y)

    [row] = runs().to_dict("records")
    run = segue.get_run(row["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["autolog"] == "sklearn"
    assert run.data.tags["estimator_name"] == "LogisticRegression"
    assert run.data.params["C"] == "0.5"
    assert run.data.params["max_iter"] == "500"
    metrics = {k: m.value for k, m in run.data.metrics.items()}
    assert metrics["training_score"] == pytest.approx(model.score(X, y))
    assert metrics["training_accuracy_score"] == pytest.approx(model.score(X, y))
    for name in ("precision", "recall", "f1"):
        assert 0.9 < metrics[f"training_{name}_score"] <= 1
    assert metrics["training_log_loss"] > 0
    assert 0.9 < metrics["training_roc_auc"] <= 1

    loaded = segue.load_model(f"runs:/{run.info.id}/model")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    signature = signature_of(run.info.id)
    assert signature.column_names == list(X.columns)
    assert list(signature.classes) == [0, 1, 2]
    assert "model/input_example.json" in artifacts(run.info.id)
    [training] = get_client().list_datasets(run.info.id)
    assert (training.name, training.context) == ("training", "train")
    assert (training.dataset.n_rows, training.dataset.n_columns) == X.shape
    manifest = get_client().read_artifact(run.info.id, "model/segue-model.json")
    assert Manifest.from_json(manifest, "model").datasets == [
        {"name": "training", "context": "train", "digest": training.dataset.digest}
    ]


def test_a_fit_inside_a_run_logs_into_it(segue_env, iris):
    X, y = iris
    autolog(["sklearn"], log_models=False)
    with segue.start_run(experiment="mine") as run:
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    [row] = runs().to_dict("records")
    assert row["run_id"] == run.id  # the pipeline's steps made no runs of their own
    stored = segue.get_run(run.id)
    assert stored.data.params["logisticregression__max_iter"] == "500"
    assert stored.data.tags["estimator_name"] == "Pipeline"
    assert "training_accuracy_score" in stored.data.metrics
    assert not any(path.startswith("model/") for path in artifacts(run.id))
    assert [d.name for d in get_client().list_datasets(run.id)] == ["training"]


def test_methods_scikit_learn_makes_available_only_sometimes_stay_so(segue_env, iris):
    X, _ = iris
    autolog(["sklearn"], log_models=False)
    transformer = make_pipeline(StandardScaler(), PCA(n_components=2))
    assert transformer.fit_transform(X).shape == (150, 2)
    assert len(runs()) == 1  # the pipeline's run, none for its steps
    assert segue.get_run(runs().run_id[0]).data.tags["estimator_name"] == "Pipeline"
    assert not hasattr(make_pipeline(LogisticRegression()), "fit_transform")
    labels = LocalOutlierFactor(n_neighbors=5).fit_predict(X)
    assert set(labels) <= {-1, 1}
    assert len(runs()) == 2


def test_a_regressor_logs_regression_metrics(segue_env):
    X, y = load_diabetes(return_X_y=True)
    autolog(["sklearn"], log_models=False)
    model = Ridge(alpha=0.1).fit(X, y)
    metrics = {k: m.value for k, m in segue.get_run(runs().run_id[0]).data.metrics.items()}
    predicted = model.predict(X)
    mse = float(np.mean((predicted - y) ** 2))
    assert metrics["training_mean_squared_error"] == pytest.approx(mse)
    assert metrics["training_root_mean_squared_error"] == pytest.approx(mse**0.5)
    assert metrics["training_r2_score"] == pytest.approx(model.score(X, y))


def test_grid_search_logs_one_child_run_per_candidate(segue_env, iris):
    X, y = iris
    autolog(["sklearn"])
    grid = {"C": [0.01, 0.1, 1.0], "fit_intercept": [True, False]}
    search = GridSearchCV(LogisticRegression(max_iter=500), grid, cv=3).fit(X, y)

    table = runs()
    parent = table[table.parent_run_id.isna()]
    children = table[table.parent_run_id.notna()]
    assert len(parent) == 1 and len(children) == 6  # no run for the 19 inner fits
    parent_id = parent.run_id.iloc[0]
    assert set(children.parent_run_id) == {parent_id}
    stored = segue.get_run(parent_id)
    assert stored.data.params["best_C"] == str(search.best_params_["C"])
    assert stored.data.metrics["best_cv_score"].value == pytest.approx(search.best_score_)
    csv = get_client().read_artifact(parent_id, "cv_results.csv")
    assert len(pd.read_csv(io.BytesIO(csv))) == 6
    best = segue.load_model(f"runs:/{parent_id}/model")
    np.testing.assert_array_equal(best.predict(X), search.best_estimator_.predict(X))

    results = search.cv_results_
    for _, child in children.iterrows():
        data = segue.get_run(child.run_id).data
        i = int(data.tags["candidate_index"])
        assert data.params == {k: str(v) for k, v in results["params"][i].items()}
        assert data.metrics["mean_test_score"].value == pytest.approx(results["mean_test_score"][i])
        assert data.metrics["rank_test_score"].value == results["rank_test_score"][i]
        assert data.metrics["split2_test_score"].value == pytest.approx(
            results["split2_test_score"][i]
        )
        assert segue.get_run(child.run_id).info.status == "FINISHED"


def test_max_tuning_runs_keeps_the_best_candidates(segue_env, iris):
    X, y = iris
    autolog(["sklearn"], log_models=False, max_tuning_runs=2)
    grid = {"C": [0.001, 0.01, 1.0, 10.0]}
    search = RandomizedSearchCV(
        LogisticRegression(max_iter=500), grid, n_iter=4, cv=3, random_state=0
    ).fit(X, y)
    children = runs().dropna(subset=["parent_run_id"])
    assert len(children) == 2
    ranks = sorted(segue.get_run(r).data.metrics["rank_test_score"].value for r in children.run_id)
    assert ranks == sorted(search.cv_results_["rank_test_score"])[:2]


def test_cross_val_score_logs_each_fold_as_a_step(segue_env, iris):
    X, y = iris
    autolog(["sklearn"])
    with segue.start_run() as run:
        scores = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=4)
    assert len(runs()) == 1  # the folds' fits logged nothing of their own
    assert history(run.id, "cv_test_score") == [(i, pytest.approx(s)) for i, s in enumerate(scores)]
    stored = segue.get_run(run.id).data.metrics
    assert stored["cv_test_score_mean"].value == pytest.approx(scores.mean())
    assert stored["cv_test_score_std"].value == pytest.approx(scores.std())


# -- autologging never breaks training ----------------------------------------------------


def test_failures_inside_autolog_are_warnings_and_training_goes_on(segue_env, iris):
    X, y = iris
    autolog(["sklearn"])
    with segue.start_run() as run:
        run.log_param("C", "set by the user")
        first = LogisticRegression(C=2.0, max_iter=500)
        with pytest.warns(AutologWarning, match="params failed, training goes on: Conflict"):
            assert first.fit(X, y) is first
        # The same run already holds a model: logging the second one fails, the fit does not.
        second = LogisticRegression(C=2.0, max_iter=500)
        with pytest.warns(AutologWarning) as caught:
            second.fit(X, y)
        assert "logging the model 'model' failed" in str(caught[-1].message)
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    stored = segue.get_run(run.id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params["C"] == "set by the user"
    assert "training_accuracy_score" in stored.data.metrics  # what could be logged was


def test_warnings_turned_into_errors_still_do_not_stop_training(segue_env, iris, caplog):
    X, y = iris
    autolog(["sklearn"], log_models=False)
    with segue.start_run() as run, warnings.catch_warnings():
        run.log_param("C", "taken")
        warnings.simplefilter("error")
        model = LogisticRegression(C=3.0, max_iter=500).fit(X, y)
    assert model.coef_.shape == (3, 4)
    assert "training goes on" in caplog.text


def test_a_failing_fit_fails_its_run_and_raises_unchanged(segue_env, iris):
    X, y = iris
    autolog(["sklearn"])
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression().fit(X.assign(petal=np.nan), y)
    [row] = runs().to_dict("records")
    assert row["status"] == "FAILED"
    assert row["params.C"] == "1.0"  # logged before the fit
    assert "ValueError" in segue.get_run(row["run_id"]).info.error
    assert segue.active_run() is None


# -- turning it on and off ----------------------------------------------------------------


def test_disable_restores_the_original_fit(segue_env, iris):
    X, y = iris
    original = LogisticRegression.fit
    autolog(["sklearn"])
    assert LogisticRegression.fit is not original
    autolog(["sklearn"], disable=True)
    assert LogisticRegression.fit is original
    LogisticRegression(max_iter=500).fit(X, y)
    assert runs().empty


def test_start_run_autolog_lasts_as_long_as_the_run(segue_env, iris):
    X, y = iris
    with segue.start_run(autolog=True) as run:
        assert "sklearn" in enabled()
        LogisticRegression(max_iter=500).fit(X, y)
    assert enabled() == []
    assert "training_score" in segue.get_run(run.id).data.metrics
    LogisticRegression(max_iter=500).fit(X, y)
    assert len(runs()) == 1


def test_start_run_autolog_leaves_autolog_on_when_it_was_on(segue_env):
    autolog(["sklearn"], log_models=False)
    with segue.start_run(autolog=True):
        pass
    assert enabled() == ["sklearn"]


def test_a_framework_that_cannot_be_patched_is_a_warning_and_the_others_go_on(monkeypatch):
    # As if autologging's module for XGBoost did not match the installed XGBoost.
    monkeypatch.setitem(autologging.FRAMEWORKS, "xgboost", "segue.autologging.gone")
    with pytest.warns(AutologWarning, match="turning on xgboost autologging failed"):
        assert autolog(["sklearn", "xgboost"], log_models=False) == ["sklearn"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frameworks": ["keras"]}, "frameworks: unknown 'keras'"),
        ({"max_tuning_runs": -1}, "max_tuning_runs must be None or a non-negative integer"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        autolog(**kwargs)
