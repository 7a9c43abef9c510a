"""The one exception hierarchy of agentflowd.

Retry semantics live in the type (kopf's rule): a :class:`PermanentError` will fail the same way
again until someone changes the input, so it is reported as ``failure`` and never retried; a
:class:`TransientError` may succeed later and carries the delay to wait before trying again.
Lookup errors also subclass :class:`LookupError` and build their message from the id.

::

    AgentFlowError
    ├── PermanentError
    │   ├── ManifestError            invalid manifests; carries every Diagnostic found
    │   ├── UsageError               a command was called wrongly (exit code 2)
    │   │   └── DatabaseInUse        another daemon holds this SQLite database
    │   ├── AccessError              a request's credentials do not allow it
    │   │   ├── Unauthenticated      no credentials, or ones that prove nothing (HTTP 401)
    │   │   └── Forbidden            known credentials, too weak for this (HTTP 403)
    │   ├── ConflictError            the change contradicts the current state (e.g. ownership)
    │   │   ├── FencedOut            another node owns the execution now: the entry is refused
    │   │   └── DuplicateTriggerKey  a trigger key (cron slot, delivery) started one already
    │   ├── NotFound                 (also a LookupError) a named thing does not exist
    │   │   ├── WorkflowNotFound
    │   │   ├── RevisionRecordNotFound
    │   │   ├── LlmCallNotFound      no reserved ledger row has this id
    │   │   └── KeyNotFound          no API key has this id or name
    │   └── SourceError              a git repository or a file cannot be read as asked
    │       └── RevisionNotFound     (also a NotFound) a ref or commit does not exist
    └── TransientError               may succeed on a later attempt; ``.delay`` seconds
        └── StoreUnavailable         the database cannot be reached or is locked
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from agentflowd.manifest.diagnostics import Diagnostic

__all__ = [
    "AccessError",
    "AgentFlowError",
    "ConflictError",
    "DatabaseInUse",
    "DuplicateTriggerKey",
    "FencedOut",
    "Forbidden",
    "KeyNotFound",
    "LlmCallNotFound",
    "ManifestError",
    "NotFound",
    "PermanentError",
    "RevisionNotFound",
    "RevisionRecordNotFound",
    "SourceError",
    "StoreUnavailable",
    "TransientError",
    "Unauthenticated",
    "UsageError",
    "WorkflowNotFound",
]


class AgentFlowError(Exception):
    """Base class of every error agentflowd raises on purpose."""


class PermanentError(AgentFlowError):
    """Retrying will not help: the input, the configuration or the request must change."""


class TransientError(AgentFlowError):
    """A temporary condition (network, lock, rate limit); worth retrying after ``delay`` s."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class ManifestError(PermanentError):
    """One or more manifests are invalid; ``diagnostics`` lists every problem found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        first = self.diagnostics[0].format() if self.diagnostics else "invalid manifest"
        more = len(self.diagnostics) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))


class UsageError(PermanentError):
    """A command or API call was made with arguments that cannot work."""


class DatabaseInUse(UsageError):
    """Another process holds the lock of this SQLite database (SQLite serves one daemon);
    ``pid`` is the holder's when it could be read."""

    def __init__(self, database: Path, *, pid: int | None) -> None:
        holder = f"agentflowd pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"database {database} is in use by {holder}; SQLite serves one daemon: stop that "
            "one, or use PostgreSQL (--database postgresql://...) to run several"
        )
        self.database = database
        self.pid = pid


class SourceError(PermanentError):
    """A git repository, ref or file cannot be read as asked; ``revision`` names the ref."""

    def __init__(self, message: str, *, revision: str | None = None) -> None:
        super().__init__(message)
        self.revision = revision


class AccessError(PermanentError):
    """The request's credentials do not allow what it asks; the message says why, never
    echoing a secret."""


class Unauthenticated(AccessError):
    """No credentials, or ones that prove nothing: unknown, revoked or expired key, a token
    that fails verification (HTTP 401)."""


class Forbidden(AccessError):
    """The caller is known but may not do this: too weak a role, or a workflow outside its
    key's selector (HTTP 403)."""


class ConflictError(PermanentError):
    """The change contradicts the current state, e.g. writing a workflow another origin owns."""

    def __init__(self, message: str, *, workflow: str | None = None) -> None:
        super().__init__(message)
        self.workflow = workflow


class FencedOut(ConflictError):
    """An entry for an execution was refused: another node owns the execution now (the
    writer lost its lease and the execution was taken over)."""

    def __init__(self, execution_id: str, fence: str, owner: str | None) -> None:
        super().__init__(
            f"execution {execution_id} is owned by {owner or 'no node'} now, not {fence}"
        )
        self.execution_id = execution_id
        self.fence = fence
        self.owner = owner


class DuplicateTriggerKey(ConflictError):
    """An execution with this trigger key (a cron slot, a webhook delivery) exists already."""

    def __init__(self, key: str) -> None:
        super().__init__(f"trigger key {key!r} has started an execution already")
        self.key = key


class NotFound(PermanentError, LookupError):
    """A named object does not exist."""


class RevisionNotFound(SourceError, NotFound):
    """The ref or commit does not exist in the repository."""

    def __init__(self, revision: str, repo: str) -> None:
        super().__init__(f"revision {revision!r} not found in {repo}", revision=revision)
        self.repo = repo


class WorkflowNotFound(NotFound):
    """No workflow has this name."""

    def __init__(self, workflow: str) -> None:
        super().__init__(f"workflow {workflow!r} not found")
        self.workflow = workflow


class RevisionRecordNotFound(NotFound):
    """No synced or validated revision has this id."""

    def __init__(self, revision_id: int) -> None:
        super().__init__(f"revision record {revision_id} not found")
        self.revision_id = revision_id


class LlmCallNotFound(NotFound):
    """No reserved LLM call in the cost ledger has this id (none has, or it was settled)."""

    def __init__(self, call_id: int) -> None:
        super().__init__(f"no reserved LLM call {call_id} in the cost ledger")
        self.call_id = call_id


class KeyNotFound(NotFound):
    """No API key has this id or name."""

    def __init__(self, key: str) -> None:
        super().__init__(f"API key {key!r} not found")
        self.key = key


class StoreUnavailable(TransientError):
    """The database cannot be reached, or stayed locked past the busy timeout."""
