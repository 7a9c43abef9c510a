"""The access store contract (API keys, audit log), run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agentflowd.errors import ConflictError, KeyNotFound
from agentflowd.store import ApiKey, AuditEntry, AuditQuery, Store

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def key(name: str = "ci", key_id: str = "k1", **kw) -> ApiKey:
    return ApiKey(
        id=key_id,
        name=name,
        role=kw.pop("role", "operator"),
        selector=kw.pop("selector", None),
        token_sha256="ab" * 32,
        created_at=kw.pop("created_at", T0),
        created_by="local:root",
        **kw,
    )


def test_a_key_is_created_read_listed_and_revoked(store: Store):
    access = store.access
    made = access.create_key(key(selector="team=support", expires_at=T0 + timedelta(days=90)))
    assert access.get_key("k1") == made
    assert access.keys() == [made]
    assert made.active(T0) and not made.active(T0 + timedelta(days=90))
    revoked = access.revoke_key("ci", now=T0 + timedelta(hours=1))
    assert revoked.revoked_at == T0 + timedelta(hours=1)
    assert not revoked.active(T0 + timedelta(hours=2))
    assert access.get_key("k1").revoked_at == revoked.revoked_at  # every reader sees it at once
    assert access.keys() == []
    assert [k.id for k in access.keys(include_revoked=True)] == ["k1"]
    with pytest.raises(KeyNotFound):
        access.revoke_key("ci", now=T0)  # already revoked
    with pytest.raises(KeyNotFound):
        access.get_key("nope")


def test_names_are_unique_among_active_keys(store: Store):
    access = store.access
    access.create_key(key())
    with pytest.raises(ConflictError, match="revoke it first"):
        access.create_key(key(key_id="k2"))
    access.revoke_key("k1", now=T0)  # by id
    again = access.create_key(key(key_id="k2", created_at=T0 + timedelta(seconds=1)))
    assert [k.id for k in access.keys(include_revoked=True)] == ["k1", "k2"]
    assert access.keys() == [again]


def test_last_use_is_recorded(store: Store):
    store.access.create_key(key())
    store.access.touch_key("k1", now=T0 + timedelta(minutes=5))
    assert store.access.get_key("k1").last_used_at == T0 + timedelta(minutes=5)
    store.access.touch_key("gone", now=T0)  # a key revoked and gone meanwhile: no error


def entry(n: int, **kw) -> AuditEntry:
    return AuditEntry(
        at=kw.pop("at", T0 + timedelta(seconds=n)),
        actor=kw.pop("actor", "key:ci"),
        action=kw.pop("action", "workflow.suspend"),
        target=kw.pop("target", f"wf{n}"),
        result=kw.pop("result", "ok"),
        status=kw.pop("status", 200),
        source="127.0.0.1",
        detail=kw.pop("detail", {"n": n}),
    )


def test_the_audit_log_appends_and_filters(store: Store):
    audit = store.access
    ids = [id_ for n in range(5) for id_ in audit.append_audit(entry(n))]
    assert ids == sorted(ids) and len(set(ids)) == 5
    audit.append_audit(entry(5, actor="oidc:alice", action="key.create", result="denied"))
    rows = audit.audit()
    assert [r.target for r in rows] == ["wf5", "wf4", "wf3", "wf2", "wf1", "wf0"]  # newest first
    assert rows[0] == replace(
        entry(5, actor="oidc:alice", action="key.create", result="denied"), id=rows[0].id
    )
    assert [r.target for r in audit.audit(AuditQuery(actor="oidc:alice"))] == ["wf5"]
    assert [r.target for r in audit.audit(AuditQuery(action="workflow.suspend", limit=2))] == [
        "wf4",
        "wf3",
    ]
    assert [r.target for r in audit.audit(AuditQuery(target="wf2"))] == ["wf2"]
    since = audit.audit(
        AuditQuery(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=5))
    )
    assert [r.target for r in since] == ["wf4", "wf3"]
    page = audit.audit(AuditQuery(before_id=rows[2].id, limit=2))
    assert [r.target for r in page] == ["wf2", "wf1"]


def test_rows_appended_together_are_one_transaction_in_order(store: Store):
    assert store.access.append_audit() == []
    ids = store.access.append_audit(entry(1), entry(2), entry(3))
    assert len(ids) == 3 and ids == sorted(ids)
    assert [r.target for r in store.access.audit()] == ["wf3", "wf2", "wf1"]


def test_retention_prunes_only_old_rows(store: Store):
    for n in range(4):
        store.access.append_audit(entry(n, at=T0 + timedelta(days=n)))
    assert store.access.prune_audit(before=T0 + timedelta(days=2)) == 2
    assert [r.target for r in store.access.audit()] == ["wf3", "wf2"]
