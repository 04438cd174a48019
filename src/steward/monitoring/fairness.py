"""Fairness: a model's metrics per group of a sensitive attribute, and the gaps between the groups.

Per group: ``count``, ``selection_rate`` (share predicted positive), ``true_positive_rate`` (of the rows
labelled positive, the share predicted positive), ``false_positive_rate`` (of the rows labelled
negative, the share predicted positive) and ``accuracy`` (share of predictions equal to the label).
Between groups, as fairlearn defines them (``between_groups``):

- ``demographic_parity_difference``: the largest minus the smallest selection rate;
- ``demographic_parity_ratio``: the smallest over the largest (None when the largest is 0);
- ``equalized_odds_difference``: the larger of the TPR gap and the FPR gap (largest minus smallest).
  A group with no positive labels has no TPR and is skipped for that gap (one without negatives for the
  FPR gap), with a note; when no group has a rate the gap, and so the difference, is None. This is
  where the figures part from fairlearn's, which counts such a group's rate as 0.

**For the policy gate.** A training pipeline records fairness for promotion by logging
:func:`fairness_metrics` as metrics of the version (or of its run)::

    metrics = {"auc": auc, **fairness_metrics(y_test, model.predict(x_test), x_test["sex"])}
    steward.register_model("churn", model, metrics=metrics)

The registry's gate turns metrics whose keys start with ``fairness.`` into the facts
``fairness.demographic_parity_difference`` and so on, so a policy rule such as
``fairness.demographic_parity_difference <= 0.1`` reads exactly these numbers. A figure that is
undefined is left out of the dict, and a rule on it then fails with "no value recorded" rather than
passing on a NaN.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa

from steward.errors import InvalidInput
from steward.monitoring.models import NULL, FairnessReport
from steward.registry.gates import FAIRNESS_PREFIX

Array = np.ndarray[Any, Any]

GROUP_METRICS: Final = ("count", "selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")
FIGURES: Final = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
"""The between-group figures, without the ``fairness.`` prefix the gate reads them under."""


def fairness(
    y_true: Sequence[Any] | Array,
    y_pred: Sequence[Any] | Array,
    groups: Sequence[Any] | Array,
    *,
    attribute: str,
    positive: Any = 1,
) -> FairnessReport:
    """Per-group metrics over ``groups`` and the gaps between them.

    Args:
        y_true: The labels.
        y_pred: The predictions, one per label.
        groups: Each row's value of the sensitive attribute (None is the group ``__null__``).
        attribute: The attribute's name, for the report.
        positive: The favourable outcome: a row is selected when its prediction equals it, a positive
            when its label does (``True`` equals 1).

    Returns:
        The report. Rows whose label or prediction is missing (None, NaN) are left out, with a note.

    Raises:
        InvalidInput: If the three have different lengths, or one is not one-dimensional.
    """
    truth, predicted, group = (
        _array(v, n) for v, n in ((y_true, "y_true"), (y_pred, "y_pred"), (groups, "groups"))
    )
    if not len(truth) == len(predicted) == len(group):
        raise InvalidInput(
            f"y_true, y_pred and groups must have one length, not {len(truth)}, {len(predicted)} and "
            f"{len(group)}",
            {"field": "y_pred" if len(truth) != len(predicted) else "groups"},
        )
    notes: list[str] = []
    known = _present(truth) & _present(predicted)
    if not known.all():
        notes.append(f"{int((~known).sum())} row(s) without a label or a prediction left out")
        truth, predicted, group = truth[known], predicted[known], group[known]
    if not len(truth):
        notes.append("no rows")
        return FairnessReport(str(attribute), {}, None, None, None, tuple(notes))
    is_positive = _equals(truth, positive)
    selected = _equals(predicted, positive)
    correct = _equals_each(truth, predicted)
    if not is_positive.any() and not selected.any():
        notes.append(f"the positive value {positive!r} occurs in neither the labels nor the predictions")
    names = np.asarray([NULL if _missing(g) else str(g) for g in group.tolist()], dtype=object)
    per_group: dict[str, dict[str, float | None]] = {}
    for name in sorted(set(names.tolist())):
        member = names == name
        positives, negatives = member & is_positive, member & ~is_positive
        per_group[name] = {
            "count": int(member.sum()),
            "selection_rate": _rate(selected, member),
            "true_positive_rate": _rate(selected, positives),
            "false_positive_rate": _rate(selected, negatives),
            "accuracy": _rate(correct, member),
        }
    selection = [float(m["selection_rate"] or 0.0) for m in per_group.values()]
    difference = max(selection) - min(selection)
    ratio = min(selection) / max(selection) if max(selection) > 0 else None
    if ratio is None:
        notes.append("demographic_parity_ratio undefined: no group has a positive prediction")
    tpr_gap = _gap(per_group, "true_positive_rate", "positive labels", notes)
    fpr_gap = _gap(per_group, "false_positive_rate", "negative labels", notes)
    odds = max(tpr_gap, fpr_gap) if tpr_gap is not None and fpr_gap is not None else None
    if odds is None:
        notes.append("equalized_odds_difference undefined: it needs both the TPR gap and the FPR gap")
    return FairnessReport(str(attribute), per_group, difference, ratio, odds, tuple(notes))


def fairness_metrics(
    y_true: Sequence[Any] | Array,
    y_pred: Sequence[Any] | Array,
    groups: Sequence[Any] | Array,
    *,
    positive: Any = 1,
    attribute: str = "group",
) -> dict[str, float]:
    """The between-group figures keyed as the policy gate reads them from a version's metrics.

    Args:
        y_true: The labels.
        y_pred: The predictions.
        groups: Each row's value of the sensitive attribute.
        positive: The favourable outcome.
        attribute: The attribute's name (not part of the keys).

    Returns:
        ``{"fairness.demographic_parity_difference", "fairness.demographic_parity_ratio",
        "fairness.equalized_odds_difference"}`` with the figures that are defined (see the module
        docstring for logging them so that a promotion policy gates on them).

    Raises:
        InvalidInput: As :func:`fairness`.
    """
    report = fairness(y_true, y_pred, groups, attribute=attribute, positive=positive)
    return {f"{FAIRNESS_PREFIX}{key}": value for key, value in report.as_facts().items()}


def fairness_from_table(
    labelled: pa.Table, attribute: str, *, positive: Any = 1, version: str | None = None
) -> FairnessReport:
    """:func:`fairness` of labelled predictions (what ``serving.labels.labelled_predictions`` returns).

    The attribute is read from ``in.<attribute>`` (or a column named ``attribute`` itself), the labels
    from ``label`` and the predictions from ``out.prediction`` (mapped to the classes when it holds the
    index of the highest of ``out.scores``, as :mod:`steward.monitoring.performance` does). Rows with an
    error status are left out, and so are shadow answers unless ``version`` names the version to judge.

    Args:
        labelled: The labelled rows.
        attribute: The sensitive attribute, an input column of the model (or one joined to the table).
        positive: The favourable outcome.
        version: Only this version's rows (any role).

    Raises:
        InvalidInput: If the attribute, ``label`` or ``out.prediction`` column is missing.
    """
    from steward.monitoring.performance import PREDICTION_COLUMN, _classes, labelled_rows

    if not isinstance(labelled, pa.Table):
        raise InvalidInput(
            f"labelled must be an Arrow table, not {type(labelled).__name__}", {"field": "labelled"}
        )
    column = next((c for c in (f"in.{attribute}", str(attribute)) if c in labelled.column_names), None)
    if column is None:
        raise InvalidInput(
            f"no column in.{attribute} (or {attribute}) holds the sensitive attribute",
            {"field": "attribute", "column": f"in.{attribute}"},
        )
    if PREDICTION_COLUMN not in labelled.column_names and labelled.num_rows:
        raise InvalidInput(
            f"the labelled table has no {PREDICTION_COLUMN} column",
            {"field": "labelled", "column": PREDICTION_COLUMN},
        )
    rows = labelled_rows(labelled, version=version)
    values = labelled.column(column).take(pa.array(rows.index, pa.int64())).to_pylist()
    groups = np.asarray(values, dtype=object).reshape(-1)
    try:
        setup = _classes(rows)
    except InvalidInput:
        raise InvalidInput(
            "fairness needs class labels and predictions; these are fractional numbers (a regression)",
            {"field": "labelled", "column": "label"},
        ) from None
    notes = [*setup.notes]
    if setup.predictions is None:
        report = fairness([], [], [], attribute=attribute, positive=positive)
    else:
        has = setup.has_prediction
        if not has.all():
            notes.append(f"{int((~has).sum())} labelled row(s) without a prediction left out")
        labels, predicted = setup.labels[has], setup.predictions[has]
        report = fairness(labels, predicted, groups[has], attribute=attribute, positive=positive)
    notes.extend(report.notes)
    return dataclasses.replace(report, notes=tuple(notes))


# -- helpers ------------------------------------------------------------------------------------------


def _array(values: Any, field: str) -> Array:
    if isinstance(values, str | bytes) or values is None:
        raise InvalidInput(f"{field} must be a sequence, not {type(values).__name__}", {"field": field})
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_pylist()
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInput(f"{field} must be one-dimensional, not of shape {array.shape}", {"field": field})
    return array if array.dtype.kind in "biuf" else np.asarray(values, dtype=object).reshape(-1)


def _present(values: Array) -> Array:
    if values.dtype.kind == "f":
        return np.asarray(np.isfinite(values))
    if values.dtype == object:
        return np.asarray([not _missing(v) for v in values.tolist()], bool)
    return np.ones(len(values), bool)


def _missing(value: Any) -> bool:
    """None, NaN, or a value that is not equal to itself in a way that cannot be told (pandas' NA)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True


def _equals(values: Array, target: Any) -> Array:
    """Elementwise ``values == target`` as Python compares them (``True == 1``, ``"1" != 1``)."""
    if values.dtype == object:
        return np.asarray([v == target for v in values.tolist()], bool)
    if isinstance(target, str):
        return np.zeros(len(values), bool)
    return np.asarray(values == target, bool)


def _equals_each(left: Array, right: Array) -> Array:
    if left.dtype != object and right.dtype != object:
        return np.asarray(left == right, bool)
    return np.asarray([a == b for a, b in zip(left.tolist(), right.tolist(), strict=True)], bool)


def _rate(hits: Array, among: Array) -> float | None:
    total = int(among.sum())
    return float((hits & among).sum()) / total if total else None


def _gap(
    groups: dict[str, dict[str, float | None]], rate: str, lacking: str, notes: list[str]
) -> float | None:
    values = {name: m[rate] for name, m in groups.items()}
    skipped = [name for name, value in values.items() if value is None]
    if skipped:
        notes.append(f"{rate} undefined for {', '.join(skipped)} (no {lacking}): skipped for its gap")
    defined = [float(v) for v in values.values() if v is not None and math.isfinite(v)]
    return max(defined) - min(defined) if defined else None
