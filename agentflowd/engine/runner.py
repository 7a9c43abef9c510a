"""Running one step: its agent image in the sandbox, under the agent's limits, with its LLM calls
routed and its HTTP calls checked, every host call reported as it happens.

Blocking: the engine calls :meth:`StepRunner.run` on a worker thread. Images come from the
store by SHA-256 (the bytes that were reconciled, whatever git does later); Python agents run
in the shared python-runtime, components in-process or, when they can block in WASI, in a
killable worker process.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from agentflowd.llm import llm_callback
from agentflowd.manifest.model import Agent
from agentflowd.store import Store
from router import CallContext, ConfigError, RoutingPolicy, budget_limits, policy_for_agent
from router.router import Router
from sandbox import (
    HostCallbacks,
    HostCallError,
    HttpPolicy,
    OutcomeKind,
    RunContext,
    SandboxEngine,
    StepLimits,
    StepReport,
    make_http_fetch,
)
from sandbox.errors import SandboxError
from sandbox.isolate import ProcessSandbox, run_component
from sandbox.outcome import Outcome
from sandbox.python import PythonRuntime

__all__ = ["HostCall", "Isolation", "StepJob", "StepRunner", "TRANSIENT"]

#: Outcomes worth another attempt. Limits and policy refusals are not: they would fail again.
TRANSIENT = frozenset({OutcomeKind.TIMEOUT, OutcomeKind.AGENT_ERROR, OutcomeKind.TRAP})
#: Request and response text kept per host call in the journal.
HOST_CALL_TEXT = 4096


@dataclass(frozen=True, kw_only=True)
class HostCall:
    """An LLM or HTTP call a step made, for the execution's history."""

    kind: str  # "llm" | "http"
    request: str
    response: str
    ok: bool
    latency_ms: float


@dataclass(frozen=True, kw_only=True)
class StepJob:
    """Everything one attempt of one step needs."""

    execution_id: str
    workflow: str
    spec: dict[str, Any]  # the execution's workflow version (canonical form)
    agent: Agent
    image: dict[str, Any]  # {path, kind, sha256, size}
    input_json: str
    attempt: int
    deadline: float  # monotonic: the execution's deadline
    on_host_call: Callable[[HostCall], None] = field(default=lambda _call: None)


#: Where component agents run: ``process`` in the sandbox's worker processes (a step costs an
#: IPC round trip, ~0.15 ms, but its Python-side work leaves the daemon's GIL, and a crash or a
#: hang of the module cannot take the daemon with it); ``thread`` in the daemon (the lowest
#: latency, but every wasmtime call takes the GIL: under load the step threads, the event loop
#: and the journal queue for it); ``auto`` in the daemon when no other step is running, else
#: in a worker process that is idle (none idle: in the daemon, while more start in the
#: background). Components that can block in WASI always run in a worker process;
#: Python agents always run in the daemon.
Isolation = Literal["auto", "process", "thread"]


class StepRunner:
    """Runs steps; thread-safe (one per daemon)."""

    def __init__(
        self,
        *,
        store: Store,
        router: Callable[[], Router],
        sandbox: SandboxEngine,
        processes: ProcessSandbox,
        python: PythonRuntime,
        today: Callable[[], date],
        max_images: int = 64,
        isolation: Isolation = "auto",
    ) -> None:
        self.store = store
        self.router = router  # the current router (SIGHUP may replace it)
        self.sandbox = sandbox
        self.processes = processes
        self.python = python
        self.today = today
        self.max_images = max_images
        self.isolation = isolation
        self._in_flight = 0  # steps being run now (for "auto")
        self._images: OrderedDict[str, bytes] = OrderedDict()
        self._policies: OrderedDict[tuple[str, str], RoutingPolicy] = OrderedDict()
        self._lock = threading.Lock()

    def image(self, sha256: str) -> bytes:
        """An image's content, from memory or the store."""
        with self._lock:
            if sha256 in self._images:
                self._images.move_to_end(sha256)
                return self._images[sha256]
        content = self.store.get_image(sha256).content
        with self._lock:
            self._images[sha256] = content
            while len(self._images) > self.max_images:
                self._images.popitem(last=False)
        return content

    def run(self, job: StepJob) -> StepReport:
        """One attempt; never raises for the agent's faults (they are outcomes)."""
        with self._lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            return self._run(job, alone)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _run(self, job: StepJob, alone: bool) -> StepReport:
        agent = job.agent
        remaining = job.deadline - time.monotonic()
        timeout = min(agent.resources.timeout.total_seconds(), remaining)
        if timeout <= 0:
            return _report(OutcomeKind.TIMEOUT, "the execution's deadline has passed")
        limits = StepLimits(
            memory_bytes=int(agent.resources.memory),
            timeout_seconds=timeout,
            cpu_millicores=int(agent.resources.cpu),
            storage_bytes=int(agent.resources.storage),
            llm_calls=agent.limits.llm_calls,
            network_requests=agent.limits.network_requests,
            file_operations=agent.limits.file_operations,
        )
        step_deadline = time.monotonic() + timeout
        try:
            ctx = RunContext(
                limits=limits,
                callbacks=self._callbacks(job, step_deadline),
                config_json=json.dumps(
                    {
                        "workflow": job.workflow,
                        "execution": job.execution_id,
                        "agent": agent.name,
                        "attempt": job.attempt,
                        "idempotency_key": f"{job.execution_id}:{agent.name}",
                    }
                ),
            )
            digest = job.image["sha256"]
            content = self.image(digest)
            if job.image.get("kind") == "wasm":
                key = self.sandbox.key_for_digest(digest)
                if self.isolation == "process":
                    return self.processes.run(self.sandbox, content, job.input_json, ctx, key=key)
                if self.isolation == "auto" and not alone:  # on an idle worker, if one is
                    ran = self.processes.try_run(
                        self.sandbox, content, job.input_json, ctx, key=key
                    )
                    if ran is not None:
                        return ran
                return run_component(
                    self.sandbox, content, job.input_json, ctx, self.processes, key=key
                )
            return self.python.run(content.decode("utf-8"), job.input_json, ctx)
        except SandboxError as exc:
            return _report(OutcomeKind.TRAP, f"the sandbox could not run the step: {exc}")
        except Exception as exc:  # the image is gone from the store, a bug: the step's failure
            return _report(OutcomeKind.TRAP, f"{type(exc).__name__}: {exc}")

    def _policy(self, job: StepJob) -> RoutingPolicy:
        """The agent's compiled routing, once per execution (its spec never changes)."""
        key = (job.execution_id, str(job.agent.name))
        with self._lock:
            found = self._policies.get(key)
            if found is not None:
                self._policies.move_to_end(key)
                return found
        policy = policy_for_agent(job.spec, str(job.agent.name))
        with self._lock:
            self._policies[key] = policy
            while len(self._policies) > 1024:
                self._policies.popitem(last=False)
        return policy

    def _callbacks(self, job: StepJob, deadline: float) -> HostCallbacks:
        """The step's host callbacks, each made at its first call (many steps make none)."""
        made: dict[str, Callable[[str], str]] = {}

        def lazy(kind: str, make: Callable[[], Callable[[str], str]]) -> Callable[[str], str]:
            def call(request: str) -> str:
                fn = made.get(kind)
                if fn is None:
                    try:
                        real = make()
                    except Exception as exc:  # a bug of ours: the call fails, journaled
                        real = _refuse(f"host error: {type(exc).__name__}: {exc}")
                    fn = made[kind] = _journaled(kind, real, job.on_host_call)
                return fn(request)

            return call

        return HostCallbacks(
            llm_complete=lazy("llm", lambda: self._llm(job, deadline)),
            http_fetch=lazy("http", lambda: self._http(job, deadline)),
        )

    def _llm(self, job: StepJob, deadline: float) -> Callable[[str], str]:
        agent = job.agent
        budgets = budget_limits(
            job.spec, name=job.workflow, execution=job.execution_id, today=self.today()
        )
        context = CallContext(
            workflow=job.workflow,
            agent=str(agent.name),
            execution=job.execution_id,
            step=f"{agent.name}#{job.attempt}",
            budgets=budgets,
            deadline=deadline,
        )
        try:
            return llm_callback(self.router(), self._policy(job), lambda: context)
        except ConfigError as exc:
            return _refuse(f"this agent cannot call an LLM: {exc}")

    def _http(self, job: StepJob, deadline: float) -> Callable[[str], str]:
        return make_http_fetch(
            HttpPolicy(allow=tuple(job.agent.network.allow)),
            remaining_seconds=lambda: deadline - time.monotonic(),
        )


def _journaled(
    kind: str, fn: Callable[[str], str], report: Callable[[HostCall], None]
) -> Callable[[str], str]:
    def call(request: str) -> str:
        started = time.perf_counter()
        try:
            response = fn(request)
        except Exception as exc:
            report(
                HostCall(
                    kind=kind,
                    request=request[:HOST_CALL_TEXT],
                    response=str(exc)[:HOST_CALL_TEXT],
                    ok=False,
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            )
            raise
        report(
            HostCall(
                kind=kind,
                request=request[:HOST_CALL_TEXT],
                response=response[:HOST_CALL_TEXT],
                ok=True,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        )
        return response

    return call


def _refuse(message: str) -> Callable[[str], str]:
    def refuse(_request: str) -> str:
        raise HostCallError(message)

    return refuse


def _report(kind: OutcomeKind, detail: str) -> StepReport:
    return StepReport(outcome=Outcome(kind=kind, detail=detail), elapsed_seconds=0.0, fuel_used=0)
