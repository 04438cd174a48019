"""Fixtures of the serving tests: models registered once per session, real inference servers.

``models`` registers, in one embedded Steward home shared by the session:

- ``bc`` 1.0.0: a breast-cancer logistic regression fitted on a DataFrame (30 float64 columns), with an
  ``onnx`` format (``export_onnx``), alias ``production``;
- ``bc_sk`` 1.0.0: the same estimator without ONNX (the scikit-learn path; NaN makes it raise);
- ``tensor`` 1.0.0: a logistic regression fitted on a float32 array (tensor signature ``[-1, 30]``);
- ``ab`` 1.0.0 (the logistic regression), 1.1.0 (always answers 1) and 1.2.0 (the logistic
  regression again, refitted): versions to move traffic between.

``serving(app)`` runs a ``ServingApp`` under uvicorn (uvloop, httptools) on a free 127.0.0.1 port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import steward
from steward.config import Settings, load_settings
from steward.registry.sdk import export_onnx
from steward.serving.app import ServingApp
from steward.serving.models import Arm, TrafficPlan
from steward.serving.server import ServeOptions, build_app
from tests.conftest import reset_sdk
from tests.plugins.server import running_server


@dataclass
class Models:
    """The session's registered models and what the tests compare against.

    Attributes:
        home: The Steward home holding them.
        settings: Settings on that home.
        X: The breast-cancer features (DataFrame).
        lr: The logistic regression behind ``bc``, ``bc_sk`` and ``ab`` 1.0.0.
        lr_array: The one behind ``tensor`` (fitted on float32 arrays).
    """

    home: Path
    settings: Settings
    X: pd.DataFrame
    lr: LogisticRegression
    lr_array: LogisticRegression

    def records(self, rows: slice | Sequence[int]) -> list[dict[str, float]]:
        """Rows of X as JSON records."""
        frame = self.X.iloc[rows] if isinstance(rows, slice) else self.X.iloc[list(rows)]
        return frame.to_dict(orient="records")  # type: ignore[return-value]


@contextmanager
def sdk_on(home: Path) -> Iterator[None]:
    """Point the SDK at ``home`` for the block (other tests reset it after themselves)."""
    steward.configure(home=home)
    try:
        yield
    finally:
        reset_sdk()


def register(
    home: Path, name: str, model: Any, signature: Any, onnx: bool = False, alias: str | None = None
) -> str:
    """Register ``model`` as a new version of ``name`` in ``home``; return the version."""
    with sdk_on(home):
        version = steward.register_model(name, model, signature=signature)
        if onnx:
            export_onnx(version.uri)
        if alias is not None:
            steward.set_alias(name, alias, version.version)
    return version.version


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """The models every serving test uses, registered once."""
    home = tmp_path_factory.mktemp("serving") / "home"
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    lr = LogisticRegression(max_iter=10_000).fit(features, target)
    signature = steward.infer_signature(features, target)
    register(home, "bc", lr, signature, onnx=True, alias="production")
    register(home, "bc_sk", lr, signature)
    array = features.to_numpy(dtype=np.float32)
    lr_array = LogisticRegression(max_iter=10_000).fit(array, target)
    register(home, "tensor", lr_array, steward.infer_signature(array))
    register(home, "ab", lr, signature)
    register(home, "ab", DummyClassifier(strategy="constant", constant=1).fit(features, target), signature)
    register(home, "ab", LogisticRegression(max_iter=10_000, C=0.9).fit(features, target), signature)
    return Models(home, load_settings(home=home), features, lr, lr_array)


class PlanSource:
    """A traffic source whose plans a test sets (``source.set(plan)``): the real Protocol, no stand-in
    for the router under test."""

    def __init__(self, *plans: TrafficPlan) -> None:
        self._plans = list(plans)
        self._lock = threading.Lock()

    def set(self, *plans: TrafficPlan) -> None:
        """Replace the plans (the next poll sees them)."""
        with self._lock:
            self._plans = list(plans)

    def plans(self) -> list[TrafficPlan]:
        """The plans now."""
        with self._lock:
            return list(self._plans)


def plan(
    endpoint: str, model: str, *arms: tuple[str, str, float], revision: int = 0, sticky: str | None = None
) -> TrafficPlan:
    """A plan from ``(version, role, weight)`` triples."""
    return TrafficPlan(
        endpoint, model, tuple(Arm(v, r, w) for v, r, w in arms), sticky_key=sticky, revision=revision
    )


def make_app(models: Models, source: Any = None, **options: Any) -> ServingApp:
    """A ServingApp on the session's models (no prediction log unless ``log_sample_rate`` is given)."""
    options.setdefault("log_sample_rate", 0.0)
    if source is None and "config" not in options:
        options.setdefault("references", ("bc@production",))
    return build_app(ServeOptions(**options), models.settings, source=source)


@contextmanager
def serving(app: ServingApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn (uvloop, httptools) in a thread on a free port; yield its base URL."""
    with running_server(
        app, "/v2/health/live", loop="uvloop", http="httptools", access_log=False, timeout_graceful_shutdown=5
    ) as url:
        yield url


def wait_for(condition: Any, timeout: float = 20.0, what: str = "the condition") -> None:
    """Poll ``condition()`` until it is true (fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.02)
