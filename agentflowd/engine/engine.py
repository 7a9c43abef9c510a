"""The executor: carries out what the execution state machine decides.

The rules of an execution live in :mod:`agentflowd.engine.core` (pure). This module feeds it
what happens — a step ended on a worker thread, a timer fired, an operator cancelled — and
carries out the effects it returns: entries posted to the :class:`ExecutionLog`, steps launched
on the step threads, timers armed on the injected :class:`Clock`, waiters woken when an
execution is over. It also holds what spans executions: ``maxConcurrentExecutions`` (a queue
per workflow, in order), the cache of stored workflows, and the bookkeeping for metrics.

It lives on the daemon's event loop; steps run on a bounded thread pool. A step's success is
committed on its own thread when the log is idle (and joins the next group commit when not)
and is fed to the state machine only once durable: a completed step never runs again, and a
step that was running when its node died runs again (at-least-once; its ``idempotency_key``
``EXECUTION:STEP`` is in its config).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from agentflowd.engine import core
from agentflowd.engine.clock import Clock, SystemClock, Timer
from agentflowd.engine.core import Dag, Run, Signal
from agentflowd.engine.log import ExecutionLog
from agentflowd.engine.records import ExecutionRecord, LogEntry, Then
from agentflowd.engine.runner import TRANSIENT, HostCall, StepJob
from agentflowd.engine.states import TERMINAL, EventType, ExecutionState
from agentflowd.engine.workers import StepThreads
from agentflowd.errors import ConflictError, FencedOut, NotFound
from agentflowd.manifest.model import Agent, Workflow
from agentflowd.store import Store, StoredWorkflow
from sandbox import OutcomeKind, StepReport
from sandbox.runner import deferred_free

__all__ = ["Engine", "EngineObserver", "StepRunning", "TERMINAL"]

log = logging.getLogger(__name__)

#: How long a start may use the workflow it read last (changes made through this daemon's own
#: store are seen at once; this bounds what another process's writes take to be seen).
STORED_SECONDS = 1.0


class StepRunning(Protocol):
    """Runs one attempt of one step (blocking, on a step thread): the sandbox, or a fake."""

    def run(self, job: StepJob) -> StepReport: ...


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


def _jitter() -> float:
    return random.uniform(0.8, 1.2)  # noqa: S311 - retry jitter, not a secret


@dataclass(eq=False)
class _Live:
    """An execution this engine drives: its state machine's state, and what carries it out."""

    run: Run
    record: ExecutionRecord
    agents: dict[str, Agent]
    deadline: float  # monotonic: the sandbox cuts step timeouts to it
    limit: int  # its workflow version's maxConcurrentExecutions
    owner: str | None = None  # the node its entries are fenced by (None: not fenced)
    #: its sink steps' outputs, decoded on the step threads (the execution's output, without
    #: decoding it again on the loop)
    decoded: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    recorded: asyncio.Event = field(default_factory=asyncio.Event)  # its end's commit is over
    timers: list[Timer] = field(default_factory=list)
    creating: bool = False  # its rows are being written: signals wait in `deferred`
    deferred: list[Signal] = field(default_factory=list)
    unrecorded: BaseException | None = None  # why its end could not be committed

    @property
    def id(self) -> str:
        return self.run.id


class Engine:
    """Starts, drives, resumes and cancels executions."""

    def __init__(
        self,
        *,
        store: Store,
        log: ExecutionLog,
        runner: StepRunning,
        clock: Clock | None = None,
        workers: int = 4,
        observer: EngineObserver | None = None,
        jitter: Callable[[], float] = _jitter,
        node: str | None = None,
        fence: bool = False,
    ) -> None:
        #: the node this engine is (the owner of the executions it creates), and whether its
        #: entries are fenced: several nodes share the log, and one that lost an execution to
        #: another must not write over it
        self.node = node
        self.fence = fence
        self.observer = observer or EngineObserver()
        self.store = store
        self.log = log
        self.runner = runner
        self.clock: Clock = clock or SystemClock()
        self.workers = workers
        self.jitter = jitter
        self._runs: dict[str, _Live] = {}
        self._queued: dict[str, list[str]] = {}  # workflow -> execution ids waiting, in order
        self._threads: StepThreads[tuple[StepJob, _Live], tuple[_Live, str, int]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._tick: asyncio.Future[None] | None = None  # made when someone waits for a commit
        self._models: dict[tuple[str, str], tuple[Workflow, Dag]] = {}
        # name -> (workflows_epoch, when read, the read): see _workflow
        self._stored: dict[str, tuple[int, float, asyncio.Future[StoredWorkflow]]] = {}
        self._running: dict[str, set[str]] = {}  # workflow -> ids of its running executions
        self._busy = 0  # steps on the worker threads now
        self._finished: dict[str, _Live] = {}  # the last executions to finish, oldest first

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, resume: bool = True) -> int:
        """Start the step threads; with ``resume``, drive every execution a previous run
        left unfinished (one node alone; several nodes :meth:`adopt` what they claim).
        Returns how many it resumed."""
        self._loop = loop = asyncio.get_running_loop()
        self._threads = StepThreads(self.workers, self._work, self._delivered, loop)

        def committed(thens: list[tuple[Then, BaseException | None]]) -> None:
            # from the committing thread: wake the loop only when something waits for it
            if thens or self._tick is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    loop.call_soon_threadsafe(self._committed, thens)

        self.log.on_commit = committed
        if not resume:
            return 0
        unfinished = await self._db(self.log.unfinished)
        return await self.adopt(unfinished)

    async def adopt(self, records: list[ExecutionRecord]) -> int:
        """Drive these unfinished executions from their rows (claimed by this node: their
        previous node stopped); returns how many it took (not those it drives already)."""
        taken = 0
        for record in records:
            if record.id in self._runs or self._closing:
                continue
            try:
                await self._resume(record)
            except Exception:  # one broken execution must not keep the others stranded
                log.exception("cannot resume execution %s", record.id)
                continue
            taken += 1
        return taken

    def drives(self, execution_id: str) -> bool:
        """Whether this engine drives ``execution_id`` now."""
        return execution_id in self._runs

    def driven(self) -> list[str]:
        """The executions this engine drives now."""
        return list(self._runs)

    def abandon(self, execution_ids: list[str] | None = None) -> list[str]:
        """Stop driving executions without writing anything (another node owns them now, or
        this node lost its lease): their timers stop, their running steps' ends are ignored,
        their waiters read the store. Returns the ids dropped."""
        ids = list(self._runs) if execution_ids is None else execution_ids
        dropped = []
        for execution_id in ids:
            live = self._runs.get(execution_id)
            if live is None:
                continue
            self._drop(live, FencedOut(execution_id, self.node or "", None))
            dropped.append(execution_id)
        if dropped:
            log.warning("stopped driving %d execution(s) this node no longer owns", len(dropped))
            self._report_active()
        return dropped

    def _drop(self, live: _Live, why: BaseException) -> None:
        for timer in live.timers:
            timer.cancel()
        live.timers.clear()
        live.unrecorded = why
        live.done.set()
        live.recorded.set()
        self._runs.pop(live.id, None)
        workflow = live.record.workflow
        self._running.get(workflow, set()).discard(live.id)
        waiting = self._queued.get(workflow, [])
        if live.id in waiting:
            waiting.remove(live.id)

    async def close(self) -> None:
        """Stop scheduling; wait briefly for running steps (they are re-run after a restart)."""
        self._closing = True  # (what commits still runs its callbacks on the loop)
        for live in self._runs.values():
            for timer in live.timers:
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
        model, dag = self._parsed(workflow, stored.spec_hash, stored.spec)
        now = self.clock.now()
        busy = len(self._running.get(workflow, ()))
        queued = busy >= model.spec.config.max_concurrent_executions or bool(
            self._queued.get(workflow)
        )
        run, first = core.new_execution(
            execution_id=new_execution_id(now),
            workflow=workflow,
            generation=stored.generation,
            spec=stored.spec,
            images=stored.images,
            model=model,
            dag=dag,
            input=input,
            input_text=json.dumps(input),
            trigger=trigger,
            key=key,
            queued=queued,
            at=now,
        )
        assert first.create is not None
        record = first.create[0]
        if self.node is not None:
            record = replace(record, owner=self.node)
            first.create = (record, first.create[1])
        # take the slot (or the place in the queue) now, before the write yields to the loop:
        # concurrent starts must not all see the same free slot
        live = self._track(record, run, model)
        if queued:
            self._queued.setdefault(workflow, []).append(record.id)
        live.creating = True
        try:
            await self._durable([first])
        except BaseException as exc:
            self._untrack(live)
            if not self.log.duplicate(record, exc):
                raise
            existing = await self._db(self.log.by_trigger_key, key)
            if existing is None:  # an integrity error of another kind: not a duplicate
                raise
            return existing  # type: ignore[no-any-return]
        live.creating = False
        self.observer.execution_started(trigger)
        if queued:
            self._dequeue(workflow)  # a slot may have freed while it was written
        else:
            self._signal(live, core.Wake(self.clock.now()))
        for signal in live.deferred:  # (a cancel while it was written)
            self._signal(live, signal)
        live.deferred.clear()
        self._report_active()
        return record

    async def _workflow(self, name: str) -> StoredWorkflow:
        """The stored workflow, from memory while this process has changed no workflow, for
        up to :data:`STORED_SECONDS` (what another process writes is seen within that).

        Starts that arrive together (a burst of webhooks) share one read: the cache holds the
        read's future from the moment it is asked for."""
        epoch = self.store.workflows_epoch  # read before the row: a later write is noticed
        now = self.clock.monotonic()
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

    def _parsed(self, name: str, version: str, spec: dict[str, Any]) -> tuple[Workflow, Dag]:
        """The workflow model of a stored version and its DAG (made once per version)."""
        key = (name, version)
        found = self._models.get(key)
        if found is None:
            if len(self._models) > 1000:
                self._models.clear()
            model = Workflow.model_validate(spec)
            found = self._models[key] = (model, Dag.of(model))
        return found

    def _report_active(self) -> None:
        running = sum(len(ids) for ids in self._running.values())  # per workflow: small
        self.observer.active(running, len(self._runs) - running, self._busy)

    def _track(self, record: ExecutionRecord, run: Run, model: Workflow) -> _Live:
        remaining = (run.deadline_at - self.clock.now()).total_seconds()
        live = _Live(
            run=run,
            record=record,
            agents={str(a.name): a for a in model.spec.agents},
            deadline=self.clock.monotonic() + remaining,
            limit=model.spec.config.max_concurrent_executions,
            owner=self.node if self.fence else None,
        )
        self._runs[record.id] = live
        if run.state is ExecutionState.RUNNING:
            self._running.setdefault(record.workflow, set()).add(record.id)
        live.timers.append(
            self.clock.call_later(
                remaining, lambda: self._signal(live, core.DeadlineReached(self.clock.now()))
            )
        )
        return live

    def _untrack(self, live: _Live) -> None:
        for timer in live.timers:
            timer.cancel()
        self._runs.pop(live.id, None)
        self._running.get(live.record.workflow, set()).discard(live.id)
        waiting = self._queued.get(live.record.workflow, [])
        if live.id in waiting:
            waiting.remove(live.id)
        self._dequeue(live.record.workflow)

    async def _resume(self, record: ExecutionRecord) -> None:
        model = Workflow.model_validate(record.spec)  # (the version it started with)
        dag = Dag.of(model)
        steps = await self._db(self.log.steps, record.id)
        run, effects = core.resume(record, steps, dag, at=self.clock.now())
        live = self._track(record, run, model)
        self._carry_out(live, effects)
        if run.state is ExecutionState.QUEUED:
            self._queued.setdefault(record.workflow, []).append(record.id)
            self._dequeue(record.workflow)
        else:
            self._signal(live, core.Wake(self.clock.now()))

    # -- the state machine, fed and carried out ----------------------------------------------

    def _signal(self, live: _Live, signal: Signal) -> None:
        """Feed ``signal`` to ``live``'s state machine and carry out what it decides."""
        if self._closing or live.done.is_set():
            return  # (closing: what runs now runs again after the restart)
        if live.creating:
            live.deferred.append(signal)
            return
        live.run, effects = core.transition(live.run, signal)
        self._carry_out(live, effects)

    def _carry_out(self, live: _Live, effects: list[core.Effect]) -> None:
        for effect in effects:  # (the commonest first: this runs for every step)
            if isinstance(effect, core.Record):
                self._post(live, list(effect.entries), lazy=effect.lazy)
            elif isinstance(effect, core.Launch):
                self._launch(live, effect)
            elif isinstance(effect, core.CountStep):
                self.observer.step_finished(effect.result.value, effect.seconds)
            elif isinstance(effect, core.ArmRetry):
                retry = functools.partial(self._retry_due, live, effect.step)
                live.timers.append(self.clock.call_later(effect.delay, retry))
            else:
                self._finish(live, effect)

    def _post(
        self, live: _Live, entries: list[LogEntry], then: Then | None = None, *, lazy: bool = False
    ) -> None:
        """Post ``live``'s entries, fenced by its owner when several nodes share the log (a
        refusal means another node owns it now: this one stops driving it)."""
        if live.owner is not None:
            for entry in entries:
                entry.fence = live.owner
            if then is None:
                then = functools.partial(self._fenced, live)
        self.log.post(entries, then, lazy=lazy)

    def _fenced(self, live: _Live, error: BaseException | None) -> None:
        if isinstance(error, FencedOut) and self._runs.get(live.id) is live:
            log.warning("execution %s: %s; this node stops driving it", live.id, error)
            self._drop(live, error)
            self._report_active()

    def _retry_due(self, live: _Live, step: str) -> None:
        self._signal(live, core.RetryDue(step, self.clock.now()))

    def _launch(self, live: _Live, launch: core.Launch) -> None:
        assert self._threads is not None
        agent = live.agents[launch.step]
        if live.record.state == ExecutionState.QUEUED.value:  # (admitted: see _dequeue)
            live.record = replace(live.record, state=ExecutionState.RUNNING.value)
        job = StepJob(
            execution_id=live.id,
            workflow=live.record.workflow,
            spec=live.record.spec,
            agent=agent,
            image=live.record.images.get(str(agent.image)) or {},
            input_json=launch.input_json,
            attempt=launch.attempt,
            deadline=live.deadline,
            on_host_call=functools.partial(self._host_call, live, launch.step, launch.attempt),
        )
        self._threads.submit((job, live), (live, launch.step, launch.attempt))
        self._busy += 1
        self._report_active()

    def _host_call(self, live: _Live, name: str, attempt: int, call: HostCall) -> None:
        """From a worker thread: journal an LLM or HTTP call as it happens."""
        self.log.post(
            [
                LogEntry.step_event(
                    live.id,
                    EventType.STEP_HOST_CALL,
                    name,
                    at=self.clock.now(),
                    attempt=attempt,
                    data={
                        "kind": call.kind,
                        "ok": call.ok,
                        "latency_ms": round(call.latency_ms, 3),
                        "request": call.request,
                        "response": call.response,
                    },
                    fence=live.owner,
                )
            ],
            lazy=True,
        )

    def _work(self, item: tuple[StepJob, _Live]) -> StepReport | None:
        """On a step thread: run the step; record a success right here (None: recorded)."""
        with deferred_free():  # the step's store is freed after its success is committed
            return self._work_step(*item)

    def _work_step(self, job: StepJob, live: _Live) -> StepReport | None:
        report = self.runner.run(job)
        if not report.outcome.ok or self._closing:
            return report  # the loop decides: retry or fail
        name, attempt = str(job.agent.name), job.attempt
        text = report.outcome.output or "null"  # valid JSON: the sandbox checked it
        if name in live.run.dag.sinks:
            live.decoded[name] = json.loads(text)
        entry = core.succeeded_entry(
            job.execution_id,
            name,
            attempt,
            output=text,
            log=report.log,
            data={"elapsed_ms": round(report.elapsed_seconds * 1000, 3), **report.counts},
            at=self.clock.now(),
        )
        entry.fence = live.owner
        # durable before its dependents start: _succeeded runs on the loop once committed
        then = functools.partial(self._succeeded, live, name, attempt, text, report.elapsed_seconds)
        self.log.commit_here([entry], then)
        return None

    def _delivered(
        self, batch: list[tuple[tuple[_Live, str, int], Any, BaseException | None]]
    ) -> None:
        """Steps the threads have finished without success (on the loop)."""
        for (live, name, attempt), report, exc in batch:
            self._busy -= 1
            if self._closing:
                return  # the steps run again after the restart
            try:
                self._signal(live, self._ended(name, attempt, report, exc))
            except Exception:  # a bug here must not lose the other results of the batch
                log.exception("recording step %s of execution %s failed", name, live.id)
        self._report_active()

    def _ended(
        self, name: str, attempt: int, report: StepReport | None, exc: BaseException | None
    ) -> core.StepEnded:
        if report is None:
            return core.StepEnded(
                step=name,
                attempt=attempt,
                at=self.clock.now(),
                transient=True,
                timed_out=False,
                message=f"engine error: {exc}",
                detail=str(exc),
                jitter=self.jitter(),
            )
        return core.StepEnded(
            step=name,
            attempt=attempt,
            at=self.clock.now(),
            transient=report.outcome.kind in TRANSIENT,
            timed_out=report.outcome.kind is OutcomeKind.TIMEOUT,
            message=report.outcome.message(),
            detail=report.outcome.detail,
            log=report.log,
            elapsed=report.elapsed_seconds,
            jitter=self.jitter(),
        )

    def _succeeded(
        self,
        live: _Live,
        name: str,
        attempt: int,
        text: str,
        elapsed: float,
        error: BaseException | None,
    ) -> None:
        """A step's success is durable (on the loop): its dependents may start."""
        self._busy -= 1
        if isinstance(error, FencedOut):
            self._fenced(live, error)
            return
        if error is not None:  # not recorded (and not for an outage: that is retried)
            log.error(
                "execution %s: the success of step %s was not recorded: %s", live.id, name, error
            )
            signal: Signal = core.StepEnded(
                step=name,
                attempt=attempt,
                at=self.clock.now(),
                transient=False,
                timed_out=False,
                message=f"the journal could not record its success: {error}",
            )
        else:
            signal = core.StepSucceeded(
                step=name, attempt=attempt, output=text, elapsed=elapsed, at=self.clock.now()
            )
        self._signal(live, signal)

    def _finish(self, live: _Live, finish: core.Finish) -> None:
        """The execution is over: record its end, wake its waiters, free its slot."""
        now = finish.entries[-1].at

        def settled(error: BaseException | None) -> None:
            self.log.forget(live.id)
            if isinstance(error, FencedOut):
                log.warning("execution %s: its end was not recorded: %s", live.id, error)
                live.unrecorded = error
            elif error is not None:
                live.unrecorded = error
                log.error("execution %s: its end was not recorded: %s", live.id, error)
            live.recorded.set()

        self._post(live, list(finish.entries), then=settled)
        output = None
        if finish.output_text is not None:  # its sinks' outputs, decoded where they ran
            sinks = live.run.dag.sinks
            if all(n in live.decoded for n in sinks):
                output = {n: live.decoded[n] for n in sinks}
            else:  # (a sink that succeeded before a restart)
                output = json.loads(finish.output_text)
        live.decoded = {}
        live.record = replace(
            live.record,
            state=finish.state.value,
            output=output,
            error=finish.error,
            finished_at=now,
        )
        for timer in live.timers:
            timer.cancel()
        live.timers.clear()
        live.done.set()
        self._runs.pop(live.id, None)
        self._finished[live.id] = live  # for wait() right after (a CLI's run --wait)
        while len(self._finished) > 256:
            del self._finished[next(iter(self._finished))]
        workflow = live.record.workflow
        self._running.get(workflow, set()).discard(live.id)
        waiting = self._queued.get(workflow, [])
        if live.id in waiting:  # cancelled or expired while waiting for a slot
            waiting.remove(live.id)
        started = live.record.started_at or live.record.created_at
        self.observer.execution_finished(
            live.record.trigger, finish.state.value, (now - started).total_seconds()
        )
        self._dequeue(workflow)
        self._report_active()

    def _dequeue(self, workflow: str) -> None:
        """Start queued executions of ``workflow`` while it is under its limit."""
        waiting = self._queued.get(workflow)
        while waiting:
            first = self._runs.get(waiting[0])
            if first is None:
                waiting.pop(0)
                continue
            if len(self._running.get(workflow, ())) >= first.limit:
                return
            if first.creating:
                return  # its start is still being written: dequeued right after
            waiting.pop(0)
            now = self.clock.now()
            first.record = replace(first.record, state=ExecutionState.RUNNING.value, started_at=now)
            self._running.setdefault(workflow, set()).add(first.id)
            self.observer.queue_wait((now - first.record.created_at).total_seconds())
            self._signal(first, core.Admit(now))

    def changed(self) -> asyncio.Future[None]:
        """Done when the log next commits (for event streams)."""
        assert self._loop is not None
        if self._tick is None:
            self._tick = self._loop.create_future()
        return asyncio.shield(self._tick)

    def _committed(self, thens: list[tuple[Then, BaseException | None]]) -> None:
        """On the loop, after a log commit: what waited for it goes on."""
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
        live = self._runs.get(execution_id)
        if live is None:
            record: ExecutionRecord = await self._db(self.log.execution, execution_id)
            if record.state in TERMINAL:
                raise ConflictError(f"execution {execution_id} already {record.state}")
            raise NotFound(f"execution {execution_id!r} is not running on this node")
        self._signal(live, core.Cancel(self.clock.now()))
        return live.record

    async def wait(self, execution_id: str) -> ExecutionRecord:
        """The execution once it has finished (bound it with ``asyncio.timeout``)."""
        live = self._runs.get(execution_id) or self._finished.get(execution_id)
        if live is not None:
            await live.done.wait()
            await live.recorded.wait()  # (commits keep posting order: all before it is durable)
            if live.unrecorded is None:
                return live.record  # as the log now has it
            if not isinstance(live.unrecorded, FencedOut):
                await self._flush()  # its end is not in the store: say what the store has
                record: ExecutionRecord = await self._db(self.log.execution, execution_id)
                return record
        # driven by another node (or by this one again, later): its end is in the store
        await self._flush()
        delay = 0.01
        while True:
            record = await self._db(self.log.execution, execution_id)
            if record.state in TERMINAL:
                return record
            again = self._runs.get(execution_id)
            if again is not None and again is not live:
                return await self.wait(execution_id)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _flush(self) -> None:
        """Wait until everything posted so far is durable."""
        await self._durable([])

    async def _durable(self, entries: list[LogEntry]) -> None:
        """Post ``entries`` and wait until they are committed (raises what the commit did)."""
        assert self._loop is not None
        committed: asyncio.Future[None] = self._loop.create_future()

        def done(error: BaseException | None) -> None:
            if committed.done():
                return
            if error is None:
                committed.set_result(None)
            else:
                committed.set_exception(error)

        self.log.post(entries, then=done)
        await committed

    def active(self) -> int:
        """Executions being driven (running or queued)."""
        return len(self._runs)

    def state_of(self, execution_id: str) -> Run | None:
        """The state machine's view of an execution this engine drives (None otherwise)."""
        live = self._runs.get(execution_id) or self._finished.get(execution_id)
        return live.run if live is not None else None
