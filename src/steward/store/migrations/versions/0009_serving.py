"""serving: per-worker, per-window request statistics of each served model version

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "serving_windows",
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("latency_buckets", sa.Text(), nullable=False),
        sa.Column("shadow_compared", sa.BigInteger(), nullable=False),
        sa.Column("shadow_agreed", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project", "endpoint", "version", "window_start", "worker", name=op.f("pk_serving_windows")
        ),
    )
    op.create_index(
        "ix_serving_windows_recent", "serving_windows", ["project", "endpoint", "window_start"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_serving_windows_recent", table_name="serving_windows")
    op.drop_table("serving_windows")
