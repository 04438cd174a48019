"""The tracking contract: the same behaviour embedded (SQLite, PostgreSQL) and over HTTP."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steward.core.time import to_us
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from steward.tracking.fluent import columns_to_frame
from steward.tracking.models import (
    RUN_BASE_COLUMNS,
    MetricSeries,
    RunStatus,
    SystemInfo,
    TrackingBackend,
    run_columns,
)


def series(key: str, values: list[float], steps: list[int] | None = None, stamp: int = 1_000) -> MetricSeries:
    n = len(values)
    return MetricSeries(
        key,
        np.asarray(steps if steps is not None else range(n), dtype=np.int64),
        np.asarray(values, dtype=np.float64),
        np.full(n, stamp, dtype=np.int64),
    )


def test_experiment_is_created_once_and_found_by_name_or_id(tracking: TrackingBackend) -> None:
    exp = tracking.create_experiment("churn", description="customer churn")
    assert tracking.get_experiment("churn").id == exp.id
    assert tracking.get_experiment(exp.id).name == "churn"
    assert tracking.get_experiment("churn").description == "customer churn"
    with pytest.raises(AlreadyExists):
        tracking.create_experiment("churn")
    assert [e.name for e in tracking.list_experiments()] == ["churn"]


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a/b", "x" * 129])
def test_invalid_experiment_name_is_refused_naming_the_field(tracking: TrackingBackend, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        tracking.create_experiment(name)
    assert "experiment" in info.value.message
    assert info.value.details["field"] == "experiment"


def test_unknown_experiment_and_run_are_not_found(tracking: TrackingBackend) -> None:
    with pytest.raises(NotFound, match="nope"):
        tracking.get_experiment("nope")
    with pytest.raises(NotFound, match="0123"):
        tracking.get_run("0123")
    with pytest.raises(NotFound):
        tracking.search_runs(["nope"])


def test_run_records_status_times_and_system_info(tracking: TrackingBackend) -> None:
    system = SystemInfo(
        user="ana",
        host="box",
        entry_point="/srv/train.py",
        git_commit="a" * 40,
        git_dirty=True,
        python_version="3.11.7",
        packages={"numpy": "2.0"},
    )
    run = tracking.create_run("churn", name="baseline", system=system, tags={"team": "risk"})
    assert run.status is RunStatus.RUNNING and run.end_time is None
    assert (run.user, run.host, run.entry_point) == ("ana", "box", "/srv/train.py")
    assert (run.git_commit, run.git_dirty, run.python_version) == ("a" * 40, True, "3.11.7")
    assert run.environment_digest is not None and len(run.environment_digest) == 64
    assert run.tags == {"team": "risk"}
    tracking.end_run(run.id, RunStatus.FINISHED)
    ended = tracking.get_run(run.id)
    assert ended.status is RunStatus.FINISHED
    assert ended.end_time is not None and ended.end_time >= ended.start_time


def test_failed_run_keeps_its_error_message(tracking: TrackingBackend) -> None:
    run = tracking.create_run("churn")
    tracking.end_run(run.id, RunStatus.FAILED, "ValueError: bad fold")
    ended = tracking.get_run(run.id)
    assert ended.status is RunStatus.FAILED and ended.error == "ValueError: bad fold"
    with pytest.raises(Conflict):
        tracking.end_run(run.id, RunStatus.FINISHED)


def test_params_are_text_and_cannot_change(tracking: TrackingBackend) -> None:
    run = tracking.create_run("churn")
    tracking.log_params(run.id, {"model": "lr", "C": 1.0, "balanced": True})
    tracking.log_params(run.id, {"C": 1.0})  # the same value again is fine
    with pytest.raises(Conflict) as info:
        tracking.log_params(run.id, {"C": 2.0})
    assert info.value.details["field"] == "params.C"
    assert tracking.get_run(run.id).params == {"C": "1.0", "balanced": "True", "model": "lr"}


def test_bad_param_value_names_the_field(tracking: TrackingBackend) -> None:
    run = tracking.create_run("churn")
    with pytest.raises(InvalidInput) as info:
        tracking.log_params(run.id, {"layers": [1, 2]})
    assert info.value.details["field"] == "params.layers"


def test_metric_history_and_latest_value(tracking: TrackingBackend) -> None:
    run = tracking.create_run("churn")
    assert tracking.log_metrics(run.id, [series("loss", [0.9, 0.5], [0, 1]), series("auc", [0.7])]) == 3
    tracking.log_metrics(run.id, [series("loss", [0.3, 0.4], [3, 2], stamp=2_000)])
    history = tracking.get_metric_history(run.id, "loss")
    assert history.steps.tolist() == [0, 1, 2, 3]
    assert history.values.tolist() == [0.9, 0.5, 0.4, 0.3]
    assert tracking.get_run(run.id).metrics == {"auc": 0.7, "loss": 0.3}
    with pytest.raises(NotFound):
        tracking.get_metric_history(run.id, "never")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_metric_is_refused_and_nothing_is_written(tracking: TrackingBackend, bad: float) -> None:
    run = tracking.create_run("churn")
    with pytest.raises(InvalidInput) as info:
        tracking.log_metrics(run.id, [series("ok", [1.0]), series("loss", [0.1, bad])])
    assert info.value.details["field"] == "metrics.loss"
    assert tracking.get_run(run.id).metrics == {}


def test_non_integer_step_is_refused(tracking: TrackingBackend) -> None:
    run = tracking.create_run("churn")
    bad = MetricSeries("loss", np.array([0.5]), np.array([0.1]), np.array([1], dtype=np.int64))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as info:
        tracking.log_metrics(run.id, [bad])
    assert info.value.details["field"] == "metrics.loss.step"


def test_writes_to_a_finished_run_conflict(tracking: TrackingBackend, tmp_path: Path) -> None:
    run = tracking.create_run("churn")
    tracking.end_run(run.id, RunStatus.FINISHED)
    file = tmp_path / "a.txt"
    file.write_text("x")
    for write in (
        lambda: tracking.log_params(run.id, {"a": 1}),
        lambda: tracking.log_metrics(run.id, [series("loss", [1.0])]),
        lambda: tracking.log_artifact(run.id, file, "a.txt"),
    ):
        with pytest.raises(Conflict, match="FINISHED"):
            write()
    tracking.set_tags(run.id, {"reviewed": "yes"})  # annotating afterwards is allowed
    assert tracking.get_run(run.id).tags == {"reviewed": "yes"}


def test_runs_nest_under_a_parent(tracking: TrackingBackend) -> None:
    parent = tracking.create_run("churn", name="sweep")
    child = tracking.create_run("churn", name="trial-1", parent_run_id=parent.id)
    assert child.parent_run_id == parent.id
    found = tracking.search_runs(["churn"], f"parent_run_id = '{parent.id}'")
    assert [r.id for r in found] == [child.id]
    with pytest.raises(NotFound):
        tracking.create_run("churn", parent_run_id="missing")


def _populate(tracking: TrackingBackend) -> dict[str, str]:
    ids = {}
    for name, model, auc in [("a", "lr", 0.95), ("b", "lr", 0.85), ("c", "rf", 0.97), ("d", "lr", 0.91)]:
        run = tracking.create_run("churn", name=name)
        tracking.log_params(run.id, {"model": model})
        tracking.log_metrics(run.id, [series("auc", [auc])])
        ids[name] = run.id
    return ids


def test_search_filters_and_orders(tracking: TrackingBackend) -> None:
    ids = _populate(tracking)
    found = tracking.search_runs(["churn"], "metrics.auc > 0.9 and params.model = 'lr'", ["metrics.auc DESC"])
    assert [r.id for r in found] == [ids["a"], ids["d"]]
    assert found[0].metrics == {"auc": 0.95} and found[0].params == {"model": "lr"}
    found = tracking.search_runs(["churn"], "params.model in ('rf') or metrics.auc < 0.9", ["run_name"])
    assert [r.name for r in found] == ["b", "c"]
    assert len(tracking.search_runs(["churn"], max_results=2)) == 2


def test_search_by_column_holds_what_the_runs_hold(tracking: TrackingBackend) -> None:
    ids = _populate(tracking)
    tracking.set_tags(ids["c"], {"team": "risk"})
    tracking.log_metrics(ids["b"], [series("loss", [0.4])])
    tracking.end_run(ids["a"], RunStatus.FINISHED)
    query = ("churn",), "params.model = 'lr' or metrics.auc > 0.96", ["run_name"]

    columns = tracking.search_run_columns(*query)
    runs = tracking.search_runs(*query)

    pd.testing.assert_frame_equal(columns_to_frame(columns), columns_to_frame(run_columns(runs)))
    assert columns["run_id"] == [ids[n] for n in "abcd"]
    assert list(columns) == [*RUN_BASE_COLUMNS, "metrics.auc", "metrics.loss", "params.model", "tags.team"]
    assert columns["metrics.auc"] == [0.95, 0.85, 0.97, 0.91]
    assert [v == 0.4 for v in columns["metrics.loss"]] == [False, True, False, False]
    assert [isinstance(v, float) and math.isnan(v) for v in columns["tags.team"]] == [True, True, False, True]
    assert columns["end_time"][0] is not None and columns["end_time"][1:] == [None, None, None]
    assert columns["start_time"] == [to_us(r.start_time) // 1000 for r in runs]
    empty = tracking.search_run_columns(["churn"], "metrics.auc > 2")
    assert empty == {name: [] for name in RUN_BASE_COLUMNS}


@pytest.mark.parametrize(
    "bad", ["metrics.auc >", "metrics.auc > 'x'", "params.model > 1", "bogus = 1", "metrics.auc = 1 and"]
)
def test_malformed_filter_is_invalid_input(tracking: TrackingBackend, bad: str) -> None:
    tracking.create_experiment("churn")
    with pytest.raises(InvalidInput) as info:
        tracking.search_runs(["churn"], bad)
    assert info.value.details["field"] == "filter"


def test_deleted_runs_leave_search_and_come_back(tracking: TrackingBackend) -> None:
    ids = _populate(tracking)
    tracking.delete_run(ids["a"])
    assert ids["a"] not in [r.id for r in tracking.search_runs(["churn"])]
    assert tracking.get_run(ids["a"]).deleted
    assert ids["a"] in [r.id for r in tracking.search_runs(["churn"], include_deleted=True)]
    with pytest.raises(Conflict):
        tracking.log_params(ids["a"], {"x": 1})
    tracking.restore_run(ids["a"])
    assert ids["a"] in [r.id for r in tracking.search_runs(["churn"])]
    with pytest.raises(Conflict):
        tracking.restore_run(ids["a"])


def test_artifacts_round_trip_and_are_stored_once(tracking: TrackingBackend, tmp_path: Path) -> None:
    run = tracking.create_run("churn")
    file = tmp_path / "model.bin"
    file.write_bytes(b"\x00weights" * 1000)
    first = tracking.log_artifact(run.id, file, "model/model.bin")
    second = tracking.log_artifact_bytes(run.id, b"\x00weights" * 1000, "copy.bin")
    assert first.digest == second.digest and first.size == 8000
    assert [a.path for a in tracking.list_artifacts(run.id)] == ["copy.bin", "model/model.bin"]
    dest = tracking.download_artifact(run.id, "model/model.bin", tmp_path / "out" / "m.bin")
    assert dest.read_bytes() == file.read_bytes()
    with pytest.raises(NotFound):
        tracking.download_artifact(run.id, "missing.bin", tmp_path / "x")
    with pytest.raises(InvalidInput):
        tracking.log_artifact_bytes(run.id, b"x", "../escape.txt")


def test_steps_beyond_64_bits_are_refused(tracking: TrackingBackend) -> None:
    run = tracking.create_run("churn")
    huge = MetricSeries(
        "loss", np.array([2**64 - 1], dtype=np.uint64), np.array([0.1]), np.array([1], dtype=np.int64)
    )  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as info:
        tracking.log_metrics(run.id, [huge])
    assert info.value.details["field"] == "metrics.loss.step"
