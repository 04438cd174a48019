"""The monitoring domain's types: mergeable column summaries, drift, performance, fairness and
operations reports, monitors with their rules, alerts and their deliveries, and the ``Notifier``
protocol that webhook and e-mail channels implement.

Every report type has ``to_json``/``from_json`` (the JSON form the API, the reports and the database
hold). A number that cannot be computed (an empty window, a constant column) is None with a ``note``
saying why — never a NaN presented as a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

ColumnKind = Literal["numeric", "categorical"]
OTHER = "__other__"
"""The category count bucket for values the reference never had (or beyond its top-k)."""
NULL = "__null__"


# -- summaries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSummary:
    """One column of one table or window, summarised so that summaries of the same reference merge.

    A numeric column's values are counted in the reference's bins (``edges``: ``len(edges) - 1`` bins
    between the reference's quantiles, plus one below the first edge and one above the last, so
    ``len(counts) == len(edges) + 1``); a categorical column's per value (``categories``, the
    reference's values, then :data:`OTHER`). Two summaries with the same edges or categories merge by
    adding counts; that is what lets a 30-day report sum 30 daily windows instead of rescanning them.

    Attributes:
        name: The column.
        kind: ``numeric`` or ``categorical``.
        count: Non-null values.
        nulls: Null (and NaN) values.
        total: Sum of the values (numeric).
        total_sq: Sum of their squares (numeric).
        minimum: Smallest value (numeric; None when count is 0).
        maximum: Largest value (numeric).
        edges: The reference's bin edges (numeric).
        categories: The reference's categories, in order (categorical).
        counts: Values per bin or per category (the last category count is :data:`OTHER`).
    """

    name: str
    kind: ColumnKind
    count: int
    nulls: int
    counts: tuple[int, ...]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float | None = None
    maximum: float | None = None

    def to_json(self, *, compact: bool = False) -> dict[str, Any]:
        """Return a JSON-ready dict; ``compact`` leaves out the edges and categories (a window's are its
        reference's: ``from_json(…, like=reference)`` puts them back), which makes a stored window a
        fraction of the size."""
        data = {
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "counts": list(self.counts),
            "total": self.total,
            "total_sq": self.total_sq,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }
        if not compact:
            data["edges"], data["categories"] = list(self.edges), list(self.categories)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], like: ColumnSummary | None = None) -> ColumnSummary:
        """Build from the dict ``to_json`` returns; a compact one takes its edges and categories from
        ``like`` (the reference's column)."""
        edges = data.get("edges")
        categories = data.get("categories")
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            counts=tuple(data["counts"]),
            edges=tuple(edges) if edges is not None else like.edges if like is not None else (),
            categories=(
                tuple(categories) if categories is not None else like.categories if like is not None else ()
            ),
            total=float(data.get("total", 0.0)),
            total_sq=float(data.get("total_sq", 0.0)),
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
        )


@dataclass(frozen=True)
class TableSummary:
    """Every column of a table or window, plus its row count and the time span it covers."""

    rows: int
    columns: Mapping[str, ColumnSummary]
    start: datetime | None = None
    end: datetime | None = None

    def to_json(self, *, compact: bool = False) -> dict[str, Any]:
        """Return a JSON-ready dict (``compact``: without each column's edges and categories, for a window
        stored next to its reference)."""
        return {
            "rows": self.rows,
            "columns": {k: v.to_json(compact=compact) for k, v in self.columns.items()},
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], like: TableSummary | None = None) -> TableSummary:
        """Build from the dict ``to_json`` returns; a compact one takes each column's edges and categories
        from ``like`` (the reference it was counted against)."""
        known = like.columns if like is not None else {}
        return cls(
            rows=int(data["rows"]),
            columns={k: ColumnSummary.from_json(v, known.get(k)) for k, v in data["columns"].items()},
            start=datetime.fromisoformat(data["start"]) if data.get("start") else None,
            end=datetime.fromisoformat(data["end"]) if data.get("end") else None,
        )


# -- drift --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    """One column's drift between a reference and a current window.

    Attributes:
        column: The column.
        kind: ``numeric`` or ``categorical``.
        test: The test that decides (``ks``, ``wasserstein``, ``psi``, ``jensenshannon``, ``chisquare``).
        statistic: Its value (a p-value test's statistic, or the distance), None when it cannot be
            computed (see ``note``).
        p_value: For ``ks`` and ``chisquare``; None for distances.
        threshold: A p-value below, or a distance above, this is drift.
        drifted: The verdict; False when nothing could be computed.
        scores: Every measure computed for the column (``ks``, ``ks_p_value``, ``psi``, ``wasserstein``,
            ``jensenshannon``, ``chisquare``, ``chisquare_p_value`` as they apply), None where undefined.
        reference_count: Non-null reference values.
        current_count: Non-null current values.
        note: Why a figure is missing or the verdict is what it is (empty window, all null, constant).
    """

    column: str
    kind: ColumnKind
    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    scores: Mapping[str, float | None]
    reference_count: int
    current_count: int
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "column": self.column,
            "kind": self.kind,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "scores": dict(self.scores),
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureDrift:
        """Build from the dict ``to_json`` returns."""
        return cls(
            column=str(data["column"]),
            kind=data["kind"],
            test=str(data["test"]),
            statistic=data.get("statistic"),
            p_value=data.get("p_value"),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
            scores=dict(data.get("scores", {})),
            reference_count=int(data["reference_count"]),
            current_count=int(data["current_count"]),
            note=str(data.get("note", "")),
        )


@dataclass(frozen=True)
class DriftOptions:
    """How drift is judged; every field has a documented default.

    Attributes:
        tests: Per column, the test to use instead of the default by type and size.
        thresholds: Per test (or per column), the threshold instead of the default.
        share: The dataset drifts when at least this share of its columns drift.
        columns: Only these columns (all shared columns by default).
        multivariate: Train a domain classifier (reference vs current) and report its ROC AUC.
        multivariate_rows: Rows sampled from each side for it.
    """

    tests: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    share: float = 0.5
    columns: Sequence[str] | None = None
    multivariate: bool = False
    multivariate_rows: int = 20_000


@dataclass(frozen=True)
class DriftReport:
    """Drift of every compared column, the dataset-level verdict, prediction drift and a multivariate
    check.

    Attributes:
        features: One entry per input column, by column name.
        drift_share: Drifted columns / compared columns (None when none could be compared).
        dataset_drift: ``drift_share >= share``.
        share: The share threshold used.
        prediction: The drift of the model's output column(s), when compared.
        multivariate: ``{"roc_auc", "threshold", "drifted", "rows"}`` of the domain classifier, if run.
        reference_rows: Rows in the reference.
        current_rows: Rows in the current window.
        notes: Whole-report remarks (columns only on one side, an empty window …).
    """

    features: tuple[FeatureDrift, ...]
    drift_share: float | None
    dataset_drift: bool
    share: float
    reference_rows: int
    current_rows: int
    prediction: tuple[FeatureDrift, ...] = ()
    multivariate: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()

    @property
    def drifted_columns(self) -> list[str]:
        """The input columns judged drifted."""
        return [f.column for f in self.features if f.drifted]

    def feature(self, column: str) -> FeatureDrift | None:
        """The entry of ``column`` (inputs, then outputs), or None."""
        return next((f for f in (*self.features, *self.prediction) if f.column == column), None)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "features": [f.to_json() for f in self.features],
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "share": self.share,
            "drifted_columns": self.drifted_columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "prediction": [f.to_json() for f in self.prediction],
            "multivariate": dict(self.multivariate) if self.multivariate is not None else None,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReport:
        """Build from the dict ``to_json`` returns."""
        multivariate = data.get("multivariate")
        return cls(
            features=tuple(FeatureDrift.from_json(f) for f in data["features"]),
            drift_share=data.get("drift_share"),
            dataset_drift=bool(data["dataset_drift"]),
            share=float(data["share"]),
            reference_rows=int(data["reference_rows"]),
            current_rows=int(data["current_rows"]),
            prediction=tuple(FeatureDrift.from_json(f) for f in data.get("prediction", ())),
            multivariate=dict(multivariate) if multivariate is not None else None,
            notes=tuple(data.get("notes", ())),
        )


# -- performance, fairness, operations ------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceWindow:
    """Model quality over one time window of labelled predictions.

    Attributes:
        start: The window's start (inclusive).
        end: Its end (exclusive).
        predictions: Rows answered in the window.
        labelled: Of those, rows with a label.
        metrics: ``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc``, ``log_loss`` (classifiers)
            or ``rmse``, ``mae``, ``mape`` (regressors); None where undefined (one class only …).
        notes: Why a metric is missing.
    """

    start: datetime
    end: datetime
    predictions: int
    labelled: int
    metrics: Mapping[str, float | None]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "predictions": self.predictions,
            "labelled": self.labelled,
            "metrics": dict(self.metrics),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PerformanceWindow:
        """Build from the dict ``to_json`` returns."""
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            predictions=int(data["predictions"]),
            labelled=int(data["labelled"]),
            metrics=dict(data["metrics"]),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class PerformanceReport:
    """Model quality per window on late labels, against the metrics recorded at registration.

    Attributes:
        task: ``classification`` or ``regression``.
        windows: One per window, oldest first.
        overall: The metrics over the whole span.
        registered: The served version's metrics as recorded at registration (same keys where known).
        unmatched_labels: Labels whose request id matched no prediction in the span.
    """

    task: str
    windows: tuple[PerformanceWindow, ...]
    overall: Mapping[str, float | None]
    registered: Mapping[str, float]
    unmatched_labels: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "task": self.task,
            "windows": [w.to_json() for w in self.windows],
            "overall": dict(self.overall),
            "registered": dict(self.registered),
            "unmatched_labels": self.unmatched_labels,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PerformanceReport:
        """Build from the dict ``to_json`` returns."""
        return cls(
            task=str(data["task"]),
            windows=tuple(PerformanceWindow.from_json(w) for w in data["windows"]),
            overall=dict(data["overall"]),
            registered=dict(data.get("registered", {})),
            unmatched_labels=int(data.get("unmatched_labels", 0)),
        )


@dataclass(frozen=True)
class FairnessReport:
    """Per-group metrics over a sensitive attribute, and the gaps between groups.

    Attributes:
        attribute: The sensitive column.
        groups: ``{group: {"count", "selection_rate", "true_positive_rate", "false_positive_rate",
            "accuracy"}}`` (None where a group has no positives or negatives).
        demographic_parity_difference: Largest minus smallest selection rate.
        demographic_parity_ratio: Smallest over largest selection rate.
        equalized_odds_difference: The larger of the TPR gap and the FPR gap.
        notes: Why a figure is missing.
    """

    attribute: str
    groups: Mapping[str, Mapping[str, float | None]]
    demographic_parity_difference: float | None
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None
    notes: tuple[str, ...] = ()

    def as_facts(self) -> dict[str, float]:
        """The figures as the policy gate's ``fairness.*`` facts (defined ones only)."""
        figures = {
            "demographic_parity_difference": self.demographic_parity_difference,
            "demographic_parity_ratio": self.demographic_parity_ratio,
            "equalized_odds_difference": self.equalized_odds_difference,
        }
        return {k: v for k, v in figures.items() if v is not None}

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "attribute": self.attribute,
            "groups": {k: dict(v) for k, v in self.groups.items()},
            "demographic_parity_difference": self.demographic_parity_difference,
            "demographic_parity_ratio": self.demographic_parity_ratio,
            "equalized_odds_difference": self.equalized_odds_difference,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FairnessReport:
        """Build from the dict ``to_json`` returns."""
        return cls(
            attribute=str(data["attribute"]),
            groups={k: dict(v) for k, v in data["groups"].items()},
            demographic_parity_difference=data.get("demographic_parity_difference"),
            demographic_parity_ratio=data.get("demographic_parity_ratio"),
            equalized_odds_difference=data.get("equalized_odds_difference"),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class OpsReport:
    """Latency, errors and throughput per model version over a span.

    Attributes:
        start: The span's start.
        end: Its end.
        versions: ``{version: {"requests", "errors", "error_rate", "throughput_rps", "p50_latency_ms",
            "p95_latency_ms", "p99_latency_ms"}}`` (None where a version answered nothing).
    """

    start: datetime
    end: datetime
    versions: Mapping[str, Mapping[str, float | None]]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "versions": {k: dict(v) for k, v in self.versions.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpsReport:
        """Build from the dict ``to_json`` returns."""
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            versions={k: dict(v) for k, v in data["versions"].items()},
        )


# -- monitors, rules, alerts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One alert rule, parsed from text such as ``psi(income) > 0.2`` or ``accuracy < 0.85 for 3 windows``.

    Attributes:
        text: The rule as written.
        metric: ``drift_share``, ``psi``, ``ks``, ``wasserstein``, ``jensenshannon``, ``drifted``,
            ``accuracy`` … (a performance metric), ``p99_latency_ms``, ``p95_latency_ms``, ``error_rate``,
            ``throughput_rps``, ``demographic_parity_difference`` …
        argument: The column of a per-feature metric (``psi(income)``), else None.
        op: ``>``, ``>=``, ``<``, ``<=``.
        threshold: The bound (``1%`` is 0.01).
        windows: Fire only after this many consecutive windows break it (``for 3 windows``).
    """

    text: str
    metric: str
    op: str
    threshold: float
    argument: str | None = None
    windows: int = 1


@dataclass(frozen=True)
class Channel:
    """Where a monitor's alerts go: a webhook (Slack-compatible JSON) or e-mail (SMTP).

    Attributes:
        kind: ``webhook`` or ``email``.
        target: The webhook URL, or the recipients (comma-separated addresses).
        options: Per kind: ``headers`` (webhook); ``host``, ``port``, ``sender``, ``starttls``,
            ``username`` (email; the password comes from ``STEWARD_SMTP_PASSWORD``, never stored).
    """

    kind: str
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "target": self.target, "options": dict(self.options)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Channel:
        """Build from the dict ``to_json`` returns."""
        return cls(str(data["kind"]), str(data["target"]), dict(data.get("options", {})))


@dataclass(frozen=True)
class Action:
    """What a firing alert does besides notifying: start a pipeline (retrain) or roll the endpoint back.

    Attributes:
        kind: ``retrain`` (``target`` names a pipeline as ``module:attribute``, run with ``params``) or
            ``rollback`` (the monitor's endpoint to its previous version at once).
        target: The pipeline's import path, for ``retrain``.
        params: The pipeline's parameters.
    """

    kind: str
    target: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "target": self.target, "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Action:
        """Build from the dict ``to_json`` returns."""
        return cls(str(data["kind"]), str(data.get("target", "")), dict(data.get("params", {})))


@dataclass(frozen=True)
class Monitor:
    """A check of one endpoint, run on a schedule.

    Attributes:
        name: Unique in the project.
        endpoint: The endpoint whose prediction log and serving stats it reads.
        window_s: The current window's length, in seconds (``--window 24h``).
        schedule: A cron expression (``*/15 * * * *``) or an interval in seconds (``"900"``).
        rules: The rules, as text (parsed by ``steward.monitoring.rules``).
        reference: ``{"dataset": name, "version": n}`` or ``{"window_start", "window_end"}`` of the log;
            the served version's training dataset by default.
        channels: Where alerts are delivered.
        actions: What a firing alert does.
        cooldown_s: A rule that fired stays quiet this long (repeats are counted on the open alert).
        enabled: Whether the scheduler runs it.
    """

    id: str
    name: str
    endpoint: str
    window_s: int
    schedule: str
    rules: tuple[str, ...]
    reference: Mapping[str, Any] | None
    channels: tuple[Channel, ...]
    actions: tuple[Action, ...]
    cooldown_s: int
    enabled: bool
    created_at: datetime
    created_by: str
    last_run_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "window_s": self.window_s,
            "schedule": self.schedule,
            "rules": list(self.rules),
            "reference": dict(self.reference) if self.reference is not None else None,
            "channels": [c.to_json() for c in self.channels],
            "actions": [a.to_json() for a in self.actions],
            "cooldown_s": self.cooldown_s,
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Monitor:
        """Build from the dict ``to_json`` returns."""
        reference = data.get("reference")
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            endpoint=str(data["endpoint"]),
            window_s=int(data["window_s"]),
            schedule=str(data["schedule"]),
            rules=tuple(data["rules"]),
            reference=dict(reference) if reference is not None else None,
            channels=tuple(Channel.from_json(c) for c in data.get("channels", ())),
            actions=tuple(Action.from_json(a) for a in data.get("actions", ())),
            cooldown_s=int(data["cooldown_s"]),
            enabled=bool(data["enabled"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=str(data["created_by"]),
            last_run_at=datetime.fromisoformat(data["last_run_at"]) if data.get("last_run_at") else None,
        )


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver an alert to one channel."""

    channel: str
    at: datetime
    ok: bool
    attempts: int
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"channel": self.channel, "at": self.at.isoformat(), "ok": self.ok,
                "attempts": self.attempts, "error": self.error}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delivery:
        """Build from the dict ``to_json`` returns."""
        return cls(str(data["channel"]), datetime.fromisoformat(data["at"]), bool(data["ok"]),
                   int(data["attempts"]), str(data.get("error", "")))  # fmt: skip


@dataclass(frozen=True)
class Alert:
    """A rule that fired: open until the rule holds again (``resolved``), repeats counted on it.

    Attributes:
        state: ``firing`` or ``resolved``.
        value: The observed value that broke the rule (the latest).
        count: How many runs found it broken while it was open (deduplication).
        delivered: True once every channel took it; False once a channel gave up (undelivered, kept);
            None while nothing was attempted.
        actions: What the alert started: ``{"kind", "outcome", "details"}`` each (a pipeline run id, a
            rollback), also in the audit trail.
    """

    id: str
    monitor: str
    endpoint: str
    rule: str
    state: str
    value: float | None
    threshold: float
    count: int
    first_at: datetime
    last_at: datetime
    resolved_at: datetime | None
    delivered: bool | None
    deliveries: tuple[Delivery, ...] = ()
    actions: tuple[Mapping[str, Any], ...] = ()
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id,
            "monitor": self.monitor,
            "endpoint": self.endpoint,
            "rule": self.rule,
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
            "count": self.count,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "delivered": self.delivered,
            "deliveries": [d.to_json() for d in self.deliveries],
            "actions": [dict(a) for a in self.actions],
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        """Build from the dict ``to_json`` returns."""
        return cls(
            id=str(data["id"]),
            monitor=str(data["monitor"]),
            endpoint=str(data["endpoint"]),
            rule=str(data["rule"]),
            state=str(data["state"]),
            value=data.get("value"),
            threshold=float(data["threshold"]),
            count=int(data["count"]),
            first_at=datetime.fromisoformat(data["first_at"]),
            last_at=datetime.fromisoformat(data["last_at"]),
            resolved_at=datetime.fromisoformat(data["resolved_at"]) if data.get("resolved_at") else None,
            delivered=data.get("delivered"),
            deliveries=tuple(Delivery.from_json(d) for d in data.get("deliveries", ())),
            actions=tuple(dict(a) for a in data.get("actions", ())),
            message=str(data.get("message", "")),
        )


@dataclass(frozen=True)
class Notification:
    """What a channel is asked to deliver: the alert and a human sentence about it."""

    alert: Alert
    title: str
    text: str


class Notifier(Protocol):
    """A delivery channel. ``send`` raises on failure (the caller retries with backoff, then marks the
    alert undelivered); it must never log a secret. A new one:

    >>> class Printing:
    ...     name = "print"
    ...
    ...     def send(self, notification: Notification) -> None:
    ...         print(notification.title)
    """

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver one notification or raise."""
        ...
