"""The driver-level statements every run makes (``tracking.hot_sql``), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import exc

from steward.config import load_settings
from steward.errors import Conflict
from steward.store.platform import Platform
from steward.tracking import hot_sql
from steward.tracking import repository as repo
from steward.tracking.models import MetricSeries, RunStatus
from steward.tracking.service import TrackingService


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrackingService]:
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    platform = Platform.from_settings(load_settings(home=tmp_path / "home", db=db))
    yield TrackingService(platform)
    platform.close()


def _points(key: str, value: float, step: int, stamp: int) -> MetricSeries:
    return MetricSeries(key, np.array([step]), np.array([value]), np.array([stamp]))


def test_the_latest_value_moves_only_to_a_later_step_or_a_later_log_of_the_same_step(
    service: TrackingService,
) -> None:
    run = service.create_run("e")
    service.log_metrics(run.id, [_points("loss", 0.5, step=5, stamp=1_000)])
    service.log_metrics(run.id, [_points("loss", 0.9, step=3, stamp=2_000)])  # an earlier step, later
    assert service.get_run(run.id).metrics == {"loss": 0.5}
    service.log_metrics(run.id, [_points("loss", 0.4, step=5, stamp=3_000)])  # the same step, later
    assert service.get_run(run.id).metrics == {"loss": 0.4}
    service.log_metrics(run.id, [_points("loss", 0.1, step=5, stamp=500)])  # the same step, earlier
    assert service.get_run(run.id).metrics == {"loss": 0.4}
    assert len(service.get_metric_history(run.id, "loss")) == 4  # every point kept in the history


def test_params_and_the_end_write_only_a_running_run(service: TrackingService) -> None:
    run = service.create_run("e", tags={"team": "risk"})
    service.log_params(run.id, {"a": 1, "b": "x"})
    service.log_params(run.id, {"a": 1})  # the same value again: nothing to refuse
    with pytest.raises(Conflict, match=r"params\.a"):
        service.log_params(run.id, {"a": 2, "c": 3})
    assert service.get_run(run.id).params == {"a": "1", "b": "x"}  # nothing of the refused call
    service.end_run(run.id, RunStatus.FINISHED, metrics=[_points("auc", 0.9, step=0, stamp=1)])
    ended = service.get_run(run.id)
    assert ended.status is RunStatus.FINISHED and ended.end_time is not None and ended.metrics == {"auc": 0.9}
    with pytest.raises(Conflict):
        service.log_params(run.id, {"z": 1})
    with pytest.raises(Conflict):
        service.end_run(run.id, RunStatus.FAILED)
    assert service.get_run(run.id).status is RunStatus.FINISHED


def test_a_driver_error_is_raised_as_sqlalchemys(service: TrackingService) -> None:
    run = service.create_run("e")
    row = {"run_id": run.id, "path": "x", "digest": "d" * 64, "size": 1, "created_at": 1}
    with service.platform.metadata.transaction() as conn:
        repo.insert_artifact(conn, row)
    with pytest.raises(exc.IntegrityError), service.platform.metadata.transaction() as conn:
        hot_sql.execute(conn, hot_sql.statement(conn, "insert_artifact"), [row])  # the same path again
    assert [a.path for a in service.list_artifacts(run.id) if a.path == "x"] == ["x"]
