"""Requests-per-minute and tokens-per-minute buckets per route, fed by rate-limit headers.

A deployment's configured ``rpm``/``tpm`` is one bucket shared by all its models; each route
also gets buckets from what the provider says (providers limit per model):
``x-ratelimit-limit-*`` sets the capacity and ``x-ratelimit-remaining-*`` the level (OpenAI;
Anthropic's ``anthropic-ratelimit-*`` alike). A call must fit in every bucket that applies.
Before a call the router takes one request and the call's estimated tokens; after it, the
estimate is replaced by the actual usage. A call that would find a bucket empty is not sent
(it would only earn a 429): the router waits briefly when the bucket refills soon, or moves to
the next route.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from router.types import RateInfo

__all__ = ["Bucket", "RateLimits"]


@dataclass
class Bucket:
    """A token bucket refilling ``capacity`` per minute."""

    capacity: float
    level: float
    updated: float

    def refill(self, now: float) -> None:
        """Add what a minute's rate gave since the last look."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60)
            self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0: now). More than the capacity: one minute."""
        if self.level >= amount:
            return 0.0
        if self.capacity <= 0:
            return 60.0
        return min(60.0, (amount - self.level) * 60 / self.capacity)


class RateLimits:
    """Buckets per deployment (configured) and per route (learned). Thread-safe."""

    def __init__(
        self,
        limits: Mapping[str, tuple[int | None, int | None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(limits or {})  # deployment -> (rpm, tpm)
        self.clock = clock
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def _buckets_of(self, label: str, which: str, now: float) -> list[Bucket]:
        """The deployment's configured bucket (shared by its models) and the route's own bucket
        learned from headers (providers limit per model), whichever exist, refilled."""
        deployment = label.split("/", 1)[0]
        out = []
        configured = self._buckets.get((f"deployment:{deployment}", which))
        if configured is None:
            rpm, tpm = self.limits.get(deployment, (None, None))
            capacity = rpm if which == "requests" else tpm
            if capacity is not None:
                configured = Bucket(capacity, capacity, now)
                self._buckets[(f"deployment:{deployment}", which)] = configured
        observed = self._buckets.get((label, which))
        for bucket in (configured, observed):
            if bucket is not None:
                bucket.refill(now)
                out.append(bucket)
        return out

    def admit(self, label: str, tokens: int) -> float:
        """Take one request and ``tokens``; or take nothing and return the seconds to wait."""
        now = self.clock()
        with self._lock:
            requests = self._buckets_of(label, "requests", now)
            budgets = self._buckets_of(label, "tokens", now)
            wait = max(
                [b.wait_for(1) for b in requests]
                + [b.wait_for(min(tokens, b.capacity)) for b in budgets]
                + [0.0]
            )
            if wait > 0:
                return wait
            for bucket in requests:
                bucket.level -= 1
            for bucket in budgets:
                bucket.level -= tokens
            return 0.0

    def settle(self, label: str, estimated: int, actual: int) -> None:
        """Replace a call's estimated tokens by what it used."""
        now = self.clock()
        with self._lock:
            for bucket in self._buckets_of(label, "tokens", now):
                bucket.level = min(bucket.capacity, bucket.level + estimated - actual)

    def observe(self, label: str, info: RateInfo | None) -> None:
        """Take the provider's word for capacity and what is left."""
        if info is None:
            return
        now = self.clock()
        with self._lock:
            for which, limit, remaining in (
                ("requests", info.limit_requests, info.remaining_requests),
                ("tokens", info.limit_tokens, info.remaining_tokens),
            ):
                if limit is None and remaining is None:
                    continue
                bucket = self._buckets.get((label, which))
                if bucket is None:
                    capacity = float(limit if limit is not None else remaining or 0)
                    bucket = self._buckets[(label, which)] = Bucket(capacity, capacity, now)
                if limit is not None:
                    bucket.capacity = float(limit)
                if remaining is not None:
                    bucket.level = float(remaining)
                bucket.updated = now
