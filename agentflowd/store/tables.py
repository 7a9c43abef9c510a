"""The schema, in SQLAlchemy Core. Migrations (``migrations/versions``) create exactly this;
a test compares the two so they cannot drift."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "agent_images",
    "api_keys",
    "audit_log",
    "execution_events",
    "executions",
    "leases",
    "history",
    "llm_calls",
    "metadata",
    "revisions",
    "sources",
    "step_runs",
    "workflows",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# Python None is SQL NULL (not the JSON text 'null'), so "IS NULL" means "absent".
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


class Timestamp(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on both backends (SQLite keeps no zone: we store UTC and re-attach)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("branch", sa.String(255), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("last_seen_sha", sa.String(64)),
    sa.Column("last_applied_sha", sa.String(64)),
    sa.Column("updated_at", Timestamp(), nullable=False),
)

revisions = sa.Table(
    "revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
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
    sa.Index(None, "sha"),
    sa.Index(None, "source", "kind", "id"),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
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
    sa.Column("images", JSON),
)

history = sa.Table(
    "workflow_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "name",
        sa.String(63),
        sa.ForeignKey("workflows.name", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("spec", JSON, nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("revision", sa.String(64)),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("applied_at", Timestamp(), nullable=False),
    sa.Column("images", JSON),
    sa.UniqueConstraint("name", "generation"),
)

agent_images = sa.Table(
    "agent_images",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
)

#: The router's cost ledger. Cost is kept exact as integer picodollars (1e-12 USD): every
#: per-token price with up to 6 decimals per million tokens is a whole number of them. A row is
#: written ``reserved`` (cost = the worst case) before the request leaves, then settled.
llm_calls = sa.Table(
    "llm_calls",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", Timestamp(), nullable=False),
    sa.Column("workflow", sa.String(63), nullable=False),
    sa.Column("agent", sa.String(63), nullable=False),
    sa.Column("execution", sa.String(64), nullable=False),
    sa.Column("step", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("estimated", sa.Boolean, nullable=False),
    sa.Column("cost_picousd", sa.BigInteger, nullable=False),
    sa.Column("price_source", sa.String(100), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("cache_hit", sa.Boolean, nullable=False),
    sa.Column("fallback_depth", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="settled"),
    sa.Column("reserved_picousd", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index(None, "workflow", "at"),
    sa.Index(None, "execution"),
)

#: Executions: the materialized state of each run of a workflow (the events are the history).
executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("workflow", sa.String(63), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("spec", JSON, nullable=False),
    sa.Column("images", JSON),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("trigger_key", sa.String(255), unique=True),
    sa.Column("input", JSON),
    sa.Column("output", JSON),
    sa.Column("error", sa.Text),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("started_at", Timestamp()),
    sa.Column("finished_at", Timestamp()),
    sa.Column("deadline_at", Timestamp()),
    # the node driving it (PostgreSQL, several nodes: its lease is ``node:OWNER`` in leases)
    sa.Column("owner", sa.String(128)),
    sa.Index(None, "workflow", "created_at"),
    sa.Index(None, "state"),
    sa.Index(None, "owner"),
)

#: Leases: ``node:ID`` while a node is alive, ``leader`` for the elected singleton. A holder
#: renews its lease before ``expires_at``; after it, anyone may take it over.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(160), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.Column("acquired_at", Timestamp(), nullable=False),
)

#: One row per step of an execution: its latest attempt.
step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column(
        "execution_id",
        sa.String(32),
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("step", sa.String(63), primary_key=True),
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
)

#: The append-only history of every execution, in order (seq per execution).
execution_events = sa.Table(
    "execution_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "execution_id",
        sa.String(32),
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("at", Timestamp(), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("step", sa.String(63)),
    sa.Column("attempt", sa.Integer),
    sa.Column("data", JSON),
    sa.UniqueConstraint("execution_id", "seq"),
)

#: API keys: only the SHA-256 of each token (``afk_<id>_<secret>``), looked up by its id.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("selector", sa.Text),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp(), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("expires_at", Timestamp()),
    sa.Column("revoked_at", Timestamp()),
    sa.Column("last_used_at", Timestamp()),
    sa.Index(None, "name"),
)

#: The audit log: append-only (pruned only by the retention setting).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", Timestamp(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200)),
    sa.Column("result", sa.String(32), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("source", sa.String(100)),
    sa.Column("detail", JSON),
    sa.Index(None, "at"),
    sa.Index(None, "actor"),
)
