"""Building pipelines: bad graphs, bad arguments and bad options fail before anything runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import steward
from steward import InvalidInput, pipeline, step
from steward.pipelines import sdk
from steward.pipelines.dsl import StepOutput, parse_duration
from steward.pipelines.graph import Graph, Node
from tests.pipelines import sample_steps as s


def _no_pipeline_runs() -> bool:
    return sdk.list_pipeline_runs() == []


def test_a_step_called_outside_a_pipeline_is_the_plain_function() -> None:
    assert s.add(2, 3) == 5
    assert s.split.n_outputs == 2 and s.add.n_outputs == 1


def test_a_pipeline_builds_a_graph_with_unique_keys_for_repeated_steps() -> None:
    graph = s.branches.graph()
    assert list(graph.nodes) == ["source", "explode", "add", "add_2"]
    assert graph.upstream() == {"source": [], "explode": ["source"], "add": ["explode"], "add_2": ["source"]}
    assert graph.dependants()["source"] == ["explode", "add_2"]


def test_unknown_and_missing_pipeline_parameters_are_refused_before_anything_runs(steward_home: Path) -> None:
    with pytest.raises(InvalidInput, match=r"unexpected keyword argument 'D'.*its parameters: n, C"):
        s.train_pipeline.run(D=1)
    with pytest.raises(InvalidInput, match="missing a required argument: 'counter'"):
        s.flaky_pipeline.run()
    assert _no_pipeline_runs()


def test_a_step_called_with_an_unknown_input_is_refused(steward_home: Path) -> None:
    @pipeline
    def bad():
        return s.add(s.source(), j=3)

    with pytest.raises(InvalidInput, match="step 'add' called with bad arguments"):
        bad.run()
    assert _no_pipeline_runs()


def test_an_input_from_a_step_outside_the_graph_is_refused() -> None:
    stray = StepOutput("elsewhere", 0)

    @pipeline
    def bad():
        return s.add(stray, 1)

    with pytest.raises(InvalidInput, match="input 'x' comes from unknown step 'elsewhere'"):
        bad.graph()


def test_a_cycle_is_refused_naming_its_steps() -> None:
    graph = Graph()
    graph.add(Node("a", s.add, {"x": StepOutput("b", 0), "i": 1}))
    graph.add(Node("b", s.add, {"x": StepOutput("a", 0), "i": 1}))
    with pytest.raises(InvalidInput, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        graph.validate()


def test_unpacking_a_single_output_says_how_to_declare_several() -> None:
    @pipeline
    def bad():
        first, _second = s.source()
        return first

    with pytest.raises(InvalidInput, match=r"annotate the step's return as a tuple of fixed length"):
        bad.graph()


def test_branching_on_a_placeholder_in_the_pipeline_body_is_explained() -> None:
    @pipeline
    def bad():
        return s.add(1, 2) if s.source() else None

    with pytest.raises(InvalidInput, match="branch inside a step"):
        bad.graph()


def test_an_empty_pipeline_and_a_clashing_parameter_name_are_refused() -> None:
    @pipeline
    def empty():
        return None

    with pytest.raises(InvalidInput, match="calls no steps"):
        empty.graph()
    with pytest.raises(InvalidInput, match="cannot be named executor"):

        @pipeline
        def clash(executor: str = "x"):
            return s.source()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(10, 10.0), (2.5, 2.5), ("500ms", 0.5), ("30s", 30.0), ("10m", 600.0), ("1h", 3600.0)],
)
def test_durations_are_read_in_the_usual_units(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-1s", 0, True])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="timeout"):
        parse_duration(value)  # type: ignore[arg-type]


def test_bad_step_options_are_refused() -> None:
    def f() -> int:
        return 1

    with pytest.raises(InvalidInput, match="retries must be a whole number"):
        step(retries=-1)(f)
    with pytest.raises(InvalidInput, match="unknown resources"):
        step(resources={"cpus": 2})(f)
    with pytest.raises(InvalidInput, match="is not a duration"):
        step(timeout="forever")(f)


def test_an_unknown_executor_is_refused_before_anything_runs(steward_home: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown executor 'threads'"):
        s.fan.run(executor="threads", width=2)
    assert _no_pipeline_runs()


def test_a_step_the_workers_cannot_import_fails_with_a_clear_message(steward_home: Path) -> None:
    @step
    def local_only(x: int) -> int:
        return x

    @pipeline
    def nested():
        return local_only(s.source())

    run = nested.run(executor="processes")
    assert run.steps["local_only"].state is steward.StepState.FAILED
    assert "cannot run in a worker process: it is defined inside a function" in (
        run.steps["local_only"].error or ""
    )
    assert nested.run(executor="local").result == 1


def test_load_pipeline_errors_are_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('no config')\n")
    good = tmp_path / "good.py"
    good.write_text(
        "from steward import pipeline, step\n"
        "@step\ndef one() -> int:\n    return 1\n"
        "@pipeline\ndef p():\n    return one()\n"
    )
    cases = {
        f"{broken}:p": "does not import: SyntaxError",
        f"{raising}:p": "does not import: RuntimeError: no config",
        f"{good}:q": "has no pipeline 'q' (it has: p)",
        f"{tmp_path / 'absent.py'}:p": "no such pipeline file",
        "nonsense": "is not a pipeline reference",
        f"{good}:one": "is not a @pipeline",
    }
    for reference, message in cases.items():
        with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
            sdk.load_pipeline(reference)
        assert "\n" not in caught.value.message
    loaded = sdk.load_pipeline(f"{good}:p")
    assert loaded.reference == f"{good.resolve()}:p"


def test_running_against_a_server_says_pipelines_need_the_store(steward_home: Path) -> None:
    steward.configure(uri="http://127.0.0.1:9")
    with pytest.raises(InvalidInput, match="pipelines run against the store directly"):
        s.fan.run(width=2)


def test_importing_steward_leaves_optuna_until_tune_is_used() -> None:
    import subprocess
    import sys

    code = "import sys, steward; print('optuna' in sys.modules); steward.tune; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
