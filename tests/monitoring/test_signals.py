"""Signals over a window of the prediction log: server (5xx) and client (4xx) errors apart."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from segue.monitoring.signals import error_rates, log_signals


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
