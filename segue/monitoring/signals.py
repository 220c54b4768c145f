"""The numbers alert rules watch, computed over one time window of the logs.

- ``drift_share``, ``drifted_features``: from :func:`segue.monitoring.drift.drift_report`;
- ``metrics.<name>``: from :func:`segue.monitoring.performance.performance_report` (accuracy,
  f1, roc_auc for classifiers; rmse, mae for regressors), when feedback labels exist;
- ``latency_p50_ms``, ``latency_p99_ms``, ``error_rate`` (share of requests answered with a
  non-2xx status), ``request_rate`` (requests per second) and ``n_predictions`` (requests
  logged): from the prediction log, over the requests sent to callers (shadows left out).

Only the signals a rule set needs are computed: drift and performance read more than the log.

Example:
    >>> signals, notes = compute_signals("models:/churn@champion", start=t - 3600, end=t)
    >>> signals["latency_p99_ms"]
    12.5
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument
from segue.monitoring import logs

LOG_SIGNALS = ("latency_p50_ms", "latency_p99_ms", "error_rate", "request_rate", "n_predictions")
DRIFT_SIGNALS = ("drift_share", "drifted_features")


def log_signals(predictions: pd.DataFrame, start: float, end: float) -> dict[str, float]:
    """Latency percentiles, error rate, request rate and count of a prediction-log frame whose
    requests arrived in ``[start, end)``. Pure; shadow requests are left out.

    Latencies and the error rate are absent (not zero) for a window without requests.
    """
    served = predictions[predictions["role"] != "shadow"] if len(predictions) else predictions
    n = len(served)
    signals: dict[str, float] = {
        "n_predictions": float(n),
        "request_rate": n / (end - start) if end > start else 0.0,
    }
    if n:
        latency = served["latency_ms"].to_numpy(dtype=float)
        signals["latency_p50_ms"] = float(np.percentile(latency, 50))
        signals["latency_p99_ms"] = float(np.percentile(latency, 99))
        ok = (served["status"].to_numpy() // 100) == 2
        signals["error_rate"] = float(1.0 - ok.mean())
    return signals


def compute_signals(
    model_uri: str,
    *,
    start: float,
    end: float,
    needed: Iterable[str] | None = None,
    artifact_uri: str | None = None,
    drift: Callable[..., Any] | None = None,
    performance: Callable[..., Any] | None = None,
) -> tuple[dict[str, float], list[str]]:
    """The signals of ``model_uri`` over ``[start, end)``: ``(values, notes)``.

    Args:
        needed: signal names (as rules write them); None computes all of them.
        drift, performance: the report functions (defaults: the real ones); tests pass fakes.

    A signal that cannot be computed (no predictions, no labels, no reference) is left out and
    a note says why, so a rule on it fires nothing.
    """
    from segue.monitoring.readers import read_predictions

    wanted = set(needed) if needed is not None else None
    which = logs.target(model_uri)
    uri = artifact_uri if artifact_uri is not None else _artifact_uri()
    signals: dict[str, float] = {}
    notes: list[str] = []

    def wants(names: Iterable[str]) -> bool:
        return wanted is None or any(name in wanted for name in names)

    if wants(LOG_SIGNALS):
        frame = read_predictions(
            uri, which.name, start=start, end=end, version=which.version, decode=False
        )
        signals.update(log_signals(frame, start, end))
    if wants(DRIFT_SIGNALS):
        if drift is None:
            from segue.monitoring.drift import drift_report as drift
        try:
            report = drift(model_uri, start=start, end=end)
        except InvalidArgument as exc:
            notes.append(f"drift not computed: {exc}")
        else:
            signals["drift_share"] = float(report.drift_share)
            signals["drifted_features"] = float(sum(f.drifted for f in report.features))
    if wanted is None or any(name.startswith("metrics.") for name in wanted):
        if performance is None:
            from segue.monitoring.performance import performance_report as performance
        report = performance(model_uri, start=start, end=end, window=max(end - start, 1e-3))
        notes.extend(report.notes)
        signals.update({f"metrics.{k}": float(v) for k, v in report.overall.items()})
    return signals, notes


def _artifact_uri() -> str:
    from segue.config import settings

    return settings().artifact_uri
