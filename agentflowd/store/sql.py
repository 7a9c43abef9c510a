"""The store on SQLAlchemy Core: SQLite (the embedded default) and PostgreSQL (production).

Core rather than the ORM: every method is a handful of statements in one transaction, and the
reconciler's no-op pass must cost milliseconds. SQLite runs in WAL mode with a busy timeout, so
the API can read while the reconciler writes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import OperationalError

from agentflowd.errors import (
    LlmCallNotFound,
    NotFound,
    RevisionRecordNotFound,
    StoreUnavailable,
    WorkflowNotFound,
)
from agentflowd.store.access_sql import SqlAccess
from agentflowd.store.base import (
    HISTORY_LIMIT,
    LEDGER_GROUPS,
    LLM_SETTLED_FIELDS,
    from_picousd,
    to_picousd,
)
from agentflowd.store.records import (
    AgentImage,
    HistoryAction,
    HistoryEntry,
    LlmCall,
    LlmCallState,
    Origin,
    RevisionKind,
    RevisionRecord,
    RevisionState,
    SourceState,
    StoredWorkflow,
    WorkflowHead,
    WorkflowWrite,
)
from agentflowd.store.tables import (
    agent_images,
    history,
    llm_calls,
    revisions,
    sources,
    workflows,
)

__all__ = ["SqlStore", "create_engine", "normalize_url"]

_MONEY = {"cost": "cost_picousd", "reserved": "reserved_picousd"}


def normalize_url(url: str) -> str:
    """Accept what users write: a path (SQLite), ``sqlite:///…``, ``postgresql://…``.

    PostgreSQL URLs are given the psycopg 3 driver.
    """
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine(url: str, *, busy_timeout: float = 10.0) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout (seconds a
    writer waits for another's lock before "database is locked")."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout}
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _workflow(row: RowMapping) -> StoredWorkflow:
    return StoredWorkflow(
        name=row["name"],
        origin=Origin(row["origin"]),
        spec=row["spec"],
        spec_hash=row["spec_hash"],
        revision=row["revision"],
        file=row["file"],
        generation=row["generation"],
        suspended=bool(row["suspended"]),
        pinned_revision=row["pinned_revision"],
        last_error=row["last_error"],
        error_revision=row["error_revision"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        images=row["images"] or {},
    )


def _llm_values(call: LlmCall, names: Iterable[str]) -> dict[str, Any]:
    """Columns of an LLM call: USD as picodollars, texts cut to 2,000 characters."""
    values: dict[str, Any] = {}
    for name in names:
        value = getattr(call, name)
        if name in _MONEY:
            values[_MONEY[name]] = to_picousd(value)
        elif name in ("reason", "error"):
            values[name] = value[:2000]
        elif name == "state":
            values[name] = value.value
        else:
            values[name] = value
    return values


def _revision(row: RowMapping) -> RevisionRecord:
    return RevisionRecord(
        id=row["id"],
        source=row["source"],
        sha=row["sha"],
        ref=row["ref"],
        kind=RevisionKind(row["kind"]),
        state=RevisionState(row["state"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        summary=row["summary"],
        diagnostics=row["diagnostics"],
        counts=row["counts"],
    )


class SqlStore:
    """:class:`~agentflowd.store.base.Store` on a SQLAlchemy engine (schema from migrations)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._epochs = itertools.count(1)
        self.workflows_epoch = 0
        #: API keys and the audit log, in the same database
        self.access = SqlAccess(engine)

    @classmethod
    def open(cls, url: str) -> SqlStore:
        """Open ``url`` without migrating (see :func:`agentflowd.store.migrate.upgrade`)."""
        return cls(create_engine(url))

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    def ping(self) -> None:
        """``SELECT 1`` on a pooled connection (PostgreSQL's pre-ping replaces a connection the
        server dropped, so a database that came back answers at once). The driver's message,
        on one line: psycopg's span several."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as exc:
            raise StoreUnavailable(" ".join(str(exc.orig).split()), delay=1.0) from exc

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc.orig}", delay=1.0) from exc

    @contextmanager
    def _workflows_tx(self) -> Iterator[Connection]:
        """A transaction that changes workflows: the epoch moves once it has ended."""
        try:
            with self._tx() as conn:
                yield conn
        finally:
            self.workflows_epoch = next(self._epochs)  # atomic under the GIL

    def _get(self, conn: Connection, name: str) -> StoredWorkflow:
        row = conn.execute(sa.select(workflows).where(workflows.c.name == name)).mappings().first()
        if row is None:
            raise WorkflowNotFound(name)
        return _workflow(row)

    def workflows(self) -> dict[str, StoredWorkflow]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(workflows).order_by(workflows.c.name)).mappings()
            return {row["name"]: _workflow(row) for row in rows}

    def workflow_heads(self, *, listing: bool = False) -> dict[str, WorkflowHead]:
        c = workflows.c
        columns = [
            c.name,
            c.origin,
            c.spec_hash,
            c.file,
            c.generation,
            c.suspended,
            c.pinned_revision,
            c.last_error.is_not(None).label("failing"),
        ]
        if listing:
            columns += [c.revision, c.updated_at, self._agents_count().label("agents")]
        query = sa.select(*columns).order_by(c.name)
        origins = {o.value: o for o in Origin}
        heads: dict[str, WorkflowHead] = {}
        with self._tx() as conn:
            for row in conn.execute(query):  # (by position: a third faster than by attribute)
                name, origin, spec_hash, file, generation, suspended, pinned, failing = row[:8]
                heads[name] = WorkflowHead(
                    name=name,
                    origin=origins[origin],
                    spec_hash=spec_hash,
                    file=file,
                    generation=generation,
                    suspended=bool(suspended),
                    pinned_revision=pinned,
                    failing=bool(failing),
                    revision=row[8] if listing else None,
                    updated_at=row[9] if listing else None,
                    agents=int(row[10] or 0) if listing else None,
                )
        return heads

    def _agents_count(self) -> Any:
        """How many agents a workflow's spec lists, counted by the database (no spec read)."""
        spec = workflows.c.spec
        if self.engine.dialect.name == "postgresql":
            return sa.func.jsonb_array_length(spec["spec"]["agents"], type_=sa.Integer)
        return sa.func.json_array_length(spec, "$.spec.agents", type_=sa.Integer)

    def get_workflow(self, name: str) -> StoredWorkflow:
        with self._tx() as conn:
            return self._get(conn, name)

    def put_workflow(
        self, write: WorkflowWrite, *, action: HistoryAction, now: datetime
    ) -> StoredWorkflow:
        with self._workflows_tx() as conn:
            current = (
                conn.execute(
                    sa.select(workflows.c.generation)
                    .where(workflows.c.name == write.name)
                    .with_for_update()
                )
                .scalars()
                .first()
            )
            values = {
                "origin": write.origin.value,
                "spec": write.spec,
                "spec_hash": write.spec_hash,
                "revision": write.revision,
                "file": write.file,
                "images": write.images or None,
                "last_error": None,
                "error_revision": None,
                "updated_at": now,
            }
            generation = 1 if current is None else current + 1
            if current is None:
                conn.execute(
                    workflows.insert().values(
                        name=write.name,
                        generation=generation,
                        suspended=False,
                        pinned_revision=None,
                        created_at=now,
                        **values,
                    )
                )
            else:
                conn.execute(
                    workflows.update()
                    .where(workflows.c.name == write.name)
                    .values(generation=generation, **values)
                )
            conn.execute(
                history.insert().values(
                    name=write.name,
                    generation=generation,
                    spec=write.spec,
                    spec_hash=write.spec_hash,
                    revision=write.revision,
                    action=action.value,
                    applied_at=now,
                    images=write.images or None,
                )
            )
            conn.execute(
                history.delete().where(
                    history.c.name == write.name,
                    history.c.generation <= generation - HISTORY_LIMIT,
                )
            )
            return self._get(conn, write.name)

    def delete_workflow(self, name: str) -> None:
        with self._workflows_tx() as conn:
            conn.execute(history.delete().where(history.c.name == name))
            result = conn.execute(workflows.delete().where(workflows.c.name == name))
            if result.rowcount == 0:
                raise WorkflowNotFound(name)

    def _update(self, name: str, now: datetime, **values: Any) -> StoredWorkflow:
        with self._workflows_tx() as conn:
            result = conn.execute(
                workflows.update().where(workflows.c.name == name).values(updated_at=now, **values)
            )
            if result.rowcount == 0:
                raise WorkflowNotFound(name)
            return self._get(conn, name)

    def set_error(
        self,
        name: str,
        diagnostics: list[dict[str, Any]] | None,
        revision: str | None,
        *,
        now: datetime,
    ) -> None:
        self._update(name, now, last_error=diagnostics, error_revision=revision)

    def set_file(self, name: str, file: str, *, now: datetime) -> StoredWorkflow:
        return self._update(name, now, file=file)

    def set_suspended(self, name: str, suspended: bool, *, now: datetime) -> StoredWorkflow:
        return self._update(name, now, suspended=suspended)

    def set_pin(self, name: str, revision: str | None, *, now: datetime) -> StoredWorkflow:
        return self._update(name, now, pinned_revision=revision)

    def history(self, name: str) -> list[HistoryEntry]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(history)
                .where(history.c.name == name)
                .order_by(history.c.generation.desc())
            ).mappings()
            return [
                HistoryEntry(
                    name=row["name"],
                    generation=row["generation"],
                    spec=row["spec"],
                    spec_hash=row["spec_hash"],
                    revision=row["revision"],
                    action=HistoryAction(row["action"]),
                    applied_at=row["applied_at"],
                    images=row["images"] or {},
                )
                for row in rows
            ]

    def record_llm_call(self, call: LlmCall) -> int:
        values = _llm_values(call, (f.name for f in fields(call)))
        with self._tx() as conn:
            return int(
                conn.execute(
                    llm_calls.insert().values(**values).returning(llm_calls.c.id)
                ).scalar_one()
            )

    def settle_llm_call(self, call_id: int, call: LlmCall) -> None:
        if call.state is LlmCallState.RESERVED:
            raise ValueError("an LLM call is settled or released, not reserved again")
        c = llm_calls.c
        update = (
            llm_calls.update()
            .where(c.id == call_id, c.state == LlmCallState.RESERVED.value)
            .values(**_llm_values(call, LLM_SETTLED_FIELDS))
        )
        with self._tx() as conn:
            if conn.execute(update).rowcount != 1:
                raise LlmCallNotFound(call_id)

    def llm_costs(
        self,
        *,
        by: str,
        workflow: str | None = None,
        execution: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, tuple[Decimal, int]]:
        if by not in LEDGER_GROUPS:
            raise ValueError(f"cannot group costs by {by!r} (one of {', '.join(LEDGER_GROUPS)})")
        c = llm_calls.c
        column = c[by]
        query = sa.select(column, sa.func.sum(c.cost_picousd), sa.func.count()).group_by(column)
        if workflow is not None:
            query = query.where(c.workflow == workflow)
        if execution is not None:
            query = query.where(c.execution == execution)
        if since is not None:
            query = query.where(c.at >= since)
        if until is not None:
            query = query.where(c.at < until)
        with self._tx() as conn:
            rows = conn.execute(query.order_by(column)).all()
        return {str(key): (from_picousd(int(total or 0)), int(n)) for key, total, n in rows}

    def missing_images(self, digests: Iterable[str]) -> set[str]:
        wanted = set(digests)
        if not wanted:
            return set()
        with self._tx() as conn:
            have = conn.execute(
                sa.select(agent_images.c.sha256).where(agent_images.c.sha256.in_(wanted))
            ).scalars()
            return wanted - set(have)

    def put_image(self, image: AgentImage, *, now: datetime) -> None:
        values = {
            "sha256": image.sha256,
            "kind": image.kind,
            "size": len(image.content),
            "content": image.content,
            "created_at": now,
        }
        with self._tx() as conn:
            if self.engine.dialect.name == "postgresql":
                stmt: Any = postgresql.insert(agent_images).values(**values)
            else:
                stmt = sqlite.insert(agent_images).values(**values)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))

    def get_image(self, sha256: str) -> AgentImage:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(agent_images.c.kind, agent_images.c.content).where(
                    agent_images.c.sha256 == sha256
                )
            ).first()
        if row is None:
            raise NotFound(f"agent image sha256:{sha256} is not in the store")
        return AgentImage(sha256=sha256, kind=row.kind, content=bytes(row.content))

    def begin_revision(
        self, *, source: str, sha: str, ref: str, kind: RevisionKind, now: datetime
    ) -> RevisionRecord:
        with self._tx() as conn:
            new_id = conn.execute(
                revisions.insert()
                .values(
                    source=source,
                    sha=sha,
                    ref=ref,
                    kind=kind.value,
                    state=RevisionState.PENDING.value,
                    started_at=now,
                    summary="",
                    diagnostics=[],
                    counts={},
                )
                .returning(revisions.c.id)
            ).scalar_one()
            return self._revision(conn, new_id)

    def finish_revision(
        self,
        revision_id: int,
        *,
        state: RevisionState,
        summary: str,
        diagnostics: list[dict[str, Any]],
        counts: dict[str, int],
        now: datetime,
    ) -> RevisionRecord:
        with self._tx() as conn:
            result = conn.execute(
                revisions.update()
                .where(revisions.c.id == revision_id)
                .values(
                    state=state.value,
                    summary=summary,
                    diagnostics=diagnostics,
                    counts=counts,
                    finished_at=now,
                )
            )
            if result.rowcount == 0:
                raise RevisionRecordNotFound(revision_id)
            return self._revision(conn, revision_id)

    def _revision(self, conn: Connection, revision_id: int) -> RevisionRecord:
        row = conn.execute(sa.select(revisions).where(revisions.c.id == revision_id)).mappings()
        found = row.first()
        if found is None:
            raise RevisionRecordNotFound(revision_id)
        return _revision(found)

    def get_revision(self, revision_id: int) -> RevisionRecord:
        with self._tx() as conn:
            return self._revision(conn, revision_id)

    def revisions(
        self, *, limit: int = 50, kind: RevisionKind | None = None
    ) -> list[RevisionRecord]:
        query = sa.select(revisions).order_by(revisions.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(revisions.c.kind == kind.value)
        with self._tx() as conn:
            return [_revision(row) for row in conn.execute(query).mappings()]

    def source_state(self, name: str) -> SourceState | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).mappings().first()
            if row is None:
                return None
            return SourceState(**dict(row))

    def save_source_state(self, state: SourceState) -> None:
        values = {
            "url": state.url,
            "branch": state.branch,
            "path": state.path,
            "last_seen_sha": state.last_seen_sha,
            "last_applied_sha": state.last_applied_sha,
            "updated_at": state.updated_at,
        }
        with self._tx() as conn:
            updated = conn.execute(
                sources.update().where(sources.c.name == state.name).values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(sources.insert().values(name=state.name, **values))
