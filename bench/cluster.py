"""Benchmark several nodes on one PostgreSQL (targets from the scale-out issue).

    .venv/bin/python bench/cluster.py --postgres postgresql://postgres@127.0.0.1:5432/test

1. sustained 3-step executions per second with fenced writes (what a node of a cluster does),
   on one node, and on two nodes (two processes) sharing the database: each starts and waits
   for half the executions, the rate is all of them over the whole span;
2. failover: ``agentflowd serve`` on two nodes with a ``--lease``; a node holding executions is
   killed with -9 and the time until every one of them has a new owner is measured, and so is
   the time until a killed leader has a successor.

The database named by --postgres is used to create (and drop) databases of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import sqlalchemy as sa

from bench.validate import machine
from tests.conftest import free_port, fresh_postgres_database, git
from tests.engine.harness import agent, harness, manifest
from tests.sandbox import wat

ECHO = {"agents/echo:v1": ("wasm", wat.ECHO.encode())}
BIN = Path(sys.executable).parent


def three() -> str:
    steps = [
        agent("s0", "agents/echo:v1"),
        agent("s1", "agents/echo:v1", ("s0",)),
        agent("s2", "agents/echo:v1", ("s1",)),
    ]
    return manifest("three", "\n".join(steps), config="    maxConcurrentExecutions: 10000")


async def _node(url: str, node: str, count: int, install: bool, start_at: float) -> float:
    from sandbox import SandboxEngine
    from sandbox.isolate import ProcessSandbox
    from sandbox.pybuild import default_cache_dir
    from sandbox.python import PythonRuntime

    sandbox = SandboxEngine(default_cache_dir() / "compiled")
    processes = ProcessSandbox(max_idle=8)
    processes.warm(8)
    async with harness(
        url, sandbox=sandbox, processes=processes, python=PythonRuntime(sandbox), node=node
    ) as h:
        if install:
            h.install(three(), ECHO)
        await asyncio.sleep(max(0.0, start_at - time.time()))  # both nodes start together

        async def one(i: int) -> None:
            record = await h.engine.run("three", i)
            done = await h.engine.wait(record.id)
            assert done.state == "succeeded", done.error

        await asyncio.gather(*(one(i) for i in range(count)))
        ended = time.time()
    processes.close()
    sandbox.close()
    return ended


def _run_node(url: str, node: str, count: int, install: bool, start_at: float, out: Any) -> None:
    out.put(asyncio.run(_node(url, node, count, install, start_at)))


def throughput(url: str, nodes: int, count: int) -> float:
    """Executions per second, ``count`` in all, started and awaited across ``nodes``."""
    from agentflowd.store import SqlStore, migrate

    store = SqlStore.open(url)
    migrate.upgrade(store.engine)
    store.close()
    asyncio.run(_install(url))
    start_at = time.time() + 8.0  # every process has warmed its workers by then
    queue: multiprocessing.Queue[float] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=_run_node, args=(url, f"bench-{i}", count // nodes, False, start_at, queue)
        )
        for i in range(nodes)
    ]
    for proc in procs:
        proc.start()
    ends = [queue.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return count / (max(ends) - start_at)


async def _install(url: str) -> None:
    from sandbox import SandboxEngine
    from sandbox.isolate import ProcessSandbox
    from sandbox.python import PythonRuntime

    sandbox = SandboxEngine()
    processes = ProcessSandbox(max_idle=1)
    async with harness(
        url, sandbox=sandbox, processes=processes, python=PythonRuntime(sandbox), node="setup"
    ) as h:
        h.install(three(), ECHO)
    processes.close()
    sandbox.close()


def _serve(repo: Path, state: Path, database: str, lease: float, name: str) -> tuple[Any, str]:
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(BIN / "agentflowd"), "serve", "--repo", str(repo), "--state-dir", str(state)]
    command += ["--database", database, "--listen", url.removeprefix("http://")]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "AGENTFLOW_LEASE": f"{lease}s",
            "AGENTFLOW_NODE_NAME": name,
            "AGENTFLOW_WORKERS": "2",
        },
    )
    return proc, url


def _until(predicate: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.01)


def failover(admin: str, lease: float, rounds: int) -> tuple[list[float], list[float]]:
    """(takeover seconds after kill -9 of a node holding work, new leader after kill -9)."""
    takeovers: list[float] = []
    leaders: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_database(admin) as database:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "agents/nap/v1").mkdir(parents=True)
        (repo / "agents/nap/v1/agent.wasm").write_text(wat.sleeper(0.5), encoding="utf-8")
        steps = "\n".join(agent(f"s{i}", "agents/nap:v1") for i in range(3))
        text = manifest("nap", steps, config="    maxConcurrentExecutions: 1000")
        (repo / "nap.yaml").write_text(text, encoding="utf-8")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "nap")
        engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://"))

        def scalar(sql: str, **params: object) -> Any:
            try:
                with engine.connect() as conn:
                    return conn.execute(sa.text(sql), params).scalar()
            except sa.exc.ProgrammingError:  # not migrated yet
                return None

        nodes = {name: _serve(repo, Path(tmp) / name, database, lease, name) for name in ("a", "b")}
        try:
            _until(lambda: scalar("SELECT COUNT(*) FROM workflows") == 1)
            for _ in range(rounds):
                for _proc, url in nodes.values():
                    _until(lambda url=url: _up(url))
                leader = scalar("SELECT holder FROM leases WHERE name = 'leader'")
                victim = leader.split("-")[0]
                proc, url = nodes[victim]
                for i in range(20):
                    httpx.post(f"{url}/api/v1/workflows/nap/executions", json={"input": i})
                owned = (
                    "SELECT COUNT(*) FROM executions WHERE state IN ('queued', 'running') "
                    "AND owner LIKE :p"
                )
                mine = {"p": f"{victim}-%"}
                _until(lambda mine=mine, owned=owned: (scalar(owned, **mine) or 0) > 0)
                killed = time.monotonic()
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                new_leader = None
                while True:
                    now = time.monotonic()
                    holder = scalar("SELECT holder FROM leases WHERE name = 'leader'")
                    if new_leader is None and holder and not holder.startswith(f"{victim}-"):
                        new_leader = now - killed
                    if scalar(owned, p=f"{victim}-%") == 0 and new_leader is not None:
                        takeovers.append(now - killed)
                        leaders.append(new_leader)
                        break
                    time.sleep(0.005)
                nodes[victim] = _serve(repo, Path(tmp) / victim, database, lease, victim)
        finally:
            for proc, _url in nodes.values():
                proc.terminate()
                proc.wait()
            engine.dispose()
    return takeovers, leaders


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", required=True, help="a server to create databases on")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--failover-only", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    for nodes in () if args.failover_only else (1, 2):
        with fresh_postgres_database(args.postgres) as url:
            rate = throughput(url, nodes, args.count)
        print(f"3-step executions/s, fenced, {nodes} node(s) on one PostgreSQL: {rate:.0f}/s")
    takeovers, leaders = failover(args.postgres, args.lease, args.rounds)
    print(
        f"failover, lease {args.lease:g} s: executions re-owned after kill -9 "
        f"{', '.join(f'{t:.2f}' for t in takeovers)} s "
        f"(median {statistics.median(takeovers):.2f}); "
        f"new leader {', '.join(f'{t:.2f}' for t in leaders)} s"
    )


if __name__ == "__main__":
    main()
