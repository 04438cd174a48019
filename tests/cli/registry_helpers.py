"""Registering small versions for the CLI tests, without any flavor code."""

from __future__ import annotations

from pathlib import Path

import steward
from steward.registry.models import VersionSpec
from steward.tracking.models import RunStatus, SystemInfo


def register(
    folder: Path,
    model: str = "churn",
    datasets: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    run_name: str | None = None,
    git_dirty: bool = True,
) -> str:
    """Register a version of ``model`` over one small file (and a finished run if named); return it."""
    conn = steward.connect()
    try:
        run_id = None
        if run_name is not None:
            run = conn.tracking.create_run(
                "churn-exp", run_name, system=SystemInfo(git_commit="0123abcd", git_dirty=git_dirty)
            )
            conn.tracking.log_params(run.id, {"C": 0.5, "penalty": "l2"})
            conn.tracking.end_run(run.id, RunStatus.FINISHED)
            run_id = run.id
        local = folder / f"{model}-weights.bin"
        local.write_bytes(b"weights of " + model.encode())
        uploaded = conn.registry.upload_file(model, local, "model.bin")
        spec = VersionSpec(
            flavor="sklearn",
            files=[uploaded],
            run_id=run_id,
            datasets=datasets if datasets is not None else {"train": "ds-1"},
            metrics=metrics if metrics is not None else {"auc": 0.9},
        )
        return conn.registry.create_version(model, spec).version
    finally:
        conn.close()
