"""Model performance on late labels: the metrics of the labelled predictions, per time window.

:func:`performance` takes what :func:`steward.serving.labels.labelled_predictions` returns (the logged
predictions that have a label, joined by request id and row) and computes, with ``sklearn.metrics``:

- for a classifier: ``accuracy``, ``precision``, ``recall``, ``f1`` and, when the model logged class
  scores, ``roc_auc`` and ``log_loss``;
- for a regressor: ``rmse``, ``mae`` and ``mape``.

**Which rows.** Rows answered with an error status (400 and above) are left out, and so are shadow rows
(``role`` ``shadow``: their answers were never returned) unless ``version`` names the version to judge,
which keeps that version's rows only, in any role. Rows outside ``[start, end)`` are ignored.

**The task.** An explicit ``task`` wins. Otherwise a model that logged class scores is a classifier;
so are text or boolean labels; numeric labels are a classifier's when every label is a whole number,
there are at most :data:`MAX_INFERRED_CLASSES` distinct ones and the predictions are not fractional;
anything else (fractional labels or predictions, many distinct values) is a regression. With no rows
at all the task is ``regression`` if the prediction column holds floats, else ``classification``.

**Classes.** A label and a prediction are compared as numbers when both are numbers or booleans, else
as text. Precision, recall and F1 are binary when the span has at most two classes: the positive class
is 1 (``True``) when the classes are 0 and 1, else the larger class (``"yes"`` over ``"no"``). With more
classes they are macro averages over the classes present in the window, a class never predicted
counting 0 precision (scikit-learn's default, without its warning).

**Scores.** The prediction log keeps a 2-D answer such as ``predict_proba`` as the list column
``out.scores`` and puts the index of the highest score in ``out.prediction``. Score column ``i`` is taken
to be the ``i``-th class in sorted order (scikit-learn's ``classes_``): class ``i`` itself when the labels
are whole numbers in ``[0, k)``, else the ``i``-th of the span's ``k`` distinct labels (when their count
is not ``k`` the columns cannot be matched to classes, and the report says so). A list column
``out.probabilities`` is read the same way; a binary model may instead log the positive class' score
as a 1-D ``out.probability`` or ``out.score``. ROC AUC takes any scores (one-vs-rest, macro, for more
than two classes, which needs rows summing to 1); log loss only probabilities: values in [0, 1] with
rows summing to 1 within :data:`PROBABILITY_TOLERANCE` (rounding is removed by renormalising).

**Undefined numbers** are None with a note on the window: a window with no labelled rows, ROC AUC with
one class among the labels, precision with no positive prediction, recall with no positive label, MAPE
with a label of 0 (it divides by the label). The report's ``overall`` holds the same metrics over the
whole span; a version's registered metrics are copied into ``registered`` for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from steward.core.time import from_ms, to_ms
from steward.errors import InvalidInput
from steward.monitoring.models import PerformanceReport, PerformanceWindow

if TYPE_CHECKING:
    from steward.config import Settings
    from steward.serving.log_store import LogStore
    from steward.store.platform import Platform

Array = np.ndarray[Any, Any]

CLASSIFICATION: Final = "classification"
REGRESSION: Final = "regression"
TASKS: Final = (CLASSIFICATION, REGRESSION)
CLASSIFICATION_METRICS: Final = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS: Final = ("rmse", "mae", "mape")
MAX_INFERRED_CLASSES: Final = 20
"""Numeric labels with more distinct values than this are taken for a regression's."""
MAX_WINDOWS: Final = 10_000
"""The most windows one report holds."""
PROBABILITY_TOLERANCE: Final = 1e-5
"""How far a row of class scores may sum from 1 and still be read as probabilities (float32 rounding)."""
SCORE_COLUMNS: Final = ("out.scores", "out.probabilities")
"""List columns read as class scores, first found wins."""
BINARY_SCORE_COLUMNS: Final = ("out.probability", "out.score")
"""1-D columns read as the positive class' score of a binary classifier."""
PREDICTION_COLUMN: Final = "out.prediction"
_REGISTERED_PREFIXES: Final = ("test_", "test.", "test/", "val_", "val.", "val/", "validation_", "valid_")


# -- the rows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledRows:
    """The usable rows of a labelled table, as arrays of one length.

    Attributes:
        at_ms: When each request arrived (Unix ms).
        labels: The labels (numbers, booleans, or text as an object array).
        predictions: ``out.prediction`` (None when the table has none).
        has_prediction: Which rows have a prediction.
        scores: Class scores, ``(rows, classes)`` from a list column or ``(rows,)`` from a binary score
            column; None when the model logged none.
        has_scores: Which rows have scores (of the common width).
        index: Each row's position in the table it was read from.
        left_out: Per reason, the arrival times of rows left out (error status, shadow answers).
    """

    at_ms: Array
    labels: Array
    predictions: Array | None
    has_prediction: Array
    scores: Array | None
    has_scores: Array
    index: Array
    left_out: Mapping[str, Array] = field(default_factory=dict)

    def take(self, mask: Array) -> LabelledRows:
        """The rows where ``mask`` holds (``left_out`` kept as is)."""
        return LabelledRows(
            self.at_ms[mask],
            self.labels[mask],
            None if self.predictions is None else self.predictions[mask],
            self.has_prediction[mask],
            None if self.scores is None else self.scores[mask],
            self.has_scores[mask],
            self.index[mask],
            self.left_out,
        )


def labelled_rows(labelled: pa.Table, *, version: str | None = None) -> LabelledRows:
    """Read a labelled table (see :func:`performance`) into arrays, leaving out error and shadow rows.

    Args:
        labelled: Rows with ``at`` and ``label`` and optionally ``status``, ``role``, ``version``,
            ``out.prediction`` and score columns.
        version: Keep only this version's rows (any role); None keeps every non-shadow row.

    Raises:
        InvalidInput: If ``at`` or ``label`` is missing, or ``version`` names no column to filter on.
    """
    if not isinstance(labelled, pa.Table):
        raise InvalidInput(
            f"labelled must be an Arrow table, not {type(labelled).__name__}", {"field": "labelled"}
        )
    for name in ("at", "label"):
        if name not in labelled.column_names:
            raise InvalidInput(
                f"the labelled table has no {name!r} column (pass what labelled_predictions returns)",
                {"field": "labelled", "column": name},
            )
    at = labelled.column("at")
    if not (pa.types.is_timestamp(at.type) or pa.types.is_integer(at.type)):
        raise InvalidInput(
            f"column 'at' must hold times, not {at.type}", {"field": "labelled", "column": "at"}
        )
    at_ms = _at_ms(at)
    keep = _valid(labelled.column("label")) & (at_ms >= 0)
    left_out: dict[str, Array] = {}
    if "status" in labelled.column_names:
        status, known = _values(labelled.column("status"))
        numeric = status.dtype.kind in "iuf"
        failed = known & (status.astype(np.float64) >= 400) if numeric else np.zeros(len(known), bool)
        left_out["row(s) answered with an error status (>= 400) left out"] = at_ms[failed & keep]
        keep &= ~failed
    if version is not None:
        if "version" not in labelled.column_names:
            raise InvalidInput("the labelled table has no 'version' column", {"field": "version"})
        keep &= _text(labelled.column("version")) == str(version)
    elif "role" in labelled.column_names:
        shadow = _text(labelled.column("role")) == "shadow"
        left_out["shadow answer(s) left out (pass version= to judge a shadow)"] = at_ms[shadow & keep]
        keep &= ~shadow
    labels, _ = _values(labelled.column("label"))
    predictions: Array | None = None
    has_prediction = np.zeros(labelled.num_rows, bool)
    if PREDICTION_COLUMN in labelled.column_names:
        predictions, has_prediction = _values(labelled.column(PREDICTION_COLUMN))
    scores, has_scores = _scores(labelled)
    index = np.arange(labelled.num_rows)
    rows = LabelledRows(at_ms, labels, predictions, has_prediction, scores, has_scores, index, left_out)
    return rows.take(keep)


def _at_ms(column: pa.ChunkedArray) -> Array:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return np.asarray(column.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)


def _valid(column: pa.ChunkedArray) -> Array:
    return np.asarray(column.is_valid().to_numpy(zero_copy_only=False), bool)


def _text(column: pa.ChunkedArray) -> Array:
    return np.asarray(column.cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False), dtype=object)


def _values(column: pa.ChunkedArray) -> tuple[Array, Array]:
    """A column's values as numpy (int64, float64, bool, or an object array of text) and its validity."""
    valid = _valid(column)
    kind = column.type
    if pa.types.is_boolean(kind):
        return np.asarray(column.fill_null(False).to_numpy(zero_copy_only=False), bool), valid
    if pa.types.is_integer(kind):
        return np.asarray(column.fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)), valid
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = np.asarray(column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False))
        valid &= np.isfinite(values)
        return np.where(valid, values, 0.0), valid
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return _text(column), valid
    # anything else (lists, structs): not a class or a number
    return np.full(len(column), None, object), np.zeros(len(column), bool)


def _scores(labelled: pa.Table) -> tuple[Array | None, Array]:
    """Class scores: a list column as ``(rows, k)`` (k the most common width), or a binary score column."""
    count = labelled.num_rows
    for name in SCORE_COLUMNS:
        if name not in labelled.column_names:
            continue
        column = labelled.column(name)
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            continue
        if not pa.types.is_floating(column.type.value_type) and not pa.types.is_integer(
            column.type.value_type
        ):
            continue
        lengths = np.asarray(
            pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False), np.int64
        )
        widths = lengths[lengths > 1]
        if not widths.size:
            return None, np.zeros(count, bool)
        width = int(np.bincount(widths).argmax())
        has = lengths == width
        matrix = np.full((count, width), np.nan)
        if has.any():
            kept = column.filter(pa.array(has))
            flat = pc.list_flatten(kept).cast(pa.float64()).fill_null(np.nan)
            matrix[has] = np.asarray(flat.to_numpy(zero_copy_only=False)).reshape(-1, width)
        has &= np.isfinite(matrix).all(axis=1)
        return matrix, has
    for name in BINARY_SCORE_COLUMNS:
        if name in labelled.column_names and pa.types.is_floating(labelled.column(name).type):
            values, has = _values(labelled.column(name))
            return values, has
    return None, np.zeros(count, bool)


# -- the task and the classes -------------------------------------------------------------------------


def _integral(values: Array) -> bool:
    if values.dtype.kind in "biu":
        return True
    if values.dtype.kind == "f":
        return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    return False


def infer_task(rows: LabelledRows) -> str:
    """The task the rows look like (see the module docstring for the rule)."""
    if rows.scores is not None and rows.has_scores.any():
        return CLASSIFICATION
    labels = rows.labels
    predictions = rows.predictions[rows.has_prediction] if rows.predictions is not None else None
    if not len(labels):
        floats = predictions is not None and predictions.dtype.kind == "f"
        return REGRESSION if floats else CLASSIFICATION
    if labels.dtype.kind in "bO" or _probability_predictions(labels, rows.predictions, rows.has_prediction):
        return CLASSIFICATION
    fractional = predictions is not None and predictions.dtype.kind == "f" and not _integral(predictions)
    if _integral(labels) and not fractional and len(np.unique(labels)) <= MAX_INFERRED_CLASSES:
        return CLASSIFICATION
    return REGRESSION


def _numeric(values: Array) -> bool:
    return values.dtype.kind in "biuf"


def _probability_predictions(labels: Array, predictions: Array | None, has: Array) -> bool:
    """Whether ``out.prediction`` holds a binary model's probabilities: labels 0 and 1 (or booleans),
    predictions fractional numbers in [0, 1]."""
    if predictions is None or predictions.dtype.kind != "f" or not _numeric(labels) or not has.any():
        return False
    shown = predictions[has]
    in_range = bool(shown.min() >= 0 and shown.max() <= 1)
    return in_range and not _integral(shown) and bool(np.isin(labels, [0, 1]).all())


def _harmonised(labels: Array, predictions: Array) -> tuple[Array, Array]:
    """Labels and predictions of one type: numbers when both are numbers or booleans, else text."""
    if _numeric(labels) and _numeric(predictions):
        if labels.dtype.kind == "b" and predictions.dtype.kind == "b":
            return labels, predictions
        if "f" in (labels.dtype.kind, predictions.dtype.kind):
            both = np.concatenate([labels, predictions]).astype(np.float64)
            if _integral(both):  # 1.0 and 1 are one class; sklearn wants whole classes as integers
                return labels.astype(np.int64), predictions.astype(np.int64)
            return labels.astype(np.float64), predictions.astype(np.float64)
        return labels.astype(np.int64), predictions.astype(np.int64)
    return _as_text(labels), _as_text(predictions)


def _as_text(values: Array) -> Array:
    if values.dtype == object:
        return values
    return np.asarray([str(v) for v in values.tolist()], dtype=object)


@dataclass(frozen=True)
class _Classes:
    """The span's classification setup: comparable labels and predictions, and the class scores.

    ``classes`` are sorted; with scores they are what each score column rates, in column order.
    """

    labels: Array
    predictions: Array | None
    has_prediction: Array
    scores: Array | None
    has_scores: Array
    classes: Array
    positive: Any
    binary: bool
    notes: tuple[str, ...] = ()


def _classes(rows: LabelledRows) -> _Classes:
    labels, predictions, has = rows.labels, rows.predictions, rows.has_prediction
    scores, has_scores = rows.scores, rows.has_scores
    notes: list[str] = []
    if labels.dtype.kind == "f" and _integral(labels):
        labels = labels.astype(np.int64)
    columns: Array | None = None  # the class of each score column
    if scores is None and _probability_predictions(labels, predictions, has) and predictions is not None:
        scores, has_scores = predictions, has
        predictions, labels = (predictions >= 0.5).astype(np.int64), labels.astype(np.int64)
        notes.append(f"{PREDICTION_COLUMN} holds probabilities of class 1: the predicted class is p >= 0.5")
    if scores is not None and scores.ndim == 2:
        width = scores.shape[1]
        distinct = np.unique(labels)
        if labels.dtype.kind in "biu" and (not len(labels) or (labels.min() >= 0 and labels.max() < width)):
            columns, labels = np.arange(width), labels.astype(np.int64)
        elif len(distinct) == width:
            columns = distinct
        else:
            notes.append(
                f"out.scores has {width} columns but the labels have {len(distinct)} distinct values: "
                "cannot tell which score is which class (roc_auc and log_loss left out)"
            )
            scores, has_scores = None, has_scores & False
        if predictions is not None and predictions.dtype.kind in "iu":  # the index of the highest score
            if columns is None:
                notes.append(f"{PREDICTION_COLUMN} holds score indexes that cannot be matched to the labels")
                predictions, has = None, has & False
            else:
                inside = has & (predictions >= 0) & (predictions < width)
                predictions, has = columns[np.where(inside, predictions, 0)], inside
    if predictions is not None:
        labels, predictions = _harmonised(labels, predictions)
        if columns is not None and columns.dtype != labels.dtype:
            columns = columns.astype(labels.dtype)
    if labels.dtype.kind == "f" and len(labels):
        raise InvalidInput(
            "task is classification but the labels or predictions are fractional numbers: pass "
            "task='regression'",
            {"field": "task"},
        )
    if columns is not None:
        classes = columns
    else:
        present = [labels] + ([predictions[has]] if predictions is not None else [])
        classes = (
            np.unique(np.concatenate(present)) if sum(len(p) for p in present) else np.array([], np.int64)
        )
    return _Classes(labels, predictions, has, scores, has_scores, classes, _positive(classes),
                    len(classes) <= 2, tuple(notes))  # fmt: skip


def _positive(classes: Array) -> Any:
    """1 (True) when the classes are 0 and 1 (or fewer), else the larger class."""
    if not len(classes) or (_numeric(classes) and bool(np.isin(classes, [0, 1]).all())):
        return True if classes.dtype.kind == "b" else 1
    last = classes[-1]
    return last.item() if isinstance(last, np.generic) else last


# -- metrics ------------------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def classification_metrics(setup: _Classes, mask: Array) -> tuple[dict[str, float | None], list[str]]:
    """The classification metrics of the rows in ``mask``, with notes for those left undefined."""
    from sklearn import metrics as skm

    found: dict[str, float | None] = dict.fromkeys(CLASSIFICATION_METRICS)
    notes: list[str] = []
    if setup.predictions is None:
        notes.append(f"no predictions ({PREDICTION_COLUMN}) to compare with the labels")
        return found, notes
    usable = mask & setup.has_prediction
    if not usable.any():
        notes.append("no labelled rows with a prediction")
        return found, notes
    y, p = setup.labels[usable], setup.predictions[usable]
    found["accuracy"] = float(skm.accuracy_score(y, p))
    if setup.binary:
        options: dict[str, Any] = {"average": "binary", "pos_label": setup.positive, "zero_division": np.nan}
        found["precision"] = _finite(skm.precision_score(y, p, **options))
        found["recall"] = _finite(skm.recall_score(y, p, **options))
        found["f1"] = _finite(skm.f1_score(y, p, **options))
        if found["precision"] is None:
            notes.append(f"precision undefined: no row predicted the positive class {setup.positive!r}")
        if found["recall"] is None:
            notes.append(f"recall undefined: no row labelled the positive class {setup.positive!r}")
        if found["f1"] is None:
            notes.append("f1 undefined: the positive class is neither predicted nor labelled")
    else:
        options = {"average": "macro", "zero_division": 0.0}
        found["precision"] = _finite(skm.precision_score(y, p, **options))
        found["recall"] = _finite(skm.recall_score(y, p, **options))
        found["f1"] = _finite(skm.f1_score(y, p, **options))
    found["roc_auc"], found["log_loss"] = _score_metrics(setup, mask, notes)
    return found, notes


def _score_metrics(setup: _Classes, mask: Array, notes: list[str]) -> tuple[float | None, float | None]:
    from sklearn import metrics as skm

    if setup.scores is None:
        if not any("out.scores has" in n for n in setup.notes):
            notes.append("roc_auc and log_loss need class scores (out.scores); the model logged none")
        return None, None
    usable = mask & setup.has_scores
    if not usable.any():
        notes.append("roc_auc and log_loss: no labelled row has class scores")
        return None, None
    if (mask & ~setup.has_scores).any():
        notes.append(f"roc_auc and log_loss from the {int(usable.sum())} labelled rows with class scores")
    y, scores, positive = setup.labels[usable], setup.scores[usable], setup.positive
    if scores.ndim == 1:  # the positive class' score of a binary model
        if not setup.binary:
            notes.append("roc_auc and log_loss: one score column cannot rate more than two classes")
            return None, None
        ranked: Array | None = scores
        classes: Array | None = setup.classes if len(setup.classes) == 2 else None
        if classes is None and _numeric(setup.classes):
            classes = np.array([False, True]) if setup.classes.dtype.kind == "b" else np.array([0, 1])
        matrix = np.column_stack([1 - scores, scores]) if classes is not None else None
    else:
        classes, matrix = setup.classes, scores
        hits = np.flatnonzero(classes == positive)
        ranked = scores[:, int(hits[0])] if setup.binary and hits.size else None
    present = set(np.unique(y).tolist())
    probabilities = _probabilities(matrix) if matrix is not None else None
    roc: float | None = None
    if len(present) < 2:
        notes.append("roc_auc undefined: one class only among the labels")
    elif setup.binary and ranked is not None:
        roc = _finite(skm.roc_auc_score(y == positive, ranked))
    elif classes is not None and present != set(classes.tolist()):
        missing = ", ".join(sorted(map(str, set(classes.tolist()) - present)))
        notes.append(f"roc_auc undefined: no label of class {missing} (one-vs-rest needs every class)")
    elif probabilities is None:
        notes.append("roc_auc undefined: more than two classes need scores summing to 1 per row")
    else:
        roc = _finite(skm.roc_auc_score(y, probabilities, multi_class="ovr", labels=classes, average="macro"))
    loss: float | None = None
    if probabilities is None or classes is None:
        notes.append("log_loss undefined: the scores are not probabilities (in [0, 1], rows summing to 1)")
    else:
        loss = _finite(skm.log_loss(y, probabilities, labels=classes))
    return roc, loss


def _probabilities(scores: Array) -> Array | None:
    if scores.min() < 0 or scores.max() > 1:
        return None
    sums = scores.sum(axis=1)
    if not np.all(np.abs(sums - 1) <= PROBABILITY_TOLERANCE):
        return None
    normalised: Array = scores / sums[:, None]
    return normalised


def regression_metrics(rows: LabelledRows, mask: Array) -> tuple[dict[str, float | None], list[str]]:
    """RMSE, MAE and MAPE of the rows in ``mask``, with notes for those left undefined."""
    from sklearn import metrics as skm

    found: dict[str, float | None] = dict.fromkeys(REGRESSION_METRICS)
    notes: list[str] = []
    if rows.predictions is None or not _numeric(rows.predictions):
        notes.append(f"no numeric predictions ({PREDICTION_COLUMN}) to compare with the labels")
        return found, notes
    usable = mask & rows.has_prediction
    if not usable.any():
        notes.append("no labelled rows with a prediction")
        return found, notes
    y = rows.labels[usable].astype(np.float64)
    p = rows.predictions[usable].astype(np.float64)
    found["rmse"] = _finite(skm.root_mean_squared_error(y, p))
    found["mae"] = _finite(skm.mean_absolute_error(y, p))
    zeros = int((y == 0).sum())
    if zeros:
        notes.append(f"mape undefined: {zeros} label(s) are 0 (it divides by the label)")
    else:
        found["mape"] = _finite(skm.mean_absolute_percentage_error(y, p))
    return found, notes


# -- the report ---------------------------------------------------------------------------------------


def performance(
    labelled: pa.Table,
    *,
    start: datetime,
    end: datetime,
    window_s: int,
    task: str | None = None,
    registered: Mapping[str, float] | None = None,
    unmatched_labels: int = 0,
    predictions_per_window: Mapping[datetime, int] | None = None,
    version: str | None = None,
) -> PerformanceReport:
    """The model's quality per window ``[start, start + window_s)``, … over ``[start, end)``.

    Args:
        labelled: What :func:`steward.serving.labels.labelled_predictions` returns (``at``,
            ``request_id``, ``row``, ``version``, ``role``, ``status``, ``in.*``, ``out.*``, ``label``,
            ``labelled_at``); only ``at`` and ``label`` are required.
        start: The first window's start (naive times are UTC).
        end: The span's end; the last window is cut short at it.
        window_s: Each window's length in seconds.
        task: ``classification`` or ``regression``; inferred when None (see the module docstring).
        registered: The version's metrics recorded at registration, copied into the report. A metric
            recorded as ``test_<name>`` or ``val_<name>`` (``test_roc_auc``) is also given as ``<name>``
            when ``<name>`` itself is absent, so it lines up with the window's metric.
        unmatched_labels: Labels that matched no prediction, copied into the report.
        predictions_per_window: Rows answered per window start (every answered row, labelled or not);
            when None, each window's ``predictions`` is its labelled row count.
        version: Judge only this version's rows (any role); None: every version's, shadows left out.

    Returns:
        The report: one :class:`PerformanceWindow` per window, oldest first, and the whole span's
        metrics in ``overall``. Every metric is a float or None (with a note on the window).

    Raises:
        InvalidInput: For a bad window or task, a table without ``at`` or ``label``, or an explicit
            ``classification`` of fractional labels (``regression`` of text labels).
    """
    low, high, step = _span(start, end, window_s)
    if task is not None and task not in TASKS:
        raise InvalidInput(f"task must be one of {', '.join(TASKS)}, not {task!r}", {"field": "task"})
    if isinstance(unmatched_labels, bool) or not isinstance(unmatched_labels, int) or unmatched_labels < 0:
        raise InvalidInput("unmatched_labels must be a non-negative integer", {"field": "unmatched_labels"})
    rows = labelled_rows(labelled, version=version)
    rows = rows.take((rows.at_ms >= low) & (rows.at_ms < high))
    chosen = task or infer_task(rows)
    compute = _metrics_of(rows, chosen)
    answered = _answered(predictions_per_window)
    windows = []
    for first in range(low, high, step):
        last = min(first + step, high)
        mask = (rows.at_ms >= first) & (rows.at_ms < last)
        count = int(mask.sum())
        if count:
            metrics, notes = compute(mask)
        else:
            metrics, notes = dict.fromkeys(_names(chosen)), ["no labelled rows in the window"]
        notes.extend(_left_out_notes(rows.left_out, first, last))
        windows.append(
            PerformanceWindow(
                start=from_ms(first),
                end=from_ms(last),
                predictions=answered.get(first, 0) if answered is not None else count,
                labelled=count,
                metrics=metrics,
                notes=tuple(notes),
            )
        )
    overall = compute(np.ones(len(rows.at_ms), bool))[0] if len(rows.at_ms) else dict.fromkeys(_names(chosen))
    return PerformanceReport(
        task=chosen,
        windows=tuple(windows),
        overall=overall,
        registered=registered_metrics(registered),
        unmatched_labels=unmatched_labels,
    )


def _names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == CLASSIFICATION else REGRESSION_METRICS


def _metrics_of(
    rows: LabelledRows, task: str
) -> Callable[[Array], tuple[dict[str, float | None], list[str]]]:
    """The function computing the task's metrics of a mask of ``rows`` (classes fixed over the span)."""
    if task == REGRESSION:
        if len(rows.labels) and not _numeric(rows.labels):
            raise InvalidInput("task is regression but the labels are text", {"field": "task"})
        return lambda mask: regression_metrics(rows, mask)
    setup = _classes(rows)

    def compute(mask: Array) -> tuple[dict[str, float | None], list[str]]:
        metrics, notes = classification_metrics(setup, mask)
        return metrics, [*setup.notes, *notes]

    return compute


def _span(start: datetime, end: datetime, window_s: int) -> tuple[int, int, int]:
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime):
            raise InvalidInput(f"{name} must be a datetime, not {type(value).__name__}", {"field": name})
    if isinstance(window_s, bool) or not isinstance(window_s, int | float) or not window_s >= 0.001:
        raise InvalidInput(
            f"window_s must be a positive number of seconds, not {window_s!r}", {"field": "window_s"}
        )
    low, high, step = to_ms(start), to_ms(end), round(window_s * 1000)
    if high <= low:
        raise InvalidInput("end must be after start", {"field": "end"})
    if math.ceil((high - low) / step) > MAX_WINDOWS:
        raise InvalidInput(
            f"{math.ceil((high - low) / step)} windows: at most {MAX_WINDOWS}, use a longer window_s",
            {"field": "window_s"},
        )
    return low, high, step


def _answered(counts: Mapping[datetime, int] | None) -> dict[int, int] | None:
    if counts is None:
        return None
    found: dict[int, int] = {}
    for key, value in counts.items():
        if not isinstance(key, datetime):
            raise InvalidInput(
                "predictions_per_window is keyed by window start times", {"field": "predictions_per_window"}
            )
        found[to_ms(key)] = found.get(to_ms(key), 0) + int(value)
    return found


def _left_out_notes(left_out: Mapping[str, Array], first: int, last: int) -> list[str]:
    notes = []
    for reason, times in left_out.items():
        count = int(((times >= first) & (times < last)).sum())
        if count:
            notes.append(f"{count} {reason}")
    return notes


def registered_metrics(registered: Mapping[str, float] | None) -> dict[str, float]:
    """The finite numeric entries of ``registered``, plus ``<name>`` for a ``test_<name>`` or
    ``val_<name>`` entry (test first) of a metric this module computes when ``<name>`` is absent."""
    found: dict[str, float] = {}
    for key, value in (registered or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        found[str(key)] = float(value)
    for name in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS):
        if name in found:
            continue
        spellings = (name, "auc") if name == "roc_auc" else (name,)
        aliases = [f"{prefix}{word}" for prefix in _REGISTERED_PREFIXES for word in spellings]
        if name == "roc_auc":
            aliases.append("auc")
        alias = next((a for a in aliases if a in found), None)
        if alias is not None:
            found[name] = found[alias]
    return found


# -- from the log -------------------------------------------------------------------------------------


def performance_for_endpoint(
    source: Settings | Platform | LogStore,
    endpoint: str,
    *,
    start: datetime,
    end: datetime,
    window_s: int,
    task: str | None = None,
    registered: Mapping[str, float] | None = None,
    project: str | None = None,
    version: str | None = None,
) -> PerformanceReport:
    """:func:`performance` of an endpoint's labelled predictions in ``[start, end)``, with each window's
    answered rows counted from the prediction log and the unmatched labels of the join.

    Args:
        source: The platform (its acting project by default), its settings, or a ``LogStore``.
        endpoint: The endpoint.
        start: The first window's start.
        end: The span's end.
        window_s: Each window's length in seconds.
        task: ``classification`` or ``regression`` (inferred when None).
        registered: The version's registered metrics, for comparison.
        project: The project (default: the platform's acting project, or the settings' project).
        version: Judge only this version (see :func:`performance`).

    Raises:
        InvalidInput: For a bad name, window or task, or log files that cannot be read together.
        ServiceUnavailable: If the storage cannot be read.
    """
    from steward.serving.labels import labelled_predictions, unmatched_labels

    low, high, step = _span(start, end, window_s)
    table = labelled_predictions(source, endpoint, start, end, project=project)
    return performance(
        table,
        start=start,
        end=end,
        window_s=window_s,
        task=task,
        registered=registered,
        unmatched_labels=unmatched_labels(table),
        predictions_per_window=_answered_per_window(source, endpoint, low, high, step, project, version),
        version=version,
    )


def _answered_per_window(
    source: Settings | Platform | LogStore,
    endpoint: str,
    low: int,
    high: int,
    step: int,
    project: str | None,
    version: str | None,
) -> dict[datetime, int]:
    """Rows answered (status below 400) per window start, counted by DuckDB over the log's files."""
    from steward.core.names import validate_name
    from steward.serving.log_store import LogStore, prediction_view

    store, project = LogStore.of(source, project)
    validate_name(endpoint, "endpoint")
    which = "version = ?" if version is not None else "role IS DISTINCT FROM 'shadow'"
    with store.connect() as con:
        if not prediction_view(con, store, project, endpoint, low, high):
            return {}
        table = store.query(
            con,
            f'SELECT (epoch_ms("at") - {low}) // {step} AS w, count(*) AS n FROM predictions '
            f"WHERE (status IS NULL OR status < 400) AND {which} GROUP BY w",
            [version] if version is not None else None,
        )
    return {from_ms(low + int(r["w"]) * step): int(r["n"]) for r in table.to_pylist()}
