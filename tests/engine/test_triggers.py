"""Triggers: schedule slots fire once (across restarts too), misfires are skipped, suspended
workflows do not fire; webhook signatures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentflowd.engine.deliveries import resolve_secret, signature_ok
from agentflowd.engine.triggers import ScheduleEntry, Scheduler, TriggerIndex, TriggerTable
from agentflowd.manifest import canonical_dict, load_sources, spec_hash
from agentflowd.manifest.cron import CronSchedule, normalize_cron, parse_cron
from agentflowd.manifest.load import SourceFile
from agentflowd.store import HistoryAction, MemoryStore, Origin, StoredWorkflow, WorkflowWrite
from sandbox import SandboxEngine
from sandbox.isolate import ProcessSandbox
from sandbox.python import PythonRuntime
from tests.engine.harness import agent, harness, manifest
from tests.sandbox import wat


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def parts():
    sandbox = SandboxEngine()
    processes = ProcessSandbox()
    yield sandbox, processes, PythonRuntime(sandbox)
    processes.close()
    sandbox.close()


def text() -> str:
    return manifest("cron", agent("a", "agents/echo:v1")).replace(
        "  config:\n", "  triggers:\n    - schedule: '*/5 * * * *'\n  config:\n", 1
    )


def test_each_slot_fires_once_across_restarts_and_late_slots_are_skipped(tmp_path: Path, parts):
    url = str(tmp_path / "e.db")

    async def main() -> None:
        async with harness(url, sandbox=parts[0], processes=parts[1], python=parts[2]) as h:
            h.install(text(), {"agents/echo:v1": ("wasm", wat.ECHO.encode())})
            table = TriggerIndex().refresh(h.store)
            assert [(e.workflow, e.index) for e in table.schedules] == [("cron", 0)]
            started: list[str] = []

            async def fire(entry, slot) -> None:
                record = await h.engine.run(
                    entry.workflow,
                    {"scheduled_at": slot.isoformat()},
                    trigger="schedule",
                    key=f"schedule:{entry.workflow}:{entry.index}:{slot.isoformat()}",
                )
                started.append(record.id)

            clock = Clock(datetime(2026, 11, 24, 9, 0, 20, tzinfo=UTC))
            scheduler = Scheduler(fire, clock=clock)
            scheduler.update(table)  # first start: the 09:00 slot is 20 s old, within the grace
            wait = await scheduler.tick()
            assert len(started) == 1 and wait == pytest.approx(280)
            assert await scheduler.tick() == pytest.approx(280) and len(started) == 1
            clock.now += timedelta(seconds=280)  # 09:05
            await scheduler.tick()
            assert len(started) == 2
            # a restart right after: a new scheduler sees 09:05 again; its key starts nothing new
            again = Scheduler(fire, clock=clock)
            again.update(table)
            await again.tick()
            assert len(set(started)) == 2 and len(h.journal.executions(workflow="cron")) == 2
            # down for an hour: the missed slots are older than the grace and are skipped; the
            # current one (10:05, now) fires
            clock.now += timedelta(hours=1)
            await scheduler.tick()
            assert scheduler.skipped == 11 and len(set(started)) == 3
            for execution in set(started):
                assert (await h.engine.wait(execution)).state == "succeeded"
            # a suspended workflow has no triggers
            h.store.set_suspended("cron", True, now=datetime.now(UTC))
            assert TriggerIndex().refresh(h.store).schedules == ()

    asyncio.run(main())


def test_a_tick_computes_next_slots_only_for_the_schedules_that_fired(monkeypatch):
    computed: list[str] = []
    real = CronSchedule.next_fire_times

    def counted(self: CronSchedule, after: datetime, count: int = 3) -> list[datetime]:
        computed.append(self.expression)
        return real(self, after, count)

    monkeypatch.setattr(CronSchedule, "next_fire_times", counted)
    # 300 workflows, one fires at each minute past nine (w0 at 09:00, w1 at 09:01, ...)
    table = TriggerTable.build(
        ((), (ScheduleEntry(f"w{i}", 0, parse_cron(f"{i % 60} {9 + i // 60} * * *", "UTC")),))
        for i in range(300)
    )
    fired: list[tuple[str, datetime]] = []

    async def fire(entry: ScheduleEntry, slot: datetime) -> None:
        fired.append((entry.workflow, slot))

    async def main() -> None:
        clock = Clock(datetime(2026, 11, 24, 8, 59, 30, tzinfo=UTC))
        scheduler = Scheduler(fire, clock=clock, misfire_grace=timedelta(minutes=5))
        scheduler.update(table)
        assert len(computed) == 300  # once each, as they are added
        assert await scheduler.tick() == pytest.approx(30) and fired == []
        scheduler.update(table)  # a reconcile pass that changed nothing
        assert len(computed) == 300
        clock.now = datetime(2026, 11, 24, 9, 2, tzinfo=UTC)
        await scheduler.tick()
        assert [w for w, _ in fired] == ["w0", "w1", "w2"]  # in slot order
        assert [slot.minute for _, slot in fired] == [0, 1, 2]
        assert len(computed) == 303  # only the three that fired looked for their next slot
        changed = TriggerTable.build(
            [((), (ScheduleEntry("w299", 0, parse_cron("*/5 * * * *", "UTC")),))]
        )
        scheduler.update(changed)  # a new cron for w299: its next slot is 09:05
        assert await scheduler.tick() == pytest.approx(180)

    asyncio.run(main())


def test_signatures_and_secrets(tmp_path: Path):
    secret = b"s3cret"
    body = b'{"ticket": 1}'
    good = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert signature_ok(secret, body, {"x-agentflow-signature-256": good})
    assert signature_ok(secret, body, {"x-hub-signature-256": good.upper().replace("SHA", "sha")})
    assert not signature_ok(secret, body + b" ", {"x-agentflow-signature-256": good})
    assert not signature_ok(secret, body, {})
    (tmp_path / "hook-secret").write_text("from-file\n", encoding="utf-8")
    assert resolve_secret("hook-secret", {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == b"from-file"
    assert resolve_secret("hook-secret", {"AGENTFLOW_SECRET_HOOK_SECRET": "env"}) == b"env"
    assert resolve_secret("nope", {}) is None


def test_the_trigger_index_reads_again_only_what_changed():
    store = MemoryStore()
    now = datetime(2026, 11, 24, tzinfo=UTC)

    def put(name: str, cron: str) -> None:
        source = text().replace("name: cron", f"name: {name}").replace("*/5 * * * *", cron)
        workflow = load_sources([SourceFile(path="w.yaml", data=source.encode())]).manifests[0]
        assert workflow.workflow is not None
        store.put_workflow(
            WorkflowWrite(
                name=name,
                origin=Origin.GIT,
                spec=canonical_dict(workflow.workflow),
                spec_hash=spec_hash(workflow.workflow),
            ),
            action=HistoryAction.CREATE,
            now=now,
        )

    reads: list[str] = []
    get = store.get_workflow

    def counted(name: str) -> StoredWorkflow:
        reads.append(name)
        return get(name)

    store.get_workflow = counted  # type: ignore[method-assign]
    for name in ("a", "b", "c"):
        put(name, "*/5 * * * *")
    index = TriggerIndex()

    def crons() -> dict[str, str]:
        table = index.refresh(store)
        return {e.workflow: e.schedule.canonical for e in table.schedules}

    five, hourly = normalize_cron("*/5 * * * *"), normalize_cron("0 * * * *")

    assert crons() == dict.fromkeys("abc", five) and sorted(reads) == ["a", "b", "c"]
    reads.clear()
    assert crons() == dict.fromkeys("abc", five) and reads == []  # nothing moved
    put("b", "0 * * * *")  # a new version
    store.set_suspended("c", True, now=now)
    store.delete_workflow("a")
    assert crons() == {"b": hourly} and sorted(reads) == ["b", "c"]
    store.set_suspended("c", False, now=now)
    assert crons() == {"b": hourly, "c": five}
