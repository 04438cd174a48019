"""Judging a rollout from what the server saw: canary analysis, A/B significance tests, shadow agreement.

Pure functions of numbers (``WindowStats`` summed over a step, outcome counts from late labels); reading
those numbers is ``deploy.stats``'s job.

**Canary analysis** (one step): it *waits* until the step has lasted ``min_duration_s`` and the canary
has answered ``min_requests``; then every check must hold for a *pass*, else it is a *fail*:

- ``error_rate``: canary error rate <= ``max_error_rate``;
- ``error_rate_vs_stable``: canary error rate <= stable error rate + ``error_margin``;
- ``p99``: canary p99 latency <= ``max_p99_ms``;
- ``p99_vs_stable``: canary p99 <= stable p99 x ``p99_ratio`` + ``p99_slack_ms``;
- ``accuracy_vs_stable`` (once both arms have ``min_labels`` labelled outcomes): canary accuracy >=
  stable accuracy - ``accuracy_margin``.

The comparisons with the stable version are skipped (and say so) while it has fewer than
``min_requests`` requests or labels of its own in the step.

**A/B tests**: a two-proportion z-test (pooled standard error for the statistic, unpooled for the
confidence interval of the difference) for binary outcomes, Welch's t-test (Welch-Satterthwaite degrees
of freedom) for continuous ones. The effect is B - A. ``required_per_arm`` is the sample per arm that
would detect the observed effect with the given power at the given significance level. "Large enough"
means each arm has at least ``min_samples`` outcomes *and* at least ``required_per_arm`` (and, for
proportions, at least 5 successes and 5 failures, so the normal approximation holds). When the required
sample cannot be computed (an observed effect of 0, or one too small to size a sample for), the test is
not large enough, and its ``sample`` sentence says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

from steward.deploy.options import RolloutOptions
from steward.serving.models import WindowStats

PASS, FAIL, WAIT = "pass", "fail", "wait"
"""Analysis verdicts."""

MIN_SUCCESSES = 5
"""Successes and failures each proportion needs for the normal approximation of the z-test."""


def finite(value: float | None) -> float | None:
    """``value``, or None when it is not a finite number (JSON has no infinity)."""
    return value if value is not None and math.isfinite(value) else None


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if math.isfinite(value) else "over 10 s"


def stats_json(found: WindowStats) -> dict[str, Any]:
    """What a person (and the API) is shown of a version's statistics."""
    return {
        "requests": found.requests,
        "errors": found.errors,
        "error_rate": found.error_rate,
        "mean_ms": found.mean_ms,
        "p50_ms": finite(found.quantile_ms(0.5)),
        "p99_ms": finite(found.quantile_ms(0.99)),
        "shadow_compared": found.shadow_compared,
        "shadow_agreed": found.shadow_agreed,
        "agreement": found.agreement,
    }


@dataclass(frozen=True)
class Check:
    """One check of an analysis.

    Attributes:
        name: What is checked (``error_rate``, ``p99_vs_stable`` …).
        passed: Whether it holds (a skipped check holds).
        actual: The canary's figure.
        limit: The bound it is held to (None when skipped).
        message: A sentence for a person.
        skipped: Whether there was not enough to judge by.
    """

    name: str
    passed: bool
    actual: float | None
    limit: float | None
    message: str
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "passed": self.passed,
            "actual": finite(self.actual),
            "limit": finite(self.limit),
            "message": self.message,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class Analysis:
    """The outcome of analysing one canary step.

    Attributes:
        verdict: ``pass``, ``fail`` or ``wait`` (not enough yet to judge).
        message: One sentence: why.
        checks: Each check (none while waiting).
        stable: The stable version's statistics over the step (``stats_json``).
        canary: The canary's.
        outcomes: Labelled outcomes per role (``stable``, ``canary``), where there are any.
    """

    verdict: str
    message: str
    checks: tuple[Check, ...] = ()
    stable: Mapping[str, Any] | None = None
    canary: Mapping[str, Any] | None = None
    outcomes: Mapping[str, Mapping[str, Any]] | None = None

    @property
    def failures(self) -> list[Check]:
        """The checks that do not hold."""
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "verdict": self.verdict,
            "message": self.message,
            "checks": [c.to_json() for c in self.checks],
            "stable": dict(self.stable) if self.stable is not None else None,
            "canary": dict(self.canary) if self.canary is not None else None,
            "outcomes": {k: dict(v) for k, v in self.outcomes.items()} if self.outcomes else None,
        }


def _accuracy_check(
    outcomes: Mapping[str, Mapping[str, Any]] | None, options: RolloutOptions
) -> Check | None:
    if not outcomes:
        return None
    stable, canary = outcomes.get("stable") or {}, outcomes.get("canary") or {}
    n_stable, n_canary = int(stable.get("n") or 0), int(canary.get("n") or 0)
    if min(n_stable, n_canary) < options.min_labels:
        message = (
            f"accuracy not compared yet: {n_canary} canary and {n_stable} stable labelled outcomes, "
            f"{options.min_labels} each needed"
        )
        return Check("accuracy_vs_stable", True, None, None, message, skipped=True)
    actual, base = float(canary["accuracy"]), float(stable["accuracy"])
    limit = base - options.accuracy_margin
    passed = actual >= limit
    sign = ">=" if passed else "<"
    message = f"canary accuracy {actual:.3f} {sign} stable {base:.3f} - {options.accuracy_margin:g}"
    return Check("accuracy_vs_stable", passed, actual, limit, message)


def analyse_canary(
    stable: WindowStats,
    canary: WindowStats,
    options: RolloutOptions,
    elapsed_s: float,
    outcomes: Mapping[str, Mapping[str, Any]] | None = None,
) -> Analysis:
    """Judge one canary step from the statistics of both versions since the step began.

    Args:
        stable: What the stable version served during the step.
        canary: What the canary served.
        options: The rollout's thresholds.
        elapsed_s: How long the step has lasted.
        outcomes: Labelled outcomes (``n``, ``accuracy`` …) by role ``stable`` and ``canary``, if any.

    Returns:
        The analysis: ``wait`` until the step is long and large enough, then ``pass`` or ``fail``.
    """

    def made(verdict: str, message: str, checks: Sequence[Check] = ()) -> Analysis:
        return Analysis(verdict, message, tuple(checks), stats_json(stable), stats_json(canary), outcomes)

    if elapsed_s < options.min_duration_s:
        message = f"the step has run {elapsed_s:.0f} s of the {options.min_duration_s:g} s it lasts at least"
        return made(WAIT, message)
    if canary.requests < options.min_requests:
        message = f"the canary has answered {canary.requests} requests of the {options.min_requests} needed"
        return made(WAIT, message)
    checks: list[Check] = []
    rate = canary.error_rate
    checks.append(
        Check(
            "error_rate",
            rate <= options.max_error_rate,
            rate,
            options.max_error_rate,
            f"canary error rate {rate:.2%} (at most {options.max_error_rate:.2%})",
        )
    )
    p99 = canary.quantile_ms(0.99)
    checks.append(
        Check(
            "p99",
            p99 <= options.max_p99_ms,
            p99,
            options.max_p99_ms,
            f"canary p99 {_ms(p99)} (at most {_ms(options.max_p99_ms)})",
        )
    )
    if stable.requests >= max(options.min_requests, 1):
        limit = stable.error_rate + options.error_margin
        checks.append(
            Check(
                "error_rate_vs_stable",
                rate <= limit,
                rate,
                limit,
                f"canary error rate {rate:.2%} against stable {stable.error_rate:.2%} "
                f"+ {options.error_margin:.2%}",
            )
        )
        base = stable.quantile_ms(0.99)
        bound = base * options.p99_ratio + options.p99_slack_ms
        checks.append(
            Check(
                "p99_vs_stable",
                p99 <= bound,
                p99,
                bound,
                f"canary p99 {_ms(p99)} against stable {_ms(base)} x {options.p99_ratio:g} "
                f"+ {options.p99_slack_ms:g} ms",
            )
        )
    else:
        why = f"the stable version answered {stable.requests} requests in the step, too few to compare with"
        checks.append(Check("error_rate_vs_stable", True, rate, None, why, skipped=True))
        checks.append(Check("p99_vs_stable", True, p99, None, why, skipped=True))
    accuracy = _accuracy_check(outcomes, options)
    if accuracy is not None:
        checks.append(accuracy)
    failed = [c for c in checks if not c.passed]
    if failed:
        return made(FAIL, "failed: " + "; ".join(c.message for c in failed), checks)
    passed = sum(not c.skipped for c in checks)
    return made(PASS, f"passed {passed} checks over {canary.requests} canary requests", checks)


# -- A/B tests ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestResult:
    """A significance test of B against A.

    Attributes:
        test: ``two-proportion z-test`` or ``Welch's t-test``.
        statistic: The z or t statistic (B - A over its standard error).
        p_value: Two-sided.
        effect: B's outcome minus A's.
        relative_effect: ``effect`` over A's outcome (None when A's is 0).
        ci_low: The low end of the ``1 - alpha`` confidence interval of the effect.
        ci_high: Its high end.
        alpha: The significance level.
        significant: Whether ``p_value < alpha``.
        enough: Whether each arm's sample is large enough for the test to be trusted: at least
            ``min_samples`` and at least ``required_per_arm`` outcomes (never when that is None).
        required_per_arm: The sample per arm that detects the observed effect at ``power`` (None when
            it cannot be computed: the effect is 0, or too small to size a sample for).
        df: Welch's degrees of freedom (None for the z-test).
        sample: One sentence: why the sample is, or is not, large enough.
    """

    test: str
    statistic: float
    p_value: float
    effect: float
    relative_effect: float | None
    ci_low: float
    ci_high: float
    alpha: float
    significant: bool
    enough: bool
    required_per_arm: int | None
    df: float | None = None
    sample: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "test": self.test,
            "statistic": finite(self.statistic),
            "p_value": finite(self.p_value),
            "effect": self.effect,
            "relative_effect": finite(self.relative_effect),
            "ci_low": finite(self.ci_low),
            "ci_high": finite(self.ci_high),
            "alpha": self.alpha,
            "significant": self.significant,
            "enough": self.enough,
            "required_per_arm": self.required_per_arm,
            "df": finite(self.df),
            "sample": self.sample,
        }


def _required(effect: float, spread: float) -> int | None:
    """Per-arm sample size that detects ``effect``: ``spread`` is the squared sum of the critical values
    times the outcome's spread, as each test forms it. None when no finite size can be computed."""
    square = effect**2
    if square == 0:  # no effect, or one whose square underflows
        return None
    size = spread / square
    return math.ceil(size) if math.isfinite(size) else None


def _large_enough(
    n_a: int, n_b: int, min_samples: int, required: int | None, power: float, shortfall: str | None = None
) -> tuple[bool, str]:
    """Whether both arms are large enough (``min_samples`` and ``required`` each), and why in a sentence.

    Args:
        n_a: A's outcomes.
        n_b: B's outcomes.
        min_samples: The least each arm needs, whatever the effect.
        required: The sample per arm that detects the observed effect (None: it cannot be computed).
        power: The power ``required`` is computed for.
        shortfall: Another reason the test cannot be trusted at this size, if any.
    """
    if required is None:
        return False, (
            "the sample each arm needs cannot be computed: the observed effect is 0 or too small to size "
            "a sample for, so no sample counts as large enough"
        )
    need = max(min_samples, required)
    basis = f"min_samples {min_samples}; {required} per arm detect an effect this size at power {power:g}"
    if min(n_a, n_b) < need:
        return False, f"A has {n_a} outcomes and B {n_b}, short of the {need} each arm needs ({basis})"
    if shortfall is not None:
        return False, shortfall
    return True, f"A has {n_a} outcomes and B {n_b}, at least the {need} each arm needs ({basis})"


def two_proportion_ztest(
    successes_a: int,
    n_a: int,
    successes_b: int,
    n_b: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    min_samples: int = 100,
) -> TestResult:
    """Compare the success rates of B and A.

    Args:
        successes_a: A's successes (correct answers, positive labels).
        n_a: A's outcomes.
        successes_b: B's successes.
        n_b: B's outcomes.
        alpha: The significance level.
        power: The power ``required_per_arm`` is computed for.
        min_samples: Outcomes each arm needs to count as large enough (and ``required_per_arm`` too).

    Raises:
        ValueError: If an arm has no outcomes or more successes than outcomes.
    """
    if n_a <= 0 or n_b <= 0 or not 0 <= successes_a <= n_a or not 0 <= successes_b <= n_b:
        raise ValueError("each arm needs outcomes, and no more successes than outcomes")
    pa, pb = successes_a / n_a, successes_b / n_b
    effect = pb - pa
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se0 > 0:
        z = effect / se0
        p_value = float(2 * sps.norm.sf(abs(z)))
    else:  # both arms all successes or all failures: no difference to see
        z, p_value = 0.0, 1.0
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    crit = float(sps.norm.ppf(1 - alpha / 2))
    z_power = float(sps.norm.ppf(power))
    mean = (pa + pb) / 2
    spread = (
        crit * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(pa * (1 - pa) + pb * (1 - pb))
    ) ** 2
    required = _required(effect, spread)
    shortfall = None
    if min(successes_a, n_a - successes_a, successes_b, n_b - successes_b) < MIN_SUCCESSES:
        shortfall = (
            f"an arm has fewer than {MIN_SUCCESSES} successes or {MIN_SUCCESSES} failures: the z-test's "
            "normal approximation does not hold"
        )
    enough, sample = _large_enough(n_a, n_b, min_samples, required, power, shortfall)
    return TestResult(
        "two-proportion z-test",
        z,
        p_value,
        effect,
        effect / pa if pa else None,
        effect - crit * se,
        effect + crit * se,
        alpha,
        p_value < alpha,
        enough,
        required,
        sample=sample,
    )


def welch_ttest(
    mean_a: float,
    var_a: float,
    n_a: int,
    mean_b: float,
    var_b: float,
    n_b: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    min_samples: int = 100,
) -> TestResult:
    """Compare the means of B and A without assuming equal variances.

    Args:
        mean_a: A's mean outcome.
        var_a: A's sample variance (``ddof=1``).
        n_a: A's outcomes.
        mean_b: B's mean outcome.
        var_b: B's sample variance.
        n_b: B's outcomes.
        alpha: The significance level.
        power: The power ``required_per_arm`` is computed for.
        min_samples: Outcomes each arm needs to count as large enough (and ``required_per_arm`` too).

    Raises:
        ValueError: If an arm has fewer than two outcomes or a negative variance.
    """
    if n_a < 2 or n_b < 2 or var_a < 0 or var_b < 0:
        raise ValueError("each arm needs at least two outcomes and a variance of at least 0")
    effect = mean_b - mean_a
    se = math.sqrt(var_a / n_a + var_b / n_b)
    if se == 0:
        t, p_value, df = 0.0, 1.0, float(n_a + n_b - 2)
    else:
        found = sps.ttest_ind_from_stats(
            mean_b, math.sqrt(var_b), n_b, mean_a, math.sqrt(var_a), n_a, equal_var=False
        )
        t, p_value = float(found.statistic), float(found.pvalue)
        denominator = (var_a / n_a) ** 2 / (n_a - 1) + (var_b / n_b) ** 2 / (n_b - 1)
        # Variances so small their squares round to 0: Welch-Satterthwaite is undefined, use the pooled df.
        df = (var_a / n_a + var_b / n_b) ** 2 / denominator if denominator > 0 else float(n_a + n_b - 2)
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    spread = (float(sps.norm.ppf(1 - alpha / 2)) + float(sps.norm.ppf(power))) ** 2 * (var_a + var_b)
    required = _required(effect, spread)
    enough, sample = _large_enough(n_a, n_b, min_samples, required, power)
    return TestResult(
        "Welch's t-test",
        t,
        p_value,
        effect,
        effect / mean_a if mean_a else None,
        effect - crit * se,
        effect + crit * se,
        alpha,
        p_value < alpha,
        enough,
        required,
        df,
        sample,
    )


def ab_test(a: Mapping[str, Any], b: Mapping[str, Any], options: RolloutOptions) -> TestResult | str:
    """The A/B test of ``options.metric`` over two arms' outcomes (``n``, ``correct``, ``accuracy``,
    ``label_mean`` and, for ``label_mean``, ``label_var``).

    Returns:
        The test, or a sentence saying why none can be run yet.
    """
    n_a, n_b = int(a.get("n") or 0), int(b.get("n") or 0)
    need = 2 if options.metric == "label_mean" else 1
    if min(n_a, n_b) < need:
        return f"no test yet: A has {n_a} labelled outcomes and B {n_b}"
    common: dict[str, Any] = {
        "alpha": options.alpha,
        "power": options.power,
        "min_samples": options.min_samples,
    }
    if options.metric == "accuracy":
        return two_proportion_ztest(int(a["correct"]), n_a, int(b["correct"]), n_b, **common)
    if options.metric == "label_rate":
        hits_a, hits_b = round(float(a["label_mean"]) * n_a), round(float(b["label_mean"]) * n_b)
        return two_proportion_ztest(hits_a, n_a, hits_b, n_b, **common)
    if a.get("label_var") is None or b.get("label_var") is None:
        return "no test: the label outcomes carry no variance (label_var) to compare means with"
    return welch_ttest(
        float(a["label_mean"]),
        float(a["label_var"]),
        n_a,
        float(b["label_mean"]),
        float(b["label_var"]),
        n_b,
        **common,
    )


def outcome_of(found: Mapping[str, Any], metric: str) -> float | None:
    """An arm's outcome under ``metric`` (None without outcomes)."""
    if not found or not found.get("n"):
        return None
    value = found.get("accuracy" if metric == "accuracy" else "label_mean")
    return float(value) if value is not None else None
