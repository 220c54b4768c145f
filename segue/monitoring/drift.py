"""Data and prediction drift: the logged inputs of a time window against the model's reference.

The reference lives in the model package (written by ``run.log_model(..., reference_data=X)``):
``reference_profile.json`` (per-column quantile bins and category counts of the whole
reference, plus the profile of the model's predictions on the sample) and
``reference_sample.parquet`` (up to 5,000 reference rows for the exact tests). Tests are
chosen per column as Evidently does: KS or chi-square for small windows, normed Wasserstein or
Jensen-Shannon for large ones; every choice and threshold is a :class:`DriftConfig` field.

Example:
    >>> report = drift_report("models:/churn@champion", start=time.time() - 3600)
    >>> [f.feature for f in report.features if f.drifted], report.drifted
    (['age'], False)
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from segue.data.profile import (
    bin_counts,
    category_counts,
    column_kind,
    numeric_values,
    prediction_series,
)
from segue.errors import InvalidArgument
from segue.monitoring import stats

#: Tests each kind of column can take.
NUMERIC_TESTS = ("ks", "wasserstein", "psi", "jensenshannon", "chi2")
CATEGORICAL_TESTS = ("chi2", "jensenshannon", "psi")
#: Tests whose p-value (below ``p_value``) decides; the others compare their statistic.
_P_TESTS = ("ks", "chi2")
_MAX_NEW_CATEGORIES = 50
_SAMPLE_FILE = "reference_sample.parquet"
_PROFILE_FILE = "reference_profile.json"


def _check_test(what: str, test: str, allowed: tuple[str, ...]) -> None:
    if test not in allowed:
        raise InvalidArgument(f"{what}: unknown test {test!r}; use one of {', '.join(allowed)}")


@dataclass(frozen=True)
class DriftConfig:
    """Which test each column gets and when it counts as drifted.

    A column's test: ``methods[column]`` if set, else by its kind and the window's size
    (``<= large_threshold_rows`` current values is small). ``ks`` and ``chi2`` drift when
    p < ``p_value``; ``wasserstein`` (normed), ``psi`` and ``jensenshannon`` when the
    statistic is >= its threshold. The data set drifts when >= ``share`` of features do.

    Raises:
        InvalidArgument: an unknown test or a threshold out of range.
    """

    numeric_small: str = "ks"
    numeric_large: str = "wasserstein"
    categorical_small: str = "chi2"
    categorical_large: str = "jensenshannon"
    large_threshold_rows: int = 1000
    p_value: float = 0.05
    wasserstein: float = 0.1
    psi: float = 0.2
    jensenshannon: float = 0.1
    share: float = 0.5
    methods: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("numeric_small", "numeric_large"):
            _check_test(name, getattr(self, name), NUMERIC_TESTS)
        for name in ("categorical_small", "categorical_large"):
            _check_test(name, getattr(self, name), CATEGORICAL_TESTS)
        for column, test in self.methods.items():
            _check_test(f"method of {column!r}", test, NUMERIC_TESTS)
        for name in ("p_value", "share"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise InvalidArgument(f"threshold {name}: expected a number in (0, 1], got {value}")
        for name in ("wasserstein", "psi", "jensenshannon"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidArgument(f"threshold {name}: expected a positive number, got {value}")
        rows = self.large_threshold_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise InvalidArgument(f"large_threshold_rows: expected an integer >= 1, got {rows!r}")

    def threshold(self, test: str) -> float:
        """The threshold ``test`` is judged by."""
        return self.p_value if test in _P_TESTS else getattr(self, test)


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


@dataclass(frozen=True)
class ReferenceData:
    """What a window is compared with.

    Args:
        columns: the reference profile's column profiles (``profile_frame(df)["columns"]``).
        sample: reference rows for KS (None: reconstructed from each column's histogram).
        predictions: ``prediction_profile`` of the model on the sample (None: no prediction
            drift).
        notes: caveats about the reference, copied into the report.
    """

    columns: dict[str, dict[str, Any]]
    sample: pd.DataFrame | None = None
    predictions: dict[str, Any] | None = None
    model: str = ""
    version: str | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_frame(
        cls, data: Any, *, predictions: Any = None, model: str = "", version: str | None = None
    ) -> ReferenceData:
        """The reference a package would hold for ``data`` (and the model's ``predictions``
        on its sample rows, if given).

        Example:
            >>> ref = ReferenceData.from_frame(X_train)
        """
        from segue.data.frames import to_frame
        from segue.data.profile import prediction_profile, profile_frame
        from segue.models.package import REFERENCE_SAMPLE_ROWS, reference_sample_rows

        frame = to_frame(data)
        rows = reference_sample_rows(len(frame), REFERENCE_SAMPLE_ROWS)
        return cls(
            columns=profile_frame(frame)["columns"],
            sample=frame.iloc[rows].reset_index(drop=True),
            predictions=None if predictions is None else prediction_profile(predictions),
            model=model,
            version=version,
        )


# -- comparing (pure) --------------------------------------------------------------------------


def compare(
    reference: ReferenceData,
    current: pd.DataFrame,
    predictions: np.ndarray | None,
    config: DriftConfig = DriftConfig(),
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
    n_rows = len(current)
    features = []
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
        features.append(_feature_drift(name, profile, sample, series, config))
    prediction = None
    profile = reference.predictions
    if profile is not None and predictions is not None and len(predictions):
        label = profile["kind"] == "categorical"
        series = prediction_series(predictions, label)
        sample = pd.Series(profile.get("sample") or [], dtype=object)
        if not label:
            sample = pd.to_numeric(sample, errors="coerce").astype(np.float64)
        prediction = _feature_drift("prediction", profile, sample, series, config)
    return features, prediction


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
    _check_test(f"method of {kind} column {name!r}", test, allowed)
    return test


def _numeric_drift(
    name: str, profile: dict, sample: pd.Series | None, series: pd.Series, config: DriftConfig
) -> FeatureDrift:
    if column_kind(series.dtype) == "numeric":
        values = numeric_values(series)
    else:  # JSON gave strings or mixed values: what is not a number counts as missing
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = int(np.count_nonzero(np.isnan(values)))
    finite = values[np.isfinite(values)] if missing or not np.isfinite(values).all() else values
    lo, hi = profile.get("min"), profile.get("max")
    unseen = {
        "new_categories": [],
        "below_min": int(np.count_nonzero(finite < lo)) if lo is not None else 0,
        "above_max": int(np.count_nonzero(finite > hi)) if hi is not None else 0,
        "new_missing": missing if profile.get("missing", 0) == 0 else 0,
    }
    test = _method(name, "numeric", len(finite), config)
    histogram = profile.get("histogram") or {"edges": [], "counts": []}
    p_value = None
    if test in ("ks", "wasserstein"):
        reference = _reference_values(sample, histogram)
        n_reference = len(reference)
        if test == "ks":
            result = stats.ks(reference, finite)
            statistic, p_value = result.statistic, result.p_value
        else:
            statistic = stats.wasserstein_normed(reference, finite, std=profile.get("std"))
    else:
        n_reference = int(profile.get("count", 0))
        edges = histogram["edges"]
        current_counts = bin_counts(finite, edges) if len(edges) >= 2 else []
        statistic, p_value = _binned(test, histogram["counts"], current_counts)
    return _result(
        name, "numeric", test, statistic, p_value, n_reference, len(finite), unseen, config
    )


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
    elif test in _P_TESTS:
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


# -- reading the reference and the window ------------------------------------------------------


def load_reference(model_uri: str) -> ReferenceData:
    """The reference of the version ``model_uri`` names (``models:/NAME@ALIAS``,
    ``models:/NAME/3``, ``NAME``: the latest version), read from its verified package.

    Raises:
        NotFound: no such model, version or alias.
        InvalidArgument: the package holds no reference (logged without ``reference_data``).
        IntegrityError: a reference file does not match its recorded sha256.
    """
    import json

    from segue.errors import IntegrityError
    from segue.models.package import read_manifest, sha256_file
    from segue.models.uri import parse_model_uri

    registry, version = _version(model_uri)
    run_id, path, digest, _ = registry._locate(parse_model_uri(version.uri))
    folder = registry._materialize(run_id, path, digest)
    manifest = read_manifest(folder, digest)
    if _PROFILE_FILE not in manifest.files:
        raise InvalidArgument(
            f"{version.uri} has no reference profile to compare with; log the model with "
            "run.log_model(model, reference_data=X_train)"
        )
    for name in (_PROFILE_FILE, _SAMPLE_FILE):
        meta = manifest.files.get(name)
        if meta is not None and sha256_file(folder / name) != meta["sha256"]:
            raise IntegrityError(f"{version.uri}: {name} does not match its recorded sha256")
    profile = json.loads((folder / _PROFILE_FILE).read_text())
    notes = []
    sample = None
    if _SAMPLE_FILE in manifest.files:
        sample = pd.read_parquet(folder / _SAMPLE_FILE)
    else:
        notes.append(
            f"{version.uri} predates reference samples: KS and Wasserstein compare with a "
            "sample reconstructed from the reference's quantile histogram (approximate)"
        )
    predictions = profile.get("predictions")
    if predictions is None:
        notes.append(
            f"{version.uri} holds no reference predictions (older package, or the model could "
            "not predict on its reference data): prediction drift is not tested"
        )
    return ReferenceData(
        columns=profile["columns"],
        sample=sample,
        predictions=predictions,
        model=version.model_name,
        version=str(version.version),
        notes=tuple(notes),
    )


def current_window(
    model_uri: str, *, start: float | None, end: float | None
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The rows the served version of ``model_uri`` answered with ``start <= time < end``.

    Only the primary role's successful requests count; each request's rows become rows of the
    frame (columns named as logged) and its outputs the predictions, one per row.

    Returns:
        (inputs frame, predictions as an object array, version number as a string)

    Raises:
        InvalidArgument: nothing was logged in the window.
    """
    import orjson

    from segue.config import settings
    from segue.monitoring.readers import read_predictions

    _, version = _version(model_uri)
    name, number = version.model_name, str(version.version)
    logged = read_predictions(
        settings().artifact_uri,
        name,
        start=start,
        end=end,
        version=number,
        role="primary",
        decode=False,
    )
    logged = logged[(logged["status"].to_numpy() // 100) == 2]
    if len(logged) == 0:
        raise InvalidArgument(
            f"no predictions logged for {name} (version {number}, primary) between "
            f"{_when(start, 'the beginning')} and {_when(end, 'now')}; widen the window "
            "(--since) or check that the server logs predictions"
        )
    # One orjson call for the whole window instead of one per request.
    inputs = orjson.loads("[" + ",".join(logged["inputs"]) + "]")
    outputs = orjson.loads("[" + ",".join(logged["outputs"]) + "]")
    aligned = [
        (rows, out)
        for rows, out in zip(inputs, outputs, strict=True)
        if isinstance(rows, list) and isinstance(out, list) and len(rows) == len(out)
    ]
    rows = list(itertools.chain.from_iterable(rows for rows, _ in aligned))
    predictions = list(itertools.chain.from_iterable(out for _, out in aligned))
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    frame.columns = [str(c) for c in frame.columns]
    if predictions and isinstance(predictions[0], (dict, list)):
        from segue.monitoring.logs import split_output

        predictions = [split_output(p)[0] for p in predictions]
    array = np.empty(len(predictions), dtype=object)
    array[:] = predictions
    return frame, array, number


def drift_report(
    model_uri: str,
    *,
    start: float | None = None,
    end: float | None = None,
    config: DriftConfig = DriftConfig(),
) -> DriftReport:
    """Compare what the served version of ``model_uri`` answered in ``[start, end)`` with its
    reference data.

    Raises:
        InvalidArgument: an empty window, or a package without reference data.
        NotFound: no such model, version or alias.

    Example:
        >>> drift_report("models:/churn@champion", start=time.time() - 86400).drifted
        False
    """
    reference = load_reference(model_uri)
    frame, predictions, version = current_window(model_uri, start=start, end=end)
    features, prediction = compare(reference, frame, predictions, config)
    drifted = sum(f.drifted for f in features)
    share = drifted / len(features) if features else 0.0
    return DriftReport(
        model=reference.model,
        version=version,
        start=start,
        end=end,
        n_rows=len(frame),
        features=features,
        prediction=prediction,
        drift_share=share,
        drifted=bool(features) and share >= config.share,
        share_threshold=config.share,
        notes=[*reference.notes, *_notes(reference, frame, features)],
    )


def config_from_options(
    methods: list[str], thresholds: list[str], base: DriftConfig = DriftConfig()
) -> DriftConfig:
    """A config from CLI options: ``COLUMN=TEST`` and ``NAME=VALUE`` (``p_value``,
    ``wasserstein``, ``psi``, ``jensenshannon``, ``share``, ``large_threshold_rows``).

    Raises:
        InvalidArgument: a malformed option, an unknown name or test, a bad value.
    """
    per_column = dict(base.methods)
    for option in methods:
        column, test = _pair("--method", option, "COLUMN=TEST, e.g. age=psi")
        per_column[column] = test
    changes: dict[str, Any] = {"methods": per_column}
    numbers = ("p_value", "wasserstein", "psi", "jensenshannon", "share", "large_threshold_rows")
    for option in thresholds:
        name, text = _pair("--threshold", option, "NAME=VALUE, e.g. psi=0.1")
        if name not in numbers:
            raise InvalidArgument(
                f"--threshold {option!r}: unknown name; use one of " + ", ".join(numbers)
            )
        try:
            changes[name] = int(text) if name == "large_threshold_rows" else float(text)
        except ValueError:
            raise InvalidArgument(f"--threshold {option!r}: {text!r} is not a number") from None
    return replace(base, **changes)


def _pair(option: str, text: str, form: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise InvalidArgument(f"{option} {text!r}: expected {form}")
    return key.strip(), value.strip()


def _version(model_uri: str) -> tuple[Any, Any]:
    from segue.monitoring.logs import target
    from segue.registry.service import get_registry

    registry = get_registry()
    return registry, registry.resolve(target(model_uri).uri)


def _when(epoch: float | None, default: str) -> str:
    if epoch is None:
        return default
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


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
