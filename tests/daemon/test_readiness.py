"""Readiness: which passes count, the database check (cached, bounded, one at a time), and how
the daemon tells readiness and systemd about its passes and reloads. Time is a fake clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentflowd.config import DaemonConfig
from agentflowd.daemon import Daemon
from agentflowd.errors import (
    ManifestError,
    SourceError,
    StoreUnavailable,
    TransientError,
    UsageError,
)
from agentflowd.node import FIRST_RECONCILE_PENDING, NodeRole, Readiness, pass_counts
from agentflowd.reconcile import SyncOutcome
from agentflowd.store import MemoryStore
from tests.waiting import wait_for

SHA = "c0ffee" + "0" * 34


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (None, True),
        (SourceError("not a git repository"), True),
        (TransientError("cannot fetch https://forge/r.git: timed out", delay=30), True),
        (ManifestError([]), True),
        (RuntimeError("a bug"), True),
        (StoreUnavailable("database unavailable: connection refused"), False),
    ],
)
def test_which_passes_count_as_the_first_done(error, counts):
    assert pass_counts(error) is counts


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_probe_storm_costs_one_check_a_second():
    clock, pings = Clock(), []
    readiness = Readiness(lambda: pings.append(clock.now), clock=clock)

    async def storm() -> list[str | None]:
        return [await readiness.database_error() for _ in range(50)]

    assert asyncio.run(storm()) == [None] * 50
    assert pings == [100.0]
    clock.now = 100.9
    asyncio.run(storm())
    assert pings == [100.0]
    clock.now = 101.0
    asyncio.run(storm())
    assert pings == [100.0, 101.0]


def test_a_failing_check_is_the_reason_in_one_line():
    def down() -> None:
        raise StoreUnavailable("connection failed: refused\n\tIs the server running?")

    readiness = Readiness(down, clock=Clock())
    readiness.pass_ended(None)
    report = asyncio.run(readiness.report(NodeRole.LEADER))
    assert not report.ready
    assert report.reasons == (
        "database unreachable: connection failed: refused Is the server running?",
    )


def test_a_hung_database_ties_up_one_thread_and_times_out():
    clock, release, calls = Clock(), threading.Event(), []

    def hangs() -> None:
        calls.append(threading.current_thread().name)
        release.wait(30)

    readiness = Readiness(hangs, clock=clock, timeout=0.05)
    try:
        assert asyncio.run(readiness.database_error()) == "no answer within 0.05 s"
        clock.now += 5  # past the cache: checked again, on the same (still hung) thread
        assert asyncio.run(readiness.database_error()) == "no answer within 0.05 s"
        assert calls == ["agentflow-readiness"]
    finally:
        release.set()

    def checked_anew() -> bool:  # once the hung check has ended, the next one is a new query
        clock.now += 5
        assert asyncio.run(readiness.database_error()) is None
        return len(calls) == 2

    wait_for(checked_anew, what="a new check after the hung one ended")


def test_report_before_and_after_the_first_pass():
    readiness = Readiness(lambda: None, clock=Clock())
    before = asyncio.run(readiness.report(NodeRole.FOLLOWER))
    assert (before.ready, before.reasons, before.role) == (
        False,
        (FIRST_RECONCILE_PENDING,),
        "follower",
    )
    assert readiness.pass_ended(StoreUnavailable("gone")) is False
    assert readiness.pass_ended(None) is True
    assert readiness.pass_ended(None) is False  # only the first one is news
    assert asyncio.run(readiness.report(NodeRole.LEADER)).ready


# -- the daemon's wiring ------------------------------------------------------------------------


class FakeReconciler:
    """Answers each ``sync`` with the next of ``results`` (an outcome or an error to raise)."""

    def __init__(self, results: list[SyncOutcome | Exception]) -> None:
        self.results = results
        self.sinks: list[Any] = []

    def recover(self) -> list[Any]:  # (a new leader's first pass asks)
        return []

    def sync(self) -> SyncOutcome:
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def notified(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    sent: list[tuple[str, ...]] = []

    def notify(*lines: str) -> bool:
        sent.append(lines)
        return True

    monkeypatch.setattr("agentflowd.daemon.notify", notify)
    return sent


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(reload: Callable[[], DaemonConfig] | None = None, **kw: Any) -> Daemon:
        config = DaemonConfig(repo=str(tmp_path), state_dir=tmp_path / "state", **kw)
        daemon = Daemon(config, reload=reload)
        daemon.store = MemoryStore()
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon._git.shutdown()


def test_a_pass_the_database_stopped_is_retried_and_does_not_make_the_node_ready(
    make_daemon, notified
):
    daemon = make_daemon(poll_interval="5s")
    gone = StoreUnavailable("database unavailable: terminating connection", delay=1.0)
    stopped_while_applying = SyncOutcome(sha=SHA, error=gone)
    daemon.reconciler = FakeReconciler(
        [gone, gone, stopped_while_applying, gone, SyncOutcome(sha=SHA)]
    )

    async def passes() -> list[float | None]:
        delays = []
        for _ in range(5):
            error = await daemon._pass()
            delays.append(None if error is None else daemon._retry_in(error))
        return delays

    # each try waits twice as long as the last, at most the poll interval
    assert asyncio.run(passes()) == [1.0, 2.0, 4.0, 5.0, None]
    assert daemon.readiness.first_pass_done
    assert notified == [("READY=1", f"STATUS=revision {SHA[:12]} applied")]
    assert 'agentflow_reconcile_total{result="error"} 3.0' in daemon.metrics.render().decode()


def test_a_pass_the_git_remote_failed_makes_the_node_ready(make_daemon, notified):
    daemon = make_daemon()
    daemon.reconciler = FakeReconciler(
        [TransientError("cannot fetch https://forge/r.git:\n timed out", delay=30)]
    )
    assert asyncio.run(daemon._pass()) is None  # no early retry: the next poll tries again
    assert daemon.readiness.first_pass_done
    assert notified == [
        ("READY=1", "STATUS=reconcile failed: cannot fetch https://forge/r.git: timed out")
    ]


def test_a_reload_before_the_first_pass_leaves_ready_to_the_pass(make_daemon, notified):
    def refused() -> DaemonConfig:
        raise UsageError("no_such_key: unknown key")

    daemon = make_daemon(reload=refused)
    asyncio.run(daemon._reload_config())
    assert notified == []  # a READY=1 now would tell systemd the start is over

    daemon.readiness.pass_ended(None)
    asyncio.run(daemon._reload_config())
    assert [lines[0] for lines in notified] == ["RELOADING=1", "READY=1"]
