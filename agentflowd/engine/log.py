"""The execution-log port: what the engine needs of the place executions are recorded.

Two implementations keep one contract (``tests/engine/test_log_contract.py`` runs it on each):
:class:`~agentflowd.engine.journal.Journal`, the SQL log (SQLite or PostgreSQL, group
commit), and :class:`~agentflowd.engine.memlog.MemoryLog`, its in-memory twin, on which the
engine's tests run in milliseconds without a database (APScheduler's ``abc.DataStore`` and
``datastores/memory.py`` are the model).

The contract:

* entries posted are recorded in posting order, each with its event numbered ``seq`` 1, 2, ...
  per execution; an entry and the rows it sets are recorded together or not at all;
* ``then`` callbacks get None once their entries are durable, or the error that kept them out;
  they are handed to :attr:`ExecutionLog.on_commit` (the engine runs them on its loop), in
  posting order;
* a transient failure of the store (a connection refused or lost, a locked database) delays
  entries, never drops them: they are retried until recorded, and their callbacks wait;
* an entry whose execution had an earlier entry refused in the same write is refused too (an
  execution's history never has a hole) — except after a fencing refusal: the entries of a
  node that lost the execution say nothing about those of the node that owns it now;
* an entry creating an execution whose trigger key is taken is refused, and
  :meth:`ExecutionLog.duplicate` says so;
* ``lazy`` entries may wait for the next commit, at most ``lazy_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Protocol

from agentflowd.engine.records import (
    EventRecord,
    ExecutionRecord,
    LogEntry,
    StepRecord,
    Then,
)
from agentflowd.errors import FencedOut

__all__ = ["CommitHook", "ExecutionLog", "Post", "deliver", "record_each"]

#: Called after each commit with the callbacks of what it committed, and their errors.
CommitHook = Callable[[list[tuple[Then, BaseException | None]]], None]


class ExecutionLog(Protocol):
    """Executions, their steps and their history: written by posting entries, read directly."""

    on_commit: CommitHook | None

    @property
    def unavailable(self) -> BaseException | None:
        """Why entries wait while the store is away (None while it answers)."""

    # -- writing ---------------------------------------------------------------------------

    def post(
        self, entries: list[LogEntry], then: Then | None = None, *, lazy: bool = False
    ) -> None:
        """Queue ``entries`` for the next commit; ``then(error)`` once it is done."""

    def commit_here(self, entries: list[LogEntry], then: Then) -> None:
        """Post ``entries`` and commit them on this thread when no commit is under way (a step
        thread recording its success saves two hand-offs); else they join the next commit."""

    def write(self, entries: list[LogEntry]) -> Future[None]:
        """Post ``entries``; the future is done once they are durable (for callers off the
        engine's loop)."""

    def duplicate(self, record: ExecutionRecord, error: BaseException) -> bool:
        """Whether ``error`` (from creating ``record``) means its trigger key is taken."""

    def forget(self, execution_id: str) -> None:
        """Drop what is kept in memory for a finished execution."""

    def close(self) -> None:
        """Record what is queued (while the store answers), then stop."""

    # -- reading ---------------------------------------------------------------------------

    def execution(self, execution_id: str) -> ExecutionRecord:
        """One execution (:class:`~agentflowd.errors.NotFound` when there is none)."""

    def executions(
        self, *, workflow: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[ExecutionRecord]:
        """Executions, newest first."""

    def unfinished(self) -> list[ExecutionRecord]:
        """Executions someone must drive (queued or running), oldest first."""

    def steps(self, execution_id: str) -> list[StepRecord]:
        """Every step of an execution, by name."""

    def events(
        self, execution_id: str, *, after: int = 0, limit: int = 10_000
    ) -> list[EventRecord]:
        """An execution's history from ``seq > after``, in order."""

    def by_trigger_key(self, key: str) -> ExecutionRecord | None:
        """The execution a trigger key started, if any."""


#: One post: its entries, the future of :meth:`ExecutionLog.write` or None, its ``then``.
Post = tuple[list[LogEntry], Future[None] | None, Then | None]

log = logging.getLogger(__name__)


def record_each(
    posts: Sequence[Post],
    record: Callable[[list[LogEntry]], None],
    broken: dict[str, BaseException],
) -> list[BaseException | None]:
    """Record ``posts`` one by one (after recording them together failed); each one's error.

    The prefix rule: an execution whose entry was refused gets no later entry recorded in this
    write-out (``broken`` carries it across the chunks of one), so its history has no hole — a
    success without its ``step.started``, an end without the success before it. A fencing
    refusal breaks nothing: it came from a node that no longer owns the execution, and the
    owner's entries that follow are its own history (each stale entry is refused by its own
    fence anyway)."""
    errors: list[BaseException | None] = []
    for entries, _, _ in posts:
        earlier = next((broken[e.execution_id] for e in entries if e.execution_id in broken), None)
        if earlier is not None:
            errors.append(earlier)
            continue
        try:
            record(entries)
        except Exception as exc:
            errors.append(exc)
            if not isinstance(exc, FencedOut):
                for entry in entries:
                    broken.setdefault(entry.execution_id, exc)
        else:
            errors.append(None)
    return errors


def deliver(
    posts: Sequence[Post], errors: Sequence[BaseException | None], hook: CommitHook | None
) -> None:
    """What waited for a commit goes on: futures get their result, ``then`` callbacks go to
    ``hook`` (or run here, in order, without one). Nothing they raise escapes: the caller is
    the committing thread (the writer, or a step thread whose success is already durable)."""
    thens: list[tuple[Then, BaseException | None]] = []
    for (_, done, then), error in zip(posts, errors, strict=True):
        if done is not None:
            try:
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
            except InvalidStateError:  # cancelled by its waiter
                pass
        if then is not None:
            thens.append((then, error))
    if hook is not None:
        try:
            hook(thens)
        except Exception:
            log.exception("the execution log's on_commit hook failed")
        return
    for then, error in thens:
        try:
            then(error)
        except Exception:
            log.exception("a callback after an execution-log commit failed")
