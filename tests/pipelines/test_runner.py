"""Running pipelines: results, child runs, caching, failure, retries, timeouts, resume — per executor."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

import steward
from steward import PipelineRunInfo, StepState
from steward.pipelines import sdk
from steward.pipelines.models import PipelineState
from tests.pipelines import sample_steps as s


def test_a_pipeline_returns_its_result_and_records_every_step_as_a_child_run(
    steward_home: Path, executor: str
) -> None:
    run = s.train_pipeline.run(executor=executor, n=200, C=0.5)

    assert run.succeeded, run.info.error
    assert run.result["accuracy"] > 0.9
    assert [st.key for st in run.info.steps] == ["make_frame", "split", "fit", "score"]
    parent = steward.get_run(run.id)
    assert parent.status == "FINISHED" and parent.params == {"n": "200", "C": "0.5"}
    assert parent.tags["steward.executor"] == executor
    for st in run.info.steps:
        assert st.state is StepState.SUCCEEDED and st.attempts == 1 and st.duration_ms is not None
        child = steward.get_run(st.run_id or "")
        assert child.parent_run_id == run.id and child.status == "FINISHED"
        assert child.tags["steward.step"] == st.step
    # the metric the fit step logged lands on the fit step's own run
    assert steward.get_run(run.steps["fit"].run_id or "").metrics["train_rows"] == 150.0
    # what the step printed is kept as its run's log
    log_file = steward.download_artifact(
        run.steps["make_frame"].run_id or "", "step.log", steward_home / "log"
    )
    assert "making 200 rows" in Path(log_file).read_text()


def test_outputs_are_materialised_by_type_and_loadable(steward_home: Path, executor: str) -> None:
    run = s.train_pipeline.run(executor=executor, n=80)

    refs = {st.key: [o.materializer for o in st.outputs] for st in run.info.steps}
    assert refs == {
        "make_frame": ["pandas"],
        "split": ["pandas", "pandas"],
        "fit": ["model"],
        "score": ["json"],
    }
    train_df = run.output("split", 0)
    assert isinstance(train_df, pd.DataFrame) and len(train_df) == 60
    model = run.output("fit")
    assert isinstance(model, steward.Model) and model.flavor == "sklearn"
    assert list(model.predict(pd.DataFrame({"x": [0.0, 79.0]}))) == [0, 1]


def test_a_rerun_reuses_cached_steps_and_says_so(steward_home: Path, executor: str) -> None:
    first = s.train_pipeline.run(executor=executor, n=100)
    second = s.train_pipeline.run(executor=executor, n=100)

    assert all(st.state is StepState.CACHED for st in second.info.steps)
    for st in second.info.steps:
        original = first.steps[st.key]
        assert st.cached_from == original.run_id
        assert st.outputs == original.outputs
        assert steward.get_run(st.run_id or "").tags["steward.cached_from"] == original.run_id
    assert second.result == first.result


def test_a_changed_parameter_reruns_only_the_steps_it_reaches(steward_home: Path, executor: str) -> None:
    s.train_pipeline.run(executor=executor, n=100, C=1.0)
    second = s.train_pipeline.run(executor=executor, n=100, C=0.1)

    states = {st.key: st.state for st in second.info.steps}
    assert states == {
        "make_frame": StepState.CACHED,
        "split": StepState.CACHED,
        "fit": StepState.SUCCEEDED,
        "score": StepState.SUCCEEDED,
    }


def test_cache_false_per_run_and_per_step(steward_home: Path, executor: str) -> None:
    s.train_pipeline.run(executor=executor, n=50)
    again = s.train_pipeline.run(executor=executor, n=50, cache=False)
    assert all(st.state is StepState.SUCCEEDED for st in again.info.steps)

    s.mixed_cache.run(executor=executor)
    mixed = s.mixed_cache.run(executor=executor)
    assert {st.key: st.state for st in mixed.info.steps} == {
        "source": StepState.CACHED,
        "uncached": StepState.SUCCEEDED,
    }


def test_a_failed_step_skips_its_dependants_while_independent_branches_finish(
    steward_home: Path, executor: str
) -> None:
    run = s.branches.run(executor=executor)

    assert run.state is PipelineState.FAILED
    states = {st.key: st.state for st in run.info.steps}
    assert states == {
        "source": StepState.SUCCEEDED,
        "explode": StepState.FAILED,
        "add": StepState.SKIPPED,
        "add_2": StepState.SUCCEEDED,
    }
    failed = run.steps["explode"]
    assert "Traceback" in (failed.error or "") and "ValueError: exploded on 1" in (failed.error or "")
    assert steward.get_run(failed.run_id or "").status == "FAILED"
    assert run.steps["add"].run_id is None and "explode" in (run.steps["add"].error or "")
    assert "explode" in (run.info.error or "")
    assert steward.get_run(run.id).status == "FAILED"
    with pytest.raises(steward.InvalidInput, match="did not succeed"):
        _ = run.result


def test_resume_reruns_only_what_did_not_succeed(steward_home: Path, executor: str, tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    failed = s.branches.run(executor=executor, cache=False, marker=str(marker))
    assert failed.state is PipelineState.FAILED

    marker.write_text("yes")
    resumed = sdk.resume_run(failed.id)

    assert resumed.succeeded
    assert resumed.info.resumed_from == failed.id
    states = {st.key: st.state for st in resumed.info.steps}
    assert states == {
        "source": StepState.CACHED,
        "explode": StepState.SUCCEEDED,
        "add": StepState.SUCCEEDED,
        "add_2": StepState.CACHED,
    }
    assert resumed.steps["source"].cached_from == failed.steps["source"].run_id
    assert resumed.result == {"bad": 11, "good": 3}


def test_retries_back_off_and_keep_each_attempt(steward_home: Path, executor: str, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    started = time.monotonic()
    run = s.flaky_pipeline.run(executor=executor, counter=str(counter))

    assert run.succeeded and run.result == 3
    step = run.steps["flaky"]
    assert step.attempts == 3 and step.state is StepState.SUCCEEDED
    assert time.monotonic() - started >= 0.05 + 0.1  # the two backoff waits
    log = Path(steward.download_artifact(step.run_id or "", "step.log", tmp_path / "log")).read_text()
    assert "--- attempt 1 ---" in log and "--- attempt 3 ---" in log


def test_a_step_over_its_timeout_fails(steward_home: Path, executor: str) -> None:
    started = time.monotonic()
    run = s.slow_pipeline.run(executor=executor, seconds=5.0)

    assert run.state is PipelineState.FAILED
    assert "timed out after 0.3 s" in (run.steps["slow"].error or "")
    assert time.monotonic() - started < 4


def test_a_wrong_return_type_fails_the_step_naming_both_types(steward_home: Path, executor: str) -> None:
    run = s.wrong_type_pipeline.run(executor=executor)

    error = run.steps["wrong_type"].error or ""
    assert run.state is PipelineState.FAILED
    assert "step 'wrong_type' returned str, but its annotation says int" in error


def test_numpy_arrays_and_frame_constants_pass_between_steps(steward_home: Path, executor: str) -> None:
    assert s.arrays.run(executor=executor, n=5).result == 2.0
    frame = pd.DataFrame({"x": [1.5, 2.5]})
    run = s.with_frame_constant.run(executor=executor, frame=frame)
    assert run.result == 4.0
    assert run.steps["column_sum"].inputs["table"]["materializer"] == "pandas"


def test_a_wide_dag_runs_every_branch_once(steward_home: Path, executor: str) -> None:
    run = s.fan.run(executor=executor, width=30)

    assert run.result == sum(1 + i for i in range(30))
    assert len(run.info.steps) == 32 and run.info.counts() == {"SUCCEEDED": 32}


def test_a_dying_worker_fails_its_step_only(steward_home: Path) -> None:
    run = s.dying.run(executor="processes")

    assert run.state is PipelineState.FAILED
    assert run.steps["die"].state is StepState.FAILED
    assert "died" in (run.steps["die"].error or "")
    assert all(run.steps[f"add{suffix}"].state.succeeded for suffix in ("", "_2", "_3"))


def test_an_interrupted_run_is_recorded_killed(steward_home: Path) -> None:
    def interrupt(_info: PipelineRunInfo) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        s.fan.run(executor="local", width=3, progress=interrupt)
    [recorded] = sdk.list_pipeline_runs("fan")
    assert recorded.state is PipelineState.KILLED
    assert steward.get_run(recorded.run_id).status == "KILLED"


def test_lineage_links_each_input_artifact_to_each_output(steward_home: Path) -> None:
    from sqlalchemy import select

    from steward.store.tables import lineage_edges

    run = s.train_pipeline.run(n=40)
    split = run.steps["split"]
    fit = run.steps["fit"]
    platform = steward.default_connection().pipelines.platform
    with platform.metadata.read() as conn:
        rows = conn.execute(
            select(lineage_edges.c.source_id, lineage_edges.c.target_id).where(
                lineage_edges.c.role == f"{run.id}/fit"
            )
        ).all()
    assert rows == [(split.outputs[0].digest, fit.outputs[0].digest)]


def test_runs_are_listed_newest_first_on_sqlite_and_postgres(any_db_home: Path) -> None:
    first = s.fan.run(width=2)
    second = s.fan.run(width=3)

    listed = sdk.list_pipeline_runs("fan")
    assert [r.run_id for r in listed] == [second.id, first.id]
    assert listed[0].counts() == {"CACHED": 3, "SUCCEEDED": 2}
    assert sdk.get_pipeline_run(second.id).outputs is not None
    with pytest.raises(steward.NotFound):
        sdk.get_pipeline_run("nope")


def test_a_warm_worker_pool_runs_steps_of_a_file_loaded_after_it_started(
    steward_home: Path, tmp_path: Path
) -> None:
    assert s.fan.run(executor="processes", width=2).succeeded  # the pool is now warm
    path = tmp_path / "late.py"
    path.write_text(
        "from steward import pipeline, step\n\n"
        "@step\ndef seven() -> int:\n    return 7\n\n"
        "@step\ndef double(x: int) -> int:\n    return 2 * x\n\n"
        "@pipeline\ndef late():\n    return double(seven())\n"
    )
    run = sdk.load_pipeline(f"{path}:late").run(executor="processes")
    assert run.result == 14
