"""XGBoost autologging: params, per-iteration eval metrics as steps, feature importance, model.

Patched: ``xgboost.train`` (the native API) and ``XGBModel.fit`` (``XGBClassifier``,
``XGBRegressor``, ... which train through it; only the outermost call logs). Logged:

- params: the ``params`` dict and ``num_boost_round`` (native), or ``get_params()`` plus the
  scikit-learn training metrics of :mod:`segue.autologging.sklearn` (wrapper);
- params before training starts (a training that fails still has them);
- every eval set's metrics per boosting round, as ``<eval name>-<metric>`` at step = round
  (``validation_0-logloss`` for the wrapper's ``eval_set``), logged as each round ends with
  the native API and when ``fit`` returns with the wrapper; ``best_iteration`` and
  ``best_score`` when early stopping kept a best round;
- ``feature_importance_weight`` and ``feature_importance_gain`` as PNG bar charts and JSON;
- the wrapper's training data ``X`` as the run's ``training`` data set (hash, schema,
  profile);
- the model as a Segue package: the wrapper as itself (the ``sklearn`` flavor), a native
  ``Booster`` as a :class:`BoosterModel` (the ``python`` flavor) whose ``predict`` takes
  DataFrames or arrays; with the first training rows as input example, hence a signature.
"""

from __future__ import annotations

from typing import Any

from segue.autologging import core
from segue.tracking.runs import ActiveRun

FRAMEWORK = "xgboost"


class BoosterModel:
    """A trained ``xgboost.Booster`` that predicts on DataFrames and arrays (not only DMatrix).

    Example:
        >>> BoosterModel(booster).predict(frame.head())
    """

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, data: Any) -> Any:
        import xgboost

        return self.booster.predict(xgboost.DMatrix(data))


def enable() -> None:
    import xgboost
    import xgboost.sklearn

    core.patch(FRAMEWORK, xgboost, "train", _wrap_train)
    record = core.boosting_wrapper_record(lambda model: model.get_booster(), _log_training)
    core.patch_fits(FRAMEWORK, xgboost.sklearn.XGBModel, record, core.log_wrapper_params)


def disable() -> None:
    core.unpatch(FRAMEWORK)


def _wrap_train(original: Any) -> Any:
    def train(params: dict[str, Any], dtrain: Any, *args: Any, **kwargs: Any) -> Any:
        with core._outermost() as first:
            if not first:
                return original(params, dtrain, *args, **kwargs)
            with core.training_run(FRAMEWORK) as run:
                if run is not None:
                    rounds = args[0] if args else kwargs.get("num_boost_round", 10)
                    with core.safely("logging the xgboost params"):
                        run.log_params(
                            core.param_values({**dict(params or {}), "num_boost_round": rounds})
                        )
                    with core.safely("adding the eval-logging callback"):
                        callbacks = list(kwargs.get("callbacks") or [])
                        kwargs["callbacks"] = [*callbacks, _live_eval(run)]
                booster = original(params, dtrain, *args, **kwargs)
                if run is not None:
                    with core.safely("logging the xgboost training"):
                        _log_training(run, {}, booster)
                        with core.safely("reading the input example from the training DMatrix"):
                            example = _dmatrix_rows(dtrain)
                        core.log_model(run, BoosterModel(booster), example)
                return booster

    return train


def _live_eval(run: ActiveRun) -> Any:
    """A callback that logs each round's eval metrics as the round ends."""
    import xgboost.callback

    class LiveEval(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            with core.safely(f"logging round {epoch}'s eval metrics"):
                latest = {
                    f"{data}-{metric}": _mean(values[-1])
                    for data, metrics in evals_log.items()
                    for metric, values in metrics.items()
                    if values
                }
                if latest:
                    run.log_metrics(latest, step=epoch)
            return False  # never asks training to stop

    return LiveEval()


def _mean(value: Any) -> float:
    """A metric value; ``(mean, std)`` pairs (``xgboost.cv``) give their mean."""
    return float(value[0] if isinstance(value, (tuple, list)) else value)


def _log_training(run: ActiveRun, results: dict[str, Any], booster: Any) -> None:
    with core.safely("logging the per-iteration eval metrics"):
        log_eval_history(run, results)
    with core.safely("logging the best iteration"):
        attributes = booster.attributes()
        if "best_iteration" in attributes:
            run.log_metrics(
                {
                    "best_iteration": float(attributes["best_iteration"]),
                    "best_score": float(attributes["best_score"]),
                }
            )
    for kind in ("weight", "gain"):
        importance: dict[str, float] = {}
        with core.safely(f"reading the {kind} feature importance"):
            importance = booster.get_score(importance_type=kind)
        core.log_feature_importance(run, importance, kind, "XGBoost")


def log_eval_history(run: ActiveRun, results: dict[str, dict[str, list[Any]]]) -> None:
    """``{eval name: {metric: [value per round]}}`` as ``<eval>-<metric>`` metrics, step = round.

    A value that is a ``(mean, std)`` pair (``xgboost.cv``) is logged as its mean.
    """
    for data_name, metrics in results.items():
        for metric_name, values in metrics.items():
            key = f"{data_name}-{metric_name}"
            for step, value in enumerate(values):
                run.log_metric(key, _mean(value), step=step)


def _dmatrix_rows(dtrain: Any) -> Any:
    """The first rows of a DMatrix, as a DataFrame with its feature names (or an array)."""
    import pandas as pd

    rows = dtrain.get_data()[: core.EXAMPLE_ROWS].toarray()
    names = dtrain.feature_names
    return pd.DataFrame(rows, columns=names) if names else rows
