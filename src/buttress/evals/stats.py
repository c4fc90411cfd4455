"""Statistics for eval results: weighted means, bootstrap and Wilson intervals, percentiles, and
paired tests (exact McNemar for pass/fail, paired bootstrap otherwise).

Bootstraps take a seed, so the same run gives the same interval every time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

RESAMPLES = 1000


def weighted_mean(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    if not values:
        return 0.0
    if weights is None:
        return sum(values) / len(values)
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total if total else 0.0


def bootstrap_ci(values: Sequence[float], weights: Sequence[float] | None = None, *,
                 level: float = 0.95, resamples: int = RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the weighted mean, resampling cases."""
    n = len(values)
    if n == 0:
        return (0.0, 0.0)
    if n == 1 or len(set(values)) == 1:
        return (values[0], values[0])
    w = list(weights) if weights is not None else [1.0] * n
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        total = sum(w[i] for i in idx)
        means.append(sum(values[i] * w[i] for i in idx) / total)
    means.sort()
    tail = (1 - level) / 2
    return (_quantile(means, tail), _quantile(means, 1 - tail))


def wilson(successes: float, n: int, *, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation; 0 for no values."""
    return _quantile(sorted(values), q) if values else 0.0


def _quantile(ordered: Sequence[float], q: float) -> float:
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def mcnemar(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs: cases only ``a`` passed and
    cases only ``b`` passed."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail: float = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_bootstrap(a: Sequence[float], b: Sequence[float],
                     weights: Sequence[float] | None = None, *, resamples: int = RESAMPLES,
                     seed: int = 0) -> float:
    """Two-sided p-value that the weighted mean of ``b - a`` over paired cases is zero."""
    n = len(a)
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    if n == 0 or all(d == 0 for d in diffs):
        return 1.0
    w = list(weights) if weights is not None else [1.0] * n
    rng = random.Random(seed)
    below = above = 0
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        total = sum(w[i] for i in idx)
        mean = sum(diffs[i] * w[i] for i in idx) / total
        below += mean <= 0
        above += mean >= 0
    return min(1.0, 2 * min(below, above) / resamples)


def paired_test(a: Sequence[float], b: Sequence[float],
                weights: Sequence[float] | None = None, *, seed: int = 0) -> tuple[str, float]:
    """McNemar when every value is pass/fail, a paired bootstrap otherwise: (test, p-value)."""
    if all(v in (0.0, 1.0) for v in (*a, *b)):
        only_a = sum(1 for x, y in zip(a, b, strict=True) if x > y)
        only_b = sum(1 for x, y in zip(a, b, strict=True) if y > x)
        return "mcnemar", mcnemar(only_a, only_b)
    return "paired-bootstrap", paired_bootstrap(a, b, weights, seed=seed)
