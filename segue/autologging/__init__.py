"""Autologging: ``segue.autolog()`` records trainings without logging calls in the script.

Frameworks: scikit-learn (:mod:`segue.autologging.sklearn`), XGBoost
(:mod:`segue.autologging.xgboost`) and LightGBM (:mod:`segue.autologging.lightgbm`), each
patched when it is installed. PyTorch loops log through :mod:`segue.torch` instead (a one-line
``log_epoch`` call, or a Lightning callback).

A training logs into the active run; with none, a run is started for it (tagged
``autolog=<framework>``) and ended when the training returns. Autologging never breaks the
training: whatever fails inside it becomes an :class:`AutologWarning` and the training goes on.

Only the outermost fit of the process is logged: the fits it makes (a pipeline's steps, a
search's candidates, also on joblib's threads) belong to it. So two trainings run at the same
time in two threads of one process are not both logged: the second one is taken for part of the
first. Fits in joblib's worker processes (``n_jobs`` with the default backend) are not patched.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from types import ModuleType

from segue.autologging.core import AutologWarning, settings
from segue.tracking.runs import ActiveRun

__all__ = ["FRAMEWORKS", "AutologWarning", "autolog", "autolog_during_run", "enabled"]

#: The frameworks autologging knows, each with the module that patches it.
FRAMEWORKS = {
    "sklearn": "segue.autologging.sklearn",
    "xgboost": "segue.autologging.xgboost",
    "lightgbm": "segue.autologging.lightgbm",
}


def autolog(
    frameworks: list[str] | tuple[str, ...] | None = None,
    *,
    disable: bool = False,
    log_models: bool = True,
    log_input_examples: bool = True,
    log_datasets: bool = True,
    max_tuning_runs: int | None = None,
    silent: bool = False,
) -> list[str]:
    """Turn autologging on (or off) for the installed frameworks.

    Args:
        frameworks: some of ``"sklearn"``, ``"xgboost"``, ``"lightgbm"`` (default: every one
            that is installed).
        disable: turn autologging off instead (for ``frameworks``, or all).
        log_models: log each fitted model as a Segue package (``runs:/<run>/model``).
        log_input_examples: give that package the first training rows as input example, from
            which its signature is inferred.
        log_datasets: record the training data (content hash, schema, profile; not its
            rows) as the run's ``training`` data set, which the logged model names as lineage.
        max_tuning_runs: at most this many child runs for a hyper-parameter search, best
            first (default: one per candidate).
        silent: do not emit :class:`AutologWarning` when something cannot be logged (it is
            still written to the ``segue.autologging`` log at DEBUG level).

    Returns the frameworks autologged from now on.

    Raises:
        InvalidArgument: an unknown framework, or a named one that is not installed.

    Example:
        >>> segue.autolog()
        ['lightgbm', 'sklearn', 'xgboost']
        >>> LogisticRegression().fit(X, y)  # a run with params, metrics and the model
    """
    from segue.errors import InvalidArgument

    unknown = sorted(set(frameworks or ()) - set(FRAMEWORKS))
    if unknown:
        raise InvalidArgument(
            f"frameworks: unknown {', '.join(map(repr, unknown))}; expected some of "
            f"{', '.join(FRAMEWORKS)}"
        )
    if max_tuning_runs is not None and (
        isinstance(max_tuning_runs, bool)
        or not isinstance(max_tuning_runs, int)
        or max_tuning_runs < 0
    ):
        raise InvalidArgument(
            f"max_tuning_runs must be None or a non-negative integer, got {max_tuning_runs!r}"
        )
    chosen = list(frameworks) if frameworks is not None else list(FRAMEWORKS)
    if disable:
        _disable(chosen)
        return enabled()
    missing = [n for n in chosen if not _installed(n)]
    if frameworks is not None and missing:
        raise InvalidArgument(
            f"frameworks: {', '.join(missing)} not installed; pip install {' '.join(missing)}"
        )
    settings.log_models = log_models
    settings.log_input_examples = log_input_examples
    settings.log_datasets = log_datasets
    settings.max_tuning_runs = max_tuning_runs
    settings.silent = silent
    for name in chosen:
        if name not in missing and name not in enabled():
            _enable(name)
    return enabled()


def enabled() -> list[str]:
    """The frameworks autologged now."""
    from segue.autologging import core

    return core.patched()


def autolog_during_run(run: ActiveRun) -> None:
    """``start_run(autolog=True)``: autolog the installed frameworks not autologged yet (with
    the settings :func:`autolog` was last given), and stop autologging them when ``run`` ends."""
    added = [n for n in FRAMEWORKS if n not in enabled() and _installed(n)]
    for name in added:
        _enable(name)
    if added:
        run.add_closer(functools.partial(_disable, added))


def _enable(framework: str) -> None:
    """Patch ``framework``; one that cannot be patched (a broken install, an API that moved)
    is left as it was, with an :class:`AutologWarning`, and the others go on."""
    from segue.autologging import core

    try:
        _module(framework).enable()
    except Exception as exc:
        core.unpatch(framework)
        core.warn(f"turning on {framework} autologging", exc)


def _disable(frameworks: list[str]) -> None:
    for name in frameworks:
        _module(name).disable()


def _installed(framework: str) -> bool:
    return importlib.util.find_spec(framework) is not None


def _module(framework: str) -> ModuleType:
    return importlib.import_module(FRAMEWORKS[framework])
