"""Statistics of results over seeds and over test sequences (docs/reports.md, "Seeds and intervals").

* `summarize(values)`: mean, 95 % Student-t half-width over seeds (df = n - 1) and n; one value
  has no interval.
* `welch_difference(a, b)`: mean(a) - mean(b) over seeds with a Welch t interval (unpaired seeds,
  unequal variances, Welch-Satterthwaite degrees of freedom). Needs n >= 2 on both sides.
* `paired_bootstrap(a, b)`: for one seed per model, the mean difference over the same test
  sequences with a percentile interval from resampling sequences (fixed RNG seed).
* `verdict(difference, higher_is_better)`: "better" / "worse" when the interval excludes 0,
  else "not distinguishable".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MIN_BOOTSTRAP_SEQUENCES = 10

BETTER, WORSE, UNDECIDED = "better", "worse", "not distinguishable"
HIGHER, LOWER = "higher", "lower"                   # a metric of no declared direction


@dataclass(frozen=True)
class Summary:
    """Mean over n values and the half-width of its interval (None for n = 1)."""

    mean: float
    half_width: float | None
    n: int


@dataclass(frozen=True)
class Difference:
    """mean(ours) - mean(baseline) and its interval [low, high]; `method` names how it was made."""

    mean: float
    low: float
    high: float
    method: str
    n: int          # seeds per side (Welch: the smaller side) or test sequences (bootstrap)


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([float(v) for v in values], dtype=np.float64)
    return array[np.isfinite(array)]


def _scale(*arrays: np.ndarray) -> float:
    """A power of two near the largest magnitude: the statistics are computed on values divided by it, so that
    squares of very large values (1e200) neither overflow nor lose the spread (exact: powers of two scale exactly)."""
    largest = max((float(np.abs(array).max()) for array in arrays if len(array)), default=0.0)
    return 2.0 ** math.frexp(largest)[1] if largest > 0 else 1.0


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    from scipy import stats as scipy_stats     # imported when needed: it takes a while

    return float(scipy_stats.t.ppf(0.5 + confidence / 2, df))


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary | None:
    """Mean ± Student-t half-width over the finite values; None when there is none."""
    array = _finite(values)
    n = len(array)
    if n == 0:
        return None
    if n == 1:
        return Summary(float(array[0]), None, 1)
    # half-width = t_{1-alpha/2, n-1} * s / sqrt(n), s the sample standard deviation (ddof 1)
    scale = _scale(array)
    scaled = array / scale
    half = t_quantile(n - 1, confidence) * float(scaled.std(ddof=1)) / math.sqrt(n) * scale
    return Summary(float(scaled.mean()) * scale, half, n)


def welch_difference(ours: Sequence[float], baseline: Sequence[float],
                     confidence: float = CONFIDENCE) -> Difference | None:
    """mean(ours) - mean(baseline) with a Welch t interval; None unless both sides have n >= 2."""
    a, b = _finite(ours), _finite(baseline)
    if len(a) < 2 or len(b) < 2:
        return None
    scale = _scale(a, b)
    a, b = a / scale, b / scale
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean()) * scale
    se2 = va + vb
    if se2 == 0:            # every seed alike on both sides: no spread to judge a difference by (no_spread)
        return None
    # Welch-Satterthwaite: df = (va + vb)^2 / (va^2 / (na - 1) + vb^2 / (nb - 1))
    df = se2 ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(df, confidence) * math.sqrt(se2) * scale
    return Difference(diff, diff - half, diff + half, "welch", min(len(a), len(b)))


def no_spread(ours: Sequence[float], baseline: Sequence[float]) -> bool:
    """Both sides have n >= 2 finite values and each side's are all equal: Welch has no interval to give."""
    a, b = _finite(ours), _finite(baseline)
    return len(a) >= 2 and len(b) >= 2 and np.ptp(a) == 0 and np.ptp(b) == 0


def no_bootstrap_reason(ours: Sequence[float], baseline: Sequence[float]) -> str | None:
    """Why paired_bootstrap gives no interval for two runs' values over the same test sequences, or None."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        return "other test sequences"
    if len(a) < MIN_BOOTSTRAP_SEQUENCES:
        return f"{len(a)} test sequences paired, fewer than the {MIN_BOOTSTRAP_SEQUENCES} an interval needs"
    if not np.isfinite(a - b).all():
        return "a per-sequence value is not finite"
    return None


def finite_count(values: Sequence[float]) -> int:
    return len(_finite(values))


def paired_bootstrap(ours: Sequence[float], baseline: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> Difference | None:
    """Mean of the per-sequence differences ours - baseline, with the percentile interval of that mean
    over `resamples` resamplings of the sequences (with replacement). Both arrays must list the
    same test sequences in the same order; None where no_bootstrap_reason names a reason (other lengths, fewer
    than MIN_BOOTSTRAP_SEQUENCES: a percentile interval over a handful of values is no interval, a value not
    finite)."""
    if no_bootstrap_reason(ours, baseline) is not None:
        return None
    deltas = np.asarray(ours, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(deltas), size=(resamples, len(deltas)))
    means = deltas[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Difference(float(deltas.mean()), float(low), float(high), "paired bootstrap", len(deltas))


def verdict(difference: Difference, higher_is_better: bool | None) -> str:
    """Whether ours is better than the baseline: the interval of ours - baseline must exclude 0. For a metric of
    no declared direction (None), only which way it lies: higher / lower."""
    if higher_is_better is None:
        return HIGHER if difference.low > 0 else LOWER if difference.high < 0 else UNDECIDED
    if difference.low > 0:
        return BETTER if higher_is_better else WORSE
    if difference.high < 0:
        return WORSE if higher_is_better else BETTER
    return UNDECIDED
