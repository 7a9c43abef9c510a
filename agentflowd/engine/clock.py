"""Time for the engine, injected: the wall clock, the monotonic clock and timers, as one port.

The engine reads no clock of its own: :class:`SystemClock` is the real one (timers on the
running event loop), :class:`FakeClock` its twin, which moves only when a test says
:meth:`FakeClock.advance` and then fires the timers that fell due, in order. Engine tests
therefore never wait for a retry's backoff or an execution's deadline, and never depend on
how fast a loaded machine is (kopf's ``looptime`` is the model).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "Timer"]


class Timer(Protocol):
    """An armed timer."""

    def cancel(self) -> None:
        """It will not fire (no-op once it has)."""


class Clock(Protocol):
    """What the engine asks of time."""

    def now(self) -> datetime:
        """The wall clock, timezone-aware UTC (recorded in the log, compared with deadlines)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, caches, sandbox deadlines)."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        """Call ``fn`` on the engine's loop after ``delay`` seconds (called from the loop)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SystemClock:
    """The real clocks; timers on the running event loop. (The clocks are the functions
    themselves, set on the instance: read for every step, a method around them cost a call.)"""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self.now: Callable[[], datetime] = now or _utcnow
        self.monotonic: Callable[[], float] = time.monotonic

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay), fn)


class _FakeTimer:
    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it (thread-safe reads)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return 1000.0 + self._elapsed

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = _FakeTimer(fn)
        heapq.heappush(self._timers, (self._elapsed + max(0.0, delay), next(self._order), timer))
        return timer

    @property
    def pending(self) -> list[float]:
        """Seconds from now until each armed timer fires, soonest first."""
        return sorted(at - self._elapsed for at, _, t in self._timers if not t.cancelled)

    def advance(self, seconds: float) -> int:
        """Move time on by ``seconds``, firing the timers that fall due (each at its own
        time, in order; a timer armed by one that fires runs too if it falls due). Returns
        how many fired."""
        end = self._elapsed + seconds
        fired = 0
        while self._timers and self._timers[0][0] <= end:
            at, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._elapsed = max(self._elapsed, at)
            timer.fn()
            fired += 1
        self._elapsed = end
        return fired
