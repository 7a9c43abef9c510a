"""Running one step: a fresh store and instance, limits set before anything runs, typed outcome.

A trapped component instance is unusable, and a reused one would carry state between steps, so
every step gets its own :class:`wasmtime.Store` and instance (instantiation costs tens of
microseconds for a small component, about a millisecond for the Python runtime). The epoch
deadline is set *before* instantiation: components run guest code while instantiating.

The WASI context is empty: no arguments, no environment (it would leak the daemon's secrets),
no preopened directories, no sockets. stdout and stderr go to the step's log, capped.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

from wasmtime import Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, Instance, Linker, Variant

from sandbox.call import NO_RUN, run_export
from sandbox.context import RunContext
from sandbox.engine import TICK_SECONDS, SandboxEngine
from sandbox.limits import StepLimits
from sandbox.outcome import LimitKind, Outcome, OutcomeKind, StepReport

__all__ = ["HOST_INTERFACE", "PreparedStep", "deferred_free", "prepare_step", "run_step"]

HOST_INTERFACE = "agentflow:agent/host@0.1.0"


def _result(pair: tuple[bool, str]) -> Variant:
    ok, payload = pair
    return Variant("ok" if ok else "err", payload)


#: The step each thread is running: host functions find their context here. A step runs on
#: one thread from instantiation to its end, so this is exact (and needs no lock).
_current = threading.local()
_NO_STEP = RunContext(limits=StepLimits())  # never used for a real step


def _ctx() -> RunContext:
    ctx: RunContext | None = getattr(_current, "ctx", None)
    return ctx if ctx is not None else _NO_STEP


def _linker(engine: SandboxEngine) -> Linker:
    """This thread's linker for ``engine`` (building one costs ~0.1 ms: made once per thread).

    Host functions look up the running step's context in a thread-local, so one linker serves
    every step of the thread."""
    cached = getattr(_current, "linker", None)
    if cached is not None and cached[0] is engine:
        return cached[1]  # type: ignore[no-any-return]
    linker = Linker(engine.engine)
    linker.add_wasip2()
    with linker.root() as root, root.add_instance(HOST_INTERFACE) as host:
        host.add_func("llm-complete", lambda _s, req: _result(_ctx().llm_complete(req)))
        host.add_func("http-fetch", lambda _s, req: _result(_ctx().http_fetch(req)))
        host.add_func("log", lambda _s, level, msg: _ctx().append_log(f"[{level}] {msg}\n"))
        host.add_func("read-file", lambda _s, path: _result(_ctx().read_file(path)))
        host.add_func("write-file", lambda _s, path, data: _result(_ctx().write_file(path, data)))
        host.add_func("delete-file", lambda _s, path: _result(_ctx().delete_file(path)))
        host.add_func("list-files", lambda _s: _result(_ctx().list_files()))
        host.add_func("config", lambda _s: _ctx().config_json)
    _current.linker = (engine, linker)
    return linker


#: Cap on the detail kept from a failure (a guest chooses its error text).
MAX_DETAIL = 64 * 1024


def _cause(exc: Exception) -> str:
    """wasmtime's own reason: the text after the last "Caused by:". The backtrace before it
    holds function names, which a guest chooses, so it must never be matched."""
    text = str(exc).strip()
    cause = text.rsplit("Caused by:", 1)[-1] if "Caused by:" in text else text
    lines = [line.strip() for line in cause.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _classify(exc: Exception) -> Outcome:
    cause = _cause(exc)
    if cause == "wasm trap: interrupt":
        return Outcome(kind=OutcomeKind.TIMEOUT, detail="the step ran past its timeout")
    if cause.startswith("wasm trap: all fuel consumed"):
        return Outcome(kind=OutcomeKind.CPU_LIMIT, detail="the step used up its CPU (fuel) budget")
    if "exceeds memory limits" in cause or cause.lower().startswith("out of memory"):
        return Outcome(kind=OutcomeKind.MEMORY_LIMIT, detail=cause)
    return Outcome(kind=OutcomeKind.TRAP, detail=cause[:MAX_DETAIL])


class PreparedStep:
    """A fresh store and instance made ahead of a step (never reused across steps).

    :func:`prepare_step` does the costly part (store, linker, instantiation) so it can happen
    before the step is due; :meth:`run` then sets the deadline and fuel afresh and calls
    ``run``. ``bench/sandbox.py`` measures what this saves.
    """

    def __init__(
        self,
        engine: SandboxEngine,
        component: Component,
        ctx: RunContext,
        started: float,
    ) -> None:
        self.ctx = ctx
        self.engine = engine
        self.started = started
        self.failure: Outcome | None = None
        self.export = run_export(component)
        self.instance: Instance | None = None
        limits = ctx.limits
        store = Store(engine.engine)
        # One linear memory (the limit is per memory), few instances and tables, bounded
        # tables: the Python runtime needs 1 memory, <= 20 instances, <= 5 tables (measured).
        store.set_limits(
            memory_size=limits.memory_bytes,
            memories=1,
            instances=32,
            tables=8,
            table_elements=250_000,
        )
        store.set_fuel(limits.fuel)
        wasi = WasiConfig()  # nothing granted
        wasi.stdout_custom = ctx.capture
        wasi.stderr_custom = ctx.capture
        store.set_wasi(wasi)
        self._set_deadline(store)
        self.store = store
        self.used = False
        _current.ctx = ctx
        try:
            engine.enter()
            try:
                self.instance = _linker(engine).instantiate(store, component)
            finally:
                engine.leave()
        except WasmtimeError as exc:
            self.failure = _classify(exc)
        finally:
            _current.ctx = None

    def _set_deadline(self, store: Store) -> None:
        # rounded before the ceiling: 0.035 / 0.005 is 7.000000000000001, which is 7 ticks
        ticks = round(self.ctx.limits.timeout_seconds / TICK_SECONDS, 6)
        store.set_epoch_deadline(max(1, math.ceil(ticks)))

    def run(self, *args: str) -> StepReport:
        """Call ``run(*args)``; the timeout and fuel count from now. Once only."""
        if self.used:
            raise RuntimeError("a prepared step runs once")
        self.used = True
        limits, store = self.ctx.limits, self.store
        result: Any = None
        failure = self.failure
        if failure is None and self.instance is not None:
            self._set_deadline(store)
            store.set_fuel(limits.fuel)
            _current.ctx = self.ctx
            try:
                self.engine.enter()
                try:
                    result = self.export.call(self.instance, store, args)
                finally:
                    self.engine.leave()
            except WasmtimeError as exc:
                failure = _classify(exc)
            finally:
                _current.ctx = None
        elapsed = time.perf_counter() - self.started
        try:
            fuel_used = limits.fuel - store.get_fuel()
        except WasmtimeError:  # pragma: no cover - fuel is always on in our engine
            fuel_used = 0
        return StepReport(
            outcome=_outcome(self.ctx, failure, result),
            elapsed_seconds=elapsed,
            fuel_used=fuel_used,
            counts=dict(self.ctx.counts),
            log=self.ctx.log,
            log_truncated=self.ctx.log_truncated,
        )


def prepare_step(engine: SandboxEngine, component: Component, ctx: RunContext) -> PreparedStep:
    """A store and instance for one step of ``component`` under ``ctx.limits``, made now."""
    return PreparedStep(engine, component, ctx, time.perf_counter())


def run_step(
    engine: SandboxEngine,
    component: Component,
    input_json: str,
    ctx: RunContext,
    *,
    args: tuple[str, ...] | None = None,
) -> StepReport:
    """Run ``component``'s ``run(input)`` under ``ctx.limits``; never raises for agent faults.

    ``args`` replaces ``(input_json,)`` for worlds whose ``run`` takes more (the Python runtime
    takes the agent's source first).
    """
    prepared = PreparedStep(engine, component, ctx, time.perf_counter())
    report = prepared.run(*(args if args is not None else (input_json,)))
    parked: list[PreparedStep] | None = getattr(_current, "parked", None)
    if parked is not None:
        parked.append(prepared)  # freed when deferred_free's block ends
    return report


@contextlib.contextmanager
def deferred_free() -> Iterator[None]:
    """Steps that end in this block (on this thread) free their store and instance when the
    block ends, not as they end.

    Freeing a store unmaps its memory: ~40 µs for the smallest component, more for larger
    memories. A caller that passes a step's result on inside the block (commits it, sends it
    to another process) spends that time after the result is on its way, not before.
    """
    outer = getattr(_current, "parked", None)
    parked: list[PreparedStep] = []
    _current.parked = parked
    try:
        yield
    finally:
        _current.parked = outer
        parked.clear()


def _outcome(ctx: RunContext, failure: Outcome | None, result: Any) -> Outcome:
    if ctx.breach is not None:
        return Outcome(kind=OutcomeKind.LIMIT_EXCEEDED, limit=ctx.breach, detail=ctx.breach_detail)
    if ctx.denied is not None:
        return Outcome(kind=OutcomeKind.NETWORK_DENIED, detail=ctx.denied)
    if failure is not None:
        return failure
    if result is NO_RUN:
        return Outcome(kind=OutcomeKind.TRAP, detail="the component exports no run function")
    if not isinstance(result, Variant) or not isinstance(result.payload, str):
        return Outcome(kind=OutcomeKind.TRAP, detail="run returned something other than a result")
    if result.tag == "err":
        detail = result.payload[:MAX_DETAIL]
        if detail.startswith(MEMORY_MARKER):  # the Python runtime's own report
            return Outcome(kind=OutcomeKind.MEMORY_LIMIT, detail=detail)
        return Outcome(kind=OutcomeKind.AGENT_ERROR, detail=detail)
    if len(result.payload.encode("utf-8")) > ctx.limits.output_bytes:
        return Outcome(
            kind=OutcomeKind.LIMIT_EXCEEDED,
            limit=LimitKind.OUTPUT,
            detail=f"output is over {ctx.limits.output_bytes} bytes",
        )
    try:
        json.loads(result.payload, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):
        return Outcome(kind=OutcomeKind.AGENT_ERROR, detail="the output is not valid JSON")
    return Outcome(kind=OutcomeKind.OK, output=result.payload)


MEMORY_MARKER = "MemoryError: the agent ran out of memory"


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number that fits a float: 1e400 would become inf, which JSON cannot carry on
    (it would be written as Infinity, and PostgreSQL refuses it)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value
