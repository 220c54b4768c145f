"""Model performance in production: logged predictions joined to the labels fed back later.

Labels arrive through ``POST /feedback`` (the server's feedback log) and are
joined to the prediction log by request id. A label that is not a value the model can predict
(:mod:`segue.monitoring.labels`: one of a classifier's classes, a finite number for a
regressor), logged before the server checked values or by another writer, is skipped and
counted in the report's notes ("3 labels skipped: not a class of the model (0, 1)"), never
scored. Per time window this computes, for a classifier
(a model whose signature lists classes), accuracy, F1 (binary for two classes, macro otherwise)
and ROC AUC when the log holds probabilities; for a regressor RMSE and MAE. The metrics the
version's training run recorded are shown next to them.

Example:
    >>> report = Monitor(registry, artifact_uri).performance("churn@champion", window=3600)
    >>> [(w.start, w.n, w.metrics["accuracy"]) for w in report.windows]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument, NotFound
from segue.monitoring import logs
from segue.monitoring.labels import LabelRule, label_rule
from segue.monitoring.readers import read_feedback, read_predictions
from segue.monitoring.window import buckets

if TYPE_CHECKING:
    from segue.registry.service import Registry
    from segue.store.entities import ModelVersion


@dataclass(frozen=True)
class PerformanceWindow:
    """Metrics over the ``n`` labelled rows predicted in ``[start, end)`` (epoch seconds)."""

    start: float
    end: float
    n: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class PerformanceReport:
    """Production metrics of a model, per window and overall, beside its training metrics.

    ``task`` is ``"classification"`` or ``"regression"``; ``training`` maps each version seen
    in the joined log to its run's metrics.
    """

    model: str
    task: str
    classes: list[Any] | None
    window: float
    start: float | None
    end: float | None
    n_predictions: int
    n_labelled: int
    overall: dict[str, float]
    windows: list[PerformanceWindow] = field(default_factory=list)
    training: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- pure parts -----------------------------------------------------------------------------


#: Why a row's label was skipped when its request's label is not one per row.
NOT_PER_ROW = "not one label per row of its prediction"


def join_feedback(
    rows: pd.DataFrame, feedback: pd.DataFrame, rule: LabelRule | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``rows`` (from :func:`segue.monitoring.logs.flatten`) with a ``label`` column, keeping
    only rows with a label that fits ``rule``, and the count of rows whose label was skipped,
    by reason (``{"not a class of the model (0, 1)": 3}``).

    A request's label is a single value for a one-row request or a list with one label per row.
    When a request got several labels, the latest one counts. A label that ``rule`` refuses
    (None: anything but a string, a finite number or a boolean; null included) is skipped, as
    is each row of a request whose label is not one per row; labels are given as the model's
    own classes (``1.0`` becomes the int class ``1``).
    """
    rule = rule or LabelRule("scalar")
    if not len(rows) or not len(feedback):
        return rows.assign(label=pd.Series([], dtype=object)).iloc[0:0], {}
    latest = feedback.sort_values("time", kind="stable").drop_duplicates("request_id", keep="last")
    labels = dict(zip(latest["request_id"], latest["label"], strict=True))
    n_rows = rows.groupby("request_id")["row"].transform("size").to_numpy()
    values: list[Any] = []
    keep = np.zeros(len(rows), dtype=bool)
    skipped: Counter[str] = Counter()
    for i, (request_id, row, size) in enumerate(
        zip(rows["request_id"], rows["row"], n_rows, strict=True)
    ):
        value: Any = None
        if request_id in labels:
            value, why = _row_label(labels[request_id], row, size, rule)
            if why is None:
                keep[i] = True
            else:
                skipped[why] += 1
        values.append(value)
    joined = rows.assign(label=pd.Series(values, index=rows.index, dtype=object))
    return joined[keep], dict(skipped)


def _row_label(label: Any, row: int, size: int, rule: LabelRule) -> tuple[Any, str | None]:
    """(the label of one row of a ``size``-row request, None) or (None, why it is skipped)."""
    if isinstance(label, list) and len(label) == size:
        value = label[row]
    elif size == 1 and not isinstance(label, list):
        value = label
    else:
        return None, NOT_PER_ROW
    if not rule.fits(value):
        return None, rule.reason
    return rule.canonical(value), None


def classification_metrics(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    classes: Sequence[Any],
    proba: Sequence[Sequence[float]] | None = None,
) -> dict[str, float]:
    """``accuracy``, ``f1`` (binary, positive class ``classes[-1]``, for two classes; macro
    otherwise) and, given probabilities for every row and more than one true class, ``roc_auc``.
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    truth, predicted = np.asarray(list(y_true)), np.asarray(list(y_pred))
    labels = list(classes)
    metrics = {"accuracy": float(accuracy_score(truth, predicted))}
    if len(labels) == 2:
        f1 = f1_score(truth, predicted, labels=labels, pos_label=labels[-1], zero_division=0)
    else:
        f1 = f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
    metrics["f1"] = float(f1)
    if proba is not None and len(set(truth.tolist())) > 1:
        scores = np.asarray([list(p) for p in proba], dtype=float)
        try:
            if len(labels) == 2:
                auc = roc_auc_score(truth == labels[-1], scores[:, -1])
            else:
                auc = roc_auc_score(truth, scores, multi_class="ovr", labels=labels)
        except (ValueError, IndexError):
            auc = None  # a window without every class: AUC is undefined, so it is left out
        if auc is not None and math.isfinite(auc):
            metrics["roc_auc"] = float(auc)
    return metrics


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """``rmse`` and ``mae``."""
    truth = np.asarray(list(y_true), dtype=float)
    error = np.asarray(list(y_pred), dtype=float) - truth
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


def score(joined: pd.DataFrame, classes: Sequence[Any] | None) -> dict[str, float]:
    """The metrics of ``joined`` rows (``output`` and ``label`` columns): classification when
    ``classes`` is given, regression otherwise."""
    if not len(joined):
        return {}
    if classes is None:
        predicted = [logs.split_output(o)[0] for o in joined["output"]]
        return regression_metrics(joined["label"].tolist(), predicted)
    split = [logs.split_output(o, classes) for o in joined["output"]]
    probas = [p for _, p in split]
    proba: list[list[float]] | None = None
    if all(p is not None and len(p) == len(classes) for p in probas):
        proba = [p for p in probas if p is not None]
    return classification_metrics(joined["label"].tolist(), [p for p, _ in split], classes, proba)


def window_metrics(
    joined: pd.DataFrame,
    classes: Sequence[Any] | None,
    width: float,
    start: float | None = None,
    end: float | None = None,
) -> list[PerformanceWindow]:
    """:func:`score` per ``width``-second window of prediction time (empty windows skipped)."""
    if not len(joined):
        return []
    times = joined["time"].to_numpy()
    lo = float(times.min()) if start is None else start
    hi = float(times.max()) + 1e-6 if end is None else end
    windows = []
    for a, b in buckets(lo, hi, width):
        part = joined[(times >= a) & (times < b)]
        if len(part):
            windows.append(PerformanceWindow(a, b, len(part), score(part, classes)))
    return windows


# --- reading the logs -----------------------------------------------------------------------


def performance_report(
    model_uri: str,
    *,
    window: float = 3600.0,
    start: float | None = None,
    end: float | None = None,
    artifact_uri: str,
    registry: Registry,
    version: ModelVersion | None = None,
) -> PerformanceReport:
    """Join the logged primary predictions of ``model_uri`` in ``[start, end)`` to their
    feedback labels and score them per ``window`` seconds.

    Args:
        model_uri: ``models:/NAME[@ALIAS]`` or ``NAME`` (all versions in the log) or
            ``models:/NAME/3`` (that version only). Its signature decides classifier or
            regressor.
        artifact_uri: where the logs are.
        registry: the model registry (training metrics, signatures).
        version: the version ``model_uri`` names, if resolved already (its signature decides
            classifier or regressor); None resolves it.

    Returns:
        A report; with no labels joined, its windows are empty and ``notes`` says why.

    Raises:
        InvalidArgument: a non-positive window or a malformed URI.
        NotFound: the model is not registered.
    """
    if not (isinstance(window, (int, float)) and window > 0):
        raise InvalidArgument(f"--window must be a positive duration, got {window!r}")
    which = logs.target(model_uri)
    uri = artifact_uri
    if version is None:
        version = registry.resolve(which.uri)
    signature = registry.read_manifest(version).get_signature()
    classes = None if signature is None or signature.classes is None else list(signature.classes)
    # What regression metrics can score is a number, whatever the outputs say.
    rule = label_rule(signature) if classes is not None else LabelRule("number")
    predictions = read_predictions(
        uri, which.name, start=start, end=end, version=which.version, role="primary"
    )
    rows = logs.flatten(predictions)
    joined, skipped = join_feedback(rows, read_feedback(uri, which.name, start=start), rule)
    notes = []
    if not len(rows):
        notes.append(f"no successful primary predictions of {which.name} logged in the window")
    elif not len(joined) and not skipped:
        notes.append(
            f"none of the {len(rows)} predictions of {which.name} in the window has a feedback "
            "label yet; send labels with POST /feedback (request_id, label)"
        )
    for why, n in sorted(skipped.items()):
        notes.append(f"{n} label{'s' if n != 1 else ''} skipped: {why}")
    versions = sorted(set(joined["version"]), key=lambda v: (len(v), v))
    return PerformanceReport(
        model=which.name,
        task="regression" if classes is None else "classification",
        classes=classes,
        window=float(window),
        start=start,
        end=end,
        n_predictions=len(rows),
        n_labelled=len(joined),
        overall=score(joined, classes),
        windows=window_metrics(joined, classes, float(window), start, end),
        training={v: _training_metrics(registry, which.name, v, notes) for v in versions},
        notes=notes,
    )


def _training_metrics(
    registry: Registry, name: str, version: str, notes: list[str]
) -> dict[str, float]:
    try:
        return dict(registry.lineage(name, int(version))["metrics"])
    except (NotFound, ValueError):
        notes.append(f"version {version} of {name} is no longer registered: no training metrics")
        return {}
