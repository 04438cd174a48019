"""Module-level objectives for the tuning tests (worker processes import steps by name)."""

from __future__ import annotations

import os
import signal
import time

import steward
from steward import pipeline, step
from steward.pipelines import tuning


@step
def quadratic(x: float, y: float = 0.0) -> float:
    """Peaks at x = 2, y = -1, where it is 0."""
    return -((x - 2.0) ** 2) - (y + 1.0) ** 2


def bowl(x: float, scale: float = 1.0) -> dict[str, float]:
    """A plain function: lowest at x = -3; logs a metric of its own to the trial's run."""
    steward.log_metric("calls", 1.0)
    return {"loss": scale * (x + 3.0) ** 2, "x_abs": abs(x)}


@step
def evaluate(x: float, offset: float) -> dict[str, float]:
    """A score that peaks at x = 1 (plus ``offset``), and a second number."""
    if x > 4.5:
        raise ValueError(f"x={x} is out of the model's range")
    return {"score": offset - (x - 1.0) ** 2, "penalty": abs(x)}


@pipeline
def scored(x: float = 0.0, offset: float = 0.0):  # type: ignore[no-untyped-def]
    """One step, returning its dict: the trial's result."""
    return evaluate(x, offset)


def learning_curve(rate: float) -> float:
    """Trials 0 and 1 learn (rising curve); later trials get worse each epoch, so they are pruned."""
    trial = tuning.current_trial()
    good = trial is None or trial.number < 2
    value = 0.0
    for epoch in range(5):
        value = (epoch + 1) * (rate if good else -rate)
        tuning.report(value, epoch)
    return value


@step
def train_curve(rate: float) -> float:
    """``learning_curve`` as a pipeline step."""
    return learning_curve(rate)


@pipeline
def curve_pipeline(rate: float = 1.0):  # type: ignore[no-untyped-def]
    """One step that reports intermediate values."""
    return train_curve(rate)


def always_fails(x: float) -> float:
    """Every trial fails, with the trial's number in the message."""
    trial = tuning.current_trial()
    raise RuntimeError(f"boom in trial {trial.number if trial else '?'}")


def fails_below_zero(x: float) -> float:
    """Fails for negative x, else x."""
    if x < 0:
        raise ValueError("negative x")
    return x


def returns_text(x: float) -> str:
    """Not a metric."""
    return "good"


class Interrupt:
    """Raises KeyboardInterrupt on trial ``at`` while ``armed`` (the test disarms it to resume)."""

    armed = True
    at = 2


def interrupted_once(x: float) -> float:
    """Ctrl-C on trial ``Interrupt.at`` while armed, else x."""
    trial = tuning.current_trial()
    if Interrupt.armed and trial is not None and trial.number == Interrupt.at:
        raise KeyboardInterrupt
    return x


def dies_on_trial_one(x: float) -> float:
    """With ``STEWARD_TEST_DIE=1``, the process is killed (SIGKILL) in the middle of trial 1."""
    trial = tuning.current_trial()
    if os.environ.get("STEWARD_TEST_DIE") == "1" and trial is not None and trial.number == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return -abs(x)


def slow(x: float) -> float:
    """Takes a tenth of a second."""
    time.sleep(0.1)
    return x
