"""Steps in killable worker processes, for components that can block inside WASI.

Epoch interruption stops a step only while it runs WebAssembly. A component that calls WASI's
blocking waits (``wasi:io/poll``: ``poll``, ``pollable.block`` on a clock, so C's ``sleep`` or a
JavaScript timer) sits in wasmtime's native code until the wait ends, past any deadline; and a
wasmtime-py linker cannot replace those functions (measured: shadowing ``wasi:io/poll`` breaks
its ``pollable`` resource type for every other WASI interface). So such components run in a
worker process (:mod:`sandbox.worker`) that the host kills at the deadline (plus
``grace_seconds``): the step ends as Timeout on time, and the worker is replaced.

Components that import no ``wasi:io/poll`` cannot block and run in-process, as does the Python
runtime, whose ``time.sleep`` spins (:mod:`sandbox.pyruntime.agentflow_guest`).

LLM and HTTP calls of a worker's step are answered here, by the step's own callbacks, so the
router, budgets and HTTP policy stay in the host; limits are counted in the worker exactly as
in-process. Scratch files stay in the worker (they live for one step).
"""

from __future__ import annotations

import json
import logging
import math
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from wasmtime.component import Component

from sandbox.context import HostCallError, NetworkDenied, RunContext
from sandbox.engine import SandboxEngine
from sandbox.errors import SandboxError
from sandbox.outcome import LimitKind, Outcome, OutcomeKind, StepReport
from sandbox.runner import run_step

__all__ = ["ProcessSandbox", "blocking_imports", "run_component"]

log = logging.getLogger(__name__)

#: How long a new worker may take to start (import wasmtime, make its engine).
START_SECONDS = 60.0
#: Components a worker keeps loaded (least recently used go first; a Python runtime is ~40 MB).
MAX_LOADED = 8
#: The environment a worker gets: no keys or tokens of the daemon's.
_ENV_KEEP = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "AGENTFLOW_CACHE_DIR")


def _worker_env() -> dict[str, str]:
    return {k: v for k in _ENV_KEEP if (v := os.environ.get(k)) is not None}


def blocking_imports(engine: SandboxEngine, component: Component) -> list[str]:
    """The WASI interfaces through which ``component`` could block its thread."""
    return _blocking(component.type.imports(engine.engine))


def _blocking(names: Iterable[str]) -> list[str]:
    return sorted(name for name in names if name.startswith("wasi:io/poll@"))


def run_component(
    engine: SandboxEngine,
    wasm: bytes,
    input_json: str,
    ctx: RunContext,
    processes: ProcessSandbox,
    *,
    args: tuple[str, ...] | None = None,
    key: str | None = None,
) -> StepReport:
    """Run a user's component: in-process when it cannot block, else in a worker process.

    ``key`` is ``engine.cache_key(wasm)`` when the caller knows it (saves hashing)."""
    component, imports = engine.load_with_imports(wasm, key=key)
    if _blocking(imports):
        return processes.run(engine, wasm, input_json, ctx, args=args, key=key)
    return run_step(engine, component, input_json, ctx, args=args)


class _Worker:
    def __init__(self, cache_dir: Path | None) -> None:
        parent, child = socket.socketpair()
        with child:
            self.proc = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [
                    sys.executable,
                    "-m",
                    "sandbox.worker",
                    str(child.fileno()),
                    str(cache_dir) if cache_dir else "-",
                ],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=_worker_env(),
            )
        self.conn = Connection(parent.detach())
        # one poll object per worker: Connection.poll builds a selector on every call
        self._poll = select.poll()
        self._poll.register(self.conn.fileno(), select.POLLIN)
        # components the worker holds, least recently used first; it evicts in the same order
        self.known: OrderedDict[str, None] = OrderedDict()
        self.started = False

    def holds(self, key: str) -> bool:
        """Whether the worker has ``key`` loaded; marks it used (as the worker does)."""
        if key in self.known:
            self.known.move_to_end(key)
            return True
        self.known[key] = None
        while len(self.known) > MAX_LOADED:
            self.known.popitem(last=False)
        return False

    def readable(self, seconds: float) -> bool:
        """Whether a message (or EOF) arrives within ``seconds``."""
        return bool(self._poll.poll(max(0, math.ceil(seconds * 1000))))

    def wait_started(self, seconds: float = START_SECONDS) -> bool:
        """Wait up to ``seconds`` for the worker's first message; False when it is late."""
        if self.started:
            return True
        if not self.readable(seconds):
            return False
        try:
            self.conn.recv_bytes()
        except (EOFError, OSError) as exc:
            self.kill()
            raise SandboxError("the sandbox worker process exited while starting") from exc
        self.started = True
        return True

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()  # reaped: no zombie
        self.conn.close()

    def close(self) -> None:
        if not self.started:  # still importing: nothing to finish
            self.kill()
            return
        self.conn.close()  # the worker exits on EOF
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()


class ProcessSandbox:
    """A small pool of worker processes. Thread-safe: each step takes a worker of its own.

    ``clock`` (monotonic seconds) places the deadlines: a step's deadline is ``clock()`` at its
    start plus its timeout, and the pool waits for a worker, or for its report, until ``clock()``
    passes it. Tests pass a fake one to make a worker's start take as long as they need."""

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        grace_seconds: float = 0.02,
        max_idle: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache_dir = cache_dir
        self._clock = clock
        self.grace_seconds = grace_seconds
        self.max_idle = max_idle
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._compiled: OrderedDict[str, None] = OrderedDict()  # keys engine.load has seen
        self.killed = 0  # workers killed at a deadline (for metrics and tests)
        self.runs = 0  # steps run in workers (for metrics and tests)
        self._prestarting = False

    def busy_pids(self) -> list[int]:
        """Process ids of the workers running a step now."""
        with self._lock:
            return [w.proc.pid for w in self._busy]

    def close(self) -> None:
        """Stop every worker (a busy one is killed: its step ends as a Trap)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for worker in idle:
            worker.close()
        for worker in busy:
            worker.kill()

    def warm(self, count: int = 1) -> None:
        """Start ``count`` workers now (side by side), so steps do not wait for them."""
        with self._lock:
            count = min(count, self.max_idle) - len(self._idle) - len(self._busy)
        started: list[_Worker] = []
        ends = self._clock() + START_SECONDS
        try:
            # (extend keeps the workers made before one that fails to start: they get killed)
            started.extend(_Worker(self.cache_dir) for _ in range(max(0, count)))
            for worker in started:
                if not worker.wait_started(ends - self._clock()):
                    raise SandboxError("the sandbox worker process did not start")
        except BaseException:
            for worker in started:
                worker.kill()
            raise
        for worker in started:
            self._release(worker)

    def _take(self, ends: float) -> _Worker | None:
        """An idle worker, or a new one; None when none is ready by ``ends``."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self.cache_dir)
        with self._lock:
            self._busy.add(worker)
        try:
            ready = worker.wait_started(ends - self._clock())
        except BaseException:
            self._forget(worker)
            raise
        if not ready:  # still starting: keep it for the next step, which will need one
            self._release(worker)
            return None
        return worker

    def _replace(self) -> None:
        """Start a worker for the one just killed; it gets ready while the host goes on."""
        with self._lock:
            if self._closed or len(self._idle) >= self.max_idle:
                return
        try:
            worker = _Worker(self.cache_dir)
        except OSError:
            return  # the next step starts one itself, and reports why if it cannot
        self._release(worker)

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(worker)
                return
        worker.close()

    def run(
        self,
        engine: SandboxEngine,
        wasm: bytes,
        input_json: str,
        ctx: RunContext,
        *,
        args: tuple[str, ...] | None = None,
        key: str | None = None,
    ) -> StepReport:
        """Run ``wasm`` as :func:`sandbox.runner.run_step` would, in a worker process.

        ``engine`` compiles (and caches) the component first, so a worker only loads it.
        ``key`` is ``engine.cache_key(wasm)`` when the caller has it (it saves hashing).
        """
        started = time.perf_counter()
        ends = self._clock() + ctx.limits.timeout_seconds  # one deadline, from now
        key = self._compile(engine, wasm, key)
        worker = self._take(ends)
        if worker is None:
            return _report(
                Outcome(
                    kind=OutcomeKind.TIMEOUT,
                    detail="the step ran past its timeout (no sandbox worker process was ready)",
                ),
                started,
                ctx,
            )
        return self._run_on(worker, engine, wasm, key, input_json, ctx, args, started, ends)

    def try_run(
        self,
        engine: SandboxEngine,
        wasm: bytes,
        input_json: str,
        ctx: RunContext,
        *,
        key: str | None = None,
    ) -> StepReport | None:
        """As :meth:`run`, on a worker that is idle now; None (and nothing done) when no worker
        is idle, after asking for ``max_idle`` workers to be started in the background."""
        started = time.perf_counter()
        ends = self._clock() + ctx.limits.timeout_seconds
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is not None:
                self._busy.add(worker)
        if worker is None:
            self._prestart()
            return None
        try:
            key = self._compile(engine, wasm, key)
        except BaseException:
            self._release(worker)
            raise
        return self._run_on(worker, engine, wasm, key, input_json, ctx, None, started, ends)

    def _prestart(self) -> None:
        """Start workers up to ``max_idle`` on a thread of their own (once at a time)."""
        with self._lock:
            if self._closed or self._prestarting:
                return
            self._prestarting = True

        def start() -> None:
            try:
                self.warm(self.max_idle)
            except Exception:  # the next step that needs one starts it and reports why
                log.warning("cannot start sandbox worker processes", exc_info=True)
            finally:
                with self._lock:
                    self._prestarting = False

        threading.Thread(target=start, name="agentflow-sandbox-prestart", daemon=True).start()

    def _compile(self, engine: SandboxEngine, wasm: bytes, key: str | None) -> str:
        """``wasm``'s cache key, compiled (errors surface here; workers find the cache warm)."""
        with self._lock:
            self.runs += 1
        if key is None:
            key = engine.cache_key(wasm)
        if key not in self._compiled:
            engine.load(wasm)
            with self._lock:
                self._compiled[key] = None
                while len(self._compiled) > 1024:
                    self._compiled.popitem(last=False)
        return key

    def _run_on(
        self,
        worker: _Worker,
        engine: SandboxEngine,
        wasm: bytes,
        key: str,
        input_json: str,
        ctx: RunContext,
        args: tuple[str, ...] | None,
        started: float,
        ends: float,
    ) -> StepReport:
        remaining = max(0.001, ends - self._clock())
        job = {
            "op": "run",
            "key": key,
            "wasm_follows": not worker.holds(key),
            "input": input_json,
            "limits": {**vars(ctx.limits), "timeout_seconds": remaining},  # flat: no asdict
            "config": ctx.config_json,
            "args": list(args) if args is not None else None,
        }
        try:
            worker.conn.send_bytes(json.dumps(job).encode())
            if job["wasm_follows"]:
                worker.conn.send_bytes(wasm)
            report = self._serve(worker, ctx, ends + self.grace_seconds)
        except (EOFError, OSError):
            worker.kill()
            code = worker.proc.returncode
            self._forget(worker)
            return _report(
                Outcome(
                    kind=OutcomeKind.TRAP,
                    detail=f"the sandbox worker process died (exit status {code})",
                ),
                started,
                ctx,
            )
        except BaseException:  # our own error (or the caller's interrupt): never reuse it
            worker.kill()
            self._forget(worker)
            raise
        if report is None:  # killed at its deadline
            self.killed += 1
            worker.kill()
            self._forget(worker)
            self._replace()
            return _report(
                Outcome(
                    kind=OutcomeKind.TIMEOUT,
                    detail="the step ran past its timeout (blocked in a WASI wait; "
                    "its worker process was killed)",
                ),
                started,
                ctx,
            )
        self._release(worker)
        return report

    def _serve(self, worker: _Worker, ctx: RunContext, deadline: float) -> StepReport | None:
        """Answer the worker's host calls until it is done; None when ``deadline`` passed."""
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0 or not worker.readable(remaining):
                return None
            message: dict[str, Any] = json.loads(worker.conn.recv_bytes())
            op = message.get("op")
            if op == "call":
                reply = _answer(ctx, message["kind"], message["request"])
                worker.conn.send_bytes(json.dumps(reply).encode())
                # time spent here is the host's: the worker's own epoch deadline still holds
                deadline = max(deadline, self._clock() + self.grace_seconds)
            elif op == "done":
                return _from_done(message, ctx)
            elif op == "error":
                raise SandboxError(str(message.get("message")))
            else:
                raise SandboxError(f"unexpected message from the sandbox worker: {op!r}")


def _answer(ctx: RunContext, kind: str, request: str) -> dict[str, Any]:
    ctx.counts[
        LimitKind.LLM_CALLS.value if kind == "llm" else LimitKind.NETWORK_REQUESTS.value
    ] += 1
    fn = ctx.callbacks.llm_complete if kind == "llm" else ctx.callbacks.http_fetch
    try:
        result = fn(request)
        if not isinstance(result, str):
            raise TypeError(f"the callback returned {type(result).__name__}, not text")
        return {"ok": True, "payload": result}
    except NetworkDenied as exc:
        if ctx.denied is None:
            ctx.denied = str(exc)
        return {"ok": False, "denied": True, "payload": str(exc)}
    except HostCallError as exc:
        return {"ok": False, "payload": str(exc)}
    except Exception as exc:  # a callback's bug is the guest's error value, as in-process
        return {"ok": False, "payload": f"host error: {type(exc).__name__}: {exc}"}


def _from_done(message: dict[str, Any], ctx: RunContext) -> StepReport:
    limit = message.get("limit")
    ctx.counts.update(message["counts"])
    ctx.append_log(message["log"])
    return StepReport(
        outcome=Outcome(
            kind=OutcomeKind(message["kind"]),
            output=message.get("output"),
            detail=message.get("detail") or "",
            limit=LimitKind(limit) if limit else None,
        ),
        elapsed_seconds=float(message["elapsed"]),
        fuel_used=int(message["fuel"]),
        counts=dict(message["counts"]),
        log=message["log"],
        log_truncated=bool(message["log_truncated"]) or ctx.log_truncated,
    )


def _report(outcome: Outcome, started: float, ctx: RunContext) -> StepReport:
    return StepReport(
        outcome=outcome,
        elapsed_seconds=time.perf_counter() - started,
        fuel_used=0,
        counts=dict(ctx.counts),
        log=ctx.log,
        log_truncated=ctx.log_truncated,
    )
