"""Side-by-side comparison of runs: which params differ, which run is best per metric."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from segue.store.entities import Run

#: Metrics whose name contains one of these are better when lower.
_LOWER_IS_BETTER = ("loss", "error", "err", "rmse", "mse", "mae", "mape", "time", "latency")


@dataclass(frozen=True)
class Comparison:
    run_ids: list[str]
    #: key -> one value per run (None where the run lacks the param).
    params: dict[str, list[str | None]]
    differing: set[str]
    metrics: dict[str, list[float | None]]
    #: metric key -> indexes of the best runs (several when their values tie).
    best: dict[str, list[int]]


def lower_is_better(metric: str) -> bool:
    name = metric.lower()
    return any(word in name for word in _LOWER_IS_BETTER)


def compare_runs(runs: Sequence[Run]) -> Comparison:
    """Line up the params and latest metrics of ``runs``.

    Example:
        >>> c = compare_runs([run_a, run_b]); c.differing, c.best
    """
    param_keys = sorted({k for r in runs for k in r.data.params})
    metric_keys = sorted({k for r in runs for k in r.data.metrics})
    params = {k: [r.data.params.get(k) for r in runs] for k in param_keys}
    metrics = {
        k: [r.data.metrics[k].value if k in r.data.metrics else None for r in runs]
        for k in metric_keys
    }
    best: dict[str, list[int]] = {}
    for key, values in metrics.items():
        scored = [(v, i) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
        if scored:
            top = (min if lower_is_better(key) else max)(v for v, _ in scored)
            best[key] = [i for v, i in scored if v == top]
    differing = {k for k, values in params.items() if len(set(values)) > 1}
    return Comparison([r.id for r in runs], params, differing, metrics, best)
