"""Confidence intervals against textbook cases, and the verdict rule."""

import math

import numpy as np
import pytest

from spikeode.study.stats import MIN_N, Claim, Interval, difference_interval, mean_interval, verdict

# Student's sleep data (Cushny & Peebles 1905): extra hours of sleep under two drugs, 10 patients.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_student_t_by_hand():
    """1..5: mean 3, s = sqrt(2.5), t_{0.975, 4} = 2.776 (table) -> 3 +- 2.776 sqrt(2.5/5)."""
    iv = mean_interval([1, 2, 3, 4, 5])
    half = 2.776 * math.sqrt(2.5 / 5)
    assert iv.estimate == 3.0 and iv.n == (5,) and iv.method == "student_t"
    assert iv.low == pytest.approx(3 - half, abs=1e-3) and iv.high == pytest.approx(3 + half, abs=1e-3)


def test_paired_and_welch_t_sleep_data():
    """R: t.test(extra ~ group, sleep, paired=TRUE) -> [-2.4598858, -0.7001142]; Welch -> [-3.3654832, 0.2054832]."""
    paired = difference_interval(SLEEP_1, SLEEP_2, method="paired_t")
    assert paired.estimate == pytest.approx(-1.58)
    assert (paired.low, paired.high) == pytest.approx((-2.4598858, -0.7001142), abs=1e-6)
    welch = difference_interval(SLEEP_1, SLEEP_2)
    assert welch.method == "welch_t" and welch.n == (10, 10)
    assert (welch.low, welch.high) == pytest.approx((-3.3654832, 0.2054832), abs=1e-6)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_approaches_t_for_normal_data(method):
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 2.0, 400), rng.normal(0.0, 1.0, 300)
    t_mean, boot_mean = mean_interval(a), mean_interval(a, method=method, n_resamples=4000)
    width = t_mean.high - t_mean.low
    assert abs(boot_mean.low - t_mean.low) < 0.05 * width and abs(boot_mean.high - t_mean.high) < 0.05 * width
    t_diff, boot_diff = difference_interval(a, b), difference_interval(a, b, method=method, n_resamples=4000)
    width = t_diff.high - t_diff.low
    assert abs(boot_diff.low - t_diff.low) < 0.05 * width and abs(boot_diff.high - t_diff.high) < 0.05 * width
    again = difference_interval(a, b, method=method, n_resamples=4000)
    assert (again.low, again.high) == (boot_diff.low, boot_diff.high)  # seeded


def test_small_and_degenerate_groups():
    one = difference_interval([0.5], [0.1, 0.2])
    assert one.estimate == pytest.approx(0.35) and math.isnan(one.low) and one.n == (1, 2)
    flat = mean_interval([0.2, 0.2, np.nan, 0.2], method="bca")
    assert flat.n == (3,) and flat.low == flat.estimate == flat.high == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown method"):
        mean_interval([1, 2], method="welch_t")
    with pytest.raises(ValueError, match="equal length"):
        difference_interval([1, 2], [1, 2, 3], method="paired_t")


@pytest.mark.parametrize(("low", "high", "claimed", "expected"), [
    (0.1, 0.3, "greater", "holds"), (-0.3, -0.1, "greater", "does not hold"), (-0.1, 0.3, "greater", "inconclusive at this budget"),
    (-0.3, -0.1, "less", "holds"), (0.1, 0.3, "less", "does not hold"), (math.nan, math.nan, "less", "inconclusive at this budget"),
])
def test_verdict_rule(low, high, claimed, expected):
    assert verdict(low, high, claimed) == expected
    assert Claim("x", Interval(0.0, low, high, "welch_t", (3, 3)), claimed).verdict == expected


def test_too_few_values_are_inconclusive():
    thin = Interval(-1.0, -1.0, -1.0, "percentile", (MIN_N - 1, MIN_N))
    assert Claim("x", thin, "less").verdict == "inconclusive at this budget"
    assert Claim("x", Interval(-1.0, -1.0, -1.0, "percentile", (MIN_N, MIN_N)), "less").verdict == "holds"


def test_verdict_against_a_reference():
    assert verdict(0.55, 0.8, "greater", reference=0.5) == "holds"
    assert verdict(0.4, 0.8, "greater", reference=0.5) == "inconclusive at this budget"
