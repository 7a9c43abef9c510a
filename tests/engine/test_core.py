"""The execution state machine, table-driven: (run, signal) -> (run, effects), no I/O at all."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentflowd.engine import core
from agentflowd.engine.core import (
    Admit,
    ArmRetry,
    Cancel,
    CountStep,
    Dag,
    DeadlineReached,
    Finish,
    Launch,
    Record,
    RetryDue,
    RetryRule,
    Run,
    StepEnded,
    StepProgress,
    StepSucceeded,
    Wake,
    transition,
)
from agentflowd.engine.records import EventRecord, ExecutionRecord, LogEntry, StepRecord
from agentflowd.engine.states import EventType, ExecutionState, StepState
from agentflowd.manifest.model import Backoff

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
P, R, S, F = StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED, StepState.FAILED
RETRY3 = RetryRule(max_attempts=3, backoff=Backoff.EXPONENTIAL, initial=1.0, maximum=10.0)


def dag(deps: dict[str, tuple[str, ...]], retry: RetryRule | None = RETRY3) -> Dag:
    needed = {d for ds in deps.values() for d in ds}
    return Dag(
        order=tuple(deps),
        depends_on=deps,
        retry=dict.fromkeys(deps, retry),
        sinks=tuple(n for n in deps if n not in needed),
    )


CHAIN = dag({"a": (), "b": ("a",), "c": ("b",)})
DIAMOND = dag({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")})


def run(
    shape: Dag = CHAIN,
    states: dict[str, StepState] | None = None,
    *,
    state: ExecutionState = ExecutionState.RUNNING,
    attempts: dict[str, int] | None = None,
    stop: ExecutionState | None = None,
    deadline: float = 60.0,
) -> Run:
    steps = {}
    for name in shape.order:
        s = (states or {}).get(name, P)
        attempt = (attempts or {}).get(name, 1 if s is not P else 0)
        output = json.dumps({"from": name}) if s is S else None
        steps[name] = StepProgress(state=s, attempt=attempt, output=output)
    return Run(
        id="x1",
        dag=shape,
        state=state,
        steps=steps,
        input_text='{"q": 1}',
        deadline_at=T0 + timedelta(seconds=deadline),
        stop=stop,
    )


def at(seconds: float = 1.0) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ended(step: str, attempt: int = 1, *, transient: bool = True, **kw: Any) -> StepEnded:
    fields: dict[str, Any] = {"at": at(), "timed_out": False, "message": "boom"}
    fields.update(kw)
    return StepEnded(step=step, attempt=attempt, transient=transient, **fields)


def ok(step: str, attempt: int = 1) -> StepSucceeded:
    return StepSucceeded(step=step, attempt=attempt, output='{"ok": true}', elapsed=0.1, at=at())


def kinds(effects: list[core.Effect]) -> list[str]:
    """Effects in short: launch:b, retry:a@2.0, record:step.failed, count:failed, finish:failed."""
    out = []
    for e in effects:
        if isinstance(e, Launch):
            out.append(f"launch:{e.step}#{e.attempt}")
        elif isinstance(e, ArmRetry):
            out.append(f"retry:{e.step}@{e.delay:g}")
        elif isinstance(e, Record):
            out.extend(f"record:{x.type}{'~' if e.lazy else ''}" for x in e.entries)
        elif isinstance(e, CountStep):
            out.append(f"count:{e.result}")
        elif isinstance(e, Finish):
            out.extend(f"record:{x.type}" for x in e.entries)
            out.append(f"finish:{e.state}")
    return out


def states(r: Run) -> str:
    return " ".join(f"{n}={s.state.value}" for n, s in r.steps.items())


# (why, run before, signal, states after, execution state after, effects)
TABLE = [
    (
        "a wake starts the roots",
        run(DIAMOND),
        Wake(at()),
        "a=running b=pending c=pending d=pending",
        "running",
        ["record:step.started~", "launch:a#1"],
    ),
    (
        "a success starts the steps that waited only for it, together",
        run(DIAMOND, {"a": R}),
        ok("a"),
        "a=succeeded b=running c=running d=pending",
        "running",
        [
            "count:succeeded",
            "record:step.started~",
            "record:step.started~",
            "launch:b#1",
            "launch:c#1",
        ],
    ),
    (
        "a join waits for every dependency",
        run(DIAMOND, {"a": S, "b": R, "c": R}),
        ok("b"),
        "a=succeeded b=succeeded c=running d=pending",
        "running",
        ["count:succeeded"],
    ),
    (
        "the last success ends the execution",
        run(CHAIN, {"a": S, "b": S, "c": R}),
        ok("c"),
        "a=succeeded b=succeeded c=succeeded",
        "succeeded",
        ["count:succeeded", "record:execution.succeeded", "finish:succeeded"],
    ),
    (
        "a transient failure with attempts left is retried after its backoff",
        run(CHAIN, {"a": R}),
        ended("a", 1),
        "a=retrying b=pending c=pending",
        "running",
        ["record:step.retrying", "count:retrying", "retry:a@1"],
    ),
    (
        "exponential backoff doubles per attempt",
        run(CHAIN, {"a": R}, attempts={"a": 2}),
        ended("a", 2),
        "a=retrying b=pending c=pending",
        "running",
        ["record:step.retrying", "count:retrying", "retry:a@2"],
    ),
    (
        "jitter scales the delay",
        run(CHAIN, {"a": R}),
        ended("a", 1, jitter=1.2),
        "a=retrying b=pending c=pending",
        "running",
        ["record:step.retrying", "count:retrying", "retry:a@1.2"],
    ),
    (
        "the last attempt's failure fails the execution and skips the rest",
        run(CHAIN, {"a": R}, attempts={"a": 3}),
        ended("a", 3),
        "a=failed b=skipped c=skipped",
        "failed",
        [
            "record:step.failed",
            "count:failed",
            "record:step.skipped",
            "record:step.skipped",
            "record:execution.failed",
            "finish:failed",
        ],
    ),
    (
        "a permanent failure is not retried",
        run(CHAIN, {"a": R}),
        ended("a", 1, transient=False),
        "a=failed b=skipped c=skipped",
        "failed",
        [
            "record:step.failed",
            "count:failed",
            "record:step.skipped",
            "record:step.skipped",
            "record:execution.failed",
            "finish:failed",
        ],
    ),
    (
        "a retry that would fall after the deadline is not made",
        run(CHAIN, {"a": R}, deadline=1.5),
        ended("a", 1),
        "a=failed b=skipped c=skipped",
        "failed",
        [
            "record:step.failed",
            "count:failed",
            "record:step.skipped",
            "record:step.skipped",
            "record:execution.failed",
            "finish:failed",
        ],
    ),
    (
        "a failure while a sibling runs waits for it before ending",
        run(DIAMOND, {"a": S, "b": R, "c": R}),
        ended("b", 1, transient=False),
        "a=succeeded b=failed c=running d=pending",
        "running",
        ["record:step.failed", "count:failed"],
    ),
    (
        "the sibling's end then ends the execution as failed, its success kept",
        run(DIAMOND, {"a": S, "b": F, "c": R}, stop=ExecutionState.FAILED),
        ok("c"),
        "a=succeeded b=failed c=succeeded d=skipped",
        "failed",
        ["count:succeeded", "record:step.skipped", "record:execution.failed", "finish:failed"],
    ),
    (
        "a step timed out at the deadline times the execution out",
        run(CHAIN, {"a": R}, deadline=1.0),
        ended("a", 1, transient=False, timed_out=True),
        "a=failed b=skipped c=skipped",
        "timed_out",
        [
            "record:step.failed",
            "count:failed",
            "record:step.skipped",
            "record:step.skipped",
            "record:execution.timed_out",
            "finish:timed_out",
        ],
    ),
    (
        "a step timed out on its own (before the deadline) fails it",
        run(CHAIN, {"a": R}, attempts={"a": 3}),
        ended("a", 3, timed_out=True),
        "a=failed b=skipped c=skipped",
        "failed",
        [
            "record:step.failed",
            "count:failed",
            "record:step.skipped",
            "record:step.skipped",
            "record:execution.failed",
            "finish:failed",
        ],
    ),
    (
        "the deadline while a step runs waits for that step",
        run(CHAIN, {"a": R}),
        DeadlineReached(at(60)),
        "a=running b=pending c=pending",
        "running",
        [],
    ),
    (
        "the deadline with nothing running ends it at once",
        run(CHAIN, {"a": StepState.RETRYING}),
        DeadlineReached(at(60)),
        "a=skipped b=skipped c=skipped",
        "timed_out",
        [
            "record:step.skipped",
            "record:step.skipped",
            "record:step.skipped",
            "record:execution.timed_out",
            "finish:timed_out",
        ],
    ),
    (
        "a cancel with a step running stops scheduling",
        run(CHAIN, {"a": R}),
        Cancel(at()),
        "a=running b=pending c=pending",
        "running",
        [],
    ),
    (
        "a cancelled execution's running step ends it; the rest is cancelled",
        run(CHAIN, {"a": R}, stop=ExecutionState.CANCELLED),
        ok("a"),
        "a=succeeded b=cancelled c=cancelled",
        "cancelled",
        [
            "count:succeeded",
            "record:step.cancelled",
            "record:step.cancelled",
            "record:execution.cancelled",
            "finish:cancelled",
        ],
    ),
    (
        "a queued execution waits for its slot",
        run(CHAIN, state=ExecutionState.QUEUED),
        Wake(at()),
        "a=pending b=pending c=pending",
        "queued",
        [],
    ),
    (
        "a slot starts it",
        run(CHAIN, state=ExecutionState.QUEUED),
        Admit(at()),
        "a=running b=pending c=pending",
        "running",
        ["record:execution.running", "record:step.started~", "launch:a#1"],
    ),
    (
        "a queued execution cancelled ends at once",
        run(CHAIN, state=ExecutionState.QUEUED),
        Cancel(at()),
        "a=cancelled b=cancelled c=cancelled",
        "cancelled",
        [
            "record:step.cancelled",
            "record:step.cancelled",
            "record:step.cancelled",
            "record:execution.cancelled",
            "finish:cancelled",
        ],
    ),
    (
        "a retry timer starts the next attempt",
        run(CHAIN, {"a": StepState.RETRYING}),
        RetryDue("a", at(2)),
        "a=running b=pending c=pending",
        "running",
        ["record:step.started~", "launch:a#2"],
    ),
    (
        "a stale retry timer does nothing",
        run(CHAIN, {"a": R}),
        RetryDue("a", at(2)),
        "a=running b=pending c=pending",
        "running",
        [],
    ),
    (
        "a straggling attempt's end does nothing",
        run(CHAIN, {"a": R}, attempts={"a": 2}),
        ok("a", attempt=1),
        "a=running b=pending c=pending",
        "running",
        [],
    ),
    (
        "a finished execution ignores everything",
        run(CHAIN, {"a": S, "b": S, "c": S})._replace(state=ExecutionState.SUCCEEDED),
        Cancel(at()),
        "a=succeeded b=succeeded c=succeeded",
        "succeeded",
        [],
    ),
]


@pytest.mark.parametrize(("why", "before", "signal", "after", "state", "effects"), TABLE)
def test_transition(why, before, signal, after, state, effects):
    new, out = transition(before, signal)
    assert (states(new), new.state.value, kinds(out)) == (after, state, effects), why


def test_a_step_gets_the_input_and_its_dependencies_outputs_as_written():
    before = run(DIAMOND, {"a": S, "b": S, "c": S})
    _, out = transition(before, Wake(at()))
    launch = next(e for e in out if isinstance(e, Launch))
    assert launch.step == "d"
    assert json.loads(launch.input_json) == {
        "input": {"q": 1},
        "steps": {"b": {"from": "b"}, "c": {"from": "c"}},
    }


def test_the_output_is_the_sinks_outputs_and_the_end_records_it():
    before = run(DIAMOND, {"a": S, "b": S, "c": S, "d": R})
    _, out = transition(before, ok("d"))
    finish = out[-1]
    assert isinstance(finish, Finish)
    assert finish.output_text is not None and json.loads(finish.output_text) == {"d": {"ok": True}}
    end = finish.entries[-1]
    assert end.type is EventType.EXECUTION_SUCCEEDED
    assert end.execution["state"] == "succeeded" and end.execution["finished_at"] == at()


def test_a_retry_records_when_it_is_due_and_why():
    _, out = transition(run(CHAIN, {"a": R}), ended("a", 1, message="flaky"))
    assert isinstance(out[0], Record)
    entry = out[0].entries[0]
    assert entry.steps["a"] == {
        "state": "pending",
        "error": "flaky",
        "log": None,
        "next_attempt_at": at() + timedelta(seconds=1),
        "attempt": 1,
    }


def test_failure_names_the_step_and_its_error():
    new, out = transition(run(CHAIN, {"a": R}), ended("a", 1, transient=False, message="nope"))
    assert new.error == "step a failed: nope"
    assert isinstance(out[-1], Finish) and out[-1].error == "step a failed: nope"


def test_backoff_kinds_and_cap():
    linear = RetryRule(max_attempts=9, backoff=Backoff.LINEAR, initial=2, maximum=5)
    fixed = RetryRule(max_attempts=9, backoff=Backoff.FIXED, initial=2, maximum=5)
    expo = RetryRule(max_attempts=9, backoff=Backoff.EXPONENTIAL, initial=2, maximum=5)
    assert [core.backoff_seconds(linear, n, 1.0) for n in (1, 2, 3)] == [2, 4, 5]
    assert [core.backoff_seconds(fixed, n, 1.0) for n in (1, 2, 3)] == [2, 2, 2]
    assert [core.backoff_seconds(expo, n, 1.0) for n in (1, 2, 3)] == [2, 4, 5]


def record(state: str = "running") -> ExecutionRecord:
    return ExecutionRecord(
        id="x1",
        workflow="w",
        generation=1,
        spec={},
        images={},
        state=state,
        trigger="manual",
        trigger_key=None,
        input={"q": 1},
        output=None,
        error=None,
        created_at=T0,
        started_at=T0,
        finished_at=None,
        deadline_at=T0 + timedelta(seconds=60),
    )


def row(step: str, state: str, attempt: int = 1, **kw: Any) -> StepRecord:
    fields: dict[str, Any] = {
        "image": "i",
        "image_sha256": None,
        "output": None,
        "error": None,
        "log": None,
        "started_at": None,
        "finished_at": None,
        "next_attempt_at": None,
    }
    fields.update(kw)
    return StepRecord(execution_id="x1", step=step, state=state, attempt=attempt, **fields)


def test_resume_runs_a_step_its_node_lost_again_and_keeps_successes():
    rows = [row("a", "succeeded", output={"v": 1}), row("b", "running", 2), row("c", "pending", 0)]
    resumed, effects = core.resume(record(), rows, CHAIN, at=at(5))
    assert states(resumed) == "a=succeeded b=pending c=pending"
    assert kinds(effects) == ["record:step.requeued"]
    new, out = transition(resumed, Wake(at(5)))
    assert kinds(out) == ["record:step.started~", "launch:b#3"]
    launch = out[1]
    assert isinstance(launch, Launch) and json.loads(launch.input_json)["steps"] == {"a": {"v": 1}}


def test_resume_keeps_a_retry_time_and_a_failure():
    later = at(5) + timedelta(seconds=3)
    rows = [row("a", "pending", 1, next_attempt_at=later)]
    resumed, effects = core.resume(record(), rows, CHAIN, at=at(5))
    assert states(resumed).startswith("a=retrying") and kinds(effects) == ["retry:a@3"]
    failed, _ = core.resume(record(), [row("a", "failed", 3, error="bad")], CHAIN, at=at(5))
    assert failed.stop is ExecutionState.FAILED and failed.error == "step a failed: bad"
    _, out = transition(failed, Wake(at(5)))
    assert kinds(out)[-1] == "finish:failed"


def test_folding_the_history_gives_the_state_at_each_instant():
    """Drive an execution through the table's kinds of signal; fold the entries it recorded
    (as events) at every point, and get the state the machine had then."""
    current = run(DIAMOND, state=ExecutionState.QUEUED)
    events: list[EventRecord] = []
    script: list[core.Signal] = [
        Admit(at(0)),
        ok("a"),
        ended("b", 1),
        RetryDue("b", at(3)),
        ok("c"),
        ok("b", 2),
        ended("d", 1, transient=False),
    ]
    for signal in script:
        current, effects = transition(current, signal)
        recorded: list[LogEntry] = []
        if isinstance(signal, StepSucceeded):  # (the executor records a success: see _work)
            recorded.append(
                core.succeeded_entry(
                    "x1", signal.step, signal.attempt, output="1", log=None, data={}, at=signal.at
                )
            )
        for effect in effects:
            recorded.extend(effect.entries if isinstance(effect, (Record, Finish)) else ())
        if recorded:
            entries = recorded
            for entry in entries:
                events.append(
                    EventRecord(
                        execution_id="x1",
                        seq=len(events) + 1,
                        at=entry.at,
                        type=str(entry.type),
                        step=entry.step,
                        attempt=entry.attempt,
                        data=entry.data,
                    )
                )
        folded = core.fold(record(), DIAMOND, events)
        assert states(folded) == states(current), signal
        assert folded.state is current.state
        assert [s.attempt for s in folded.steps.values()] == [
            s.attempt for s in current.steps.values()
        ]
    assert current.state is ExecutionState.FAILED
