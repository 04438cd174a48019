"""What the stages of ``steward quickstart`` share: names, the ``Demo`` state, ``Stage`` and the splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt
from rich.console import Console

import steward

EXPERIMENT = "quickstart"
RUN_NAME = "lifecycle"
MODEL_NAME = "breast-cancer"
DATASET_NAME = "breast-cancer"
ID_COLUMN = "patient_id"
TARGET = "target"
TARGET_NAMES = ["malignant", "benign"]
"""What ``target`` 0 and 1 mean (scikit-learn's ``load_breast_cancer().target_names``)."""
Array = npt.NDArray[Any]


@dataclass
class Demo:
    """What the stages share: where to print, the seed, and what earlier stages produced.

    Attributes:
        console: Where stages print.
        seed: Seeds every random choice, so a rerun reproduces the data and the numbers.
        env_prefix: Prefix for the commands shown at the end (``STEWARD_HOME=… `` with ``--home``).
        raw: The raw dataset version the pipeline's ingest step published.
        dataset: Its protected copy, which the train step trains on.
        pipeline_run_id: The training pipeline's run.
        run_id: The train step's run (params, per-epoch metrics, the model file).
        model_version: The version the register step registered.
        best_params: What the tuning study found best.
        notes: Sentences about what was recorded, printed at the end.
        next_steps: ``(command, what it shows)`` pairs printed at the end.
    """

    console: Console
    seed: int = 42
    env_prefix: str = ""
    raw: steward.DatasetVersion | None = None
    dataset: steward.DatasetVersion | None = None
    pipeline_run_id: str | None = None
    run_id: str | None = None
    model_version: str | None = None
    best_params: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    next_steps: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One step of the demo: a name, a one-line title, and the function that does it."""

    name: str
    title: str
    run: Callable[[Demo], None]
