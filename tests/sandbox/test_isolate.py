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


def test_a_blocking_wait_ends_as_timeout_within_50_ms_of_the_deadline(engine, processes):
    ctx = RunContext(limits=StepLimits(timeout_seconds=0.2))
    started = time.monotonic()
    report = run_component(engine, wat.sleeper(30).encode(), "{}", ctx, processes)
    late = time.monotonic() - started - 0.2
    assert report.outcome.kind is OutcomeKind.TIMEOUT
    assert "worker process was killed" in report.outcome.message()
    assert 0 <= late < 0.05, late
    assert processes.killed == 1
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


def test_limits_apply_in_a_worker_as_in_process(engine, processes):
    ctx = RunContext(limits=StepLimits(timeout_seconds=0.1))
    looping = wat.LOOP_FOREVER.replace("(component", "(component" + wat._WASI_IMPORTS, 1)
    report = processes.run(engine, looping.encode(), "{}", ctx)
    assert report.outcome.kind is OutcomeKind.TIMEOUT
    assert "worker process was killed" not in report.outcome.message()  # the epoch stopped it
    assert processes.killed == 0


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
    cold = ProcessSandbox()
    try:
        ctx = RunContext(limits=StepLimits(timeout_seconds=0.3))
        started = time.monotonic()
        report = cold.run(engine, wat.sleeper(30).encode(), "{}", ctx)
        assert report.outcome.kind is OutcomeKind.TIMEOUT
        assert time.monotonic() - started - 0.3 < 0.05
    finally:
        cold.close()


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
