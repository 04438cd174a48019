"""``steward run``, ``steward runs resume|show`` of pipeline runs, ``steward pipelines list``, and the DAG.

The pipelines are the files in ``pipeline_files/`` (a chain and a diamond whose ``right`` step fails while
``DIAMOND_RIGHT_FAILS`` is set), imported by path as a user's would be.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import steward
from steward.cli import pipelines as cli_pipelines
from steward.cli.dag import dag_text, render_dag
from steward.cli.pipelines import LiveView, convert_param
from steward.errors import InvalidInput
from steward.pipelines.models import PipelineRunInfo, PipelineState, StepRun, StepState
from tests.cli.test_data import as_json, fails, run

FILES = Path(__file__).parent / "pipeline_files"
SKIPPED_MARK = "\u2013"  # the en dash marking a skipped step
CHAIN = f"{FILES / 'chain.py'}:chain"
DIAMOND = f"{FILES / 'diamond.py'}:diamond"


def one_line_error(*args: str) -> str:
    """Run a command that must fail with a Steward error on one line, no traceback; return that line."""
    message = fails(*args)
    assert message.count("\n") == 1, message
    return message


def states(info: dict[str, Any]) -> dict[str, str]:
    """Each step's state in a run's JSON."""
    return {s["key"]: s["state"] for s in info["steps"]}


@pytest.fixture
def failed_diamond(steward_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A run of the diamond in which ``right`` failed; its ``--json`` output."""
    monkeypatch.setenv("DIAMOND_RIGHT_FAILS", "1")
    info = as_json("run", DIAMOND, code=1)
    monkeypatch.delenv("DIAMOND_RIGHT_FAILS")
    return dict(info)


# -- steward run ------------------------------------------------------------------------------------


def test_run_with_params_succeeds_and_ends_with_the_dag_and_a_summary(steward_home: Path) -> None:
    result = run("run", CHAIN, "-p", "n=4", "-p", "c=0.5")
    out = result.stdout

    assert "✓ load" in out and "→ ✓ scale" in out and "→ ✓ total" in out
    assert "chain run " in out and "SUCCEEDED" in out and "3 succeeded" in out
    assert "Result: 3.0" in out  # (0 + 1 + 2 + 3) * 0.5
    assert "Params: n=4, c=0.5" in out
    [listed] = steward.list_pipeline_runs()
    assert f"steward runs show {listed.run_id}" in out
    assert listed.state is PipelineState.SUCCEEDED and listed.params["n"] == 4


def test_run_json_is_the_recorded_run_with_counts_and_the_result(steward_home: Path) -> None:
    info = as_json("run", CHAIN, "-p", "n=3", "--experiment", "sums")

    assert info["state"] == "SUCCEEDED"
    assert info["counts"] == {"SUCCEEDED": 3}
    assert info["result"] == 3.0
    assert states(info) == {"load": "SUCCEEDED", "scale": "SUCCEEDED", "total": "SUCCEEDED"}
    assert (
        steward.get_run(info["run_id"]).experiment_id
        == steward.default_connection().tracking.get_experiment("sums").id
    )


def test_param_values_take_the_type_their_parameter_is_annotated_with(steward_home: Path) -> None:
    info = as_json(
        "run", CHAIN, "-p", "n=2", "-p", "c=2", "-p", "label=007", "-p", "shout=yes", "-p", "weights=[1, 2]"
    )

    assert info["params"] == {"n": 2, "c": 2.0, "label": "007", "shout": True, "weights": [1, 2]}
    assert isinstance(info["params"]["c"], float)
    assert info["result"] == 2.0


def test_a_parameter_that_defaults_to_none_runs(steward_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "optional.py"
    source.write_text(
        "from steward import pipeline, step\n\n"
        "@step\ndef echo(x: int | None) -> int:\n    return x or 0\n\n"
        "@pipeline\ndef optional(x: int | None = None) -> int:\n    return echo(x)\n"
    )

    assert as_json("run", f"{source}:optional")["result"] == 0


def test_convert_param_covers_optional_json_and_plain_strings() -> None:
    assert convert_param("k", "none", int | None) is None
    assert convert_param("k", "5", int | None) == 5
    assert convert_param("k", "off", bool) is False
    assert convert_param("k", '{"a": 1}', None) == {"a": 1}
    assert convert_param("k", "hello world", None) == "hello world"
    assert convert_param("k", "0.5", str) == "0.5"
    with pytest.raises(InvalidInput, match="'maybe' is not a boolean"):
        convert_param("k", "maybe", bool)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "n=three"], "parameter n: 'three' is not an integer"),
        (["-p", "c=lots"], "parameter c: 'lots' is not a number"),
        (
            ["-p", "gamma=1"],
            "unexpected keyword argument 'gamma' (its parameters: n, c, label, shout, weights)",
        ),
        (["-p", "n"], "write a parameter as KEY=VALUE"),
        (["-p", "n=1", "-p", "n=2"], "parameter n is given twice"),
        (["--executor", "cloud"], "unknown executor 'cloud'"),
    ],
)
def test_bad_params_and_executors_are_one_line_errors(
    steward_home: Path, args: list[str], message: str
) -> None:
    assert message in one_line_error("run", CHAIN, *args)
    assert steward.list_pipeline_runs() == []  # nothing ran


def test_a_missing_file_a_syntax_error_and_a_failing_import_are_one_line_errors(
    steward_home: Path, tmp_path: Path
) -> None:
    # Written here rather than kept in pipeline_files/: ruff would refuse a file that does not parse.
    broken = tmp_path / "broken.py"
    broken.write_text("from steward import pipeline\n\n@pipeline\ndef broken(:\n    pass\n")

    missing = one_line_error("run", f"{tmp_path / 'nowhere.py'}:p")
    syntax = one_line_error("run", f"{broken}:broken")
    raising = one_line_error("run", f"{FILES / 'raises_at_import.py'}:unreachable")

    assert "no such pipeline file" in missing and "nowhere.py" in missing
    assert "does not import: SyntaxError" in syntax and "line 4" in syntax
    assert "does not import: RuntimeError: the feature store is not reachable from here" in raising


def test_a_missing_pipeline_name_or_a_bad_reference_is_a_one_line_error(steward_home: Path) -> None:
    assert "has no pipeline 'nope' (it has: chain)" in one_line_error("run", f"{FILES / 'chain.py'}:nope")
    assert "chain.py:load is not a @pipeline" in one_line_error("run", f"{FILES / 'chain.py'}:load")
    assert "is not a pipeline reference" in one_line_error("run", "chain.py")


def test_a_failed_branch_exits_1_names_the_step_and_skips_only_its_dependants(
    steward_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIAMOND_RIGHT_FAILS", "1")

    result = run("run", DIAMOND, code=1)
    out = result.stdout

    assert "FAILED" in out
    assert "✗ right failed:" in out
    assert "ValueError: right was told to fail" in out
    assert "Traceback" not in out  # the last lines of the error, not the whole traceback
    assert "✓ left" in out and "✗ right" in out and f"{SKIPPED_MARK} merge" in out
    [info] = steward.list_pipeline_runs()
    assert {s.key: s.state for s in info.steps} == {
        "load": StepState.SUCCEEDED,
        "left": StepState.SUCCEEDED,
        "right": StepState.FAILED,
        "merge": StepState.SKIPPED,
        "report": StepState.SKIPPED,
    }
    assert f"steward runs resume {info.run_id}" in out


def test_a_failed_run_with_json_still_prints_the_run_and_exits_1(failed_diamond: dict[str, Any]) -> None:
    assert failed_diamond["state"] == "FAILED"
    assert failed_diamond["counts"] == {"SUCCEEDED": 2, "FAILED": 1, "SKIPPED": 2}
    assert failed_diamond["result"] is None
    assert "right was told to fail" in failed_diamond["steps"][2]["error"]


def test_no_cache_runs_every_step_again_and_the_default_reuses_them(steward_home: Path) -> None:
    first = as_json("run", CHAIN)
    cached = as_json("run", CHAIN)
    fresh = as_json("run", CHAIN, "--no-cache")

    assert first["counts"] == {"SUCCEEDED": 3}
    assert cached["counts"] == {"CACHED": 3}
    assert fresh["counts"] == {"SUCCEEDED": 3}
    assert cached["result"] == fresh["result"] == 3.0


def test_the_processes_executor_runs_the_file_steps_in_workers(steward_home: Path) -> None:
    info = as_json("run", CHAIN, "-p", "n=5", "--executor", "processes:2")

    assert (info["executor"], info["state"], info["result"]) == ("processes", "SUCCEEDED", 10.0)


def test_the_live_view_runs_on_a_terminal_and_is_gone_at_the_end(
    steward_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(
        cli_pipelines, "Console", lambda **_: Console(file=screen, force_terminal=True, width=100)
    )

    result = run("run", CHAIN, "-p", "n=2")

    assert "SUCCEEDED" in result.stdout
    assert "chain" in screen.getvalue()  # drawn on the "terminal" while it ran, then cleared


# -- steward runs resume ----------------------------------------------------------------------------


def test_resume_reruns_only_what_did_not_succeed(failed_diamond: dict[str, Any]) -> None:
    first = failed_diamond

    result = run("runs", "resume", first["run_id"])
    [resumed, _] = steward.list_pipeline_runs()

    assert "SUCCEEDED" in result.stdout
    assert "↺ load" in result.stdout
    assert f"Resumed from {first['run_id']}: 2 step(s) reused" in result.stdout
    assert 'Result: "sum 6, product 6"' in result.stdout
    assert resumed.resumed_from == first["run_id"]
    assert {s.key: s.state for s in resumed.steps} == {
        "load": StepState.CACHED,
        "left": StepState.CACHED,
        "right": StepState.SUCCEEDED,
        "merge": StepState.SUCCEEDED,
        "report": StepState.SUCCEEDED,
    }
    old = {s["key"]: s["run_id"] for s in first["steps"]}
    assert resumed.step("load").cached_from == old["load"]
    assert resumed.step("left").cached_from == old["left"]


def test_resume_json_on_another_executor(failed_diamond: dict[str, Any]) -> None:
    info = as_json("runs", "resume", failed_diamond["run_id"], "--executor", "processes:2")

    assert info["executor"] == "processes"
    assert info["counts"] == {"CACHED": 2, "SUCCEEDED": 3}
    assert info["result"] == "sum 6, product 6"


def test_resume_of_an_unknown_run_is_a_one_line_error(steward_home: Path) -> None:
    assert "no pipeline run 'nope'" in one_line_error("runs", "resume", "nope")


def test_a_run_that_fails_again_on_resume_exits_1(
    failed_diamond: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIAMOND_RIGHT_FAILS", "1")

    info = as_json("runs", "resume", failed_diamond["run_id"], code=1)

    assert info["counts"] == {"CACHED": 2, "FAILED": 1, "SKIPPED": 2}


# -- steward runs show, steward pipelines list ------------------------------------------------------


def test_runs_show_of_a_pipeline_run_draws_its_dag_with_states_and_details(
    failed_diamond: dict[str, Any],
) -> None:
    resumed = as_json("runs", "resume", failed_diamond["run_id"])

    shown = run("runs", "show", resumed["run_id"]).stdout
    failed = run("runs", "show", failed_diamond["run_id"]).stdout

    assert "Pipeline" in shown and "diamond.py:diamond" in shown
    assert "↺ load" in shown and "✓ right" in shown
    assert f"Resumed from  {failed_diamond['run_id']}" in shown
    assert failed_diamond["steps"][0]["run_id"] in shown  # load's cache source, in the steps table
    assert "Result" in shown and "sum 6, product 6" in shown
    assert "✗ right" in failed and f"{SKIPPED_MARK} merge" in failed and f"{SKIPPED_MARK} report" in failed
    assert "ValueError: right was told to fail" in failed
    assert "Run run-" in shown  # the tracked run's own sections are still there
    assert "Params" in shown


def test_runs_show_json_adds_the_pipeline_run(failed_diamond: dict[str, Any]) -> None:
    shown = as_json("runs", "show", failed_diamond["run_id"])

    assert shown["id"] == failed_diamond["run_id"]
    assert shown["pipeline"]["pipeline"] == "diamond"
    assert states(shown["pipeline"]) == states(failed_diamond)


def test_runs_show_of_a_step_run_names_its_pipeline_run(failed_diamond: dict[str, Any]) -> None:
    step_run = failed_diamond["steps"][1]["run_id"]  # left

    text = run("runs", "show", step_run).stdout
    shown = as_json("runs", "show", step_run)

    assert f"Step left of pipeline run {failed_diamond['run_id']}" in text
    assert shown["pipeline_step"] == {"pipeline_run": failed_diamond["run_id"], "key": "left"}
    assert "pipeline" not in shown


def test_runs_show_of_an_ordinary_run_is_unchanged(steward_home: Path) -> None:
    with steward.start_run(experiment="plain") as plain:
        steward.log_param("a", 1)

    shown = as_json("runs", "show", plain.id)

    assert "pipeline" not in shown and "pipeline_step" not in shown
    assert "Pipeline" not in run("runs", "show", plain.id).stdout


def test_pipelines_list_shows_the_newest_runs_first(failed_diamond: dict[str, Any]) -> None:
    chain = as_json("run", CHAIN)

    table = run("pipelines", "list").stdout
    listed = as_json("pipelines", "list")
    only_chain = as_json("pipelines", "list", "--pipeline", "chain")
    newest = as_json("pipelines", "list", "-n", "1")

    assert [r["run_id"] for r in listed] == [chain["run_id"], failed_diamond["run_id"]]
    assert listed[1]["counts"] == {"SUCCEEDED": 2, "FAILED": 1, "SKIPPED": 2}
    assert [r["run_id"] for r in only_chain] == [chain["run_id"]]
    assert [r["run_id"] for r in newest] == [chain["run_id"]]
    assert chain["run_id"] in table and failed_diamond["run_id"] in table
    assert "SUCCEEDED" in table and "FAILED" in table and "local" in table


def test_pipelines_list_when_there_are_none(steward_home: Path) -> None:
    assert "No pipeline runs yet" in run("pipelines", "list").stdout
    assert as_json("pipelines", "list") == []


def test_pipeline_runs_are_shown_from_a_server_and_not_run_through_one(
    steward_home: Path, steward_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The server's home is its own: run the pipeline there (embedded, as its workers would), then ask it.
    steward.configure(home=tmp_path / "server-home")
    on_server = as_json("run", CHAIN, "-p", "n=4")
    monkeypatch.setenv("STEWARD_URI", steward_server)
    steward.configure(uri=steward_server)

    shown = run("runs", "show", on_server["run_id"]).stdout
    listed = as_json("pipelines", "list")
    refused = one_line_error("run", CHAIN)

    assert "✓ load" in shown and "→ ✓ total" in shown
    assert [r["run_id"] for r in listed] == [on_server["run_id"]]
    assert "pipelines run against the store directly" in refused


# -- the live view and the DAG ----------------------------------------------------------------------


def step(
    key: str, upstream: Sequence[str] = (), state: StepState = StepState.SUCCEEDED, **kw: Any
) -> StepRun:
    """A recorded step that took 12 ms."""
    return StepRun(
        key=key,
        step=kw.pop("name", key),
        state=state,
        upstream=list(upstream),
        attempts=kw.pop("attempts", 1),
        start_time=1_000,
        end_time=1_012,
        **kw,
    )


def run_info(steps: list[StepRun], state: PipelineState = PipelineState.SUCCEEDED) -> PipelineRunInfo:
    """A pipeline run of ``steps``."""
    return PipelineRunInfo("r1", "demo", "demo.py:demo", state, "local", {}, 0, 1_100, steps=steps)


TIMES = "\u00d7"  # the multiplication sign of a collapsed summary

QUICKSTART = ["ingest", "validate", "split", "train", "evaluate", "register"]


def test_a_chain_is_drawn_on_one_line() -> None:
    steps = [step(QUICKSTART[0])] + [step(b, [a]) for a, b in itertools.pairwise(QUICKSTART)]

    text = dag_text(run_info(steps), width=120)

    assert text.splitlines() == [
        "✓ ingest 12ms → ✓ validate 12ms → ✓ split 12ms → ✓ train 12ms → ✓ evaluate 12ms → ✓ register 12ms",
        "✓ succeeded",
    ]


def test_a_long_chain_wraps_with_arrows() -> None:
    steps = [step(QUICKSTART[0])] + [step(b, [a]) for a, b in itertools.pairwise(QUICKSTART)]

    lines = dag_text(run_info(steps), width=40, details=False, legend=False).splitlines()

    assert lines == ["✓ ingest → ✓ validate → ✓ split", "  → ✓ train → ✓ evaluate → ✓ register"]


def test_a_diamond_shows_fan_out_fan_in_and_each_state() -> None:
    steps = [
        step("load"),
        step("left", ["load"]),
        step("right", ["load"], StepState.FAILED, attempts=3, error="Traceback …\nValueError: no"),
        step("merge", ["left", "right"], StepState.SKIPPED),
        step("report", ["merge", "load"], StepState.PENDING),
    ]

    text = dag_text(run_info(steps, PipelineState.FAILED))

    assert text.splitlines() == [
        "✓ load 12ms",
        "↓",
        "✓ left 12ms  ✗ right 12ms 3 tries",
        "↓",
        f"{SKIPPED_MARK} merge 12ms",
        "○ report 12ms   ← merge, load",
        f"✓ succeeded   ✗ failed   {SKIPPED_MARK} skipped   ○ pending",
    ]


def test_sources_that_are_not_the_line_above_are_named() -> None:
    steps = [
        step("a"),
        step("b", ["a"]),
        step("x", ["a"]),
        step("c", ["b"]),
        step("d", ["c", "x"]),
        step("e", ["d"]),
    ]

    text = dag_text(run_info(steps), details=False, legend=False)

    assert text.splitlines() == ["✓ a", "↓", "✓ b  ✓ x", "✓ c   ← b", "✓ d (← c, x) → ✓ e"]


def test_a_wide_layer_is_collapsed_into_a_summary_that_names_its_failures() -> None:
    incs = [
        step(
            "inc" if i == 0 else f"inc_{i + 1}",
            ["start"],
            StepState.FAILED if i == 41 else StepState.SUCCEEDED,
            name="inc",
        )
        for i in range(498)
    ]
    steps = [step("start"), *incs, step("total", [s.key for s in incs], StepState.SKIPPED)]

    text = dag_text(run_info(steps, PipelineState.FAILED), legend=False)

    assert text.splitlines() == [
        "✓ start 12ms",
        "↓",
        f"✗ inc {TIMES}498 (497 SUCCEEDED, 1 FAILED) ✗ inc_42",
        "↓",
        f"{SKIPPED_MARK} total 12ms",
    ]


def test_many_sources_of_a_line_that_is_not_below_them_are_summarised_by_step() -> None:
    incs = [step(f"inc_{i}", ["start"], name="inc") for i in range(20)]
    steps = [step("start"), *incs, step("other", ["start"]), step("total", [*(s.key for s in incs), "start"])]

    text = dag_text(run_info(steps), details=False, legend=False)

    assert text.splitlines() == [
        "✓ start",
        "↓",
        f"✓ inc {TIMES}20 (20 SUCCEEDED)  ✓ other",
        f"✓ total   ← inc {TIMES}20, start",
    ]


def test_render_dag_is_a_rich_renderable_coloured_by_state() -> None:
    screen = io.StringIO()
    info = run_info([step("load"), step("fit", ["load"], StepState.FAILED)], PipelineState.FAILED)

    Console(file=screen, force_terminal=True, width=80).print(render_dag(info))

    assert "\x1b[" in screen.getvalue()  # coloured
    assert "fit" in screen.getvalue()


def test_the_live_view_shows_counts_and_running_steps() -> None:
    view = LiveView()
    screen = io.StringIO()
    info = run_info([step("load"), step("fit", ["load"], StepState.RUNNING)], PipelineState.RUNNING)
    info.steps[1].end_time = None

    view(info)
    Console(file=screen, width=100).print(view)

    drawn = screen.getvalue()
    assert "demo r1" in drawn and "1 succeeded" in drawn and "1 running" in drawn
    assert "● fit" in drawn
