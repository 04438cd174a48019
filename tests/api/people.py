"""The users of an auth-on API test: a global admin, one member per role of a project, and an engineer of
another project (for the tenancy checks); each with a token."""

from __future__ import annotations

from collections.abc import Mapping

from steward.governance.identity import IdentityService


def issue_tokens(
    identities: IdentityService, project: str, other: str, roles: Mapping[str, str]
) -> dict[str, str]:
    """Create ``root`` (admin everywhere), each ``roles`` name as a member of ``project`` with its role,
    and ``bob`` (``ml-engineer`` of ``other``); return each one's token secret by name. ``project`` is
    created unless it is ``default``."""
    identities.create_user("root", global_role="admin")
    tokens = {"root": identities.issue_token("root").secret}
    for name in dict.fromkeys((project, other)):
        if name != "default":
            identities.create_project(name)
    for name, role in roles.items():
        identities.create_user(name)
        identities.add_member(project, name, role)
        tokens[name] = identities.issue_token(name).secret
    identities.create_user("bob")
    identities.add_member(other, "bob", "ml-engineer")
    tokens["bob"] = identities.issue_token("bob").secret
    return tokens
