"""The durable record of executions: events appended with the state they produce, group-committed.

Every transition is written as one :class:`LogEntry`: an event for the execution's history
(``execution_events``, ``seq`` numbered per execution) plus the rows it updates (``executions``,
``step_runs``), in one transaction. One writer thread owns the writes and commits whatever has
queued up since its last commit in a single transaction (group commit: the research floor shows
5-18x from it), with plain DB-API statements on a connection of its own (executemany per table
and column set): SQLAlchemy's statement compilation cost more than the database on this path.
:meth:`Journal.write` returns a future that is done when the change is durable; the engine
waits on it only where it must (a new execution; a step's completion before its dependents).

Reads go straight to the database from any thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from agentflowd.engine.checkpoint import WalCheckpointer
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
from agentflowd.errors import FencedOut, NotFound
from agentflowd.store.tables import Timestamp, execution_events, executions, step_runs

log = logging.getLogger(__name__)

__all__ = ["Journal", "execution_from_row"]


EVENT_COLUMNS = "execution_id, seq, at, type, step, attempt, data"
Convert = Callable[[Any], Any]


def _sqlite_time(value: datetime | None) -> str | None:
    """As SQLAlchemy's SQLite dialect stores a naive UTC ``DATETIME``."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _json(value: Any) -> str | None:
    """A JSON column's parameter (SQL NULL for None, as SQLAlchemy's ``none_as_null``)."""
    if value is None:
        return None
    if type(value) is RawJson:
        return value.text
    return json.dumps(value)


class _SharedJson:
    """JSON text of values many rows share (a version's spec and images: every execution of a
    version holds the same objects), encoded once. Values are kept alive while cached, so an
    ``id`` is never reused for another; they are never mutated (a version is immutable)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._texts: dict[int, tuple[Any, str]] = {}

    def __call__(self, value: Any) -> str | None:
        if value is None:
            return None
        found = self._texts.get(id(value))
        if found is not None and found[0] is value:
            return found[1]
        text = json.dumps(value)
        if len(self._texts) >= self.size:
            self._texts.clear()
        self._texts[id(value)] = (value, text)
        return text


def _execution(row: RowMapping) -> ExecutionRecord:
    return ExecutionRecord(
        id=row["id"],
        workflow=row["workflow"],
        generation=row["generation"],
        spec=row["spec"],
        images=row["images"] or {},
        state=row["state"],
        trigger=row["trigger"],
        trigger_key=row["trigger_key"],
        input=row["input"],
        output=row["output"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        deadline_at=row["deadline_at"],
        owner=row["owner"],
    )


def execution_from_row(row: RowMapping) -> ExecutionRecord:
    """An ``executions`` row as the record it holds."""
    return _execution(row)


def _step(row: RowMapping) -> StepRecord:
    return StepRecord(**{k: row[k] for k in StepRecord.__dataclass_fields__})


class Journal:
    """Executions, steps and events in the store's database, written by one thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 1024,
        lazy_seconds: float = 0.01,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        close_seconds: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        #: the clock of the lazy timer, the outage's retries and the close (injected: a test
        #: moves it; the waits themselves are a condition's, woken by posts)
        self.monotonic = monotonic
        self.engine = engine
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.close_seconds = close_seconds
        self.max_batch = max_batch
        self.lazy_seconds = lazy_seconds
        # what waits for the next commit, in the order it was posted; "urgent" when something
        # not lazy is in it (the writer sleeps through lazy posts for up to lazy_seconds)
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[Post] = []
        self._urgent = False
        self._lazy_since = 0.0
        self._stopping = False
        self._committing = False  # a thread is writing a batch: others only append
        self._writer_done = False  # the writer has ended (after close): posters commit
        self._idle = False  # the writer waits with no timer (a lazy post must wake it)
        self._seq: dict[str, int] = {}
        self.commits = 0  # transactions committed (for metrics and benchmarks)
        self._raw: Any = None  # the writer thread's DB-API connection
        self._sqlite = engine.dialect.name == "sqlite"
        # SQLite: checkpoints run on their own thread, not inside a commit that waits on them
        self._pausing = 0  # threads waiting in _paused for the commit under way to end
        self._checkpointer = (
            WalCheckpointer(engine, self._paused, monotonic=monotonic) if self._sqlite else None
        )
        dbapi: Any = engine.dialect.dbapi
        self._integrity: type[Exception] = dbapi.IntegrityError
        self._operational: type[Exception] = dbapi.OperationalError
        self._interface: type[Exception] = dbapi.InterfaceError
        #: the error while the database is away (None when it answers)
        self.unavailable: BaseException | None = None
        self._retrying = threading.Event()  # set by close: stop sleeping between retries
        self._abandon_at = float("inf")
        mark, data = ("?", "?") if self._sqlite else ("%s", "%s::jsonb")
        marks = ", ".join([mark] * 6 + [data])
        self._event_sql = f"INSERT INTO execution_events ({EVENT_COLUMNS}) VALUES ({marks})"  # noqa: S608
        self._shared_json = _SharedJson()  # used by the committing thread only
        self._convert_cache: dict[tuple[str, tuple[str, ...]], list[Convert | None]] = {}
        self._kinds = {
            table.name: {
                c.name: "json"
                if isinstance(c.type, sa.JSON)
                else "time"
                if isinstance(c.type, Timestamp)
                else "plain"
                for c in table.columns
            }
            for table in (executions, step_runs, execution_events)
        }
        #: called on the writer thread after each commit with the ``then`` callbacks of what
        #: it committed (the engine runs them on its loop); without it they run right there
        self.on_commit: CommitHook | None = None
        self._thread = threading.Thread(target=self._loop, name="agentflow-journal", daemon=True)
        self._thread.start()  # last: it reads the attributes above

    def close(self) -> None:
        """Finish what is queued, then stop the writer. While the database is away, what is
        queued is retried for ``close_seconds`` more, then given up: it is lost as a crash
        would lose it (the steps it records run again after a restart)."""
        self._abandon_at = self.monotonic() + self.close_seconds
        self._retrying.set()  # a writer sleeping between retries looks again now
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)
        if self._checkpointer is not None:
            self._checkpointer.close()

    # -- writing ---------------------------------------------------------------------------

    def duplicate(self, record: ExecutionRecord, error: BaseException) -> bool:
        """Whether ``error`` (from posting ``record``'s creation) means its trigger key is
        taken: the trigger already started an execution, and nothing was written."""
        return record.trigger_key is not None and isinstance(error, self._integrity)

    def write(self, changes: list[LogEntry]) -> Future[None]:
        """Queue ``changes`` for the next group commit; the future is done once durable."""
        done: Future[None] = Future()
        self._put((changes, done, None), lazy=False)
        return done

    def post(
        self, changes: list[LogEntry], then: Then | None = None, *, lazy: bool = False
    ) -> None:
        """Queue ``changes`` for the next group commit, without a future (the engine's hot
        path): ``then(error)`` is handed to :attr:`on_commit` once the commit is done.

        ``lazy`` changes (a step started, a host call) do not wake the writer: they go with
        the next commit, or within ``lazy_seconds``. A daemon that dies meanwhile loses them,
        and loses nothing else: the step they belong to is still pending or running in the
        database, and runs again after the restart as any step in flight does.
        """
        self._put((changes, None, then), lazy=lazy)

    def commit_here(self, changes: list[LogEntry], then: Then) -> None:
        """Post ``changes`` and, when no commit is under way, commit them on this thread now.

        For a step thread recording its step's success: when the journal is idle this saves
        two thread hand-offs (to the writer and back); when a commit is under way the changes
        join the next one and this returns at once, so batching under load is kept. Commits
        never overlap, whichever thread makes them, so events keep the order they were posted.
        """
        with self._cond:
            if not self._pending:
                self._lazy_since = self.monotonic()
            self._pending.append((changes, None, then))
            if self._held() or (self._stopping and not self._writer_done):
                if not self._urgent:
                    self._urgent = True
                    self._cond.notify()
                return  # (held after the writer ended: whoever holds it commits this)
            batch = self._take()  # (after the writer has ended: this thread commits)
        self._write_out(batch)

    def _put(self, item: Post, *, lazy: bool) -> None:
        with self._cond:
            if not self._pending:
                self._lazy_since = self.monotonic()
            self._pending.append(item)
            if self._writer_done and not self._held():
                batch = self._take()  # posted after close: nobody else will commit it
            else:
                if not lazy and not self._urgent:
                    self._urgent = True
                    self._cond.notify()
                elif lazy and self._idle:  # the writer sleeps without a timer: start it
                    self._idle = False
                    self._cond.notify()
                return
        self._write_out(batch)

    def _held(self) -> bool:
        """Whether no commit may start now: one is under way, or a pause waits for its turn
        (it goes first, or a busy writer would keep it out for good). Under the lock."""
        return self._committing or self._pausing > 0

    def _take(self) -> list[Post]:
        """Everything pending, for this thread to commit (under the lock)."""
        batch, self._pending = self._pending, []
        self._urgent = False
        self._committing = True
        return batch

    def _write_out(self, batch: list[Post]) -> None:
        """Commit ``batch`` (possibly empty) with the commit slot this thread holds (from
        :meth:`_take`), then give the slot up, committing first what only it can."""
        while True:
            if batch:
                broken: dict[str, BaseException] = {}  # (across the chunks of one batch)
                try:
                    for start in range(0, len(batch), self.max_batch):
                        self._commit(batch[start : start + self.max_batch], broken)
                except BaseException:
                    with self._cond:
                        self._committing = False
                        self._cond.notify_all()
                    raise
            with self._cond:
                orphaned = self._writer_done and not self._pending
            if orphaned and batch:  # committed after close: give the connection back
                self._close_writer()  # (the slot is still ours: nobody else uses it)
            with self._cond:
                batch = self._release()
            if not batch:
                return

    def _release(self) -> list[Post]:
        """Give up the commit slot (under the lock). Returns what this thread must commit
        now: posts made after the writer ended, which no one else would take."""
        self._committing = False
        if self._writer_done and self._pending and not self._pausing:
            return self._take()
        if self._pausing:  # the checkpointer waits, and perhaps the writer too
            self._cond.notify_all()
        elif self._pending or self._stopping:  # posted meanwhile: the writer takes it
            self._cond.notify()
        return []

    @contextlib.contextmanager
    def _paused(self) -> Iterator[None]:
        """No commit runs inside this block (one under way ends first); what is posted
        meanwhile waits, and is committed after it."""
        with self._cond:
            self._pausing += 1
            try:
                while self._committing:
                    self._cond.wait()
            finally:
                self._pausing -= 1
            self._committing = True
        try:
            yield
        finally:
            with self._cond:
                batch = self._release()
                self._cond.notify_all()
            if batch:  # posted after the writer ended, while commits were held
                self._write_out(batch)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._held() or (not self._urgent and not self._stopping):
                    if self._held() or not self._pending:
                        # no timer running: a lazy post (or the end of another thread's
                        # commit with something left) must wake us to start one
                        self._idle = True
                        self._cond.wait()
                        self._idle = False
                        continue
                    left = self._lazy_since + self.lazy_seconds - self.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._take()
                stopping = self._stopping
            self._write_out(batch)
            if stopping:
                with self._cond:
                    if self._pending or self._held():  # posted while the last batch was written
                        continue
                    self._committing = True  # the slot is ours while the connection closes
                self._close_writer()
                with self._cond:
                    self._writer_done = True  # from now on, posters commit themselves
                    batch = self._release()
                if batch:  # posted while it closed
                    self._write_out(batch)
                return

    def _commit(self, batch: list[Post], broken: dict[str, BaseException]) -> None:
        """Commit ``batch``; ``broken`` holds the executions of this write-out whose changes
        could not be recorded (their later changes are not recorded either: see
        :func:`~agentflowd.engine.log.record_each`)."""
        flat = [c for changes, _, _ in batch for c in changes]
        errors: list[BaseException | None] | None = None
        if not (broken and any(c.execution_id in broken for c in flat)):
            try:
                self._durably(flat)
                errors = [None] * len(batch)
            except Exception:  # one bad change must not sink the others: one by one, below
                errors = None
        if errors is None:
            errors = record_each(batch, self._durably, broken)
        deliver(batch, errors, self.on_commit)

    # -- the writer's own connection: plain DB-API statements --------------------------------

    def _writer(self) -> Any:
        if self._raw is None:
            raw = self.engine.raw_connection()
            if self._sqlite:
                self._autocheckpoint(raw, 0)  # the checkpointer thread does it
            self._raw = raw
        return self._raw

    def _close_writer(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                if self._sqlite:  # it goes back to the pool: as other connections are
                    self._autocheckpoint(self._raw, 1000)
                self._raw.close()
            self._raw = None

    @staticmethod
    def _autocheckpoint(raw: Any, pages: int) -> None:
        cursor = raw.cursor()
        try:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")
            cursor.fetchall()
        finally:
            cursor.close()

    def _durably(self, changes: list[LogEntry]) -> None:
        """:meth:`_transaction`, retried while the database is away (a connection refused or
        lost, a locked file): a transition is delayed by an outage of any length, never
        dropped, and the commit slot is held meanwhile, so order is kept and what is posted
        waits behind it. Other errors (a constraint, a bug) are raised at once."""
        delay = self.retry_initial
        failing_since: float | None = None
        while True:
            try:
                self._transaction(changes)
            except Exception as exc:
                if not self._transient(exc) or self.monotonic() >= self._abandon_at:
                    raise
                if failing_since is None:
                    failing_since = self.monotonic()
                    self.unavailable = exc
                    log.warning("the database is unavailable, retrying the journal: %s", exc)
                if self._retrying.wait(delay):
                    self._retrying.clear()  # (woken by close: retry once at once)
                delay = min(delay * 2, self.retry_max)
                continue
            if failing_since is not None:
                self.unavailable = None
                log.warning(
                    "the database is back: the journal recorded what waited %.1f s",
                    self.monotonic() - failing_since,
                )
            return

    def _transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the database is away for now (not that the change is bad)."""
        if isinstance(exc, sa.exc.DBAPIError):  # (opening a connection goes through the pool)
            if exc.connection_invalidated:
                return True
            exc = exc.orig if exc.orig is not None else exc
        if self._sqlite:  # sqlite3 also calls a missing column an OperationalError
            text = str(exc).lower()
            return isinstance(exc, self._operational) and any(
                word in text for word in ("locked", "busy", "unable to open", "disk i/o")
            )
        return isinstance(exc, (self._operational, self._interface))

    def _transaction(self, changes: list[LogEntry]) -> None:
        raw = self._writer()
        seen = {c.execution_id for c in changes}
        try:
            cursor = raw.cursor()
            try:
                self._apply(cursor, changes)
            finally:
                cursor.close()
            raw.commit()
            self.commits += 1
            if self._checkpointer is not None:
                self._checkpointer.committed()
        except Exception:
            for execution_id in seen:  # their counters may have moved: read them again
                self._seq.pop(execution_id, None)
            try:
                raw.rollback()
            except Exception:  # the connection is gone: the next transaction opens another
                self._close_writer()
            raise

    def _converters(self, table: sa.Table, columns: Iterable[str]) -> list[Convert | None]:
        """How each column's Python value becomes a DB-API parameter (None: as it is)."""
        key = (table.name, tuple(columns))
        found = self._convert_cache.get(key)
        if found is None:
            found = self._convert_cache[key] = self._converters_of(table, key[1])
        return found

    def _converters_of(self, table: sa.Table, columns: tuple[str, ...]) -> list[Convert | None]:
        kinds = self._kinds[table.name]
        out: list[Convert | None] = []
        for column in columns:
            kind = kinds.get(column)
            if kind == "json" and table is executions and column in ("spec", "images"):
                out.append(self._shared_json)
            elif kind == "json":
                out.append(_json)
            elif kind == "time" and self._sqlite:
                out.append(_sqlite_time)
            else:
                out.append(None)
        return out

    def _placeholder(self, table: sa.Table, column: str) -> str:
        if self._sqlite:
            return "?"
        return "%s::jsonb" if self._kinds[table.name].get(column) == "json" else "%s"

    def _insert(self, cursor: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        marks = ", ".join(self._placeholder(table, c) for c in columns)
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        convert = list(zip(columns, self._converters(table, columns), strict=True))
        cursor.executemany(
            sql,
            [tuple(row[c] if f is None else f(row[c]) for c, f in convert) for row in rows],
        )

    def _update(
        self,
        cursor: Any,
        table: sa.Table,
        keys: tuple[str, ...],
        rows: list[tuple[tuple[Any, ...], dict[str, Any]]],
    ) -> None:
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        converters: dict[tuple[str, ...], list[tuple[str, Convert | None]]] = {}
        for key, values in rows:
            columns = tuple(values)
            convert = converters.get(columns)
            if convert is None:
                convert = converters[columns] = list(
                    zip(columns, self._converters(table, columns), strict=True)
                )
            params = tuple(values[c] if f is None else f(values[c]) for c, f in convert) + key
            groups.setdefault(columns, []).append(params)
        mark = "?" if self._sqlite else "%s"
        where = " AND ".join(f"{k} = {mark}" for k in keys)
        for names, batch in groups.items():
            sets = ", ".join(f"{c} = {self._placeholder(table, c)}" for c in names)
            cursor.executemany(f"UPDATE {table.name} SET {sets} WHERE {where}", batch)  # noqa: S608

    def _next_seq(self, cursor: Any, execution_id: str) -> int:
        seq = self._seq.get(execution_id)
        if seq is None:
            mark = "?" if self._sqlite else "%s"
            cursor.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM execution_events WHERE execution_id = "  # noqa: S608
                + mark,
                (execution_id,),
            )
            seq = int(cursor.fetchone()[0])
        seq += 1
        self._seq[execution_id] = seq
        return seq

    def _apply(self, cursor: Any, changes: list[LogEntry]) -> None:
        # rows created in this batch, and every row's updates merged in order (a later change
        # of the same column wins, as it would have in its own statement): a step started
        # and finished within one commit costs one UPDATE, or none when it was created too
        new_executions: dict[str, dict[str, Any]] = {}
        new_steps: dict[tuple[str, str], dict[str, Any]] = {}
        execution_updates: dict[tuple[str], dict[str, Any]] = {}
        step_updates: dict[tuple[str, str], dict[str, Any]] = {}
        events = []
        convert_time = _sqlite_time if self._sqlite else None
        self._check_fences(cursor, changes)
        for change in changes:
            execution_id = change.execution_id
            if change.create is not None:
                record, rows = change.create
                new_executions[record.id] = {
                    k: getattr(record, k) for k in ExecutionRecord.__dataclass_fields__
                }
                for row in rows:
                    new_steps[(record.id, row.step)] = {
                        k: getattr(row, k) for k in StepRecord.__dataclass_fields__
                    }
                self._seq[record.id] = 0
            at = change.at
            events.append(
                (
                    execution_id,
                    self._next_seq(cursor, execution_id),
                    convert_time(at) if convert_time is not None else at,
                    str(change.type),
                    change.step,
                    change.attempt,
                    None if change.data is None else json.dumps(change.data),
                )
            )
            if change.execution:
                created = new_executions.get(execution_id)
                if created is not None:
                    created.update(change.execution)
                else:
                    execution_updates.setdefault((execution_id,), {}).update(change.execution)
            for step, values in change.steps.items():
                key = (execution_id, step)
                created = new_steps.get(key)
                if created is not None:
                    created.update(values)
                else:
                    step_updates.setdefault(key, {}).update(values)
        self._insert(cursor, executions, list(new_executions.values()))
        self._insert(cursor, step_runs, list(new_steps.values()))
        self._update(cursor, executions, ("id",), list(execution_updates.items()))
        self._update(cursor, step_runs, ("execution_id", "step"), list(step_updates.items()))
        if events:
            cursor.executemany(self._event_sql, events)

    def _check_fences(self, cursor: Any, changes: list[LogEntry]) -> None:
        """Refuse the batch when one of its entries is fenced by a node that no longer owns
        its execution (raises :class:`FencedOut`; the batch is then retried entry by entry,
        so only that execution's entries are refused). Locks the rows it reads: a claim by
        another node (``FOR UPDATE SKIP LOCKED``) cannot slip in before this commit."""
        fenced = {c.execution_id for c in changes if c.fence is not None and c.create is None}
        if not fenced:
            return
        ids = sorted(fenced)
        if self._sqlite:
            marks = ", ".join("?" * len(ids))
            cursor.execute(f"SELECT id, owner FROM executions WHERE id IN ({marks})", ids)  # noqa: S608
        else:
            cursor.execute(
                "SELECT id, owner FROM executions WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                (ids,),
            )
        owners = dict(cursor.fetchall())
        for change in changes:
            if change.fence is None or change.create is not None:
                continue
            owner = owners.get(change.execution_id)
            if owner != change.fence:
                raise FencedOut(change.execution_id, change.fence, owner)

    def forget(self, execution_id: str) -> None:
        """Drop the in-memory sequence counter of a finished execution."""
        self._seq.pop(execution_id, None)

    # -- reading ---------------------------------------------------------------------------

    def execution(self, execution_id: str) -> ExecutionRecord:
        """One execution (NotFound when there is none)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(executions).where(executions.c.id == execution_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"execution {execution_id!r} not found")
        return _execution(row)

    def executions(
        self, *, workflow: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[ExecutionRecord]:
        """Executions, newest first."""
        query = sa.select(executions).order_by(
            executions.c.created_at.desc(), executions.c.id.desc()
        )
        if workflow is not None:
            query = query.where(executions.c.workflow == workflow)
        if state is not None:
            query = query.where(executions.c.state == state)
        with self.engine.connect() as conn:
            return [_execution(r) for r in conn.execute(query.limit(limit)).mappings()]

    def unfinished(self) -> list[ExecutionRecord]:
        """Executions a restart must resume (queued or running), oldest first."""
        query = (
            sa.select(executions)
            .where(executions.c.state.in_([s.value for s in UNFINISHED]))
            .order_by(executions.c.created_at, executions.c.id)
        )
        with self.engine.connect() as conn:
            return [_execution(r) for r in conn.execute(query).mappings()]

    def steps(self, execution_id: str) -> list[StepRecord]:
        """Every step of an execution."""
        query = sa.select(step_runs).where(step_runs.c.execution_id == execution_id)
        with self.engine.connect() as conn:
            return [_step(r) for r in conn.execute(query.order_by(step_runs.c.step)).mappings()]

    def events(
        self, execution_id: str, *, after: int = 0, limit: int = 10_000
    ) -> list[EventRecord]:
        """An execution's history from ``seq > after``, in order."""
        c = execution_events.c
        query = (
            sa.select(c.execution_id, c.seq, c.at, c.type, c.step, c.attempt, c.data)
            .where(c.execution_id == execution_id, c.seq > after)
            .order_by(c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [EventRecord(**dict(r)) for r in conn.execute(query).mappings()]

    def by_trigger_key(self, key: str) -> ExecutionRecord | None:
        """The execution a trigger key started, if any."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(executions).where(executions.c.trigger_key == key))
                .mappings()
                .first()
            )
        return _execution(row) if row is not None else None
