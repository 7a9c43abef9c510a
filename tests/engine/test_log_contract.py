"""The execution-log contract (agentflowd/engine/log.py), one suite over every backend: the
in-memory twin, SQLite and PostgreSQL, outages included."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentflowd.engine import EventType, ExecutionLog, Journal, LogEntry, MemoryLog
from agentflowd.engine.records import ExecutionRecord, RawJson, StepRecord
from agentflowd.errors import NotFound
from agentflowd.store import migrate
from agentflowd.store.sql import create_engine
from tests.conftest import fresh_postgres_database, postgres_admin_url
from tests.engine.conftest import NOW
from tests.waiting import wait_for


@dataclass
class Backend:
    log: ExecutionLog
    outage: Callable[[], AbstractContextManager[None]]  # the store is away inside it


def _sqlite(tmp_path: Path) -> Iterator[Backend]:
    path = tmp_path / "log.db"
    engine = create_engine(str(path), busy_timeout=0.05)
    migrate.upgrade(engine)
    journal = Journal(engine, retry_initial=0.01, retry_max=0.05)

    @contextmanager
    def locked() -> Iterator[None]:  # another process holds the write lock
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()

    yield Backend(journal, locked)
    journal.close()
    assert engine.pool.checkedout() == 0, "connections leaked"  # type: ignore[attr-defined]
    engine.dispose()


def _postgres() -> Iterator[Backend]:
    import psycopg

    admin = postgres_admin_url()
    with fresh_postgres_database(admin) as url:
        engine = create_engine(url)
        migrate.upgrade(engine)
        journal = Journal(engine, retry_initial=0.01, retry_max=0.05)
        name = engine.url.database

        @contextmanager
        def refused() -> Iterator[None]:  # connections refused, and the open ones cut
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
                try:
                    yield
                finally:
                    conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        yield Backend(journal, refused)
        journal.close()
        engine.dispose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        memory = MemoryLog()

        @contextmanager
        def down() -> Iterator[None]:
            memory.fail(ConnectionError("the store is away"))
            try:
                yield
            finally:
                memory.recover()

        yield Backend(memory, down)
    elif request.param == "sqlite":
        yield from _sqlite(tmp_path)
    else:
        yield from _postgres()


def execution(xid: str, *, key: str | None = None, minutes: int = 0) -> LogEntry:
    at = NOW + timedelta(minutes=minutes)
    record = ExecutionRecord(
        id=xid,
        workflow="w",
        generation=1,
        spec={"kind": "Workflow"},
        images={},
        state="running",
        trigger="manual",
        trigger_key=key,
        input={"q": [1, 2]},
        output=None,
        error=None,
        created_at=at,
        started_at=at,
        finished_at=None,
        deadline_at=at + timedelta(minutes=5),
    )
    steps = [
        StepRecord(
            execution_id=xid,
            step=name,
            state="pending",
            attempt=0,
            image="img",
            image_sha256=None,
            output=None,
            error=None,
            log=None,
            started_at=None,
            finished_at=None,
            next_attempt_at=None,
        )
        for name in ("a", "b")
    ]
    return LogEntry(
        execution_id=xid, type=EventType.EXECUTION_RUNNING, at=at, create=(record, steps)
    )


def started(xid: str, step: str = "a") -> LogEntry:
    return LogEntry.step_event(
        xid, EventType.STEP_STARTED, step, at=NOW, attempt=1, state="running", started_at=NOW
    )


def succeeded(xid: str, step: str = "a", output: str = '{"v": 1.5}') -> LogEntry:
    return LogEntry.step_event(
        xid,
        EventType.STEP_SUCCEEDED,
        step,
        at=NOW,
        attempt=1,
        data={"elapsed_ms": 1.0},
        state="succeeded",
        output=RawJson(output),
        finished_at=NOW,
    )


def ended(xid: str) -> LogEntry:
    return LogEntry(
        execution_id=xid,
        type=EventType.EXECUTION_SUCCEEDED,
        at=NOW,
        execution={"state": "succeeded", "output": RawJson('{"b": null}'), "finished_at": NOW},
    )


def bad(xid: str) -> LogEntry:
    return LogEntry(
        execution_id=xid, type=EventType.STEP_FAILED, at=NOW, steps={"a": {"no_such": 1}}
    )


def durable(log: ExecutionLog, entries: list[LogEntry]) -> None:
    log.write(entries).result(timeout=30)


def test_entries_are_recorded_in_order_and_read_back(backend):
    log = backend.log
    durable(log, [execution("x1")])
    durable(log, [started("x1"), succeeded("x1")])
    durable(log, [started("x1", "b"), ended("x1")])
    got = log.execution("x1")
    assert (got.state, got.output, got.input, got.spec) == (
        "succeeded",
        {"b": None},
        {"q": [1, 2]},
        {"kind": "Workflow"},
    )
    assert got.created_at == NOW and got.finished_at == NOW
    steps = {s.step: (s.state, s.attempt, s.output) for s in log.steps("x1")}
    assert steps == {"a": ("succeeded", 1, {"v": 1.5}), "b": ("running", 1, None)}
    events = log.events("x1")
    assert [(e.seq, e.type, e.step) for e in events] == [
        (1, "execution.running", None),
        (2, "step.started", "a"),
        (3, "step.succeeded", "a"),
        (4, "step.started", "b"),
        (5, "execution.succeeded", None),
    ]
    assert events[2].data == {"elapsed_ms": 1.0} and events[2].attempt == 1
    assert [e.seq for e in log.events("x1", after=3)] == [4, 5]
    assert [e.seq for e in log.events("x1", after=1, limit=2)] == [2, 3]


def test_listing_and_finding(backend):
    log = backend.log
    durable(log, [execution("x1", minutes=0), execution("x2", minutes=1, key="cron:1")])
    durable(log, [execution("x3", minutes=2)])
    durable(log, [ended("x2")])
    assert [r.id for r in log.executions()] == ["x3", "x2", "x1"]
    assert [r.id for r in log.executions(state="succeeded")] == ["x2"]
    assert [r.id for r in log.executions(workflow="w", limit=1)] == ["x3"]
    assert [r.id for r in log.unfinished()] == ["x1", "x3"]
    found = log.by_trigger_key("cron:1")
    assert found is not None and found.id == "x2"
    assert log.by_trigger_key("cron:2") is None
    with pytest.raises(NotFound):
        log.execution("nope")


def test_callbacks_get_none_once_durable_in_posting_order(backend):
    log = backend.log
    seen: list[tuple[str, BaseException | None]] = []
    done = threading.Event()

    def hook(thens: list[tuple[Callable[[BaseException | None], None], Any]]) -> None:
        for then, error in thens:
            then(error)

    log.on_commit = hook
    log.post([execution("x1")], then=lambda e: seen.append(("create", e)))
    for i in range(20):
        log.post([started("x1")], then=lambda e, i=i: seen.append((f"s{i}", e)))

    def last(error: BaseException | None) -> None:
        seen.append(("end", error))
        done.set()

    log.post([ended("x1")], then=last)
    assert done.wait(30)
    assert [name for name, _ in seen] == ["create", *[f"s{i}" for i in range(20)], "end"]
    assert all(error is None for _, error in seen)
    assert log.execution("x1").state == "succeeded"  # durable before its callback


def test_a_bad_entry_is_refused_alone_and_holds_back_its_executions_later_ones(backend):
    log = backend.log
    durable(log, [execution("x1"), execution("x2")])
    results: dict[str, Future[None]] = {
        "bad": log.write([bad("x1")]),
        "after": log.write([started("x1")]),  # same execution, after the refused one
        "other": log.write([started("x2")]),  # another execution: unaffected
    }
    with pytest.raises(Exception):  # noqa: B017 - each backend names a bad column its way
        results["bad"].result(timeout=30)
    results["other"].result(timeout=30)
    if results["after"].exception(timeout=30) is None:  # it went in a later write: recorded
        assert [e.type for e in log.events("x1")][-1] == "step.started"
    else:  # it went in the same write: not recorded without the one before it
        assert [e.type for e in log.events("x1")] == ["execution.running"]
    assert [e.type for e in log.events("x2")] == ["execution.running", "step.started"]


def test_a_taken_trigger_key_is_refused_and_said_so(backend):
    log = backend.log
    durable(log, [execution("x1", key="hook:abc")])
    second = execution("x2", key="hook:abc")
    with pytest.raises(Exception) as raised:
        durable(log, [second])
    assert second.create is not None
    assert log.duplicate(second.create[0], raised.value)
    with pytest.raises(NotFound):
        log.execution("x2")
    assert log.events("x2") == []
    assert not log.duplicate(second.create[0], ValueError("something else"))


def test_lazy_entries_are_recorded_without_another_post(backend):
    log = backend.log
    durable(log, [execution("x1")])
    log.post([started("x1")], lazy=True)
    wait_for(lambda: len(log.events("x1")) == 2, what="the lazy entry")


def test_an_outage_delays_entries_and_loses_none(backend):
    log = backend.log
    durable(log, [execution("x1")])
    results: list[BaseException | None] = []
    with backend.outage():
        log.post([started("x1")], then=results.append)
        log.post([succeeded("x1")], then=results.append)
        wait_for(lambda: log.unavailable is not None, what="the log to notice the outage")
        assert results == []  # delayed, not failed
    wait_for(lambda: len(results) == 2, timeout=30, what="the entries after the outage")
    assert results == [None, None]
    assert log.unavailable is None
    assert [e.type for e in log.events("x1")] == [
        "execution.running",
        "step.started",
        "step.succeeded",
    ]


def test_a_fenced_out_entry_holds_back_no_entry_of_the_owner(backend):
    """A node lost the execution while the store was away: its entries, queued during the
    outage, are refused; those of the node that owns it now, in the same write, are not."""
    from agentflowd.errors import FencedOut

    log = backend.log
    creation = execution("x1")
    assert creation.create is not None
    owned = replace(creation.create[0], owner="b")
    creation.create = (owned, creation.create[1])
    durable(log, [creation])
    results: list[BaseException | None] = []
    stale, fresh = started("x1", "a"), started("x1", "b")
    stale.fence, fresh.fence = "a", "b"
    with backend.outage():
        log.post([stale], then=results.append)
        log.post([fresh], then=results.append)
        wait_for(lambda: log.unavailable is not None, what="the log to notice the outage")
    wait_for(lambda: len(results) == 2, timeout=30, what="both entries to be settled")
    assert isinstance(results[0], FencedOut) and results[1] is None
    assert [(e.type, e.step) for e in log.events("x1")] == [
        ("execution.running", None),
        ("step.started", "b"),
    ]
