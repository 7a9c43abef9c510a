"""Three daemons on one PostgreSQL database following one repository, nodes killed with -9 (the
leader mid-reconcile included) and restarted: every execution ends once, no step succeeds
twice, one generation per commit and one status note per (commit, state); a dead node's work
is taken over after its lease ends (the delay is printed; bench/cluster.py measures it)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from agentflowd.store.sql import create_engine
from tests.conftest import ADMIN, free_port, fresh_postgres_database, git, postgres_admin_url
from tests.daemon.test_durability import BIN, count
from tests.daemon.test_durability import make_repo as durability_repo
from tests.sandbox import wat
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EXECUTIONS = 210
LEASE = 2.0
UNFINISHED = "state IN ('queued', 'running')"


@dataclass
class Node:
    name: str
    url: str
    state: Path
    proc: subprocess.Popen[bytes] | None = None
    log: list[Path] = field(default_factory=list)

    def start(self, repo: Path, database: str) -> None:
        out = self.state.parent / f"{self.name}-{len(self.log)}.log"
        self.log.append(out)
        with out.open("wb") as sink:
            self.proc = subprocess.Popen(
                [
                    BIN / "agentflowd",
                    "serve",
                    "--repo",
                    str(repo),
                    "--state-dir",
                    str(self.state),
                    "--database",
                    database,
                    "--listen",
                    self.url.removeprefix("http://"),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "AGENTFLOW_WORKERS": "2",
                    "AGENTFLOW_LEASE": f"{LEASE}s",
                    "AGENTFLOW_NODE_NAME": self.name,
                    "AGENTFLOW_POLL_INTERVAL": "3s",
                },
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


def make_repo(path: Path) -> Path:
    """The durability test's diamond, each step blocking 0.1 s in WASI (slow enough that a
    kill catches steps running)."""
    return durability_repo(path, wat.sleeper(0.1))


def start_executions(urls: list[str], count: int) -> None:
    """Start ``count`` executions of ``load``, through each of ``urls`` in turn, at once."""

    def start_one(i: int) -> int:
        response = httpx.post(
            f"{urls[i % len(urls)]}/api/v1/workflows/load/executions",
            json={"input": i},
            headers=ADMIN,
            timeout=60,
        )
        return response.status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(start_one, range(count))) == {202}


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres_database(postgres_admin_url()) as url:
        yield url


def scalar(engine: sa.Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def node_of(engine: sa.Engine, nodes: list[Node], lease: str) -> Node | None:
    """The node holding ``lease`` (node ids carry the configured name)."""
    holder = scalar(engine, "SELECT holder FROM leases WHERE name = :n", n=lease)
    if not isinstance(holder, str):
        return None
    return next((n for n in nodes if holder.startswith(f"{n.name}-")), None)


def owners(engine: sa.Engine, node: Node) -> int:
    found = scalar(
        engine,
        f"SELECT COUNT(*) FROM executions WHERE {UNFINISHED} AND owner LIKE :p",  # noqa: S608
        p=f"{node.name}-%",
    )
    assert isinstance(found, int)
    return found


def ask_sync(url: str) -> None:
    """POST /sync (it waits for the leader's pass, which the test may cut short)."""
    try:
        httpx.post(f"{url}/api/v1/sync", headers=ADMIN, timeout=60)
    except httpx.HTTPError:
        pass


def begun(engine: sa.Engine, sha: str) -> Callable[[], bool]:
    sql = "SELECT COUNT(*) FROM revisions WHERE sha = :sha"
    return lambda: bool(scalar(engine, sql, sha=sha))


def gone(engine: sa.Engine, node: Node) -> Callable[[], bool]:
    return lambda: owners(engine, node) == 0


def progressed(engine: sa.Engine, sql: str, goal: int) -> Callable[[], bool]:
    return lambda: count(engine, sql) >= goal


def test_three_nodes_share_the_work_and_survive_kill_9(tmp_path, database):
    repo = make_repo(tmp_path / "repo")
    nodes = [
        Node(f"n{i}", f"http://127.0.0.1:{free_port()}", tmp_path / f"state-{i}") for i in range(3)
    ]
    for node in nodes:  # all at once: migrations and the first reconcile race
        node.start(repo, database)
    engine = create_engine(database)
    takeovers: list[float] = []
    try:
        for node in nodes:
            wait_for(node.up, timeout=90, what=f"{node.name} to listen")
        wait_for(
            lambda: scalar(engine, "SELECT COUNT(*) FROM workflows") == 1,
            timeout=60,
            what="the workflow to be applied",
        )
        rng = random.Random(12)  # noqa: S311 - which node to kill, not a secret

        start_executions([n.url for n in nodes], EXECUTIONS)  # started through every node
        done = "SELECT COUNT(*) FROM execution_events WHERE type = 'step.succeeded'"
        for round_ in range(3):
            goal = (round_ + 1) * EXECUTIONS  # about a quarter of the steps each round
            wait_for(progressed(engine, done, goal), timeout=180, what="progress")
            if round_ == 0:  # the leader, mid-reconcile: a new commit, and kill it at once
                leader = node_of(engine, nodes, "leader")
                assert leader is not None
                text = (repo / "load.yaml").read_text()
                (repo / "load.yaml").write_text(text.replace("1000", "999"))
                git(repo, "commit", "-qam", "limit 999")
                sha = git(repo, "rev-parse", "HEAD")
                follower = next(n for n in nodes if n is not leader)
                asking = threading.Thread(  # a follower's request reaches the leader
                    target=ask_sync, args=(follower.url,)
                )
                asking.start()
                # the leader has begun applying it (on a fast day: has finished)
                wait_for(begun(engine, sha), timeout=60, what="the leader's pass")
                victim = leader
            else:
                busy = [n for n in nodes if owners(engine, n) > 0] or nodes
                victim = rng.choice(busy)
            had = owners(engine, victim)
            killed_at = time.monotonic()
            victim.kill()
            if had:
                wait_for(gone(engine, victim), timeout=60, what="takeover")
                takeovers.append(time.monotonic() - killed_at)
            victim.start(repo, database)
            if round_ == 0:
                asking.join(timeout=90)
            wait_for(victim.up, timeout=90, what=f"{victim.name} after kill -9")
        finished = f"SELECT COUNT(*) FROM executions WHERE NOT ({UNFINISHED})"  # noqa: S608
        wait_for(lambda: count(engine, finished) == EXECUTIONS, timeout=300, what="the end")
        wait_for(
            lambda: scalar(engine, "SELECT generation FROM workflows WHERE name = 'load'") == 2,
            timeout=60,
            what="the second commit to be applied",
        )
        with engine.connect() as conn:
            states = Counter(r[0] for r in conn.execute(sa.text("SELECT state FROM executions")))
            rows = conn.execute(
                sa.text(
                    "SELECT execution_id, seq, type, step FROM execution_events "
                    "ORDER BY execution_id, seq"
                )
            ).all()
            history_rows = conn.execute(
                sa.text("SELECT generation FROM workflow_history WHERE name = 'load'")
            ).all()
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
                node.proc.wait(timeout=30)
        engine.dispose()
    print(f"takeover after kill -9 (lease {LEASE}s): " + ", ".join(f"{t:.2f}s" for t in takeovers))
    assert states == {"succeeded": EXECUTIONS}
    history: dict[str, list[tuple[int, str, str | None]]] = {}
    for execution_id, seq, kind, step in rows:
        history.setdefault(execution_id, []).append((seq, kind, step))
    assert len(history) == EXECUTIONS  # none lost, none duplicated
    for execution_id, events in history.items():
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1)), execution_id
        succeeded = Counter(step for _, kind, step in events if kind == "step.succeeded")
        assert succeeded == dict.fromkeys("abcd", 1), (execution_id, events)
        assert [kind for _, kind, _ in events].count("execution.succeeded") == 1
        assert events[-1][1] == "execution.succeeded"
    # one generation per commit: created (1), changed once (2)
    assert sorted(g for (g,) in history_rows) == [1, 2]
    # one status note per (commit, state), whichever node posted it
    for sha in git(repo, "rev-list", "HEAD").split():
        note = subprocess.run(
            ["git", "notes", "--ref", "agentflow", "show", sha],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout
        states_noted = Counter(json.loads(line)["state"] for line in note.splitlines() if line)
        assert states_noted and max(states_noted.values()) == 1, (sha, note)
    assert takeovers  # at least one node died holding work
