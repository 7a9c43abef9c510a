"""The coordinator contract (agentflowd/cluster/base.py), one suite over the in-memory twin,
SQLite (one node) and PostgreSQL (many): leases, claims, takeover, leadership, fencing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentflowd.cluster import Coordinator, MemoryCoordinator, MemoryLeases, SqlCoordinator
from agentflowd.cluster.base import node_lease
from agentflowd.engine import EventType, ExecutionLog, FakeClock, Journal, LogEntry, MemoryLog
from agentflowd.errors import FencedOut
from agentflowd.store import migrate
from agentflowd.store.sql import create_engine
from tests.conftest import fresh_postgres_database, postgres_admin_url
from tests.engine.test_log_contract import execution, started


@dataclass
class Cluster:
    log: ExecutionLog
    node: Callable[[str], Coordinator]  # a new node by name
    expire: Callable[[str], None]  # a lease expires now (its holder stopped renewing)
    single: bool


def _memory() -> Iterator[Cluster]:
    log, leases, clock = MemoryLog(), MemoryLeases(), FakeClock()

    def node(name: str) -> Coordinator:
        made = MemoryCoordinator(log=log, leases=leases, now=clock.now, node=name)
        made.join()
        return made

    def expire(name: str) -> None:
        with leases.lock:
            leases.rows[name].expires_at = clock.now() - timedelta(seconds=1)

    yield Cluster(log, node, expire, single=False)


def _sql(url: str, *, single: bool) -> Iterator[Cluster]:
    engine = create_engine(url)
    migrate.upgrade(engine)
    journal = Journal(engine)
    made: list[SqlCoordinator] = []

    def node(name: str) -> Coordinator:
        coordinator = SqlCoordinator(engine, node=name)
        coordinator.join()
        made.append(coordinator)
        return coordinator

    def expire(name: str) -> None:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE leases SET expires_at = :t WHERE name = :n"),
                {"t": "2000-01-01 00:00:00", "n": name},
            )

    yield Cluster(journal, node, expire, single=single)
    journal.close()
    assert engine.pool.checkedout() == 0, "connections leaked"  # type: ignore[attr-defined]
    engine.dispose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if request.param == "memory":
        yield from _memory()
    elif request.param == "sqlite":
        yield from _sql(str(tmp_path / "cluster.db"), single=True)
    else:
        with fresh_postgres_database(postgres_admin_url()) as url:
            yield from _sql(url, single=False)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def nodes(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The backends where several nodes share the work (SQLite is one node)."""
    if request.param == "memory":
        yield from _memory()
    else:
        with fresh_postgres_database(postgres_admin_url()) as url:
            yield from _sql(url, single=False)


def create(log: ExecutionLog, *ids: str) -> None:
    for i, xid in enumerate(ids):
        log.write([execution(xid, minutes=i)]).result(timeout=30)


def test_a_claim_takes_what_no_node_owns_oldest_first_once(cluster):
    a = cluster.node("a")
    create(cluster.log, "x1", "x2", "x3")
    first = a.claim(2)
    assert [r.id for r in first.records] == ["x1", "x2"]
    assert all(r.owner == "a" for r in first.records)
    assert [r.id for r in a.claim(10).records] == ["x3"]
    assert a.claim(10).records == []
    assert cluster.log.execution("x1").owner == "a"


def test_finished_executions_are_never_claimed(cluster):
    a = cluster.node("a")
    create(cluster.log, "x1")
    cluster.log.write(
        [
            LogEntry(
                execution_id="x1",
                type=EventType.EXECUTION_SUCCEEDED,
                at=execution("x1").at,
                execution={"state": "succeeded"},
            )
        ]
    ).result(timeout=30)
    assert a.claim(10).records == []


def test_a_live_nodes_executions_are_its_own_until_its_lease_expires(nodes):
    a, b = nodes.node("a"), nodes.node("b")
    create(nodes.log, "x1", "x2")
    assert len(a.claim(10).records) == 2
    taken = b.claim(10)
    assert taken.records == []
    assert taken.recheck is not None and 0 < taken.recheck <= a.lease_seconds
    nodes.expire(node_lease("a"))
    assert not a.renew()  # it must fence itself: its work may be gone
    assert [r.id for r in b.claim(10).records] == ["x1", "x2"]
    assert b.renew()


def test_released_executions_are_claimed_at_once(nodes):
    a, b = nodes.node("a"), nodes.node("b")
    create(nodes.log, "x1", "x2")
    a.claim(10)
    a.release(["x1"])
    assert [r.id for r in b.claim(10).records] == ["x1"]


def test_own_takes_one_execution_only_when_free(nodes):
    a, b = nodes.node("a"), nodes.node("b")
    create(nodes.log, "x1")
    assert a.own("x1")
    assert not b.own("x1")
    nodes.expire(node_lease("a"))
    assert b.own("x1")


def test_one_leader_at_a_time_and_failover(nodes):
    a, b = nodes.node("a"), nodes.node("b")
    assert a.lead() and not b.lead()
    assert a.lead()  # renewing
    assert a.leader() == "a" == b.leader()
    nodes.expire("leader")
    assert b.lead() and not a.lead()
    assert a.leader() == "b"
    b.resign()
    assert a.leader() is None and a.lead()
    a.leave()
    assert b.leader() is None


def test_concurrent_claims_never_take_the_same_execution(nodes):
    ids = [f"x{i:03d}" for i in range(60)]
    create(nodes.log, *ids)
    members = [nodes.node(f"n{i}") for i in range(3)]
    got: dict[str, list[str]] = {n.node: [] for n in members}

    def claimer(node: Coordinator) -> None:
        for _ in range(30):
            got[node.node].extend(r.id for r in node.claim(3).records)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [x for taken in got.values() for x in taken]
    assert sorted(every) == ids  # each exactly once
    for node, taken in got.items():
        assert all(nodes.log.execution(x).owner == node for x in taken)


def test_the_log_refuses_a_fenced_entry_of_a_node_that_lost_the_execution(nodes):
    a, b = nodes.node("a"), nodes.node("b")
    create(nodes.log, "x1", "x2")
    a.claim(10)
    mine = started("x1")
    mine.fence = "a"
    nodes.log.write([mine]).result(timeout=30)  # a owns it: recorded
    nodes.expire(node_lease("a"))
    b.claim(1)  # x1 is b's now
    stale = started("x1", "b")
    stale.fence = "a"
    with pytest.raises(FencedOut):
        nodes.log.write([stale]).result(timeout=30)
    other = started("x2")
    other.fence = "a"  # x2 is still a's (b claimed only one)
    nodes.log.write([other]).result(timeout=30)
    assert [e.type for e in nodes.log.events("x1")] == ["execution.running", "step.started"]
