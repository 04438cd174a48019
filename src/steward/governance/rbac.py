"""Roles and permissions: the one table, in code, of what each role may do.

A permission is ``<resource>:<action>``. Every API route declares the one it needs; a role is a set of
permissions; a principal holds roles per project (``memberships``) and may hold a global role
(``admin`` or ``auditor``) that applies in every project.
"""

from __future__ import annotations

from collections.abc import Iterable

from steward.errors import InvalidInput

PERMISSIONS: dict[str, str] = {
    "tracking:read": "Read experiments, runs, metrics and artifacts.",
    "tracking:write": "Create experiments and runs; log to them; delete and restore runs.",
    "models:read": "Read registered models, versions, cards, lineage and their files.",
    "models:write": "Register models and versions; edit cards; archive versions.",
    "models:promote": "Move aliases that no policy protects; request protected ones.",
    "data:read": "Read datasets, versions, profiles and their (masked) data.",
    "data:read_pii": "Read the data of columns tagged as personal data.",
    "data:write": "Create datasets, ingest, scan and protect them.",
    "data:release": "Release or drop quarantined batches.",
    "pipelines:read": "Read pipeline runs and their steps.",
    "pipelines:run": "Run and resume pipelines.",
    "policies:read": "Read policies and check verdicts.",
    "policies:write": "Create, edit and retire policies.",
    "approvals:read": "Read approval requests.",
    "approvals:decide": "Approve or reject approval requests.",
    "features:read": "Read feature definitions, training sets and online features.",
    "features:write": "Apply feature definitions; materialise and push feature values.",
    "monitoring:read": "Read monitors, their alerts and monitoring reports.",
    "monitoring:write": "Create, run and delete monitors; record what an alert's actions did.",
    "automation:read": "Read triggers and their firings.",
    "automation:write": "Create and delete triggers (which name pipelines the scheduler imports and runs).",
    "deploy:read": "Read endpoints, rollouts, their status and A/B results.",
    "deploy:write": "Create endpoints; start, promote and roll back rollouts; export manifests.",
    "serving:predict": "Send inference requests to a model server.",
    "serving:label": "Record ground-truth labels for served predictions.",
    "audit:read": "Read, verify and export the audit trail; build compliance reports.",
    "projects:read": "Read the project and its members.",
    "projects:admin": "Create projects; add and remove members.",
    "identity:admin": "Create users and service accounts; issue and revoke their tokens.",
    "keys:admin": "Rotate encryption keys.",
}
"""Every permission, with what it allows."""

_READ = frozenset(p for p in PERMISSIONS if p.endswith(":read") and p != "audit:read")

ROLES: dict[str, frozenset[str]] = {
    "viewer": _READ,
    "data-scientist": _READ
    | {
        "tracking:write",
        "models:write",
        "data:write",
        "features:write",
        "pipelines:run",
        "serving:predict",
        "serving:label",
    },
    "ml-engineer": _READ
    | {
        "tracking:write",
        "models:write",
        "models:promote",
        "data:write",
        "data:release",
        "features:write",
        "monitoring:write",
        "automation:write",
        "pipelines:run",
        "deploy:write",
        "serving:predict",
        "serving:label",
    },
    "approver": _READ | {"approvals:decide"},
    "auditor": _READ | {"audit:read"},
    "admin": frozenset(PERMISSIONS),
}
"""Each role's permissions. Nobody, not even ``admin``, moves a protected alias directly: that goes
through the policy gate and its approvals."""

GLOBAL_ROLES = frozenset({"admin", "auditor"})
"""Roles a principal may hold across every project."""


def check_role(role: str) -> str:
    """Return ``role`` if it is a known role.

    Raises:
        InvalidInput: Naming the known roles otherwise.
    """
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}", {"field": "role"})
    return role


def check_permission(permission: str) -> str:
    """Return ``permission`` if it is a known permission.

    Raises:
        InvalidInput: Otherwise.
    """
    if permission not in PERMISSIONS:
        raise InvalidInput(f"unknown permission {permission!r}", {"field": "scopes"})
    return permission


def permissions_of(roles: Iterable[str]) -> frozenset[str]:
    """Return the union of the permissions of ``roles`` (unknown roles grant nothing)."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLES.get(role, frozenset())
    return frozenset(granted)


def roles_with(permission: str) -> list[str]:
    """Return the roles that grant ``permission``, in the table's order."""
    return [role for role, granted in ROLES.items() if permission in granted]
