"""Summarise a DataFrame into a compact, JSON-ready profile.

The profile of a training set is the reference that monitoring compares production inputs
against, so it keeps what the drift tests need: quantile-based bin edges with the reference
counts per bin (PSI), quantiles (a KS approximation), and category counts (chi-square,
Jensen-Shannon). :func:`numeric_values`, :func:`category_counts` and :func:`bin_counts` are the
conventions the profile is built with; monitoring uses them on production data so that both
sides are counted the same way.

Everything here is vectorised: one sort per numeric column, one ``value_counts`` per
categorical column, no Python loop over rows.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from segue.errors import InvalidArgument

Kind = Literal["numeric", "categorical", "datetime"]

#: Quantiles every numeric column profile carries, keyed by ``str(q)``.
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def profile_frame(df: pd.DataFrame, *, max_categories: int = 20, bins: int = 20) -> dict[str, Any]:
    """Profile every column of ``df``.

    Returns ``{"n_rows", "n_columns", "columns": {name: column_profile}}``, made of plain
    ``dict``/``list``/``str``/``int``/``float``/``None`` only (never NaN or infinity), so it
    passes ``json.dumps(..., allow_nan=False)``. A column profile is, by :func:`column_kind`:

    - numeric (ints, floats, timedeltas in seconds): ``kind, dtype, count`` (finite values),
      ``missing`` (NaN/None), ``infinite`` (+-inf, left out of every statistic), ``n_unique,
      min, max, mean, std`` (ddof=1, None below 2 values), ``quantiles`` (``{"0.01": ...,
      "0.99": ...}``) and ``histogram``: ``{"edges", "counts"}`` with up to ``bins + 1``
      strictly increasing quantile-based edges from min to max (``[v, v]`` for a constant
      column) and the counts per bin as :func:`bin_counts` gives them, summing to ``count``;
    - categorical (strings, objects, categories, bools): ``kind, dtype, count, missing,
      n_unique``, ``top`` (at most ``max_categories`` of ``{"value": str, "count", "frequency"}``,
      most frequent first, ties by value) and ``other_count`` (values outside ``top``);
    - datetime: ``kind, dtype, count, missing, min, max`` (ISO 8601 strings).

    A column with no values keeps its kind and counts; its statistics are None or empty.

    Raises:
        InvalidArgument: if ``bins`` or ``max_categories`` is below 1, or two columns share a
            name.

    Example::

        >>> df = pd.DataFrame({"age": [31, 45, None], "city": ["Oslo", "Lima", "Oslo"]})
        >>> p = profile_frame(df)
        >>> p["columns"]["age"]["missing"], p["columns"]["city"]["top"][0]["value"]
        (1, 'Oslo')
    """
    _check_count("bins", bins)
    _check_count("max_categories", max_categories)
    names = [str(name) for name in df.columns]
    if len(set(names)) < len(names):
        raise InvalidArgument(
            "df: two or more columns share a name once converted to str; rename them"
        )
    columns = {}
    for name, (_, series) in zip(names, df.items(), strict=True):
        kind = column_kind(series.dtype)
        if kind == "numeric":
            columns[name] = _numeric_profile(series, bins)
        elif kind == "datetime":
            columns[name] = _datetime_profile(series)
        else:
            columns[name] = _categorical_profile(series, max_categories)
    return {"n_rows": len(df), "n_columns": len(names), "columns": columns}


def column_kind(dtype: Any) -> Kind:
    """Return how a column of ``dtype`` is profiled: numeric, categorical or datetime.

    Bools (NumPy and nullable) and complex numbers are categorical; timedeltas are numeric.

    Example::

        >>> column_kind(pd.Series([True]).dtype)
        'categorical'
    """
    if ptypes.is_bool_dtype(dtype):
        return "categorical"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "datetime"
    if ptypes.is_timedelta64_dtype(dtype):
        return "numeric"
    if ptypes.is_numeric_dtype(dtype) and not ptypes.is_complex_dtype(dtype):
        return "numeric"
    return "categorical"


def numeric_values(series: pd.Series) -> np.ndarray:
    """Return a numeric column as float64, NaN where missing; timedeltas become seconds.

    A float64 column comes back without a copy: treat the array as read-only.

    Example::

        >>> numeric_values(pd.Series([1, None], dtype="Int64")).tolist()
        [1.0, nan]
    """
    if ptypes.is_timedelta64_dtype(series.dtype):
        series = series.dt.total_seconds()
    if series.dtype == np.float64:
        return series.to_numpy()
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def category_counts(series: pd.Series) -> pd.Series:
    """Count the non-missing values of ``series`` by their ``str()``, in no particular order.

    Values that print alike (``1`` and ``"1"``) are counted together, as the profile keys
    categories by string. Unused categories of a ``category`` column are left out.

    Example::

        >>> category_counts(pd.Series(["a", "b", "a", None])).to_dict()
        {'a': 2, 'b': 1}
    """
    try:
        counts = series.value_counts(dropna=True, sort=False)
    except TypeError:  # unhashable objects such as lists: count their text instead
        counts = series[series.notna()].map(str).value_counts(sort=False)
    counts = counts[counts.to_numpy() > 0]
    if ptypes.infer_dtype(counts.index, skipna=False) == "string":
        # Already distinct strings: skip a per-value str() that dominates high-cardinality columns.
        return pd.Series(counts.to_numpy(dtype=np.int64), index=counts.index)
    keys = pd.Index([str(value) for value in counts.index], dtype=object)
    result = pd.Series(counts.to_numpy(dtype=np.int64), index=keys)
    if not keys.is_unique:
        result = result.groupby(level=0, sort=False).sum()
    return result


def bin_counts(values: Any, edges: list[float]) -> list[int]:
    """Count ``values`` into the bins between ``edges``, as a profile's histogram does.

    Bin ``i`` is ``[edges[i], edges[i + 1])`` and the last bin also holds ``edges[-1]`` (NumPy's
    ``histogram`` rule). NaN is skipped; values below the first edge count in the first bin and
    values above the last edge in the last, so production data outside the reference range
    still shows up (and drifts). Edges ``[v, v]`` make one bin that holds everything. Pass a
    column through :func:`numeric_values` first, as the profile does.

    Example::

        >>> bin_counts([0.5, 1.0, 2.0, 9.0], [0.0, 1.0, 2.0])
        [1, 3]
    """
    edges_array = np.asarray(edges, dtype=np.float64)
    n_bins = len(edges_array) - 1
    if n_bins < 1:
        raise InvalidArgument(f"edges: need at least 2 edges to make a bin, got {len(edges)}")
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    positions = np.searchsorted(edges_array, array, side="right") - 1
    np.clip(positions, 0, n_bins - 1, out=positions)
    return np.bincount(positions, minlength=n_bins).tolist()


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgument(f"{name}: expected an integer of at least 1, got {value!r}")


def _numeric_profile(series: pd.Series, bins: int) -> dict[str, Any]:
    values = numeric_values(series)
    finite = np.isfinite(values)
    count = int(np.count_nonzero(finite))
    missing = int(np.count_nonzero(np.isnan(values)))
    profile: dict[str, Any] = {
        "kind": "numeric",
        "dtype": str(series.dtype),
        "count": count,
        "missing": missing,
        "infinite": len(values) - count - missing,
    }
    if count == 0:
        return {
            **profile,
            "n_unique": 0,
            **dict.fromkeys(("min", "max", "mean", "std")),
            "quantiles": dict.fromkeys(map(str, QUANTILES)),
            "histogram": {"edges": [], "counts": []},
        }
    if count < len(values):
        values = values[finite]
    ordered = np.sort(values)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = np.mean(values)
        std = np.std(values, ddof=1) if count > 1 else None
    quantiles = _sorted_quantiles(ordered, QUANTILES)
    return {
        **profile,
        "n_unique": int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1,
        **_bounds(series, ordered),
        "mean": _float(mean),
        "std": _float(std),
        "quantiles": {str(q): _float(x) for q, x in zip(QUANTILES, quantiles, strict=True)},
        "histogram": _histogram(ordered, bins),
    }


def _sorted_quantiles(ordered: np.ndarray, qs: Any) -> np.ndarray:
    # np.quantile's default ("linear") method, on data sorted once for all the numbers we need.
    positions = np.asarray(qs, dtype=np.float64) * (len(ordered) - 1)
    lower = np.floor(positions).astype(np.intp)
    low, high = ordered[lower], ordered[np.ceil(positions).astype(np.intp)]
    with np.errstate(over="ignore", invalid="ignore"):
        result = low + (high - low) * (positions - lower)
    # Clipping keeps rounding and overflow from stepping outside the two neighbours.
    return np.clip(result, low, high)


def _histogram(ordered: np.ndarray, bins: int) -> dict[str, list]:
    edges = np.unique(_sorted_quantiles(ordered, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) == 1:
        edges = np.repeat(edges, 2)
    # For sorted data, the number of values below each left edge gives np.histogram's counts.
    starts = np.searchsorted(ordered, edges[:-1], side="left")
    counts = np.diff(np.append(starts, len(ordered)))
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def _categorical_profile(series: pd.Series, max_categories: int) -> dict[str, Any]:
    counts = category_counts(series)
    count = int(counts.sum())
    frequent = _most_frequent(counts, max_categories)
    top = [{"value": value, "count": n, "frequency": n / count} for value, n in frequent]
    return {
        "kind": "categorical",
        "dtype": str(series.dtype),
        "count": count,
        "missing": len(series) - count,
        "n_unique": len(counts),
        "top": top,
        "other_count": count - sum(n for _, n in frequent),
    }


def _most_frequent(counts: pd.Series, k: int) -> list[tuple[str, int]]:
    """The ``k`` largest counts, ties broken by value, without sorting every category."""
    values = counts.to_numpy()
    if len(values) > k:
        threshold = np.partition(values, len(values) - k)[len(values) - k]
        above = counts[values > threshold]
        tied_values = counts.index[values == threshold].to_numpy(dtype=object)
        tied = heapq.nsmallest(k - len(above), tied_values)
        chosen = [*above.items(), *((value, threshold) for value in tied)]
    else:
        chosen = list(counts.items())
    return sorted(
        ((str(value), int(n)) for value, n in chosen), key=lambda item: (-item[1], item[0])
    )


def _datetime_profile(series: pd.Series) -> dict[str, Any]:
    missing = int(series.isna().sum())
    count = len(series) - missing
    return {
        "kind": "datetime",
        "dtype": str(series.dtype),
        "count": count,
        "missing": missing,
        "min": series.min().isoformat() if count else None,
        "max": series.max().isoformat() if count else None,
    }


def _bounds(series: pd.Series, ordered: np.ndarray) -> dict[str, int | float | None]:
    # Integer columns report exact bounds: float64 cannot hold every int64 past 2**53.
    if ptypes.is_integer_dtype(series.dtype) and not ptypes.is_timedelta64_dtype(series.dtype):
        return {"min": int(series.min()), "max": int(series.max())}
    return {"min": _float(ordered[0]), "max": _float(ordered[-1])}


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


#: Predictions with at most this many distinct whole values (or any non-numbers) are labels.
_MAX_LABELS = 20


def prediction_profile(predictions: Any, *, sample: int | None = None) -> dict[str, Any] | None:
    """Profile a model's 1-D predictions like a column, plus ``"sample"``: the values.

    Class labels (strings, bools, or at most 20 distinct whole numbers) are profiled as a
    categorical column; other numbers as a numeric one. ``sample`` keeps at most that many
    values (the first ones); missing values are stored as None. Returns None for
    predictions that are not one value per row (probabilities, several outputs).

    Example::

        >>> prediction_profile([0, 1, 1])["kind"], prediction_profile([0.5, 1.2])["kind"]
        ('categorical', 'numeric')
    """
    values = np.asarray(predictions)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        return None
    series = prediction_series(values, is_label(values))
    profile = profile_frame(pd.DataFrame({"prediction": series}))["columns"]["prediction"]
    kept = series if sample is None else series.iloc[:sample]
    plain = kept.astype(object).where(kept.notna(), None).tolist()
    profile["sample"] = [_float(v) if isinstance(v, float) else _plain(v) for v in plain]
    return profile


def is_label(values: Any) -> bool:
    """Whether predictions look like class labels rather than numbers (see
    :func:`prediction_profile`)."""
    values = np.asarray(values)
    if values.dtype.kind in "biu":
        return len(np.unique(values)) <= _MAX_LABELS
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        return bool(np.all(finite == np.round(finite))) and len(np.unique(finite)) <= _MAX_LABELS
    if values.dtype.kind == "O":
        return not all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            for v in values
            if v is not None
        ) or is_label(pd.to_numeric(pd.Series(values), errors="coerce").to_numpy())
    return True


def prediction_series(values: Any, label: bool) -> pd.Series:
    """Predictions as profiled: labels as objects (counted by ``str``), numbers as float64."""
    if label:
        return pd.Series(np.asarray(values, dtype=object), dtype=object)
    return pd.Series(
        pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce"),
        dtype=np.float64,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _float(value)
    return value if isinstance(value, (int, str, bool)) or value is None else str(value)
