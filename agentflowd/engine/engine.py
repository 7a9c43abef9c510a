"""Executions: a workflow's DAG run step by step in the sandbox, durably.

The engine lives on the daemon's event loop; steps run on a bounded thread pool. Every
transition goes to the :class:`~agentflowd.engine.journal.Journal` (an event plus the state it
sets, group-committed). The rules:

* a step starts when every step it depends on has succeeded; it gets
  ``{"input": <execution input>, "steps": {<dependency>: <its output>}}``;
* a step's success is durable before its dependents start, so a completed step never runs
  again; a step that was running when the daemon died runs again on restart (at-least-once; its
  ``idempotency_key`` ``EXECUTION:STEP`` is in its config);
* a failed step (after its retries: exponential, linear or fixed backoff with jitter, only for
  transient outcomes) fails the execution: steps not started are skipped, running ones finish;
* ``defaultTimeout`` is the execution's deadline: no step runs past it (step timeouts are cut
  to what is left);
* ``maxConcurrentExecutions`` queues further executions of the workflow, in order;
* cancel stops scheduling; running steps end within their own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from agentflowd.engine.journal import (
    Change,
    ExecutionRecord,
    Journal,
    RawJson,
    StepRecord,
    Then,
)
from agentflowd.engine.runner import TRANSIENT, HostCall, StepJob, StepRunner
from agentflowd.engine.workers import StepThreads
from agentflowd.errors import ConflictError, NotFound
from agentflowd.manifest.model import Agent, Backoff, Workflow
from agentflowd.store import Store, StoredWorkflow
from sandbox import OutcomeKind, StepReport
from sandbox.runner import deferred_free

__all__ = ["Engine", "EngineObserver", "TERMINAL"]

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
#: How long a start may use the workflow it read last (changes made through this daemon's own
#: store are seen at once; this bounds what another process's writes take to be seen).
STORED_SECONDS = 1.0


class EngineObserver:
    """What the engine reports as it goes (the daemon turns it into metrics); does nothing."""

    def execution_started(self, trigger: str) -> None:
        """An execution was created."""

    def execution_finished(self, trigger: str, result: str, seconds: float) -> None:
        """An execution ended."""

    def queue_wait(self, seconds: float) -> None:
        """A queued execution got its slot."""

    def step_finished(self, result: str, seconds: float) -> None:
        """A step attempt ended (succeeded, failed, retrying)."""

    def active(self, running: int, queued: int, busy_workers: int) -> None:
        """How much is in progress now."""


def new_execution_id(now: datetime) -> str:
    """Sortable by creation time, unique: 12 hex digits of milliseconds, 12 random."""
    return f"{int(now.timestamp() * 1000):012x}{secrets.token_hex(6)}"


@dataclass
class _Run:
    """An execution the engine is driving."""

    record: ExecutionRecord
    workflow: Workflow
    agents: dict[str, Agent]
    states: dict[str, str]
    attempts: dict[str, int]
    outputs: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # outputs as JSON text (see payload)
    input_text: str | None = None
    running: set[str] = field(default_factory=set)
    deadline: float = 0.0  # monotonic
    stop: str | None = None  # why nothing more is scheduled: failed, cancelled, timed_out
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    recorded: asyncio.Event = field(default_factory=asyncio.Event)  # its end's commit is over
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    creating: bool = False  # its rows are being written: nothing may be scheduled yet
    unrecorded: BaseException | None = None  # why its end could not be committed

    @property
    def id(self) -> str:
        return self.record.id

    def text(self, name: str) -> str:
        """Step ``name``'s output as JSON text: as its agent returned it, or encoded once."""
        found = self.texts.get(name)
        if found is None:
            found = self.texts[name] = json.dumps(self.outputs.get(name))
        return found

    def outputs_text(self, names: Iterable[str]) -> str:
        """``{name: output}`` of steps ``names`` as JSON text, their outputs spliced in as the
        text their agents returned: a large output is never encoded again."""
        return "{" + ", ".join(f"{json.dumps(n)}: {self.text(n)}" for n in names) + "}"

    def payload(self, depends_on: Iterable[str]) -> str:
        """What a step gets: ``{"input": ..., "steps": {dependency: output}}`` as JSON text."""
        if self.input_text is None:
            self.input_text = json.dumps(self.record.input)
        return f'{{"input": {self.input_text}, "steps": {self.outputs_text(depends_on)}}}'

    def ready(self) -> list[str]:
        """Pending steps whose dependencies have all succeeded."""
        return [
            name
            for name, agent in self.agents.items()
            if self.states[name] == "pending"
            and all(self.states[d] == "succeeded" for d in agent.depends_on)
        ]


class Engine:
    """Starts, drives, resumes and cancels executions."""

    def __init__(
        self,
        *,
        store: Store,
        journal: Journal,
        runner: StepRunner,
        clock: Callable[[], datetime],
        workers: int = 4,
        observer: EngineObserver | None = None,
    ) -> None:
        self.observer = observer or EngineObserver()
        self.store = store
        self.journal = journal
        self.runner = runner
        self.clock = clock
        self.workers = workers
        self._runs: dict[str, _Run] = {}
        self._queued: dict[str, list[str]] = {}  # workflow -> execution ids waiting, in order
        self._threads: StepThreads[tuple[StepJob, _Run], tuple[_Run, str, int]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._tick: asyncio.Future[None] | None = None  # made when someone waits for a commit
        self._models: dict[tuple[str, str], Workflow] = {}
        # name -> (workflows_epoch, when read, the read): see _workflow
        self._stored: dict[str, tuple[int, float, asyncio.Future[StoredWorkflow]]] = {}
        self._running: dict[str, set[str]] = {}  # workflow -> ids of its running executions
        self._busy = 0  # steps on the worker threads now
        self._finished: dict[str, _Run] = {}  # the last executions to finish, oldest first

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> int:
        """Resume every execution a previous run left unfinished; returns how many."""
        self._loop = loop = asyncio.get_running_loop()
        self._threads = StepThreads(self.workers, self._work, self._delivered, loop)

        def committed(thens: list[tuple[Then, BaseException | None]]) -> None:
            # from the committing thread: wake the loop only when something waits for it
            if thens or self._tick is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    loop.call_soon_threadsafe(self._committed, thens)

        self.journal.on_commit = committed
        unfinished = await self._db(self.journal.unfinished)
        for record in unfinished:
            await self._resume(record)
        return len(unfinished)

    async def close(self) -> None:
        """Stop scheduling; wait briefly for running steps (they are re-run after a restart)."""
        self._closing = True  # (what commits still runs its callbacks on the loop)
        for run in self._runs.values():
            for timer in run.timers:
                timer.cancel()
        if self._threads is not None:
            self._threads.close()

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # -- starting ------------------------------------------------------------------------------

    async def run(
        self,
        workflow: str,
        input: Any = None,
        *,
        trigger: str = "manual",
        key: str | None = None,
    ) -> ExecutionRecord:
        """Start an execution of ``workflow``'s applied version (queued when at its limit).

        With a ``key`` (a cron slot, a webhook delivery), a second start with the same key
        returns the first execution instead of starting another.
        """
        stored = await self._workflow(workflow)
        if stored.suspended and trigger != "manual":
            raise ConflictError(f"workflow {workflow!r} is suspended", workflow=workflow)
        spec = self._parsed(workflow, stored.spec_hash, stored.spec)
        now = self.clock()
        busy = len(self._running.get(workflow, ()))
        queued = bool(self._queued.get(workflow))
        limit = spec.spec.config.max_concurrent_executions
        state = "running" if busy < limit and not queued else "queued"
        timeout = spec.spec.config.default_timeout
        assert isinstance(timeout, timedelta)
        record = ExecutionRecord(
            id=new_execution_id(now),
            workflow=workflow,
            generation=stored.generation,
            spec=stored.spec,
            images=stored.images,
            state=state,
            trigger=trigger,
            trigger_key=key,
            input=input,
            output=None,
            error=None,
            created_at=now,
            started_at=now if state == "running" else None,
            finished_at=None,
            deadline_at=now + timeout,
        )
        steps = [
            StepRecord(
                execution_id=record.id,
                step=str(agent.name),
                state="pending",
                attempt=0,
                image=str(agent.image),
                image_sha256=(stored.images.get(str(agent.image)) or {}).get("sha256"),
                output=None,
                error=None,
                log=None,
                started_at=None,
                finished_at=None,
                next_attempt_at=None,
            )
            for agent in spec.spec.agents
        ]
        first = Change(
            execution_id=record.id,
            type=f"execution.{state}",
            at=now,
            data={"trigger": trigger, "generation": stored.generation, "key": key},
        )
        # take the slot (or the place in the queue) now, before the write yields to the loop:
        # concurrent starts must not all see the same free slot
        run = self._track(record, spec)
        if state == "queued":
            self._queued.setdefault(workflow, []).append(record.id)
        run.creating = True
        first.create = (record, steps)
        created: BaseException | None = None  # the error when the trigger key was taken
        try:
            await self._durable([first])
        except BaseException as exc:
            if not self.journal.duplicate(record, exc):
                self._untrack(run)
                raise
            created = exc
        run.creating = False
        if created is not None:
            self._untrack(run)
            existing = await self._db(self.journal.by_trigger_key, key)
            if existing is None:  # an integrity error of another kind: not a duplicate
                raise created
            return existing  # type: ignore[no-any-return]
        self.observer.execution_started(trigger)
        if state == "queued":
            self._dequeue(workflow)  # a slot may have freed while it was written
        else:
            self._schedule(run)
        self._report_active()
        return record

    async def _workflow(self, name: str) -> StoredWorkflow:
        """The stored workflow, from memory while this process has changed no workflow, for
        up to :data:`STORED_SECONDS` (what another process writes is seen within that).

        Starts that arrive together (a burst of webhooks) share one read: the cache holds the
        read's future from the moment it is asked for."""
        epoch = self.store.workflows_epoch  # read before the row: a later write is noticed
        now = time.monotonic()
        found = self._stored.get(name)
        if found is None or found[0] != epoch or now - found[1] >= STORED_SECONDS:
            if len(self._stored) > 10_000:
                self._stored.clear()
            loop = asyncio.get_running_loop()
            reading = loop.run_in_executor(None, self.store.get_workflow, name)
            found = (epoch, now, reading)
            self._stored[name] = found
            reading.add_done_callback(functools.partial(self._read_done, name, found))
        return await asyncio.shield(found[2])

    def _read_done(
        self, name: str, entry: tuple[int, float, asyncio.Future[StoredWorkflow]], _f: Any
    ) -> None:
        """A failed read is not kept: the next start reads again."""
        if entry[2].cancelled() or entry[2].exception() is not None:
            if self._stored.get(name) is entry:
                del self._stored[name]

    def _report_active(self) -> None:
        running = sum(len(ids) for ids in self._running.values())  # per workflow: small
        self.observer.active(running, len(self._runs) - running, self._busy)

    def _untrack(self, run: _Run) -> None:
        for timer in run.timers:
            timer.cancel()
        self._runs.pop(run.id, None)
        self._running.get(run.record.workflow, set()).discard(run.id)
        waiting = self._queued.get(run.record.workflow, [])
        if run.id in waiting:
            waiting.remove(run.id)
        self._dequeue(run.record.workflow)

    def _parsed(self, name: str, version: str, spec: dict[str, Any]) -> Workflow:
        """The workflow model of a stored version (parsed once per version)."""
        key = (name, version)
        found = self._models.get(key)
        if found is None:
            if len(self._models) > 1000:
                self._models.clear()
            found = self._models[key] = Workflow.model_validate(spec)
        return found

    def _track(self, record: ExecutionRecord, spec: Workflow) -> _Run:
        agents = {str(a.name): a for a in spec.spec.agents}
        deadline_at = record.deadline_at or record.created_at
        remaining = (deadline_at - self.clock()).total_seconds()
        run = _Run(
            record=record,
            workflow=spec,
            agents=agents,
            states=dict.fromkeys(agents, "pending"),
            attempts=dict.fromkeys(agents, 0),
            deadline=time.monotonic() + remaining,
        )
        self._runs[record.id] = run
        if record.state == "running":
            self._running.setdefault(record.workflow, set()).add(record.id)
        assert self._loop is not None
        run.timers.append(self._loop.call_later(max(0.0, remaining), self._expire, run))
        return run

    async def _resume(self, record: ExecutionRecord) -> None:
        spec = Workflow.model_validate(record.spec)
        run = self._track(record, spec)
        changes = []
        for step in await self._db(self.journal.steps, record.id):
            if step.step not in run.states:
                continue
            run.attempts[step.step] = step.attempt
            state = step.state
            if state == "succeeded":
                run.outputs[step.step] = step.output
            if state == "running":  # it died with the daemon: at-least-once, run it again
                state = "pending"
                changes.append(
                    Change.step_event(
                        record.id,
                        "requeued",
                        step.step,
                        at=self.clock(),
                        attempt=step.attempt,
                        data={"reason": "the daemon stopped while it ran"},
                        state="pending",
                    )
                )
            run.states[step.step] = state
        if changes:
            self.journal.post(changes)
        if any(s == "failed" for s in run.states.values()):
            run.stop = "failed"
        if record.state == "queued":
            self._queued.setdefault(record.workflow, []).append(record.id)
            self._dequeue(record.workflow)
        else:
            self._schedule(run)

    # -- scheduling ------------------------------------------------------------------------------

    def _schedule(self, run: _Run) -> None:
        if self._closing or run.done.is_set() or run.creating:
            return
        if run.stop is None:
            for name in run.ready():
                self._launch(run, name)
        if not run.running:
            self._settle(run)

    def _launch(self, run: _Run, name: str) -> None:
        assert self._threads is not None
        agent = run.agents[name]
        run.states[name] = "running"
        run.running.add(name)
        run.attempts[name] += 1
        attempt = run.attempts[name]
        now = self.clock()
        self.journal.post(
            [
                Change.step_event(
                    run.id,
                    "started",
                    name,
                    at=now,
                    attempt=attempt,
                    state="running",
                    started_at=now,
                )
            ],
            lazy=True,  # with the step's end, or within lazy_seconds when it runs longer
        )
        image = run.record.images.get(str(agent.image)) or {}
        job = StepJob(
            execution_id=run.id,
            workflow=run.record.workflow,
            spec=run.record.spec,
            agent=agent,
            image=image,
            input_json=run.payload(agent.depends_on),
            attempt=attempt,
            deadline=run.deadline,
            on_host_call=functools.partial(self._host_call, run, name, attempt),
        )
        self._threads.submit((job, run), (run, name, attempt))
        self._busy += 1
        self._report_active()

    def _host_call(self, run: _Run, name: str, attempt: int, call: HostCall) -> None:
        """From a worker thread: journal an LLM or HTTP call as it happens."""
        self.journal.post(
            [
                Change.step_event(
                    run.id,
                    "host_call",
                    name,
                    at=self.clock(),
                    attempt=attempt,
                    data={
                        "kind": call.kind,
                        "ok": call.ok,
                        "latency_ms": round(call.latency_ms, 3),
                        "request": call.request,
                        "response": call.response,
                    },
                )
            ],
            lazy=True,
        )

    def _work(self, item: tuple[StepJob, _Run]) -> StepReport | None:
        """On a step thread: run the step; record a success right here (None: recorded)."""
        with deferred_free():  # the step's store is freed after its success is committed
            return self._work_step(*item)

    def _work_step(self, job: StepJob, run: _Run) -> StepReport | None:
        report = self.runner.run(job)
        if not report.outcome.ok or self._closing:
            return report  # the loop decides: retry or fail
        name, attempt = str(job.agent.name), job.attempt
        text = report.outcome.output or "null"  # valid JSON: the sandbox checked it
        output = json.loads(text)
        now = self.clock()
        change = Change.step_event(
            job.execution_id,
            "succeeded",
            name,
            at=now,
            attempt=attempt,
            data={"elapsed_ms": round(report.elapsed_seconds * 1000, 3), **report.counts},
            state="succeeded",
            output=RawJson(text),
            log=report.log or None,
            error=None,
            finished_at=now,
        )
        # durable before its dependents start: _succeeded runs on the loop once committed
        then = functools.partial(
            self._succeeded, run, name, attempt, output, text, report.elapsed_seconds
        )
        self.journal.commit_here([change], then)
        return None

    def _delivered(
        self, batch: list[tuple[tuple[_Run, str, int], Any, BaseException | None]]
    ) -> None:
        """Steps the threads have finished (on the loop)."""
        for (run, name, attempt), report, exc in batch:
            self._busy -= 1
            if self._closing:
                return  # the steps run again after the restart
            try:
                self._record(run, name, attempt, report, exc)
            except Exception:  # a bug here must not lose the other results of the batch
                log.exception("recording step %s of execution %s failed", name, run.id)
        self._report_active()

    def _record(
        self,
        run: _Run,
        name: str,
        attempt: int,
        report: StepReport | None,
        exc: BaseException | None,
    ) -> None:
        """A step that did not succeed (its successes are recorded by :meth:`_work`): retry
        it when its outcome is transient and attempts are left, else fail it."""
        now = self.clock()
        agent = run.agents[name]
        message = report.outcome.message() if report is not None else f"engine error: {exc}"
        detail = report.outcome.detail if report is not None else str(exc)
        log_text = report.log if report is not None else None
        retry = agent.retry
        transient = report is None or report.outcome.kind in TRANSIENT
        if (
            transient
            and retry is not None
            and attempt < retry.max_attempts
            and run.stop is None
            and not self._closing
        ):
            delay = _backoff(retry.backoff, retry.initial_delay, retry.max_delay, attempt)
            if time.monotonic() + delay < run.deadline:
                self.journal.post(
                    [
                        Change.step_event(
                            run.id,
                            "retrying",
                            name,
                            at=now,
                            attempt=attempt,
                            data={"error": message, "delay_s": round(delay, 3)},
                            state="pending",
                            error=message,
                            log=log_text,
                            next_attempt_at=now + timedelta(seconds=delay),
                        )
                    ]
                )
                run.states[name] = "retrying"
                run.running.discard(name)
                self.observer.step_finished(
                    "retrying", report.elapsed_seconds if report is not None else 0.0
                )
                assert self._loop is not None
                run.timers.append(self._loop.call_later(delay, self._retry_now, run, name))
                return
        cut_short = (  # its timeout was what was left of the execution's: the deadline hit
            report is not None
            and report.outcome.kind is OutcomeKind.TIMEOUT
            and time.monotonic() >= run.deadline - 0.05
        )
        self._failed(
            run,
            name,
            attempt,
            message,
            detail=detail,
            log_text=log_text,
            elapsed=report.elapsed_seconds if report else 0.0,
            cut_short=cut_short,
        )

    def _succeeded(
        self,
        run: _Run,
        name: str,
        attempt: int,
        output: Any,
        text: str,
        elapsed: float,
        error: BaseException | None,
    ) -> None:
        """A step's success is durable (on the loop): its dependents may start."""
        self._busy -= 1
        if error is not None:  # not recorded: the step fails, and so does the execution
            log.error(
                "execution %s: the success of step %s was not recorded: %s", run.id, name, error
            )
            self._failed(run, name, attempt, f"the journal could not record its success: {error}")
            return
        self.observer.step_finished("succeeded", elapsed)
        run.states[name] = "succeeded"
        run.outputs[name] = output
        run.texts[name] = text
        run.running.discard(name)
        self._schedule(run)

    def _failed(
        self,
        run: _Run,
        name: str,
        attempt: int,
        message: str,
        *,
        detail: str = "",
        log_text: str | None = None,
        elapsed: float = 0.0,
        cut_short: bool = False,
    ) -> None:
        """A step failed for good: so does the execution (its other steps are skipped)."""
        now = self.clock()
        self.journal.post(
            [
                Change.step_event(
                    run.id,
                    "failed",
                    name,
                    at=now,
                    attempt=attempt,
                    data={"error": message, "detail": detail[:4096]},
                    state="failed",
                    error=message,
                    log=log_text,
                    finished_at=now,
                )
            ]
        )
        run.states[name] = "failed"
        run.running.discard(name)
        self.observer.step_finished("failed", elapsed)
        if run.stop is None and cut_short:
            run.stop, run.error = (
                "timed_out",
                "the execution ran past its deadline (defaultTimeout)",
            )
        elif run.stop is None:
            run.stop, run.error = "failed", f"step {name} failed: {message}"
        self._schedule(run)

    def _retry_now(self, run: _Run, name: str) -> None:
        if run.states.get(name) == "retrying":
            run.states[name] = "pending"  # a stopped run skips it when it settles
            self._schedule(run)

    def _expire(self, run: _Run) -> None:
        if run.done.is_set() or run.stop is not None:
            return
        run.stop, run.error = "timed_out", "the execution ran past its deadline (defaultTimeout)"
        self._schedule(run)

    def _settle(self, run: _Run) -> None:
        """No step is running: finish the execution if nothing more will run."""
        if run.done.is_set() or (run.record.state == "queued" and run.stop is None):
            return
        if run.record.state == "queued":  # cancelled or expired while waiting for a slot
            waiting = self._queued.get(run.record.workflow, [])
            if run.id in waiting:
                waiting.remove(run.id)
        if run.stop is None and any(s in ("pending", "retrying") for s in run.states.values()):
            return  # waiting for a retry timer
        now = self.clock()
        left = [n for n, s in run.states.items() if s in ("pending", "retrying")]
        final = run.stop or "succeeded"
        skip_state = "cancelled" if final == "cancelled" else "skipped"
        changes = [
            Change.step_event(
                run.id,
                skip_state,
                n,
                at=now,
                data={"reason": run.error},
                state=skip_state,
                finished_at=now,
            )
            for n in left
        ]
        for n in left:
            run.states[n] = skip_state
        sinks = [n for n in run.agents if not any(n in a.depends_on for a in run.agents.values())]
        output = {n: run.outputs.get(n) for n in sinks} if final == "succeeded" else None
        # recorded from the outputs' texts, as the steps' own outputs are (a number such as
        # 1e400 decodes to inf, which would be encoded as Infinity: not JSON)
        recorded = RawJson(run.outputs_text(sinks)) if output is not None else None
        changes.append(
            Change(
                execution_id=run.id,
                type=f"execution.{final}",
                at=now,
                data={"error": run.error} if run.error else None,
                execution={
                    "state": final,
                    "output": recorded,
                    "error": run.error,
                    "finished_at": now,
                },
            )
        )

        def settled(error: BaseException | None) -> None:
            self.journal.forget(run.id)
            if error is not None:
                run.unrecorded = error
                log.error("execution %s: its end was not recorded: %s", run.id, error)
            run.recorded.set()

        self.journal.post(changes, then=settled)
        run.record = _with(run.record, state=final, output=output, error=run.error, finished_at=now)
        for timer in run.timers:
            timer.cancel()
        run.done.set()
        run.outputs, run.texts = {}, {}  # (they are in the record; _finished keeps the run)
        self._runs.pop(run.id, None)
        self._finished[run.id] = run  # for wait() right after (a CLI's run --wait)
        while len(self._finished) > 256:
            del self._finished[next(iter(self._finished))]
        self._running.get(run.record.workflow, set()).discard(run.id)
        started = run.record.started_at or run.record.created_at
        self.observer.execution_finished(run.record.trigger, final, (now - started).total_seconds())
        self._dequeue(run.record.workflow)
        self._report_active()

    def _dequeue(self, workflow: str) -> None:
        """Start queued executions of ``workflow`` while it is under its limit."""
        waiting = self._queued.get(workflow)
        while waiting:
            first = self._runs.get(waiting[0])
            if first is None:
                waiting.pop(0)
                continue
            limit = first.workflow.spec.config.max_concurrent_executions
            if len(self._running.get(workflow, ())) >= limit:
                return
            if first.creating:
                return  # its start is still being written: dequeued right after
            waiting.pop(0)
            now = self.clock()
            first.record = _with(first.record, state="running", started_at=now)
            self._running.setdefault(workflow, set()).add(first.id)
            self.observer.queue_wait((now - first.record.created_at).total_seconds())
            self.journal.post(
                [
                    Change(
                        execution_id=first.id,
                        type="execution.running",
                        at=now,
                        execution={"state": "running", "started_at": now},
                    )
                ]
            )
            self._schedule(first)

    def changed(self) -> asyncio.Future[None]:
        """Done when the journal next commits (for event streams)."""
        assert self._loop is not None
        if self._tick is None:
            self._tick = self._loop.create_future()
        return asyncio.shield(self._tick)

    def _committed(self, thens: list[tuple[Then, BaseException | None]]) -> None:
        """On the loop, after a journal commit: what waited for it goes on."""
        for then, error in thens:
            try:
                then(error)
            except Exception:  # one failing continuation must not stop the others
                log.exception("after a journal commit")
        tick, self._tick = self._tick, None
        if tick is not None and not tick.done():
            tick.set_result(None)

    # -- operator actions ----------------------------------------------------------------------

    async def cancel(self, execution_id: str) -> ExecutionRecord:
        """Stop an execution: nothing more starts; running steps end within their timeout."""
        run = self._runs.get(execution_id)
        if run is None:
            record: ExecutionRecord = await self._db(self.journal.execution, execution_id)
            if record.state in TERMINAL:
                raise ConflictError(f"execution {execution_id} already {record.state}")
            raise NotFound(f"execution {execution_id!r} is not running on this node")
        if run.stop is None:
            run.stop, run.error = "cancelled", "cancelled by request"
        self._schedule(run)
        return run.record

    async def wait(self, execution_id: str) -> ExecutionRecord:
        """The execution once it has finished (bound it with ``asyncio.timeout``)."""
        run = self._runs.get(execution_id) or self._finished.get(execution_id)
        if run is not None:
            await run.done.wait()
            await run.recorded.wait()  # (commits keep posting order: all before it is durable)
            if run.unrecorded is None:
                return run.record  # as the journal now has it
            # its end is not in the store: say what the store has
        await self._flush()
        record: ExecutionRecord = await self._db(self.journal.execution, execution_id)
        return record

    async def _flush(self) -> None:
        """Wait until everything posted so far is durable."""
        await self._durable([])

    async def _durable(self, changes: list[Change]) -> None:
        """Post ``changes`` and wait until they are committed (raises what the commit did)."""
        assert self._loop is not None
        committed: asyncio.Future[None] = self._loop.create_future()

        def done(error: BaseException | None) -> None:
            if committed.done():
                return
            if error is None:
                committed.set_result(None)
            else:
                committed.set_exception(error)

        self.journal.post(changes, then=done)
        await committed

    def active(self) -> int:
        """Executions being driven (running or queued)."""
        return len(self._runs)


def _backoff(kind: Backoff, initial: Any, maximum: Any, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``, with ±20 % jitter, capped at ``maximum``."""
    base = initial.total_seconds() if isinstance(initial, timedelta) else float(initial)
    cap = maximum.total_seconds() if isinstance(maximum, timedelta) else float(maximum)
    if kind is Backoff.EXPONENTIAL:
        delay = base * 2 ** (attempt - 1)
    elif kind is Backoff.LINEAR:
        delay = base * attempt
    else:
        delay = base
    return float(min(cap, delay) * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not secrets


def _with(record: ExecutionRecord, **values: Any) -> ExecutionRecord:
    return replace(record, **values)
