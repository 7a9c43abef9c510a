"""The execution log in memory: the SQL journal's twin, for tests and for trying the engine.

It keeps the contract of :class:`~agentflowd.engine.log.ExecutionLog` (posting order, ``seq``
numbering, all-or-nothing entries, the prefix rule, trigger keys, retry through an outage)
with dicts under a lock. Entries are committed on the posting thread at once (``lazy`` ones
too: "may wait" permits not waiting). :meth:`MemoryLog.fail` starts an outage: from then on
nothing is recorded and reads raise, until :meth:`MemoryLog.recover` records what queued up.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from agentflowd.engine.log import CommitHook, Post, deliver, record_each
from agentflowd.engine.records import (
    EventRecord,
    ExecutionRecord,
    LogEntry,
    RawJson,
    StepRecord,
    Then,
)
from agentflowd.engine.states import UNFINISHED
from agentflowd.errors import DuplicateTriggerKey, FencedOut, NotFound

__all__ = ["MemoryLog"]

_EXECUTION_COLUMNS = frozenset(ExecutionRecord.__dataclass_fields__)
_STEP_COLUMNS = frozenset(StepRecord.__dataclass_fields__)


def _value(value: Any) -> Any:
    """A column's value as a read gives it back (JSON text decoded, as the SQL log does)."""
    if type(value) is RawJson:
        return json.loads(value.text)
    return value


class MemoryLog:
    """Executions, steps and events in dicts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executions: dict[str, ExecutionRecord] = {}
        self._steps: dict[str, dict[str, StepRecord]] = {}
        self._events: dict[str, list[EventRecord]] = {}
        self._keys: dict[str, str] = {}
        self._pending: list[Post] = []
        self._outage: BaseException | None = None
        self.on_commit: CommitHook | None = None
        self.commits = 0

    # -- faults ----------------------------------------------------------------------------

    @property
    def unavailable(self) -> BaseException | None:
        """The outage's error while there is one."""
        return self._outage

    def fail(self, error: BaseException) -> None:
        """Start an outage: nothing is recorded (entries wait) and reads raise ``error``."""
        with self._lock:
            self._outage = error

    @property
    def waiting(self) -> int:
        """Posts not recorded yet (during an outage)."""
        with self._lock:
            return len(self._pending)

    def recover(self) -> None:
        """End the outage: what waited is recorded now, in order."""
        with self._lock:
            self._outage = None
        self._flush()

    # -- writing ---------------------------------------------------------------------------

    def post(
        self, entries: list[LogEntry], then: Then | None = None, *, lazy: bool = False
    ) -> None:
        with self._lock:
            self._pending.append((entries, None, then))
        self._flush()

    def commit_here(self, entries: list[LogEntry], then: Then) -> None:
        self.post(entries, then)

    def write(self, entries: list[LogEntry]) -> Future[None]:
        done: Future[None] = Future()
        with self._lock:
            self._pending.append((entries, done, None))
        self._flush()
        return done

    def duplicate(self, record: ExecutionRecord, error: BaseException) -> bool:
        return record.trigger_key is not None and isinstance(error, DuplicateTriggerKey)

    def forget(self, execution_id: str) -> None:
        """Nothing is kept per execution beyond its rows."""

    def close(self) -> None:
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            if self._outage is not None or not self._pending:
                return
            batch, self._pending = self._pending, []
            errors = record_each(batch, self._apply, {})
            self.commits += 1
        deliver(batch, errors, self.on_commit)

    def _apply(self, entries: list[LogEntry]) -> None:
        """All of ``entries`` or none (checked first, then applied; under the lock)."""
        executions = dict(self._executions)
        steps = {k: dict(v) for k, v in self._steps.items() if k in _ids(entries)}
        keys = dict(self._keys)
        events: list[EventRecord] = []
        seqs: dict[str, int] = {}
        for entry in entries:
            xid = entry.execution_id
            if entry.create is not None:
                record, rows = entry.create
                if record.id in executions:
                    raise ValueError(f"execution {record.id} exists already")
                if record.trigger_key is not None:
                    if record.trigger_key in keys:
                        raise DuplicateTriggerKey(record.trigger_key)
                    keys[record.trigger_key] = record.id
                executions[record.id] = record
                steps[record.id] = {r.step: r for r in rows}
            if xid not in executions:
                raise NotFound(f"execution {xid!r} not found")
            if entry.fence is not None and executions[xid].owner != entry.fence:
                raise FencedOut(xid, entry.fence, executions[xid].owner)
            if entry.execution:
                _check(entry.execution, _EXECUTION_COLUMNS)
                values = {k: _value(v) for k, v in entry.execution.items()}
                executions[xid] = replace(executions[xid], **values)
            for name, columns in entry.steps.items():
                _check(columns, _STEP_COLUMNS)
                current = steps.setdefault(xid, dict(self._steps.get(xid, {})))
                if name not in current:
                    raise NotFound(f"step {name!r} of execution {xid!r} not found")
                values = {k: _value(v) for k, v in columns.items()}
                current[name] = replace(current[name], **values)
            seq = seqs.get(xid, len(self._events.get(xid, ())))
            seqs[xid] = seq + 1
            events.append(
                EventRecord(
                    execution_id=xid,
                    seq=seq + 1,
                    at=entry.at,
                    type=str(entry.type),
                    step=entry.step,
                    attempt=entry.attempt,
                    data=json.loads(json.dumps(entry.data)) if entry.data is not None else None,
                )
            )
        self._executions = executions
        self._steps.update(steps)
        self._keys = keys
        for event in events:
            self._events.setdefault(event.execution_id, []).append(event)

    # -- ownership (for the in-memory coordinator) ----------------------------------------

    def reassign(
        self, pick: Callable[[ExecutionRecord], bool], owner: str | None, limit: int
    ) -> list[ExecutionRecord]:
        """Set ``owner`` on up to ``limit`` unfinished executions ``pick`` accepts, oldest
        first, at once (what a SQL claim does in one transaction)."""
        with self._lock:
            self._readable()
            rows = sorted(
                (r for r in self._executions.values() if r.state in UNFINISHED and pick(r)),
                key=lambda r: (r.created_at, r.id),
            )[:limit]
            taken = [replace(r, owner=owner) for r in rows]
            for record in taken:
                self._executions[record.id] = record
        return taken

    # -- reading ---------------------------------------------------------------------------

    def _readable(self) -> None:
        if self._outage is not None:
            raise self._outage

    def execution(self, execution_id: str) -> ExecutionRecord:
        with self._lock:
            self._readable()
            found = self._executions.get(execution_id)
        if found is None:
            raise NotFound(f"execution {execution_id!r} not found")
        return found

    def executions(
        self, *, workflow: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[ExecutionRecord]:
        with self._lock:
            self._readable()
            rows = list(self._executions.values())
        rows = [
            r
            for r in rows
            if (workflow is None or r.workflow == workflow) and (state is None or r.state == state)
        ]
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return rows[:limit]

    def unfinished(self) -> list[ExecutionRecord]:
        with self._lock:
            self._readable()
            rows = [r for r in self._executions.values() if r.state in UNFINISHED]
        return sorted(rows, key=lambda r: (r.created_at, r.id))

    def steps(self, execution_id: str) -> list[StepRecord]:
        with self._lock:
            self._readable()
            rows = list(self._steps.get(execution_id, {}).values())
        return sorted(rows, key=lambda r: r.step)

    def events(
        self, execution_id: str, *, after: int = 0, limit: int = 10_000
    ) -> list[EventRecord]:
        with self._lock:
            self._readable()
            rows = list(self._events.get(execution_id, ()))
        return [e for e in rows if e.seq > after][:limit]

    def by_trigger_key(self, key: str) -> ExecutionRecord | None:
        with self._lock:
            self._readable()
            found = self._keys.get(key)
            return self._executions.get(found) if found is not None else None


def _ids(entries: list[LogEntry]) -> set[str]:
    return {e.execution_id for e in entries}


def _check(columns: dict[str, Any], known: frozenset[str]) -> None:
    unknown = set(columns) - known
    if unknown:
        raise KeyError(f"no such column(s): {', '.join(sorted(unknown))}")
