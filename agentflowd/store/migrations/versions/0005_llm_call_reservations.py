"""The cost ledger journals each LLM attempt before its request leaves: a row's state (reserved,
settled, released) and the worst case reserved for it, in integer picodollars.

Rows written before this revision were recorded after their answer: they are settled, and had
no reservation the ledger kept (0).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.add_column(
            sa.Column("state", sa.String(16), nullable=False, server_default="settled")
        )
        batch.add_column(
            sa.Column("reserved_picousd", sa.BigInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_column("reserved_picousd")
        batch.drop_column("state")
