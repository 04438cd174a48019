"""``steward projects|users|tokens`` and ``steward login|logout``.

``projects``, ``users`` and ``tokens`` manage identity in the metadata database directly, as the local
admin (they refuse to run with ``STEWARD_URI``; a server answers the same under ``/api/v1``). That is
also how a first admin can be made without the bootstrap token::

    steward users create ana --global-role admin
    steward tokens create laptop --user ana          # prints the secret, once

``steward login`` checks a token against a server (``GET /api/v1/whoami``) and stores it in
``<STEWARD_HOME>/credentials.json`` (mode 0600), keyed by the server's URI; the SDK and CLI send it to
that server when ``STEWARD_TOKEN`` is unset. ``--bootstrap`` spends the server's one-time bootstrap
token to make the first admin and stores that admin's first token. A token is printed only by
``tokens create``, never by ``login``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Column

from steward.cli.output import (
    JsonOption,
    console,
    embedded_platform,
    err_console,
    format_time,
    new_table,
    print_json,
)
from steward.config import load_settings

if TYPE_CHECKING:
    from steward.governance.identity import IdentityService, TokenInfo

projects_app = typer.Typer(
    help="Projects (tenants) and who may act in them, with which roles.", no_args_is_help=True
)
users_app = typer.Typer(help="Users and service accounts, and their global roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens: issue (shown once), list and revoke.", no_args_is_help=True)

_STATUS_STYLES = {"active": "green", "revoked": "red", "expired": "yellow"}


@contextmanager
def _identities() -> Iterator[IdentityService]:
    from steward.governance.identity import IdentityService

    with embedded_platform(
        "this command manages identity in the database", "use the server's /api/v1 routes"
    ) as platform:
        yield IdentityService(platform)


# -- projects -----------------------------------------------------------------------------------------


@projects_app.command("list")
def list_projects(as_json: JsonOption = False) -> None:
    """List the projects, by name."""
    with _identities() as identities:
        found = identities.list_projects()
    if as_json:
        print_json([p.to_json() for p in found])
        return
    table = new_table("Name", "Description", Column("Created (UTC)", no_wrap=True), "Created by")
    for project in found:
        table.add_row(
            escape(project.name), escape(project.description), format_time(project.created_at),
            escape(project.created_by),
        )  # fmt: skip
    console.print(table)


@projects_app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(help="The project's name.")],
    description: Annotated[str, typer.Option("--description", "-d", help="What it is for.")] = "",
) -> None:
    """Create a project."""
    with _identities() as identities:
        made = identities.create_project(name, description)
    console.print(f"Created project [bold]{escape(made.name)}[/bold].")


@projects_app.command("members")
def members(
    project: Annotated[str, typer.Argument(help="The project.")], as_json: JsonOption = False
) -> None:
    """List a project's members and their roles."""
    with _identities() as identities:
        found = identities.members(project)
    if as_json:
        print_json([m.to_json() for m in found])
        return
    if not found:
        console.print(f"Project {escape(project)} has no members (global admins and auditors see it).")
        return
    table = new_table("Principal", "Kind", "Roles")
    for member in found:
        name = escape(member.name) + (" [dim](disabled)[/dim]" if member.disabled else "")
        table.add_row(name, member.kind, escape(", ".join(member.roles)))
    console.print(table)


@projects_app.command("add-member")
def add_member(
    project: Annotated[str, typer.Argument(help="The project.")],
    principal: Annotated[str, typer.Argument(help="The user or service account.")],
    role: Annotated[
        str,
        typer.Option("--role", "-r", help="viewer, data-scientist, ml-engineer, approver, auditor, admin."),
    ],
) -> None:
    """Give a principal a role in a project."""
    with _identities() as identities:
        member = identities.add_member(project, principal, role)
    console.print(
        f"{escape(member.name)} now holds {escape(', '.join(member.roles))} in project {escape(project)}."
    )


@projects_app.command("remove-member")
def remove_member(
    project: Annotated[str, typer.Argument(help="The project.")],
    principal: Annotated[str, typer.Argument(help="The user or service account.")],
    role: Annotated[str | None, typer.Option("--role", "-r", help="Only this role (default: all).")] = None,
) -> None:
    """Take a principal's role (or every role) in a project away."""
    with _identities() as identities:
        removed = identities.remove_member(project, principal, role)
    console.print(
        f"Removed {escape(', '.join(removed))} of {escape(principal)} in project {escape(project)}."
    )


# -- users --------------------------------------------------------------------------------------------


@users_app.command("create")
def create_user(
    name: Annotated[str, typer.Argument(help="The principal's name.")],
    service: Annotated[bool, typer.Option("--service", help="Make a service account, not a user.")] = False,
    display_name: Annotated[str, typer.Option("--display-name", help="A name for people to read.")] = "",
    email: Annotated[str, typer.Option("--email", help="The user's e-mail address.")] = "",
    global_role: Annotated[
        str | None, typer.Option("--global-role", help="admin or auditor, in every project.")
    ] = None,
) -> None:
    """Create a user (or, with --service, a service account)."""
    with _identities() as identities:
        if service:
            made = identities.create_service_account(name, display_name, global_role)
        else:
            made = identities.create_user(name, display_name, email, global_role)
    role = f" with the global role {made.global_role}" if made.global_role else ""
    kind = "service account" if made.kind == "service" else "user"
    console.print(f"Created {kind} [bold]{escape(made.name)}[/bold]{role}.")


@users_app.command("list")
def list_users(
    service: Annotated[bool, typer.Option("--service", help="Only service accounts.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List users and service accounts."""
    with _identities() as identities:
        found = identities.list_principals("service" if service else None)
    if as_json:
        print_json([p.to_json() for p in found])
        return
    table = new_table(
        "Name", "Kind", "Global role", "Status", Column("Created (UTC)", no_wrap=True), "E-mail"
    )
    for p in found:
        status = "[red]disabled[/red]" if p.disabled else "[green]enabled[/green]"
        table.add_row(
            escape(p.name), p.kind, p.global_role or "-", status, format_time(p.created_at), escape(p.email)
        )
    console.print(table)


@users_app.command("disable")
def disable_user(name: Annotated[str, typer.Argument(help="The principal.")]) -> None:
    """Disable a user or service account: none of its tokens authenticate any more."""
    with _identities() as identities:
        identities.disable_principal(name)
    console.print(f"Disabled {escape(name)}: its tokens no longer authenticate.")


@users_app.command("enable")
def enable_user(name: Annotated[str, typer.Argument(help="The principal.")]) -> None:
    """Enable a disabled user or service account again."""
    with _identities() as identities:
        identities.enable_principal(name)
    console.print(f"Enabled {escape(name)}.")


@users_app.command("grant-global")
def grant_global(
    name: Annotated[str, typer.Argument(help="The principal.")],
    role: Annotated[str, typer.Argument(help="admin, auditor, or none to take the global role away.")],
) -> None:
    """Give a principal a global role (it applies in every project), or take it away with 'none'."""
    with _identities() as identities:
        found = identities.set_global_role(name, None if role.lower() == "none" else role)
    held = f"the global role {found.global_role}" if found.global_role else "no global role"
    console.print(f"{escape(name)} now holds {held}.")


# -- tokens -------------------------------------------------------------------------------------------


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Argument(help="What the token is for (ci, laptop …).")],
    user: Annotated[str, typer.Option("--user", "-u", help="The principal it acts as.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", "-s", help="Narrow it to this permission (repeat); default: all the principal's."
        ),
    ] = None,
    expires: Annotated[
        str, typer.Option("--expires", help="Its lifetime: 30d, 12h, 2w … or 'never'.")
    ] = "90d",
    as_json: JsonOption = False,
) -> None:
    """Issue an API token and print its secret on stdout, once: it is not stored and cannot be shown again."""
    from steward.governance.identity import parse_lifetime

    lifetime = parse_lifetime(expires)
    with _identities() as identities:
        issued = identities.issue_token(user, name, scope or None, lifetime)
    if as_json:
        print_json(issued.to_json())
        return
    typer.echo(issued.secret)
    until = f"expires {format_time(issued.expires_at)} UTC" if issued.expires_at else "never expires"
    err_console.print(
        f"Token {issued.id} for {escape(user)} ({until}). This is the only time it is shown: store it now."
    )


@tokens_app.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this principal's tokens.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List API tokens with their status; never a secret."""
    with _identities() as identities:
        found = identities.list_tokens(user)
        now = identities.now()
    if as_json:
        print_json([t.to_json(now) for t in found])
        return
    console.print(_tokens_table(found, now))


def _tokens_table(found: list[TokenInfo], now: datetime) -> object:
    table = new_table(
        Column("ID", no_wrap=True), "Principal", "Name", "Scopes", "Status",
        Column("Expires (UTC)", no_wrap=True), Column("Last used (UTC)", no_wrap=True),
    )  # fmt: skip
    for token in found:
        status = token.status(now)
        style = _STATUS_STYLES.get(status, "white")
        scopes = ", ".join(token.scopes) if token.scopes is not None else "all"
        table.add_row(
            token.id, escape(token.principal or "-"), escape(token.name), escape(scopes),
            f"[{style}]{status}[/{style}]", format_time(token.expires_at) if token.expires_at else "never",
            format_time(token.last_used_at),
        )  # fmt: skip
    return table


@tokens_app.command("revoke")
def revoke_token(token_id: Annotated[str, typer.Argument(help="The token's ID (tokens list).")]) -> None:
    """Revoke a token: it stops authenticating (on a running server within 5 seconds)."""
    with _identities() as identities:
        found = identities.revoke_token(token_id)
    console.print(f"Revoked token {found.id} of {escape(found.principal or '-')}.")


# -- login and logout ---------------------------------------------------------------------------------


def _server(uri: str | None) -> tuple[str, Path]:
    settings = load_settings(uri=uri)
    if not settings.uri:
        raise typer.BadParameter("give the server with --uri (or set STEWARD_URI)", param_hint="--uri")
    return settings.uri, settings.home


def login_command(
    uri: Annotated[
        str | None,
        typer.Option("--uri", help="The Steward server, http(s)://host:port (default: STEWARD_URI)."),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="An API token (asked for, hidden, if not given).")
    ] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option("--bootstrap", help="The server's one-time bootstrap token: make the first admin."),
    ] = None,
    admin: Annotated[
        str | None, typer.Option("--admin", help="With --bootstrap: the first admin's name.")
    ] = None,
) -> None:
    """Log in to a Steward server: check the token and store it (mode 0600) for that server.

    With --bootstrap TOKEN --admin NAME, spend the bootstrap token the server printed when it first
    started with auth on: it creates NAME as admin and stores NAME's first API token. The token is
    never printed.
    """
    from steward.client.credentials import save_token
    from steward.client.http import HttpClient

    if bootstrap is not None and token is not None:
        raise typer.BadParameter("give --token or --bootstrap, not both", param_hint="--token")
    if (bootstrap is None) != (admin is None):
        raise typer.BadParameter("--bootstrap and --admin go together", param_hint="--admin")
    server, home = _server(uri)
    made = None
    if bootstrap is not None:
        with HttpClient(server) as http:
            made = http.json("POST", "/auth/bootstrap", json={"token": bootstrap.strip(), "admin": admin})
        token = str(made["token"])
    elif token is None:
        token = typer.prompt("API token", hide_input=True)
    token = token.strip()
    with HttpClient(server, token=token) as http:
        me = http.json("GET", "/whoami")
    path = save_token(home, server, token)
    if made is not None:
        console.print(f"Created the admin [bold]{escape(str(admin))}[/bold] on {escape(server)}.")
    console.print(
        f"Logged in to {escape(server)} as [bold]{escape(me['name'])}[/bold] ({escape(me['kind'])})."
    )
    roles = [f"{role} (global)" for role in me.get("global_roles", [])]
    roles += [f"{', '.join(held)} in {project}" for project, held in me.get("projects", {}).items()]
    console.print(f"Roles: {escape('; '.join(roles)) if roles else 'none yet'}.")
    console.print(f"Token stored in {escape(str(path))} (readable by you only).")


def logout_command(
    uri: Annotated[
        str | None, typer.Option("--uri", help="The Steward server (default: STEWARD_URI).")
    ] = None,
) -> None:
    """Forget the token stored for a Steward server (it stays valid: revoke it to end it)."""
    from steward.client.credentials import forget

    server, home = _server(uri)
    if forget(home, server):
        console.print(f"Logged out of {escape(server)}: its stored token is forgotten.")
    else:
        console.print(f"No token was stored for {escape(server)}.")
