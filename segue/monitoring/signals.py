"""The numbers alert rules watch, computed over one time window of the logs.

- ``drift_share``, ``drifted_features``: from the drift report
  (:meth:`segue.monitoring.service.Monitor.drift`);
- ``metrics.<name>``: from the performance report (accuracy, f1, roc_auc for classifiers;
  rmse, mae for regressors), when feedback labels exist;
- ``latency_p50_ms``, ``latency_p99_ms``, ``server_error_rate`` (share of requests answered
  with a 5xx: the server or the model failed), ``client_error_rate`` (share answered with a
  4xx: the caller sent something the server refused), ``request_rate`` (requests per second)
  and ``n_predictions`` (requests logged): from the prediction log, over the requests sent to
  callers (shadows left out).

The two error rates are kept apart on purpose: bad input from one client is not an outage,
and a rule that pages people should watch ``server_error_rate``.

Only the signals a rule set needs are computed: drift and performance read more than the log.
The model URI is resolved once per check, so ``drift_share`` and ``metrics.*`` describe the
same version even if an alias moves while they are computed.

Example:
    >>> signals, notes = monitor.signals("models:/churn@champion", start=t - 3600, end=t)
    >>> signals["latency_p99_ms"]
    12.5
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument
from segue.monitoring import logs
from segue.monitoring.readers import read_predictions
from segue.monitoring.rules import DRIFT_SIGNALS, LOG_SIGNALS

if TYPE_CHECKING:
    from segue.store.entities import ModelVersion


def error_rates(status: Any) -> tuple[float, float]:
    """``(server_error_rate, client_error_rate)``: the shares of HTTP ``status`` codes that are
    5xx and 4xx. Pure; NaN for no requests."""
    codes = np.asarray(status, dtype=np.int64) // 100
    if not codes.size:
        return float("nan"), float("nan")
    return float(np.mean(codes == 5)), float(np.mean(codes == 4))


def log_signals(predictions: pd.DataFrame, start: float, end: float) -> dict[str, float]:
    """Latency percentiles, the server and client error rates, request rate and count of a
    prediction-log frame whose requests arrived in ``[start, end)``. Pure; shadow requests
    are left out.

    Latencies and the error rates are absent (not zero) for a window without requests.
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
        server, client = error_rates(served["status"].to_numpy())
        signals["server_error_rate"] = server
        signals["client_error_rate"] = client
    return signals


def compute_signals(
    model_uri: str,
    *,
    start: float,
    end: float,
    artifact_uri: str,
    resolve: Callable[[str], ModelVersion],
    drift: Callable[..., Any],
    performance: Callable[..., Any],
    needed: Iterable[str] | None = None,
) -> tuple[dict[str, float], list[str]]:
    """The signals of ``model_uri`` over ``[start, end)``: ``(values, notes)``.

    Args:
        artifact_uri: where the prediction log is.
        resolve: ``resolve(model_uri) -> version``
            (:meth:`~segue.monitoring.service.Monitor.resolve`); called at most once, and only
            when a drift or performance signal is needed.
        drift: ``drift(version, start=, end=)`` of a resolved version
            (:meth:`~segue.monitoring.service.Monitor.drift_of`).
        performance: ``performance(model_uri, version=, start=, end=, window=)``
            (:meth:`~segue.monitoring.service.Monitor.performance`).
        needed: signal names (as rules write them); None computes all of them.

    A signal that cannot be computed (no predictions, no labels, no reference) is left out and
    a note says why, so a rule on it fires nothing.
    """
    wanted = set(needed) if needed is not None else None
    which = logs.target(model_uri)
    signals: dict[str, float] = {}
    notes: list[str] = []

    resolved: list[ModelVersion] = []

    def version() -> ModelVersion:
        # Once per check: drift and metrics of one version, whatever the alias does meanwhile.
        if not resolved:
            resolved.append(resolve(model_uri))
        return resolved[0]

    def wants(names: Iterable[str]) -> bool:
        return wanted is None or any(name in wanted for name in names)

    if wants(LOG_SIGNALS):
        frame = read_predictions(
            artifact_uri, which.name, start=start, end=end, version=which.version, decode=False
        )
        signals.update(log_signals(frame, start, end))
    if wants(DRIFT_SIGNALS):
        try:
            report = drift(version(), start=start, end=end)
        except InvalidArgument as exc:
            notes.append(f"drift not computed: {exc}")
        else:
            signals["drift_share"] = float(report.drift_share)
            signals["drifted_features"] = float(sum(f.drifted for f in report.features))
    if wanted is None or any(name.startswith("metrics.") for name in wanted):
        window = max(end - start, 1e-3)
        report = performance(model_uri, version=version(), start=start, end=end, window=window)
        notes.extend(report.notes)
        signals.update({f"metrics.{k}": float(v) for k, v in report.overall.items()})
    return signals, notes
