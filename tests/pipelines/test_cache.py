"""Cache keys: code, inputs, parameters and the declared environment each invalidate a step."""

from __future__ import annotations

from pathlib import Path

import pytest

from steward import StepState
from steward.pipelines import cache
from steward.pipelines.sdk import load_pipeline
from tests.pipelines import sample_steps as s

PIPELINE = """
from steward import pipeline, step

@step
def base() -> int:
    return 2

@step
def scale(x: int, factor: int) -> int:
    return x * factor{change}

@pipeline
def p(factor: int = 3):
    return scale(base(), factor)
"""


def test_editing_a_steps_code_reruns_it_and_keeps_the_rest_cached(steward_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(PIPELINE.format(change=""))
    first = load_pipeline(f"{path}:p").run()
    assert first.result == 6

    path.write_text(PIPELINE.format(change=" + 1"))
    second = load_pipeline(f"{path}:p").run()

    assert second.result == 7
    assert {st.key: st.state for st in second.info.steps} == {
        "base": StepState.CACHED,
        "scale": StepState.SUCCEEDED,
    }


def test_the_key_depends_on_inputs_and_declared_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    a = cache.cache_key(s.add, {"x": ("value", 1), "i": ("value", 2)})
    assert a == cache.cache_key(s.add, {"i": ("value", 2), "x": ("value", 1)})
    assert a != cache.cache_key(s.add, {"x": ("value", 1), "i": ("value", 3)})

    before = cache.cache_key(s.fit, {"C": ("value", 1.0)})
    cache._env_digests.clear()
    monkeypatch.setattr(cache.importlib.metadata, "version", lambda dist: "999.0")
    assert cache.cache_key(s.fit, {"C": ("value", 1.0)}) != before
    cache._env_digests.clear()
