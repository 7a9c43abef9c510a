"""Executions end to end on SQLite and PostgreSQL, with WAT agents: order, data between steps,
failures and retries, concurrency limits, cancel, deadlines, resume after a crash, trigger keys."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentflowd.engine import Journal, LogEntry
from agentflowd.store import SqlStore, migrate
from agentflowd.store.tables import metadata, step_runs
from sandbox import SandboxEngine
from sandbox.isolate import ProcessSandbox
from sandbox.python import PythonRuntime
from tests.engine.harness import Harness, agent, harness, manifest
from tests.sandbox import wat

ECHO = ("wasm", wat.ECHO.encode())
FAILING = ("wasm", wat.FAILING.encode())
LOOP = ("wasm", wat.LOOP_FOREVER.encode())


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any]]:
    sandbox = SandboxEngine()
    processes = ProcessSandbox()
    python = PythonRuntime(sandbox)
    yield sandbox, processes, python
    processes.close()
    sandbox.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "engine.db")
    url: str = request.getfixturevalue("postgres_url")
    store = SqlStore.open(url)
    migrate.upgrade(store.engine)
    with store.engine.begin() as conn:
        names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    store.close()
    return url


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def events(h: Harness, execution: str) -> list[tuple[str, str | None]]:
    return [(e.type, e.step) for e in h.journal.events(execution)]


CHAIN = manifest(
    "chain",
    "\n".join(
        [
            agent("a", "agents/echo:v1"),
            agent("b", "agents/echo:v1", ("a",)),
            agent("c", "agents/echo:v1", ("b",)),
        ]
    ),
)
DIAMOND = manifest(
    "diamond",
    "\n".join(
        [
            agent("a", "agents/echo:v1"),
            agent("b", "agents/echo:v1", ("a",)),
            agent("c", "agents/echo:v1", ("a",)),
            agent("d", "agents/echo:v1", ("b", "c")),
        ]
    ),
)


# returns JSON text laid out as no encoder would: it reaches the next step and the journal as is
ODD_JSON = '{ "b" : [1, 2.50, "\\u00e9 \u00e9"] ,"a":null , "n": {"deep": [[[]]]} }'
_ODD_DATA = ODD_JSON.replace("\\", "\\\\").replace('"', '\\"')  # as a WAT string
ODD = (
    "wasm",
    wat.component(
        f"(call $ok (i32.const 100) (i32.const {len(ODD_JSON.encode())}))",
        data=f'(data (i32.const 100) "{_ODD_DATA}")',
    ).encode(),
)


def test_an_outputs_text_goes_on_as_the_agent_wrote_it(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            flow = manifest(
                "odd",
                "\n".join([agent("a", "agents/odd:v1"), agent("b", "agents/echo:v1", ("a",))]),
            )
            h.install(flow, {"agents/odd:v1": ODD, "agents/echo:v1": ECHO})
            started = await h.engine.run("odd", {"text": "é ✓", "list": [1, 2]})
            done = await h.engine.wait(started.id)
            assert done.state == "succeeded", done.error
            value = json.loads(ODD_JSON)
            assert done.output == {
                "b": {"input": {"text": "é ✓", "list": [1, 2]}, "steps": {"a": value}}
            }
            rows = {s.step: s.output for s in h.journal.steps(started.id)}
            assert rows["a"] == value and rows["b"] == done.output["b"]
            if h.store.engine.dialect.name == "sqlite":  # (PostgreSQL's jsonb lays it out anew)
                with h.store.engine.connect() as conn:
                    stored = conn.exec_driver_sql(
                        "SELECT output FROM step_runs WHERE step = 'a'"
                    ).scalar()
                assert stored == ODD_JSON  # not decoded and encoded again

    run(main())


def test_a_chain_runs_in_order_and_passes_outputs_on(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(CHAIN, {"agents/echo:v1": ECHO})
            started = await h.engine.run("chain", {"ticket": 42})
            done = await h.engine.wait(started.id)
            assert done.state == "succeeded" and done.finished_at is not None
            # c echoes its input, which holds b's, which holds a's: the data went through
            c = done.output["c"]
            assert c["input"] == {"ticket": 42}
            assert c["steps"]["b"]["steps"]["a"] == {"input": {"ticket": 42}, "steps": {}}
            assert events(h, started.id) == [
                ("execution.running", None),
                ("step.started", "a"),
                ("step.succeeded", "a"),
                ("step.started", "b"),
                ("step.succeeded", "b"),
                ("step.started", "c"),
                ("step.succeeded", "c"),
                ("execution.succeeded", None),
            ]
            steps = h.journal.steps(started.id)
            digest = done.images["agents/echo:v1"]["sha256"]
            assert {s.image_sha256 for s in steps} == {digest}  # recorded with every step
            assert [s.attempt for s in steps] == [1, 1, 1]

    run(main())


def test_independent_branches_run_and_join(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(DIAMOND, {"agents/echo:v1": ECHO})
            done = await h.engine.wait((await h.engine.run("diamond", "x")).id)
            assert done.state == "succeeded"
            assert set(done.output["d"]["steps"]) == {"b", "c"}

    run(main())


def test_a_failed_step_is_retried_then_fails_the_execution_and_skips_dependents(db_url, parts):
    text = manifest(
        "failing",
        "\n".join(
            [
                agent("a", "agents/echo:v1"),
                agent(
                    "b",
                    "agents/bad:v1",
                    ("a",),
                    "      retry: {maxAttempts: 3, backoff: exponential, initialDelay: 10ms, "
                    "maxDelay: 20ms}",
                ),
                agent("c", "agents/echo:v1", ("b",)),
                agent("d", "agents/echo:v1", ("a",)),
            ]
        ),
    )

    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(text, {"agents/echo:v1": ECHO, "agents/bad:v1": FAILING})
            done = await h.engine.wait((await h.engine.run("failing")).id)
            assert done.state == "failed"
            assert done.error == "step b failed: agent-error: the agent broke"
            states = {s.step: (s.state, s.attempt) for s in h.journal.steps(done.id)}
            assert states == {
                "a": ("succeeded", 1),
                "b": ("failed", 3),
                "c": ("skipped", 0),
                "d": ("succeeded", 1),
            }
            kinds = [t for t, step in events(h, done.id) if step == "b"]
            assert kinds.count("step.retrying") == 2 and kinds[-1] == "step.failed"

    run(main())


def test_limits_are_not_retried(db_url, parts):
    text = manifest(
        "slow",
        agent(
            "a",
            "agents/loop:v1",
            extra="      resources: {timeout: 50ms, cpu: '100'}\n"
            "      retry: {maxAttempts: 3, backoff: fixed, initialDelay: 10ms, maxDelay: 10ms}",
        ),
    )

    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(text, {"agents/loop:v1": LOOP})
            done = await h.engine.wait((await h.engine.run("slow")).id)
            # a timeout is transient: retried; each attempt stops at its own 50 ms
            assert done.state == "failed" and "timeout" in (done.error or "")
            assert h.journal.steps(done.id)[0].attempt == 3

    run(main())


def test_executions_beyond_the_limit_wait_their_turn(db_url, parts):
    text = manifest("one", agent("a", "agents/echo:v1"), config="    maxConcurrentExecutions: 1")

    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(text, {"agents/echo:v1": ECHO})
            records = await asyncio.gather(*(h.engine.run("one", i) for i in range(4)))
            assert [r.state for r in records].count("running") == 1
            finished = [await h.engine.wait(r.id) for r in records]
            assert [r.state for r in finished] == ["succeeded"] * 4
            spans = sorted((r.started_at, r.finished_at) for r in finished)
            for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
                assert end is not None and start is not None and start >= end  # one at a time

    run(main())


def test_cancel_stops_what_has_not_started(db_url, parts):
    text = manifest(
        "cancel",
        "\n".join(
            [
                # (its timeout is long enough that the cancel, made right after the start,
                # always comes first; the cancelled execution then waits for it)
                agent("a", "agents/loop:v1", extra="      resources: {timeout: 2s, cpu: '100'}"),
                agent("b", "agents/echo:v1", ("a",)),
            ]
        ),
    )

    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(text, {"agents/loop:v1": LOOP, "agents/echo:v1": ECHO})
            started = await h.engine.run("cancel")
            await h.engine.cancel(started.id)
            done = await h.engine.wait(started.id)
            assert done.state == "cancelled"
            states = {s.step: s.state for s in h.journal.steps(done.id)}
            assert states["b"] == "cancelled"

    run(main())


def test_the_execution_deadline_cuts_step_timeouts(db_url, parts):
    text = manifest(
        "deadline",
        # its own timeout is an hour: were it not cut to the deadline, the wait below would
        # give up long before it ended
        agent("a", "agents/loop:v1", extra="      resources: {timeout: 1h, cpu: '100'}"),
        config="    defaultTimeout: 200ms",
    )

    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(text, {"agents/loop:v1": LOOP})
            started = await h.engine.run("deadline")
            async with asyncio.timeout(300):  # (a hang guard: the step's own timeout is 1 h)
                done = await h.engine.wait(started.id)
            assert done.state == "timed_out"  # (only a step cut at the deadline makes this)
            assert done.error == "the execution ran past its deadline (defaultTimeout)"

    run(main())


def test_a_trigger_key_starts_at_most_one_execution(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(CHAIN, {"agents/echo:v1": ECHO})
            first = await h.engine.run("chain", trigger="schedule", key="chain@2026-11-24T09:00Z")
            again = await h.engine.run("chain", trigger="schedule", key="chain@2026-11-24T09:00Z")
            assert again.id == first.id
            await h.engine.wait(first.id)
            assert len(h.journal.executions(workflow="chain")) == 1

    run(main())


def test_a_restart_resumes_and_never_reruns_a_completed_step(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(CHAIN, {"agents/echo:v1": ECHO})
            done = await h.engine.wait((await h.engine.run("chain", 1)).id)
            # make it look like the daemon died while b ran: b running, c pending
            with h.store.engine.begin() as conn:
                conn.execute(
                    step_runs.update()
                    .where(step_runs.c.execution_id == done.id, step_runs.c.step == "b")
                    .values(state="running", output=None)
                )
                conn.execute(
                    step_runs.update()
                    .where(step_runs.c.execution_id == done.id, step_runs.c.step == "c")
                    .values(state="pending", output=None, attempt=0)
                )
                conn.execute(sa.text("UPDATE executions SET state='running', output=NULL"))
            crashed = done.id
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            resumed = await h.engine.wait(crashed)
            assert resumed.state == "succeeded"
            kinds = [(t, s) for t, s in events(h, crashed)]
            assert kinds.count(("step.started", "a")) == 1  # completed: never again
            assert ("step.requeued", "b") in kinds and kinds.count(("step.started", "b")) == 2

    run(main())


def test_the_journal_group_commits(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(DIAMOND, {"agents/echo:v1": ECHO})
            ids = [(await h.engine.run("diamond", i)).id for i in range(20)]
            for i in ids:
                assert (await h.engine.wait(i)).state == "succeeded"
            written = sum(len(h.journal.events(i)) for i in ids)
            assert h.journal.commits < written  # several changes per transaction

    run(main())


def test_events_survive_a_new_journal(db_url):
    store = SqlStore.open(db_url) if "://" in db_url else SqlStore.open(db_url)
    migrate.upgrade(store.engine)
    journal = Journal(store.engine)
    try:
        assert journal.unfinished() == []
        assert json.dumps(journal.executions()) == "[]"
    finally:
        journal.close()
        store.close()


def test_a_new_version_is_used_by_the_next_execution(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(CHAIN, {"agents/echo:v1": ECHO})
            first = await h.engine.wait((await h.engine.run("chain", 1)).id)
            h.install(CHAIN.replace("name: c\n", "name: last\n"), {"agents/echo:v1": ECHO})
            second = await h.engine.wait((await h.engine.run("chain", 2)).id)
            assert (first.generation, second.generation) == (1, 2)
            assert [s.step for s in h.journal.steps(second.id)] == ["a", "b", "last"]

    run(main())


def test_starts_that_arrive_together_share_one_read_of_the_workflow(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(CHAIN, {"agents/echo:v1": ECHO})
            reads: list[str] = []
            real = h.store.get_workflow

            def counted(name: str) -> Any:
                reads.append(name)
                if len(reads) == 1:
                    raise RuntimeError("the database went away")
                return real(name)

            h.store.get_workflow = counted  # type: ignore[method-assign]
            with pytest.raises(RuntimeError, match="went away"):
                await h.engine.run("chain", 0)
            records = await asyncio.gather(*(h.engine.run("chain", i) for i in range(50)))
            assert reads == ["chain", "chain"]  # the failed read was not kept; then one read
            for record in records:
                assert (await h.engine.wait(record.id)).state == "succeeded"

    run(main())


def test_lazy_changes_are_committed_without_another_write(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(CHAIN, {"agents/echo:v1": ECHO})
            done = await h.engine.wait((await h.engine.run("chain", 1)).id)
            committed = threading.Event()
            h.journal.on_commit = None  # thens run on the writer thread
            note = LogEntry(execution_id=done.id, type="step.host_call", at=done.created_at)
            h.journal.post([note], lambda _error: committed.set(), lazy=True)
            assert committed.wait(10)  # the writer's own timer (lazy_seconds) committed it
            assert events(h, done.id)[-1] == ("step.host_call", None)

    run(main())


def test_commits_from_many_threads_keep_the_order_of_posting(db_url, parts):
    async def main() -> None:
        async with harness(db_url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(CHAIN, {"agents/echo:v1": ECHO})
            done = await h.engine.wait((await h.engine.run("chain", 1)).id)
            before = len(h.journal.events(done.id))
            h.journal.on_commit = None
            finished = threading.Semaphore(0)

            def writer(t: int) -> None:
                for n in range(50):
                    note = LogEntry(
                        execution_id=done.id, type="note", at=done.created_at, data=[t, n]
                    )
                    if n % 2:
                        h.journal.commit_here([note], lambda _e: finished.release())
                    else:
                        h.journal.post([note], lambda _e: finished.release(), lazy=n % 4 == 0)

            threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for _ in range(200):
                assert finished.acquire(timeout=10)
            notes = h.journal.events(done.id, after=before)
            assert [e.seq for e in notes] == list(range(before + 1, before + 201))
            for t in range(4):  # each thread's notes in the order it posted them
                assert [e.data[1] for e in notes if e.data[0] == t] == list(range(50))

    run(main())


@pytest.mark.parametrize(("isolation", "in_workers"), [("process", 3), ("thread", 0), ("auto", 0)])
def test_where_component_steps_run(isolation, in_workers, tmp_path, parts):
    async def main() -> None:
        before = parts[1].runs
        async with harness(
            str(tmp_path / "engine.db"),
            sandbox=parts[0],
            processes=parts[1],
            python=parts[2],
            isolation=isolation,
        ) as h:
            h.install(CHAIN, {"agents/echo:v1": ECHO})
            done = await h.engine.wait((await h.engine.run("chain", {"n": 1})).id)
            assert done.state == "succeeded", done.error
            c = done.output["c"]
            assert c["steps"]["b"]["steps"]["a"] == {"input": {"n": 1}, "steps": {}}
        # auto: a chain's steps run one at a time, each alone, so in the daemon's threads
        assert parts[1].runs - before == in_workers

    run(main())


def test_auto_runs_parallel_steps_in_the_daemon_while_no_worker_is_ready(tmp_path, parts):
    fan = manifest(
        "fan",
        "\n".join(
            agent(n, "agents/echo:v1", extra="      resources: {timeout: 150ms}") for n in "abcd"
        ),
    )
    cold = ProcessSandbox(max_idle=4)  # no worker started yet: starting one takes ~0.2 s

    async def main() -> None:
        async with harness(
            str(tmp_path / "engine.db"), sandbox=parts[0], processes=cold, python=parts[2]
        ) as h:
            h.install(fan, {"agents/echo:v1": ECHO})
            done = await h.engine.wait((await h.engine.run("fan", 1)).id)
            assert done.state == "succeeded", done.error  # none waited for a worker to start

    try:
        run(main())  # (whether the pool then starts workers depends on the steps overlapping)
    finally:
        cold.close()
