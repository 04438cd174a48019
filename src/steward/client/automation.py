"""``RemoteAutomationService``: triggers and their firings over a Steward server's REST API
(``api/automation.py``), with the signatures, return types and errors of the embedded
``AutomationService``'s trigger operations.

The server checks a new trigger's pipeline by importing it there: the import path must name code
installed where the server (and the scheduler) run, not on the caller's machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from steward.automation.models import Firing, Trigger
from steward.client.http import HttpClient, segment
from steward.errors import InvalidInput


def _trigger(name: str) -> str:
    # Not validate_name: the scheduler's own triggers are called ``monitor:<name>``.
    if not isinstance(name, str) or not name:
        raise InvalidInput("a trigger name is required", {"field": "name"})
    return f"/triggers/{segment(name)}"


class RemoteAutomationService:
    """Triggers over HTTP: what the ``steward triggers`` commands use when ``STEWARD_URI`` names a server.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def create_trigger(
        self,
        name: str,
        kind: str,
        spec: str,
        pipeline: str,
        *,
        params: Mapping[str, Any] | None = None,
        executor: str = "local",
        enabled: bool = True,
    ) -> Trigger:
        """Create a trigger that runs ``pipeline`` with ``params`` when it is due (see
        ``AutomationService.create_trigger``).

        Raises:
            InvalidInput: Naming the field: a bad name, kind, cron expression, period, executor, import
                path, or parameters the pipeline does not take (or lacks).
            NotFound: The dataset does not exist.
            AlreadyExists: The project has a trigger of that name.
        """
        body = {
            "name": name,
            "kind": kind,
            "spec": spec,
            "pipeline": pipeline,
            "params": dict(params) if isinstance(params, Mapping) else params,
            "executor": executor,
            "enabled": enabled,
        }
        return Trigger.from_json(self.http.json("POST", "/triggers", body))

    def get_trigger(self, name: str) -> Trigger:
        """Return one trigger.

        Raises:
            NotFound: The project has no trigger called ``name``.
        """
        return Trigger.from_json(self.http.json("GET", _trigger(name)))

    def list_triggers(self) -> list[Trigger]:
        """Return the project's triggers (the scheduler's monitor triggers too), by name."""
        return [Trigger.from_json(t) for t in self.http.json("GET", "/triggers")["triggers"]]

    def delete_trigger(self, name: str, reason: str = "") -> None:
        """Delete a trigger and its firings (the audit trail keeps what they did).

        Raises:
            NotFound: There is no such trigger.
        """
        self.http.request("DELETE", _trigger(name), params={"reason": reason})

    def list_firings(self, name: str, limit: int = 50) -> list[Firing]:
        """Return a trigger's latest firings, newest first.

        Raises:
            NotFound: There is no such trigger.
            InvalidInput: If ``limit`` is not between 1 and 1000.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InvalidInput("limit must be between 1 and 1000", {"field": "limit"})
        found = self.http.json("GET", f"{_trigger(name)}/firings", params={"limit": limit})
        return [Firing.from_json(f) for f in found["firings"]]
