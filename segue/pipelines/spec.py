"""``@segue.step`` and ``@segue.pipeline``: decorators that only mark functions.

A marked function stays a plain function: called outside a pipeline run it just runs. The
decorator records a :class:`StepSpec` or :class:`PipelineSpec` on it (``fn.__segue_step__``,
``fn.__segue_pipeline__``); the runtime (:mod:`segue.pipelines.runtime`) reads those, traces the
pipeline into a DAG (:mod:`segue.pipelines.graph`) and executes it. While a pipeline is being
traced, calling a step records a DAG node and returns a placeholder instead of running it.

Example:
    >>> @segue.step(retries=2)
    ... def load(since: str) -> pd.DataFrame: ...
    >>> @segue.pipeline
    ... def retrain(since: str = "7d") -> segue.pipelines.Model:
    ...     return train(load(since), C=0.5)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

from segue.errors import InvalidArgument

__all__ = ["Model", "PipelineSpec", "StepSpec", "pipeline", "spec_of", "step"]

F = TypeVar("F", bound=Callable[..., Any])

#: The tracer of the pipeline being traced in this context, if any (see graph.py).
TRACER: ContextVar[Tracer | None] = ContextVar("segue_pipeline_tracer", default=None)


class Tracer(Protocol):
    """What a step or pipeline call is handed to while a pipeline is traced."""

    def call_step(self, spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    def call_pipeline(
        self, spec: PipelineSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


@dataclass(frozen=True)
class _Marked:
    """A marked function and its name: what a step's and a pipeline's spec have in common."""

    fn: Callable[..., Any]
    name: str

    @property
    def module(self) -> str:
        return self.fn.__module__

    @property
    def qualname(self) -> str:
        return self.fn.__qualname__


@dataclass(frozen=True)
class StepSpec(_Marked):
    """What ``@segue.step`` records: the function and how the runtime should treat it."""

    cache: bool = True
    retries: int = 0
    backoff: float = 1.0
    resources: Mapping[str, float] = field(default_factory=dict)
    pickle: bool = False

    @property
    def function(self) -> str:
        """``module:qualname``, as recorded in the ``segue.step.function`` tag."""
        return f"{self.module}:{self.qualname}"


@dataclass(frozen=True)
class PipelineSpec(_Marked):
    """What ``@segue.pipeline`` records: the function, its name and its experiment."""

    experiment: str | None = None


@dataclass(frozen=True)
class Model:
    """A model output: saved as a Segue model package (registerable as ``runs:/<run>/...``).

    Args:
        obj: the trained model (any object a Segue flavor saves: scikit-learn, torch, ONNX,
            anything with ``predict``).
        input_example: a few input rows, from which the package's signature is inferred.
        reference_data: training data whose profile is stored for drift monitoring.

    Example:
        >>> @segue.step
        ... def train(data: pd.DataFrame) -> segue.pipelines.Model:
        ...     clf = LogisticRegression().fit(data[X], data.y)
        ...     return segue.pipelines.Model(clf, input_example=data[X].head())
    """

    obj: Any
    input_example: Any = None
    reference_data: Any = None


def _check_options(where: str, retries: Any, backoff: Any, resources: Any) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidArgument(f"{where}: retries must be an integer >= 0, got {retries!r}")
    if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or backoff < 0:
        raise InvalidArgument(f"{where}: backoff must be seconds >= 0, got {backoff!r}")
    if not isinstance(resources, Mapping):
        raise InvalidArgument(f"{where}: resources must be a dict, got {resources!r}")
    for key, value in resources.items():
        if key not in ("num_cpus", "num_gpus", "memory"):
            raise InvalidArgument(
                f"{where}: unknown resource {key!r}; use num_cpus, num_gpus or memory"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidArgument(f"{where}: resource {key} must be a number >= 0")


@overload
def step(fn: F, /) -> F: ...


@overload
def step(
    *,
    cache: bool = True,
    retries: int = 0,
    backoff: float = 1.0,
    resources: Mapping[str, float] | None = None,
    pickle: bool = False,
    name: str | None = None,
) -> Callable[[F], F]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    cache: bool = True,
    retries: int = 0,
    backoff: float = 1.0,
    resources: Mapping[str, float] | None = None,
    pickle: bool = False,
    name: str | None = None,
) -> Any:
    """Mark a function as a pipeline step; it stays callable as plain Python.

    Args:
        cache: reuse an earlier successful execution with the same code, params and inputs.
        retries: extra attempts after a failure, ``backoff`` seconds apart (doubling).
        resources: ``{"num_cpus": 1, "num_gpus": 0}`` for executors that place steps (Ray).
        pickle: let outputs without a materializer be stored with cloudpickle.
        name: the step's name in the DAG (default: the function's name).

    Arguments that receive another step's output are the step's inputs; the others are its
    params (JSON-able values, checked against the annotations). The return annotation picks
    the materializer: ``pd.DataFrame``/``pa.Table`` -> Parquet, ``np.ndarray`` -> .npy,
    :class:`Model` or an estimator -> a model package, JSON-able types -> JSON.

    An annotated type no materializer stores is refused before anything runs. Without a
    return annotation (or with ``Any``) the type is known only once the step returns: an
    unstorable value then fails this step, after the steps before it ran (they stay cached,
    so a rerun starts here). Annotate the return type to be told up front.

    Example:
        >>> @segue.step(retries=2, backoff=0.5)
        ... def load(since: str = "7d") -> pd.DataFrame: ...
    """

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise InvalidArgument(f"@segue.step marks a function, got {func!r}")
        label = name or func.__name__
        _check_options(f"step {label!r}", retries, backoff, resources or {})
        spec = StepSpec(
            func, label, bool(cache), retries, float(backoff), dict(resources or {}), bool(pickle)
        )
        return _traced(func, "__segue_step__", spec, lambda t, a, k: t.call_step(spec, a, k))

    return mark if fn is None else mark(fn)


@overload
def pipeline(fn: F, /) -> F: ...


@overload
def pipeline(*, name: str | None = None, experiment: str | None = None) -> Callable[[F], F]: ...


def pipeline(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    experiment: str | None = None,
) -> Any:
    """Mark a function that composes steps by calling them; it stays callable as plain Python.

    Args:
        name: the pipeline's name, used as its runs' name (default: the function's name).
        experiment: the experiment its runs go to (default: ``"pipelines"``).

    The function's own parameters are the pipeline's params (``--param k=v``). Run it with
    ``segue pipeline run module:fn`` or :func:`segue.pipelines.runtime.run_pipeline`.

    Example:
        >>> @segue.pipeline(experiment="churn")
        ... def retrain(since: str = "7d"):
        ...     return train(load(since))
    """

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise InvalidArgument(f"@segue.pipeline marks a function, got {func!r}")
        spec = PipelineSpec(func, name or func.__name__, experiment)
        return _traced(
            func, "__segue_pipeline__", spec, lambda t, a, k: t.call_pipeline(spec, a, k)
        )

    return mark if fn is None else mark(fn)


def _traced(
    func: Callable[..., Any],
    attribute: str,
    spec: StepSpec | PipelineSpec,
    call: Callable[[Tracer, tuple[Any, ...], dict[str, Any]], Any],
) -> Callable[..., Any]:
    """``func`` with ``spec`` recorded as ``attribute``: it runs as itself, except while a
    pipeline is traced, when ``call`` hands the call to the tracer instead."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tracer = TRACER.get()
        if tracer is None:
            return func(*args, **kwargs)
        return call(tracer, args, kwargs)

    setattr(wrapper, attribute, spec)
    return wrapper


def spec_of(obj: Any) -> StepSpec | PipelineSpec | None:
    """The spec a decorator recorded on ``obj``, or None for an unmarked object."""
    found = getattr(obj, "__segue_step__", None) or getattr(obj, "__segue_pipeline__", None)
    return found if isinstance(found, (StepSpec, PipelineSpec)) else None
