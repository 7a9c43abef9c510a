"""Keys and the audit log in memory: the twin of :class:`~agentflowd.store.access_sql.SqlAccess`
(the same contract suite runs against both)."""

from __future__ import annotations

import copy
import threading
from dataclasses import replace
from datetime import datetime

from agentflowd.errors import ConflictError, KeyNotFound
from agentflowd.store.access import ApiKey, AuditEntry, AuditQuery

__all__ = ["MemoryAccess"]


class MemoryAccess:
    """:class:`~agentflowd.store.access.AccessStore` in lists, guarded by one lock."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._audit: list[AuditEntry] = []
        self._lock = threading.Lock()

    def create_key(self, key: ApiKey) -> ApiKey:
        with self._lock:
            if key.id in self._keys or any(
                k.name == key.name and k.revoked_at is None for k in self._keys.values()
            ):
                raise ConflictError(f"an API key named {key.name!r} exists; revoke it first")
            self._keys[key.id] = key
            return key

    def get_key(self, key_id: str) -> ApiKey:
        with self._lock:
            if key_id not in self._keys:
                raise KeyNotFound(key_id)
            return self._keys[key_id]

    def keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        with self._lock:
            found = [k for k in self._keys.values() if include_revoked or k.revoked_at is None]
            return sorted(found, key=lambda k: (k.created_at, k.id))

    def revoke_key(self, name_or_id: str, *, now: datetime) -> ApiKey:
        with self._lock:
            for key in self._keys.values():
                if key.revoked_at is None and name_or_id in (key.name, key.id):
                    self._keys[key.id] = revoked = replace(key, revoked_at=now)
                    return revoked
            raise KeyNotFound(name_or_id)

    def touch_key(self, key_id: str, *, now: datetime) -> None:
        with self._lock:
            if key_id in self._keys:
                self._keys[key_id] = replace(self._keys[key_id], last_used_at=now)

    def append_audit(self, *entries: AuditEntry) -> list[int]:
        if not entries:
            return []
        with self._lock:
            ids = []
            for entry in entries:
                ids.append(len(self._audit) + 1)
                self._audit.append(replace(entry, id=ids[-1], detail=copy.deepcopy(entry.detail)))
            return ids

    def audit(self, query: AuditQuery | None = None) -> list[AuditEntry]:
        query = query or AuditQuery()
        with self._lock:
            rows = [e for e in reversed(self._audit) if query.matches(e)]
            return copy.deepcopy(rows[: query.limit])

    def prune_audit(self, *, before: datetime) -> int:
        with self._lock:
            kept = [e for e in self._audit if e.at >= before]
            dropped = len(self._audit) - len(kept)
            self._audit = kept
            return dropped
