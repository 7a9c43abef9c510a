"""Migrations: upgrade -> downgrade -> upgrade on SQLite and PostgreSQL, and no drift."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from agentflowd.store import SqlStore, migrate, open_store
from agentflowd.store.tables import metadata


def engines(tmp_path: Path, request: pytest.FixtureRequest) -> sa.Engine:
    if request.param == "sqlite":
        return SqlStore.open(str(tmp_path / "m.db")).engine
    return SqlStore.open(request.getfixturevalue("postgres_url")).engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    made = engines(tmp_path, request)
    yield made
    migrate.upgrade(made)  # leave PostgreSQL at head for the contract tests
    made.dispose()


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(engine):
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert tables(engine) == {
        "sources",
        "revisions",
        "workflows",
        "workflow_history",
        "agent_images",
        "llm_calls",
        "executions",
        "step_runs",
        "execution_events",
        "leases",
        "api_keys",
        "audit_log",
    }
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert tables(engine) == set()
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_migrations_create_exactly_the_declared_schema(engine):
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == []


def test_workflows_stored_before_images_existed_survive_the_upgrade(engine):
    migrate.upgrade(engine, "0001")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO workflows (name, origin, spec, spec_hash, generation, suspended,"
                " created_at, updated_at) VALUES ('old', 'git', '{}', 'h', 1, false, :t, :t)"
            ),
            {"t": now.replace(tzinfo=None)},
        )
    migrate.upgrade(engine)
    old = SqlStore(engine).get_workflow("old")
    assert (old.spec_hash, old.images) == ("h", {})
    migrate.downgrade(engine, "0001")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM workflows")).scalars().all() == ["old"]


def test_upgrade_is_idempotent(engine):
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_open_store_migrates(tmp_path):
    store = open_store(str(tmp_path / "new.db"))
    try:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()
