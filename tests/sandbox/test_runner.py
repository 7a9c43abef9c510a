"""Steps in the sandbox: every outcome kind, limits enforced, the host stays healthy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import (
    HostCallbacks,
    HostCallError,
    LimitKind,
    OutcomeKind,
    RunContext,
    SandboxEngine,
    StepLimits,
    StepReport,
    run_step,
)
from sandbox.engine import TICK_SECONDS
from tests.sandbox import wat
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def engine() -> Iterator[SandboxEngine]:
    made = SandboxEngine()
    yield made
    made.close()


def run(engine: SandboxEngine, source: str, input_json: str = "{}", **limits: Any) -> StepReport:
    callbacks = limits.pop("callbacks", HostCallbacks())
    ctx = RunContext(limits=StepLimits(**limits), callbacks=callbacks)
    return run_step(engine, engine.load(source), input_json, ctx)


def test_echo(engine):
    report = run(engine, wat.ECHO, '{"task": "hi"}')
    assert report.outcome.ok and report.outcome.output == '{"task": "hi"}'
    assert report.outcome.message() == "ok" and report.fuel_used > 0


def test_log_is_captured(engine):
    report = run(engine, wat.LOGGING_ECHO, "hello")
    assert report.log == "[info] hello\n"


def test_log_is_capped(engine):
    report = run(engine, wat.LOGGING_ECHO, "x" * 5000, log_bytes=100)
    assert len(report.log.encode()) == 100 and report.log_truncated


def test_agent_error(engine):
    report = run(engine, wat.FAILING)
    assert report.outcome.kind is OutcomeKind.AGENT_ERROR
    assert report.outcome.message() == "agent-error: the agent broke"


def test_llm_calls_go_to_the_callback_and_are_counted(engine):
    seen = []

    def llm(request: str) -> str:
        seen.append(request)
        return json.dumps({"text": "answer"})

    report = run(
        engine, wat.llm_caller(3), '{"prompt": "q"}', callbacks=HostCallbacks(llm_complete=llm)
    )
    assert report.outcome.ok and json.loads(report.outcome.output or "") == {"text": "answer"}
    assert seen == ['{"prompt": "q"}'] * 3 and report.counts["llmCalls"] == 3


def test_a_failing_callback_is_an_err_for_the_guest_not_an_exception(engine):
    def llm(_request: str) -> str:
        raise HostCallError("provider down")

    report = run(engine, wat.llm_caller(1), callbacks=HostCallbacks(llm_complete=llm))
    assert (
        report.outcome.kind is OutcomeKind.AGENT_ERROR and report.outcome.detail == "provider down"
    )


def test_llm_call_limit(engine):
    report = run(
        engine, wat.llm_caller(10), llm_calls=3, callbacks=HostCallbacks(llm_complete=lambda r: r)
    )
    assert report.outcome.kind is OutcomeKind.LIMIT_EXCEEDED
    assert report.outcome.limit is LimitKind.LLM_CALLS
    assert report.outcome.message() == "limit exceeded: llmCalls (llmCalls limit of 3 reached)"
    assert report.counts["llmCalls"] == 10  # every attempt counted; calls past 3 were refused


def test_storage_and_file_operation_limits(engine):
    report = run(engine, wat.writer(1), "x" * 100, storage_bytes=50)
    assert (report.outcome.kind, report.outcome.limit) == (
        OutcomeKind.LIMIT_EXCEEDED,
        LimitKind.STORAGE,
    )
    report = run(engine, wat.writer(5), "small", file_operations=4)
    assert report.outcome.limit is LimitKind.FILE_OPERATIONS
    report = run(engine, wat.writer(5), '"small"')
    assert report.outcome.ok and report.counts["fileOperations"] == 5


def test_output_limit(engine):
    report = run(engine, wat.ECHO, "x" * 100, output_bytes=10)
    assert (report.outcome.kind, report.outcome.limit) == (
        OutcomeKind.LIMIT_EXCEEDED,
        LimitKind.OUTPUT,
    )


#: A ticker that wakes late makes one catch-up tick straight after the late one (never a
#: burst), so a deadline of n ticks cannot strike sooner than n - 2 tick lengths after it is set.
EARLIEST = 2 * TICK_SECONDS


def test_a_step_past_its_timeout_ends_as_timeout(engine):
    # 100 cores of fuel would last minutes: only the deadline can end these loops. How soon
    # after the deadline they end is measured by bench/sandbox.py ("timeout precision").
    for timeout in (0.1, 0.3):
        report = run(engine, wat.LOOP_FOREVER, timeout_seconds=timeout, cpu_millicores=100_000)
        assert report.outcome.kind is OutcomeKind.TIMEOUT, report.outcome
        assert report.outcome.message() == "timeout: the step ran past its timeout"
        assert report.elapsed_seconds >= timeout - EARLIEST  # never cut short (load only delays)


@pytest.fixture
def manual() -> Iterator[SandboxEngine]:
    """An engine without a ticker: its epoch moves only when the test moves it."""
    made = SandboxEngine(ticker=False)
    yield made
    made.close()


def ticking(engine: SandboxEngine) -> HostCallbacks:
    """Callbacks whose every LLM call advances ``engine``'s clock by one tick."""

    def llm(request: str) -> str:
        engine.engine.increment_epoch()
        return request

    return HostCallbacks(llm_complete=llm)


#: Calls the LLM (practically) for ever: with :func:`ticking` callbacks, the number of calls
#: made is the number of ticks the step ran.
CALLS_FOR_EVER = wat.llm_caller(10**9)


@pytest.mark.parametrize(
    ("timeout", "ticks"),
    # 0.035 / 0.005 is 7.000000000000001 in floating point: still 7 ticks, not 8
    [(0.1, 20), (0.3, 60), (0.0125, 3), (0.035, 7), (0.001, 1), (6.0, 1200)],
)
def test_the_deadline_is_the_timeout_in_ticks_rounded_up(manual, timeout, ticks):
    limits = {"timeout_seconds": timeout, "llm_calls": 10**6, "callbacks": ticking(manual)}
    report = run(manual, CALLS_FOR_EVER, **limits)
    assert report.outcome.kind is OutcomeKind.TIMEOUT, report.outcome
    assert report.counts["llmCalls"] == ticks  # struck at the tick that reached it, not later
    if ticks > 1:  # one tick fewer is still in time
        report = run(manual, wat.llm_caller(ticks - 1), '"done"', **limits)
        assert report.outcome.ok and report.counts["llmCalls"] == ticks - 1, report.outcome


def test_a_prepared_steps_deadline_counts_from_its_run_not_its_preparation(manual):
    from sandbox.runner import prepare_step

    ctx = RunContext(
        limits=StepLimits(timeout_seconds=0.1, llm_calls=10**6), callbacks=ticking(manual)
    )
    prepared = prepare_step(manual, manual.load(CALLS_FOR_EVER), ctx)
    for _ in range(1000):  # 5 s pass between preparing and running
        manual.engine.increment_epoch()
    report = prepared.run("{}")
    assert report.outcome.kind is OutcomeKind.TIMEOUT and report.counts["llmCalls"] == 20


def test_cpu_limit_is_fuel(engine):
    # 1m CPU for 10 s is 40M fuel, burnt in milliseconds: CPU_LIMIT, not TIMEOUT, says the
    # fuel ran out before the deadline
    report = run(engine, wat.burner(), timeout_seconds=10, cpu_millicores=1)
    assert report.outcome.kind is OutcomeKind.CPU_LIMIT
    assert report.fuel_used == StepLimits(timeout_seconds=10, cpu_millicores=1).fuel == 40_000_000
    assert report.outcome.message() == "cpu-limit: the step used up its CPU (fuel) budget"


def test_memory_limit(engine):
    report = run(engine, wat.MEMORY_HOG, memory_bytes=4 * 2**20)
    # memory.grow failing is visible to the guest only; this one then traps
    assert report.outcome.kind is OutcomeKind.TRAP
    assert "unreachable" in report.outcome.detail


def test_trap(engine):
    report = run(engine, wat.TRAPPING)
    assert report.outcome.kind is OutcomeKind.TRAP and "unreachable" in report.outcome.message()


def test_the_host_stays_healthy_after_every_failure(engine):
    cases: list[tuple[str, dict[str, Any]]] = [
        (wat.LOOP_FOREVER, {"timeout_seconds": 0.05}),
        (wat.burner(), {"cpu_millicores": 1, "timeout_seconds": 1}),
        (wat.TRAPPING, {}),
        (wat.MEMORY_HOG, {"memory_bytes": 2**20 * 2}),
    ]
    for source, limits in cases:
        run(engine, source, **limits)
    assert run(engine, wat.ECHO, '"still fine"').outcome.output == '"still fine"'


def test_output_must_be_json(engine):
    for bad in ("not json", '{"score": NaN}', "[" * 100_000, '{"score": 1e400}', "[-1e999]"):
        report = run(engine, wat.ECHO, bad)
        assert report.outcome.kind is OutcomeKind.AGENT_ERROR, bad[:20]
        assert report.outcome.detail == "the output is not valid JSON"


def test_trap_classification_ignores_guest_chosen_names():
    from sandbox.runner import _classify

    class Fake(Exception):
        pass

    text = (
        "error while executing at wasm backtrace:\n    0: 0x1 - Main!wasm trap: interrupt\n\n"
        "Caused by:\n    wasm trap: wasm `unreachable` instruction executed\n"
    )
    assert _classify(Fake(text)).kind is OutcomeKind.TRAP


def test_many_memories_are_refused(engine):
    # the memory limit applies per memory: more than one would multiply it
    report = run(
        engine, wat.component("(call $ok (local.get $p) (local.get $n))", extra="(memory 1)")
    )
    assert report.outcome.kind is not OutcomeKind.OK


def test_memory_over_the_limit_at_start(engine):
    report = run(engine, wat.BIG_MEMORY, memory_bytes=8 * 2**20)
    assert report.outcome.kind is OutcomeKind.MEMORY_LIMIT
    assert run(engine, wat.BIG_MEMORY, memory_bytes=32 * 2**20).outcome.ok


def test_eight_threads_each_get_their_own_outcomes(engine):
    """wasmtime-py passes host exceptions through a module-level variable; our host functions
    never raise, so no step can receive another's failure (8 threads x 500 steps)."""
    from concurrent.futures import ThreadPoolExecutor

    component = engine.load(wat.llm_caller(1))

    def fail(request: str) -> str:
        raise HostCallError(f"failed for {request}")

    def step(i: int) -> tuple[int, str]:
        ctx = RunContext(limits=StepLimits(), callbacks=HostCallbacks(llm_complete=fail))
        report = run_step(engine, component, f"step-{i}", ctx)
        return i, report.outcome.detail

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(step, range(4000)))
    wrong = [(i, detail) for i, detail in results if detail != f"failed for step-{i}"]
    assert wrong == []


def test_a_prepared_step_runs_once_with_its_limits(engine):
    from sandbox.runner import prepare_step

    prepared = prepare_step(engine, engine.load(wat.ECHO), RunContext(limits=StepLimits()))
    assert prepared.run('{"x": 1}').outcome.output == '{"x": 1}'
    with pytest.raises(RuntimeError, match="runs once"):
        prepared.run("{}")
    ctx = RunContext(limits=StepLimits(timeout_seconds=0.05, cpu_millicores=1_000_000))
    looping = prepare_step(engine, engine.load(wat.LOOP_FOREVER), ctx)
    report = looping.run("{}")
    assert report.outcome.kind is OutcomeKind.TIMEOUT


def test_the_epoch_ticks_only_while_code_runs():
    engine = SandboxEngine()
    try:
        ticking = []

        def llm(request: str) -> str:
            ticking.append(engine._wanted.is_set())
            return request

        first = run(engine, wat.llm_caller(1), "{}", callbacks=HostCallbacks(llm_complete=llm))
        assert first.outcome.ok and ticking == [True]  # in a call from running code
        # idle for IDLE_SECONDS: the ticker sleeps
        wait_for(lambda: not engine._wanted.is_set(), timeout=10, what="the ticker to sleep")
        # after an idle spell the ticker wakes (100 cores of fuel would outlast the test, so
        # TIMEOUT means it ticked), and the deadline counts from the step's start: no burst of
        # ticks for the time it slept cuts the step short
        late = run(engine, wat.LOOP_FOREVER, timeout_seconds=0.1, cpu_millicores=100_000)
        assert late.outcome.kind is OutcomeKind.TIMEOUT
        assert late.elapsed_seconds >= 0.1 - EARLIEST
    finally:
        engine.close()
    assert not engine._ticker.is_alive()  # close wakes a sleeping ticker


def test_deferred_free_keeps_a_steps_store_until_its_block_ends(engine):
    import weakref

    from sandbox import runner

    with runner.deferred_free():
        assert run(engine, wat.ECHO, '{"a": 1}').outcome.ok
        parked = runner._current.parked
        assert len(parked) == 1
        store = weakref.ref(parked[0].store)
        assert store() is not None  # not freed yet: the caller passes the result on first
    assert store() is None
    assert run(engine, wat.ECHO).outcome.ok  # outside a block nothing is kept
    assert getattr(runner._current, "parked", None) is None
