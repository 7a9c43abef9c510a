"""The store in memory: for tests and tools that need the interface without a database.

Behaves exactly like :class:`~agentflowd.store.sql.SqlStore` (the same contract suite runs
against both); values are deep-copied in and out so callers cannot alias the stored state.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentflowd.errors import LlmCallNotFound, NotFound, RevisionRecordNotFound, WorkflowNotFound
from agentflowd.store.access_memory import MemoryAccess
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
    RevisionKind,
    RevisionRecord,
    RevisionState,
    SourceState,
    StoredWorkflow,
    WorkflowHead,
    WorkflowWrite,
)

__all__ = ["MemoryStore"]


def _aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("naive datetime given to the store; use timezone-aware UTC")


def _as_kept(call: LlmCall) -> LlmCall:
    """A call as the database keeps it: USD to the picodollar, texts cut to 2,000 characters."""
    return replace(
        call,
        cost=from_picousd(to_picousd(call.cost)),
        reserved=from_picousd(to_picousd(call.reserved)),
        reason=call.reason[:2000],
        error=call.error[:2000],
    )


class MemoryStore:
    """:class:`~agentflowd.store.base.Store` in a dict, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workflows: dict[str, StoredWorkflow] = {}
        self._history: dict[str, list[HistoryEntry]] = {}
        self._revisions: list[RevisionRecord] = []
        self._sources: dict[str, SourceState] = {}
        self._images: dict[str, AgentImage] = {}
        self._llm_calls: list[LlmCall] = []
        self.workflows_epoch = 0
        #: API keys and the audit log
        self.access = MemoryAccess()

    def close(self) -> None:
        """Nothing to release."""

    def ping(self) -> None:
        """A dict always answers."""

    def workflows(self) -> dict[str, StoredWorkflow]:
        with self._lock:
            return {k: copy.deepcopy(v) for k, v in sorted(self._workflows.items())}

    def workflow_heads(self, *, listing: bool = False) -> dict[str, WorkflowHead]:
        with self._lock:
            return {name: w.head(listing=listing) for name, w in sorted(self._workflows.items())}

    def _get(self, name: str) -> StoredWorkflow:
        try:
            return self._workflows[name]
        except KeyError:
            raise WorkflowNotFound(name) from None

    def get_workflow(self, name: str) -> StoredWorkflow:
        with self._lock:
            return copy.deepcopy(self._get(name))

    def put_workflow(
        self, write: WorkflowWrite, *, action: HistoryAction, now: datetime
    ) -> StoredWorkflow:
        _aware(now)
        with self._lock:
            current = self._workflows.get(write.name)
            generation = 1 if current is None else current.generation + 1
            stored = StoredWorkflow(
                name=write.name,
                origin=write.origin,
                spec=copy.deepcopy(write.spec),
                spec_hash=write.spec_hash,
                revision=write.revision,
                file=write.file,
                generation=generation,
                suspended=current.suspended if current else False,
                pinned_revision=current.pinned_revision if current else None,
                last_error=None,
                error_revision=None,
                created_at=current.created_at if current else now,
                updated_at=now,
                images=copy.deepcopy(write.images),
            )
            self._workflows[write.name] = stored
            self.workflows_epoch += 1
            entries = self._history.setdefault(write.name, [])
            entries.insert(
                0,
                HistoryEntry(
                    name=write.name,
                    generation=generation,
                    spec=copy.deepcopy(write.spec),
                    spec_hash=write.spec_hash,
                    revision=write.revision,
                    action=action,
                    applied_at=now,
                    images=copy.deepcopy(write.images),
                ),
            )
            del entries[HISTORY_LIMIT:]
            return copy.deepcopy(stored)

    def delete_workflow(self, name: str) -> None:
        with self._lock:
            self._get(name)
            del self._workflows[name]
            self._history.pop(name, None)
            self.workflows_epoch += 1

    def _update(self, name: str, now: datetime, **values: Any) -> StoredWorkflow:
        _aware(now)
        with self._lock:
            stored = replace(self._get(name), updated_at=now, **values)
            self._workflows[name] = stored
            self.workflows_epoch += 1
            return copy.deepcopy(stored)

    def set_error(
        self,
        name: str,
        diagnostics: list[dict[str, Any]] | None,
        revision: str | None,
        *,
        now: datetime,
    ) -> None:
        self._update(name, now, last_error=copy.deepcopy(diagnostics), error_revision=revision)

    def set_file(self, name: str, file: str, *, now: datetime) -> StoredWorkflow:
        return self._update(name, now, file=file)

    def set_suspended(self, name: str, suspended: bool, *, now: datetime) -> StoredWorkflow:
        return self._update(name, now, suspended=suspended)

    def set_pin(self, name: str, revision: str | None, *, now: datetime) -> StoredWorkflow:
        return self._update(name, now, pinned_revision=revision)

    def history(self, name: str) -> list[HistoryEntry]:
        with self._lock:
            return copy.deepcopy(self._history.get(name, []))

    def record_llm_call(self, call: LlmCall) -> int:
        _aware(call.at)
        with self._lock:
            self._llm_calls.append(_as_kept(call))
            return len(self._llm_calls)  # ids start at 1, as the database's do

    def settle_llm_call(self, call_id: int, call: LlmCall) -> None:
        if call.state is LlmCallState.RESERVED:
            raise ValueError("an LLM call is settled or released, not reserved again")
        with self._lock:
            index = call_id - 1
            if not 0 <= index < len(self._llm_calls):
                raise LlmCallNotFound(call_id)
            kept = self._llm_calls[index]
            if kept.state is not LlmCallState.RESERVED:
                raise LlmCallNotFound(call_id)
            self._llm_calls[index] = _as_kept(
                replace(
                    kept,
                    **{name: getattr(call, name) for name in LLM_SETTLED_FIELDS},
                )
            )

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
        out: dict[str, tuple[Decimal, int]] = {}
        with self._lock:
            for call in self._llm_calls:
                if (workflow is not None and call.workflow != workflow) or (
                    execution is not None and call.execution != execution
                ):
                    continue
                if (since is not None and call.at < since) or (
                    until is not None and call.at >= until
                ):
                    continue
                key = str(getattr(call, by))
                total, n = out.get(key, (Decimal(0), 0))
                out[key] = (total + call.cost, n + 1)
        return dict(sorted(out.items()))

    def missing_images(self, digests: Iterable[str]) -> set[str]:
        with self._lock:
            return set(digests) - set(self._images)

    def put_image(self, image: AgentImage, *, now: datetime) -> None:
        _aware(now)
        with self._lock:
            self._images.setdefault(image.sha256, image)

    def get_image(self, sha256: str) -> AgentImage:
        with self._lock:
            try:
                return self._images[sha256]
            except KeyError:
                raise NotFound(f"agent image sha256:{sha256} is not in the store") from None

    def begin_revision(
        self, *, source: str, sha: str, ref: str, kind: RevisionKind, now: datetime
    ) -> RevisionRecord:
        _aware(now)
        with self._lock:
            record = RevisionRecord(
                id=len(self._revisions) + 1,
                source=source,
                sha=sha,
                ref=ref,
                kind=kind,
                state=RevisionState.PENDING,
                started_at=now,
                finished_at=None,
                summary="",
            )
            self._revisions.append(record)
            return record

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
        with self._lock:
            if not 0 < revision_id <= len(self._revisions):
                raise RevisionRecordNotFound(revision_id)
            record = replace(
                self._revisions[revision_id - 1],
                state=state,
                summary=summary,
                diagnostics=copy.deepcopy(diagnostics),
                counts=dict(counts),
                finished_at=now,
            )
            self._revisions[revision_id - 1] = record
            return record

    def get_revision(self, revision_id: int) -> RevisionRecord:
        with self._lock:
            if not 0 < revision_id <= len(self._revisions):
                raise RevisionRecordNotFound(revision_id)
            return self._revisions[revision_id - 1]

    def revisions(
        self, *, limit: int = 50, kind: RevisionKind | None = None
    ) -> list[RevisionRecord]:
        with self._lock:
            found = [r for r in reversed(self._revisions) if kind is None or r.kind is kind]
            return found[:limit]

    def source_state(self, name: str) -> SourceState | None:
        with self._lock:
            return self._sources.get(name)

    def save_source_state(self, state: SourceState) -> None:
        with self._lock:
            self._sources[state.name] = state
