"""Canary analysis over window statistics, and the A/B tests against scipy and numbers worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from steward.deploy.analysis import (
    FAIL,
    PASS,
    WAIT,
    ab_test,
    analyse_canary,
    two_proportion_ztest,
    welch_ttest,
)
from steward.deploy.options import RolloutOptions, Strategy, parse_options
from steward.serving.models import WindowStats

OPTIONS = RolloutOptions(min_duration_s=10, min_requests=100)


def served(requests: int, errors: int = 0, latency_ms: float = 2.0) -> WindowStats:
    stats = WindowStats()
    for i in range(requests):
        stats.observe(latency_ms, error=i < errors)
    return stats


def failed(analysis: object) -> set[str]:
    return {c.name for c in analysis.failures}  # type: ignore[attr-defined]


def test_a_step_waits_for_its_duration_and_its_sample_before_judging() -> None:
    short = analyse_canary(served(1000), served(500), OPTIONS, elapsed_s=3)
    assert short.verdict == WAIT and "3 s of the 10 s" in short.message
    small = analyse_canary(served(1000), served(99), OPTIONS, elapsed_s=30)
    assert small.verdict == WAIT and "99 requests of the 100" in small.message
    assert small.checks == ()


def test_a_canary_as_good_as_stable_passes_every_check() -> None:
    found = analyse_canary(served(1900, errors=2), served(100), OPTIONS, elapsed_s=30)
    assert found.verdict == PASS
    assert {c.name for c in found.checks} == {"error_rate", "p99", "error_rate_vs_stable", "p99_vs_stable"}
    assert found.canary is not None and found.canary["requests"] == 100


def test_a_canary_erring_more_than_stable_plus_the_margin_fails() -> None:
    # 3% errors: under the 5% ceiling, but above stable's 0.1% + 1%.
    found = analyse_canary(served(1000, errors=1), served(200, errors=6), OPTIONS, elapsed_s=30)
    assert found.verdict == FAIL
    assert failed(found) == {"error_rate_vs_stable"}
    worse = analyse_canary(served(1000, errors=100), served(200, errors=20), OPTIONS, elapsed_s=30)
    assert failed(worse) == {"error_rate"}  # 10% on both: only the absolute ceiling is broken


def test_a_slow_canary_fails_on_p99_against_stable_and_against_the_ceiling() -> None:
    relative = analyse_canary(
        served(1000, latency_ms=2.0), served(200, latency_ms=40.0), OPTIONS, elapsed_s=30
    )
    assert failed(relative) == {"p99_vs_stable"}
    check = next(c for c in relative.checks if c.name == "p99_vs_stable")
    stable_p99 = served(1000, latency_ms=2.0).quantile_ms(0.99)
    assert check.limit == pytest.approx(stable_p99 * 1.5 + 5)
    absolute = analyse_canary(
        served(1000, latency_ms=4000), served(200, latency_ms=4000), OPTIONS, elapsed_s=30
    )
    assert failed(absolute) == {"p99"}
    hung = analyse_canary(served(1000), served(200, latency_ms=60_000), OPTIONS, elapsed_s=30)
    assert "p99" in failed(hung) and hung.to_json()["canary"]["p99_ms"] is None  # over the last bucket


def test_without_stable_traffic_the_comparisons_are_skipped_and_say_so() -> None:
    found = analyse_canary(served(0), served(150), OPTIONS, elapsed_s=30)
    skipped = [c for c in found.checks if c.skipped]
    assert {c.name for c in skipped} == {"error_rate_vs_stable", "p99_vs_stable"}
    assert found.verdict == PASS and "too few to compare" in skipped[0].message


def test_accuracy_from_labels_is_compared_once_both_arms_have_enough() -> None:
    few = {"stable": {"n": 500, "accuracy": 0.9}, "canary": {"n": 10, "accuracy": 0.1}}
    waiting = analyse_canary(served(1000), served(200), OPTIONS, elapsed_s=30, outcomes=few)
    assert waiting.verdict == PASS
    assert next(c for c in waiting.checks if c.name == "accuracy_vs_stable").skipped
    worse = {"stable": {"n": 500, "accuracy": 0.9}, "canary": {"n": 60, "accuracy": 0.8}}
    found = analyse_canary(served(1000), served(200), OPTIONS, elapsed_s=30, outcomes=worse)
    assert found.verdict == FAIL and failed(found) == {"accuracy_vs_stable"}
    close = {"stable": {"n": 500, "accuracy": 0.9}, "canary": {"n": 60, "accuracy": 0.89}}
    assert analyse_canary(served(1000), served(200), OPTIONS, elapsed_s=30, outcomes=close).verdict == PASS


# -- A/B tests ----------------------------------------------------------------------------------------


def test_the_two_proportion_z_test_matches_the_hand_computation_and_scipy() -> None:
    found = two_proportion_ztest(200, 1000, 250, 1000)
    pooled = 450 / 2000
    z = 0.05 / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert found.statistic == pytest.approx(z) and z == pytest.approx(2.6774, abs=1e-4)
    assert found.p_value == pytest.approx(2 * (1 - sps.norm.cdf(z)))
    # The same test as a 2x2 chi-squared without continuity correction: chi2 = z^2, same p-value.
    chi2, p_value, _, _ = sps.chi2_contingency([[200, 800], [250, 750]], correction=False)
    assert found.statistic**2 == pytest.approx(chi2) and found.p_value == pytest.approx(p_value)
    half = 1.959964 * math.sqrt(0.2 * 0.8 / 1000 + 0.25 * 0.75 / 1000)
    assert (found.ci_low, found.ci_high) == (pytest.approx(0.05 - half), pytest.approx(0.05 + half))
    assert found.effect == pytest.approx(0.05) and found.relative_effect == pytest.approx(0.25)
    assert found.required_per_arm == 1094  # the textbook sample for 20% -> 25% at alpha 0.05, power 0.8
    assert found.significant and not found.enough  # 1000 per arm: short of the 1094 this effect needs
    assert "short of the 1094 each arm needs" in found.sample and found.to_json()["sample"] == found.sample


def test_a_small_sample_is_reported_as_not_large_enough() -> None:
    found = two_proportion_ztest(2, 20, 5, 20)
    assert not found.enough and not found.significant
    assert found.required_per_arm is not None and found.required_per_arm > 20
    same = two_proportion_ztest(10, 10, 10, 10)
    assert (same.statistic, same.p_value, same.required_per_arm) == (0.0, 1.0, None)


@pytest.mark.parametrize(("n", "enough"), [(1080, False), (1100, True)])
def test_a_proportions_sample_is_large_enough_from_the_size_its_effect_needs(n: int, enough: bool) -> None:
    found = two_proportion_ztest(n // 5, n, n // 4, n, min_samples=100)  # 20% against 25%, as above
    assert found.required_per_arm == 1094 and found.enough is enough
    assert ("at least the 1094" if enough else "short of the 1094") in found.sample


@pytest.mark.parametrize(("n", "enough"), [(313, False), (314, True)])
def test_a_means_sample_is_large_enough_from_the_size_its_effect_needs(n: int, enough: bool) -> None:
    # (z_0.975 + z_0.8)^2 x (20 + 20) / 1^2 = 313.96...: 314 per arm detect a difference of 1.
    found = welch_ttest(10.0, 20.0, n, 11.0, 20.0, n, min_samples=100)
    assert found.required_per_arm == 314 and found.enough is enough


def test_min_samples_still_counts_when_the_effect_needs_fewer() -> None:
    found = welch_ttest(10.0, 20.0, 400, 11.0, 20.0, 400, min_samples=500)
    assert found.required_per_arm == 314 and not found.enough
    assert "short of the 500 each arm needs" in found.sample


def test_a_sample_size_that_cannot_be_computed_is_never_large_enough() -> None:
    same = welch_ttest(10.0, 4.0, 10_000, 10.0, 4.0, 10_000)  # no effect: no sample detects it
    assert same.required_per_arm is None and not same.enough
    assert "cannot be computed" in same.sample
    tiny = welch_ttest(10.0, 4.0, 10_000, 10.0 + 1e-170, 4.0, 10_000)  # its square underflows
    assert tiny.required_per_arm is None and not tiny.enough
    flat = two_proportion_ztest(500, 1000, 500, 1000)
    assert flat.required_per_arm is None and not flat.enough and "cannot be computed" in flat.sample


def test_welch_matches_scipy_on_raw_samples() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(10.0, 2.0, 400), rng.normal(10.6, 3.5, 250)
    found = welch_ttest(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    expected = sps.ttest_ind(b, a, equal_var=False)
    assert found.statistic == pytest.approx(expected.statistic)
    assert found.p_value == pytest.approx(expected.pvalue)
    assert found.df == pytest.approx(expected.df)
    interval = expected.confidence_interval(0.95)
    assert (found.ci_low, found.ci_high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert found.effect == pytest.approx(b.mean() - a.mean())
    assert found.required_per_arm is not None and found.required_per_arm > len(b) and not found.enough


def test_ab_test_picks_the_test_by_metric_and_says_why_when_it_cannot_run() -> None:
    a = {"n": 1000, "correct": 800, "accuracy": 0.8, "label_mean": 0.3, "label_var": 0.21}
    b = {"n": 1000, "correct": 850, "accuracy": 0.85, "label_mean": 0.35, "label_var": 0.2275}
    accuracy = ab_test(a, b, RolloutOptions())
    assert not isinstance(accuracy, str) and accuracy.effect == pytest.approx(0.05)
    rate = ab_test(a, b, parse_options(Strategy.AB, {"metric": "label_rate"}))
    assert (
        not isinstance(rate, str)
        and rate.test == "two-proportion z-test"
        and rate.effect == pytest.approx(0.05)
    )
    mean = ab_test(a, b, parse_options(Strategy.AB, {"metric": "label_mean"}))
    assert not isinstance(mean, str) and mean.test == "Welch's t-test"
    assert "no test yet" in str(ab_test({"n": 0}, b, RolloutOptions()))
    no_var = ab_test({**a, "label_var": None}, b, parse_options(Strategy.AB, {"metric": "label_mean"}))
    assert isinstance(no_var, str) and "variance" in no_var


def test_welch_with_variances_too_small_to_square_still_gives_a_finite_answer() -> None:
    found = welch_ttest(1.0, 1e-170, 50, 1.0 + 1e-80, 1e-170, 50)
    assert math.isfinite(found.p_value) and math.isfinite(found.ci_low) and math.isfinite(found.ci_high)
    assert found.df == 98.0
