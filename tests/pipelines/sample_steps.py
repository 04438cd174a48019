"""Module-level steps and pipelines for the pipeline tests (worker processes import them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import steward
from steward import pipeline, step


@step
def make_frame(n: int) -> pd.DataFrame:
    """A frame of ``n`` rows with a label that a model can learn."""
    print(f"making {n} rows")
    x = np.arange(n, dtype=float)
    return pd.DataFrame({"x": x, "y": (x > n / 2).astype(int)})


@step
def split(df: pd.DataFrame, test_size: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a frame in two."""
    k = int(len(df) * (1 - test_size))
    return df.iloc[:k], df.iloc[k:]


@step(environment=["scikit-learn"])
def fit(train_df: pd.DataFrame, C: float) -> steward.Model:  # noqa: N803 (scikit-learn's name)
    """Fit a logistic regression; log a metric to the step's own run."""
    from sklearn.linear_model import LogisticRegression

    steward.log_metric("train_rows", len(train_df))
    return LogisticRegression(C=C).fit(train_df[["x"]], train_df["y"])


@step
def score(model: steward.Model, test_df: pd.DataFrame) -> dict[str, float]:
    """Accuracy of the model on the test frame."""
    predicted = model.predict(test_df[["x"]])
    return {"accuracy": float((predicted == test_df["y"]).mean()), "rows": float(len(test_df))}


@pipeline
def train_pipeline(n: int = 200, C: float = 1.0):  # noqa: N803
    """make → split → fit → score."""
    train_df, test_df = split(make_frame(n))
    return score(fit(train_df, C), test_df)


@step
def source() -> int:
    """One."""
    return 1


@step
def add(x: int, i: int) -> int:
    """x + i."""
    return x + i


@step
def total(values: list[int]) -> int:
    """The sum."""
    return sum(values)


@pipeline
def fan(width: int = 20):
    """One source, ``width`` parallel steps, one sink."""
    s = source()
    return total([add(s, i) for i in range(width)])


@step
def explode(x: int, marker: str) -> int:
    """Fail unless the file ``marker`` exists."""
    if not (marker and Path(marker).exists()):
        raise ValueError(f"exploded on {x}")
    return x * 10


@pipeline
def branches(marker: str = ""):
    """Two branches from one source: ``bad`` fails (until the file ``marker`` exists), ``good`` does not."""
    s = source()
    bad = explode(s, marker)
    after_bad = add(bad, 1)
    good = add(s, 2)
    return {"bad": after_bad, "good": good}


@step(retries=2, retry_delay=0.05, backoff=2.0)
def flaky(counter: str) -> int:
    """Fail on the first two attempts (counted in a file), then succeed."""
    path = Path(counter)
    attempts = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempts))
    if attempts < 3:
        raise RuntimeError(f"attempt {attempts} failed")
    return attempts


@pipeline
def flaky_pipeline(counter: str):
    """One flaky step."""
    return flaky(counter)


@step(timeout=0.3)
def slow(seconds: float) -> float:
    """Sleep (longer than the timeout when asked)."""
    time.sleep(seconds)
    return seconds


@pipeline
def slow_pipeline(seconds: float = 2.0):
    """One slow step."""
    return slow(seconds)


@step
def wrong_type() -> int:
    """Return a string though the annotation says int."""
    return "not a number"  # type: ignore[return-value]


@pipeline
def wrong_type_pipeline():
    """One step returning the wrong type."""
    return wrong_type()


@step
def die() -> int:
    """Kill the worker process."""
    os._exit(3)


@pipeline
def dying(width: int = 3):
    """One step kills its process; independent ones still run."""
    s = source()
    return {"dead": die(), "alive": [add(s, i) for i in range(width)]}


@step(cache=False)
def uncached(x: int) -> int:
    """Never reused."""
    return x + 100


@pipeline
def mixed_cache():
    """A cached step feeding an uncached one."""
    return uncached(source())


@step
def column_sum(table: pd.DataFrame, column: str) -> float:
    """Sum of one column."""
    return float(table[column].sum())


@pipeline
def with_frame_constant(frame: pd.DataFrame | None = None):
    """A DataFrame passed as a constant parameter."""
    return column_sum(frame, "x")


@step
def numbers(n: int) -> np.ndarray:
    """An array."""
    return np.arange(n)


@step
def mean_of(values: np.ndarray) -> float:
    """Its mean."""
    return float(values.mean())


@pipeline
def arrays(n: int = 10):
    """numbers → mean."""
    return mean_of(numbers(n))
