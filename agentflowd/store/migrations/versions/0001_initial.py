"""Initial schema: sources, revisions, workflows and their history.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentflowd.store.tables import JSON, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("branch", sa.String(255), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("last_seen_sha", sa.String(64)),
        sa.Column("last_applied_sha", sa.String(64)),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sources"),
    )
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", Timestamp(), nullable=False),
        sa.Column("finished_at", Timestamp()),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        sa.Column("diagnostics", JSON, nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revisions"),
    )
    op.create_index("ix_revisions_sha", "revisions", ["sha"])
    op.create_index("ix_revisions_source_kind_id", "revisions", ["source", "kind", "id"])
    op.create_table(
        "workflows",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("revision", sa.String(64)),
        sa.Column("file", sa.Text),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("suspended", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("pinned_revision", sa.String(64)),
        sa.Column("last_error", JSON),
        sa.Column("error_revision", sa.String(64)),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_workflows"),
    )
    op.create_table(
        "workflow_history",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("revision", sa.String(64)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("applied_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_history"),
        sa.ForeignKeyConstraint(
            ["name"],
            ["workflows.name"],
            name="fk_workflow_history_name_workflows",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("name", "generation", name="uq_workflow_history_name_generation"),
    )


def downgrade() -> None:
    op.drop_table("workflow_history")
    op.drop_table("workflows")
    op.drop_index("ix_revisions_source_kind_id", table_name="revisions")
    op.drop_index("ix_revisions_sha", table_name="revisions")
    op.drop_table("revisions")
    op.drop_table("sources")
