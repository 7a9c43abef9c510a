"""Components that can block inside WASI run in worker processes, killed at their deadline."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from sandbox import HostCallbacks, HostCallError, OutcomeKind, RunContext, SandboxEngine, StepLimits
from sandbox.isolate import ProcessSandbox, blocking_imports, run_component
from tests.sandbox import wat


@pytest.fixture(scope="module")
def engine() -> Iterator[SandboxEngine]:
    made = SandboxEngine()
    yield made
    made.close()


@pytest.fixture
def processes() -> Iterator[ProcessSandbox]:
    made = ProcessSandbox()
    made.warm()
    yield made
    made.close()


def test_which_components_can_block(engine):
    assert blocking_imports(engine, engine.load(wat.sleeper(1))) == ["wasi:io/poll@0.2.0"]
    assert blocking_imports(engine, engine.load(wat.ECHO)) == []


def test_a_blocking_wait_ends_as_timeout_and_its_worker_is_killed(engine, processes):
    # The sleeper would answer after 30 s: only a kill ends it as TIMEOUT before that. How soon
    # after the deadline is measured by bench/sandbox.py ("blocked in a WASI sleep").
    sleeper = wat.sleeper(30).encode()
    engine.load(sleeper)  # compiled ahead: the step's 0.2 s are not spent compiling
    ctx = RunContext(limits=StepLimits(timeout_seconds=0.2))
    started = time.monotonic()
    report = run_component(engine, sleeper, "{}", ctx, processes)
    assert report.outcome.message() == (
        "timeout: the step ran past its timeout "
        "(blocked in a WASI wait; its worker process was killed)"
    )
    assert processes.killed == 1
    assert time.monotonic() - started >= 0.2  # not before its deadline (load only delays)
    # the host is healthy: the next steps run, in-process and in a (new) worker
    ok = run_component(
        engine, wat.ECHO.encode(), '{"a": 1}', RunContext(limits=StepLimits()), processes
    )
    assert ok.outcome.output == '{"a": 1}'
    short = run_component(
        engine, wat.sleeper(0.01).encode(), '{"b": 2}', RunContext(limits=StepLimits()), processes
    )
    assert short.outcome.ok and short.outcome.output == '{"b": 2}'


def test_host_calls_of_a_worker_step_are_answered_by_the_step_callbacks(engine, processes):
    seen: list[str] = []

    def llm(request: str) -> str:
        seen.append(request)
        return json.dumps({"text": f"answer {len(seen)}"})

    ctx = RunContext(limits=StepLimits(), callbacks=HostCallbacks(llm_complete=llm))
    report = processes.run(engine, wat.isolated_llm_caller(3).encode(), '{"q": 1}', ctx)
    assert report.outcome.ok and json.loads(report.outcome.output) == {"text": "answer 3"}
    assert seen == ['{"q": 1}'] * 3 and report.counts["llmCalls"] == 3

    def failing(_request: str) -> str:
        raise HostCallError("provider down")

    ctx = RunContext(limits=StepLimits(llm_calls=2), callbacks=HostCallbacks(llm_complete=failing))
    report = processes.run(engine, wat.isolated_llm_caller(5).encode(), "{}", ctx)
    assert report.outcome.message() == "limit exceeded: llmCalls (llmCalls limit of 2 reached)"
    assert report.counts["llmCalls"] == 5


def test_limits_apply_in_a_worker_as_in_process(engine):
    # The host would kill the worker only 30 s past the deadline (not 20 ms: the worker's own
    # deadline starts once it has compiled the component, which on a loaded machine can take
    # longer than that), so only the worker's own epoch deadline can end this loop in time.
    patient = ProcessSandbox(grace_seconds=30)
    patient.warm()
    try:
        # (100 cores of fuel: the loop cannot run out of it first)
        ctx = RunContext(limits=StepLimits(timeout_seconds=0.1, cpu_millicores=100_000))
        looping = wat.LOOP_FOREVER.replace("(component", "(component" + wat._WASI_IMPORTS, 1)
        report = patient.run(engine, looping.encode(), "{}", ctx)
        assert report.outcome.message() == "timeout: the step ran past its timeout"
        assert patient.killed == 0  # the epoch stopped it
    finally:
        patient.close()


def test_a_worker_that_dies_is_a_trap_and_is_replaced(engine, processes):
    def kill_my_worker(_request: str) -> str:
        for pid in processes.busy_pids():
            os.kill(pid, signal.SIGKILL)
        return "{}"

    ctx = RunContext(limits=StepLimits(), callbacks=HostCallbacks(llm_complete=kill_my_worker))
    report = processes.run(engine, wat.isolated_llm_caller(2).encode(), "{}", ctx)
    assert report.outcome.kind is OutcomeKind.TRAP
    assert "the sandbox worker process died" in report.outcome.message()
    again = processes.run(
        engine,
        wat.isolated_llm_caller(1).encode(),
        "{}",
        RunContext(
            limits=StepLimits(), callbacks=HostCallbacks(llm_complete=lambda r: '{"ok": 1}')
        ),
    )
    assert again.outcome.output == '{"ok": 1}'


def test_concurrent_worker_steps_get_their_own_answers(engine, processes):
    results: dict[int, str | None] = {}

    def step(n: int) -> None:
        for k in range(5):
            answer = f'{{"n": {n}, "k": {k}}}'

            def llm(_request: str, answer: str = answer) -> str:
                return answer

            ctx = RunContext(limits=StepLimits(), callbacks=HostCallbacks(llm_complete=llm))
            report = processes.run(engine, wat.isolated_llm_caller(1).encode(), "{}", ctx)
            assert report.outcome.output == answer
        results[n] = "done"

    threads = [threading.Thread(target=step, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == dict.fromkeys(range(4), "done")


def test_the_deadline_holds_from_a_cold_pool(engine):
    # Whether the worker is ready in time (it is then killed) or not (the step ends waiting
    # for it) depends on the machine's load; either way the step ends as TIMEOUT.
    cold = ProcessSandbox()
    try:
        ctx = RunContext(limits=StepLimits(timeout_seconds=0.3))
        started = time.monotonic()
        report = cold.run(engine, wat.sleeper(30).encode(), "{}", ctx)
        assert report.outcome.kind is OutcomeKind.TIMEOUT, report.outcome
        assert time.monotonic() - started >= 0.3  # not before its deadline (load only delays)
    finally:
        cold.close()


class Clock:
    """Reads 0 until :meth:`slow_down`; then 0 once more (where the next step places its
    deadline) and 10 s ever after: whatever that step waits for next takes 10 s by this clock."""

    def __init__(self) -> None:
        self.readings: Iterator[float] = iter(())
        self.later = 0.0

    def __call__(self) -> float:
        return next(self.readings, self.later)

    def slow_down(self) -> None:
        self.readings, self.later = iter([0.0]), 10.0


QUICK = wat.isolated_llm_caller(1).encode()  # can block, but answers at once


def answering() -> HostCallbacks:
    return HostCallbacks(llm_complete=lambda _r: '{"ok": 1}')


def test_a_workers_start_counts_in_the_steps_timeout(engine):
    clock = Clock()
    cold = ProcessSandbox(clock=clock)
    clock.slow_down()
    try:
        ctx = RunContext(limits=StepLimits(timeout_seconds=0.3), callbacks=answering())
        report = cold.run(engine, QUICK, "{}", ctx)
        # (a worker process cannot be ready the instant after it is spawned: it imports
        # wasmtime first, so the pool gives up on it without a real wait)
        assert report.outcome.message() == (
            "timeout: the step ran past its timeout (no sandbox worker process was ready)"
        )
        assert ctx.counts["llmCalls"] == 0 and cold.killed == 0  # it never ran; none killed
        # the worker started for it is kept: the next step, with time to spare, runs on it
        again = cold.run(
            engine, QUICK, "{}", RunContext(limits=StepLimits(), callbacks=answering())
        )
        assert again.outcome.output == '{"ok": 1}' and cold.killed == 0
    finally:
        cold.close()


def test_time_before_the_job_reaches_its_worker_counts_in_the_timeout(engine):
    clock = Clock()
    warm = ProcessSandbox(clock=clock)
    warm.warm()
    clock.slow_down()
    try:
        ctx = RunContext(limits=StepLimits(timeout_seconds=0.3), callbacks=answering())
        report = warm.run(engine, QUICK, "{}", ctx)
        assert report.outcome.kind is OutcomeKind.TIMEOUT, report.outcome
        assert "its worker process was killed" in report.outcome.message()
        assert ctx.counts["llmCalls"] == 0 and warm.killed == 1
    finally:
        warm.close()


def test_a_callback_bug_is_the_guests_error_and_the_worker_stays_usable(engine, processes):
    ctx = RunContext(limits=StepLimits(), callbacks=HostCallbacks(llm_complete=lambda r: b"bytes"))  # type: ignore[arg-type,return-value]
    report = processes.run(engine, wat.isolated_llm_caller(1).encode(), "{}", ctx)
    assert report.outcome.kind is OutcomeKind.AGENT_ERROR
    assert "host error: TypeError: the callback returned bytes" in report.outcome.detail
    ok = processes.run(
        engine,
        wat.isolated_llm_caller(1).encode(),
        "{}",
        RunContext(limits=StepLimits(), callbacks=HostCallbacks(llm_complete=lambda r: "{}")),
    )
    assert ok.outcome.ok


def test_workers_get_no_secrets_from_the_environment(monkeypatch):
    from sandbox.isolate import _worker_env

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    assert "OPENAI_API_KEY" not in _worker_env() and "PATH" in _worker_env()
