"""governance: projects, principals, memberships, API tokens, policies, approvals, model signatures

Every experiment, registered model and dataset gets a ``project`` (existing ones join ``default``);
their names become unique per project. The step cache and the tuning journal are keyed by project too.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TENANT_TABLES = ("experiments", "registered_models", "datasets")


def _project_column() -> sa.Column[str]:
    return sa.Column("project", sa.String(length=128), nullable=False, server_default="default")


def _rekey(table: str, columns: list[sa.Column[object]], keys: list[str], copied: str) -> None:
    """Recreate ``table`` with ``columns`` and primary key ``keys``, its rows copied into ``default``."""
    op.rename_table(table, f"{table}_old")
    if op.get_bind().dialect.name == "postgresql":  # index names are per schema there
        op.execute(f"ALTER INDEX pk_{table} RENAME TO pk_{table}_old")
    op.create_table(table, *columns, sa.PrimaryKeyConstraint(*keys, name=op.f(f"pk_{table}")))
    op.execute(f"INSERT INTO {table} (project, {copied}) SELECT 'default', {copied} FROM {table}_old")
    op.drop_table(f"{table}_old")


def upgrade() -> None:
    """Apply this revision."""
    for table in _TENANT_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_project_column())
            batch_op.drop_constraint(f"uq_{table}_name", type_="unique")
            batch_op.create_unique_constraint(f"uq_{table}_project_name", ["project", "name"])
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("signing_key_id", sa.String(length=16), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_audit_log_project", ["project", "seq"], unique=False)
    _rekey(
        "step_cache",
        [
            sa.Column("project", sa.String(length=128), nullable=False),
            sa.Column("cache_key", sa.String(length=64), nullable=False),
            sa.Column("step", sa.String(length=256), nullable=False),
            sa.Column(
                "run_id",
                sa.String(length=32),
                sa.ForeignKey("runs.id", name=op.f("fk_step_cache_run_id_runs")),
                nullable=False,
            ),
            sa.Column("outputs", sa.Text(), nullable=False),
            sa.Column("created_at", sa.BigInteger(), nullable=False),
        ],
        ["project", "cache_key"],
        "cache_key, step, run_id, outputs, created_at",
    )
    _rekey(
        "tuning_journal",
        [
            sa.Column("project", sa.String(length=128), nullable=False),
            sa.Column("study", sa.String(length=128), nullable=False),
            sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("log", sa.Text(), nullable=False),
            sa.Column("created_at", sa.BigInteger(), nullable=False),
        ],
        ["project", "study", "seq"],
        "study, seq, log, created_at",
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "principals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("email", sa.String(length=256), nullable=False),
        sa.Column("global_role", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("disabled_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principals")),
        sa.UniqueConstraint("name", name=op.f("uq_principals_name")),
    )
    op.create_table(
        "memberships",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("principal_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.Column("added_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name=op.f("fk_memberships_principal_id_principals")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_memberships_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "principal_id", "role", name=op.f("pk_memberships")),
    )
    op.create_index("ix_memberships_principal", "memberships", ["principal_id"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("principal_id", sa.String(length=32), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name=op.f("fk_api_tokens_principal_id_principals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("project", "name", "version", name="uq_policies_version"),
    )
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=256), nullable=False),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_approval_requests_model_id_registered_models"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name=op.f("fk_approval_requests_version_id_model_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_requests")),
    )
    op.create_index("ix_approval_requests_status", "approval_requests", ["project", "status"], unique=False)
    op.create_table(
        "approval_decisions",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("approver", sa.String(length=256), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["approval_requests.id"],
                                name=op.f("fk_approval_decisions_request_id_approval_requests")),
        sa.PrimaryKeyConstraint("request_id", "approver", name=op.f("pk_approval_decisions")),
    )  # fmt: skip


def downgrade() -> None:
    """Revert this revision."""
    for table in ("approval_decisions", "approval_requests", "policies", "api_tokens", "memberships",
                  "principals", "projects"):  # fmt: skip
        op.drop_table(table)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_project")
        batch_op.drop_column("project")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("signing_key_id")
        batch_op.drop_column("signature")
    for table in _TENANT_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"uq_{table}_project_name", type_="unique")
            batch_op.create_unique_constraint(f"uq_{table}_name", ["name"])
            batch_op.drop_column("project")
