"""The cost ledger: one record per attempt, whatever happened, and an interface to keep them.

The router journals every provider attempt *before* its request leaves, as a
:attr:`CostState.RESERVED` record at the budget reservation's worst-case amount, and settles
that record once the attempt is over: :attr:`~CostState.SETTLED` at what it cost, or
:attr:`~CostState.RELEASED` at zero when nothing was billed (the connection was never made, or
the provider answered with an error and reported no usage; see :class:`router.Delivery`).
Why before: a process killed while a call is in flight has paid for it, and a record written
only after the answer is lost with the process (measured: 640 provider calls, 600 records, and
budgets seeded from the records then let spend reach 119 % of a cap). A reserved record that is
never settled keeps counting at its reservation, so whoever sums the ledger sees every call that
may have been paid, and at no less than it may have cost. Each attempt has its own record: a
retry or a fallback may be billed again.

A cache hit sends nothing, so it needs no reservation: it is recorded settled, at zero, in one
step. A refusal before any request (a budget, a rate limit, a deadline) is not recorded.

The daemon implements :class:`Ledger` over its store (two writes an attempt: the journal and
the settlement); :class:`MemoryLedger` is the in-process implementation for tools and tests.
"""

from __future__ import annotations

import enum
import threading
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from router.types import Usage

__all__ = ["CostRecord", "CostState", "Ledger", "MemoryLedger"]


class CostState(enum.StrEnum):
    """Where an attempt's record stands; every state counts at the record's ``cost``."""

    RESERVED = "reserved"  # journaled before the request left: cost is the worst case
    SETTLED = "settled"  # the attempt is over: cost is what it was billed
    RELEASED = "released"  # the attempt is over and nothing was billed: cost is zero


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
    state: CostState = CostState.SETTLED
    reserved: Decimal = Decimal(0)  # the worst case reserved before the request left

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (cost as a string, to keep every digit)."""
        out = asdict(self)
        out["cost"] = str(self.cost)
        out["reserved"] = str(self.reserved)
        return out


class Ledger(Protocol):
    """Where cost records go: journaled before an attempt, settled after it."""

    def record(self, entry: CostRecord) -> int:
        """Keep one record and return its key. A :attr:`CostState.RESERVED` record is written
        before its request leaves; raising refuses the attempt (nothing is sent)."""
        ...

    def settle(self, key: int, entry: CostRecord) -> None:
        """Replace the reserved record ``key`` by how its attempt ended (``entry``: SETTLED or
        RELEASED). If this raises, the router logs it and the record stays reserved, counted
        at its worst case: too much, never too little."""
        ...


@dataclass
class MemoryLedger:
    """Records in a list (a record's key is its index), with totals."""

    records: list[CostRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, entry: CostRecord) -> int:
        """Append."""
        with self._lock:
            self.records.append(entry)
            return len(self.records) - 1

    def settle(self, key: int, entry: CostRecord) -> None:
        """Replace a reserved record in place (its position keeps the order of attempts)."""
        if entry.state is CostState.RESERVED:
            raise ValueError("an attempt is settled or released, not reserved again")
        with self._lock:
            if not 0 <= key < len(self.records) or self.records[key].state != CostState.RESERVED:
                raise LookupError(f"no reserved cost record {key}")
            self.records[key] = entry

    def totals(self, by: str = "provider") -> dict[str, Decimal]:
        """Cost summed by a record field (provider, agent, execution, model, state...); a
        reserved record counts at its reservation."""
        out: dict[str, Decimal] = defaultdict(Decimal)
        with self._lock:
            for entry in self.records:
                out[str(getattr(entry, by))] += entry.cost
        return dict(out)
