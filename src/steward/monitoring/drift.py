"""Drift between a reference and a current window, computed from their summaries alone.

Because ``compare`` reads only :class:`TableSummary` counts, a 30-day report merges 30 stored daily
summaries (``summaries.merge``) and never rescans the logs. ``drift`` is the one-call form over two tables.

Scores, per column (every one that applies is in ``FeatureDrift.scores``; undefined ones are None):

- ``ks`` (numeric): the largest gap between the two CDFs, read at the reference's bin edges. That is a
  lower bound of the exact two-sample statistic; the gap inside a bin differs from the gap at its ends
  by at most that bin's share, so the error is at most ``max`` over bins of the larger of the two shares
  (about ``1/bins`` of the reference for continuous data). ``ks_p_value`` is the two-sided p-value with
  the effective size ``n*m/(n+m)``, as ``scipy.stats.ks_2samp(method="asymp")``: the exact one-sample
  distribution ``kstwo`` up to an effective size of 5,000, above it Kolmogorov's limit with Stephens'
  correction, ``kolmogorov((sqrt(n) + 0.12 + 0.11/sqrt(n)) * D)`` (``kstwo`` is slow there and the two
  agree to about 1 %). A binned statistic can only be smaller, so the p-value errs towards "no drift".
- ``wasserstein`` (numeric): the area between the two CDFs (Wasserstein-1), divided by the reference's
  population standard deviation (Evidently's "normed" Wasserstein). Within a bin the CDFs are taken as
  linear (values spread evenly); the outer bins reach to the windows' minimum and maximum. Each CDF is
  then off by at most its bin share inside a bin, so the error is at most ``sum(width * (p + q))`` over
  bins, divided by the standard deviation; for smooth data it is far smaller (below 0.01 in the tests,
  thanks to the reference's narrow tail bins). The standard deviation comes from ``total`` and
  ``total_sq`` unless they cancel (a spread below ~1e-4.5 of the mean) or saturated, then from the bins.
  None for a constant reference (no scale to divide by).
- ``psi`` (both): ``sum((q - p) * ln(q / p))`` over the reference's deciles for numbers (the bins are
  grouped into ten runs of about equal reference mass, as PSI is usually computed) and over the
  categories for categories; an empty share counts as ``1e-4`` so the sum stays finite.
- ``jensenshannon`` (both): the Jensen-Shannon distance in base 2 (``scipy.spatial.distance.
  jensenshannon(p, q, base=2)``, between 0 and 1) over the same groups as PSI. It is 1.20 times the
  natural-log value Evidently reports.
- ``chisquare`` (categorical): Pearson's chi-square test of homogeneity on the 2 x k table of counts
  (the reference is a sample too, so it is not a goodness-of-fit test), over the categories either side
  has; ``chisquare_p_value`` from ``k - 1`` degrees of freedom. One category on both sides is 0 and 1.

The test that decides, unless ``DriftOptions.tests`` names one for the column, follows Evidently's rule
of thumb: with at most ``SMALL_REFERENCE`` (1,000) non-null reference values, ``ks`` for numbers and
``chisquare`` for categories (drift when the p-value is below 0.05); with more, ``wasserstein`` (above
0.1) and ``jensenshannon`` (above 0.1). ``psi`` drifts above 0.2. ``DriftOptions.thresholds`` overrides a
threshold per column name or per test name (the column wins). The dataset drifts when the share of
drifted columns among the compared ones is at least ``DriftOptions.share``.

Results that are not a plain verdict, each with a note and never a NaN: an empty window (no verdict, a
None ``drift_share``); a column with no non-null values on one side (not drifted, not in the share); a
numeric column constant in the reference (drifted exactly when the window holds any other value); a
column on one side only (named in ``DriftReport.notes``, not compared); a score beyond float64 (values
near 1e308) is None, and when it is the deciding one the column is not drifted, with a note. Summaries
counted against different references refuse to be compared.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy import special, stats

from steward.errors import InvalidInput
from steward.monitoring.models import (
    ColumnKind,
    ColumnSummary,
    DriftOptions,
    DriftReport,
    FeatureDrift,
    TableSummary,
)
from steward.monitoring.summaries import FLOAT_MAX, column_kind, reference_summary, summarize

TESTS: Mapping[str, tuple[ColumnKind, ...]] = {
    "ks": ("numeric",),
    "wasserstein": ("numeric",),
    "psi": ("numeric", "categorical"),
    "jensenshannon": ("numeric", "categorical"),
    "chisquare": ("categorical",),
}
"""Every test, with the kinds of column it applies to."""

DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "wasserstein": 0.1,
    "psi": 0.2,
    "jensenshannon": 0.1,
}
"""A p-value below (``ks``, ``chisquare``) or a distance above (the others) this is drift."""

P_VALUE_TESTS = frozenset({"ks", "chisquare"})
SMALL_REFERENCE = 1000
"""Up to this many non-null reference values, the default tests are ``ks`` and ``chisquare``."""

PSI_EPSILON = 1e-4
"""The share an empty bin counts as in PSI."""

GROUPS = 10  # numeric PSI and Jensen-Shannon run over the reference's deciles
_KSTWO_LIMIT = 5000  # effective sizes up to this get scipy's exact kstwo; above, the asymptotic form

FloatArray = npt.NDArray[np.float64]


def default_test(kind: ColumnKind, reference_count: int) -> str:
    """The test used for a column unless ``DriftOptions.tests`` names one.

    Args:
        kind: ``numeric`` or ``categorical``.
        reference_count: Non-null values of the column in the reference.

    Returns:
        ``ks`` or ``chisquare`` for a reference of at most ``SMALL_REFERENCE`` values, else
        ``wasserstein`` or ``jensenshannon``.
    """
    if reference_count <= SMALL_REFERENCE:
        return "ks" if kind == "numeric" else "chisquare"
    return "wasserstein" if kind == "numeric" else "jensenshannon"


def compare(
    reference: TableSummary,
    current: TableSummary,
    options: DriftOptions = DriftOptions(),
    *,
    outputs: Sequence[str] = (),
) -> DriftReport:
    """Compare a current window's summary with the reference's.

    Args:
        reference: The reference's summary (``summaries.reference_summary``).
        current: The window's (``summaries.summarize`` of it, or a ``summaries.merge`` of several).
        options: Tests, thresholds, the share and the columns; see :class:`DriftOptions`.
        outputs: Columns holding the model's outputs: compared the same way into
            ``DriftReport.prediction`` and left out of ``features`` and the drift share.

    Returns:
        The report (see the module docstring for every documented non-verdict).

    Raises:
        InvalidInput: Bad options (an unknown test, a test that does not apply to the column, a
            non-finite threshold, a share outside (0, 1]), or a column whose summaries were counted
            against different references (other kind, edges or categories).
    """
    _check_options(options)
    output_names = list(dict.fromkeys(outputs))
    if options.columns is not None:
        wanted = [c for c in dict.fromkeys(options.columns) if c not in output_names]
    else:
        wanted = [c for c in reference.columns if c not in output_names]
        wanted += [c for c in current.columns if c not in reference.columns and c not in output_names]
    notes: list[str] = []
    empty = ""
    if reference.rows == 0:
        empty = "empty reference"
        notes.append("the reference is empty (0 rows): no verdict")
    elif current.rows == 0:
        empty = "empty window"
        notes.append("the current window is empty (0 rows): no verdict")

    def judge_all(names: Sequence[str]) -> list[tuple[FeatureDrift, bool]]:
        judged = []
        for name in names:
            ref, cur = reference.columns.get(name), current.columns.get(name)
            if ref is not None and cur is not None:
                judged.append(_judge(name, ref, cur, options, empty))
            elif ref is not None:
                notes.append(f"column {name!r} is only in the reference: not compared")
            elif cur is not None:
                notes.append(f"column {name!r} is only in the current window: not compared")
            else:
                notes.append(f"column {name!r} is in neither the reference nor the current window")
        return judged

    features = judge_all(wanted)
    prediction = judge_all(output_names)
    for name in options.tests:
        if name not in reference.columns:
            notes.append(f"options.tests names column {name!r}, which the reference does not have")
    compared = [f for f, ok in features if ok]
    share = sum(f.drifted for f in compared) / len(compared) if compared else None
    return DriftReport(
        features=tuple(f for f, _ in features),
        drift_share=share,
        dataset_drift=share is not None and share >= options.share,
        share=options.share,
        reference_rows=reference.rows,
        current_rows=current.rows,
        prediction=tuple(f for f, _ in prediction),
        notes=tuple(notes),
    )


def drift(
    reference: pa.Table,
    current: pa.Table,
    options: DriftOptions = DriftOptions(),
    *,
    outputs: Sequence[str] = (),
) -> DriftReport:
    """Summarise both tables and compare them (and run the domain classifier if asked).

    Columns of a type drift does not summarise (timestamps, binary, nested …) are named in the notes.

    Args:
        reference: The reference data (e.g. the training set).
        current: The current window.
        options: See :class:`DriftOptions`; ``multivariate`` adds the domain classifier's ROC AUC.
        outputs: The model's output columns, compared as prediction drift.

    Returns:
        The report.

    Raises:
        InvalidInput: Bad options, or a column of another kind in ``current`` than in ``reference``.
    """
    _check_options(options)
    wanted = list(options.columns) if options.columns is not None else list(reference.column_names)
    notes: list[str] = []
    names: list[str] = []
    for name in dict.fromkeys([*wanted, *outputs]):
        if name not in reference.column_names:
            where = "only in the current window" if name in current.column_names else "in neither table"
            notes.append(f"column {name!r} is {where}: not compared")
            continue
        data_type = reference.schema.field(name).type
        if column_kind(data_type) is None:
            notes.append(f"column {name!r} ({data_type}) is not numeric or categorical: not compared")
            continue
        names.append(name)
    if options.columns is None:
        extra = [c for c in current.column_names if c not in reference.column_names and c not in outputs]
        notes += [f"column {c!r} is only in the current window: not compared" for c in extra]
    ref_summary = reference_summary(reference, names)
    cur_summary = summarize(current, ref_summary)
    inputs = [n for n in names if n not in outputs]
    report = compare(
        ref_summary,
        cur_summary,
        dataclasses.replace(options, columns=inputs),
        outputs=[o for o in outputs if o in names],
    )
    multivariate: dict[str, Any] | None = None
    if options.multivariate:
        from steward.monitoring.multivariate import DEFAULT_THRESHOLD, domain_classifier_auc

        columns = [f.column for f in report.features if f.reference_count and f.current_count]
        if columns:
            multivariate = domain_classifier_auc(reference, current, columns, rows=options.multivariate_rows)
        else:
            note = "no column has values on both sides: no domain classifier"
            multivariate = {"roc_auc": None, "threshold": DEFAULT_THRESHOLD, "drifted": False, "rows": 0,
                            "columns": [], "note": note}  # fmt: skip
    return dataclasses.replace(report, notes=(*notes, *report.notes), multivariate=multivariate)


# -- one column -----------------------------------------------------------------------------------------


def _judge(
    name: str, ref: ColumnSummary, cur: ColumnSummary, options: DriftOptions, empty: str
) -> tuple[FeatureDrift, bool]:
    """One column's drift, and whether it was compared (counts towards the share)."""
    _check_same_reference(name, ref, cur)
    test = options.tests.get(name) or default_test(ref.kind, ref.count)
    if ref.kind not in TESTS[test]:
        raise InvalidInput(
            f"test {test!r} does not apply to {ref.kind} column {name!r}; use one of "
            f"{', '.join(t for t, kinds in TESTS.items() if ref.kind in kinds)}",
            {"field": f"tests.{name}", "value": test},
        )
    threshold = float(options.thresholds.get(name, options.thresholds.get(test, DEFAULT_THRESHOLDS[test])))
    scores: dict[str, float | None] = dict.fromkeys(_SCORES[ref.kind])
    compared, drifted, note = False, False, empty
    if empty:
        pass
    elif ref.count == 0 or cur.count == 0:
        side = "the reference" if ref.count == 0 else "the current window"
        note = f"no non-null values in {side}: not compared"
    else:
        compared = True
        raw = _numeric_scores(ref, cur) if ref.kind == "numeric" else _categorical_scores(ref, cur)
        scores = {k: _finite(v) for k, v in raw.items()}
        value = scores[f"{test}_p_value"] if test in P_VALUE_TESTS else scores[test]
        if ref.kind == "numeric" and ref.minimum == ref.maximum:
            drifted, note = _constant_verdict(ref, cur)
        elif value is None:
            note = f"{test} is undefined for these values: not drifted"
        else:
            drifted = bool(value < threshold if test in P_VALUE_TESTS else value > threshold)
    feature = FeatureDrift(
        column=name,
        kind=ref.kind,
        test=test,
        statistic=scores[test],
        p_value=scores[f"{test}_p_value"] if test in P_VALUE_TESTS else None,
        threshold=threshold,
        drifted=drifted,
        scores=scores,
        reference_count=ref.count,
        current_count=cur.count,
        note=note,
    )
    return feature, compared


def _constant_verdict(ref: ColumnSummary, cur: ColumnSummary) -> tuple[bool, str]:
    """A constant reference column drifts as soon as the window holds any other value."""
    value = float(ref.minimum or 0.0)
    if cur.minimum == value and cur.maximum == value:
        return False, f"constant ({value:g}) in the reference and in the current window"
    if ref.edges == (value, value):  # the middle bin holds exactly the constant
        share = f"{(cur.count - cur.counts[1]) / cur.count:.2%} of the current values differ"
    else:
        share = "the current window holds other values"
    return True, f"constant ({value:g}) in the reference; {share}: drifted"


_SCORES: Mapping[str, tuple[str, ...]] = {
    "numeric": ("ks", "ks_p_value", "wasserstein", "psi", "jensenshannon"),
    "categorical": ("chisquare", "chisquare_p_value", "psi", "jensenshannon"),
}


def _normalised(distance: float, std: float) -> float | None:
    """The Wasserstein distance in reference standard deviations; None for a reference whose spread is
    0 or so small (subnormal) that the ratio would overflow."""
    if not std > 0:
        return None
    with np.errstate(over="ignore"):
        ratio = float(np.float64(distance) / np.float64(std))
    return ratio if math.isfinite(ratio) else None


def _numeric_scores(ref: ColumnSummary, cur: ColumnSummary) -> dict[str, float | None]:
    p = np.asarray(ref.counts, dtype=np.float64) / ref.count
    q = np.asarray(cur.counts, dtype=np.float64) / cur.count
    # The CDFs at each edge: just below it, except at the last edge, which the last inner bin includes.
    gap = np.cumsum(p)[:-1] - np.cumsum(q)[:-1]
    ks = float(np.abs(gap).max()) if gap.size else 0.0
    groups = _deciles(ref.counts)
    p_groups = np.asarray(np.bincount(groups, weights=p), dtype=np.float64)
    q_groups = np.asarray(np.bincount(groups, weights=q), dtype=np.float64)
    std = _reference_std(ref)
    wasserstein = _wasserstein(ref, cur, gap)
    return {
        "ks": ks,
        "ks_p_value": _ks_p_value(ks, ref.count, cur.count),
        "wasserstein": _normalised(wasserstein, std),
        "psi": _psi(p_groups, q_groups),
        "jensenshannon": _jensenshannon(p_groups, q_groups),
    }


def _categorical_scores(ref: ColumnSummary, cur: ColumnSummary) -> dict[str, float | None]:
    observed = np.array([ref.counts, cur.counts], dtype=np.float64)
    observed = observed[:, observed.sum(axis=0) > 0]
    if observed.shape[1] < 2:
        chi, p_value = 0.0, 1.0
    else:
        expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0) / observed.sum()
        chi = float(((observed - expected) ** 2 / expected).sum())
        p_value = float(stats.chi2.sf(chi, observed.shape[1] - 1))
    p = np.asarray(ref.counts, dtype=np.float64) / ref.count
    q = np.asarray(cur.counts, dtype=np.float64) / cur.count
    return {
        "chisquare": chi,
        "chisquare_p_value": p_value,
        "psi": _psi(p, q),
        "jensenshannon": _jensenshannon(p, q),
    }


def _deciles(counts: Sequence[int]) -> npt.NDArray[np.intp]:
    """Each bin's group: runs of adjacent bins with about a tenth of the reference each.

    A bin goes to the decile its middle falls in (integer arithmetic, so that 100 quantile bins make
    exactly ten groups of ten); empty outer bins join their neighbours, and a constant column's three
    bins (below, at and above the constant) stay apart.
    """
    c = np.asarray(counts, dtype=np.int64)
    before = np.cumsum(c) - c
    groups = (GROUPS * (2 * before + c)) // (2 * max(int(c.sum()), 1))
    result: npt.NDArray[np.intp] = np.minimum(groups, GROUPS - 1).astype(np.intp)
    return result


def _wasserstein(ref: ColumnSummary, cur: ColumnSummary, gap: FloatArray) -> float:
    """The area between the CDFs, taking each as linear inside a bin."""
    edges = np.asarray(ref.edges, dtype=np.float64)
    if edges.size == 0:
        return 0.0
    low = min(edges[0], *(v for v in (ref.minimum, cur.minimum) if v is not None))
    high = max(edges[-1], *(v for v in (ref.maximum, cur.maximum) if v is not None))
    x = np.concatenate([[low], edges, [high]])
    d = np.concatenate([[0.0], gap, [0.0]])
    width, a, b = np.diff(x), np.abs(d[:-1]), np.abs(d[1:])
    same_sign = d[:-1] * d[1:] >= 0
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(total > 0, (a * a + b * b) / (2 * total), 0.0)
    return float(np.sum(width * np.where(same_sign, total / 2, crossing)))


def _reference_std(ref: ColumnSummary) -> float:
    """The population standard deviation, from the sums unless they cancel, else from the bins."""
    if max(abs(ref.total), ref.total_sq) < FLOAT_MAX:  # not saturated (see summaries.saturate)
        mean = ref.total / ref.count
        variance = ref.total_sq / ref.count - mean * mean
        # Summed squares lose ~1e-16 of mean**2: well above that the moments are exact enough.
        if math.isfinite(variance) and variance > 1e-9 * mean * mean:
            return math.sqrt(variance)
    edges = np.asarray(ref.edges, dtype=np.float64)
    low = edges[0] if ref.minimum is None else min(edges[0], ref.minimum)
    high = edges[-1] if ref.maximum is None else max(edges[-1], ref.maximum)
    scale = max(abs(low), abs(high)) or 1.0  # in units of the largest value, squares cannot overflow
    x = np.concatenate([[low], edges, [high]]) / scale
    middles = (x[:-1] + x[1:]) / 2
    p = np.asarray(ref.counts, dtype=np.float64) / ref.count
    centre = float(np.dot(p, middles))
    return math.sqrt(float(np.dot(p, (middles - centre) ** 2))) * scale


def _ks_p_value(statistic: float, n: int, m: int) -> float:
    size = n * m / (n + m)
    if round(size) <= _KSTWO_LIMIT:
        return float(np.clip(stats.kstwo.sf(statistic, max(round(size), 1)), 0.0, 1.0))
    root = math.sqrt(size)
    return float(special.kolmogorov((root + 0.12 + 0.11 / root) * statistic))


def _psi(p: FloatArray, q: FloatArray) -> float:
    p, q = np.where(p > 0, p, PSI_EPSILON), np.where(q > 0, q, PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def _jensenshannon(p: FloatArray, q: FloatArray) -> float:
    # scipy.spatial.distance.jensenshannon(p, q, base=2), kept from a tiny negative sum turning into NaN.
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / (2 * math.log(2))
    return math.sqrt(max(float(divergence), 0.0))


def _finite(value: float | None) -> float | None:
    """A plain float (not a NumPy scalar, which JSON encoders refuse), or None for NaN and inf."""
    return float(value) if value is not None and math.isfinite(value) else None


# -- checks ---------------------------------------------------------------------------------------------


def _check_options(options: DriftOptions) -> None:
    for column, test in options.tests.items():
        if test not in TESTS:
            raise InvalidInput(
                f"unknown drift test {test!r} for column {column!r}; use one of {', '.join(TESTS)}",
                {"field": f"tests.{column}", "value": test},
            )
    for key, value in options.thresholds.items():
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidInput(
                f"threshold {key!r} must be a finite number of at least 0, not {value!r}",
                {"field": f"thresholds.{key}", "value": value},
            )
    if not 0 < options.share <= 1:
        raise InvalidInput(
            f"share must be above 0 and at most 1, not {options.share!r}",
            {"field": "share", "value": options.share},
        )
    if options.multivariate and options.multivariate_rows < 10:
        raise InvalidInput(
            "multivariate_rows must be at least 10",
            {"field": "multivariate_rows", "value": options.multivariate_rows},
        )


def _check_same_reference(name: str, ref: ColumnSummary, cur: ColumnSummary) -> None:
    if ref.kind != cur.kind or ref.edges != cur.edges or ref.categories != cur.categories:
        what = "kind" if ref.kind != cur.kind else "edges" if ref.edges != cur.edges else "categories"
        raise InvalidInput(
            f"column {name!r} of the current summary has other {what} than the reference's: count the "
            "window with summaries.summarize(table, like=reference)",
            {"column": name, "field": what},
        )
    if len(ref.counts) != len(cur.counts):
        raise InvalidInput(
            f"column {name!r}: the summaries hold {len(ref.counts)} and {len(cur.counts)} counts",
            {"column": name, "field": "counts"},
        )
