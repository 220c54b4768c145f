"""Drift statistics: pure functions over plain arrays (no I/O, no clock, no logging).

Two kinds of input:

- samples (1-D float arrays without NaN) for :func:`ks` and :func:`wasserstein_normed`;
- counts per bin or per category, aligned position by position, for :func:`psi`,
  :func:`chi_square` and :func:`jensen_shannon`.

Example:
    >>> ks(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0])).statistic
    0.0
    >>> round(psi([50, 50], [50, 50]), 6)
    0.0
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sstats

#: PSI and Jensen-Shannon replace empty bins' shares by this, so a bin empty on one side
#: contributes a large but finite term (as Evidently does).
EPSILON = 1e-4
#: Smallest reference standard deviation Wasserstein is normed by (as Evidently does).
MIN_STD = 1e-3
#: Up to this many values in the larger sample, SciPy's ``ks_2samp`` computes an exact
#: p-value (its ``MAX_AUTO_N``); beyond, the asymptotic one.
_KS_EXACT_MAX_N = 10_000


@dataclass(frozen=True)
class TestResult:
    """A test statistic and, for hypothesis tests, its p-value."""

    statistic: float
    p_value: float | None = None


def ks(reference: Any, current: Any) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test (SciPy's ``ks_2samp``, two-sided, exact for small
    samples); NaN and infinite values are left out.

    Example:
        >>> ks([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).p_value
        1.0
    """
    a, b = _sample(reference), _sample(current)
    return ks_sorted(np.sort(a), np.sort(b))


def ks_sorted(reference: np.ndarray, current: np.ndarray) -> TestResult:
    """:func:`ks` of two float64 samples already sorted, without NaN or infinities.

    Gives SciPy's ``ks_2samp`` statistic and p-value to the last bit. When one sample is
    large (more than 10,000 values, where SciPy's p-value is asymptotic), the statistic is
    read off the larger sample's sorted values at the smaller one's distinct values: one
    sort of each column in all, where SciPy searches every value of both samples in both.

    Example:
        >>> ks_sorted(np.array([0.0, 1.0]), np.array([2.0, 3.0])).statistic
        1.0
    """
    n1, n2 = len(reference), len(current)
    if n1 == 0 or n2 == 0:
        return TestResult(math.nan, None)
    if max(n1, n2) <= _KS_EXACT_MAX_N:
        with warnings.catch_warnings():
            # For ties in mid-sized samples SciPy falls back from the exact to the asymptotic
            # p-value and says so; the fallback is the answer we want.
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
            result = sstats.ks_2samp(reference, current)
        return TestResult(float(result.statistic), float(result.pvalue))
    d = _ks_statistic(reference, current)
    # SciPy's asymptotic two-sided p-value, with its arguments.
    m, n = sorted([float(n1), float(n2)], reverse=True)
    p_value = sstats.kstwo.sf(d, np.round(m * n / (m + n)))
    return TestResult(d, float(np.clip(p_value, 0, 1)))


def wasserstein(
    reference: Any,
    current: Any,
    *,
    tolerance: float | None = None,
    current_range: tuple[float, float] | None = None,
) -> float:
    """Wasserstein-1 (earth mover's) distance between two samples.

    Exact (sorts both, as SciPy's ``wasserstein_distance``) unless ``tolerance`` is given: then,
    for large samples, both are counted into uniform bins fine enough that the result is
    within ``tolerance`` of the exact distance, which costs one pass instead of a sort.

    Args:
        current_range: ``(min, max)`` of ``current`` when the caller knows them and
            ``current`` is a finite float64 array: saves passes over a large sample.

    Example:
        >>> wasserstein([0.0, 1.0], [1.0, 2.0])
        1.0
    """
    a = _sample(reference)
    b = _sample(current) if current_range is None else current
    if len(a) == 0 or len(b) == 0:
        return math.nan
    if tolerance is not None and len(a) + len(b) > 50_000:
        low, high = (b.min(), b.max()) if current_range is None else current_range
        lo, hi = min(a.min(), low), max(a.max(), high)
        # Within one bin each CDF moves by that bin's share, so the error is at most twice
        # the bin width: 2 * (hi - lo) / bins <= tolerance.
        bins = math.ceil(2 * (hi - lo) / tolerance) if hi > lo else 1
        if bins <= 2_000_000:
            return _binned_wasserstein(a, b, lo, hi, bins)
    return float(sstats.wasserstein_distance(a, b))


def wasserstein_normed(
    reference: Any,
    current: Any,
    *,
    std: float | None = None,
    tolerance: float | None = 1e-3,
    current_range: tuple[float, float] | None = None,
) -> float:
    """Wasserstein distance divided by the reference's standard deviation (Evidently's
    "normed Wasserstein"; drift at >= 0.1 by default).

    Args:
        std: the reference standard deviation if known (e.g. from the full reference
            profile); default ``np.std(reference)``. Floored at :data:`MIN_STD`.
        tolerance: the largest error allowed in the normed result (None: exact).
        current_range: as for :func:`wasserstein`.

    Example:
        >>> wasserstein_normed([0.0, 2.0], [1.0, 3.0])
        1.0
    """
    a = _sample(reference)
    if len(a) == 0:
        return math.nan
    scale = max(float(np.std(a)) if std is None else float(std), MIN_STD)
    absolute = None if tolerance is None else tolerance * scale
    return wasserstein(a, current, tolerance=absolute, current_range=current_range) / scale


def psi(reference_counts: Any, current_counts: Any, *, epsilon: float = EPSILON) -> float:
    """Population stability index: ``sum((c - r) * ln(c / r))`` over the bins' shares.

    Empty shares become ``epsilon``. Symmetric in its arguments; 0 for equal shares. Common
    reading: < 0.1 stable, 0.1-0.2 moderate shift, >= 0.2 significant.

    Example:
        >>> round(psi([0.5, 0.5], [0.25, 0.75]), 4)
        0.2747
    """
    r, c = _shares(reference_counts, current_counts, epsilon)
    if r is None:
        return math.nan
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(reference_counts: Any, current_counts: Any) -> float:
    """Jensen-Shannon distance (base 2, so within [0, 1]) between two count vectors.

    Symmetric; 0 for equal shares, 1 for disjoint supports.

    Example:
        >>> jensen_shannon([1, 0], [0, 1])
        1.0
    """
    r, c = _shares(reference_counts, current_counts, 0.0)
    if r is None or c is None:
        return math.nan
    m = (r + c) / 2
    divergence = (_kl(r, m) + _kl(c, m)) / 2
    return float(math.sqrt(max(divergence, 0.0) / math.log(2)))


def chi_square(reference_counts: Any, current_counts: Any) -> TestResult:
    """Pearson's chi-square test that two count vectors come from one distribution (a 2 x k
    contingency table; SciPy's ``chi2_contingency`` without continuity correction).

    Bins empty on both sides are dropped; a single remaining bin gives statistic 0, p 1.

    Example:
        >>> chi_square([50, 50], [50, 50]).p_value
        1.0
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    if r.sum() == 0 or c.sum() == 0:
        return TestResult(math.nan, None)
    if len(r) < 2:
        return TestResult(0.0, 1.0)
    result = sstats.chi2_contingency(np.vstack([r, c]), correction=False)
    return TestResult(float(result.statistic), float(result.pvalue))


def sorted_bin_counts(values: np.ndarray, edges: Any) -> np.ndarray:
    """Count sorted ``values`` (without NaN) into the bins between ``edges`` by the rule of
    :func:`segue.data.profile.bin_counts` (bin ``i`` is ``[edges[i], edges[i + 1])``, the
    last bin holds ``edges[-1]``; values beyond the edges count in the first and last bins),
    with one binary search per edge instead of one per value.

    Example:
        >>> sorted_bin_counts(np.array([0.5, 1.0, 2.0, 9.0]), [0.0, 1.0, 2.0]).tolist()
        [1, 3]
    """
    edges_array = np.asarray(edges, dtype=np.float64)
    if len(edges_array) < 2:
        raise ValueError(f"edges: need at least 2 edges to make a bin, got {len(edges_array)}")
    # A value falls below bin j (j >= 1) exactly when it is < edges[j].
    below = np.searchsorted(values, edges_array[1:-1], side="left")
    return np.diff(np.concatenate(([0], below, [len(values)])))


def sample_from_histogram(edges: Any, counts: Any, size: int = 5_000) -> np.ndarray:
    """A sample of about ``size`` values spread evenly inside each bin, in proportion to the
    bin counts: a stand-in for the reference data when only its histogram was kept.

    Example:
        >>> sample_from_histogram([0.0, 1.0], [10], size=4).tolist()
        [0.125, 0.375, 0.625, 0.875]
    """
    edges_array = np.asarray(edges, dtype=np.float64)
    counts_array = np.asarray(counts, dtype=np.float64)
    total = counts_array.sum()
    if len(edges_array) < 2 or total <= 0:
        return np.empty(0)
    per_bin = np.round(counts_array / total * size).astype(np.intp)
    parts = []
    for lo, hi, n in zip(edges_array[:-1], edges_array[1:], per_bin, strict=True):
        if n > 0:
            parts.append(lo + (hi - lo) * (np.arange(n) + 0.5) / n)
    return np.concatenate(parts) if parts else np.empty(0)


# -- helpers ---------------------------------------------------------------------------------


def _sample(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(array)
    return array if finite.all() else array[finite]


def _shares(
    reference_counts: Any, current_counts: Any, epsilon: float
) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.shape != c.shape or r.ndim != 1:
        raise ValueError(f"counts must be 1-D and aligned, got shapes {r.shape} and {c.shape}")
    if r.sum() <= 0 or c.sum() <= 0:
        return None, None
    r, c = r / r.sum(), c / c.sum()
    if epsilon:
        r, c = np.where(r == 0, epsilon, r), np.where(c == 0, epsilon, c)
    return r, c


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """SciPy's two-sided KS statistic of sorted ``a`` and ``b``, from the same float values.

    SciPy takes ``F_a(x) - F_b(x)`` (right-continuous ECDFs, as ``count / n``) at every value
    of both samples. Between two neighbouring distinct values of the smaller sample its ECDF
    is flat and the other one only rises, so the largest and smallest differences are found
    at those distinct values and just below them: two binary searches per distinct value of
    the smaller sample in each sample, and the same counts divided the same way.
    """
    small = a if len(a) <= len(b) else b
    distinct = small[np.concatenate(([True], small[1:] != small[:-1]))]
    n1, n2 = len(a), len(b)
    at = np.searchsorted(a, distinct, "right") / n1 - np.searchsorted(b, distinct, "right") / n2
    below = np.searchsorted(a, distinct, "left") / n1 - np.searchsorted(b, distinct, "left") / n2
    largest = max(float(at.max()), float(below.max()), 0.0)
    smallest = min(float(at.min()), float(below.min()), 0.0)
    return float(np.clip(-smallest, 0, 1)) if -smallest > largest else largest


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log(p[nonzero] / q[nonzero])))


def _binned_wasserstein(a: np.ndarray, b: np.ndarray, lo: float, hi: float, bins: int) -> float:
    width = (hi - lo) / bins if hi > lo else 1.0
    cdf_a = np.cumsum(_uniform_counts(a, lo, width, bins)) / len(a)
    cdf_b = np.cumsum(_uniform_counts(b, lo, width, bins)) / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b)) * width)


def _uniform_counts(values: np.ndarray, lo: float, width: float, bins: int) -> np.ndarray:
    scaled = np.subtract(values, lo)
    scaled *= 1.0 / width
    # Every value is >= lo, so only the top needs clipping (hi itself lands on ``bins``).
    positions = scaled.astype(np.intp)
    np.minimum(positions, bins - 1, out=positions)
    return np.bincount(positions, minlength=bins)
