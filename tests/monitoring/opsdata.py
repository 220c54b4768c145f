"""Data for the monitoring-operations tests (skew, performance, report, alerts, CLI).

A pipeline trained on the breast-cancer set and registered as ``cancer`` with the fluent API,
and prediction/feedback logs written straight through the log classes (no server needed).
Tests get it through the ``ops`` fixture (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import segue
from segue.serving.predlog import FeedbackLog, PredictionLog, PredictionRecord

#: Midday of a fixed day, so buckets and day partitions are predictable.
T0 = 1_714_564_800.0


@dataclass(frozen=True)
class Trained:
    pipeline: Any
    X: pd.DataFrame
    y: pd.Series
    version: str
    accuracy: float


def train_cancer(name: str = "cancer") -> Trained:
    """Fit a scaler + logistic regression and register it (version "1")."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(X, y)
    accuracy = float((pipeline.predict(X) == y).mean())
    with segue.start_run(experiment="cancer", name="train") as run:
        run.log_metrics({"accuracy": accuracy, "f1": 0.98})
        info = run.log_model(pipeline, input_example=X[:5], reference_data=X, register_as=name)
    return Trained(pipeline, X, y, str(info.version.version), accuracy)


def log_predictions(
    artifact_uri: str,
    model: str,
    version: str,
    inputs: pd.DataFrame,
    outputs: Sequence[Any],
    *,
    start: float = T0,
    step: float = 1.0,
    latency_ms: Sequence[float] | float = 2.0,
    status: Sequence[int] | int = 200,
    prefix: str = "r",
) -> list[str]:
    """One single-row request per row of ``inputs``, ``step`` seconds apart; returns the ids."""
    rows = inputs.to_dict(orient="records")
    n = len(rows)
    latencies = np.broadcast_to(np.asarray(latency_ms, dtype=float), (n,))
    statuses = np.broadcast_to(np.asarray(status, dtype=int), (n,))
    ids = [f"{prefix}{i}" for i in range(n)]
    log = PredictionLog(artifact_uri)
    for i in range(n):
        ok = 200 <= int(statuses[i]) < 300
        log.append(
            PredictionRecord(
                ids[i],
                start + i * step,
                model,
                version,
                "primary",
                [rows[i]],
                [_plain(outputs[i])] if ok else [],
                float(latencies[i]),
                int(statuses[i]),
                None if ok else "the model failed",
            )
        )
    log.close()
    return ids


def log_feedback(
    artifact_uri: str, model: str, ids: Sequence[str], labels: Sequence[Any], times: Sequence[float]
) -> None:
    log = FeedbackLog(artifact_uri, model)
    for request_id, label, when in zip(ids, labels, times, strict=True):
        log.append(request_id, _plain(label), when)
    log.close()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value
