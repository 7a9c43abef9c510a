"""Triggers: cron schedules and webhooks of the applied workflows.

The :class:`TriggerTable` is refreshed from the store after every reconcile pass and operator
action (by a :class:`TriggerIndex`, which reads again only what changed), so a workflow's
triggers follow its reconciled version; a suspended workflow's triggers do not fire.

**Schedules** are computed by APScheduler's cron triggers (built by
:mod:`agentflowd.manifest.cron` from crontab syntax, in the schedule's time zone). Each slot
starts at most one execution: its trigger key ``schedule:WORKFLOW:N:SLOT`` is unique in the
database, so a slot fired before a restart is not fired again after it. A slot missed while the
daemon was down fires at start if it is less than ``misfire_grace`` old; older ones are skipped.

**Webhooks** answer at the manifest's path and method; whether a request may start an execution
(its signature, its timestamp, a replay) is :mod:`agentflowd.engine.deliveries`'s to decide.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agentflowd.errors import WorkflowNotFound
from agentflowd.manifest.cron import CronSchedule
from agentflowd.manifest.model import Workflow
from agentflowd.store import Store, StoredWorkflow

__all__ = ["ScheduleEntry", "Scheduler", "TriggerIndex", "TriggerTable", "WebhookRoute"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookRoute:
    """A webhook trigger: where it listens and what it starts."""

    workflow: str
    method: str
    path: str
    secret: str | None  # credential name
    unsigned: bool = False  # the manifest says `unsigned: true`


@dataclass(frozen=True)
class ScheduleEntry:
    """A schedule trigger of a workflow (``index`` among its triggers)."""

    workflow: str
    index: int
    schedule: CronSchedule

    @property
    def identity(self) -> tuple[str, int, str, str]:
        return (self.workflow, self.index, self.schedule.canonical, self.schedule.timezone)


@dataclass(frozen=True)
class TriggerTable:
    """Every active trigger of the applied workflows."""

    webhooks: Mapping[tuple[str, str], WebhookRoute] = field(default_factory=dict)
    schedules: tuple[ScheduleEntry, ...] = ()

    @classmethod
    def build(cls, parts: Iterable[_Triggers]) -> TriggerTable:
        """A table of workflows' triggers, in order (the first webhook on a path wins)."""
        hooks: dict[tuple[str, str], WebhookRoute] = {}
        schedules: list[ScheduleEntry] = []
        for routes, entries in parts:
            for route in routes:
                hooks.setdefault((route.method, route.path), route)
            schedules += entries
        return cls(hooks, tuple(schedules))


_Triggers = tuple[tuple[WebhookRoute, ...], tuple[ScheduleEntry, ...]]


def _triggers_of(stored: StoredWorkflow) -> _Triggers:
    """A stored workflow's triggers (none while it is suspended)."""
    if stored.suspended:
        return (), ()
    try:
        spec = Workflow.model_validate(stored.spec)
    except ValueError:  # pragma: no cover - stored versions were valid when applied
        return (), ()
    routes: list[WebhookRoute] = []
    entries: list[ScheduleEntry] = []
    for i, trigger in enumerate(spec.spec.triggers):
        if trigger.webhook is not None:
            hook = trigger.webhook
            secret = hook.secret_ref.name if hook.secret_ref else None
            routes.append(
                WebhookRoute(
                    stored.name,
                    hook.method.value,
                    str(hook.path),
                    secret,
                    unsigned=hook.unsigned is True,
                )
            )
        elif trigger.schedule is not None:
            entries.append(ScheduleEntry(stored.name, i, trigger.schedule.compile()))
    return tuple(routes), tuple(entries)


class TriggerIndex:
    """The trigger table, kept up to date from the store after every change: only workflows
    whose generation or suspension moved are read and parsed again (with 1,000 workflows,
    reading and parsing all of them after every reconcile pass took ~0.6 s). Thread-safe;
    :meth:`refresh` blocks (call it off the event loop)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[int, bool], _Triggers]] = {}
        self._lock = threading.Lock()

    def refresh(self, store: Store) -> TriggerTable:
        """The triggers of the workflows in ``store`` now."""
        with self._lock:
            heads = store.workflow_heads()
            for name in [n for n in self._known if n not in heads]:
                del self._known[name]
            for name, head in heads.items():
                mark = (head.generation, head.suspended)
                known = self._known.get(name)
                if known is not None and known[0] == mark:
                    continue
                try:
                    stored = store.get_workflow(name)
                except WorkflowNotFound:  # deleted since the heads were read
                    self._known.pop(name, None)
                    continue
                self._known[name] = ((stored.generation, stored.suspended), _triggers_of(stored))
            return TriggerTable.build(self._known[name][1] for name in sorted(self._known))


Fire = Callable[[ScheduleEntry, datetime], Awaitable[Any]]
_Identity = tuple[str, int, str, str]


def _after(entry: ScheduleEntry, cursor: datetime) -> datetime | None:
    times = entry.schedule.next_fire_times(cursor, 1)
    return times[0] if times else None


class Scheduler:
    """Fires schedule triggers on the event loop, one execution per slot.

    Each schedule's next slot is computed when it is added and after it fires, and kept in a
    heap: a tick looks at the earliest only. (Computing every schedule's next slot on every
    tick held the event loop for ~40 ms with 1,000 schedules, at every slot and after every
    reconcile pass.)"""

    def __init__(
        self,
        fire: Fire,
        *,
        clock: Callable[[], datetime],
        misfire_grace: timedelta = timedelta(seconds=60),
    ) -> None:
        self.fire = fire
        self.clock = clock
        self.misfire_grace = misfire_grace
        self._entries: dict[_Identity, ScheduleEntry] = {}
        self._cursor: dict[_Identity, datetime] = {}  # the last slot handled (or the start)
        self._slots: dict[_Identity, datetime | None] = {}  # the next slot after the cursor
        self._heap: list[tuple[datetime, int, _Identity]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()
        self._started = False
        self.fired = 0
        self.skipped = 0

    def update(self, table: TriggerTable) -> None:
        """Follow a new set of schedules; unchanged ones keep their place."""
        now = self.clock()
        # at the first start, slots missed while down (within the grace) are still due
        start = now - self.misfire_grace if not self._started else now
        entries: dict[_Identity, ScheduleEntry] = {}
        cursors: dict[_Identity, datetime] = {}
        slots: dict[_Identity, datetime | None] = {}
        for entry in table.schedules:
            key = entry.identity
            entries[key] = entry
            cursors[key] = self._cursor.get(key, start)
            slots[key] = self._slots[key] if key in self._slots else _after(entry, cursors[key])
        self._entries, self._cursor, self._slots = entries, cursors, slots
        self._heap = [(slot, next(self._order), key) for key, slot in slots.items() if slot]
        heapq.heapify(self._heap)
        self._started = True
        self._changed.set()

    async def tick(self) -> float:
        """Fire every slot that is due; returns the seconds until the next one."""
        while True:
            if not self._heap:
                return 3600.0
            slot, _, key = self._heap[0]
            now = self.clock()
            if slot > now:
                return (slot - now).total_seconds()
            heapq.heappop(self._heap)
            entry = self._entries[key]
            self._cursor[key] = slot
            following = self._slots[key] = _after(entry, slot)
            if following is not None:
                heapq.heappush(self._heap, (following, next(self._order), key))
            if now - slot > self.misfire_grace:
                self.skipped += 1
                log.warning(
                    "schedule of %s missed its %s slot by %s: skipped",
                    entry.workflow,
                    slot.isoformat(),
                    now - slot,
                )
                continue
            self.fired += 1
            try:
                await self.fire(entry, slot)
            except Exception:
                log.exception("schedule of %s could not start an execution", entry.workflow)

    async def run(self) -> None:
        """Fire slots as they come, until cancelled."""
        while True:
            self._changed.clear()
            wait = await self.tick()
            try:
                async with asyncio.timeout(max(0.0, min(wait, 3600.0))):
                    await self._changed.wait()
            except TimeoutError:
                pass
