"""``steward approvals``: requests to move protected aliases, and the decisions of approvers.

A promotion whose policies fail only on ``approvals`` opens a request (``steward models promote``).
Approvers with ``approvals:decide`` approve or reject it with a comment; the version's author and the
requester may not approve it, and each approver decides once. The approval that completes the count
promotes then and there, after checking the policies again. Works embedded and against a server
(``STEWARD_URI``, calling ``/api/v1/approvals``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column

from steward.cli.output import JsonOption, console, details_grid, new_table, print_json
from steward.cli.policy import Governance, governance

app = typer.Typer(
    help="Approval requests for protected aliases: list, show, approve, reject.",
    no_args_is_help=True,
)

RequestId = Annotated[
    str, typer.Argument(metavar="ID", help="The request's id (see 'steward approvals list').")
]
_STATUS_STYLES = {"pending": "yellow", "approved": "green", "rejected": "red"}


class StatusFilter(StrEnum):
    """Which requests ``list`` shows."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    all = "all"


def _segment(value: str) -> str:
    from steward.client.http import segment

    return segment(value)


def _list(gov: Governance, status: str | None) -> list[dict[str, Any]]:
    if gov.http is not None:
        return list(gov.call("GET", "/approvals", params={"status": status})["requests"])
    return [r.to_json() for r in gov.approvals().list(status)]


def _get(gov: Governance, request_id: str) -> dict[str, Any]:
    if gov.http is not None:
        return dict(gov.call("GET", f"/approvals/{_segment(request_id)}"))
    return dict(gov.approvals().get(request_id).to_json())


def _decide(gov: Governance, request_id: str, decision: str, comment: str) -> dict[str, Any]:
    if gov.http is not None:
        return dict(gov.call("POST", f"/approvals/{_segment(request_id)}/{decision}", {"comment": comment}))
    service = gov.approvals()
    found = (
        service.approve(request_id, comment) if decision == "approve" else service.reject(request_id, comment)
    )
    return dict(found.to_json())


def _status(status: str) -> str:
    style = _STATUS_STYLES.get(status, "white")
    return f"[{style}]{escape(status)}[/{style}]"


def _time(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


@app.command("list")
def list_requests(
    status: Annotated[
        StatusFilter, typer.Option("--status", "-s", help="Which requests.")
    ] = StatusFilter.pending,
    as_json: JsonOption = False,
) -> None:
    """List approval requests (pending ones by default), oldest first."""
    with governance() as gov:
        found = _list(gov, None if status is StatusFilter.all else status.value)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print(f"No {'' if status is StatusFilter.all else status.value + ' '}approval requests.")
        return
    table = new_table(
        Column("ID", no_wrap=True), "Model", Column("Version", no_wrap=True), "Alias", "Status",
        Column("Approvals", justify="right"), "Requested by", Column("Requested (UTC)", no_wrap=True),
        "Reason",
    )  # fmt: skip
    for r in found:
        table.add_row(
            r["id"], escape(r["model"]), escape(r["version"]), escape(r["alias"]), _status(r["status"]),
            f"{r['approvals']}/{r['required']}", escape(r["requested_by"]), _time(r["requested_at"]),
            escape(r["reason"]) or "-",
        )  # fmt: skip
    console.print(table)


def _print_request(r: dict[str, Any]) -> None:
    policies = ", ".join(f"{p['name']} (version {p.get('version')})" for p in r["policies"]) or "-"
    console.print(
        details_grid([
            ("Request", r["id"]),
            ("Promote", escape(f"{r['model']} {r['version']} -> {r['alias']}")),
            ("Status", _status(r["status"])),
            ("Approvals", f"{r['approvals']} of {r['required']}"),
            ("Policies", escape(policies)),
            ("Author", escape(r["author"])),
            ("Requested", f"{_time(r['requested_at'])} UTC by {escape(r['requested_by'])}"),
            ("Reason", escape(r["reason"]) or "-"),
            ("Resolved", f"{_time(r['resolved_at'])} UTC" if r["resolved_at"] else "-"),
        ])
    )  # fmt: skip
    if r["decisions"]:
        table = new_table("Approver", "Decision", Column("At (UTC)", no_wrap=True), "Comment")
        for d in r["decisions"]:
            decision = _status("approved" if d["decision"] == "approve" else "rejected")
            table.add_row(escape(d["approver"]), decision, _time(d["at"]), escape(d["comment"]) or "-")
        console.print(table)


@app.command("show")
def show(request_id: RequestId, as_json: JsonOption = False) -> None:
    """Show a request: what it would promote, the policies that asked for it and every decision."""
    with governance() as gov:
        found = _get(gov, request_id)
    if as_json:
        print_json(found)
    else:
        _print_request(found)


@app.command("approve")
def approve(
    request_id: RequestId,
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why you approve (recorded).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Approve a request; if it now has enough approvals, the alias moves (after checking the policies)."""
    with governance() as gov:
        found = _decide(gov, request_id, "approve", comment)
    if as_json:
        print_json(found)
        return
    what = f"{found['model']} {found['version']} -> {found['alias']}"
    outcome = found.get("outcome")
    if outcome and outcome.get("promoted"):
        console.print(
            f"Approved; that completes the request: [bold]{escape(found['alias'])}[/bold] now points at "
            f"{escape(found['model'])} {escape(found['version'])}."
        )
    elif outcome:
        console.print(
            f"Approved ({found['approvals']} of {found['required']}), but {escape(what)} was not promoted: "
            f"{escape(str(outcome.get('message', '')))}"
        )
    else:
        console.print(f"Approved {escape(what)}: {found['approvals']} of {found['required']} approvals.")


@app.command("reject")
def reject(
    request_id: RequestId,
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why you reject it (required, recorded).")],
    as_json: JsonOption = False,
) -> None:
    """Reject a request, closing it; the comment says why."""
    with governance() as gov:
        found = _decide(gov, request_id, "reject", comment)
    if as_json:
        print_json(found)
    else:
        console.print(
            f"Rejected the promotion of {escape(found['model'])} {escape(found['version'])} to "
            f"{escape(found['alias'])}."
        )
