"""scikit-learn autologging: params, training metrics, search results and the fitted model.

Patched: ``fit``, ``fit_transform`` and ``fit_predict`` of every scikit-learn estimator (on the
class that defines each), and ``cross_validate`` (which ``cross_val_score`` calls). Only the
outermost fit logs, so a pipeline's steps and a search's candidates are one training.

For each fit, into the active run (or a run started and ended around the fit):

- before the fit (so a fit that fails keeps them): params, ``get_params(deep=True)``, and
  tags ``estimator_name`` and ``estimator_class``;
- training metrics on the data it was fitted on: ``training_score`` (the estimator's own
  ``score``), for a classifier ``training_accuracy_score``, ``training_precision_score``,
  ``training_recall_score``, ``training_f1_score`` (weighted), ``training_log_loss`` and
  ``training_roc_auc`` (with ``predict_proba``); for a regressor
  ``training_mean_squared_error``, ``training_root_mean_squared_error``,
  ``training_mean_absolute_error`` and ``training_r2_score``;
- the training data ``X`` as the run's ``training`` data set (hash, schema and profile);
- the fitted model as a Segue package at ``model`` with its first training rows as input
  example, hence a signature;
- for ``GridSearchCV`` / ``RandomizedSearchCV`` (any search with ``cv_results_``): ``best_*``
  params, ``best_cv_score``, ``cv_results.csv``, the best estimator as ``model``, and one child
  run per candidate (its params, its ``mean_test_score``, ``std_test_score``,
  ``rank_test_score``, per-split scores and fit times), best first, at most
  ``max_tuning_runs``;
- for ``cross_validate`` / ``cross_val_score``: ``cv_<score>`` per fold as steps, and
  ``cv_<score>_mean`` / ``cv_<score>_std``.
"""

from __future__ import annotations

import math
from typing import Any

from segue.autologging import core
from segue.tracking.runs import ActiveRun

FRAMEWORK = "sklearn"
_FIT_METHODS = ("fit", "fit_transform", "fit_predict")


def enable() -> None:
    import sklearn.model_selection
    from sklearn.model_selection import _validation
    from sklearn.utils.discovery import all_estimators

    done: set[tuple[type, str]] = set()
    for _, cls in all_estimators():
        for method in _FIT_METHODS:
            owner = next((c for c in cls.__mro__ if method in c.__dict__), None)
            if owner is None or (owner, method) in done or owner is object:
                continue
            done.add((owner, method))
            core.patch(FRAMEWORK, owner, method, core.wrap_fit(FRAMEWORK, _record_fit, log_params))
    original = _validation.cross_validate
    core.patch(FRAMEWORK, _validation, "cross_validate", _wrap_cross_validate)
    if sklearn.model_selection.cross_validate is original:
        core.patch(FRAMEWORK, sklearn.model_selection, "cross_validate", _wrap_cross_validate)


def disable() -> None:
    core.unpatch(FRAMEWORK)


# -- a fit ------------------------------------------------------------------------------------


def _record_fit(
    run: ActiveRun, estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    weight = kwargs.get("sample_weight")
    log_estimator(run, estimator, X, y, weight)


def log_params(run: ActiveRun, estimator: Any) -> None:
    """The estimator's params and its class as tags (logged before it is fitted)."""
    cls = type(estimator)
    run.set_tags(
        {"estimator_name": cls.__name__, "estimator_class": f"{cls.__module__}.{cls.__name__}"}
    )
    run.log_params(core.param_values(estimator.get_params(deep=True)))


def log_estimator(run: ActiveRun, estimator: Any, X: Any, y: Any, weight: Any = None) -> None:
    """Training metrics, search results and the model of a fitted estimator."""
    if y is not None:
        with core.safely("computing training metrics"):
            run.log_metrics(training_metrics(estimator, X, y, weight))
    model = estimator
    if hasattr(estimator, "cv_results_"):
        _log_search(run, estimator)
        model = getattr(estimator, "best_estimator_", None)
    core.log_training_data(run, X)
    if model is not None and hasattr(model, "predict"):
        core.log_model(run, model, core.input_example(X))


def training_metrics(estimator: Any, X: Any, y: Any, weight: Any = None) -> dict[str, float]:
    """The training metrics listed in the module docs that this estimator and data allow."""
    from sklearn import metrics
    from sklearn.base import is_classifier, is_regressor

    values: dict[str, float] = {}

    def add(name: str, compute: Any) -> None:
        try:
            value = float(compute())
        except Exception as exc:  # this metric does not apply (one class, no proba, ...)
            core.log.debug("training metric %s skipped: %s", name, exc)
            return
        if math.isfinite(value):
            values[name] = value

    # Not every score() takes sample_weight: pass it only when there is one.
    weighted = {} if weight is None else {"sample_weight": weight}
    add("training_score", lambda: estimator.score(X, y, **weighted))
    if is_classifier(estimator):
        predicted = estimator.predict(X)
        add(
            "training_accuracy_score",
            lambda: metrics.accuracy_score(y, predicted, sample_weight=weight),
        )
        for name, fn in (
            ("precision", metrics.precision_score),
            ("recall", metrics.recall_score),
            ("f1", metrics.f1_score),
        ):
            add(
                f"training_{name}_score",
                lambda fn=fn: fn(
                    y, predicted, average="weighted", zero_division=0, sample_weight=weight
                ),
            )
        if hasattr(estimator, "predict_proba"):
            proba = estimator.predict_proba(X)
            add(
                "training_log_loss",
                lambda: metrics.log_loss(y, proba, labels=estimator.classes_, sample_weight=weight),
            )
            scores = proba[:, 1] if proba.shape[1] == 2 else proba
            add(
                "training_roc_auc",
                lambda: (
                    metrics.roc_auc_score(
                        y,
                        scores,
                        multi_class="ovr",
                        labels=estimator.classes_,
                        sample_weight=weight,
                    )
                    if proba.shape[1] > 2
                    else metrics.roc_auc_score(y, scores, sample_weight=weight)
                ),
            )
    elif is_regressor(estimator):
        predicted = estimator.predict(X)
        mse = metrics.mean_squared_error(y, predicted, sample_weight=weight)
        values["training_mean_squared_error"] = float(mse)
        values["training_root_mean_squared_error"] = math.sqrt(mse)
        add(
            "training_mean_absolute_error",
            lambda: metrics.mean_absolute_error(y, predicted, sample_weight=weight),
        )
        add("training_r2_score", lambda: metrics.r2_score(y, predicted, sample_weight=weight))
    return values


# -- searches ---------------------------------------------------------------------------------


def _log_search(run: ActiveRun, search: Any) -> None:
    import pandas as pd

    results = search.cv_results_
    with core.safely("logging the search's best params"):
        best = getattr(search, "best_params_", None)
        if best is not None:
            run.log_params(core.param_values({f"best_{k}": v for k, v in best.items()}))
        score = getattr(search, "best_score_", None)
        if score is not None and math.isfinite(float(score)):
            run.log_metric("best_cv_score", float(score))
    with core.safely("logging cv_results.csv"):
        run.log_text(pd.DataFrame(results).to_csv(index=False), "cv_results.csv")
    with core.safely("logging the search's candidates as child runs"):
        _log_candidates(run, results)


def _rank_key(results: dict[str, Any]) -> str | None:
    ranks = sorted(k for k in results if k.startswith("rank_test_"))
    return "rank_test_score" if "rank_test_score" in ranks else (ranks[0] if ranks else None)


def _log_candidates(run: ActiveRun, results: dict[str, Any]) -> None:
    """One finished child run per candidate, best first, at most ``max_tuning_runs``."""
    from segue.store.entities import Metric
    from segue.tracking.client import get_client

    client = get_client()
    count = len(results["params"])
    rank = _rank_key(results)
    order = sorted(range(count), key=lambda i: results[rank][i]) if rank else list(range(count))
    if core.settings.max_tuning_runs is not None:
        order = order[: core.settings.max_tuning_runs]
    numeric = [
        k
        for k in results
        if k != "params" and not k.startswith("param_") and _is_numbers(results[k])
    ]
    for position, i in enumerate(order):
        info = client.create_run(
            run.experiment,
            f"{run.name}-candidate-{i}",
            params=core.param_values(results["params"][i]),
            tags={"autolog": FRAMEWORK, "candidate_index": str(i)},
            parent_run_id=run.id,
        )
        now = client._now()
        points = [
            Metric(key, float(results[key][i]), 0, now)
            for key in numeric
            if math.isfinite(float(results[key][i]))
        ]
        try:
            client.log_metrics(info.id, points)
        finally:
            client.end_run(info.id, "FINISHED")
        core.log.debug("candidate %d logged as run %s (%d of %d)", i, info.id, position + 1, count)


def _is_numbers(values: Any) -> bool:
    import numpy as np

    array = np.asarray(values)
    return array.dtype.kind in "biuf"


# -- cross-validation -------------------------------------------------------------------------


def _wrap_cross_validate(original: Any) -> Any:
    def cross_validate(estimator: Any, X: Any, y: Any = None, **kwargs: Any) -> Any:
        with core._outermost() as first:
            if not first:
                return original(estimator, X, y, **kwargs)
            with core.training_run(FRAMEWORK) as run:
                scores = original(estimator, X, y, **kwargs)
                if run is not None:
                    with core.safely("logging the cross-validation scores"):
                        _log_cv(run, scores)
                return scores

    return cross_validate


def _log_cv(run: ActiveRun, scores: dict[str, Any]) -> None:
    import numpy as np

    for key, values in scores.items():
        if key in ("estimator", "indices") or not _is_numbers(values):
            continue
        array = np.asarray(values, dtype=float)
        for fold, value in enumerate(array):
            if math.isfinite(value):
                run.log_metric(f"cv_{key}", float(value), step=fold)
        if np.isfinite(array).all():
            run.log_metrics(
                {f"cv_{key}_mean": float(array.mean()), f"cv_{key}_std": float(array.std())}
            )
