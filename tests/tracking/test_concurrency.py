"""Eight processes logging into one experiment at once lose nothing, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from steward.config import load_settings
from steward.store.platform import Platform
from steward.tracking.service import TrackingService

WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import steward

    worker = int(sys.argv[1])
    for r in range(3):
        with steward.start_run(experiment="shared", run_name=f"w{worker}-r{r}") as run:
            steward.log_params({"worker": worker, "round": r})
            for step in range(1500):
                steward.log_metric("loss", 1.0 / (step + 1), step=step)
                if step % 100 == 0:
                    steward.log_metrics({"acc": step / 1500, "lr": 0.01}, step=step)
            steward.log_metric_batch("grad", np.random.default_rng(worker).random(2000))
    """
)
PROCESSES = 8
POINTS_PER_RUN = 1500 + 15 * 2 + 2000


def _run_workers(tmp_path: Path, env: dict[str, str]) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    # A tiny flush size forces many small concurrent transactions, the hard case for the database.
    env = {**os.environ, **env, "STEWARD_METRIC_FLUSH_POINTS": "97"}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(i)], env=env, stderr=subprocess.PIPE, text=True)
        for i in range(PROCESSES)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * PROCESSES, "\n".join(errors)


def _count(service: TrackingService) -> tuple[int, int]:
    runs = service.search_runs(["shared"], max_results=1000)
    from steward.tracking import repository

    with service.platform.metadata.read() as conn:
        points = repository.count_metric_points(conn, [r.id for r in runs])
    for run in runs:
        assert run.status.value == "FINISHED"
        assert len(service.get_metric_history(run.id, "loss")) == 1500
    return len(runs), points


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_eight_processes_lose_no_point(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    home = tmp_path / "home"
    env = {"STEWARD_HOME": str(home)}
    db = None
    if backend == "postgres":
        db = request.getfixturevalue("postgres_url")
        env["STEWARD_DB"] = db
    _run_workers(tmp_path, env)
    platform = Platform.from_settings(load_settings(home=home, db=db))
    try:
        runs, points = _count(TrackingService(platform))
    finally:
        platform.close()
    assert runs == PROCESSES * 3
    assert points == PROCESSES * 3 * POINTS_PER_RUN
