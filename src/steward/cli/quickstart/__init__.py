"""``steward quickstart``: the end-to-end demo, as a list of small stages.

Each stage is a function of the shared ``Demo`` state and appears in ``STAGES``; later stages (serve the
model, monitor it) are added by appending to that list.

- "ingest" turns scikit-learn's bundled breast-cancer data (no downloads) into a table of patients, with
  a synthetic ``patient_id`` and ``contact_email`` per row (drawn from the seed, so a rerun writes the
  same bytes), writes it to a CSV file and ingests it with ``steward.ingest``: checked against the
  dataset's expectations, profiled, scanned for PII, and published as the raw version ``breast-cancer@1``
  followed by its protected copy ``breast-cancer@2`` (patient ids pseudonymised, e-mails dropped), whose
  parent is the raw one. The same content is the same version, so a rerun publishes nothing new.
- "track" reads the protected version back with ``steward.get_dataset``, trains a classifier on it inside
  ``steward.start_run`` and records params, per-epoch and per-fold metrics, final metrics, tags, the
  model (skops, never pickle), plots and a table of test predictions.
- "register" registers that model with its signature and the protected dataset version it was trained
  on, points the alias ``staging`` at it, loads it back through the alias, and prints its model card and
  lineage.
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
from steward.cli.quickstart.ingest import ingest
from steward.cli.quickstart.register import register
from steward.cli.quickstart.state import DATASET_NAME, EXPERIMENT, MODEL_NAME, Demo, Stage
from steward.cli.quickstart.train import track

__all__ = ["DATASET_NAME", "EXPERIMENT", "MODEL_NAME", "STAGES", "Demo", "Stage", "quickstart", "report"]

STAGES: list[Stage] = [
    Stage("ingest", "ingest the data: validate, profile, scan for PII, protect", ingest),
    Stage("track", "train a classifier and track the run", track),
    Stage("register", "register the model, alias it staging, show its card and lineage", register),
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
    """Run the end-to-end demo: ingest bundled data, train and track a model on it, register it."""
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
