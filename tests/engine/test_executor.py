"""The engine as executor, on the in-memory log, a fake clock and scripted steps: what the state
machine decides is carried out (steps run, timers fire, the log records, waiters wake)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentflowd.engine import ExecutionRecord, MemoryLog
from agentflowd.errors import ConflictError
from sandbox import OutcomeKind
from tests.engine.fakes import (
    Gate,
    ScriptedSteps,
    attempts,
    echo,
    fail,
    fake_engine,
    install,
    manifest,
    ok,
)

CHAIN = {"a": (), "b": ("a",), "c": ("b",)}


def go(coro: Any) -> Any:
    return asyncio.run(coro)


async def finished(fake: Any, record: ExecutionRecord) -> ExecutionRecord:
    async with asyncio.timeout(30):
        return await fake.engine.wait(record.id)  # type: ignore[no-any-return]


async def until(predicate: Any, what: str) -> None:
    """Let the loop run until ``predicate()`` (steps finish on threads; the loop hears of it)."""
    async with asyncio.timeout(30):
        while not predicate():  # noqa: ASYNC110 - it changes on the step threads
            await asyncio.sleep(0.001)


def history(log: MemoryLog, xid: str) -> list[str]:
    return [f"{e.type}{':' + e.step if e.step else ''}" for e in log.events(xid)]


def test_a_chain_runs_in_order_passing_outputs_on():
    async def main() -> None:
        steps = ScriptedSteps({"a": ok('{"n": 1}'), "b": echo(), "c": echo()})
        async with fake_engine(steps) as fake:
            install(fake.store, manifest("w", CHAIN))
            done = await finished(fake, await fake.engine.run("w", {"q": 7}))
            assert done.state == "succeeded"
            c = fake.log.steps(done.id)[2].output
            assert c["steps"]["b"]["steps"]["a"] == {"n": 1}  # outputs passed on as written
            assert history(fake.log, done.id) == [
                "execution.running",
                "step.started:a",
                "step.succeeded:a",
                "step.started:b",
                "step.succeeded:b",
                "step.started:c",
                "step.succeeded:c",
                "execution.succeeded",
            ]
            assert fake.log.execution(done.id).output == done.output
            assert steps.jobs[0].input_json == '{"input": {"q": 7}, "steps": {}}'

    go(main())


def test_a_retry_waits_for_its_backoff_on_the_clock():
    async def main() -> None:
        steps = ScriptedSteps({"a": attempts(fail(), fail(), ok())})
        async with fake_engine(steps) as fake:
            install(fake.store, manifest("w", {"a": ()}))
            record = await fake.engine.run("w")
            await until(lambda: fake.clock.pending[:1] == [1.0], "the first retry's timer")
            assert steps.ran["a"] == 1  # nothing runs until the clock moves
            fake.clock.advance(1.0)
            await until(lambda: fake.clock.pending[:1] == [2.0], "the second retry's timer")
            fake.clock.advance(2.0)
            done = await finished(fake, record)
            assert (done.state, steps.ran["a"]) == ("succeeded", 3)
            retries = [
                e.data["delay_s"] for e in fake.log.events(done.id) if e.type.endswith("retrying")
            ]
            assert retries == [1.0, 2.0]

    go(main())


def test_limits_are_not_retried_and_fail_the_execution():
    async def main() -> None:
        steps = ScriptedSteps({"a": fail(OutcomeKind.LIMIT_EXCEEDED, "memory")})
        async with fake_engine(steps) as fake:
            install(fake.store, manifest("w", CHAIN))
            done = await finished(fake, await fake.engine.run("w"))
            assert done.state == "failed" and steps.ran["a"] == 1
            assert done.error is not None and done.error.startswith("step a failed")
            states = {s.step: s.state for s in fake.log.steps(done.id)}
            assert states == {"a": "failed", "b": "skipped", "c": "skipped"}

    go(main())


def test_the_deadline_times_out_a_running_execution():
    async def main() -> None:
        gate = Gate(then=fail(OutcomeKind.TIMEOUT, "deadline"))
        steps = ScriptedSteps({"a": gate})
        async with fake_engine(steps) as fake:
            install(fake.store, manifest("w", CHAIN, "defaultTimeout: 30s"))
            record = await fake.engine.run("w")
            await until(gate.entered.is_set, "the step to start")
            assert fake.clock.pending == [30.0]
            fake.clock.advance(30.0)  # the deadline: nothing more is scheduled
            gate.opened.set()  # the sandbox ends the step at the deadline
            done = await finished(fake, record)
            assert done.state == "timed_out"
            assert done.error == "the execution ran past its deadline (defaultTimeout)"
            assert steps.ran == {"a": 1}

    go(main())


def test_cancel_lets_the_running_step_end_and_cancels_the_rest():
    async def main() -> None:
        gate = Gate()
        steps = ScriptedSteps({"a": gate})
        async with fake_engine(steps) as fake:
            install(fake.store, manifest("w", CHAIN))
            record = await fake.engine.run("w")
            await until(gate.entered.is_set, "the step to start")
            await fake.engine.cancel(record.id)
            gate.opened.set()
            done = await finished(fake, record)
            assert done.state == "cancelled"
            states = {s.step: s.state for s in fake.log.steps(done.id)}
            assert states == {"a": "succeeded", "b": "cancelled", "c": "cancelled"}
            with pytest.raises(ConflictError):
                await fake.engine.cancel(record.id)

    go(main())


def test_executions_beyond_the_limit_wait_their_turn_in_order():
    async def main() -> None:
        gate = Gate()
        steps = ScriptedSteps({"a": gate})
        async with fake_engine(steps) as fake:
            install(fake.store, manifest("w", {"a": ()}, "maxConcurrentExecutions: 1"))
            first = await fake.engine.run("w")
            second = await fake.engine.run("w")
            third = await fake.engine.run("w")
            assert (first.state, second.state, third.state) == ("running", "queued", "queued")
            await until(gate.entered.is_set, "the first to start")
            assert steps.ran["a"] == 1
            gate.opened.set()
            for record in (first, second, third):
                assert (await finished(fake, record)).state == "succeeded"
            starts = [fake.log.execution(r.id).started_at for r in (first, second, third)]
            assert None not in starts and starts == sorted(s for s in starts if s is not None)

    go(main())


def test_a_trigger_key_starts_one_execution():
    async def main() -> None:
        async with fake_engine() as fake:
            install(fake.store, manifest("w", {"a": ()}))
            one = await fake.engine.run("w", trigger="schedule", key="slot-1")
            two = await fake.engine.run("w", trigger="schedule", key="slot-1")
            assert one.id == two.id
            assert len(fake.log.executions()) == 1

    go(main())


def test_a_suspended_workflow_runs_only_by_hand():
    async def main() -> None:
        async with fake_engine() as fake:
            install(fake.store, manifest("w", {"a": ()}))
            fake.store.set_suspended("w", True, now=fake.clock.now())
            with pytest.raises(ConflictError):
                await fake.engine.run("w", trigger="webhook")
            assert (await finished(fake, await fake.engine.run("w"))).state == "succeeded"

    go(main())


def test_a_new_engine_resumes_and_never_reruns_a_completed_step():
    async def main() -> None:
        log = MemoryLog()
        gate = Gate()
        steps = ScriptedSteps({"b": gate})
        async with fake_engine(steps, log=log) as fake:
            store, clock = fake.store, fake.clock
            install(store, manifest("w", CHAIN))
            record = await fake.engine.run("w")
            await until(gate.entered.is_set, "b to start")
        # the node is gone with b running; another engine on the same log takes over
        again = ScriptedSteps()
        async with fake_engine(again, log=log, store=store, clock=clock) as fake:
            done = await finished(fake, record)
            assert done.state == "succeeded"
            assert again.ran == {"b": 1, "c": 1}  # a had succeeded: it never runs again
            assert "step.requeued:b" in history(log, record.id)
            assert again.jobs[0].attempt == 2
        gate.opened.set()

    go(main())


def test_an_outage_of_the_log_delays_an_execution_and_loses_nothing():
    async def main() -> None:
        gate = Gate()
        steps = ScriptedSteps({"a": gate})
        async with fake_engine(steps) as fake:
            install(fake.store, manifest("w", CHAIN))
            record = await fake.engine.run("w")
            await until(gate.entered.is_set, "a to start")
            fake.log.fail(ConnectionError("database is away"))
            gate.opened.set()
            await until(lambda: fake.log.waiting > 0, "a's success to wait for the log")
            for _ in range(50):  # the loop turns: nothing more happens while it is away
                await asyncio.sleep(0)
            assert steps.ran["b"] == 0  # its dependency's success is not durable yet
            fake.log.recover()
            done = await finished(fake, record)
            assert done.state == "succeeded" and steps.ran == {"a": 1, "b": 1, "c": 1}
            assert history(fake.log, record.id)[-1] == "execution.succeeded"

    go(main())


def test_the_state_machine_view_matches_the_log():
    async def main() -> None:
        async with fake_engine() as fake:
            install(fake.store, manifest("w", CHAIN))
            done = await finished(fake, await fake.engine.run("w"))
            view = fake.engine.state_of(done.id)
            assert view is not None
            rows = {s.step: s.state for s in fake.log.steps(done.id)}
            assert {n: s.state.value for n, s in view.steps.items()} == rows

    go(main())
