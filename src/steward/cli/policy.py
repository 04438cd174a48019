"""``steward policy``: apply, read and retire policies; check a version against them; and ``promote``.

Policies gate protected aliases (``production`` by default): ``steward policy check churn 1.1.0
--alias production`` prints the verdict, one line per rule with PASS/FAIL, the actual value and what the
rule requires, and exits 1 when it fails; it acts on nothing. ``promote`` (registered as ``steward
models promote``) moves the alias through the gate: it moves it, opens an approval request, or prints
the failing verdict and exits 1.

The commands work embedded and against a server (``STEWARD_URI``), where they call
``/api/v1/policies`` and ``/api/v1/models/…/promote`` with ``STEWARD_TOKEN``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column

from steward.cli.output import JsonOption, console, err_console, new_table, print_json
from steward.config import load_settings
from steward.errors import InvalidInput, PolicyViolation

if TYPE_CHECKING:
    from steward.client.http import HttpClient
    from steward.store.platform import Platform

app = typer.Typer(
    help="Policies that gate protected aliases: apply, list, show, history, retire, check a version.",
    no_args_is_help=True,
)

ModelName = Annotated[str, typer.Argument(help="The registered model's name.")]
VersionArg = Annotated[str, typer.Argument(help="The version, e.g. 1.1.0.")]
AliasOption = Annotated[str, typer.Option("--alias", "-a", help="The alias it would take.")]
PolicyName = Annotated[str, typer.Argument(help="The policy's name.")]


class CheckFormat(StrEnum):
    """How ``check`` prints the verdict."""

    text = "text"
    json = "json"


# -- embedded or remote ------------------------------------------------------------------------------


class Governance:
    """The policy and approval operations the commands call, as JSON, embedded or over HTTP.

    Args:
        platform: The embedded platform; or
        http: the client of a server.
    """

    def __init__(self, platform: Platform | None = None, http: HttpClient | None = None) -> None:
        self.platform = platform
        self.http = http

    def _registry(self) -> Any:
        from steward.registry.service import RegistryService

        assert self.platform is not None
        return RegistryService(self.platform)

    def _store(self) -> Any:
        from steward.governance.policy_store import PolicyStore

        assert self.platform is not None
        return PolicyStore(self.platform)

    def approvals(self) -> Any:
        """The embedded approval service (whose completed requests promote)."""
        from steward.registry.promotion import approval_service

        return approval_service(self._registry())

    def call(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Send a request to the server (remote mode only) and return its JSON."""
        assert self.http is not None
        return self.http.json(
            method, path, json=body, params={k: v for k, v in (params or {}).items() if v is not None}
        )

    def apply(self, document: str) -> dict[str, Any]:
        """``Applied.to_json()``."""
        if self.http is not None:
            return dict(self.call("POST", "/policies", {"document": document}))
        return dict(self._store().apply(document).to_json())

    def list_policies(self, include_retired: bool) -> list[dict[str, Any]]:
        """The newest version of each policy (in force only, unless ``include_retired``)."""
        if self.http is not None:
            return list(
                self.call("GET", "/policies", params={"all": str(include_retired).lower()})["policies"]
            )
        return [p.to_json() for p in self._store().list(include_retired=include_retired)]

    def get(self, name: str, version: int | None) -> dict[str, Any]:
        """One version of a policy."""
        if self.http is not None:
            return dict(self.call("GET", f"/policies/{_segment(name)}", params={"version": version}))
        return dict(self._store().get(name, version).to_json())

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every version of a policy, oldest first."""
        if self.http is not None:
            return list(self.call("GET", f"/policies/{_segment(name)}/history")["versions"])
        return [p.to_json() for p in self._store().history(name)]

    def retire(self, name: str, reason: str) -> dict[str, Any]:
        """Retire a policy."""
        if self.http is not None:
            return dict(self.call("POST", f"/policies/{_segment(name)}/retire", {"reason": reason}))
        return dict(self._store().retire(name, reason).to_json())

    def check(self, model: str, version: str, alias: str) -> dict[str, Any]:
        """``Verdict.to_json()``."""
        if self.http is not None:
            path = f"/models/{_segment(model)}/versions/{_segment(version)}/verdict"
            return dict(self.call("GET", path, params={"alias": alias}))
        from steward.registry.gates import check

        return check(self._registry(), model, version, alias).to_json()

    def promote(self, model: str, version: str, alias: str, reason: str) -> dict[str, Any]:
        """``PromotionResult.to_json()``."""
        if self.http is not None:
            path = f"/models/{_segment(model)}/versions/{_segment(version)}/promote"
            return dict(self.call("POST", path, {"alias": alias, "reason": reason}))
        from steward.registry.promotion import promote

        return promote(self._registry(), model, version, alias, reason).to_json()


def _segment(value: str) -> str:
    from steward.client.http import segment

    return segment(value)


@contextmanager
def governance() -> Iterator[Governance]:
    """Open the policy and approval operations for one command: embedded, or the ``STEWARD_URI`` server."""
    settings = load_settings()
    if settings.uri:
        from steward.client.http import HttpClient

        with HttpClient.from_settings(settings) as http:
            yield Governance(http=http)
        return
    from steward.store.platform import Platform

    platform = Platform.from_settings(settings)
    try:
        yield Governance(platform=platform)
    finally:
        platform.close()


# -- policies ----------------------------------------------------------------------------------------


@app.command("apply")
def apply(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The YAML document.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Store a policy document as the next version of its policy (unchanged content stores nothing)."""
    try:
        document = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file} is not UTF-8 text", {"field": "file"}) from None
    with governance() as gov:
        applied = gov.apply(document)
    if as_json:
        print_json(applied)
        return
    policy = applied["policy"]
    what = {"created": "Created", "updated": "Updated", "unchanged": "Unchanged:"}[applied["status"]]
    console.print(
        f"{what} policy [bold]{escape(policy['name'])}[/bold] version {policy['version']}: "
        f"{len(policy['rules'])} rule(s) gating {escape(', '.join(policy['aliases']))} of "
        f"{escape(', '.join(policy['models']))}."
    )


def _policies_table(found: list[dict[str, Any]]) -> Any:
    table = new_table(
        Column("Name", no_wrap=True), Column("Version", justify="right"), "Aliases", "Models",
        Column("Rules", justify="right"), Column("Approvals", justify="right"),
        Column("Applied (UTC)", no_wrap=True), "By", "State",
    )  # fmt: skip
    for p in found:
        state = "[green]in force[/green]" if p["in_force"] else "[dim]retired[/dim]"
        table.add_row(
            escape(p["name"]), str(p["version"]), escape(", ".join(p["aliases"])),
            escape(", ".join(p["models"])), str(len(p["rules"])), str(p["required_approvals"] or "-"),
            _time(p["created_at"]), escape(p["created_by"]), state,
        )  # fmt: skip
    return table


def _time(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


@app.command("list")
def list_policies(
    include_retired: Annotated[bool, typer.Option("--all", help="Include retired policies.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the policies in force (newest version of each), with the aliases and models they gate."""
    with governance() as gov:
        found = gov.list_policies(include_retired)
    if as_json:
        print_json(found)
    elif not found:
        console.print("No policies" + ("." if include_retired else " in force: every alias moves freely."))
    else:
        console.print(_policies_table(found))


@app.command("show")
def show(
    name: PolicyName,
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="This version (default: newest).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show one version of a policy: who applied it when, whether it is in force, and its document."""
    with governance() as gov:
        found = gov.get(name, version)
    if as_json:
        print_json(found)
        return
    state = "in force" if found["in_force"] else "retired" if found["retired_at"] else "superseded"
    console.print(
        f"[bold]{escape(found['name'])}[/bold] version {found['version']} ({state}), applied "
        f"{_time(found['created_at'])} UTC by {escape(found['created_by'])}; digest {found['digest'][:16]}"
    )
    typer.echo(found["document"].rstrip("\n"))


@app.command("history")
def history(name: PolicyName, as_json: JsonOption = False) -> None:
    """Show every version of a policy, oldest first."""
    with governance() as gov:
        found = gov.history(name)
    if as_json:
        print_json(found)
        return
    table = new_table(
        Column("Version", justify="right"), Column("Applied (UTC)", no_wrap=True), "By",
        Column("Digest", no_wrap=True), Column("Rules", justify="right"), "State",
    )  # fmt: skip
    for p in found:
        state = (
            "[green]in force[/green]"
            if p["in_force"]
            else f"retired {_time(p['retired_at'])}"
            if p["retired_at"]
            else "superseded"
        )
        table.add_row(str(p["version"]), _time(p["created_at"]), escape(p["created_by"]), p["digest"][:16],
                      str(len(p["rules"])), state)  # fmt: skip
    console.print(table)


@app.command("retire")
def retire(
    name: PolicyName,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why: recorded with the change.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Take a policy out of force (every version of it): the aliases it protected move freely again."""
    with governance() as gov:
        found = gov.retire(name, reason)
    if as_json:
        print_json(found)
    else:
        console.print(
            f"Retired policy [bold]{escape(found['name'])}[/bold] (newest version {found['version']})."
        )


@app.command("check")
def check(
    model: ModelName,
    version: VersionArg,
    alias: AliasOption = "production",
    fmt: Annotated[CheckFormat, typer.Option("--format", "-f", help="text or json.")] = CheckFormat.text,
) -> None:
    """Check a version against the policies gating the alias, one line per rule; act on nothing.

    Exits 1 when the verdict fails (also when only approvals are missing).
    """
    from steward.governance.policy import Verdict

    with governance() as gov:
        verdict = gov.check(model, version, alias)
    if fmt is CheckFormat.json:
        print_json(verdict)
    else:
        typer.echo(Verdict.from_json(verdict).render())
    if not verdict["passed"]:
        raise typer.Exit(code=1)


# -- promotion (registered as ``steward models promote``) --------------------------------------------


def promote(
    model: ModelName,
    version: VersionArg,
    alias: AliasOption = "production",
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why: recorded with the move.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Move an alias to a version through the policies that protect it.

    An unprotected alias just moves. A protected one moves when every rule holds; when only approvals are
    missing an approval request opens (its id is printed); when another rule fails the verdict is
    printed and the command exits 1.
    """
    from steward.governance.policy import Verdict

    try:
        with governance() as gov:
            result = gov.promote(model, version, alias, reason)
    except PolicyViolation as exc:
        found = exc.details.get("verdict")
        if isinstance(found, Mapping) and not as_json:
            err_console.print(escape(Verdict.from_json(found).render()), highlight=False)
        raise
    if as_json:
        print_json(result)
        return
    console.print(escape(result["message"]))
    if result["status"] == "pending" and result["verdict"]:
        console.print(escape(Verdict.from_json(result["verdict"]).render()))
