import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from stcbench.reports import stats


def test_summary_is_the_student_t_interval():
    s = stats.summarize([1.0, 2.0, 3.0])
    # by hand: sd 1, t_{0.975, 2} = 4.302653 -> half-width 4.302653 / sqrt(3)
    assert s.mean == 2.0 and s.n == 3
    assert s.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    values = [171.7, 158.2, 180.9, 166.0, 175.3]
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    s = stats.summarize(values)
    assert (s.mean - s.half_width, s.mean + s.half_width) == pytest.approx((low, high), rel=1e-12)


def test_one_seed_has_no_interval_and_non_finite_values_are_left_out():
    assert stats.summarize([7.5]) == stats.Summary(7.5, None, 1)
    assert stats.summarize([1.0, float("inf"), 3.0]).n == 2
    assert stats.summarize([]) is None and stats.summarize([float("nan")]) is None


def test_welch_interval_matches_scipy():
    a, b = [50.0, 55.0, 61.0], [100.0, 118.0, 109.0, 104.0]
    d = stats.welch_difference(a, b)
    ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d.mean == pytest.approx(np.mean(a) - np.mean(b))
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert d.method == "welch" and d.n == 3


def test_huge_finite_values_keep_their_interval_without_overflow():
    """A diverged run's 1e200 squares past float64's range: the statistics scale first, and give the interval of the
    same values scaled down by 1e190, scaled back (no inf, no NaN, no numpy warning)."""
    import warnings

    small_a, small_b = [1.0, 3.0, 2.5], [7.0, 5.5, 9.0, 6.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = stats.summarize([v * 1e190 for v in small_a])
        difference = stats.welch_difference([v * 1e190 for v in small_a], [v * 1e190 for v in small_b])
    reference = stats.summarize(small_a)
    assert summary.mean == pytest.approx(reference.mean * 1e190, rel=1e-12)
    assert summary.half_width == pytest.approx(reference.half_width * 1e190, rel=1e-12)
    ci = scipy_stats.ttest_ind(small_a, small_b, equal_var=False).confidence_interval(0.95)
    assert (difference.low, difference.high) == pytest.approx((ci.low * 1e190, ci.high * 1e190), rel=1e-10)


def test_welch_needs_two_seeds_per_side_and_some_spread():
    assert stats.welch_difference([1.0], [2.0, 3.0]) is None
    assert stats.welch_difference([2.0, 2.0], [1.0, 1.0]) is None          # no spread: no interval


def test_verdict_depends_on_the_sign_and_the_direction():
    lower = stats.Difference(-2.0, -3.0, -1.0, "welch", 3)
    assert stats.verdict(lower, higher_is_better=False) == stats.BETTER      # lower MSE
    assert stats.verdict(lower, higher_is_better=True) == stats.WORSE        # lower SSIM
    assert stats.verdict(stats.Difference(0.5, -1.0, 2.0, "welch", 3), False) == stats.UNDECIDED
    assert stats.verdict(lower, higher_is_better=None) == stats.LOWER          # a metric of no direction
    assert stats.verdict(stats.Difference(2.0, 1.0, 3.0, "welch", 3), None) == stats.HIGHER
    assert stats.verdict(stats.Difference(0.5, -1.0, 2.0, "welch", 3), None) == stats.UNDECIDED


def test_bootstrap_of_identical_models_is_degenerate_at_zero():
    x = np.random.default_rng(1).random(40)
    d = stats.paired_bootstrap(x, x.copy())
    assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0)
    assert stats.verdict(d, higher_is_better=False) == stats.UNDECIDED


def test_bootstrap_of_a_constant_shift_is_the_shift():
    x = np.random.default_rng(2).random(25) * 100
    d = stats.paired_bootstrap(x + 5.0, x)
    assert d.mean == pytest.approx(5.0) and d.low == pytest.approx(5.0) and d.high == pytest.approx(5.0)
    assert stats.verdict(d, higher_is_better=False) == stats.WORSE
    assert d.method == "paired bootstrap" and d.n == 25


def test_bootstrap_interval_is_close_to_the_normal_one_and_reproducible():
    rng = np.random.default_rng(3)
    base = rng.normal(100, 20, 400)
    ours = base - 3 + rng.normal(0, 10, 400)
    d = stats.paired_bootstrap(ours, base)
    deltas = ours - base
    half = 1.959964 * deltas.std(ddof=1) / math.sqrt(len(deltas))
    assert d.low < d.mean < d.high
    assert (d.high - d.low) / 2 == pytest.approx(half, rel=0.1)
    assert stats.paired_bootstrap(ours, base) == d
    assert stats.paired_bootstrap(ours, base, seed=1) != d


def test_bootstrap_refuses_unpaired_or_empty_inputs():
    assert stats.paired_bootstrap([1.0, 2.0], [1.0]) is None
    assert stats.paired_bootstrap([], []) is None
    assert stats.paired_bootstrap([1.0, float("inf")], [1.0, 2.0]) is None


def test_no_interval_where_no_seed_differs_or_too_few_sequences_are_paired():
    """Zero spread on both sides gives Welch no interval (a width-0 'better' would look certain); a bootstrap over
    a handful of sequences is no interval either."""
    assert stats.welch_difference([130.0, 130.0], [130.1, 130.1]) is None
    assert stats.no_spread([130.0, 130.0], [130.1, 130.1]) and not stats.no_spread([130.0, 131.0], [130.1, 130.1])
    assert stats.welch_difference([130.0, 131.0], [130.1, 130.1]) is not None       # one side's spread suffices
    few = np.arange(stats.MIN_BOOTSTRAP_SEQUENCES - 1, dtype=float)
    assert stats.paired_bootstrap(few + 1, few) is None
    assert stats.paired_bootstrap(np.append(few, 9.0) + 1, np.append(few, 9.0)) is not None
