"""What the store holds, as frozen value objects: workflows, their history, synced revisions.

These are the *actual* state the reconciler diffs the desired state (git) against. Specs are
stored in canonical form (:mod:`agentflowd.manifest.canonical`) with their hash, so a diff is a
string comparison.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "AgentImage",
    "HistoryAction",
    "HistoryEntry",
    "LlmCall",
    "LlmCallState",
    "Origin",
    "RevisionKind",
    "RevisionRecord",
    "RevisionState",
    "SourceState",
    "StoredWorkflow",
    "WorkflowHead",
    "WorkflowWrite",
]


class Origin(enum.StrEnum):
    """Who manages a workflow: the git source, or the API (``agentflow deploy``)."""

    GIT = "git"
    API = "api"


class HistoryAction(enum.StrEnum):
    """Why a version of a workflow was recorded."""

    CREATE = "create"
    UPDATE = "update"
    ROLLBACK = "rollback"


class RevisionKind(enum.StrEnum):
    """A revision is synced (applied) or only validated (a pull request)."""

    SYNC = "sync"
    VALIDATE = "validate"


class RevisionState(enum.StrEnum):
    """Commit-status states, as forges name them."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True, kw_only=True)
class WorkflowWrite:
    """A version of a workflow to store."""

    name: str
    origin: Origin
    spec: dict[str, Any]
    spec_hash: str
    revision: str | None = None
    file: str | None = None
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # ref -> ResolvedImage.record


@dataclass(frozen=True, kw_only=True)
class StoredWorkflow:
    """A workflow as applied: its active version plus operator state and the last error."""

    name: str
    origin: Origin
    spec: dict[str, Any]
    spec_hash: str
    revision: str | None
    file: str | None
    generation: int
    suspended: bool
    pinned_revision: str | None
    last_error: list[dict[str, Any]] | None
    error_revision: str | None
    created_at: datetime
    updated_at: datetime
    images: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        """True when auto-sync must leave this workflow alone (after a rollback)."""
        return self.pinned_revision is not None

    def head(self, *, listing: bool = False) -> WorkflowHead:
        """This workflow without its spec (``listing``: as :meth:`Store.workflow_heads`)."""
        return WorkflowHead(
            name=self.name,
            origin=self.origin,
            spec_hash=self.spec_hash,
            file=self.file,
            generation=self.generation,
            suspended=self.suspended,
            pinned_revision=self.pinned_revision,
            failing=self.last_error is not None,
            revision=self.revision if listing else None,
            updated_at=self.updated_at if listing else None,
            agents=len(self.spec.get("spec", {}).get("agents", [])) if listing else None,
        )


@dataclass(frozen=True, kw_only=True)
class WorkflowHead:
    """A workflow without its spec: what planning, status counts and the API's list need,
    cheap to list (reading 1,000 specs to list them raised the daemon's memory by 20 MB)."""

    name: str
    origin: Origin
    spec_hash: str
    file: str | None
    generation: int
    suspended: bool
    pinned_revision: str | None
    failing: bool
    # with listing=True only (see Store.workflow_heads); None otherwise
    revision: str | None = None
    updated_at: datetime | None = None
    agents: int | None = None


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One applied version of a workflow (the store keeps the last 10)."""

    name: str
    generation: int
    spec: dict[str, Any]
    spec_hash: str
    revision: str | None
    action: HistoryAction
    applied_at: datetime
    images: dict[str, dict[str, Any]] = field(default_factory=dict)


class LlmCallState(enum.StrEnum):
    """Where a ledger row stands (the router's ``CostState``, as the store keeps it). Every
    state counts at the row's ``cost``: a reserved row at its worst case, since a process that
    died with the call in flight may have been billed for it."""

    RESERVED = "reserved"  # journaled before the request left; cost is the reservation
    SETTLED = "settled"  # the attempt is over; cost is what it was billed
    RELEASED = "released"  # the attempt is over and nothing was billed; cost is zero


@dataclass(frozen=True, kw_only=True)
class LlmCall:
    """One LLM attempt as the router's ledger recorded it (cost exact, in USD)."""

    at: datetime
    workflow: str
    agent: str
    execution: str
    step: str
    provider: str
    kind: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    estimated: bool
    cost: Decimal
    price_source: str
    latency_ms: float
    cache_hit: bool
    fallback_depth: int
    attempt: int
    outcome: str
    reason: str = ""
    error: str = ""
    state: LlmCallState = LlmCallState.SETTLED
    reserved: Decimal = Decimal(0)  # the worst case reserved before the request left


@dataclass(frozen=True, kw_only=True)
class AgentImage:
    """An agent's code, kept by content so any node can run it whatever git does later."""

    sha256: str
    kind: str  # "python" | "wasm"
    content: bytes


@dataclass(frozen=True, kw_only=True)
class RevisionRecord:
    """One commit the reconciler picked up, and what came of it."""

    id: int
    source: str
    sha: str
    ref: str
    kind: RevisionKind
    state: RevisionState
    started_at: datetime
    finished_at: datetime | None
    summary: str
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SourceState:
    """What the reconciler last saw and applied from a git source."""

    name: str
    url: str
    branch: str
    path: str
    last_seen_sha: str | None
    last_applied_sha: str | None
    updated_at: datetime
