"""Per-route circuit breakers and disabled deployments.

A route (deployment/model) that failed with a retryable error cools down: until the provider's
``Retry-After`` when it gave one, else after ``threshold`` consecutive failures for
``open_seconds``. A new deadline never shortens an existing one: the later of the two holds
(LiteLLM #40130). After the deadline, the route is tried again (half-open): a success closes
it, a failure opens it again. Auth and spent-quota errors disable the whole deployment until an
operator re-enables it; an unknown model disables that route. Rate-limit headers saying nothing
is left cool the route until their reset time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from router.errors import ErrorKind, ProviderError
from router.types import RateInfo

__all__ = ["Health"]


class Health:
    """Breakers by route label, disabled deployments and routes. Thread-safe."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        threshold: int = 3,
        open_seconds: float = 30.0,
    ) -> None:
        self.clock = clock
        self.threshold = threshold
        self.open_seconds = open_seconds
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._disabled: dict[str, str] = {}
        self._lock = threading.Lock()

    def _open(self, label: str, until: float) -> None:
        self._open_until[label] = max(self._open_until.get(label, 0.0), until)

    def success(self, label: str) -> None:
        """A call on ``label`` worked: close its breaker."""
        with self._lock:
            self._failures.pop(label, None)
            self._open_until.pop(label, None)

    def failure(self, label: str, deployment: str, error: ProviderError) -> None:
        """Record a failed call and what it implies."""
        now = self.clock()
        with self._lock:
            if error.kind.disables:
                self._disabled[deployment] = f"{error.kind.value}: {error.message[:200]}"
                return
            if error.kind is ErrorKind.NOT_FOUND:
                self._disabled[label] = f"not-found: {error.message[:200]}"
                return
            if not error.kind.retryable:
                return
            count = self._failures.get(label, 0) + 1
            self._failures[label] = count
            if error.retry_after is not None:
                self._open(label, now + error.retry_after)
            elif count >= self.threshold:
                self._open(label, now + self.open_seconds)

    def rate(self, label: str, info: RateInfo | None) -> None:
        """Cool ``label`` until its limit resets when the headers say nothing is left."""
        if info is None:
            return
        waits = [
            reset
            for remaining, reset in (
                (info.remaining_requests, info.reset_requests),
                (info.remaining_tokens, info.reset_tokens),
            )
            if remaining == 0 and reset is not None
        ]
        if waits:
            with self._lock:
                self._open(label, self.clock() + max(waits))

    def cooling(self) -> dict[str, float]:
        """Routes whose breaker is open, with the (monotonic) time it may be tried again."""
        now = self.clock()
        with self._lock:
            return {k: v for k, v in self._open_until.items() if v > now}

    def disabled(self) -> dict[str, str]:
        """Disabled deployments and routes, with why."""
        with self._lock:
            return dict(self._disabled)

    def enable(self, name: str) -> None:
        """Re-enable a deployment or route (an operator fixed the key or the quota)."""
        with self._lock:
            self._disabled.pop(name, None)
