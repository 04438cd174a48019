"""The deploy half of the SDK: ``steward.create_endpoint``, ``start_rollout``, ``promote_rollout`` …

Each function calls the default connection's deploy backend (embedded, or a server's REST API), which
``steward._connect`` installs with ``set_deploy_resolver``.

Example:
    >>> steward.create_endpoint("churn", model="churn", version="1.0.0")  # doctest: +SKIP
    >>> steward.create_endpoint("risk", "risk", "1.0.0", feature_service="risk_features")  # doctest: +SKIP
    >>> steward.update_endpoint("risk", feature_service="risk_features_v2")  # doctest: +SKIP
    >>> steward.start_rollout("churn", "canary", "1.1.0", steps=[10, 50, 100])  # doctest: +SKIP
    >>> steward.endpoint_status("churn").rollout.state  # doctest: +SKIP
    <RolloutState.RUNNING: 'running'>
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from steward.deploy.models import DEFAULT_GATE_ALIAS, DeployBackend, Endpoint, EndpointStatus, Rollout
from steward.errors import StewardError

DeployResolver = Callable[[], DeployBackend]
_resolver: DeployResolver | None = None

__all__ = [
    "abort_rollout",
    "create_endpoint",
    "delete_endpoint",
    "endpoint_status",
    "get_endpoint",
    "get_rollout",
    "list_endpoints",
    "promote_rollout",
    "rollback_rollout",
    "rollout_results",
    "start_rollout",
    "update_endpoint",
]


def set_deploy_resolver(resolver: DeployResolver) -> None:
    """Install the function that returns the deploy backend in use."""
    global _resolver
    _resolver = resolver


def _backend() -> DeployBackend:
    if _resolver is None:
        raise StewardError("steward is not configured: import steward (which installs the default backend)")
    return _resolver()


def create_endpoint(
    name: str,
    model: str,
    version: str,
    *,
    description: str = "",
    gate_alias: str = DEFAULT_GATE_ALIAS,
    sticky_key: str | None = None,
    feature_service: str | None = None,
) -> Endpoint:
    """Create an endpoint serving ``version`` of ``model`` (100%), once the policies that protect
    ``gate_alias`` let the version through. With ``feature_service``, its requests carry entity keys and
    the server reads the model's inputs from that service's online features.

    Raises:
        PolicyViolation: The version fails the gate; ``details["lines"]`` shows each rule.
        AlreadyExists: The project has an endpoint of that name.
        NotFound: The feature service is not defined.
    """
    return _backend().create_endpoint(
        name, model, version, description=description, gate_alias=gate_alias, sticky_key=sticky_key,
        feature_service=feature_service,
    )  # fmt: skip


def update_endpoint(
    name: str,
    *,
    description: str | None = None,
    sticky_key: str | None = None,
    feature_service: str | None = None,
    clear_sticky_key: bool = False,
    clear_feature_service: bool = False,
    reason: str = "",
) -> Endpoint:
    """Change an endpoint's description, sticky key or feature service; only what is given changes.
    Servers following the endpoint pick the change up at their next poll (its revision moves, its arms
    stay).

    Raises:
        InvalidInput: A bad value, a value given with its ``clear_`` flag, or nothing to change.
        NotFound: The endpoint or the feature service does not exist.
        Conflict: The sticky key would change while an A/B rollout is under way.
    """
    return _backend().update_endpoint(
        name, description=description, sticky_key=sticky_key, feature_service=feature_service,
        clear_sticky_key=clear_sticky_key, clear_feature_service=clear_feature_service, reason=reason,
    )  # fmt: skip


def get_endpoint(name: str) -> Endpoint:
    """Return an endpoint with its traffic plan."""
    return _backend().get_endpoint(name)


def list_endpoints() -> list[Endpoint]:
    """Return the project's endpoints."""
    return _backend().list_endpoints()


def delete_endpoint(name: str, reason: str = "") -> None:
    """Delete an endpoint that has no rollout under way."""
    _backend().delete_endpoint(name, reason)


def start_rollout(endpoint: str, strategy: str, version: str, **options: Any) -> Rollout:
    """Start rolling ``version`` out onto ``endpoint``: ``strategy`` is ``blue-green``, ``canary``,
    ``ab`` or ``shadow``; ``options`` are the strategy's (``deploy.options.RolloutOptions``).

    Raises:
        Conflict: A rollout is under way already.
        PolicyViolation: The version fails the endpoint's gate.
    """
    return _backend().start_rollout(endpoint, strategy, version, options)


def get_rollout(endpoint: str, rollout_id: str | None = None) -> Rollout:
    """Return a rollout (the latest by default) with its events."""
    return _backend().get_rollout(endpoint, rollout_id)


def endpoint_status(endpoint: str) -> EndpointStatus:
    """Return the endpoint, its latest rollout and its versions' recent statistics."""
    return _backend().status(endpoint)


def promote_rollout(endpoint: str, *, finish: bool = False, reason: str = "") -> Rollout:
    """Move the rollout under way one step on by hand (to its end with ``finish``)."""
    return _backend().promote(endpoint, finish=finish, reason=reason)


def rollback_rollout(endpoint: str, reason: str = "") -> Rollout:
    """Give the rollout's baseline version all traffic again, at once."""
    return _backend().rollback(endpoint, reason)


def abort_rollout(endpoint: str, reason: str = "") -> Rollout:
    """Stop the rollout under way and take its candidate out of the plan."""
    return _backend().abort(endpoint, reason)


def rollout_results(endpoint: str, rollout_id: str | None = None) -> dict[str, Any]:
    """Per-arm outcomes of a rollout and, for A/B, the significance test (statistic, p-value, effect,
    confidence interval, whether the sample is large enough)."""
    return _backend().results(endpoint, rollout_id)
