"""WAL checkpoints of the journal's SQLite database run on their own thread, and the log stays
bounded under steady load (it only starts over after a checkpoint that copied all of it)."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from agentflowd.engine import Journal, LogEntry, checkpoint
from agentflowd.store import SqlStore, migrate
from tests.engine.conftest import NOW
from tests.waiting import wait_for


def note(i: int) -> LogEntry:
    return LogEntry(execution_id="e1", type="note", at=NOW, data={"i": i, "pad": "x" * 3000})


def test_commits_do_not_checkpoint_the_thread_does(journal):
    cursor = journal._writer().cursor()
    cursor.execute("PRAGMA wal_autocheckpoint")
    assert cursor.fetchone()[0] == 0  # the committing thread never checkpoints
    cursor.close()
    before = journal._checkpointer.checkpoints
    for i in range(3):
        journal.write([note(i)]).result(timeout=10)
    wait_for(lambda: journal._checkpointer.checkpoints > before, what="a checkpoint")


def test_the_log_starts_over_under_steady_load(journal, monkeypatch):
    """Writers that never pause: the checkpoint held with commits back copies the whole log,
    so the next commit starts it over. (How long the log grows meanwhile depends on how soon
    the checkpointer thread gets a core: bench/engine.py measures it, not this test.)"""
    monkeypatch.setattr(checkpoint, "EVERY_COMMITS", 20)
    monkeypatch.setattr(checkpoint, "MAX_FRAMES", 200)
    stop = threading.Event()
    checkpointer = journal._checkpointer

    def writer() -> None:  # never a pause between commits: a checkpoint alone cannot finish
        i = 0
        while not stop.is_set():
            journal.write([note(i)]).result(timeout=30)
            i += 1

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20_000):  # bounded; ends after 3 rewinds (~600 commits on this machine)
            journal.write([note(-1)]).result(timeout=30)
            if checkpointer.rewinds >= 3:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert checkpointer.rewinds >= 3


def test_the_writers_connection_goes_back_to_the_pool_as_it_came(tmp_path: Path):
    store = SqlStore.open(str(tmp_path / "pool.db"))
    migrate.upgrade(store.engine)
    journal = Journal(store.engine)
    journal._writer()
    journal.close()
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA wal_autocheckpoint")).scalar() == 1000
    store.close()
