"""Benchmark the execution engine (targets from the engine issue).

    .venv/bin/python bench/engine.py [--postgres postgresql://postgres@127.0.0.1:5432/test]

With a trivial component agent (WAT echo, ~0.2 ms a step in the sandbox):
1. orchestration overhead per step, durable, SQLite: execution time minus the steps' own sandbox
   time, per step, over 10-step chains (p50 <= 0.5 ms, p99 <= 2 ms)
2. trigger -> first step running (<= 5 ms)
3. sustained 3-step executions per second (SQLite >= 500/s, PostgreSQL >= 200/s)
4. the customer-support pipeline (3 Python agents, mock LLM): end-to-end overhead (<= 20 ms)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentflowd.engine import ExecutionRecord
from bench.validate import machine
from sandbox import SandboxEngine
from sandbox.isolate import ProcessSandbox
from sandbox.pybuild import default_cache_dir
from sandbox.python import PythonRuntime
from tests.engine.harness import Harness, agent, harness, manifest
from tests.sandbox import wat

ECHO = {"agents/echo:v1": ("wasm", wat.ECHO.encode())}


def chain(name: str, n: int) -> str:
    steps = [agent("s0", "agents/echo:v1")]
    steps += [agent(f"s{i}", "agents/echo:v1", (f"s{i - 1}",)) for i in range(1, n)]
    return manifest(name, "\n".join(steps), config="    maxConcurrentExecutions: 10000")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


async def overhead(h: Harness, runs: int) -> None:
    h.install(chain("chain10", 10), ECHO)
    per_step: list[float] = []
    for i in range(runs):
        t0 = time.perf_counter()
        record = await h.engine.run("chain10", i)
        done = await h.engine.wait(record.id)
        total = time.perf_counter() - t0
        assert done.state == "succeeded", done.error
        steps = [e for e in h.journal.events(record.id) if e.type == "step.succeeded"]
        sandbox = sum(e.data["elapsed_ms"] for e in steps) / 1000
        per_step.append((total - sandbox) / len(steps))
    per_step.sort()
    print(
        f"orchestration overhead per step (10-step chains, durable): "
        f"p50 {ms(statistics.median(per_step))}, p99 {ms(per_step[int(len(per_step) * 0.99)])}"
        f" ({runs} executions)"
    )


async def first_step(h: Harness, runs: int) -> None:
    h.install(chain("one", 1), ECHO)
    latencies = []
    for i in range(runs):
        t0 = datetime.now(UTC)
        record = await h.engine.run("one", i)
        await h.engine.wait(record.id)
        started = next(e for e in h.journal.events(record.id) if e.type == "step.started")
        latencies.append((started.at - t0).total_seconds())
    latencies.sort()
    print(
        f"trigger -> first step running: p50 {ms(statistics.median(latencies))}, "
        f"p99 {ms(latencies[int(len(latencies) * 0.99)])}"
    )


async def throughput(h: Harness, count: int, label: str) -> None:
    h.install(chain("three", 3), ECHO)

    async def one(i: int) -> ExecutionRecord:
        record = await h.engine.run("three", i)
        done = await h.engine.wait(record.id)  # as `agentflow run --wait` does
        assert done.state == "succeeded", done.error
        return record

    t0 = time.perf_counter()
    records = await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - t0
    events = sum(len(h.journal.events(r.id)) for r in records[:10]) / 10
    print(
        f"sustained 3-step executions ({label}, {count} at once): {count / elapsed:.0f}/s "
        f"({elapsed:.2f} s; {events:.0f} events each; {h.journal.commits} commits in all)"
    )


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def pipeline_files() -> tuple[str, dict[str, tuple[str, bytes]]]:
    examples = EXAMPLES
    text = (examples / "workflows" / "customer-support.yaml").read_text(encoding="utf-8")
    images = {
        f"agents/{name}": (
            "python",
            (examples / "agents" / name.replace(":", "/") / "agent.py").read_bytes(),
        )
        for name in ("classifier:v1.2", "responder:v1.0", "qa:v0.8")
    }
    return text, images


async def pipeline(h: Harness, runs: int) -> None:
    text, images = pipeline_files()
    h.install(text, images)
    overheads, totals = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        record = await h.engine.run("customer-support-pipeline", {"ticket": "My order never came"})
        done = await h.engine.wait(record.id)
        total = time.perf_counter() - t0
        assert done.state == "succeeded", done.error
        steps = [e for e in h.journal.events(record.id) if e.type == "step.succeeded"]
        sandbox = sum(e.data["elapsed_ms"] for e in steps) / 1000
        overheads.append(total - sandbox)
        totals.append(total)
    print(
        f"customer-support pipeline (3 Python agents, mock LLM): end to end p50 "
        f"{ms(statistics.median(totals))}; engine overhead p50 {ms(statistics.median(overheads))}"
    )


async def main_async(args: argparse.Namespace) -> None:
    sandbox = SandboxEngine(default_cache_dir() / "compiled")
    processes = ProcessSandbox(max_idle=args.workers)
    python = PythonRuntime(sandbox)
    python.component()
    processes.warm(args.workers)  # measure the steady state, not the workers starting
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "engine.db")
        async with harness(
            url, sandbox=sandbox, processes=processes, python=python, workers=args.workers
        ) as h:
            await overhead(h, args.runs)
            await first_step(h, args.runs)
            await throughput(h, args.count, "SQLite")
            await pipeline(h, 50)
    if args.postgres:
        from agentflowd.store import SqlStore, migrate
        from agentflowd.store.tables import metadata

        store = SqlStore.open(args.postgres)
        migrate.upgrade(store.engine)
        with store.engine.begin() as conn:
            names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        store.close()
        async with harness(
            args.postgres, sandbox=sandbox, processes=processes, python=python, workers=args.workers
        ) as h:
            await overhead(h, args.runs // 2)
            await throughput(h, args.count, "PostgreSQL")
    processes.close()
    sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8, help="step threads (the default)")
    parser.add_argument("--postgres", help="a PostgreSQL URL whose tables may be emptied")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
