"""What the stages of ``steward quickstart`` share: names, the ``Demo`` state, ``Stage`` and the splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt
from rich.console import Console

import steward

EXPERIMENT = "quickstart"
RUN_NAME = "sgd-logistic-regression"
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
        raw: The raw dataset version the "ingest" stage published.
        dataset: Its protected copy, which the "track" stage trains on.
        run_id: The run the "track" stage recorded.
        data: The split data the "track" stage trained on.
        model: The fitted model the "track" stage trained.
        model_version: The version the "register" stage registered.
        notes: Sentences about what was recorded, printed at the end.
        next_steps: ``(command, what it shows)`` pairs printed at the end.
    """

    console: Console
    seed: int = 42
    env_prefix: str = ""
    raw: steward.DatasetVersion | None = None
    dataset: steward.DatasetVersion | None = None
    run_id: str | None = None
    data: Splits | None = None
    model: Any = None
    model_version: str | None = None
    notes: list[str] = field(default_factory=list)
    next_steps: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One step of the demo: a name, a one-line title, and the function that does it."""

    name: str
    title: str
    run: Callable[[Demo], None]


@dataclass(frozen=True)
class Splits:
    """The demo's data, split into train, validation (per-epoch scores) and held-out test sets."""

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    feature_names: list[str]
    target_names: list[str]
