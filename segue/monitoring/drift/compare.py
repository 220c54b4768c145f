"""Comparing a logged window with its reference: per-feature and prediction drift (pure).

Every function here works on plain data (a :class:`~segue.monitoring.drift.reference.ReferenceData`,
a DataFrame, an array): no I/O. :func:`assess` turns the per-feature results into a
:class:`DriftReport` and :func:`verdict` words it for people: what drifted first, then the data
set rule.

Example:
    >>> report = assess(ReferenceData.from_frame(X_train), X_live, None, DriftConfig())
    >>> verdict(report)[0]
    '1 of 3 features drifted: age'
    >>> verdict(report)[1]
    'No data set drift (the rule: >= 50% of features drifted; here 33%)'
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from segue.data.profile import (
    category_counts,
    column_kind,
    numeric_values,
    prediction_series,
)
from segue.monitoring import stats
from segue.monitoring.drift.config import (
    CATEGORICAL_TESTS,
    NUMERIC_TESTS,
    P_TESTS,
    DriftConfig,
    check_test,
)
from segue.monitoring.drift.reference import ReferenceData

_MAX_NEW_CATEGORIES = 50
#: Windows of at least this many values (rows x columns) are tested on several threads.
_THREADED_VALUES = 1_000_000
_MAX_THREADS = 8
#: Most drifted feature names a verdict lists before "and N more".
_MAX_NAMED = 10


@dataclass(frozen=True)
class FeatureDrift:
    """The drift test of one feature (or of the predictions).

    ``unseen``: ``{"new_categories": [...], "below_min": int, "above_max": int,
    "new_missing": int}``: current values outside what the reference held (new categories,
    numbers beyond its min/max, missing values in a column that had none).
    """

    feature: str
    kind: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    unseen: dict


@dataclass(frozen=True)
class DriftReport:
    """Drift of a model's logged window against its reference."""

    model: str
    version: str | None
    start: float | None
    end: float | None
    n_rows: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    drift_share: float
    drifted: bool
    share_threshold: float
    notes: list[str]


def compare(
    reference: ReferenceData,
    current: pd.DataFrame,
    predictions: np.ndarray | None,
    config: DriftConfig | None = None,
) -> tuple[list[FeatureDrift], FeatureDrift | None]:
    """Test every reference column of ``current`` (and ``predictions``) for drift.

    Pure: no I/O. A reference column missing from ``current`` is tested as all-missing;
    datetime columns are skipped.

    Returns:
        (one :class:`FeatureDrift` per column, in the reference's order; the prediction's or
        None when the reference has no prediction profile or there are no predictions)

    Example:
        >>> features, prediction = compare(ReferenceData.from_frame(X_train), X_live, None)
    """
    config = config if config is not None else DriftConfig()
    n_rows = len(current)
    tasks = []
    for name, profile in reference.columns.items():
        if profile["kind"] == "datetime":
            continue
        series = current[name] if name in current.columns else None
        if series is None:
            empty = np.full(n_rows, np.nan) if profile["kind"] == "numeric" else [None] * n_rows
            series = pd.Series(empty, dtype=np.float64 if profile["kind"] == "numeric" else object)
        sample = None
        if reference.sample is not None and name in reference.sample.columns:
            sample = reference.sample[name]
        tasks.append((name, profile, sample, series, config))
    n_features = len(tasks)
    predicted = reference.predictions
    if predicted is not None and predictions is not None and len(predictions):
        label = predicted["kind"] == "categorical"
        series = prediction_series(predictions, label)
        sample = pd.Series(predicted.get("sample") or [], dtype=object)
        if not label:
            sample = pd.to_numeric(sample, errors="coerce").astype(np.float64)
        tasks.append(("prediction", predicted, sample, series, config))
    results = _run_all(tasks, n_rows)
    return results[:n_features], results[n_features] if len(results) > n_features else None


def _run_all(tasks: list[tuple], n_rows: int) -> list[FeatureDrift]:
    """Every column's test, in order; on several threads for large windows, because the
    tests spend their time in NumPy sorts and counts that release the GIL."""
    workers = min(len(tasks), _MAX_THREADS, _cpus())
    if workers < 2 or n_rows * len(tasks) < _THREADED_VALUES:
        return [_feature_drift(*task) for task in tasks]
    with ThreadPoolExecutor(workers, thread_name_prefix="segue-drift") as pool:
        return list(pool.map(lambda task: _feature_drift(*task), tasks))


def _cpus() -> int:
    """The CPUs this process may run on (all of the machine's where that is not known)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _feature_drift(
    name: str, profile: dict, sample: pd.Series | None, series: pd.Series, config: DriftConfig
) -> FeatureDrift:
    kind = profile["kind"]
    if kind == "numeric":
        return _numeric_drift(name, profile, sample, series, config)
    return _categorical_drift(name, profile, sample, series, config)


def _method(name: str, kind: str, n_current: int, config: DriftConfig) -> str:
    test = config.methods.get(name)
    if test is None:
        large = n_current > config.large_threshold_rows
        if kind == "numeric":
            return config.numeric_large if large else config.numeric_small
        return config.categorical_large if large else config.categorical_small
    allowed = NUMERIC_TESTS if kind == "numeric" else CATEGORICAL_TESTS
    check_test(f"method of {kind} column {name!r}", test, allowed)
    return test


def _numeric_drift(
    name: str, profile: dict, sample: pd.Series | None, series: pd.Series, config: DriftConfig
) -> FeatureDrift:
    if column_kind(series.dtype) == "numeric":
        values = numeric_values(series)
    else:  # JSON gave strings or mixed values: what is not a number counts as missing
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    column = _finite(values, name, config)
    test, finite, ordered = column.test, column.values, column.ordered
    lo, hi = profile.get("min"), profile.get("max")
    unseen = {
        "new_categories": [],
        "below_min": column.count_below(lo),
        "above_max": column.count_above(hi),
        "new_missing": column.missing if profile.get("missing", 0) == 0 else 0,
    }
    histogram = profile.get("histogram") or {"edges": [], "counts": []}
    p_value = None
    if test in ("ks", "wasserstein"):
        reference = _reference_values(sample, histogram)
        n_reference = len(reference)
        if ordered:
            result = stats.ks_sorted(np.sort(reference), finite)
            statistic, p_value = result.statistic, result.p_value
        else:
            statistic = stats.wasserstein_normed(
                reference, finite, std=profile.get("std"), current_range=column.range
            )
    else:
        n_reference = int(profile.get("count", 0))
        edges = histogram["edges"]
        current_counts = stats.sorted_bin_counts(finite, edges).tolist() if len(edges) >= 2 else []
        statistic, p_value = _binned(test, histogram["counts"], current_counts)
    return _result(
        name, "numeric", test, statistic, p_value, n_reference, len(finite), unseen, config
    )


@dataclass(frozen=True)
class _FiniteColumn:
    """A numeric column's finite values (sorted when ``ordered``), their ``(min, max)``
    (None when empty), its test and how many values were missing."""

    test: str
    values: np.ndarray
    ordered: bool
    range: tuple[float, float] | None
    missing: int

    def count_below(self, bound: float | None) -> int:
        if bound is None or self.range is None or self.range[0] >= bound:
            return 0
        if self.ordered:
            return int(np.searchsorted(self.values, bound, side="left"))
        return int(np.count_nonzero(self.values < bound))

    def count_above(self, bound: float | None) -> int:
        if bound is None or self.range is None or self.range[1] <= bound:
            return 0
        if self.ordered:
            return len(self.values) - int(np.searchsorted(self.values, bound, side="right"))
        return int(np.count_nonzero(self.values > bound))


def _finite(values: np.ndarray, name: str, config: DriftConfig) -> _FiniteColumn:
    """The finite values of a float column, ready for the test it gets.

    KS and the binned tests sort the column once and read everything off the sorted values
    (counts beyond the reference's range too); Wasserstein bins the values unsorted.
    """
    mask = np.isfinite(values)
    complete = bool(mask.all())
    test = _method(name, "numeric", len(values) if complete else int(mask.sum()), config)
    finite = values if complete else values[mask]
    missing = 0 if complete else int(np.count_nonzero(np.isnan(values)))
    ordered = test != "wasserstein"
    if ordered:
        finite = np.sort(finite)
    if len(finite) == 0:
        return _FiniteColumn(test, finite, ordered, None, missing)
    if ordered:
        bounds = (float(finite[0]), float(finite[-1]))
    else:
        bounds = (float(finite.min()), float(finite.max()))
    return _FiniteColumn(test, finite, ordered, bounds, missing)


def _categorical_drift(
    name: str, profile: dict, sample: pd.Series | None, series: pd.Series, config: DriftConfig
) -> FeatureDrift:
    counts = category_counts(series)
    n_current = int(counts.sum())
    top = {entry["value"]: int(entry["count"]) for entry in profile.get("top", [])}
    in_top = counts.index.isin(list(top))
    rest = counts[~in_top]
    if len(rest) and sample is not None:
        # Categories the sample holds were seen, even if the profile kept only its top ones.
        rest = rest[~rest.index.isin(category_counts(sample).index)]
    new = rest.sort_values(ascending=False, kind="stable").index[:_MAX_NEW_CATEGORIES].tolist()
    unseen = {
        "new_categories": [str(v) for v in new],
        "below_min": 0,
        "above_max": 0,
        "new_missing": (len(series) - n_current) if profile.get("missing", 0) == 0 else 0,
    }
    test = _method(name, "categorical", n_current, config)
    keys = list(top)
    reference_counts = [*top.values(), int(profile.get("other_count", 0))]
    current_counts = [*counts.reindex(keys, fill_value=0).tolist(), int(counts[~in_top].sum())]
    statistic, p_value = _binned(test, reference_counts, current_counts)
    n_reference = int(profile.get("count", 0))
    return _result(
        name, "categorical", test, statistic, p_value, n_reference, n_current, unseen, config
    )


def _binned(test: str, reference_counts: Any, current_counts: Any) -> tuple[float, float | None]:
    if len(reference_counts) == 0 or sum(current_counts) == 0 or sum(reference_counts) == 0:
        return math.nan, None
    if test == "chi2":
        result = stats.chi_square(reference_counts, current_counts)
        return result.statistic, result.p_value
    if test == "psi":
        return stats.psi(reference_counts, current_counts), None
    return stats.jensen_shannon(reference_counts, current_counts), None


def _reference_values(sample: pd.Series | None, histogram: dict) -> np.ndarray:
    if sample is not None:
        values = (
            numeric_values(sample)
            if column_kind(sample.dtype) == "numeric"
            else pd.to_numeric(sample, errors="coerce").to_numpy(dtype=np.float64)
        )
        return values[np.isfinite(values)]
    return stats.sample_from_histogram(histogram["edges"], histogram["counts"])


def _result(
    name: str,
    kind: str,
    test: str,
    statistic: float,
    p_value: float | None,
    n_reference: int,
    n_current: int,
    unseen: dict,
    config: DriftConfig,
) -> FeatureDrift:
    threshold = config.threshold(test)
    if n_current == 0 or math.isnan(statistic):
        # Nothing to test: a column that went entirely missing has still changed.
        drifted = unseen["new_missing"] > 0
        statistic, p_value = math.nan, None
    elif test in P_TESTS:
        drifted = p_value is not None and p_value < threshold
    else:
        drifted = statistic >= threshold
    return FeatureDrift(
        feature=name,
        kind=kind,
        test=test,
        statistic=float(statistic),
        p_value=None if p_value is None else float(p_value),
        threshold=float(threshold),
        drifted=bool(drifted),
        n_reference=n_reference,
        n_current=n_current,
        unseen=unseen,
    )


def assess(
    reference: ReferenceData,
    current: pd.DataFrame,
    predictions: np.ndarray | None,
    config: DriftConfig,
    *,
    start: float | None = None,
    end: float | None = None,
    version: str | None = None,
) -> DriftReport:
    """The drift report of ``current`` (and ``predictions``) against ``reference``: every
    feature's test, the share that drifted and the data set verdict. Pure.

    ``version`` (default: the reference's) is the version whose traffic ``current`` is.
    """
    features, prediction = compare(reference, current, predictions, config)
    drifted = sum(f.drifted for f in features)
    share = drifted / len(features) if features else 0.0
    return DriftReport(
        model=reference.model,
        version=version if version is not None else reference.version,
        start=start,
        end=end,
        n_rows=len(current),
        features=features,
        prediction=prediction,
        drift_share=share,
        drifted=bool(features) and share >= config.share,
        share_threshold=config.share,
        notes=[*reference.notes, *_notes(reference, current, features)],
    )


def verdict(report: DriftReport) -> tuple[str, str]:
    """Two lines for people: what drifted (``"5 of 30 features drifted: a, b, c, d, e"``),
    then the data set verdict with its rule and threshold (``"No data set drift (the rule:
    >= 50% of features drifted; here 17%)"``).

    The features come first because they are the finding; the data set verdict is one rule
    over them, and a reader who sees "no drift" first would skip the features that did drift.
    """
    names = [f.feature for f in report.features if f.drifted]
    total = len(report.features)
    what = f"{len(names)} of {total} feature{'' if total == 1 else 's'} drifted"
    if names:
        shown = names[:_MAX_NAMED]
        more = len(names) - len(shown)
        what += ": " + ", ".join(shown) + (f" and {more} more" if more else "")
    if report.prediction is not None and report.prediction.drifted:
        what += "; the predictions drifted too" if names else "; the predictions drifted"
    rule = (
        f"(the rule: >= {report.share_threshold:.0%} of features drifted; "
        f"here {report.drift_share:.0%})"
    )
    return what, f"{'Data set drift' if report.drifted else 'No data set drift'} {rule}"


def _notes(reference: ReferenceData, frame: pd.DataFrame, features: list[FeatureDrift]) -> list:
    notes = []
    for feature in features:
        profile = reference.columns[feature.feature]
        if feature.unseen["new_categories"] and profile.get("other_count", 0) > 0:
            notes.append(
                f"{feature.feature}: the reference profile kept only its top "
                f"{len(profile.get('top', []))} categories (and the sample); the 'new' "
                "categories may be rare ones seen in training"
            )
    extra = [c for c in frame.columns if c not in reference.columns]
    if extra:
        notes.append(f"columns not in the reference, not tested: {', '.join(extra)}")
    absent = [c for c in reference.columns if c not in frame.columns]
    if absent:
        notes.append(f"reference columns absent from the logged inputs: {', '.join(absent)}")
    return notes
