"""What running one step can come to: one frozen value per kind, each with a one-line message.

The engine decides retries from these (transient vs permanent), the API shows them, and the
CLI exits 0 only for :class:`Ok`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["LimitKind", "Outcome", "OutcomeKind", "StepReport"]


class OutcomeKind(enum.StrEnum):
    """The kinds of outcome."""

    OK = "ok"
    TIMEOUT = "timeout"
    CPU_LIMIT = "cpu-limit"
    MEMORY_LIMIT = "memory-limit"
    LIMIT_EXCEEDED = "limit-exceeded"
    NETWORK_DENIED = "network-denied"
    AGENT_ERROR = "agent-error"
    TRAP = "trap"


class LimitKind(enum.StrEnum):
    """Counted limits of a step."""

    LLM_CALLS = "llmCalls"
    NETWORK_REQUESTS = "networkRequests"
    FILE_OPERATIONS = "fileOperations"
    STORAGE = "storage"
    OUTPUT = "output"


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How a step ended. ``output`` is set for OK; ``detail`` holds the guest's message."""

    kind: OutcomeKind
    output: str | None = None
    detail: str = ""
    limit: LimitKind | None = None

    @property
    def ok(self) -> bool:
        """True when the agent returned a result."""
        return self.kind is OutcomeKind.OK

    def message(self) -> str:
        """One line for people."""
        first = self.detail.strip().splitlines()[-1] if self.detail.strip() else ""
        if self.kind is OutcomeKind.OK:
            return "ok"
        if self.kind is OutcomeKind.LIMIT_EXCEEDED and self.limit is not None:
            return f"limit exceeded: {self.limit.value}" + (f" ({first})" if first else "")
        return f"{self.kind.value}: {first}" if first else self.kind.value


@dataclass(kw_only=True)
class StepReport:
    """An outcome with what the step used: counted calls, fuel, time, its log."""

    outcome: Outcome
    elapsed_seconds: float
    fuel_used: int
    counts: dict[str, int] = field(default_factory=dict)
    log: str = ""
    log_truncated: bool = False
