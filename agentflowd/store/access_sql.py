"""Keys and the audit log in SQLite or PostgreSQL (tables ``api_keys`` and ``audit_log``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from agentflowd.errors import ConflictError, KeyNotFound
from agentflowd.store.access import ApiKey, AuditEntry
from agentflowd.store.tables import api_keys, audit_log

__all__ = ["SqlAccess"]

_KEY_FIELDS = (
    "id",
    "name",
    "role",
    "selector",
    "token_sha256",
    "created_at",
    "created_by",
    "expires_at",
    "revoked_at",
    "last_used_at",
)


def _key(row: RowMapping) -> ApiKey:
    return ApiKey(**{f: row[f] for f in _KEY_FIELDS})


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        result=row["result"],
        status=row["status"],
        source=row["source"],
        detail=row["detail"] or {},
    )


class SqlAccess:
    """:class:`~agentflowd.store.access.AccessStore` over the daemon's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def create_key(self, key: ApiKey) -> ApiKey:
        with self._tx() as conn:
            if self.engine.dialect.name == "postgresql":  # one creator of a name at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": key.name})
            taken = conn.execute(
                sa.select(api_keys.c.id).where(
                    sa.or_(
                        api_keys.c.id == key.id,
                        sa.and_(api_keys.c.name == key.name, api_keys.c.revoked_at.is_(None)),
                    )
                )
            ).first()
            if taken is not None:
                raise ConflictError(f"an API key named {key.name!r} exists; revoke it first")
            conn.execute(api_keys.insert().values(**{f: getattr(key, f) for f in _KEY_FIELDS}))
        return key

    def get_key(self, key_id: str) -> ApiKey:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).mappings()
            found = row.first()
        if found is None:
            raise KeyNotFound(key_id)
        return _key(found)

    def keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(query).mappings()]

    def revoke_key(self, name_or_id: str, *, now: datetime) -> ApiKey:
        with self._tx() as conn:
            row = (
                conn.execute(
                    sa.select(api_keys).where(
                        api_keys.c.revoked_at.is_(None),
                        sa.or_(api_keys.c.name == name_or_id, api_keys.c.id == name_or_id),
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise KeyNotFound(name_or_id)
            conn.execute(api_keys.update().where(api_keys.c.id == row["id"]).values(revoked_at=now))
        return replace(_key(row), revoked_at=now)

    def touch_key(self, key_id: str, *, now: datetime) -> None:
        with self._tx() as conn:
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=now))

    def append_audit(self, entry: AuditEntry) -> int:
        values: dict[str, Any] = {
            "at": entry.at,
            "actor": entry.actor[:200],
            "action": entry.action[:64],
            "target": entry.target[:200] if entry.target else None,
            "result": entry.result[:32],
            "status": entry.status,
            "source": entry.source[:100] if entry.source else None,
            "detail": entry.detail or None,
        }
        with self._tx() as conn:
            new_id: int = conn.execute(
                audit_log.insert().values(**values).returning(audit_log.c.id)
            ).scalar_one()
        return new_id

    def audit(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        c = audit_log.c
        query = sa.select(audit_log).order_by(c.id.desc()).limit(limit)
        for column, value in ((c.actor, actor), (c.action, action), (c.target, target)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(c.at >= since)
        if until is not None:
            query = query.where(c.at < until)
        if before_id is not None:
            query = query.where(c.id < before_id)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query).mappings()]

    def prune_audit(self, *, before: datetime) -> int:
        with self._tx() as conn:
            result = conn.execute(audit_log.delete().where(audit_log.c.at < before))
        return int(result.rowcount or 0)
