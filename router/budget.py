"""Budgets as reservations: reserve a call's worst case before it, settle the actual after.

Concurrent calls therefore cannot overshoot a limit: a call is admitted only when its worst case
fits in what is left after every other admitted call's reservation (LiteLLM admitted 4 of 5
concurrent requests over a cap, PR #40002). A zero-cost call always passes (LiteLLM #10973).
Scopes are plain keys (``execution:ID``, ``workflow:NAME:day:2026-11-24``,
``workflow:NAME:month:2026-11``); the daemon seeds spent amounts from its ledger at start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["BudgetLimit", "Budgets", "Lease"]

_ZERO = Decimal(0)


@dataclass(frozen=True)
class BudgetLimit:
    """A hard limit in USD on one scope."""

    scope: str
    limit: Decimal


@dataclass(frozen=True)
class Lease:
    """An admitted call's reservation."""

    limits: tuple[BudgetLimit, ...]
    amount: Decimal


class Budgets:
    """Spent and reserved amounts per scope. Thread-safe.

    ``seed`` tells what a scope had spent before this process knew it (the daemon asks its
    ledger), the first time the scope is used, so a restart does not reset a day's budget.
    """

    def __init__(self, seed: Callable[[str], Decimal] | None = None) -> None:
        self._spent: dict[str, Decimal] = {}
        self._reserved: dict[str, Decimal] = {}
        self._lock = threading.Lock()
        self._seed = seed

    def seed(self, scope: str, spent: Decimal) -> None:
        """Start ``scope`` at ``spent`` (what the ledger says was spent before a restart)."""
        with self._lock:
            self._spent[scope] = spent

    def spent(self, scope: str) -> Decimal:
        """Settled spend of ``scope``."""
        with self._lock:
            return self._spent.get(scope, _ZERO)

    def room(self, limits: Sequence[BudgetLimit]) -> Decimal | None:
        """The least room left across ``limits`` (None: no limit applies)."""
        if not limits:
            return None
        with self._lock:
            return min(self._room(limit) for limit in limits)

    def _room(self, limit: BudgetLimit) -> Decimal:
        if limit.scope not in self._spent and self._seed is not None:
            self._spent[limit.scope] = self._seed(limit.scope)
        used = self._spent.get(limit.scope, _ZERO) + self._reserved.get(limit.scope, _ZERO)
        return limit.limit - used

    def reserve(self, limits: Sequence[BudgetLimit], amount: Decimal) -> Lease | None:
        """Reserve ``amount`` on every scope, or nothing (None) if any would go over."""
        lease = Lease(tuple(limits), amount)
        if amount <= 0 or not limits:
            return lease
        with self._lock:
            if any(self._room(limit) < amount for limit in limits):
                return None
            for limit in limits:
                self._reserved[limit.scope] = self._reserved.get(limit.scope, _ZERO) + amount
        return lease

    def settle(self, lease: Lease, actual: Decimal) -> bool:
        """Replace the reservation by what the call cost; True when it cost more than reserved
        (which a correct worst case never allows: the caller should say so loudly)."""
        with self._lock:
            self._unreserve(lease)
            for limit in lease.limits:
                self._spent[limit.scope] = self._spent.get(limit.scope, _ZERO) + actual
        return actual > lease.amount

    def release(self, lease: Lease) -> None:
        """Drop the reservation of a call that cost nothing (it failed before any usage)."""
        with self._lock:
            self._unreserve(lease)

    def _unreserve(self, lease: Lease) -> None:
        if lease.amount <= 0:
            return
        for limit in lease.limits:
            left = self._reserved.get(limit.scope, _ZERO) - lease.amount
            if left > 0:
                self._reserved[limit.scope] = left
            else:
                self._reserved.pop(limit.scope, None)

    def forget(self, scope: str) -> None:
        """Drop what is known of ``scope`` (a finished execution, a past day), unless calls
        still hold reservations on it."""
        with self._lock:
            if scope not in self._reserved:
                self._spent.pop(scope, None)
