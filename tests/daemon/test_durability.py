"""kill -9 under load: the daemon is killed while executions run, three times, on SQLite and
PostgreSQL; afterwards every execution finished, no completed step ran again, and every
execution's history is whole (numbered without gaps, each step started before it ended)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from agentflowd.store import SqlStore
from tests.conftest import ADMIN, free_port, fresh_postgres_database, git, postgres_admin_url
from tests.engine.harness import agent, manifest
from tests.sandbox import wat
from tests.waiting import wait_for

BIN = Path(sys.executable).parent
EXECUTIONS = 150

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "agentflow.db")
        return
    with fresh_postgres_database(postgres_admin_url()) as url:
        yield url


def make_repo(path: Path, wasm: str = wat.ECHO) -> Path:
    """A repository with one workflow, ``load``: a 4-step diamond of the component ``wasm``
    (default: echo)."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "agents/step/v1").mkdir(parents=True)
    (path / "agents/step/v1/agent.wasm").write_text(wasm, encoding="utf-8")
    steps = "\n".join(
        [
            agent("a", "agents/step:v1"),
            agent("b", "agents/step:v1", ("a",)),
            agent("c", "agents/step:v1", ("a",)),
            agent("d", "agents/step:v1", ("b", "c")),
        ]
    )
    text = manifest("load", steps, config="    maxConcurrentExecutions: 1000")
    (path / "load.yaml").write_text(text, encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "load")
    return path


def start(repo: Path, state: Path, database: str, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            BIN / "agentflowd",
            "serve",
            "--repo",
            str(repo),
            "--state-dir",
            str(state),
            "--database",
            database,
            "--listen",
            url.removeprefix("http://"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "AGENTFLOW_WORKERS": "2"},
    )


def up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_kill_9_under_load_loses_nothing_and_repeats_no_completed_step(tmp_path, database):
    repo = make_repo(tmp_path / "repo")
    url = f"http://127.0.0.1:{free_port()}"
    proc = start(repo, tmp_path / "state", database, url)
    store = SqlStore.open(database)
    try:
        wait_for(lambda: up(url), timeout=60, what="the daemon")
        wait_for(
            lambda: len(httpx.get(f"{url}/api/v1/workflows", headers=ADMIN).json()) == 1,
            timeout=30,
            what="the workflow to be applied",
        )
        for i in range(EXECUTIONS):
            response = httpx.post(
                f"{url}/api/v1/workflows/load/executions", json={"input": i}, headers=ADMIN
            )
            assert response.status_code == 202
        done = "SELECT COUNT(*) FROM execution_events WHERE type = 'step.succeeded'"
        for round_ in range(3):
            target = (round_ + 1) * EXECUTIONS  # about a quarter of the steps each round

            def progressed(target: int = target) -> bool:
                return count(store.engine, done) >= target

            wait_for(progressed, timeout=120, what="progress")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc = start(repo, tmp_path / "state", database, url)
            wait_for(lambda: up(url), timeout=60, what="the daemon after kill -9")
        finished = "SELECT COUNT(*) FROM executions WHERE state IN ('succeeded', 'failed')"
        wait_for(lambda: count(store.engine, finished) == EXECUTIONS, timeout=180, what="the end")
        with store.engine.connect() as conn:
            states = Counter(
                r[0] for r in conn.execute(sa.text("SELECT state FROM executions")).all()
            )
            rows = conn.execute(
                sa.text(
                    "SELECT execution_id, seq, type, step FROM execution_events "
                    "ORDER BY execution_id, seq"
                )
            ).all()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        store.close()
    assert states == {"succeeded": EXECUTIONS}
    history: dict[str, list[tuple[int, str, str | None]]] = {}
    for execution_id, seq, kind, step in rows:
        history.setdefault(execution_id, []).append((seq, kind, step))
    assert len(history) == EXECUTIONS
    requeued = 0
    for execution_id, events in history.items():
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1)), execution_id
        succeeded = Counter(step for _, kind, step in events if kind == "step.succeeded")
        assert succeeded == dict.fromkeys("abcd", 1), (execution_id, events)
        for step in "abcd":
            kinds = [kind for _, kind, s in events if s == step]
            # started once, plus once more for each time the daemon died while it ran
            assert kinds.count("step.started") == kinds.count("step.requeued") + 1
            assert kinds[-1] == "step.succeeded"  # nothing ran it after it completed
            requeued += kinds.count("step.requeued")
        assert events[-1][1] == "execution.succeeded"
    print(f"{requeued} steps ran again after a kill (at-least-once)")
