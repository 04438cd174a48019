"""tuning: the journal of each tuning study

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "tuning_journal",
        sa.Column("study", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("study", "seq", name=op.f("pk_tuning_journal")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("tuning_journal")
