"""Agent images: the resolved images of every workflow version, and image contents by SHA-256.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentflowd.store.tables import JSON, Timestamp

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("images", JSON))
    with op.batch_alter_table("workflow_history") as batch:
        batch.add_column(sa.Column("images", JSON))
    op.create_table(
        "agent_images",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_agent_images"),
    )


def downgrade() -> None:
    op.drop_table("agent_images")
    with op.batch_alter_table("workflow_history") as batch:
        batch.drop_column("images")
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("images")
