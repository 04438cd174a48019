"""monitoring and automation: references, window summaries, monitors, alerts, rule streaks, triggers,
their firings and the scheduler's leases

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "monitoring_references",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_references")),
        sa.UniqueConstraint("project", "key", name="uq_monitoring_references_key"),
    )
    op.create_table(
        "monitoring_windows",
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("reference_id", sa.String(length=32), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project", "endpoint", "reference_id", "window_start", name=op.f("pk_monitoring_windows")
        ),
    )
    op.create_table(
        "monitors",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("last_run_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitors")),
        sa.UniqueConstraint("project", "name", name="uq_monitors_project_name"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("monitor_id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("delivered", sa.Integer(), nullable=True),
        sa.Column("deliveries", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["monitor_id"], ["monitors.id"], name=op.f("fk_alerts_monitor_id_monitors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_monitor", "alerts", ["project", "monitor_id", "state"], unique=False)
    op.create_table(
        "rule_streaks",
        sa.Column("monitor_id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=512), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("broken", sa.Integer(), nullable=False),
        sa.Column("last_window_end", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"], ["monitors.id"], name=op.f("fk_rule_streaks_monitor_id_monitors")
        ),
        sa.PrimaryKeyConstraint("monitor_id", "rule", name=op.f("pk_rule_streaks")),
    )
    op.create_table(
        "triggers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("next_due_at", sa.BigInteger(), nullable=True),
        sa.Column("last_fired_at", sa.BigInteger(), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
        sa.UniqueConstraint("project", "name", name="uq_triggers_project_name"),
    )
    op.create_table(
        "trigger_firings",
        sa.Column("trigger_id", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("fired_at", sa.BigInteger(), nullable=False),
        sa.Column("fired_by", sa.String(length=256), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"], ["triggers.id"], name=op.f("fk_trigger_firings_trigger_id_triggers")
        ),
        sa.PrimaryKeyConstraint("trigger_id", "due_at", name=op.f("pk_trigger_firings")),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("scheduler_leases")
    op.drop_table("trigger_firings")
    op.drop_table("triggers")
    op.drop_table("rule_streaks")
    op.drop_index("ix_alerts_monitor", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("monitors")
    op.drop_table("monitoring_windows")
    op.drop_table("monitoring_references")
