"""Waiting on conditions in tests: a deadline and a predicate, never a bare sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_tick = threading.Event()  # never set: wait() is the poll interval


def wait_for(predicate: Callable[[], T], *, timeout: float = 10.0, what: str = "condition") -> T:
    """Return the first truthy value of ``predicate()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        _tick.wait(0.02)
