"""Governance (identity, tenancy, RBAC, audit, policy): a later issue fills this layer (see ARCHITECTURE.md)."""
