"""XGBoost and LightGBM autologging on scikit-learn's breast cancer data set."""

from __future__ import annotations

import json

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer

import segue
from segue.autologging import AutologWarning, autolog
from segue.models.package import Manifest
from segue.tracking.client import get_client

ROUNDS = 6


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]  # LightGBM renames spaces
    return X.iloc[:, :8], y


def only_run() -> str:
    table = segue.search_runs()
    assert len(table) == 1
    return str(table.run_id[0])


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in get_client().metric_history(run_id, key)]


def artifacts(run_id: str) -> set[str]:
    return {entry.path for entry in get_client().list_artifacts(run_id)}


def columns_of(run_id: str) -> list[str] | None:
    raw = get_client().read_artifact(run_id, "model/segue-model.json")
    signature = Manifest.from_json(raw, "model").get_signature()
    assert signature is not None and signature.outputs is not None
    return signature.column_names


def assert_importance(run_id: str, kinds: tuple[str, str], features: list[str]) -> None:
    for kind in kinds:
        assert {f"feature_importance_{kind}.png", f"feature_importance_{kind}.json"} <= artifacts(
            run_id
        )
        png = get_client().read_artifact(run_id, f"feature_importance_{kind}.png")
        assert png.startswith(b"\x89PNG")
    ranked = json.loads(get_client().read_artifact(run_id, f"feature_importance_{kinds[1]}.json"))
    assert set(ranked) <= set(features) and ranked
    assert list(ranked.values()) == sorted(ranked.values(), reverse=True)


# -- XGBoost -----------------------------------------------------------------------------------


def test_xgboost_train_logs_params_eval_steps_importance_and_model(segue_env, cancer):
    X, y = cancer
    autolog(["xgboost"])
    train = xgboost.DMatrix(X.iloc[:400], label=y.iloc[:400])
    valid = xgboost.DMatrix(X.iloc[400:], label=y.iloc[400:])
    params = {"objective": "binary:logistic", "max_depth": 2, "eval_metric": ["logloss", "error"]}
    recorded: dict = {}
    booster = xgboost.train(
        params,
        train,
        ROUNDS,
        evals=[(train, "train"), (valid, "valid")],
        evals_result=recorded,
        verbose_eval=False,
    )
    run_id = only_run()
    stored = segue.get_run(run_id)
    assert stored.data.tags["autolog"] == "xgboost"
    assert stored.data.params["max_depth"] == "2"
    assert stored.data.params["num_boost_round"] == str(ROUNDS)
    for data in ("train", "valid"):
        for metric in ("logloss", "error"):
            assert history(run_id, f"{data}-{metric}") == list(
                enumerate(pytest.approx(v) for v in recorded[data][metric])
            )
    assert_importance(run_id, ("weight", "gain"), list(X.columns))

    loaded = segue.load_model(f"runs:/{run_id}/model")
    expected = booster.predict(xgboost.DMatrix(X.iloc[:10]))
    np.testing.assert_allclose(loaded.predict(X.iloc[:10]), expected, rtol=1e-6)
    assert columns_of(run_id) == list(X.columns)


def test_xgboost_classifier_logs_eval_set_and_training_metrics(segue_env, cancer):
    X, y = cancer
    autolog(["xgboost"])
    model = xgboost.XGBClassifier(n_estimators=ROUNDS, max_depth=2, early_stopping_rounds=3)
    model.fit(X.iloc[:400], y.iloc[:400], eval_set=[(X.iloc[400:], y.iloc[400:])], verbose=False)
    run_id = only_run()  # the booster trained inside the wrapper made no run of its own
    stored = segue.get_run(run_id)
    assert stored.data.params["n_estimators"] == str(ROUNDS)
    assert stored.data.metrics["training_accuracy_score"].value == pytest.approx(
        model.score(X.iloc[:400], y.iloc[:400])
    )
    losses = model.evals_result()["validation_0"]["logloss"]
    assert [v for _, v in history(run_id, "validation_0-logloss")] == pytest.approx(losses)
    assert stored.data.metrics["best_iteration"].value == model.best_iteration
    loaded = segue.load_model(f"runs:/{run_id}/model", trust=True)  # joblib: pickle
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert columns_of(run_id) == list(X.columns)


def test_a_failing_xgboost_training_keeps_its_params_and_fails_its_run(segue_env, cancer):
    X, y = cancer
    autolog(["xgboost"])
    with pytest.raises(xgboost.core.XGBoostError):
        xgboost.train({"objective": "no:such", "max_depth": 3}, xgboost.DMatrix(X, label=y), 2)
    run = segue.get_run(only_run())
    assert run.info.status == "FAILED"
    assert run.data.params["max_depth"] == "3"


# -- LightGBM ----------------------------------------------------------------------------------


def test_lightgbm_train_logs_params_eval_steps_importance_and_model(segue_env, cancer):
    X, y = cancer
    autolog(["lightgbm"])
    train = lightgbm.Dataset(X.iloc[:400], label=y.iloc[:400])
    valid = lightgbm.Dataset(X.iloc[400:], label=y.iloc[400:], reference=train)
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "metric": ["binary_logloss"]}
    mine: dict = {}
    booster = lightgbm.train(
        params,
        train,
        ROUNDS,
        [valid],
        ["valid"],
        None,
        None,
        False,
        [lightgbm.record_evaluation(mine)],  # callbacks given by position: ours joins them
    )
    run_id = only_run()
    assert len(mine["valid"]["binary_logloss"]) == ROUNDS
    stored = segue.get_run(run_id)
    assert stored.data.tags["autolog"] == "lightgbm"
    assert stored.data.params["num_leaves"] == "7"
    losses = [v for _, v in history(run_id, "valid-binary_logloss")]
    assert losses == pytest.approx(mine["valid"]["binary_logloss"])
    assert_importance(run_id, ("split", "gain"), list(X.columns))
    [training] = get_client().list_datasets(run_id)
    assert (training.dataset.n_rows, training.dataset.n_columns) == (400, X.shape[1])
    loaded = segue.load_model(f"runs:/{run_id}/model", trust=True)  # cloudpickle
    np.testing.assert_allclose(loaded.predict(X.iloc[:10]), booster.predict(X.iloc[:10]))
    assert columns_of(run_id) == list(X.columns)


def test_lightgbm_classifier_inside_a_run(segue_env, cancer):
    X, y = cancer
    autolog(["lightgbm"])
    with segue.start_run() as run:
        model = lightgbm.LGBMClassifier(n_estimators=ROUNDS, num_leaves=7, verbose=-1)
        model.fit(X, y, eval_X=(X.iloc[400:],), eval_y=(y.iloc[400:],))
    assert only_run() == run.id
    stored = segue.get_run(run.id)
    assert stored.data.params["num_leaves"] == "7"
    assert "training_roc_auc" in stored.data.metrics
    steps = history(run.id, "valid_0-binary_logloss")
    assert [s for s, _ in steps] == list(range(ROUNDS))
    loaded = segue.load_model(f"runs:/{run.id}/model", trust=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_failure_inside_boosting_autolog_leaves_training_unharmed(segue_env, cancer):
    X, y = cancer
    autolog(["xgboost", "lightgbm"], log_models=False)
    with segue.start_run() as run:
        run.log_param("num_leaves", "mine")
        run.log_param("max_depth", "mine")
        with pytest.warns(AutologWarning, match="params failed, training goes on"):
            booster = lightgbm.train(
                {"objective": "binary", "num_leaves": 7, "verbose": -1},
                lightgbm.Dataset(X, label=y),
                ROUNDS,
            )
        with pytest.warns(AutologWarning, match="params failed, training goes on"):
            model = xgboost.XGBClassifier(n_estimators=ROUNDS, max_depth=2).fit(X, y)
    assert booster.current_iteration() == ROUNDS
    assert model.get_booster().num_boosted_rounds() == ROUNDS
    stored = segue.get_run(run.id)
    assert stored.info.status == "FINISHED"
    assert "training_accuracy_score" in stored.data.metrics  # logged despite the failure
    assert "feature_importance_split.png" in artifacts(run.id)
