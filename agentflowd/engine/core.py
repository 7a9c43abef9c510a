"""The execution state machine, pure: ``transition(run, signal) -> (run, effects)``.

An execution's rules live here and nowhere else; the engine (:mod:`agentflowd.engine.engine`)
only feeds in what happened (a :data:`Signal`: a step ended, a timer fired, an operator
cancelled) and carries out what comes back (an :data:`Effect`: record these log entries, launch
this step, arm this timer, the execution is over). No I/O, no clock, no randomness, no logging:
every time comes in with its signal (``at``), the retry jitter too, so a table of
(state, signal) -> (state, effects) rows tests it all, in the spirit of kopf's
``detect_changing_cause``. The rules:

* a step starts when every step it depends on has succeeded; it gets
  ``{"input": <execution input>, "steps": {<dependency>: <its output>}}``;
* a step's success is fed in once it is durable, so its dependents start only then and a
  completed step never runs again;
* a step that did not succeed is retried while its outcome is transient, attempts are left and
  the retry's time falls before the deadline (exponential, linear or fixed backoff, jittered);
  otherwise it fails, and so does the execution: steps not started are skipped, running ones
  finish;
* ``defaultTimeout`` is the execution's deadline; a step cut short by it makes the execution
  ``timed_out``;
* cancel stops scheduling; running steps end within their own timeout; what had not started is
  ``cancelled``;
* an execution ends when nothing runs and nothing more will: its output is the outputs of its
  sink steps (those nothing depends on).

:func:`fold` replays an execution's history (its events) into the same :class:`Run`: the
state at any instant of the log, for debugging and tracing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from agentflowd.engine.records import (
    EventRecord,
    ExecutionRecord,
    LogEntry,
    RawJson,
    StepRecord,
    stored_step_state,
)
from agentflowd.engine.states import EventType, ExecutionState, StepState
from agentflowd.manifest.model import Backoff, Workflow

__all__ = [
    "Admit",
    "ArmRetry",
    "Cancel",
    "CountStep",
    "Dag",
    "DeadlineReached",
    "Effect",
    "Finish",
    "Launch",
    "Record",
    "RetryDue",
    "RetryRule",
    "Run",
    "Signal",
    "StepEnded",
    "StepProgress",
    "StepSucceeded",
    "Wake",
    "backoff_seconds",
    "fold",
    "new_execution",
    "resume",
    "succeeded_entry",
    "transition",
]

# Members as module constants: an enum member's attribute lookup costs ~80 ns, a global ~8;
# the transition runs for every step, and reads these in loops.
_PENDING, _RUNNING, _SUCCEEDED = StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED
_RETRYING = StepState.RETRYING
_QUEUED = ExecutionState.QUEUED
_STARTED = EventType.STEP_STARTED
_RUNNING_TEXT = StepState.RUNNING.value

#: A step that timed out this close to the execution's deadline was cut short by it.
DEADLINE_SLACK = timedelta(milliseconds=50)
DEADLINE_ERROR = "the execution ran past its deadline (defaultTimeout)"
CANCEL_ERROR = "cancelled by request"


# -- the execution's shape (fixed for its life) --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryRule:
    """A step's retries: attempts in all, and the backoff between them (seconds)."""

    max_attempts: int
    backoff: Backoff
    initial: float
    maximum: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Dag:
    """The steps of a workflow version: what each depends on, how it retries, which are sinks."""

    order: tuple[str, ...]  # the manifest's order: steps launch in it
    depends_on: Mapping[str, tuple[str, ...]]
    retry: Mapping[str, RetryRule | None]
    sinks: tuple[str, ...]  # steps nothing depends on: their outputs are the execution's
    keys: Mapping[str, str] = field(default_factory=dict)  # each name as a JSON string

    @classmethod
    def of(cls, workflow: Workflow) -> Dag:
        agents = workflow.spec.agents
        order = tuple(str(a.name) for a in agents)
        depends_on = {str(a.name): tuple(str(d) for d in a.depends_on) for a in agents}
        needed = {d for deps in depends_on.values() for d in deps}
        retry: dict[str, RetryRule | None] = {}
        for a in agents:
            rule = a.retry
            retry[str(a.name)] = (
                None
                if rule is None
                else RetryRule(
                    max_attempts=rule.max_attempts,
                    backoff=rule.backoff,
                    initial=_seconds(rule.initial_delay),
                    maximum=_seconds(rule.max_delay),
                )
            )
        return cls(
            order=order,
            depends_on=depends_on,
            retry=retry,
            sinks=tuple(n for n in order if n not in needed),
            keys={n: json.dumps(n) for n in order},
        )


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# -- the state ---------------------------------------------------------------------------------


class StepProgress(NamedTuple):
    """One step as the state machine sees it. (Named tuples, not dataclasses, for the state:
    a transition makes several, and ``dataclasses.replace`` cost ~3 us each.)"""

    state: StepState = StepState.PENDING
    attempt: int = 0  # the latest attempt started (0: none yet)
    output: str | None = None  # its output as JSON text, once succeeded
    error: str | None = None


class Run(NamedTuple):
    """An execution as the state machine sees it. Immutable: each transition makes a new one
    (the step map is copied, not its outputs' texts)."""

    id: str
    dag: Dag
    state: ExecutionState
    steps: Mapping[str, StepProgress]
    input_text: str  # the execution's input as JSON text
    deadline_at: datetime
    stop: ExecutionState | None = None  # decided: it ends so once nothing runs
    error: str | None = None

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(n for n, s in self.steps.items() if s.state is StepState.RUNNING)

    def payload(self, step: str) -> str:
        """What ``step`` gets, as JSON text; dependencies' outputs spliced in as their agents
        wrote them (a large output is never encoded again)."""
        steps = self.outputs_text(self.dag.depends_on[step])
        return f'{{"input": {self.input_text}, "steps": {steps}}}'

    def outputs_text(self, names: Iterable[str]) -> str:
        """``{name: output}`` of steps ``names`` as JSON text."""
        keys, steps = self.dag.keys, self.steps
        return (
            "{"
            + ", ".join(
                f"{keys.get(n) or json.dumps(n)}: {steps[n].output or 'null'}" for n in names
            )
            + "}"
        )

    def ready(self) -> list[str]:
        """Pending steps whose dependencies have all succeeded, in the manifest's order."""
        steps, depends_on = self.steps, self.dag.depends_on
        out = []
        for n in self.dag.order:
            if steps[n].state is _PENDING:
                for d in depends_on[n]:
                    if steps[d].state is not _SUCCEEDED:
                        break
                else:
                    out.append(n)
        return out


# -- what comes in -----------------------------------------------------------------------------


class Wake(NamedTuple):
    """Start whatever can run (after the execution was created running, or resumed)."""

    at: datetime


class Admit(NamedTuple):
    """A queued execution got its slot under ``maxConcurrentExecutions``."""

    at: datetime


class StepSucceeded(NamedTuple):
    """A step's success is durable in the log (made with :func:`succeeded_entry`)."""

    step: str
    attempt: int
    output: str  # JSON text
    elapsed: float
    at: datetime


class StepEnded(NamedTuple):
    """A step attempt ended without success (or the engine failed to run it)."""

    step: str
    attempt: int
    at: datetime
    transient: bool  # another attempt may succeed
    timed_out: bool  # it ran out of time (its own, or the execution's)
    message: str
    detail: str = ""
    log: str | None = None
    elapsed: float = 0.0
    jitter: float = 1.0  # the retry delay's factor, drawn by the caller (0.8-1.2)


class RetryDue(NamedTuple):
    """A step's retry timer fired."""

    step: str
    at: datetime


class DeadlineReached(NamedTuple):
    """The execution's deadline passed."""

    at: datetime


class Cancel(NamedTuple):
    """An operator asked to stop the execution."""

    at: datetime
    reason: str = CANCEL_ERROR


Signal = Wake | Admit | StepSucceeded | StepEnded | RetryDue | DeadlineReached | Cancel


# -- what goes out -----------------------------------------------------------------------------


class Record(NamedTuple):
    """Post these entries to the log, in order. ``lazy``: they may wait for the next commit
    (a step started: losing it in a crash loses nothing, the step runs again)."""

    entries: tuple[LogEntry, ...]
    lazy: bool = False


class Launch(NamedTuple):
    """Run attempt ``attempt`` of ``step`` with ``input_json``."""

    step: str
    attempt: int
    input_json: str


class ArmRetry(NamedTuple):
    """Feed :class:`RetryDue` for ``step`` after ``delay`` seconds."""

    step: str
    delay: float


class CountStep(NamedTuple):
    """A step attempt ended so (for metrics): succeeded, retrying or failed."""

    result: StepState
    seconds: float


class Finish(NamedTuple):
    """The execution is over: post ``entries`` (its last), then it is ``state``."""

    state: ExecutionState
    entries: tuple[LogEntry, ...]
    output_text: str | None  # the sinks' outputs as JSON text, when it succeeded
    error: str | None


Effect = Record | Launch | ArmRetry | CountStep | Finish


class _Out(NamedTuple):
    """A transition's result."""

    run: Run
    effects: list[Effect]


# -- creating and resuming ---------------------------------------------------------------------


def new_execution(
    *,
    execution_id: str,
    workflow: str,
    generation: int,
    spec: dict[str, Any],
    images: dict[str, Any],
    model: Workflow,
    dag: Dag,
    input: Any,
    input_text: str,
    trigger: str,
    key: str | None,
    queued: bool,
    at: datetime,
) -> tuple[Run, LogEntry]:
    """A new execution (queued, or running when its workflow has a free slot) and the entry
    that creates it with its steps."""
    state = ExecutionState.QUEUED if queued else ExecutionState.RUNNING
    timeout = model.spec.config.default_timeout
    assert isinstance(timeout, timedelta)
    record = ExecutionRecord(
        id=execution_id,
        workflow=workflow,
        generation=generation,
        spec=spec,
        images=images,
        state=state.value,
        trigger=trigger,
        trigger_key=key,
        input=input,
        output=None,
        error=None,
        created_at=at,
        started_at=None if queued else at,
        finished_at=None,
        deadline_at=at + timeout,
    )
    steps = [
        StepRecord(
            execution_id=execution_id,
            step=str(agent.name),
            state=StepState.PENDING.value,
            attempt=0,
            image=str(agent.image),
            image_sha256=(images.get(str(agent.image)) or {}).get("sha256"),
            output=None,
            error=None,
            log=None,
            started_at=None,
            finished_at=None,
            next_attempt_at=None,
        )
        for agent in model.spec.agents
    ]
    entry = LogEntry(
        execution_id=execution_id,
        type=EventType.of_execution(state),
        at=at,
        data={"trigger": trigger, "generation": generation, "key": key},
        create=(record, steps),
    )
    run = Run(
        id=execution_id,
        dag=dag,
        state=state,
        steps=dict.fromkeys(dag.order, StepProgress()),
        input_text=input_text,
        deadline_at=record.deadline_at or at,
    )
    return run, entry


def resume(
    record: ExecutionRecord, steps: Iterable[StepRecord], dag: Dag, *, at: datetime
) -> tuple[Run, list[Effect]]:
    """An unfinished execution from its rows, as this node takes it over: a step that was
    running when its node stopped runs again (at-least-once: ``step.requeued``), a retry keeps
    its time, a failed step means the execution fails once nothing runs."""
    progress = dict.fromkeys(dag.order, StepProgress())
    entries: list[LogEntry] = []
    effects: list[Effect] = []
    stop: ExecutionState | None = None
    error: str | None = None
    for row in steps:
        if row.step not in progress:
            continue
        state = StepState(row.state)
        output = None
        if state is StepState.SUCCEEDED:
            output = json.dumps(row.output)
        elif state is StepState.RUNNING:
            state = StepState.PENDING
            entries.append(
                LogEntry.step_event(
                    record.id,
                    EventType.STEP_REQUEUED,
                    row.step,
                    at=at,
                    attempt=row.attempt,
                    data={"reason": "its node stopped while it ran"},
                    state=StepState.PENDING.value,
                )
            )
        elif state is StepState.PENDING and row.next_attempt_at is not None:
            wait = (row.next_attempt_at - at).total_seconds()
            if wait > 0:
                state = StepState.RETRYING
                effects.append(ArmRetry(row.step, wait))
        elif state is StepState.FAILED and stop is None:
            stop, error = ExecutionState.FAILED, f"step {row.step} failed: {row.error}"
        progress[row.step] = StepProgress(
            state=state, attempt=row.attempt, output=output, error=row.error
        )
    run = Run(
        id=record.id,
        dag=dag,
        state=ExecutionState(record.state),
        steps=progress,
        input_text=json.dumps(record.input),
        deadline_at=record.deadline_at or record.created_at,
        stop=stop,
        error=error,
    )
    if entries:
        effects.insert(0, Record(tuple(entries)))
    return run, effects


def succeeded_entry(
    execution_id: str,
    step: str,
    attempt: int,
    *,
    output: str,
    log: str | None,
    data: dict[str, Any],
    at: datetime,
) -> LogEntry:
    """The entry recording a step's success (made where the step ran, so it can be committed
    there; the success is fed in as :class:`StepSucceeded` once it is durable)."""
    return LogEntry.step_event(
        execution_id,
        EventType.STEP_SUCCEEDED,
        step,
        at=at,
        attempt=attempt,
        data=data,
        state=StepState.SUCCEEDED.value,
        output=RawJson(output),
        log=log or None,
        error=None,
        finished_at=at,
    )


# -- the transition ----------------------------------------------------------------------------


def transition(run: Run, signal: Signal) -> tuple[Run, list[Effect]]:
    """What ``signal`` does to ``run``: its next state, and what must be done about it."""
    out: _Out
    if run.state.terminal:
        return run, []  # a late signal (a timer, a straggling step) changes nothing
    if isinstance(signal, StepSucceeded):
        out = _succeeded(run, signal)
    elif isinstance(signal, StepEnded):
        out = _ended(run, signal)
    elif isinstance(signal, Wake):
        out = _Out(run, [])
    elif isinstance(signal, Admit):
        out = _admit(run, signal)
    elif isinstance(signal, RetryDue):
        step = run.steps.get(signal.step)
        if step is None or step.state is not StepState.RETRYING:
            return run, []
        out = _Out(_set(run, signal.step, step._replace(state=StepState.PENDING)), [])
    elif isinstance(signal, DeadlineReached):
        if run.stop is not None:
            return run, []
        out = _Out(run._replace(stop=ExecutionState.TIMED_OUT, error=DEADLINE_ERROR), [])
    else:  # Cancel
        if run.stop is not None:
            return run, []
        out = _Out(run._replace(stop=ExecutionState.CANCELLED, error=signal.reason), [])
    return _advance(out.run, signal.at, out.effects)


def _set(run: Run, name: str, step: StepProgress) -> Run:
    steps = dict(run.steps)
    steps[name] = step
    return run._replace(steps=steps)


def _current(run: Run, name: str, attempt: int) -> StepProgress | None:
    """The step, if ``attempt`` is the one it is running (else the signal is stale)."""
    step = run.steps.get(name)
    if step is None or step.state is not _RUNNING or step.attempt != attempt:
        return None
    return step


def _admit(run: Run, signal: Admit) -> _Out:
    if run.state is not ExecutionState.QUEUED:
        return _Out(run, [])
    entry = LogEntry(
        execution_id=run.id,
        type=EventType.EXECUTION_RUNNING,
        at=signal.at,
        execution={"state": ExecutionState.RUNNING.value, "started_at": signal.at},
    )
    return _Out(run._replace(state=ExecutionState.RUNNING), [Record((entry,))])


def _succeeded(run: Run, signal: StepSucceeded) -> _Out:
    step = _current(run, signal.step, signal.attempt)
    if step is None:
        return _Out(run, [])
    done = StepProgress(StepState.SUCCEEDED, step.attempt, signal.output)
    return _Out(_set(run, signal.step, done), [CountStep(_SUCCEEDED, signal.elapsed)])


def backoff_seconds(rule: RetryRule, attempt: int, jitter: float) -> float:
    """Seconds before attempt ``attempt + 1``: the backoff capped at its maximum, times
    ``jitter`` (0.8-1.2, so a fleet's retries spread out)."""
    if rule.backoff is Backoff.EXPONENTIAL:
        delay = rule.initial * 2 ** (attempt - 1)
    elif rule.backoff is Backoff.LINEAR:
        delay = rule.initial * attempt
    else:
        delay = rule.initial
    return float(min(rule.maximum, delay) * jitter)


def _ended(run: Run, signal: StepEnded) -> _Out:
    step = _current(run, signal.step, signal.attempt)
    if step is None:
        return _Out(run, [])
    name, at = signal.step, signal.at
    rule = run.dag.retry.get(name)
    if (
        signal.transient
        and rule is not None
        and signal.attempt < rule.max_attempts
        and run.stop is None
    ):
        delay = backoff_seconds(rule, signal.attempt, signal.jitter)
        if at + timedelta(seconds=delay) < run.deadline_at:
            entry = LogEntry.step_event(
                run.id,
                EventType.STEP_RETRYING,
                name,
                at=at,
                attempt=signal.attempt,
                data={"error": signal.message, "delay_s": round(delay, 3)},
                state=StepState.PENDING.value,
                error=signal.message,
                log=signal.log,
                next_attempt_at=at + timedelta(seconds=delay),
            )
            waiting = step._replace(state=StepState.RETRYING, error=signal.message)
            return _Out(
                _set(run, name, waiting),
                [
                    Record((entry,)),
                    CountStep(StepState.RETRYING, signal.elapsed),
                    ArmRetry(name, delay),
                ],
            )
    entry = LogEntry.step_event(
        run.id,
        EventType.STEP_FAILED,
        name,
        at=at,
        attempt=signal.attempt,
        data={"error": signal.message, "detail": signal.detail[:4096]},
        state=StepState.FAILED.value,
        error=signal.message,
        log=signal.log,
        finished_at=at,
    )
    failed = _set(run, name, step._replace(state=StepState.FAILED, error=signal.message))
    if run.stop is None:
        cut_short = signal.timed_out and at >= run.deadline_at - DEADLINE_SLACK
        if cut_short:
            failed = failed._replace(stop=ExecutionState.TIMED_OUT, error=DEADLINE_ERROR)
        else:
            failed = failed._replace(
                stop=ExecutionState.FAILED, error=f"step {name} failed: {signal.message}"
            )
    return _Out(failed, [Record((entry,)), CountStep(StepState.FAILED, signal.elapsed)])


def _advance(run: Run, at: datetime, effects: list[Effect]) -> tuple[Run, list[Effect]]:
    """Launch what is ready; end the execution when nothing runs and nothing more will."""
    if run.stop is None:
        if run.state is _QUEUED:
            return run, effects  # waiting for its slot
        ready = run.ready()
        if ready:
            steps = dict(run.steps)
            started = []
            execution_id = run.id
            for name in ready:
                attempt = steps[name].attempt + 1
                steps[name] = StepProgress(_RUNNING, attempt)
                started.append(
                    LogEntry.step_event(
                        execution_id,
                        _STARTED,
                        name,
                        at=at,
                        attempt=attempt,
                        state=_RUNNING_TEXT,
                        started_at=at,
                    )
                )
            run = run._replace(steps=steps)
            effects.append(Record(tuple(started), lazy=True))
            effects.extend([Launch(n, steps[n].attempt, run.payload(n)) for n in ready])
            return run, effects  # (what was just launched runs)
    waiting = False  # a step will run later (a retry timer will wake it)
    for step in run.steps.values():
        state = step.state
        if state is _RUNNING:
            return run, effects
        if state is _PENDING or state is _RETRYING:
            waiting = True
    if run.stop is None and waiting:
        return run, effects
    return _settle(run, at, effects)


def _settle(run: Run, at: datetime, effects: list[Effect]) -> tuple[Run, list[Effect]]:
    final = run.stop or ExecutionState.SUCCEEDED
    left_as = StepState.CANCELLED if final is ExecutionState.CANCELLED else StepState.SKIPPED
    kind = EventType.STEP_CANCELLED if left_as is StepState.CANCELLED else EventType.STEP_SKIPPED
    steps = dict(run.steps)
    entries = []
    for name in run.dag.order:
        if steps[name].state in (StepState.PENDING, StepState.RETRYING):
            steps[name] = steps[name]._replace(state=left_as)
            entries.append(
                LogEntry.step_event(
                    run.id,
                    kind,
                    name,
                    at=at,
                    data={"reason": run.error},
                    state=stored_step_state(left_as),
                    finished_at=at,
                )
            )
    output = run.outputs_text(run.dag.sinks) if final is ExecutionState.SUCCEEDED else None
    entries.append(
        LogEntry(
            execution_id=run.id,
            type=EventType.of_execution(final),
            at=at,
            data={"error": run.error} if run.error else None,
            execution={
                "state": final.value,
                "output": RawJson(output) if output is not None else None,
                "error": run.error,
                "finished_at": at,
            },
        )
    )
    done = run._replace(state=final, steps=steps)
    effects.append(Finish(final, tuple(entries), output, run.error))
    return done, effects


# -- the history, folded -----------------------------------------------------------------------


def fold(record: ExecutionRecord, dag: Dag, events: Iterable[EventRecord]) -> Run:
    """The execution as its ``events`` leave it (pass the events up to an instant for the
    state at that instant). Step outputs are not in the events: a succeeded step's ``output``
    is None here (the step's row has it)."""
    steps: dict[str, StepProgress] = dict.fromkeys(dag.order, StepProgress())
    state = ExecutionState.QUEUED
    stop: ExecutionState | None = None
    error: str | None = None
    for event in events:
        kind = EventType(event.type)
        data = event.data if isinstance(event.data, dict) else {}
        if kind.value.startswith("execution."):
            state = ExecutionState(kind.value[10:])
            if state.terminal:
                error = data.get("error")
            continue
        name = event.step
        if name is None or name not in steps or kind is EventType.STEP_HOST_CALL:
            continue
        step = steps[name]
        attempt = event.attempt if event.attempt is not None else step.attempt
        if kind is EventType.STEP_STARTED:
            step = step._replace(state=StepState.RUNNING, attempt=attempt)
        elif kind is EventType.STEP_SUCCEEDED:
            step = step._replace(state=StepState.SUCCEEDED, attempt=attempt, error=None)
        elif kind is EventType.STEP_RETRYING:
            step = step._replace(state=StepState.RETRYING, error=data.get("error"))
        elif kind is EventType.STEP_REQUEUED:
            step = step._replace(state=StepState.PENDING)
        elif kind is EventType.STEP_FAILED:
            step = step._replace(state=StepState.FAILED, error=data.get("error"))
            if stop is None:
                stop = ExecutionState.FAILED
        elif kind is EventType.STEP_SKIPPED:
            step = step._replace(state=StepState.SKIPPED)
        elif kind is EventType.STEP_CANCELLED:
            step = step._replace(state=StepState.CANCELLED)
        steps[name] = step
    return Run(
        id=record.id,
        dag=dag,
        state=state,
        steps=steps,
        input_text=json.dumps(record.input),
        deadline_at=record.deadline_at or record.created_at,
        stop=state if state.terminal else stop,
        error=error,
    )
