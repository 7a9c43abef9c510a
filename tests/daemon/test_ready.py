"""The real daemon's readiness: ``/readyz`` and ``READY=1`` wait for the first reconcile pass;
on PostgreSQL, a database that stops taking connections turns ``/readyz`` to 503 with the
reason, and back to 200 when it returns.

The first pass is held back by a remote that does not answer until the test lets it (a gate in
the git server), so "before the first pass" is a state the test controls, not a race.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentflowd.source.git import GitSource
from tests.conftest import (
    ADMIN,
    free_port,
    fresh_postgres_database,
    git,
    postgres_admin_url,
    write_agents,
)
from tests.daemon.examples import NotifySocket, readyz, start
from tests.gitserver import serve_git
from tests.manifests import named
from tests.waiting import wait_for


@pytest.fixture
def gated_remote(tmp_path: Path) -> Iterator[tuple[str, threading.Event]]:
    """A served repository with one workflow, its URL and the gate holding its answers."""
    served = tmp_path / "served"
    served.mkdir()
    git(served, "init", "-q", "--bare", "-b", "main", "wf.git")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(served / "wf.git"), "work")
    write_agents(work)
    (work / "a.yaml").write_text(named("a"), encoding="utf-8")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "a")
    git(work, "push", "-q", "origin", "HEAD:main")
    gate = threading.Event()
    gate.set()
    with serve_git(served, gate=gate) as base:
        url = f"{base}/wf.git"
        # the daemon clones a new remote before it listens: clone it here, so that the first
        # request the daemon makes is its first pass's fetch
        GitSource(url, state_dir=tmp_path / "state").repository()
        gate.clear()
        yield url, gate


class Daemons:
    """Starts ``agentflowd serve`` on the gated remote with a fake systemd; stops it cleanly."""

    def __init__(self, tmp_path: Path, repo: str, gate: threading.Event) -> None:
        self.tmp_path, self.repo, self.gate = tmp_path, repo, gate
        self.notify = NotifySocket(tmp_path / "notify.sock")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.running: list[subprocess.Popen[str]] = []

    def start(self, *extra: str) -> subprocess.Popen[str]:
        proc = start(
            "--repo",
            self.repo,
            "--state-dir",
            str(self.tmp_path / "state"),
            "--listen",
            self.url.removeprefix("http://"),
            *extra,
            env={"NOTIFY_SOCKET": str(self.notify.path)},
        )
        self.running.append(proc)
        return proc

    def stop(self) -> None:
        """SIGTERM each daemon; each must exit 0."""
        self.gate.set()  # a pass waiting on the remote ends, so the daemon can stop
        while self.running:
            proc = self.running.pop()
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()  # none left behind
                proc.communicate(timeout=30)
                raise
            assert proc.returncode == 0, err[-3000:]


@pytest.fixture
def daemons(tmp_path: Path, gated_remote: tuple[str, threading.Event]) -> Iterator[Daemons]:
    made = Daemons(tmp_path, *gated_remote)
    try:
        yield made
    finally:
        try:
            made.stop()
        finally:
            made.notify.close()


def reasons(url: str) -> list[str] | None:
    answer = readyz(url)
    return None if answer is None else answer.json()["reasons"]


def test_ready_only_after_the_first_reconcile_pass(daemons):
    url, notify, gate = daemons.url, daemons.notify, daemons.gate
    daemons.start()
    # the API is up, the first pass waits on the remote
    assert wait_for(lambda: reasons(url), timeout=60, what="/readyz") == ["first reconcile pending"]
    answer = readyz(url)
    assert answer is not None and answer.status_code == 503
    assert answer.json()["error"] == {"code": "not_ready", "message": "first reconcile pending"}
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert "READY=1" not in notify.lines()

    gate.set()
    notify.expect("READY=1")
    answer = readyz(url)
    assert answer is not None and answer.status_code == 200
    assert answer.json() == {"ready": True, "reasons": [], "role": "leader"}
    assert [w["name"] for w in httpx.get(f"{url}/api/v1/workflows", headers=ADMIN).json()] == ["a"]


@pytest.mark.postgres
def test_postgres_unreachable_then_back(daemons):
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    url, notify, gate = daemons.url, daemons.notify, daemons.gate
    admin_url = postgres_admin_url()
    with fresh_postgres_database(admin_url) as database:
        name = sql.Identifier(make_url(database).database or "")
        admin = psycopg.connect(admin_url, autocommit=True)

        def database_down() -> None:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (make_url(database).database,),
            )

        def database_up() -> None:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))

        def errors() -> float:
            text = httpx.get(f"{url}/metrics").text
            found = re.search(r'^agentflow_reconcile_total\{result="error"\} (\S+)$', text, re.M)
            return float(found.group(1)) if found else 0.0

        try:
            daemons.start("--database", database)
            wait_for(lambda: reasons(url), timeout=60, what="/readyz")

            # down before the first pass: both reasons
            database_down()
            both = wait_for(
                lambda: two if len(two := reasons(url) or []) == 2 else None,
                what="/readyz to say the database is unreachable",
            )
            assert both[0] == "first reconcile pending"
            assert both[1].startswith("database unreachable: ")
            assert "not currently accepting connections" in both[1]

            # the first pass runs while the database is away: it fails, and does not count
            gate.set()
            wait_for(lambda: errors() >= 1, what="the first pass to fail on the database")
            assert reasons(url) == both
            assert "READY=1" not in notify.lines()

            # back: the pass is retried soon (not at the next poll, a minute away)
            database_up()
            notify.expect("READY=1")
            wait_for(lambda: reasons(url) == [], what="/readyz to say ready")
            assert [
                w["name"] for w in httpx.get(f"{url}/api/v1/workflows", headers=ADMIN).json()
            ] == ["a"]

            # away after the first pass: only the database holds the node back
            database_down()
            down = wait_for(
                lambda: reasons(url) or [], what="/readyz to say the database is unreachable"
            )
            assert len(down) == 1 and down[0].startswith("database unreachable: ")
            answer = readyz(url)
            assert answer is not None and answer.status_code == 503
            assert answer.json()["role"] == "leader"
            assert httpx.get(f"{url}/healthz").status_code == 200

            database_up()
            wait_for(lambda: reasons(url) == [], what="/readyz to say ready again")
            daemons.stop()  # cleanly, before its database is dropped
        finally:
            database_up()
            admin.close()
