"""The quickstart's stages: the lifecycle as a pipeline run, then a tuning study over it."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.status import Status

import steward
from steward.cli.quickstart import flow
from steward.cli.quickstart.ingest import show_ingestion
from steward.cli.quickstart.register import show_registration
from steward.cli.quickstart.state import EXPERIMENT, RUN_NAME, Demo
from steward.core.time import now_ms
from steward.pipelines.models import PipelineRunInfo, StepState

EXECUTOR = "processes"


def _progress(status: Status) -> steward.pipelines.runner.Progress:
    def show(info: PipelineRunInfo) -> None:
        running = [s.key for s in info.steps if s.state is StepState.RUNNING]
        done = sum(1 for s in info.steps if s.state.is_done)
        status.update(f"{done}/{len(info.steps)} steps done; running: {', '.join(running) or '-'}")

    return show


def _draw(demo: Demo, info: PipelineRunInfo) -> None:
    from steward.cli.dag import render_dag

    demo.console.print(render_dag(info))


def _preload() -> None:
    """Import what the steps use before the workers fork, so each worker does not import it again."""
    import matplotlib.figure
    import sklearn.linear_model
    import sklearn.metrics
    import sklearn.model_selection
    import sklearn.pipeline
    import skops.io

    del matplotlib, skops, sklearn


def run_training(demo: Demo) -> None:
    """Stage "pipeline": ingest → validate → split → train → evaluate → register, as one pipeline run."""
    _preload()
    since = now_ms()
    with demo.console.status("Running the pipeline …") as status:
        run = flow.training.run(
            EXECUTOR, experiment=EXPERIMENT, run_name=RUN_NAME, progress=_progress(status), seed=demo.seed
        )
    _draw(demo, run.info)
    if not run.succeeded:
        for step in run.info.steps:
            if step.state is StepState.FAILED:
                last = (step.error or "").strip().splitlines()[-1:]
                demo.console.print(f"[red]step {step.key} failed:[/red] {escape(last[0] if last else '')}")
        raise typer.Exit(code=1)
    demo.pipeline_run_id = run.id
    raw, protected = run.output("ingest", 0), run.output("ingest", 1)
    show_ingestion(demo, raw, protected, since)
    model = run.output("train", 0)
    demo.run_id = run.output("train", 1)
    demo.console.print(f"Pipeline run: {run.id} ({EXECUTOR} executor)")
    show_registration(demo, run.result, run.output("split", 2), model.native)
    demo.notes += [
        f"The pipeline run {run.id} has a child run per step. History: train_loss, train_accuracy, "
        f"val_loss and val_accuracy have one point per epoch, cv_fold_accuracy one per fold; read them "
        f"with steward.get_metric_history({demo.run_id!r}, 'val_loss').",
        "The model is model.skops, saved with skops rather than pickle: loading it checks every type "
        "against a trusted list instead of running whatever the file says.",
        "Run `steward quickstart` again: unchanged steps are reused from the cache.",
    ]
    demo.next_steps += [
        (f"steward runs show {run.id}", "the pipeline run: its DAG and each step's state"),
        (f"steward runs show {demo.run_id}", "the train step's run: params, metrics, artifacts"),
        (f"steward runs list {EXPERIMENT}", "the runs of this experiment"),
        ("steward server", "the REST API; then open http://127.0.0.1:8080/docs"),
    ]


STUDY = "quickstart-alpha"
TRIALS = 10


def run_tuning(demo: Demo) -> None:
    """Stage "tune": a 10-trial study of ``alpha`` (log-uniform), minimising validation log loss."""
    from steward.cli.output import format_number, new_table
    from steward.pipelines.tuning import tune

    dataset = demo.dataset.number if demo.dataset is not None else 2
    with demo.console.status(f"Tuning alpha: {TRIALS} trials, each a pipeline run …"):
        result = tune(
            flow.tuning,
            {"alpha": {"low": 1e-5, "high": 1e-1, "log": True}},
            n_trials=TRIALS,
            direction="minimize",
            metric="log_loss",
            study=STUDY,
            experiment=EXPERIMENT,
            executor=EXECUTOR,
            seed=demo.seed,
            dataset=dataset,
            data_seed=demo.seed,
        )
    table = new_table("Trial", "alpha", "Validation log loss", "State", "Run", title=f"Study {result.study}")
    for trial in result.trials:
        mark = " [green]← best[/green]" if trial.number == result.best_trial else ""
        table.add_row(
            str(trial.number),
            format_number(trial.params.get("alpha"), digits=3),
            format_number(trial.value, digits=4) + mark,
            trial.state,
            trial.run_id or "-",
        )
    demo.console.print(table)
    demo.best_params = result.best_params
    demo.console.print(
        f"Best alpha {format_number(result.best_params['alpha'], digits=3)} (validation log loss "
        f"{format_number(result.best_value, digits=4)}), tagged on the study's run {result.parent_run_id}. "
        f"Each trial's split step was reused from the cache."
    )
    demo.next_steps += [
        (f"steward runs show {result.parent_run_id}", "the study's run: its best params and trials"),
    ]
