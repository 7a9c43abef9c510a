"""Triggers: schedule slots fire once (across restarts too), misfires are skipped, suspended
workflows do not fire; webhook signatures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentflowd.engine.triggers import (
    Scheduler,
    TriggerTable,
    resolve_secret,
    signature_ok,
)
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
            table = TriggerTable.from_workflows(h.store.workflows().values())
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
            assert TriggerTable.from_workflows(h.store.workflows().values()).schedules == ()

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
