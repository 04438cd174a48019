"""``steward deploy``: endpoints and their rollouts (blue-green, canary, A/B, shadow).

``create`` makes an endpoint serving one version (with ``--feature-service``, its requests carry entity
keys and the server reads the model's inputs from the online store); ``update`` changes its description,
sticky key or feature service; ``rollout`` starts moving a new
version onto it; ``status`` shows the plan, the rollout's events and what each version served;
``promote`` and ``rollback`` move it by hand; ``results`` prints the per-arm outcomes and, for A/B, the
significance test; ``watch`` runs the rollout controller in the foreground (each step analysed, promoted
or rolled back) until the rollout ends. Every version passes the policy gate of the endpoint's alias
first: a refusal prints the verdict, rule by rule, and exits 1.

The commands work embedded and against a server (``STEWARD_URI``), where they call
``/api/v1/endpoints`` with ``STEWARD_TOKEN``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column

from steward.cli.output import (
    JsonOption,
    console,
    details_grid,
    err_console,
    format_number,
    format_percent,
    format_time,
    new_table,
    print_json,
)
from steward.config import load_settings
from steward.errors import InvalidInput, PolicyViolation

if TYPE_CHECKING:
    from steward.deploy.models import DeployBackend, Endpoint, EndpointStatus, Rollout

app = typer.Typer(
    help="Endpoints and rollouts: create, roll out (blue-green, canary, A/B, shadow), promote, roll back.",
    no_args_is_help=True,
)

EndpointArg = Annotated[str, typer.Argument(help="The endpoint's name.")]
ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why: recorded with the change.")]
STATE_STYLES = {
    "pending": "cyan",
    "running": "cyan",
    "succeeded": "green",
    "rolled_back": "red",
    "aborted": "yellow",
}


@contextmanager
def deployments() -> Iterator[DeployBackend]:
    """Open the deploy operations for one command: embedded, or the ``STEWARD_URI`` server."""
    settings = load_settings()
    if settings.uri:
        from steward.client.deploy import RemoteDeployService
        from steward.client.http import HttpClient

        with HttpClient.from_settings(settings) as http:
            yield RemoteDeployService(http)
        return
    from steward.deploy.service import DeployService
    from steward.store.platform import Platform

    platform = Platform.from_settings(settings)
    try:
        yield DeployService(platform)
    finally:
        platform.close()


@contextmanager
def _gated(as_json: bool) -> Iterator[None]:
    """Print the verdict of a policy refusal, rule by rule, before the error line."""
    try:
        yield
    except PolicyViolation as exc:
        lines = exc.details.get("lines")
        if isinstance(lines, list) and not as_json:
            err_console.print(escape("\n".join(str(line) for line in lines)), highlight=False)
        raise


def _plan(ep: Endpoint) -> str:
    return ", ".join(
        f"{a.version} {a.role}"
        + (f" {a.weight * 100:g}%" if a.role in ("stable", "canary", "candidate") else "")
        for a in ep.arms
    )


def _state(state: str) -> str:
    style = STATE_STYLES.get(state, "white")
    return f"[{style}]{escape(state)}[/{style}]"


@app.command("create")
def create(
    name: EndpointArg,
    model: Annotated[str, typer.Option("--model", "-m", help="The registered model it serves.")],
    version: Annotated[str, typer.Option("--version", "-v", help="The version it serves first.")],
    description: Annotated[str, typer.Option("--description", "-d", help="What it is for.")] = "",
    gate_alias: Annotated[
        str,
        typer.Option("--gate-alias", help="The alias whose policies every version deployed here must pass."),
    ] = "production",
    sticky_key: Annotated[
        str | None, typer.Option("--sticky-key", help="The request field that keeps a user on one A/B arm.")
    ] = None,
    feature_service: Annotated[
        str | None,
        typer.Option(
            "--feature-service",
            help="Requests carry this feature service's entity keys; the server reads the model's inputs "
            "from its online features.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an endpoint serving one version of a model (through the policy gate)."""
    with _gated(as_json), deployments() as deploy:
        ep = deploy.create_endpoint(
            name, model, version, description=description, gate_alias=gate_alias, sticky_key=sticky_key,
            feature_service=feature_service,
        )  # fmt: skip
    if as_json:
        print_json(ep.to_json())
        return
    features = f"; inputs from feature service {escape(ep.feature_service)}" if ep.feature_service else ""
    console.print(
        f"Created endpoint [bold]{escape(ep.name)}[/bold]: {escape(_plan(ep))} (revision {ep.revision})"
        f"{features}."
    )


@app.command("list")
def list_endpoints(as_json: JsonOption = False) -> None:
    """List endpoints with their model, plan and rollout under way."""
    with deployments() as deploy:
        found = deploy.list_endpoints()
    if as_json:
        print_json([e.to_json() for e in found])
        return
    if not found:
        console.print(
            "No endpoints yet. Create one with [bold]steward deploy create NAME --model M --version V[/bold]."
        )
        return
    table = new_table(
        Column("Name", no_wrap=True),
        "Model",
        "Plan",
        Column("Revision", justify="right"),
        "Rollout",
        "Updated (UTC)",
    )
    for ep in found:
        table.add_row(
            escape(ep.name),
            escape(ep.model),
            escape(_plan(ep)),
            str(ep.revision),
            ep.active_rollout or "-",
            format_time(ep.updated_at),
        )
    console.print(table)


def _either(value: str | None, clear: bool, flag: str) -> None:
    if value is not None and clear:
        raise InvalidInput(f"give --{flag} or --no-{flag}, not both", {"field": flag.replace("-", "_")})


@app.command("update")
def update(
    name: EndpointArg,
    description: Annotated[str | None, typer.Option("--description", "-d", help="What it is for.")] = None,
    sticky_key: Annotated[
        str | None, typer.Option("--sticky-key", help="The request field that keeps a user on one A/B arm.")
    ] = None,
    no_sticky_key: Annotated[
        bool, typer.Option("--no-sticky-key", help="Remove the sticky key (A/B arms drawn per request).")
    ] = False,
    feature_service: Annotated[
        str | None,
        typer.Option("--feature-service", help="Requests carry this feature service's entity keys."),
    ] = None,
    no_feature_service: Annotated[
        bool,
        typer.Option("--no-feature-service", help="Remove the feature service (requests carry the inputs)."),
    ] = False,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Change an endpoint's description, sticky key or feature service; only what is given changes.
    Servers following the endpoint pick the change up at their next poll."""
    _either(sticky_key, no_sticky_key, "sticky-key")
    _either(feature_service, no_feature_service, "feature-service")
    with deployments() as deploy:
        ep = deploy.update_endpoint(
            name, description=description, sticky_key=sticky_key, feature_service=feature_service,
            clear_sticky_key=no_sticky_key, clear_feature_service=no_feature_service, reason=reason,
        )  # fmt: skip
    if as_json:
        print_json(ep.to_json())
        return
    console.print(
        f"Endpoint [bold]{escape(ep.name)}[/bold] (revision {ep.revision}): sticky key "
        f"{escape(ep.sticky_key or '-')}, feature service {escape(ep.feature_service or '-')}."
    )


@app.command("delete")
def delete(name: EndpointArg, reason: ReasonOption = "") -> None:
    """Delete an endpoint (refused while a rollout is under way on it)."""
    with deployments() as deploy:
        deploy.delete_endpoint(name, reason)
    console.print(f"Deleted endpoint [bold]{escape(name)}[/bold].")


def _options(
    steps: str | None,
    min_duration: float | None,
    min_requests: int | None,
    weights: str | None,
    sticky_key: str | None,
    metric: str | None,
    option: list[str],
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for text in option:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--option takes KEY=VALUE, not {text!r}", {"field": "option"})
        found[key.strip()] = _value(value.strip())
    given = {
        "steps": steps,
        "min_duration_s": min_duration,
        "min_requests": min_requests,
        "weights": weights,
        "sticky_key": sticky_key,
        "metric": metric,
    }
    found.update({k: v for k, v in given.items() if v is not None})
    return found


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None if text.lower() in ("none", "null") else text


@app.command("rollout")
def rollout(
    name: EndpointArg,
    version: Annotated[str, typer.Argument(help="The candidate version.")],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="blue-green, canary, ab or shadow.")
    ] = "canary",
    steps: Annotated[
        str | None, typer.Option("--steps", help="Canary shares in percent, e.g. 5,25,50,100.")
    ] = None,
    min_duration: Annotated[
        float | None, typer.Option("--min-duration", help="Seconds each canary step lasts at least.")
    ] = None,
    min_requests: Annotated[
        int | None,
        typer.Option("--min-requests", help="Requests the candidate answers before a step is judged."),
    ] = None,
    weights: Annotated[
        str | None, typer.Option("--weights", help="A/B shares in percent, e.g. 50,50.")
    ] = None,
    sticky_key: Annotated[str | None, typer.Option("--sticky-key", help="A/B: the request field.")] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="A/B: accuracy, label_rate or label_mean.")
    ] = None,
    option: Annotated[
        list[str], typer.Option("--option", "-o", help="Any other option as KEY=VALUE (repeatable).")
    ] = [],  # noqa: B006
    as_json: JsonOption = False,
) -> None:
    """Start rolling a version out onto an endpoint (through the policy gate)."""
    options = _options(steps, min_duration, min_requests, weights, sticky_key, metric, option)
    with _gated(as_json), deployments() as deploy:
        started = deploy.start_rollout(name, strategy, version, options)
    if as_json:
        print_json(started.to_json())
        return
    console.print(
        f"Started {started.strategy.value} rollout [bold]{started.id}[/bold] of {escape(version)} "
        f"onto {escape(name)}: {escape(started.message)}."
    )


def _events(rollout: Rollout) -> Any:
    table = new_table(
        Column("#", justify="right"),
        Column("At (UTC)", no_wrap=True),
        "Event",
        Column("Step", justify="right"),
        "By",
        "Message",
        title="Events",
    )
    for event in rollout.events:
        table.add_row(
            str(event.seq),
            format_time(event.at),
            escape(event.kind),
            str(event.step + 1),
            escape(event.actor),
            escape(event.message),
        )
    return table


def _stats(status: EndpointStatus) -> Any:
    table = new_table(
        "Version",
        Column("Requests", justify="right"),
        Column("Errors", justify="right"),
        Column("p50 ms", justify="right"),
        Column("p99 ms", justify="right"),
        "Agreement",
        title=f"Served since {format_time(status.since)} UTC",
    )
    for version, found in status.stats.items():
        table.add_row(
            escape(version),
            str(found["requests"]),
            format_percent(found["error_rate"], 2),
            format_number(found["p50_ms"], 4),
            format_number(found["p99_ms"], 4),
            format_percent(found["agreement"]),
        )
    return table


def print_status(status: EndpointStatus, out: Console = console) -> None:
    """Print an endpoint's plan, its latest rollout, what each version served and the rollout's events."""
    ep, rollout = status.endpoint, status.rollout
    out.print(f"[bold]Endpoint {escape(ep.name)}[/bold] ({escape(ep.model)}, project {escape(ep.project)})")
    rows = [
        ("Plan", f"{escape(_plan(ep))} (revision {ep.revision})"),
        ("Gate", escape(ep.gate_alias)),
        ("Sticky key", escape(ep.sticky_key or "-")),
        ("Feature service", escape(ep.feature_service or "-")),
    ]
    if rollout is not None:
        rows += [
            (
                "Rollout",
                f"{rollout.id} {rollout.strategy.value} {escape(rollout.baseline)} -> "
                f"{escape(rollout.version)}: {_state(rollout.state.value)}, step {rollout.step + 1}",
            ),
            ("News", escape(rollout.message)),
        ]
        if rollout.analysis:
            rows.append(
                ("Analysis", escape(f"{rollout.analysis.get('verdict')}: {rollout.analysis.get('message')}"))
            )
    out.print(details_grid(rows))
    if status.stats:
        out.print(_stats(status))
    if rollout is not None and rollout.events:
        out.print(_events(rollout))


@app.command("status")
def status(name: EndpointArg, as_json: JsonOption = False) -> None:
    """Show an endpoint's plan, its latest rollout with events and what each version served."""
    with deployments() as deploy:
        found = deploy.status(name)
    if as_json:
        print_json(found.to_json())
        return
    print_status(found)


@app.command("rollouts")
def rollouts(name: EndpointArg, as_json: JsonOption = False) -> None:
    """List an endpoint's rollouts, newest first."""
    with deployments() as deploy:
        found = deploy.list_rollouts(name)
    if as_json:
        print_json([r.to_json() for r in found])
        return
    table = new_table(
        Column("Rollout", no_wrap=True),
        "Strategy",
        "From",
        "To",
        "State",
        Column("Step", justify="right"),
        "Started (UTC)",
        "Ended (UTC)",
    )
    for r in found:
        table.add_row(
            r.id,
            r.strategy.value,
            escape(r.baseline),
            escape(r.version),
            _state(r.state.value),
            str(r.step + 1),
            format_time(r.created_at),
            format_time(r.ended_at),
        )
    console.print(table)


def _moved(rollout: Rollout, as_json: bool) -> None:
    if as_json:
        print_json(rollout.to_json())
        return
    console.print(f"Rollout {rollout.id} {_state(rollout.state.value)}: {escape(rollout.message)}")


@app.command("promote")
def promote(
    name: EndpointArg,
    finish: Annotated[
        bool, typer.Option("--finish", help="Go straight to 100% (a canary skips its steps).")
    ] = False,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Move the rollout under way one step on by hand, without analysis (or to its end with --finish)."""
    with deployments() as deploy:
        _moved(deploy.promote(name, finish=finish, reason=reason), as_json)


@app.command("rollback")
def rollback(name: EndpointArg, reason: ReasonOption = "", as_json: JsonOption = False) -> None:
    """Give the baseline version all traffic again, at once."""
    with deployments() as deploy:
        _moved(deploy.rollback(name, reason), as_json)


@app.command("abort")
def abort(name: EndpointArg, reason: ReasonOption = "", as_json: JsonOption = False) -> None:
    """Stop the rollout under way; its candidate leaves the plan."""
    with deployments() as deploy:
        _moved(deploy.abort(name, reason), as_json)


def _print_results(found: Mapping[str, Any]) -> None:
    console.print(
        f"[bold]{escape(found['strategy'])} rollout {found['rollout']}[/bold] on "
        f"{escape(found['endpoint'])}: {_state(found['state'])} (outcome: {escape(found['metric'])})"
    )
    table = new_table(
        "Arm",
        "Version",
        "Role",
        Column("Requests", justify="right"),
        Column("Errors", justify="right"),
        Column("p99 ms", justify="right"),
        Column("Labelled", justify="right"),
        Column("Outcome", justify="right"),
    )
    for arm in found["arms"]:
        stats, labelled = arm["stats"], arm["outcomes"] or {}
        table.add_row(
            arm["arm"],
            escape(arm["version"]),
            arm["role"],
            str(stats["requests"]),
            format_percent(stats["error_rate"], 2),
            format_number(stats["p99_ms"], 4),
            str(labelled.get("n") or 0),
            format_number(arm["outcome"], 4),
        )
    console.print(table)
    test = found.get("test")
    if test:
        console.print(
            details_grid(
                [
                    ("Test", escape(test["test"])),
                    ("Statistic", format_number(test["statistic"], 4)),
                    ("p-value", format_number(test["p_value"], 4)),
                    ("Effect (B - A)", format_number(test["effect"], 4)),
                    (
                        "Confidence interval",
                        f"{format_number(test['ci_low'], 4)} to {format_number(test['ci_high'], 4)}",
                    ),
                    (
                        "Large enough",
                        "yes" if test["enough"] else f"no: {test['sample']}",
                    ),
                ]
            )
        )
    console.print(escape(found["summary"]))


@app.command("results")
def results(
    name: EndpointArg,
    rollout_id: Annotated[
        str | None, typer.Option("--rollout", help="A rollout id (default: the latest).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a rollout's per-arm outcomes and, for A/B, the significance test."""
    with deployments() as deploy:
        found = deploy.results(name, rollout_id)
    if as_json:
        print_json(found)
        return
    _print_results(found)


@app.command("watch")
def watch(
    name: EndpointArg,
    interval: Annotated[
        float, typer.Option("--interval", "-i", min=0.1, help="Seconds between steps.")
    ] = 5.0,
    probe: Annotated[
        list[str], typer.Option("--probe", help="A server URL asked whether a blue-green candidate is ready.")
    ] = [],  # noqa: B006
    once: Annotated[bool, typer.Option("--once", help="Run one step and stop.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the rollout controller on one endpoint until its rollout ends: each step analysed, then
    promoted or rolled back."""
    from steward.deploy.controller import HttpReadiness

    readiness = HttpReadiness(probe) if probe else None
    with deployments() as deploy:
        while True:
            step = deploy.advance(name, readiness=readiness)
            if as_json:
                print_json(step)
            else:
                console.print(f"{format_time(_now())} {escape(step['action'])}: {escape(step['message'])}")
            rollout = step.get("rollout")
            if (
                once
                or step["action"] == "idle"
                or not rollout
                or rollout["state"] not in ("pending", "running")
            ):
                break
            time.sleep(interval)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
