"""The ``steward`` command: one Typer app with a sub-command group per domain.

Commands parse their arguments, call one service method through ``steward.connect()`` and render the
result (``steward.cli.output``). A ``StewardError`` anywhere becomes ``error: <message>`` on stderr and
exit code 1; usage errors exit 2, as Click does.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import steward
from steward.cli import (
    approvals,
    audit,
    compliance,
    data,
    db,
    deploy,
    deploy_export,
    experiments,
    features,
    identity,
    keys,
    lineage,
    models,
    monitor,
    pipelines,
    policy,
    quickstart,
    runs,
    scheduler,
    serve,
    server,
    triggers,
)
from steward.cli.output import print_steward_error
from steward.errors import StewardError


class StewardGroup(TyperGroup):
    """The root command group: turns a ``StewardError`` from any sub-command into a one-line error."""

    def invoke(self, ctx: Any) -> Any:
        """Run the chosen sub-command, reporting Steward errors without a traceback.

        Args:
            ctx: The Click context of this invocation.

        Raises:
            typer.Exit: With code 1 after printing a ``StewardError``.
        """
        try:
            return super().invoke(ctx)
        except StewardError as exc:
            print_steward_error(exc)
            raise typer.Exit(code=1) from None


app = typer.Typer(
    name="steward",
    cls=StewardGroup,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(lineage.app, name="lineage")
app.add_typer(data.app, name="data")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(policy.app, name="policy")
app.add_typer(approvals.app, name="approvals")
app.add_typer(compliance.app, name="compliance")
app.add_typer(deploy.app, name="deploy")
app.add_typer(features.app, name="features")
app.add_typer(monitor.app, name="monitor")
app.add_typer(triggers.app, name="triggers")
app.command("scheduler")(scheduler.scheduler)
deploy.app.command("export")(deploy_export.export)
models.app.command("promote")(policy.promote)
app.add_typer(identity.projects_app, name="projects")
app.add_typer(identity.users_app, name="users")
app.add_typer(identity.tokens_app, name="tokens")
app.command("login")(identity.login_command)
app.command("logout")(identity.logout_command)
app.command("run")(pipelines.run_pipeline)
app.command("server")(server.server)
app.command("serve")(serve.serve)
app.command("quickstart")(quickstart.quickstart)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"steward {steward.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print Steward's version and exit."
        ),
    ] = False,
) -> None:
    """Steward: track, register, serve and monitor models, governed.

    Where things live comes from STEWARD_HOME (default ~/.steward), STEWARD_DB and STEWARD_ARTIFACTS;
    set STEWARD_URI=http://host:port to talk to a Steward server instead.
    """


def main() -> None:
    """Run the ``steward`` command line (the console script's entry point)."""
    app(prog_name="steward")
