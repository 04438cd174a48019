"""Tuning: studies over steps, functions and pipelines; resume; pruning; the journal in the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

import steward
from steward.errors import Conflict, InvalidInput, NotFound, StewardError
from steward.pipelines import journal, sdk
from steward.pipelines.journal import DatabaseJournal
from steward.pipelines.space import choice, float_range, int_range, parse_space
from steward.pipelines.tuning import tune
from steward.store.metadata import MetadataStore
from tests.pipelines import tuning_objectives as obj

REPO = Path(__file__).resolve().parents[2]


def children(run_id: str, experiment: str) -> list[steward.Run]:
    frame = steward.search_runs(experiment, f"parent_run_id = '{run_id}'", max_results=1000)
    return [steward.get_run(r) for r in frame["run_id"]]


# -- tune --------------------------------------------------------------------------------------------


def test_a_seeded_study_of_a_step_finds_the_optimum(steward_home: Path) -> None:
    result = tune(
        obj.quadratic,
        space={"x": {"low": -10.0, "high": 10.0}, "y": float_range(-5, 5)},
        n_trials=40,
        direction="max",
        seed=7,
    )

    assert result.study == "quadratic-tune"
    assert abs(result.best_params["x"] - 2.0) < 0.6 and abs(result.best_params["y"] + 1.0) < 0.6
    assert result.best_value > -0.5
    assert result.n_trials == (40, 0, 0) and len(result.trials) == 40
    assert result.optuna_study.best_trial.number == result.best_trial
    parent = steward.get_run(result.parent_run_id)
    assert parent.name == "quadratic-tune" and parent.status == "FINISHED"
    assert parent.tags["steward.study"] == "quadratic-tune"
    assert float(parent.tags["best.x"]) == result.best_params["x"]
    assert float(parent.tags["best_value"]) == result.best_value
    assert parent.tags["best_run_id"] == result.best_run_id
    assert parent.metrics["best_value"] == result.best_value
    best = steward.get_run(result.best_run_id or "")
    assert best.parent_run_id == parent.id and best.metrics["value"] == result.best_value
    assert best.params["x"] == str(result.best_params["x"])
    assert best.tags["steward.trial"] == str(result.best_trial)
    assert best.tags["steward.trial_state"] == "COMPLETE"


def test_the_same_seed_gives_the_same_trials(steward_home: Path) -> None:
    space = {"x": {"low": -10.0, "high": 10.0}}
    first = tune(obj.quadratic, space, n_trials=5, seed=3, study="a")
    second = tune(obj.quadratic, space, n_trials=5, seed=3, study="b")
    assert [t.params for t in first.trials] == [t.params for t in second.trials]


def test_a_function_minimising_a_dict_metric_logs_every_number_and_its_own_metrics(
    steward_home: Path,
) -> None:
    result = tune(
        obj.bowl,
        {"x": {"low": -6.0, "high": 6.0}},
        n_trials=12,
        direction="min",
        metric="loss",
        seed=1,
        scale=2.0,
        experiment="bowls",
    )

    assert result.best_value < 4.0
    runs = children(result.parent_run_id, "bowls")
    assert len(runs) == 12
    for run in runs:
        assert set(run.metrics) == {"loss", "x_abs", "calls"}  # the objective's own log_metric too
        assert run.params["scale"] == "2.0"
        assert run.status == "FINISHED"
    assert steward.get_run(result.parent_run_id).params["direction"] == "minimize"


def test_a_pipeline_objective_runs_each_trial_as_its_own_pipeline_run(steward_home: Path) -> None:
    result = tune(
        obj.scored,
        {"x": {"low": -3.0, "high": 3.0}},
        n_trials=5,
        direction="maximize",
        metric="score",
        seed=2,
        offset=10.0,
    )

    assert result.n_trials.complete == 5 and result.best_value <= 10.0
    parent = steward.get_run(result.parent_run_id)
    assert parent.tags["best.x"] == str(result.best_params["x"])
    trial_runs = children(parent.id, "scored")
    assert sorted(r.name for r in trial_runs) == [f"trial-{n}" for n in range(5)]
    for trial_run in trial_runs:
        assert trial_run.metrics["score"] <= 10.0 and "penalty" in trial_run.metrics
        piped = sdk.get_pipeline_run(trial_run.tags["steward.pipeline_run"])
        assert piped.state.value == "SUCCEEDED"
        pipeline_run = steward.get_run(piped.run_id)
        assert pipeline_run.parent_run_id == trial_run.id
        assert pipeline_run.params["offset"] == "10.0"
        assert pipeline_run.tags["steward.study"] == result.study
    assert {t.run_id for t in result.trials} == {r.id for r in trial_runs}


def test_a_failing_pipeline_fails_its_trial_and_the_study_goes_on(steward_home: Path) -> None:
    result = tune(
        obj.scored,
        {"x": choice(0.5, 5.0)},  # 5.0 makes the step raise
        n_trials=6,
        metric="score",
        seed=0,
        offset=0.0,
        sampler=None,
    )

    failed = [t for t in result.trials if t.state == "FAIL"]
    assert failed and all(t.params["x"] == 5.0 for t in failed)
    assert result.best_params == {"x": 0.5}
    run = steward.get_run(failed[0].run_id or "")
    assert run.status == "FAILED" and "out of the model's range" in (run.error or "")
    assert run.tags["steward.trial_state"] == "FAIL"


def test_resuming_a_study_runs_only_the_missing_trials_and_keeps_the_first(steward_home: Path) -> None:
    space = {"x": {"low": -5.0, "high": 5.0}}
    first = tune(obj.quadratic, space, n_trials=4, study="resumable", seed=11)
    again = tune(obj.quadratic, space, n_trials=6, study="resumable", seed=11)

    assert len(again.trials) == 6 and again.n_trials == (6, 0, 0)
    assert again.trials[:4] == first.trials
    assert {t.params["x"] for t in again.trials[4:]}.isdisjoint({t.params["x"] for t in first.trials})
    assert again.parent_run_id != first.parent_run_id
    assert steward.get_run(again.parent_run_id).tags["steward.resumed_trials"] == "4"
    for record in again.trials[4:]:
        assert steward.get_run(record.run_id or "").parent_run_id == again.parent_run_id
    # a study at its target runs nothing more
    done = tune(obj.quadratic, space, n_trials=6, study="resumable")
    assert done.trials == again.trials and done.best_value == again.best_value


def test_an_interrupted_study_resumes_and_reruns_the_interrupted_trial(steward_home: Path) -> None:
    space = {"x": {"low": 0.0, "high": 1.0}}
    obj.Interrupt.armed = True
    try:
        with pytest.raises(KeyboardInterrupt):
            tune(obj.interrupted_once, space, n_trials=5, study="ctrl-c", seed=0)
    finally:
        obj.Interrupt.armed = False
    study = optuna.load_study(
        study_name="ctrl-c", storage=journal.journal_storage(sdk._service().platform.metadata, "ctrl-c")
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    runs = steward.search_runs("interrupted_once", "tags.`steward.study` = 'ctrl-c'")
    assert dict(zip(runs["run_name"], runs["status"], strict=True)) == {
        "ctrl-c": "KILLED",
        "trial-0": "FINISHED",
        "trial-1": "FINISHED",
        "trial-2": "KILLED",
    }

    result = tune(obj.interrupted_once, space, n_trials=5, study="ctrl-c", seed=0)
    assert [t.state for t in result.trials] == ["COMPLETE"] * 2 + ["FAIL"] + ["COMPLETE"] * 3
    assert result.n_trials == (5, 0, 1)


def test_a_study_whose_process_was_killed_resumes_with_the_lost_trial_run_again(
    steward_home: Path,
) -> None:
    code = textwrap.dedent(
        """
        from steward.pipelines.tuning import tune
        from tests.pipelines import tuning_objectives as obj
        tune(obj.dies_on_trial_one, {"x": {"low": -1.0, "high": 1.0}}, n_trials=4, study="killed", seed=0)
        """
    )
    env = {**os.environ, "STEWARD_TEST_DIE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()

    result = tune(obj.dies_on_trial_one, {"x": {"low": -1.0, "high": 1.0}}, n_trials=4, study="killed")
    assert [t.state for t in result.trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert result.n_trials == (4, 0, 1)


def test_pruned_trials_end_their_runs_finished_and_tagged(steward_home: Path) -> None:
    result = tune(
        obj.learning_curve,
        {"rate": {"low": 0.5, "high": 1.0}},
        n_trials=5,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        seed=0,
    )

    assert [t.state for t in result.trials] == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED", "PRUNED"]
    assert result.n_trials == (2, 3, 0)
    pruned = steward.get_run(result.trials[2].run_id or "")
    assert pruned.status == "FINISHED" and pruned.tags["steward.trial_state"] == "PRUNED"
    history = steward.get_metric_history(result.trials[0].run_id or "", "value")
    assert list(history["step"])[:5] == [0, 1, 2, 3, 4]  # the reported curve, then the final value


def test_a_pipeline_step_can_report_and_be_pruned_on_the_local_executor(steward_home: Path) -> None:
    result = tune(
        obj.curve_pipeline,
        {"rate": {"low": 0.5, "high": 1.0}},
        n_trials=3,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
        seed=0,
    )
    assert [t.state for t in result.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]


def test_no_trial_starts_after_the_timeout(steward_home: Path) -> None:
    result = tune(obj.slow, {"x": {"low": 0.0, "high": 1.0}}, n_trials=100, timeout="350ms")
    assert 1 <= len(result.trials) < 20 and result.n_trials.complete == len(result.trials)


def test_a_fixed_parameter_named_like_an_argument_of_tune_goes_in_the_space(steward_home: Path) -> None:
    result = tune(obj.quadratic, {"x": {"low": 0.0, "high": 1.0}, "y": [-1.0]}, n_trials=3, seed=0)
    assert {t.params["y"] for t in result.trials} == {-1.0}


def test_report_outside_a_study_does_nothing() -> None:
    assert obj.learning_curve(1.0) == 5.0


def test_when_every_trial_fails_the_first_failure_is_raised(steward_home: Path) -> None:
    with pytest.raises(StewardError, match="every trial failed; the first: RuntimeError: boom in trial 0"):
        tune(obj.always_fails, {"x": {"low": 0.0, "high": 1.0}}, n_trials=3)
    parent = steward.search_runs("always_fails", "tags.`steward.study` = 'always_fails-tune'")
    assert len(parent) == 4 and set(parent["status"]) == {"FAILED"}


def test_some_failing_trials_do_not_fail_the_study(steward_home: Path) -> None:
    result = tune(obj.fails_below_zero, {"x": {"low": -1.0, "high": 1.0}}, n_trials=8, seed=4)
    assert result.n_trials.failed > 0 and result.n_trials.complete > 0 and result.best_value > 0


def test_a_result_without_the_metric_stops_the_study_naming_its_keys(steward_home: Path) -> None:
    with pytest.raises(InvalidInput, match=r"has no 'auc' \(it has: score, penalty\)"):
        tune(obj.scored, {"x": {"low": 0.0, "high": 1.0}}, n_trials=5, metric="auc", offset=0.0)
    runs = steward.search_runs("scored", "tags.`steward.study` = 'scored-tune'")
    assert len(runs) == 3  # the parent, one trial, its pipeline run: no second trial ran


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tune(obj.returns_text, {"x": [1.0]}, n_trials=2), "returned str, not a number"),
        (lambda: tune(obj.bowl, {"x": [1.0]}, n_trials=2), "pass metric= to say which"),
    ],
)
def test_an_objective_returning_no_metric_stops_the_study(
    steward_home: Path, call: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        call()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"x": 3}, r"space\['x'\]: 3 is not a spec"),
        ({"x": []}, r"space\['x'\]: a list of choices needs at least one"),
        ({"x": [object()]}, r"space\['x'\]: choice .* is a object"),
        ({"x": {"low": 1.0}}, r"space\['x'\]: a range needs both low and high"),
        ({"x": {"low": 2.0, "high": 1.0}}, r"space\['x'\]: low \(2.0\) is above high"),
        ({"x": {"low": 0.0, "high": 1.0, "log": True}}, r"space\['x'\]: a log range needs low > 0"),
        ({"x": {"low": 0.1, "high": 1.0, "log": True, "step": 0.1}}, "takes log or step, not both"),
        ({"x": {"low": "a", "high": 1.0}}, "low must be a number"),
        ({"x": {"low": 0.0, "high": 1.0, "scale": 2}}, r"unknown keys \['scale'\]"),
        ({}, "space must be a non-empty dict"),
    ],
)
def test_a_bad_space_is_refused_before_any_trial(steward_home: Path, space: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        tune(obj.quadratic, space, n_trials=2)
    assert journal.list_studies(sdk._service().platform.metadata) == []


def test_space_specs_become_optuna_distributions() -> None:
    parsed = parse_space(
        {
            "c": ["a", "b"],
            "i": {"low": 1, "high": 10},
            "i2": int_range(2, 64, log=True),
            "f": {"low": 1e-3, "high": 1.0, "log": True},
            "g": {"low": 0.0, "high": 1.0, "step": 0.25},
            "d": optuna.distributions.FloatDistribution(0, 1),
            "k": {"choices": [1, 2]},
        }
    )
    assert parsed["c"] == optuna.distributions.CategoricalDistribution(["a", "b"])
    assert parsed["i"] == optuna.distributions.IntDistribution(1, 10)
    assert parsed["i2"] == optuna.distributions.IntDistribution(2, 64, log=True)
    assert parsed["f"] == optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    assert parsed["g"] == optuna.distributions.FloatDistribution(0.0, 1.0, step=0.25)
    assert parsed["k"] == optuna.distributions.CategoricalDistribution([1, 2])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"space": {"z": [1.0]}}, r"'quadratic' has no parameter 'z' \(its parameters: x, y\)"),
        ({"space": {"x": [1.0]}, "w": 1}, "has no parameter 'w'"),
        ({"space": {"y": [1.0]}}, "'quadratic' needs x"),
        ({"space": {"x": [1.0]}, "x": 2.0}, "x is both searched"),
        ({"space": {"x": [1.0]}, "direction": "up"}, "direction must be"),
        ({"space": {"x": [1.0]}, "n_trials": 0}, "n_trials must be a whole number"),
        ({"space": {"x": [1.0]}, "study": "no spaces"}, "invalid study name"),
        ({"space": {"x": [1.0]}, "executor": "processes"}, "executor applies to pipeline objectives"),
        ({"space": {"x": [1.0]}, "n_parallel": 2}, "n_parallel > 1 runs pipeline objectives"),
        ({"space": {"x": [1.0]}, "seed": 1, "sampler": optuna.samplers.RandomSampler()}, "pass seed"),
        ({"space": {"x": [1.0]}, "timeout": "soon"}, "is not a duration"),
    ],
)
def test_bad_arguments_are_refused_before_any_trial(
    steward_home: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        tune(obj.quadratic, **kwargs)
    with pytest.raises(NotFound):  # nothing was recorded: not even the experiment exists
        steward.search_runs("quadratic")


def test_a_pipeline_parameter_that_does_not_exist_is_refused(steward_home: Path) -> None:
    with pytest.raises(InvalidInput, match=r"'scored' has no parameter 'C' \(its parameters: offset, x\)"):
        tune(obj.scored, {"C": [1.0]}, n_trials=2)


def test_resuming_with_another_direction_or_space_is_a_conflict(steward_home: Path) -> None:
    tune(obj.quadratic, {"x": {"low": 0.0, "high": 1.0}}, n_trials=2, study="fixed")
    with pytest.raises(Conflict, match="was created to maximize, not minimize"):
        tune(obj.quadratic, {"x": {"low": 0.0, "high": 1.0}}, n_trials=3, study="fixed", direction="min")
    with pytest.raises(Conflict, match=r"space\['x'\] does not fit its earlier trials"):
        tune(obj.quadratic, {"x": ["a", "b"]}, n_trials=3, study="fixed")


def test_parallel_trials_of_a_pipeline_on_worker_processes(steward_home: Path) -> None:
    result = tune(
        obj.scored,
        {"x": {"low": -2.0, "high": 2.0}},
        n_trials=4,
        metric="score",
        executor="processes:2",
        n_parallel=2,
        seed=5,
        offset=1.0,
    )
    assert result.n_trials == (4, 0, 0) and [t.number for t in result.trials] == [0, 1, 2, 3]
    for trial_run in children(result.parent_run_id, "scored"):
        assert trial_run.status == "FINISHED" and "score" in trial_run.metrics


def test_a_study_persists_on_postgresql_too(any_db_home: Path) -> None:
    space = {"x": {"low": -5.0, "high": 5.0}}
    tune(obj.quadratic, space, n_trials=3, study="pg", seed=1)
    result = tune(obj.quadratic, space, n_trials=5, study="pg", seed=1)
    assert len(result.trials) == 5


# -- the journal -------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'meta.db'}"


def test_the_journal_keeps_each_study_apart_and_in_order(db_url: str) -> None:
    store = MetadataStore(db_url)
    a, b = DatabaseJournal(store, "a"), DatabaseJournal(store, "b")
    a.append_logs([{"n": 0}, {"n": 1}])
    b.append_logs([{"n": "b0"}])
    a.append_logs([{"n": 2}])
    a.append_logs([])

    assert list(a.read_logs(0)) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert list(a.read_logs(2)) == [{"n": 2}]
    assert list(a.read_logs(3)) == []
    assert list(b.read_logs(0)) == [{"n": "b0"}]
    assert journal.list_studies(store) == ["a", "b"]
    assert journal.study_exists(store, "a") and not journal.study_exists(store, "c")
    assert journal.delete_journal(store, "a") == 3 and journal.list_studies(store) == ["b"]
    store.dispose()


def test_an_append_that_loses_the_race_takes_the_next_numbers(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MetadataStore(db_url)
    backend = DatabaseJournal(store, "race")
    backend.append_logs([{"n": 0}])
    real = DatabaseJournal._next_seq
    calls: list[int] = []

    def next_seq(self: DatabaseJournal, conn: Any) -> int:
        calls.append(1)  # the first two attempts see a number another writer already took
        return 0 if len(calls) <= 2 else real(self, conn)

    monkeypatch.setattr(DatabaseJournal, "_next_seq", next_seq)
    backend.append_logs([{"n": 1}, {"n": 2}])
    assert list(backend.read_logs(0)) == [{"n": 0}, {"n": 1}, {"n": 2}]

    monkeypatch.setattr(DatabaseJournal, "_next_seq", lambda self, conn: 0)
    monkeypatch.setattr(journal, "MAX_APPEND_ATTEMPTS", 3)
    with pytest.raises(Conflict, match="could not append to its journal after 3 attempts"):
        backend.append_logs([{"n": 3}])
    store.dispose()


def test_a_conflicting_insert_is_an_integrity_error_the_backend_retries(db_url: str) -> None:
    # What the retry relies on: the database itself refuses a second row with the same number.
    store = MetadataStore(db_url)
    DatabaseJournal(store, "pk").append_logs([{"n": 0}])
    from steward.store.tables import tuning_journal

    with pytest.raises(SqlIntegrityError), store.transaction() as conn:
        conn.execute(tuning_journal.insert(), {"study": "pk", "seq": 0, "log": "{}", "created_at": 0})
    store.dispose()


APPENDER = """
import sys, time
from pathlib import Path
from steward.store.metadata import MetadataStore
from steward.pipelines.journal import DatabaseJournal
url, who, start = sys.argv[1], sys.argv[2], Path(sys.argv[3])
backend = DatabaseJournal(MetadataStore(url), "shared")
while not start.exists():
    time.sleep(0.005)
for i in range(150):
    if i % 10 == 0:
        backend.append_logs([{"who": who, "i": i, "part": p} for p in range(3)])
    else:
        backend.append_logs([{"who": who, "i": i}])
"""


def test_two_processes_appending_at_once_get_one_gapless_order(db_url: str, tmp_path: Path) -> None:
    MetadataStore(db_url).dispose()  # migrate first, so the race is over the journal alone
    start = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, db_url, who, str(start)], stderr=subprocess.PIPE, text=True
        )
        for who in ("p", "q")
    ]
    start.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors

    store = MetadataStore(db_url)
    logs = list(DatabaseJournal(store, "shared").read_logs(0))
    assert len(logs) == 2 * (150 + 15 * 2)
    with store.read() as conn:
        seqs = [r[0] for r in conn.exec_driver_sql("SELECT seq FROM tuning_journal ORDER BY seq")]
    assert seqs == list(range(len(logs)))
    for who in ("p", "q"):
        mine = [(log["i"], log.get("part")) for log in logs if log["who"] == who]
        expected = [(i, p) for i in range(150) for p in ((0, 1, 2) if i % 10 == 0 else (None,))]
        assert mine == expected
    # each batch of three is contiguous: no other writer's entry lands inside it
    for k, log in enumerate(logs):
        if log.get("part") == 0:
            assert [x.get("part") for x in logs[k : k + 3]] == [0, 1, 2]
            assert {x["who"] for x in logs[k : k + 3]} == {log["who"]}
    store.dispose()


OPTIMIZER = """
import sys, time
from pathlib import Path
import optuna
from steward.store.metadata import MetadataStore
from steward.pipelines.journal import journal_storage
url, start = sys.argv[1], Path(sys.argv[2])
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = journal_storage(MetadataStore(url), "together")
while not start.exists():
    time.sleep(0.005)
study = optuna.create_study(storage=storage, study_name="together", load_if_exists=True)
study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=15)
"""


def test_two_processes_optimising_one_study_share_its_trials(db_url: str, tmp_path: Path) -> None:
    MetadataStore(db_url).dispose()
    start = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPTIMIZER, db_url, str(start)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    start.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors

    store = MetadataStore(db_url)
    study = optuna.load_study(study_name="together", storage=journal.journal_storage(store, "together"))
    assert [t.number for t in study.trials] == list(range(30))
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    assert len({json.dumps(t.params) for t in study.trials}) == 30
    store.dispose()
