"""A monitoring report as one self-contained HTML page (``steward monitor report --format html``).

The page needs nothing but itself: the style is inline and every plot is inline SVG drawn here from the
report's stored summaries, so it opens offline, in a mail attachment or an air-gapped review, and never
fetches a script, font or style sheet. Every user-provided text (endpoint, column, category, group and
version names, notes) is HTML-escaped.

**The numbers are the JSON's.** Each figure is printed from the same value ``MonitoringReport.to_json``
holds, at 4 significant digits, with the exact JSON value as its tooltip (``title``); None is shown as
a dash. The only numbers the page derives are the plots' shares (a bin's count over the column's non-null
count, in the bars' tooltips), since a distribution is compared by shares, not counts.

**The plots.** A numeric column is drawn as a histogram over its values: the reference's bins (merged
where they are narrower than 1/48 of the range, so the fine tail bins do not spike), bar heights the
share per unit of the value, reference and current overlaid. Current values below the reference's
minimum or above its maximum fill a bin reaching to the window's own minimum or maximum, drawn at most
as wide as the reference's range (the caption says so when it is compressed). A column with at most
:data:`DISCRETE_EDGES` distinct edges (a flag, a count, a constant) and a categorical column are drawn
as side-by-side bars per bin or category instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Final

from steward.monitoring.models import (
    NULL,
    OTHER,
    ColumnSummary,
    DriftReport,
    FairnessReport,
    FeatureDrift,
    OpsReport,
    PerformanceReport,
)
from steward.monitoring.runs import MonitoringReport

REFERENCE_COLOUR: Final = "#5b7db1"
CURRENT_COLOUR: Final = "#e8833a"
DISCRETE_EDGES: Final = 12
"""A numeric column with at most this many distinct bin edges is drawn as bars per bin."""
MIN_BIN_SHARE: Final = 1 / 48
"""Histogram bins narrower than this share of the drawn range are merged with their neighbours."""
MAX_GROUPS: Final = 50
"""Fairness groups shown per attribute (the JSON has every one)."""
MAX_LABEL: Final = 16
DASH: Final = "\u2013"
"""What the page shows for a figure that is None."""
BOUNDED_METRICS: Final = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc"})
"""Performance metrics drawn on a fixed 0-1 scale."""
OPS_FIGURES: Final = (
    "requests", "errors", "error_rate", "throughput_rps", "p50_latency_ms", "p95_latency_ms",
    "p99_latency_ms",
)  # fmt: skip
GROUP_FIGURES: Final = ("count", "selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")
PAIR_FIGURES: Final = (
    ("demographic_parity_difference", "largest minus smallest selection rate"),
    ("demographic_parity_ratio", "smallest over largest selection rate"),
    ("equalized_odds_difference", "the larger of the TPR gap and the FPR gap"),
)

_W: Final = 560
_H: Final = 190
_LEFT, _RIGHT, _TOP, _BOTTOM = 16, 16, 14, 44

_STYLE: Final = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2430;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:18px;margin:0 0 10px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
section,header{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:12px 18px;margin:14px 0}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
dl.meta dt{color:#5a6372}
dl.meta dd{margin:0}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #e1e4ea;border-radius:6px;padding:8px 14px;min-width:140px}
.card .label{color:#5a6372;font-size:12px}
.card .value{font-size:20px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{background:#f1f3f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fdecea}
.bad{color:#b3261e;font-weight:600}
.good{color:#1e7b34}
.muted{color:#6b7383}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:14px;margin:8px 0}
figure{margin:0;border:1px solid #eceef2;border-radius:6px;padding:8px}
figcaption{font-size:12px;color:#444c5a}
svg{width:100%;height:auto;display:block}
svg text{font-size:11px;fill:#444c5a}
.key{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}
nav a{margin-right:12px}
ul.notes{margin:4px 0;padding-left:20px}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def figure(value: object) -> str:
    """A value as the page prints it: a float at 4 significant digits, an int whole, None as a dash,
    a boolean as ``yes`` or ``no``."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _exact(value: object) -> str:
    """The value as ``to_json`` writes it (``json.dumps`` of a number is its shortest exact repr)."""
    return json.dumps(value) if value is None or isinstance(value, bool | int | float) else str(value)


def _num(value: object) -> str:
    """A number in running text, with the exact JSON value as its tooltip."""
    return f'<span class="n" title="{_e(_exact(value))}">{_e(figure(value))}</span>'


def _td(value: object) -> str:
    return f'<td class="num" title="{_e(_exact(value))}">{_e(figure(value))}</td>'


def _table(headers: Sequence[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _notes(notes: Iterable[str]) -> str:
    items = "".join(f"<li>{_e(n)}</li>" for n in notes if n)
    return f'<ul class="notes">{items}</ul>' if items else ""


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else DASH


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else f"{text[: MAX_LABEL - 1]}…"


def render_html(report: MonitoringReport, *, generated_at: datetime | None = None) -> str:
    """Render ``report`` as one self-contained HTML page.

    Args:
        report: What ``MonitoringService.report`` (or ``steward.monitor_report``) returned.
        generated_at: The time printed as the page's generation time (now by default).

    Returns:
        The page: inline CSS and SVG, no script and no external reference.
    """
    drift = report.drift
    body = [
        _header(report, generated_at or datetime.now(UTC)),
        _summary(report),
        _section("drift", "Input drift", _drift_table(drift.features, "No input column was compared.")
                 if drift is not None else _missing("No drift: there is no reference or no rows.")),
        _section("distributions", "Distributions: reference vs current", _plots(report, "input")),
        _section("prediction", "Prediction (output) drift", _prediction(report)),
        _multivariate(drift),
        _section("performance", "Performance over time", _performance(report.performance)),
        _section("fairness", "Fairness", _fairness(report.fairness)),
        _section("ops", "Operations", _ops(report.ops)),
        _facts(report.facts),
    ]  # fmt: skip
    title = f"Monitoring report: {report.endpoint}"
    nav = "".join(
        f'<a href="#{k}">{v}</a>'
        for k, v in (
            ("drift", "Drift"), ("distributions", "Distributions"), ("prediction", "Prediction"),
            ("performance", "Performance"), ("fairness", "Fairness"), ("ops", "Operations"),
        )
    )  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><nav>{nav}</nav>{''.join(body)}</main></body></html>\n"
    )


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{content}</section>'


def _missing(fallback: str) -> str:
    return f'<p class="muted">{_e(fallback)}</p>'


# -- header and summary -------------------------------------------------------------------------------


def _reference_text(reference: Mapping[str, object] | None) -> str:
    if reference is None:
        return "none"
    kind = reference.get("kind")
    if kind == "dataset":
        what = f"dataset {_e(reference.get('dataset'))}"
    elif kind == "log":
        start, end = _e(reference.get("window_start")), _e(reference.get("window_end"))
        what = f"the endpoint's log from {start} to {end}"
    else:
        what = _e(reference.get("key", kind))
    outputs = reference.get("outputs")
    extra = ""
    if isinstance(outputs, Mapping) and outputs.get("kind") == "predictions":
        extra = (
            f"; outputs: {_e(outputs.get('model'))} {_e(outputs.get('version'))} on "
            f"{_num(outputs.get('rows'))} reference rows"
        )
    return f"{what} ({_num(reference.get('rows'))} rows){extra}"


def _header(report: MonitoringReport, generated_at: datetime) -> str:
    served = report.served
    version = (
        f"{_e(served.get('model'))} {_e(served.get('version'))} ({_num(served.get('rows'))} rows)"
        if served is not None
        else "none"
    )
    rows = [
        ("Endpoint", _e(report.endpoint)),
        ("Window", f"{_e(_when(report.start))} to {_e(_when(report.end))}"),
        ("Reference", _reference_text(report.reference)),
        ("Served", version),
        ("Generated", _e(_when(generated_at))),
    ]
    grid = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<header><h1>Monitoring report: {_e(report.endpoint)}</h1><dl class="meta">{grid}</dl></header>'


def _card(label: str, value: str, css: str = "") -> str:
    return (
        f'<div class="card"><div class="label">{_e(label)}</div><div class="value {css}">{value}</div></div>'
    )


def _summary(report: MonitoringReport) -> str:
    drift = report.drift
    cards = [_card("Rows", _num(report.rows))]
    if drift is not None:
        compared = len(drift.features)
        cards.append(
            _card("Drift share", f"{_num(drift.drift_share)} <span class='muted'>of {compared}</span>")
        )
        if drift.drift_share is None:
            verdict, css = "no verdict", "muted"
        else:
            verdict, css = ("drift", "bad") if drift.dataset_drift else ("no drift", "good")
        cards.append(_card(f"Dataset verdict (share ≥ {figure(drift.share)})", verdict, css))
        drifted = ", ".join(_e(c) for c in drift.drifted_columns) or "none"
        cards.append(_card("Drifted columns", drifted))
    else:
        cards.append(_card("Drift", "not computed", "muted"))
    perf = report.performance
    if perf is not None:
        labelled = sum(w.labelled for w in perf.windows)
        cards.append(_card("Labelled rows", _num(labelled)))
    notes = _notes(report.notes)
    return _section("summary", "Summary", f'<div class="cards">{"".join(cards)}</div>' + notes)


# -- drift ----------------------------------------------------------------------------------------------


def _drift_table(features: Sequence[FeatureDrift], empty: str, *, anchor: str = "dist") -> str:
    if not features:
        return f'<p class="muted">{_e(empty)}</p>'
    rows = []
    for i, f in enumerate(features):
        if f.drifted:
            verdict = '<span class="bad">drifted</span>'
        elif f.statistic is None:
            verdict = '<span class="muted">not judged</span>'
        else:
            verdict = '<span class="good">no drift</span>'
        others = " · ".join(
            f"{_e(k)} {_num(v)}" for k, v in f.scores.items() if k not in (f.test, f"{f.test}_p_value")
        )
        rows.append(
            f'<tr class="{"drifted" if f.drifted else ""}">'
            f'<td><a href="#{anchor}-{i}">{_e(f.column)}</a></td>'
            f"<td>{_e(f.kind)}</td><td>{_e(f.test)}</td>{_td(f.statistic)}{_td(f.p_value)}{_td(f.threshold)}"
            f"<td>{verdict}</td>{_td(f.reference_count)}{_td(f.current_count)}<td>{others}</td>"
            f"<td>{_e(f.note)}</td></tr>"
        )
    headers = ("Column", "Kind", "Test", "Statistic", "p-value", "Threshold", "Verdict", "Reference n",
               "Current n", "Other scores", "Notes")  # fmt: skip
    return _table(headers, rows)


def _prediction(report: MonitoringReport) -> str:
    drift = report.drift
    if drift is None:
        return '<p class="muted">No prediction drift: there is no reference or no rows.</p>'
    table = _drift_table(
        drift.prediction, "The model's outputs were not compared (see the notes).", anchor="out"
    )
    notes = _notes(drift.notes)
    return table + _plots(report, "output") + notes


def _multivariate(drift: DriftReport | None) -> str:
    found = drift.multivariate if drift is not None else None
    if found is None:
        return ""
    drifted = bool(found.get("drifted"))
    verdict = '<span class="bad">drifted</span>' if drifted else '<span class="good">no drift</span>'
    columns = ", ".join(_e(c) for c in found.get("columns", ()) or ())
    text = (
        f"<p>A classifier told the window from the reference with a ROC AUC of {_num(found.get('roc_auc'))} "
        f"(threshold {_num(found.get('threshold'))}, {_num(found.get('rows'))} rows"
        f"{', columns ' + columns if columns else ''}): {verdict}. About 0.5 means the two look alike.</p>"
    )
    return _section(
        "multivariate", "Multivariate drift (domain classifier)", text + _notes([found.get("note", "")])
    )


# -- distribution plots -----------------------------------------------------------------------------------


def _plots(report: MonitoringReport, which: str) -> str:
    drift, ref, cur = report.drift, report.reference_summary, report.current_summary
    if drift is None or ref is None:
        return '<p class="muted">No reference: nothing to plot.</p>' if which == "input" else ""
    features = drift.features if which == "input" else drift.prediction
    anchor = "dist" if which == "input" else "out"
    figures = []
    for i, f in enumerate(features):
        reference = ref.columns.get(f.column)
        if reference is None:
            continue
        current = cur.columns.get(f.column) if cur is not None else None
        svg, remark = _distribution(reference, current)
        caption = (
            f"<b>{_e(f.column)}</b> ({_e(f.kind)}): reference {_num(reference.count)} values, "
            f"{_num(reference.nulls)} null; current {_num(current.count if current else 0)} values, "
            f"{_num(current.nulls if current else 0)} null. {_e(remark)}"
        )
        figures.append(
            f'<figure id="{anchor}-{i}">{svg}<figcaption>{_legend()}<br>{caption}</figcaption></figure>'
        )
    if not figures:
        return '<p class="muted">No column has a stored summary to plot.</p>' if which == "input" else ""
    return f'<div class="plots">{"".join(figures)}</div>'


def _legend() -> str:
    return (
        f'<span class="key" style="background:{REFERENCE_COLOUR}"></span>reference'
        f'<span class="key" style="background:{CURRENT_COLOUR}"></span>current'
    )


def _distribution(reference: ColumnSummary, current: ColumnSummary | None) -> tuple[str, str]:
    """The plot of one column and a remark for its caption."""
    if current is not None and len(current.counts) != len(reference.counts):
        current = None  # counted against other bins: nothing comparable to draw
    cur_counts = current.counts if current is not None else (0,) * len(reference.counts)
    if reference.kind == "categorical":
        labels = [_category(c) for c in reference.categories]
        labels += ["(other)"] * (len(reference.counts) - len(labels))
        return _pairs(labels, reference.counts, cur_counts), ""
    edges = reference.edges
    if not edges:
        return _pairs(["(values)"], reference.counts, cur_counts), "The reference has no values."
    if len(set(edges)) <= DISCRETE_EDGES:
        return _pairs(_bin_labels(edges), reference.counts, cur_counts, skip_empty=True), ""
    return _histogram(reference, current)


def _category(value: str) -> str:
    return {OTHER: "(other)", NULL: "(null)"}.get(value, value)


def _bin_labels(edges: Sequence[float]) -> list[str]:
    labels = [f"< {figure(edges[0])}"]
    for i in range(1, len(edges)):
        low, high = edges[i - 1], edges[i]
        labels.append(f"= {figure(low)}" if low == high else f"[{figure(low)}, {figure(high)})")
    labels.append(f"> {figure(edges[-1])}")
    return labels


@dataclass
class _Bin:
    low: float
    high: float
    reference: int
    current: int


def _bins(reference: ColumnSummary, current: ColumnSummary | None) -> tuple[list[_Bin], str]:
    """The histogram's bins in value space (see the module's docstring) and a remark on compression."""
    edges, counts = reference.edges, reference.counts
    cur = current.counts if current is not None else (0,) * len(counts)
    spread = edges[-1] - edges[0]
    remarks = []
    found: list[_Bin] = []
    if cur[0] and current is not None and current.minimum is not None and current.minimum < edges[0]:
        low = max(current.minimum, edges[0] - spread)
        if low > current.minimum:
            remarks.append(f"values below the reference's minimum reach {figure(current.minimum)}")
        found.append(_Bin(low, edges[0], counts[0], cur[0]))
    for i in range(1, len(edges)):
        if edges[i] <= edges[i - 1] and found:  # the maximum's own bin [max, max]
            found[-1].reference += counts[i]
            found[-1].current += cur[i]
            continue
        found.append(_Bin(edges[i - 1], edges[i], counts[i], cur[i]))
    if cur[-1] and current is not None and current.maximum is not None and current.maximum > edges[-1]:
        high = min(current.maximum, edges[-1] + spread)
        if high < current.maximum:
            remarks.append(f"values above the reference's maximum reach {figure(current.maximum)}")
        found.append(_Bin(edges[-1], high, counts[-1], cur[-1]))
    narrow = (found[-1].high - found[0].low) * MIN_BIN_SHARE
    merged: list[_Bin] = []
    for b in found:
        last = merged[-1] if merged else None
        if last is not None and last.high - last.low < narrow:
            last.high, last.reference, last.current = (
                b.high,
                last.reference + b.reference,
                last.current + b.current,
            )
        else:
            merged.append(_Bin(b.low, b.high, b.reference, b.current))
    if len(merged) > 1 and merged[-1].high - merged[-1].low < narrow:
        tail = merged.pop()
        merged[-1].high, merged[-1].reference = tail.high, merged[-1].reference + tail.reference
        merged[-1].current += tail.current
    remark = ("Drawn compressed: " + "; ".join(remarks) + ".") if remarks else ""
    return merged, remark


def _histogram(reference: ColumnSummary, current: ColumnSummary | None) -> tuple[str, str]:
    bins, remark = _bins(reference, current)
    low, high = bins[0].low, bins[-1].high
    ref_total = sum(b.reference for b in bins) or 1
    cur_total = sum(b.current for b in bins) or 1
    densities = [
        (b.reference / ref_total / (b.high - b.low), b.current / cur_total / (b.high - b.low)) for b in bins
    ]
    top = max(max(d) for d in densities) or 1.0
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(value: float) -> float:
        return _LEFT + (value - low) / (high - low) * plot_w

    parts = []
    for b, (dr, dc) in zip(bins, densities, strict=True):
        x0, width = x(b.low), max(x(b.high) - x(b.low), 0.5)
        for density, colour in ((dr, REFERENCE_COLOUR), (dc, CURRENT_COLOUR)):
            height = density / top * plot_h
            parts.append(
                f'<rect x="{x0:.2f}" y="{_TOP + plot_h - height:.2f}" width="{width:.2f}" '
                f'height="{height:.2f}" fill="{colour}" fill-opacity="0.55"/>'
            )
        tip = (
            f"[{figure(b.low)}, {figure(b.high)}): reference {b.reference} ({b.reference / ref_total:.1%}), "
            f"current {b.current} ({b.current / cur_total:.1%})"
        )
        parts.append(
            f'<rect x="{x0:.2f}" y="{_TOP}" width="{width:.2f}" height="{plot_h}" fill="transparent">'
            f"<title>{_e(tip)}</title></rect>"
        )
    for edge in (reference.edges[0], reference.edges[-1]):
        if low < edge < high:
            parts.append(
                f'<line x1="{x(edge):.2f}" x2="{x(edge):.2f}" y1="{_TOP}" y2="{_TOP + plot_h}" '
                'stroke="#888" stroke-dasharray="3 3"><title>the reference\'s range</title></line>'
            )
    parts.append(_axis(plot_w, plot_h))
    ticks = _ticks([b.low for b in bins] + [high], x, plot_w)
    # a compressed end is labelled with the window's true extreme, never with where it was cut
    ends = {low: current.minimum, high: current.maximum} if current is not None else {}
    for k, (tick, px) in enumerate(ticks):
        anchor = "start" if k == 0 else "end" if k == len(ticks) - 1 else "middle"
        end = ends.get(tick) if k in (0, len(ticks) - 1) else None
        value = end if end is not None and (end < reference.edges[0] or end > reference.edges[-1]) else tick
        parts.append(
            f'<line x1="{px:.2f}" x2="{px:.2f}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h + 4}" stroke="#666"/>'
            f'<text x="{px:.2f}" y="{_TOP + plot_h + 16}" text-anchor="{anchor}">{_e(figure(value))}</text>'
        )
    parts.append(
        f'<text x="{_LEFT}" y="{_H - 6}">share per unit of the value (bars); '
        "dashed: the reference's range</text>"
    )
    return _svg(parts, "histogram of reference and current values"), remark


def _ticks(
    values: Sequence[float], position: Callable[[float], float], width: float
) -> list[tuple[float, float]]:
    """Tick values (a subset of ``values``, the last always) at least 16% of the width apart."""
    chosen: list[tuple[float, float]] = []
    gap = width * 0.16
    last = values[-1]
    for value in values:
        px = position(value)
        if chosen and px - chosen[-1][1] < gap:
            continue
        if value != last and position(last) - px < gap:
            continue
        chosen.append((value, px))
    if not chosen or chosen[-1][0] != last:
        chosen.append((last, position(last)))
    return chosen


def _axis(plot_w: float, plot_h: float, top: float = _TOP) -> str:
    y = top + plot_h
    return f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y}" y2="{y}" stroke="#666"/>'


def _svg(parts: Sequence[str], label: str, height: int = _H) -> str:
    return f'<svg viewBox="0 0 {_W} {height}" role="img" aria-label="{_e(label)}">{"".join(parts)}</svg>'


def _pairs(
    labels: Sequence[str], reference: Sequence[int], current: Sequence[int], *, skip_empty: bool = False
) -> str:
    """Side-by-side bars of the reference's and the window's shares per bin or category."""
    ref_total, cur_total = sum(reference) or 1, sum(current) or 1
    groups = [
        (label, r, c)
        for label, r, c in zip(labels, reference, current, strict=True)
        if not (skip_empty and r == 0 and c == 0)
    ]
    series = [
        ("reference", REFERENCE_COLOUR, [r / ref_total for _, r, _ in groups],
         [f"reference {r} ({r / ref_total:.1%})" for _, r, _ in groups]),
        ("current", CURRENT_COLOUR, [c / cur_total for _, _, c in groups],
         [f"current {c} ({c / cur_total:.1%})" for _, _, c in groups]),
    ]  # fmt: skip
    return _grouped_bars([g[0] for g in groups], series, "share of the values")


def _grouped_bars(
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None], Sequence[str]]],
    caption: str,
    top: float | None = None,
) -> str:
    """Bars per label, one per series (``name, colour, heights, tooltips``), scaled to the tallest."""
    if not labels:
        return _svg([f'<text x="{_LEFT}" y="{_TOP + 20}">nothing to draw</text>'], caption, 40)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    heights = [v for _, _, values, _ in series for v in values if v is not None]
    scale = top if top is not None else (max(heights, default=0.0) or 1.0)
    slot = plot_w / len(labels)
    bar = slot * 0.8 / len(series)
    every = max(1, math.ceil(len(labels) / (plot_w / 60)))
    parts = []
    for i, label in enumerate(labels):
        x0 = _LEFT + i * slot + slot * 0.1
        for j, (_, colour, values, tips) in enumerate(series):
            value = values[i]
            height = 0.0 if value is None else value / scale * plot_h
            parts.append(
                f'<rect x="{x0 + j * bar:.2f}" y="{_TOP + plot_h - height:.2f}" '
                f'width="{max(bar - 1, 0.5):.2f}" height="{height:.2f}" fill="{colour}">'
                f"<title>{_e(label)}: {_e(tips[i])}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{_LEFT + (i + 0.5) * slot:.2f}" y="{_TOP + plot_h + 16}" text-anchor="middle">'
                f"{_e(_short(label))}<title>{_e(label)}</title></text>"
            )
    parts.append(_axis(plot_w, plot_h))
    parts.append(f'<text x="{_LEFT}" y="{_H - 6}">{_e(caption)}</text>')
    return _svg(parts, caption)


# -- performance ----------------------------------------------------------------------------------------


def _performance(perf: PerformanceReport | None) -> str:
    if perf is None:
        return '<p class="muted">No performance: nothing answered in the window, or it could not be read.</p>'
    names = list(dict.fromkeys(k for w in perf.windows for k in w.metrics)) or list(perf.overall)
    charts = [
        f"<figure>{_line(name, perf)}<figcaption><b>{_e(name)}</b>"
        + (
            f"; registered {_num(perf.registered[name])} (dashed)"
            if name in perf.registered
            else "; nothing registered to compare with"
        )
        + "</figcaption></figure>"
        for name in names
        if any(w.metrics.get(name) is not None for w in perf.windows)
    ]
    overall = "".join(
        f"<tr><td>{_e(k)}</td>{_td(v)}{_td(perf.registered.get(k))}</tr>" for k, v in perf.overall.items()
    )
    windows = [
        f"<tr><td>{_e(_when(w.start))}</td><td>{_e(_when(w.end))}</td>{_td(w.predictions)}{_td(w.labelled)}"
        + "".join(_td(w.metrics.get(n)) for n in names)
        + f"<td>{_e('; '.join(w.notes))}</td></tr>"
        for w in perf.windows
    ]
    intro = (
        f"<p>Task: {_e(perf.task)}. {_num(perf.unmatched_labels)} labels matched no prediction in the "
        "span.</p>"
    )
    plots = (
        f'<div class="plots">{"".join(charts)}</div>'
        if charts
        else '<p class="muted">No metric could be computed yet (no labels).</p>'
    )
    return (
        intro
        + plots
        + "<h3>Over the whole window</h3>"
        + _table(("Metric", "Value", "Registered"), [overall])
        + "<h3>Per window</h3>"
        + _table(("Start", "End", "Predictions", "Labelled", *names, "Notes"), windows)
    )


def _line(name: str, perf: PerformanceReport) -> str:
    """One metric over the windows: points labelled with the value, the labelled count under each."""
    values = [w.metrics.get(name) for w in perf.windows]
    registered = perf.registered.get(name)
    known = [v for v in values if v is not None] + ([registered] if registered is not None else [])
    if name in BOUNDED_METRICS:
        low, high = 0.0, 1.0
    else:
        low, high = min(known, default=0.0), max(known, default=1.0)
        pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    top = _TOP + 12  # room for the value labels above a point at the top
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - top - _BOTTOM
    count = len(values)

    def px(i: int) -> float:
        return _LEFT + (i + 0.5) * plot_w / count

    def py(v: float) -> float:
        return top + plot_h - (v - low) / (high - low) * plot_h

    parts = [_axis(plot_w, plot_h, top)]
    if registered is not None:
        y = py(registered)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.2f}" y2="{y:.2f}" stroke="{REFERENCE_COLOUR}" '
            f'stroke-dasharray="5 4"><title>registered {_e(figure(registered))}</title></line>'
            f'<text x="{_LEFT + plot_w}" y="{y - 4:.2f}" text-anchor="end">registered '
            f"{_e(figure(registered))}</text>"
        )
    run: list[str] = []
    for i, v in enumerate([*values, None]):
        if v is None:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{CURRENT_COLOUR}" '
                    'stroke-width="2"/>'
                )
            run = []
            continue
        run.append(f"{px(i):.2f},{py(v):.2f}")
    every = max(1, math.ceil(count / (plot_w / 70)))
    for i, (w, v) in enumerate(zip(perf.windows, values, strict=True)):
        if v is not None:
            parts.append(
                f'<circle cx="{px(i):.2f}" cy="{py(v):.2f}" r="3.5" fill="{CURRENT_COLOUR}"><title>'
                f"{_e(_when(w.start))}: {_e(figure(v))}, {w.labelled} labelled</title></circle>"
            )
            if i % every == 0:
                parts.append(
                    f'<text x="{px(i):.2f}" y="{py(v) - 7:.2f}" text-anchor="middle">{_e(figure(v))}</text>'
                )
        if i % every == 0:
            parts.append(
                f'<text x="{px(i):.2f}" y="{top + plot_h + 15}" text-anchor="middle">'
                f"{_e(w.start.astimezone(UTC).strftime('%m-%d %H:%M'))}</text>"
                f'<text x="{px(i):.2f}" y="{top + plot_h + 28}" text-anchor="middle">n={w.labelled}</text>'
            )
    return _svg(parts, f"{name} per window")


# -- fairness and operations -------------------------------------------------------------------------------


def _fairness(reports: Mapping[str, FairnessReport]) -> str:
    if not reports:
        return (
            '<p class="muted">No fairness figures: ask for a sensitive attribute (--attribute COLUMN), '
            "and it needs labelled predictions.</p>"
        )
    return "".join(_fairness_one(r) for r in reports.values())


def _fairness_one(report: FairnessReport) -> str:
    cards = "".join(
        _card(f"{name} — {meaning}", _num(getattr(report, name))) for name, meaning in PAIR_FIGURES
    )
    names = sorted(report.groups)[:MAX_GROUPS]
    rows = [
        f"<tr><td>{_e(g)}</td>" + "".join(_td(report.groups[g].get(k)) for k in GROUP_FIGURES) + "</tr>"
        for g in names
    ]
    more = (
        f'<p class="muted">{len(report.groups) - len(names)} more groups are in the JSON form.</p>'
        if len(report.groups) > len(names)
        else ""
    )
    rates = [("selection_rate", REFERENCE_COLOUR), ("true_positive_rate", CURRENT_COLOUR)]
    series = [
        (key, colour, [report.groups[g].get(key) for g in names],
         [f"{key} {figure(report.groups[g].get(key))}" for g in names])
        for key, colour in rates
    ]  # fmt: skip
    chart = _grouped_bars(
        names, series, "selection rate (blue) and true positive rate (orange) per group", 1.0
    )
    return (
        f"<h3>Over {_e(report.attribute)}</h3><div class='cards'>{cards}</div>"
        f'<div class="plots"><figure>{chart}</figure></div>'
        + _table(("Group", *GROUP_FIGURES), rows)
        + more
        + _notes(report.notes)
    )


def _ops(ops: OpsReport | None) -> str:
    if ops is None:
        return '<p class="muted">No serving statistics could be read.</p>'
    if not ops.versions:
        return (
            f"<p class='muted'>No request was served from {_e(_when(ops.start))} to {_e(_when(ops.end))}.</p>"
        )
    keys = list(OPS_FIGURES) + sorted({k for v in ops.versions.values() for k in v} - set(OPS_FIGURES))
    rows = [
        f"<tr><td>{_e(version)}</td>" + "".join(_td(figures.get(k)) for k in keys) + "</tr>"
        for version, figures in ops.versions.items()
    ]
    versions = list(ops.versions)
    latency = [
        (key, colour, [ops.versions[v].get(key) for v in versions],
         [f"{key} {figure(ops.versions[v].get(key))}" for v in versions])
        for key, colour in (("p50_latency_ms", "#9db4d8"), ("p95_latency_ms", REFERENCE_COLOUR),
                            ("p99_latency_ms", CURRENT_COLOUR))
    ]  # fmt: skip
    chart = _grouped_bars(versions, latency, "latency per version, ms: p50, p95, p99")
    return (
        f"<p>From {_e(_when(ops.start))} to {_e(_when(ops.end))}, per model version.</p>"
        + _table(("Version", *keys), rows)
        + f'<div class="plots"><figure>{chart}</figure></div>'
    )


def _facts(facts: Mapping[str, object]) -> str:
    rows = []
    for key, value in facts.items():
        if isinstance(value, Mapping):
            rows += [f"<tr><td>{_e(key)}({_e(arg)})</td>{_td(v)}</tr>" for arg, v in value.items()]
        else:
            rows.append(f"<tr><td>{_e(key)}</td>{_td(value)}</tr>")
    content = (
        "<details><summary>The facts alert rules read (e.g. <code>psi(income) &gt; 0.2</code>)</summary>"
        + _table(("Fact", "Value"), rows)
        + "</details>"
    )
    return _section("facts", "Facts", content)
