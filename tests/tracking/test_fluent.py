"""The tracking SDK as a user writes it, embedded and against a server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

import steward
from steward.errors import Conflict, InvalidInput

matplotlib.use("Agg")


@pytest.fixture(params=["embedded", "remote"])
def sdk(request: pytest.FixtureRequest, steward_home: Path) -> str:
    """The SDK configured embedded (SQLite in a temp home) or against a live server."""
    if request.param == "remote":
        url = request.getfixturevalue("steward_server")
        steward.configure(uri=url)
    return str(request.param)


def test_the_quick_start_example_records_everything(sdk: str, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    png = tmp_path / "confusion.png"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(png)
    with steward.start_run(experiment="churn", run_name="baseline") as run:
        steward.log_params({"model": "lr", "C": 1.0})
        steward.log_metric("loss", 0.31, step=1)
        steward.log_metrics({"auc": 0.93, "f1": 0.88}, step=10)
        steward.set_tags({"team": "risk"})
        steward.log_artifact(png)
        steward.log_dict({"features": ["age", "tenure"]}, "config.json")
        steward.log_table(pd.DataFrame({"y": [0, 1], "p": [0.2, 0.9]}), "predictions.parquet")
        steward.log_figure(fig, "plots/curve.png")
        run_id = run.id
    plt.close(fig)

    found = steward.search_runs(
        "churn",
        filter="metrics.auc > 0.9 and params.model = 'lr'",
        order_by=["metrics.auc DESC"],
        max_results=100,
    )
    assert isinstance(found, pd.DataFrame)
    assert found["run_id"].tolist() == [run_id]
    assert found.loc[0, "metrics.auc"] == 0.93 and found.loc[0, "params.C"] == "1.0"
    assert found.loc[0, "tags.team"] == "risk" and found.loc[0, "status"] == "FINISHED"

    got = steward.get_run(run_id)
    assert got.status is steward.RunStatus.FINISHED and got.end_time is not None
    assert got.metrics == {"auc": 0.93, "f1": 0.88, "loss": 0.31}
    assert got.python_version and got.host and got.entry_point
    history = steward.get_metric_history(run_id, "loss")
    assert history["step"].tolist() == [1] and history["value"].tolist() == [0.31]
    assert str(history["timestamp"].dt.tz) == "UTC"

    paths = {a.path for a in steward.list_artifacts(run_id)}
    assert paths == {
        "confusion.png",
        "config.json",
        "predictions.parquet",
        "plots/curve.png",
        "_steward/environment.json",
    }
    environment = json.loads(
        steward.download_artifact(run_id, "_steward/environment.json", tmp_path / "env.json").read_text()
    )
    assert environment["packages"]["steward-ml"] == steward.__version__
    assert environment["python"] == got.python_version
    table = pd.read_parquet(steward.download_artifact(run_id, "predictions.parquet", tmp_path / "p.parquet"))
    assert table["p"].tolist() == [0.2, 0.9]
    assert (
        steward.download_artifact(run_id, "confusion.png", tmp_path / "c.png").read_bytes()
        == png.read_bytes()
    )


def test_an_exception_fails_the_run_with_its_message_and_keeps_the_metrics(sdk: str) -> None:
    def train() -> str:
        with steward.start_run(experiment="churn") as run:
            for step in range(5):
                steward.log_metric("loss", 1.0 / (step + 1), step=step)
            _ = 1 / 0
        return run.id

    with pytest.raises(ZeroDivisionError):
        train()
    run = steward.search_runs("churn").iloc[0]
    run_id = str(run["run_id"])
    got = steward.get_run(run_id)
    assert got.status is steward.RunStatus.FAILED
    assert got.error == "ZeroDivisionError: division by zero"
    assert steward.get_metric_history(run_id, "loss")["step"].tolist() == [0, 1, 2, 3, 4]


def test_ctrl_c_marks_the_run_killed(sdk: str) -> None:
    with pytest.raises(KeyboardInterrupt), steward.start_run(experiment="churn") as run:
        raise KeyboardInterrupt
    assert steward.get_run(run.id).status is steward.RunStatus.KILLED


def test_bad_metric_input_fails_at_the_call_naming_the_field(sdk: str) -> None:
    with steward.start_run(experiment="churn") as run:
        for value in (float("nan"), float("inf"), "0.3", None, True):
            with pytest.raises(InvalidInput) as info:
                steward.log_metric("loss", value)  # type: ignore[arg-type]
            assert info.value.details["field"] == "metrics.loss"
        with pytest.raises(InvalidInput) as info:
            steward.log_metric("loss", 0.1, step=1.5)  # type: ignore[arg-type]
        assert info.value.details["field"] == "metrics.loss.step"
        with pytest.raises(InvalidInput):
            steward.log_metric("bad key!", 0.1)
        steward.log_metric("loss", 0.2)
        steward.log_params({"C": 1})
        with pytest.raises(Conflict):
            steward.log_params({"C": 2})
    assert steward.get_run(run.id).metrics == {"loss": 0.2}


def test_logging_without_a_run_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="no active run"):
        steward.log_metric("loss", 0.1)


def test_runs_started_inside_a_run_nest(sdk: str) -> None:
    with steward.start_run(experiment="sweep") as parent:
        with steward.start_run(experiment="sweep", run_name="trial") as child:
            steward.log_metric("loss", 0.5)
        with steward.start_run(experiment="sweep", nested=False) as free:
            pass
    assert steward.get_run(child.id).parent_run_id == parent.id
    assert steward.get_run(free.id).parent_run_id is None
    assert steward.get_run(parent.id).metrics == {}


def test_default_steps_count_up_per_key(sdk: str) -> None:
    with steward.start_run(experiment="churn") as run:
        for value in (0.9, 0.8, 0.7):
            steward.log_metric("loss", value)
    assert steward.get_metric_history(run.id, "loss")["step"].tolist() == [0, 1, 2]


def test_delete_and_restore(sdk: str) -> None:
    with steward.start_run(experiment="churn") as run:
        pass
    steward.delete_run(run.id)
    assert steward.search_runs("churn").empty
    steward.restore_run(run.id)
    assert steward.search_runs("churn")["run_id"].tolist() == [run.id]


def test_many_single_metric_calls_all_arrive(sdk: str) -> None:
    with steward.start_run(experiment="bench") as run:
        for step in range(25_000):
            steward.log_metric("x", float(step), step=step)
    history = steward.get_metric_history(run.id, "x")
    assert len(history) == 25_000 and history["value"].iloc[-1] == 24_999.0


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return path


def _run_script(path: Path, home: Path, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "STEWARD_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=path.parent,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_real_signal_kills_the_run_and_keeps_its_metrics(
    signum: signal.Signals, steward_home: Path, tmp_path: Path
) -> None:
    script = _script(
        tmp_path,
        """
        import time, steward
        with steward.start_run(experiment="long") as run:
            for step in range(100):
                steward.log_metric("loss", 1.0 / (step + 1), step=step)
            print(run.id, flush=True)
            time.sleep(60)
        """,
    )
    proc = _run_script(script, steward_home)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    if signum == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err
    else:
        assert proc.returncode != 0 and "KeyboardInterrupt" in err
    got = steward.get_run(run_id)
    assert got.status is steward.RunStatus.KILLED and signum.name in (got.error or "")
    assert len(steward.get_metric_history(run_id, "loss")) == 100


def test_a_run_left_open_is_finished_and_flushed_at_exit(steward_home: Path, tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        """
        import steward
        run = steward.start_run(experiment="open")
        for step in range(1000):
            steward.log_metric("loss", float(step), step=step)
        print(run.id)
        """,
    )
    proc = _run_script(script, steward_home)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    run_id = out.strip()
    assert steward.get_run(run_id).status is steward.RunStatus.FINISHED
    assert len(steward.get_metric_history(run_id, "loss")) == 1000


def test_git_commit_and_dirty_tree_are_recorded(steward_home: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    script = _script(
        repo, "import steward\nwith steward.start_run(experiment='git') as run:\n    print(run.id)\n"
    )
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "train.py"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    out, _ = _run_script(script, steward_home).communicate(timeout=60)
    clean = steward.get_run(out.strip())
    assert (clean.git_commit, clean.git_dirty) == (commit, False)
    assert clean.entry_point == str(script.resolve())
    script.write_text(script.read_text() + "# edited\n")
    out, _ = _run_script(script, steward_home).communicate(timeout=60)
    assert steward.get_run(out.strip()).git_dirty is True


def test_interval_flush_makes_points_visible_while_running(steward_home: Path) -> None:
    steward.configure(home=steward_home, metric_flush_interval=0.2)
    with steward.start_run(experiment="live") as run:
        steward.log_metric("loss", 0.5)
        conn = steward.default_connection()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if conn.tracking.get_run(run.id).metrics:
                break
            time.sleep(0.05)
        assert conn.tracking.get_run(run.id).metrics == {"loss": 0.5}


def test_runs_started_in_threads_keep_their_metrics_apart(sdk: str) -> None:
    import threading

    barrier = threading.Barrier(2)
    ids: dict[str, str] = {}

    def train(name: str) -> None:
        with steward.start_run(experiment="threads", run_name=name) as run:
            ids[name] = run.id
            barrier.wait()  # both runs are active at once from here
            for step in range(50):
                steward.log_metric(f"loss_{name}", 1.0 / (step + 1), step=step)
            barrier.wait()

    threads = [threading.Thread(target=train, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    for name, other in (("a", "b"), ("b", "a")):
        run = steward.get_run(ids[name])
        assert set(run.metrics) == {f"loss_{name}"}, (name, run.metrics)
        assert run.parent_run_id is None and other != name


def test_a_helper_thread_without_a_run_logs_into_the_run_around_it(sdk: str) -> None:
    import threading

    with steward.start_run(experiment="threads") as run:
        worker = threading.Thread(target=lambda: steward.log_metric("from_helper", 1.0))
        worker.start()
        worker.join()
    assert steward.get_run(run.id).metrics == {"from_helper": 1.0}
