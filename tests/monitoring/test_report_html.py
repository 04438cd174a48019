"""The HTML monitoring report, rendered from a real ``MonitoringReport``: an endpoint log written by the
serving prediction log's own writer (a log window as the reference, so categorical inputs are compared
too), late labels, a sensitive attribute and serving statistics of two versions.

The service reports performance over one window per run; the report here swaps in the same endpoint's
performance per 10 minutes and a domain classifier's result, both computed by the monitoring code, so
the page's time series and multivariate section are drawn from real figures too.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import insert

from steward.monitoring.models import ColumnSummary
from steward.monitoring.multivariate import domain_classifier_auc
from steward.monitoring.performance import performance_for_endpoint
from steward.monitoring.report_html import render_html
from steward.monitoring.runs import MonitoringReport
from steward.serving.labels import log_labels
from steward.serving.log_store import LogStore
from steward.serving.models import PredictionRecord, WindowStats
from steward.serving.prediction_log import PredictionLog
from steward.store.tables import serving_windows
from tests.conftest import reset_sdk
from tests.monitoring.test_service import FEATURES, Env, at, features, open_env

PLANS = ["basic", "plus", "pro"]
GENERATED = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def log_traffic(
    env: Env, start_minute: float, rows: int, *, shift: float, plans: list[float]
) -> pd.DataFrame:
    """Log ``rows`` one-row requests over 40 minutes from ``start_minute``: the model's inputs plus
    ``gender`` and ``plan``; return what was logged, with the request ids and answers."""
    frame = features(env.rng, rows, shift)
    frame["gender"] = np.where(np.arange(rows) % 2 == 0, "f", "m")
    frame["plan"] = env.rng.choice(PLANS, rows, p=plans)
    answers = env.model.predict(frame[FEATURES])
    log = PredictionLog(LogStore.from_settings(env.platform.settings), flush_interval=0.05)
    begin = int(at(start_minute).timestamp() * 1000)
    ids = [f"q{next(env.ids)}" for _ in range(rows)]
    for i in range(rows):
        log.offer(
            PredictionRecord(
                "default", "churn", "churn", "1.0.0", "stable", ids[i], begin + i * 2_400_000 // rows,
                frame.iloc[[i]], answers[i : i + 1], 3.0,
            )
        )  # fmt: skip
    log.close()
    frame["request_id"], frame["answer"] = ids, answers
    return frame


def serve_stats(env: Env, version: str, minute: float, latency_ms: float, errors: int) -> None:
    stats = WindowStats()
    for i in range(100):
        stats.observe(latency_ms, error=i < errors)
    with env.platform.metadata.transaction() as conn:
        conn.execute(insert(serving_windows), {
            "project": "default", "endpoint": "churn", "version": version,
            "window_start": int(at(minute).timestamp() * 1000), "worker": "w1", "role": "stable",
            "requests": stats.requests, "errors": stats.errors, "latency_sum_ms": stats.latency_sum_ms,
            "latency_buckets": stats.buckets_json(), "shadow_compared": 0, "shadow_agreed": 0,
            "updated_at": 0,
        })  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoringReport]:
    env = open_env(tmp_path_factory.mktemp("report"))
    before = log_traffic(env, 0, 300, shift=0, plans=[0.6, 0.3, 0.1])
    after = log_traffic(env, 60, 400, shift=25, plans=[0.2, 0.3, 0.5])
    # labels: right for the first half of the new traffic, a third of them wrong after it
    wrong = (np.arange(len(after)) >= 200) & (np.arange(len(after)) % 3 == 0)
    labels = np.where(wrong, 1 - after["answer"], after["answer"])
    log_labels(env.platform, list(after["request_id"]), list(labels), endpoint="churn")
    serve_stats(env, "1.0.0", 70, 4.0, 2)
    serve_stats(env, "0.9.0", 75, 120.0, 10)
    reference = {"window_start": at(0).isoformat(), "window_end": at(45).isoformat()}
    found = env.service.report("churn", window="1h", now=at(110), reference=reference, attribute="gender")
    assert found.drift is not None and found.performance is not None and found.fairness
    per_window = performance_for_endpoint(
        env.platform, "churn", start=found.start, end=found.end, window_s=600,
        registered=found.performance.registered,
    )  # fmt: skip
    multivariate = domain_classifier_auc(
        pa.Table.from_pandas(before[FEATURES]), pa.Table.from_pandas(after[FEATURES]), FEATURES
    )
    found = dataclasses.replace(
        found, performance=per_window, drift=dataclasses.replace(found.drift, multivariate=multivariate)
    )
    yield found
    env.platform.close()
    reset_sdk()


@pytest.fixture(scope="module")
def page(report: MonitoringReport) -> str:
    return render_html(report, generated_at=GENERATED)


def shown(value: Any) -> str:
    """A number as a table cell of the page holds it: the exact JSON value as its title, 4 digits shown."""
    text = str(value) if isinstance(value, int) else f"{value:.4g}"
    return f'title="{json.dumps(value)}">{text}<'


def figure_of(page: str, anchor: str) -> str:
    start = page.index(f'<figure id="{anchor}">')
    return page[start : page.index("</figure>", start)]


def test_the_page_has_every_section_and_a_plot_per_compared_column(
    page: str, report: MonitoringReport
) -> None:
    assert report.drift is not None
    for anchor in ("summary", "drift", "distributions", "prediction", "multivariate", "performance",
                   "fairness", "ops", "facts"):  # fmt: skip
        assert f'<section id="{anchor}">' in page, anchor
    columns = [f.column for f in report.drift.features]
    assert set(columns) == {"income", "age", "gender", "plan"}
    for i, column in enumerate(columns):
        plot = figure_of(page, f"dist-{i}")
        assert "<svg" in plot and f"<b>{column}</b>" in plot
    assert "<svg" in figure_of(page, "out-0")  # the prediction's distribution
    assert "Monitoring report: churn" in page and "Generated</dt><dd>2025-03-04 12:00 UTC" in page


def test_drifted_rows_are_highlighted(page: str, report: MonitoringReport) -> None:
    assert report.drift is not None
    drifted = set(report.drift.drifted_columns)
    assert "income" in drifted and "plan" in drifted and "age" not in drifted
    rows = re.findall(r'<tr class="(drifted|)"><td><a href="#dist-\d+">([^<]+)</a>', page)
    assert {name for css, name in rows if css == "drifted"} == drifted
    assert {name for css, name in rows if css == ""} == {"age", "gender"}


def test_every_figure_is_the_json_s(page: str, report: MonitoringReport) -> None:
    data = json.loads(json.dumps(report.to_json()))
    drift = data["drift"]
    for feature in drift["features"] + drift["prediction"]:
        for key in ("statistic", "threshold", "reference_count", "current_count"):
            assert shown(feature[key]) in page, (feature["column"], key)
        if feature["p_value"] is not None:
            assert shown(feature["p_value"]) in page
        for score in feature["scores"].values():
            if score is not None:
                assert f'title="{json.dumps(score)}">{score:.4g}<' in page
    assert f'title="{json.dumps(drift["drift_share"])}">{drift["drift_share"]:.4g}<' in page
    assert f'title="{json.dumps(drift["multivariate"]["roc_auc"])}"' in page

    performance = data["performance"]
    accuracies = [w["metrics"]["accuracy"] for w in performance["windows"]]
    assert None in accuracies and len({a for a in accuracies if a is not None}) > 1  # a gap and a change
    for window in performance["windows"]:
        assert shown(window["labelled"]) in page
        for value in window["metrics"].values():
            if value is not None:
                assert shown(value) in page
        if window["metrics"]["accuracy"] is not None:
            assert f">n={window['labelled']}</text>" in page  # labelled counts under the line
    assert shown(performance["registered"]["accuracy"]) in page
    assert 'stroke-dasharray="5 4"><title>registered 0.9</title>' in page

    gender = data["fairness"]["gender"]
    for key in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference"):
        assert f'title="{json.dumps(gender[key])}"' in page, key
    for group in gender["groups"].values():
        for value in group.values():
            assert shown(value) in page

    versions = data["ops"]["versions"]
    assert set(versions) == {"1.0.0", "0.9.0"}
    for figures in versions.values():
        for key in ("requests", "errors", "error_rate", "p50_latency_ms", "p99_latency_ms"):
            assert shown(figures[key]) in page, key


def test_the_plots_count_what_the_summaries_hold(page: str, report: MonitoringReport) -> None:
    assert report.drift is not None and report.current_summary is not None
    assert report.reference_summary is not None
    for i, feature in enumerate(report.drift.features):
        plot = figure_of(page, f"dist-{i}")
        reference = [int(n) for n in re.findall(r"reference (\d+) \(", plot)]
        current = [int(n) for n in re.findall(r"current (\d+) \(", plot)]
        assert sum(reference) == report.reference_summary.columns[feature.column].count, feature.column
        assert sum(current) == report.current_summary.columns[feature.column].count, feature.column
    plan = figure_of(page, f"dist-{[f.column for f in report.drift.features].index('plan')}")
    assert all(f">{name}<title>" in plan for name in PLANS)  # one pair of bars per category


def test_the_page_fetches_nothing(page: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    for needle in ("<script", "<link", "<img", "@import", "url(", "<iframe"):
        assert needle not in page.lower(), needle
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page


def rename(data: Any, old: str, new: str) -> Any:
    """``data`` with every key and string ``old`` replaced by ``new``."""
    if isinstance(data, dict):
        return {(new if k == old else k): rename(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [rename(v, old, new) for v in data]
    return new if data == old else data


def test_every_user_string_is_escaped(report: MonitoringReport) -> None:
    hostile = "<script>alert('x')</script>"
    data = rename(rename(report.to_json(), "plan", hostile), "churn", '"><b>ep</b>')
    data = rename(data, "pro", "<img src=x onerror=alert(1)>")
    found = MonitoringReport.from_json(data)
    assert found.drift is not None and found.drift.feature(hostile) is not None
    page = render_html(found)
    assert "<script" not in page and "<img" not in page and "<b>ep</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;b&gt;ep&lt;/b&gt;" in page


def test_an_empty_window_renders_its_notes(tmp_path: Path) -> None:
    env = open_env(tmp_path)
    try:
        empty = env.service.report("churn", window="1h", now=at(-120))
        page = render_html(empty)
    finally:
        env.platform.close()
        reset_sdk()
    assert "No drift: there is no reference or no rows." in page
    assert "no predictions of &#x27;churn&#x27; in the window" in page
    assert "No request was served" in page


def test_odd_columns_are_drawn_and_a_far_outlier_is_compressed(report: MonitoringReport) -> None:
    constant = ColumnSummary("flag", "numeric", 10, 0, counts=(0, 10, 0), edges=(1.0, 1.0), total=10.0,
                             total_sq=10.0, minimum=1.0, maximum=1.0)  # fmt: skip
    empty = ColumnSummary("gone", "numeric", 0, 10, counts=(0,))
    edges = (*[float(e) for e in range(0, 100, 5)], 95.0)  # 20 bins, then the maximum's own
    wide_ref = ColumnSummary("wide", "numeric", 195, 0, counts=(0, *[10] * 19, 5, 0), edges=edges,
                             minimum=0.0, maximum=95.0)  # fmt: skip
    wide_cur = ColumnSummary("wide", "numeric", 195, 0, counts=(0, *[5] * 19, 0, 100), edges=edges,
                             minimum=0.0, maximum=1e6)  # fmt: skip
    data = report.to_json()
    for name, (ref, cur) in {
        "flag": (constant, constant),
        "gone": (empty, empty),
        "wide": (wide_ref, wide_cur),
    }.items():
        data["reference_summary"]["columns"][name] = ref.to_json()
        data["current_summary"]["columns"][name] = cur.to_json()
        entry = {**data["drift"]["features"][0], "column": name, "statistic": None, "drifted": False}
        data["drift"]["features"].append(entry)
    page = render_html(MonitoringReport.from_json(data))
    assert "<b>flag</b>" in page and "<b>gone</b>" in page and "The reference has no values." in page
    wide = figure_of(page, f"dist-{len(data['drift']['features']) - 1}")
    assert "Drawn compressed: values above the reference&#x27;s maximum reach 1e+06." in wide
    assert sum(int(n) for n in re.findall(r"current (\d+) \(", wide)) == 195
    assert ">1e+06</text>" in wide  # the axis ends at the window's true maximum
