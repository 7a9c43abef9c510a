"""Actual state: workflows as applied, their history, synced revisions, source positions.

:func:`open_store` opens a database by URL (a path or ``sqlite:///…`` for SQLite,
``postgresql://…`` for PostgreSQL) and migrates it to the newest schema.
"""

from __future__ import annotations

from agentflowd.store.access import AccessStore, ApiKey, AuditEntry, AuditQuery
from agentflowd.store.base import HISTORY_LIMIT, LEDGER_GROUPS, Store
from agentflowd.store.memory import MemoryStore
from agentflowd.store.records import (
    AgentImage,
    HistoryAction,
    HistoryEntry,
    LlmCall,
    LlmCallState,
    Origin,
    RevisionKind,
    RevisionRecord,
    RevisionState,
    SourceState,
    StoredWorkflow,
    WorkflowHead,
    WorkflowWrite,
)
from agentflowd.store.sql import SqlStore

__all__ = [
    "AccessStore",
    "AgentImage",
    "ApiKey",
    "AuditEntry",
    "AuditQuery",
    "HISTORY_LIMIT",
    "HistoryAction",
    "HistoryEntry",
    "LEDGER_GROUPS",
    "LlmCall",
    "LlmCallState",
    "MemoryStore",
    "Origin",
    "RevisionKind",
    "RevisionRecord",
    "RevisionState",
    "SourceState",
    "SqlStore",
    "Store",
    "StoredWorkflow",
    "WorkflowHead",
    "WorkflowWrite",
    "open_store",
]


def open_store(url: str) -> SqlStore:
    """Open the database at ``url`` and migrate it to the newest schema."""
    from agentflowd.store import migrate

    store = SqlStore.open(url)
    migrate.upgrade(store.engine)
    return store
