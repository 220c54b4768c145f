"""Signals over a window of the prediction log: server (5xx) and client (4xx) errors apart."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import segue
from segue.monitoring.service import Monitor
from segue.monitoring.signals import error_rates, log_signals
from segue.registry.service import get_registry


def logged(statuses: list[int], roles: list[str] | None = None) -> pd.DataFrame:
    n = len(statuses)
    return pd.DataFrame(
        {
            "time": [float(i) for i in range(n)],
            "role": roles or ["primary"] * n,
            "latency_ms": [1.0] * n,
            "status": statuses,
        }
    )


def test_client_errors_do_not_count_as_server_errors() -> None:
    signals = log_signals(logged([200, 200, 422, 400, 413, 500, 503, 200, 200, 200]), 0, 10)
    assert signals["server_error_rate"] == pytest.approx(0.2)
    assert signals["client_error_rate"] == pytest.approx(0.3)
    assert "error_rate" not in signals


def test_bad_input_alone_leaves_the_server_error_rate_at_zero() -> None:
    signals = log_signals(logged([400] * 9 + [200]), 0, 10)
    assert signals["server_error_rate"] == 0.0 and signals["client_error_rate"] == 0.9


def test_shadow_requests_are_left_out() -> None:
    frame = logged([500, 200, 404], ["shadow", "primary", "canary"])
    signals = log_signals(frame, 0, 3)
    assert signals["n_predictions"] == 2.0
    assert signals["server_error_rate"] == 0.0 and signals["client_error_rate"] == 0.5


def test_an_empty_window_has_no_rates() -> None:
    signals = log_signals(logged([]), 0, 10)
    assert "server_error_rate" not in signals and "client_error_rate" not in signals
    assert all(math.isnan(rate) for rate in error_rates([]))


# -- a check resolves its model once --------------------------------------------------------


def test_drift_and_metrics_of_one_check_describe_the_same_version(
    segue_env, ops, alias_moves_after_first_resolve
) -> None:
    from sklearn.linear_model import LinearRegression

    trained = ops.train_cancer()  # version 1: a classifier
    with segue.start_run(experiment="cancer") as run:  # version 2: a regressor
        regressor = LinearRegression().fit(trained.X, trained.y.astype(float))
        run.log_model(
            regressor, input_example=trained.X[:5], reference_data=trained.X, register_as="cancer"
        )
    registry = get_registry()
    registry.set_alias("cancer", "champion", 1)
    X, y = trained.X.iloc[:80], trained.y.iloc[:80]
    ids = ops.log_predictions(segue_env.artifact_uri, "cancer", "1", X, trained.pipeline.predict(X))
    ops.log_feedback(segue_env.artifact_uri, "cancer", ids, y.tolist(), [ops.T0 + 100] * 80)
    moving = alias_moves_after_first_resolve(registry, "cancer")

    signals, _ = Monitor(moving, segue_env.artifact_uri).signals(
        "cancer@champion", start=ops.T0, end=ops.T0 + 3600
    )

    assert moving.resolved == ["models:/cancer@champion"]  # once, before the alias moved
    assert registry.resolve("models:/cancer@champion").version == 2  # it did move
    assert "drift_share" in signals  # version 1's reference against version 1's traffic
    assert "metrics.accuracy" in signals and "metrics.rmse" not in signals  # v1: a classifier
