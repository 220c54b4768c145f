"""What every framework's autologging shares: patches, the run a fit logs into, and safety.

The one rule: autologging never breaks training. Everything it does around a fit runs inside
:func:`safely`, which turns an exception into an :class:`AutologWarning` and carries on; the
user's fit itself runs exactly once, and its own exceptions reach the user unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from segue.tracking.runs import ActiveRun

log = logging.getLogger(__name__)

#: A param value longer than this is cut (a nested estimator's repr can be very long).
MAX_PARAM_CHARS = 500
#: Rows of the training data kept as the logged model's input example.
EXAMPLE_ROWS = 5


class AutologWarning(UserWarning):
    """Autologging could not record something; the training itself went on unharmed."""


@dataclass
class Settings:
    """What :func:`segue.autolog` was asked for (see its arguments)."""

    log_models: bool = True
    log_input_examples: bool = True
    log_datasets: bool = True
    max_tuning_runs: int | None = None
    silent: bool = False


settings = Settings()


def warn(what: str, exc: BaseException) -> None:
    message = f"segue autolog: {what} failed, training goes on: {type(exc).__name__}: {exc}"
    log.debug(message, exc_info=exc)
    if settings.silent:
        return
    try:
        warnings.warn(message, AutologWarning, stacklevel=2)
    except Warning:  # warnings turned into errors (python -W error) must not stop training
        log.warning(message)


@contextlib.contextmanager
def safely(what: str) -> Iterator[None]:
    """Run the block; an exception in it becomes an :class:`AutologWarning` naming ``what``."""
    try:
        yield
    except Exception as exc:
        warn(what, exc)


# -- patches ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Patch:
    owner: Any
    name: str
    original: Any


_patches: dict[str, list[_Patch]] = {}
#: Fits in progress that autologging handles, in any thread: the fits they make inside (a
#: search's candidates, a pipeline's steps, a booster behind a scikit-learn wrapper, joblib's
#: threading backend) are the user's one training, not trainings of their own.
_depth = 0
_depth_lock = threading.Lock()


def patch(framework: str, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` by ``make(original)`` until :func:`unpatch` (``framework``).

    ``original`` is a function; on a class it may also be one of scikit-learn's
    ``available_if`` descriptors (``Pipeline.fit_transform``), whose function is wrapped in a
    new descriptor with the same check, so the method stays available exactly when it was.
    Anything else (a property, say) is left alone.
    """
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    if isinstance(original, types.FunctionType):
        replacement = functools.update_wrapper(make(original), original)
    elif type(original).__name__ == "_AvailableIfDescriptor":
        function = functools.update_wrapper(make(original.fn), original.fn)
        replacement = type(original)(function, original.check, original.attribute_name)
    else:
        log.debug("%r.%s is a %s; not patched", owner, name, type(original).__name__)
        return
    setattr(owner, name, replacement)
    _patches.setdefault(framework, []).append(_Patch(owner, name, original))


def unpatch(framework: str) -> None:
    """Put back everything :func:`patch` replaced for ``framework``."""
    for item in reversed(_patches.pop(framework, [])):
        setattr(item.owner, item.name, item.original)


def patched() -> list[str]:
    """The frameworks patched now."""
    return sorted(_patches)


@contextlib.contextmanager
def _outermost() -> Iterator[bool]:
    global _depth
    with _depth_lock:
        _depth += 1
        first = _depth == 1
    try:
        yield first
    finally:
        with _depth_lock:
            _depth -= 1


Record = Callable[[ActiveRun, Any, tuple[Any, ...], dict[str, Any], Any], None]
Before = Callable[[ActiveRun, Any], None]
#: ``log_training(run, eval results, booster)``: a boosting library's eval history, best
#: iteration and feature importance.
LogTraining = Callable[[ActiveRun, dict[str, Any], Any], None]


def wrap_fit(framework: str, record: Record, before: Before | None = None) -> Callable[[Any], Any]:
    """A ``make`` for :func:`patch`: the outermost call trains, then ``record`` logs it.

    ``before(run, self)`` runs before the fit (to log what is known already: a fit that fails
    keeps it); ``record(run, self, args, kwargs, result)`` after a successful fit. A fit that
    raises ends an autolog-started run FAILED, and the exception reaches the caller unchanged.
    """

    def make(original: Any) -> Any:
        def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _outermost() as first:
                if not first:
                    return original(self, *args, **kwargs)
                with training_run(framework) as run:
                    if run is not None and before is not None:
                        with safely(f"logging the {framework} params"):
                            before(run, self)
                    result = original(self, *args, **kwargs)
                    if run is not None:
                        with safely(f"logging the {framework} training"):
                            record(run, self, args, kwargs, result)
                    return result

        return fit

    return make


def patch_fits(framework: str, base: type, record: Record, before: Before | None = None) -> None:
    """Patch ``fit`` on ``base`` and on each of its subclasses that defines its own."""
    seen: set[type] = set()
    todo = [base]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        todo.extend(cls.__subclasses__())
        if "fit" in cls.__dict__:
            patch(framework, cls, "fit", wrap_fit(framework, record, before))


@contextlib.contextmanager
def training_run(framework: str) -> Iterator[ActiveRun | None]:
    """The run a training logs into: the active run, or one started (and ended) around it.

    Yields None when no run could be started (the store is unreachable, say): the training
    still runs, unlogged, with a warning.
    """
    from segue.tracking import fluent

    active = fluent.active_run()
    if active is not None:
        yield active
        return
    run = None
    with safely(f"starting a run for the {framework} training"):
        run = fluent.start_run(tags={"autolog": framework})
    if run is None:
        yield None
        return
    try:
        yield run
    except BaseException as exc:
        # FAILED (KILLED on Ctrl-C) with the traceback, as a run's own ``with`` block does.
        run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    # Not ``with run``: a run that cannot be ended cleanly must not turn a fit that worked
    # into an exception.
    with safely(f"ending the {framework} training's run"):
        run.end("FINISHED")


# -- helpers the frameworks share -------------------------------------------------------------


def param_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as the strings Segue stores, long reprs cut to :data:`MAX_PARAM_CHARS`."""
    clean = {}
    for key, value in params.items():
        text = value if isinstance(value, str) else str(value)
        if len(text) > MAX_PARAM_CHARS:
            text = text[: MAX_PARAM_CHARS - 1] + "…"
        clean[str(key)] = text
    return clean


def input_example(data: Any) -> Any:
    """The first rows of training data, as a logged model's input example (None if unknown)."""
    if not settings.log_input_examples or data is None:
        return None
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.iloc[:EXAMPLE_ROWS]
    if isinstance(data, np.ndarray) and data.ndim == 2:
        return data[:EXAMPLE_ROWS]
    if isinstance(data, list) and data:
        return data[:EXAMPLE_ROWS]
    return None  # sparse matrices, tensors, iterators: a model is still logged, unsigned


def log_training_data(run: ActiveRun, data: Any) -> None:
    """Record the training data (hash, schema, profile; not its rows) as the ``training``
    data set of the run, so the model logged next names it in its lineage."""
    if not settings.log_datasets or input_example(data) is None:
        return  # None: data that is not a table (sparse, tensors, iterators)
    with safely("logging the training data set"):
        run.log_dataset(data, "training", context="train")


def log_model(run: ActiveRun, model: Any, example: Any, name: str = "model") -> None:
    """Log ``model`` as a Segue package (with an input example, so a signature) if asked to."""
    if not settings.log_models:
        return
    with safely(f"logging the model {name!r}"):
        run.log_model(model, name, input_example=example)


def log_feature_importance(
    run: ActiveRun, importance: Mapping[str, float], kind: str, framework: str
) -> None:
    """A bar chart (PNG) and a JSON of the features' importance, largest first."""
    if not importance:
        return
    ranked = dict(sorted(importance.items(), key=lambda item: item[1], reverse=True))
    with safely(f"logging the {kind} feature importance"):
        run.log_dict({k: float(v) for k, v in ranked.items()}, f"feature_importance_{kind}.json")
        # A bare Figure, not pyplot: no GUI backend is chosen or changed for the user.
        from matplotlib.figure import Figure

        shown = list(ranked.items())[:30][::-1]
        figure = Figure(figsize=(7, 0.3 * len(shown) + 1.2))
        axes = figure.subplots()
        axes.barh([k for k, _ in shown], [float(v) for _, v in shown])
        axes.set_xlabel(kind)
        axes.set_title(f"{framework} feature importance ({kind})")
        figure.tight_layout()
        run.log_figure(figure, f"feature_importance_{kind}.png")


# -- boosting libraries' scikit-learn wrappers (XGBModel, LGBMModel) --------------------------


def log_wrapper_params(run: ActiveRun, model: Any) -> None:
    """A :data:`Before` for a scikit-learn wrapper: its ``get_params()``."""
    run.log_params(param_values(model.get_params()))


def boosting_wrapper_record(booster_of: Callable[[Any], Any], log_training: LogTraining) -> Record:
    """A :data:`Record` for a boosting library's scikit-learn wrapper.

    It logs the scikit-learn training metrics, then ``log_training(run, model.evals_result_,
    booster_of(model))``, the training data ``X`` and the model with its first rows as example.
    """

    def record(
        run: ActiveRun, model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
    ) -> None:
        from segue.autologging import sklearn

        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        with safely("computing training metrics"):
            run.log_metrics(sklearn.training_metrics(model, X, y, kwargs.get("sample_weight")))
        # Set by fit only when it had an eval_set (XGBoost's evals_result() raises otherwise).
        results = dict(getattr(model, "evals_result_", None) or {})
        log_training(run, results, booster_of(model))
        log_training_data(run, X)
        log_model(run, model, input_example(X))

    return record
