"""Training/serving skew: replaying logged requests offline against the logged answers."""

from __future__ import annotations

import numpy as np
import pytest

from segue.errors import InvalidArgument
from segue.monitoring.logs import same_output
from segue.monitoring.service import Monitor
from segue.registry.service import get_registry


@pytest.fixture
def monitor(segue_env) -> Monitor:
    return Monitor(get_registry(), segue_env.artifact_uri)


@pytest.fixture
def trained(segue_env, ops):
    return ops.train_cancer()


def test_a_clean_log_has_no_skew(segue_env, ops, trained, monitor) -> None:
    X = trained.X.iloc[:120]
    ops.log_predictions(
        segue_env.artifact_uri, "cancer", trained.version, X, trained.pipeline.predict(X)
    )

    report = monitor.skew("models:/cancer/latest", sample=50)

    assert (report.n_logged, report.n_requests, report.n_rows) == (120, 50, 50)
    assert report.n_mismatched == 0 and report.mismatch_rate == 0.0
    assert report.examples == [] and report.versions == ["1"]


def test_a_different_online_preprocessing_is_caught(segue_env, ops, trained, monitor) -> None:
    X = trained.X.iloc[:200]
    # The online path scaled the inputs differently before the (same) model saw them.
    online = trained.pipeline.predict(X * 1.3)
    ops.log_predictions(segue_env.artifact_uri, "cancer", trained.version, X, online)
    expected = float(np.mean(online != trained.pipeline.predict(X)))

    report = monitor.skew("cancer", sample=1000)

    assert report.n_rows == 200
    assert report.mismatch_rate == pytest.approx(expected) and report.mismatch_rate > 0.1
    assert 1 <= len(report.examples) <= 5
    example = report.examples[0]
    assert example.online != example.offline
    assert example.input == X.iloc[int(example.request_id[1:])].to_dict()


def test_the_sample_is_seeded_and_each_request_replays_on_its_logged_version(
    segue_env, ops, trained
) -> None:
    X = trained.X.iloc[:40]
    outputs = trained.pipeline.predict(X)
    ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X[:20], outputs[:20])
    ops.log_predictions(
        segue_env.artifact_uri, "cancer", "2", X[20:], 1 - outputs[20:], prefix="v2-"
    )
    loaded: list[str] = []

    def load(uri: str):
        loaded.append(uri)
        return trained.pipeline

    replaying = Monitor(get_registry(), segue_env.artifact_uri, load=load)
    first = replaying.skew("cancer", sample=30, seed=7)
    again = replaying.skew("cancer", sample=30, seed=7)

    assert sorted(set(loaded)) == ["models:/cancer/1", "models:/cancer/2"]
    assert first.versions == ["1", "2"]
    assert first == again
    assert all(e.version == "2" for e in first.examples)
    assert first.n_mismatched > 0


def test_an_empty_window_says_so(segue_env, trained, monitor) -> None:
    report = monitor.skew("cancer", sample=10)
    assert report.n_rows == 0 and report.mismatch_rate == 0.0
    assert "no successful primary requests" in report.notes[0]


def test_sample_must_be_positive(segue_env, monitor) -> None:
    with pytest.raises(InvalidArgument, match="--sample"):
        monitor.skew("cancer", sample=0)


@pytest.mark.parametrize(
    ("online", "offline", "same"),
    [
        (1, np.int64(1), True),
        (1, np.int64(0), False),
        ("yes", np.str_("yes"), True),
        ("1", 1, False),
        (True, np.bool_(True), True),
        (True, 1, False),
        (0.5, np.float64(0.5 * (1 + 1e-12)), True),
        (0.5, 0.5 * (1 + 1e-6), False),
        (0.0, 1e-300, False),
        (float("nan"), float("nan"), True),
        ([0.2, 0.8], np.array([0.2, 0.8]), True),
        ([0.2, 0.8], [0.2], False),
        (
            {"predict": 1, "predict_proba": [0.1, 0.9]},
            {"predict": 1, "predict_proba": [0.1, 0.9]},
            True,
        ),
        ({"predict": 1}, {"label": 1}, False),
        (2, 2.0, True),
    ],
)
def test_same_output(online, offline, same) -> None:
    assert same_output(online, offline) is same
