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
from agentflowd.store.access import ApiKey, AuditEntry, AuditQuery
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


def _audit_values(entry: AuditEntry) -> dict[str, Any]:
    """A row's columns, cut to their widths."""
    return {
        "at": entry.at,
        "actor": entry.actor[:200],
        "action": entry.action[:64],
        "target": entry.target[:200] if entry.target else None,
        "result": entry.result[:32],
        "status": entry.status,
        "source": entry.source[:100] if entry.source else None,
        "detail": entry.detail or None,
    }


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

    def append_audit(self, *entries: AuditEntry) -> list[int]:
        if not entries:
            return []
        with self._tx() as conn:
            return [
                conn.execute(
                    audit_log.insert().values(**_audit_values(e)).returning(audit_log.c.id)
                ).scalar_one()
                for e in entries
            ]

    def audit(self, query: AuditQuery | None = None) -> list[AuditEntry]:
        query = query or AuditQuery()
        c = audit_log.c
        select = sa.select(audit_log).order_by(c.id.desc()).limit(query.limit)
        for column, value in (
            (c.actor, query.actor),
            (c.action, query.action),
            (c.target, query.target),
        ):
            if value is not None:
                select = select.where(column == value)
        if query.since is not None:
            select = select.where(c.at >= query.since)
        if query.until is not None:
            select = select.where(c.at < query.until)
        if query.before_id is not None:
            select = select.where(c.id < query.before_id)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(select).mappings()]

    def prune_audit(self, *, before: datetime) -> int:
        with self._tx() as conn:
            result = conn.execute(audit_log.delete().where(audit_log.c.at < before))
        return int(result.rowcount or 0)
