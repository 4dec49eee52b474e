"""Confidence intervals for the study's claims, and the rule that turns an interval into a verdict.

Methods (two-sided, ``confidence`` = 1 - a, default 95 %), each named in every result:

- ``student_t``: the mean of one group, ``x_bar +- t_{1-a/2, n-1} s / sqrt(n)`` (Student 1908); applied to
  the differences ``a_i - b_i`` it is the *paired t* interval of a difference of means.
- ``welch_t``: the difference of the means of two independent groups,
  ``a_bar - b_bar +- t_{1-a/2, nu} sqrt(s_a^2/n_a + s_b^2/n_b)`` with the Welch-Satterthwaite degrees of
  freedom ``nu = (v_a + v_b)^2 / (v_a^2/(n_a-1) + v_b^2/(n_b-1))``, ``v = s^2/n`` (Welch 1947).
- ``percentile`` and ``bca``: bootstrap intervals of a mean, or of a difference of means with each group
  resampled on its own (unpaired), ``n_resamples`` seeded resamples; ``bca`` is Efron's bias-corrected and
  accelerated interval (Efron & Tibshirani 1993, ch. 14), computed by ``scipy.stats.bootstrap``.

Every method needs ``n >= 2`` finite values per group and returns a NaN interval otherwise (NaN values are
dropped first). Groups without spread (every value equal) give the zero-width interval at the estimate for
every method. A ``Claim`` holds an interval and the direction the claim asserts; its verdict follows
``verdict``, and is ``inconclusive at this budget`` whenever a group has fewer than ``MIN_N`` values (an
interval from two values, e.g. two samples without spread, is too thin a basis for a verdict).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from jaxtyping import Float

__all__ = ["MIN_N", "VERDICTS", "Claim", "Interval", "difference_interval", "mean_interval", "verdict"]

VERDICTS = ("holds", "does not hold", "inconclusive at this budget")
#: fewest values per group for a verdict other than inconclusive (seeds, planes or samples)
MIN_N = 3
MEAN_METHODS = ("student_t", "percentile", "bca")
DIFFERENCE_METHODS = ("welch_t", "paired_t", "percentile", "bca")


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval; ``n``: the finite values used per group."""

    estimate: float
    low: float
    high: float
    method: str
    n: tuple[int, ...]
    confidence: float = 0.95


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _t_quantile(confidence: float, df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def _bootstrap(groups: tuple[np.ndarray, ...], statistic, method: str, confidence: float, n_resamples: int,
               seed: int) -> tuple[float, float]:
    from scipy.stats import bootstrap

    res = bootstrap(groups, statistic, n_resamples=n_resamples, confidence_level=confidence,
                    method="BCa" if method == "bca" else "percentile", vectorized=True,
                    rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_interval(values: Float[np.ndarray, " n"], *, method: str = "student_t", confidence: float = 0.95,
                  n_resamples: int = 9999, seed: int = 0) -> Interval:
    """Confidence interval of the mean of ``values`` (``student_t``, ``percentile`` or ``bca``)."""
    if method not in MEAN_METHODS:
        raise ValueError(f"unknown method {method!r} for a mean: use one of {MEAN_METHODS}")
    x = _finite(values)
    n = len(x)
    estimate = float(x.mean()) if n else math.nan
    if n < 2:
        return Interval(estimate, math.nan, math.nan, method, (n,), confidence)
    if np.ptp(x) == 0:
        return Interval(estimate, estimate, estimate, method, (n,), confidence)
    if method == "student_t":
        half = _t_quantile(confidence, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
        low, high = estimate - half, estimate + half
    else:
        low, high = _bootstrap((x,), lambda a, axis: a.mean(axis), method, confidence, n_resamples, seed)
    return Interval(estimate, low, high, method, (n,), confidence)


def difference_interval(a: Float[np.ndarray, " n_a"], b: Float[np.ndarray, " n_b"], *, method: str = "welch_t",
                        confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> Interval:
    """Confidence interval of ``mean(a) - mean(b)``.

    ``welch_t``, ``percentile`` and ``bca`` treat the groups as independent (unpaired); ``paired_t`` needs
    equal lengths and takes the Student t interval of ``a_i - b_i`` (pairs with a NaN are dropped).
    """
    if method not in DIFFERENCE_METHODS:
        raise ValueError(f"unknown method {method!r} for a difference: use one of {DIFFERENCE_METHODS}")
    if method == "paired_t":
        a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"paired_t needs groups of equal length, got {len(a)} and {len(b)}")
        inner = mean_interval(a - b, method="student_t", confidence=confidence)
        return Interval(inner.estimate, inner.low, inner.high, method, inner.n * 2, confidence)
    x, y = _finite(a), _finite(b)
    n = (len(x), len(y))
    estimate = float(x.mean() - y.mean()) if min(n) else math.nan
    if min(n) < 2:
        return Interval(estimate, math.nan, math.nan, method, n, confidence)
    va, vb = x.var(ddof=1) / n[0], y.var(ddof=1) / n[1]
    if va + vb == 0:
        return Interval(estimate, estimate, estimate, method, n, confidence)
    if method == "welch_t":
        df = (va + vb) ** 2 / (va**2 / (n[0] - 1) + vb**2 / (n[1] - 1))
        half = _t_quantile(confidence, df) * math.sqrt(va + vb)
        low, high = estimate - half, estimate + half
    else:
        low, high = _bootstrap((x, y), lambda p, q, axis: p.mean(axis) - q.mean(axis), method, confidence,
                               n_resamples, seed)
    return Interval(estimate, low, high, method, n, confidence)


def verdict(low: float, high: float, claimed: Literal["greater", "less"], reference: float = 0.0) -> str:
    """The verdict of a claim "the true value is ``claimed`` than ``reference``" from its interval.

    ``holds``: the whole interval lies on the claimed side of ``reference`` (it excludes ``reference``);
    ``does not hold``: the whole interval lies on the other side; ``inconclusive at this budget``: the
    interval contains ``reference``, or there is no interval (NaN: fewer than 2 values per group).
    """
    if claimed not in ("greater", "less"):
        raise ValueError(f"claimed must be 'greater' or 'less', got {claimed!r}")
    if not (math.isfinite(low) and math.isfinite(high)):
        return VERDICTS[2]
    above, below = low > reference, high < reference
    if claimed == "less":
        above, below = below, above
    return VERDICTS[0] if above else VERDICTS[1] if below else VERDICTS[2]


@dataclass(frozen=True)
class Claim:
    """One claim as a number: the ``interval`` of a quantity and what the claim asserts about it (``claimed``
    than ``reference``; e.g. QIF - LIF accuracy ``greater`` than 0). ``groups`` name the interval's groups
    (``("qif", "lif")`` for a QIF - LIF difference); ``description`` says what the quantity is."""

    name: str
    interval: Interval
    claimed: Literal["greater", "less"]
    reference: float = 0.0
    groups: tuple[str, ...] = ()
    description: str = ""

    @property
    def verdict(self) -> str:
        if min(self.interval.n) < MIN_N:
            return VERDICTS[2]
        return verdict(self.interval.low, self.interval.high, self.claimed, self.reference)

    @property
    def assertion(self) -> str:
        return f"{'>' if self.claimed == 'greater' else '<'} {self.reference:g}"
