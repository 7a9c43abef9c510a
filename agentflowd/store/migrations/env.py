"""Alembic environment: run migrations on the connection handed in by agentflowd.store.migrate.

Batch mode (``render_as_batch``) lets SQLite alter tables by copying them, the only way it can.
"""

from __future__ import annotations

from alembic import context

from agentflowd.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
