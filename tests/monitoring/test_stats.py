"""Drift statistics against SciPy and hand-computed values, on known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sstats
from scipy.spatial import distance

from segue.data.profile import bin_counts
from segue.monitoring import stats

TRIALS = 200


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- KS --------------------------------------------------------------------------------------


def test_ks_matches_scipy():
    a, b = _rng(0).normal(size=300), _rng(1).normal(0.2, 1, size=200)
    result = stats.ks(a, b)
    expected = sstats.ks_2samp(a, b)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_ks_false_positive_rate_is_nominal():
    rng = _rng(2)
    flagged = sum(
        stats.ks(rng.normal(size=500), rng.normal(size=300)).p_value < 0.05 for _ in range(TRIALS)
    )
    assert flagged <= 0.1 * TRIALS


def test_ks_flags_a_shift():
    rng = _rng(3)
    assert stats.ks(rng.normal(size=500), rng.normal(0.5, 1, size=300)).p_value < 1e-6


def test_ks_skips_missing_and_handles_empty():
    assert stats.ks([1.0, 2.0, np.nan], [1.0, 2.0]).statistic == 0.0
    assert math.isnan(stats.ks([], [1.0]).statistic)


def _ties_and_nans(rng: np.random.Generator, n: int, kind: str, shift: float) -> np.ndarray:
    if kind == "integers":  # many ties, within and across the samples
        values = rng.integers(0, 20, n) + np.round(shift * 10)
    elif kind == "rounded":
        values = np.round(rng.normal(shift, 1, n), 1)
    else:
        values = rng.normal(shift, 1, n)
    values = values.astype(np.float64)
    values[rng.random(n) < 0.02] = np.nan
    return values


@pytest.mark.parametrize("kind", ["continuous", "rounded", "integers"])
@pytest.mark.parametrize("sizes", [(5000, 60_000), (60_000, 3000), (700, 400), (20_000, 11_000)])
def test_ks_is_scipys_to_the_last_bit_with_ties_and_nans(kind, sizes):
    rng = _rng(sum(sizes) + len(kind))
    for shift in (0.0, 0.01, 0.05):
        a = _ties_and_nans(rng, sizes[0], kind, 0.0)
        b = _ties_and_nans(rng, sizes[1], kind, shift)
        result = stats.ks(a, b)
        expected = sstats.ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)])
        assert result.statistic == expected.statistic
        assert result.p_value == expected.pvalue
        assert (result.p_value < 0.05) == (expected.pvalue < 0.05)


def test_ks_sorted_with_one_sample_inside_a_gap_of_the_other():
    a = np.sort(_rng(11).normal(size=20_000))
    for b in (np.array([a[0] - 1.0]), np.array([a[-1] + 1.0]), np.array([a[100]] * 3)):
        expected = sstats.ks_2samp(a, b)
        assert stats.ks_sorted(a, b).statistic == expected.statistic
        assert stats.ks_sorted(b, a).statistic == expected.statistic


tied = st.lists(st.sampled_from([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0]) | st.floats(-5, 5), min_size=1)


@settings(max_examples=300, deadline=None)
@given(tied, tied)
def test_the_large_sample_ks_statistic_is_scipys_on_any_small_one_too(a, b):
    # The statistic of large samples, checked on small ones where SciPy is cheap (its exact
    # method rounds the statistic to a multiple of 1 / lcm(n1, n2); the asymptotic one not).
    a_sorted, b_sorted = np.sort(np.array(a)), np.sort(np.array(b))
    with np.errstate(divide="ignore"):  # its p-value of a 1-by-1 sample divides by zero
        expected = sstats.ks_2samp(a, b, method="asymp").statistic
    assert stats._ks_statistic(a_sorted, b_sorted) == expected


@pytest.mark.parametrize("bins", [1, 2, 10, 40])
def test_sorted_bin_counts_follow_the_profile_rule(bins):
    rng = _rng(12 + bins)
    reference = np.round(rng.normal(size=3000), 1)
    edges = np.quantile(reference, np.linspace(0, 1, bins + 1))  # repeated edges from ties
    current = np.round(rng.normal(0.2, 1.5, size=50_000), 1)  # beyond both ends too
    assert stats.sorted_bin_counts(np.sort(current), edges).tolist() == bin_counts(current, edges)
    assert stats.sorted_bin_counts(np.sort(current), [0.5, 0.5]).tolist() == [50_000]


# -- Wasserstein -----------------------------------------------------------------------------


def test_wasserstein_by_hand():
    assert stats.wasserstein([0.0, 1.0], [1.0, 2.0]) == pytest.approx(1.0)
    # normed by the reference's std (0.5 for [0, 1])
    assert stats.wasserstein_normed([0.0, 1.0], [1.0, 2.0]) == pytest.approx(2.0)
    assert stats.wasserstein_normed([0.0, 1.0], [1.0, 2.0], std=4.0) == pytest.approx(0.25)


def test_wasserstein_of_a_constant_reference_is_floored():
    assert stats.wasserstein_normed([3.0, 3.0], [3.0, 3.001]) == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5, 2.0])
def test_binned_wasserstein_is_within_tolerance_of_scipy(shift):
    rng = _rng(4)
    a, b = rng.normal(size=5000), rng.normal(shift, 1.3, size=200_000)
    exact = sstats.wasserstein_distance(a, b) / np.std(a)
    assert abs(stats.wasserstein_normed(a, b) - exact) <= 1e-3
    assert stats.wasserstein_normed(a, b, tolerance=None) == pytest.approx(exact)


def test_wasserstein_with_outliers_falls_back_to_exact():
    rng = _rng(5)
    a = rng.normal(size=5000)
    b = np.append(rng.normal(size=100_000), 1e12)
    exact = sstats.wasserstein_distance(a, b) / np.std(a)
    assert stats.wasserstein_normed(a, b) == pytest.approx(exact)


def test_wasserstein_false_positive_rate_and_shift():
    rng = _rng(6)
    same = [
        stats.wasserstein_normed(rng.normal(size=5000), rng.normal(size=10_000))
        for _ in range(TRIALS)
    ]
    assert sum(value >= 0.1 for value in same) <= 0.01 * TRIALS
    assert stats.wasserstein_normed(rng.normal(size=5000), rng.normal(0.5, 1, 10_000)) > 0.4


# -- PSI -------------------------------------------------------------------------------------


def test_psi_by_hand():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert stats.psi([50, 50], [25, 75]) == pytest.approx(expected)
    assert stats.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)


def test_psi_uses_epsilon_for_empty_bins():
    value = stats.psi([50, 50], [100, 0])
    expected = (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert value == pytest.approx(expected)


def test_psi_rejects_misaligned_counts():
    with pytest.raises(ValueError):
        stats.psi([1, 2], [1, 2, 3])


# -- chi-square ------------------------------------------------------------------------------


def test_chi_square_matches_scipy():
    r, c = [300, 200, 100], [40, 35, 25]
    result = stats.chi_square(r, c)
    expected = sstats.chi2_contingency(np.array([r, c]), correction=False)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_chi_square_drops_bins_empty_on_both_sides():
    assert stats.chi_square([5, 0, 5], [5, 0, 5]).p_value == pytest.approx(1.0)
    assert stats.chi_square([10], [3]).p_value == 1.0


def test_chi_square_false_positive_rate_is_nominal():
    rng = _rng(7)
    p = [0.5, 0.3, 0.15, 0.05]
    flagged = sum(
        stats.chi_square(rng.multinomial(5000, p), rng.multinomial(500, p)).p_value < 0.05
        for _ in range(TRIALS)
    )
    assert flagged <= 0.1 * TRIALS


def test_chi_square_flags_a_changed_mix():
    rng = _rng(8)
    result = stats.chi_square(rng.multinomial(5000, [0.5, 0.5]), rng.multinomial(500, [0.6, 0.4]))
    assert result.p_value < 0.01


# -- Jensen-Shannon --------------------------------------------------------------------------


def test_jensen_shannon_matches_scipy_base_2():
    r, c = [5, 3, 2, 0], [1, 1, 4, 4]
    expected = distance.jensenshannon(np.array(r) / 10, np.array(c) / 10, base=2)
    assert stats.jensen_shannon(r, c) == pytest.approx(expected)


def test_jensen_shannon_by_hand():
    assert stats.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert stats.jensen_shannon([3, 7], [30, 70]) == pytest.approx(0.0, abs=1e-9)


def test_jensen_shannon_no_drift_stays_small():
    rng = _rng(9)
    p = [0.4, 0.3, 0.2, 0.1]
    values = [
        stats.jensen_shannon(rng.multinomial(5000, p), rng.multinomial(5000, p))
        for _ in range(TRIALS)
    ]
    assert max(values) < 0.1
    assert stats.jensen_shannon(rng.multinomial(5000, p), rng.multinomial(5000, p[::-1])) > 0.1


# -- histogram samples -----------------------------------------------------------------------


def test_sample_from_histogram_follows_the_counts():
    sample = stats.sample_from_histogram([0.0, 1.0, 3.0], [25, 75], size=100)
    assert len(sample) == 100
    assert np.count_nonzero(sample < 1.0) == 25
    assert sample.min() > 0.0 and sample.max() < 3.0
    assert len(stats.sample_from_histogram([], [])) == 0


def test_ks_against_a_reconstructed_sample_is_close_to_exact():
    rng = _rng(10)
    reference = rng.normal(size=100_000)
    edges = np.quantile(reference, np.linspace(0, 1, 21))
    counts, _ = np.histogram(reference, edges)
    stand_in = stats.sample_from_histogram(edges, counts)
    current = rng.normal(0.3, 1, size=500)
    approx, exact = stats.ks(stand_in, current), stats.ks(reference, current)
    assert approx.statistic == pytest.approx(exact.statistic, abs=0.03)


# -- properties ------------------------------------------------------------------------------

counts = st.lists(st.integers(0, 1000), min_size=1, max_size=12)
samples = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_count_statistics_are_finite_and_symmetric(data):
    a = data.draw(counts)
    b = data.draw(st.lists(st.integers(0, 1000), min_size=len(a), max_size=len(a)))
    if sum(a) == 0 or sum(b) == 0:
        assert math.isnan(stats.psi(a, b)) and math.isnan(stats.jensen_shannon(a, b))
        return
    for fn in (stats.psi, stats.jensen_shannon):
        value = fn(a, b)
        assert math.isfinite(value) and value >= -1e-12
        assert value == pytest.approx(fn(b, a), abs=1e-9)
    assert 0 <= stats.jensen_shannon(a, b) <= 1 + 1e-12
    chi = stats.chi_square(a, b)
    assert math.isfinite(chi.statistic) and 0 <= chi.p_value <= 1
    assert chi.statistic == pytest.approx(stats.chi_square(b, a).statistic)


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_sample_statistics_are_finite_and_symmetric(a, b):
    result = stats.ks(a, b)
    assert 0 <= result.statistic <= 1 and 0 <= result.p_value <= 1
    assert result.statistic == pytest.approx(stats.ks(b, a).statistic)
    distance_ab = stats.wasserstein(a, b)
    assert math.isfinite(distance_ab) and distance_ab >= 0
    assert distance_ab == pytest.approx(stats.wasserstein(b, a), rel=1e-9, abs=1e-6)
    assert math.isfinite(stats.wasserstein_normed(a, b))
