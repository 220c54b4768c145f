"""Production performance: predictions joined to feedback labels, per window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segue.errors import InvalidArgument
from segue.monitoring.labels import LabelRule
from segue.monitoring.performance import (
    NOT_PER_ROW,
    classification_metrics,
    join_feedback,
    regression_metrics,
    score,
)
from segue.monitoring.service import Monitor
from segue.registry.service import get_registry


@pytest.fixture
def monitor(segue_env) -> Monitor:
    return Monitor(get_registry(), segue_env.artifact_uri)


@pytest.fixture
def trained(segue_env, ops):
    return ops.train_cancer()


def test_labels_join_by_request_id_per_window_next_to_training_metrics(
    segue_env, ops, trained, monitor
) -> None:
    X, y = trained.X.iloc[:240], trained.y.iloc[:240].to_numpy()
    proba = trained.pipeline.predict_proba(X)
    outputs = [
        {"predict": int(p), "predict_proba": q.tolist()}
        for p, q in zip(trained.pipeline.predict(X), proba, strict=True)
    ]
    # 240 requests 30 s apart: two hours, two windows of 120.
    ids = ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X, outputs, step=30)
    labelled = 200  # the last 40 requests have no label yet
    wrong = y.copy()
    wrong[:10] = 1 - wrong[:10]  # ten labels disagree with the model in the first hour
    ops.log_feedback(
        segue_env.artifact_uri, "cancer", ids[:labelled], wrong[:labelled], [ops.T0 + 9000] * 200
    )

    report = monitor.performance("models:/cancer/1", window=3600)

    assert report.task == "classification" and report.classes == [0, 1]
    assert (report.n_predictions, report.n_labelled) == (240, 200)
    assert [w.n for w in report.windows] == [120, 80]
    predicted = trained.pipeline.predict(X)
    first = report.windows[0].metrics
    assert first["accuracy"] == pytest.approx(np.mean(predicted[:120] == wrong[:120]))
    assert set(first) == {"accuracy", "f1", "roc_auc"}
    assert report.training == {"1": {"accuracy": trained.accuracy, "f1": 0.98}}
    assert report.overall["accuracy"] == pytest.approx(np.mean(predicted[:200] == wrong[:200]))


def test_labels_only_no_probabilities_omit_auc(segue_env, ops, trained, monitor) -> None:
    X, y = trained.X.iloc[:30], trained.y.iloc[:30].tolist()
    ids = ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X, trained.pipeline.predict(X))
    ops.log_feedback(segue_env.artifact_uri, "cancer", ids, y, [ops.T0 + 100] * 30)

    report = monitor.performance("cancer", window=86400)

    assert set(report.overall) == {"accuracy", "f1"}


def test_no_labels_is_a_clear_message(segue_env, ops, trained, monitor) -> None:
    X = trained.X.iloc[:5]
    ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X, trained.pipeline.predict(X))

    report = monitor.performance("cancer")

    assert report.n_labelled == 0 and report.windows == [] and report.overall == {}
    assert "none of the 5 predictions" in report.notes[0]
    assert "POST /feedback" in report.notes[0]


def test_window_must_be_positive(segue_env, monitor) -> None:
    with pytest.raises(InvalidArgument, match="--window"):
        monitor.performance("cancer", window=0)


def _rows(ids, rows, outputs, times):
    return pd.DataFrame(
        {
            "request_id": ids,
            "row": rows,
            "time": times,
            "version": ["1"] * len(ids),
            "role": ["primary"] * len(ids),
            "input": [{}] * len(ids),
            "output": outputs,
        }
    )


def test_join_takes_the_latest_label_and_per_row_lists() -> None:
    rows = _rows(["a", "b", "b", "c"], [0, 0, 1, 0], [1, 0, 1, 1], [1.0, 2.0, 2.0, 3.0])
    feedback = pd.DataFrame(
        {
            "request_id": ["a", "a", "b", "zzz"],
            "label": [0, 1, [0, 0], 1],
            "time": [5.0, 6.0, 5.0, 5.0],
        }
    )
    joined, skipped = join_feedback(rows, feedback)
    assert list(zip(joined["request_id"], joined["row"], joined["label"], strict=True)) == [
        ("a", 0, 1),
        ("b", 0, 0),
        ("b", 1, 0),
    ]
    assert skipped == {}


def _misfits() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seven one-row requests and a two-row one, labelled with values of every kind."""
    ids = ["obj", "null", "cat", "true", "two", "ok", "float", "pair", "pair"]
    rows = _rows(ids, [0, 0, 0, 0, 0, 0, 0, 0, 1], [1] * 9, [float(i) for i in range(9)])
    labels = [{}, None, "cat", True, 2, 0, 1.0, [1, [0]], "short"]
    feedback = pd.DataFrame({"request_id": [*ids[:8], "nope"], "label": labels, "time": [10.0] * 9})
    return rows, feedback


def test_labels_that_are_not_classes_are_skipped_and_counted() -> None:
    rows, feedback = _misfits()

    joined, skipped = join_feedback(rows, feedback, LabelRule("class", (0, 1)))

    assert list(zip(joined["request_id"], joined["label"], strict=True)) == [
        ("ok", 0),
        ("float", 1),  # as the int class it is
        ("pair", 1),
    ]
    assert type(joined["label"].iloc[1]) is int
    # {}, null, "cat", true, 2 (not a class) and the pair's [0]
    assert skipped == {"not a class of the model (0, 1)": 6}


def test_labels_that_are_not_numbers_are_skipped_for_a_regressor() -> None:
    rows, feedback = _misfits()
    feedback.loc[feedback["request_id"] == "pair", "label"] = pd.Series([[1.5]], index=[7])

    joined, skipped = join_feedback(rows, feedback, LabelRule("number"))

    assert list(zip(joined["request_id"], joined["label"], strict=True)) == [
        ("two", 2),
        ("ok", 0),
        ("float", 1.0),
    ]
    # {}, null, "cat", true; a list of one for a two-row request: both rows
    assert skipped == {"not a finite number": 4, NOT_PER_ROW: 2}


def test_a_feedback_log_with_labels_that_do_not_fit_is_scored_on_the_rest(
    segue_env, ops, trained, monitor
) -> None:
    """Labels written straight to the log (before the server checked values, or by another
    writer): `{}` once made accuracy_score raise a TypeError."""
    X, y = trained.X.iloc[:20], trained.y.iloc[:20].tolist()
    predicted = trained.pipeline.predict(X)
    ids = ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X, predicted)
    labels = [{}, None, "cat", *y[3:]]
    ops.log_feedback(segue_env.artifact_uri, "cancer", ids, labels, [ops.T0 + 100] * 20)

    report = monitor.performance("cancer", window=86400)

    assert (report.n_predictions, report.n_labelled) == (20, 17)
    assert report.overall["accuracy"] == pytest.approx(np.mean(predicted[3:] == y[3:]))
    assert report.notes == ["3 labels skipped: not a class of the model (0, 1)"]


def test_when_every_label_is_skipped_the_note_says_why(segue_env, ops, trained, monitor) -> None:
    X = trained.X.iloc[:2]
    ids = ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X, [0, 1])
    ops.log_feedback(segue_env.artifact_uri, "cancer", ids, [{}, "cat"], [ops.T0 + 100] * 2)

    report = monitor.performance("cancer")

    assert report.n_labelled == 0 and report.overall == {}
    assert report.notes == ["2 labels skipped: not a class of the model (0, 1)"]


@pytest.mark.parametrize(
    ("truth", "predicted", "classes", "proba", "expected"),
    [
        ([0, 1, 1, 0], [0, 1, 0, 0], [0, 1], None, {"accuracy": 0.75, "f1": 2 / 3}),
        (
            [0, 1, 1, 0],
            [0, 1, 1, 1],
            [0, 1],
            [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]],
            {"accuracy": 0.75, "f1": 0.8, "roc_auc": 1.0},
        ),
        # One class only: AUC is undefined and left out.
        ([1, 1], [1, 0], [0, 1], [[0.1, 0.9], [0.6, 0.4]], {"accuracy": 0.5, "f1": 2 / 3}),
        (["a", "b", "c"], ["a", "b", "b"], ["a", "b", "c"], None, {"accuracy": 2 / 3, "f1": 5 / 9}),
    ],
)
def test_classification_metrics(truth, predicted, classes, proba, expected) -> None:
    assert classification_metrics(truth, predicted, classes, proba) == pytest.approx(expected)


def test_regression_metrics_and_score_without_classes() -> None:
    assert regression_metrics([1.0, 2.0, 4.0], [1.0, 3.0, 2.0]) == pytest.approx(
        {"rmse": np.sqrt(5 / 3), "mae": 1.0}
    )
    joined = _rows(["a", "b"], [0, 0], [1.5, 2.5], [0.0, 1.0]).assign(label=[1.0, 2.0])
    assert score(joined, None) == pytest.approx({"rmse": 0.5, "mae": 0.5})
