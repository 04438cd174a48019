"""Gathering everything known about an endpoint over one window: drift against the reference, quality on
late labels, fairness, operations, and the facts rules read.

**The window** is ``[now - window, now)``, for every figure (drift counts it from the hourly summaries
of ``steward.monitoring.windows``).

**The reference**, unless the monitor names one, is the training dataset (role ``train``, or the only
dataset recorded) of the version that answered most rows in the window, read through the data service
(so reading personal-data columns needs ``data:read_pii``). **Output drift** compares the log's
``out.*`` columns with the served version's answers on a seeded sample of the reference, the version
loaded through the registry as serving loads it; a version that cannot be loaded or fed the reference
(a tensor signature, ``trust`` needed, a failing model) is skipped with a note, and so is, for a log
reference, nothing: its own ``out.*`` columns are the reference outputs.

Nothing here fails a run for want of data: an empty window, no reference, no labels, all-null or
constant columns and schemas that do not match give None figures and notes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from steward.core.time import from_ms, to_ms
from steward.errors import InvalidInput, NotFound, StewardError
from steward.monitoring.drift import compare
from steward.monitoring.evaluate import facts_of
from steward.monitoring.fairness import fairness_from_table
from steward.monitoring.models import (
    DriftOptions,
    DriftReport,
    FairnessReport,
    OpsReport,
    PerformanceReport,
    TableSummary,
)
from steward.monitoring.ops import ops_report
from steward.monitoring.performance import performance_for_endpoint
from steward.monitoring.runs import MonitoringReport
from steward.monitoring.summaries import reference_summary
from steward.monitoring.windows import (
    SETTLE_MS,
    Pick,
    Reference,
    inputs,
    outputs_of,
    predicted_outputs,
    read_window,
    served_versions,
    stored_reference,
    window_summaries,
)

if TYPE_CHECKING:
    from steward.data.models import DatasetVersion
    from steward.data.service import DataService
    from steward.registry.service import RegistryService
    from steward.store.platform import Platform


class Gatherer:
    """Gathers one endpoint's window (the part of ``MonitoringService`` that reads).

    Args:
        platform: The platform.
        registry: Where served versions (metrics, lineage, models) are read.
        data: Where reference datasets are read.
    """

    def __init__(self, platform: Platform, registry: RegistryService, data: DataService) -> None:
        self.platform = platform
        self.registry = registry
        self.data = data
        self._unpredictable: dict[str, str] = {}  # output references that failed, so a run does not retry

    def gather(
        self,
        endpoint: str,
        window_s: int,
        now: int,
        reference: Mapping[str, Any] | None,
        attributes: Sequence[str] = (),
        options: DriftOptions | None = None,
    ) -> MonitoringReport:
        """Everything about ``endpoint`` over the window of ``window_s`` seconds ending at ``now``.

        Args:
            endpoint: The endpoint.
            window_s: The window's length.
            now: Its end (Unix ms).
            reference: The reference as ``specs.parse_reference`` stores it (None: the training dataset).
            attributes: Sensitive input columns to report fairness over.
            options: How drift is judged (``DriftOptions()`` by default).
        """
        low, high = now - window_s * 1000, now
        notes: list[str] = []
        versions = served_versions(self.platform, endpoint, low, high)
        rows = sum(v["rows"] for v in versions)
        served = versions[0] if versions else None
        if served is not None and len(versions) > 1:
            others = ", ".join(f"{v['version']} ({v['rows']} rows)" for v in versions[1:])
            notes.append(f"{served['version']} answered most rows ({served['rows']}); also: {others}")
        refs: list[Reference] = []
        if rows == 0:
            notes.append(f"no predictions of {endpoint!r} in the window: nothing to compare or judge")
        else:
            try:
                refs = self.references(endpoint, reference, served, now, notes)
            except StewardError as exc:
                notes.append(f"no drift: no reference ({_brief(exc)})")
        drift, ref_summary, cur_summary = self._drift(endpoint, refs, low, high, now, options, notes)
        performance = self._performance(endpoint, served, low, high, notes) if rows else None
        fairness = self._fairness(endpoint, attributes, low, high, notes) if rows and attributes else {}
        ops = self._ops(endpoint, low, high, notes)
        info = dict(refs[0].info) if refs else None
        if info is not None and len(refs) > 1:
            info["outputs"] = dict(refs[1].info)
        return MonitoringReport(
            endpoint=endpoint,
            start=from_ms(low),
            end=from_ms(high),
            rows=rows,
            served=served,
            reference=info,
            reference_summary=ref_summary,
            current_summary=cur_summary,
            drift=drift,
            performance=performance,
            fairness=fairness,
            ops=ops,
            facts=facts_of(rows, drift, performance, ops, fairness, ref_summary),
            notes=tuple(notes),
        )

    # -- the reference ------------------------------------------------------------------------------

    def references(
        self,
        endpoint: str,
        spec: Mapping[str, Any] | None,
        served: Mapping[str, Any] | None,
        now: int,
        notes: list[str],
    ) -> list[Reference]:
        """The input reference, then (when it can be made) the output reference.

        Raises:
            NotFound: The dataset or version does not exist, or the served version records no training
                dataset.
        """
        if spec is not None and "window_start" in spec:
            return self._log_references(endpoint, spec, now)
        if spec is not None:
            found = self.data.get_version(str(spec["dataset"]), spec.get("version"))
        else:
            if served is None:
                raise NotFound("no version answered in the window")
            version = self.registry.get_version(served["model"], served["version"])
            datasets = version.datasets
            chosen = datasets.get("train") or (next(iter(datasets.values())) if len(datasets) == 1 else None)
            if chosen is None:
                raise NotFound(
                    f"{version.uri} records no training dataset; give the monitor a reference (a dataset "
                    "such as 'churn@3' or a window of the endpoint's log)",
                    {"field": "reference"},
                )
            found = self.data.get_version_by_id(chosen)
        return self._dataset_references(found, served, notes)

    def _dataset_references(
        self, version: DatasetVersion, served: Mapping[str, Any] | None, notes: list[str]
    ) -> list[Reference]:
        loaded: list[pa.Table] = []

        def table() -> pa.Table:
            if not loaded:
                loaded.append(self.data.read_table(version))
            return loaded[0]

        rid, summary = stored_reference(self.platform, version.id, lambda: reference_summary(table()))
        info = {"kind": "dataset", "key": version.id, "dataset": version.ref, "rows": summary.rows}
        found = [Reference(rid, version.id, summary, inputs, info)]
        if served is None:
            return found
        model, number = str(served["model"]), str(served["version"])
        key = f"{version.id}|out:{model}/{number}"
        if key in self._unpredictable:
            notes.append(self._unpredictable[key])
            return found
        home = Path(self.platform.settings.home)
        try:
            oid, outputs = stored_reference(
                self.platform,
                key,
                lambda: reference_summary(predicted_outputs(self.registry, home, model, number, table())),
            )
        except Exception as exc:  # loading or running a model can fail in any way: output drift is skipped
            text = _brief(exc)
            self._unpredictable[key] = (
                f"no output drift: {model} {number} cannot answer the reference ({text})"
            )
            notes.append(self._unpredictable[key])
            return found
        info = {"kind": "predictions", "key": key, "model": model, "version": number, "rows": outputs.rows}
        return [*found, Reference(oid, key, outputs, outputs_of(number), info)]

    def _log_references(self, endpoint: str, spec: Mapping[str, Any], now: int) -> list[Reference]:
        low = to_ms(datetime.fromisoformat(str(spec["window_start"])))
        high = to_ms(datetime.fromisoformat(str(spec["window_end"])))
        key, closed = f"log:{endpoint}:{low}:{high}", high + SETTLE_MS <= now
        loaded: list[pa.Table] = []

        def table() -> pa.Table:
            if not loaded:
                loaded.append(read_window(self.platform, endpoint, low, high))
            return loaded[0]

        span = {"window_start": from_ms(low).isoformat(), "window_end": from_ms(high).isoformat()}
        found = []
        picks: list[tuple[str, Pick]] = [(key, inputs), (f"{key}|out", outputs_of(None))]
        for name, pick in picks:
            rid, summary = stored_reference(self.platform, name, partial(_profile, pick, table), keep=closed)
            info = {"kind": "log", "key": name, "endpoint": endpoint, **span, "rows": summary.rows}
            found.append(Reference(rid, name, summary, pick, info))
        return found

    # -- the figures --------------------------------------------------------------------------------

    def _drift(
        self,
        endpoint: str,
        refs: Sequence[Reference],
        low: int,
        high: int,
        now: int,
        options: DriftOptions | None,
        notes: list[str],
    ) -> tuple[DriftReport | None, TableSummary | None, TableSummary | None]:
        if not refs:
            return None, None, None
        current = window_summaries(self.platform, endpoint, refs, low, high, now, notes)
        ref_in, cur_in = refs[0].summary, current[0]
        ref_out = refs[1].summary if len(refs) > 1 else TableSummary(0, {})
        cur_out = current[1] if len(current) > 1 else TableSummary(0, {})
        start, end = from_ms(low), from_ms(high)
        reference = TableSummary(ref_in.rows, {**ref_in.columns, **ref_out.columns}, ref_in.start, ref_in.end)
        window = TableSummary(cur_in.rows, {**cur_in.columns, **cur_out.columns}, start, end)
        compared = [c for c in ref_in.columns if c in cur_in.columns]
        outputs = [c for c in ref_out.columns if c in cur_out.columns]
        if not compared:
            notes.append("none of the reference's columns is in the log's inputs (in.*): no input drift")
        chosen = options or DriftOptions()
        try:
            report = compare(
                reference, window, dataclasses.replace(chosen, columns=compared), outputs=outputs
            )
        except InvalidInput as exc:
            notes.append(f"no drift: {_brief(exc)}")
            return None, reference, window
        return report, reference, window

    def _performance(
        self, endpoint: str, served: Mapping[str, Any] | None, low: int, high: int, notes: list[str]
    ) -> PerformanceReport | None:
        registered: dict[str, float] = {}
        if served is not None:
            try:
                registered = self.registry.get_version(served["model"], served["version"]).metrics
            except StewardError as exc:
                notes.append(f"registered metrics unknown: {_brief(exc)}")
        try:
            report = performance_for_endpoint(
                self.platform, endpoint, start=from_ms(low), end=from_ms(high),
                window_s=_performance_step(high - low), registered=registered,
            )  # fmt: skip
        except StewardError as exc:
            notes.append(f"no performance: {_brief(exc)}")
            return None
        if not any(w.labelled for w in report.windows):
            notes.append("no labelled predictions in the window yet: performance rules wait for labels")
        if report.unmatched_labels:
            notes.append(f"{report.unmatched_labels} labels match no prediction in the window")
        return report

    def _fairness(
        self, endpoint: str, attributes: Sequence[str], low: int, high: int, notes: list[str]
    ) -> dict[str, FairnessReport]:
        from steward.serving.labels import labelled_predictions

        try:
            labelled = labelled_predictions(self.platform, endpoint, from_ms(low), from_ms(high))
        except StewardError as exc:
            notes.append(f"no fairness: {_brief(exc)}")
            return {}
        if labelled.num_rows == 0:
            notes.append("no fairness: no labelled predictions in the window yet")
            return {}
        found = {}
        for attribute in attributes:
            try:
                found[attribute] = fairness_from_table(labelled, attribute)
            except InvalidInput as exc:
                notes.append(f"no fairness over {attribute!r}: {_brief(exc)}")
        return found

    def _ops(self, endpoint: str, low: int, high: int, notes: list[str]) -> OpsReport | None:
        try:
            return ops_report(
                self.platform.metadata, self.platform.project, endpoint, from_ms(low), from_ms(high)
            )
        except StewardError as exc:
            notes.append(f"no serving statistics: {_brief(exc)}")
            return None


def _profile(pick: Pick, table: Callable[[], pa.Table]) -> TableSummary:
    return reference_summary(pick(table()))


def _brief(exc: BaseException) -> str:
    """An error as a note: its first line, at most 300 characters."""
    text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    first = str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
    return first if len(first) <= 300 else f"{first[:299]}…"


def _performance_step(span_ms: int) -> int:
    """Seconds per point of the report's performance over time: an hour, or a 24th of a longer span (the
    rules read the whole window's figures, not a point's)."""
    return max(3600, math.ceil(span_ms / 1000 / 24))
