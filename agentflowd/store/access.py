"""What access control keeps: API keys (as hashes) and the audit log.

A port of its own (:class:`AccessStore`), beside the workflow store rather than in it: keys and
audit rows share no transaction with workflows, and a reader of the security model finds all
of it here. Implementations: :class:`~agentflowd.store.access_sql.SqlAccess` (SQLite,
PostgreSQL) and :class:`~agentflowd.store.access_memory.MemoryAccess`; one contract suite
(``tests/store/test_access_contract.py``) runs against all three.

The audit log is append-only through this interface: there is no method to change or delete a
row, only :meth:`AccessStore.prune_audit`, which drops rows older than the retention the
operator configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = ["AccessStore", "ApiKey", "AuditEntry", "AuditQuery"]


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """An API key as stored: never the token itself, only its SHA-256."""

    id: str  # the public part of the token (afk_<id>_<secret>), shown in listings
    name: str
    role: str
    selector: str | None  # a label selector limiting the workflows it may touch
    token_sha256: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One thing done, or refused: who, what, to what, when, from where, with what result."""

    at: datetime
    actor: str  # "key:ci-bot", "oidc:alice@example.com", "git:Ann <ann@example.com>", ...
    action: str  # an AuditAction value: "workflow.suspend", "key.create", "auth.refused", ...
    target: str | None  # a workflow, an execution, a key name
    result: str  # "ok", "denied", "error"
    status: int | None = None  # the HTTP status, for API calls
    source: str | None = None  # the client address, or "git", or "cli"
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # set by the store


@dataclass(frozen=True, kw_only=True)
class AuditQuery:
    """Which audit rows to read: every filter given must hold; newest first, ``limit`` of them,
    from before row ``before_id`` when paging back."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    limit: int = 100
    before_id: int | None = None

    def matches(self, entry: AuditEntry) -> bool:
        """Whether ``entry`` passes the filters (``limit`` aside)."""
        return (
            (self.since is None or entry.at >= self.since)
            and (self.until is None or entry.at < self.until)
            and (self.actor is None or entry.actor == self.actor)
            and (self.action is None or entry.action == self.action)
            and (self.target is None or entry.target == self.target)
            and (self.before_id is None or (entry.id or 0) < self.before_id)
        )


class AccessStore(Protocol):
    """Keys and the audit log; every method is one transaction."""

    def create_key(self, key: ApiKey) -> ApiKey:
        """Store a new key; :class:`~agentflowd.errors.ConflictError` when an active key
        already has its name."""
        ...

    def get_key(self, key_id: str) -> ApiKey:
        """The key with this id; :class:`~agentflowd.errors.KeyNotFound` if none."""
        ...

    def keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Keys, oldest first."""
        ...

    def revoke_key(self, name_or_id: str, *, now: datetime) -> ApiKey:
        """Revoke the active key with this name (or id); at once, for every node (each request
        reads its key from the store)."""
        ...

    def touch_key(self, key_id: str, *, now: datetime) -> None:
        """Record that the key was used at ``now``."""
        ...

    def append_audit(self, *entries: AuditEntry) -> list[int]:
        """Append audit rows, in one transaction; returns their ids."""
        ...

    def audit(self, query: AuditQuery | None = None) -> list[AuditEntry]:
        """Audit rows, newest first (all filters of ``query``; None: the newest 100)."""
        ...

    def prune_audit(self, *, before: datetime) -> int:
        """Drop rows older than ``before`` (the retention setting); returns how many."""
        ...
