"""Governance: identity, tenancy, RBAC, audit, policy. A later issue fills this layer."""
