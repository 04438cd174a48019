"""``RemoteDeployService``: the ``DeployBackend`` over a Steward server's REST API (``api/deploy.py``).

Same signatures, return types and errors as the embedded ``DeployService``. Endpoint names go into URL
paths, so they are checked here first with the service's own function and message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from steward.client.http import HttpClient, segment
from steward.core.names import validate_name
from steward.deploy.models import DEFAULT_GATE_ALIAS, Endpoint, EndpointStatus, Rollout

if TYPE_CHECKING:
    from steward.deploy.controller import Readiness


def _endpoint(name: str) -> str:
    return f"/endpoints/{segment(validate_name(name, 'endpoint'))}"


class RemoteDeployService:
    """Endpoints and rollouts over HTTP: what ``steward.connect("http://…")`` uses.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def create_endpoint(
        self,
        name: str,
        model: str,
        version: str,
        *,
        description: str = "",
        gate_alias: str = DEFAULT_GATE_ALIAS,
        sticky_key: str | None = None,
        feature_service: str | None = None,
    ) -> Endpoint:
        """Create an endpoint serving ``version`` of ``model``, through the policy gate (its requests
        completed from ``feature_service``'s online features, if given).

        Raises:
            InvalidInput: For a bad name, alias or sticky key.
            NotFound: The model, version or feature service does not exist.
            AlreadyExists: The project has an endpoint of that name.
            PolicyViolation: The version fails the policies of ``gate_alias``.
        """
        body = {
            "name": name,
            "model": model,
            "version": version,
            "description": description,
            "gate_alias": gate_alias,
            "sticky_key": sticky_key,
            "feature_service": feature_service,
        }
        return Endpoint.from_json(self.http.json("POST", "/endpoints", body))

    def get_endpoint(self, name: str) -> Endpoint:
        """Return one endpoint.

        Raises:
            NotFound: There is no such endpoint.
        """
        return Endpoint.from_json(self.http.json("GET", _endpoint(name)))

    def update_endpoint(
        self,
        name: str,
        *,
        description: str | None = None,
        sticky_key: str | None = None,
        feature_service: str | None = None,
        clear_sticky_key: bool = False,
        clear_feature_service: bool = False,
        reason: str = "",
    ) -> Endpoint:
        """Change an endpoint's description, sticky key or feature service (only what is given).

        Raises:
            InvalidInput: A bad value, a value given with its ``clear_`` flag, or nothing to change.
            NotFound: The endpoint or the feature service does not exist.
            Conflict: The sticky key would change while an A/B rollout is under way.
        """
        body = {
            "description": description,
            "sticky_key": sticky_key,
            "feature_service": feature_service,
            "clear_sticky_key": clear_sticky_key,
            "clear_feature_service": clear_feature_service,
            "reason": reason,
        }
        return Endpoint.from_json(self.http.json("PATCH", _endpoint(name), body))

    def list_endpoints(self) -> list[Endpoint]:
        """Return the project's endpoints, by name."""
        return [Endpoint.from_json(e) for e in self.http.json("GET", "/endpoints")["endpoints"]]

    def delete_endpoint(self, name: str, reason: str = "") -> None:
        """Delete an endpoint that has no rollout under way.

        Raises:
            NotFound: There is no such endpoint.
            Conflict: A rollout is under way on it.
        """
        self.http.request("DELETE", _endpoint(name), params={"reason": reason})

    def start_rollout(
        self, endpoint: str, strategy: str, version: str, options: Mapping[str, Any] | None = None
    ) -> Rollout:
        """Start rolling ``version`` out onto ``endpoint``, through the policy gate.

        Raises:
            InvalidInput: For an unknown strategy or a bad option.
            NotFound: The endpoint or version does not exist.
            Conflict: A rollout is under way already, or the version is the stable one.
            PolicyViolation: The version fails the endpoint's gate.
        """
        body = {"strategy": strategy, "version": version, "options": dict(options or {})}
        return Rollout.from_json(self.http.json("POST", f"{_endpoint(endpoint)}/rollouts", body))

    def get_rollout(self, endpoint: str, rollout_id: str | None = None) -> Rollout:
        """Return a rollout (the latest by default) with its events.

        Raises:
            NotFound: There is no such endpoint or rollout.
        """
        which = segment(rollout_id) if rollout_id else "latest"
        return Rollout.from_json(self.http.json("GET", f"{_endpoint(endpoint)}/rollouts/{which}"))

    def list_rollouts(self, endpoint: str) -> list[Rollout]:
        """Return the endpoint's rollouts, newest first (without events)."""
        found = self.http.json("GET", f"{_endpoint(endpoint)}/rollouts")["rollouts"]
        return [Rollout.from_json(r) for r in found]

    def status(self, endpoint: str) -> EndpointStatus:
        """Return the endpoint, its latest rollout and its versions' recent statistics."""
        return EndpointStatus.from_json(self.http.json("GET", f"{_endpoint(endpoint)}/status"))

    def advance(self, endpoint: str, *, readiness: Readiness | None = None) -> dict[str, Any]:
        """Run one analysis step of the rollout under way now; ``readiness`` is asked here, by the
        caller, whether a blue-green candidate is ready (the server probes no client-given URL)."""
        ready = None
        if readiness is not None:
            found = self.get_endpoint(endpoint)
            if found.active_rollout is not None:
                rollout = self.get_rollout(endpoint, found.active_rollout)
                ready = readiness.ready(endpoint, rollout.version)
        return dict(self.http.json("POST", f"{_endpoint(endpoint)}/advance", {"ready": ready}))

    def promote(self, endpoint: str, *, finish: bool = False, reason: str = "") -> Rollout:
        """Move the rollout under way one step on (or to its end, with ``finish``).

        Raises:
            Conflict: No rollout is under way.
        """
        body = {"finish": finish, "reason": reason}
        return Rollout.from_json(self.http.json("POST", f"{_endpoint(endpoint)}/promote", body))

    def rollback(self, endpoint: str, reason: str = "") -> Rollout:
        """Send all traffic back to the rollout's baseline version at once.

        Raises:
            Conflict: There is nothing to roll back.
        """
        return Rollout.from_json(
            self.http.json("POST", f"{_endpoint(endpoint)}/rollback", {"reason": reason})
        )

    def abort(self, endpoint: str, reason: str = "") -> Rollout:
        """Stop the rollout under way and take its candidate out of the plan.

        Raises:
            Conflict: No rollout is under way.
        """
        return Rollout.from_json(self.http.json("POST", f"{_endpoint(endpoint)}/abort", {"reason": reason}))

    def results(self, endpoint: str, rollout_id: str | None = None) -> dict[str, Any]:
        """Per-arm outcomes of a rollout and, for A/B, the significance test."""
        params = {"rollout": rollout_id} if rollout_id else None
        return dict(self.http.json("GET", f"{_endpoint(endpoint)}/results", params=params))

    def export(
        self, endpoint: str, target: str, version: str | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """The Kubernetes, KServe or Docker files of a version of the endpoint's model."""
        body = {"target": target, "version": version, "options": dict(options or {})}
        return dict(self.http.json("POST", f"{_endpoint(endpoint)}/export", body)["files"])
