"""``steward quickstart``: the end-to-end demo, as a list of small stages.

Each stage is a function of the shared ``Demo`` state and appears in ``STAGES``; later stages (serve the
model, monitor it) are added by appending to that list.

- "pipeline" runs the lifecycle as one pipeline run (``flow.training``) on the ``processes`` executor:
  **ingest** turns scikit-learn's bundled breast-cancer data (no downloads) into a table of patients,
  with a synthetic ``patient_id`` and ``contact_email`` per row (drawn from the seed, so a rerun writes
  the same bytes), and ingests it: checked, profiled, scanned for PII, published as the raw version
  ``breast-cancer@1`` and its protected copy ``breast-cancer@2`` (ids pseudonymised, e-mails dropped);
  **validate** runs the dataset's checks on the stored version; **split** reads the protected copy and
  splits it; **train** fits an SGD logistic regression epoch by epoch, logging params, per-epoch and
  per-fold metrics, the model (skops, never pickle) and a learning curve to its step run; **evaluate**
  scores it on the test rows (ROC curve, predictions); **register** registers it with its signature and
  training data and aliases it ``staging``. The stage then draws the DAG and prints the data, the card
  and the lineage.
- "tune" runs a 10-trial Optuna study of ``alpha`` over the ``flow.tuning`` pipeline (split → train →
  evaluate on validation rows), each trial a pipeline run whose split is reused from the cache.
- "govern" (``govern.py``) applies a policy to ``production`` (test ROC AUC, no regression, validated and
  protected data, a card, a safe format, one approval), prints the version's verdict, promotes it as the
  OS user (an approval request opens), approves it as a second demo user ``demo-approver`` (which
  completes the promotion) and ends with ``steward audit verify``.
- "serve" (``serve.py``) puts ``production`` behind the endpoint ``breast-cancer``, starts the inference
  server in this process and sends it the test rows, retrains with the tuned ``alpha``, promotes the new
  version through the same gate, runs a canary of it to 100 % (each step analysed by the rollout
  controller) and prints the endpoint's status and a few lines of ``/metrics``.
- "features" (``features.py``) makes the patients' measurements (two visits each) a feature view, builds a
  point-in-time correct training set for their diagnoses from it (rows between the visits see the first
  one, rows before any visit keep their place with nulls), trains and registers a small model on it,
  materialises the view to the online store and serves the model behind an endpoint whose requests
  carry only ``patient_id``: the server reads the features online.
- "monitor" (``monitor.py``) closes the loop: a monitor of ``breast-cancer`` sees drifted traffic, the
  scheduler runs it, the drift alert reaches a local webhook and starts the retraining pipeline, the new
  version's verdict is printed and it takes ``production`` through the same gate and approval, and a
  canary of it held to an impossible latency bound is rolled back by the controller — as a timeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.columns import Columns

import steward
from steward.cli.output import (
    artifact_table,
    console,
    format_duration,
    format_number,
    key_value_table,
    styled_status,
)
from steward.cli.quickstart.features import run_features
from steward.cli.quickstart.govern import run_governance
from steward.cli.quickstart.lifecycle import run_training, run_tuning
from steward.cli.quickstart.monitor import run_monitoring
from steward.cli.quickstart.serve import run_serving
from steward.cli.quickstart.state import DATASET_NAME, EXPERIMENT, MODEL_NAME, Demo, Stage

__all__ = ["DATASET_NAME", "EXPERIMENT", "MODEL_NAME", "STAGES", "Demo", "Stage", "quickstart", "report"]

STAGES: list[Stage] = [
    Stage("pipeline", "ingest → validate → split → train → evaluate → register, as a pipeline", run_training),
    Stage("tune", "tune alpha: a 10-trial study, each trial a pipeline run", run_tuning),
    Stage("govern", "policy gate, second-user approval, promotion, audit", run_governance),
    Stage("serve", "an endpoint, live traffic, a canary of a retrained version to 100%", run_serving),
    Stage("features", "a feature view, a point-in-time training set, online features", run_features),
    Stage("monitor", "drift → alert → retraining → verdict → a bad canary rolled back", run_monitoring),
]
"""The demo's stages, in order; add a stage by appending to this list."""


def report(demo: Demo) -> None:
    """Print what the demo recorded and the commands to look at it.

    Args:
        demo: The state after every stage ran.
    """
    out = demo.console
    if demo.run_id is not None:
        run = steward.get_run(demo.run_id)
        artifacts = steward.list_artifacts(demo.run_id)
        seconds = (run.end_time - run.start_time).total_seconds() if run.end_time else 0.0
        out.rule("recorded")
        out.print(f"Run id: {run.id}")
        out.print(
            f"Run [bold]{run.name}[/bold] in experiment [bold]{EXPERIMENT}[/bold]: "
            f"{styled_status(run.status)} in {format_duration(seconds)}"
        )
        metrics = {key: format_number(value) for key, value in run.metrics.items()}
        out.print(
            Columns(
                [
                    key_value_table(run.params, title="Params"),
                    key_value_table(metrics, title="Metrics (latest)"),
                ],
                padding=(0, 4),
            )
        )
        out.print(artifact_table(artifacts, title="Artifacts"))
    for note in demo.notes:
        out.print(note, soft_wrap=False)
    out.rule("next")
    for command, what in demo.next_steps:
        out.print(f"  [bold]{demo.env_prefix}{command}[/bold]  [dim]# {what}[/dim]")


def quickstart(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            file_okay=False,
            help="Record into this Steward home instead of STEWARD_HOME (~/.steward).",
        ),
    ] = None,
) -> None:
    """Run the end-to-end demo: a pipeline that ingests bundled data, trains, tracks and registers a model
    on it, then a tuning study; then promotes the model to production through a policy and a second
    user's approval, and verifies the audit trail."""
    demo = Demo(console)
    if home is not None:
        home = home.expanduser().resolve()
        # uri="" also leaves any STEWARD_URI aside: an explicit home means embedded.
        steward.configure(home=home, uri="")
        demo.env_prefix = f"STEWARD_HOME={home} "
    connection = steward.default_connection()
    where = connection.settings.uri if connection.remote else str(connection.settings.home)
    console.print(f"Steward quickstart, recording to [bold]{where}[/bold]")
    for number, stage in enumerate(STAGES, start=1):
        console.rule(f"{number}/{len(STAGES)} {stage.name}: {stage.title}")
        stage.run(demo)
    report(demo)
