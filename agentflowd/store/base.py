"""The store interface: the actual state the reconciler compares git against.

Every method is one transaction, and every write takes ``now`` from the caller (an injected
clock), so tests control time. Implementations: :class:`~agentflowd.store.sql.SqlStore`
(SQLite, PostgreSQL) and :class:`~agentflowd.store.memory.MemoryStore`; one contract suite
(``tests/store/test_contract.py``) runs against all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from agentflowd.store.access import AccessStore
from agentflowd.store.records import (
    AgentImage,
    HistoryAction,
    HistoryEntry,
    LlmCall,
    RevisionKind,
    RevisionRecord,
    RevisionState,
    SourceState,
    StoredWorkflow,
    WorkflowHead,
    WorkflowWrite,
)

__all__ = [
    "HISTORY_LIMIT",
    "LEDGER_GROUPS",
    "LLM_SETTLED_FIELDS",
    "Store",
    "from_picousd",
    "to_picousd",
]

HISTORY_LIMIT = 10
#: What ledger totals can be grouped by.
LEDGER_GROUPS = ("provider", "kind", "model", "workflow", "agent", "execution", "state")
#: What settling a reserved LLM call rewrites; its time, identity and reservation stay.
LLM_SETTLED_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "estimated",
    "cost",
    "latency_ms",
    "outcome",
    "error",
    "state",
)
_PICO = Decimal(10) ** 12


def to_picousd(cost: Decimal) -> int:
    """USD as integer picodollars (exact for every price with up to 6 decimals per Mtok)."""
    return int((cost * _PICO).to_integral_value())


def from_picousd(value: int) -> Decimal:
    """Integer picodollars as USD."""
    return Decimal(value) / _PICO


class Store(Protocol):
    """Workflows, their history, revisions and source state."""

    #: Moves after every committed change to the workflows table made through this object
    #: (the engine keeps workflows in memory while it stands still).
    workflows_epoch: int

    #: API keys and the audit log, kept in the same database (a port of their own).
    @property
    def access(self) -> AccessStore:
        """Keys and the audit log."""
        ...

    def close(self) -> None:
        """Release connections."""

    def ping(self) -> None:
        """Return when the database answers a trivial query now; raise
        :class:`~agentflowd.errors.StoreUnavailable` (why, in one line) when it does not.
        Readiness probes call it (cached); it sets no timeout of its own."""

    def workflows(self) -> dict[str, StoredWorkflow]:
        """Every stored workflow by name."""
        ...

    def workflow_heads(self, *, listing: bool = False) -> dict[str, WorkflowHead]:
        """Every workflow by name, without specs (fast: the reconciler plans with these).
        ``listing`` adds what the API's list shows: the revision, the time of the last change
        and the number of agents (counted by the database: ~7 µs a workflow)."""
        ...

    def get_workflow(self, name: str) -> StoredWorkflow:
        """One workflow; raises :class:`~agentflowd.errors.WorkflowNotFound`."""
        ...

    def put_workflow(
        self, write: WorkflowWrite, *, action: HistoryAction, now: datetime
    ) -> StoredWorkflow:
        """Make ``write`` the active version: bump the generation, record it in the history
        (keeping the last :data:`HISTORY_LIMIT`), clear the last error. Keeps suspend and pin."""
        ...

    def delete_workflow(self, name: str) -> None:
        """Remove a workflow and its history; raises WorkflowNotFound."""
        ...

    def set_error(
        self,
        name: str,
        diagnostics: list[dict[str, Any]] | None,
        revision: str | None,
        *,
        now: datetime,
    ) -> None:
        """Record (or clear, with ``None``) why the newest version could not be applied."""
        ...

    def set_file(self, name: str, file: str, *, now: datetime) -> StoredWorkflow:
        """Record that an unchanged workflow now lives in another file."""
        ...

    def set_suspended(self, name: str, suspended: bool, *, now: datetime) -> StoredWorkflow:
        """Suspend or resume a workflow's triggers."""
        ...

    def set_pin(self, name: str, revision: str | None, *, now: datetime) -> StoredWorkflow:
        """Pin to a revision (auto-sync leaves it alone) or unpin with ``None``."""
        ...

    def history(self, name: str) -> list[HistoryEntry]:
        """Applied versions, newest first."""
        ...

    def missing_images(self, digests: Iterable[str]) -> set[str]:
        """Which of these image digests the store does not hold yet."""
        ...

    def put_image(self, image: AgentImage, *, now: datetime) -> None:
        """Keep an image's content (a no-op when its digest is already kept)."""
        ...

    def get_image(self, sha256: str) -> AgentImage:
        """An image by digest (:class:`~agentflowd.errors.NotFound` when absent)."""
        ...

    def record_llm_call(self, call: LlmCall) -> int:
        """Append one LLM attempt to the cost ledger; its id (to settle a reserved one by).
        A reserved attempt is recorded before its request leaves, so it is in the ledger
        whatever happens to this process afterwards."""
        ...

    def settle_llm_call(self, call_id: int, call: LlmCall) -> None:
        """Replace how reserved attempt ``call_id`` ended with ``call``'s (state, tokens, cost,
        latency, outcome, error); its time, identity and reservation stay as journaled.
        Raises :class:`~agentflowd.errors.LlmCallNotFound` unless ``call_id`` is reserved
        (settling twice is a bug), ValueError when ``call`` is itself reserved."""
        ...

    def llm_costs(
        self,
        *,
        by: str,
        workflow: str | None = None,
        execution: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, tuple[Decimal, int]]:
        """Cost (exact USD) and number of attempts per value of ``by`` (one of
        :data:`LEDGER_GROUPS`), for the calls matching the filters (``until`` exclusive). A
        reserved attempt counts at its reservation: it may have been billed that much."""
        ...

    def begin_revision(
        self, *, source: str, sha: str, ref: str, kind: RevisionKind, now: datetime
    ) -> RevisionRecord:
        """Record that a revision was picked up (state ``pending``)."""
        ...

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
        """Record the outcome of a revision."""
        ...

    def get_revision(self, revision_id: int) -> RevisionRecord:
        """One revision record; raises RevisionRecordNotFound."""
        ...

    def revisions(
        self, *, limit: int = 50, kind: RevisionKind | None = None
    ) -> list[RevisionRecord]:
        """Revision records, newest first."""
        ...

    def source_state(self, name: str) -> SourceState | None:
        """What was last seen and applied from a source, if anything."""
        ...

    def save_source_state(self, state: SourceState) -> None:
        """Insert or replace a source's state."""
        ...
