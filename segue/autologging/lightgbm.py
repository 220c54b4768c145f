"""LightGBM autologging: params, per-iteration eval metrics as steps, feature importance, model.

Patched: ``lightgbm.train`` (the native API) and ``LGBMModel.fit`` (``LGBMClassifier``,
``LGBMRegressor``, ... which train through it; only the outermost call logs). Logged:

- params: the ``params`` dict and ``num_boost_round`` (native), or ``get_params()`` plus the
  scikit-learn training metrics of :mod:`segue.autologging.sklearn` (wrapper);
- params before training starts (a training that fails still has them);
- every validation set's metrics per boosting round, as ``<valid name>-<metric>`` at step =
  round (``valid_0-binary_logloss``; the wrapper names its ``eval_set`` ``valid_0``, ...),
  logged as each round ends with the native API and when ``fit`` returns with the wrapper;
  ``best_iteration`` when early stopping kept a best round;
- ``feature_importance_split`` and ``feature_importance_gain`` as PNG bar charts and JSON;
- the training data (the wrapper's ``X``, the native ``Dataset``'s raw data) as the run's
  ``training`` data set (hash, schema, profile);
- the model as a Segue package: the wrapper as itself (the ``sklearn`` flavor), a native
  ``Booster`` as itself (the ``python`` flavor: its ``predict`` takes DataFrames and arrays);
  with the first training rows as input example, hence a signature.
"""

from __future__ import annotations

from typing import Any

from segue.autologging import core
from segue.autologging.xgboost import log_eval_history
from segue.tracking.runs import ActiveRun

FRAMEWORK = "lightgbm"


def enable() -> None:
    import lightgbm
    import lightgbm.sklearn

    core.patch(FRAMEWORK, lightgbm, "train", _wrap_train)
    record = core.boosting_wrapper_record(lambda model: model.booster_, _log_training)
    core.patch_fits(FRAMEWORK, lightgbm.sklearn.LGBMModel, record, core.log_wrapper_params)


def disable() -> None:
    core.unpatch(FRAMEWORK)


#: Where ``callbacks`` sits among ``lightgbm.train``'s arguments after ``params, train_set``.
_CALLBACKS_AT = 6


def _wrap_train(original: Any) -> Any:
    def train(params: dict[str, Any], train_set: Any, *args: Any, **kwargs: Any) -> Any:
        with core._outermost() as first:
            if not first:
                return original(params, train_set, *args, **kwargs)
            with core.training_run(FRAMEWORK) as run:
                example = None
                if run is not None:
                    rounds = args[0] if args else kwargs.get("num_boost_round", 100)
                    with core.safely("logging the lightgbm params"):
                        run.log_params(
                            core.param_values({**dict(params or {}), "num_boost_round": rounds})
                        )
                    with core.safely("adding the eval-logging callback"):
                        args, kwargs = _with_callback(args, kwargs, _live_eval(run))
                    # Read before training: LightGBM frees the raw data once it is binned.
                    data = getattr(train_set, "data", None)
                    core.log_training_data(run, data)
                    example = core.input_example(data)
                booster = original(params, train_set, *args, **kwargs)
                if run is not None:
                    with core.safely("logging the lightgbm training"):
                        _log_training(run, {}, booster)
                        core.log_model(run, booster, example)
                return booster

    return train


def _with_callback(
    args: tuple[Any, ...], kwargs: dict[str, Any], callback: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``train``'s arguments with ``callback`` added, wherever the caller put ``callbacks``."""
    if len(args) > _CALLBACKS_AT:
        given = list(args)
        given[_CALLBACKS_AT] = [*(given[_CALLBACKS_AT] or []), callback]
        return tuple(given), kwargs
    return args, {**kwargs, "callbacks": [*(kwargs.get("callbacks") or []), callback]}


def _live_eval(run: ActiveRun) -> Any:
    """A LightGBM callback that logs each round's eval metrics as the round ends."""

    def log_round(env: Any) -> None:
        step = env.iteration - env.begin_iteration
        with core.safely(f"logging round {step}'s eval metrics"):
            # Items are (data, metric, value, higher_better) or, from lightgbm.cv, with a std.
            latest = {f"{item[0]}-{item[1]}": float(item[2]) for item in env.evaluation_result_list}
            if latest:
                run.log_metrics(latest, step=step)

    log_round.order = 25  # type: ignore[attr-defined]  # after record_evaluation (20)
    return log_round


def _log_training(run: ActiveRun, results: dict[str, Any], booster: Any) -> None:
    with core.safely("logging the per-iteration eval metrics"):
        log_eval_history(run, results)
    with core.safely("logging the best iteration"):
        if booster.best_iteration > 0:
            run.log_metric("best_iteration", float(booster.best_iteration))
    names = booster.feature_name()
    for kind in ("split", "gain"):
        importance: dict[str, float] = {}
        with core.safely(f"reading the {kind} feature importance"):
            values = booster.feature_importance(importance_type=kind)
            importance = {name: float(v) for name, v in zip(names, values, strict=True)}
        core.log_feature_importance(run, importance, kind, "LightGBM")
