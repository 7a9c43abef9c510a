"""The cost ledger: one record per attempt, whatever happened, and an interface to keep them.

The router writes a :class:`CostRecord` for every provider attempt (failed ones cost nothing but
are recorded with their error), every cache hit, and every refusal. The daemon implements
:class:`Ledger` over its store and aggregates per execution, agent and provider;
:class:`MemoryLedger` is the in-process implementation for tools and tests.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from router.types import Usage

__all__ = ["CostRecord", "Ledger", "MemoryLedger"]


@dataclass(frozen=True, kw_only=True)
class CostRecord:
    """One attempt (or cache hit) of one LLM call."""

    at: float  # unix time
    workflow: str
    agent: str
    execution: str
    step: str
    provider: str  # deployment name
    kind: str  # provider kind (openai, anthropic, local, mock)
    model: str
    usage: Usage
    cost: Decimal
    price_source: str
    latency_ms: float
    cache_hit: bool = False
    fallback_depth: int = 0  # 0: the first route of the chain
    attempt: int = 1
    outcome: str = "ok"  # "ok", or the error kind
    reason: str = ""  # why this route (matched condition / fallback cause)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (cost as a string, to keep every digit)."""
        out = asdict(self)
        out["cost"] = str(self.cost)
        return out


class Ledger(Protocol):
    """Where cost records go."""

    def record(self, entry: CostRecord) -> None:
        """Keep one record (must not raise into the caller)."""
        ...


@dataclass
class MemoryLedger:
    """Records in a list, with totals."""

    records: list[CostRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, entry: CostRecord) -> None:
        """Append."""
        with self._lock:
            self.records.append(entry)

    def totals(self, by: str = "provider") -> dict[str, Decimal]:
        """Cost summed by a record field (provider, agent, execution, model...)."""
        out: dict[str, Decimal] = defaultdict(Decimal)
        with self._lock:
            for entry in self.records:
                out[str(getattr(entry, by))] += entry.cost
        return dict(out)
