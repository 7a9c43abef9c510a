"""Executions: materialized state of runs and steps, and their append-only event history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentflowd.store.tables import JSON, Timestamp

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("images", JSON),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("trigger_key", sa.String(255)),
        sa.Column("input", JSON),
        sa.Column("output", JSON),
        sa.Column("error", sa.Text),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("started_at", Timestamp()),
        sa.Column("finished_at", Timestamp()),
        sa.Column("deadline_at", Timestamp()),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
        sa.UniqueConstraint("trigger_key", name="uq_executions_trigger_key"),
    )
    op.create_index("ix_executions_workflow_created_at", "executions", ["workflow", "created_at"])
    op.create_index("ix_executions_state", "executions", ["state"])
    op.create_table(
        "step_runs",
        sa.Column("execution_id", sa.String(32), nullable=False),
        sa.Column("step", sa.String(63), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("image_sha256", sa.String(64)),
        sa.Column("output", JSON),
        sa.Column("error", sa.Text),
        sa.Column("log", sa.Text),
        sa.Column("started_at", Timestamp()),
        sa.Column("finished_at", Timestamp()),
        sa.Column("next_attempt_at", Timestamp()),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name="fk_step_runs_execution_id_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "step", name="pk_step_runs"),
    )
    op.create_table(
        "execution_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("execution_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", Timestamp(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("step", sa.String(63)),
        sa.Column("attempt", sa.Integer),
        sa.Column("data", JSON),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name="fk_execution_events_execution_id_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_execution_events"),
        sa.UniqueConstraint("execution_id", "seq", name="uq_execution_events_execution_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("execution_events")
    op.drop_table("step_runs")
    op.drop_index("ix_executions_state", table_name="executions")
    op.drop_index("ix_executions_workflow_created_at", table_name="executions")
    op.drop_table("executions")
