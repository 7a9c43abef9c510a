"""The engine tests' shared fixtures: a journal on a fresh SQLite database with one execution."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentflowd.engine import ExecutionRecord, Journal, LogEntry
from agentflowd.store import SqlStore, migrate

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def created(execution_id: str) -> LogEntry:
    """The change that creates a running execution (no steps) of workflow ``w``."""
    record = ExecutionRecord(
        id=execution_id,
        workflow="w",
        generation=1,
        spec={},
        images={},
        state="running",
        trigger="manual",
        trigger_key=None,
        input=None,
        output=None,
        error=None,
        created_at=NOW,
        started_at=NOW,
        finished_at=None,
        deadline_at=None,
    )
    return LogEntry(
        execution_id=execution_id, type="execution.running", at=NOW, create=(record, [])
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """A journal with one execution, ``e1``."""
    store = SqlStore.open(str(tmp_path / "journal.db"))
    migrate.upgrade(store.engine)
    journal = Journal(store.engine, lazy_seconds=0.01)
    journal.write([created("e1")]).result(timeout=10)
    yield journal
    journal.close()
    store.close()
