"""The engine without a database, a sandbox or the real clock: the in-memory log, a fake clock and
scripted steps. Tests on it run in milliseconds and do not care how loaded the machine is."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agentflowd.engine import Engine, FakeClock, MemoryLog, StepJob
from agentflowd.manifest import canonical_dict, load_sources, spec_hash
from agentflowd.manifest.load import SourceFile
from agentflowd.store import HistoryAction, MemoryStore, Origin, Store, WorkflowWrite
from sandbox import OutcomeKind, StepReport
from sandbox.outcome import Outcome

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

#: What a scripted step does with its job: returns an outcome (blocking as long as it likes).
Script = Callable[[StepJob], Outcome]


def ok(output: str = '{"ok": true}') -> Script:
    return lambda job: Outcome(kind=OutcomeKind.OK, output=output)


def echo() -> Script:
    """Returns what it was given (its input and its dependencies' outputs)."""
    return lambda job: Outcome(kind=OutcomeKind.OK, output=job.input_json)


def fail(kind: OutcomeKind = OutcomeKind.AGENT_ERROR, detail: str = "boom") -> Script:
    return lambda job: Outcome(kind=kind, detail=detail)


def attempts(*scripts: Script) -> Script:
    """Attempt n runs ``scripts[n - 1]`` (the last one from then on)."""
    return lambda job: scripts[min(job.attempt, len(scripts)) - 1](job)


@dataclass
class Gate:
    """A step that waits until the test opens it, then does ``then``."""

    then: Script = field(default_factory=ok)
    entered: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    def __call__(self, job: StepJob) -> Outcome:
        self.entered.set()
        if not self.opened.wait(30):
            raise AssertionError("the gate was never opened")
        return self.then(job)


class ScriptedSteps:
    """A step runner that runs each step's script; counts the attempts it ran."""

    def __init__(self, scripts: dict[str, Script] | None = None) -> None:
        self.scripts = scripts or {}
        self.ran: Counter[str] = Counter()
        self.jobs: list[StepJob] = []

    def run(self, job: StepJob) -> StepReport:
        name = str(job.agent.name)
        self.ran[name] += 1
        self.jobs.append(job)
        outcome = self.scripts.get(name, ok())(job)
        return StepReport(outcome=outcome, elapsed_seconds=0.001, fuel_used=0)


def manifest(name: str, steps: dict[str, tuple[str, ...]], config: str = "") -> str:
    agents = []
    for step, deps in steps.items():
        agents.append(f"    - name: {step}\n      image: agents/x:v1")
        if deps:
            agents.append(f"      dependsOn: [{', '.join(deps)}]")
    return (
        f"apiVersion: agentflow.io/v1\nkind: Workflow\nmetadata:\n  name: {name}\n"
        f"spec:\n  agents:\n" + "\n".join(agents) + "\n  config:\n"
        "    retryPolicy: {maxAttempts: 3, backoff: exponential, initialDelay: 1s, maxDelay: 10s}\n"
        + "".join(f"    {line}\n" for line in config.splitlines())
    )


def install(store: Store, text: str) -> str:
    report = load_sources([SourceFile(path="w.yaml", data=text.encode())])
    assert report.valid, [d.format() for d in report.diagnostics]
    workflow = report.manifests[0].workflow
    assert workflow is not None
    store.put_workflow(
        WorkflowWrite(
            name=workflow.name,
            origin=Origin.GIT,
            spec=canonical_dict(workflow),
            spec_hash=spec_hash(workflow),
            images={},
        ),
        action=HistoryAction.CREATE,
        now=T0,
    )
    return workflow.name


@dataclass
class Fake:
    engine: Engine
    log: MemoryLog
    store: MemoryStore
    clock: FakeClock
    steps: ScriptedSteps


@asynccontextmanager
async def fake_engine(
    steps: ScriptedSteps | None = None,
    *,
    log: MemoryLog | None = None,
    store: MemoryStore | None = None,
    clock: FakeClock | None = None,
) -> AsyncIterator[Fake]:
    """An engine on the in-memory log and store, a fake clock and scripted steps; jitter 1."""
    fake = Fake(
        engine=None,  # type: ignore[arg-type]
        log=log or MemoryLog(),
        store=store or MemoryStore(),
        clock=clock or FakeClock(T0),
        steps=steps or ScriptedSteps(),
    )
    fake.engine = Engine(
        store=fake.store,
        log=fake.log,
        runner=fake.steps,
        clock=fake.clock,
        workers=4,
        jitter=lambda: 1.0,
    )
    await fake.engine.start()
    try:
        yield fake
    finally:
        await fake.engine.close()
