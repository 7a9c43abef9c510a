"""Store fixtures: every contract test runs on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentflowd.store import MemoryStore, SqlStore, Store, migrate
from agentflowd.store.tables import metadata


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> str:
    store = SqlStore.open(postgres_url)
    try:
        migrate.upgrade(store.engine)
    finally:
        store.close()
    return postgres_url


def _pg_store(url: str) -> SqlStore:
    store = SqlStore.open(url)
    migrate.upgrade(store.engine)  # a migration test may have left it elsewhere
    with store.engine.begin() as conn:
        names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return store


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, migrated, empty store of each kind; checks for leaked connections after."""
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SqlStore.open(str(tmp_path / "state.db"))
        migrate.upgrade(made.engine)
    else:
        made = _pg_store(request.getfixturevalue("migrated_postgres"))
    yield made
    if isinstance(made, SqlStore):
        assert made.engine.pool.checkedout() == 0, "connections leaked"  # type: ignore[attr-defined]
    made.close()
